"""``lipstream dub``: output length per sync mode, what changes in the frame, and the errors.

The footage is a photo panned a pixel a frame (every frame differs, so which input frame an output
frame shows can be told from its pixels); the new audio is the espeak-ng speech fixture.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from lipstream.dub.engine import DubOptions, dub_file
from lipstream.dub.errors import DubInputError, DubNoFaceError
from lipstream.dub.media import output_frames, source_index
from lipstream.server.cli import main

from tests.conftest import SPEECH_RATE_HZ, Speech
from tests.support.dub_media import (
    FPS,
    SIDE_PX,
    decode_video,
    moving_photo,
    write_video,
    write_wav,
)


@dataclass(frozen=True)
class Footage:
    """The input clip, its frames (as made, and as decoded), the rows of its eyes and its lips."""

    video: Path
    frames: list[np.ndarray]
    decoded: list[np.ndarray]  # what the dub reads: the frames after one H.264 encode
    eyes: slice  # rows from the brows to the lower lids: above anything the dub may move
    mouth: tuple[slice, slice]  # rows and columns of the lips


@pytest.fixture(scope="module")
def footage(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Footage:
    """A 2 s clip (50 frames) of the astronaut panning."""
    from lipstream.avatar import detect

    frames = moving_photo(photos / "astronaut.png", 2 * FPS)
    lm = detect.fit_landmarks(frames[0], detect.detect_faces(frames[0])[0])
    brow, lid, upper, lower = (int(lm[i, 1]) for i in (105, 145, 0, 17))
    left, right = int(lm[61, 0]), int(lm[291, 0])
    video = write_video(tmp_path_factory.mktemp("dub") / "in.mp4", frames)
    decoded, _ = decode_video(video)
    mouth = (slice(upper, lower + 4), slice(left, right))
    return Footage(video, frames, decoded, slice(brow - 4, lid + 4), mouth)


def _mad(a: np.ndarray, b: np.ndarray, region: slice | tuple[slice, slice]) -> float:
    return float(np.abs(a[region].astype(int) - b[region]).mean())


def _speech_wav(speech: Speech, folder: Path, seconds: float) -> Path:
    start = int(speech.speech_spans_s[0][0] * SPEECH_RATE_HZ)
    cut = speech.samples[start : start + int(seconds * SPEECH_RATE_HZ)]
    return write_wav(folder / f"speech_{seconds}.wav", cut, SPEECH_RATE_HZ)


def _nearest_source(frame: np.ndarray, sources: list[np.ndarray], rows: slice) -> int:
    return int(np.argmin([_mad(frame, s, rows) for s in sources]))


def test_sync_mode_timelines_are_exact() -> None:
    assert output_frames("cut_off", 50, 1.5, FPS) == 37
    assert output_frames("cut_off", 30, 3.0, FPS) == 30
    assert output_frames("loop", 25, 1.6, FPS) == 40
    assert output_frames("pad", 25, 1.6, FPS) == 40
    assert output_frames("pad", 50, 1.0, FPS) == 50
    assert [source_index("loop", i, 4) for i in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [source_index("pad", i, 3) for i in range(5)] == [0, 1, 2, 2, 2]
    assert source_index("loop", 7, 1) == 0


def test_cut_off_relips_the_mouth_and_keeps_the_rest_of_each_frame(
    footage: Footage, speech: Speech, tmp_path: Path
) -> None:
    video, sources = footage.video, footage.frames
    out = tmp_path / "out.mp4"
    summary = dub_file(video, _speech_wav(speech, tmp_path, 1.5), out)
    frames, audio_s = decode_video(out)
    assert summary.frames == len(frames) == 37  # floor(1.5 s * 25): neither input runs out
    assert summary.faces_found == 37 and summary.frames_without_face == 0
    assert audio_s == pytest.approx(37 / FPS, abs=0.03)
    assert frames[0].shape == sources[0].shape
    read = footage.decoded
    eyes = [_mad(f, s, footage.eyes) for f, s in zip(frames, read, strict=False)]
    mouth = [_mad(f, s, footage.mouth) for f, s in zip(frames, read, strict=False)]
    assert max(eyes) < 3.0, "eyes and brows must stay the frame's own (one re-encode's noise)"
    assert max(mouth) > 3 * max(eyes), "the speech must move the mouth"
    shown = [_nearest_source(f, sources, footage.eyes) for f in frames[::6]]
    assert shown == list(range(0, 37, 6)), "output frame i shows input frame i"


def test_loop_plays_the_video_back_and_forth_and_pad_holds_the_last_frame(
    footage: Footage, speech: Speech, tmp_path: Path
) -> None:
    sources = footage.frames
    short = write_video(tmp_path / "short.mp4", sources[:25])
    wav = _speech_wav(speech, tmp_path, 1.6)
    for mode, expected in (("loop", [0, 12, 24, 12]), ("pad", [0, 12, 24, 24])):
        out = tmp_path / f"{mode}.mp4"
        summary = dub_file(short, wav, out, DubOptions(sync_mode=mode))
        frames, audio_s = decode_video(out)
        assert summary.frames == len(frames) == 40
        assert audio_s == pytest.approx(1.6, abs=0.03)
        shown = [_nearest_source(frames[i], sources[:25], footage.eyes) for i in (0, 12, 24, 36)]
        assert all(abs(a - b) <= 1 for a, b in zip(shown, expected, strict=True)), (mode, shown)


def test_pad_extends_short_audio_with_silence(
    footage: Footage, speech: Speech, tmp_path: Path
) -> None:
    out = tmp_path / "pad.mp4"
    summary = dub_file(footage.video, _speech_wav(speech, tmp_path, 1.0), out, DubOptions("pad"))
    frames, audio_s = decode_video(out)
    assert summary.frames == len(frames) == 50
    assert audio_s == pytest.approx(2.0, abs=0.03)


def test_frames_without_a_face_pass_through_and_are_counted(
    footage: Footage, speech: Speech, tmp_path: Path
) -> None:
    sources = footage.frames
    grey = np.full_like(sources[0], 90)
    frames_in = [grey if 10 <= i < 15 else f for i, f in enumerate(sources[:30])]
    video = write_video(tmp_path / "gap.mp4", frames_in)
    out = tmp_path / "gap_out.mp4"
    summary = dub_file(video, _speech_wav(speech, tmp_path, 1.2), out)
    frames, _ = decode_video(out)
    assert summary.frames == 30 and summary.frames_without_face == 5
    read, _ = decode_video(video)
    grey_out = [_mad(frames[i], read[i], slice(None)) for i in range(10, 15)]
    assert max(grey_out) <= 1.0, grey_out  # one level of YUV rounding at most


def test_face_option_dubs_the_face_nearest_the_point(
    footage: Footage, photos: Path, speech: Speech, tmp_path: Path
) -> None:
    from lipstream.avatar import detect

    other = moving_photo(photos / "obama.jpg", 25, shift_px=0.0)
    pairs = [np.concatenate([a, b], axis=1) for a, b in zip(footage.frames, other, strict=False)]
    video = write_video(tmp_path / "two.mp4", pairs)
    read, _ = decode_video(video)
    out = tmp_path / "two_out.mp4"
    point = (1.5 * SIDE_PX, 0.5 * SIDE_PX)  # the middle of the right-hand photo
    summary = dub_file(video, _speech_wav(speech, tmp_path, 1.0), out, DubOptions(face=point))
    frames, _ = decode_video(out)
    assert summary.faces_found == 25
    lm = detect.fit_landmarks(other[0], detect.detect_faces(other[0])[0])
    rows = slice(int(lm[0, 1]), int(lm[17, 1]) + 4)
    right_mouth = (rows, slice(SIDE_PX + int(lm[61, 0]), SIDE_PX + int(lm[291, 0])))
    left, right = (
        max(_mad(f, p, region) for f, p in zip(frames, read, strict=True))
        for region in (footage.mouth, right_mouth)
    )
    assert left < 5.0, "the face away from the point is left as it was (re-encode noise only)"
    assert right > 3 * left, (left, right)


def test_a_video_without_any_face_is_refused(speech: Speech, tmp_path: Path) -> None:
    video = write_video(tmp_path / "grey.mp4", [np.full((128, 128, 3), 90, np.uint8)] * 10)
    with pytest.raises(DubNoFaceError, match="no face"):
        dub_file(video, _speech_wav(speech, tmp_path, 0.5), tmp_path / "x.mp4")
    assert not list(tmp_path.glob("*x.mp4*")), "a failed dub leaves no file"


def _bad_inputs(tmp: Path, footage: Path, speech_wav: Path) -> dict[str, tuple[Path, Path, str]]:
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    corrupt = tmp / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(20_000))
    bad_audio = tmp / "bad.wav"
    bad_audio.write_bytes(b"RIFF" + np.random.default_rng(1).bytes(5_000))
    grey = write_video(tmp / "grey.mp4", [np.full((128, 128, 3), 90, np.uint8)] * 10)
    return {
        "no video stream": (speech_wav, speech_wav, "no video stream"),
        "corrupt video": (corrupt, speech_wav, "not a media file"),
        "zero-length video": (empty, speech_wav, "empty"),
        "undecodable audio": (footage, bad_audio, "audio"),
        "zero-length audio": (footage, empty, "empty"),
        "no audio stream": (footage, footage, "no audio stream"),
        "no face": (grey, speech_wav, "no face"),
    }


def test_cli_errors_are_one_line_with_a_non_zero_exit(
    footage: Footage, speech: Speech, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    wav = _speech_wav(speech, tmp_path, 0.5)
    for name, (video, audio, words) in _bad_inputs(tmp_path, footage.video, wav).items():
        out = tmp_path / f"{name}.mp4"
        args = ["--video", str(video), "--audio", str(audio), "-o", str(out), "--no-progress"]
        code = main(["dub", *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, name
        assert len(err) == 1 and err[0].startswith("lipstream: "), (name, err)
        assert words in err[0], (name, err)
        assert not out.exists()


def test_cli_prints_a_json_summary_and_no_traceback_on_bad_input(
    footage: Footage, speech: Speech, tmp_path: Path
) -> None:
    wav = _speech_wav(speech, tmp_path, 0.6)
    cli = [sys.executable, "-m", "lipstream.server.cli", "dub", "--audio", str(wav)]
    ok = subprocess.run(
        [*cli, "--video", str(footage.video), "-o", str(tmp_path / "ok.mp4"), "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert {"frames", "faces_found", "seconds", "realtime_factor"} <= set(summary)
    assert summary["frames"] == 15 and summary["faces_found"] == 15
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
    bad = subprocess.run(
        [*cli, "--video", str(corrupt), "-o", str(tmp_path / "bad.mp4")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and bad.stderr.strip().startswith("lipstream: ")


def test_prefetch_hands_on_the_decoders_error_and_stops_when_left_early() -> None:
    import threading

    from lipstream.dub.track_pass import prefetched

    def broken() -> Iterator[int]:
        yield 1
        raise DubInputError("the video is corrupt part-way")

    items = prefetched(broken(), 2)
    assert next(items) == 1
    with pytest.raises(DubInputError, match="part-way"):
        next(items)

    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    for value in prefetched(endless(), 2):
        if value == 3:
            break
    assert closed.is_set(), "leaving the loop closes the producer on its thread"
    assert not [t for t in threading.enumerate() if t.name == "dub-decode"]


def _shrunk(frame: np.ndarray, scale: float) -> np.ndarray:
    """``frame`` scaled by ``scale`` about its centre, on grey."""
    import cv2

    side = frame.shape[0]
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out = np.full_like(frame, 128)
    at = (side - small.shape[0]) // 2
    out[at : at + small.shape[0], at : at + small.shape[1]] = small
    return out


def test_chunked_tracking_follows_one_person_when_another_becomes_the_largest(
    footage: Footage, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks tracked apart each start on the largest face; the merge keeps the first person.

    The astronaut is the largest face for 12 frames, then the other is (as a single tracker
    following the astronaut from frame 0 would not notice).
    """
    from lipstream.dub import track_pass
    from lipstream.dub.media import probe_video

    other = moving_photo(photos / "obama.jpg", 24, shift_px=0.0)
    pairs = [
        np.concatenate([a, _shrunk(b, 0.5)] if i < 12 else [_shrunk(a, 0.85), b], axis=1)
        for i, (a, b) in enumerate(zip(footage.frames, other, strict=False))
    ]
    video = write_video(tmp_path / "swap.mp4", pairs)
    monkeypatch.setattr(track_pass, "MAX_CHUNK_FRAMES", 8)
    tracked = track_pass.track_video(
        video, probe_video(video), pick=None, workers=2, must_keep_frames=False,
        max_duration_s=None,
    )  # fmt: skip
    noses = tracked.points[:, 4, 0]
    assert not np.isnan(noses).any()
    assert (noses < SIDE_PX).all(), "the astronaut (left), the largest at the start, throughout"
    assert tracked.store.complete and len(tracked.store) == 24
    tracked.store.close()
