"""A channel's outgoing video: each frame VP8-coded once, and the packet shared by every consumer.

aiortc codes a track's frames once per ``RTCRtpSender``, because ``MediaRelay`` shares frames, not
packets. A channel with a speaker, five WHEP viewers and an SFU publish would so run seven VP8
encoders on the same pictures. Here the channel codes each frame once (``VideoOut``'s coding task,
in the event loop's default executor, where aiortc coded), and every consumer's sender packs that
packet (aiortc's ``Vp8Encoder.pack``). A consumer whose connection negotiated a codec other than
VP8 gets the frames and codes them itself, as before (``VideoSubscription.use_codec``).

The coding stays off the session's worker thread on purpose: there it made the worker's trip a
frame longer, and four talking sessions with the probe on this machine's two cores fell to
16.2 and 19.8 fps in two runs of three, against 21.8-24.3 fps for aiortc coding per consumer
in its executor (``bench.probe_cpu``, three interleaved pairs).

The channel has one encoder whatever its source, so a handover between sessions is just the next
frame. Like aiortc's own sender, the coding task takes the newest frame when it is free: a frame
published while it codes the one before may be replaced unseen. Every packet it codes is sent, so
a consumer must only see every packet from a keyframe on:

- a consumer starts at a keyframe, and asks for one when it starts;
- one that falls ``MAX_BEHIND_PACKETS`` behind drops what it holds and waits for the next keyframe;
- a receiver's PLI or FIR asks for one (``aiortc_tuning`` passes aiortc's request on).

The bitrate is the lowest any consumer's receiver asked for (REMB), within aiortc's bounds; a
consumer that has not asked counts as aiortc's starting bitrate.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
from aiortc.codecs import vpx
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame
from av.video.codeccontext import VideoCodecContext

from . import aiortc_tuning
from .frames import frame_planes
from .tracks import VIDEO_CLOCK_HZ, AvatarVideoTrack

VP8_MIME_TYPE = "video/VP8"
MAX_BEHIND_PACKETS = 5  # 200 ms at 25 fps: a consumer further behind skips to the next keyframe
BITRATE_CHANGE = 0.1  # the encoder is rebuilt (a keyframe) only for a change larger than this


def vp8_options(bitrate_bps: int) -> dict[str, str]:
    """The libvpx options of aiortc 1.16 (``Vp8Encoder.encode``) and ``aiortc_tuning.VP8_OPTIONS``.

    CBR at ``bitrate_bps``, realtime, no look-ahead. tests/test_video_out.py checks these against
    the options of aiortc's own (tuned) encoder.
    """
    rate = str(bitrate_bps)
    aiortc_own = {
        "bufsize": rate,
        "cpu-used": "-6",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "minrate": rate,
        "maxrate": rate,
        "noise-sensitivity": "4",
        "overshoot-pct": "15",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
    }
    return {**aiortc_own, **aiortc_tuning.VP8_OPTIONS}


@dataclass(frozen=True)
class EncodeWish:
    """What the channel wants of a source's next coded frame."""

    keyframe: bool
    bitrate_bps: int


@dataclass(frozen=True)
class EncodedFrame:
    """One frame coded by a ``FrameEncoder``."""

    data: bytes
    keyframe: bool


class FrameEncoder:
    """A channel's VP8 encoder, with aiortc's settings and ``aiortc_tuning.VP8_OPTIONS``.

    Used by one thread at a time. The first frame, and the first after a bitrate change, is a
    keyframe: libvpx is rebuilt then, as aiortc does.
    """

    def __init__(self) -> None:
        self._codec: VideoCodecContext | None = None
        self._bitrate_bps = 0  # the codec's

    def encode(self, frame: av.VideoFrame, wish: EncodeWish) -> EncodedFrame | None:
        """``frame`` (its pts on the 90 kHz clock) coded; None if libvpx returned nothing.

        libvpx paces its rate control by the frames' timestamps, so frames never coded count as
        time gone by.
        """
        codec = self._codec_for(frame, wish.bitrate_bps)
        if wish.keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        packets = codec.encode(frame)
        if not packets:
            return None
        data = b"".join(bytes(p) for p in packets)
        return EncodedFrame(data, any(p.is_keyframe for p in packets))

    def _codec_for(self, frame: av.VideoFrame, bitrate_bps: int) -> VideoCodecContext:
        codec = self._codec
        if (
            codec is not None
            and (codec.width, codec.height) == (frame.width, frame.height)
            and abs(bitrate_bps - self._bitrate_bps) <= BITRATE_CHANGE * self._bitrate_bps
        ):
            return codec
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height = frame.width, frame.height
        codec.bit_rate = bitrate_bps
        codec.pix_fmt = "yuv420p"
        # The frames' own clock (RTP's 90 kHz), so PyAV need not rebase their timestamps.
        codec.time_base = Fraction(1, VIDEO_CLOCK_HZ)
        codec.gop_size = 3000
        codec.qmin, codec.qmax = 2, 56
        codec.options = vp8_options(bitrate_bps)
        codec.thread_count = vpx.number_of_threads(frame.width * frame.height, os.cpu_count() or 1)
        self._codec, self._bitrate_bps = codec, bitrate_bps
        return codec


