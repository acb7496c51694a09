"""Re-layouts stopped halfway, and what the pharmacist and the pick list see after."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from helpers import PINS, SPEC, START, approved_tasks, config, restocked

from controller import relayout, replenishment
from controller.errors import RuleViolation
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
