"""A real Janus (VideoRoom) behind simple-whip-server, started by a test, and light subscribers.

Janus and simple-whip-server are the Debian packages (``.ci/run`` installs both). Janus runs from a
config folder written here: the VideoRoom plugin and the HTTP and WebSocket transports only, on
free loopback ports, one room (``ROOM``). simple-whip-server reads its settings from ``config.js``
beside its ``server.js``, so its two source files are copied into a temp folder next to a
``config.js`` that points at this Janus; ``/whip/create`` then maps a WHIP endpoint to the room.

Subscribers join the room through Janus's HTTP API (create session, attach
``janus.plugin.videoroom``, ``join`` as subscriber to a feed, answer Janus's offer, ``start``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.server_process import free_port

JANUS_LIBS = Path("/usr/lib/x86_64-linux-gnu/janus")
UNPACKED = Path.home() / ".cache/lipstream/simple-whip-server"  # .ci/run's fallback install


def _whip_server_src() -> Path:
    """simple-whip-server's ``src`` folder: installed by apt, or unpacked by ``.ci/run``."""
    for folder in (
        os.environ.get("LIPSTREAM_WHIP_SERVER_DIR"),
        "/usr/share/simple-whip-server",
        UNPACKED / "usr/share/simple-whip-server",
    ):
        if folder and (Path(folder) / "src/server.js").exists():
            return Path(folder) / "src"
    return Path("/usr/share/simple-whip-server/src")


def _node_env() -> dict[str, str]:
    """Node's environment: the unpacked install's npm modules on ``NODE_PATH`` when present."""
    env = {**os.environ, "NODE_ENV": "production"}
    if (UNPACKED / "node_modules").is_dir():
        paths = [str(UNPACKED / "node_modules"), env.get("NODE_PATH", "")]
        env["NODE_PATH"] = os.pathsep.join(p for p in paths if p)
    return env


WHIP_SERVER_SRC = _whip_server_src()
ROOM = 1234
START_TIMEOUT_S = 20.0  # Janus loads its plugins and binds in well under a second on this machine
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)
EVENT_TIMEOUT_S = 10.0  # Janus's long poll answers within 30 s; its offer comes well before


def missing() -> str | None:
    """Why Janus or simple-whip-server cannot run here, or None when both can."""
    if shutil.which("janus") is None or not (JANUS_LIBS / "plugins/libjanus_videoroom.so").exists():
        return "janus is not installed (apt-get install janus)"
    if not (WHIP_SERVER_SRC / "server.js").exists() or shutil.which("node") is None:
        return "simple-whip-server is not installed (apt-get install simple-whip-server)"
    return None


_OTHER_PLUGINS = ",".join(
    f"libjanus_{name}.so"
    for name in "audiobridge duktape echotest lua nosip recordplay sip streaming textroom "
    "videocall voicemail".split()
)
_OTHER_TRANSPORTS = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so"


def _janus_config(folder: Path, http_port: int, ws_port: int, rtp_ports: tuple[int, int]) -> None:
    libs = JANUS_LIBS
    (folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{libs}/plugins"
    transports_folder = "{libs}/transports"
    events_folder = "{libs}/events"
    loggers_folder = "{libs}/loggers"
    debug_level = 3
    session_timeout = 300
}}
media: {{ rtp_port_range = "{rtp_ports[0]}-{rtp_ports[1]}" }}
nat: {{ nice_debug = false }}
plugins: {{ disable = "{_OTHER_PLUGINS}" }}
transports: {{ disable = "{_OTHER_TRANSPORTS}" }}
events: {{ broadcast = false }}
loggers: {{ disable = "libjanus_jsonlog.so" }}
"""
    )
    (folder / "janus.transport.http.jcfg").write_text(
        f"""general: {{ json = "compact" base_path = "/janus" http = true port = {http_port}
    ip = "127.0.0.1" https = false }}
admin: {{ admin_http = false admin_https = false }}
"""
    )
    (folder / "janus.transport.websockets.jcfg").write_text(
        f"""general: {{ json = "compact" ws = true ws_port = {ws_port} ws_ip = "127.0.0.1"
    wss = false }}
