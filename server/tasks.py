"""Named, owned asyncio tasks with one shutdown path (the pattern of pipecat's TaskManager)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 5.0  # a task that ignores cancellation this long is logged and abandoned


class TaskOwner:
    """Creates tasks named ``<owner>::<what>``, logs their failures, cancels them all on close."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, what: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Runs ``coro`` as a task this owner will cancel; unexpected exceptions are logged."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._owner}::{what}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("Task %s failed", task.get_name(), exc_info=exc)

    @property
    def running(self) -> int:
        """Tasks not yet finished."""
        return len(self._tasks)

    async def cancel_all(self) -> None:
        """Cancels every task but the caller's own; waits up to ``CANCEL_TIMEOUT_S`` for them."""
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=CANCEL_TIMEOUT_S)
        for task in pending:
            logger.warning("Task %s did not stop within %.0f s", task.get_name(), CANCEL_TIMEOUT_S)
