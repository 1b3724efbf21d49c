"""The live path end to end: an aiortc client speaks to the real server, a WHEP viewer watches."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bench.mouth import mouth_openings
from bench.stages import fetch_timeline, frame_indices
from bench.whip_client import WebRtcClient
from tests.conftest import Speech, metric
from tests.support.waits import until

FPS = 25
SETTLE_S = 0.4  # frames arriving this soon after a span edge may still show the previous state


@pytest.fixture(scope="module")
def server(start_server) -> str:  # noqa: ANN001 - pytest fixture
    return start_server("--driver", "loudness", "--fps", str(FPS))


def _completeness(pts: list[int]) -> float:
    """Distinct frames received over frames the pts span covers (media time, not wall time)."""
    if len(pts) < 2:
        return 0.0
    span = (max(pts) - min(pts)) * FPS // 90_000 + 1
    return len(set(pts)) / span


def _frames_in(client: WebRtcClient, start: float, end: float) -> list[int]:
    return [i for i, t in enumerate(client.received.video_at) if start <= t < end]


# One retry: the client and the server share the machine's two cores, and once in five full-suite
# runs on 2026-11-30 the speaker got 80 % of the frames (this test alone, beside a busy core, and
# after the trust tests: every run passed). A real slowdown fails both runs, as it did when auto
# framing rendered at 256 px (75 %).
@pytest.mark.flaky(reruns=1)
async def test_speaker_gets_moving_lips_back_and_viewer_sees_them(
    server: str, speech: Speech
) -> None:
    speaker = WebRtcClient(server)
    viewer = WebRtcClient(server, keep_frames=False)
    await speaker.publish(speech.samples, "?channel=e2e")
    await asyncio.sleep(1.0)
    await viewer.view("e2e")
    duration_s = len(speech.samples) / 48_000
    await asyncio.sleep(duration_s)  # the speech plays; nothing below divides by this time
    expected = int(0.85 * FPS * (duration_s - 1.5))
    await until(lambda: len(speaker.received.video_at) >= expected, 20.0, f"{expected} frames")
    try:
        assert speaker.voice is not None and speaker.voice.started_at is not None
        t0 = speaker.voice.started_at
        received = speaker.received
        width, height = received.video_size or (0, 0)
        assert width >= 512 and height >= 512

        assert _completeness(received.video_pts) >= 0.85, "frames missing in media time"

        openings = mouth_openings(received.frames)
        assert np.mean(~np.isnan(openings)) >= 0.99, "a face must be found in every frame"

        speaking = np.concatenate(
            [_frames_in(speaker, t0 + a + SETTLE_S, t0 + b) for a, b in speech.speech_spans_s]
        )
        silent = _frames_in(
            speaker,
            t0 + speech.speech_spans_s[0][1] + SETTLE_S + 0.3,
            t0 + speech.speech_spans_s[1][0],
        )
        assert np.nanmax(openings[speaking]) > 0.03, "the mouth never opened during speech"
        assert np.nanstd(openings[speaking]) > 0.008, "the mouth did not move during speech"
        assert np.nanmax(openings[silent]) < 0.02, "the mouth moved in silence"

        rms = np.asarray(received.audio_rms)
        voice_at = np.asarray(received.audio_at)
        a, b = speech.speech_spans_s[0]
        loud = rms[(voice_at > t0 + a + 0.3) & (voice_at < t0 + b)]
        quiet = rms[(voice_at > t0 + b + 0.5) & (voice_at < t0 + speech.speech_spans_s[1][0])]
        assert received.audio_samples >= 0.8 * (duration_s - 1.0) * 48_000
        assert loud.mean() > 10 * max(quiet.mean(), 1e-4), "the voice did not come back"

        assert len(viewer.received.video_at) >= FPS * (duration_s - 3.0) * 0.85
        assert _completeness(viewer.received.video_pts) >= 0.85
        assert viewer.received.audio_samples > 48_000
        assert metric(server, "lipstream_frames_rendered_total") > duration_s * FPS * 0.8
    finally:
        await viewer.close()
        await speaker.close()


async def test_hang_up_frees_the_session(server: str) -> None:
    client = WebRtcClient(server, keep_frames=False)
    await client.publish(np.zeros(48_000 * 3, dtype=np.float32))
    await asyncio.sleep(1.0)
    assert metric(server, "lipstream_sessions") == 1
    await client.close()
    assert metric(server, "lipstream_sessions") == 0


async def test_frame_timeline_lines_up_with_what_the_client_received(server: str) -> None:
    client = WebRtcClient(server, keep_frames=False)
    await client.publish(np.zeros(48_000 * 3, dtype=np.float32))
    await asyncio.sleep(2.0)
    try:
        timeline = await fetch_timeline(server, client.resource or "")
        frames = sorted(timeline.rendered_at)
        assert len(frames) >= FPS, "about 2 s of frames should have been rendered"
        for i in frames:
            assert timeline.ready_at[i] <= timeline.posed_at[i] <= timeline.rendered_at[i]
        received = client.received
        indices = frame_indices(received.video_pts, received.video_at, timeline)
        delays = [
            at - timeline.rendered_at[i]
            for i, at in zip(indices, received.video_at, strict=True)
            if i in timeline.rendered_at
        ]
        assert len(delays) >= 0.9 * len(received.video_at) - 2
        assert 0 < min(delays) and max(delays) < 0.5, "received frames must map to rendered ones"
    finally:
        await client.close()


async def test_the_speaker_hears_back_the_opus_packets_it_sent(
    server: str, speech: Speech, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The returned voice is the client's own Opus, not a second coding of it.

    This client codes stereo packets (aiortc's own encoder; the server codes its voice mono, TOC
    stereo bit 0, ``aiortc_tuning.VoiceEncoder``), so stereo packets coming back are its own.
    """
    import aiortc.codecs
    from aiortc.codecs.opus import OpusEncoder

    monkeypatch.setattr(aiortc.codecs, "OpusEncoder", OpusEncoder)  # whatever other tests applied
    speaker = WebRtcClient(server, keep_frames=False)
    await speaker.publish(speech.samples[: 4 * 48_000], "?channel=passthrough")
    stereo_bits: list[bool] = []
    (receiver,) = [t.receiver for t in speaker.pc.getTransceivers() if t.kind == "audio"]
    buffer = receiver._RTCRtpReceiver__jitter_buffer  # noqa: SLF001  (no public hook on RTP)
    original_add = buffer.add

    def add(packet):  # type: ignore[no-untyped-def]
        stereo_bits.append(bool(packet._data[0] & 0x04))  # noqa: SLF001  (RFC 6716 3.1 TOC)
        return original_add(packet)

    buffer.add = add
    try:
        await until(lambda: len(stereo_bits) >= 100, 20.0, "100 voice packets back")
        assert np.mean(stereo_bits) > 0.9
    finally:
        await speaker.close()


