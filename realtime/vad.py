"""Voice activity on the sample clock, from webrtcvad.

The speech flag does not move the mouth (the driver does); it tells the idle motion whether someone
is talking and lets the loudness driver ignore noise. webrtcvad judges 20 ms blocks of 16-bit PCM.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import webrtcvad

from .clock import SAMPLE_RATE_HZ

BLOCK_SAMPLES = SAMPLE_RATE_HZ * 20 // 1000  # webrtcvad accepts 10, 20 or 30 ms blocks
AGGRESSIVENESS = 2  # 0..3; 2 rejects steady fan noise yet keeps soft consonants on a laptop mic
HANGOVER_SAMPLES = (
    SAMPLE_RATE_HZ * 200 // 1000
)  # speech stays "on" across short pauses between words
HISTORY_BLOCKS = 150  # 3 s of flags: far more than any frame + look-ahead query needs


class VoiceActivity:
    """Streaming speech/non-speech flags indexed by input sample.

    Feed audio with ``push``; ask ``is_speech(start, end)`` about any recent span of samples. Call
    from one thread at a time.
    """

    def __init__(self, aggressiveness: int = AGGRESSIVENESS) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._pending = np.zeros(0, dtype=np.int16)
        self._flags: deque[bool] = deque(maxlen=HISTORY_BLOCKS)
        self._blocks_seen = 0

    def push(self, audio: np.ndarray) -> None:
        """Consumes ``(n,)`` float32 samples in [-1, 1] at 16 kHz."""
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        self._pending = np.concatenate([self._pending, pcm])
        n_blocks = len(self._pending) // BLOCK_SAMPLES
        for i in range(n_blocks):
            block = self._pending[i * BLOCK_SAMPLES : (i + 1) * BLOCK_SAMPLES]
            self._flags.append(self._vad.is_speech(block.tobytes(), SAMPLE_RATE_HZ))
        self._blocks_seen += n_blocks
        self._pending = self._pending[n_blocks * BLOCK_SAMPLES :]

    def is_speech(self, start_sample: int, end_sample: int) -> bool:
        """Whether speech was heard in ``[start - hangover, end)``, as far as audio has been
        seen."""
        first_block = max(0, (start_sample - HANGOVER_SAMPLES) // BLOCK_SAMPLES)
        last_block = min(self._blocks_seen, -(-end_sample // BLOCK_SAMPLES))
        oldest_kept = self._blocks_seen - len(self._flags)
        flags = list(self._flags)
        return any(flags[b - oldest_kept] for b in range(max(first_block, oldest_kept), last_block))

    def reset(self) -> None:
        """Forgets all audio."""
        self._pending = np.zeros(0, dtype=np.int16)
        self._flags.clear()
        self._blocks_seen = 0
