"""Settings of a running server, as given on the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lipstream.avatar.framing import FRAMINGS
from lipstream.realtime.driver import DRIVERS


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``lipstream serve`` can be told; see ``server/cli.py`` for the flags."""

    avatar_photo: Path | None = None  # None: the built-in default avatar
    host: str = "127.0.0.1"
    port: int = 8080
    fps: int = 25
    driver: str = "learned"
    max_sessions: int = 4
    ice_servers: tuple[str, ...] = ()  # e.g. "turn:user:pass@turn.example.org:3478"
    cache_dir: Path | None = None
    id_prefix: str = ""  # put before session and viewer ids; a worker's own, so the front can route
    token: str | None = None  # publishers' bearer token (server/guard.py); None: loopback only
    viewer_token: str | None = None  # viewers' bearer token; None: viewing needs ``token``
    allow_origins: tuple[str, ...] = ()  # browser origins accepted besides the server's own
    max_viewers: int = 16  # WHEP viewers per channel
    turn_secret: str | None = None  # coturn's static-auth-secret: short-lived TURN credentials
    max_uploads: int = 16  # uploaded avatars kept (in memory and on disk), least recently used go
    framing: str = "auto"  # avatar/framing.py: "auto" (webcam-like) or "photo" (as it is)
    max_queue_s: float = 30.0  # PCM a /ws/ingest publisher may queue ahead of playout
    public_url: str | None = None  # this node's own base URL: Locations point here (behind a LB)
    publish_whip: str | None = None  # WHIP endpoint every channel is published to (media/publish)
    publish_token: str | None = None  # its Bearer token

    def __post_init__(self) -> None:
        if self.driver not in DRIVERS:
            raise ValueError(f"driver must be one of {DRIVERS}, got {self.driver!r}")
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if self.max_viewers < 0 or self.max_uploads < 1:
            raise ValueError("max_viewers must be at least 0 and max_uploads at least 1")
        if self.framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, got {self.framing!r}")
        if not 0 < self.max_queue_s <= 3600:
            raise ValueError(f"max_queue_s must be in (0, 3600] seconds, got {self.max_queue_s}")
        if self.token is not None and not self.token:
            raise ValueError("the token must not be empty")
        for name in ("public_url", "publish_whip"):
            url = getattr(self, name)
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http:// or https:// URL, got {url!r}")
        if self.publish_token is not None and self.publish_whip is None:
            raise ValueError("--publish-token needs --publish-whip")
