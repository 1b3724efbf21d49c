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
            pushed_at = time.monotonic()
            for start in range(
                0, len(pcm), 32_000
            ):  # 1 s per message, all at once: faster than real time
                await ws.send_bytes(pcm[start : start + 32_000])
            await ws.send_json({"type": "end"})
            await ws.receive()  # the server closes the socket once the buffered audio has played
            played_s = time.monotonic() - pushed_at
    try:
        assert played_s >= 0.9 * duration_s, "pushed audio must play at the real-time rate"
        assert viewer.received.fps(pushed_at + 1.0, pushed_at + duration_s - 1.0) >= 0.85 * FPS
        rms = np.asarray(viewer.received.audio_rms)
        assert rms.max() > 0.05, "the viewer must hear the pushed voice"
        await asyncio.sleep(0.5)
        assert metric(server, "lipstream_sessions") == 0
    finally:
        await viewer.close()


async def test_bad_rate_is_400(server: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server + "/ws/ingest?channel=x&rate=12345") as response:
            assert response.status == 400
            assert "rate must be one of" in await response.text()
