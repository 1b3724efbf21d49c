"""WHIP egress (``server/media/publish.py``) and node Locations, in-process.

A small WHIP server made here (aiohttp + a real aiortc peer) stands for the media server: it checks
what RFC 9725 asks of a client, answers 201 with a relative Location, counts the media it receives
and records DELETEs. The lipstream app under test is the real one (``create_app``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from lipstream.server.cli import build_parser, serve_options
from lipstream.server.media.publish import PublishError, PublishTarget, resource_url
from lipstream.server.options import ServeOptions
from lipstream.server.processes.worker import options_from_json, options_to_json

from tests.support.inprocess import app_client, make_offer
from tests.support.waits import until

TOKEN = "egress-secret"


@dataclass
class FakeWhipServer:
    """Answers WHIP offers with a real aiortc peer; ``status`` other than 201 refuses them."""

    status: int = 201
    offers: list[dict[str, str]] = field(default_factory=list)  # headers and path of each POST
    deletes: list[str] = field(default_factory=list)
    peers: list[RTCPeerConnection] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    def app(self) -> web.Application:
        """The WHIP endpoint ``/whip/{name}`` and its resources."""
        app = web.Application()
        app.router.add_post("/whip/{name}", self.post)
        app.router.add_delete("/whip/{name}/session/{n}", self.delete)
        return app

    async def post(self, request: web.Request) -> web.Response:
        """One offer: recorded; answered (201, relative Location) or refused with ``status``."""
        self.offers.append(
            {
                "path": request.path,
                "content_type": request.headers.get("Content-Type", ""),
                "authorization": request.headers.get("Authorization", ""),
            }
        )
        if self.status != 201:
            return web.Response(status=self.status, text="not now")
        pc = RTCPeerConnection()
        self.peers.append(pc)

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            self._readers.append(asyncio.ensure_future(self._read(track)))

        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        location = f"{request.match_info['name']}/session/{len(self.peers)}"
        return web.Response(
            status=201,
            text=pc.localDescription.sdp,
            content_type="application/sdp",
            headers={"Location": location},
        )

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.frames[track.kind] += 1
        except MediaStreamError:
            return

    async def delete(self, request: web.Request) -> web.Response:
        """Records the DELETE of a resource."""
        self.deletes.append(request.path)
        return web.Response(status=200)

    async def close(self) -> None:
        """Closes every peer."""
        for task in self._readers:
            task.cancel()
        for pc in self.peers:
            await pc.close()


@pytest.fixture
async def whip_server() -> AsyncIterator[tuple[FakeWhipServer, str]]:
    """The fake media server and its endpoint URL template."""
    fake = FakeWhipServer()
    client = TestClient(TestServer(fake.app()))
    await client.start_server()
    try:
        yield fake, str(client.make_url("/whip/")) + "{channel}"
    finally:
        await fake.close()
        await client.close()


async def _speaker(client: TestClient, channel: str):  # noqa: ANN202 - aiohttp's socket type
    socket = await client.ws_connect(f"/ws/ingest?channel={channel}")
    hello = await socket.receive_json()
    assert hello["type"] == "session"
    return socket


async def test_a_channel_is_published_once_and_deleted_when_it_ends(
    whip_server: tuple[FakeWhipServer, str],
) -> None:
    """POST with application/sdp and the Bearer token; media flows; DELETE on the Location."""
    fake, url = whip_server
    async with app_client(publish_whip=url, publish_token=TOKEN) as client:
        socket = await _speaker(client, "talk-1")
        await until(lambda: fake.frames["video"] > 5 and fake.frames["audio"] > 5, 30, "media")
        assert len(fake.offers) == 1
        offer = fake.offers[0]
        assert offer["path"] == "/whip/talk-1"
        assert offer["content_type"] == "application/sdp"
        assert offer["authorization"] == f"Bearer {TOKEN}"
        await socket.close()
        await until(lambda: fake.deletes == ["/whip/talk-1/session/1"], 10, "the DELETE")
    assert len(fake.offers) == 1, "one publish for the channel's life"


async def test_a_media_server_that_refuses_is_retried_and_logged_once(
    whip_server: tuple[FakeWhipServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    """503s: the session runs as ever, the publisher retries with backoff, one warning."""
    fake, url = whip_server
    fake.status = 503
    caplog.set_level(logging.DEBUG, logger="lipstream.server.media.publish")
    async with app_client(publish_whip=url) as client:
        socket = await _speaker(client, "talk-2")
        await until(lambda: len(fake.offers) >= 2, 10, "a retry after the first 503")
        fake.status = 201
        await until(lambda: fake.frames["video"] > 0, 30, "media once the server takes it")
        stats = await client.get("/healthz")
        assert (await stats.json())["sessions"] == 1
        await socket.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "Publish(" in r.msg]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "503" in warnings[0].getMessage()
    assert any("recovered" in r.getMessage() for r in caplog.records)
    assert fake.offers[0]["authorization"] == "", "no token given, none sent"


async def test_an_unreachable_media_server_does_not_hold_the_node() -> None:
    """Nothing listens at the endpoint: sessions start and end, shutdown is prompt."""
    async with app_client(publish_whip="http://127.0.0.1:9/whip/{channel}") as client:
        socket = await _speaker(client, "talk-3")
        await socket.close()
        socket = await _speaker(client, "talk-3")
        await socket.close()


async def test_locations_are_absolute_on_the_node_with_public_url() -> None:
    """WHIP and WHEP 201s name this node; DELETE on that path ends the session."""
    async with app_client(public_url="http://node-7.example:8080") as client:
        headers = {"Content-Type": "application/sdp"}
        response = await client.post("/whip", data=await make_offer(), headers=headers)
        assert response.status == 201
        location = response.headers["Location"]
        assert location.startswith("http://node-7.example:8080/whip/")
        response = await client.post(
            "/whep/lobby", data=await make_offer(audio="recvonly"), headers=headers
        )
        assert response.status == 201
        assert response.headers["Location"].startswith("http://node-7.example:8080/whep/lobby/")
        deleted = await client.delete(location.removeprefix("http://node-7.example:8080"))
        assert deleted.status == 200


def test_publish_target_and_resource_urls() -> None:
    """``{channel}`` is filled in and quoted; a relative Location resolves on the endpoint."""
    target = PublishTarget("https://sfu.example/whip/{channel}", "t")
    assert target.endpoint("a b") == "https://sfu.example/whip/a%20b"
    assert target.headers("application/sdp") == {
        "Authorization": "Bearer t",
        "Content-Type": "application/sdp",
    }
    assert PublishTarget("https://sfu.example/whip").headers() == {}
    endpoint = "https://sfu.example/whip/endpoint/main"
    assert resource_url(endpoint, "/whip/resource/main") == "https://sfu.example/whip/resource/main"
    assert resource_url(endpoint, "https://other/x") == "https://other/x"
    with pytest.raises(PublishError):
        resource_url(endpoint, None)


def test_publish_options_are_checked_and_the_token_stays_off_worker_command_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bad URLs and a lone token are refused; a worker reads the token from its environment."""
    with pytest.raises(ValueError, match="publish_whip"):
        ServeOptions(publish_whip="ftp://x")
    with pytest.raises(ValueError, match="public_url"):
        ServeOptions(public_url="node1:8080")
    with pytest.raises(ValueError, match="--publish-whip"):
        ServeOptions(publish_token="t")
    options = ServeOptions(publish_whip="http://sfu/whip", publish_token="pub-t0ken")
    text = options_to_json(options)
    assert "pub-t0ken" not in text
    monkeypatch.setenv("LIPSTREAM_PUBLISH_TOKEN", "pub-t0ken")
    assert options_from_json(text).publish_token == "pub-t0ken"


def test_serve_flags_reach_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--public-url`` (trailing slash dropped), ``--publish-whip`` and the token from the env."""
    monkeypatch.setenv("LIPSTREAM_PUBLISH_TOKEN", "from-env")
    args = build_parser().parse_args(
        [
            "serve",
            "--public-url",
            "http://node1:8080/",
            "--publish-whip",
            "http://sfu:7080/whip/endpoint/{channel}",
        ]
    )
    options = serve_options(args)
    assert options.public_url == "http://node1:8080"
    assert options.publish_whip == "http://sfu:7080/whip/endpoint/{channel}"
    assert options.publish_token == "from-env"
