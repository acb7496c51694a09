"""The cabinet core when things go wrong between the intent and the count: a drawer that jams
while closing, a power cut with a drawer open, midnight during a withdrawal, a full disk, a
pocket not emptied on a re-layout, a returned lot the pocket never held.

Each test names the rule it keeps: what is physically in a pocket and what the journal says
must agree, or the difference must be raised as a discrepancy, never silently absorbed.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import PINS, START, booted, consistent, journal, on

from controller.alarms import message
from controller.errors import ArmoireError, HardwareError, StoreError
from controller.store import JournalEntry
from sim.harness import SimCabinet


def test_a_jam_on_closing_then_a_power_cut_still_flags_the_withdrawal(tmp_path: Path) -> None:
    """The jam's journal row names the operation, but says nothing of what the pocket holds:
    it must not count as the operation's outcome, or the 5 units taken vanish unnoticed."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        await sim.operate(sim.cab.restock("PARA500", "PARA500", 20, lot="L1",
                                          expiry="2027-01-31"))
        op = await sim.open_for(sim.cab.withdraw("PARA500", 5, "P1"))
        await sim.act(op)
        sim.simulator.physics.inject("A", "jam")
        with pytest.raises(HardwareError) as jammed:   # part-open: the pocket is to count
            await sim.run(sim.cab.close_drawer())
        assert jammed.value.code == "JAMMED_PART_OPEN"
        assert journal(db, "SELECT code FROM journal WHERE kind='drawer_fault' AND ref=?",
                       (op.intent,)) == [("CLOSE_JAMMED",)]
        sim.power_loss()
        await sim.boot()
        rows = journal(db, "SELECT code FROM journal WHERE kind='discrepancy' AND ref=?",
                       (op.intent,))
        alarms = journal(db, "SELECT state FROM alarms WHERE kind='discrepancy' AND ref=?",
                         (op.intent,))
        await sim.shutdown()
        assert rows == [("INTERRUPTED",)]
        assert alarms == [("open",)]

    asyncio.run(go())


def test_a_withdrawal_crossing_midnight_records_every_unit_taken(tmp_path: Path) -> None:
    """Lot L1 expires the day the drawer opens; the nurse takes 8 of 10 and counts after
    midnight. The plan is made as of the day the intent was written: 5 from L1, 3 from L2."""
    db = tmp_path / "c.db"
    today = START.date().isoformat()

    async def go() -> None:
        sim = await booted(db)
        await sim.operate(sim.cab.restock("PARA500", "PARA500", 5, lot="L1", expiry=today))
        await sim.operate(sim.cab.restock("PARA500", "PARA500", 5, lot="L2",
                                          expiry="2027-06-30"))
        op = await sim.open_for(sim.cab.withdraw("PARA500", 8, "P1"))
        left = await sim.act(op)
        sim.start += timedelta(days=1)
        await sim.finish(op, left)
        taken = journal(db, "SELECT lot, qty FROM journal WHERE kind='withdraw' AND ref=? "
                        "ORDER BY lot", (op.intent,))
        on_hand = sim.cab._total(sim.cab.pocket("A", 0, 0))
        discrepancies = journal(db, "SELECT count(*) FROM journal WHERE kind='discrepancy'")
        await sim.shutdown()
        assert left == 2
        assert taken == [("L1", 5), ("L2", 3)]
        assert on_hand == 2
        assert discrepancies == [(0,)]

    asyncio.run(go())
    assert consistent(db)


async def left_open_by_a_power_cut(db: Path) -> SimCabinet:
    """A withdrawal from drawer A, the power cut while the drawer is open, the restart."""
    sim = await booted(db)
    await sim.operate(sim.cab.restock("PARA500", "PARA500", 20, lot="L1", expiry="2027-01-31"))
    op = await sim.open_for(sim.cab.withdraw("PARA500", 2, "P1"))
    await sim.act(op)
    sim.power_loss()
    await sim.boot()
    return sim


