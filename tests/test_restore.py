"""One owner per database (controller.dblock), and a backup put back safely
(controller.restore, ``armoire restore``): checked first, the live files kept aside, the
restore journaled with an alarm to count the cabinet."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from datetime import UTC, datetime

import pytest
from helpers import SPEC, START, config, restocked
from web_helpers import demo_config

from controller.backup import backup_database
from controller.cli import main
from controller.dblock import DatabaseLock
from controller.errors import ArmoireError, StoreError
from controller.journal import projection_mismatches, verify
from controller.restore import restore
from controller.runtime import start
from controller.store import JournalEntry, StockDelta
from sim.harness import SimCabinet

WHEN = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def test_a_second_owner_of_a_database_is_refused_until_the_first_lets_go(tmp_path):
    db = tmp_path / "c.db"
    first = DatabaseLock(db).acquire()
    with pytest.raises(StoreError) as info:
        DatabaseLock(db).acquire()
    assert info.value.code == "DB_IN_USE" and f"process {os.getpid()}" in info.value.message_en
    first.release()
    with DatabaseLock(db) as again:
        assert again.held
    assert not again.held


def test_two_controllers_never_run_on_one_database(tmp_path):
    cfg = demo_config(tmp_path)
    db = tmp_path / "web.db"

    async def go():
        runtime = await start(cfg, sim=True, db_path=db)
        try:
            with pytest.raises(StoreError) as info:
                await start(cfg, sim=True, db_path=db)
            assert info.value.code == "DB_IN_USE"
        finally:
            await runtime.stop()
        second = await start(cfg, sim=True, db_path=db)  # free again once stopped
        await second.stop()

    asyncio.run(go())


def live_cabinet(tmp_path):
    """A cabinet database with a backup taken after a first restock and more work after it."""
    db = tmp_path / "live.db"

    async def boot():
        sim = SimCabinet(config(), db, start=START)
        await sim.boot(SPEC)
        return sim

    sim = asyncio.run(boot())
    store = sim.store
    restocked(store, "PARA500", ("A", 0, 0), 20, "L1", "2030-01-01")
    backup = backup_database(db, tmp_path / "backups", now=WHEN)
    store.append(JournalEntry("withdraw", drug="PARA500", drawer="A", row=0, col=0, qty=3,
                              lot="L1", expiry="2030-01-01", patient="P1"),
                 [StockDelta("A", 0, 0, "L1", "PARA500", "2030-01-01", -3)])
    later = store.head()
    asyncio.run(sim.shutdown())
    return db, backup, later


def rows(db):
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT kind FROM journal ORDER BY seq")]
    finally:
        conn.close()


def test_restore_keeps_the_live_files_and_asks_for_a_count(tmp_path, capsys):
    db, backup, later = live_cabinet(tmp_path)
    before = rows(backup)
    assert main(["restore", str(backup), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "restored / restaurée: " in out and "set aside / mis de côté: " in out
    assert [line for line in out.splitlines() if " / " not in line] == [], out
    after = rows(db)
    assert after[:len(before)] == before and "withdraw" not in after
    assert after[len(before):] == ["database_restored", "alarm_raised"]
    conn = sqlite3.connect(db)
    try:
        assert verify(conn).ok and projection_mismatches(conn) == []
        [(kind, state, message)] = conn.execute(
            "SELECT kind, state, message FROM alarms WHERE message LIKE 'database restored%'"
        ).fetchall()
        assert (kind, state) == ("discrepancy", "open") and "count every pocket" in message
        assert conn.execute("SELECT on_hand FROM stock WHERE lot='L1'").fetchone()[0] == 20
    finally:
        conn.close()
    # The replaced database is kept, with the work done after the backup.
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("live.db.replaced-")
               and not p.name.endswith(("-wal", "-shm"))]
    assert "withdraw" in rows(aside)
    conn = sqlite3.connect(aside)
    try:
        assert conn.execute("SELECT hash FROM journal ORDER BY seq DESC LIMIT 1"
                            ).fetchone()[0] == later[1]
    finally:
        conn.close()
    assert not list(tmp_path.glob("*.restoring"))


def snapshot(tmp_path):
    """Every file but the lock file (an owner's, which a refused restore may create)."""
    return sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()
                  if p.is_file() and not p.name.endswith(".lock"))


