"""Background tasks: none ends with an exception nobody sees (controller/tasks.py)."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

from controller.drawer import DrawerUnit
from controller.errors import StoreError
from hal.clock import RealClock


class StuckDrawer:
    """A backend that takes motor commands and never reports an end switch."""

    id = "A"

    def open(self) -> None: ...

    def close(self) -> None: ...

    def stop(self) -> None: ...


def test_a_failing_drawer_task_is_logged_with_a_code(caplog: pytest.LogCaptureFixture) -> None:
    """The drawer's own deadline calls it jammed from a background task; when the fault
    cannot be recorded (the journal's disk is gone), that task's exception is logged at once
    with TASK_FAILED, never left for asyncio's "Task exception was never retrieved"."""
    def on_fault(unit: DrawerUnit, kind: str, detail: dict[str, Any]) -> None:
        raise StoreError("disk gone", "disque perdu", code="DB_IO_ERROR")

    unretrieved: list[str] = []

    async def go() -> str:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: unretrieved.append(context["message"]))
        unit = DrawerUnit("A", StuckDrawer(), RealClock(), on_fault, limit_s=0.01)
        await unit.fire("ev_closed")
        opener = asyncio.ensure_future(unit.open())
        for _ in range(100):
            await asyncio.sleep(0.01)
            if unit.state == "jammed" and not unit._tasks:
                break
        await unit.shutdown()
        await asyncio.wait_for(opener, 1.0)
        gc.collect()  # an unretrieved exception is reported when its task is collected
        return unit.state

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(go()) == "jammed"
    assert unretrieved == []
    assert "[TASK_FAILED] drawer A: a background task failed: StoreError" in caplog.text


def _cancel_while_running(worker) -> BaseException | None:
    """Run ``worker`` through stoppable_thread, cancel its task once the worker has started,
    and return what the awaiting task ended with."""
    import threading

    from controller.tasks import stoppable_thread

    started = threading.Event()

    def fn(*, stop: threading.Event) -> str:
        started.set()
        stop.wait(5.0)
        return worker(stop)

    async def go() -> BaseException | None:
        task = asyncio.ensure_future(stoppable_thread(fn))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except BaseException as exc:  # the cancellation, expected
            return exc
        return None

    return asyncio.run(go())


def test_a_worker_that_fails_after_its_task_was_cancelled_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """The service stops while a worker thread computes; the worker then fails with a real
    error (not the Stopped its stop flag asks for): the cancellation still goes on up, and
    the error is logged with TASK_FAILED, the function and the error's type and code, so an
    operator sees that something broke. Its message is not logged: an exception's text may
    carry a patient id or a lot, and the log leaves the cabinet."""
    def broken(stop: Any) -> str:
        raise StoreError("patient IPP-4455 unreadable", "patient IPP-4455 illisible",
                         code="DB_IO_ERROR")

    with caplog.at_level(logging.DEBUG):
        ended = _cancel_while_running(broken)
    assert isinstance(ended, asyncio.CancelledError)
    failures = [r for r in caplog.records if "[TASK_FAILED]" in r.getMessage()]
    assert len(failures) == 1, caplog.text
    assert failures[0].levelno == logging.ERROR
    message = failures[0].getMessage()
    assert "StoreError" in message and "DB_IO_ERROR" in message and "fn" in message
    assert "IPP-4455" not in caplog.text
    assert all("IPP-4455" not in str(r.exc_info) for r in caplog.records)


def test_a_worker_that_stops_or_finishes_after_the_cancellation_logs_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    """Stopped is the expected way out, and a result nobody wants any more is no error."""
    from controller.tasks import check_stop

    def finished(stop: Any) -> str:
        return "done"

    with caplog.at_level(logging.DEBUG):
        assert isinstance(_cancel_while_running(check_stop), asyncio.CancelledError)
        assert isinstance(_cancel_while_running(finished), asyncio.CancelledError)
    assert [r for r in caplog.records if r.name.startswith("controller")] == []


def test_a_worker_that_fails_after_a_second_cancellation_is_still_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """The stop is pressed twice (systemd's stop, then its timeout's, or an operator's second
    Ctrl-C): the second cancellation ends the awaiting task at once, without waiting for the
    worker any more. A worker that then fails with a real error was lost without a word: its
    exception was retrieved by nobody. It is logged like one after a single cancellation."""
    import threading

    from controller.tasks import stoppable_thread

    started, fail, ended = threading.Event(), threading.Event(), threading.Event()

    def fn(*, stop: threading.Event) -> str:
        started.set()
        try:
            fail.wait(5.0)  # still working when the second cancellation comes
            raise StoreError("patient IPP-7788 unreadable", "patient IPP-7788 illisible",
                             code="DB_IO_ERROR")
        finally:
            ended.set()

    def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "[TASK_FAILED]" in r.getMessage()]

    async def go() -> BaseException | None:
        task = asyncio.ensure_future(stoppable_thread(fn))
        await asyncio.to_thread(started.wait, 5.0)
        task.cancel()
        await asyncio.sleep(0)  # the task is now waiting for its worker
        task.cancel()
        try:
            await task
            outcome: BaseException | None = None
        except BaseException as exc:  # the cancellation, expected
            outcome = exc
        assert not ended.is_set(), "the second cancellation waited for the worker"
        fail.set()
        await asyncio.to_thread(ended.wait, 5.0)
        for _ in range(200):  # the worker's end reaches the loop a few iterations later
            if logged():
                break
            await asyncio.sleep(0.01)
        return outcome

    with caplog.at_level(logging.DEBUG):
        ended_with = asyncio.run(go())
    assert isinstance(ended_with, asyncio.CancelledError)
    failures = logged()
    assert len(failures) == 1, caplog.text
    message = failures[0].getMessage()
    assert failures[0].levelno == logging.ERROR
    assert "StoreError" in message and "DB_IO_ERROR" in message and "fn" in message
    assert "IPP-7788" not in caplog.text
