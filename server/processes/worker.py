"""One worker process of ``lipstream serve --workers N``: the normal app on a unix socket.

The front (``server/processes/front.py``) starts these with ``python -m
lipstream.server.processes.worker`` and relays
HTTP signaling to them; WebRTC media flows directly between the client and the worker's aiortc.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from ..options import ServeOptions
from ..tasks import TaskOwner

SHUTDOWN_TIMEOUT_S = 2.0  # on SIGTERM: sessions are closed at once; connections get this long

PARENT_POLL_S = 1.0


def options_to_json(options: ServeOptions) -> str:
    """``options`` as JSON text, for a worker's command line, without the tokens.

    A worker trusts its unix socket (in a folder only this user can open): the front has checked
    tokens and origins already, and a secret on a command line is visible to every local user.
    """
    fields = dataclasses.asdict(options)
    fields.update(token=None, viewer_token=None, publish_token=None)
    for name in ("avatar_photo", "cache_dir"):
        if fields[name] is not None:
            fields[name] = str(fields[name])
    return json.dumps(fields)


def options_from_json(text: str) -> ServeOptions:
    """The inverse of ``options_to_json``."""
    fields = json.loads(text)
    for name in ("avatar_photo", "cache_dir"):
        if fields[name] is not None:
            fields[name] = Path(fields[name])
    fields["ice_servers"] = tuple(fields["ice_servers"])
    fields["allow_origins"] = tuple(fields["allow_origins"])
    if fields.get("publish_whip"):  # the token is not on the command line: see server/cli.py
        fields["publish_token"] = os.environ.get("LIPSTREAM_PUBLISH_TOKEN") or None
    return ServeOptions(**fields)


async def internal_sessions(request: web.Request) -> web.Response:
    """What the front needs to route and to enforce global limits: this pid and its sessions."""
    from ..state import ServerState

    state = request.app[ServerState.KEY]
    sessions = [{"id": s.id, "channel": s.channel} for s in state.sessions.by_id.values()]
    starting = sorted(state.sessions.starting)
    placements = sorted(state.sessions.placements.values())
    channels = sorted(state.channels)  # with viewers or listeners: speakers must come here
    return web.json_response(
        {
            "pid": os.getpid(),
            "sessions": sessions,
            "starting": starting,
            "placements": placements,
            "channels": channels,
        }
    )


async def _exit_with_parent(app: web.Application) -> AsyncIterator[None]:
    """Ends this worker when the front dies without stopping it (e.g. SIGKILL)."""
    parent = os.getppid()

    async def watch() -> None:
        while True:
            await asyncio.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                break
        os.kill(os.getpid(), signal.SIGTERM)  # the graceful path: sessions are closed

    tasks = TaskOwner("Worker")
    tasks.start("watch-parent", watch())
    yield
    await tasks.cancel_all()


def main(argv: list[str] | None = None) -> int:
    """Runs ``create_app(options)`` on ``--socket`` until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--options", required=True, help="ServeOptions as JSON")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    options = options_from_json(args.options)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"%(asctime)s %(levelname)s {options.id_prefix}%(process)d %(name)s: %(message)s",
    )
    from ..http.app import (
        create_app,  # heavy (aiortc, onnxruntime): after the arguments are checked
    )

    app = create_app(options)
    app.router.add_get("/internal/sessions", internal_sessions)
    app.cleanup_ctx.append(_exit_with_parent)
    try:
        web.run_app(app, path=str(args.socket), print=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    except (
        FileNotFoundError,
        ValueError,
    ) as exc:  # e.g. --avatar: the photo is missing or unusable
        print(f"lipstream worker {options.id_prefix}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
