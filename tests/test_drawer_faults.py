"""One physical fault, one ``drawer_fault`` row: the drawer's own machine says when a fault
report is news.

A backend may report one fault more than once: gpio's end of a run and its debounced
switch both see two switches pressed; a drawer board that falls silent fails the command
sent to it and is reported down by its link. The journal is what pharmacists and auditors
read, and what a count of faults per drawer is made from, so a report of the fault the
drawer is still in adds nothing. A fault of another kind, or the same kind once the drawer
has left that fault (a reset, its board back), is news and is journaled.
"""

from __future__ import annotations

import asyncio
from typing import Any

from controller.drawer import DrawerUnit
from controller.errors import HardwareError
from hal.clock import RealClock
from hal.parts import EventKind, HardwareEvent, SwitchState


class Part:
    """A drawer whose commands reach it (or fail as a silent board's do when ``silent``)
    and whose arrivals the test reports itself."""

    id = "A"

    def __init__(self) -> None:
        self.silent = False

    def open(self) -> None:
        self._command()

    def close(self) -> None:
        self._command()

    def stop(self) -> None: ...

    @property
    def switches(self) -> SwitchState:
        return SwitchState(closed=True, open=False)

    def _command(self) -> None:
        if self.silent:
            raise HardwareError("drawer A: no answer", "tiroir A : pas de réponse",
                                code="LINK_DOWN")


def switch_fault(**detail: Any) -> HardwareEvent:
    return HardwareEvent(EventKind.SWITCH_FAULT, "A", detail)


async def settled() -> None:
    """Let the transitions the unit started from its callbacks run."""
    for _ in range(20):
        await asyncio.sleep(0)


def faults_of(scenario: Any) -> tuple[list[tuple[str, dict[str, Any]]], DrawerUnit]:
    """Run ``scenario(unit, part)`` on a closed drawer; what its fault callback was told."""
    told: list[tuple[str, dict[str, Any]]] = []

    async def go() -> DrawerUnit:
        part = Part()
        unit = DrawerUnit("A", part, RealClock(),
                          lambda u, kind, detail: told.append((kind, detail)), limit_s=5.0)
        await unit.fire("ev_closed")
        try:
            await scenario(unit, part)
            await settled()
        finally:
            await unit.shutdown()
        return unit

    unit = asyncio.run(go())
    return told, unit


def test_a_switch_fault_reported_twice_is_told_once_and_the_first_report_wins() -> None:
    """gpio's run ends on both switches pressed, then the debounced switch says it again."""
    async def scenario(unit: DrawerUnit, part: Part) -> None:
        opening = asyncio.ensure_future(unit.open())
        await settled()
        await unit.handle(switch_fault(switch="closed", reason="both pressed"))
        assert await opening == "switch_fault"
        await unit.handle(switch_fault(switch="open", reason="both pressed"))

    told, unit = faults_of(scenario)
    assert told == [("switch_fault", {"switch": "closed", "reason": "both pressed"})]
    assert unit.state == "switch_fault"
    assert unit.last_fault == {"kind": "switch_fault", "switch": "closed",
                               "reason": "both pressed"}


def test_a_silent_board_on_open_is_told_once() -> None:
    """The OPEN sent to it fails, and its link reports it down: one board gone quiet."""
    async def scenario(unit: DrawerUnit, part: Part) -> None:
        part.silent = True
        assert await unit.open() == "offline"                 # the command failed
        await unit.fire("ev_offline", detail={"reason": "no answer"})   # the link's report

    told, unit = faults_of(scenario)
    assert told == [("offline", {"reason": "LINK_DOWN"})]
    assert unit.state == "offline"


def test_a_fault_of_another_kind_is_told() -> None:
    """A switch fault, then the board falls silent, then a switch fault again: each is news
    (the drawer left the switch fault when it went offline)."""
    async def scenario(unit: DrawerUnit, part: Part) -> None:
        await unit.handle(switch_fault(switch="closed", reason="did not release"))
        await unit.fire("ev_offline", detail={"reason": "no answer"})
        await unit.handle(switch_fault(switch="both", at="start"))

    told, _ = faults_of(scenario)
    assert [kind for kind, _ in told] == ["switch_fault", "offline", "switch_fault"]


def test_the_same_fault_after_a_reset_is_told_again() -> None:
    """Reset and closed, the drawer's switches stick again: a second fault, a second row."""
    async def scenario(unit: DrawerUnit, part: Part) -> None:
        await unit.handle(switch_fault(switch="open", reason="both pressed"))
        resetting = asyncio.ensure_future(unit.reset())
        await settled()
        await unit.handle(HardwareEvent(EventKind.CLOSED, "A"))
        assert await resetting == "closed"
        await unit.handle(switch_fault(switch="open", reason="both pressed"))
        await unit.handle(switch_fault(switch="closed", reason="both pressed"))

    told, _ = faults_of(scenario)
    assert told == [("switch_fault", {"switch": "open", "reason": "both pressed"})] * 2


def test_a_board_silent_again_after_it_came_back_is_told_again() -> None:
    """Its link back and the drawer read closed, the board that falls silent again is a
    second loss."""
    async def scenario(unit: DrawerUnit, part: Part) -> None:
        await unit.fire("ev_offline", detail={"reason": "no answer"})
        await unit.fire("ev_offline", detail={"reason": "LINK_DOWN"})
        await unit.fire("ev_online")
        await unit.sync_from_switches()
        assert unit.state == "closed"
        await unit.fire("ev_offline", detail={"reason": "no answer"})

    told, unit = faults_of(scenario)
    assert told == [("offline", {"reason": "no answer"})] * 2
    assert unit.last_fault == {"kind": "offline", "reason": "no answer"}
