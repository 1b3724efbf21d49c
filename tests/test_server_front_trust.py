"""The front of ``serve --workers 2 --token T``.

Tokens, origins and stalled bodies end at the front, placements never over- or under-count, and a
worker stops within 5 s of SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.support.inprocess import make_offer

TOKEN = "T-front"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sdp"}
DEADLINE_S = 10.0
SIGTERM_LIMIT_S = 5.0


@pytest.fixture(scope="module")
def server(start_server) -> str:  # noqa: ANN001 - pytest fixture
    return start_server(
        "--workers", "2", "--driver", "loudness", "--max-sessions", "2", "--token", TOKEN
    )


async def _post_offer(
    http: aiohttp.ClientSession, url: str, offer: str, **headers: str
) -> tuple[int, str | None]:
    async with http.post(url + "/whip", data=offer, headers=AUTH | headers) as response:
        return response.status, response.headers.get("Location")


async def test_front_needs_the_token_and_refuses_foreign_origins(server: str) -> None:
    offer = await make_offer()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            server + "/whip", data=offer, headers={"Content-Type": "application/sdp"}
        ) as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.get(server + "/metrics") as r:
            assert r.status == 401
        async with http.get(server + "/api/config", headers=AUTH) as r:
            assert r.status == 200
        ws_url = server.replace("http", "ws", 1) + f"/ws/ingest?channel=evil&token={TOKEN}"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url, headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403


async def test_a_stalled_body_at_the_front_delays_no_other_offer(server: str) -> None:
    offer = await make_offer()
    parts = urlsplit(server)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"POST /whip HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/sdp\r\nContent-Length: 3000\r\n\r\nv=0\r\n".encode()
    )
    await writer.drain()
    try:
        async with aiohttp.ClientSession() as http:
            status, location = await asyncio.wait_for(_post_offer(http, server, offer), DEADLINE_S)
            assert status == 201
            await http.delete(server + str(location), headers=AUTH)
        assert not reader.at_eof()  # the stalled one is still unanswered
    finally:
        writer.close()


async def test_concurrent_offers_fill_exactly_the_limit(server: str) -> None:
    offer = await make_offer()
    async with aiohttp.ClientSession() as http:
        results = await asyncio.gather(*(_post_offer(http, server, offer) for _ in range(4)))
        statuses = sorted(status for status, _ in results)
        try:
            assert statuses == [201, 201, 503, 503], statuses
        finally:
            for _, location in results:
                if location:
                    await http.delete(server + location, headers=AUTH)


async def test_a_worker_stops_within_5_s_of_sigterm(server: str) -> None:
    offer = await make_offer()
    async with aiohttp.ClientSession() as http:
        status, location = await _post_offer(http, server, offer, **{})
        assert status == 201 and location
        async with http.get(server + "/healthz") as r:
            workers = (await r.json())["workers"]
        pid = next(w["pid"] for w in workers if location.startswith(f"/whip/w{w['index']}-"))
        os.kill(pid, signal.SIGTERM)
        sent = time.monotonic()
        while _state(pid) not in ("Z", "gone"):
            assert time.monotonic() - sent < SIGTERM_LIMIT_S, "the worker did not stop"
            await asyncio.sleep(0.05)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