def test_a_drawer_left_open_by_a_power_cut_is_flagged_and_closes_with_its_button(
        tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await left_open_by_a_power_cut(db)
        unit = sim.cab.units["A"]
        assert unit.state == "open"
        assert journal(db, "SELECT state FROM alarms WHERE kind='drawer_fault' "
                       "AND drawer='A'") == [("open",)]
        assert journal(db, "SELECT code FROM journal WHERE kind='drawer_fault'") == [
            ("OPEN_AT_START",)]
        sim.simulator.physics.press_close_button("A")
        assert await sim.settle(lambda: unit.state == "closed", 10)
        await sim.advance(0.5)
        assert sim.simulator.physics.describe()["A"]["position"] == pytest.approx(0.0)
        assert journal(db, "SELECT state FROM alarms WHERE kind='drawer_fault' "
                       "AND drawer='A'") == [("resolved",)]
        await sim.shutdown()

    asyncio.run(go())


def count_alarms(db: Path) -> list[tuple[Any, ...]]:
    return journal(db, "SELECT drawer, row, col, message FROM alarms WHERE kind='discrepancy' "
                   "AND state='open' ORDER BY drawer, row, col")


def test_a_matrix_drawer_left_open_by_a_power_cut_asks_a_count_of_every_stocked_pocket(
        tmp_path: Path) -> None:
    """While the cabinet was off its open matrix drawer exposed every pocket to anyone at
    the ward: the interrupted withdrawal's pocket is counted, and so is the other stocked one,
    each once."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        await sim.operate(sim.cab.restock("HYDROX25", "HYDROX25", 12, lot="H1",
                                          expiry="2027-03-31"))
        await sim.operate(sim.cab.restock("PARA500", "PARA500", 20, lot="L1",
                                          expiry="2027-01-31"))
        op = await sim.open_for(sim.cab.withdraw("PARA500", 2, "P1"))
        await sim.act(op)
        sim.power_loss()
        await sim.boot()
        await sim.shutdown()

    asyncio.run(go())
    alarms = count_alarms(db)
    assert [a[:3] for a in alarms] == [("A", 0, 0), ("A", 1, 2)]
    assert alarms[1][3] == "drawer A found open at start: count pocket A-2-3"
    assert consistent(db)


def test_a_matrix_drawer_found_ajar_at_start_asks_counts_and_a_lidded_one_does_not(
        tmp_path: Path) -> None:
    """Pushed half-way while the power was off: nobody's operation, and nobody the journal
    can name, had its pockets within reach. A lidded drawer's pockets stayed latched."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        await sim.operate(sim.cab.restock("HYDROX25", "HYDROX25", 12, lot="H1",
                                          expiry="2027-03-31"))
        await sim.operate(sim.cab.restock("MORPH10", "MORPH10", 5, lot="M1",
                                          expiry="2027-03-31"))
        sim.power_loss()
        sim.simulator.physics.pull_open("A", to=0.4)
        sim.simulator.physics.pull_open("B", to=0.4)
        await sim.boot()
        alarms = [a for a in sim.cab.alarms.list() if a["kind"] == "discrepancy"]
        await sim.shutdown()
        assert [(a["drawer"], a["row"], a["col"]) for a in alarms] == [("A", 1, 2)]
        assert message(alarms[0], "fr") == "tiroir A trouvé ouvert au démarrage : " \
            "comptez la poche A-2-3"

    asyncio.run(go())


