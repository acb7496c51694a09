"""``armoire admin``: a cabinet installed without a seed gets its first admin from the
console, with a one-time PIN she must change; the only admin locked out gets back in the
same way. Nothing else changes, and the PIN is never kept."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from helpers import not_ours

from controller.alarms import Alarms, Where
from controller.auth import PinHasher
from controller.cli import main
from controller.dblock import DatabaseLock
from controller.store import Store

CONFIG = """
[cabinet]
name = "Test"
drawers = [{id = "A", type = "matrix", rows = 2, cols = 2}]
[security]
argon2_time_cost = 1
argon2_memory_kib = 8192
"""


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "armoire.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def admin(cfg, db, capsys, *extra):
    code = main(["admin", "--config", str(cfg), "--db", str(db), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def pin_of(out):
    [pin] = set(re.findall(r"\b\d{8}\b", out))
    return pin


def rows(db, sql, args=()):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def pin_ok(db, user, pin):
    [(pin_hash,)] = rows(db, "SELECT pin_hash FROM users WHERE id=?", (user,))
    return PinHasher(1, 8192).verify(pin_hash, pin)


def test_a_new_cabinet_gets_its_first_admin_from_the_console(cfg, tmp_path, capsys):
    db = tmp_path / "c.db"
    code, out, _ = admin(cfg, db, capsys, "--id", "it1", "--name", "Informatique")
    assert code == 0 and "created" in out and "créé" in out
    pin = pin_of(out)
    assert rows(db, "SELECT id, role, must_change_pin, locked FROM users") == [
        ("it1", "admin", 1, 0)]
    assert pin_ok(db, "it1", pin)
    assert rows(db, "SELECT COUNT(*) FROM pockets") == [(4,)]   # provisioned from the config
    journal = rows(db, "SELECT kind, user, detail FROM journal WHERE kind='user_created'")
    assert [(k, u, json.loads(d)) for k, u, d in journal] == [
        ("user_created", None, {"id": "it1", "role": "admin", "by": "console"})]
    assert pin not in json.dumps(rows(db, "SELECT * FROM journal"))
    assert main(["journal", "verify", "--db", str(db)]) == 0


def test_the_only_admin_locked_out_gets_a_new_pin_and_is_unlocked(cfg, tmp_path, capsys):
    db = tmp_path / "c.db"
    first = pin_of(admin(cfg, db, capsys, "--id", "it1", "--name", "IT")[1])
    with sqlite3.connect(db) as c:
        c.execute("UPDATE users SET locked=1, failed=5, must_change_pin=0 WHERE id='it1'")
    store = Store(str(db))
    Alarms(store).raise_("auth_lockout", Where(user="it1"), "user it1 locked after 5 wrong PINs")
    store.close()
    code, out, _ = admin(cfg, db, capsys, "--id", "it1")
    assert code == 0 and "unlocked" in out
    second = pin_of(out)
    assert second != first and pin_ok(db, "it1", second) and not pin_ok(db, "it1", first)
    assert rows(db, "SELECT locked, failed, must_change_pin FROM users") == [(0, 0, 1)]
    assert rows(db, "SELECT kind, state FROM alarms") == [("auth_lockout", "resolved")]
    assert [(u, json.loads(d)) for u, d in rows(
        db, "SELECT user, detail FROM journal WHERE kind='pin_reset'")] == [
        (None, {"id": "it1", "by": "console"})]
    assert main(["journal", "verify", "--db", str(db)]) == 0


@pytest.mark.parametrize("args, code", [
    (["--id", "x"], "BAD_USER_ID"),
    (["--id", "it9"], "BAD_NAME"),
    (["--id", "it9", "--name", "N" * 81], "BAD_NAME"),
])
def test_bad_requests_change_nothing(cfg, tmp_path, capsys, args, code):
    db = tmp_path / "c.db"
    admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    before = rows(db, "SELECT * FROM journal")
    status, out, err = admin(cfg, db, capsys, *args)
    assert status == 2 and f"[{code}]" in err and out == ""
    assert rows(db, "SELECT * FROM journal") == before


def test_an_admin_whose_id_an_older_rule_allowed_still_gets_back_in(cfg, tmp_path, capsys):
    """Ids such as ``it.`` were accepted before ids were checked strictly; the console is
    that admin's only way back, so it must find her, while a new id is still checked."""
    db = tmp_path / "c.db"
    admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO users (id, name, role, pin_hash, lang, locked) VALUES "
                  "('it.', 'Old IT', 'admin', 'x', 'fr', 1)")
    code, out, _ = admin(cfg, db, capsys, "--id", "it.")
    assert code == 0 and "unlocked" in out
    assert pin_ok(db, "it.", pin_of(out))
    status, out, err = admin(cfg, db, capsys, "--id", "it2.", "--name", "New")
    assert status == 2 and "[BAD_USER_ID]" in err
    assert rows(db, "SELECT COUNT(*) FROM users WHERE id='it2.'") == [(0,)]


