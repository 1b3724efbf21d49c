"""The media loops in-process with fakes, as aiortc's tests/utils.py swaps only what it must.

AudioInbox, SilenceFiller, PcmPlayout, pump_track and the outgoing tracks with slow consumers.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from lipstream.server.media import ingest
from lipstream.server.media.ingest import AudioInbox, SilenceFiller, pcm_frame, pump_track, silence
from lipstream.server.media.playout import PcmPlayout, QueueFull, idle_step_s
from lipstream.server.media.tracks import (
    OPUS_SILENCE,
    VOICE_QUEUE_FRAMES,
    AvatarVideoTrack,
    VoiceTrack,
)
from lipstream.server.tasks import TaskOwner

DEADLINE_S = 5.0


class FakeSession:
    """Records what is fed, as ``AvatarSession.feed`` would receive it."""

    def __init__(self, fail_after: int | None = None, frame_packets: int = 1) -> None:
        self.frame_packets = frame_packets  # input frames that complete a video frame
        self.fed: list[av.AudioFrame] = []
        self.batches: list[list[ingest.Arrived]] = []
        self.tasks = TaskOwner("FakeSession")
        self.closed = asyncio.Event()
        self.more = asyncio.Event()
        self.calls: list[str] = []  # clear / resume, in order
        self._fail_after = fail_after

    def clear(self) -> float:
        self.calls.append("clear")
        return 0.04  # two voice frames held

    def resume(self) -> None:
        self.calls.append("resume")

    async def feed(self, frame: av.AudioFrame) -> None:
        self.fed.append(frame)
        self.more.set()

    async def feed_batch(self, batch: list[ingest.Arrived]) -> None:
        if self._fail_after is not None and len(self.batches) >= self._fail_after:
            raise RuntimeError("worker trip failed")
        self.batches.append(batch)
        self.more.set()

    def completes_frame(self, batch: list[ingest.Arrived]) -> bool:
        return len(batch) >= self.frame_packets

    async def frames(self, n: int) -> None:
        """Waits until ``n`` frames were fed (by ``feed``) or fails at the deadline."""
        async with asyncio.timeout(DEADLINE_S):
            while len(self.fed) < n:
                self.more.clear()
                await self.more.wait()


class FakeTrack:
    """An audio track that yields ``frames`` 20 ms frames, then ends or raises ``error``."""

    kind = "audio"

    def __init__(self, frames: int, error: Exception | None = None) -> None:
        self._left = frames
        self._error = error

    async def recv(self) -> av.AudioFrame:
        await asyncio.sleep(0)
        if self._left == 0:
            raise self._error or MediaStreamError()
        self._left -= 1
        return silence(0.02)


def test_audio_inbox_keeps_only_the_newest_half_second() -> None:
    inbox = AudioInbox()
    for _ in range(40):  # 0.8 s of 20 ms frames
        inbox.put(silence(0.02))
    assert inbox.ready.is_set()
    assert len(inbox.frames) == 25  # 0.5 s
    assert inbox.dropped_s == pytest.approx(0.3)
    assert len(inbox.take()) == 25 and not inbox.ready.is_set()


def test_silence_filler_tops_up_whole_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(ingest.time, "monotonic", lambda: now[0])
    filler = SilenceFiller()
    now[0] += 0.05
    assert filler.due() == pytest.approx(0.04)  # two 20 ms steps; 10 ms carried
    now[0] += 0.01
    assert filler.due() == pytest.approx(0.02)
    filler.heard()
    now[0] += 0.019
    assert filler.due() == 0


async def test_pump_track_returns_when_the_track_ends() -> None:
    session = FakeSession()
    reason = await asyncio.wait_for(pump_track(session, FakeTrack(10)), DEADLINE_S)  # type: ignore[arg-type]
    assert "ended" in reason
    assert sum(len(b) for b in session.batches) == 10


async def test_a_failing_reader_ends_the_feed_with_its_error() -> None:
    session = FakeSession()
    reason = await asyncio.wait_for(
        pump_track(session, FakeTrack(3, RuntimeError("socket gone"))),
        DEADLINE_S,  # type: ignore[arg-type]
    )
    assert "socket gone" in reason  # not "no audio for 6 s"


async def test_a_failing_feed_raises_to_the_caller_and_stops_the_reader() -> None:
    session = FakeSession(fail_after=0)
    with pytest.raises(RuntimeError, match="worker trip"):
        await asyncio.wait_for(pump_track(session, FakeTrack(1000)), DEADLINE_S)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert session.tasks.running == 0


async def test_pcm_playout_feeds_pushed_pcm_then_silence() -> None:
    session = FakeSession()
    sent: list[dict[str, object]] = []
    playout = PcmPlayout(session, 16_000, 30.0, sent.append)  # type: ignore[arg-type]
    speech = (np.arange(320 * 3) % 100 + 1).astype("<i2").tobytes()
    playout.push(speech + b"\x01\x00")  # three frames and one sample carried to the next push
    playout.end()
    task = asyncio.get_running_loop().create_task(playout.run())
    try:
        await session.frames(10)
    finally:
        task.cancel()
    first = [f.to_ndarray().reshape(-1) for f in session.fed[:4]]
    assert [len(f) for f in first] == [320] * 4
    assert first[0].any() and not first[3].any()  # pushed PCM, then silence
    assert sent[:2] == [
        {"type": "playback_started", "segment": 0},
        {"type": "playback_finished", "segment": 0, "position_s": 0.06, "interrupted": False},
    ]
    assert sent[2] == {"type": "queued", "ms": 0}


async def test_pcm_playout_refuses_pcm_past_its_cap() -> None:
    playout = PcmPlayout(FakeSession(), 16_000, 1.0, lambda _m: None)  # type: ignore[arg-type]
    playout.push(bytes(2 * 16_000))  # exactly 1 s
    with pytest.raises(QueueFull, match="cap"):
        playout.push(bytes(640))
    assert playout.queued_s == pytest.approx(1.0)


async def test_pcm_playout_clear_reports_the_position_and_starts_a_new_segment() -> None:
    session = FakeSession()
    sent: list[dict[str, object]] = []
    playout = PcmPlayout(session, 16_000, 30.0, sent.append)  # type: ignore[arg-type]
    playout.push(np.ones(16_000, "<i2").tobytes())  # 1 s
    task = asyncio.get_running_loop().create_task(playout.run())
    try:
        await session.frames(5)
        played = len(session.fed)
        playout.clear()
        assert playout.queued_s == 0 and session.calls == ["clear"]
        finished = [m for m in sent if m["type"] == "playback_finished"]
        assert finished == [
            {
                "type": "playback_finished",
                "segment": 0,
                "position_s": finished[0]["position_s"],
                "interrupted": True,
            }
        ]
        assert finished[0]["position_s"] == round(played * 0.02 - 0.04, 3)  # less what was held
        fed = len(session.fed)
        playout.push(np.ones(640, "<i2").tobytes())
        await session.frames(fed + 3)
    finally:
        task.cancel()
    assert session.calls == ["clear", "resume"]
    assert {"type": "playback_started", "segment": 1} in sent


async def test_voice_subscribers_are_bounded_for_a_slow_consumer() -> None:
    source = VoiceTrack()
    fast, slow = source.subscribe(), source.subscribe()
    for _ in range(VOICE_QUEUE_FRAMES + 50):
        source.publish(silence(0.02))
        await fast.recv()
    assert slow.overflowed == 50 and fast.overflowed == 0
    first = await slow.recv()
    assert first.pts == 50 * 960  # the oldest were dropped, pts continues
    slow.stop()
    assert slow not in source._subscribers  # noqa: SLF001
    with pytest.raises(MediaStreamError):
        await slow.recv()
    source.stop()
    with pytest.raises(MediaStreamError):
        await fast.recv()


async def test_video_track_hands_a_slow_consumer_the_newest_frame() -> None:
    track = AvatarVideoTrack(25)
    frames = [av.VideoFrame(16, 16, "rgb24") for _ in range(3)]
    for index, frame in enumerate(frames):
        track.publish(frame, index)
    assert track.superseded == 2
    assert await track.recv() is frames[-1]
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_pcm_frame_wraps_s16_mono() -> None:
    frame = pcm_frame(np.ones(320, dtype="<i2").tobytes(), 16_000)
    assert (frame.samples, frame.sample_rate, frame.layout.name) == (320, 16_000, "mono")


async def test_pump_track_stops_when_the_session_closes() -> None:
    session = FakeSession()

    class Endless(FakeTrack):
        async def recv(self) -> av.AudioFrame:
            await asyncio.sleep(0.02)
            return silence(0.02)

    pumping = asyncio.get_running_loop().create_task(pump_track(session, Endless(0)))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    session.closed.set()
    assert await asyncio.wait_for(pumping, DEADLINE_S) == "the session closed"


async def test_a_voice_frame_decoded_from_a_client_packet_goes_back_out_as_that_packet() -> None:
    """A client's voice goes back out as the packets it sent; other voice stays frames.

    The receive buffer keeps each payload by RTP timestamp, the reader tags the decoded frame with
    it, and the voice track queues the packet itself on the track's own continuous pts. Untagged
    frames (silence, WebSocket PCM, hushed voice) stay frames for the sender to code.
    """
    from aiortc.codecs.opus import OpusDecoder, OpusEncoder
    from aiortc.rtp import RtpPacket
    from lipstream.server.media import low_latency

    class Received(FakeTrack):
        pass

    track = Received(0)
    buffer = low_latency.ImmediateAudioBuffer()
    low_latency._buffers[track] = buffer  # noqa: SLF001  (decode_audio_on_arrival does this)
    encoder, decoder = OpusEncoder(), OpusDecoder()
    voice = VoiceTrack()
    listener = voice.subscribe()
    sent = []
    for index in range(3):
        tone = (3000 * np.sin(np.arange(960) * 0.05 * (index + 1))).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48_000, 960 * index, Fraction(1, 48_000)
        payload = encoder.encode(frame)[0][0]
        rtp = RtpPacket(payload_type=111, sequence_number=index, timestamp=7000 + 960 * index)
        rtp._data = payload  # noqa: SLF001  (what aiortc's depayloader sets)
        _, jitter_frame = buffer.add(rtp)
        jitter_frame.timestamp -= 7000  # aiortc's receiver maps the stream to start at 0
        (decoded,) = decoder.decode(jitter_frame)
        low_latency.tag_with_opus_packet(track, decoded)
        sent.append(payload)
        voice.publish(decoded)
    voice.publish(silence(0.02))
    out = [await listener.recv() for _ in range(4)]
    assert [bytes(item) for item in out[:3]] == sent
    assert all(isinstance(item, av.Packet) for item in out[:3])
    assert isinstance(out[3], av.AudioFrame)
    assert [item.pts for item in out] == [0, 960, 1920, 2880]
    assert buffer.payload_at(0) is None  # each payload is handed out once
    voice.stop()


def test_front_end_gives_every_input_sample_at_once() -> None:
    """A 20 ms packet at 48 kHz gives its 320 samples at 16 kHz from the first packet on.

    So a frame whose audio has arrived need not wait for the next packet (libswresample holds
    back 16 of them; the front end puts that much silence first).
    """
    front_end = ingest.AudioFrontEnd()
    rng = np.random.default_rng(0)
    t = np.arange(960 * 10) / 48_000
    tone = 8000 * np.sin(2 * np.pi * 440 * t) + 500 * rng.standard_normal(len(t))
    got = []
    for start in range(0, len(t), 960):
        stereo = np.repeat(tone[start : start + 960], 2).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = 48_000
        converted = front_end.convert(frame)
        assert len(converted.pipeline) == 320
        assert converted.voice == [frame]
        got.append(converted.pipeline)
    samples = np.concatenate(got)
    # The sound itself runs the held-back millisecond late: the input, delayed by 16 samples.
    expected = tone[::3]
    fits = {lag: np.corrcoef(samples[lag + 100 : lag + 3000], expected[100:3000])[0, 1]
            for lag in range(0, 33)}  # fmt: skip
    assert max(fits, key=fits.__getitem__) == 16 and fits[16] > 0.99


class _CountingResampler:
    """An ``av.AudioResampler`` that counts the frames it is given."""

    def __init__(self, inner: av.AudioResampler) -> None:
        self.inner, self.calls = inner, 0

    def resample(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        self.calls += 1
        return self.inner.resample(frame)


def _front_end_outputs(frames: list[av.AudioFrame]) -> tuple[np.ndarray, np.ndarray, int]:
    """All pipeline samples, all voice samples and resampler calls of a new front end."""
    front_end = ingest.AudioFrontEnd()
    counted = [_CountingResampler(front_end._to_pipeline), _CountingResampler(front_end._to_voice)]  # noqa: SLF001
    front_end._to_pipeline, front_end._to_voice = counted  # type: ignore[assignment]  # noqa: SLF001
    pipeline, voice = [], []
    for frame in frames:
        converted = front_end.convert(frame)
        pipeline.append(converted.pipeline)
        voice += [v.to_ndarray().reshape(-1) for v in converted.voice]
    return np.concatenate(pipeline), np.concatenate(voice), sum(c.calls for c in counted)


@pytest.mark.parametrize(("rate", "layout"), [(48_000, "stereo"), (16_000, "mono")])
def test_front_end_skips_the_resamplers_for_silence_and_gives_what_they_would(
    monkeypatch: pytest.MonkeyPatch, rate: int, layout: str
) -> None:
    """Silence after silence skips libswresample, sample for sample the same output.

    Speech, one silent frame, speech, a second of silence, speech: a 20 ms client packet (48 kHz
    stereo) and WebSocket PCM (16 kHz mono).
    """
    rng = np.random.default_rng(1)
    step, channels = rate // 50, 2 if layout == "stereo" else 1

    def frame(silent: bool) -> av.AudioFrame:
        values = np.zeros(step) if silent else 6000 * rng.standard_normal(step)
        data = np.repeat(values, channels).astype(np.int16)[None]
        made = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
        made.sample_rate = rate
        return made

    pattern = [False] * 5 + [True] + [False] * 5 + [True] * 50 + [False] * 5
    frames = [frame(silent) for silent in pattern]
    skipping = _front_end_outputs(frames)
    monkeypatch.setattr(ingest, "FLUSHED_AFTER_S", float("inf"))
    resampling = _front_end_outputs(frames)
    assert np.array_equal(skipping[0], resampling[0])
    assert np.array_equal(skipping[1], resampling[1])
    per_frame = 2 if rate == 16_000 else 1  # 48 kHz stereo is the voice format already
    assert resampling[2] == per_frame * len(frames)
    assert skipping[2] == resampling[2] - per_frame * 49  # the silence's first frame flushes


def test_voice_track_sends_steady_silence_as_the_opus_silence_packet() -> None:
    """From the third silent 20 ms frame of a run, the voice goes out as ``OPUS_SILENCE``.

    pts stay continuous, and sound ends the run.
    """
    voice = VoiceTrack()

    def sound() -> av.AudioFrame:
        data = np.full((1, 1920), 900, np.int16)
        made = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        made.sample_rate = 48_000
        return made

    for frame in [sound()] + [silence(0.02) for _ in range(5)] + [sound(), silence(0.02)]:
        voice.publish(frame)
    sent = [voice._queue.get_nowait() for _ in range(8)]  # noqa: SLF001
    kinds = ["packet" if isinstance(item, av.Packet) else "frame" for item in sent]
    assert kinds == ["frame"] * 3 + ["packet"] * 3 + ["frame"] * 2
    assert all(bytes(item) == OPUS_SILENCE for item in sent[3:6])
    assert [item.pts for item in sent] == [960 * i for i in range(8)]


def test_idle_faces_are_fed_a_video_frame_of_silence_at_a_time() -> None:
    """Whole 20 ms steps within one frame: never two frames a feed, so none is skipped."""
    assert [idle_step_s(fps) for fps in (25, 30, 50, 15)] == pytest.approx([0.04, 0.02, 0.02, 0.06])


async def test_pcm_playout_feeds_steps_of_its_own_length() -> None:
    session = FakeSession()
    playout = PcmPlayout(session, 16_000, 0.0, lambda _m: None, step_s=0.04)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(playout.run())
    try:
        await session.frames(3)
    finally:
        task.cancel()
    assert [f.samples for f in session.fed[:3]] == [640] * 3


def test_front_end_hands_on_silent_client_frames_themselves() -> None:
    """A silent frame decoded from a client's packet stays that frame (and its packet tag)."""
    front_end = ingest.AudioFrontEnd()
    frames = [silence(0.02) for _ in range(3)]
    assert [front_end.convert(frame).voice for frame in frames] == [[frame] for frame in frames]