def test_a_second_restart_asks_no_count_twice(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        await sim.operate(sim.cab.restock("HYDROX25", "HYDROX25", 12, lot="H1",
                                          expiry="2027-03-31"))
        sim.power_loss()
        sim.simulator.physics.pull_open("A", to=0.4)
        await sim.boot()
        sim.power_loss()
        await sim.boot()
        await sim.shutdown()

    asyncio.run(go())
    assert [a[:3] for a in count_alarms(db)] == [("A", 1, 2)]


def test_a_technician_can_reset_a_drawer_left_open_but_not_one_in_use(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await left_open_by_a_power_cut(db)
        await sim.run(sim.cab.login("t1", PINS["t1"]))
        assert await sim.run(sim.cab.reset_drawer("A")) == "closed"
        assert sim.simulator.physics.describe()["A"]["position"] == pytest.approx(0.0)
        await sim.run(sim.cab.logout())
        await sim.run(sim.cab.login("ph1", PINS["ph1"]))
        op = await sim.open_for(sim.cab.withdraw("PARA500", 2, "P1"))
        with pytest.raises(ArmoireError) as busy:
            await sim.run(sim.cab.reset_drawer("A"))
        assert busy.value.code == "OPERATION_RUNNING"
        assert sim.cab.units["A"].state == "open" and op.step == "act"
        await sim.shutdown()

    asyncio.run(go())


def test_a_drawer_pushed_shut_after_a_restart_is_driven_open_again(tmp_path: Path) -> None:
    """Seen open at start-up, then pushed shut by hand: the next withdrawal must run the
    motor, not trust the stale 'open' and leave the pocket out of reach."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await left_open_by_a_power_cut(db)
        sim.simulator.physics.pull_open("A", to=0.0)
        await sim.advance(1)
        await sim.run(sim.cab.login("n1", PINS["n1"]))
        op = await sim.open_for(sim.cab.withdraw("PARA500", 2, "P1"))
        reached = await sim.settle(lambda: sim.simulator.physics.accessible("A", 0, 0), 10)
        state = sim.cab.units["A"].state
        await sim.shutdown()
        assert op.step == "act"
        assert reached and state == "open"

    asyncio.run(go())


def test_a_re_layout_pocket_must_be_emptied_before_it_is_given_up(tmp_path: Path) -> None:
    """Units counted left in a pocket being moved out would stay in a pocket with no drug,
    out of reach of every operation: the count is refused until the pocket is empty."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        await sim.operate(cab.restock("HYDROX25", "HYDROX25", 10, lot="H1",
                                      expiry="2027-01-31"))
        before = journal(db, "SELECT count(*) FROM journal")
        op = await sim.open_for(cab.move_out("A", 1, 2))
        with pytest.raises(ArmoireError) as refused:
            await sim.run(cab.confirm_count(3))
        assert refused.value.code == "POCKET_NOT_EMPTY"
        assert "3" in refused.value.message("fr")
        assert op.counted is None
        assert cab.pocket("A", 1, 2).drug == "HYDROX25"
        assert journal(db, "SELECT count(*) FROM journal")[0][0] == before[0][0] + 1  # intent
        await sim.finish(op, 0)
        assert cab.pocket("A", 1, 2).drug is None
        assert journal(db, "SELECT qty FROM bench WHERE drug='HYDROX25'") == [(10,)]
        await sim.shutdown()

    asyncio.run(go())
    assert consistent(db)


def test_moving_out_an_empty_pocket_closes_its_intent(tmp_path: Path) -> None:
    """No units to carry, yet the pocket changes hands: one move_out row of 0 says so, and
    the next start does not call the operation interrupted."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        op = await sim.open_for(sim.cab.move_out("A", 1, 2))
        await sim.act(op)
        await sim.finish(op, 0)
        assert sim.store.open_intents() == []
        assert journal(db, "SELECT kind, qty FROM journal WHERE ref=?", (op.intent,)) == [
            ("move_out", 0)]
        sim.power_loss()
        await sim.boot()
        discrepancies = journal(db, "SELECT count(*) FROM journal WHERE kind='discrepancy'")
        await sim.shutdown()
        assert discrepancies == [(0,)]

    asyncio.run(go())
    assert consistent(db)


def test_a_full_disk_refuses_the_count_with_a_code_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        await sim.operate(cab.restock("PARA500", "PARA500", 20, lot="L1",
                                      expiry="2027-01-31"))
        op = await sim.open_for(cab.withdraw("PARA500", 2, "P1"))
        await sim.act(op)
        conn = sim.store.conn
        # Fill the database to its (lowered) size limit, as a full SD card would: journal
        # rows of shrinking size (through the store, so the chain stays valid) until not
        # even the smallest fits.
        conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
        for size in (2000, 300, 50, 1):
            with pytest.raises(StoreError):
                for _ in range(10_000):
                    sim.store.append(JournalEntry("test_filler", detail={"pad": "x" * size}))
        rows_before = journal(db, "SELECT count(*) FROM journal")
        with pytest.raises(StoreError) as full:
            await sim.run(cab.confirm_count(18))
        assert full.value.code == "DB_FULL"
        assert "rien n'a été enregistré" in full.value.message("fr")
        assert op.counted is None and op.step == "act"
        assert journal(db, "SELECT count(*) FROM journal") == rows_before
        conn.execute(f"PRAGMA max_page_count={2**30}")  # space freed: the count goes through
        await sim.run(cab.confirm_count(18))
        await sim.shutdown()

    asyncio.run(go())
    assert consistent(db)


def test_a_returned_lot_new_to_the_pocket_needs_its_expiry(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        await sim.operate(cab.restock("PARA500", "PARA500", 5, lot="L1", expiry="2027-01-31"))
        before = journal(db, "SELECT count(*) FROM journal")
        with pytest.raises(ArmoireError) as missing:
            await sim.run(cab.return_("PARA500", 3, "P1", lot="ZZZ"))
        assert missing.value.code == "EXPIRY_REQUIRED"
        with pytest.raises(ArmoireError) as expired:
            await sim.run(cab.return_("PARA500", 3, "P1", lot="ZZZ", expiry="2026-01-31"))
        assert expired.value.code == "EXPIRED_LOT"
        assert journal(db, "SELECT count(*) FROM journal") == before
        await sim.operate(cab.return_("PARA500", 3, "P1", lot="ZZZ", expiry="2027-03-31"))
        await sim.operate(cab.return_("PARA500", 1, "P1", lot="L1", expiry="2030-01-01"))
        lots = journal(db, "SELECT lot, expiry, on_hand FROM stock ORDER BY lot")
        sim.start += timedelta(days=3650)
        usable = cab.usable(cab.pocket("A", 0, 0))
        await sim.shutdown()
        # A lot the pocket holds keeps its recorded expiry, whatever was typed.
        assert lots == [("L1", "2027-01-31", 6), ("ZZZ", "2027-03-31", 3)]
        assert usable == 0

    asyncio.run(go())


def test_units_found_in_a_pocket_with_no_lot_are_never_given(tmp_path: Path) -> None:
    """A count finds 4 units where the journal has none: their lot and expiry are unknown,
    so they are booked as already expired and the expiry alarm sends someone to look."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        cab = sim.cab
        op = await sim.open_for(cab.count("A", 0, 0))
        await sim.finish(op, 4)
        pocket = cab.pocket("A", 0, 0)
        total, usable = cab._total(pocket), cab.usable(pocket)
        kinds = journal(db, "SELECT kind FROM alarms WHERE state='open' ORDER BY kind")
        await sim.shutdown()
        assert (total, usable) == (4, 0)
        assert ("discrepancy",) in kinds and ("expired",) in kinds

    asyncio.run(go())
    assert consistent(db)