def test_restore_refuses_and_changes_nothing(tmp_path):
    db, backup, _ = live_cabinet(tmp_path)
    before = snapshot(tmp_path)
    with DatabaseLock(db):  # the controller is running
        with pytest.raises(ArmoireError) as info:
            restore(backup, db)
        assert info.value.code == "DB_IN_USE"
    assert snapshot(tmp_path) == before
    for target, code in ((tmp_path / "missing.db", "BACKUP_NOT_FOUND"), (db, "BAD_OUTPUT")):
        with pytest.raises(ArmoireError) as info:
            restore(target, db)
        assert info.value.code == code
    assert snapshot(tmp_path) == before
    # A backup whose journal was rewritten is not put back.
    bad = tmp_path / "backups" / "tampered.db"
    bad.write_bytes(backup.read_bytes())
    conn = sqlite3.connect(bad)
    conn.execute("DROP TRIGGER IF EXISTS journal_no_update")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'"
                                ).fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE journal SET qty = 200 WHERE kind='restock' AND lot='L1'")
    conn.commit()
    conn.close()
    before = snapshot(tmp_path)
    with pytest.raises(ArmoireError) as info:
        restore(bad, db)
    assert info.value.code == "BAD_BACKUP" and "journal" in info.value.message_en
    assert snapshot(tmp_path) == before
    not_db = tmp_path / "backups" / "notes.db"
    not_db.write_text("hello")
    with pytest.raises(ArmoireError) as info:
        restore(not_db, db)
    assert info.value.code == "BAD_BACKUP"


def test_rows_only_in_the_live_wal_are_kept_in_the_file_set_aside(tmp_path):
    import subprocess
    import sys

    db, backup, _ = live_cabinet(tmp_path)
    # A process that wrote and died without a checkpoint: its rows are only in the WAL.
    code = ("import os, sqlite3; c = sqlite3.connect(os.environ['DB']); "
            "c.execute('PRAGMA journal_mode=WAL'); c.execute('CREATE TABLE late (v)'); "
            "c.execute('INSERT INTO late VALUES (42)'); c.commit(); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "DB": str(db)},
                   check=True)
    assert (tmp_path / "live.db-wal").stat().st_size > 0
    done = restore(backup, db, now=WHEN)
    [main_aside] = [p for p in done.set_aside if p.name.endswith("Z")]
    conn = sqlite3.connect(f"file:{main_aside}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT v FROM late").fetchall() == [(42,)]
    finally:
        conn.close()


def test_the_restored_database_is_not_world_readable_whatever_the_umask(tmp_path):
    """docs/deploy.md restores by hand (``sudo -u armoire armoire restore …``), umask 022:
    the live database it puts in place holds patient ids and must stay owner/group only."""
    db, backup, _ = live_cabinet(tmp_path)
    old = os.umask(0o022)
    try:
        restore(backup, db, now=WHEN)
    finally:
        os.umask(old)
    assert db.stat().st_mode & 0o007 == 0, oct(db.stat().st_mode)


def test_two_restores_in_one_second_keep_both_replaced_databases(tmp_path):
    db, backup, later = live_cabinet(tmp_path)
    first = restore(backup, db, now=WHEN)
    second = restore(backup, db, now=WHEN)
    names = {p.name for p in first.set_aside} | {p.name for p in second.set_aside}
    assert len(names) == len(first.set_aside) + len(second.set_aside)
    kept = next(p for p in first.set_aside if p.name.endswith("Z"))
    assert "withdraw" in rows(kept)  # the original live database is still there


