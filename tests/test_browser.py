"""The real talk and viewer pages in headless Chromium with a fake microphone playing speech.

The server runs with tokens, so the pages are opened as ``lipstream serve`` prints them (the token
in the URL once); they must keep it and send it on every call.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.chromium import Chromium, find_chromium
from tests.conftest import Speech

PAGE_TIMEOUT_S = 40.0
TOKEN, VIEWER_TOKEN = "talk-secret", "viewer-secret"
MIN_PIXEL_CHANGE = 0.5  # mean |delta| of red over a 128x128 sample; a frozen video gives 0

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")


@pytest.fixture(scope="module")
def server(start_server) -> str:  # noqa: ANN001 - pytest fixture
    return start_server("--driver", "loudness", "--token", TOKEN, "--viewer-token", VIEWER_TOKEN)


async def _wait_for(browser: Chromium, expression: str, what: str) -> object:
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        value = await browser.evaluate(expression)
        if value:
            return value
        await asyncio.sleep(0.5)
    state = await browser.evaluate("JSON.stringify(window.lipstream && window.lipstream.state)")
    raise AssertionError(f"timed out waiting for {what}; page state: {state}")


async def test_talk_page_plays_a_changing_avatar(server: str, speech: Speech) -> None:
    flags = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech.path}",
    ]
    async with Chromium(find_chromium() or "", flags) as browser:
        await browser.call("Page.enable")
        url = f"{server}/?token={TOKEN}&autostart=1&channel=browser"
        await browser.call("Page.navigate", url=url)
        await _wait_for(browser, "window.lipstream && window.lipstream.state.resource", "WHIP")
        assert await browser.evaluate("location.search") == "?autostart=1&channel=browser"
        report = await _wait_for(
            browser,
            "(() => { const r = window.lipstream.activity.report();"
            " return r.framesDecoded > 150 && r.samples > 20 ? r : null; })()",
            "150 decoded frames (the speech starts after 2 s of silence)",
        )
        assert report["width"] >= 512 and report["height"] >= 512
        assert not report["paused"]
        assert report["maxDiff"] > MIN_PIXEL_CHANGE, f"video not changing: {report}"
        stats = await _wait_for(
            browser,
            "window.lipstream.state.stats.frames_rendered > 0 && window.lipstream.state.stats",
            "stats readout",
        )
        assert stats["pipeline_delay_ms"] is not None

        async with Chromium(find_chromium() or "", []) as viewer:
            url = f"{server}/viewer?channel=browser&bg=00ff00&token={VIEWER_TOKEN}"
            await viewer.call("Page.navigate", url=url)
            seen = await _wait_for(
                viewer,
                "(() => { if (!window.lipstream) return null;"
                " const r = window.lipstream.activity.report();"
                " return r.framesDecoded > 25 ? r : null; })()",
                "viewer frames",
            )
            assert seen["width"] >= 512
            background = await viewer.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(0, 255, 0)"


async def test_viewer_shows_the_idle_face_and_the_rig_page_moves(
    server: str, speech: Speech
) -> None:
    async with Chromium(find_chromium() or "", []) as viewer:
        await viewer.call("Page.navigate", url=f"{server}/viewer?channel=idle&token={VIEWER_TOKEN}")
        idle = await _wait_for(
            viewer,
            "(() => { const s = window.lipstream && window.lipstream.state;"
            " return s && s.idle === true && window.lipstream.activity.report().framesDecoded > 25"
            " ? document.getElementById('status').textContent : null; })()",
            "the idle face with its status",
        )
        assert idle == "waiting for a speaker"
        async with Chromium(find_chromium() or "", []) as rig:
            await rig.call("Page.navigate", url=f"{server}/rig?channel=idle&token={VIEWER_TOKEN}")
            await _wait_for(
                rig, "window.lipstream && window.lipstream.state.frames > 25", "idle rig"
            )
            pcm = (speech.samples[::3] * 32767).astype("<i2").tobytes()
            auth = {"Authorization": f"Bearer {TOKEN}"}
            ws_url = server.replace("http", "ws", 1) + "/ws/ingest?channel=idle"
            async with aiohttp.ClientSession(headers=auth) as http:
                async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                    await ws.send_bytes(pcm)
                    moved = await _wait_for(
                        rig,
                        "(() => { const j = window.lipstream.state.jawOpen;"
                        " return Math.max(...j) > 0.2 ? Math.max(...j) : null; })()",
                        "the rig's mouth opening",
                    )
                    assert moved > 0.2
                    path = await rig.evaluate("document.getElementById('lower').getAttribute('d')")
                    assert path.startswith("M ")
                    await _wait_for(viewer, "window.lipstream.state.idle === false", "a speaker")
                    assert (
                        await viewer.evaluate("document.getElementById('status').textContent") == ""
                    )
