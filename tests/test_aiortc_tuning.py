"""The vectorised audio level must equal aiortc's own (RFC 6465) for the same frames."""

from __future__ import annotations

import numpy as np
import pytest
from aiortc import rtp
from av import AudioFrame
from lipstream.server import aiortc_tuning

ORIGINAL_LEVEL = rtp.compute_audio_level_dbov  # captured before any app applies the tuning


@pytest.mark.parametrize("layout", ["mono", "stereo"])
@pytest.mark.parametrize("amplitude", [0, 3, 300, 12000, 32767])
def test_audio_level_matches_aiortc(layout: str, amplitude: int) -> None:
    channels = 2 if layout == "stereo" else 1
    rng = np.random.default_rng(amplitude)
    pcm = rng.integers(-amplitude, amplitude + 1, size=(1, 960 * channels)).astype(np.int16)
    frame = AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
    frame.sample_rate = 48_000
    assert ORIGINAL_LEVEL.__module__ == "aiortc.rtp", "compare against aiortc's own function"
    assert aiortc_tuning.audio_level_dbov(frame) == ORIGINAL_LEVEL(frame)
