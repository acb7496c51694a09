"""Nightly backup: consistent under concurrent writes, old copies pruned, CLI wiring."""

from __future__ import annotations

import argparse
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import not_ours

from controller import backup_cli
from controller.backup import backup_name, backup_time, prune_backups, run_backup
from controller.cli import main
from controller.errors import InputError

NOW = datetime(2026, 11, 23, 2, 30, tzinfo=UTC)


def make_ledger(path: Path, rows: int = 4000) -> None:
    """A WAL database with an invariant a torn copy would break: entries come in pairs that
    cancel out, written in one transaction each, so every committed state sums to zero."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER, pad BLOB)")
    with conn:
        conn.executemany("INSERT INTO ledger (amount, pad) VALUES (?, randomblob(200))",
                         [(n if i % 2 == 0 else -n,) for n in range(rows // 2) for i in (0, 1)])
    conn.close()


def ledger_state(path: Path) -> tuple[str, int, int]:
    conn = sqlite3.connect(path)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        count, total = conn.execute("SELECT count(*), coalesce(sum(amount), 0) FROM ledger"
                                    ).fetchone()
    finally:
        conn.close()
    return integrity, count, total


def test_backup_during_concurrent_writes_is_consistent(tmp_path):
    db = tmp_path / "armoire.db"
    make_ledger(db)
    stop = threading.Event()
    commits = 0

    def writer() -> None:
        nonlocal commits
        conn = sqlite3.connect(db, timeout=5)
        conn.execute("PRAGMA synchronous=FULL")
        n = 0
        while not stop.is_set():
            n += 1
            with conn:  # one transaction: both halves or neither
                conn.execute("INSERT INTO ledger (amount, pad) VALUES (?, randomblob(200))", (n,))
                conn.execute("INSERT INTO ledger (amount, pad) VALUES (?, randomblob(200))", (-n,))
            commits += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        results = []
        for i in range(5):
            while commits < 20 * (i + 1):  # make sure writes really interleave
                threading.Event().wait(0.001)
            results.append(run_backup(db, tmp_path / "backups", keep_days=7,
                                      now=NOW + timedelta(seconds=i)).path)
    finally:
        stop.set()
        thread.join()

    assert commits >= 100
    for path in results:
        integrity, count, total = ledger_state(path)
        assert integrity == "ok"
        assert count % 2 == 0 and total == 0
        assert count >= 4000
        # One self-contained file: no WAL companion needed to read it.
        assert not Path(f"{path}-wal").exists()
    # No leftovers from the write-then-rename.
    assert not list((tmp_path / "backups").glob("*.partial"))


def test_old_backups_beyond_keep_days_are_pruned(tmp_path):
    dest = tmp_path / "backups"
    dest.mkdir()
    ages = [0.5, 1, 2, 3, 4, 5, 6, 6.9, 7.1, 8, 30]
    for days in ages:
        (dest / backup_name(NOW - timedelta(days=days))).write_bytes(b"x")
    other = dest / "armoire-before-migration.db"  # a person's file: never touched
    other.write_bytes(b"keep")

    removed = prune_backups(dest, keep_days=7, now=NOW)

    assert sorted(backup_time(p) for p in removed) == sorted(
        NOW - timedelta(days=d) for d in (7.1, 8, 30))
    left = {backup_time(p) for p in dest.iterdir()}
    assert left == {NOW - timedelta(days=d) for d in (0.5, 1, 2, 3, 4, 5, 6, 6.9)} | {None}
    assert other.read_bytes() == b"keep"


def test_newest_backup_survives_even_when_old(tmp_path):
    dest = tmp_path / "backups"
    dest.mkdir()
    for days in (40, 50):
        (dest / backup_name(NOW - timedelta(days=days))).write_bytes(b"x")
    prune_backups(dest, keep_days=1, now=NOW)
    assert [backup_time(p) for p in dest.iterdir()] == [NOW - timedelta(days=40)]


def test_a_clock_set_years_ahead_keeps_the_newest_keep_days_backups(tmp_path):
    """Ten nights of real backups, then the clock jumps three years: every one looks old,
    but only those beyond the newest keep_days are deleted."""
    dest = tmp_path / "backups"
    dest.mkdir()
    nights = [NOW - timedelta(days=d) for d in range(10)]
    for when in nights:
        (dest / backup_name(when)).write_bytes(b"x")
    removed = prune_backups(dest, keep_days=7, now=NOW + timedelta(days=3 * 365))
    assert sorted(backup_time(p) for p in removed) == sorted(nights)[:3]
    assert sorted(backup_time(p) for p in dest.iterdir()) == sorted(nights)[3:]


def test_run_backup_makes_a_copy_then_prunes(tmp_path):
    db = tmp_path / "armoire.db"
    make_ledger(db, rows=10)
    dest = tmp_path / "backups"
    dest.mkdir()
    stale = dest / backup_name(NOW - timedelta(days=20))
    stale.write_bytes(b"x")
    result = run_backup(db, dest, keep_days=1, now=NOW)
    assert result.path == dest / "armoire-20261123T023000Z.db"
    assert result.pruned == [stale]
    assert ledger_state(result.path) == ("ok", 10, 0)


def test_backups_and_their_folder_are_not_world_readable_whatever_the_umask(tmp_path):
    """Backups hold patient ids. Run by hand (``sudo -u armoire armoire backup --dest
    /media/usb``, docs/deploy.md) the umask is 022, not the unit's 027: the copy and a folder
    it creates must still be closed to other users."""
    import os

    db = tmp_path / "armoire.db"
    make_ledger(db, rows=10)
    dest = tmp_path / "usb" / "backups"
    old = os.umask(0o022)
    try:
        result = run_backup(db, dest, keep_days=1, now=NOW)
    finally:
        os.umask(old)
    assert result.path.stat().st_mode & 0o007 == 0, oct(result.path.stat().st_mode)
    assert dest.stat().st_mode & 0o007 == 0, oct(dest.stat().st_mode)
    assert ledger_state(result.path) == ("ok", 10, 0)


def test_missing_database_is_refused_and_not_created(tmp_path):
    with pytest.raises(InputError):
        run_backup(tmp_path / "nope.db", tmp_path / "backups", keep_days=3)
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize("dest_exists", [True, False], ids=["backups-dir", "new-dir"])
def test_root_is_refused_a_backup_of_the_service_users_database(tmp_path, capsys, monkeypatch,
                                                                dest_exists):
    """``sudo armoire backup`` (the ``-u armoire`` forgotten) wrote a backup, or the whole
    backups folder, owned by root: the service could then not read it for a restore, nor
    write its nightly backups into a folder root had made. Refused, naming ``sudo -u``,
    before any file or folder is made, with the flags or with the unit's --config."""
    data = tmp_path / "data"
    data.mkdir()
    db = data / "armoire.db"
    make_ledger(db, rows=10)
    dest = data / "backups"
    if dest_exists:
        dest.mkdir()
    config = tmp_path / "armoire.toml"
    config.write_text(f'[database]\npath = "{db}"\n[backup]\ndir = "{dest}"\nkeep_days = 3\n',
                      encoding="utf-8")
    before = sorted(data.rglob("*"))
    not_ours(*[d for d in (data, dest) if d.exists()], monkeypatch=monkeypatch)
    for argv in (["backup", "--db", str(db), "--dest", str(dest), "--keep-days", "3"],
                 ["backup", "--config", str(config)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "[WRONG_USER]" in err and "sudo -u" in err, err
        assert sorted(data.rglob("*")) == before


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="armoire")
    backup_cli.register(p.add_subparsers(dest="command", required=True))
    return p


def test_cli_with_flags(tmp_path, capsys):
    db = tmp_path / "armoire.db"
    make_ledger(db, rows=10)
    args = parser().parse_args(["backup", "--db", str(db), "--dest", str(tmp_path / "b"),
                                "--keep-days", "3"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"backup / sauvegarde: {tmp_path / 'b'}/armoire-")
    assert len(list((tmp_path / "b").glob("armoire-*.db"))) == 1


def test_cli_reads_defaults_from_config_and_flags_win(tmp_path):
    db = tmp_path / "armoire.db"
    make_ledger(db, rows=10)
    config = tmp_path / "armoire.toml"
    config.write_text(f'[database]\npath = "{db}"\n\n[backup]\ndir = "{tmp_path / "cfg"}"\n'
                      "keep_days = 30\n")
    args = parser().parse_args(["backup", "--config", str(config)])
    assert args.func(args) == 0
    assert len(list((tmp_path / "cfg").glob("armoire-*.db"))) == 1

    args = parser().parse_args(["backup", "--config", str(config), "--dest", str(tmp_path / "x")])
    assert args.func(args) == 0
    assert len(list((tmp_path / "x").glob("armoire-*.db"))) == 1


@pytest.mark.parametrize("argv", [
    ["backup", "--dest", "/tmp/x", "--keep-days", "3"],
    ["backup", "--db", "a.db", "--dest", "/tmp/x", "--keep-days", "3"],
])
def test_cli_refuses_incomplete_or_bad_input(argv, tmp_path):
    args = parser().parse_args(argv)
    with pytest.raises(InputError):
        args.func(args)


def test_backup_is_registered_in_the_armoire_command():
    from controller.cli import SUBCOMMAND_MODULES
    assert "controller.backup_cli" in SUBCOMMAND_MODULES


def test_a_file_that_is_not_a_database_is_refused_before_the_folder_is_made(tmp_path):
    junk = tmp_path / "notes.db"
    junk.write_text("hello")
    with pytest.raises(InputError) as exc:
        run_backup(junk, tmp_path / "backups", keep_days=3)
    assert exc.value.code == "DB_UNREADABLE" and exc.value.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


@pytest.mark.parametrize("keep", ["0", "1000000", "x"])
def test_keep_days_is_bounded_before_anything_is_written(tmp_path, capsys, keep):
    from controller.cli import main

    db = tmp_path / "armoire.db"
    make_ledger(db, rows=10)
    argv = ["backup", "--db", str(db), "--dest", str(tmp_path / "b"), "--keep-days", keep]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and "--keep-days" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\npath = "{db}"\n[backup]\ndir = "{tmp_path / "b"}"\n'
                      "keep_days = 1000000\n")
    assert main(["backup", "--config", str(config)]) == 2
    assert not (tmp_path / "b").exists()


def test_dest_that_is_a_file_and_a_config_that_is_not_utf8_are_refused(tmp_path, capsys):
    from controller.cli import main

    db = tmp_path / "armoire.db"
    make_ledger(db, rows=10)
    f = tmp_path / "f"
    f.write_text("x")
    assert main(["backup", "--db", str(db), "--dest", str(f), "--keep-days", "7"]) == 2
    assert "[BAD_OUTPUT]" in capsys.readouterr().err and f.read_text() == "x"
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b"x = \xff\n")
    assert main(["backup", "--config", str(cfg)]) == 2
    assert "[BAD_CONFIG]" in capsys.readouterr().err


