"""Shared fixtures: speech made in the test (espeak-ng), photos from ../shared, real servers."""

from __future__ import annotations

import subprocess
import sys
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_PHOTOS = REPO_ROOT.parent / "shared" / "photos"
sys.path.insert(0, str(REPO_ROOT))  # for bench.whip_client, bench.mouth, bench.server_process

from bench.server_process import ServerProcess, metric  # noqa: E402  (needs the path above)

__all__ = ["REPO_ROOT", "Speech", "metric"]

SPEECH_RATE_HZ = 48_000
SENTENCES = (
    "Hello there, my name is Lip Stream and I move my mouth when you speak.",
    "Please put the blue box by the window, then open the door.",
)


@dataclass(frozen=True)
class Speech:
    """A test voice: silence, a sentence, silence, a sentence, silence."""

    path: Path  # 48 kHz mono 16-bit WAV
    samples: np.ndarray  # (n,) float32 at 48 kHz
    speech_spans_s: tuple[tuple[float, float], ...]  # where the sentences are


def _espeak(text: str, path: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
        rate = w.getframerate()
    pcm /= 32768.0
    positions = np.arange(0, len(pcm) * SPEECH_RATE_HZ / rate) * rate / SPEECH_RATE_HZ
    return np.interp(positions, np.arange(len(pcm)), pcm).astype(np.float32)


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    """Two espeak-ng sentences separated by 2 s silences (webrtcvad and the mouth must see both)."""
    folder = tmp_path_factory.mktemp("speech")
    gap = np.zeros(2 * SPEECH_RATE_HZ, dtype=np.float32)
    parts, spans, cursor = [gap], [], len(gap)
    for i, text in enumerate(SENTENCES):
        voice = _espeak(text, folder / f"s{i}.wav") * 0.8
        spans.append((cursor / SPEECH_RATE_HZ, (cursor + len(voice)) / SPEECH_RATE_HZ))
        parts += [voice, gap]
        cursor += len(voice) + len(gap)
    samples = np.concatenate(parts)
    path = folder / "speech.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SPEECH_RATE_HZ)
        w.writeframes((samples * 32767).astype(np.int16).tobytes())
    return Speech(path, samples, tuple(spans))


@pytest.fixture(scope="session")
def photos() -> Path:
    """The public-domain test photos beside the checkout (../shared/photos)."""
    if not SHARED_PHOTOS.is_dir():
        pytest.skip(f"{SHARED_PHOTOS} is not present")
    return SHARED_PHOTOS


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Starts real ``lipstream serve`` processes on free loopback ports; returns their base URL."""
    servers: list[ServerProcess] = []

    def start(*args: str) -> str:
        server = ServerProcess(tmp_path_factory.mktemp("server") / "server.log", *args)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
