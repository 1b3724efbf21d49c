"""Takes the README's picture: the talk page in headless Chromium, speaking through a fake
microphone.

python -m bench.screenshot docs/talk-page.png
"""

from __future__ import annotations

import asyncio
import base64
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

from bench.server_process import ServerProcess
from bench.voices import RATE_HZ, espeak
from tests.chromium import Chromium, find_chromium

SPEECH = "Hello! I am your avatar. Every word you say moves my lips, in real time."


async def shoot(url: str, voice: Path) -> bytes:
    """Opens the talk page, lets it speak for a few seconds, and returns a PNG."""
    flags = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={voice}",
        "--window-size=1100,760",
    ]
    async with Chromium(find_chromium() or "chromium", flags) as browser:
        await browser.call("Page.navigate", url=f"{url}/?autostart=1")
        for _ in range(40):
            await asyncio.sleep(0.25)
            done = await browser.evaluate(
                "window.lipstream && window.lipstream.activity.report().framesDecoded > 60"
                " && window.lipstream.activity.lastDiff > 0.5"
            )
            if done:
                break
        shot = await browser.call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])


def main() -> None:
    """Writes the screenshot to the path given on the command line."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/talk-page.png")
    folder = Path(tempfile.mkdtemp())
    voice = folder / "voice.wav"
    samples = np.tile(espeak(SPEECH), 3)
    with wave.open(str(voice), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE_HZ)
        w.writeframes((samples * 26000).astype(np.int16).tobytes())
    with ServerProcess(folder / "server.log") as url:
        out.write_bytes(asyncio.run(shoot(url, voice)))
    print(out)


if __name__ == "__main__":
    main()
