"""A zero-wait receive buffer for Opus, replacing aiortc's fixed 4-packet audio prefetch.

aiortc's ``RTCRtpReceiver`` gives audio a ``JitterBuffer(capacity=16, prefetch=4)`` that holds three
to four 20 ms packets before decoding (aiortc 1.16, ``rtcrtpreceiver.py``), and it has no setting
for it. That is 60-80 ms added to every lip movement, more than the encoder's whole look-ahead. The
avatar does not play the voice out locally, so it needs no jitter buffer: one Opus packet is one
frame, and it can be decoded as soon as it arrives. A late or duplicate packet is dropped; the
session clock counts samples, so a lost packet shortens the audio by 20 ms instead of stalling it.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

HALF_SEQUENCE_SPACE = 0x8000  # RTP sequence numbers are 16-bit; "behind" is within half the space


class ImmediateAudioBuffer:
    """Implements the one method aiortc's receiver calls (``add``), releasing each packet now."""

    capacity = 16

    def __init__(self) -> None:
        self._last_sequence: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Returns ``(pli_needed, frame)``; ``frame`` is None for a late or repeated packet."""
        if self._last_sequence is not None:
            ahead = uint16_add(packet.sequence_number, -self._last_sequence)
            if ahead == 0 or ahead >= HALF_SEQUENCE_SPACE:
                return False, None
        self._last_sequence = packet.sequence_number
        data = packet._data  # type: ignore[attr-defined]  # set by the receiver's depayloader
        return False, JitterFrame(data=data, timestamp=packet.timestamp)


def decode_audio_on_arrival(pc: RTCPeerConnection) -> None:
    """Swaps the audio receivers' jitter buffers of ``pc``; call after ``setRemoteDescription``."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            # Name-mangled private attribute: aiortc offers no public way to size this buffer.
            receiver: Any = transceiver.receiver  # mypy cannot see name-mangled attributes
            receiver._RTCRtpReceiver__jitter_buffer = ImmediateAudioBuffer()
