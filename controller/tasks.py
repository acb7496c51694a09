"""Background tasks: kept referenced until they end, and none ends with an exception nobody
sees.

asyncio keeps only a weak reference to a task, so one nobody holds may be collected before it
ends; and a task's exception nobody retrieves is printed ("Task exception was never
retrieved") only when the task is collected, if ever, with no code to look for. The
cabinet, each drawer and the web front keep their tasks with :func:`keep`, so that such an
exception is logged at once with the stable code ``TASK_FAILED``.

Long computations in worker threads are run with :func:`stoppable_thread`, so that
cancelling their task (the service stopping) also ends the thread, at its next chunk.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


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


class Stopped(Exception):
    """Raised inside a worker thread that saw its stop flag: its result is no longer wanted.

    Never reaches a person: the task that awaited the worker was cancelled, and it is
    the :class:`asyncio.CancelledError` that goes on up."""


def check_stop(stop: threading.Event | None) -> None:
    """Between two chunks of a long computation in a worker thread: :class:`Stopped` once
    :func:`stoppable_thread`'s task was cancelled (``None``: run to the end)."""
    if stop is not None and stop.is_set():
        raise Stopped


async def stoppable_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, stop=flag, **kwargs)`` in a worker thread, like :func:`asyncio.to_thread`,
    except that cancelling the awaiting task stops the worker too.

    A thread cannot be killed, and ``asyncio.to_thread`` cancelled leaves it running: at
    the service's stop, a computation reading years of journal held the loop's shutdown
    (which waits for the worker threads) until systemd killed the whole controller after
    ``TimeoutStopSec``, mid-write wherever it was. Here the cancellation sets ``flag``,
    which ``fn`` checks between chunks (:func:`check_stop`), and the task waits for the
    worker to end before it passes the cancellation on: whoever cancelled it knows that
    nothing of this computation still runs, nor will write anything afterwards.
    """
    stop = threading.Event()
    worker = asyncio.ensure_future(asyncio.to_thread(fn, *args, stop=stop, **kwargs))
    try:
        return await asyncio.shield(worker)
    except asyncio.CancelledError:
        stop.set()
        # Whenever the worker ends, even after a second cancellation has ended this task
        # without waiting for it any more: its error is then retrieved and logged, not lost.
        worker.add_done_callback(lambda ended: _after_stop(fn, ended))
        await asyncio.wait({worker})  # a second cancellation does not wait any more
        raise


def _after_stop(fn: Callable[..., Any], worker: asyncio.Future[Any]) -> None:
    """The end of a worker whose task was cancelled: its exception retrieved (never "exception
    was never retrieved", which prints the message), a real error logged."""
    if worker.cancelled():
        return
    failed = worker.exception()
    if failed is not None and not isinstance(failed, Stopped):
        _log_after_stop(fn, failed)


def _log_after_stop(fn: Callable[..., Any], exc: BaseException) -> None:
    """A worker that broke after its task was cancelled: nobody awaits its result any more,
    but a real error (a corrupt database, a bug) is still something an operator must see,
    and it would otherwise vanish with the cancellation. Logged with ``TASK_FAILED``, the
    function, the error's type and code and where it was raised; not its message, which may
    carry a patient id or a lot read from the journal, and the log leaves the cabinet; the
    place is given as file, line and function only, innermost first, without the lines'
    text."""
    code = getattr(exc, "code", None)
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                       for f in reversed(traceback.extract_tb(exc.__traceback__)))
    log.error("[TASK_FAILED] %s failed after its task was cancelled: %s%s at %s",
              getattr(fn, "__qualname__", repr(fn)), type(exc).__name__,
              f" ({code})" if isinstance(code, str) else "", where)
