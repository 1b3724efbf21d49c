"""The front of ``lipstream serve --workers N``: the public port, relaying signaling to workers.

The front serves the pages itself and relays every API call to a worker process over its unix
socket. It stays stateless: session and viewer ids carry their worker's prefix (``w1-3fa9...``),
and what it needs to know about sessions (counts for the global ``--max-sessions``, channels for
uniqueness and WHEP) it asks the workers for. WebRTC media never passes through here: each
worker's aiortc gathers its own ICE candidates and talks to the client directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from yarl import URL

from ..avatars import MAX_UPLOAD_BYTES
from ..http.app import MULTIPART_OVERHEAD_BYTES, UPLOAD_TIMEOUT_S, add_page_routes, visible_config
from ..http.dub import add_dub_routes
from ..http.guard import Access, read_body, role, security_middleware
from ..http.sdp_check import MAX_OFFER_BYTES
from ..options import ServeOptions
from ..registry import PLACEMENT_HEADER, RETRY_AFTER_S
from ..tasks import TaskOwner
from .workers import WORKER_URL, Worker, WorkerPool

logger = logging.getLogger(__name__)

FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=60)  # a WHIP answer waits for ICE gathering
PASSED_BACK = ("Content-Type", "Location", "Retry-After", "WWW-Authenticate")
WS_MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # aiohttp's default, stated: one message of PCM at most
WORKER_ID = re.compile(r"w(\d+)-.+")


@dataclass
class Front:
    """What the front's handlers share: the options, the pool, and the lock on new sessions.

    The lock covers only the choice of a worker (a survey of the workers over their sockets), never
    a body read or a worker's answer: the offer is read first, and the choice is then held as a
    pending placement until the worker has answered, so that two offers at once cannot both take
    the last slot or the same channel.
    """

    KEY: ClassVar[web.AppKey[Front]] = web.AppKey("lipstream_front")

    options: ServeOptions
    pool: WorkerPool
    new_session_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: dict[str, tuple[Worker, str]] = field(default_factory=dict)  # id -> worker, channel

    def worker_for(self, ident: str) -> Worker | None:
        """The worker that made session or viewer id ``ident``, from its prefix."""
        match = WORKER_ID.fullmatch(ident)
        if match is None or int(match[1]) >= len(self.pool.workers):
            return None
        return self.pool.workers[int(match[1])]

    async def survey(self) -> list[tuple[Worker, dict[str, Any] | None]]:
        """Each worker with its pid and sessions, or None where it does not answer."""

        async def ask(worker: Worker) -> dict[str, Any] | None:
            try:
                return dict(await worker.get_json("/internal/sessions"))
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                return None

        answers = await asyncio.gather(*(ask(w) for w in self.pool.workers))
        return list(zip(self.pool.workers, answers, strict=True))

    async def place(self, channel: str) -> Worker | web.Response:
        """The worker a new session on ``channel`` should go to, or the refusal to send back.

        Call with ``new_session_lock`` held; counts the placements still being answered.
        """
        survey = await self.survey()
        live = [(w, info) for w, info in survey if info is not None]
        reported = {p for _, info in live for p in info.get("placements", ())}
        unseen = [(w, ch) for pid, (w, ch) in self.pending.items() if pid not in reported]
        channels = {ch for _, info in live for ch in _channels(info)} | {ch for _, ch in unseen}
        if channel and channel in channels:
            return _error(409, f"channel {channel!r} already has a speaker")

        def load(worker: Worker, info: dict[str, Any]) -> int:
            return _load(info) + sum(1 for w, _ in unseen if w is worker)

        limit = self.options.max_sessions
        if not live or sum(load(w, info) for w, info in live) >= limit:
            retry = {"Retry-After": str(RETRY_AFTER_S)}
            return _error(503, f"all {limit} session slots are in use", **retry)
        holding = [w for w, info in live if channel in info.get("channels", ())]
        if holding:  # the channel's viewers are there: its speakers must be too
            return holding[0]
        return min(live, key=lambda entry: load(*entry))[0]

    @asynccontextmanager
    async def placement(self, channel: str) -> AsyncIterator[tuple[Worker, str] | web.Response]:
        """A worker for a new session and the placement id to send it, or a refusal.

        The slot is counted as pending until the block ends (the worker has answered by then).
        """
        async with self.new_session_lock:
            placed = await self.place(channel)
            if isinstance(placed, web.Response):
                yield placed
                return
            pid = secrets.token_hex(8)
            self.pending[pid] = (placed, channel)
        try:
            yield placed, pid
        finally:
            self.pending.pop(pid, None)


def _channels(info: dict[str, Any]) -> list[str]:
    return [s["channel"] for s in info["sessions"]] + list(info["starting"])


def _load(info: dict[str, Any]) -> int:
    return len(info["sessions"]) + len(info["starting"])


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


def _without_token(request: web.Request) -> list[tuple[str, str]]:
    """The query to relay: the token was checked here, and workers would only log it."""
    return [(k, v) for k, v in request.rel_url.query.items() if k != "token"]


async def read_bounded(request: web.Request) -> bytes:
    """The body of a request to relay, read with the limit and deadline of its kind."""
    if request.method in ("GET", "HEAD"):
        return b""
    if request.path == "/api/avatars":
        return await read_body(
            request, MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES, UPLOAD_TIMEOUT_S
        )
    return await read_body(request, MAX_OFFER_BYTES)


async def forward(
    request: web.Request, worker: Worker, body: bytes | None = None, placement: str | None = None
) -> web.Response:
    """Relays ``request`` to ``worker`` and its answer back.

    Method, path, query, body and Content-Type go; status, body, Content-Type, Location,
    Retry-After and WWW-Authenticate come back. Bodies pass as raw bytes, so multipart uploads
    keep their boundary; they are read bounded (``read_bounded``) unless already read.
    """
    url = URL(WORKER_URL).with_path(request.rel_url.raw_path, encoded=True)
    url = url.with_query(_without_token(request))
    content_type = request.headers.get("Content-Type")
    headers = {"Content-Type": content_type} if content_type else {}
    if placement is not None:
        headers[PLACEMENT_HEADER] = placement
    if body is None:
        body = await read_bounded(request)
    try:
        async with worker.client.request(
            request.method, url, data=body, headers=headers, timeout=FORWARD_TIMEOUT
        ) as response:
            payload = await response.read()
            passed = {k: response.headers[k] for k in PASSED_BACK if k in response.headers}
            return web.Response(status=response.status, body=payload, headers=passed)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        logger.warning("Worker %d did not answer %s %s: %r", worker.index, request.method, url, exc)
        return _error(502, f"worker {worker.index} is not answering; try again shortly")


async def healthz(request: web.Request) -> web.Response:
    """200 with the summed sessions when every worker answers, 503 otherwise; per-worker detail."""
    front = request.app[Front.KEY]
    survey = await front.survey()
    workers = [
        {
            "index": w.index,
            "pid": None if info is None else info["pid"],
            "sessions": None if info is None else len(info["sessions"]),
            "restarts": w.restarts,
        }
        for w, info in survey
    ]
    ok = all(info is not None for _, info in survey)
    sessions = sum(len(info["sessions"]) for _, info in survey if info is not None)
    body = {"status": "ok" if ok else "degraded", "sessions": sessions, "workers": workers}
    return web.json_response(body, status=200 if ok else 503)


class _Families(Collector):
    """A collector that hands over families already gathered (the workers' merged metrics)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def merge_metrics(texts: dict[int, str]) -> bytes:
    """Workers' Prometheus texts as one exposition.

    Every sample gains a ``worker`` label, each family keeps one HELP/TYPE. Sum over ``worker`` for
    server-wide totals.
    """
    families: dict[str, Metric] = {}
    for index, text in texts.items():
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            merged.samples += [
                sample._replace(labels={**sample.labels, "worker": str(index)})
                for sample in family.samples
            ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return generate_latest(registry)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text of every answering worker, labelled ``worker="i"``."""
    front = request.app[Front.KEY]

    async def text(worker: Worker) -> str | None:
        try:
            async with worker.client.get(WORKER_URL + "/metrics", timeout=FORWARD_TIMEOUT) as r:
                return await r.text() if r.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return None

    texts = await asyncio.gather(*(text(w) for w in front.pool.workers))
    merged = merge_metrics({i: t for i, t in enumerate(texts) if t is not None})
    return web.Response(body=merged, content_type="text/plain", charset="utf-8")


async def to_first_worker(request: web.Request) -> web.Response:
    """Uploads: worker 0 builds them into the shared cache, where the others find them by id."""
    return await forward(request, request.app[Front.KEY].pool.workers[0])


async def config(request: web.Request) -> web.Response:
    """Worker 0's config, with the avatar list cut to what this request's role may use."""
    response = await forward(request, request.app[Front.KEY].pool.workers[0])
    if response.status != 200 or response.body is None:
        return response
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    return web.json_response(visible_config(body, role(request)))


async def whip_post(request: web.Request) -> web.Response:
    """A new session goes to the worker with the fewest, within the global limits.

    The offer is read (bounded, with a deadline) before anything is locked.
    """
    front = request.app[Front.KEY]
    body = await read_bounded(request)
    async with front.placement(request.query.get("channel", "")) as placed:
        if isinstance(placed, web.Response):
            return placed
        worker, pid = placed
        return await forward(request, worker, body, pid)


async def by_session_id(request: web.Request) -> web.Response:
    """``/whip/{id}`` and its sub-resources go to the worker named by the id's prefix."""
    return await _to_named_worker(request, "session_id", "no such session")


async def channel_worker(front: Front, channel: str) -> Worker:
    """The worker that holds ``channel`` (a speaker or viewers), else worker 0.

    A channel lives in one worker: its viewers, listeners and speakers all go there.
    """
    for worker, info in await front.survey():
        if info and (channel in _channels(info) or channel in info.get("channels", ())):
            return worker
    return front.pool.workers[0]


async def whep_post(request: web.Request) -> web.Response:
    """A viewer goes to the worker that holds the channel (worker 0 for a new channel)."""
    front = request.app[Front.KEY]
    return await forward(request, await channel_worker(front, request.match_info["channel"]))


async def ws_events(request: web.Request) -> web.StreamResponse:
    """Relays a channel's event stream from the worker that holds the channel."""
    front = request.app[Front.KEY]
    worker = await channel_worker(front, request.query.get("channel", ""))
    client = web.WebSocketResponse(heartbeat=10.0)
    if not client.can_prepare(request).ok:
        return await forward(request, worker)
    url = URL(WORKER_URL).with_path("/ws/events").with_query(_without_token(request))
    upstream = await _ws_connect(request, worker, url)
    if isinstance(upstream, web.StreamResponse):
        return upstream
    return await _relay_to_client(request, client, upstream)


async def whep_delete(request: web.Request) -> web.Response:
    """A viewer id names its worker by prefix, like a session id."""
    return await _to_named_worker(request, "viewer_id", "no such viewer")


async def _to_named_worker(request: web.Request, id_field: str, missing: str) -> web.Response:
    """Relays to the worker whose prefix starts the id in ``id_field``; 404 ``missing`` if none."""
    worker = request.app[Front.KEY].worker_for(request.match_info[id_field])
    if worker is None:
        return _error(404, missing)
    return await forward(request, worker)


async def ws_ingest(request: web.Request) -> web.StreamResponse:
    """Places a WebSocket publisher like a WHIP offer, then relays messages both ways."""
    front = request.app[Front.KEY]
    client = web.WebSocketResponse(heartbeat=10.0, max_msg_size=WS_MAX_MESSAGE_BYTES)
    if not client.can_prepare(request).ok:  # a plain GET: worker 0 says what is wrong with it
        return await forward(request, front.pool.workers[0])
    async with front.placement(request.query.get("channel", "")) as placed:
        if isinstance(placed, web.Response):
            return placed
        worker, pid = placed
        url = URL(WORKER_URL).with_path("/ws/ingest").with_query(_without_token(request))
        upstream = await _ws_connect(
            request,
            worker,
            url,
            headers={PLACEMENT_HEADER: pid},
            max_msg_size=WS_MAX_MESSAGE_BYTES,
        )
        if isinstance(upstream, web.StreamResponse):
            return upstream
    return await _relay_to_client(request, client, upstream)


async def _ws_connect(
    request: web.Request, worker: Worker, url: URL, **options: Any
) -> aiohttp.ClientWebSocketResponse | web.StreamResponse:
    """The worker's end of a relayed WebSocket, or the response that says why there is none."""
    try:
        return await worker.client.ws_connect(
            url, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2), **options
        )
    except aiohttp.WSServerHandshakeError:
        # Refused before anything started (rate, avatar, channel name); the handshake error
        # carries no body, so ask again without the upgrade to relay the reason.
        return await forward(request, worker, b"")
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return _error(502, f"worker {worker.index} is not answering; try again shortly")


async def _relay_to_client(
    request: web.Request,
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse,
) -> web.WebSocketResponse:
    """Opens the client's WebSocket and relays both ways until either side closes."""
    try:
        await client.prepare(request)
        await _relay(client, upstream)
    finally:
        await upstream.close()
    return client


async def _relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Copies text and binary messages both ways until either side closes, then closes both."""

    async def pump(
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        async for message in source:
            if message.type == WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await sink.send_bytes(message.data)  # waits while the sink is slow: back-pressure

    tasks = TaskOwner("WsRelay")
    pumps = [tasks.start("up", pump(client, upstream)), tasks.start("down", pump(upstream, client))]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await tasks.cancel_all()  # a pump that failed is logged by its owner
        await upstream.close()
        await client.close(code=upstream.close_code or aiohttp.WSCloseCode.OK)


def create_front_app(options: ServeOptions, workers: int, verbose: bool = False) -> web.Application:
    """The front app; starting it starts the pool (startup fails if a worker cannot start)."""
    access = Access(options.token, options.viewer_token, options.allow_origins)
    app = web.Application(
        client_max_size=MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES,
        middlewares=[security_middleware(access)],
    )
    front = Front(options, WorkerPool(options, workers, verbose))
    app[Front.KEY] = front

    async def start_pool(app: web.Application) -> None:
        await front.pool.start()

    async def stop_pool(app: web.Application) -> None:
        await front.pool.stop()  # on shutdown, not cleanup: relayed WebSockets end with them

    app.on_startup.append(start_pool)
    app.on_shutdown.append(stop_pool)
    add_page_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/config", config)
    app.router.add_post("/api/avatars", to_first_worker)
    app.router.add_post("/whip", whip_post)
    app.router.add_route("*", "/whip/{session_id}", by_session_id)
    app.router.add_route("*", "/whip/{session_id}/{rest:.*}", by_session_id)
    app.router.add_get("/ws/ingest", ws_ingest)
    app.router.add_get("/ws/events", ws_events)
    app.router.add_post("/whep/{channel}", whep_post)
    app.router.add_delete("/whep/{channel}/{viewer_id}", whep_delete)
    add_dub_routes(app)  # dub jobs run in their own child processes, not in the workers
    return app
