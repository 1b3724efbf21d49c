"""Voice agents driving the avatar: the ingest protocol, persistent channels and per-frame events.

Everything goes through a real app over real WebSockets and real WebRTC (an aiortc client). No
timing is asserted: waits are "until this arrives, before a deadline"; timings live in
bench/interruption.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from lipstream.realtime.phoneset import VISEMES
from lipstream.server.state import ServerState

from bench.whip_client import WebRtcClient
from tests.conftest import Speech
from tests.support.inprocess import app_client
from tests.support.waits import until

DEADLINE_S = 20.0
NEEDED_WEIGHTS = {
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthRollLower",
    "eyeBlinkLeft",
    "eyeBlinkRight",
}


def pcm16k(speech: Speech) -> bytes:
    """The test voice as 16 kHz s16le, the ingest format."""
    return (speech.samples[::3] * 32767).astype("<i2").tobytes()


def first_sentence(speech: Speech) -> bytes:
    """The first sentence alone (with 0.2 s before it), 16 kHz s16le."""
    start, end = speech.speech_spans_s[0]
    pcm = pcm16k(speech)
    return pcm[2 * int((start - 0.2) * 16_000) : 2 * int(end * 16_000)]


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with app_client(max_queue_s=8.0) as c:
        yield c


class Messages:
    """Reads a socket's JSON messages into a list in the background."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.seen.append(json.loads(message.data))
        self.closed.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.seen if m.get("type") == kind]

    async def wait_for(self, kind: str, count: int = 1) -> dict[str, Any]:
        await until(lambda: len(self.of(kind)) >= count, DEADLINE_S, f"{count} x {kind}")
        return self.of(kind)[count - 1]

    async def stop(self) -> None:
        await self.ws.close()
        self._task.cancel()


async def _ingest(client: TestClient, channel: str) -> Messages:
    ws = await client.ws_connect(f"/ws/ingest?channel={channel}&rate=16000", max_msg_size=0)
    messages = Messages(ws)
    await messages.wait_for("session")
    return messages


async def _events(client: TestClient, channel: str) -> Messages:
    return Messages(await client.ws_connect(f"/ws/events?channel={channel}"))


async def test_clear_interrupts_a_segment_and_the_next_one_plays_whole(
    client: TestClient, speech: Speech
) -> None:
    pcm = first_sentence(speech)
    ingest = await _ingest(client, "agent")
    try:
        await ingest.ws.send_bytes(pcm)
        assert (await ingest.wait_for("playback_started"))["segment"] == 0
        await ingest.wait_for("queued", 3)  # 600 ms played
        await ingest.ws.send_json({"type": "clear"})
        finished = await ingest.wait_for("playback_finished")
        total_s = len(pcm) / 32_000
        assert finished["segment"] == 0 and finished["interrupted"] is True
        assert 0.4 <= finished["position_s"] < total_s - 0.2
        await ingest.wait_for("queued", 6)
        assert ingest.of("queued")[-1]["ms"] == 0  # nothing left after a clear

        short = pcm[: 2 * 16_000]  # 1 s, then a segment boundary
        await ingest.ws.send_bytes(short)
        await ingest.ws.send_json({"type": "end"})
        assert (await ingest.wait_for("playback_started", 2))["segment"] == 1
        second = await ingest.wait_for("playback_finished", 2)
        assert second == {
            "type": "playback_finished",
            "segment": 1,
            "position_s": 1.0,
            "interrupted": False,
        }
        assert not ingest.closed.is_set()  # "end" keeps the connection
    finally:
        await ingest.stop()


async def test_the_queue_cap_refuses_a_message_with_an_error(client: TestClient) -> None:
    ingest = await _ingest(client, "capped")
    try:
        await ingest.ws.send_bytes(bytes(2 * 16_000 * 5))  # 5 s: fits the 8 s cap
        await ingest.ws.send_bytes(bytes(2 * 16_000 * 5))  # 10 s: refused, not buffered
        error = await ingest.wait_for("error")
        assert "cap" in error["error"] and "--max-queue-s" in error["error"]
        await ingest.wait_for("queued")
        assert ingest.of("queued")[-1]["ms"] <= 5000
        await ingest.ws.send_str("not json")
        await ingest.ws.send_json({"type": "dance"})
        await ingest.ws.send_bytes(b"\x01")  # half a sample
        await ingest.wait_for("error", 4)
        assert not ingest.closed.is_set()
    finally:
        await ingest.stop()


