"""Shared builders for the cabinet tests."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.config import Config, from_dict
from controller.journal import projection_mismatches, verify

if TYPE_CHECKING:
    from sim.harness import SimCabinet

USERS = [
    {"id": "n1", "name": "Nurse One", "role": "nurse", "pin": "482913"},
    {"id": "n2", "name": "Nurse Two", "role": "nurse", "pin": "771346"},
    {"id": "as1", "name": "Aide One", "role": "assistant", "pin": "390155"},
    {"id": "t1", "name": "Tech One", "role": "technician", "pin": "551234"},
    {"id": "ph1", "name": "Pharma One", "role": "pharmacist", "pin": "918273"},
    {"id": "ad1", "name": "Admin One", "role": "admin", "pin": "604817"},
]
PINS = {u["id"]: u["pin"] for u in USERS}
DRUGS = [
    {"id": "PARA500", "name": "paracetamol", "strength": "500 mg", "form": "tablet",
     "gtin": "03400930000011", "assistant_allowed": True},
    {"id": "MORPH10", "name": "morphine", "strength": "10 mg/mL", "form": "ampoule",
     "gtin": "03400930000028", "controlled": True, "high_alert": True},
    {"id": "HYDROX25", "name": "hydroxyzine", "strength": "25 mg", "form": "tablet"},
]
LAYOUT = [
    {"drug": "PARA500", "drawer": "A", "row": 0, "col": 0, "capacity": 60},
    {"drug": "HYDROX25", "drawer": "A", "row": 1, "col": 2, "capacity": 30},
    {"drug": "MORPH10", "drawer": "B", "row": 0, "col": 1, "capacity": 20},
]
DRAWERS = [{"id": "A", "type": "matrix", "rows": 3, "cols": 3},
           {"id": "B", "type": "cubie", "rows": 2, "cols": 2}]
SPEC: dict[str, Any] = {"users": USERS, "drugs": DRUGS, "layout": LAYOUT}
FAST_HASH = {"argon2_time_cost": 1, "argon2_memory_kib": 8192}


def config(**sections: Any) -> Config:
    raw: dict[str, Any] = {"cabinet": {"drawers": DRAWERS}, "security": FAST_HASH}
    raw.update(sections)
    return from_dict(raw, sim=True)


#: The simulated clock's start in every test: expiry windows, sweeps and history are relative
#: to it, so a test means the same thing whatever day CI runs it on.
START = datetime(2026, 11, 23, 8, tzinfo=UTC)


def scenario(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"cabinet": {"drawers": DRAWERS}, **SPEC, "start": START.isoformat(),
            "steps": steps, **extra}


def login(user: str) -> dict[str, Any]:
    return {"do": "login", "user": user, "pin": PINS[user]}


def restocked(store: Any, drug: str, pocket: tuple[str, int, int], qty: int, lot: str,
              expiry: str) -> None:
    """Units put in a pocket as a journaled restock (conservation holds), for tests that need
    stock without walking through a drawer operation."""
    from controller.store import JournalEntry, StockDelta

    drawer, row, col = pocket
    store.append(JournalEntry("restock", drug=drug, drawer=drawer, row=row, col=col, qty=qty,
                              lot=lot, expiry=expiry),
                 [StockDelta(drawer, row, col, lot, drug, expiry, qty)])


def approved_tasks(store: Any, proposal: int,
                   tasks: list[tuple[str, tuple[Any, Any, Any], tuple[Any, Any, Any], int]]
                   ) -> None:
    """An approved layout proposal with hand-written tasks (drug, source, target, capacity;
    a pocket of Nones for the bench), in their order."""
    with store.transaction() as c:
        c.execute("INSERT INTO layout_proposals (id, created_ts, created_by, problem, solution,"
                  " adjacent, same_drawer, status) VALUES (?, 'now', 'ph1', '{}', '{}', 0, 0, "
                  "'approved')", (proposal,))
        for seq, (drug, src, dst, capacity) in enumerate(tasks):
            c.execute("INSERT INTO layout_tasks (proposal, seq, drug, src_drawer, src_row, "
                      "src_col, dst_drawer, dst_row, dst_col, capacity) VALUES "
                      "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (proposal, seq, drug, *src, *dst,
                                                        capacity))


def damage_table(db: Any, table: str, *, middle: bool = False) -> None:
    """Overwrite the last page of ``table`` in the closed database file ``db`` with 0xFF.

    The first page the opening check of the read-only tools reads is left whole, so the
    damage shows only when a tool reads further: the case that used to end in a traceback.
    ``middle`` damages a leaf page halfway instead, sparing the last one too: the journal's
    last page is where its head is read, so a cabinet starts and appends on such a file,
    and only a reading of the whole journal (the integrity check) meets the damage.
    """
    import sqlite3
    from pathlib import Path

    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    leaves = [n for (n,) in conn.execute(
        "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
        (table,))]
    [page] = conn.execute("SELECT MAX(pageno) FROM dbstat WHERE name = ?", (table,)).fetchone()
    conn.close()
    if middle:
        assert len(leaves) >= 3, f"{table} is too short to damage halfway"
        page = leaves[len(leaves) // 2]
    data = bytearray(Path(db).read_bytes())
    data[(page - 1) * page_size:page * page_size] = b"\xff" * page_size
    Path(db).write_bytes(bytes(data))


async def booted(db: Any, user: str = "ph1") -> Any:
    """A simulated cabinet seeded with SPEC and started on file ``db``, ``user`` logged in."""
    from sim.harness import SimCabinet

    sim = SimCabinet(config(), db, start=START)
    await sim.boot(SPEC)
    await sim.run(sim.cab.login(user, PINS[user]))
    return sim


def not_ours(*directories: Path, monkeypatch: Any) -> None:
    """``directories`` as the service's data directories seen by root: owned by another
    user (chowned when the tests run as root), with this process pretending to be root."""
    import os

    for directory in directories:
        if os.geteuid() == 0:
            os.chown(directory, 65534, 65534)
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def journal(db: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows read from the database file on a connection of their own."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def consistent(db: Path) -> bool:
    """The database file's journal chain holds and its stock table is the journal's replay."""
    conn = sqlite3.connect(db)
    try:
        return verify(conn).ok and projection_mismatches(conn) == []
    finally:
        conn.close()


async def carry_out(sim: Any, cab: Any) -> None:
    """The technician works through the re-layout's task list in order, counting what the
    screen says the pocket should hold (the sim checks the count against the journal)."""
    from controller import relayout

    for _ in range(100):
        todo = relayout.tasks(cab)
        if not todo:
            return
        task = todo[0]
        op = await sim.open_for(relayout.start_task(cab, task["id"]))
        await sim.finish(op, 0 if op.kind == "move_out" else op.qty)
        relayout.finish_task(cab, task["id"])
    raise AssertionError("tasks did not end")


# -- a stocked cabinet and what its faults left (test_jam.py, test_fault_table.py) --------
async def stocked(sim: SimCabinet) -> None:
    """Drawer A (matrix) holds paracetamol in A-1-1 and hydroxyzine in A-2-3; drawer B
    (lidded) holds morphine in B-1-2."""
    await sim.operate(sim.cab.restock("PARA500", "PARA500", 20, lot="L1", expiry="2027-01-31"))
    await sim.operate(sim.cab.restock("HYDROX25", "HYDROX25", 10, lot="H1",
                                      expiry="2027-03-31"))
    await sim.operate(sim.cab.restock("MORPH10", "MORPH10", 6, lot="M1", expiry="2027-02-28"))


def count_alarms(db: Path) -> list[tuple[Any, ...]]:
    return journal(db, "SELECT drawer, row, col, message, state FROM alarms "
                   "WHERE kind='discrepancy' ORDER BY drawer, row, col")


def outcome_rows(db: Path, intent: int) -> list[tuple[Any, ...]]:
    return journal(db, "SELECT kind, code FROM journal WHERE ref=? AND kind IN ('aborted', "
                   "'discrepancy', 'withdraw', 'count', 'restock') ORDER BY seq", (intent,))


def last_intent(db: Path) -> int:
    return int(journal(db, "SELECT MAX(seq) FROM journal WHERE kind='intent'")[0][0])


async def on(backend: str, db: Path) -> SimCabinet:
    """A stocked cabinet on ``backend``, a pharmacist logged in."""
    from sim.harness import SimCabinet

    sim = SimCabinet(config(hardware={"backend": backend}), db, start=START)
    await sim.boot(SPEC)
    await sim.run(sim.cab.login("ph1", PINS["ph1"]))
    await stocked(sim)
    return sim


DRUG_IN = {"A": "PARA500", "B": "MORPH10"}


def outputs_off(sim: SimCabinet, drawer: str) -> bool:
    """No motor runs and no magnet is held on ``drawer`` (what the physics saw last)."""
    physics = sim.simulator.physics
    return (all(run.stop is not None for run in physics.motor_runs if run.drawer == drawer)
            and not physics.drawers[drawer].magnet_on_since)
