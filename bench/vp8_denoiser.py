"""What aiortc's libvpx settings cost on rendered frames: encode time and face fidelity.

aiortc opens its VP8 encoder with ``noise-sensitivity 4`` and ``static-thresh 1``; lipstream turns
the denoiser off and skips still blocks (``server/media/aiortc_tuning.py`` ``VP8_OPTIONS``). This
renders speech-driven frames of the default avatar with the server's own components (real
LibriSpeech speech, ../shared/data, CC BY 4.0), sends them through aiortc's own VP8 encoder and
packetiser at its start bitrate, once as aiortc ships it and once with lipstream's tuning applied,
decodes them, and reports the encode CPU per frame, the bitrate and the PSNR of the face region
against what was rendered; and, with lipstream's tuning, the cost of one frame sent again unchanged
(an idle avatar between its sway steps).

    python -m bench.vp8_denoiser [--seconds 12]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc.codecs import vpx
from aiortc.codecs.base import Decoder, Encoder
from aiortc.jitterbuffer import JitterFrame
from lipstream.server.media import aiortc_tuning

from bench.report import save
from bench.stage_cost import (
    PACKETS_PER_FRAME,
    WARMUP_FRAMES,
    ServerStages,
    StageClock,
    speech_packets,
)

FPS = 25


def rendered_frames(seconds: float) -> tuple[list[np.ndarray], tuple[int, int, int]]:
    """I420 arrays of the frames the server renders for ``seconds`` of speech, and the face
    region ``(left, top, size)`` in luma pixels."""
    stages = ServerStages(StageClock())
    frames: list[np.ndarray] = []
    stages.on_frame = lambda frame: frames.append(frame.to_ndarray().copy())
    packets = speech_packets(seconds)
    for start in range(0, len(packets) - PACKETS_PER_FRAME + 1, PACKETS_PER_FRAME):
        stages.frame(packets[start : start + PACKETS_PER_FRAME])
    return frames, stages.face_region


def face_psnr(decoded: np.ndarray, source: np.ndarray, face: tuple[int, int, int]) -> float:
    """Luma PSNR (dB) of ``decoded`` against ``source`` in the face region ``(left, top, size)``."""
    left, top, size = face
    a = decoded[top : top + size, left : left + size].astype(np.float64)
    b = source[top : top + size, left : left + size].astype(np.float64)
    return float(10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)))


def measure(frames: list[np.ndarray], face: tuple[int, int, int]) -> dict[str, float]:
    """Encode CPU, bitrate and face PSNR (luma) through aiortc's VP8 encoder as it is now set."""
    return roundtrip(frames, face, vpx.Vp8Encoder(), vpx.Vp8Decoder(), vpx.VpxPayloadDescriptor)


def roundtrip(
    frames: list[np.ndarray],
    face: tuple[int, int, int],
    encoder: Encoder,
    decoder: Decoder,
    descriptor: Any,
    cpu_clock: Callable[[], float] = time.thread_time,
) -> dict[str, float]:
    """Encode CPU (``cpu_clock``), bitrate and face PSNR (luma) of ``frames`` through one of
    aiortc's encoders, its packetiser (``descriptor.parse``) and its decoder."""
    cpu, psnr, size = [], [], 0
    for index, source in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(source, format="yuv420p")
        frame.pts, frame.time_base = index, Fraction(1, FPS)
        start = cpu_clock()
        payloads, timestamp = encoder.encode(frame)
        cpu.append(cpu_clock() - start)
        data = b"".join(descriptor.parse(p)[1] for p in payloads)
        size += len(data)
        for decoded in decoder.decode(JitterFrame(data, timestamp)):
            if index >= WARMUP_FRAMES:
                psnr.append(face_psnr(decoded.to_ndarray(format="yuv420p"), source, face))
    return {
        "encode_us_mean": round(1e6 * float(np.mean(cpu[WARMUP_FRAMES:])), 1),
        "kbps": round(size * 8 * FPS / len(frames) / 1000, 1),
        "face_psnr_db_mean": round(float(np.mean(psnr)), 2),
        "face_psnr_db_min": round(float(np.min(psnr)), 2),
    }


def main() -> None:
    """Prints both settings side by side and writes ``bench/results/vp8_denoiser.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    frames, face = rendered_frames(args.seconds)
    vpx.av = av  # aiortc as shipped
    shipped = measure(frames, face)
    aiortc_tuning.apply()
    result = {
        "frames": len(frames),
        "aiortc (noise-sensitivity 4)": shipped,
        "lipstream " + json.dumps(aiortc_tuning.VP8_OPTIONS): measure(frames, face),
        # An idle avatar between sway steps repeats its picture (server/media/frames.py).
        "lipstream, one unchanged frame repeated": measure([frames[0]] * len(frames), face),
    }
    save("vp8_denoiser", result, f"python -m bench.vp8_denoiser --seconds {args.seconds:g}")


if __name__ == "__main__":
    main()
