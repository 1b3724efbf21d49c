"""What coding the avatar's voice as mono Opus saves, and what it does to the voice.

aiortc codes every outgoing Opus stream as 96 kbps stereo at libopus's top complexity; lipstream
codes the voice mono at 96 kbps, complexity 5 (``server/media/aiortc_tuning.py`` ``VoiceEncoder``).
This sends real LibriSpeech speech (../shared/data, CC BY 4.0) through each encoder in 20 ms
frames, as the server does, decodes it with aiortc's decoder, and reports the encode CPU per
packet and how close the decoded voice is to what went in: log spectral distance below 8 kHz over
the louder STFT frames (40 dB below the loudest), and SNR, after aligning out the codec's delay.

    python -m bench.opus_voice [--clips 3]
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import numpy as np
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from av import AudioFrame
from lipstream.server.media.aiortc_tuning import VOICE_BITRATE_BPS, VOICE_COMPLEXITY, VoiceEncoder

from bench.lipsync import real_speech
from bench.report import save
from bench.whip_client import SEND_FRAME_SAMPLES, SEND_RATE_HZ

SPECTRUM_BELOW_HZ = 8000
LOUD_WITHIN_DB = 40


def roundtrip(encoder: OpusEncoder, pcm: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Decoded left channel and the encode CPU (s) of each 20 ms frame."""
    decoder, decoded, cpu = OpusDecoder(), [], []
    for start in range(0, pcm.size - SEND_FRAME_SAMPLES + 1, SEND_FRAME_SAMPLES):
        frame = AudioFrame.from_ndarray(
            pcm[None, start : start + SEND_FRAME_SAMPLES], format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = SEND_RATE_HZ, start
        frame.time_base = Fraction(1, SEND_RATE_HZ)
        began = time.thread_time()
        payloads, _ = encoder.encode(frame)
        cpu.append(time.thread_time() - began)
        for payload in payloads:
            for out in decoder.decode(JitterFrame(payload, start)):
                decoded.append(out.to_ndarray().reshape(-1, 2)[:, 0])
    return np.concatenate(decoded).astype(np.float64), cpu


def fidelity(decoded: np.ndarray, pcm: np.ndarray) -> dict[str, float]:
    """Log spectral distance (dB) and SNR (dB) of ``decoded`` against ``pcm``, delay aligned."""
    n = min(decoded.size, pcm.size) - SEND_FRAME_SAMPLES
    ref = pcm[:n].astype(np.float64)
    lag = max(range(SEND_FRAME_SAMPLES), key=lambda k: float(np.dot(decoded[k : k + n], ref)))
    out = decoded[lag : lag + n]
    db_out, db_ref = (_stft_db(x) for x in (out, ref))
    loud = db_ref.max(axis=1) > db_ref.max() - LOUD_WITHIN_DB
    lsd = np.sqrt(np.mean((db_out[loud] - db_ref[loud]) ** 2, axis=1))
    snr = 10 * np.log10(np.sum(ref**2) / np.sum((out - ref) ** 2))
    return {"log_spectral_distance_db": round(float(lsd.mean()), 2), "snr_db": round(float(snr), 1)}


def _stft_db(x: np.ndarray) -> np.ndarray:
    """(frames, bins below ``SPECTRUM_BELOW_HZ``) power in dB: 20 ms Hann frames, 10 ms hop."""
    frames = np.lib.stride_tricks.sliding_window_view(x, SEND_FRAME_SAMPLES)
    frames = frames[:: SEND_FRAME_SAMPLES // 2] * np.hanning(SEND_FRAME_SAMPLES)
    bins = SPECTRUM_BELOW_HZ * SEND_FRAME_SAMPLES // SEND_RATE_HZ
    return 10 * np.log10(np.abs(np.fft.rfft(frames, axis=1)[:, :bins]) ** 2 + 1e-3)


def measure(encoder: OpusEncoder, pcm: np.ndarray) -> dict[str, float]:
    """Encode CPU per 20 ms packet and the decoded voice's fidelity for one encoder."""
    decoded, cpu = roundtrip(encoder, pcm)
    return {"encode_us_mean": round(1e6 * float(np.mean(cpu)), 1), **fidelity(decoded, pcm)}


def main() -> None:
    """Prints both encoders side by side and writes ``bench/results/opus_voice.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3)
    args = parser.parse_args()
    speech, names = real_speech(clips=args.clips)
    pcm = (np.clip(speech, -1.0, 1.0) * 32767).astype(np.int16)
    result = {
        "clips": names,
        "aiortc (stereo, 96 kbps, complexity 10)": measure(OpusEncoder(), pcm),
        f"lipstream (mono, {VOICE_BITRATE_BPS // 1000} kbps, complexity {VOICE_COMPLEXITY})": (
            measure(VoiceEncoder(), pcm)
        ),
    }
    save("opus_voice", result, f"python -m bench.opus_voice --clips {args.clips}")


if __name__ == "__main__":
    main()
