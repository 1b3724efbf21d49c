"""Do several encoders together hear American speech better than one (issue 10, sixth round)?

    python -m lipstream.models.encoder.ensemble score A.onnx B.onnx [...] [--set dev_libritest]
    python -m lipstream.models.encoder.ensemble soup OUT.pt A.pt B.pt [...]

``score`` streams every utterance of a dev shard through each ONNX encoder as live
(``phoneme_posteriors``), then scores each model alone and every combination of two or more by
the mean of their log-posteriors, per 10 ms frame against the forced alignment. ``soup`` averages
the weights of checkpoints fine-tuned from the same parent (export the result with
``lipstream.models.encoder.export``). If the encoders' errors were chance, a combination would beat
its members; the model card's table shows it does not.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from lipstream.realtime.phonemes import phoneme_posteriors

from .evaluate import dev_utterances
from .metrics import frame_metrics


def score(models: list[Path], dev_set: str) -> None:
    """Prints phone/viseme accuracy and P/B/M recall of each model and each combination."""
    utterances = dev_utterances(dev_set)
    logs = {
        m.stem if m.stem != "encoder" else m.parent.name: [
            np.log(phoneme_posteriors(audio, str(m))[: len(labels)] + 1e-6)
            for audio, labels in utterances
        ]
        for m in models
    }
    first = next(iter(logs.values()))
    pairs = zip(utterances, first, strict=True)
    ref = np.concatenate([labels[: len(post)] for (_, labels), post in pairs])
    for size in range(1, len(logs) + 1):
        for combo in itertools.combinations(logs, size):
            pred = np.concatenate(
                [np.mean([logs[k][i] for k in combo], 0).argmax(1) for i in range(len(utterances))]
            )
            metrics = frame_metrics(pred, ref)
            shown = {k: round(v, 4) for k, v in metrics.items() if v is not None}
            print("+".join(combo), shown, flush=True)


def soup(out: Path, checkpoints: list[Path]) -> None:
    """Writes the element-wise mean of the checkpoints' float weights (same config) to ``out``."""
    import torch

    blobs = [torch.load(p, map_location="cpu") for p in checkpoints]
    state = {}
    for key, first in blobs[0]["state"].items():
        if first.is_floating_point():
            state[key] = (sum(b["state"][key].double() for b in blobs) / len(blobs)).to(first.dtype)
        else:
            state[key] = first
    torch.save({"cfg": blobs[0]["cfg"], "state": state}, out)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_score = sub.add_parser("score", help="score models alone and combined")
    p_score.add_argument("models", type=Path, nargs="+")
    p_score.add_argument("--set", default="dev_libritest")
    p_soup = sub.add_parser("soup", help="average checkpoints' weights")
    p_soup.add_argument("out", type=Path)
    p_soup.add_argument("checkpoints", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "score":
        score(args.models, args.set)
    else:
        soup(args.out, args.checkpoints)


if __name__ == "__main__":
    main()
