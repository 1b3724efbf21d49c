"""Who may do what, and how much a request may send: tokens, origins and bounded bodies.

Tokens follow WHIP/WHEP (RFC 9725, section 4.5): ``Authorization: Bearer TOKEN``. Browsers cannot
set headers on a WebSocket, so ``/ws/ingest`` also takes ``?token=``; a page opened with
``?token=`` keeps it (the talk and viewer pages store it and send it as a header), and the server
sets a same-site cookie so that reloading the page itself works. The cookie opens pages only, never
an API call, so a foreign page cannot ride on it (and its Origin is refused anyway).

Two levels: ``publish`` (start or end a session, upload a photo, the talk page) needs ``--token``;
``view`` (WHEP, the viewer page, ``/metrics``, ``/api/config``) takes ``--viewer-token`` or the
publisher token. Without ``--viewer-token``, viewing needs the publisher token. With no token at all
the server only listens on loopback (``server/cli.py``), and every request is a publisher.

Bodies are read here, never by ``request.read()``: ``Content-Length`` is checked before a byte is
read, the read stops at the limit, and a body that stalls is answered 408 after ``BODY_TIMEOUT_S``.
No lock is ever held while a body is read, so a stalled client delays nobody else.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

logger = logging.getLogger(__name__)

BODY_TIMEOUT_S = 10.0  # an SDP offer is a few KB: a body not complete in 10 s is stalled
TOKEN_COOKIE = "lipstream_token"
ROLE: Any = (  # request[ROLE]: the Role this request proved
    web.RequestKey("lipstream_role", int) if hasattr(web, "RequestKey") else "lipstream_role"
)


class Role(IntEnum):
    """What a request may do; each level includes the ones below it."""

    NONE = 0
    VIEW = 1
    PUBLISH = 2


@dataclass(frozen=True)
class Access:
    """The tokens and extra origins a server was started with."""

    token: str | None = None
    viewer_token: str | None = None
    allow_origins: tuple[str, ...] = ()

    def role_of(self, presented: str | None) -> Role:
        """The role a presented token proves (constant-time comparisons)."""
        if self.token is None:
            return Role.PUBLISH
        if presented is None:
            return Role.NONE
        if _same(presented, self.token):
            return Role.PUBLISH
        if self.viewer_token is not None and _same(presented, self.viewer_token):
            return Role.VIEW
        return Role.NONE


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def needed_role(method: str, path: str) -> Role:
    """The role a request needs, by route. Health and static files are open."""
    if path == "/healthz" or path.startswith("/static/"):
        return Role.NONE
    if path == "/ws/events":  # watching, like WHEP
        return Role.VIEW
    if path == "/" or path.startswith("/whip") or path.startswith("/ws/"):
        return Role.PUBLISH
    if path == "/api/avatars":
        return Role.PUBLISH if method != "GET" else Role.VIEW
    if path.startswith("/api/"):  # /api/config and any later read-only endpoint
        return Role.VIEW if method in ("GET", "HEAD") else Role.PUBLISH
    if path.startswith("/whep") or path in ("/viewer", "/rig", "/metrics"):
        return Role.VIEW
    return Role.PUBLISH  # anything added later is closed until it says otherwise


def _presented_token(request: web.Request, page: bool) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if "token" in request.query and (page or request.path.startswith("/ws/")):
        return request.query["token"]
    if page:
        return request.cookies.get(TOKEN_COOKIE)
    return None


def origin_allowed(request: web.Request, allow_origins: tuple[str, ...]) -> bool:
    """Whether the request's Origin may use this server.

    Allowed: no Origin (not a browser), the server's own host (any scheme: a TLS proxy may be in
    front), or one listed with ``--allow-origin``.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin.rstrip("/") in allow_origins:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == request.host


def _is_page(path: str) -> bool:
    return path in ("/", "/viewer", "/rig")


def security_middleware(access: Access) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Refuses a foreign Origin with 403 and a missing or wrong token with 401 (RFC 6750)."""
    origins = tuple(o.rstrip("/") for o in access.allow_origins)

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not origin_allowed(request, origins):
            return web.Response(status=403, text="requests from this Origin are not allowed\n")
        page = _is_page(request.path)
        presented = _presented_token(request, page)
        role = access.role_of(presented)
        request[ROLE] = role
        if role < needed_role(request.method, request.path):
            error = "invalid_token" if presented else "invalid_request"
            return web.Response(
                status=401,
                text="a valid token is needed: Authorization: Bearer TOKEN\n",
                headers={"WWW-Authenticate": f'Bearer realm="lipstream", error="{error}"'},
            )
        response = await handler(request)
        if page and access.token is not None and presented and "token" in request.query:
            response.set_cookie(TOKEN_COOKIE, presented, httponly=True, samesite="Strict", path="/")
        return response

    return guard


def role(request: web.Request) -> Role:
    """The role proved by ``request`` (PUBLISH where no middleware runs, as in a worker)."""
    return Role(request.get(ROLE, Role.PUBLISH))


# --- bounded bodies ---------------------------------------------------------------------------


async def read_body(request: web.Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The request body, at most ``limit`` bytes, complete within ``timeout_s``.

    ``timeout_s`` defaults to ``BODY_TIMEOUT_S``.

    Raises ``HTTPRequestEntityTooLarge`` (413) before reading when ``Content-Length`` is over the
    limit, or as soon as the body passes it; ``HTTPRequestTimeout`` (408) when it stalls.
    """
    timeout_s = BODY_TIMEOUT_S if timeout_s is None else timeout_s
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    data = bytearray()
    try:
        async with (
            asyncio.timeout(timeout_s) if hasattr(asyncio, "timeout") else _Deadline(timeout_s)
        ):
            while True:
                chunk = await request.content.read(min(64 * 1024, limit + 1 - len(data)) or 1)
                if not chunk:
                    break
                data.extend(chunk)
                if len(data) > limit:
                    raise _too_large(limit)
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise web.HTTPRequestTimeout(
            text=f"the request body did not arrive within {timeout_s:.0f} s\n"
        ) from exc
    except ConnectionResetError as exc:  # the client hung up mid-body; nobody reads the answer
        raise web.HTTPBadRequest(text="the connection closed before the body ended\n") from exc
    if length is not None and len(data) < length:
        raise web.HTTPBadRequest(text="the request body ended before its Content-Length\n")
    return bytes(data)


def _too_large(limit: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=limit + 1, text=f"the body is larger than {limit} bytes\n"
    )


class _Deadline:
    """``asyncio.timeout`` for Python 3.10: cancels the block after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None

        def fire() -> None:
            self._fired = True
            task.cancel()

        self._handle = asyncio.get_running_loop().call_later(self._delay, fire)

    async def __aexit__(self, kind: object, exc: object, tb: object) -> bool:
        assert self._handle is not None
        self._handle.cancel()
        if self._fired and kind is asyncio.CancelledError:
            raise asyncio.TimeoutError
        return False


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp's access log line with any ``token`` query value replaced, so logs hold no secret."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Logs method, path (token redacted), status, size and duration."""
        url = request.rel_url
        if "token" in url.query:
            url = url.update_query(token="REDACTED")
        major, minor = request.version
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs',
            request.remote,
            request.method,
            url,
            major,
            minor,
            response.status,
            response.body_length,
            time,
        )
