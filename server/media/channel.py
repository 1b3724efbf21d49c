"""Channels: outputs that outlive their speakers.

A channel owns the outgoing avatar video, the re-timed voice and the per-frame events that its
viewers (WHEP, ``/viewer``, ``/ws/events``, RTCDataChannels) receive. Sessions are its sources:
while nobody speaks, an idle session fed with silence shows the blinking avatar; a speaker's
session takes over on its first frame, and when it leaves the idle one starts again. Viewers stay
connected throughout, so a new speaker shows with no reconnect.

Frame numbers and video timestamps are the channel's own: a source's first frame goes on air at the
channel's wall-clock frame count, so the video clock never steps back at a handover (a receiver
would hold or drop frames that seem to come from the past).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from .tracks import VOICE_RATE_HZ, VoiceTrack
from .video_out import VideoOut

logger = logging.getLogger(__name__)

EventSink = Callable[[str], None]  # receives each event as JSON text; must not block


class Source(Protocol):
    """A session that can be on air on a channel (``AvatarSession``)."""

    id: str

    async def close(self) -> None:
        """Stops the source and frees what it holds."""
        ...


@dataclass
class _OnAir:
    """Where a source's own frame and sample numbers sit on the channel's clocks."""

    source: Source
    frame_offset: int  # channel frame = source frame + frame_offset
    voice_base_s: float | None = None  # channel voice time of the source's input sample 0


@dataclass
class Channel:
    """One channel's outputs and consumers; use on the event loop only.

    ``on_idle_needed`` is called when the channel has consumers and no speaker (the hub starts an
    idle source); ``on_speaker_shown`` when a speaker's first frame took the air from the idle one.
    """

    name: str
    fps: int
    video: VideoOut = field(init=False)
    voice: VoiceTrack = field(init=False)
    speaker: Source | None = None
    idle: Source | None = None
    avatar_id: str | None = None  # the last speaker's: the idle face shows it
    sinks: dict[EventSink, object] = field(default_factory=dict)  # each with its owner, or None
    viewers: dict[RTCPeerConnection, list[MediaStreamTrack]] = field(default_factory=dict)
    frames_shown: int = 0
    on_handover: Callable[[Channel], None] | None = (
        None  # a speaker took the air from the idle face
    )
    on_frame_coded: Callable[[], None] | None = None  # the channel VP8-coded a frame (a metric)
    _on_air: _OnAir | None = None
    _started_at: float = field(default_factory=time.monotonic)
    _last_frame: int = -1
    _voice_samples: int = 0  # 48 kHz samples published on this channel

    def __post_init__(self) -> None:
        self.video = VideoOut(self.fps, self.on_frame_coded)
        self.voice = VoiceTrack()

    # --- consumers -------------------------------------------------------------------------------

    @property
    def consumers(self) -> int:
        """Viewers and event listeners."""
        return len(self.viewers) + len(self.sinks)

    def subscribe(self, pc: RTCPeerConnection, video: bool, voice: bool) -> list[MediaStreamTrack]:
        """Adds this channel's tracks to ``pc``, each its own bounded subscription."""
        tracks: list[MediaStreamTrack] = []
        if video:
            tracks.append(self.video.subscribe())
            pc.addTrack(tracks[-1])
        if voice:
            tracks.append(self.voice.subscribe())
            pc.addTrack(tracks[-1])
        return tracks

    def add_viewer(self, pc: RTCPeerConnection, video: bool, voice: bool) -> None:
        """Attaches a viewer's connection; it stays across speakers until ``remove_viewer``."""
        self.viewers[pc] = self.subscribe(pc, video, voice)

    def remove_viewer(self, pc: RTCPeerConnection) -> None:
        """Stops a viewer's subscriptions and event sinks (the caller closes the connection)."""
        for track in self.viewers.pop(pc, []):
            track.stop()  # aiortc's sender does not stop its track; the relay would keep it
        self.remove_owner(pc)

    def add_sink(self, sink: EventSink, owner: object = None) -> None:
        """Sends every event to ``sink`` from now on; ``owner`` (a connection) may drop it later."""
        self.sinks[sink] = owner

    def remove_sink(self, sink: EventSink) -> None:
        """Stops sending events to ``sink``."""
        self.sinks.pop(sink, None)

    def remove_owner(self, owner: object) -> None:
        """Stops sending events to every sink ``owner`` added."""
        for sink in [s for s, o in self.sinks.items() if o is owner]:
            del self.sinks[sink]

    # --- sources ---------------------------------------------------------------------------------

    def is_on_air(self, source: Source) -> bool:
        """Whether ``source``'s frames and voice reach the consumers now."""
        return self._on_air is not None and self._on_air.source is source

    def _take_air(self, source: Source, source_frame: int) -> _OnAir | None:
        """Puts ``source`` on air if it may be: the speaker always, the idle one without one."""
        if self._on_air is not None and self._on_air.source is source:
            return self._on_air
        if source is not self.speaker and (source is not self.idle or self.speaker is not None):
            return None
        wall_frame = int((time.monotonic() - self._started_at) * self.fps)
        channel_frame = max(self._last_frame + 1, wall_frame)
        previous = self._on_air.source.id if self._on_air else None
        self._on_air = _OnAir(source, channel_frame - source_frame)
        logger.info("Channel(%s) on air: %s -> %s", self.name, previous, source.id)
        if source is self.speaker and self.idle is not None and self.on_handover is not None:
            self.on_handover(self)
        return self._on_air

    def show(self, source: Source, frame: av.VideoFrame | None, source_frame: int) -> int | None:
        """Publishes a source's video frame if it is on air; returns its channel frame number."""
        air = self._take_air(source, source_frame)
        if air is None:
            return None
        number = source_frame + air.frame_offset
        if number <= self._last_frame:
            return None  # a source's frames only move forward; a late one is dropped
        self._last_frame = number
        if frame is not None:
            self.video.publish(frame, number)
            self.frames_shown += 1
        return number

    def show_number(self, source: Source, source_frame: int) -> int | None:
        """The channel frame number of a source's frame (None while it is not on air)."""
        if self._on_air is None or self._on_air.source is not source:
            return None
        return source_frame + self._on_air.frame_offset

    def play(self, source: Source, frame: av.AudioFrame, start_sample_16k: int) -> None:
        """Publishes a source's voice frame (input samples from ``start_sample_16k``) if on air."""
        air = self._on_air
        if air is None or air.source is not source:
            return
        if air.voice_base_s is None:
            air.voice_base_s = self.voice_time_s - start_sample_16k / 16_000
        self.voice.publish(frame)
        self._voice_samples += frame.samples

    @property
    def voice_time_s(self) -> float:
        """Seconds of voice published on this channel so far (the returned audio's clock)."""
        return self._voice_samples / VOICE_RATE_HZ

    def voice_time_of(self, source: Source, sample_16k: int) -> float:
        """Where ``source``'s input sample falls on the returned audio's clock (seconds)."""
        if self._on_air is None or self._on_air.source is not source:
            return self.voice_time_s
        base = self._on_air.voice_base_s
        if base is None:
            return self.voice_time_s
        return max(base + sample_16k / 16_000, 0.0)

    def emit(self, event: dict[str, Any]) -> None:
        """Sends one event to every listener."""
        if not self.sinks:
            return
        text = json.dumps(event, separators=(",", ":"))
        for sink in list(self.sinks):
            sink(text)

    def left(self, source: Source) -> None:
        """``source`` stopped; the idle source (if any) may take the air."""
        if self.speaker is source:
            self.speaker = None
        if self.idle is source:
            self.idle = None
        if self._on_air is not None and self._on_air.source is source:
            self._on_air = None

    def close(self) -> None:
        """Ends the tracks and every subscription (the hub closes viewers' connections)."""
        for pc in list(self.viewers):
            self.remove_viewer(pc)
        self.video.stop()
        self.voice.stop()
