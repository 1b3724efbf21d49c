"""Lip sync with real human speech, measured at an independent client over WHIP on loopback.

Real LibriSpeech speakers (../shared/data/librispeech, CC BY 4.0, Panayotov et al. 2015) are sent to
the server; the client measures, from the returned frames' pixels (MediaPipe inner-lip gap over face
height), how well mouth opening follows the loudness of the voice it sent (Pearson r at the best
lag, which is also the lips' delay), whether a face is found in every frame, the fps, and the
returned voice's offset from the lips (cross-correlation of the returned voice's loudness with the
lips).

    python -m bench.lipsync --clips 6 [--driver learned]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import numpy as np

from bench.mouth import mouth_openings
from bench.report import save
from bench.server_process import ServerProcess
from bench.whip_client import SEND_FRAME_SAMPLES, SEND_RATE_HZ, WebRtcClient, load_voice_48k

LIBRISPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech"
GAP_S = 0.6
MAX_LAG_S = 0.4
LAG_STEP_S = 0.01
WINDOW_S = 0.04  # loudness is taken over one video frame's worth of audio


def real_speech(clips: int) -> tuple[np.ndarray, list[str]]:
    """The first ``clips`` LibriSpeech files (different speakers), joined by short silences."""
    files = sorted(LIBRISPEECH.glob("*.ogg"))[:clips]
    gap = np.zeros(int(GAP_S * SEND_RATE_HZ), dtype=np.float32)
    parts = []
    for path in files:
        voice = load_voice_48k(str(path))
        parts += [0.7 * voice / max(np.abs(voice).max(), 1e-6), gap]
    return np.concatenate([gap, *parts]), [p.name for p in files]


def loudness_db(samples: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """dB RMS of the ``WINDOW_S`` of ``samples`` before each index in ``ends`` (48 kHz indices)."""
    window = int(WINDOW_S * SEND_RATE_HZ)
    out = np.full(len(ends), np.nan)
    for i, end in enumerate(ends.astype(int)):
        if window <= end <= len(samples):
            chunk = samples[end - window : end]
            out[i] = 10 * np.log10(np.mean(chunk * chunk) + 1e-8)
    return out


def best_lag(
    openings: np.ndarray, arrival: np.ndarray, sent_at: np.ndarray, samples: np.ndarray
) -> tuple[float, float]:
    """(r, lag_s): the lag at which mouth opening best follows the sent voice's loudness."""
    sent_end = (np.arange(len(sent_at)) + 1) * SEND_FRAME_SAMPLES
    best = (-1.0, 0.0)
    for lag in np.arange(0.0, MAX_LAG_S, LAG_STEP_S):
        ends = np.interp(arrival - lag, sent_at, sent_end, left=np.nan, right=np.nan)
        ok = ~np.isnan(ends) & ~np.isnan(openings)
        loud = loudness_db(samples, ends[ok])
        good = ~np.isnan(loud)
        if good.sum() < 50:
            continue
        r = float(np.corrcoef(openings[ok][good], loud[good])[0, 1])
        if r > best[0]:
            best = (r, float(lag))
    return best


def voice_offset(
    openings: np.ndarray, video_at: np.ndarray, audio_at: np.ndarray, audio_rms: np.ndarray
) -> float:
    """Seconds the returned voice trails the returned lips (negative: voice first)."""
    grid = np.arange(max(video_at[0], audio_at[0]), min(video_at[-1], audio_at[-1]), 0.01)
    lips = np.interp(grid, video_at, np.nan_to_num(openings, nan=np.nanmin(openings)))
    voice = np.interp(grid, audio_at, 20 * np.log10(np.asarray(audio_rms) + 1e-5))
    best = (-2.0, 0.0)
    for shift in range(-30, 31):  # ±300 ms in 10 ms steps
        a = lips[max(0, -shift) : len(lips) - max(0, shift)]
        b = voice[max(0, shift) : len(voice) - max(0, -shift)]
        r = float(np.corrcoef(a, b)[0, 1])
        if r > best[0]:
            best = (r, shift * 0.01)
    return best[1]


async def measure(url: str, samples: np.ndarray) -> dict[str, float]:
    """Sends ``samples`` and analyses the returned frames and voice."""
    client = WebRtcClient(url)
    await client.publish(samples)
    await asyncio.sleep(len(samples) / SEND_RATE_HZ + 0.5)
    await client.close()
    assert client.voice is not None
    received = client.received
    openings = mouth_openings(received.frames)
    arrival = np.asarray(received.video_at)
    r, lag = best_lag(openings, arrival, np.asarray(client.voice.sent_at), samples)
    width, height = received.video_size or (0, 0)
    return {
        "pearson_r_open_vs_loudness": r,
        "lips_lag_ms_at_best_r": 1000 * lag,
        "voice_after_lips_ms": 1000
        * voice_offset(
            openings, arrival, np.asarray(received.audio_at), np.asarray(received.audio_rms)
        ),
        "face_found_rate": float(np.mean(~np.isnan(openings))),
        "fps": received.fps(arrival[0] + 1.0, arrival[-1]),
        "frame_size": f"{width}x{height}",
        "frames": len(openings),
    }


def main() -> None:
    """Runs the harness and writes ``bench/results/lipsync-<driver>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--driver", default="learned")
    args = parser.parse_args()
    samples, names = real_speech(args.clips)
    log = Path(tempfile.mkdtemp()) / "server.log"
    with ServerProcess(log, "--driver", args.driver) as url:
        result = asyncio.run(measure(url, samples))
    result.update({"driver": args.driver, "clips": names, "speech_s": len(samples) / SEND_RATE_HZ})
    save(
        f"lipsync-{args.driver}",
        result,
        f"python -m bench.lipsync --clips {args.clips} --driver {args.driver}",
    )


if __name__ == "__main__":
    main()
