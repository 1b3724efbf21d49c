"""Receive buffers that make the aiortc test client behave like a browser when it measures latency.

aiortc's video jitter buffer emits a frame only when the first packet of the *next* frame arrives,
one frame interval (40 ms at 25 fps) after the frame was complete; browsers complete a frame on the
RTP marker bit. Its audio buffer prefetches four packets. Without these replacements the client
would report 40-80 ms that no browser viewer sees.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add
from lipstream.server.media.low_latency import ImmediateAudioBuffer

MAX_PENDING_PACKETS = 1024  # a frame larger than this was lost in pieces; start again at a keyframe


class MarkerVideoBuffer:
    """Emits a video frame as soon as its marker packet arrives and all its packets are present."""

    capacity = 512

    def __init__(self) -> None:
        self._packets: dict[int, RtpPacket] = {}
        self._last_end: int | None = None  # sequence number of the last emitted frame's marker

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Returns ``(pli_needed, frame)`` as aiortc's receiver expects."""
        self._packets[packet.sequence_number] = packet
        if len(self._packets) > MAX_PENDING_PACKETS:
            self._packets.clear()
            self._last_end = None
            return True, None
        if not packet.marker:
            return False, None
        frame, before_first = self._collect(packet)
        complete = self._last_end is None or before_first == self._last_end
        for packet_of_frame in frame:
            self._packets.pop(packet_of_frame.sequence_number, None)
        self._last_end = packet.sequence_number
        if not complete:
            return True, None
        data = b"".join(p._data for p in frame)  # type: ignore[attr-defined]
        return False, JitterFrame(data=data, timestamp=packet.timestamp)

    def _collect(self, marker: RtpPacket) -> tuple[list[RtpPacket], int]:
        frame = []
        sequence = marker.sequence_number
        while (
            found := self._packets.get(sequence)
        ) is not None and found.timestamp == marker.timestamp:
            frame.append(found)
            sequence = uint16_add(sequence, -1)
        return frame[::-1], sequence


def receive_like_a_browser(pc: RTCPeerConnection) -> None:
    """Replaces the receive buffers of every transceiver of ``pc``."""
    for transceiver in pc.getTransceivers():
        buffer = MarkerVideoBuffer() if transceiver.kind == "video" else ImmediateAudioBuffer()
        transceiver.receiver._RTCRtpReceiver__jitter_buffer = buffer
