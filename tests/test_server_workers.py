"""``lipstream serve --workers N``: sessions spread over worker processes behind one front."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from lipstream.server.processes.workers import worker_cpus

from bench.whip_client import WebRtcClient
from tests.conftest import metric
from tests.support.waits import more_frames

SDP = {"Content-Type": "application/sdp"}
RESTART_LIMIT_S = 60.0


@pytest.fixture(scope="module")
def server(start_server) -> str:  # noqa: ANN001 - pytest fixture
    return start_server("--workers", "2", "--driver", "loudness", "--max-sessions", "2")


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(48_000 * seconds), dtype=np.float32)


async def _health(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/healthz") as response:
            return response.status, await response.json()


def _thread_affinities(pid: int) -> list[set[int]]:
    """The cores each thread of process ``pid`` may run on."""
    return [os.sched_getaffinity(int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()]


async def _frames_keep_coming(client: WebRtcClient, n: int = 15) -> int:
    """Waits for ``n`` more video frames before a deadline (no rate is measured); returns ``n``."""
    await more_frames(client.received.video_at, n)
    return n


async def test_sessions_spread_over_workers_and_route_by_id(server: str) -> None:
    speakers = [WebRtcClient(server, keep_frames=False) for _ in range(2)]
    viewer = WebRtcClient(server, keep_frames=False)
    try:
        for name, speaker in zip(("alpha", "beta"), speakers, strict=True):
            await speaker.publish(_silence(20), f"?channel={name}")
        ids = [(s.resource or "").removeprefix("/whip/") for s in speakers]
        assert sorted(i[:3] for i in ids) == ["w0-", "w1-"], ids
        await viewer.view("beta")  # only the worker running beta can serve it
        assert (viewer.resource or "").startswith(f"/whep/beta/{ids[1][:3]}")
        await asyncio.sleep(1.5)
        counts = await asyncio.gather(*(_frames_keep_coming(c) for c in [*speakers, viewer]))
        assert min(counts) >= 15, counts
        status, health = await _health(server)
        assert (status, health["sessions"]) == (200, 2)
        assert metric(server, "lipstream_sessions") == 2  # summed over the workers
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server}/whip/{ids[0]}/stats") as response:
                assert response.status == 200
            for bad in ("w7-0123", "nope", "w1-000000000000"):
                async with http.delete(f"{server}/whip/{bad}") as response:
                    assert response.status == 404 and "no such session" in await response.text()
        await viewer.close()
        await speakers[0].close()
        assert metric(server, "lipstream_sessions") == 1
        assert metric(server, "lipstream_viewers") == 0
        assert await _frames_keep_coming(speakers[1]) >= 15
    finally:
        await viewer.close()
        for speaker in speakers:
            await speaker.close()


async def test_global_limit_and_channel_uniqueness(server: str) -> None:
    speakers = [WebRtcClient(server, keep_frames=False) for _ in range(2)]
    try:
        await speakers[0].publish(_silence(10), "?channel=taken")
        duplicate = WebRtcClient(server, keep_frames=False)
        with pytest.raises(RuntimeError, match="HTTP 409"):
            await duplicate.publish(_silence(1), "?channel=taken")
        await duplicate.close()
        async with aiohttp.ClientSession() as http:
            ws_url = server.replace("http", "ws") + "/ws/ingest?channel=taken"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url)
            assert refused.value.status == 409
        await speakers[1].publish(_silence(10))
        extra = WebRtcClient(server, keep_frames=False)
        extra.pc.addTransceiver("audio", direction="sendrecv")
        await extra.pc.setLocalDescription(await extra.pc.createOffer())
        async with aiohttp.ClientSession() as http:
            sdp = extra.pc.localDescription.sdp
            async with http.post(server + "/whip", data=sdp, headers=SDP) as response:
                assert response.status == 503
                assert int(response.headers["Retry-After"]) > 0
                assert "all 2 session slots" in await response.text()
        await extra.close()
    finally:
        for speaker in speakers:
            await speaker.close()


async def test_each_worker_keeps_to_its_core_when_there_is_one_per_core(server: str) -> None:
    speaker = WebRtcClient(server, keep_frames=False)
    try:
        await speaker.publish(_silence(20))  # a session's threads exist too
        await _frames_keep_coming(speaker)
        _, health = await _health(server)
        for worker, cpu in zip(health["workers"], worker_cpus(2), strict=True):
            want = set(os.sched_getaffinity(0)) if cpu is None else {cpu}
            affinities = _thread_affinities(worker["pid"])
            # The speaker's worker has its session's threads too; the other may have only its
            # own few (which it has depends on what earlier tests left in its thread pools).
            assert len(affinities) >= (4 if worker["sessions"] else 1), (cpu, affinities)
            assert all(a == want for a in affinities), (cpu, affinities)
    finally:
        await speaker.close()


def test_workers_are_pinned_only_with_one_for_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 5})
    assert worker_cpus(2) == [2, 5]
    assert worker_cpus(3) == [2, 5, 2]
    assert worker_cpus(1) == [None]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert worker_cpus(2) == [None, None]  # spare cores: a worker's threads may use them


async def test_a_killed_worker_is_restarted_and_the_other_keeps_serving(server: str) -> None:
    survivor = WebRtcClient(server, keep_frames=False)
    try:
        await survivor.publish(_silence(40))
        own = int((survivor.resource or "").removeprefix("/whip/w")[0])
        _, health = await _health(server)
        victim = health["workers"][1 - own]
        os.kill(victim["pid"], signal.SIGKILL)
        await asyncio.sleep(0.5)
        status, _ = await _health(server)
        assert status == 503
        assert await _frames_keep_coming(survivor) >= 15
        deadline = time.monotonic() + RESTART_LIMIT_S
        while (health := await _health(server))[0] != 200:
            assert time.monotonic() < deadline, "the killed worker was not restarted"
            await asyncio.sleep(0.5)
        restarted = health[1]["workers"][1 - own]
        assert restarted["pid"] != victim["pid"] and restarted["restarts"] == 1
        assert await _frames_keep_coming(survivor) >= 15
    finally:
        await survivor.close()


async def test_one_worker_still_serves(start_server) -> None:  # noqa: ANN001 - pytest fixture
    url = start_server("--workers", "1", "--driver", "loudness")
    status, health = await _health(url)
    assert (status, health) == (200, {"status": "ok", "sessions": 0})  # the single-process app
    client = WebRtcClient(url, keep_frames=False)
    try:
        await client.publish(_silence(5))
        assert not (client.resource or "").startswith("/whip/w")
        await asyncio.sleep(1.5)
        assert len(client.received.video_at) >= 15
    finally:
        await client.close()


async def test_a_channel_lives_in_one_worker_its_speakers_follow_its_listeners(
    server: str,
) -> None:
    tone = (np.sin(np.arange(16_000 * 3) / 5) * 12_000).astype("<i2").tobytes()
    ws_base = server.replace("http", "ws", 1)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(ws_base + "/ws/events?channel=affine") as events:
            first = await events.receive_json(timeout=30)  # the idle face, via the front
            assert first["type"] == "frame" and first["idle"] is True
            for _speaker in range(2):  # each new speaker lands where the listener is
                async with http.ws_connect(ws_base + "/ws/ingest?channel=affine") as ingest:
                    session = await ingest.receive_json()
                    await ingest.send_bytes(tone)
                    while not (event := await events.receive_json(timeout=30))["speaking"]:
                        assert event["type"] == "frame"
                    assert event["idle"] is False, session
                while not (await events.receive_json(timeout=30))["idle"]:
                    pass  # the speaker left: the idle face is back before the next one comes


def test_worker_sockets_fit_a_unix_address_under_a_deep_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from lipstream.server.processes.workers import MAX_SOCKET_PATH, socket_folder

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    folder = socket_folder()
    try:
        assert len(os.fsencode(str(folder / "w0.sock"))) <= MAX_SOCKET_PATH
        assert folder.stat().st_mode & 0o777 == 0o700
    finally:
        folder.rmdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shallow = socket_folder()
    assert shallow.parent == tmp_path
    shallow.rmdir()