def test_other_roles_and_deactivated_admins_are_kept_from_the_pharmacy_pages(
        cfg, tmp_path, capsys):
    db = tmp_path / "c.db"
    admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO users (id, name, role, pin_hash, lang) VALUES "
                  "('ide1', 'IDE', 'nurse', 'x', 'fr'), ('old1', 'Old', 'admin', 'x', 'fr')")
        c.execute("UPDATE users SET active=0 WHERE id='old1'")
    before = rows(db, "SELECT * FROM users ORDER BY id")
    for user, code in (("ide1", "NOT_ADMIN"), ("old1", "USER_INACTIVE")):
        status, out, err = admin(cfg, db, capsys, "--id", user)
        assert status != 0 and f"[{code}]" in err and out == ""
    assert rows(db, "SELECT * FROM users ORDER BY id") == before


def test_refused_while_the_controller_holds_the_database(cfg, tmp_path, capsys):
    db = tmp_path / "c.db"
    with DatabaseLock(db):
        status, out, err = admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    assert status != 0 and "[DB_IN_USE]" in err and out == ""
    assert not db.exists()


@pytest.mark.parametrize("command", ["admin", "restore", "run"])
def test_root_is_refused_in_the_service_users_data_directory(tmp_path, cfg, capsys,
                                                             monkeypatch, command):
    """``sudo armoire admin`` (the ``-u armoire`` forgotten) on a first install created the
    database, its lock and its -wal/-shm as root: the service, running as ``armoire``,
    could then not open them and failed in a restart loop (DB_LOCK_FAILED, permission
    denied). A restore by root did the same to the restored file. Refused, saying how to
    run it, before any file is made."""
    data = tmp_path / "data"
    data.mkdir()
    db = data / "armoire.db"
    backup = tmp_path / "b.db"  # a sound database, as a backup is
    assert admin(cfg, backup, capsys, "--id", "a0", "--name", "Ann")[0] == 0
    not_ours(data, monkeypatch=monkeypatch)

    def never_serve(*args, **kwargs):
        raise AssertionError("the controller was started")

    monkeypatch.setattr("controller.web.server.build_server", never_serve)
    argv = {"admin": ["admin", "--config", str(cfg), "--db", str(db), "--id", "a1",
                      "--name", "Alice"],
            "restore": ["restore", str(backup), "--db", str(db)],
            "run": ["run", "--sim", "--config", str(cfg), "--db", str(db)]}[command]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "[WRONG_USER]" in err and "sudo -u" in err, err
    assert list(data.iterdir()) == []


UID = "04A1B2C3D4E580"


