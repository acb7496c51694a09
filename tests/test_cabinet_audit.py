"""The cabinet core's audit: one operation and one drawer at a time, faults while a drawer is
open, drawers found ajar, alarms that must follow the stock, and a clean shutdown.

Each test drives the real controller on the simulated cabinet (real backend, simulated
physics) and asserts what the journal, the stock and the alarms say afterwards.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import PINS, SPEC, START, approved_tasks, booted, config, journal, restocked

from controller import formulary, relayout
from controller.alarms import Where, message
from controller.cabinet import Operation
from controller.errors import ArmoireError
from hal.parts import EventKind, HardwareEvent
from sim.harness import SimCabinet


async def taking(sim: SimCabinet, qty: int) -> tuple[Operation, int]:
    """20 paracetamol in pocket A-1-1, a withdrawal of ``qty`` open and the units taken;
    returns the operation and the count the nurse now sees."""
    restocked(sim.store, "PARA500", ("A", 0, 0), 20, "L1", "2027-01-31")
    sim.physical[("A", 0, 0)] = 20
    op = await sim.open_for(sim.cab.withdraw("PARA500", qty, "P1"))
    return op, await sim.act(op)


def rows(db: Path) -> int:
    return int(journal(db, "SELECT count(*) FROM journal")[0][0])


# -- one operation, one drawer at a time ----------------------------------------------------
def test_a_double_submitted_waste_writes_one_intent(tmp_path: Path) -> None:
    """Two taps on "waste" for a controlled drug: both pass the first checks while the
    witness's PIN is checked. Only one may reach the drawer; the other is refused and
    writes nothing (an intent without an outcome would be a false discrepancy)."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        restocked(sim.store, "MORPH10", ("B", 0, 1), 10, "M1", "2027-06-30")
        cab = sim.cab
        cab.offload = asyncio.to_thread  # as in production: the PIN hash leaves the loop
        before = rows(db)
        first = asyncio.ensure_future(cab.waste("MORPH10", 1, witness="n1",
                                                witness_pin=PINS["n1"]))
        second = asyncio.ensure_future(cab.waste("MORPH10", 1, witness="n1",
                                                 witness_pin=PINS["n1"]))

        async def both_done() -> None:
            while not (first.done() and second.done()):
                await sim.advance(sim.simulator.clock.tick)

        # The hashes run in threads: virtual time passes until both tasks are over, and a
        # wall-clock bound only catches a hang.
        await asyncio.wait_for(both_done(), 60)
        with pytest.raises(ArmoireError) as refused:
            second.result()
        op = first.result()
        intents = journal(db, "SELECT seq FROM journal WHERE kind='intent' AND seq > ?",
                          (before,))
        await sim.shutdown()
        assert refused.value.code == "OPERATION_RUNNING"
        assert intents == [(op.intent,)]

    asyncio.run(go())


async def left_open(db: Path) -> SimCabinet:
    """Drawer A left open by a power cut during a withdrawal, and the cabinet restarted."""
    sim = await booted(db)
    restocked(sim.store, "PARA500", ("A", 0, 0), 20, "L1", "2027-01-31")
    restocked(sim.store, "MORPH10", ("B", 0, 1), 10, "M1", "2027-06-30")
    sim.physical[("A", 0, 0)] = 20
    op = await sim.open_for(sim.cab.withdraw("PARA500", 2, "P1"))
    await sim.act(op)
    sim.power_loss()
    await sim.boot()
    await sim.run(sim.cab.login("ph1", PINS["ph1"]))
    return sim