async def test_whip_delete_closes_the_ingest_socket(client: TestClient) -> None:
    ingest = await _ingest(client, "deleted")
    session_id = ingest.of("session")[0]["id"]
    async with client.delete(f"/whip/{session_id}") as response:
        assert response.status == 200
    await asyncio.wait_for(ingest.closed.wait(), DEADLINE_S)
    state = client.app[ServerState.KEY]
    assert not state.sessions.by_id


async def test_bad_channel_names_are_400(client: TestClient) -> None:
    for path in ("/ws/ingest?channel=a%20b", "/ws/events?channel=", "/ws/events?channel=x/y"):
        async with client.get(path, headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as r:
            assert r.status == 400, path


async def test_events_follow_idle_speaker_idle(client: TestClient, speech: Speech) -> None:
    events = await _events(client, "rig")
    try:
        await events.wait_for("frame", 10)  # nobody speaks: the idle face's events
        assert all(e["idle"] and not e["speaking"] for e in events.of("frame"))
        ingest = await _ingest(client, "rig")
        await ingest.ws.send_bytes(first_sentence(speech))
        await until(
            lambda: any(e["speaking"] for e in events.of("frame")), DEADLINE_S, "speaking events"
        )
        await ingest.stop()
        spoken = len(events.of("frame"))
        await until(
            lambda: len(events.of("frame")) > spoken + 10 and events.of("frame")[-1]["idle"],
            DEADLINE_S,
            "idle events after the speaker left",
        )
    finally:
        await events.stop()
    frames = events.of("frame")
    numbers = [e["frame"] for e in frames]
    assert numbers == sorted(set(numbers)), "frame numbers only go forward, across speakers"
    t_ms = [e["t_ms"] for e in frames]
    assert all(b >= a for a, b in zip(t_ms, t_ms[1:], strict=False))
    for event in frames:
        assert event["viseme"] in VISEMES
        assert NEEDED_WEIGHTS <= set(event["weights"])
        assert all(0.0 <= w <= 1.0 for w in event["weights"].values())
    speaking = [e for e in frames if e["speaking"]]
    assert max(e["weights"]["jawOpen"] for e in speaking) > 0.2
    assert {e["viseme"] for e in speaking} - {"sil"}


async def test_a_viewer_stays_across_speakers_and_a_clear_silences_it(
    client: TestClient, speech: Speech
) -> None:
    base = str(client.make_url("")).rstrip("/")
    viewer = WebRtcClient(base, keep_frames=False)
    events: list[dict[str, Any]] = []
    channel = viewer.pc.createDataChannel("events")
    channel.on("message", lambda text: events.append(json.loads(text)))
    try:
        await viewer.view("stage")  # before anyone speaks: the idle face
        await until(lambda: len(viewer.received.video_at) >= 10, DEADLINE_S, "idle frames")
        await until(lambda: len(events) >= 10, DEADLINE_S, "events on the data channel")
        assert events[-1]["type"] == "frame" and events[-1]["idle"] is True
        for _speaker in range(2):
            ingest = await _ingest(client, "stage")
            heard = len(viewer.received.audio_rms)
            await ingest.ws.send_bytes(first_sentence(speech))
            await until(
                lambda h=heard: max(viewer.received.audio_rms[h:], default=0.0) > 0.05,  # type: ignore[misc]
                DEADLINE_S,
                "the speaker's voice at the viewer",
            )
            await ingest.ws.send_json({"type": "clear"})
            await ingest.wait_for("playback_finished")
            cleared_at = len(viewer.received.audio_rms)
            await until(
                lambda c=cleared_at: len(viewer.received.audio_rms) > c + 50,  # type: ignore[misc]
                DEADLINE_S,
                "1 s of voice after the clear",
            )
            after = np.asarray(viewer.received.audio_rms[cleared_at + 25 :])
            assert after.max() < 0.01, "the voice must be silent after a clear"
            await ingest.stop()
        frames = len(viewer.received.video_at)
        await until(
            lambda: len(viewer.received.video_at) > frames + 10, DEADLINE_S, "idle frames again"
        )
        assert viewer.pc.connectionState == "connected"  # one connection throughout
        assert any(e["speaking"] for e in events) and events[-1]["idle"] is True
    finally:
        await viewer.close()
