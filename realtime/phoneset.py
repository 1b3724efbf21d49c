"""The phone set (ARPAbet 39 + SIL) and the Oculus-15 viseme map: tables only, a leaf module.

The encoder, the motion model and the training code import these; nothing here imports them
(``realtime/phonemes.py`` holds the offline phone report that runs the encoder).
"""

from __future__ import annotations

import numpy as np

SIL = "SIL"
PHONES: tuple[str, ...] = (
    "SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
    "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
    "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
"""Encoder output classes, in output-index order: SIL then the 39 ARPAbet phones (no stress)."""
PHONE_TO_INDEX: dict[str, int] = {p: i for i, p in enumerate(PHONES)}

VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)  # fmt: skip
"""The Oculus-15 visemes."""

PHONE_TO_VISEME: dict[str, str] = {
    "SIL": "sil",
    "P": "PP", "B": "PP", "M": "PP",
    "F": "FF", "V": "FF",
    "TH": "TH", "DH": "TH",
    "T": "DD", "D": "DD",
    "K": "kk", "G": "kk", "HH": "kk",
    "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH",
    "S": "SS", "Z": "SS",
    "N": "nn", "L": "nn", "NG": "nn",
    "R": "RR", "ER": "RR",
    "AA": "aa", "AE": "aa", "AH": "aa", "AY": "aa", "AW": "aa",
    "EH": "E", "EY": "E",
    "IH": "ih", "IY": "ih", "Y": "ih",
    "AO": "oh", "OW": "oh", "OY": "oh",
    "UH": "ou", "UW": "ou", "W": "ou",
}  # fmt: skip
"""ARPAbet phone -> Oculus viseme (HH: kk, NG: nn, ER: RR; glides to their vowel shapes)."""

PHONE_TO_VISEME_INDEX: np.ndarray = np.array(
    [VISEMES.index(PHONE_TO_VISEME[p]) for p in PHONES], dtype=np.int64
)
"""(40,) int64: viseme index of each phone index."""

_CLOSURES = {"BCL": "B", "DCL": "D", "GCL": "G", "PCL": "P", "TCL": "T", "KCL": "K"}


def normalise_phone(name: str) -> str:
    """Map a label from any aligner/synthesiser to the phone set: strip stress, merge closures.

    Anything outside ARPAbet 39 (silence, noise, breath) becomes SIL.
    """
    base = name.strip().upper().rstrip("012")
    base = _CLOSURES.get(base, base)
    return base if base in PHONE_TO_INDEX else SIL