def test_a_drawer_that_did_not_open_is_told_in_french(tmp_path: Path) -> None:
    """The refusal a nurse reads when the drawer jams on opening named the drawer's state
    in English in the French message too: "ne s'est pas ouvert (jammed)". (A lidded drawer:
    its lids stay latched, so nothing was taken; a matrix drawer jammed part-open asks for
    counts instead, tests/test_jam.py.)"""
    db = tmp_path / "c.db"

    async def go() -> ArmoireError:
        sim = await booted(db)
        await sim.operate(sim.cab.restock("MORPH10", "MORPH10", 5, lot="M1",
                                          expiry="2027-01-31"))
        sim.simulator.physics.inject("B", "jam")
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.withdraw("MORPH10", 1, "P1"))
        finally:
            await sim.shutdown()
        return err.value

    err = asyncio.run(go())
    assert err.code == "DRAWER_FAULT"
    assert "jammed" in err.message_en
    assert "bloqué" in err.message_fr and "jammed" not in err.message_fr


def test_units_left_by_a_short_withdrawal_keep_the_expiry_of_their_lot(tmp_path: Path) -> None:
    """A nurse asked for the 5 units of the lot expiring soon (first expiry, first out)
    took 4: the unit left in the pocket is of that lot. The count's surplus was booked on
    the pocket's latest lot, so that unit took a 2028 expiry: once its own lot expired it
    was still counted usable, given to a patient, and no expiry alarm named it."""
    db = tmp_path / "c.db"
    soon = (START + timedelta(days=10)).date().isoformat()

    async def go() -> tuple[list[tuple[str, int]], int, int]:
        sim = await booted(db)
        cab = sim.cab
        await sim.operate(cab.restock("PARA500", "PARA500", 5, lot="SOON", expiry=soon))
        await sim.operate(cab.restock("PARA500", "PARA500", 10, lot="LATE",
                                      expiry="2028-01-31"))
        await sim.run(cab.logout())
        await sim.run(cab.login("n1", PINS["n1"]))
        await sim.operate(cab.withdraw("PARA500", 5, "P1"), take=4)
        lots = [(r["lot"], r["on_hand"]) for r in cab._lots(cab.pocket("A", 0, 0))]
        sim.start += timedelta(days=30)
        pocket = cab.pocket("A", 0, 0)
        usable, total = cab.usable(pocket), cab._total(pocket)
        await sim.shutdown()
        return lots, usable, total

    lots, usable, total = asyncio.run(go())
    assert lots == [("SOON", 1), ("LATE", 10)]
    assert (usable, total) == (10, 11)
    assert consistent(db)


