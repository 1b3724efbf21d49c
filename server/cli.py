"""The ``lipstream`` command: serve, render, dub, present, phonemes, avatar build."""

from __future__ import annotations

import os

# numpy's OpenBLAS starts a helper thread per core that spins in sched_yield after every BLAS call:
# with one session it burned half a core doing nothing (seen in gdb as blas_thread_server). The
# server's parallelism is one worker thread per session stage, so BLAS gets one thread. Must be set
# before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# glibc gives each allocating thread its own malloc arena (up to 8 per core), and space freed in one
# arena cannot serve another. Each session's motion, render and encoder threads allocate frame-sized
# buffers; in a 30-minute soak the server's memory grew in two 12 MB steps (+6 %), the pattern of
# arena fragmentation. Two arenas bound it. glibc reads this when a process starts, so it applies to
# the worker processes the front spawns.
os.environ.setdefault("MALLOC_ARENA_MAX", "2")

import argparse  # noqa: E402  (after the thread settings above)
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from lipstream.avatar.framing import FRAMINGS

from .options import DRIVERS, ServeOptions

if TYPE_CHECKING:
    from aiohttp import web

TOKEN_ENV = "LIPSTREAM_TOKEN"
VIEWER_TOKEN_ENV = "LIPSTREAM_VIEWER_TOKEN"
TURN_SECRET_ENV = "LIPSTREAM_TURN_SECRET"
PUBLISH_TOKEN_ENV = "LIPSTREAM_PUBLISH_TOKEN"  # also how workers get it (never on a command line)


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def serve_options(args: argparse.Namespace) -> ServeOptions:
    """``ServeOptions`` from ``serve``'s arguments; raises ``ValueError`` for an unsafe binding.

    Without a token the server binds loopback only; any other address needs ``--token`` (or
    ``LIPSTREAM_TOKEN``), or an explicit ``--no-auth``.
    """
    token = args.token or os.environ.get(TOKEN_ENV) or None
    viewer_token = args.viewer_token or os.environ.get(VIEWER_TOKEN_ENV) or None
    if token is None and args.host not in LOOPBACK_HOSTS and not args.no_auth:
        raise ValueError(
            f"refusing to serve {args.host} without a token: anyone who can reach the port could "
            f"publish and upload. Give --token SECRET (or {TOKEN_ENV}), or --no-auth if a proxy "
            "in front authenticates"
        )
    if viewer_token is not None and token is None:
        raise ValueError("--viewer-token needs --token as well")
    return ServeOptions(
        avatar_photo=args.avatar,
        host=args.host,
        port=args.port,
        fps=args.fps,
        driver=args.driver,
        max_sessions=args.max_sessions,
        ice_servers=tuple(args.ice_server),
        token=token,
        viewer_token=viewer_token,
        allow_origins=tuple(args.allow_origin),
        max_viewers=args.max_viewers,
        turn_secret=args.turn_secret or os.environ.get(TURN_SECRET_ENV) or None,
        max_uploads=args.max_uploads,
        framing=args.framing,
        max_queue_s=args.max_queue_s,
        public_url=args.public_url.rstrip("/") if args.public_url else None,
        publish_whip=args.publish_whip,
        publish_token=args.publish_token or os.environ.get(PUBLISH_TOKEN_ENV) or None,
    )


def start_urls(options: ServeOptions) -> str:
    """The line printed at start: the pages' URLs, carrying the token once (as Jupyter does)."""
    host = "localhost" if options.host in ("0.0.0.0", "::", *LOOPBACK_HOSTS) else options.host
    base = f"http://{host}:{options.port}"
    talk = f"{base}/?token={quote(options.token)}" if options.token else f"{base}/"
    viewer_token = options.viewer_token or options.token
    viewer = f"{base}/viewer?channel=NAME" + (
        f"&token={quote(viewer_token)}" if viewer_token else ""
    )
    return f"lipstream: open {talk} (talk) or {viewer} (OBS)"


