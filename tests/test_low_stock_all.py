"""The whole cabinet's low-stock check (at start, when a re-layout ends): the same alarms as
the per-pocket rule every operation applies, read in a fixed number of queries however many
pockets the cabinet has (it was one pocket, one stock and one alarm query per pocket)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from helpers import START, USERS, config, journal, restocked

from controller.alarms import Where
from controller.cabinet import Cabinet
from sim.harness import SimCabinet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from low_stock_bench import per_pocket  # the check as it was, pocket by pocket

EXPIRED = "2026-01-31"    # before START
LATER = "2027-06-30"


def ward(drugs: int, pockets_each: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Drawers of 8x10 pockets, ``drugs`` drugs each in ``pockets_each`` pockets spread
    across the drawers, and a few pockets left empty."""
    used = drugs * pockets_each
    count = used // 80 + 1
    drawers = [{"id": chr(ord("A") + k), "type": "matrix", "rows": 8, "cols": 10}
               for k in range(count)]
    places = [(d["id"], r, c) for d in drawers for r in range(8) for c in range(10)]
    spec = {"users": USERS,
            "drugs": [{"id": f"D{k}", "name": f"drug {k}", "strength": "10 mg",
                       "form": "tablet"} for k in range(drugs)],
            "layout": [{"drug": f"D{i % drugs}", "drawer": d, "row": r, "col": c,
                        "capacity": 60} for i, (d, r, c) in enumerate(places[:used])]}
    return drawers, spec


async def stocked(db: Path, drugs: int, pockets_each: int) -> tuple[SimCabinet, dict[
        tuple[str, int, int], tuple[int, int]]]:
    """A started cabinet whose pockets were then filled unevenly, some with an expired lot,
    some with an approved level, one acknowledged alarm and one left on an empty pocket; and
    each pocket's (usable units, level) as this test computes them."""
    drawers, spec = ward(drugs, pockets_each)
    sim = SimCabinet(config(cabinet={"drawers": drawers}), db, start=START)
    cab = await sim.boot(spec)  # every pocket empty: every pocket low
    expected: dict[tuple[str, int, int], tuple[int, int]] = {}
    for i, place in enumerate(spec["layout"]):
        pocket = (place["drawer"], place["row"], place["col"])
        usable = (i * 7) % 23
        if usable:
            restocked(cab.store, place["drug"], pocket, usable, f"L{i}", LATER)
        if i % 5 == 0:  # expired units are on hand but not usable
            restocked(cab.store, place["drug"], pocket, 40, f"X{i}", EXPIRED)
        level = 10
        if i % 6 == 0:
            level = 15
            with cab.store.transaction() as c:
                c.execute("UPDATE pockets SET min_level=15, max_level=40 WHERE drawer=? AND "
                          "row=? AND col=?", pocket)
        expected[pocket] = (usable, level)
    with cab.store.transaction() as c:
        c.execute("UPDATE alarms SET state='acknowledged' WHERE id IN (SELECT min(id) FROM "
                  "alarms WHERE kind='low_stock')")
    empty = next((d["id"], r, c) for d in drawers for r in range(8) for c in range(10)
                 if (d["id"], r, c) not in expected)
    cab.alarms.raise_("low_stock", Where("D0", *empty), "left from a re-layout")
    return sim, expected


ALARMS = "SELECT id, kind, state, drug, drawer, row, col, message, updated_ts FROM alarms " \
         "ORDER BY id"
JOURNAL = "SELECT seq, kind, drug, drawer, row, col, code, detail FROM journal ORDER BY seq"


def test_many_pockets_several_drugs_get_the_alarms_of_the_per_pocket_rule(
        tmp_path: Path) -> None:
    async def go() -> None:
        sim, expected = await stocked(tmp_path / "all.db", drugs=5, pockets_each=24)
        twin, _ = await stocked(tmp_path / "each.db", drugs=5, pockets_each=24)
        sim.cab.check_all_low_stock()
        per_pocket(twin.cab)
        alarms = sim.cab.alarms.list()
        await sim.shutdown()
        await twin.shutdown()
        # The low pockets, and only they, have their alarm, saying the units left now.
        low = {(a["drawer"], a["row"], a["col"]): a["message"] for a in alarms
               if a["kind"] == "low_stock"}
        assert low == {
            (d, r, c): f"pocket {d}-{r + 1}-{c + 1}: {usable} unit(s) left (level {level})"
            for (d, r, c), (usable, level) in expected.items() if usable <= level}
        assert 0 < len(low) < len(expected)
        # Same rows, same journal, in the same order as pocket by pocket.
        assert journal(tmp_path / "all.db", ALARMS) == journal(tmp_path / "each.db", ALARMS)
        assert journal(tmp_path / "all.db", JOURNAL) == journal(tmp_path / "each.db", JOURNAL)
        # The acknowledged alarm of a low pocket stays as it is; the empty pocket's closed.
        states = journal(tmp_path / "all.db", "SELECT state, drug, message FROM alarms "
                                              "WHERE kind='low_stock' ORDER BY id")
        assert states[0][0] == "acknowledged"
        assert ("resolved", "D0", "left from a re-layout") in states

    asyncio.run(go())


def statements(cab: Cabinet) -> list[str]:
    """The SQL statements one whole-cabinet check issues."""
    issued: list[str] = []
    cab.store.conn.set_trace_callback(issued.append)
    try:
        cab.check_all_low_stock()
    finally:
        cab.store.conn.set_trace_callback(None)
    return issued


def test_the_check_reads_the_cabinet_in_a_fixed_number_of_queries(tmp_path: Path) -> None:
    async def go() -> None:
        counts = {}
        for drugs, each in ((2, 3), (6, 40)):
            sim, _ = await stocked(tmp_path / f"{drugs}.db", drugs, each)
            changing = statements(sim.cab)   # alarms raised, refreshed and resolved
            steady = statements(sim.cab)     # a restart: nothing has changed
            reads = [s for s in changing if s.lstrip().upper().startswith("SELECT")
                     and "journal" not in s]   # the journal's head, read by each append
            counts[drugs * each] = (len(steady), len(reads),
                                    changing.count("BEGIN IMMEDIATE"))
            await sim.shutdown()
        # 240 pockets cost what 6 do: pockets, open alarms, pending tasks, usable stock are
        # read once; a restart with nothing to change writes nothing, and the alarms that
        # change are written in one transaction (one commit, not one per alarm).
        assert counts[6] == counts[240] == (4, 4, 1)

    asyncio.run(go())