def test_a_withdrawal_no_single_pocket_can_serve_says_so(tmp_path: Path) -> None:
    """Paracetamol in two pockets of 3: a nurse asking for 5 was told "only 6 usable
    unit(s) of paracetamol": more than she asked, and no way to know what to do. She is
    told how many one pocket can give, to take them in two withdrawals."""
    db = tmp_path / "c.db"

    async def go() -> ArmoireError:
        from controller.formulary import assign_pocket

        sim = await booted(db)
        cab = sim.cab
        assign_pocket(cab, "A", 0, 1, "PARA500", 60)
        await sim.operate(cab.restock("PARA500", "PARA500", 3, lot="L1", expiry="2027-01-31",
                                      pocket=("A", 0, 0)))
        await sim.operate(cab.restock("PARA500", "PARA500", 3, lot="L1", expiry="2027-01-31",
                                      pocket=("A", 0, 1)))
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(cab.withdraw("PARA500", 5, "P1"))
        finally:
            await sim.shutdown()
        return err.value

    err = asyncio.run(go())
    assert err.code == "NO_STOCK"
    assert "6" not in err.message_en and "3" in err.message_en and "5" in err.message_en
    assert "3" in err.message_fr and "5" in err.message_fr


def test_a_drawer_pulled_open_while_offline_asks_for_a_count_before_its_reset(
        tmp_path: Path) -> None:
    """A motor command the hardware refused put matrix drawer A offline, its link still up:
    its switches are still read, and a reset now brings it back. Pulled open meanwhile, its
    uncommanded move was dropped (offline took no event), the reset drove it shut and closed
    its fault: the pockets it exposed were never counted, as a forced-open drawer's are."""
    db = tmp_path / "c.db"

    async def go() -> tuple[str, str, list[tuple[str, int, int]]]:
        sim = await booted(db)
        cab = sim.cab
        await sim.operate(cab.restock("PARA500", "PARA500", 20, lot="L1",
                                      expiry="2027-01-31"))
        part = cab.hardware.drawers["A"]
        real_open = part.open

        def refused() -> None:
            raise HardwareError("drawer A: the board refused OPEN", code="BOARD_REFUSED")

        part.open = refused  # type: ignore[method-assign]
        with pytest.raises(ArmoireError):
            await sim.run(cab.withdraw("PARA500", 1, "P1"))
        part.open = real_open  # type: ignore[method-assign]
        offline = cab.units["A"].state
        sim.simulator.physics.pull_open("A")
        await sim.advance(0.5)  # virtual time: past the switches' debounce
        state = cab.units["A"].state
        await sim.run(cab.reset_drawer("A"))
        counts = [(a["drawer"], a["row"], a["col"]) for a in cab.alarms.list()
                  if a["kind"] == "discrepancy"]
        await sim.shutdown()
        return offline, state, counts

    offline, state, counts = asyncio.run(go())
    assert offline == "offline"
    assert state == "forced_open"
    assert counts == [("A", 0, 0)]
    assert consistent(db)