def test_what_an_interrupted_backup_left_is_pruned_once_a_day_old(tmp_path):
    """A power cut during a backup leaves the partial copy (patient ids in it) and SQLite's
    journal beside it: pruned the next nights, never while a backup may be writing it."""
    dest = tmp_path / "backups"
    dest.mkdir()
    old = backup_name(NOW - timedelta(days=2))
    fresh = backup_name(NOW - timedelta(hours=1))
    leftovers = [dest / f"{old}.partial", dest / f"{old}.partial-journal"]
    kept = [dest / f"{fresh}.partial", dest / "notes.partial", dest / old]
    for path in leftovers + kept:
        path.write_bytes(b"x")
    removed = prune_backups(dest, keep_days=7, now=NOW)
    assert sorted(removed) == sorted(leftovers)
    assert sorted(dest.iterdir()) == sorted(kept)


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_disk_that_fails_while_the_backup_is_written_is_a_coded_error(
        tmp_path, capsys, monkeypatch, failing):
    """The backup device fails under the copy (a USB stick pulled, an I/O error at the
    flush or the rename): one coded line and exit 3 for the unit's log, never a traceback,
    and neither a backup nor its partial copy is left that could pass for a good one."""
    import controller.backup as backup_module

    db = tmp_path / "live.db"
    make_ledger(db, rows=20)
    dest = tmp_path / "backups"
    real = getattr(backup_module.os, failing)

    def broken(*args):
        if failing == "fsync" or str(args[1]).endswith(".db"):
            raise OSError(5, "Input/output error")
        return real(*args)

    monkeypatch.setattr(backup_module.os, failing, broken)
    assert main(["backup", "--db", str(db), "--dest", str(dest), "--keep-days", "3"]) == 3
    err = capsys.readouterr().err
    assert "[BACKUP_FAILED]" in err and "Input/output error" in err
    assert not dest.exists() or list(dest.iterdir()) == []


