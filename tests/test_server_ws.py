"""WebSocket PCM ingest (a TTS engine pushing audio) watched by a WHEP viewer."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np
import pytest

from bench.whip_client import WebRtcClient
from tests.conftest import Speech, metric

FPS = 25


@pytest.fixture(scope="module")
def server(start_server) -> str:  # noqa: ANN001 - pytest fixture
    return start_server("--driver", "loudness", "--fps", str(FPS))


async def test_pushed_pcm_plays_in_real_time_to_a_viewer(server: str, speech: Speech) -> None:
    pcm = (speech.samples[::3] * 32767).astype("<i2").tobytes()  # 16 kHz s16le
    duration_s = len(pcm) / 2 / 16_000
    viewer = WebRtcClient(server, keep_frames=False)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(server.replace("http", "ws") + "/ws/ingest?channel=tts") as ws:
            hello = await ws.receive_json()
            assert hello["type"] == "session" and hello["channel"] == "tts"
            await viewer.view("tts")
            for start in range(0, len(pcm), 32_000):  # 1 s per message, faster than real time
                await ws.send_bytes(pcm[start : start + 32_000])
            await ws.send_json({"type": "end"})
            frames = int(0.85 * FPS * (duration_s - 2.0))  # all but the first and last second
            deadline = time.monotonic() + duration_s + 20.0
            while len(viewer.received.video_at) < frames:  # N frames before a deadline, no rate
                assert time.monotonic() < deadline, len(viewer.received.video_at)
                await asyncio.sleep(0.1)
            while (message := await ws.receive_json())["type"] != "playback_finished":
                assert message["type"] in ("playback_started", "queued"), message
            assert message["interrupted"] is False
            assert abs(message["position_s"] - duration_s) < 0.03  # all of it, in 20 ms frames
    try:
        rms = np.asarray(viewer.received.audio_rms)
        assert rms.max() > 0.05, "the viewer must hear the pushed voice"
        deadline = time.monotonic() + 5.0
        while metric(server, "lipstream_sessions") != 0:
            assert time.monotonic() < deadline, "the session was not freed"
            await asyncio.sleep(0.1)
    finally:
        await viewer.close()


async def test_bad_rate_is_400(server: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server + "/ws/ingest?channel=x&rate=12345") as response:
            assert response.status == 400
            assert "rate must be one of" in await response.text()
