"""What do the mouth parameters capture? PCA of the normalised GRID lip/jaw landmarks.

    python -m lipstream.models.motion.pca

Prints the variance explained by the first principal components of the pose-normalised lip/jaw shape
(``landmarks.normalise_lips``), how strongly each correlates with every geometric mouth parameter
(``realtime.pose.MOUTH_PARAMS`` less the phone-labelled ``press``/``tuck``), and the share of the
top components' variance that is linear in (open, width) alone and in all geometric parameters.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
from lipstream.realtime.pose import MOUTH_PARAMS

from .dataset import clip_ids, load_clip, split_ids
from .landmarks import LANDMARK_DIR

logger = logging.getLogger(__name__)

N_COMPONENTS = 6


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    train_ids, _ = split_ids(clip_ids())
    shapes, params = [], []
    for clip_id in train_ids:
        with np.load(LANDMARK_DIR / f"{clip_id}.npz") as data:
            lips, found = data["lips"], data["found"]
        clip = load_clip(clip_id)
        # Remove the clip's mean shape: head pose residue and per-session drift are not speech.
        centred = lips[found] - lips[found].mean(0)
        shapes.append(centred.reshape(len(centred), -1))
        params.append(clip.targets[found])
    x = np.concatenate(shapes)
    y = np.concatenate(params)
    _, s, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    explained = s**2 / (s**2).sum()
    scores = (x - x.mean(0)) @ vt[:N_COMPONENTS].T
    report = []
    names = [n for n in MOUTH_PARAMS if n not in ("press", "tuck")]
    for k in range(N_COMPONENTS):
        row = {"pc": k + 1, "explained": round(float(explained[k]), 4)}
        for i, name in enumerate(names):
            row[f"r_{name}"] = round(float(np.corrcoef(scores[:, k], y[:, i])[0, 1]), 3)
        report.append(row)
    shares = {}
    for label, cols in (("open_width", [0, 1]), ("all_geometric", list(range(len(names))))):
        design = np.c_[y[:, cols], np.ones(len(y))]
        pred = design @ np.linalg.lstsq(design, scores, rcond=None)[0]
        captured = 1 - ((scores - pred) ** 2).sum(0) / ((scores - scores.mean(0)) ** 2).sum(0)
        top = explained[:N_COMPONENTS]
        shares[label] = round(float((captured * top).sum() / top.sum()), 3)
    print(
        json.dumps(
            {
                "frames": len(x),
                "components": report,
                "share_of_top_pc_variance_linear_in": shares,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
