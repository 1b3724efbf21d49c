"""The motion stage: the shipped model's contract, the driver's framing and chunking, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from lipstream.models.motion.dataset import (
    SILENCE_DB,
    hop_levels_db,
    shape_targets,
    sil_row,
    windows,
)
from lipstream.models.motion.landmarks import RAW_SHAPE_FIELDS, mouth_params_raw
from lipstream.models.motion.metrics import lip_sync
from lipstream.models.motion.posteriors import envelope_lag_samples
from lipstream.models.motion.scripted import HOP_SAMPLES as HOP
from lipstream.models.motion.scripted import ScriptedEncoder
from lipstream.realtime.clock import MediaClock
from lipstream.realtime.motion import (
    LIVE_VOICE_LEAD_MS,
    MAX_LOOKAHEAD_MS,
    MOTION_ONNX,
    LearnedDriver,
    MotionContractError,
    MotionModel,
)
from lipstream.realtime.phonemes import PHONE_TO_INDEX, PHONES
from lipstream.realtime.pipeline import MotionPipeline
from lipstream.realtime.pose import MOUTH_PARAMS, N_MOUTH_PARAMS


def phone_track(phones: list[tuple[str, int]]) -> np.ndarray:
    """One-hot ``(frames, 40)`` posteriors from (phone, number of 10 ms frames) pairs."""
    labels = [PHONE_TO_INDEX[p] for p, n in phones for _ in range(n)]
    return np.eye(len(PHONES), dtype=np.float32)[labels]


@pytest.fixture(scope="module")
def motion() -> MotionModel:
    return MotionModel()


def test_shipped_model_contract(motion: MotionModel) -> None:
    assert MOTION_ONNX.exists()
    assert motion.contract.phones == PHONES
    assert motion.contract.hop_samples == HOP
    # The window may end before the frame does (the frame depicts its first instant) but not
    # before the frame starts.
    frame_samples = MediaClock(fps=25).frame_end(0)
    assert -frame_samples <= motion.contract.lookahead_samples <= MAX_LOOKAHEAD_MS * 16


def test_bad_window_shape_is_rejected(motion: MotionModel) -> None:
    with pytest.raises(ValueError, match="motion windows"):
        motion(np.zeros((1, 3, len(PHONES)), np.float32), np.zeros((1, 3), np.float32))
    w = motion.contract.window_frames
    with pytest.raises(ValueError, match="levels"):
        motion(np.zeros((1, w, len(PHONES)), np.float32), np.zeros((1, w + 1), np.float32))


def test_open_vowel_opens_and_bilabial_closes(motion: MotionModel) -> None:
    w = motion.contract.window_frames
    sil = phone_track([("SIL", w)])
    aa = phone_track([("SIL", w // 2), ("AA", w - w // 2)])
    mm = phone_track([("AA", w // 2), ("M", w - w // 2)])
    speech = np.full((3, w), -20.0, np.float32)
    speech[0] = SILENCE_DB
    out = motion(np.stack([sil, aa, mm]), speech)
    assert out.shape == (3, N_MOUTH_PARAMS)
    assert out[0, 0] < 0.02  # silence: lips (nearly) together, in face heights
    assert out[1, 0] > out[0, 0] + 0.02  # /aa/ opens the mouth
    assert out[2, 0] < out[1, 0]  # closing into /m/


def test_shape_parameters_follow_the_phone(motion: MotionModel) -> None:
    """/uw/ rounds, /iy/ spreads, /m/ presses, /f/ tucks, open vowels drop the jaw (held 160 ms)."""
    w = motion.contract.window_frames
    phones = ("UW", "IY", "M", "F", "AY", "N", "AA", "EH", "B", "P", "SIL")
    held = {p: phone_track([("SIL", w - 16), (p, 16)]) for p in phones}
    speech = np.full((len(held), w), -20.0, np.float32)
    out = dict(zip(held, motion(np.stack(list(held.values())), speech), strict=True))
    col = {name: i for i, name in enumerate(MOUTH_PARAMS)}
    assert out["UW"][col["width"]] < out["IY"][col["width"]] - 0.01
    assert out["UW"][col["protrude"]] > out["IY"][col["protrude"]]
    assert out["M"][col["press"]] > 0.5 > out["N"][col["press"]]
    assert out["F"][col["tuck"]] > 0.5 > out["N"][col["tuck"]]
    # Open vowels against the lip-closing consonants, as class means: on these idealised one-hot
    # tracks both the previous ensemble and the one retrained on the ft249 encoder drop the jaw
    # ~0.02 face heights for /m b p/ too (s1's jaw anticipates the next vowel while the lips close),
    # so a single pair is fragile (/ay/ - /m/: 0.0057 before, 0.0017 now). Class-mean gaps: 0.0058
    # and 0.0054 face heights; at rest the jaw stays shut (0.001-0.0015).
    jaw = {p: float(out[p][col["jaw"]]) for p in phones}
    open_vowels = np.mean([jaw[p] for p in ("AA", "AY", "EH")])
    bilabials = np.mean([jaw[p] for p in ("M", "B", "P")])
    assert open_vowels > bilabials + 0.004
    assert open_vowels > jaw["SIL"] + 0.015 and open_vowels > jaw["N"] + 0.015


def test_shape_targets_from_geometry() -> None:
    """Rest subtracted; eye-distance lengths converted to rest face heights."""
    raw = np.zeros((3, len(RAW_SHAPE_FIELDS)), np.float32)
    f = {name: i for i, name in enumerate(RAW_SHAPE_FIELDS)}
    raw[:, f["face"]] = 2.0  # face height = 2 eye distances
    raw[:, f["width"]] = [0.4, 0.4, 0.35]
    raw[:, f["jaw"]] = [1.0, 1.0, 1.1]
    raw[:, f["upper_red"]] = [0.1, 0.1, 0.12]
    raw[:, f["lower_red"]] = [0.15, 0.15, 0.17]
    out = shape_targets(raw, np.array([True, True, False]))
    col = {name: i for i, name in enumerate(MOUTH_PARAMS)}
    np.testing.assert_allclose(out[2, col["width"]], -0.05, atol=1e-6)
    np.testing.assert_allclose(out[2, col["jaw"]], 0.05, atol=1e-6)
    np.testing.assert_allclose(out[2, col["protrude"]], 0.02, atol=1e-6)
    np.testing.assert_allclose(out[:2], 0.0, atol=1e-6)


def test_driver_matches_training_windows_and_is_chunk_invariant(motion: MotionModel) -> None:
    rng = np.random.default_rng(0)
    posteriors = rng.dirichlet(np.full(len(PHONES), 0.3), size=400).astype(np.float32)
    clock = MediaClock(fps=25)
    driver = LearnedDriver(clock, ScriptedEncoder(posteriors, lookahead_ms=50), motion)
    audio = (0.1 * rng.standard_normal((len(posteriors) - 4) * HOP)).astype(np.float32)
    audio *= np.repeat(rng.uniform(0, 1, len(audio) // HOP), HOP).astype(np.float32)
    whole = driver.push(audio)
    assert len(whole) == clock.frames_ready(len(audio), driver.lookahead_samples)
    # The runtime sees exactly the windows (posteriors and levels) the model was trained on.
    w, la = motion.contract.window_frames, motion.contract.lookahead_samples
    levels = hop_levels_db(audio)[:, None]
    expected = motion(
        windows(posteriors, len(whole), w, la, sil_row()),
        windows(levels, len(whole), w, la, np.array([SILENCE_DB]))[..., 0],
    )
    np.testing.assert_allclose(whole, expected, atol=1e-6)
    driver.reset()
    chunks, start = [], 0
    while start < len(audio):
        size = int(rng.integers(1, 1500))
        chunks.append(driver.push(audio[start : start + size]))
        start += size
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_encoder_runs_once_per_video_frame_not_per_packet(motion: MotionModel) -> None:
    """Audio waits until the next frame can be made: 20 ms packets, one encoder run per frame."""
    rng = np.random.default_rng(2)
    posteriors = rng.dirichlet(np.full(len(PHONES), 0.3), size=400).astype(np.float32)
    runs = []

    class CountingEncoder(ScriptedEncoder):
        def push(self, audio: np.ndarray) -> np.ndarray:
            runs.append(len(audio))
            return super().push(audio)

    clock = MediaClock(fps=25)
    driver = LearnedDriver(clock, CountingEncoder(posteriors, lookahead_ms=50), motion)
    audio = (0.1 * rng.standard_normal(300 * HOP)).astype(np.float32)
    packet = 2 * HOP
    rows = [driver.push(audio[i : i + packet]) for i in range(0, len(audio), packet)]
    frames = sum(len(r) for r in rows)
    assert frames == clock.frames_ready(len(audio), driver.lookahead_samples)
    assert len(runs) == sum(1 for r in rows if len(r)) <= frames
    assert len(runs) <= len(rows) // 2 + 1


def test_live_driver_makes_each_frame_with_the_packet_that_ends_it(motion: MotionModel) -> None:
    """Live, the 20 ms packet that completes a frame's audio completes the frame.

    With 10 ms of look-ahead past the frame's end it waited for the next packet.
    """
    posteriors = np.full((200, len(PHONES)), 1.0 / len(PHONES), np.float32)
    clock = MediaClock(fps=25)
    encoder = ScriptedEncoder(posteriors, lookahead_ms=50)
    driver = LearnedDriver(clock, encoder, motion, voice_lead_ms=LIVE_VOICE_LEAD_MS)
    assert driver.lookahead_samples == 0
    packet = 2 * HOP
    made = [len(driver.push(np.zeros(packet, np.float32))) for _ in range(20)]
    assert made == [0, 1] * 10  # packet 2k + 1 ends frame k


def test_pipeline_knows_beforehand_which_packet_completes_a_frame(motion: MotionModel) -> None:
    """``completes_frame`` (the feeder's test for holding a packet) agrees with ``push``."""
    posteriors = np.full((200, len(PHONES)), 1.0 / len(PHONES), np.float32)
    clock = MediaClock(fps=25)
    encoder = ScriptedEncoder(posteriors, lookahead_ms=50)
    pipeline = MotionPipeline(clock, LearnedDriver(clock, encoder, motion, LIVE_VOICE_LEAD_MS))
    for size in [2 * HOP] * 10 + [HOP] * 8 + [3 * HOP] * 6:  # 20, 10 and 30 ms packets
        expected = pipeline.completes_frame(size)
        assert expected == bool(pipeline.push(np.zeros(size, np.float32)))


def test_lookahead_over_budget_is_rejected(motion: MotionModel) -> None:
    encoder = ScriptedEncoder(np.zeros((1, len(PHONES)), np.float32), lookahead_ms=1000)
    with pytest.raises(MotionContractError, match="budget"):
        LearnedDriver(MediaClock(), encoder, motion)


def test_learned_driver_with_shipped_encoder() -> None:
    pytest.importorskip("lipstream.realtime.encoder")
    clock = MediaClock(fps=25)
    driver = LearnedDriver(clock)
    assert driver.lookahead_samples <= MAX_LOOKAHEAD_MS * clock.sample_rate_hz / 1000
    t = np.arange(16_000 * 2) / 16_000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    whole = driver.push(audio)
    assert whole.shape == (clock.frames_ready(len(audio), driver.lookahead_samples), N_MOUTH_PARAMS)
    assert np.isfinite(whole).all() and (whole[:, 0] >= 0).all()
    driver.reset()
    chunked = np.concatenate([driver.push(audio[i : i + 320]) for i in range(0, len(audio), 320)])
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_mouth_params_raw_geometry() -> None:
    points = np.zeros((478, 2), np.float32)
    points[10], points[152] = (0, 0), (0, 200)  # face height 200 px
    points[13], points[14] = (50, 120), (50, 140)  # 20 px gap
    points[61], points[291] = (20, 130), (80, 130)  # 60 px wide
    np.testing.assert_allclose(mouth_params_raw(points), [0.1, 0.3], rtol=1e-6)


def test_lip_sync_finds_the_lag() -> None:
    rng = np.random.default_rng(1)
    real = np.convolve(rng.standard_normal(200), np.ones(5) / 5, mode="same")
    late = np.roll(real, 2)  # the driven mouth two frames (80 ms at 25 fps) late
    sync = lip_sync(late, real, np.ones(200, bool), fps=25)
    assert sync.lag_ms == pytest.approx(80.0)
    assert sync.best_r > 0.95 > sync.r


def test_posteriors_are_cached_per_encoder(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A new ``encoder.onnx`` gets its own posteriors folder; a missing one fails, not skips."""
    train = pytest.importorskip("lipstream.models.motion.train")  # torch: ``train`` extra
    from lipstream.models.motion import dataset

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"one encoder")
    b.write_bytes(b"another encoder")
    assert dataset.encoder_key(a) != dataset.encoder_key(b) and len(dataset.encoder_key(a)) == 8
    assert dataset.POSTERIOR_DIR.name == f"grid_posteriors_{dataset.encoder_key()}"
    monkeypatch.setattr(train, "POSTERIOR_DIR", tmp_path / "grid_posteriors_none")
    clip = dataset.Clip("bbaf4p", np.zeros((3, N_MOUTH_PARAMS), np.float32), np.ones(3, bool),
                        np.zeros(3 * 640, np.float32))  # fmt: skip
    with pytest.raises(FileNotFoundError):
        train.sequence_for(clip, "orig")


@pytest.mark.parametrize("lag_ms", [-13, 0, 7, 16])
def test_envelope_lag_finds_a_known_time_shift(lag_ms: int) -> None:
    """``pitch_shift`` rolls sox's time shift back by this lag, so it must find a shift to 1 ms."""
    rng = np.random.default_rng(lag_ms + 100)
    n = 2 * 16_000
    loudness = np.repeat(rng.uniform(0.0, 1.0, n // 800) ** 3, 800)  # 50 ms "syllables"
    audio = (rng.standard_normal(n) * loudness).astype(np.float32)
    moved = np.roll(audio, lag_ms * 16)
    assert envelope_lag_samples(moved, audio) == lag_ms * 16