def test_an_operation_on_a_drawer_still_closing_is_refused_and_writes_nothing(
        tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await left_open(db)
        cab = sim.cab
        sim.simulator.physics.press_close_button("A")
        assert await sim.settle(lambda: cab.units["A"].state == "closing", 5)
        before, stock = rows(db), cab.stock_report()
        with pytest.raises(ArmoireError) as busy:
            await sim.run(cab.withdraw("PARA500", 1, "P1"))
        with pytest.raises(ArmoireError) as other:
            await sim.run(cab.withdraw("MORPH10", 1, "P1"))
        after, stock_after, state = rows(db), cab.stock_report(), cab.session.state
        assert await sim.settle(lambda: cab.units["A"].state == "closed", 10)
        await sim.shutdown()
        assert busy.value.code == "DRAWER_BUSY"
        assert "fermeture" in busy.value.message("fr")
        assert other.value.code == "OTHER_DRAWER_OPEN"
        assert (after, stock_after, state) == (before, stock, "menu")

    asyncio.run(go())


def test_no_second_drawer_opens_while_one_is_open(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await left_open(db)
        cab = sim.cab
        before = rows(db)
        with pytest.raises(ArmoireError) as other:
            await sim.run(cab.restock("MORPH10", "MORPH10", 1, lot="M1", expiry="2027-06-30"))
        after, position = rows(db), sim.simulator.physics.describe()["B"]["position"]
        await sim.shutdown()
        assert other.value.code == "OTHER_DRAWER_OPEN"
        assert after == before and position == 0.0

    asyncio.run(go())


# -- a drawer fault while the drawer is open ------------------------------------------------
def test_a_switch_fault_while_open_still_lets_the_withdrawal_end(tmp_path: Path) -> None:
    """The drawer reports contradictory switches while the nurse takes her units. She counts
    and closes as usual: the withdrawal is booked, the fault is journaled against the
    operation, the motor stays off and the session is free again. The drawer cannot be
    driven shut: she is told that its stocked pocket is to be counted (test_jam.py)."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        op, left = await taking(sim, 3)
        cab._post(HardwareEvent(EventKind.SWITCH_FAULT, "A", {"switch": "both"}))
        assert await sim.settle(lambda: cab.units["A"].state == "switch_fault", 2)
        await sim.run(cab.confirm_count(left))
        with pytest.raises(ArmoireError) as told:
            await sim.run(cab.close_drawer())
        assert told.value.code == "POSITION_UNKNOWN" and "A-1-1" in told.value.message_en
        motor = sim.simulator.physics.motor_runs[-1]
        state, session = cab.session.state, cab.session.op
        await sim.run(cab.logout())
        await sim.shutdown()
        assert op.step == "done" and session is None and state == "menu"
        assert journal(db, "SELECT sum(qty) FROM journal WHERE kind='withdraw' AND ref=?",
                       (op.intent,)) == [(3,)]
        assert journal(db, "SELECT code FROM journal WHERE kind='drawer_fault' AND ref=?",
                       (op.intent,)) == [("CLOSE_SWITCH_FAULT",)]
        assert motor.stop is not None  # the last run (the opening) ended; none since

    asyncio.run(go())


# -- a drawer found ajar at start-up --------------------------------------------------------
def test_a_drawer_found_ajar_at_start_is_journaled_and_alarmed(tmp_path: Path) -> None:
    """Pushed half-way during a power cut: neither end switch is pressed at the next start.
    The drawer is out of service, and someone must be told."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        sim.power_loss()
        sim.simulator.physics.pull_open("A", to=0.4)
        await sim.boot()
        state = sim.cab.units["A"].state
        alarms = [a for a in sim.cab.alarms.list() if a["kind"] == "drawer_fault"]
        await sim.shutdown()
        assert state == "unknown"
        assert journal(db, "SELECT code FROM journal WHERE kind='drawer_fault'") == [
            ("AJAR_AT_START",)]
        assert [(a["kind"], a["drawer"]) for a in alarms] == [("drawer_fault", "A")]
        assert message(alarms[0], "fr") == "tiroir A : entrouvert au démarrage"

    asyncio.run(go())


def test_a_drawer_fault_row_is_never_written_without_its_alarm(tmp_path: Path) -> None:
    """The alarm's write fails (as a power cut would stop it) after the fault's journal row:
    the row must go with it, or a restart finds a fault that nobody was ever alarmed of."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        sim.power_loss()
        sim.simulator.physics.pull_open("A", to=1.0)  # found open at the next start
        conn = sqlite3.connect(db)
        conn.execute("CREATE TRIGGER no_alarm BEFORE INSERT ON alarms "
                     "BEGIN SELECT RAISE(ABORT, 'cut'); END")
        conn.commit()
        conn.close()
        with pytest.raises(ArmoireError):
            await sim.boot()
        faults = journal(db, "SELECT count(*) FROM journal WHERE kind='drawer_fault'")
        sim.power_loss()
        assert faults == [(0,)]

    asyncio.run(go())


# -- a re-layout's move_out and the low-stock alarm -----------------------------------------
def test_moving_a_drug_out_raises_its_low_stock_alarm_until_it_is_moved_in(
        tmp_path: Path) -> None:
    """20 hydroxyzine (above the level of 10) go onto the bench: none is within the nurses'
    reach, as after a withdrawal of all 20. The alarm is the drug's, in the pocket it left,
    and the move into its new pocket closes it. No alarm is raised for a pocket with no drug."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab

        def low() -> list[tuple[Any, ...]]:
            return [(a["drug"], a["drawer"], a["row"], a["col"]) for a in cab.alarms.list()
                    if a["kind"] == "low_stock" and a["drug"] in ("HYDROX25", None)]

        await sim.operate(cab.restock("HYDROX25", "HYDROX25", 20, lot="H1",
                                      expiry="2027-01-31"))
        restocked_ = low()
        op = await sim.open_for(cab.move_out("A", 1, 2))
        await sim.finish(op, 0)
        moved_out = low()
        op = await sim.open_for(cab.move_in("HYDROX25", "A", 2, 2, 30))
        await sim.finish(op, 20)
        moved_in = low()
        await sim.shutdown()
        assert (restocked_, moved_in) == ([], [])
        assert moved_out == [("HYDROX25", "A", 1, 2)]

    asyncio.run(go())


# -- a return with no lot number ------------------------------------------------------------
def test_a_return_without_a_lot_goes_into_the_earliest_givable_lot(tmp_path: Path) -> None:
    """The pocket holds an expired lot, one expiring in January and one in June. A return
    with no lot number goes into January's: not the expired one (never given again), not
    June's (a later expiry than the units probably have). With only expired lots, NO_LOT."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        restocked(sim.store, "PARA500", ("A", 0, 0), 5, "OLD", "2026-10-31")
        restocked(sim.store, "PARA500", ("A", 0, 0), 5, "JAN", "2027-01-31")
        restocked(sim.store, "PARA500", ("A", 0, 0), 5, "JUN", "2027-06-30")
        sim.physical[("A", 0, 0)] = 15
        op = await sim.operate(cab.return_("PARA500", 2, "P1"))
        returned = journal(db, "SELECT lot, qty FROM journal WHERE kind='return' AND ref=?",
                           (op.intent,))
        restocked(sim.store, "HYDROX25", ("A", 1, 2), 3, "H0", "2026-11-01")
        before = rows(db)
        with pytest.raises(ArmoireError) as refused:
            await sim.run(cab.return_("HYDROX25", 1, "P1"))
        after = rows(db)
        await sim.shutdown()
        assert returned == [("JAN", 2)]
        assert refused.value.code == "NO_LOT" and after == before

    asyncio.run(go())


# -- shutting down while a drawer closes ----------------------------------------------------
def test_a_shutdown_while_a_drawer_closes_records_no_jam(tmp_path: Path) -> None:
    """The service stops while the drawer is on its way home (the close asked from the
    screen). The outputs are cut, the drawer stops short of its switch: no jam, no fault,
    and the shutdown does not wait for the drawer's deadline. At the next start the drawer
    is found ajar, which it is."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        op, left = await taking(sim, 2)
        await sim.run(cab.confirm_count(left))
        closing = asyncio.ensure_future(cab.close_drawer())  # as the kiosk's page does
        assert await sim.settle(
            lambda: sim.simulator.physics.describe()["A"]["position"] < 0.6, 5)
        started = sim.simulator.clock.now
        await sim.run(cab.shutdown())
        took = sim.simulator.clock.now - started
        await sim.advance(20)
        faults = journal(db, "SELECT code FROM journal WHERE kind='drawer_fault'")
        alarms = journal(db, "SELECT count(*) FROM alarms WHERE kind='drawer_fault'")
        assert closing.done()
        cab.hardware.close()
        sim.power_loss()
        await sim.boot()
        restart = journal(db, "SELECT code FROM journal WHERE kind='drawer_fault'")
        await sim.shutdown()
        assert took < 1.0
        assert faults == [] and alarms == [(0,)]
        assert restart == [("AJAR_AT_START",)]

    asyncio.run(go())


# -- start-up, counts, magnets --------------------------------------------------------------
def test_a_pocket_already_low_at_start_raises_its_alarm(tmp_path: Path) -> None:
    """Hydroxyzine's pocket holds 4 (under the level of 10) when the cabinet starts, with
    no alarm on record (written before the alarms existed, or lost to a power cut)."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        restocked(sim.store, "PARA500", ("A", 0, 0), 40, "L1", "2027-01-31")
        restocked(sim.store, "MORPH10", ("B", 0, 1), 15, "M1", "2027-06-30")
        restocked(sim.store, "HYDROX25", ("A", 1, 2), 4, "H1", "2027-01-31")
        await sim.shutdown()
        conn = sqlite3.connect(db)
        conn.execute("DELETE FROM alarms")
        conn.commit()
        conn.close()
        sim = SimCabinet(config(), db, start=START)
        await sim.boot()
        low = [(a["drug"], a["drawer"], a["row"], a["col"], a["message"])
               for a in sim.cab.alarms.list() if a["kind"] == "low_stock"]
        await sim.shutdown()
        assert low == [("HYDROX25", "A", 1, 2, "pocket A-2-3: 4 unit(s) left (level 10)")]

    asyncio.run(go())


def test_a_count_above_the_pocket_s_capacity_is_refused(tmp_path: Path) -> None:
    """600 typed for 18 in a pocket of 60: refused with its code, nothing written, and the
    right count then goes through."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        op, left = await taking(sim, 2)
        before = rows(db)
        with pytest.raises(ArmoireError) as refused:
            await sim.run(cab.confirm_count(600))
        after, counted = rows(db), op.counted
        await sim.finish(op, left)
        on_hand = cab.store.on_hand("A", 0, 0)
        await sim.shutdown()
        assert refused.value.code == "COUNT_ABOVE_CAPACITY"
        assert "60" in refused.value.message("fr")
        assert (after, counted) == (before, None)
        assert on_hand == 18

    asyncio.run(go())


def test_a_magnet_that_fails_after_the_drawer_opened_leaves_a_fault_row(tmp_path: Path) -> None:
    """The drawer opens but the pocket's lid cannot be released (its magnet's turn would
    come too late: MAGNET_BUSY). The operation is aborted, and the drawer standing open with
    no operation on it is journaled and alarmed; its Close button closes it."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = SimCabinet(config(hardware={"timeouts": {"magnet_pulse_ms": 1000}}), db,
                         start=START)
        await sim.boot(SPEC)
        await sim.run(sim.cab.login("ph1", PINS["ph1"]))
        restocked(sim.store, "MORPH10", ("B", 0, 1), 10, "M1", "2027-06-30")
        cab = sim.cab
        task = asyncio.ensure_future(cab.withdraw("MORPH10", 1, "P1"))
        physics = sim.simulator.physics
        assert await sim.settle(lambda: physics.describe()["B"]["position"] > 0.8, 5)
        for rc in ((0, 0), (1, 0), (1, 1)):   # three pulses of 1 s queued before its own
            cab.hardware.latches[("B", *rc)].release()
        await sim.settle(task.done, 5)
        with pytest.raises(ArmoireError) as failed:
            task.result()
        op_rows = journal(db, "SELECT kind, code FROM journal WHERE seq > (SELECT max(seq) "
                          "FROM journal WHERE kind='intent') AND kind IN "
                          "('aborted', 'drawer_fault') ORDER BY seq")
        alarm = cab.alarms.find_open("drawer_fault", Where(drawer="B"))
        session = cab.session.state
        physics.press_close_button("B")
        resolved = await sim.settle(
            lambda: cab.alarms.find_open("drawer_fault", Where(drawer="B")) is None, 10)
        closed = cab.units["B"].state == "closed"
        await sim.shutdown()
        assert failed.value.code == "MAGNET_BUSY"
        assert op_rows == [("drawer_fault", "MAGNET_FAILED"), ("aborted", "MAGNET_BUSY")]
        assert alarm is not None and message(alarm, "fr") == "tiroir B : aimant en défaut"
        assert session == "menu" and resolved and closed

    asyncio.run(go())


# -- alarms written with the count that raises them -----------------------------------------
def no_alarm_writes(db: Path, allow: bool = False) -> None:
    """Make every alarm insert fail, as a power cut just after the count's rows would stop
    it (or lift that again with ``allow``)."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS no_alarm" if allow else
                 "CREATE TRIGGER no_alarm BEFORE INSERT ON alarms "
                 "BEGIN SELECT RAISE(ABORT, 'cut'); END")
    conn.commit()
    conn.close()


def test_a_count_and_the_alarms_it_raises_are_one_transaction(tmp_path: Path) -> None:
    """A withdrawal of 12 from 20 leaves 8 of a lot expiring within the window: low stock
    and expiry. If the alarms cannot be written, neither is the withdrawal (the nurse
    counts again); a count booked without its alarms would lose them to a power cut."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        restocked(sim.store, "PARA500", ("A", 0, 0), 20, "L1", "2026-12-01")
        sim.physical[("A", 0, 0)] = 20
        op = await sim.open_for(cab.withdraw("PARA500", 12, "P1"))
        left = await sim.act(op)
        before = rows(db)
        no_alarm_writes(db)
        with pytest.raises(ArmoireError):
            await sim.run(cab.confirm_count(left))
        after, counted, on_hand = rows(db), op.counted, cab.store.on_hand("A", 0, 0)
        no_alarm_writes(db, allow=True)
        await sim.finish(op, left)
        kinds = sorted(a["kind"] for a in cab.alarms.list() if a["drug"] == "PARA500")
        await sim.shutdown()
        assert (after, counted, on_hand) == (before, None, 20)
        assert journal(db, "SELECT qty FROM journal WHERE kind='withdraw' AND ref=?",
                       (op.intent,)) == [(12,)]
        assert kinds == ["expiry", "low_stock"]

    asyncio.run(go())


# -- shutting down while a drawer opens -----------------------------------------------------
def test_a_shutdown_while_a_drawer_opens_aborts_with_no_fault(tmp_path: Path) -> None:
    """The service stops while the drawer is on its way out for a withdrawal. Nothing was
    taken: the operation is aborted by the shutdown, no stock moves, and neither the journal,
    the alarms nor the person's screen speak of a drawer fault (the drawer did not fail). The
    next start finds it ajar, which it is, and no interrupted operation."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        restocked(sim.store, "PARA500", ("A", 0, 0), 20, "L1", "2027-01-31")
        task = asyncio.ensure_future(cab.withdraw("PARA500", 2, "P1"))
        assert await sim.settle(
            lambda: sim.simulator.physics.describe()["A"]["position"] > 0.3, 5)
        assert cab.units["A"].state == "opening"
        await sim.run(cab.shutdown())
        await sim.advance(20)
        assert task.done()
        error = task.exception()
        aborted = journal(db, "SELECT code FROM journal WHERE kind='aborted'")
        faults = journal(db, "SELECT count(*) FROM journal WHERE kind='drawer_fault'")
        alarms = journal(db, "SELECT count(*) FROM alarms WHERE kind='drawer_fault'")
        cab.hardware.close()
        sim.power_loss()
        await sim.boot()
        restart = journal(db, "SELECT kind, code FROM journal WHERE kind IN "
                          "('drawer_fault', 'discrepancy') ORDER BY seq")
        on_hand = sim.cab.store.on_hand("A", 0, 0)
        await sim.shutdown()
        assert isinstance(error, ArmoireError) and error.code == "SHUTTING_DOWN"
        assert "arrêt" in error.message("fr")
        assert aborted == [("SHUTDOWN",)]
        assert faults == [(0,)] and alarms == [(0,)]
        assert restart == [("drawer_fault", "AJAR_AT_START")]
        assert on_hand == 20

    asyncio.run(go())


def test_callbacks_posted_before_a_shutdown_do_nothing_after_it(tmp_path: Path) -> None:
    """A timer that fired just before the shutdown cancelled it (the inactivity logout) and
    an event the boards posted as the outputs were cut (a switch read mid-travel) reach the
    loop after the shutdown began: cancelling came too late for them. They must write
    nothing: no logout after the stop, no drawer fault for a drawer that did not fail."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db, "n1")
        cab = sim.cab
        before = rows(db)
        sim.simulator.clock.advance(cab.settings.inactivity_s + 1)  # the timer posts its check
        cab._post(HardwareEvent(EventKind.SWITCH_FAULT, "A", {"switch": "both"}))
        await cab.shutdown()
        for _ in range(10):
            await asyncio.sleep(0)
        after = journal(db, "SELECT kind, code FROM journal WHERE seq > ?", (before,))
        alarms = journal(db, "SELECT count(*) FROM alarms WHERE kind='drawer_fault'")
        await sim.shutdown()
        assert after == [] and alarms == [(0,)]

    asyncio.run(go())


# -- a re-layout that ends with a drug in none of its old pockets ---------------------------
@pytest.mark.parametrize("ending", ["abandoned", "leaves_cabinet"])
def test_a_move_out_s_low_stock_alarm_ends_with_the_re_layout(tmp_path: Path,
                                                               ending: str) -> None:
    """Hydroxyzine's pocket is empty (low stock, rightly). A re-layout moves it out and then
    either is abandoned before its move_in, or sends it out of the cabinet. Either way the
    drug is in none of its old pockets when the re-layout ends: no low-stock alarm may stay
    open on a pocket that no longer holds it, while paracetamol's alarm (still in its
    pocket, still low) stays. (An abandon that would leave the drug in no pocket at all is
    refused, DRUG_WITHOUT_POCKET: here it has a second pocket, low too.)"""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db, "t1")
        cab = sim.cab
        if ending == "abandoned":
            formulary.assign_pocket(cab, "A", 2, 0, "HYDROX25", 30,
                                    actor=cab.authenticate("ph1", PINS["ph1"]))
        target = ("A", 2, 2) if ending == "abandoned" else (None, None, None)
        approved_tasks(cab.store, 1, [("HYDROX25", ("A", 1, 2), target, 30)])
        [task] = relayout.tasks(cab)
        op = await sim.open_for(relayout.start_task(cab, task["id"]))
        await sim.finish(op, 0)
        during = [a["drawer"] for a in cab.alarms.list()
                  if a["kind"] == "low_stock" and a["drug"] == "HYDROX25"
                  and (a["row"], a["col"]) == (1, 2)]
        if ending == "abandoned":
            ph = cab.authenticate("ph1", PINS["ph1"])
            relayout.abandon(cab, actor=ph)
        else:
            assert relayout.finish_task(cab, task["id"])
        low = sorted((a["drug"], a["drawer"], a["row"], a["col"]) for a in cab.alarms.list()
                     if a["kind"] == "low_stock")
        await sim.shutdown()
        assert during == ["A"]  # on the bench meanwhile: out of the nurses' reach
        second = [("HYDROX25", "A", 2, 0)] if ending == "abandoned" else []
        assert low == [*second, ("MORPH10", "B", 0, 1), ("PARA500", "A", 0, 0)]

    asyncio.run(go())


def test_a_return_goes_back_into_the_lot_it_was_withdrawn_from(tmp_path: Path) -> None:
    """A nurse took the last 5 units of a lot expiring in 10 days (first expiry, first
    out) and brings 2 back. With no lot number, they went into the pocket's earliest lot
    still there, a 2028 one: once their own lot expired they were still given. And when
    the withdrawal had emptied the pocket, the return was refused (NO_LOT, "give the lot
    number") on a touchscreen that has no lot field. They go back into their own lot, and
    are refused once it has expired (EXPIRED_LOT)."""
    db = tmp_path / "c.db"
    soon = (START + timedelta(days=10)).date().isoformat()

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        await sim.operate(cab.restock("PARA500", "PARA500", 5, lot="SOON", expiry=soon))
        await sim.operate(cab.restock("PARA500", "PARA500", 10, lot="LATE",
                                      expiry="2028-01-31"))
        await sim.operate(cab.restock("HYDROX25", "HYDROX25", 2, lot="H1", expiry=soon))
        await sim.run(cab.logout())
        await sim.run(cab.login("n1", PINS["n1"]))
        await sim.operate(cab.withdraw("PARA500", 5, "P1"))
        await sim.operate(cab.withdraw("HYDROX25", 2, "P2"))
        op = await sim.operate(cab.return_("PARA500", 2, "P1"))
        back = journal(db, "SELECT lot, expiry, qty FROM journal WHERE kind='return' AND ref=?",
                       (op.intent,))
        op = await sim.operate(cab.return_("HYDROX25", 1, "P2"))
        emptied = journal(db, "SELECT lot, qty FROM journal WHERE kind='return' AND ref=?",
                          (op.intent,))
        sim.start += timedelta(days=30)
        usable = cab.usable(cab.pocket("A", 0, 0))
        before = journal(db, "SELECT count(*) FROM journal")
        with pytest.raises(ArmoireError) as late:
            await sim.run(cab.return_("HYDROX25", 1, "P2"))
        after = journal(db, "SELECT count(*) FROM journal")
        await sim.shutdown()
        assert back == [("SOON", soon, 2)]
        assert emptied == [("H1", 1)]
        assert usable == 10
        assert late.value.code == "EXPIRED_LOT" and after == before

    asyncio.run(go())
