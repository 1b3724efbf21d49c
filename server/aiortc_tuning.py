"""Two process-wide adjustments to aiortc for the avatar's hot path, each measured in the profile.

1. ``aiortc.rtp.compute_audio_level_dbov`` walks every sample of every outgoing audio frame in a
Python
   loop on the event-loop thread (RFC 6465 audio level, aiortc 1.16 ``rtp.py``): 15 % of that
   thread with
   four sessions. The numpy version below computes the same RFC 6465 value.
2. aiortc lets VP8 climb to 1.5 Mbps (H.264 to 3 Mbps) on a good link. A 512x512 talking head over a
   still background looks the same at 800 kbps, and every extra packet costs an SRTP call and a
   send on
   the event loop, which the sessions share.
"""

from __future__ import annotations

import math

import numpy as np
from aiortc import rtp
from aiortc.codecs import h264, vpx
from av import AudioFrame

MAX_VIDEO_BITRATE_BPS = 800_000
MIN_AUDIO_LEVEL_DBOV = -127  # RFC 6465: the level of digital silence
FULL_SCALE = 32767.0


def audio_level_dbov(frame: AudioFrame) -> int:
    """RFC 6465 audio level of an s16 frame in dBov (0 loudest, -127 silence), vectorised.

    Same arithmetic as aiortc's, including its division by samples per channel.
    """
    samples = np.frombuffer(bytes(frame.planes[0]), dtype=np.int16).astype(np.float64)
    if samples.size == 0:
        return MIN_AUDIO_LEVEL_DBOV
    rms = math.sqrt(float(np.dot(samples, samples)) / (frame.samples * FULL_SCALE * FULL_SCALE))
    if rms <= 0:
        return MIN_AUDIO_LEVEL_DBOV
    return round(min(max(20 * math.log10(rms), MIN_AUDIO_LEVEL_DBOV), 0.0))


def apply() -> None:
    """Installs both adjustments (idempotent); called once when the app is created."""
    rtp.compute_audio_level_dbov = audio_level_dbov
    vpx.MAX_BITRATE = MAX_VIDEO_BITRATE_BPS
    h264.MAX_BITRATE = MAX_VIDEO_BITRATE_BPS
