"""Re-layouts stopped halfway, and what the pharmacist and the pick list see after."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from helpers import PINS, SPEC, START, approved_tasks, carry_out, config, restocked

from controller import relayout, replenishment
from controller.errors import RuleViolation, StateError
from controller.journal import projection_mismatches, verify
from sim.harness import SimCabinet


def test_abandon_is_refused_while_a_drug_moved_out_has_no_pocket(tmp_path):
    """A drug at 0 units taken out of its pocket puts nothing on the bench; abandoning then
    would leave it in no pocket at all: off the pick list, unrestockable, its low-stock
    alarm closed. The pharmacist is told to finish its move first."""
    async def go():
        sim = SimCabinet(config(), tmp_path / "h.db", start=START)
        cab = await sim.boot(SPEC)
        ph = cab.authenticate("ph1", PINS["ph1"])
        restocked(cab.store, "PARA500", ("A", 0, 0), 8, "L1", "2030-01-01")
        approved_tasks(cab.store, 5, [("HYDROX25", ("A", 1, 2), ("A", 2, 2), 30),
                                      ("PARA500", ("A", 0, 0), ("A", 0, 1), 60)])
        await sim.run(cab.login("t1", PINS["t1"]))
        first = relayout.tasks(cab)[0]
        op = await sim.open_for(relayout.start_task(cab, first["id"]))
        await sim.finish(op, 0)  # HYDROX25 had no unit: nothing on the bench
        assert cab.store.on_bench("HYDROX25") == 0
        head = cab.store.head()
        with pytest.raises(RuleViolation) as info:
            relayout.abandon(cab, actor=ph)
        assert info.value.code == "DRUG_WITHOUT_POCKET"
        assert "HYDROX25" in info.value.message_en and "HYDROX25" in info.value.message_fr
        assert cab.store.head() == head and len(relayout.tasks(cab)) == 2
        # Its move_in done (0 units), the abandon goes through and the drug is on the list.
        op = await sim.open_for(relayout.start_task(cab, first["id"]))
        await sim.finish(op, 0)
        assert relayout.finish_task(cab, first["id"])
        assert relayout.abandon(cab, actor=ph) == 1
        assert cab.pocket("A", 2, 2).drug == "HYDROX25"
        assert "HYDROX25" in {p["drug"] for p in replenishment.pick_list(cab)}
        await sim.shutdown()
        conn = sqlite3.connect(tmp_path / "h.db")
        assert verify(conn).ok and projection_mismatches(conn) == []
    asyncio.run(go())


def test_a_move_onto_the_bench_recorded_before_a_power_cut_is_marked_done(tmp_path):
    """A swap cycle benches one drug. Its move_out recorded, the power goes before the task
    is marked done: starting the task again marks it done (as for a move_in) instead of
    refusing forever, which blocked every later task, the abandon (units on the bench), a
    new proposal and every pocket change."""
    async def go():
        sim = SimCabinet(config(), tmp_path / "p.db", start=START)
        cab = await sim.boot(SPEC)
        restocked(cab.store, "PARA500", ("A", 0, 0), 8, "L1", "2030-01-01")
        restocked(cab.store, "HYDROX25", ("A", 1, 2), 5, "H1", "2030-01-01")
        bench = (None, None, None)
        approved_tasks(cab.store, 3, [("PARA500", ("A", 0, 0), bench, 60),
                                      ("HYDROX25", ("A", 1, 2), ("A", 0, 0), 30),
                                      ("PARA500", bench, ("A", 1, 2), 60)])
        await sim.run(cab.login("t1", PINS["t1"]))
        first = relayout.tasks(cab)[0]
        op = await sim.open_for(relayout.start_task(cab, first["id"]))
        await sim.finish(op, 0)
        sim.power_loss()  # before the page marks the task done
        cab = await sim.boot()
        await sim.run(cab.login("t1", PINS["t1"]))
        with pytest.raises(StateError) as info:
            await sim.run(relayout.start_task(cab, first["id"]))
        assert info.value.code == "TASK_ALREADY_DONE"
        assert [t["id"] for t in relayout.tasks(cab)] != [] and first["id"] not in [
            t["id"] for t in relayout.tasks(cab)]
        await carry_out(sim, cab)
        assert relayout.tasks(cab) == []
        assert cab.store.on_hand("A", 1, 2) == 8 and cab.pocket("A", 1, 2).drug == "PARA500"
        assert cab.store.on_hand("A", 0, 0) == 5 and cab.pocket("A", 0, 0).drug == "HYDROX25"
        assert cab.store.on_bench("PARA500") == 0
        await sim.shutdown()
        conn = sqlite3.connect(tmp_path / "p.db")
        assert verify(conn).ok and projection_mismatches(conn) == []
    asyncio.run(go())


def test_a_move_in_discrepancy_names_the_drug(tmp_path):
    """The new pocket had no drug when its move_in began: a short count, or a session that
    timed out before the count, raised a discrepancy naming no drug (for a controlled drug,
    the pharmacist was left to guess which one was missing)."""
    async def go():
        sim = SimCabinet(config(), tmp_path / "d.db", start=START)
        cab = await sim.boot(SPEC)
        restocked(cab.store, "PARA500", ("A", 0, 0), 8, "L1", "2030-01-01")
        restocked(cab.store, "MORPH10", ("B", 0, 1), 5, "M1", "2030-01-01")
        approved_tasks(cab.store, 4, [("PARA500", ("A", 0, 0), ("A", 0, 1), 60),
                                      ("MORPH10", ("B", 0, 1), ("B", 1, 1), 20)])
        await sim.run(cab.login("t1", PINS["t1"]))
        para, morph = relayout.tasks(cab)
        op = await sim.open_for(relayout.start_task(cab, para["id"]))
        await sim.finish(op, 0)
        op = await sim.open_for(relayout.start_task(cab, para["id"]))
        await sim.finish(op, 7)  # one unit went missing between the two pockets
        assert relayout.finish_task(cab, para["id"])
        op = await sim.open_for(relayout.start_task(cab, morph["id"]))
        await sim.finish(op, 0)
        op = await sim.open_for(relayout.start_task(cab, morph["id"]))
        await sim.run(cab.close_drawer())
        await sim.advance(120)  # no count: the session times out
        assert cab.session.state == "locked"
        found = {(a["drawer"], a["row"], a["col"]): a["drug"] for a in cab.alarms.list()
                 if a["kind"] == "discrepancy"}
        assert found == {("A", 0, 1): "PARA500", ("B", 1, 1): "MORPH10"}
        await sim.shutdown()
        conn = sqlite3.connect(tmp_path / "d.db")
        assert verify(conn).ok and projection_mismatches(conn) == []
    asyncio.run(go())


def test_a_proposal_computed_while_a_drug_was_flagged_cannot_be_approved(tmp_path,
                                                                        monkeypatch):
    """Pharmacist B flags hydroxyzine (in open drawer A) high-alert while pharmacist A's
    proposal is being computed: the change superseded the proposals stored so far, not the
    one stored after it, made for a hydroxyzine that was not high-alert. Approving it is
    refused as stale, like a proposal made from another layout."""
    import threading

    from controller import formulary

    async def go():
        sim = SimCabinet(config(), tmp_path / "f.db", start=START)
        cab = await sim.boot(SPEC)
        ph = cab.authenticate("ph1", PINS["ph1"])
        started, release = threading.Event(), threading.Event()
        real_solve = relayout.solve

        def slow_solve(*args, **kwargs):
            started.set()
            release.wait(10)
            return real_solve(*args, **kwargs)

        monkeypatch.setattr(relayout, "solve", slow_solve)
        computing = asyncio.ensure_future(relayout.propose_async(cab, time_limit=0.3,
                                                                 actor=ph))
        assert await asyncio.to_thread(started.wait, 10)
        formulary.change_drug(cab, "HYDROX25", "hydroxyzine", "25 mg", "tablet",
                              high_alert=True, actor=ph)
        release.set()
        proposal = await computing
        assert proposal["status"] == "proposed"
        with pytest.raises(StateError) as info:
            relayout.approve(cab, proposal["id"], actor=ph)
        assert info.value.code == "PROPOSAL_STALE"
        assert relayout.tasks(cab) == []
        await sim.shutdown()
    asyncio.run(go())


def test_approved_levels_follow_the_drug_to_its_new_pocket(tmp_path):
    """The pharmacist approved morphine's levels at 3/8 in a pocket of 20: after a
    re-layout moved it, its new pocket fell back to the default rule and the capacity, and
    the pick list asked for 18 ampoules instead of 6. Levels go with the drug, as its
    capacity does, a swap cycle's benched drug included."""
    async def go():
        sim = SimCabinet(config(), tmp_path / "l.db", start=START)
        cab = await sim.boot(SPEC)
        with cab.store.transaction() as c:
            for (drawer, row, col), (lo, hi) in {("B", 0, 1): (3, 8), ("A", 0, 0): (15, 40),
                                                 ("A", 1, 2): (4, 20)}.items():
                c.execute("UPDATE pockets SET min_level=?, max_level=? WHERE drawer=? AND "
                          "row=? AND col=?", (lo, hi, drawer, row, col))
        restocked(cab.store, "MORPH10", ("B", 0, 1), 2, "M1", "2030-01-01")
        restocked(cab.store, "PARA500", ("A", 0, 0), 12, "P1", "2030-01-01")
        restocked(cab.store, "HYDROX25", ("A", 1, 2), 3, "H1", "2030-01-01")

        def morphine_line():
            return [(p["pocket"], p["level"], p["refill_to"], p["bring"])
                    for p in replenishment.pick_list(cab) if p["drug"] == "MORPH10"]

        assert morphine_line() == [("B-1-2", 3, 8, 6)]
        bench = (None, None, None)
        approved_tasks(cab.store, 2, [("MORPH10", ("B", 0, 1), ("B", 1, 1), 20),
                                      ("PARA500", ("A", 0, 0), bench, 60),
                                      ("HYDROX25", ("A", 1, 2), ("A", 0, 0), 30),
                                      ("PARA500", bench, ("A", 1, 2), 60)])
        await sim.run(cab.login("t1", PINS["t1"]))
        await carry_out(sim, cab)
        assert relayout.tasks(cab) == []
        levels = {(p.drawer, p.row, p.col): (p.drug, p.capacity, p.min_level, p.max_level)
                  for p in (cab.pocket("B", 1, 1), cab.pocket("A", 0, 0),
                            cab.pocket("A", 1, 2))}
        assert levels == {("B", 1, 1): ("MORPH10", 20, 3, 8),
                          ("A", 0, 0): ("HYDROX25", 30, 4, 20),
                          ("A", 1, 2): ("PARA500", 60, 15, 40)}
        assert morphine_line() == [("B-2-2", 3, 8, 6)]
        low = {(a["drug"], a["drawer"], a["row"], a["col"]) for a in cab.alarms.list()
               if a["kind"] == "low_stock"}
        assert low == {("MORPH10", "B", 1, 1), ("HYDROX25", "A", 0, 0),
                       ("PARA500", "A", 1, 2)}  # 2 ≤ 3, 3 ≤ 4, 12 ≤ 15
        await sim.shutdown()
        conn = sqlite3.connect(tmp_path / "l.db")
        assert verify(conn).ok and projection_mismatches(conn) == []
    asyncio.run(go())
