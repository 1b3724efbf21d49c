"""One command rebuilds every generated corpus the encoder trains on (all under ~/.cache/lipstream).

    python -m lipstream.models.encoder.corpus [stage ...]

Stages run in order: ``align-grid``, ``align-vctk``, ``align-fsdd``, ``align-libri-dev``
(pocketsphinx forced alignment; the last is the LibriSpeech test-other dev set, true transcripts),
``synth`` (espeak-ng / festival / piper with phone timings), ``align-libri`` (LibriSpeech
pseudo-labels: LM decode + alignment), ``shards`` (features + labels,
augmented). Finished clips are skipped, so a rerun resumes.

``align-libri`` labels the first 100 LibriSpeech train clips, the ``libri`` shard the from-scratch
recipe trains on (``reproduce --from-scratch``); ``--all-libri`` labels all 249 (the ``libri_more``
shard of the fine-tune that gives the shipped weights, plain ``reproduce``), which costs ~31 min
more on two cores.
"""

from __future__ import annotations

import argparse
import logging

from . import align
from .paths import ALIGN_DIR, DATA_DIR

logger = logging.getLogger(__name__)

STAGES = (
    "align-grid",
    "align-vctk",
    "align-fsdd",
    "align-libri-dev",
    "synth",
    "align-libri",
    "shards",
)


def run_stage(stage: str, all_libri: bool = False) -> None:
    """Run one named stage; ``all_libri``: label every LibriSpeech train clip, not the first 100."""
    if stage == "align-grid":
        align.align_grid(DATA_DIR, ALIGN_DIR / "grid")
    elif stage == "align-vctk":
        align.align_texts(align.vctk_items(DATA_DIR), ALIGN_DIR / "vctk")
    elif stage == "align-fsdd":
        align.align_texts(align.fsdd_items(DATA_DIR), ALIGN_DIR / "fsdd")
    elif stage == "align-libri-dev":
        align.align_texts(align.libri_dev_items(DATA_DIR), ALIGN_DIR / "libri_dev")
    elif stage == "align-libri":
        from .shards import LIBRI_FIRST_CLIPS

        limit = None if all_libri else LIBRI_FIRST_CLIPS
        align.pseudo_label_librispeech(DATA_DIR, ALIGN_DIR / "librispeech", limit=limit)
    elif stage == "synth":
        from . import synth

        synth.build_all()
    elif stage == "shards":
        from . import shards

        shards.build_all()
    else:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")


def main(argv: list[str] | None = None) -> None:
    """CLI entry: run the given stages (default: all)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stages", nargs="*", default=list(STAGES), choices=STAGES)
    parser.add_argument(
        "--all-libri", action="store_true", help="label all 249 LibriSpeech train clips, not 100"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for stage in args.stages:
        logger.info("stage %s", stage)
        run_stage(stage, args.all_libri)


if __name__ == "__main__":
    main()
