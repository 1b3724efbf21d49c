"""The findings of issue 12, replayed in-process.

Tokens, origins, bounded bodies, bombs, viewers, WebSocket slots and failing sessions. Deadlines
here bound waits for events, never measure rates.
"""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from lipstream.server.http import guard, signaling
from lipstream.server.http import websocket as ws_ingest
from lipstream.server.http.app import visible_config
from lipstream.server.http.guard import Access, Role, read_body, security_middleware
from lipstream.server.http.ice import browser_ice_servers, rest_credentials, server_ice_servers
from lipstream.server.options import ServeOptions
from lipstream.server.state import ServerState

from bench.whip_client import WebRtcClient
from tests.support.inprocess import app_client, make_offer

SDP = "application/sdp"
DEADLINE_S = 10.0  # waits for an event end here; none of them is a measurement


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _until(predicate, deadline_s: float = DEADLINE_S) -> None:  # noqa: ANN001
    end = time.monotonic() + deadline_s
    while not predicate():
        assert time.monotonic() < end, "the condition did not hold before the deadline"
        await asyncio.sleep(0.02)


# --- tokens and origins, on a small app with the real middleware -----------------------------


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text=f"role {int(guard.role(request))}")


@pytest.fixture
async def guarded() -> TestClient:
    app = web.Application(
        middlewares=[security_middleware(Access("T", "V", ("https://studio.example",)))]
    )
    for path in ("/", "/viewer", "/healthz", "/metrics", "/api/config", "/ws/ingest"):
        app.router.add_get(path, _ok)
    for path in ("/whip", "/whep/ch", "/api/avatars"):
        app.router.add_post(path, _ok)
    app.router.add_delete("/whip/{id}", _ok)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


@pytest.mark.parametrize(
    ("method", "path", "token", "status"),
    [
        ("POST", "/whip", None, 401),
        ("POST", "/whip", "wrong", 401),
        ("POST", "/whip", "V", 401),  # a viewer may not publish
        ("POST", "/whip", "T", 200),
        ("DELETE", "/whip/x", None, 401),
        ("POST", "/api/avatars", "V", 401),
        ("POST", "/api/avatars", "T", 200),
        ("GET", "/ws/ingest", None, 401),
        ("POST", "/whep/ch", None, 401),
        ("POST", "/whep/ch", "V", 200),
        ("POST", "/whep/ch", "T", 200),
        ("GET", "/metrics", None, 401),
        ("GET", "/metrics", "V", 200),
        ("GET", "/api/config", None, 401),
        ("GET", "/api/config", "V", 200),
        ("GET", "/", None, 401),
        ("GET", "/viewer", None, 401),
        ("GET", "/healthz", None, 200),
    ],
)
async def test_tokens_guard_every_route(guarded: TestClient, method, path, token, status) -> None:  # noqa: ANN001
    headers = _bearer(token) if token else {}
    async with guarded.request(method, path, headers=headers) as response:
        assert response.status == status
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_query_token_opens_websockets_and_pages_but_not_the_api(guarded: TestClient) -> None:
    async with guarded.get("/ws/ingest?token=T") as response:
        assert response.status == 200
    async with guarded.post("/whip?token=T") as response:
        assert response.status == 401  # an API call must send the header
    async with guarded.get("/viewer?token=V") as response:
        assert response.status == 200
        assert guard.TOKEN_COOKIE in response.cookies
    async with guarded.get("/viewer") as response:  # reload: the cookie opens the page
        assert response.status == 200
    async with guarded.get("/metrics") as response:  # ... and nothing else
        assert response.status == 401


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("http://evil.example", 403),
        ("null", 403),
        ("https://studio.example", 200),  # --allow-origin
        (None, 200),  # not a browser
    ],
)
async def test_foreign_origins_are_403(guarded: TestClient, origin, status) -> None:  # noqa: ANN001
    headers = _bearer("T") | ({"Origin": origin} if origin else {})
    for method, path in (("GET", "/ws/ingest"), ("POST", "/api/avatars"), ("POST", "/whip")):
        async with guarded.request(method, path, headers=headers) as response:
            assert response.status == status


async def test_own_origin_is_allowed(guarded: TestClient) -> None:
    own = f"http://{guarded.server.host}:{guarded.server.port}"
    async with guarded.post("/whip", headers=_bearer("T") | {"Origin": own}) as response:
        assert response.status == 200


