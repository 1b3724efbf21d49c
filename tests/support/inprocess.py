"""An in-process server for tests: ``create_app`` behind aiohttp's test server, no subprocess."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection
from lipstream.server.http.app import create_app
from lipstream.server.options import ServeOptions


async def make_offer(audio: str | None = "sendrecv", video: str | None = "recvonly") -> str:
    """A real aiortc offer with the given directions (None: no such m-line)."""
    pc = RTCPeerConnection()
    if audio:
        pc.addTransceiver("audio", direction=audio)
    if video:
        pc.addTransceiver("video", direction=video)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@asynccontextmanager
async def app_client(**options: Any) -> AsyncIterator[TestClient]:
    """A client of a fresh in-process app (loudness driver unless told otherwise)."""
    options.setdefault("driver", "loudness")
    client = TestClient(TestServer(create_app(ServeOptions(**options))))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


class LoopErrors:
    """Collects what the event loop's exception handler sees (errors no handler caught)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._previous: Any = None

    def __enter__(self) -> LoopErrors:
        loop = asyncio.get_running_loop()
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, context: self.seen.append(context))
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.get_running_loop().set_exception_handler(self._previous)

    def summary(self) -> list[str]:
        """One line per error seen."""
        return [f"{c.get('message')}: {c.get('exception')!r}" for c in self.seen]
