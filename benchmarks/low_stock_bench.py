"""Start-up's low-stock check on a 4,000-pocket cabinet: pocket by pocket (as it was) and
in a fixed number of queries (``Cabinet.check_all_low_stock`` now).

Ten 20x20 matrix drawers on the simulated serial backend, 200 drugs in 20 pockets each,
stocked unevenly (some pockets with an expired lot, some with an approved level). Two
cases: a restart where nothing has changed (every alarm already as it should be: the check
only reads), and a first start after the pockets were filled (about two thirds of the
4,000 alarms raised at provisioning are resolved, the others get their new count), each
on its own copy of the same database. Prints figures, asserts nothing.

    .venv/bin/python benchmarks/low_stock_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe

from controller.alarms import Where, note
from controller.cabinet import Cabinet
from controller.config import Config, from_dict
from controller.store import JournalEntry, StockDelta
from sim.harness import SimCabinet

START = datetime(2026, 11, 23, 8, tzinfo=UTC)
DRAWERS, SIDE, DRUGS = 10, 20, 200


def per_pocket(cab: Cabinet) -> None:
    """The check as it was: each placed pocket read and checked on its own (a pocket, its
    lots and its open alarm: three queries each), by the rule that every operation still
    applies to the one pocket it changed."""
    placed = [Where(r["drug"], r["drawer"], r["row"], r["col"]) for r in cab.store.query(
        "SELECT drug, drawer, row, col FROM pockets WHERE drug IS NOT NULL")]
    if not cab.store.query("SELECT 1 FROM layout_tasks WHERE state='pending' LIMIT 1"):
        cab._resolve_low_stock_outside(set(placed), note("drug_gone"))
    for w in placed:
        assert w.drawer is not None and w.row is not None and w.col is not None
        cab.check_low_stock(cab.pocket(w.drawer, w.row, w.col))


def cabinet() -> tuple[Config, dict[str, Any]]:
    drawers = [{"id": f"D{k:02d}", "type": "matrix", "rows": SIDE, "cols": SIDE}
               for k in range(DRAWERS)]
    config = from_dict({"cabinet": {"drawers": drawers}, "hardware": {"backend": "serial"},
                        "security": {"argon2_time_cost": 1, "argon2_memory_kib": 8192}},
                       sim=True)
    places = [(d["id"], r, c) for d in drawers for r in range(SIDE) for c in range(SIDE)]
    spec = {"users": [{"id": "ph1", "name": "Pharma", "role": "pharmacist",
                       "pin": "918273"}],
            "drugs": [{"id": f"M{k:03d}", "name": f"drug {k}", "strength": "10 mg",
                       "form": "tablet"} for k in range(DRUGS)],
            "layout": [{"drug": f"M{i % DRUGS:03d}", "drawer": d, "row": r, "col": c,
                        "capacity": 60} for i, (d, r, c) in enumerate(places)]}
    return config, spec


async def provision(db: Path) -> None:
    """The cabinet provisioned (every pocket empty: 4,000 alarms), then filled."""
    config, spec = cabinet()
    sim = SimCabinet(config, db, start=START)
    cab = await sim.boot(spec)
    with cab.store.transaction():
        for i, p in enumerate(spec["layout"]):
            pocket = (p["drawer"], p["row"], p["col"])
            lots = [(f"L{i}", "2027-06-30", (i * 7) % 23)]
            if i % 5 == 0:
                lots.append((f"X{i}", "2026-01-31", 40))   # expired: on hand, not usable
            for lot, expiry, qty in lots:
                if qty:
                    cab.store.append(JournalEntry("restock", drug=p["drug"], drawer=pocket[0],
                                                  row=pocket[1], col=pocket[2], qty=qty,
                                                  lot=lot, expiry=expiry),
                                     [StockDelta(*pocket, lot, p["drug"], expiry, qty)])
            if i % 6 == 0:
                cab.store.conn.execute("UPDATE pockets SET min_level=15, max_level=40 "
                                       "WHERE drawer=? AND row=? AND col=?", pocket)
    await sim.shutdown()


async def timed(db: Path, check: Callable[[Cabinet], None]) -> tuple[float, int]:
    """Seconds one check takes on the cabinet in ``db`` (started without its own check at
    start, which would leave nothing to do), and the statements it issued."""
    config, _ = cabinet()
    sim = SimCabinet(config, db, start=START)
    original = Cabinet.check_all_low_stock
    Cabinet.check_all_low_stock = lambda self: None  # type: ignore[method-assign]
    try:
        cab = await sim.boot()
    finally:
        Cabinet.check_all_low_stock = original  # type: ignore[method-assign]
    issued: list[str] = []
    cab.store.conn.set_trace_callback(issued.append)
    t0 = time.perf_counter()
    check(cab)
    seconds = time.perf_counter() - t0
    cab.store.conn.set_trace_callback(None)
    await sim.shutdown()
    return seconds, len(issued)


async def main(repeat: int) -> None:
    print(describe())
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min)")
    methods: dict[str, Callable[[Cabinet], None]] = {
        "before (pocket by pocket)": per_pocket,
        "after (check_all_low_stock)": Cabinet.check_all_low_stock}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.db"
        t0 = time.perf_counter()
        await provision(base)
        print(f"cabinet: {DRAWERS} drawers of {SIDE}x{SIDE} = {DRAWERS * SIDE * SIDE} pockets, "
              f"{DRUGS} drugs (built in {time.perf_counter() - t0:.1f} s, database in {tmp})")
        for name, check in methods.items():
            first, steady, counts = [], [], (0, 0)
            for k in range(repeat):
                db = Path(tmp) / f"run{k}.db"
                for suffix in ("", "-wal", "-shm"):
                    if Path(f"{base}{suffix}").exists():
                        shutil.copy(f"{base}{suffix}", f"{db}{suffix}")
                s1, n1 = await timed(db, check)   # first start after the fill
                s2, n2 = await timed(db, check)   # a restart: nothing changed
                first.append(s1)
                steady.append(s2)
                counts = (n1, n2)
            print(f"{name:28s} first start {statistics.median(first):7.3f} s "
                  f"({counts[0]} statements); restart {statistics.median(steady):7.3f} s "
                  f"({counts[1]} statements); median of {repeat}")
    print(f"load average at end: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(main(parser.parse_args().repeat))