def test_no_token_means_everyone_publishes_and_viewers_see_no_uploads() -> None:
    assert Access().role_of(None) is Role.PUBLISH
    assert Access("T").role_of("T") is Role.PUBLISH and Access("T", "V").role_of("V") is Role.VIEW
    body = {"default_avatar": "a", "avatars": ["a", "upload1", "upload2"]}
    assert visible_config(body, Role.VIEW)["avatars"] == ["a"]
    assert visible_config(body, Role.PUBLISH)["avatars"] == ["a", "upload1", "upload2"]


def test_turn_credentials_never_reach_the_browser() -> None:
    options = ServeOptions(ice_servers=("stun:s.example:3478", "turn:alice:hunter2@t.example:3478"))
    sent = browser_ice_servers(options)
    assert sent == [{"urls": "stun:s.example:3478"}, {"urls": "turn:t.example:3478"}]
    assert "hunter2" not in repr(sent)
    own = server_ice_servers(options)
    assert own[1] == {"urls": "turn:t.example:3478", "username": "alice", "credential": "hunter2"}
    short = browser_ice_servers(
        ServeOptions(ice_servers=("turn:t.example:3478",), turn_secret="s3"), now=1000.0
    )
    user, password = rest_credentials("s3", now=1000.0)
    assert short == [{"urls": "turn:t.example:3478", "username": user, "credential": password}]
    assert user.startswith(str(1000 + 6 * 3600))


# --- bounded bodies ---------------------------------------------------------------------------


@pytest.fixture
async def echo() -> TestClient:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await read_body(request, 1000, timeout_s=0.3))))

    app = web.Application()
    app.router.add_post("/", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def _raw(
    client: TestClient, head: str, body: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(head.encode() + body)
    await writer.drain()
    return reader, writer


async def test_body_over_its_content_length_limit_is_413_before_it_is_sent(
    echo: TestClient,
) -> None:
    reader, writer = await _raw(
        echo, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
    )
    status = await asyncio.wait_for(reader.readline(), DEADLINE_S)  # no byte of the body was sent
    writer.close()
    assert b" 413 " in status


async def test_chunked_body_past_the_limit_is_413(echo: TestClient) -> None:
    async def chunks():  # noqa: ANN202
        for _ in range(5):
            yield b"x" * 400

    async with echo.post("/", data=chunks()) as response:
        assert response.status == 413
    async with echo.post("/", data=b"x" * 1000) as response:
        assert (response.status, await response.text()) == (200, "1000")


async def test_stalled_body_is_408(echo: TestClient) -> None:
    reader, writer = await _raw(
        echo, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", b"v=0"
    )
    status = await asyncio.wait_for(reader.readline(), DEADLINE_S)
    writer.close()
    assert b" 408 " in status


async def test_a_stalled_offer_delays_no_other_offer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "BODY_TIMEOUT_S", 60.0)  # the stalled body outlives the test
    offer = await make_offer()
    async with app_client() as client:
        stalled = await _raw(
            client,
            f"POST /whip HTTP/1.1\r\nHost: x\r\nContent-Type: {SDP}\r\n"
            "Content-Length: 3000\r\n\r\n",
            b"v=0\r\n",
        )
        async with client.post("/whip", data=offer, headers={"Content-Type": SDP}) as response:
            assert response.status == 201
            await client.delete(response.headers["Location"])
        assert not stalled[0].at_eof() and stalled[0]._buffer == b""  # still waiting: no answer yet  # noqa: SLF001
        stalled[1].close()


# --- bombs and malformed uploads --------------------------------------------------------------


def _png_bomb() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


async def test_png_bomb_is_413_and_multipart_without_boundary_is_400() -> None:
    async with app_client() as client:
        form = aiohttp.FormData()
        form.add_field("photo", _png_bomb(), filename="bomb.png", content_type="image/png")
        async with client.post("/api/avatars", data=form) as response:
            assert response.status == 413
        headers = {"Content-Type": "multipart/form-data"}
        async with client.post("/api/avatars", data=b"--x\r\n\r\n", headers=headers) as response:
            assert response.status == 400
            assert "boundary" in (await response.json())["error"]


# --- viewers ----------------------------------------------------------------------------------


async def test_viewers_are_bounded_and_deleted_only_on_their_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signaling, "CONNECT_TIMEOUT_S", 0.5)  # for viewers that never connect
    async with app_client(max_viewers=2) as client:
        state = client.app[ServerState.KEY]
        speaker = WebRtcClient(str(client.make_url("")), keep_frames=False)
        await speaker.publish(np.zeros(48_000 * 20, dtype=np.float32), "?channel=a")
        view = await make_offer(audio="recvonly", video="recvonly")
        ids = []
        for _ in range(2):
            async with client.post("/whep/a", data=view, headers={"Content-Type": SDP}) as r:
                assert r.status == 201
                ids.append(r.headers["Location"].rsplit("/", 1)[1])
        async with client.post("/whep/a", data=view, headers={"Content-Type": SDP}) as r:
            assert r.status == 503 and "Retry-After" in r.headers
        async with client.delete(f"/whep/other/{ids[0]}") as r:
            assert r.status == 404  # not this channel's viewer
        assert ids[0] in state.viewers
        await _until(lambda: not state.viewers)  # never connected: dropped after the timeout
        await speaker.close()
        await _until(lambda: not state.sessions.by_id)


