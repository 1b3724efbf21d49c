"""The Pipecat service in a real Pipecat pipeline, in its own virtualenv, against a real server.

The virtualenv holds only ``pipecat-ai`` (from PyPI), ``aiohttp`` and ``aiortc``: the service must
install in an agent's environment without lipstream (whose mediapipe pins protobuf < 5, while
pipecat needs >= 5.29). It is made once under ~/.cache/lipstream/ and reused; the test skips only
if it cannot be made (no route to PyPI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, Speech

PIPECAT = "pipecat-ai==1.14.0"
VENV = Path.home() / ".cache" / "lipstream" / "pipecat-venv-1.14.0"
INTEGRATION = REPO_ROOT / "integrations" / "pipecat"
INSTALL_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def pipecat_python() -> Path:
    python = VENV / "bin" / "python"
    ready = VENV / ".ready"
    if not ready.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", PIPECAT, "aiohttp", "aiortc"],
                check=True,
                timeout=INSTALL_TIMEOUT_S,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            pytest.skip(f"the pipecat virtualenv could not be made: {exc}")
        ready.touch()
    return python


@pytest.fixture(scope="module")
def server(start_server) -> str:  # noqa: ANN001 - pytest fixture
    return start_server("--driver", "loudness", "--workers", "1")


def test_the_pipecat_environment_has_no_lipstream(pipecat_python: Path) -> None:
    probe = "import importlib.util as u; print(u.find_spec('lipstream') is None)"
    out = subprocess.run([str(pipecat_python), "-c", probe], capture_output=True, text=True)
    assert out.stdout.strip() == "True"


def test_a_pipecat_pipeline_gets_frames_voice_and_interrupts(
    pipecat_python: Path, server: str, speech: Speech, tmp_path: Path
) -> None:
    start, end = speech.speech_spans_s[0]
    voice = speech.samples[int(start * 48_000) : int(end * 48_000) : 3]  # 16 kHz
    wav = tmp_path / "tts.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((voice * 32767).astype("<i2").tobytes())
    env = {**os.environ, "PYTHONPATH": str(INTEGRATION)}
    run = subprocess.run(
        [str(pipecat_python), str(INTEGRATION / "check_pipeline.py"), server, str(wav), "pc"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["images"] > 50 and result["image_size"][0] >= 256
    assert result["voice_frames"] > 25 and result["voice_rate"] == 48_000
    assert result["interruptions_passed_on"] == 1
    kinds = [(m["type"], m.get("interrupted")) for m in result["playback"]]
    assert kinds[:2] == [("playback_started", None), ("playback_finished", True)], kinds
    position = result["playback"][1]["position_s"]
    assert 1.0 < position < len(voice) / 16_000 - 0.3  # cut part-way, where it was
    assert np.isfinite(position)
