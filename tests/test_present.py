"""``lipstream present`` against a virtual microphone: a null sink whose monitor plays speech.

A real PulseAudio daemon runs for the test on a private socket; ``paplay`` plays the test speech
into a null sink over and over, and ``lipstream present`` captures the sink's monitor through
sounddevice (PortAudio -> ALSA -> PulseAudio). The avatar on the channel must speak: the channel's
events show speech and an open mouth.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bench.server_process import free_port
from tests.conftest import Speech

pytestmark = pytest.mark.skipif(
    shutil.which("pulseaudio") is None or shutil.which("paplay") is None,
    reason="pulseaudio is not installed (apt-get install pulseaudio pulseaudio-utils)",
)
SINK = "lipstream_mic"
START_TIMEOUT_S = 180.0  # the presenter builds the default avatar on its first start


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A PulseAudio daemon with a null sink; the environment its clients need."""
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    socket = runtime / "native"
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "PULSE_RUNTIME_PATH": str(runtime),
        "PULSE_SERVER": f"unix:{socket}",
        "HOME": str(tmp_path),
    }
    daemon = subprocess.Popen(
        [
            "pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "-n",
            "--use-pid-file=no", "--system=false",
            f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
            f"--load=module-null-sink sink_name={SINK} rate=48000 channels=1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 10.0
    while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            raise AssertionError(f"pulseaudio did not start: {daemon.stderr.read()[-2000:]!r}")  # type: ignore[union-attr]
        time.sleep(0.1)
    try:
        yield env
    finally:
        daemon.terminate()
        daemon.wait(10)


def test_list_devices_shows_the_pulse_input(pulse: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lipstream.server.cli", "present", "--list-devices"],
        env=pulse,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "pulse" in out.stdout.lower()


@pytest.fixture
def presenter(pulse: dict[str, str], speech: Speech, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Speech looping into the null sink, and ``lipstream present`` on its monitor."""
    player = subprocess.Popen(
        ["sh", "-c", f"while true; do paplay --device={SINK} {speech.path}; done"],
        env=pulse,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = free_port()
    log_path = tmp_path / "present.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lipstream.server.cli", "present", "--device", "pulse",
             "--channel", "mic", "--driver", "loudness", "--port", str(port)],
            env={**pulse, "PULSE_SOURCE": f"{SINK}.monitor", "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        process.terminate()
        player.terminate()
        process.wait(10)
        player.wait(10)


async def test_the_avatar_speaks_with_the_virtual_microphone(
    presenter: tuple[str, Path],
) -> None:
    base, log_path = presenter
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            try:
                async with http.get(base + "/healthz") as response:
                    if response.status == 200 and (await response.json())["sessions"] == 1:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
        async with http.ws_connect(base.replace("http", "ws") + "/ws/events?channel=mic") as ws:
            jaw = 0.0
            async with asyncio.timeout(60):
                async for message in ws:
                    event = json.loads(message.data)
                    if event["speaking"] and not event["idle"]:
                        jaw = max(jaw, event["weights"]["jawOpen"])
                    if jaw > 0.2:
                        break
            assert jaw > 0.2
    port = base.rsplit(":", 1)[1]
    assert f"http://localhost:{port}/viewer?channel=mic" in log_path.read_text()
