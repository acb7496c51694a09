"""Starting a cabinet on a database damaged past its first pages (``armoire run``, the
runtime's start, the simulator harness): a read error is an integrity alarm when the cabinet
can serve, a one-line DB_UNREADABLE when it cannot start, never a traceback nor a silent
check."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3

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


def config_file(tmp_path):
    """The TOML of helpers.config(): the drawers the cabinet database was provisioned with."""
    path = tmp_path / "armoire.toml"
    path.write_text(
        '[cabinet]\n'
        '[[cabinet.drawers]]\nid = "A"\ntype = "matrix"\nrows = 3\ncols = 3\n'
        '[[cabinet.drawers]]\nid = "B"\ntype = "cubie"\nrows = 2\ncols = 2\n'
        '[security]\nargon2_time_cost = 1\nargon2_memory_kib = 8192\n', encoding="utf-8")
    return path


class ServedAtOnce:
    """A web server that returns as soon as it is asked to serve: a cabinet that did start
    makes ``armoire run`` return 0 at once, and the test fail, instead of serving forever."""

    async def serve(self):
        return None

    def request_stop(self):
        return None


@pytest.mark.parametrize("table", ["stock", "journal"])
def test_armoire_run_refuses_a_database_too_damaged_to_start_in_one_line(
        damaged, tmp_path, capsys, mocker, table):
    """Every lot is read at start (expiry), and the journal's last row is what each write
    chains to: damaged there, the cabinet cannot start. One line with DB_UNREADABLE and
    what IT must do, exit 2 (systemd does not restart onto the same damage)."""
    from controller.cli import main

    mocker.patch("controller.web.server.build_server", return_value=ServedAtOnce())
    db = damaged(table)
    assert main(["run", "--sim", "--config", str(config_file(tmp_path)),
                 "--db", str(db)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    [line] = err.splitlines()
    assert line.startswith(f"armoire: [DB_UNREADABLE] the database {db} is damaged")
    assert "restore the last backup with armoire restore" in line
    assert "restaurez la dernière sauvegarde avec armoire restore" in line


@pytest.mark.parametrize("table", ["stock", "journal"])
def test_the_harness_refuses_a_database_too_damaged_to_start(damaged, table):
    from controller.errors import DatabaseUnreadable

    db = damaged(table)

    async def go():
        sim = SimCabinet(config(), db, start=START)
        try:
            with pytest.raises(DatabaseUnreadable) as refused:
                await sim.boot()
        finally:
            await sim.shutdown()
        return refused.value

    refused = asyncio.run(go())
    assert refused.code == "DB_UNREADABLE" and refused.exit_code == 2
    assert "armoire restore" in refused.message("fr")


def test_an_integrity_check_that_dies_is_logged_and_raises_its_alarm(cabinet_db, tmp_path,
                                                                      mocker, caplog):
    """Whatever ends the check's worker thread (here a bug), the check still gives its
    verdict: a coded log line and the journal_integrity alarm in both languages."""
    from controller import cabinet as cabinet_module

    mocker.patch.object(cabinet_module, "integrity_problem_at",
                        side_effect=ValueError("a bug in the check"))
    db = shutil.copy(cabinet_db, tmp_path / "cabinet.db")

    async def go():
        runtime = await start(config(), sim=True, db_path=db)
        try:
            assert await runtime.cabinet.integrity_checked is False
            [alarm] = integrity_alarms(runtime.cabinet)
        finally:
            await runtime.stop()
        return alarm

    alarm = asyncio.run(go())
    assert alarm["message"] == ("the integrity check could not finish (ValueError): "
                                "run armoire journal verify")
    assert message(alarm, "fr") == ("le contrôle d'intégrité n'a pas pu aboutir (ValueError)"
                                    " : lancez armoire journal verify")
    assert "[INTEGRITY_CHECK_FAILED]" in caplog.text


def test_a_start_up_task_s_exception_is_retrieved_and_logged_with_a_code(cabinet_db, tmp_path,
                                                                       mocker, caplog):
    """When even the alarm cannot be written, the failure is logged at once with
    TASK_FAILED, never left for asyncio's "Task exception was never retrieved"."""
    import gc

    from controller.errors import StoreError

    db = shutil.copy(cabinet_db, tmp_path / "cabinet.db")
    mocker.patch("controller.cabinet.Cabinet._report_integrity",
                 side_effect=StoreError("disk gone", "disque perdu", code="DB_IO_ERROR"))
    unretrieved = []

    async def go():
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: unretrieved.append(context["message"]))
        sim = SimCabinet(config(), db, start=START)
        try:
            cab = await sim.boot(wait_integrity=False)
            task = cab.integrity_checked
            assert task is not None
            await asyncio.wait([task])
            cab.integrity_checked = None
            del task
            gc.collect()  # an unretrieved exception is reported when its task is collected
        finally:
            await sim.shutdown()

    asyncio.run(go())
    assert unretrieved == []
    assert "[TASK_FAILED] the start-up integrity check failed: StoreError" in caplog.text


def test_only_a_damaged_file_is_beyond_a_restart(tmp_path):
    """Exit 2 tells systemd not to restart and IT to restore a backup: right for a file
    that is not a database, wrong for one that merely cannot be opened now (a missing
    mount, a lock), which must keep exit 3 and be tried again."""
    from controller.errors import DatabaseUnreadable, StoreError
    from controller.store import Store

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, " * 512)
    with pytest.raises(DatabaseUnreadable) as damaged_file:
        Store(garbage)
    assert damaged_file.value.exit_code == 2
    with pytest.raises(StoreError) as unmounted:
        Store(tmp_path / "not-mounted" / "cabinet.db")
    assert not isinstance(unmounted.value, DatabaseUnreadable)
    assert unmounted.value.code == "DB_UNREADABLE" and unmounted.value.exit_code == 3


def test_a_busy_database_is_not_reported_as_damaged(cabinet_db, tmp_path, mocker):
    """A read the check could not make for a lock is no reason to restore a backup: it
    ends the check (then alarmed as one that could not finish), not as damage."""
    import sqlite3

    from controller import journal

    db = tmp_path / "cabinet.db"
    shutil.copy(cabinet_db, db)
    mocker.patch.object(journal, "verify",
                        side_effect=sqlite3.OperationalError("database is locked"))
    with pytest.raises(sqlite3.OperationalError):
        journal.integrity_problem_at(str(db))


def test_a_start_refused_leaves_no_check_reading_the_file(cabinet_db, tmp_path, mocker):
    """The integrity check reads the whole file in a thread: started before a step that then
    refuses the database, it would still be reading as the caller closes it."""
    from controller.cabinet import Cabinet
    from controller.errors import StoreError

    db = shutil.copy(cabinet_db, tmp_path / "cabinet.db")
    checks = mocker.spy(Cabinet, "check_integrity_async")
    mocker.patch.object(Cabinet, "check_expiry",
                        side_effect=sqlite3.DatabaseError("a page that cannot be read"))

    async def go():
        sim = SimCabinet(config(), db, start=START)
        try:
            with pytest.raises(StoreError):
                await sim.boot()
        finally:
            await sim.shutdown()

    asyncio.run(go())
    assert checks.call_count == 0
