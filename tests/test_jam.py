"""A drawer that jams part-open during an operation, on the simulator with its jam fault.

A drawer that jammed after leaving its closed switch stood part-open: a hand could reach the
pockets it exposed, so "nothing taken" is no longer known. Each exposed pocket holding stock
must be counted by the pharmacy before its stock is trusted (a matrix drawer exposes them
all; a lidded drawer only the pocket whose latch was released), and the person at the
cabinet is told so. A drawer that never left its closed switch exposed nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    DRUG_IN,
    booted,
    consistent,
    count_alarms,
    journal,
    last_intent,
    on,
    outcome_rows,
    outputs_off,
    stocked,
)

from controller.alarms import message
from controller.errors import ArmoireError


@pytest.mark.parametrize("kind", ["withdraw", "count"])
def test_a_matrix_drawer_jammed_part_open_asks_for_every_stocked_pocket(
        tmp_path: Path, kind: str) -> None:
    db = tmp_path / "c.db"

    async def go() -> ArmoireError:
        sim = await booted(db)
        await stocked(sim)
        sim.simulator.physics.inject("A", "jam")
        start = (sim.cab.withdraw("PARA500", 2, "P1") if kind == "withdraw"
                 else sim.cab.count("A", 1, 2))
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(start)
            assert 0 < sim.simulator.physics.drawers["A"].position < 1   # part-open
            assert sim.cab.units["A"].state == "jammed"
            assert sim.cab.session.op is None and sim.cab.session.state == "menu"
            await sim.run(sim.cab.logout())     # the nurse is not held at the cabinet
        finally:
            await sim.shutdown()
        return err.value

    err = asyncio.run(go())
    assert err.code == "JAMMED_PART_OPEN"
    assert "A-1-1" in err.message_en and "A-2-3" in err.message_en
    assert "pharmacy must count" in err.message_en and "nothing was taken" not in err.message_en
    assert "bloqué" in err.message_fr and "la pharmacie doit" in err.message_fr
    assert "A-1-1" in err.message_fr
    intent = last_intent(db)
    # Not "aborted" (nothing taken): what was taken is unknown, as after a power cut.
    assert outcome_rows(db, intent) == [("discrepancy", "JAMMED_PART_OPEN")]
    assert count_alarms(db) == [
        ("A", 0, 0, "drawer A jammed part-open: count pocket A-1-1", "open"),
        ("A", 1, 2, "drawer A jammed part-open: count pocket A-2-3", "open")]
    assert journal(db, "SELECT DISTINCT ref FROM alarms WHERE kind='discrepancy'") == [
        (intent,)]
    assert journal(db, "SELECT drawer, row, col, SUM(on_hand) FROM stock GROUP BY "
                   "drawer, row, col ORDER BY drawer, row, col") == [
        ("A", 0, 0, 20), ("A", 1, 2, 10), ("B", 0, 1, 6)]
    assert consistent(db)


def test_the_jam_count_alarm_is_said_in_french() -> None:
    alarm = {"kind": "discrepancy", "message": "drawer A jammed part-open: count pocket A-2-3"}
    assert message(alarm, "fr") == "tiroir A bloqué entrouvert : comptez la poche A-2-3"
    assert message(alarm, "en") == alarm["message"]


def test_a_jam_that_never_left_the_closed_switch_took_nothing(tmp_path: Path) -> None:
    """A drawer board that takes the command and never moves: the controller's own deadline
    calls the drawer jammed, but its closed switch is still pressed. Nothing was exposed:
    aborted, nothing taken, no count asked."""
    db = tmp_path / "c.db"

    async def go() -> ArmoireError:
        sim = await booted(db)
        await stocked(sim)
        sim.cab.hardware.drawers["A"].open = lambda: None   # type: ignore[method-assign]
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.withdraw("PARA500", 2, "P1"))
            assert sim.cab.units["A"].state == "jammed"
            assert sim.simulator.physics.drawers["A"].position == 0.0
        finally:
            await sim.shutdown()
        return err.value

    err = asyncio.run(go())
    assert err.code == "DRAWER_FAULT" and "nothing was taken" in err.message_en
    assert outcome_rows(db, last_intent(db)) == [("aborted", "DRAWER_JAMMED")]
    assert count_alarms(db) == []


def test_a_lidded_drawer_jammed_on_opening_released_no_latch(tmp_path: Path) -> None:
    """Part-open, but every lid is still latched (the magnet is pulsed only once the drawer
    is open): no pocket could be reached, nothing was taken."""
    db = tmp_path / "c.db"

    async def go() -> ArmoireError:
        sim = await booted(db)
        await stocked(sim)
        sim.simulator.physics.inject("B", "jam")
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.withdraw("MORPH10", 1, "P1"))
            assert 0 < sim.simulator.physics.drawers["B"].position < 1
            assert sim.simulator.physics.drawers["B"].lids_open == set()
        finally:
            await sim.shutdown()
        return err.value

    err = asyncio.run(go())
    assert err.code == "DRAWER_FAULT"
    assert "bloqué" in err.message_fr and "jammed" not in err.message_fr
    assert outcome_rows(db, last_intent(db)) == [("aborted", "DRAWER_JAMMED")]
    assert count_alarms(db) == []


def test_a_power_cut_between_the_jam_and_its_outcome_raises_each_count_once(
        tmp_path: Path) -> None:
    """The jam's fault row and its count alarms are one transaction; the operation's outcome
    comes after. Cut between the two, the intent has no outcome and becomes a discrepancy at
    the next start, whose alarm is the one already open for that pocket, not a second."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        await stocked(sim)
        cab = sim.cab

        async def cut(*args: Any, **kwargs: Any) -> None:
            raise asyncio.CancelledError   # the process dies before the outcome is written

        cab._end_jammed_open = cut   # type: ignore[method-assign]
        sim.simulator.physics.inject("A", "jam")
        task = asyncio.ensure_future(cab.withdraw("PARA500", 2, "P1"))
        await sim.settle(lambda: task.done())
        sim.power_loss()
        await sim.boot()
        await sim.shutdown()

    asyncio.run(go())
    intent = last_intent(db)
    assert outcome_rows(db, intent) == [("discrepancy", "INTERRUPTED")]
    assert [(d, r, c, s) for d, r, c, _, s in count_alarms(db)] == [
        ("A", 0, 0, "open"), ("A", 1, 2, "open")]
    assert consistent(db)


