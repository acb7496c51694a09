"""From a layout proposal to the layout restock enforces, through the technician's moves."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from helpers import START

from controller import relayout
from controller.config import from_dict
from controller.errors import PermissionDenied, RuleViolation, StateError
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


def test_a_drug_in_two_pockets_is_refused_by_name_not_as_bad_input(tmp_path):
    """The engine places each drug once: a cabinet with paracetamol in two pockets gets a
    re-layout refusal that names the drug and both pockets, and nothing is stored."""
    async def go():
        seed = json.loads(json.dumps(SEED))
        first = next(p for p in seed["layout"] if p["drug"] == "PARA500")
        other = seed["layout"][-1]  # the demo fills every pocket: give this one to PARA500
        assert other["drug"] != "PARA500"
        other["drug"] = "PARA500"
        free = (other["drawer"], other["row"], other["col"])
        sim = SimCabinet(demo_config(), tmp_path / "c.db", start=START)
        await sim.boot(seed)
        await sim.run(sim.cab.login("pharma1", PIN["pharma1"]))
        with pytest.raises(RuleViolation) as refused:
            relayout.propose(sim.cab, time_limit=1)
        stored = sim.store.query("SELECT count(*) AS n FROM layout_proposals")[0]["n"]
        await sim.shutdown()
        return refused.value, first, free, stored

    err, first, free, stored = asyncio.run(go())
    assert err.code == "DRUG_IN_SEVERAL_POCKETS"
    assert "PARA500" in err.message("fr")
    assert f"{first['drawer']}-{first['row'] + 1}-{first['col'] + 1}" in err.message("en")
    assert f"{free[0]}-{free[1] + 1}-{free[2] + 1}" in err.message("en")
    assert stored == 0
