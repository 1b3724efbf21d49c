"""Which sessions exist, which channel each publishes on, and how many more may start."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .media.session import AvatarSession

CHANNEL_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RETRY_AFTER_S = 10  # sessions last minutes; a client retrying every 10 s finds a free slot soon
PLACEMENT_HEADER = (
    "X-Lipstream-Placement"  # the front's id for an offer it relays (server/front.py)
)


class RegistryError(Exception):
    """A session cannot be added; ``status`` and the message go back to the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SessionRegistry:
    """Sessions by id and by channel, bounded by ``max_sessions``."""

    max_sessions: int
    by_id: dict[str, AvatarSession] = field(default_factory=dict)
    by_channel: dict[str, AvatarSession] = field(default_factory=dict)
    starting: set[str] = field(default_factory=set)  # channels whose offers are being answered
    placements: dict[str, str] = field(default_factory=dict)  # channel -> the front's offer id

    def reserve(self, channel: str, placement: str | None = None) -> None:
        """Claims a slot for a new session on ``channel``; raises ``RegistryError``.

        ``placement`` is the front's id for the relayed offer, so that the front can tell the
        slots it already counts from the ones this worker reports.
        """
        if not CHANNEL_PATTERN.match(channel):
            raise RegistryError(400, "channel must be 1-64 letters, digits, '-' or '_'")
        if channel in self.by_channel or channel in self.starting:
            raise RegistryError(409, f"channel {channel!r} already has a speaker")
        if len(self.by_id) + len(self.starting) >= self.max_sessions:
            raise RegistryError(503, f"all {self.max_sessions} session slots are in use")
        self.starting.add(channel)
        if placement:
            self.placements[channel] = placement[:64]

    def add(self, session: AvatarSession) -> None:
        """Turns a reservation into a running session."""
        self.starting.discard(session.channel)
        self.by_id[session.id] = session
        self.by_channel[session.channel] = session

    def release(self, channel: str) -> None:
        """Gives back a reservation whose offer failed."""
        self.starting.discard(channel)
        self.placements.pop(channel, None)

    def remove(self, session: AvatarSession) -> None:
        """Forgets a closed session (idempotent)."""
        self.by_id.pop(session.id, None)
        if self.by_channel.get(session.channel) is session:
            del self.by_channel[session.channel]
            self.placements.pop(session.channel, None)