class QueuedTrack:
    """An audio track that yields the 20 ms frames a test puts in, and ends on ``None``."""

    kind = "audio"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[av.AudioFrame | None] = asyncio.Queue()

    async def recv(self) -> av.AudioFrame:
        frame = await self.queue.get()
        if frame is None:
            raise MediaStreamError()
        return frame


async def test_a_packet_that_completes_no_frame_waits_for_the_next() -> None:
    """Two 20 ms packets make a 40 ms frame: one worker trip per frame, not per packet."""
    session, track = FakeSession(frame_packets=2), QueuedTrack()
    pump = asyncio.ensure_future(pump_track(session, track))  # type: ignore[arg-type]
    for _ in range(4):
        await track.queue.put(silence(0.02))
        await asyncio.sleep(0.01)  # a packet at a time, as they arrive
    await track.queue.put(None)
    await asyncio.wait_for(pump, DEADLINE_S)
    sizes = [len(batch) for batch in session.batches]
    # [2, 2] as they come; a slow loop may bunch packets, but none goes alone until the end.
    assert sum(sizes) == 4 and len(sizes) <= 2 and sizes[0] >= 2, sizes


async def test_a_held_packet_is_fed_when_the_client_stalls_or_leaves() -> None:
    """The held packet goes through before the silence that tops up a stall, and at the end."""
    session, track = FakeSession(frame_packets=2), QueuedTrack()
    pump = asyncio.ensure_future(pump_track(session, track))  # type: ignore[arg-type]
    await track.queue.put(silence(0.02))
    await session.frames(1)  # the stall's silence (by ``feed``), after the held packet's batch
    assert [len(batch) for batch in session.batches] == [1]
    await track.queue.put(silence(0.02))
    await asyncio.sleep(0.01)
    await track.queue.put(None)
    assert await asyncio.wait_for(pump, DEADLINE_S) == "the client's audio track ended"
    assert [len(batch) for batch in session.batches] == [1, 1]