admin: {{ admin_ws = false admin_wss = false }}
"""
    )
    # 500 publishers' worth of subscribers is Janus's business; the room only needs our one feed.
    (folder / "janus.plugin.videoroom.jcfg").write_text(
        f"""general: {{ }}
room-{ROOM}: {{
    description = "lipstream test"
    publishers = 4
    bitrate = 1000000
    fir_freq = 2
    audiocodec = "opus"
    videocodec = "vp8"
}}
"""
    )


def _whip_server_folder(folder: Path, ws_port: int, port: int) -> Path:
    src = folder / "src"
    src.mkdir(parents=True)
    for name in ("server.js", "whip-janus.js"):
        shutil.copy(WHIP_SERVER_SRC / name, src / name)
    (src / "config.js").write_text(
        "module.exports = {\n"
        f"  janus: {{ address: 'ws://127.0.0.1:{ws_port}' }},\n"
        f"  port: {port},\n"
        "  rest: '/whip',\n"
        "  allowTrickle: true,\n"
        "  strictETags: false,\n"
        "  iceServers: []\n"
        "};\n"
    )
    (folder / "web").mkdir()
    return folder


@dataclass
class JanusStack:
    """Janus plus simple-whip-server in ``folder``; ``start()`` then ``stop()``."""

    folder: Path
    http_port: int = field(default_factory=free_port)
    ws_port: int = field(default_factory=free_port)
    whip_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def janus_url(self) -> str:
        """Janus's HTTP API base."""
        return f"http://127.0.0.1:{self.http_port}/janus"

    @property
    def whip_base(self) -> str:
        """simple-whip-server's REST base."""
        return f"http://127.0.0.1:{self.whip_port}/whip"

    def start(self) -> None:
        """Starts Janus, waits for its HTTP API, then starts simple-whip-server and waits for it."""
        conf = self.folder / "janus-conf"
        conf.mkdir()
        base = 20_000 + (self.http_port % 20_000)
        _janus_config(conf, self.http_port, self.ws_port, (base, base + 999))
        self._spawn(["janus", "-F", str(conf), "-o"], "janus.log")
        self._wait_http(f"{self.janus_url}/info", "janus.log")
        whip = _whip_server_folder(self.folder / "whip", self.ws_port, self.whip_port)
        self._spawn(["node", "src/server.js"], "whip.log", cwd=whip, env=_node_env())
        self._wait_http(f"{self.whip_base}/healthcheck", "whip.log")

    def _spawn(
        self, command: list[str], log: str, cwd: Path | None = None, env: Any = None
    ) -> None:
        with (self.folder / log).open("wb") as sink:
            self.processes.append(
                subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd, env=env)
            )

    def _wait_http(self, url: str, log: str) -> None:
        import urllib.request

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.processes[-1].poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer: {(self.folder / log).read_text()[-3000:]}")

    def stop(self) -> None:
        """Terminates both (SIGTERM, then SIGKILL after 5 s)."""
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()

    async def create_endpoint(self, endpoint: str, token: str) -> str:
        """Maps WHIP endpoint ``endpoint`` (Bearer ``token``) to the room; returns its URL."""
        body = {"id": endpoint, "room": ROOM, "token": token, "label": endpoint}
        async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:
            async with http.post(f"{self.whip_base}/create", json=body) as response:
                if response.status != 200:
                    raise RuntimeError(f"/whip/create: {response.status} {await response.text()}")
        return f"{self.whip_base}/endpoint/{endpoint}"