@pytest.mark.parametrize("which", ["aside", "swap"])
def test_a_rename_that_fails_puts_the_live_database_back(tmp_path, monkeypatch, which):
    """The main file's set-aside name (``aside``), or the backup's rename over the live
    path (``swap``), fails: what was moved comes back, and the directory is as it was."""
    import controller.restore as restore_module

    db, backup, _ = live_cabinet(tmp_path)
    before = snapshot(tmp_path)
    real_replace, real_link = os.replace, os.link

    def failing(real):
        def op(src, dst):
            # the main file, after its companions moved; or the backup put in its place
            if str(dst).endswith("Z") if which == "aside" else str(dst) == str(db):
                raise OSError(5, "Input/output error")
            return real(src, dst)
        return op

    monkeypatch.setattr(restore_module.os, "replace", failing(real_replace))
    monkeypatch.setattr(restore_module.os, "link", failing(real_link))
    with pytest.raises(ArmoireError) as info:
        restore(backup, db, now=WHEN)
    assert info.value.code == "RESTORE_FAILED" and "unchanged" in info.value.message_en
    monkeypatch.undo()
    assert snapshot(tmp_path) == before


def test_the_restore_row_and_its_alarm_are_written_together_or_not_at_all(tmp_path,
                                                                          monkeypatch):
    from controller.alarms import Alarms

    db, backup, _ = live_cabinet(tmp_path)

    def full_disk(self, *args, **kwargs):
        raise StoreError("database or disk is full", "disque plein", code="DB_FULL")

    monkeypatch.setattr(Alarms, "raise_", full_disk)
    with pytest.raises(ArmoireError) as info:
        restore(backup, db, now=WHEN)
    assert info.value.code == "RESTORE_NOT_JOURNALED"
    assert "count every pocket" in info.value.message_en and ".replaced-" in (
        info.value.message_en)
    assert "database_restored" not in rows(db)  # no row without its alarm


def test_a_failed_shutdown_still_frees_the_database(tmp_path, monkeypatch):
    cfg = demo_config(tmp_path)
    db = tmp_path / "web.db"

    async def go():
        runtime = await start(cfg, sim=True, db_path=db)

        async def broken():
            raise StoreError("link down", "liaison coupée", code="LINK_DOWN")

        monkeypatch.setattr(runtime.cabinet, "shutdown", broken)
        with pytest.raises(StoreError):
            await runtime.stop()
        again = await start(cfg, sim=True, db_path=db)
        await again.stop()

    asyncio.run(go())


def test_the_configuration_s_drawers_are_checked_against_the_database_at_every_start(tmp_path):
    """The configuration says what is built. A drawer it adds gets empty pockets; a drawer
    that changed shape or disappeared is refused before anything runs, and the database is
    left as it was (its pockets may hold journaled stock)."""
    from controller.config import from_dict

    def cfg(*drawers):
        return from_dict({"cabinet": {"drawers": [
            {"id": d, "type": "matrix", "rows": rows, "cols": 3} for d, rows in drawers]},
            "security": {"argon2_time_cost": 1, "argon2_memory_kib": 8192}}, sim=True)

    db = tmp_path / "c.db"

    def pockets():
        with sqlite3.connect(db) as c:
            return c.execute("SELECT drawer, COUNT(*) FROM pockets GROUP BY drawer "
                             "ORDER BY drawer").fetchall()

    async def go():
        await (await start(cfg(("A", 3), ("B", 3)), sim=True, db_path=db)).stop()
        for changed in (cfg(("A", 3), ("B", 4)), cfg(("A", 3))):
            with pytest.raises(ArmoireError) as info:
                await start(changed, sim=True, db_path=db)
            assert info.value.code == "GEOMETRY_CHANGED"
            assert "B" in info.value.message_en and "B" in info.value.message_fr
            assert pockets() == [("A", 9), ("B", 9)]
        await (await start(cfg(("A", 3), ("B", 3), ("C", 2)), sim=True, db_path=db)).stop()
        assert pockets() == [("A", 9), ("B", 9), ("C", 6)]

    asyncio.run(go())


@pytest.mark.parametrize("version", ["5", "0", None])
def test_a_backup_of_a_schema_this_version_cannot_open_is_refused_before_anything_moves(
        tmp_path, version):
    """A backup made by a newer Armoire (schema 5), or one whose schema version is unknown
    or missing, passes every check of its journal; put back, the controller could not start
    on it (``DB_SCHEMA``), and the working live database would already be set aside. It is
    refused first, and nothing changes."""
    db, backup, _ = live_cabinet(tmp_path)
    other = tmp_path / "backups" / "newer.db"
    other.write_bytes(backup.read_bytes())
    conn = sqlite3.connect(other)
    if version is None:
        conn.execute("DELETE FROM meta WHERE key = 'schema_version'")
    else:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    conn.commit()
    conn.close()
    before = snapshot(tmp_path)
    with pytest.raises(ArmoireError) as info:
        restore(other, db)
    assert info.value.code == "BAD_BACKUP" and "schema" in info.value.message_en
    assert snapshot(tmp_path) == before


