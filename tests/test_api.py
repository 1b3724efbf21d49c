"""The README's library example, run exactly as it is written there (so the two cannot drift)."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
from lipstream.avatar import default_photo
from lipstream.realtime.phoneset import VISEMES
from lipstream.server.api import Avatar

from tests.conftest import REPO_ROOT

MARKER = "<!-- api-example -->"


def readme_example() -> str:
    """The Python block right after the README's api-example marker."""
    text = (REPO_ROOT / "README.md").read_text()
    after = text.split(MARKER, 1)[1]
    match = re.match(r"\s*```python\n(.*?)```", after, re.S)
    assert match is not None, "README.md lost its api-example block"
    return match.group(1)


def test_the_readme_example_runs_and_prints_a_frame() -> None:
    code = readme_example()
    assert 6 <= len(code.strip().splitlines()) <= 14  # "about ten lines"
    out = io.StringIO()
    namespace: dict[str, object] = {"__name__": "readme_example"}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md:api-example", "exec"), namespace)  # noqa: S102
    printed = out.getvalue()
    viseme, jaw = printed.split()[-2:]
    assert printed.startswith("(512, 512, 3) (640,) ")
    assert viseme in VISEMES
    assert namespace["image"].shape[2] == 3  # type: ignore[attr-defined]
    assert namespace["voice"].shape == (640,)  # type: ignore[attr-defined]
    assert 0.0 <= float(jaw) <= 1.0


def test_clear_silences_the_voice_and_rests_the_mouth_until_audio_returns() -> None:
    stream = Avatar.from_photo(default_photo(), driver="loudness").stream()
    loud = (np.sin(np.arange(16_000) / 6) * 12_000).astype(np.int16)
    before = stream.push(loud)
    assert max(f.event["weights"]["jawOpen"] for f in before) > 0.2
    stream.clear()
    after = stream.push(np.zeros(8_000, np.int16))
    assert all(np.abs(f.audio).max() == 0 for f in after)  # held voice silenced
    assert after[1].event["weights"]["jawOpen"] == 0.0  # at rest by the second frame
    again = stream.push(loud)
    assert max(f.event["weights"]["jawOpen"] for f in again) > 0.2  # real audio lifts the rest
    assert [f.index for f in before + after + again] == list(range(len(before + after + again)))
