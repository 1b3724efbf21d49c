"""Bad input gets a clear 4xx/5xx with a reason, and the server keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import time

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from PIL import Image

from bench.whip_client import WebRtcClient
from tests.conftest import REPO_ROOT, metric

SDP = {"Content-Type": "application/sdp"}
VANISH_LIMIT_S = 10.0


@pytest.fixture(scope="module")
def server(start_server) -> str:  # noqa: ANN001 - pytest fixture
    return start_server("--driver", "loudness", "--max-sessions", "2")


async def _post(url: str, path: str, data: bytes | str, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + path, data=data, headers=headers) as response:
            return response.status, await response.text()


async def _offer(audio: bool, video: bool) -> str:
    pc = RTCPeerConnection()
    if audio:
        pc.addTransceiver("audio", direction="sendrecv")
    if video:
        pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "empty"),
        ("hello, this is not SDP", "not an SDP offer"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "no media sections"),
    ],
)
async def test_malformed_sdp_is_400_with_reason(server: str, body: str, reason: str) -> None:
    status, text = await _post(server, "/whip", body, SDP)
    assert status == 400
    assert reason in text


async def test_sdp_with_broken_transport_is_400(server: str) -> None:
    offer = await _offer(audio=True, video=True)
    broken = "\r\n".join(line for line in offer.split("\r\n") if not line.startswith("a=ice-ufrag"))
    status, text = await _post(server, "/whip", broken, SDP)
    assert status == 400
    assert "ice-ufrag" in text  # refused before any connection exists


async def test_audio_less_offer_is_400(server: str) -> None:
    status, text = await _post(server, "/whip", await _offer(audio=False, video=True), SDP)
    assert status == 400
    assert "no audio" in text


async def test_wrong_content_type_is_415(server: str) -> None:
    status, text = await _post(
        server, "/whip", await _offer(True, True), {"Content-Type": "text/plain"}
    )
    assert status == 415
    assert "application/sdp" in text


async def test_unknown_avatar_is_404_and_a_bad_channel_name_400(server: str) -> None:
    status, text = await _post(server, "/whip?avatar=nope", await _offer(True, True), SDP)
    assert (status, "unknown avatar" in text) == (404, True)
    status, text = await _post(server, "/whep/no%20spaces", await _offer(False, True), SDP)
    assert (status, "channel must be" in text) == (400, True)


async def _upload(url: str, data: bytes, filename: str = "photo.png") -> tuple[int, dict]:
    form = aiohttp.FormData()
    form.add_field("photo", data, filename=filename, content_type="application/octet-stream")
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/api/avatars", data=form) as response:
            return response.status, await response.json()


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_upload_errors_are_4xx_with_reason(server: str) -> None:
    status, body = await _upload(server, b"GIF89a but then garbage" * 10)
    assert status == 415 and "not a readable image" in body["error"]
    status, body = await _upload(server, b"\0" * (10 * 1024 * 1024 + 1))
    assert status == 413
    huge = _png(np.zeros((5000, 4500, 3), dtype=np.uint8))  # 22.5 Mpx, compresses to ~70 KB
    status, body = await _upload(server, huge)
    assert status == 413 and "20 Mpx" in body["error"]
    gradient = np.tile(np.linspace(0, 255, 600, dtype=np.uint8)[None, :, None], (600, 1, 3))
    status, body = await _upload(server, _png(gradient))
    assert status == 422 and "face" in body["error"].lower()


async def test_uploaded_photo_becomes_a_usable_avatar(server: str, photos) -> None:  # noqa: ANN001
    status, body = await _upload(server, (photos / "obama.jpg").read_bytes(), "obama.jpg")
    assert status == 201, body
    client = WebRtcClient(server, keep_frames=False)
    try:
        await client.publish(np.zeros(48_000, dtype=np.float32), f"?avatar={body['id']}")
        await asyncio.sleep(2.0)
        assert len(client.received.video_at) > 10
    finally:
        await client.close()


async def test_more_sessions_than_the_limit_get_503(server: str) -> None:
    clients = [WebRtcClient(server, keep_frames=False) for _ in range(2)]
    silence = np.zeros(48_000 * 5, dtype=np.float32)
    try:
        for client in clients:
            await client.publish(silence)
        async with aiohttp.ClientSession() as http:
            async with http.post(server + "/whip", data=await _offer(True, True), headers=SDP) as r:
                assert r.status == 503
                assert int(r.headers["Retry-After"]) > 0
                assert "slots" in await r.text()
    finally:
        for client in clients:
            await client.close()


VANISHING_CLIENT = """
import asyncio, sys, numpy as np
sys.path.insert(0, {root!r})
from bench.whip_client import WebRtcClient
async def main():
    client = WebRtcClient({url!r}, keep_frames=False)
    await client.publish(np.zeros(48000 * 60, dtype=np.float32), "?channel=vanisher")
    print("connected", flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


async def test_vanished_client_is_cleaned_up_and_others_keep_going(server: str) -> None:
    survivor = WebRtcClient(server, keep_frames=False)
    await survivor.publish(np.zeros(48_000 * 40, dtype=np.float32))
    script = VANISHING_CLIENT.format(root=str(REPO_ROOT), url=server)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        await process.stdout.readline()
        await asyncio.sleep(2.0)
        assert metric(server, "lipstream_sessions") == 2
        process.kill()  # no DELETE, no DTLS close: the client just disappears
        killed_at = time.monotonic()
        while metric(server, "lipstream_sessions") > 1:
            assert time.monotonic() - killed_at < VANISH_LIMIT_S, "vanished session not freed"
            await asyncio.sleep(0.25)
        frames_before = len(survivor.received.video_at)
        await asyncio.sleep(1.0)
        assert len(survivor.received.video_at) - frames_before >= 15  # the other session kept going
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        await survivor.close()
    assert metric(server, "lipstream_sessions") == 0