def restore_config(tmp_path, db, drawers):
    """A cabinet configuration file naming ``drawers`` and the database ``db``."""
    listed = ", ".join(f'{{id = "{d}", type = "{t}", rows = {r}, cols = {c}}}'
                       for d, t, r, c in drawers)
    path = tmp_path / "restore.toml"
    path.write_text(f'[cabinet]\ndrawers = [{listed}]\n[database]\npath = "{db}"\n',
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("drawers", [
    [("A", "matrix", 3, 3), ("B", "cubie", 3, 2)],  # B is built otherwise here
    [("A", "matrix", 3, 3)],                         # the backup has a drawer B not built
    [("A", "cubie", 3, 3), ("B", "cubie", 2, 2)],    # A is another type of drawer
])
def test_a_backup_of_a_cabinet_built_otherwise_is_refused_and_nothing_moves(
        tmp_path, capsys, drawers):
    """Another cabinet's backup (a USB stick of several wards' backups), or one from before
    a drawer was rebuilt, has drawers the configuration does not describe. Put back, the
    controller would refuse to start on it (``GEOMETRY_CHANGED``) with the working live
    database already set aside, or would place its stock in pockets that are not there. With
    ``--config``, the backup's drawers are checked against the configuration's first."""
    db, backup, _ = live_cabinet(tmp_path)
    cfg = restore_config(tmp_path, db, drawers)
    before = snapshot(tmp_path)
    assert main(["restore", str(backup), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "[BAD_BACKUP]" in err and "drawer" in err
    assert snapshot(tmp_path) == before


def test_a_backup_of_this_cabinet_is_restored_with_its_configuration(tmp_path, capsys):
    """The configuration's drawers, and one more it added since (the controller gives it
    empty pockets at start), are this cabinet's: the restore goes ahead."""
    db, backup, _ = live_cabinet(tmp_path)
    cfg = restore_config(tmp_path, db, [("A", "matrix", 3, 3), ("B", "cubie", 2, 2),
                                        ("C", "matrix", 2, 2)])
    assert main(["restore", str(backup), "--config", str(cfg)]) == 0
    assert "database_restored" in rows(db)


class Killed(BaseException):
    """The process dying at that point (a power cut, kill -9, Ctrl-C)."""


@pytest.mark.parametrize("step", range(1, 8))
def test_a_restore_cut_at_any_step_never_leaves_the_cabinet_without_its_database(
        tmp_path, monkeypatch, step):
    """A power cut or a kill between setting the live database aside and putting the backup
    in its place must not leave the live path empty: the next start would create a new,
    empty database there and serve from it, with no journal, no stock and no alarm. Cut at
    each file operation, the live path holds the old database or the restored one."""
    import controller.restore as restore_module

    db, backup, _ = live_cabinet(tmp_path)
    calls = [0]

    def cut(real):
        def op(src, dst):
            calls[0] += 1
            if calls[0] == step:
                raise Killed
            return real(src, dst)
        return op

    monkeypatch.setattr(restore_module.os, "replace", cut(os.replace))
    monkeypatch.setattr(restore_module.os, "link", cut(os.link))
    with contextlib.suppress(Killed):
        restore(backup, db, now=WHEN)
    monkeypatch.undo()
    assert db.exists(), f"cut at file operation {step}: no live database"
    kinds = rows(db)
    assert "withdraw" in kinds or "database_restored" in kinds or kinds == rows(backup)


@pytest.mark.parametrize("path", [None, "armoire.db", "data/armoire.db"])
def test_a_cabinet_never_keeps_its_database_in_its_working_directory(tmp_path, monkeypatch,
                                                                     path):
    """The service runs in /run/armoire, a tmpfs: a configuration without ``[database]
    path``, or with a relative one, would put the database there, lost with its journal at
    every reboot (and the backup and verification units, which refuse such a path, would
    fail). A real cabinet refuses such a path at start, exit
    2, creating nothing; ``--db`` given by hand, and the simulator, are as before."""
    from dataclasses import replace

    from controller.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    cfg = replace(config(), database=path)
    with pytest.raises(ConfigError) as info:
        asyncio.run(start(cfg, sim=False))
    assert info.value.code == "BAD_CONFIG" and "database.path" in info.value.message_en
    assert info.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_a_start_cut_after_the_seed_never_books_the_opening_stock_twice(tmp_path,
                                                                       monkeypatch):
    """The seed (opening stock counted into a new cabinet) and the mark that the database
    is provisioned are one transaction. Cut between the two (a power cut at the first
    start), the next start found no mark and applied the seed again: every opening lot
    booked twice, phantom units the journal vouches for, or a start refused for ever once
    a pocket's capacity was passed."""
    from controller.store import Store

    cfg = demo_config(tmp_path)
    db = tmp_path / "new.db"
    real = Store.set_meta

    def cut(self, key, value):
        if key == "provisioned":
            raise Killed
        return real(self, key, value)

    monkeypatch.setattr(Store, "set_meta", cut)
    with pytest.raises(Killed):
        asyncio.run(start(cfg, sim=True, db_path=db))
    monkeypatch.undo()

    async def again():
        runtime = await start(cfg, sim=True, db_path=db)
        await runtime.stop()

    asyncio.run(again())
    conn = sqlite3.connect(db)
    try:
        opening = conn.execute("SELECT drawer, row, col, lot, COUNT(*) FROM journal "
                               "WHERE code = 'OPENING_STOCK' GROUP BY drawer, row, col, lot"
                               ).fetchall()
        assert opening and all(n == 1 for *_, n in opening), opening
        assert verify(conn).ok and projection_mismatches(conn) == []
    finally:
        conn.close()


def test_a_restore_is_undone_by_restoring_the_database_it_set_aside(tmp_path, capsys):
    """docs/deploy.md tells the technician how to take a restore back (the wrong backup,
    or the live file was sound after all): the file set aside is itself a database
    ``armoire restore`` accepts, and putting it back brings back the work done after the
    backup, the chain intact, both restores journaled."""
    db, backup, later = live_cabinet(tmp_path)
    assert main(["restore", str(backup), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    [aside] = [line.removeprefix("set aside / mis de côté: ") for line in out.splitlines()
               if line.startswith("set aside / mis de côté: ") and line.endswith("Z")]
    # The command's output says how, in both languages.
    assert f"to undo: armoire restore {aside} " in out and "pour annuler" in out, out
    assert main(["restore", aside, "--db", str(db)]) == 0
    after = rows(db)
    assert "withdraw" in after
    assert after[-2:] == ["database_restored", "alarm_raised"]
    assert after.count("database_restored") == 1  # the first restore's row is in the other file
    conn = sqlite3.connect(db)
    try:
        assert verify(conn).ok and projection_mismatches(conn) == []
        assert conn.execute("SELECT hash FROM journal WHERE seq = ?", (later[0],)
                            ).fetchone()[0] == later[1]
        assert conn.execute("SELECT on_hand FROM stock WHERE lot='L1'").fetchone()[0] == 17
    finally:
        conn.close()


def test_a_configured_database_in_a_missing_folder_is_refused_naming_what_was_given(
        tmp_path, capsys):
    """``restore BACKUP --config FILE`` whose ``[database] path`` is in a folder that does
    not exist (the data partition not mounted) was refused as "--db: no directory", an
    option nobody gave; it names the configuration's path now, and nothing is created."""
    _, backup, _ = live_cabinet(tmp_path)
    db = tmp_path / "not-mounted" / "armoire.db"
    cfg = restore_config(tmp_path, db, [("A", "matrix", 3, 3), ("B", "cubie", 2, 2)])
    assert main(["restore", str(backup), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("armoire: [BAD_OUTPUT] ") and "--db" not in err, err
    assert f"--config {cfg}: [database] path" in err and str(db.parent) in err, err
    assert not db.parent.exists()
    assert main(["restore", str(backup), "--db", str(db)]) == 2
    assert f"--db: no directory {db.parent}" in capsys.readouterr().err
