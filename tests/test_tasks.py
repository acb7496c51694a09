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