def test_a_matrix_drawer_whose_board_answers_only_after_start_is_counted_when_found_ajar(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pushed half-way while the power was off, and its board slower than the Pi to come
    back: at start its switches cannot be read (offline), so nothing was found open. When
    the link comes back the switches say ajar; the drawer was as exposed as one found so at
    start, so it is journaled, alarmed and its stocked pockets counted the same way; a
    second LINK_UP adds nothing."""
    from hal.parts import EventKind, HardwareEvent

    db = tmp_path / "c.db"

    def unreadable(self: Any) -> Any:
        raise HardwareError("no answer", code="LINK_DOWN")

    async def go() -> tuple[str, list[dict[str, Any]]]:
        sim = await booted(db)
        await sim.operate(sim.cab.restock("HYDROX25", "HYDROX25", 12, lot="H1",
                                          expiry="2027-03-31"))
        sim.power_loss()
        sim.simulator.physics.pull_open("A", to=0.4)
        from controller.cabinet import Cabinet

        real_start = Cabinet.start

        async def start(self: Any) -> None:
            # The drawer parts exist once the controller has built its hardware: their
            # switches cannot be read while it starts, and can be right after.
            with monkeypatch.context() as m:
                m.setattr(type(self.hardware.drawers["A"]), "switches",
                          property(unreadable))
                await real_start(self)

        with monkeypatch.context() as m:
            m.setattr(Cabinet, "start", start)
            cab = await sim.boot()
        at_start = cab.units["A"].state
        for _ in range(2):
            cab._post(HardwareEvent(EventKind.LINK_UP, "A", {"rebooted": True}))
            await sim.settle(lambda: cab.units["A"].state != "offline", limit=1)
            await sim.advance(0.1)
        alarms = [a for a in cab.alarms.list() if a["kind"] == "discrepancy"]
        await sim.shutdown()
        return at_start, alarms

    at_start, alarms = asyncio.run(go())
    assert at_start == "offline"
    assert [(a["drawer"], a["row"], a["col"]) for a in alarms] == [("A", 1, 2)]
    assert alarms[0]["message"] == \
        "drawer A found open when its board came back: count pocket A-2-3"
    assert message(alarms[0], "fr") == \
        "tiroir A trouvé ouvert au retour de sa carte : comptez la poche A-2-3"
    assert journal(db, "SELECT code FROM journal WHERE kind='drawer_fault' AND drawer='A' "
                   "ORDER BY seq") == [("OFFLINE",), ("AJAR_AT_LINK_UP",)]
    assert journal(db, "SELECT state FROM alarms WHERE kind='drawer_fault' "
                   "AND drawer='A'") == [("open",)]
    assert consistent(db)


def test_a_count_sent_while_the_drawer_still_opens_says_so(tmp_path: Path) -> None:
    """The operation page shows the count field from the start: a nurse who confirmed it
    before the drawer was open read "aucune opération en attente", though her operation was
    there, on its way. She is told to wait for the drawer, and the count goes through once
    it is open; nothing was written meanwhile."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await booted(db)
        await sim.operate(sim.cab.restock("PARA500", "PARA500", 20, lot="L1",
                                          expiry="2027-01-31"))
        started = asyncio.ensure_future(sim.cab.withdraw("PARA500", 2, "P1"))
        for _ in range(100):
            await asyncio.sleep(0)
            if sim.cab.session.op is not None or started.done():
                break
        assert not started.done(), started.exception()
        assert sim.cab.session.op is not None and sim.cab.session.op.step == "opening"
        before = journal(db, "SELECT count(*) FROM journal")
        with pytest.raises(ArmoireError) as early:
            await sim.cab.confirm_count(18)
        assert early.value.code == "DRAWER_OPENING"
        assert early.value.message("fr") == (
            "le tiroir A s'ouvre encore : attendez qu'il soit ouvert")
        assert early.value.message("en") == "drawer A is still opening: wait until it is open"
        assert journal(db, "SELECT count(*) FROM journal") == before
        op = await sim.run(started)
        await sim.act(op)
        await sim.finish(op, 18)
        await sim.shutdown()
        assert consistent(db)

    asyncio.run(go())


@pytest.mark.parametrize("backend", ["gpio", "serial"])
def test_a_switch_that_sticks_again_after_a_reset_is_journaled_again(
        tmp_path: Path, backend: str) -> None:
    """One physical fault is one ``drawer_fault`` row however often the backend reports it
    (test_fault_table.py), but a technician's reset ends it: the same switch sticking
    again afterwards is a second fault, which a count of faults per drawer must see."""
    db = tmp_path / "c.db"

    async def go() -> None:
        sim = await on(backend, db)
        unit = sim.cab.units["A"]
        try:
            for _ in range(2):
                sim.simulator.physics.inject("A", "open_switch_stuck")
                assert await sim.settle(lambda: unit.state == "switch_fault", 5)
                await sim.advance(1.0)         # every report the backend makes of it
                sim.simulator.physics.inject("A", "clear")
                assert await sim.run(sim.cab.reset_drawer("A")) == "closed"
        finally:
            await sim.shutdown()

    asyncio.run(go())
    assert journal(db, "SELECT kind, code FROM journal WHERE kind IN "
                   "('drawer_fault', 'drawer_reset') ORDER BY seq") == [
        ("drawer_fault", "SWITCH_FAULT"), ("drawer_reset", "CLOSED")] * 2
    assert consistent(db)