def badge(cfg, db, capsys, monkeypatch, action, user, stdin=""):
    """``armoire badge ACTION --id USER`` with ``stdin`` as what the reader types."""
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["badge", action, "--config", str(cfg), "--db", str(db), "--id", user])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_badge_is_enrolled_from_the_console_with_its_uid_read_from_stdin(
        cfg, tmp_path, capsys, monkeypatch):
    db = tmp_path / "c.db"
    admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    admin(cfg, db, capsys, "--id", "it2", "--name", "IT two")
    status, out, err = badge(cfg, db, capsys, monkeypatch, "enrol", "it1", UID + "\n")
    assert status == 0 and "badge enrolled for it1" in out and UID not in out + err
    [(user, stored)] = rows(db, "SELECT user, hash FROM badges")
    assert user == "it1" and UID not in stored
    assert (tmp_path / "c.db.badge-key").stat().st_mode & 0o777 == 0o600
    [(who, detail)] = rows(db, "SELECT user, detail FROM journal WHERE kind='badge_enrolled'")
    assert who is None and json.loads(detail) == {"id": "it1", "replaced": False,
                                                  "by": "console"}
    # Another person's badge is refused; noise is refused; nothing changes.
    before = rows(db, "SELECT * FROM badges"), rows(db, "SELECT count(*) FROM journal")
    status, _, err = badge(cfg, db, capsys, monkeypatch, "enrol", "it2", UID + "\n")
    assert status == 2 and "[BADGE_TAKEN]" in err
    status, _, err = badge(cfg, db, capsys, monkeypatch, "enrol", "it2", "04\x01A1B2\n")
    assert status == 2 and "[BAD_BADGE]" in err
    status, _, err = badge(cfg, db, capsys, monkeypatch, "enrol", "nobody", UID + "\n")
    assert status == 2 and "[UNKNOWN_USER]" in err
    assert (rows(db, "SELECT * FROM badges"), rows(db, "SELECT count(*) FROM journal")) == \
        before
    # Lost badge: revoked from the console.
    status, out, _ = badge(cfg, db, capsys, monkeypatch, "revoke", "it1")
    assert status == 0 and "revoked" in out and rows(db, "SELECT * FROM badges") == []
    assert UID not in json.dumps(rows(db, "SELECT * FROM journal"))


def test_the_uid_is_never_taken_from_the_command_line(cfg, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["badge", "enrol", "--config", str(cfg), "--db", str(tmp_path / "c.db"),
              "--id", "it1", UID])
    assert exc.value.code == 2 and "[USAGE]" in capsys.readouterr().err
    assert not (tmp_path / "c.db").exists()


def test_a_badge_is_refused_while_the_controller_holds_the_database(cfg, tmp_path, capsys,
                                                                     monkeypatch):
    db = tmp_path / "c.db"
    with DatabaseLock(db):
        status, out, err = badge(cfg, db, capsys, monkeypatch, "enrol", "it1", UID + "\n")
    assert status != 0 and "[DB_IN_USE]" in err and out == ""


def test_a_lost_badge_key_is_got_over_by_revoking_every_badge(cfg, tmp_path, capsys,
                                                              monkeypatch):
    """With the key lost, no badge can be recognised nor enrolled (BADGE_KEY_MISSING);
    revoke-all needs no key, and the next enrolment makes a new one."""
    db = tmp_path / "c.db"
    admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    badge(cfg, db, capsys, monkeypatch, "enrol", "it1", UID + "\n")
    (tmp_path / "c.db.badge-key").unlink()
    status, _, err = badge(cfg, db, capsys, monkeypatch, "enrol", "it1", UID + "\n")
    assert status == 2 and "[BADGE_KEY_MISSING]" in err
    status, _, err = badge(cfg, db, capsys, monkeypatch, "revoke-all", "it1")
    assert status == 2 and "[USAGE]" in err and rows(db, "SELECT count(*) FROM badges") == [(1,)]
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    assert main(["badge", "revoke-all", "--config", str(cfg), "--db", str(db)]) == 0
    assert "1 badge(s) revoked" in capsys.readouterr().out
    [(detail,)] = rows(db, "SELECT detail FROM journal WHERE kind='badges_revoked'")
    assert json.loads(detail) == {"count": 1, "by": "console"}
    status, out, _ = badge(cfg, db, capsys, monkeypatch, "enrol", "it1", UID + "\n")
    assert status == 0 and "badge enrolled for it1" in out
    assert (tmp_path / "c.db.badge-key").exists()


def everything_in(db):
    """What a refused console command must leave as it was: every row of every table."""
    tables = [t for (t,) in rows(db, "SELECT name FROM sqlite_master WHERE type='table'")]
    return {t: rows(db, f"SELECT * FROM {t}") for t in tables}