def test_after_a_jam_part_open_a_restart_adds_no_discrepancy(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        await stocked(sim)
        sim.simulator.physics.inject("A", "jam")
        with pytest.raises(ArmoireError):
            await sim.run(sim.cab.withdraw("PARA500", 2, "P1"))
        sim.power_loss()
        await sim.boot()
        await sim.shutdown()

    asyncio.run(go())
    assert outcome_rows(db, last_intent(db)) == [("discrepancy", "JAMMED_PART_OPEN")]
    assert len(count_alarms(db)) == 2


def test_a_matrix_drawer_jammed_while_closing_after_the_count_asks_for_counts(
        tmp_path: Path) -> None:
    """The nurse took 2 and confirmed the count: that outcome stands. The drawer then jams
    on its way shut and stands part-open with nobody's operation on it: every stocked pocket
    may be reached by anyone until a technician resets it, so each is to be counted, and
    the nurse is told so."""
    db = tmp_path / "c.db"

    async def go() -> tuple[ArmoireError, int]:
        sim = await booted(db)
        await stocked(sim)
        op = await sim.open_for(sim.cab.withdraw("PARA500", 2, "P1"))
        left = await sim.act(op)
        await sim.run(sim.cab.confirm_count(left))
        sim.simulator.physics.inject("A", "jam")
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.close_drawer())
            assert op.step == "done" and sim.cab.session.op is None
            assert sim.cab.units["A"].state == "jammed"
            assert 0 < sim.simulator.physics.drawers["A"].position < 1
            await sim.run(sim.cab.logout())
            sim.power_loss()
            await sim.boot()
        finally:
            await sim.shutdown()
        return err.value, op.intent

    err, intent = asyncio.run(go())
    assert err.code == "JAMMED_PART_OPEN"
    assert "A-1-1" in err.message_en and "A-2-3" in err.message_en
    assert "bloqué" in err.message_fr and "la pharmacie doit" in err.message_fr
    assert outcome_rows(db, intent) == [("withdraw", None)]        # no INTERRUPTED after
    assert journal(db, "SELECT code FROM journal WHERE kind='drawer_fault' AND ref=?",
                   (intent,)) == [("CLOSE_JAMMED",)]
    assert [(d, r, c, s) for d, r, c, _, s in count_alarms(db)] == [
        ("A", 0, 0, "open"), ("A", 1, 2, "open")]
    assert journal(db, "SELECT SUM(on_hand) FROM stock WHERE drawer='A' AND row=0 AND col=0"
                   ) == [(18,)]
    assert consistent(db)