# One retry, as above: four clients (one decoding H.264 the server codes for it alone) and the
# server share two cores. One of 21 runs of this file with tests/test_video_out.py failed on
# 2026-12-01, and which check failed was not kept; the other 20 passed. A real regression (a
# consumer without the face, or codings that do not follow the rendered frames) fails both runs.
@pytest.mark.flaky(reruns=1)
async def test_a_channel_codes_its_video_once_for_every_vp8_consumer(
    server: str, speech: Speech
) -> None:
    """The speaker and two VP8 viewers share one coding of each frame.

    An H.264 viewer, which cannot take VP8 packets, gets the frames and codes them itself. Every
    one of them sees the face.
    """
    speaker = WebRtcClient(server, keep_frames=False)
    viewers = [
        WebRtcClient(server, video_mime="video/VP8"),
        WebRtcClient(server, keep_frames=False),
        WebRtcClient(server, video_mime="video/H264"),
    ]
    coded_before = metric(server, "lipstream_video_frames_coded_total")
    rendered_before = metric(server, "lipstream_frames_rendered_total")
    await speaker.publish(speech.samples[: 5 * 48_000], "?channel=once")
    try:
        await asyncio.sleep(0.5)
        for viewer in viewers:
            await viewer.view("once")
        await until(lambda: len(viewers[0].received.video_at) >= 2 * FPS, 20.0, "2 s of frames")
        await asyncio.sleep(1.0)
        for viewer in viewers:
            received = viewer.received
            assert len(received.video_at) >= 2 * FPS, "every viewer gets the video"
            assert _completeness(received.video_pts) >= 0.85
        openings = mouth_openings(viewers[0].received.frames)
        assert np.mean(~np.isnan(openings)) >= 0.99, "the shared packets decode to the face"
        answer = viewers[2].pc.remoteDescription.sdp
        assert "H264/90000" in answer and "VP8" not in answer
        h264_openings = mouth_openings(viewers[2].received.frames)
        assert np.mean(~np.isnan(h264_openings)) >= 0.99, "so do the H.264 viewer's frames"
        coded = metric(server, "lipstream_video_frames_coded_total") - coded_before
        rendered = metric(server, "lipstream_frames_rendered_total") - rendered_before
        assert 0.9 * rendered <= coded <= rendered, "one coding per frame, not one per consumer"
    finally:
        for client in [*viewers, speaker]:
            await client.close()
