"""Splits each measured lip latency into stages, from the server's per-frame timestamps.

The server keeps, per rendered frame, when the input completing its audio arrived, when its mouth
pose was ready and when it was handed to the outgoing track (``GET /whip/<id>/frames``, all on
CLOCK_MONOTONIC). The client stamps the onset's send time and the frame's arrival on the same
clock (same host), so every onset's latency splits exactly into:

- ``audio_in``: onset packet leaves the client -> the server holds all audio the frame needs
  (the rest of the frame's 40 ms, the driver's look-ahead, transport and the Opus decode);
- ``motion``: resample, VAD, features, phoneme encoder and motion model (with any queueing);
- ``render``: rendering and composing the frame (with any queueing);
- ``out``: VP8 encode, packetisation, SRTP, loopback and the client's receive buffer and decode.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import numpy as np

RTP_VIDEO_CLOCK_HZ = 90_000
STAGES = ("audio_in", "motion", "render", "out")


@dataclass(frozen=True)
class ServerTimeline:
    """Per-frame server timestamps of one session, by frame index."""

    ready_at: dict[int, float]
    posed_at: dict[int, float]
    rendered_at: dict[int, float]
    fps: int


async def fetch_timeline(base_url: str, resource: str) -> ServerTimeline:
    """Reads ``<resource>/frames`` (``resource`` is the session's WHIP Location)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(base_url + resource + "/frames") as response:
            response.raise_for_status()
            data = await response.json()
    rows = data["frames"]
    return ServerTimeline(
        ready_at={int(r[0]): r[1] for r in rows},
        posed_at={int(r[0]): r[2] for r in rows},
        rendered_at={int(r[0]): r[3] for r in rows},
        fps=int(data["fps"]),
    )


def frame_indices(
    video_pts: list[int], video_at: list[float], timeline: ServerTimeline
) -> list[int]:
    """The server frame index of every received frame.

    RTP timestamps carry the index up to an unknown offset (the sender's random origin); the offset
    is the one under which every frame arrives after the server released it, by the least time.
    """
    step = RTP_VIDEO_CLOCK_HZ // timeline.fps
    relative = ((np.asarray(video_pts, np.int64) - video_pts[0]) % 2**32) // step
    best, best_delay = 0, np.inf
    for index, released in timeline.rendered_at.items():
        if not video_at[0] - 1.0 < released <= video_at[0]:
            continue
        offset = index - int(relative[0])
        delays = [
            video_at[k] - timeline.rendered_at[r + offset]
            for k, r in enumerate(relative)
            if r + offset in timeline.rendered_at
        ]
        if delays and min(delays) > 0 and np.median(delays) < best_delay:
            best, best_delay = offset, float(np.median(delays))
    return [int(r) + best for r in relative]


def split(
    sent_at: float, lips_at: float, frame_index: int, timeline: ServerTimeline
) -> dict[str, float] | None:
    """One onset's latency in stages (seconds), or None if the frame is not in the timeline."""
    if frame_index not in timeline.rendered_at:
        return None
    ready = timeline.ready_at[frame_index]
    posed = timeline.posed_at[frame_index]
    rendered = timeline.rendered_at[frame_index]
    return {
        "audio_in": ready - sent_at,
        "motion": posed - ready,
        "render": rendered - posed,
        "out": lips_at - rendered,
    }


def summarise(splits: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and p95 of each stage in ms."""
    if not splits:
        return {}
    return {
        stage: {
            "mean_ms": float(1000 * np.mean([s[stage] for s in splits])),
            "p95_ms": float(1000 * np.percentile([s[stage] for s in splits], 95)),
        }
        for stage in STAGES
    }
