"""A channel's video coded once: the packets every consumer gets decode as one unbroken chain.

In-process: ``FrameEncoder`` and ``VideoOut`` with real libvpx and a real VP8 decoder, and aiortc's
own ``RTCRtpSender`` for the keyframe and bitrate requests it passes on. End to end, over WebRTC,
in ``tests/test_server_webrtc.py``.
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
    EncodedFrame,
    EncodeWish,
    FrameEncoder,
    VideoOut,
    VideoSubscription,
    vp8_options,
)

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


def _show(out: VideoOut, encoder: FrameEncoder, index: int, number: int) -> EncodedFrame:
    wish = out.wish() or EncodeWish(False, vpx.DEFAULT_BITRATE)
    frame = _picture(index)
    coded = encoder.encode(frame, index, wish)
    assert coded is not None
    out.publish(frame, number, coded)
    return coded


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
    ours = FrameEncoder(FPS)
    ours.encode(_picture(0), 0, EncodeWish(False, theirs.target_bitrate))
    codec = ours._codec
    assert codec is not None and theirs.codec is not None
    assert set_by_aiortc == vp8_options(theirs.target_bitrate)
    for name in ("bit_rate", "gop_size", "qmin", "qmax", "pix_fmt", "thread_count"):
        assert getattr(codec, name) == getattr(theirs.codec, name), name


async def test_every_consumer_gets_one_chain_from_a_keyframe_and_late_ones_wait_for_one() -> None:
    out = VideoOut(FPS)
    assert out.wish() is None, "nothing is coded while no consumer takes packets"
    early = _subscribed(out)
    encoder = FrameEncoder(FPS)
    early_got, late_got = [], []
    assert _show(out, encoder, 0, 0).keyframe
    for index in range(1, 6):
        assert not _show(out, encoder, index, index).keyframe
        early_got += _drain(early)
    late = _subscribed(out)
    assert out.wish() == EncodeWish(True, vpx.DEFAULT_BITRATE), "a new consumer asks for a keyframe"
    stale = _picture(6)  # coded in a trip that began before the consumer came: late skips it
    out.publish(stale, 6, encoder.encode(stale, 6, EncodeWish(False, vpx.DEFAULT_BITRATE)))
    keyframe = _show(out, encoder, 7, 7)  # the wish as the session reads it before each trip
    assert keyframe.keyframe and out.wish() == EncodeWish(False, vpx.DEFAULT_BITRATE)
    for index in range(8, 12):
        _show(out, encoder, index, index)
        early_got += _drain(early)
        late_got += _drain(late)

    assert len(_decode_all(early_got)) == 12 and early.skipped == 0
    assert len(late_got) == 5 and late.skipped == 1
    assert late_got[0].pts == 7 * 90_000 // FPS, "channel timestamps, 90 kHz"
    assert len(_decode_all(late_got)) == 5
    assert out.keyframes_sent == 2


async def test_a_packet_that_breaks_the_chain_is_held_back_until_a_keyframe() -> None:
    """A handover between sources, or a frame the channel dropped, must not reach a decoder."""
    out = VideoOut(FPS)
    viewer = _subscribed(out)
    idle, speaker = FrameEncoder(FPS), FrameEncoder(FPS)
    got: list[av.Packet] = []
    for index in range(4):
        _show(out, idle, index, index)
        got += _drain(viewer)
    _show(out, speaker, 0, 4)  # the speaker's first frame is a keyframe: shown at once
    _show(out, speaker, 1, 5)
    got += _drain(viewer)
    frame = _picture(2)
    dropped = speaker.encode(frame, 2, EncodeWish(False, vpx.DEFAULT_BITRATE))
    assert dropped is not None  # coded, then dropped by the channel (late): never published
    assert not _show(out, speaker, 3, 6).keyframe
    assert out.wish() == EncodeWish(True, vpx.DEFAULT_BITRATE)
    assert _show(out, speaker, 4, 7).keyframe
    _show(out, speaker, 5, 8)
    got += _drain(viewer)

    assert [p.pts * FPS // 90_000 for p in got] == [0, 1, 2, 3, 4, 5, 7, 8]
    assert len(_decode_all(got)) == 8


async def test_a_consumer_that_falls_behind_skips_to_the_next_keyframe() -> None:
    out = VideoOut(FPS)
    slow = _subscribed(out)
    encoder = FrameEncoder(FPS)
    for index in range(MAX_BEHIND_PACKETS + 1):
        _show(out, encoder, index, index)
    wish = out.wish()
    assert slow.skipped == MAX_BEHIND_PACKETS + 1, "those it held, and the one that overflowed"
    assert wish is not None and wish.keyframe
    _show(out, encoder, 10, 10)
    packets = _drain(slow)
    assert len(packets) == 1 and len(_decode_all(packets)) == 1


async def test_another_codec_gets_frames_and_no_packets() -> None:
    out = VideoOut(FPS)
    h264 = out.subscribe()
    h264.use_codec("video/H264")
    assert not h264.takes_packets and out.wish() is None
    frame = _picture(0)
    out.publish(frame, 3, None)
    received = await h264.recv()
    assert isinstance(received, av.VideoFrame) and received.pts == 3 * 90_000 // FPS
    h264.stop()


async def test_the_sender_passes_the_codec_keyframe_requests_and_remb_to_the_track() -> None:
    aiortc_tuning.apply()
    out = VideoOut(FPS)
    track = out.subscribe()
    transport = RTCDtlsTransport(
        RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()]
    )
    sender = RTCRtpSender(track, transport)
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
    await sender.send(RTCRtpSendParameters(codecs=[vp8]))
    try:
        assert track.takes_packets
        _show(out, FrameEncoder(FPS), 0, 0)  # the keyframe the new consumer asked for
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
    finally:
        await sender.stop()
        track.stop()
