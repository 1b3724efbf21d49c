"""Two ``lipstream serve`` nodes behind HAProxy (``deploy/haproxy.cfg``, run as committed).

Each node takes one session (``--max-sessions 1``) and names itself with ``--public-url``. Two
speakers get 201 through the balancer, on different nodes, with absolute Locations on them; a
third gets 503 with Retry-After once both are full; DELETE on a Location frees that node, and the
next speakers land there, even when the balancer offers one to the full node first. Speakers are
real aiortc peers that connect, so their sessions live until deleted (an offer that never connects
is dropped after 15 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from bench.server_process import ServerProcess, free_port, metric
from tests.conftest import REPO_ROOT
from tests.support.waits import until

HAPROXY_CFG = REPO_ROOT / "deploy" / "haproxy.cfg"
CONNECT_DEADLINE_S = 20.0

pytestmark = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy is not installed (apt-get install haproxy)"
)


def _node(folder: Path, name: str) -> ServerProcess:
    node = ServerProcess(folder / f"{name}.log", "--driver", "loudness", "--workers", "1")
    node._args = (*node._args, "--max-sessions", "1", "--public-url", node.url)
    return node


@dataclass
class Layout:
    """The balancer's URL and the two nodes behind it."""

    url: str
    nodes: list[ServerProcess]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    """Two nodes (started together) and HAProxy in front of them."""
    folder = tmp_path_factory.mktemp("two-nodes")
    nodes = [_node(folder, "node1"), _node(folder, "node2")]
    haproxy: subprocess.Popen[bytes] | None = None
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(ServerProcess.start, nodes))
        port = free_port()
        env = {
            **os.environ,
            "LB_BIND": f"127.0.0.1:{port}",
            "NODE1": f"127.0.0.1:{nodes[0].port}",
            "NODE2": f"127.0.0.1:{nodes[1].port}",
        }
        with (folder / "haproxy.log").open("wb") as sink:
            command = ["haproxy", "-db", "-f", str(HAPROXY_CFG)]
            haproxy = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, haproxy, folder / "haproxy.log")
        yield Layout(url, nodes)
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(10)
        for node in nodes:
            node.stop()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"haproxy did not answer: {log.read_text()[-2000:]}")


@dataclass
class Answer:
    """What one WHIP POST got back."""

    status: int
    location: str | None
    retry_after: str | None
    pc: RTCPeerConnection


@asynccontextmanager
async def speakers() -> AsyncIterator[list[Answer]]:
    """Collects speakers' answers; closes their connections at the end."""
    answers: list[Answer] = []
    try:
        yield answers
    finally:
        for answer in answers:
            await answer.pc.close()


async def speak(http: aiohttp.ClientSession, url: str, channel: str) -> Answer:
    """A WHIP POST of a real offer (silence sent, avatar received); connects when answered."""
    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    async with http.post(
        f"{url}/whip?channel={channel}", data=pc.localDescription.sdp, headers=headers
    ) as response:
        body = await response.text()
        answer = Answer(
            response.status,
            response.headers.get("Location"),
            response.headers.get("Retry-After"),
            pc,
        )
    if answer.status == 201:
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        await until(lambda: pc.connectionState == "connected", CONNECT_DEADLINE_S, "connected")
    return answer


def refusals(node: ServerProcess) -> float:
    """Offers the node refused for want of a slot."""
    return metric(node.url, "lipstream_sessions_rejected_total", 'reason="503"')


def sessions_on(node: ServerProcess) -> int:
    """The node's own count of sessions (/healthz)."""
    with urllib.request.urlopen(node.url + "/healthz", timeout=5) as response:
        return int(json.loads(response.read())["sessions"])


async def test_two_nodes_fill_refuse_and_free(layout: Layout) -> None:
    """201, 201 on the other node, 503 + Retry-After, DELETE via Location, then 201 again."""
    node_urls = {node.url for node in layout.nodes}
    async with aiohttp.ClientSession() as http, speakers() as answers:
        answers.append(await speak(http, layout.url, "first"))
        answers.append(await speak(http, layout.url, "second"))
        first, second = answers
        assert (first.status, second.status) == (201, 201)
        assert first.location and second.location
        homes = {loc.split("/whip/")[0] for loc in (first.location, second.location)}
        assert homes == node_urls, "the two sessions are on different nodes, named absolutely"
        assert [sessions_on(node) for node in layout.nodes] == [1, 1]

        answers.append(await speak(http, layout.url, "third"))
        third = answers[-1]
        assert third.status == 503
        assert third.retry_after is not None and int(third.retry_after) > 0

        async with http.delete(first.location) as response:
            assert response.status == 200
        freed = next(n for n in layout.nodes if first.location.startswith(n.url + "/"))
        full = next(n for n in layout.nodes if n is not freed)
        assert sessions_on(freed) == 0  # DELETE answers once the session is gone

        # Round robin alternates, so of two speakers in a row at least one is first offered to
        # the full node: its 503 sends the balancer on to the free one.
        refused_before = refusals(full)
        for channel in ("fourth", "fifth"):
            answers.append(await speak(http, layout.url, channel))
            again = answers[-1]
            assert again.status == 201
            assert again.location is not None
            assert again.location.startswith(freed.url + "/whip/")
            async with http.delete(again.location) as response:
                assert response.status == 200
        assert refusals(full) > refused_before, "the full node was tried and refused"
        async with http.delete(second.location) as response:
            assert response.status == 200