def _serve(args: argparse.Namespace) -> int:

    options = serve_options(args)
    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    if options.publish_token:
        os.environ[PUBLISH_TOKEN_ENV] = options.publish_token  # workers inherit it from here
    print(start_urls(options), flush=True)
    if args.workers == 1:
        from .http.app import create_app

        _run_app(create_app(options), args.host, args.port)
        return 0
    from .processes.front import create_front_app
    from .processes.workers import WorkerStartError

    app = create_front_app(options, args.workers, verbose=args.verbose)
    try:
        _run_app(app, args.host, args.port)
    except WorkerStartError as exc:
        print(f"lipstream: {exc}", file=sys.stderr)
        return 1
    return 0


def _usable_cores() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _render(args: argparse.Namespace) -> int:
    from .offline import render_file

    stats = render_file(
        args.avatar, args.audio, args.output, fps=args.fps, driver=args.driver, framing=args.framing
    )
    print(json.dumps(stats))
    return 0


def _phonemes(args: argparse.Namespace) -> int:
    from lipstream.realtime.phonemes import phoneme_segments

    from .offline import read_audio_16k

    report = phoneme_segments(read_audio_16k(args.wav), include_posteriors=args.posteriors)
    if args.json:
        print(json.dumps(report))
    else:
        for seg in report["segments"]:
            print(f"{seg['start']:8.2f} {seg['end']:8.2f}  {seg['phone']}")
    return 0


def _avatar_build(args: argparse.Namespace) -> int:
    import shutil

    from lipstream.avatar import build_avatar

    built = build_avatar(args.photo, progress=True)
    for note in built.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.output is not None:
        shutil.copytree(built.path, args.output, dirs_exist_ok=True)
    print(json.dumps({"id": built.avatar_id, "path": str(args.output or built.path)}))
    return 0


def _present(args: argparse.Namespace) -> int:

    from .http.app import create_app
    from .media.microphone import list_devices
    from .presenter import add_presenter

    if args.list_devices:
        print(list_devices())
        return 0
    options = ServeOptions(
        avatar_photo=args.avatar, host=args.host, port=args.port, fps=args.fps, driver=args.driver
    )
    base = f"http://localhost:{options.port}"
    print(f"lipstream: presenting on {base}/viewer?channel={quote(args.channel)} (OBS)", flush=True)
    app = create_app(options)
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    add_presenter(app, args.channel, device)
    _run_app(app, args.host, args.port)
    return 0


def _dub(args: argparse.Namespace) -> int:
    from lipstream.dub.cli import run_dub

    return run_dub(args)


