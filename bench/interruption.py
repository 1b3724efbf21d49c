"""Interruption: from ``{"type": "clear"}`` to the mouth at rest and the voice silent, at a viewer.

A WHEP viewer (aiortc) watches a channel; a voice agent pushes a sentence over ``/ws/ingest``
(faster than real time, as TTS engines do) and clears it part-way through, again and again. For
each interruption the viewer's own received media are read:

- voice silent: the arrival of the last received audio frame louder than ``SILENT_RMS`` within
  ``WINDOW_S`` after the clear, plus its 20 ms (the clear itself if there is none);
- mouth at rest: the arrival of the first received video frame after the clear from which every
  frame in the window measures (MediaPipe, ``bench/mouth.py``) no more open than the idle face did
  before the first sentence (its 95th percentile + ``REST_MARGIN``).

The figure is max(voice silent, mouth at rest) - clear, per interruption; p50/p95 over all.
Interruptions where the mouth was not open or the voice not audible just before the clear say
nothing and are counted apart.

    python -m bench.interruption --count 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.mouth import MouthMeter
from bench.report import save
from bench.server_process import ServerProcess
from bench.whip_client import WebRtcClient

CHANNEL = "interrupt"
SILENT_RMS = 0.005  # received voice quieter than this is silence (speech peaks near 0.1)
REST_MARGIN = 0.01  # face heights above the idle face's 95th percentile still count as at rest
WINDOW_S = 1.0  # what arrives this long after a clear is searched for the rest and the silence
BEFORE_S = 0.3  # the mouth must have been open and the voice audible this long before a clear
SETTLE_S = 1.5  # pause after each interruption, so the next starts from rest


def _sentence_pcm() -> bytes:
    """A 4 s espeak-ng sentence, 16 kHz s16le."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "s.wav"
        text = "Please put the blue box by the window, then open the door and close it again."
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), text], check=True)
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(wav), "-ac", "1", "-ar", "16000", "-f", "s16le",
             "-"],
            capture_output=True,
            check=True,
        ).stdout  # fmt: skip
    return raw


async def _messages(
    ws: aiohttp.ClientWebSocketResponse, into: list[tuple[float, dict]], started: asyncio.Event
) -> None:
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            into.append((time.monotonic(), json.loads(message.data)))
            if into[-1][1].get("type") == "playback_started":
                started.set()


async def run(url: str, count: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    pcm = _sentence_pcm()
    meter = MouthMeter()
    viewer = WebRtcClient(url, keep_frames=False, probe=meter)
    await viewer.view(CHANNEL)
    await asyncio.sleep(4.0)  # the idle face, for the rest level
    received: list[tuple[float, dict]] = []
    clears: list[float] = []
    ws_url = url.replace("http", "ws", 1) + f"/ws/ingest?channel={CHANNEL}&rate=16000"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(ws_url, max_msg_size=0) as ws:
            started = asyncio.Event()
            reader = asyncio.ensure_future(_messages(ws, received, started))
            idle_until = time.monotonic()
            for _ in range(count):
                started.clear()
                await ws.send_bytes(pcm)
                await asyncio.wait_for(started.wait(), 10.0)
                await asyncio.sleep(rng.uniform(1.0, 2.0))  # mid-sentence, a varied moment
                clears.append(time.monotonic())
                await ws.send_str(json.dumps({"type": "clear"}))
                await asyncio.sleep(SETTLE_S)
            reader.cancel()
    await asyncio.sleep(0.5)
    await viewer.close()
    openings = np.asarray(viewer.received.probes, dtype=np.float64)
    video_at = np.asarray(viewer.received.video_at[: len(openings)])
    audio_at = np.asarray(viewer.received.audio_at)
    rms = np.asarray(viewer.received.audio_rms)
    meter.close()
    idle = openings[(video_at < idle_until) & np.isfinite(openings)]
    rest_level = float(np.percentile(idle, 95)) + REST_MARGIN
    finished = [(t, m) for t, m in received if m["type"] == "playback_finished"]
    return _analyse(clears, video_at, openings, audio_at, rms, rest_level, finished)


def _analyse(
    clears: list[float],
    video_at: np.ndarray,
    openings: np.ndarray,
    audio_at: np.ndarray,
    rms: np.ndarray,
    rest_level: float,
    finished: list[tuple[float, dict]],
) -> dict[str, Any]:
    totals, mouths, voices, skipped = [], [], [], 0
    for t in clears:
        before_v = (video_at >= t - BEFORE_S) & (video_at < t)
        before_a = (audio_at >= t - BEFORE_S) & (audio_at < t)
        if not (np.nanmax(openings[before_v], initial=0) > rest_level and rms[before_a].max(
            initial=0) > SILENT_RMS):  # fmt: skip
            skipped += 1
            continue
        window_v = (video_at >= t) & (video_at < t + WINDOW_S)
        times, values = video_at[window_v], openings[window_v]
        moving = np.flatnonzero(~(values <= rest_level))  # NaN (no face) counts as not at rest
        if len(moving) == 0:
            rest_at = times[0] if len(times) else t + WINDOW_S  # the first frame shows rest
        elif moving[-1] + 1 < len(times):
            rest_at = times[moving[-1] + 1]
        else:
            rest_at = t + WINDOW_S  # never at rest within the window
        window_a = (audio_at >= t) & (audio_at < t + WINDOW_S)
        loud = np.flatnonzero(rms[window_a] > SILENT_RMS)
        silent_at = t if len(loud) == 0 else audio_at[window_a][loud[-1]] + 0.02
        mouths.append(1000 * (rest_at - t))
        voices.append(1000 * (silent_at - t))
        totals.append(1000 * (max(rest_at, silent_at) - t))
    answers = [
        1000 * (next((ft for ft, _ in finished if ft >= t), np.nan) - t) for t in clears
    ]  # playback_finished after each clear
    interrupted = [m for _, m in finished if m.get("interrupted")]

    def stats(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"p50": None, "p95": None, "max": None}
        return {k: round(float(np.percentile(values, q)), 1) for k, q in
                (("p50", 50), ("p95", 95), ("max", 100))}  # fmt: skip

    return {
        "interruptions": len(clears),
        "measured": len(totals),
        "skipped_not_speaking_at_clear": skipped,
        "clear_to_rest_and_silent_ms": stats(totals),
        "clear_to_mouth_rest_ms": stats(mouths),
        "clear_to_voice_silent_ms": stats(voices),
        "clear_to_playback_finished_ms": stats([a for a in answers if np.isfinite(a)]),
        "playback_finished_interrupted": len(interrupted),
        "position_s": [m["position_s"] for m in interrupted],
        "rest_level_face_heights": round(rest_level, 4),
    }


def main() -> None:
    """Runs the bench on a fresh server; writes ``bench/results/interruption-<driver>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--driver", default="learned")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp()) / "server.log"
    with ServerProcess(log, "--driver", args.driver) as url:
        result = asyncio.run(run(url, args.count, args.seed))
    result.update(driver=args.driver, floor_ms=120)
    command = f"python -m bench.interruption --count {args.count} --driver {args.driver}"
    save(f"interruption-{args.driver}", result, command)


if __name__ == "__main__":
    main()
