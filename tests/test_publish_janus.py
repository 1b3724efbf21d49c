"""Fan-out through an SFU: one channel published once to a real Janus, watched by 50 subscribers.

The avatar node (``lipstream serve --workers 1 --publish-whip ...``) publishes channel ``main``
through simple-whip-server into a Janus VideoRoom. Its CPU (``/proc/PID/stat`` utime + stime) is
measured over ``WINDOW_S`` with no subscriber, then over the same span with 50 subscribers in
Janus; the second may exceed the first by at most 5 %, because the node encodes once whoever
watches. Every subscriber must receive media during the second window: 48 count the RTP packets
they receive (SRTP decrypted and parsed, not decoded, see ``tests/support/janus.py``) and 2 decode
the video as a client does and count frames. When the speaker leaves, the channel ends and the
node's DELETE takes its publish out of the room.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from bench.server_process import ServerProcess, metric
from tests.support import janus
from tests.support.waits import until

SUBSCRIBERS = 50
DECODING = 2  # full aiortc clients; the other 48 count packets (50 decoders do not fit 2 cores)
WINDOW_S = 15.0
CPU_MARGIN = 1.05
CHANNEL = "main"
TOKEN = "fan-out-test-token"
JOIN_AT_ONCE = 10  # subscribers negotiating with Janus at the same time
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
KINDS = ("audio", "video")

pytestmark = pytest.mark.skipif(janus.missing() is not None, reason=str(janus.missing()))


def cpu_seconds(pid: int) -> float:
    """CPU seconds (utime + stime) of ``pid`` so far: ``/proc/PID/stat`` fields 14 and 15."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[janus.JanusStack]:
    """Janus and simple-whip-server, up for the module."""
    running = janus.JanusStack(tmp_path_factory.mktemp("janus"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
async def node(
    stack: janus.JanusStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """An avatar node publishing every channel to the stack's endpoint for channel ``main``."""
    await stack.create_endpoint(CHANNEL, TOKEN)
    server = ServerProcess(
        tmp_path_factory.mktemp("node") / "node.log",
        "--workers",
        "1",
        "--publish-whip",
        f"{stack.whip_base}/endpoint/{{channel}}",
        "--publish-token",
        TOKEN,
    )
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Window:
    """What happened over one ``WINDOW_S``.

    CPU seconds of the node and of Janus, frames the node rendered, and what each subscriber
    received (RTP packets and payload bytes per kind).
    """

    node_cpu_s: float
    janus_cpu_s: float
    frames: float
    packets: list[dict[str, int]] = field(default_factory=list)
    payload_bytes: list[dict[str, int]] = field(default_factory=list)


async def measure(
    node: ServerProcess, sfu: int, subscribers: list[janus.CountingSubscriber]
) -> Window:
    """The next ``WINDOW_S`` of the node, Janus (pid ``sfu``) and the subscribers."""
    assert node.process is not None
    pid = node.process.pid
    frames = await asyncio.to_thread(metric, node.url, "lipstream_frames_rendered_total")
    packets = [dict(sub.packets) for sub in subscribers]
    payload = [dict(sub.bytes) for sub in subscribers]
    cpu, sfu_cpu = cpu_seconds(pid), cpu_seconds(sfu)
    await asyncio.sleep(WINDOW_S)
    window = Window(cpu_seconds(pid) - cpu, cpu_seconds(sfu) - sfu_cpu, 0.0)
    window.frames = await asyncio.to_thread(metric, node.url, "lipstream_frames_rendered_total")
    window.frames -= frames
    for sub, before, bytes_before in zip(subscribers, packets, payload, strict=True):
        window.packets.append({k: sub.packets[k] - before[k] for k in sub.packets})
        window.payload_bytes.append({k: sub.bytes[k] - bytes_before[k] for k in sub.bytes})
    return window


async def drain(socket: aiohttp.ClientWebSocketResponse) -> None:
    """Reads the speaker's socket (events and pings) until it closes."""
    async for _message in socket:
        pass


async def publishers_once(api: janus.JanusApi, wanted: bool, deadline_s: float) -> list[int]:
    """The room's publishers once there are some (``wanted``) or none (not ``wanted``)."""

    async def poll() -> list[int]:
        while True:  # Janus tells nobody about a room's publishers unless asked
            feeds = await api.publishers()
            if bool(feeds) == wanted:
                return feeds
            await asyncio.sleep(0.3)

    return await asyncio.wait_for(poll(), deadline_s)


async def test_fifty_subscribers_through_janus_cost_the_node_nothing(
    stack: janus.JanusStack, node: ServerProcess
) -> None:
    """Node CPU with 50 Janus subscribers stays within 5 % of its CPU with none."""
    subscribers: list[janus.CountingSubscriber] = []
    async with aiohttp.ClientSession(timeout=janus.REQUEST_TIMEOUT) as http:
        speaker = await http.ws_connect(f"{node.url}/ws/ingest?channel={CHANNEL}")
        # A silent speaker keeps the channel on air; reading answers the server's heartbeat.
        listening = asyncio.ensure_future(drain(speaker))
        try:
            api = janus.JanusApi(http, stack.janus_url)
            await api.open()
            (publisher,) = await publishers_once(api, True, 30.0)
            alone = await measure(node, stack.processes[0].pid, [])

            subscribers = [janus.CountingSubscriber(i < DECODING) for i in range(SUBSCRIBERS)]
            gate = asyncio.Semaphore(JOIN_AT_ONCE)

            async def join(sub: janus.CountingSubscriber) -> None:
                async with gate:
                    await sub.join(http, stack.janus_url, publisher)

            await asyncio.gather(*(join(sub) for sub in subscribers))
            await until(
                lambda: all(sub.pc.connectionState == "connected" for sub in subscribers),
                30.0,
                "every subscriber connected",
            )
            watched = await measure(node, stack.processes[0].pid, subscribers)
            assert await api.publishers() == [publisher], "still one publish, however many watch"
        finally:
            await speaker.close()
            await listening
            for sub in subscribers:
                await sub.close()
        # The speaker left and nobody watches on the node: the channel ends, its publish is DELETEd.
        assert await publishers_once(api, False, 15.0) == []

    frames = [sub.video_frames for sub in subscribers[:DECODING]]
    report = {
        "window_s": WINDOW_S,
        "node_cpu_s_alone": round(alone.node_cpu_s, 2),
        "node_cpu_s_with_subscribers": round(watched.node_cpu_s, 2),
        "node_frames_alone": alone.frames,
        "node_frames_with_subscribers": watched.frames,
        "janus_cpu_s_alone": round(alone.janus_cpu_s, 2),
        "janus_cpu_s_with_subscribers": round(watched.janus_cpu_s, 2),
        "subscribers": SUBSCRIBERS,
        "decoding": DECODING,
        "min_packets_in_window": {k: min(p[k] for p in watched.packets) for k in KINDS},
        "min_payload_kbps": {
            k: round(min(b[k] for b in watched.payload_bytes) * 8 / WINDOW_S / 1000, 1)
            for k in KINDS
        },
        "decoded_video_frames": frames,
    }
    print("fan-out:", json.dumps(report))
    assert all(p["video"] > 0 and p["audio"] > 0 for p in watched.packets), watched.packets
    assert all(f > 0 for f in frames), frames
    assert watched.node_cpu_s <= alone.node_cpu_s * CPU_MARGIN, report