class VideoOut:
    """A channel's video: raw frames for consumers that code their own, VP8 packets for the rest.

    Use on the event loop. ``on_coded`` is called after each frame is coded (a metric).
    """

    def __init__(self, fps: int, on_coded: Callable[[], None] | None = None) -> None:
        self.fps = fps
        self.frames = AvatarVideoTrack(fps)
        self._relay = MediaRelay()
        self._on_coded = on_coded
        self._encoder = FrameEncoder()
        self._packet_consumers: set[VideoSubscription] = set()
        self._keyframe_wanted = False
        self._coding: asyncio.Task[None] | None = None
        self._newest: tuple[av.VideoFrame, int] | None = None  # not yet taken by the coding task
        self._fresh = asyncio.Event()
        self._stopped = False
        self.frames_coded = 0
        self.keyframes_sent = 0

    def subscribe(self) -> VideoSubscription:
        """A consumer's track: packets or frames once its sender knows the codec."""
        return VideoSubscription(self)

    def wish(self) -> EncodeWish:
        """What the next coded frame should be."""
        bitrates = [c.bitrate_bps for c in self._packet_consumers] or [vpx.DEFAULT_BITRATE]
        return EncodeWish(self._keyframe_wanted, min(bitrates))

    def request_keyframe(self) -> None:
        """The next frame coded should be a keyframe."""
        self._keyframe_wanted = True

    def publish(self, frame: av.VideoFrame, number: int) -> None:
        """Offers channel frame ``number`` to every consumer (coded once for the VP8 ones)."""
        self.frames.publish(frame, number)
        if self._packet_consumers:
            self._newest = (frame, number * VIDEO_CLOCK_HZ // self.fps)
            self._fresh.set()

    def _send(self, coded: EncodedFrame, pts: int) -> None:
        """Hands one coded frame (``pts`` on the 90 kHz clock) to every packet consumer."""
        if coded.keyframe:
            self._keyframe_wanted = False
            self.keyframes_sent += 1
        packet = av.Packet(coded.data)
        packet.pts = pts
        packet.time_base = Fraction(1, VIDEO_CLOCK_HZ)
        for consumer in list(self._packet_consumers):
            consumer.put(packet, coded.keyframe)

    async def _code_frames(self) -> None:
        """Codes the newest frame whenever free, while any consumer takes packets.

        It codes a copy (30 us for 512x512): the frame itself also goes to consumers that code
        it themselves, and PyAV rewrites a frame's timestamps in place to each encoder's clock.
        """
        loop = asyncio.get_running_loop()
        while self._packet_consumers and not self._stopped:
            await self._fresh.wait()
            self._fresh.clear()
            if self._newest is None or not self._packet_consumers or self._stopped:
                continue
            (frame, pts), self._newest = self._newest, None
            coded = await loop.run_in_executor(None, self._code, frame, pts, self.wish())
            self.frames_coded += 1
            if self._on_coded is not None:
                self._on_coded()
            if coded is not None and not self._stopped:
                self._send(coded, pts)

    def _code(self, frame: av.VideoFrame, pts: int, wish: EncodeWish) -> EncodedFrame | None:
        """Executor thread: codes a copy of ``frame`` stamped ``pts`` (90 kHz)."""
        own = av.VideoFrame(frame.width, frame.height, "yuv420p")
        for target, source in zip(frame_planes(own), frame_planes(frame), strict=True):
            target[...] = source
        own.pts, own.time_base = pts, Fraction(1, VIDEO_CLOCK_HZ)
        return self._encoder.encode(own, wish)

    def stop(self) -> None:
        """Ends the frames track, the coding and every packet consumer."""
        self._stopped = True
        self._fresh.set()
        self.frames.stop()
        for consumer in list(self._packet_consumers):
            consumer.stop()

    # --- for VideoSubscription -------------------------------------------------------------------

    def relay_frames(self) -> MediaStreamTrack:
        """A consumer's own view of the newest frame (aiortc's relay, unbuffered)."""
        return self._relay.subscribe(self.frames, buffered=False)

    def add_packet_consumer(self, consumer: VideoSubscription) -> None:
        """Sends ``consumer`` every packet from the next keyframe on (asked for now)."""
        self._packet_consumers.add(consumer)
        self.request_keyframe()
        if self._coding is None or self._coding.done():
            self._coding = asyncio.ensure_future(self._code_frames())

    def remove_packet_consumer(self, consumer: VideoSubscription) -> None:
        """Stops sending packets to ``consumer``."""
        self._packet_consumers.discard(consumer)


class VideoSubscription(MediaStreamTrack):
    """One consumer's video track: the channel's VP8 packets, or its frames for another codec.

    Which one is settled when the consumer's ``RTCRtpSender`` starts with its negotiated codec
    (``use_codec``, called by ``aiortc_tuning``); ``recv`` is not called before that.
    """

    kind = "video"

    def __init__(self, out: VideoOut) -> None:
        super().__init__()
        self._out = out
        self._frames: MediaStreamTrack | None = None
        self._packets: asyncio.Queue[av.Packet | None] | None = None
        self._awaiting_keyframe = True
        self.bitrate_bps = vpx.DEFAULT_BITRATE
        self.skipped = 0  # packets dropped because this consumer fell behind or joined mid-chain

    @property
    def takes_packets(self) -> bool:
        """Whether this consumer gets the channel's VP8 packets (else frames, or not settled)."""
        return self._packets is not None

    def use_codec(self, mime_type: str) -> None:
        """Settles the track's kind of output for the codec the sender was given."""
        if self._frames is not None or self._packets is not None or self.readyState != "live":
            return
        if mime_type.lower() == VP8_MIME_TYPE.lower():
            self._packets = asyncio.Queue()
            self._out.add_packet_consumer(self)
        else:
            self._frames = self._out.relay_frames()

    def request_keyframe(self) -> None:
        """The receiver lost the picture (PLI or FIR)."""
        if self._packets is not None:
            self._out.request_keyframe()

    def report_bitrate(self, bitrate_bps: int) -> None:
        """The receiver's estimated maximum bitrate (REMB), kept within aiortc's bounds."""
        self.bitrate_bps = max(vpx.MIN_BITRATE, min(bitrate_bps, vpx.MAX_BITRATE))

    def put(self, packet: av.Packet, keyframe: bool) -> None:
        """Queues one of the channel's packets; keeps the chain whole or waits for a keyframe."""
        queue = self._packets
        if queue is None:
            return
        if queue.qsize() >= MAX_BEHIND_PACKETS:
            self.skipped += queue.qsize()
            while not queue.empty():
                queue.get_nowait()
            self._awaiting_keyframe = True
            self._out.request_keyframe()
        if self._awaiting_keyframe and not keyframe:
            self.skipped += 1
            return
        self._awaiting_keyframe = False
        queue.put_nowait(packet)

    async def recv(self) -> Frame | av.Packet:  # type: ignore[override]
        """The next packet (VP8) or the newest frame (another codec)."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._frames is not None:
            return await self._frames.recv()
        if self._packets is None:
            raise MediaStreamError  # the sender started without use_codec
        packet = await self._packets.get()
        if packet is None:
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        """Ends the track and wakes a waiting consumer so it sees the end."""
        super().stop()
        self._out.remove_packet_consumer(self)
        if self._frames is not None:
            self._frames.stop()
        if self._packets is not None:
            self._packets.put_nowait(None)
