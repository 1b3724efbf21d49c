"""How good the LibriSpeech pseudo-labels are: the labeller run on test-other, scored like encoders.

The 249 training clips of LibriSpeech have no transcript, so their labels come from a pocketsphinx
LM decode whose hypothesis is then force-aligned (``align.py``). How wrong is that? Test-other has
true transcripts: this runs the same labeller on its clips as if they had none, and scores the
result against the alignment of the true text (the dev set's labels) with the encoder's own frame
metrics. It measures the labeller only; nothing here trains on test-other.

If the labels score far above the encoder, label noise is not what holds the encoder back.

    python -m lipstream.models.encoder.label_quality [--clips 30]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
from lipstream.models.encoder import align
from lipstream.models.encoder.evaluate import RECALL_PHONES
from lipstream.models.encoder.metrics import class_recall, frame_metrics
from lipstream.models.encoder.paths import ALIGN_DIR, DATA_DIR
from lipstream.models.encoder.shards import frame_labels

DEV_LABEL_DIR = ALIGN_DIR / "libri_dev"
"""Where the corpus stage wrote the forced alignments of test-other's true transcripts."""


def score(pseudo_dir: Path, truth_dir: Path) -> dict:
    """Frame metrics of every pseudo-label file in ``pseudo_dir`` against its true alignment."""
    pred, ref = [], []
    for path in sorted(pseudo_dir.glob("*.json")):
        truth = truth_dir / path.name
        n = int(json.loads(truth.read_text())["phones"][-1]["end"] / align.FRAME_S)
        pred.append(frame_labels(path, n))
        ref.append(frame_labels(truth, n))
    p, r = np.concatenate(pred), np.concatenate(ref)
    return {
        "clips": len(pred),
        **frame_metrics(p, r),
        "recall": class_recall(p, r, RECALL_PHONES),
    }


def run(clips: int) -> dict:
    """Labels ``clips`` test-other clips (evenly spread) without their text and scores them."""
    truth_dir = DEV_LABEL_DIR
    ids = sorted(p.stem for p in truth_dir.glob("*.json"))
    if not ids:
        raise SystemExit(f"no dev alignments in {truth_dir}: run the encoder corpus stage first")
    chosen = ids[:: max(1, len(ids) // clips)][:clips]
    paths = [DATA_DIR / "librispeech" / f"{i}.ogg" for i in chosen]
    with tempfile.TemporaryDirectory() as tmp:
        align._pseudo_label_worker((paths, Path(tmp), {}))  # {}: no transcripts, the LM path
        return score(Path(tmp), truth_dir)


def main() -> None:
    """CLI entry: prints the scores as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=30)
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run(parser.parse_args().clips), indent=1))


if __name__ == "__main__":
    main()
