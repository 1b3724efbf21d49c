"""The pseudo-label scorer: frame metrics of label files against their true alignments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# The corpus code may need the ``train`` extra (e.g. for augmentation); skip where it is absent.
label_quality = pytest.importorskip("lipstream.models.encoder.label_quality")


def _write(path: Path, phones: list[tuple[str, float, float]]) -> None:
    spans = [{"phone": p, "start": s, "end": e} for p, s, e in phones]
    path.write_text(json.dumps({"phones": spans}))


def test_scores_agreement_frame_by_frame(tmp_path: Path) -> None:
    truth, pseudo = tmp_path / "truth", tmp_path / "pseudo"
    truth.mkdir(), pseudo.mkdir()
    _write(truth / "a.json", [("SIL", 0.0, 0.5), ("M", 0.5, 0.7), ("AA", 0.7, 1.0)])
    _write(pseudo / "a.json", [("SIL", 0.0, 0.5), ("B", 0.5, 0.7), ("AA", 0.7, 1.0)])
    result = label_quality.score(pseudo, truth)
    assert result["clips"] == 1 and result["frames"] == 100
    assert result["phone_acc"] == pytest.approx(0.8, abs=0.02)  # the 20 M frames called B
    assert result["bilabial_recall"] == 1.0  # B still closes the lips
    assert result["recall"]["M"] == 0.0 and result["recall"]["AA"] == 1.0
