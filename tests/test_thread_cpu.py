"""The per-role thread CPU that /metrics exposes (``server/thread_cpu.py``), in process."""

from __future__ import annotations

import threading
import time

import pytest
from lipstream.server.metrics import new_metrics
from lipstream.server.thread_cpu import ThreadCpu, role_of
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.skipif(not ThreadCpu().read(), reason="needs /proc (Linux)")


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_roles_come_from_the_names_python_and_aiortc_give_threads() -> None:
    assert role_of("MainThread") == "event_loop"
    assert role_of("session-w0-abc_0") == "session"
    assert role_of("asyncio_3") == "media_encode"
    assert role_of("audio-decoder") == "media_decode"
    assert role_of("Thread-7 (worker)") == "other"


def test_a_session_thread_keeps_its_time_in_its_role_after_it_ends() -> None:
    cpu = ThreadCpu()
    before = cpu.read()
    started, finish = threading.Event(), threading.Event()

    def work() -> None:
        _spin(0.3)
        started.set()
        finish.wait(5)

    thread = threading.Thread(target=work, name="session-test_0")
    thread.start()
    assert started.wait(10)
    during = cpu.read()
    finish.set()
    thread.join()
    after = cpu.read()
    assert during["session"] - before.get("session", 0.0) >= 0.25
    assert after["session"] >= during["session"]  # a counter: the ended thread's time stays
    assert all(after[role] >= during.get(role, 0.0) - 0.011 for role in after)  # tick rounding


def test_metrics_expose_thread_cpu_by_role() -> None:
    text = new_metrics().exposition().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = families["lipstream_thread_cpu_seconds"].samples
    roles = {s.labels["role"]: s.value for s in samples}
    assert roles["event_loop"] > 0.0  # this test's own thread has run
