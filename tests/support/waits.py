"""Waiting for media in tests: "N frames before a deadline", never "sleep, then assert a rate"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(predicate: Callable[[], bool], deadline_s: float, what: str = "condition") -> None:
    """Returns as soon as ``predicate()`` holds; fails if it has not by ``deadline_s`` from now."""
    end = time.monotonic() + deadline_s
    while not predicate():
        assert time.monotonic() < end, f"{what} did not happen within {deadline_s:.0f} s"
        await asyncio.sleep(0.05)


async def more_frames(arrivals: list[float], n: int, deadline_s: float = 10.0) -> None:
    """Waits until ``n`` more entries were appended to ``arrivals`` (e.g. ``video_at``)."""
    start = len(arrivals)
    await until(lambda: len(arrivals) - start >= n, deadline_s, f"{n} more frames")
