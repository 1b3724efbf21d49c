"""The command line as users call it: phonemes, render and avatar build, in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import Speech

CLI = [sys.executable, "-m", "lipstream.server.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def test_phonemes_json_has_the_documented_shape(speech: Speech) -> None:
    result = _run("phonemes", str(speech.path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert 0 < report["lookahead_ms"] <= 50
    segments = report["segments"]
    assert segments and {"phone", "start", "end"} <= set(segments[0])
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:], strict=False))
    spoken = [s for s in segments if s["phone"] != "SIL"]
    assert len(spoken) > 10, "two sentences of speech must give phones"


def test_render_writes_an_mp4_with_video_and_audio_in_sync(
    speech: Speech, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    result = _run(
        "render", "--avatar", str(photos / "astronaut.png"), "--audio", str(speech.path),
        "-o", str(out), "--driver", "loudness",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.width >= 512 and video.height >= 512
        frames = sum(1 for _ in container.decode(video=0))
    expected = len(speech.samples) / 48_000 * 25
    assert abs(frames - expected) <= 1
    assert audio.duration is not None and float(audio.duration * audio.time_base) == pytest.approx(
        len(speech.samples) / 48_000, abs=0.1
    )


def test_avatar_build_reports_an_id_and_refuses_a_photo_without_a_face(
    photos: Path, tmp_path: Path
) -> None:
    result = _run("avatar", "build", str(photos / "obama.jpg"), "-o", str(tmp_path / "obama"))
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout.strip().splitlines()[-1])["id"]) >= 16
    blank = tmp_path / "blank.png"
    av.VideoFrame.from_ndarray(
        np.full((300, 300, 3), 128, np.uint8), format="rgb24"
    ).to_image().save(blank)
    refused = _run("avatar", "build", str(blank))
    assert refused.returncode == 2
    assert "face" in refused.stderr.lower()


def _serve_args(*args: str) -> object:
    from lipstream.server.cli import build_parser

    return build_parser().parse_args(["serve", *args])


def test_serve_binds_loopback_by_default_and_refuses_an_open_port_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lipstream.server.cli import TOKEN_ENV, serve_options, start_urls

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert serve_options(_serve_args()).host == "127.0.0.1"
    with pytest.raises(ValueError, match="without a token"):
        serve_options(_serve_args("--host", "0.0.0.0"))
    assert serve_options(_serve_args("--host", "0.0.0.0", "--no-auth")).token is None
    assert serve_options(_serve_args("--host", "0.0.0.0", "--token", "s3")).token == "s3"
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    options = serve_options(_serve_args("--host", "0.0.0.0", "--viewer-token", "v"))
    assert (options.token, options.viewer_token) == ("from-env", "v")
    line = start_urls(options)
    assert "/?token=from-env" in line and "/viewer?channel=NAME&token=v" in line


def test_serve_refuses_a_public_host_without_a_token_in_a_subprocess() -> None:
    env_free = {k: v for k, v in __import__("os").environ.items() if k != "LIPSTREAM_TOKEN"}
    result = subprocess.run(
        [*CLI, "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True, text=True, timeout=60, env=env_free,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--token" in result.stderr


def test_render_does_not_import_the_web_stack() -> None:
    code = (
        "import sys, lipstream.server.offline; "
        "print(sorted({'aiohttp', 'aiortc'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
