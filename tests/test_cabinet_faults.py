"""The cabinet core when things go wrong between the intent and the count: a drawer that jams
while closing, a power cut with a drawer open, midnight during a withdrawal, a full disk, a
pocket not emptied on a re-layout, a returned lot the pocket never held.

Each test names the rule it keeps: what is physically in a pocket and what the journal says
must agree, or the difference must be raised as a discrepancy, never silently absorbed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers import PINS, SPEC, START, config

from controller.errors import StoreError
from controller.journal import projection_mismatches, verify
from controller.store import JournalEntry
from sim.harness import SimCabinet


async def booted(db: Path, user: str = "ph1") -> SimCabinet:
    sim = SimCabinet(config(), db, start=START)
    await sim.boot(SPEC)
    await sim.run(sim.cab.login(user, PINS[user]))
    return sim


def journal(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def consistent(db: Path) -> bool:
    conn = sqlite3.connect(db)
    try:
        return verify(conn).ok and projection_mismatches(conn) == []
    finally:
        conn.close()


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
        await sim.run(sim.cab.close_drawer())
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
