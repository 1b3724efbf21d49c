"""The one place the runtime makes onnxruntime sessions.

Each model file gets one session per (threads, providers) per process, shared by every caller:
``InferenceSession.run`` is thread-safe, and a second session would only duplicate the weights and
the thread pool. Threads are always set explicitly (one intra-op thread by default, one inter-op
thread), because several sessions and worker processes share a few cores and onnxruntime's own
default (one thread per core) makes them contend.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

CPU_PROVIDERS = ("CPUExecutionProvider",)

_sessions: dict[tuple[str, int, tuple[str, ...]], ort.InferenceSession] = {}
_lock = threading.Lock()


def onnx_session(
    path: Path | str, threads: int = 1, providers: Sequence[str] | None = None
) -> ort.InferenceSession:
    """The process-wide session for ``path`` with ``threads`` intra-op threads (made once)."""
    key = (str(path), threads, tuple(providers or CPU_PROVIDERS))
    with _lock:
        session = _sessions.get(key)
        if session is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # errors only: no per-node shape warnings in the logs
            session = ort.InferenceSession(key[0], options, providers=list(key[2]))
            _sessions[key] = session
    return session
