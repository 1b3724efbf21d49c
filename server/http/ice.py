"""STUN/TURN servers: the full credentials for the server's own aiortc, none for the browser.

``--ice-server turn:USER:PASS@HOST:PORT`` gives the server's peer connections a TURN relay. Those
credentials are never sent to a browser: ``/api/config`` lists the TURN URL without them. With
``--turn-secret`` (coturn's ``static-auth-secret``, its "TURN REST API"), each ``/api/config``
answer carries credentials that expire after ``TURN_CREDENTIAL_TTL_S``: the username is
``<expiry unix time>:lipstream`` and the password is base64(HMAC-SHA1(secret, username)), which
coturn checks without any call to this server. Without a secret the browser gets no TURN
credentials at all and must reach the server directly (or through STUN); see README "Security".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any

from ..options import ServeOptions

TURN_CREDENTIAL_TTL_S = 6 * 3600  # sessions last minutes to hours; a leaked one expires that day
_WITH_CREDENTIALS = re.compile(r"^(turns?):([^:@]+):([^@]+)@(.+)$")


def _split(url: str) -> tuple[str, str | None, str | None]:
    """``turn:user:pass@host:port`` -> (``turn:host:port``, user, pass); others pass through."""
    match = _WITH_CREDENTIALS.match(url)
    if match is None:
        return url, None, None
    return f"{match[1]}:{match[4]}", match[2], match[3]


def server_ice_servers(options: ServeOptions) -> list[dict[str, Any]]:
    """``RTCIceServer`` keyword arguments for the server's own peer connections."""
    servers = []
    for url in options.ice_servers:
        bare, user, password = _split(url)
        if user is None and bare.startswith("turn") and options.turn_secret:
            user, password = rest_credentials(options.turn_secret)
        entry: dict[str, Any] = {"urls": bare}
        if user is not None:
            entry |= {"username": user, "credential": password}
        servers.append(entry)
    return servers


def browser_ice_servers(options: ServeOptions, now: float | None = None) -> list[dict[str, Any]]:
    """What ``/api/config`` tells a page: URLs, and only short-lived TURN credentials."""
    servers = []
    for url in options.ice_servers:
        bare, _, _ = _split(url)
        entry: dict[str, Any] = {"urls": bare}
        if bare.startswith("turn") and options.turn_secret:
            user, password = rest_credentials(options.turn_secret, now)
            entry |= {"username": user, "credential": password}
        servers.append(entry)
    return servers


def rest_credentials(secret: str, now: float | None = None) -> tuple[str, str]:
    """Credentials of coturn's REST API, valid for ``TURN_CREDENTIAL_TTL_S`` from ``now``."""
    expiry = int((time.time() if now is None else now) + TURN_CREDENTIAL_TTL_S)
    username = f"{expiry}:lipstream"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()
