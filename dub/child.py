"""One dub job in its own process, at low CPU priority: ``python -m lipstream.dub.child ...``.

The server's job runner (``server/dub_jobs.py``) starts this so that a dub never holds the
server's event loop or GIL, and cancelling it is a signal. It reports on stdout, one JSON object a
line: ``{"stage", "done", "total"}`` (at most every ``PROGRESS_EVERY_S``), then
``{"summary": {...}}`` and exit 0, or ``{"error": "..."}`` and exit 1.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as server/cli.py: no spinning BLAS threads
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402  (after the thread settings above)
import json
import sys
import time
from pathlib import Path

from .cli import parse_face  # noqa: E402
from .media import SYNC_MODES  # noqa: E402

NICENESS = 10  # live sessions keep the CPU first; a dub takes what is left
PROGRESS_EVERY_S = 0.5


def _say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Runs the dub the arguments describe; see the module docstring for the output."""
    parser = argparse.ArgumentParser(prog="lipstream.dub.child")
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--sync-mode", choices=SYNC_MODES, default="cut_off")
    parser.add_argument("--face", type=parse_face, default=None)
    parser.add_argument("--max-duration-s", type=float, default=None)
    args = parser.parse_args(argv)
    os.nice(NICENESS)
    from .engine import DubOptions, dub_file
    from .errors import DubError

    last = 0.0

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S or done == total:
            last = now
            _say({"stage": stage, "done": done, "total": total})

    options = DubOptions(
        sync_mode=args.sync_mode, face=args.face, max_duration_s=args.max_duration_s
    )
    try:
        summary = dub_file(args.video, args.audio, args.output, options, progress)
    except DubError as exc:
        _say({"error": str(exc)})
        return 1
    except Exception as exc:  # anything else is our bug: the job says so in one line
        _say({"error": f"the dub failed: {type(exc).__name__}: {exc}"[:500]})
        return 1
    _say({"summary": summary.as_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
