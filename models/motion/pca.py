"""What do the two mouth parameters capture? PCA of the normalised GRID lip/jaw landmarks.

    python -m lipstream.models.motion.pca

Prints the variance explained by the first principal components of the pose-normalised lip/jaw shape
(``landmarks.normalise_lips``) and how strongly each correlates with ``open`` and ``width``.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

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
    for k in range(N_COMPONENTS):
        r_open = float(np.corrcoef(scores[:, k], y[:, 0])[0, 1])
        r_width = float(np.corrcoef(scores[:, k], y[:, 1])[0, 1])
        report.append(
            {
                "pc": k + 1,
                "explained": round(float(explained[k]), 4),
                "r_open": round(r_open, 3),
                "r_width": round(r_width, 3),
            }
        )
    both = np.linalg.lstsq(np.c_[y, np.ones(len(y))], scores, rcond=None)[0]
    pred = np.c_[y, np.ones(len(y))] @ both
    captured = 1 - ((scores - pred) ** 2).sum(0) / ((scores - scores.mean(0)) ** 2).sum(0)
    shape_var = float((captured * explained[:N_COMPONENTS]).sum() / explained[:N_COMPONENTS].sum())
    print(
        json.dumps(
            {
                "frames": len(x),
                "components": report,
                "share_of_top_pc_variance_linear_in_open_width": round(shape_var, 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
