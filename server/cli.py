"""The ``lipstream`` command: serve, render, phonemes, avatar build."""

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

from .options import DRIVERS, ServeOptions


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    os.environ["LIPSTREAM_FRAMING"] = args.framing  # read by avatar.build; workers inherit it

    options = ServeOptions(
        avatar_photo=args.avatar,
        host=args.host,
        port=args.port,
        fps=args.fps,
        driver=args.driver,
        max_sessions=args.max_sessions,
        ice_servers=tuple(args.ice_server),
    )
    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    print(f"lipstream: open http://localhost:{args.port}/ (talk) or /viewer?channel=NAME (OBS)")
    if args.workers == 1:
        from .app import create_app

        web.run_app(create_app(options), host=args.host, port=args.port, print=None)
        return 0
    from .front import create_front_app
    from .workers import WorkerStartError

    app = create_front_app(options, args.workers, verbose=args.verbose)
    try:
        web.run_app(app, host=args.host, port=args.port, print=None)
    except WorkerStartError as exc:
        print(f"lipstream: {exc}", file=sys.stderr)
        return 1
    return 0


def _usable_cores() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _render(args: argparse.Namespace) -> int:
    from .offline import render_file

    os.environ["LIPSTREAM_FRAMING"] = args.framing  # read by avatar.build
    stats = render_file(args.avatar, args.audio, args.output, fps=args.fps, driver=args.driver)
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="lipstream", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the WebRTC avatar server")
    serve.add_argument("--avatar", type=Path, help="photo to animate (default: built-in avatar)")
    serve.add_argument("--host", default="0.0.0.0")
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
            choices=("auto", "photo"),
            default="auto",
            help="auto: webcam-like head and shoulders, 512x512; photo: the photo's own framing",
        )
    render.set_defaults(run=_render)

    phonemes = commands.add_parser("phonemes", help="the streaming encoder's phones for a WAV")
    phonemes.add_argument("wav", type=Path)
    phonemes.add_argument("--json", action="store_true", help="print JSON")
    phonemes.add_argument("--posteriors", action="store_true", help="include per-frame posteriors")
    phonemes.set_defaults(run=_phonemes)

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