# --- WebSocket publishers ---------------------------------------------------------------------


async def test_websocket_publisher_that_leaves_frees_its_slot_whatever_it_queued() -> None:
    async with app_client() as client:
        state = client.app[ServerState.KEY]
        ws = await client.ws_connect("/ws/ingest?channel=leaver", max_msg_size=0)
        assert (await ws.receive_json())["type"] == "session"
        await ws.send_bytes(bytes(3_900_000))  # 122 s of 16 kHz PCM, over the 30 s buffer
        await _until(lambda: state.sessions.by_id and not ws.closed)
        ws._response.connection.transport.abort()  # noqa: SLF001 - hang up without a close frame
        await _until(lambda: not state.sessions.by_id, 2.0)


async def test_websocket_publisher_close_frame_frees_its_slot_at_once() -> None:
    async with app_client() as client:
        state = client.app[ServerState.KEY]
        ws = await client.ws_connect("/ws/ingest?channel=closer", max_msg_size=0)
        await ws.receive_json()
        await ws.send_bytes(bytes(3_900_000))
        await ws.close()
        await _until(lambda: not state.sessions.by_id, 2.0)


async def test_a_dead_playout_ends_the_websocket_session(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self) -> None:  # noqa: ANN001
        raise RuntimeError("playout broke")

    monkeypatch.setattr(ws_ingest.PcmPlayout, "run", broken)
    async with app_client() as client:
        state = client.app[ServerState.KEY]
        ws = await client.ws_connect("/ws/ingest?channel=dead")
        await ws.receive_json()
        message = await asyncio.wait_for(ws.receive(), DEADLINE_S)  # the server closes it
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await _until(lambda: not state.sessions.by_id)


# --- a failing session ends alone -------------------------------------------------------------


class RaisingDriver:
    """A mouth driver that fails on its third push, like a model that breaks mid-session."""

    lookahead_samples = 0
    lips_lag_samples = 0

    def __init__(self) -> None:
        self.pushes = 0

    def push(self, audio: np.ndarray) -> np.ndarray:
        self.pushes += 1
        if self.pushes >= 3:
            raise RuntimeError("the driver broke")
        return np.zeros((0, 8), dtype=np.float32)


async def test_a_raising_driver_ends_its_session_and_frees_the_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lipstream.realtime.visemes import FrameEvents
    from lipstream.server import state as state_module

    monkeypatch.setattr(
        state_module,
        "make_driver_with_events",
        lambda name, clock: (RaisingDriver(), FrameEvents(clock, None)),
    )
    async with app_client(max_sessions=1) as client:
        state = client.app[ServerState.KEY]
        speaker = WebRtcClient(str(client.make_url("")), keep_frames=False)
        await speaker.publish(np.zeros(48_000 * 20, dtype=np.float32))
        await _until(lambda: not state.sessions.by_id)  # the trip raised: the session ended
        await speaker.close(hang_up=False)
        again = WebRtcClient(str(client.make_url("")), keep_frames=False)
        await again.publish(np.zeros(48_000, dtype=np.float32))  # the one slot is free again
        await again.close()


def test_png_bomb_helper_declares_900_megapixels() -> None:
    from PIL import Image

    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(_png_bomb()))


async def test_access_log_never_holds_a_token(caplog: pytest.LogCaptureFixture) -> None:
    app = web.Application(middlewares=[security_middleware(Access("T"))])
    app.router.add_get("/ws/ingest", _ok)
    server = TestServer(app)
    await server.start_server(access_log_class=guard.RedactingAccessLogger)
    client = TestClient(server)
    try:
        with caplog.at_level("INFO", logger="aiohttp.access"):
            async with client.get("/ws/ingest?channel=x&token=T") as response:
                assert response.status == 200
            await asyncio.sleep(0.05)
    finally:
        await client.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any("/ws/ingest?channel=x&token=REDACTED" in line for line in lines), lines
    assert not any("token=T" in line for line in lines)
