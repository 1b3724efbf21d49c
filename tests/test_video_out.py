"""A channel's video coded once: the packets every consumer gets decode as one unbroken chain.

In-process: ``VideoOut`` with real libvpx and a real VP8 decoder, and aiortc's own
``RTCRtpSender`` for the codec, keyframe and bitrate requests it passes on. End to end, over
WebRTC, in ``tests/test_server_webrtc.py``.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpSender
from aiortc.codecs import vpx
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import RTCP_PSFB_APP, RTCP_PSFB_PLI, RtcpPsfbPacket, pack_remb_fci
from lipstream.server.media import aiortc_tuning
from lipstream.server.media.video_out import (
    MAX_BEHIND_PACKETS,
    EncodeWish,
    FrameEncoder,
    VideoOut,
    VideoSubscription,
    vp8_options,
)

from tests.support.waits import until

FPS = 25
SIZE = 128


def _picture(index: int) -> av.VideoFrame:
    """A mouth-like blob opening and closing over a textured still background (yuv420p)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    height = 8 + 6 * np.sin(index * 0.7)
    blob = np.exp(-((xx - 64) ** 2 / 400 + (yy - 64) ** 2 / height**2))
    image = np.clip(120 + 20 * np.sin(xx / 9) * np.cos(yy / 7) - 50 * blob, 0, 255)
    rgb = np.repeat(image.astype(np.uint8)[..., None], 3, axis=2)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def _decode_all(packets: list[av.Packet]) -> list[np.ndarray]:
    """Decodes ``packets`` in order with a fresh libvpx decoder; raises on a broken chain."""
    decoder = av.CodecContext.create("libvpx", "r")
    pictures = []
    for packet in packets:
        for frame in decoder.decode(av.Packet(bytes(packet))):
            pictures.append(frame.to_ndarray(format="gray"))
    return pictures


def _subscribed(out: VideoOut) -> VideoSubscription:
    track = out.subscribe()
    track.use_codec("video/VP8")
    return track


def _drain(track: VideoSubscription) -> list[av.Packet]:
    queue = track._packets
    assert queue is not None
    return [p for p in (queue.get_nowait() for _ in range(queue.qsize())) if p is not None]


async def _show(out: VideoOut, index: int) -> None:
    """Publishes frame ``index`` and waits until the channel has coded it."""
    coded = out.frames_coded
    out.publish(_picture(index), index)
    await until(lambda: out.frames_coded > coded, 5.0, f"frame {index} coded")


def test_options_are_aiortcs_own_tuned_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    """The options aiortc sets are caught as set: libvpx consumes them when it opens."""
    monkeypatch.setattr(vpx, "av", av)
    aiortc_tuning.apply()
    set_by_aiortc: dict[str, str] = {}
    tuned_setattr = aiortc_tuning._TunedEncoder.__setattr__

    def catch(self: aiortc_tuning._TunedEncoder, name: str, value: object) -> None:
        tuned_setattr(self, name, value)
        if name == "options":
            set_by_aiortc.update(self._inner.options)

    monkeypatch.setattr(aiortc_tuning._TunedEncoder, "__setattr__", catch)
    theirs = vpx.Vp8Encoder()
    frame = _picture(0)
    frame.pts, frame.time_base = 0, Fraction(1, 90_000)
    theirs.encode(frame)
    ours = FrameEncoder()
    frame = _picture(0)
    frame.pts, frame.time_base = 0, Fraction(1, 90_000)
    ours.encode(frame, EncodeWish(False, theirs.target_bitrate))
    codec = ours._codec
    assert codec is not None and theirs.codec is not None
    assert set_by_aiortc == vp8_options(theirs.target_bitrate)
    for name in ("bit_rate", "gop_size", "qmin", "qmax", "pix_fmt", "thread_count"):
        assert getattr(codec, name) == getattr(theirs.codec, name), name


