"""Settings of a running server, as given on the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DRIVERS = ("learned", "loudness")


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``lipstream serve`` can be told; see ``server/cli.py`` for the flags."""

    avatar_photo: Path | None = None  # None: the built-in default avatar
    host: str = "0.0.0.0"
    port: int = 8080
    fps: int = 25
    driver: str = "learned"
    max_sessions: int = 4
    ice_servers: tuple[str, ...] = ()  # e.g. "turn:user:pass@turn.example.org:3478"
    cache_dir: Path | None = None
    id_prefix: str = ""  # put before session and viewer ids; a worker's own, so the front can route

    def __post_init__(self) -> None:
        if self.driver not in DRIVERS:
            raise ValueError(f"driver must be one of {DRIVERS}, got {self.driver!r}")
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
