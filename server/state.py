"""What one running app holds: options, metrics, avatars, sessions and viewers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import ClassVar

from aiohttp import web
from aiortc import RTCPeerConnection
from lipstream.realtime.clock import MediaClock
from lipstream.realtime.driver import make_driver
from lipstream.realtime.pipeline import MotionPipeline

from .avatars import AvatarStore
from .media.session import AvatarSession
from .metrics import Metrics, new_metrics
from .options import ServeOptions
from .registry import SessionRegistry


@dataclass
class ServerState:
    """Shared by every handler through ``app[ServerState.KEY]``; used on the event loop only."""

    KEY: ClassVar[web.AppKey[ServerState]] = web.AppKey("lipstream_state")

    options: ServeOptions
    metrics: Metrics = field(default_factory=new_metrics)
    avatars: AvatarStore = field(init=False)
    sessions: SessionRegistry = field(init=False)
    viewers: dict[str, tuple[AvatarSession, RTCPeerConnection]] = field(default_factory=dict)
    publishers: set[web.WebSocketResponse] = field(default_factory=set)  # open /ws/ingest sockets

    def __post_init__(self) -> None:
        self.avatars = AvatarStore(
            self.options.cache_dir,
            max_uploads=self.options.max_uploads,
            framing=self.options.framing,
        )
        self.sessions = SessionRegistry(self.options.max_sessions)
        self.clock = MediaClock(fps=self.options.fps)

    def new_id(self) -> str:
        """A fresh session or viewer id, prefixed with this worker's ``id_prefix`` for routing."""
        return self.options.id_prefix + secrets.token_hex(6)

    def new_session(self, session_id: str, channel: str, avatar_id: str) -> AvatarSession:
        """A session for ``avatar_id`` with a fresh driver; not yet registered."""
        pipeline = MotionPipeline(self.clock, make_driver(self.options.driver, self.clock))
        return AvatarSession(
            session_id,
            channel,
            self.clock,
            pipeline,
            self.avatars.renderer(avatar_id),
            self.metrics,
        )