def test_a_lidded_drawer_jammed_while_closing_asks_for_its_released_pocket_only(
        tmp_path: Path) -> None:
    """The lid of the pocket just served sprang open and is pushed home only by a drawer
    that closes: that pocket, and no other, is to be counted."""
    db = tmp_path / "c.db"

    async def go() -> ArmoireError:
        sim = await booted(db)
        await stocked(sim)
        await sim.operate(sim.cab.restock(None, "HYDROX25", 5, lot="H2", expiry="2027-04-30",
                                          pocket=("A", 1, 2)))
        op = await sim.open_for(sim.cab.withdraw("MORPH10", 1, "P1"))
        left = await sim.act(op)
        await sim.run(sim.cab.confirm_count(left))
        sim.simulator.physics.inject("B", "jam")
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.close_drawer())
            assert sim.simulator.physics.drawers["B"].lids_open == {(0, 1)}
        finally:
            await sim.shutdown()
        return err.value

    err = asyncio.run(go())
    assert err.code == "JAMMED_PART_OPEN" and "B-1-2" in err.message_en
    assert [(d, r, c, s) for d, r, c, _, s in count_alarms(db)] == [("B", 0, 1, "open")]
    assert consistent(db)


@pytest.mark.parametrize("backend", ["gpio", "serial"])
def test_a_jam_while_closing_before_the_count_keeps_waiting_for_it(
        tmp_path: Path, backend: str) -> None:
    """Closed before the count, and the drawer jams: the operation still waits for the
    count (then ends), and the pocket's count alarm is the jam's, not a second one."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await on(backend, db)
        op = await sim.open_for(sim.cab.withdraw("PARA500", 2, "P1"))
        left = await sim.act(op)
        sim.simulator.physics.inject("A", "jam")
        with pytest.raises(ArmoireError) as err:
            await sim.run(sim.cab.close_drawer())
        assert err.value.code == "JAMMED_PART_OPEN"
        assert op.step == "act" and op.drawer_closed
        await sim.run(sim.cab.confirm_count(left + 1))     # one unit more than expected
        assert op.step == "done"
        await sim.shutdown()

    asyncio.run(go())
    assert [(d, r, c, s) for d, r, c, _, s in count_alarms(db)] == [
        ("A", 0, 0, "open"), ("A", 1, 2, "open")]
    assert consistent(db)


def test_the_close_button_on_a_jam_part_open_tells_the_screen(tmp_path: Path) -> None:
    """Closed with the drawer's own button, nobody awaits ``close_drawer``: the screen is
    told through the cabinet's events, in both languages, with the code."""
    db = tmp_path / "c.db"

    async def go() -> list[dict[str, Any]]:
        sim = await booted(db)
        await stocked(sim)
        events: list[dict[str, Any]] = []
        sim.cab.listeners.append(events.append)
        op = await sim.open_for(sim.cab.withdraw("PARA500", 2, "P1"))
        left = await sim.act(op)
        sim.simulator.physics.inject("A", "jam")
        await sim.finish(op, left)                  # count, then the Close button
        await sim.shutdown()
        return [e for e in events if e.get("type") == "error"]

    errors = asyncio.run(go())
    assert [e["code"] for e in errors] == ["JAMMED_PART_OPEN"]
    assert "A-1-1" in errors[0]["en"] and "la pharmacie doit" in errors[0]["fr"]


