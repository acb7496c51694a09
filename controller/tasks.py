"""Background tasks: kept referenced until they end, and none ends with an exception nobody
sees.

asyncio keeps only a weak reference to a task, so one nobody holds may be collected before it
ends; and a task's exception nobody retrieves is printed ("Task exception was never
retrieved") only when the task is collected, if ever, with no code to look for. The
cabinet, each drawer and the web front keep their tasks with :func:`keep`, so that such an
exception is logged at once with the stable code ``TASK_FAILED``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any


def keep(tasks: set[asyncio.Task[Any]], task: asyncio.Task[Any], what: str,
         log: logging.Logger,
         on_error: Callable[[BaseException], bool] | None = None) -> None:
    """Hold ``task`` in ``tasks`` until it ends (whoever owns ``tasks`` cancels those left
    when it stops), and retrieve its exception when it ends with one.

    ``on_error``, if given, sees the exception first and returns True when it has dealt
    with it (shown to the person who asked, say); otherwise it is logged on ``log`` as
    ``[TASK_FAILED] <what> failed: <exception type>``, with its traceback.
    """
    tasks.add(task)

    def done(ended: asyncio.Task[Any]) -> None:
        tasks.discard(ended)
        if ended.cancelled() or (exc := ended.exception()) is None:
            return
        if on_error is not None and on_error(exc):
            return
        log.error("[TASK_FAILED] %s failed: %s", what, type(exc).__name__, exc_info=exc)

    task.add_done_callback(done)
