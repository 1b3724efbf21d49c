"""Dev metrics of a motion checkpoint, or of the mean of several (the ensemble ``export`` writes).

    OMP_NUM_THREADS=1 python -m lipstream.models.motion.evaluate A.pt [B.pt ...] [--source orig]

Per-clip Pearson r of every mouth parameter on the 45 GRID s1 dev clips, as ``train.py`` logs it,
and ``open_shut_r``: the opening as the generator draws it, shut where ``press`` or ``tuck`` is
confident (``SHUT_FROM``..``SHUT_FULL`` in ``models/generator/model.py``, or ``--shut A,B``), and
``<param>_std_ratio``: how much of the real parameter's spread the prediction keeps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..generator.model import SHUT_FROM, SHUT_FULL
from .dataset import ALIGN_DIR, clip_ids, load_clip, split_ids
from .model import load_members
from .train import Examples, build_examples, evaluate

PRESS, TUCK = 4, 5  # MOUTH_PARAMS columns


def open_shut_r(pred: np.ndarray, ex: Examples, shut_from: float, shut_full: float) -> float:
    """Mean per-clip r of the drawn opening (shut by a confident press/tuck) against the real."""
    gesture = np.maximum(pred[:, PRESS], pred[:, TUCK])
    shut = np.clip((gesture - shut_from) / (shut_full - shut_from), 0.0, 1.0)
    drawn = np.clip(pred[:, 0], 0.0, None) * (1.0 - shut)
    real, valid = ex.y.numpy()[:, 0], ex.valid.numpy()
    rs = []
    for ci in np.unique(ex.clip):
        m = (ex.clip == ci) & valid
        rs.append(np.corrcoef(drawn[m], real[m])[0, 1])
    return round(float(np.mean(rs)), 4)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--source", default="orig", help="input variant (orig, up250, onehot)")
    parser.add_argument("--shut", default=f"{SHUT_FROM},{SHUT_FULL}", help="press/tuck shut range")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_members(args.checkpoints)
    _, dev_ids = split_ids(clip_ids())
    dev_ids = [c for c in dev_ids if (ALIGN_DIR / f"{c}.json").exists()]
    clips = [load_clip(c) for c in dev_ids]
    examples = build_examples(clips, [args.source], model.config)
    metrics = evaluate(model, examples, clips)
    with torch.no_grad():
        pred = model(examples.x, examples.level).numpy()
    shut_from, shut_full = (float(v) for v in args.shut.split(","))
    valid = examples.valid.numpy()
    real = examples.y.numpy()
    for k, name in enumerate(("open", "width", "jaw", "protrude")):  # regression to the mean shows
        metrics[f"{name}_std_ratio"] = round(float(pred[valid, k].std() / real[valid, k].std()), 3)
    drawn_r = open_shut_r(pred, examples, shut_from, shut_full)
    metrics[f"open_shut_r ({shut_from}-{shut_full})"] = drawn_r
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
