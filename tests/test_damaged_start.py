"""Starting a cabinet on a database damaged past its first pages (``armoire run``, the
runtime's start, the simulator harness): a read error is an integrity alarm when the cabinet
can serve, a one-line DB_UNREADABLE when it cannot start, never a traceback nor a silent
check."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from helpers import SPEC, START, config, damage_table, restocked

from controller.alarms import message
from controller.runtime import start
from sim.harness import SimCabinet

#: Lots restocked in one pocket: enough rows that the journal and the stock span pages.
LOTS = 400


@pytest.fixture(scope="module")
def cabinet_db(tmp_path_factory):
    """A closed cabinet database, provisioned with SPEC, whose journal and stock span many
    pages; booted once more after the restocks so that its low-stock alarms are settled."""
    db = tmp_path_factory.mktemp("damaged") / "cabinet.db"

    async def build():
        sim = SimCabinet(config(), db, start=START)
        await sim.boot(SPEC)
        for i in range(LOTS):
            restocked(sim.store, "PARA500", ("A", 0, 0), 1, f"LOT{i:04d}", "2030-01-01")
        await sim.shutdown()
        await sim.boot()
        await sim.shutdown()

    asyncio.run(build())
    return db


@pytest.fixture
def damaged(cabinet_db, tmp_path):
    """Damage a copy of the cabinet database: ``damaged(table, middle=False)`` -> its path."""
    def make(table, *, middle=False):
        db = tmp_path / "cabinet.db"
        shutil.copy(cabinet_db, db)
        damage_table(db, table, middle=middle)
        return db

    return make


def integrity_alarms(cab):
    return [a for a in cab.alarms.list() if a["kind"] == "journal_integrity"]


def assert_unreadable_reported(cab):
    """The read error became the journal_integrity alarm, in both languages, and a row."""
    [alarm] = integrity_alarms(cab)
    assert alarm["message"].startswith("the database could not be read to the end (")
    assert "restore the last backup" in alarm["message"]
    assert message(alarm, "fr").startswith("la base n'a pas pu être lue jusqu'au bout (")
    assert "restaurez la dernière sauvegarde" in message(alarm, "fr")
    [row] = cab.store.journal_rows(kind="integrity_failed")
    assert row["code"] == "JOURNAL_INTEGRITY"


def test_the_runtime_reports_a_journal_damaged_further_in_as_an_integrity_alarm(damaged):
    """The journal's head is whole, so the cabinet starts and serves; its start-up check
    meets the damage in its worker thread: an alarm, not a task dying unseen."""
    db = damaged("journal", middle=True)

    async def go():
        runtime = await start(config(), sim=True, db_path=db)
        try:
            assert await runtime.cabinet.integrity_checked is False
            assert_unreadable_reported(runtime.cabinet)
        finally:
            await runtime.stop()

    asyncio.run(go())


def test_the_harness_reports_a_journal_damaged_further_in_as_an_integrity_alarm(damaged):
    db = damaged("journal", middle=True)

    async def go():
        sim = SimCabinet(config(), db, start=START)
        try:
            cab = await sim.boot()
            assert cab.integrity_checked is not None and cab.integrity_checked.result() is False
            assert_unreadable_reported(cab)
        finally:
            await sim.shutdown()

    asyncio.run(go())