class JanusApi:
    """A minimal client of Janus's HTTP API (one session, plugin handles on it)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.session: int | None = None

    async def call(self, path: str, message: dict[str, Any]) -> dict[str, Any]:
        """POSTs ``message`` (a transaction id added) to ``base/path``; raises on a Janus error."""
        message = {**message, "transaction": secrets.token_hex(6)}
        async with self.http.post(f"{self.base}{path}", json=message) as response:
            reply: dict[str, Any] = await response.json(content_type=None)
        if reply.get("janus") == "error":
            raise RuntimeError(f"Janus: {reply['error']}")
        return reply

    async def open(self) -> None:
        """Creates the Janus session."""
        self.session = (await self.call("", {"janus": "create"}))["data"]["id"]

    async def destroy(self) -> None:
        """Ends the session and its handles (a subscriber's: Janus stops forwarding to it)."""
        await self.call(f"/{self.session}", {"janus": "destroy"})

    async def attach(self) -> int:
        """A new VideoRoom handle on the session."""
        reply = await self.call(f"/{self.session}", {"janus": "attach", "plugin": PLUGIN})
        return int(reply["data"]["id"])

    async def request(self, handle: int, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """A plugin message; a synchronous reply's plugin data, or Janus's ``ack``."""
        message = {"janus": "message", "body": body, **extra}
        return await self.call(f"/{self.session}/{handle}", message)

    async def event(self, handle: int, deadline_s: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        """The next asynchronous event for ``handle``.

        Long-polls the session: use one session per concurrent waiter, as each browser has its own.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while (left := end - loop.time()) > 0:
            poll = aiohttp.ClientTimeout(total=left)
            try:
                async with self.http.get(f"{self.base}/{self.session}", timeout=poll) as response:
                    events = await response.json(content_type=None)
            except asyncio.TimeoutError:
                break
            for event in events if isinstance(events, list) else [events]:
                if event.get("sender") == handle and event.get("janus") == "event":
                    return dict(event)
        raise TimeoutError(f"no Janus event for handle {handle} within {deadline_s} s")

    async def publishers(self) -> list[int]:
        """Feed ids of the room's publishers."""
        handle = await self.attach()
        reply = await self.request(handle, {"request": "listparticipants", "room": ROOM})
        people = reply["plugindata"]["data"].get("participants", [])
        return [int(p["id"]) for p in people if p.get("publisher")]


PLUGIN = "janus.plugin.videoroom"


class CountingSubscriber:
    """One VideoRoom subscriber: an aiortc peer that counts the RTP packets it receives.

    Every receiver's packet handler is wrapped by a counter (packets and payload bytes per kind,
    after SRTP decryption and parsing). With ``decode`` False the packets stop there, never
    reaching a jitter buffer or decoder: 50 VP8 decoders would not fit two cores beside the avatar
    node. With ``decode`` True they go on to aiortc's own handler and the video is decoded as any
    client does; decoded frames are counted too.
    """

    def __init__(self, decode: bool) -> None:
        self.decode = decode
        self.pc = RTCPeerConnection()
        self.packets = {"audio": 0, "video": 0}
        self.bytes = {"audio": 0, "video": 0}
        self.video_frames = 0
        self._readers: list[asyncio.Task[None]] = []
        self._api: JanusApi | None = None

    async def join(self, http: aiohttp.ClientSession, janus_url: str, feed: int) -> None:
        """Joins ``feed`` in the room, answers Janus's offer and starts the stream.

        Each subscriber has a Janus session of its own, as each browser would.
        """
        api = self._api = JanusApi(http, janus_url)
        await api.open()
        handle = await api.attach()
        body = {"request": "join", "ptype": "subscriber", "room": ROOM, "streams": [{"feed": feed}]}
        await api.request(handle, body)
        event = await api.event(handle)
        offer = event["jsep"]

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if self.decode and track.kind == "video":
                self._readers.append(asyncio.ensure_future(self._read(track)))

        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        for transceiver in self.pc.getTransceivers():
            self._count(transceiver.receiver, transceiver.kind)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = {"type": "answer", "sdp": self.pc.localDescription.sdp}
        await api.request(handle, {"request": "start"}, jsep=answer)

    def _count(self, receiver: Any, kind: str) -> None:
        handle = receiver._handle_rtp_packet

        async def count(packet: Any, arrival_time_ms: int) -> None:
            self.packets[kind] += 1
            self.bytes[kind] += len(packet.payload)
            if self.decode:
                await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = count  # aiortc's RtpRouter looks it up per packet

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.video_frames += 1
        except MediaStreamError:
            return

    async def close(self) -> None:
        """Closes the peer and its readers, and leaves Janus (its session destroyed)."""
        for task in self._readers:
            task.cancel()
        await self.pc.close()
        if self._api is not None and self._api.session is not None:
            await self._api.destroy()
            self._api.session = None