def test_a_jammed_drawer_whose_switches_cannot_be_read_is_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the drawer stands is unknown: it may have been part-open, so the counts are
    asked as for a drawer seen part-open (the jam row says ``unknown``)."""
    from controller.errors import HardwareError

    db = tmp_path / "c.db"

    def unreadable(self: Any) -> Any:
        raise HardwareError("switches unreadable", code="LINK_DOWN")

    async def go() -> str:
        sim = await booted(db)
        await stocked(sim)
        monkeypatch.setattr(type(sim.cab.hardware.drawers["A"]), "switches",
                            property(unreadable))
        sim.simulator.physics.inject("A", "jam")
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.withdraw("PARA500", 2, "P1"))
        finally:
            monkeypatch.undo()
            await sim.shutdown()
        return err.value.code

    assert asyncio.run(go()) == "JAMMED_PART_OPEN"
    assert journal(db, "SELECT json_extract(detail, '$.position') FROM journal "
                   "WHERE kind='drawer_fault' AND code='JAMMED'") == [("unknown",)]
    assert len(count_alarms(db)) == 2


@pytest.mark.parametrize("drawer, pocket", [("B", (0, 1)), ("A", (0, 0))])
def test_a_jam_while_closing_before_the_count_of_a_restock_into_an_empty_pocket_asks_for_it(
        tmp_path: Path, drawer: str, pocket: tuple[int, int]) -> None:
    """The pocket held nothing when the drawer jammed on its way shut, but the person had
    just put units into it and not yet counted them: it stands part-open with the new stock
    within reach until a technician resets it. Its count is asked (one alarm, the same one
    the count's own difference raises) and the person is told, as for a pocket that held
    stock before."""
    db = tmp_path / "c.db"
    drug = "MORPH10" if drawer == "B" else "PARA500"
    label = f"{drawer}-{pocket[0] + 1}-{pocket[1] + 1}"

    async def go() -> ArmoireError:
        sim = await booted(db)
        op = await sim.open_for(sim.cab.restock(drug, drug, 6, lot="N1", expiry="2027-02-28"))
        left = await sim.act(op)
        sim.simulator.physics.inject(drawer, "jam")
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.close_drawer())
            assert op.step == "act"                      # the count is still awaited
            await sim.run(sim.cab.confirm_count(left - 1))   # one unit short
            assert op.step == "done"
        finally:
            await sim.shutdown()
        return err.value

    err = asyncio.run(go())
    assert err.code == "JAMMED_PART_OPEN"
    assert label in err.message_en and label in err.message_fr
    assert [(d, r, c, s) for d, r, c, _, s in count_alarms(db)] == [
        (drawer, *pocket, "open")]
    assert journal(db, "SELECT json_extract(detail, '$.count') FROM journal "
                   "WHERE kind='drawer_fault' AND code='CLOSE_JAMMED'") == [(f'["{label}"]',)]
    assert consistent(db)


@pytest.mark.parametrize("backend", ["gpio", "serial"])
@pytest.mark.parametrize("drawer, counted", [("A", [(0, 0), (1, 2)]), ("B", [])])
def test_the_simulated_jam_from_closed_leaves_the_closed_switch(
        tmp_path: Path, backend: str, drawer: str, counted: list[tuple[int, int]]) -> None:
    """The simulator's ``jam`` lets a drawer move a quarter of its travel: injected on a
    closed drawer, it still opens that far and its closed switch releases. That drawer stood
    part-open, so a matrix drawer's stocked pockets are counted (the reviewer's nine alarms
    were for a drawer a quarter open); a lidded drawer's latches never released."""
    db = tmp_path / "c.db"

    async def go() -> ArmoireError:
        sim = await on(backend, db)
        sim.simulator.physics.inject(drawer, "jam")
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.withdraw(DRUG_IN[drawer], 1, "P1"))
            model = sim.simulator.physics.drawers[drawer]
            assert model.position == pytest.approx(0.25) and not model.closed_switch
        finally:
            await sim.shutdown()
        return err.value

    err = asyncio.run(go())
    assert err.code == ("JAMMED_PART_OPEN" if counted else "DRAWER_FAULT")
    assert journal(db, "SELECT json_extract(detail, '$.position') FROM journal "
                   "WHERE kind='drawer_fault'") == [("part_open",)]
    assert [(r, c) for _, r, c, _, _ in count_alarms(db)] == counted


