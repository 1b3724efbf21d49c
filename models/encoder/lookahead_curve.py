"""Accuracy against look-ahead (0, 20, 40, 50 ms), from which the operating point is chosen.

    OMP_NUM_THREADS=1 python -m lipstream.models.encoder.lookahead_curve [--steps 500]

Trains one *smaller* model per look-ahead (GRU 128, conv 96, fewer steps than the shipped model,
same data, seed and schedule), so the curve compares look-aheads, not absolute accuracy. Writes
``lookahead_curve.json`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from . import train
from .model import EncoderConfig
from .paths import CACHE_DIR

LOOKAHEADS_FRAMES = (0, 2, 4, 5)


def main(argv: list[str] | None = None) -> None:
    """Train the curve's models and write their dev metrics."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=500)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    curve = []
    for la in LOOKAHEADS_FRAMES:
        cfg = EncoderConfig(lookahead_frames=la, gru_hidden=128, conv_channels=96)
        res = train.train(cfg, a.steps, 10_000.0, CACHE_DIR / f"encoder_curve_L{la}", 3e-3)
        curve.append({"lookahead_ms": la * 10, "steps": res["steps"], "params": res["params"], "dev": res["dev"]})
        out = {"command": f"python -m lipstream.models.encoder.lookahead_curve --steps {a.steps}", "curve": curve}
        Path(__file__).with_name("lookahead_curve.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
