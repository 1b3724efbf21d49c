"""``POST /api/dub`` against a real server: submit, progress, result, cancel, limits and errors.

The server runs with small limits (2 jobs, 3 MB, 4 s) set through its environment, and its own
temporary directory, so the test can see that jobs leave no files behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from tests.conftest import SPEECH_RATE_HZ, Speech
from tests.support.dub_media import FPS, decode_video, moving_photo, write_video, write_wav

TOKEN = "dub-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOB_DEADLINE_S = 180.0  # a 1 s dub takes seconds; this guards against a hung child, not speed


def _form(video: Path | bytes, audio: Path | bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, item in (("video", video), ("audio", audio)):
        data = item.read_bytes() if isinstance(item, Path) else item
        form.add_field(name, data, filename=f"{name}.bin", content_type="application/octet-stream")
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def _submit(http: aiohttp.ClientSession, url: str, form: aiohttp.FormData) -> tuple:
    async with http.post(f"{url}/api/dub", data=form, headers=AUTH) as response:
        return response.status, await response.json(content_type=None)


async def _wait_for_end(http: aiohttp.ClientSession, url: str, job: str) -> list[dict]:
    seen: list[dict] = []
    deadline = time.monotonic() + JOB_DEADLINE_S
    while time.monotonic() < deadline:
        async with http.get(f"{url}/api/jobs/{job}", headers=AUTH) as response:
            assert response.status == 200
            seen.append(await response.json())
        if seen[-1]["status"] in ("done", "failed"):
            return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job} did not end within {JOB_DEADLINE_S} s: {seen[-1]}")


def _job_dirs(tmp: Path) -> list[Path]:
    return [d for root in tmp.glob("lipstream-dub-jobs-*") for d in root.iterdir()]


async def test_dub_job_full_cycle_against_the_real_server(
    start_server: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    photos: Path,
    speech: Speech,
) -> None:
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(server_tmp))
    monkeypatch.setenv("LIPSTREAM_DUB_MAX_JOBS", "2")
    monkeypatch.setenv("LIPSTREAM_DUB_MAX_BYTES", "3000000")
    monkeypatch.setenv("LIPSTREAM_DUB_MAX_SECONDS", "4")
    url = start_server("--token", TOKEN, "--driver", "loudness")  # the default: front + workers

    video = write_video(tmp_path / "in.mp4", moving_photo(photos / "astronaut.png", FPS))
    start = int(speech.speech_spans_s[0][0] * SPEECH_RATE_HZ)
    audio = write_wav(tmp_path / "new.wav", speech.samples[start : start + SPEECH_RATE_HZ], 48_000)
    grey = write_video(tmp_path / "grey.mp4", [np.full((64, 64, 3), 90, np.uint8)] * FPS)
    long = write_video(tmp_path / "long.mp4", [np.full((64, 64, 3), 90, np.uint8)] * 5 * FPS)

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/dub", data=_form(video, audio)) as response:
            assert response.status == 401, "dubbing needs the publisher token"

        status, body = await _submit(http, url, _form(video, audio, sync_mode="cut_off"))
        assert status == 202, body
        job = body["job"]
        async with http.get(f"{url}/api/jobs/{job}") as response:
            assert response.status == 401, "a job's status is the uploader's alone"
        seen = await _wait_for_end(http, url, job)
        assert seen[-1]["status"] == "done", seen[-1]
        progress = [s["progress"] for s in seen]
        assert progress == sorted(progress) and progress[-1] == 1.0
        assert seen[-1]["summary"]["frames"] == FPS and seen[-1]["summary"]["faces_found"] == FPS
        async with http.get(f"{url}/api/jobs/{job}/result", headers=AUTH) as response:
            assert response.status == 200
            assert response.content_type == "video/mp4"
            (tmp_path / "result.mp4").write_bytes(await response.read())
        frames, audio_s = decode_video(tmp_path / "result.mp4")
        assert len(frames) == FPS and audio_s == pytest.approx(1.0, abs=0.03)

        errors = {
            "no face": (_form(grey, audio), 422, "no face"),
            "too long": (_form(long, audio), 413, "long"),
            "too large": (_form(bytes(3_100_000), audio), 413, "larger"),
            "corrupt": (_form(np.random.default_rng(0).bytes(9000), audio), 422, "media file"),
            "undecodable audio": (_form(video, b"RIFF" + bytes(900)), 422, "audio"),
            "bad sync mode": (_form(video, audio, sync_mode="stretch"), 400, "sync_mode"),
        }
        for name, (form, expected, words) in errors.items():
            status, body = await _submit(http, url, form)
            assert status == expected, (name, status, body)
            assert words in body["error"], (name, body)
        form = aiohttp.FormData()
        form.add_field("video", video.read_bytes(), filename="v.mp4")
        status, body = await _submit(http, url, form)
        assert status == 400 and "audio" in body["error"]
        assert len(_job_dirs(server_tmp)) == 1, "refused uploads leave no files"

        tiny = write_wav(tmp_path / "tiny.wav", speech.samples[start : start + 960], 48_000)
        status, body = await _submit(http, url, _form(video, tiny))  # 20 ms: under one frame
        assert status == 202, "the upload checks pass; the dub itself fails"
        failed = body["job"]
        seen = await _wait_for_end(http, url, failed)
        assert seen[-1]["status"] == "failed"
        assert "shorter than one video frame" in seen[-1]["error"], seen[-1]
        assert str(server_tmp) not in seen[-1]["error"], "no server paths in the reason"
        async with http.get(f"{url}/api/jobs/{failed}/result", headers=AUTH) as response:
            assert response.status == 422
        assert len(_job_dirs(server_tmp)) == 1, "a failed job keeps its reason, not its files"
        async with http.delete(f"{url}/api/jobs/{failed}", headers=AUTH) as response:
            assert response.status == 204

        status, body = await _submit(http, url, _form(video, audio))
        assert status == 202
        second = body["job"]
        status, body = await _submit(http, url, _form(video, audio))
        assert status == 429 and "at most 2" in body["error"]
        async with http.get(f"{url}/api/jobs/{second}/result", headers=AUTH) as response:
            assert response.status in (409, 200)  # 409 while queued or running
        async with http.delete(f"{url}/api/jobs/{second}", headers=AUTH) as response:
            assert response.status == 204
        async with http.get(f"{url}/api/jobs/{second}", headers=AUTH) as response:
            assert response.status == 404
        assert len(_job_dirs(server_tmp)) == 1, "a cancelled job leaves no files"
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 200

        async with http.delete(f"{url}/api/jobs/{job}", headers=AUTH) as response:
            assert response.status == 204
        assert _job_dirs(server_tmp) == []
