"""One command from ../shared/data to the shipped encoder.onnx (+ encoder.json, eval.json).

    OMP_NUM_THREADS=1 python -m lipstream.models.encoder.reproduce [--no-sphinx | --from-scratch]

Runs every corpus stage (alignment of all 249 usable LibriSpeech train clips, synthesis, shards;
finished items are skipped), trains from scratch with the shipped hyper-parameters and step count,
then fine-tunes 300 more steps at a low learning rate on a mix weighted towards real American
speech (both LibriSpeech shards), exports that to ONNX beside this file, and evaluates on the dev
speakers against pocketsphinx allphone.

Then it fine-tunes once more, 600 steps, with pocketsphinx's phone codebooks as extra inputs
(``gmm_layer.py``; Sphinx cepstra beside every shard first, ``sphinx_shards.py``) and exports that:
the shipped weights (issue 10, fourth round). ``--no-sphinx`` stops before that step and exports
the fine-tune (the previous weights, ft249, md5 f69d71ca).

``--from-scratch`` stops after the from-scratch run (the first 100 LibriSpeech clips only, ~31 min
less alignment) and exports those weights: the encoder shipped before the fine-tune (md5 77c3a4c4).
"""

from __future__ import annotations

import argparse
import logging

import torch

from . import corpus, evaluate, export, sphinx_shards, train
from .model import EncoderConfig
from .paths import CACHE_DIR

SHIPPED = EncoderConfig(lookahead_frames=5, gru_hidden=256, conv_channels=192)
SHIPPED_STEPS = 1300
SHIPPED_LR = 3e-3
FINE_TUNE_STEPS = 300
FINE_TUNE_LR = 5e-4
FINE_TUNE_WEIGHTS = {
    "libri": 0.24, "libri_more": 0.36, "vctk": 0.15, "grid": 0.10, "fsdd": 0.05, "synth": 0.10,
}  # fmt: skip
"""LibriSpeech 0.60 in all (the two shards by their size), against 0.40 in the from-scratch run."""
SPHINX_STEPS = 600
SPHINX_LR = 5e-4
"""The codebook-layer fine-tune: the fine-tune's recipe again, from its weights."""


def main(argv: list[str] | None = None) -> None:
    """Corpus -> train -> (fine-tune) -> export -> evaluate."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--from-scratch", action="store_true", help="stop before the fine-tune (previous weights)"
    )
    p.add_argument(
        "--no-sphinx", action="store_true", help="stop before the codebook fine-tune (ft249)"
    )
    a = p.parse_args(argv)
    fine_tune = not a.from_scratch
    sphinx = fine_tune and not a.no_sphinx
    corpus.main(["--all-libri"] if fine_tune else [])  # the 151 more clips: fine-tune only
    logging.getLogger().setLevel(logging.INFO)
    torch.set_num_threads(1)
    run_dir = CACHE_DIR / "encoder_run"
    train.train(SHIPPED, SHIPPED_STEPS, minutes=10_000.0, out=run_dir, lr=SHIPPED_LR)
    ckpt = run_dir / "encoder.pt"
    if fine_tune:
        ft_dir = CACHE_DIR / "encoder_finetune"
        train.train(SHIPPED, FINE_TUNE_STEPS, minutes=10_000.0, out=ft_dir, lr=FINE_TUNE_LR,
                    init=ckpt, weights=FINE_TUNE_WEIGHTS)  # fmt: skip
        ckpt = ft_dir / "encoder.pt"
    if sphinx:
        sphinx_shards.main([])
        sph_dir = CACHE_DIR / "encoder_sphinx"
        train.train(SHIPPED, SPHINX_STEPS, minutes=10_000.0, out=sph_dir, lr=SPHINX_LR, init=ckpt,
                    weights=FINE_TUNE_WEIGHTS, sphinx=True)  # fmt: skip
        ckpt = sph_dir / "encoder.pt"
    export.export(ckpt, export.Path(export.__file__).with_name("encoder.onnx"))
    evaluate.main([])


if __name__ == "__main__":
    main()
