"""Events against pixels: the events' ``jawOpen`` beside the mouth opening of the received frames.

A WHEP viewer (aiortc) opens the ``events`` data channel on its connection and measures every
received frame's mouth opening with MediaPipe (``bench/mouth.py``); a voice agent pushes speech over
``/ws/ingest``. A received frame's RTP timestamp counts channel frames from a random origin, so the
frames' numbers are known up to one constant: the constant is taken as the most common difference
between a frame's number and that of the event that arrived last before it (the server sends a
frame's event right after handing the frame to the encoder). Pearson r between the opening and
``jawOpen`` is then computed with the events shifted by -3..3 frames. The events are usable by a
rig when the best r is high and its lag is within one frame.

    python -m bench.events_sync --driver learned
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.interruption import _sentence_pcm
from bench.mouth import MouthMeter
from bench.report import save
from bench.server_process import ServerProcess
from bench.whip_client import WebRtcClient

CHANNEL = "events"
LAGS = range(-3, 4)  # frames
RTP_TICKS_PER_FRAME = 90_000 // 25  # the RTP video clock at the server's default 25 fps
REPEATS = 4  # sentences pushed back to back (about 16 s of speech)


async def run(url: str) -> dict[str, Any]:
    meter = MouthMeter()
    viewer = WebRtcClient(url, keep_frames=False, probe=meter)
    events: list[tuple[float, dict[str, Any]]] = []
    data = viewer.pc.createDataChannel("events")
    data.on("message", lambda text: events.append((time.monotonic(), json.loads(text))))
    await viewer.view(CHANNEL)
    pcm = _sentence_pcm()
    ws_url = url.replace("http", "ws", 1) + f"/ws/ingest?channel={CHANNEL}&rate=16000"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(ws_url, max_msg_size=0) as ws:
            await ws.receive()
            await ws.send_bytes(pcm * REPEATS)
            await asyncio.sleep(len(pcm) * REPEATS / 32_000 + 2.0)
    await viewer.close()
    openings = np.asarray(viewer.received.probes, dtype=np.float64)
    meter.close()
    video_at = np.asarray(viewer.received.video_at[: len(openings)])
    pts = np.asarray(viewer.received.video_pts[: len(openings)], dtype=np.int64)
    return analyse(video_at, pts, openings, events)


def analyse(
    video_at: np.ndarray,
    pts: np.ndarray,
    openings: np.ndarray,
    events: list[tuple[float, dict[str, Any]]],
) -> dict[str, Any]:
    frames = [(t, e) for t, e in events if e.get("type") == "frame"]
    event_at = np.asarray([t for t, _ in frames])
    jaw_by_frame = {e["frame"]: e["weights"]["jawOpen"] for _, e in frames}
    speaking = {e["frame"] for _, e in frames if e["speaking"]}
    index = np.round((pts - pts[0]) / RTP_TICKS_PER_FRAME).astype(np.int64)
    last_event = np.searchsorted(event_at, video_at, side="right") - 1
    pairs = zip(last_event, index, strict=True)
    differences = [frames[k][1]["frame"] - i for k, i in pairs if k >= 0]
    values_, counts = np.unique(differences, return_counts=True)
    origin = int(values_[np.argmax(counts)])
    keep = np.isfinite(openings)
    numbers, values = index[keep] + origin, openings[keep]
    # Speech and the second after it: the idle face's stillness would inflate r.
    near_speech = np.asarray([any(n - d in speaking for d in range(25)) for n in numbers])
    per_lag = {}
    for lag in LAGS:
        jaw = np.asarray([jaw_by_frame.get(n + lag, np.nan) for n in numbers])
        keep = near_speech & np.isfinite(jaw)
        per_lag[lag] = (
            float(np.corrcoef(values[keep], jaw[keep])[0, 1]) if keep.sum() > 10 else None
        )
    best = max((lag for lag in LAGS if per_lag[lag] is not None), key=lambda lag: per_lag[lag])
    return {
        "frames_received": len(video_at),
        "events_received": len(frames),
        "frames_paired_near_speech": int(near_speech.sum()),
        "r_by_lag_frames": {str(k): None if v is None else round(v, 3) for k, v in per_lag.items()},
        "best_lag_frames": best,
        "best_r": round(per_lag[best], 3),
        "pairing_by_arrival_agrees": round(float(counts.max() / counts.sum()), 3),
    }


def main() -> None:
    """Runs the bench on a fresh server; writes ``bench/results/events-sync-<driver>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", default="learned")
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp()) / "server.log"
    with ServerProcess(log, "--driver", args.driver) as url:
        result = asyncio.run(run(url))
    result.update(driver=args.driver, floor={"best_r": 0.9, "best_lag_frames": "within ±1"})
    save(
        f"events-sync-{args.driver}", result, f"python -m bench.events_sync --driver {args.driver}"
    )


if __name__ == "__main__":
    main()
