"""Realtime cost of the streaming phoneme encoder on one core, per 10 ms of audio.

    OMP_NUM_THREADS=1 python bench/encoder_cost.py [--seconds 20] [--repeats 5] [--model M --out X]

Feeds audio in live-sized chunks through ``StreamingPhonemeEncoder`` (features +
ONNX, one intra-op thread) and reports the minimum over repeats of total time / number of 10 ms
frames, split into feature and model time (features include the Sphinx cepstra when the model reads
them). Writes ``bench/results/encoder_cost.json`` unless ``--out`` says otherwise. The chunks:
10 and 20 ms (a caller pushing every Opus packet), and 40 ms, one video frame at 25 fps, which is
what the live learned driver gives the encoder (``realtime/motion.py`` ``LearnedDriver.push``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from lipstream.realtime.encoder import StreamingPhonemeEncoder
from lipstream.realtime.features import FeatureStream
from lipstream.realtime.sphinx_mfcc import SphinxFeatureStream

RESULTS = Path(__file__).with_name("results") / "encoder_cost.json"
SR = 16_000


def _time_stream(push, audio: np.ndarray, chunk: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    for i in range(0, audio.size, chunk):
        push(audio[i : i + chunk])
    return time.perf_counter() - t0


def _feature_push(enc: StreamingPhonemeEncoder):  # type: ignore[no-untyped-def]
    """The model's feature front end alone (log-mels, plus Sphinx cepstra if it reads them)."""
    mel = FeatureStream()
    sphinx = SphinxFeatureStream() if enc.contract.sphinx is not None else None

    def push(audio: np.ndarray) -> None:
        mel.push(audio)
        if sphinx is not None:
            sphinx.push(audio)

    return push


CHUNKS_MS = (10, 20, 40)


def measure(seconds: float, repeats: int, model: Path | None = None) -> dict[str, object]:
    """Per-10 ms costs (ms) for 10, 20 and 40 ms chunks."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
    frames = audio.size // 160
    enc = StreamingPhonemeEncoder(model)
    out: dict[str, object] = {}
    for chunk_ms in CHUNKS_MS:
        chunk = chunk_ms * SR // 1000
        total, feat = [], []
        for _ in range(repeats):
            enc.reset()
            total.append(_time_stream(enc.push, audio, chunk))
            feat.append(_time_stream(_feature_push(enc), audio, chunk))
        out[f"chunk_{chunk_ms}ms"] = {
            "ms_per_10ms_audio": 1000 * min(total) / frames,
            "features_ms_per_10ms_audio": 1000 * min(feat) / frames,
            "realtime_factor": min(total) / seconds,
        }
    return out


def main() -> None:
    """CLI entry: measure and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--model", type=Path, default=None, help="encoder ONNX (default: shipped)")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args()
    result = {
        "command": "OMP_NUM_THREADS=1 python bench/encoder_cost.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_avg_1_5_15": os.getloadavg(),
            "note": "shared 2-core VM, other jobs running; min of repeats",
        },  # fmt: skip
        "budget_ms_per_10ms_audio": 0.5,
        "model": str(a.model or "shipped"),
        "results": measure(a.seconds, a.repeats, a.model),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