@pytest.mark.parametrize("args", [
    ["--id", "it2", "--name", UID],                    # the badge read as the name
    ["--id", "it2", "--name", f"Dupont {UID.lower()}"],  # after the name typed
    ["--id", UID, "--name", "Dupont"],                 # read as the id
    ["--id", f" {UID}", "--name", "Dupont"],
])
def test_a_badge_typed_into_the_admin_command_is_refused_and_not_echoed(
        cfg, tmp_path, capsys, monkeypatch, args):
    """At the console the reader types into the command line as anywhere else: an
    enrolled badge's UID as a new admin's name (or id) would be in the users table and
    the append-only journal for good, and echoed by the command."""
    db = tmp_path / "c.db"
    admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    badge(cfg, db, capsys, monkeypatch, "enrol", "it1", UID + "\n")
    before = everything_in(db)
    status, out, err = admin(cfg, db, capsys, *args)
    assert status == 2 and "[BADGE_NOT_TEXT]" in err and out == ""
    assert UID not in (out + err).upper()
    assert everything_in(db) == before


@pytest.mark.parametrize("action", ["enrol", "revoke"])
def test_a_badge_typed_as_the_badge_command_s_id_is_not_echoed(
        cfg, tmp_path, capsys, monkeypatch, action):
    """``armoire badge --id`` is echoed back (unknown user 'X'): a UID read there must
    not be, and nothing changes."""
    db = tmp_path / "c.db"
    admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    badge(cfg, db, capsys, monkeypatch, "enrol", "it1", UID + "\n")
    before = everything_in(db)
    status, out, err = badge(cfg, db, capsys, monkeypatch, action, UID.lower(),
                             "04FFEE0011\n")
    assert status == 2 and "[BADGE_NOT_TEXT]" in err and out == ""
    assert UID not in (out + err).upper()
    assert everything_in(db) == before


def test_a_name_or_id_that_is_no_badge_still_makes_an_admin(cfg, tmp_path, capsys,
                                                             monkeypatch):
    db = tmp_path / "c.db"
    admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    badge(cfg, db, capsys, monkeypatch, "enrol", "it1", UID + "\n")
    status, out, _ = admin(cfg, db, capsys, "--id", "it2", "--name", "Dupont 04A1B2C3D4E581")
    assert status == 0 and "created" in out


def test_with_the_badge_key_lost_the_admin_command_waits_for_revoke_all(
        cfg, tmp_path, capsys, monkeypatch):
    """Without the key an enrolled UID cannot be recognised in --name: the command is
    refused as the controller's start is (BADGE_KEY_MISSING), nothing written, until the
    key is put back or every badge revoked; no key is made meanwhile."""
    db = tmp_path / "c.db"
    admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    badge(cfg, db, capsys, monkeypatch, "enrol", "it1", UID + "\n")
    (tmp_path / "c.db.badge-key").unlink()
    before = everything_in(db)
    status, out, err = admin(cfg, db, capsys, "--id", "it2", "--name", "IT two")
    assert status == 2 and "[BADGE_KEY_MISSING]" in err and out == ""
    assert everything_in(db) == before and not (tmp_path / "c.db.badge-key").exists()
    assert main(["badge", "revoke-all", "--config", str(cfg), "--db", str(db)]) == 0
    status, out, _ = admin(cfg, db, capsys, "--id", "it2", "--name", "IT two")
    assert status == 0 and "created" in out


def test_an_audit_finds_badges_stored_as_text_before_the_check_found_them(
        cfg, tmp_path, capsys, monkeypatch):
    """A UID read after other words ("Dupont 04A1…") went through before this version and
    is in the append-only journal for good: nothing can take it out, but its badge can be
    replaced. ``armoire badge audit`` says whose badge is where (table, row), never the
    UID; exit 1 when it finds one, 0 when none."""
    from controller.store import JournalEntry

    db = tmp_path / "c.db"
    admin(cfg, db, capsys, "--id", "it1", "--name", "IT")
    admin(cfg, db, capsys, "--id", "it2", "--name", "IT two")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    assert main(["badge", "audit", "--config", str(cfg), "--db", str(db)]) == 0
    assert "no badge" in capsys.readouterr().out
    badge(cfg, db, capsys, monkeypatch, "enrol", "it1", UID + "\n")
    badge(cfg, db, capsys, monkeypatch, "enrol", "it2", "04FFEE0011\n")
    assert main(["badge", "audit", "--config", str(cfg), "--db", str(db)]) == 0
    capsys.readouterr()
    store = Store(str(db))
    store.append(JournalEntry("alarm_resolved", user="it2",
                              detail={"note": f"vu par Dupont {UID.lower()}"}))
    [row] = store.query("SELECT max(seq) AS seq FROM journal")
    store.close()
    with sqlite3.connect(db) as c:
        c.execute("UPDATE users SET name=? WHERE id='it2'", (f"IT two {UID}",))
    before = everything_in(db)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    status = main(["badge", "audit", "--config", str(cfg), "--db", str(db)])
    out, err = (lambda o: (o.out, o.err))(capsys.readouterr())
    assert status == 1
    assert f"badge of it1: journal row {row['seq']}" in out
    assert "badge of it1: users row it2" in out
    assert "badge of it2" not in out  # its number is stored nowhere
    assert UID not in (out + err).upper() and "04FFEE0011" not in out + err
    assert everything_in(db) == before


