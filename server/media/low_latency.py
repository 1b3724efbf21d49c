"""A zero-wait receive buffer for Opus, replacing aiortc's fixed 4-packet audio prefetch.

It also keeps the frames it released, whose timestamp aiortc's receiver then maps to the stream's
own (from 0) and its decoder copies into the decoded frame's pts, so the reader can tag each
decoded frame with the packet it came from (``tag_with_opus_packet``): the voice then goes back
out as the client coded it (``tracks.VoiceTrack``), without a second generation of lossy coding
or its CPU.

aiortc's ``RTCRtpReceiver`` gives audio a ``JitterBuffer(capacity=16, prefetch=4)`` that holds three
to four 20 ms packets before decoding (aiortc 1.16, ``rtcrtpreceiver.py``), and it has no setting
for it. That is 60-80 ms added to every lip movement, more than the encoder's whole look-ahead. The
avatar does not play the voice out locally, so it needs no jitter buffer: one Opus packet is one
frame, and it can be decoded as soon as it arrives. A late or duplicate packet is dropped; the
session clock counts samples, so a lost packet shortens the audio by 20 ms instead of stalling it.
"""

from __future__ import annotations

import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

import av
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

HALF_SEQUENCE_SPACE = 0x8000  # RTP sequence numbers are 16-bit; "behind" is within half the space
KEPT_FRAMES = 64  # released frames whose decoded frame may still come: over 1 s of 20 ms packets


@dataclass(frozen=True)
class OpusPacket:
    """The Opus payload a decoded voice frame came from (set as the frame's ``opaque``)."""

    payload: bytes


def opus_packet_of(frame: av.AudioFrame) -> OpusPacket | None:
    """The packet ``frame`` was decoded from, if the reader tagged it."""
    return frame.opaque if isinstance(frame.opaque, OpusPacket) else None


class ImmediateAudioBuffer:
    """Implements the one method aiortc's receiver calls (``add``), releasing each packet now."""

    capacity = 16

    def __init__(self) -> None:
        self._last_sequence: int | None = None
        self._released: deque[JitterFrame] = deque(maxlen=KEPT_FRAMES)

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Returns ``(pli_needed, frame)``; ``frame`` is None for a late or repeated packet."""
        if self._last_sequence is not None:
            ahead = uint16_add(packet.sequence_number, -self._last_sequence)
            if ahead == 0 or ahead >= HALF_SEQUENCE_SPACE:
                return False, None
        self._last_sequence = packet.sequence_number
        data = packet._data  # type: ignore[attr-defined]  # set by the receiver's depayloader
        frame = JitterFrame(data=data, timestamp=packet.timestamp)
        self._released.append(frame)
        return False, frame

    def payload_at(self, timestamp: int) -> bytes | None:
        """The payload of the frame released with (mapped) ``timestamp``, or None.

        That frame and older ones are forgotten here.
        """
        for index, frame in enumerate(self._released):
            if frame.timestamp == timestamp:
                for _ in range(index + 1):
                    self._released.popleft()
                return frame.data
        return None


_buffers: weakref.WeakKeyDictionary[MediaStreamTrack, ImmediateAudioBuffer] = (
    weakref.WeakKeyDictionary()
)


def tag_with_opus_packet(track: MediaStreamTrack, frame: av.AudioFrame) -> None:
    """Sets ``frame.opaque`` to the ``OpusPacket`` it was decoded from, where that is known.

    Only for tracks that ``decode_audio_on_arrival`` set up; a frame's pts is the timestamp its
    packet's ``JitterFrame`` carries after aiortc's receiver mapped it (``OpusDecoder``).
    """
    buffer = _buffers.get(track)
    if buffer is None or frame.pts is None:
        return
    payload = buffer.payload_at(frame.pts)
    if payload is not None:
        frame.opaque = OpusPacket(payload)


def decode_audio_on_arrival(pc: RTCPeerConnection) -> None:
    """Swaps the audio receivers' jitter buffers of ``pc``; call after ``setRemoteDescription``."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            # Name-mangled private attribute: aiortc offers no public way to size this buffer.
            receiver: Any = transceiver.receiver  # mypy cannot see name-mangled attributes
            buffer = ImmediateAudioBuffer()
            receiver._RTCRtpReceiver__jitter_buffer = buffer
            _buffers[receiver.track] = buffer
