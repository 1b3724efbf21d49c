"""``lipstream dub``: its arguments, a progress bar, and the JSON summary on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lipstream.realtime.driver import DRIVERS

from .media import SYNC_MODES


def parse_face(text: str) -> tuple[float, float] | None:
    """``auto`` -> None; ``X,Y`` -> the point (frame px) whose nearest face is dubbed."""
    if text == "auto":
        return None
    parts = text.split(",")
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--face must be auto or X,Y in pixels, got {text!r}"
        ) from None
    return x, y


def add_dub_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``dub`` subcommand's arguments."""
    parser.add_argument("--video", type=Path, required=True, help="the footage to re-lip")
    parser.add_argument("--audio", type=Path, required=True, help="the new speech (any format)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the MP4 to write")
    parser.add_argument(
        "--sync-mode",
        choices=SYNC_MODES,
        default="cut_off",
        help="when lengths differ: cut_off (stop at the shorter), loop (ping-pong the video), "
        "pad (hold the last frame or pad the audio with silence)",
    )
    parser.add_argument(
        "--face",
        type=parse_face,
        default=None,
        metavar="auto|X,Y",
        help="the face to dub: auto (the largest) or the one nearest pixel X,Y",
    )
    parser.add_argument("--driver", choices=DRIVERS, default="learned")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run_dub(args: argparse.Namespace) -> int:
    """Runs one dub and prints its summary as one JSON line; errors raise ``ValueError``."""
    from .engine import DubOptions, dub_file

    options = DubOptions(sync_mode=args.sync_mode, face=args.face, driver=args.driver)
    bar = _Bars(enabled=not args.no_progress)
    try:
        summary = dub_file(args.video, args.audio, args.output, options, progress=bar.update)
    except OSError as exc:  # unwritable output, full disk: one line, not a traceback
        raise ValueError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    finally:
        bar.close()
    print(json.dumps(summary.as_dict()))
    return 0


class _Bars:
    """One tqdm bar per stage (track, render) on stderr, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._stage = ""
        self._bar = None

    def update(self, stage: str, done: int, total: int) -> None:
        if not self._enabled:
            return
        from tqdm import tqdm

        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=total, desc=stage, unit="frame", file=sys.stderr)
        assert self._bar is not None
        if total > (self._bar.total or 0):
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