def test_the_database_the_first_admin_creates_is_not_world_readable(cfg, tmp_path, capsys):
    """docs/deploy.md has IT create the first admin before the controller ever started
    (``sudo -u armoire … armoire admin``, a shell's umask 022, not the unit's 027): the
    database that command creates holds PIN hashes and, soon, patient ids, and its -wal and
    -shm files the latest of them. Owner and group only, as a restored one is."""
    import os

    db = tmp_path / "new.db"
    old = os.umask(0o022)
    try:
        code, _, err = admin(cfg, db, capsys, "--id", "it1", "--name", "Informatique")
    finally:
        os.umask(old)
    assert code == 0, err
    assert db.stat().st_mode & 0o077 == 0o040, oct(db.stat().st_mode)
    # SQLite gives the -wal and -shm files the database's own mode: seen while one is open.
    os.umask(0o022)
    try:
        store = Store(tmp_path / "other.db")
    finally:
        os.umask(old)
    try:
        for name in ("other.db", "other.db-wal", "other.db-shm"):
            mode = (tmp_path / name).stat().st_mode
            assert mode & 0o007 == 0, (name, oct(mode))
    finally:
        store.close()


@pytest.mark.parametrize("command", [["admin", "--id", "it1", "--name", "Informatique"],
                                     ["badge", "revoke-all"]])
def test_a_configuration_naming_no_database_is_refused_not_read_as_the_current_folder(
        cfg, tmp_path, monkeypatch, capsys, command):
    """The console commands found the database as the controller does, from [database]
    path; a file without it made an armoire.db in whatever folder the technician stood in,
    whose admin the controller (which refuses such a file) never saw."""
    monkeypatch.chdir(tmp_path)
    code = main([command[0], *command[1:], "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "[BAD_CONFIG] database.path" in err and " / " in err, err
    assert not (tmp_path / "armoire.db").exists()


@pytest.mark.parametrize("command", [["admin", "--id", "it1", "--name", "IT"],
                                     ["badge", "revoke-all"]])
def test_a_seed_provisioned_from_the_console_counts_days_as_the_controller_does(
        tmp_path, capsys, monkeypatch, command):
    """``cabinet.timezone`` unset: the controller (``armoire run`` on the cabinet) counts
    days in the system's zone. The console, which provisions a new database from the same
    seed, counted them in UTC (it read the configuration as the simulator does), so a lot
    ``expires_in_days`` away lapsed a day early or late on a ward far from UTC. Both agree
    now: the zone is one where today is not UTC's today, whatever the hour of the run."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from controller import localtime

    zone = "Pacific/Kiritimati" if datetime.now(UTC).hour >= 10 else "Pacific/Pago_Pago"
    monkeypatch.setattr(localtime, "system_zone_name", lambda: zone)
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({
        "drugs": [{"id": "D1", "name": "drug one", "strength": "1 mg", "form": "tablet"}],
        "layout": [{"drug": "D1", "drawer": "A", "row": 0, "col": 0, "capacity": 10}],
        "stock": [{"drawer": "A", "row": 0, "col": 0, "lot": "L1", "expires_in_days": 30,
                   "qty": 5}]}), encoding="utf-8")
    cfg = tmp_path / "armoire.toml"
    cfg.write_text('seed = "seed.json"\n' + CONFIG, encoding="utf-8")
    db = tmp_path / "c.db"
    assert main([*command, "--config", str(cfg), "--db", str(db)]) == 0, capsys.readouterr()
    expected = (datetime.now(ZoneInfo(zone)).date() + timedelta(days=30)).isoformat()
    assert rows(db, "SELECT expiry FROM stock") == [(expected,)]
