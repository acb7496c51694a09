"""From a layout proposal to the layout restock enforces, through the technician's moves."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from helpers import PINS as HPINS
from helpers import SPEC, START, approved_tasks, carry_out, config, restocked

from controller import formulary, relayout
from controller.config import from_dict
from controller.errors import ArmoireError, PermissionDenied, RuleViolation, StateError
from controller.journal import projection_mismatches, verify
from sim.harness import SimCabinet

ROOT = Path(__file__).resolve().parents[1]
SEED = json.loads((ROOT / "sim" / "demo" / "demo-seed.json").read_text())
PIN = {u["id"]: u["pin"] for u in SEED["users"]}


def demo_config():
    return from_dict({"cabinet": {"drawers": [
        {"id": "A", "type": "matrix", "rows": 3, "cols": 3},
        {"id": "B", "type": "cubie", "rows": 3, "cols": 3}]},
        "security": {"argon2_time_cost": 1, "argon2_memory_kib": 8192}}, sim=True)


def test_proposal_to_enforced_layout(tmp_path):
    async def go():
        # The demo layout puts hydroxyzine (A-1-3) and hydralazine (A-3-3) in one open drawer,
        # and paracetamol 500 mg next to ibuprofen; make a look-alike pair adjacent too.
        seed = json.loads(json.dumps(SEED))
        for p in seed["layout"]:
            if p["drug"] == "HYDRAL25":
                p.update(row=0, col=1)
            elif p["drug"] == "IBU400":
                p.update(row=2, col=2)
        for s in seed["stock"]:
            if (s["drawer"], s["row"], s["col"]) == ("A", 0, 1):
                s.update(row=2, col=2)
            elif (s["drawer"], s["row"], s["col"]) == ("A", 2, 2):
                s.update(row=0, col=1)
        sim = SimCabinet(demo_config(), tmp_path / "r.db", start=START)
        cab = await sim.boot(seed)
        for p in seed["stock"]:
            sim.physical[(p["drawer"], p["row"], p["col"])] = p["qty"]
        await sim.run(cab.login("prep1", PIN["prep1"]))
        with pytest.raises(PermissionDenied):
            relayout.propose(cab)
        await cab.logout()
        await sim.run(cab.login("pharma1", PIN["pharma1"]))
        before = relayout.score_today(cab)
        proposal = relayout.propose(cab, time_limit=2, threshold=0.5)
        assert proposal["status"] == "proposed"
        assert proposal["current_adjacent"] == before[0] >= 1
        assert proposal["adjacent"] <= proposal["current_adjacent"]
        assert all({"a", "b", "cells"} <= set(c) for c in proposal["conflicts"])
        assert len(proposal["conflicts"]) == proposal["adjacent"]
        assert proposal["moves"], "an improvement needs moves"
        pending = relayout.approve(cab, proposal["id"])
        assert len(pending) == len(proposal["moves"])
        with pytest.raises(StateError):
            relayout.approve(cab, proposal["id"])
        await cab.logout()
        # The technician works through the task list, in order.
        await sim.run(cab.login("prep1", PIN["prep1"]))
        for _ in range(4 * len(pending)):
            todo = relayout.tasks(cab)
            if not todo:
                break
            task = todo[0]
            op = await sim.open_for(relayout.start_task(cab, task["id"]))
            if op.kind == "move_out":
                key = (op.pocket.drawer, op.pocket.row, op.pocket.col)
                sim.physical[("bench", task["drug"])] = sim.physical.pop(key, 0)
                count = 0
            else:
                count = sim.physical.pop(("bench", task["drug"]), 0)
                sim.physical[(op.pocket.drawer, op.pocket.row, op.pocket.col)] = count
            await sim.finish(op, count)
            relayout.finish_task(cab, task["id"])
        assert relayout.tasks(cab) == []
        placed = {(p["drug"]): (p["drawer"], p["row"], p["col"])
                  for p in relayout.current_placements(cab)}
        wanted = {p["drug"]: (p["drawer"], p["row"], p["col"]) for p in proposal["placements"]}
        assert placed == wanted
        assert relayout.score_today(cab)[0] == proposal["adjacent"]
        assert [a for a in cab.alarms.list() if a["kind"] == "discrepancy"] == []
        # Restock now enforces the new layout: the drug goes to its new pocket only.
        moved = next(m for m in proposal["moves"] if m["to"] is not None)
        drug = moved["drug"]
        gtin = next(d["gtin"] for d in SEED["drugs"] if d["id"] == drug)
        op = await sim.operate(cab.restock(drug, gtin, 1, lot="NEW", expiry="2027-12-31"))
        assert (op.pocket.drawer, op.pocket.row, op.pocket.col) == (
            moved["to"]["drawer"], moved["to"]["row"], moved["to"]["col"])
        other = next(d["id"] for d in SEED["drugs"] if d["id"] != drug)
        with pytest.raises(RuleViolation):
            await sim.run(cab.restock(None, gtin, 1, lot="X", expiry="2027-12-31",
                                      pocket=wanted[other]))
        await sim.shutdown()
        conn = sqlite3.connect(tmp_path / "r.db")
        assert verify(conn).ok and projection_mismatches(conn) == []
        assert conn.execute("SELECT COUNT(*) FROM journal WHERE kind='layout_approved'"
                            ).fetchone()[0] == 1
    asyncio.run(go())


def test_pharmacy_pages_act_as_their_own_pharmacist(tmp_path):
    """With ``actor=``, the pharmacy login proposes, rejects and approves while the
    touchscreen stays locked (or used by someone else)."""
    async def go():
        sim = SimCabinet(demo_config(), tmp_path / "r.db", start=START)
        cab = await sim.boot(SEED)
        assert cab.session.state == "locked"
        technician = cab.authenticate("prep1", PIN["prep1"])
        with pytest.raises(PermissionDenied):
            relayout.propose(cab, time_limit=1, actor=technician)
        pharmacist = cab.authenticate("pharma1", PIN["pharma1"])
        first = relayout.propose(cab, time_limit=1, actor=pharmacist)
        assert first["created_by"] == "pharma1"
        with pytest.raises(PermissionDenied):
            relayout.reject(cab, first["id"], actor=technician)
        relayout.reject(cab, first["id"], "later", actor=pharmacist)
        assert relayout.describe(cab, first["id"])["decided_by"] == "pharma1"
        second = relayout.propose(cab, time_limit=1, actor=pharmacist)
        with pytest.raises(PermissionDenied):
            relayout.approve(cab, second["id"], actor=technician)
        pending = relayout.approve(cab, second["id"], "ok", actor=pharmacist)
        assert len(pending) == len(second["moves"])
        assert cab.session.state == "locked"
        await sim.shutdown()
    asyncio.run(go())


def two_pocket_seed():
    """The demo with paracetamol 500 mg given a second pocket (A-3-2, next to paracetamol
    1 g, its look-alike), holding an earlier-expiring lot."""
    seed = json.loads(json.dumps(SEED))
    other = next(p for p in seed["layout"] if (p["drawer"], p["row"], p["col"]) == ("A", 2, 1))
    seed["drugs"] = [d for d in seed["drugs"] if d["id"] != other["drug"]]
    other["drug"] = "PARA500"
    for st in seed["stock"]:
        if (st["drawer"], st["row"], st["col"]) == ("A", 2, 1):
            st.update(lot="P5-EARLY", expires_in_days=40)
    return seed


def test_a_drug_in_two_pockets_is_laid_out_as_two_slots(tmp_path):
    """Paracetamol in two pockets: the engine sees two slots that may sit side by side, the
    pharmacist and the technician see the drug's own id, and every unit ends in one of its
    new pockets."""
    async def go():
        seed = two_pocket_seed()
        sim = SimCabinet(demo_config(), tmp_path / "c.db", start=START)
        cab = await sim.boot(seed)
        await sim.run(cab.login("pharma1", PIN["pharma1"]))
        problem = relayout.build_problem(cab)
        slots = [d["id"] for d in problem["drugs"] if relayout.drug_of(d["id"]) == "PARA500"]
        assert slots == ["PARA500", "PARA500#2"]
        assert problem["similarity"] == {"pairs": [["PARA500", "PARA500#2", 0]]}
        units = sum(s["qty"] for s in seed["stock"] if (s["drawer"], s["row"], s["col"]) in
                    {("A", 0, 0), ("A", 2, 1)})
        before = relayout.score_today(cab)
        proposal = relayout.propose(cab, time_limit=2, threshold=0.5)
        assert proposal["adjacent"] < before[0]  # paracetamol 1 g is no longer beside it
        assert "#" not in json.dumps(proposal)
        assert [p["drug"] for p in proposal["placements"]].count("PARA500") == 2
        assert any(m["drug"] == "PARA500" for m in proposal["moves"]) or any(
            m["drug"] == "PARA1G" for m in proposal["moves"])
        capacity = {(p["drawer"], p["row"], p["col"]): p["capacity"] for p in seed["layout"]}
        pending = relayout.approve(cab, proposal["id"])
        for task, move in zip(pending, proposal["moves"], strict=True):
            src = move["source"]
            assert task["capacity"] == capacity[src["drawer"], src["row"], src["col"]]
        await cab.logout()
        await sim.run(cab.login("prep1", PIN["prep1"]))
        await carry_out(sim, cab)
        placed = sorted((p["drug"], p["drawer"], p["row"], p["col"])
                        for p in relayout.current_placements(cab))
        assert placed == sorted((p["drug"], p["drawer"], p["row"], p["col"])
                                for p in proposal["placements"])
        para = [p for p in relayout.current_placements(cab) if p["drug"] == "PARA500"]
        held = [cab.store.on_hand(p["drawer"], p["row"], p["col"]) for p in para]
        assert sum(held) == units
        assert all(h <= p["capacity"] for h, p in zip(held, para, strict=True))
        assert cab.store.query("SELECT COALESCE(SUM(qty), 0) AS n FROM bench")[0]["n"] == 0
        assert [a for a in cab.alarms.list() if a["kind"] == "discrepancy"] == []
        assert relayout.score_today(cab)[0] == proposal["adjacent"]
        await sim.shutdown()
        conn = sqlite3.connect(tmp_path / "c.db")
        assert verify(conn).ok and projection_mismatches(conn) == []
    asyncio.run(go())


def test_two_pockets_of_one_drug_share_the_bench_earliest_expiry_first(tmp_path):
    """The moves of a split drug, as the engine's task list orders a cycle: one pocket
    benched first, the other moved, the benched one put back last. The first new pocket
    takes what fits, earliest expiry first; the last takes the rest."""
    async def go():
        sim = SimCabinet(config(), tmp_path / "s.db", start=START)
        cab = await sim.boot(SPEC)
        ph = cab.authenticate("ph1", HPINS["ph1"])
        notices = formulary.assign_pocket(cab, "A", 2, 0, "PARA500", 40, actor=ph)
        assert [n.code for n in notices] == ["DRUG_IN_SEVERAL_POCKETS"]
        assert "A-1-1" in notices[0].en and "première" in notices[0].fr
        restocked(cab.store, "PARA500", ("A", 0, 0), 50, "L-LATE", "2031-01-31")
        restocked(cab.store, "PARA500", ("A", 2, 0), 30, "L-EARLY", "2029-01-31")
        bench = (None, None, None)
        approved_tasks(cab.store, 1, [("PARA500", ("A", 0, 0), bench, 60),
                                      ("PARA500", ("A", 2, 0), ("A", 0, 2), 40),
                                      ("PARA500", bench, ("A", 2, 2), 60)])
        await sim.run(cab.login("t1", HPINS["t1"]))
        await carry_out(sim, cab)

        def lots(drawer, row, col):
            return {x["lot"]: x["on_hand"] for x in cab.store.pocket_stock(drawer, row, col)
                    if x["on_hand"]}

        assert lots("A", 0, 2) == {"L-EARLY": 30, "L-LATE": 10}
        assert lots("A", 2, 2) == {"L-LATE": 40}
        assert lots("A", 0, 0) == {} and lots("A", 2, 0) == {}
        assert [(p["drawer"], p["row"], p["col"], p["capacity"]) for p in
                relayout.current_placements(cab) if p["drug"] == "PARA500"] == [
            ("A", 0, 2, 40), ("A", 2, 2, 60)]
        assert cab.store.query("SELECT COALESCE(SUM(qty), 0) AS n FROM bench")[0]["n"] == 0
        assert [a for a in cab.alarms.list() if a["kind"] == "discrepancy"] == []
        # A part larger than the bench holds is refused, nothing started.
        with pytest.raises(ArmoireError) as err:
            await sim.run(cab.move_in("PARA500", "B", 1, 1, 60, qty=5))
        assert err.value.code == "BAD_QTY" and cab.session.op is None
        await sim.shutdown()
        conn = sqlite3.connect(tmp_path / "s.db")
        assert verify(conn).ok and projection_mismatches(conn) == []
    asyncio.run(go())


def test_a_re_layout_cannot_be_left_stuck(tmp_path):
    """From the audit: a proposal made from another layout than today's, a move_in recorded
    just before a power cut, more units on the bench than the recorded capacity."""
    async def go():
        sim = SimCabinet(config(), tmp_path / "k.db", start=START)
        cab = await sim.boot(SPEC)
        ph = cab.authenticate("ph1", HPINS["ph1"])
        stale = relayout.propose(cab, time_limit=0.5, actor=ph)
        with cab.store.transaction() as c:  # the layout changes under the proposal
            c.execute("UPDATE pockets SET drug=NULL, capacity=0 WHERE drawer='A' AND row=1 "
                      "AND col=2")
            c.execute("UPDATE pockets SET drug='HYDROX25', capacity=30 WHERE drawer='A' "
                      "AND row=2 AND col=2")
        with pytest.raises(StateError) as info:
            relayout.approve(cab, stale["id"], actor=ph)
        assert info.value.code == "PROPOSAL_STALE"
        # 62 units counted into a pocket of 60, then moved.
        restocked(cab.store, "PARA500", ("A", 0, 0), 62, "L1", "2030-01-01")
        approved_tasks(cab.store, 9, [("PARA500", ("A", 0, 0), ("A", 0, 1), 60)])
        with pytest.raises(StateError) as info:
            relayout.propose(cab, time_limit=0.5, actor=ph)
        assert info.value.code == "RELAYOUT_RUNNING"
        await sim.run(cab.login("t1", HPINS["t1"]))
        [task] = relayout.tasks(cab)
        op = await sim.open_for(relayout.start_task(cab, task["id"]))
        await sim.finish(op, 0)
        op = await sim.open_for(relayout.start_task(cab, task["id"]))
        assert (op.kind, op.qty, op.capacity) == ("move_in", 62, 62)
        await sim.finish(op, 62)
        # The power goes before the page marks the task done.
        sim.power_loss()
        cab = await sim.boot()
        await sim.run(cab.login("t1", HPINS["t1"]))
        with pytest.raises(StateError) as info:
            await sim.run(relayout.start_task(cab, task["id"]))
        assert info.value.code == "TASK_ALREADY_DONE"
        assert relayout.tasks(cab) == []
        assert cab.store.on_hand("A", 0, 1) == 62 and cab.pocket("A", 0, 1).capacity == 62
        await sim.shutdown()
        conn = sqlite3.connect(tmp_path / "k.db")
        assert verify(conn).ok and projection_mismatches(conn) == []
    asyncio.run(go())


def test_a_pharmacist_abandons_a_re_layout_once_the_bench_is_empty(tmp_path):
    async def go():
        sim = SimCabinet(config(), tmp_path / "ab.db", start=START)
        cab = await sim.boot(SPEC)
        ph = cab.authenticate("ph1", HPINS["ph1"])
        nurse = cab.authenticate("n1", HPINS["n1"])
        with pytest.raises(StateError) as info:
            relayout.abandon(cab, actor=ph)
        assert info.value.code == "NO_RELAYOUT"
        restocked(cab.store, "PARA500", ("A", 0, 0), 8, "L1", "2030-01-01")
        approved_tasks(cab.store, 5, [("PARA500", ("A", 0, 0), ("A", 0, 1), 30),
                                      ("HYDROX25", ("A", 1, 2), ("A", 2, 2), 30)])
        await sim.run(cab.login("t1", HPINS["t1"]))
        first = relayout.tasks(cab)[0]
        op = await sim.open_for(relayout.start_task(cab, first["id"]))
        await sim.finish(op, 0)  # PARA500 is on the bench now
        head = cab.store.head()
        with pytest.raises(PermissionDenied):
            relayout.abandon(cab, actor=nurse)
        with pytest.raises(RuleViolation) as info:
            relayout.abandon(cab, actor=ph)
        assert info.value.code == "DRUG_ON_BENCH" and "PARA500 (8)" in info.value.message_en
        assert cab.store.head() == head
        op = await sim.open_for(relayout.start_task(cab, first["id"]))
        await sim.finish(op, 8)
        relayout.finish_task(cab, first["id"])
        assert relayout.abandon(cab, "enough for today", actor=ph) == 1
        assert relayout.tasks(cab) == []
        [row] = cab.store.journal_rows(kind="layout_abandoned")
        assert row["user"] == "ph1" and json.loads(row["detail"])["tasks"] == 1
        # The cabinet keeps the layout it reached, and is free to change again.
        assert cab.pocket("A", 0, 1).drug == "PARA500" and cab.pocket("A", 1, 2).drug == (
            "HYDROX25")
        assert formulary.set_capacity(cab, "A", 1, 2, 25, actor=ph) == []
        await sim.shutdown()
        conn = sqlite3.connect(tmp_path / "ab.db")
        assert verify(conn).ok and projection_mismatches(conn) == []
    asyncio.run(go())


def test_conflicts_drawn_for_the_pharmacist_include_a_carousel_ring():
    # A carousel row is a ring: its last slot neighbours its first. The engine counts that
    # pair as an adjacent conflict; the pairs drawn in red must include it too, or the
    # pharmacist reads "1 conflict" with nothing highlighted.
    from controller.layout import Placement, count_conflicts, parse_problem

    problem = parse_problem({
        "cabinet": {"drawers": [{"id": "K", "type": "carousel", "rows": 1, "cols": 4}]},
        "drugs": [{"id": "A", "name": "hydroxyzine"}, {"id": "B", "name": "paracetamol"},
                  {"id": "C", "name": "furosemide"}, {"id": "D", "name": "hydroxyzine"}],
        "similarity": {"pairs": [["B", "C", 0]]}})
    placements = [Placement(d, "K", 0, c) for c, d in enumerate("ABCD")]
    assert count_conflicts(problem, placements)[0] == 1
    pairs = relayout.conflict_pairs(problem, placements)
    assert [(p["a"], p["b"], p["cells"]) for p in pairs] == [("A", "D", [[0, 0], [0, 3]])]
