"""One command from ../shared/data to the shipped encoder.onnx (+ encoder.json, eval.json).

    OMP_NUM_THREADS=1 python -m lipstream.models.encoder.reproduce

Runs every corpus stage (alignment, synthesis, shards; finished items are skipped), trains with the
shipped hyper-parameters and step count, exports to ONNX beside this file, and evaluates on the dev
speakers against pocketsphinx allphone.
"""

from __future__ import annotations

import logging

import torch

from . import corpus, evaluate, export, train
from .model import EncoderConfig
from .paths import CACHE_DIR

SHIPPED = EncoderConfig(lookahead_frames=5, gru_hidden=256, conv_channels=192)
SHIPPED_STEPS = 1300
SHIPPED_LR = 3e-3


def main() -> None:
    """Corpus -> train -> export -> evaluate."""
    corpus.main([])
    logging.getLogger().setLevel(logging.INFO)
    torch.set_num_threads(1)
    run_dir = CACHE_DIR / "encoder_run"
    train.train(SHIPPED, SHIPPED_STEPS, minutes=10_000.0, out=run_dir, lr=SHIPPED_LR)
    export.export(run_dir / "encoder.pt", export.Path(export.__file__).with_name("encoder.onnx"))
    evaluate.main([])


if __name__ == "__main__":
    main()
