"""Where the encoder's generated corpora live (outside git) and where the source data is."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(os.environ.get("LIPSTREAM_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
"""Read-only source corpora (``../shared/data`` relative to the repository)."""

CACHE_DIR = Path(os.environ.get("LIPSTREAM_CACHE", Path.home() / ".cache" / "lipstream"))
"""Root of everything generated: alignments, synthetic speech, feature shards."""

ALIGN_DIR = CACHE_DIR / "align"
"""One ``<set>/<clip_id>.json`` per aligned clip: ``{"phones": [{"phone", "start", "end"}]}`` (s)."""

SYNTH_DIR = CACHE_DIR / "synth"
"""Synthetic speech: ``<voice>/<id>.wav`` (16 kHz) with ``<id>.json`` phone timings."""

CORPUS_DIR = CACHE_DIR / "encoder_corpus"
"""Feature/label shards used by ``train.py``."""