@pytest.mark.parametrize("backend", ["gpio", "serial"])
@pytest.mark.parametrize("fault, position", [("stall", 0.0), ("switch_stuck", 0.5)])
@pytest.mark.parametrize("drawer, counted", [("A", [(0, 0), (1, 2)]), ("B", [(0, 1)])])
def test_a_closed_switch_that_never_released_leaves_the_position_unknown(
        tmp_path: Path, backend: str, fault: str, position: float, drawer: str,
        counted: list[tuple[int, int]]) -> None:
    """A motor stalled at the start and a closed switch stuck pressed are the same report on
    both backends: the closed switch did not release in ``switch_release_seconds`` (a
    switch fault, before any jam). The stuck switch's drawer is half open by then, and the
    switches cannot tell the two apart: the position is unknown, so a matrix drawer's
    stocked pockets are asked to be counted (never under-count). A lidded drawer's latches
    are pulsed only once it is open: this operation's lid was not, and she took nothing;
    but the switch may have stuck on the drawer's last way shut, the drawer part-open since
    with the lid the last operation released (the restock of B-1-2) still up: that one is
    asked for (test_fault_table.py, the next opening)."""
    db = tmp_path / "c.db"

    async def go() -> ArmoireError:
        sim = await on(backend, db)
        sim.simulator.physics.inject(drawer, fault)
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.withdraw(DRUG_IN[drawer], 1, "P1"))
            assert sim.simulator.physics.drawers[drawer].position == pytest.approx(position)
            assert sim.cab.units[drawer].state == "switch_fault"
            assert sim.cab.session.op is None and sim.cab.session.state == "menu"
        finally:
            await sim.shutdown()
        return err.value

    err = asyncio.run(go())
    faults = journal(db, "SELECT code, json_extract(detail, '$.reason'), "
                     "json_extract(detail, '$.position') FROM journal WHERE kind='drawer_fault'")
    assert faults == [("SWITCH_FAULT", "did not release", "unknown")]
    assert [(r, c) for _, r, c, _, _ in count_alarms(db)] == counted
    intent = last_intent(db)
    if drawer == "A":
        assert err.code == "POSITION_UNKNOWN"
        assert f"{drawer}-1-1" in err.message_en and "pharmacy must count" in err.message_en
        assert f"{drawer}-1-1" in err.message_fr and "la pharmacie doit" in err.message_fr
        assert "nothing was taken" not in err.message_en
        assert outcome_rows(db, intent) == [("discrepancy", "POSITION_UNKNOWN")]
        assert count_alarms(db)[0][3] == (
            "drawer A switch fault, position unknown: count pocket A-1-1")
        assert message({"kind": "discrepancy", "message": count_alarms(db)[0][3]}, "fr") == (
            "tiroir A capteur en défaut, position inconnue : comptez la poche A-1-1")
    else:
        assert err.code == "DRAWER_FAULT" and "nothing was taken" in err.message_en
        assert outcome_rows(db, intent) == [("aborted", "DRAWER_SWITCH_FAULT")]
    assert consistent(db)


@pytest.mark.parametrize("backend", ["gpio", "serial"])
@pytest.mark.parametrize("fault, code, position", [
    ("jam", "CLOSE_JAMMED", "part_open"), ("stall", "CLOSE_SWITCH_FAULT", "unknown")])
