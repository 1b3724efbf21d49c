"""What libvpx's temporal denoiser costs on rendered frames: encode time and face fidelity.

aiortc opens its VP8 encoder with ``noise-sensitivity 4``; lipstream turns it off
(``server/aiortc_tuning.py``). This renders speech-driven frames of the default avatar with the
server's own components (real LibriSpeech speech, ../shared/data, CC BY 4.0), encodes them with
aiortc's VP8 settings at the start bitrate, once with each denoiser setting, decodes them, and
reports the encode CPU per frame, the bitrate and the PSNR of the face region against what was
rendered.

    python -m bench.vp8_denoiser [--seconds 12]
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import av
import numpy as np
from aiortc.codecs import vpx

from bench.report import save
from bench.stage_cost import (
    PACKETS_PER_FRAME,
    WARMUP_FRAMES,
    ServerStages,
    StageClock,
    speech_packets,
)

FPS = 25
WIDTH = HEIGHT = 512  # the default avatar's frame


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


def _encoder(noise_sensitivity: int) -> av.CodecContext:
    """A libvpx context with aiortc 1.16's options (``Vp8Encoder.encode``) but the denoiser."""
    bitrate = vpx.DEFAULT_BITRATE
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.bit_rate, codec.time_base = bitrate, Fraction(1, FPS)
    codec.gop_size, codec.qmin, codec.qmax = 3000, 2, 56
    codec.options = {
        "bufsize": str(bitrate), "cpu-used": "-6", "deadline": "realtime", "lag-in-frames": "0",
        "minrate": str(bitrate), "maxrate": str(bitrate), "overshoot-pct": "15",
        "partitions": "0", "static-thresh": "1", "undershoot-pct": "100",
        "noise-sensitivity": str(noise_sensitivity),
    }  # fmt: skip
    codec.thread_count = 1
    return codec


def _face_psnr(decoded: np.ndarray, source: np.ndarray, face: tuple[int, int, int]) -> float:
    left, top, size = face
    a = decoded[top : top + size, left : left + size].astype(np.float64)
    b = source[top : top + size, left : left + size].astype(np.float64)
    return float(10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)))


def measure(frames: list[np.ndarray], face: tuple[int, int, int], noise: int) -> dict[str, float]:
    """Encode CPU, bitrate and face PSNR (luma) with ``noise-sensitivity`` = ``noise``."""
    encoder, decoder = _encoder(noise), av.CodecContext.create("libvpx", "r")
    cpu, psnr, size = [], [], 0
    for index, source in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(source, format="yuv420p")
        frame.pts, frame.time_base = index, Fraction(1, FPS)
        start = time.thread_time()
        packets = encoder.encode(frame)
        cpu.append(time.thread_time() - start)
        for packet in packets:
            size += packet.size
            for decoded in decoder.decode(packet):
                if index >= WARMUP_FRAMES:
                    psnr.append(_face_psnr(decoded.to_ndarray(), source, face))
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
    result = {
        "frames": len(frames),
        "aiortc (noise-sensitivity 4)": measure(frames, face, 4),
        "lipstream (noise-sensitivity 0)": measure(frames, face, 0),
    }
    save("vp8_denoiser", result, f"python -m bench.vp8_denoiser --seconds {args.seconds:g}")


if __name__ == "__main__":
    main()
