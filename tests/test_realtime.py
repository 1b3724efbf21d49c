"""The sample clock, the loudness driver, the VAD gate and idle motion: deterministic, so exact."""

from __future__ import annotations

import numpy as np
import pytest
from lipstream.realtime.clock import MediaClock
from lipstream.realtime.idle import blink_at, head_at
from lipstream.realtime.loudness import LoudnessDriver
from lipstream.realtime.pipeline import MotionPipeline

from tests.conftest import Speech

SR = 16_000


def _noise_bursts(seconds: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    audio = (0.2 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
    audio[:SR] *= 0.0  # one silent second first
    audio[2 * SR : 3 * SR] *= 0.0
    return audio


@pytest.mark.parametrize("fps", [25, 30])
def test_clock_tiles_the_audio_exactly_for_hours(fps: int) -> None:
    clock = MediaClock(fps=fps)
    hours = 10 * 3600 * fps
    assert clock.frame_start(hours) == 10 * 3600 * SR  # no drift after ten hours
    starts = [clock.frame_start(n) for n in range(1000)]
    assert all(clock.frame_end(n) == starts[n + 1] for n in range(999))
    assert clock.frames_ready(clock.frame_end(9) + 800, 800) == 10


def test_clock_rejects_silly_fps() -> None:
    with pytest.raises(ValueError, match="fps"):
        MediaClock(fps=0)


@pytest.mark.parametrize("chunk", [1, 160, 317, 640, 5000])
def test_loudness_driver_output_does_not_depend_on_chunking(chunk: int) -> None:
    clock = MediaClock(fps=30)
    audio = _noise_bursts()
    whole = LoudnessDriver(clock).push(audio)
    driver = LoudnessDriver(clock)
    parts = np.concatenate([driver.push(audio[i : i + chunk]) for i in range(0, len(audio), chunk)])
    np.testing.assert_array_equal(whole, parts)
    assert len(whole) == len(audio) * 30 // SR


def test_pipeline_opens_the_mouth_for_speech_and_closes_it_in_silence(speech) -> None:  # noqa: ANN001
    clock = MediaClock(fps=25)
    pipeline = MotionPipeline(clock, LoudnessDriver(clock))
    audio = speech.samples[::3].copy()  # 48 kHz -> 16 kHz (espeak has nothing above 8 kHz)
    poses = []
    for start in range(0, len(audio), 320):
        poses.extend(pipeline.push(audio[start : start + 320]))
    opening = np.array([p.mouth[0] for p in poses])
    speaking = np.array([p.speaking for p in poses])
    first_speech = slice(
        int(speech.speech_spans_s[0][0] * 25) + 3, int(speech.speech_spans_s[0][1] * 25) - 3
    )
    first_gap = slice(
        int(speech.speech_spans_s[0][1] * 25) + 10, int(speech.speech_spans_s[1][0] * 25)
    )
    assert speaking[first_speech].mean() > 0.9 and not speaking[first_gap].any()
    assert opening[first_speech].max() > 0.04 and opening[first_speech].std() > 0.01
    assert np.all(opening[first_gap] == 0.0)
    assert [p.index for p in poses] == list(range(len(poses)))


def test_idle_motion_blinks_every_few_seconds_and_sways_smoothly() -> None:
    times = np.arange(0, 60, 0.04)
    blinks = np.array([blink_at(t) for t in times])
    starts = np.flatnonzero((blinks[1:] > 0) & (blinks[:-1] == 0))
    gaps = np.diff(times[starts])
    assert 10 <= len(starts) <= 25 and gaps.min() > 1.0
    head = np.array([head_at(t) for t in times])
    assert np.abs(np.diff(head, axis=0)).max() < 0.002  # no jumps between frames
    assert np.array_equal(head_at(12.34), head_at(12.34))


def test_a_silent_avatar_repeats_its_picture_for_most_frames() -> None:
    """Most silent frames repeat the last picture, so they need no render.

    The sway moves in steps of at most 0.001 face heights (0.2 px on a 200 px face), held for
    ``HEAD_STEP_S``.
    """
    fps = 25
    poses = MotionPipeline(MediaClock(fps), LoudnessDriver(MediaClock(fps))).push(
        np.zeros(16000 * 20, np.float32)
    )
    repeats = [b.same_picture(a) for a, b in zip(poses, poses[1:], strict=False)]
    assert np.mean(repeats) > 0.6
    head = np.array([p.head for p in poses])
    steps = np.abs(np.diff(head, axis=0))
    assert steps[:, :2].max() < 0.001 and steps[:, 2].max() < 0.0015


def test_a_silent_speaker_costs_no_encoder_or_motion_model_and_moves_the_same(
    speech: Speech,
) -> None:
    """While the VAD hears no speech the learned driver skips its networks; the face is the same.

    The gaps between the sentences go through ``push_quiet`` (no encoder network, no motion
    model). The mouth follows the sentences as a driver that never skips does: after 2 s of
    silence the 1 s warm-up leaves the encoder's memory close to an unbroken run's.
    """
    from lipstream.realtime.encoder import StreamingPhonemeEncoder
    from lipstream.realtime.motion import LearnedDriver

    class CountingEncoder(StreamingPhonemeEncoder):
        quiet = loud = 0

        def push(self, audio: np.ndarray) -> np.ndarray:
            self.loud += 1
            return super().push(audio)

        def push_quiet(self, audio: np.ndarray) -> np.ndarray:
            self.quiet += 1
            return super().push_quiet(audio)

    class Unbroken:  # the same driver without ``push_quiet``: the pipeline never skips
        def __init__(self, driver: LearnedDriver) -> None:
            self.push, self.reset = driver.push, driver.reset
            self.lookahead_samples = driver.lookahead_samples
            self.lips_lag_samples = driver.lips_lag_samples

    audio = speech.samples[::3].copy()  # 48 kHz -> 16 kHz (espeak has nothing above 8 kHz)
    clock = MediaClock(25)
    encoder = CountingEncoder()
    mouths = {}
    for name, driver in (
        ("skipping", LearnedDriver(clock, encoder)),
        ("unbroken", Unbroken(LearnedDriver(clock))),
    ):
        pipeline = MotionPipeline(clock, driver)  # type: ignore[arg-type]
        poses = [p for i in range(0, len(audio), 320) for p in pipeline.push(audio[i : i + 320])]
        mouths[name] = np.array([p.mouth for p in poses])
    spoken_s = sum(end - start for start, end in speech.speech_spans_s)
    silent_s = len(audio) / SR - spoken_s
    assert encoder.quiet > 0.6 * silent_s / 0.04  # most frames of the gaps, as runs per frame
    assert encoder.loud < 1.2 * spoken_s / 0.04 + 30
    skipping, unbroken = mouths["skipping"], mouths["unbroken"]
    assert skipping.shape == unbroken.shape
    for column in range(3):  # open, width, jaw
        assert np.corrcoef(skipping[:, column], unbroken[:, column])[0, 1] > 0.98
