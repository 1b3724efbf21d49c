"""Training-side view of the phone set: re-exports the runtime one so labels and model agree."""

from __future__ import annotations

from lipstream.realtime.phonemes import PHONES, PHONE_TO_INDEX, SIL, normalise_phone

__all__ = ["PHONES", "PHONE_TO_INDEX", "SIL", "normalise_phone"]