@pytest.mark.parametrize("drawer, counted", [("A", [(0, 0), (1, 2)]), ("B", [(0, 1)])])
def test_a_drawer_that_does_not_close_after_the_count_asks_for_counts(
        tmp_path: Path, backend: str, fault: str, code: str, position: str, drawer: str,
        counted: list[tuple[int, int]]) -> None:
    """Counted, then closing: jammed a quarter of the way, or stalled on its open switch
    (which then does not release: a switch fault). Either way it stands open with nobody's
    operation on it until a technician resets it: what it exposes is counted (a lidded
    drawer: the lid just released), the count already confirmed stands, and the person
    is told."""
    db = tmp_path / "c.db"

    async def go() -> tuple[ArmoireError, int]:
        sim = await on(backend, db)
        op = await sim.open_for(sim.cab.withdraw(DRUG_IN[drawer], 1, "P1"))
        left = await sim.act(op)
        await sim.run(sim.cab.confirm_count(left))
        sim.simulator.physics.inject(drawer, fault)
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.close_drawer())
            assert op.step == "done" and sim.cab.session.op is None
            assert sim.simulator.physics.drawers[drawer].position >= 0.75
        finally:
            await sim.shutdown()
        return err.value, op.intent

    err, intent = asyncio.run(go())
    expected = "JAMMED_PART_OPEN" if fault == "jam" else "POSITION_UNKNOWN"
    assert err.code == expected and f"{drawer}-{counted[0][0] + 1}" in err.message_en
    assert "préparateur doit réarmer" in err.message_fr
    assert journal(db, "SELECT code FROM journal WHERE kind='drawer_fault' AND ref=?",
                   (intent,)) == [(code,)]
    assert journal(db, "SELECT json_extract(detail, '$.position') FROM journal "
                   "WHERE kind='drawer_fault' AND ref IS NULL") == [(position,)]
    assert outcome_rows(db, intent) == [("withdraw", None)]
    assert [(r, c) for _, r, c, _, _ in count_alarms(db)] == counted
    assert consistent(db)


@pytest.mark.parametrize("backend", ["gpio", "serial"])
@pytest.mark.parametrize("counted_first", [True, False])
@pytest.mark.parametrize("drawer, counted", [("A", [(0, 0), (1, 2)]), ("B", [(0, 1)])])
def test_a_switch_fault_while_the_drawer_stands_open_asks_for_what_it_exposes(
        tmp_path: Path, backend: str, counted_first: bool, drawer: str,
        counted: list[tuple[int, int]]) -> None:
    """The drawer stands open for the operation and its closed switch sticks (both read
    pressed): out of service, it cannot be driven shut and stands open with nobody's
    operation on it until a technician resets it, its position unknown. Whatever it exposes
    may be reached after the person's count (entered before or after the fault): those
    pockets are counted (a lidded drawer: the lid just released), her count stands, and she
    is told when she closes, as for a switch fault on the drawer's way."""
    db = tmp_path / "c.db"

    async def go() -> tuple[ArmoireError, int, bool]:
        sim = await on(backend, db)
        op = await sim.open_for(sim.cab.withdraw(DRUG_IN[drawer], 1, "P1"))
        left = await sim.act(op)
        if counted_first:
            await sim.run(sim.cab.confirm_count(left))
        sim.simulator.physics.inject(drawer, "switch_stuck")
        unit = sim.cab.units[drawer]
        try:
            assert await sim.settle(lambda: unit.state == "switch_fault", 5)
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.close_drawer())
            if not counted_first:
                await sim.run(sim.cab.confirm_count(left))
            assert op.step == "done" and sim.cab.session.op is None
            assert sim.simulator.physics.drawers[drawer].position == pytest.approx(1.0)
            await sim.advance(0.5)
            off = outputs_off(sim, drawer)
        finally:
            await sim.shutdown()
        return err.value, op.intent, off

    err, intent, off = asyncio.run(go())
    label = f"{drawer}-{counted[0][0] + 1}-{counted[0][1] + 1}"
    assert err.code == "POSITION_UNKNOWN"
    assert label in err.message_en and "pharmacy must count" in err.message_en
    assert label in err.message_fr and "la pharmacie doit" in err.message_fr
    assert journal(db, "SELECT code, json_extract(detail, '$.position') FROM journal "
                   "WHERE kind='drawer_fault' AND ref IS NULL") == [("SWITCH_FAULT", "unknown")]
    assert journal(db, "SELECT code, json_extract(detail, '$.count') FROM journal "
                   "WHERE kind='drawer_fault' AND ref=?", (intent,))[0][0] == (
        "CLOSE_SWITCH_FAULT")
    assert outcome_rows(db, intent) == [("withdraw", None)]
    assert [(r, c) for _, r, c, _, _ in count_alarms(db)] == counted
    assert count_alarms(db)[0][3] == (
        f"drawer {drawer} switch fault, position unknown: count pocket {label}")
    assert off
    assert consistent(db)