@pytest.mark.parametrize("key", ['"rel.key"', '""', "5"])
def test_a_badge_key_setting_the_controller_refuses_is_refused_by_the_backup(tmp_path, key):
    """The backup read ``[database] badge_key`` unchecked: a relative name was looked for
    in the unit's working directory, found missing, and the backup "succeeded" without the
    key, which a restore needs for every badge. It is checked as the controller checks it,
    before anything is written."""
    from controller.errors import ConfigError

    db = tmp_path / "armoire.db"
    make_ledger(db, rows=10)
    config = tmp_path / "armoire.toml"
    config.write_text(f'[database]\npath = "{db}"\nbadge_key = {key}\n\n[backup]\n'
                      f'dir = "{tmp_path / "cfg"}"\nkeep_days = 30\n')
    args = parser().parse_args(["backup", "--config", str(config)])
    with pytest.raises(ConfigError, match=r"database\.badge_key"):
        args.func(args)
    assert not (tmp_path / "cfg").exists()


def _bilingual(out: str) -> list[str]:
    """The lines of ``out`` that are not "english / français"."""
    return [line for line in out.splitlines() if " / " not in line]


def test_what_the_backup_prints_is_in_english_and_french(tmp_path, capsys):
    """What ``journalctl -u armoire-backup`` shows the technician (the copy, the badge key
    beside it, the backups pruned) says it in both languages, as the rest of the CLI does;
    the path stays last on each line, whole, for a script to take."""
    from controller.badge import write_key

    db = tmp_path / "armoire.db"
    make_ledger(db, rows=10)
    write_key(tmp_path / "armoire.db.badge-key", bytes(range(32)))
    dest = tmp_path / "b"
    dest.mkdir()
    now = datetime.now(UTC)
    for hours in (1, 2, 3):  # the newest 3 are kept whatever their age
        (dest / backup_name(now - timedelta(hours=hours))).write_bytes(b"x")
    old = dest / backup_name(now - timedelta(days=40))
    old.write_bytes(b"x")
    assert main(["backup", "--db", str(db), "--dest", str(dest), "--keep-days", "3"]) == 0
    out = capsys.readouterr().out
    assert not _bilingual(out), out
    lines = out.splitlines()
    assert len(lines) == 3 and lines[2].endswith(f": {old}") and not old.exists(), out
    made = max(dest.glob("armoire-2*.db"))
    assert lines[0].endswith(f": {made}") and lines[1].endswith(f": {dest / 'armoire-badge.key'}")
