"""server/media/peer.py: closed mid-connect, no leaked error; any other error still raises."""

from __future__ import annotations

import asyncio
import gc

import pytest
from aiortc import RTCPeerConnection
from aiortc.exceptions import InvalidStateError
from lipstream.server.media.peer import PeerConnection

from tests.support.inprocess import LoopErrors

CYCLES = 40  # aiortc alone leaked the error in 5 of 40 such cycles on this machine


async def _open_then_close(delay_s: float) -> None:
    """A client offer, the server's answer, then the server closes after ``delay_s``."""
    client = RTCPeerConnection()
    client.addTransceiver("audio", direction="sendrecv")
    client.addTransceiver("video", direction="recvonly")
    await client.setLocalDescription(await client.createOffer())
    server = PeerConnection()
    await server.setRemoteDescription(client.localDescription)
    await server.setLocalDescription(await server.createAnswer())
    await client.setRemoteDescription(server.localDescription)
    await asyncio.sleep(delay_s)
    await server.close()
    await client.close()


async def test_closing_while_ice_connects_leaks_no_task_error() -> None:
    with LoopErrors() as errors:
        for i in range(CYCLES):
            await _open_then_close(0.002 * (i % 20))  # close at every stage of the connect task
        await asyncio.sleep(0.3)
        gc.collect()  # "Task exception was never retrieved" is reported on collection
    assert errors.summary() == []


async def test_the_connect_task_still_raises_while_the_connection_is_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failing_connect(self: RTCPeerConnection) -> None:
        raise InvalidStateError("RTCIceTransport is closed")

    monkeypatch.setattr(RTCPeerConnection, "_RTCPeerConnection__connect", failing_connect)
    pc = PeerConnection()
    with pytest.raises(InvalidStateError):
        await pc._RTCPeerConnection__connect()  # type: ignore[attr-defined]
    await pc.close()
    await pc._RTCPeerConnection__connect()  # type: ignore[attr-defined]  # closed: quiet