def test_a_lid_release_whose_answer_is_lost_asks_for_its_pocket(tmp_path: Path) -> None:
    """The lidded drawer is open and its board falls silent on the RELEASE: the board pulsed
    the magnet and its answer was lost, so the lid is up, but the cabinet reads no more
    than a command that failed. The pocket may be reached: counted, the outcome unknown
    (not "nothing taken"), and the person told to take nothing."""
    from hal.serial_backend import LinkDown

    db = tmp_path / "c.db"

    async def go() -> tuple[ArmoireError, int, set[tuple[int, int]]]:
        sim = await on("serial", db)
        latch = sim.cab.hardware.latches[("B", 0, 1)]
        real = latch.release

        def answer_lost() -> None:
            real()
            raise LinkDown("drawer B: drawer board not answering (no answer to RELEASE)",
                           drawer="B")

        latch.release = answer_lost  # type: ignore[method-assign]
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.withdraw("MORPH10", 1, "P1"))
            await sim.advance(0.5)
            lids = set(sim.simulator.physics.drawers["B"].lids_open)
            assert sim.cab.session.op is None and sim.cab.session.state == "menu"
        finally:
            await sim.shutdown()
        return err.value, last_intent(db), lids

    err, intent, lids = asyncio.run(go())
    assert lids == {(0, 1)}                          # reachable indeed
    assert err.code == "POSITION_UNKNOWN" and "B-1-2" in err.message_en
    assert "nothing was taken" not in err.message_en and "B-1-2" in err.message_fr
    assert outcome_rows(db, intent) == [("discrepancy", "POSITION_UNKNOWN")]
    assert [(d, r, c) for d, r, c, _, _ in count_alarms(db)] == [("B", 0, 1)]
    assert journal(db, "SELECT code FROM journal WHERE kind='drawer_fault' ORDER BY seq"
                   )[0] == ("MAGNET_FAILED",)
    assert consistent(db)


@pytest.mark.parametrize("drawer", ["A", "B"])
def test_a_board_silent_a_moment_while_its_drawer_stands_open_asks_no_count(
        tmp_path: Path, drawer: str) -> None:
    """The board falls silent while the drawer stands open for the operation and answers
    again before she closes: the drawer was in front of her all along, closes as usual and
    nothing stood open with nobody's operation on it. Nothing is asked beyond her count."""
    db = tmp_path / "c.db"

    async def go() -> list[str]:
        sim = await on("serial", db)
        told: list[str] = []
        op = await sim.open_for(sim.cab.withdraw(DRUG_IN[drawer], 1, "P1"))
        left = await sim.act(op)
        unit = sim.cab.units[drawer]
        board = sim.simulator.board(drawer)
        try:
            board.muted = True
            assert await sim.settle(lambda: unit.state == "offline", 10)
            board.muted = False
            assert await sim.settle(lambda: unit.state == "open", 10)
            await sim.run(sim.cab.confirm_count(left))
            try:
                await sim.run(sim.cab.close_drawer())
            except ArmoireError as exc:
                told.append(exc.code)
            assert unit.state == "closed" and op.step == "done"
        finally:
            await sim.shutdown()
        return told

    assert asyncio.run(go()) == []
    assert count_alarms(db) == []
    assert journal(db, "SELECT code FROM journal WHERE kind='drawer_fault'") == [("OFFLINE",)]
    assert consistent(db)
