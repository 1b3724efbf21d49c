"""What one running app holds: options, metrics, avatars, sessions, channels and viewers."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import ClassVar

from aiohttp import web
from aiortc import RTCPeerConnection
from lipstream.realtime.clock import SAMPLE_RATE_HZ, MediaClock
from lipstream.realtime.pipeline import MotionPipeline
from lipstream.realtime.visemes import make_driver_with_events

from .avatars import AvatarStore
from .media.channel import Channel
from .media.playout import PcmPlayout, idle_step_s
from .media.publish import Publishing, PublishTarget
from .media.session import AvatarSession
from .metrics import Metrics, new_metrics
from .options import ServeOptions
from .registry import SessionRegistry
from .tasks import TaskOwner

logger = logging.getLogger(__name__)

# The idle face is fed silence, on which every driver gives the rest mouth (the learned one's VAD
# gate closes it); its blinks and head motion come from the pipeline, whatever the driver. The
# loudness driver gets there without running the phoneme encoder and the motion model.
IDLE_DRIVER = "loudness"


@dataclass
class ServerState:
    """Shared by every handler through ``app[ServerState.KEY]``; used on the event loop only."""

    KEY: ClassVar[web.AppKey[ServerState]] = web.AppKey("lipstream_state")

    options: ServeOptions
    metrics: Metrics = field(default_factory=new_metrics)
    avatars: AvatarStore = field(init=False)
    sessions: SessionRegistry = field(init=False)
    channels: dict[str, Channel] = field(default_factory=dict)
    viewers: dict[str, tuple[Channel, RTCPeerConnection]] = field(default_factory=dict)
    publishers: dict[str, web.WebSocketResponse] = field(default_factory=dict)  # /ws/ingest, by id
    listeners: set[web.WebSocketResponse] = field(default_factory=set)  # open /ws/events sockets

    def __post_init__(self) -> None:
        self.avatars = AvatarStore(
            self.options.cache_dir,
            max_uploads=self.options.max_uploads,
            framing=self.options.framing,
        )
        self.sessions = SessionRegistry(self.options.max_sessions)
        self.clock = MediaClock(fps=self.options.fps)
        self.tasks = TaskOwner("Channels")
        self.closing = False
        self.publishing: Publishing | None = None
        if self.options.publish_whip:
            target = PublishTarget(self.options.publish_whip, self.options.publish_token)
            self.publishing = Publishing(target)

    def location(self, path: str) -> str:
        """The ``Location`` of a resource at ``path``: absolute on this node with ``public_url``.

        Behind a load balancer a DELETE or PATCH must reach the node that holds the session; an
        absolute URL on the node sends it there, as the media already goes there directly.
        """
        return f"{self.options.public_url}{path}" if self.options.public_url else path

    def new_id(self) -> str:
        """A fresh session or viewer id, prefixed with this worker's ``id_prefix`` for routing."""
        return self.options.id_prefix + secrets.token_hex(6)

    def channel(self, name: str) -> Channel:
        """The channel called ``name``, made on first use."""
        channel = self.channels.get(name)
        if channel is None:
            channel = Channel(
                name,
                self.options.fps,
                on_handover=self.refresh,
                on_frame_coded=self.metrics.frames_coded.inc,
            )
            self.channels[name] = channel
            if self.publishing is not None and not self.closing:
                self.publishing.started(channel)
        return channel

    def new_session(
        self, session_id: str, channel: str, avatar_id: str, driver_name: str | None = None
    ) -> AvatarSession:
        """A session for ``avatar_id`` with a fresh driver, publishing on ``channel``.

        ``driver_name`` defaults to the server's ``--driver``. Not yet registered; a speaker's
        session is made the channel's speaker by ``join``.
        """
        driver, events = make_driver_with_events(driver_name or self.options.driver, self.clock)
        return AvatarSession(
            session_id,
            self.channel(channel),
            self.clock,
            MotionPipeline(self.clock, driver),
            self.avatars.renderer(avatar_id),
            self.metrics,
            events,
            avatar_id,
        )

    def join(self, session: AvatarSession) -> None:
        """Makes ``session`` its channel's speaker; it takes the air on its first frame."""
        channel = session.output
        channel.speaker = session
        channel.avatar_id = session.avatar_id

    def refresh(self, channel: Channel) -> None:
        """Starts or stops the channel's idle face to match who is there; drops an empty channel.

        Idle while it has consumers and no speaker; gone once a speaker is on air or nobody
        watches. A channel with neither speaker nor consumers is forgotten.
        """
        idle = channel.idle
        wanted = channel.speaker is None and channel.consumers > 0 and not self.closing
        if idle is None and wanted:
            self._start_idle(channel)
        elif isinstance(idle, AvatarSession) and not wanted and not idle.closed.is_set():
            if channel.speaker is None or channel.is_on_air(channel.speaker):
                self.tasks.start(f"stop-idle-{channel.name}", self._stop_idle(idle))
        if channel.speaker is None and channel.idle is None and channel.consumers == 0:
            if self.channels.get(channel.name) is channel:
                del self.channels[channel.name]
            if self.publishing is not None:
                self.publishing.ended(channel)
            channel.close()

    def _start_idle(self, channel: Channel) -> None:
        avatar_id = channel.avatar_id or self.avatars.default_id
        if avatar_id not in self.avatars:  # evicted since it spoke
            avatar_id = self.avatars.default_id
        if avatar_id is None:
            return
        session = self.new_session(f"idle-{channel.name}", channel.name, avatar_id, IDLE_DRIVER)
        channel.idle = session
        # Silence through the real pipeline: the idle face blinks and moves as a listener does.
        step_s = idle_step_s(self.options.fps)
        playout = PcmPlayout(session, SAMPLE_RATE_HZ, 0.0, lambda _message: None, step_s)
        session.tasks.start("idle-playout", playout.run())
        logger.info("Channel(%s) idle with avatar %s", channel.name, avatar_id)

    async def _stop_idle(self, session: AvatarSession) -> None:
        await session.close()
        self.refresh(session.output)