async def test_every_consumer_gets_one_chain_from_a_keyframe_and_late_ones_wait_for_one() -> None:
    out = VideoOut(FPS)
    early = _subscribed(out)
    early_got, late_got = [], []
    for index in range(6):
        await _show(out, index)
        early_got += _drain(early)
    assert out.keyframes_sent == 1
    late = _subscribed(out)
    assert out.wish() == EncodeWish(True, vpx.DEFAULT_BITRATE), "a new consumer asks for a keyframe"
    for index in range(6, 12):
        await _show(out, index)
        early_got += _drain(early)
        late_got += _drain(late)
    assert out.keyframes_sent == 2 and out.wish() == EncodeWish(False, vpx.DEFAULT_BITRATE)
    assert out.frames_coded == 12, "one coding per frame, whatever the consumers"

    assert len(_decode_all(early_got)) == 12 and early.skipped == 0
    assert len(_decode_all(late_got)) == 6 and late.skipped == 0
    assert late_got[0].pts == 6 * 90_000 // FPS, "channel timestamps, 90 kHz"
    out.stop()


async def test_a_consumer_that_falls_behind_skips_to_the_next_keyframe() -> None:
    out = VideoOut(FPS)
    slow = _subscribed(out)
    for index in range(MAX_BEHIND_PACKETS + 1):
        await _show(out, index)
    wish = out.wish()
    assert slow.skipped == MAX_BEHIND_PACKETS + 1, "those it held, and the one that overflowed"
    assert wish.keyframe
    await _show(out, 10)
    packets = _drain(slow)
    assert len(packets) == 1 and len(_decode_all(packets)) == 1
    out.stop()


async def test_another_codec_gets_frames_and_nothing_is_coded() -> None:
    out = VideoOut(FPS)
    h264 = out.subscribe()
    h264.use_codec("video/H264")
    assert not h264.takes_packets
    out.publish(_picture(0), 3)
    received = await h264.recv()
    assert isinstance(received, av.VideoFrame) and received.pts == 3 * 90_000 // FPS
    assert out.frames_coded == 0
    out.stop()


def _sender(track: VideoSubscription) -> RTCRtpSender:
    transport = RTCDtlsTransport(
        RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()]
    )
    return RTCRtpSender(track, transport)


async def test_the_sender_tells_the_track_its_codec() -> None:
    aiortc_tuning.apply()
    for mime_type, takes_packets in (("video/VP8", True), ("video/H264", False)):
        out = VideoOut(FPS)
        track = out.subscribe()
        sender = _sender(track)
        codec = RTCRtpCodecParameters(mimeType=mime_type, clockRate=90_000, payloadType=96)
        await sender.send(RTCRtpSendParameters(codecs=[codec]))
        assert track.takes_packets == takes_packets, mime_type
        await sender.stop()
        out.stop()


async def test_the_sender_passes_keyframe_requests_and_remb_to_the_track() -> None:
    """Not started (no transport to send on), aiortc's sender still handles the RTCP it gets."""
    aiortc_tuning.apply()
    out = VideoOut(FPS)
    track = _subscribed(out)
    sender = _sender(track)
    await _show(out, 0)  # the keyframe the new consumer asked for
    assert out.wish() == EncodeWish(False, vpx.DEFAULT_BITRATE)

    pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc)
    await sender._handle_rtcp_packet(pli)
    assert out.wish() == EncodeWish(True, vpx.DEFAULT_BITRATE)

    remb = pack_remb_fci(300_000, [sender._ssrc])
    await sender._handle_rtcp_packet(
        RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=remb)
    )
    assert out.wish() == EncodeWish(True, 300_000)
    other = pack_remb_fci(100_000, [sender._ssrc + 1])
    await sender._handle_rtcp_packet(
        RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=other)
    )
    assert out.wish() == EncodeWish(True, 300_000), "a REMB for another stream"
    out.stop()


async def test_packets_keep_the_channel_clock_whatever_another_encoder_does_to_the_frame() -> None:
    """An H.264 consumer's encoder rebases the shared frame's pts to its own 1/30 s clock."""
    out = VideoOut(FPS)
    track = _subscribed(out)
    frame = _picture(0)
    coded = out.frames_coded
    out.publish(frame, 50)
    frame.pts, frame.time_base = 60, Fraction(1, 30)  # as PyAV leaves it after libx264
    await until(lambda: out.frames_coded > coded, 5.0, "frame coded")
    (packet,) = _drain(track)
    assert packet.pts == 50 * 90_000 // FPS and packet.time_base == Fraction(1, 90_000)
    out.stop()
