"""Channel handover: a viewer already connected sees each new speaker, with no gap in its video.

One WHEP viewer (aiortc, MediaPipe on every received frame) stays on a channel for the whole run.
Speakers come and go over ``/ws/ingest``: each pushes a sentence, lets it play for a while and
leaves; the next one, alternately on the default avatar and on an uploaded photo, connects a moment
later. For each new speaker:

- mouth moving: from the moment its first audio is sent to the arrival of the first received
  frame whose mouth opening exceeds the idle face's (95th percentile + ``REST_MARGIN``);
- the largest gap between received video frames from 1 s before the speaker connected to 1 s after
  its mouth moved (the idle face in between must keep the video going).

    python -m bench.handover --speakers 10
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.interruption import REST_MARGIN, _sentence_pcm
from bench.mouth import MouthMeter
from bench.report import save
from bench.server_process import ServerProcess
from bench.whip_client import WebRtcClient

CHANNEL = "handover"
PHOTO = Path(__file__).resolve().parents[2] / "shared" / "photos"
SPEAK_S = 2.5  # each speaker is on air this long
BETWEEN_S = 1.0  # nobody speaks this long between two speakers (the idle face shows)


async def _upload(http: aiohttp.ClientSession, url: str) -> str | None:
    photos = sorted(PHOTO.glob("*.jpg")) + sorted(PHOTO.glob("*.png"))
    if not photos:
        return None
    form = aiohttp.FormData()
    form.add_field("photo", photos[0].read_bytes(), filename=photos[0].name)
    async with http.post(url + "/api/avatars", data=form) as response:
        return (await response.json())["id"] if response.status == 201 else None


async def run(url: str, speakers: int) -> dict[str, Any]:
    pcm = _sentence_pcm()
    meter = MouthMeter()
    viewer = WebRtcClient(url, keep_frames=False, probe=meter)
    await viewer.view(CHANNEL)
    await asyncio.sleep(4.0)  # the idle face, for the rest level
    idle_until = time.monotonic()
    starts: list[float] = []
    async with aiohttp.ClientSession() as http:
        other = await _upload(http, url)
        for k in range(speakers):
            avatar = f"&avatar={other}" if other and k % 2 else ""
            ws_url = url.replace("http", "ws", 1) + f"/ws/ingest?channel={CHANNEL}{avatar}"
            async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                await ws.receive()  # the session message
                starts.append(time.monotonic())
                await ws.send_bytes(pcm)
                await asyncio.sleep(SPEAK_S)
            await asyncio.sleep(BETWEEN_S)
    await viewer.close()
    openings = np.asarray(viewer.received.probes, dtype=np.float64)
    meter.close()
    video_at = np.asarray(viewer.received.video_at[: len(openings)])
    idle = openings[(video_at < idle_until) & np.isfinite(openings)]
    rest_level = float(np.percentile(idle, 95)) + REST_MARGIN
    return analyse(starts, video_at, openings, rest_level, other is not None)


def analyse(
    starts: list[float],
    video_at: np.ndarray,
    openings: np.ndarray,
    rest_level: float,
    two_avatars: bool,
) -> dict[str, Any]:
    moving_ms, gaps_ms = [], []
    for t in starts:
        after = np.flatnonzero((video_at >= t) & (openings > rest_level))
        moved = video_at[after[0]] if len(after) else t + SPEAK_S
        moving_ms.append(1000 * (moved - t))
        around = video_at[(video_at >= t - 1.0) & (video_at <= moved + 1.0)]
        gaps_ms.append(1000 * float(np.diff(around).max()) if len(around) > 1 else None)

    def stats(values: list[float]) -> dict[str, float]:
        return {k: round(float(np.percentile(values, q)), 1) for k, q in
                (("p50", 50), ("p95", 95), ("max", 100))}  # fmt: skip

    return {
        "speakers": len(starts),
        "two_avatars": two_avatars,
        "first_audio_to_mouth_moving_ms": stats(moving_ms),
        "largest_video_gap_around_handover_ms": stats([g for g in gaps_ms if g is not None]),
        "per_speaker_ms": [
            {"mouth": round(m, 1), "gap": None if g is None else round(g, 1)}
            for m, g in zip(moving_ms, gaps_ms, strict=True)
        ],
        "rest_level_face_heights": round(rest_level, 4),
    }


def main() -> None:
    """Runs the bench on a fresh server; writes ``bench/results/handover-<driver>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=10)
    parser.add_argument("--driver", default="learned")
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp()) / "server.log"
    with ServerProcess(log, "--driver", args.driver) as url:
        result = asyncio.run(run(url, args.speakers))
    result.update(driver=args.driver, floor_ms={"mouth_moving": 500, "video_gap": 200})
    command = f"python -m bench.handover --speakers {args.speakers} --driver {args.driver}"
    save(f"handover-{args.driver}", result, command)


if __name__ == "__main__":
    main()
