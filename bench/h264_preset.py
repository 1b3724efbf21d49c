"""What aiortc's H.264 encoder costs on rendered frames, as shipped and with lipstream's preset.

A consumer that negotiated H.264 only gets frames, and aiortc codes them with libx264 at its
default ``medium`` preset (``server/media/aiortc_tuning.py``, item 7). This renders speech-driven
frames of the default avatar with the server's own components (real LibriSpeech speech,
../shared/data, CC BY 4.0), sends them through aiortc's own H.264 encoder and packetiser at two
bitrates, once as aiortc ships it and once with ``H264_OPTIONS``, decodes them, and reports the
encode CPU per frame (process time: libx264 codes on threads of its own), the bitrate and the
PSNR of the face region against what was rendered. Run on a quiet machine.

    python -m bench.h264_preset [--seconds 12]
"""

from __future__ import annotations

import argparse
import json
import time

import av
import numpy as np
from aiortc.codecs import h264
from lipstream.server.media import aiortc_tuning

from bench.report import save
from bench.vp8_denoiser import rendered_frames, roundtrip

BITRATES_BPS = (800_000, 500_000)  # lipstream's ceiling, and aiortc's floor for H.264


def measure(
    frames: list[np.ndarray], face: tuple[int, int, int], bitrate_bps: int
) -> dict[str, float]:
    """Encode CPU, bitrate and face PSNR (luma) through aiortc's H.264 encoder as it is now set.

    The CPU is the process's: libx264 codes on threads of its own.
    """
    encoder = h264.H264Encoder()
    encoder.target_bitrate = bitrate_bps
    return roundtrip(
        frames, face, encoder, h264.H264Decoder(), h264.H264PayloadDescriptor, time.process_time
    )


def main() -> None:
    """Prints both settings at both bitrates and writes ``bench/results/h264_preset.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    frames, face = rendered_frames(args.seconds)
    result: dict[str, object] = {"frames": len(frames)}
    tuned = "lipstream " + json.dumps(aiortc_tuning.H264_OPTIONS)
    for bitrate in BITRATES_BPS:
        h264.av = av  # aiortc as shipped
        result[f"aiortc (medium), {bitrate // 1000} kbps"] = measure(frames, face, bitrate)
        aiortc_tuning.apply()
        result[f"{tuned}, {bitrate // 1000} kbps"] = measure(frames, face, bitrate)
    save("h264_preset", result, f"python -m bench.h264_preset --seconds {args.seconds:g}")


if __name__ == "__main__":
    main()