def _run_app(app: web.Application, host: str, port: int) -> None:
    """Serves ``app`` until interrupted: no banner, 2 s to close, tokens kept out of the log."""
    from aiohttp import web  # noqa: F811  (the runtime import; the one above is for types)

    from .http.guard import RedactingAccessLogger

    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        shutdown_timeout=2.0,
        access_log_class=RedactingAccessLogger,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="lipstream", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the WebRTC avatar server")
    serve.add_argument("--avatar", type=Path, help="photo to animate (default: built-in avatar)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default loopback; another needs --token or --no-auth)",
    )
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--fps", type=int, default=25)
    serve.add_argument("--driver", choices=DRIVERS, default="learned")
    serve.add_argument("--max-sessions", type=int, default=4, help="in all, over every worker")
    serve.add_argument(
        "--workers",
        type=int,
        default=_usable_cores(),
        help="server processes, default one per usable core (%(default)s here): one process is "
        "capped at one core by the GIL, and sessions are independent",
    )
    serve.add_argument(
        "--ice-server",
        action="append",
        default=[],
        help="STUN/TURN URL, repeatable (turn:USER:PASS@HOST:PORT for coturn)",
    )
    serve.add_argument(
        "--token",
        help=f"bearer token for publishing, uploads and every state change (or ${TOKEN_ENV})",
    )
    serve.add_argument(
        "--viewer-token",
        help=f"bearer token for WHEP, the viewer page, /metrics and /api/config "
        f"(or ${VIEWER_TOKEN_ENV}; default: the publisher token)",
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="allow binding a non-loopback address without a token (a proxy authenticates)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        help="a browser origin (https://host:port) allowed besides the server's own, repeatable",
    )
    serve.add_argument("--max-viewers", type=int, default=16, help="WHEP viewers per channel")
    serve.add_argument(
        "--max-uploads", type=int, default=16, help="uploaded avatars kept (least recently used go)"
    )
    serve.add_argument(
        "--max-queue-s",
        type=float,
        default=30.0,
        help="seconds of PCM a /ws/ingest publisher may queue; beyond it messages are refused",
    )
    serve.add_argument(
        "--turn-secret",
        help=f"coturn static-auth-secret: browsers get short-lived TURN credentials "
        f"(or ${TURN_SECRET_ENV})",
    )
    serve.add_argument(
        "--public-url",
        help="this node's own base URL (http://node1:8080): WHIP/WHEP Locations point there, so "
        "DELETE reaches the node that holds the session when a load balancer is in front",
    )
    serve.add_argument(
        "--publish-whip",
        metavar="URL",
        help="publish every channel once to this WHIP endpoint (an SFU does the fan-out); "
        "{channel} in URL becomes the channel's name",
    )
    serve.add_argument(
        "--publish-token",
        help=f"bearer token for --publish-whip (or ${PUBLISH_TOKEN_ENV})",
    )
    serve.set_defaults(run=_serve)

    render = commands.add_parser("render", help="render a WAV offline with the live pipeline")
    render.add_argument("--avatar", type=Path, required=True)
    render.add_argument("--audio", type=Path, required=True)
    render.add_argument("-o", "--output", type=Path, required=True)
    render.add_argument("--fps", type=int, default=25)
    render.add_argument("--driver", choices=DRIVERS, default="learned")
    for sub in (serve, render):
        sub.add_argument(
            "--framing",
            choices=FRAMINGS,
            default="auto",
            help="auto: webcam-like head and shoulders, 512x512; photo: the photo's own framing",
        )
    render.set_defaults(run=_render)

    from lipstream.dub.cli import add_dub_arguments

    dub = commands.add_parser("dub", help="re-lip a video to new audio (offline)")
    add_dub_arguments(dub)
    dub.set_defaults(run=_dub)

    phonemes = commands.add_parser("phonemes", help="the streaming encoder's phones for a WAV")
    phonemes.add_argument("wav", type=Path)
    phonemes.add_argument("--json", action="store_true", help="print JSON")
    phonemes.add_argument("--posteriors", action="store_true", help="include per-frame posteriors")
    phonemes.set_defaults(run=_phonemes)

    present = commands.add_parser(
        "present", help="drive a channel from this machine's microphone (for OBS)"
    )
    present.add_argument("--device", help="input device index or name (see --list-devices)")
    present.add_argument("--list-devices", action="store_true", help="list input devices, exit")
    present.add_argument("--channel", default="main")
    present.add_argument("--avatar", type=Path, help="photo to animate (default: built-in)")
    present.add_argument("--host", choices=LOOPBACK_HOSTS, default="127.0.0.1")
    present.add_argument("--port", type=int, default=8080)
    present.add_argument("--fps", type=int, default=25)
    present.add_argument("--driver", choices=DRIVERS, default="learned")
    present.set_defaults(run=_present)

    avatar = commands.add_parser("avatar", help="avatar preparation")
    avatar_commands = avatar.add_subparsers(dest="avatar_command", required=True)
    build = avatar_commands.add_parser("build", help="prepare a photo (cached by content hash)")
    build.add_argument("photo", type=Path)
    build.add_argument("-o", "--output", type=Path)
    build.set_defaults(run=_avatar_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lipstream`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args))
    except (FileNotFoundError, ValueError) as exc:
        print(f"lipstream: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
