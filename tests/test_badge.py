"""Staff badges: the UID check, the key file, enrolment and revocation, identification."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import stat

import pytest
import test_cabinet_users
from helpers import PINS
from test_cabinet_users import ADMIN, PH
from web_helpers import demo_config

from controller import badge, people
from controller.errors import (
    ArmoireError,
    AuthError,
    ConfigError,
    InputError,
    PermissionDenied,
    RuleViolation,
)
from controller.runtime import start
from controller.store import Store

#: The cabinet on its loop, from the users' tests (same seed, same people).
booted = test_cabinet_users.booted
cab = test_cabinet_users.cab

KEY = bytes(range(32))
UID = "04A1B2C3D4E580"
OTHER = "04FFEE0011"


@pytest.fixture
def keyed(cab):
    cab.badge_key = KEY
    return cab


def everything(cab):
    """Every row of the tables a refused request must leave alone."""
    return (cab.store.query("SELECT * FROM badges ORDER BY user"),
            cab.store.query("SELECT * FROM users ORDER BY id"),
            len(cab.store.journal_rows()))


def journal_text(cab) -> str:
    return json.dumps(cab.store.journal_rows())


# -- what a reader types -----------------------------------------------------------------

@pytest.mark.parametrize("raw", ["", "   ", "04A", "0" * 33, "04A1\x00B2C3", "04A1\nB2C3",
                                 "04A1\x1bB2", "04A1 B2C3", "04Ä1B2C3", "<script>", None, 42])
def test_noise_from_the_reader_is_refused_with_a_stable_code(raw):
    with pytest.raises(InputError) as err:
        badge.check_uid(raw)
    assert err.value.code == "BAD_BADGE"
    assert "badge" in err.value.message_en and "badge" in err.value.message_fr


def test_one_card_read_by_two_readers_is_one_badge():
    assert badge.check_uid(" 04a1b2c3\r\n") == badge.check_uid("04A1B2C3") == "04A1B2C3"
    assert badge.check_uid("04:A1:B2:C3") == "04:A1:B2:C3"


# -- the key file ------------------------------------------------------------------------

def test_the_key_is_made_once_with_mode_0600_and_read_back(tmp_path):
    path = badge.key_path(tmp_path / "cab.db")
    assert path == tmp_path / "cab.db.badge-key"
    key = badge.load_or_create_key(path, enrolled=0)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert badge.load_or_create_key(path, enrolled=3) == key  # never replaced
    assert badge.key_path(tmp_path / "cab.db", "/etc/armoire/badge.key").name == "badge.key"


class PowerCut(BaseException):
    """The Pi loses power: nothing after this point runs."""


def test_a_power_cut_while_the_key_is_made_leaves_no_half_key(tmp_path, monkeypatch):
    """The file appears whole or not at all: a key file left empty would stop every later
    start (BADGE_KEY_UNREADABLE) on a cabinet that has no badge yet."""
    path = tmp_path / "cab.db.badge-key"

    def cut(fd, data):
        raise PowerCut

    with monkeypatch.context() as m:
        m.setattr(badge.os, "write", cut)
        with pytest.raises(PowerCut):
            badge.load_or_create_key(path, enrolled=0)
    assert not path.exists()
    key = badge.load_or_create_key(path, enrolled=0)  # the next start makes it
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_two_tools_making_the_key_at_once_end_with_one_key(tmp_path, monkeypatch):
    """The controller and ``armoire badge enrol`` both find no key: the one that reads while
    the other writes must not see half a key (a start-up error), and both use one key."""
    path = tmp_path / "cab.db.badge-key"
    write = os.write
    other: list[bytes] = []
    started: list[bool] = []

    def slow_write(fd, data):
        if not started:  # the other tool runs while this one is between create and write
            started.append(True)
            other.append(badge.load_or_create_key(path, enrolled=0))
        return write(fd, data)

    monkeypatch.setattr(badge.os, "write", slow_write)
    mine = badge.load_or_create_key(path, enrolled=0)
    assert mine == other[0] == badge.read_key(path)


def test_a_missing_key_with_badges_enrolled_stops_the_start_and_makes_none(tmp_path):
    path = tmp_path / "cab.db.badge-key"
    with pytest.raises(ConfigError) as err:
        badge.load_or_create_key(path, enrolled=2)
    assert err.value.code == "BADGE_KEY_MISSING" and "restaurez" in err.value.message_fr
    assert not path.exists()


@pytest.mark.parametrize("content,mode", [("ab" * 32 + "\n", 0o644), ("not hex\n", 0o600),
                                          ("ab" * 16 + "\n", 0o600)])
def test_a_key_open_to_others_or_malformed_is_refused(tmp_path, content, mode):
    path = tmp_path / "k"
    path.write_text(content, encoding="ascii")
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as err:
        badge.load_or_create_key(path, enrolled=0)
    assert err.value.code == "BADGE_KEY_UNREADABLE"
    assert path.read_text(encoding="ascii") == content  # never overwritten


def test_an_unreadable_key_is_refused(tmp_path):
    path = tmp_path / "k"
    path.mkdir()  # not a file: cannot be read, whoever runs the cabinet
    with pytest.raises(ConfigError) as err:
        badge.load_or_create_key(path, enrolled=0)
    assert err.value.code == "BADGE_KEY_UNREADABLE"


def test_the_cabinet_makes_its_key_at_first_start_and_refuses_to_start_without_it(tmp_path):
    cfg = demo_config(tmp_path)
    db = tmp_path / "cab.db"

    async def run_once(enrol: bool) -> None:
        runtime = await start(cfg, sim=True, db_path=db)
        try:
            if enrol:
                people.console_badge(runtime.store, runtime.cabinet.badge_key, "ide1", UID)
        finally:
            await runtime.stop()

    asyncio.run(run_once(enrol=False))
    key_file = tmp_path / "cab.db.badge-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    asyncio.run(run_once(enrol=True))
    key_file.unlink()
    with pytest.raises(ConfigError) as err:
        asyncio.run(run_once(enrol=False))
    assert err.value.code == "BADGE_KEY_MISSING" and not key_file.exists()


# -- the database ----------------------------------------------------------------------

def test_a_version_3_database_gets_an_empty_badge_table(tmp_path):
    path = tmp_path / "v3.db"
    store = Store(path)
    with store.transaction() as c:
        c.execute("DROP TABLE badges")
        c.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    store.close()
    store = Store(path)
    try:
        assert store.meta("schema_version") == "4"
        assert store.query("SELECT * FROM badges") == []
    finally:
        store.close()


# -- enrolment -------------------------------------------------------------------------

def test_an_admin_enrols_a_badge_kept_as_a_keyed_hash_and_journaled_without_it(keyed):
    assert people.enrol_badge(keyed, "n1", UID.lower(), actor=ADMIN) is False
    [row] = keyed.store.query("SELECT * FROM badges")
    expected = hmac.new(KEY, UID.encode(), hashlib.sha256).hexdigest()
    assert row["user"] == "n1" and row["hash"] == expected and row["enrolled_by"] == "ad1"
    assert hashlib.sha256(UID.encode()).hexdigest() != expected
    entry = keyed.store.journal_rows(kind="badge_enrolled")[-1]
    assert entry["user"] == "ad1" and json.loads(entry["detail"]) == {"id": "n1",
                                                                      "replaced": False}
    assert UID not in journal_text(keyed) and UID.lower() not in journal_text(keyed)
    assert expected not in journal_text(keyed)
    assert [u["has_badge"] for u in people.users(keyed) if u["id"] == "n1"] == [1]


def test_only_an_admin_enrols_or_revokes_and_a_refusal_changes_nothing(keyed):
    people.enrol_badge(keyed, "n1", UID, actor=ADMIN)
    before = everything(keyed)
    with pytest.raises(PermissionDenied) as err:
        people.enrol_badge(keyed, "n2", OTHER, actor=PH)
    assert err.value.code == "FORBIDDEN"
    with pytest.raises(PermissionDenied):
        people.revoke_badge(keyed, "n1", actor=PH)
    with pytest.raises(InputError) as bad:
        people.enrol_badge(keyed, "n2", "04\x00A1B2", actor=ADMIN)
    assert bad.value.code == "BAD_BADGE"
    assert everything(keyed) == before


def test_a_badge_held_by_another_person_is_refused(keyed):
    people.enrol_badge(keyed, "n1", UID, actor=ADMIN)
    before = everything(keyed)
    with pytest.raises(RuleViolation) as err:
        people.enrol_badge(keyed, "n2", UID, actor=ADMIN)
    assert err.value.code == "BADGE_TAKEN"
    badges, users, journaled = everything(keyed)
    # Only the refusal is journaled (the admin learnt that this number is enrolled).
    assert (badges, users, journaled - 1) == before
    entry = keyed.store.journal_rows(kind="badge_taken")[-1]
    assert entry["user"] == "ad1" and json.loads(entry["detail"]) == {"id": "n2"}
    assert UID not in journal_text(keyed)


def test_a_new_badge_replaces_the_old_one_and_a_revoked_badge_opens_nothing(booted, keyed):
    _, loop = booted
    people.enrol_badge(keyed, "n1", UID, actor=ADMIN)
    assert people.enrol_badge(keyed, "n1", OTHER, actor=ADMIN) is True
    assert json.loads(keyed.store.journal_rows(kind="badge_enrolled")[-1]["detail"])[
        "replaced"] is True
    with pytest.raises(AuthError):
        loop.run_until_complete(keyed.identify_badge(UID))
    assert loop.run_until_complete(keyed.identify_badge(OTHER)).user.id == "n1"
    people.revoke_badge(keyed, "n1", actor=ADMIN)
    entry = keyed.store.journal_rows(kind="badge_revoked")[-1]
    assert entry["user"] == "ad1" and json.loads(entry["detail"]) == {"id": "n1"}
    with pytest.raises(AuthError):
        loop.run_until_complete(keyed.identify_badge(OTHER))
    with pytest.raises(RuleViolation) as err:
        people.revoke_badge(keyed, "n1", actor=ADMIN)
    assert err.value.code == "NO_BADGE"
    assert OTHER not in journal_text(keyed)


# -- identification at the lock screen ---------------------------------------------------

def test_a_badge_identifies_its_holder_and_the_pin_is_still_checked(booted, keyed):
    _, loop = booted
    people.enrol_badge(keyed, "n1", UID, actor=ADMIN)
    user = loop.run_until_complete(keyed.identify_badge(" " + UID.lower() + "\r")).user
    assert (user.id, user.name, user.role) == ("n1", "Nurse One", "nurse")
    assert keyed.session.state == "locked"  # identified, not logged in
    limit = keyed.settings.max_pin_failures
    for _ in range(limit - 1):
        with pytest.raises(AuthError):
            loop.run_until_complete(keyed.login("n1", "000001", by_badge=True))
    assert keyed.store.query("SELECT failed FROM users WHERE id='n1'")[0]["failed"] == limit - 1
    loop.run_until_complete(keyed.login("n1", PINS["n1"], by_badge=True))
    entry = keyed.store.journal_rows(kind="login")[-1]
    assert entry["user"] == "n1" and json.loads(entry["detail"]) == {"by": "badge"}


def test_wrong_pins_after_a_badge_lock_the_account_and_then_the_badge_too(booted, keyed):
    _, loop = booted
    people.enrol_badge(keyed, "n1", UID, actor=ADMIN)
    for _ in range(keyed.settings.max_pin_failures):
        with pytest.raises(AuthError):
            loop.run_until_complete(keyed.login("n1", "000001", by_badge=True))
    with pytest.raises(AuthError) as err:
        loop.run_until_complete(keyed.identify_badge(UID))
    assert err.value.code == "AUTH_LOCKED"
    assert keyed.store.journal_rows(kind="auth_failed")[-1]["user"] == "n1"


def test_an_unknown_badge_is_summed_up_in_the_journal_without_its_uid(booted, keyed):
    _, loop = booted
    before = len(keyed.store.journal_rows(kind="auth_failed"))
    for i in range(5):
        with pytest.raises(AuthError) as err:
            loop.run_until_complete(keyed.identify_badge(f"DEADBEEF{i:02d}"))
        assert err.value.code == "AUTH_FAILED"
        assert "badge" in err.value.message_en and "badge" in err.value.message_fr
    rows = keyed.store.journal_rows(kind="auth_failed")[before:]
    assert [json.loads(r["detail"]) for r in rows] == [{"reason": "unknown badge",
                                                         "attempts": 1}]
    loop.run_until_complete(keyed.shutdown())  # the held-back attempts are written
    rows = keyed.store.journal_rows(kind="auth_failed")[before:]
    assert [json.loads(r["detail"])["attempts"] for r in rows] == [1, 4]
    assert "DEADBEEF" not in journal_text(keyed)


def test_a_deactivated_person_s_badge_is_refused_like_her_id_and_freed(booted, keyed):
    _, loop = booted
    people.enrol_badge(keyed, "n1", UID, actor=ADMIN)
    people.deactivate_user(keyed, "n1", actor=PH)
    entry = keyed.store.journal_rows(kind="user_deactivated")[-1]
    assert json.loads(entry["detail"]) == {"id": "n1", "badge_revoked": True}
    with pytest.raises(AuthError) as err:
        loop.run_until_complete(keyed.identify_badge(UID))
    assert err.value.code == "AUTH_FAILED"
    people.enrol_badge(keyed, "n2", UID, actor=ADMIN)  # the card is free again


def test_garbage_at_the_lock_screen_changes_nothing(booted, keyed):
    _, loop = booted
    before = everything(keyed)
    with pytest.raises(InputError) as err:
        loop.run_until_complete(keyed.identify_badge("A" * 500))
    assert err.value.code == "BAD_BADGE"
    assert everything(keyed) == before


def test_without_a_key_badges_are_refused_clearly(booted, cab):
    _, loop = booted
    with pytest.raises(ConfigError) as err:
        loop.run_until_complete(cab.identify_badge(UID))
    assert err.value.code == "BADGE_KEY_MISSING"



# -- backup and restore ----------------------------------------------------------------

def test_a_restore_onto_a_new_pi_keeps_the_badges_working(tmp_path):
    """Old Pi: a badge enrolled, nightly backups (with the key beside them). New Pi: started
    once empty (it made its own key, and a nightly backup of its own went to the same
    folder) before IT restored the old backup: the old key comes back, found by its
    fingerprint, the new Pi's is set aside, and the badge still names its holder."""
    from datetime import UTC, datetime, timedelta

    from controller.backup import run_backup
    from controller.restore import restore

    backups = tmp_path / "backups"
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    cfg = demo_config(tmp_path)

    async def on(db, action):
        runtime = await start(cfg, sim=True, db_path=db)
        try:
            return await action(runtime)
        finally:
            await runtime.stop()

    async def enrol_it(runtime):
        people.console_badge(runtime.store, runtime.cabinet.badge_key, "ide1", UID)

    async def who(runtime):
        return (await runtime.cabinet.identify_badge(UID)).user.id

    asyncio.run(on(old / "armoire.db", enrol_it))
    t0 = datetime(2026, 12, 1, 2, tzinfo=UTC)
    run_backup(old / "armoire.db", backups, 30, now=t0)
    key_copy = backups / badge.BACKUP_KEY_NAME
    assert stat.S_IMODE(key_copy.stat().st_mode) == 0o600
    assert key_copy.read_bytes() == (old / "armoire.db.badge-key").read_bytes()
    asyncio.run(on(new / "armoire.db", lambda r: asyncio.sleep(0)))  # a key of its own
    run_backup(new / "armoire.db", backups, 30, now=t0 + timedelta(days=1))
    assert key_copy.read_bytes() == (new / "armoire.db.badge-key").read_bytes()
    assert len(list(backups.glob(badge.BACKUP_KEY_NAME + ".replaced-*"))) == 1

    done = restore(backups / "armoire-20261201T020000Z.db", new / "armoire.db")
    assert done.badge_key == new / "armoire.db.badge-key" and done.badges == 1
    assert done.badge_key_aside is not None and done.badge_key_aside.exists()
    assert (new / "armoire.db.badge-key").read_bytes() == (
        old / "armoire.db.badge-key").read_bytes()
    assert stat.S_IMODE((new / "armoire.db.badge-key").stat().st_mode) == 0o600
    assert asyncio.run(on(new / "armoire.db", who)) == "ide1"


class TwoPis:
    """The old Pi's backup (``ide1``'s badge ``UID`` under the old key, the key beside the
    backup) and the new Pi's database (``ide2``'s badge ``OTHER`` under a key of its own)."""

    def __init__(self, tmp_path):
        from datetime import UTC, datetime

        from controller.backup import run_backup

        self.cfg = demo_config(tmp_path)
        self.old, self.new = tmp_path / "old", tmp_path / "new"
        self.old.mkdir()
        self.new.mkdir()
        self.db = self.new / "armoire.db"
        self.key_file = self.new / "armoire.db.badge-key"
        self.on(self.old / "armoire.db", self.enrol("ide1", UID))
        self.backup = run_backup(self.old / "armoire.db", tmp_path / "backups", 30,
                                 now=datetime(2026, 12, 1, 2, tzinfo=UTC)).path
        self.on(self.db, self.enrol("ide2", OTHER))
        self.old_key = (self.old / "armoire.db.badge-key").read_bytes()
        self.new_key = self.key_file.read_bytes()

    def on(self, db, action):
        async def go():
            runtime = await start(self.cfg, sim=True, db_path=db)
            try:
                return await action(runtime)
            finally:
                await runtime.stop()
        return asyncio.run(go())

    @staticmethod
    def enrol(user, uid):
        async def it(runtime):
            people.console_badge(runtime.store, runtime.cabinet.badge_key, user, uid)
        return it

    def who(self, uid):
        async def it(runtime):
            return (await runtime.cabinet.identify_badge(uid)).user.id
        return self.on(self.db, it)

    def keys_aside(self):
        return sorted(p.read_bytes() for p in self.new.glob("armoire.db.badge-key.replaced-*"))


def test_a_restore_that_set_the_live_key_aside_is_undone_with_its_key(tmp_path, capsys):
    """The new Pi's own badges were enrolled under its own key before IT restored the old
    Pi's backup, which put the old key in place and set the new one aside. The restore's
    output names that key and the undo line puts it back with the database: typed as
    printed, the badges enrolled before the restore still log in, and the key the undo
    replaced is set aside in its turn (never deleted)."""
    import shlex

    from controller.cli import main

    pis = TwoPis(tmp_path)
    assert main(["restore", str(pis.backup), "--db", str(pis.db)]) == 0
    out = capsys.readouterr().out
    [key_aside] = pis.new.glob("armoire.db.badge-key.replaced-*")
    assert key_aside.read_bytes() == pis.new_key
    assert f"set aside / mis de côté: {key_aside}" in out, out
    # Every line in both languages, as the rest of the CLI, the paths whole and last.
    assert [line for line in out.splitlines() if " / " not in line] == [], out
    assert pis.who(UID) == "ide1"
    [undo] = [line for line in out.splitlines() if line.startswith("to undo: ")]
    command = shlex.split(undo.removeprefix("to undo: ").split(" / ", 1)[0])
    assert command[0] == "armoire" and str(key_aside) in command, undo
    assert "la clé" in undo, undo

    assert main(command[1:]) == 0
    out = capsys.readouterr().out
    assert "warning" not in out, out
    assert [line for line in out.splitlines() if " / " not in line] == [], out
    assert pis.key_file.read_bytes() == pis.new_key
    assert stat.S_IMODE(pis.key_file.stat().st_mode) == 0o600
    assert pis.who(OTHER) == "ide2"
    assert key_aside.read_bytes() == pis.new_key   # the file named in the undo is kept
    assert pis.keys_aside() == sorted([pis.new_key, pis.old_key])


def test_an_undo_in_the_same_second_keeps_both_keys(tmp_path):
    """A restore and its undo within one second: the key the undo replaces is set aside
    under a name of its own, not renamed over the key the restore set aside."""
    from datetime import UTC, datetime

    from controller.restore import restore

    pis = TwoPis(tmp_path)
    when = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
    first = restore(pis.backup, pis.db, now=when)
    assert first.badge_key_aside is not None and first.set_aside
    undo = restore(first.set_aside[-1], pis.db, now=when, with_key=first.badge_key_aside)
    assert undo.badge_key_aside not in (None, first.badge_key_aside)
    assert pis.key_file.read_bytes() == pis.new_key
    assert pis.keys_aside() == sorted([pis.new_key, pis.old_key])
    assert pis.who(OTHER) == "ide2"


def test_the_undo_of_a_restore_that_kept_the_key_keeps_it_without_a_warning(tmp_path,
                                                                             capsys):
    """Last night's backup put back on the same Pi keeps the live key (the same one): the
    undo reads a database set aside beside the live one, where no ``armoire-badge.key``
    lies, and warned of a key to put back that was in place all along."""
    import shlex

    from controller.cli import main

    pis = TwoPis(tmp_path)
    from controller.backup import run_backup

    backup = run_backup(pis.db, tmp_path / "backups", 30).path
    assert main(["restore", str(backup), "--db", str(pis.db)]) == 0
    out = capsys.readouterr().out
    assert pis.keys_aside() == [] and "--with-key" not in out, out
    [undo] = [line for line in out.splitlines() if line.startswith("to undo: ")]
    assert main(shlex.split(undo.removeprefix("to undo: ").split(" / ", 1)[0])[1:]) == 0
    out = capsys.readouterr().out
    assert "warning" not in out and f"badge key / clé des badges: {pis.key_file}" in out, out
    assert pis.key_file.read_bytes() == pis.new_key and pis.keys_aside() == []
    assert pis.who(OTHER) == "ide2"


@pytest.mark.parametrize("which", ["old", "missing"])
def test_a_key_given_with_the_undo_that_is_not_the_badges_is_refused_first(tmp_path, capsys,
                                                                            which):
    """``--with-key`` naming another key (here the old Pi's, not the set-aside database's),
    or no file: refused before anything moves, since put in place it would stop the next
    start (``BADGE_KEY_MISMATCH``) with the working key already set aside."""
    from controller.cli import main
    from controller.restore import restore

    pis = TwoPis(tmp_path)
    first = restore(pis.backup, pis.db)
    key = pis.old / "armoire.db.badge-key" if which == "old" else tmp_path / "nothing.key"

    def files():  # SQLite's own -wal/-shm of the set-aside file, opened to be checked, aside
        return sorted((p.name, p.read_bytes()) for p in pis.new.iterdir()
                      if not p.name.endswith((".lock", "-wal", "-shm")))

    before = files()
    assert main(["restore", str(first.set_aside[-1]), "--with-key", str(key),
                 "--db", str(pis.db)]) == 2
    err = capsys.readouterr().err
    code = "BADGE_KEY_MISMATCH" if which == "old" else "BADGE_KEY_MISSING"
    assert err.startswith(f"armoire: [{code}] --with-key: ") and " / " in err, err
    assert files() == before


def test_a_key_that_is_not_the_badges_one_stops_the_start(tmp_path):
    cfg = demo_config(tmp_path)
    db = tmp_path / "armoire.db"

    async def enrol_it():
        runtime = await start(cfg, sim=True, db_path=db)
        try:
            people.console_badge(runtime.store, runtime.cabinet.badge_key, "ide1", UID)
        finally:
            await runtime.stop()

    asyncio.run(enrol_it())
    key_file = tmp_path / "armoire.db.badge-key"
    key_file.unlink()
    badge.write_key(key_file, bytes(32))
    with pytest.raises(ConfigError) as err:
        asyncio.run(start(cfg, sim=True, db_path=db))
    assert err.value.code == "BADGE_KEY_MISMATCH"


def test_a_restore_of_a_backup_from_before_badges_keeps_the_key_and_drops_the_badges(
        tmp_path):
    """A backup made by a version without badges (schema 3: no table, no key fingerprint)
    restored onto a cabinet whose badges were enrolled since: the database comes back with
    no badge (each one is unknown, never another person's), the live key stays in place and
    is not set aside, the cabinet starts, and badges are enrolled again under that key."""
    import sqlite3
    from datetime import UTC, datetime

    from controller.backup import run_backup
    from controller.restore import restore

    cfg = demo_config(tmp_path)
    db, backups = tmp_path / "armoire.db", tmp_path / "backups"

    async def on(action):
        runtime = await start(cfg, sim=True, db_path=db)
        try:
            return await action(runtime)
        finally:
            await runtime.stop()

    asyncio.run(on(lambda r: asyncio.sleep(0)))
    old = run_backup(db, backups, 30, now=datetime(2026, 11, 1, 2, tzinfo=UTC)).path
    conn = sqlite3.connect(old)  # as the version before badges wrote it
    with conn:
        conn.execute("DROP TABLE badges")
        conn.execute("DELETE FROM meta WHERE key='badge_key_id'")
        conn.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    conn.close()
    for stale in backups.glob(badge.BACKUP_KEY_NAME + "*"):
        stale.unlink()  # that version kept no key beside its backups

    async def enrol_it(runtime):
        people.console_badge(runtime.store, runtime.cabinet.badge_key, "ide1", UID)

    asyncio.run(on(enrol_it))
    key_file = tmp_path / "armoire.db.badge-key"
    live_key = key_file.read_bytes()

    done = restore(old, db)
    assert (done.badges, done.badge_key, done.badge_key_aside) == (0, None, None)
    assert key_file.read_bytes() == live_key
    assert list(tmp_path.glob("armoire.db.badge-key.replaced-*")) == []

    async def after(runtime):
        with pytest.raises(AuthError) as err:
            await runtime.cabinet.identify_badge(UID)
        assert err.value.code == "AUTH_FAILED"
        people.console_badge(runtime.store, runtime.cabinet.badge_key, "ide1", UID)
        return (await runtime.cabinet.identify_badge(UID)).user.id

    assert asyncio.run(on(after)) == "ide1"


def test_two_backups_at_once_both_copy_the_key(tmp_path, monkeypatch):
    """The nightly timer and a backup run by hand, together: each copies the key under a
    name of its own before renaming it into place, so neither removes the other's copy
    while it is written (which failed the backup with BACKUP_KEY_FAILED, or could put a
    half-written file in place)."""
    live = tmp_path / "cab.db.badge-key"
    badge.write_key(live, KEY)
    dest = tmp_path / "backups"
    dest.mkdir()
    write = os.write
    started: list[bool] = []
    other: list[object] = []

    def interleaved(fd, data):
        if not started:  # the other backup runs while this one writes its copy
            started.append(True)
            other.append(badge.backup_key(live, dest, "20261203T020000Z"))
        return write(fd, data)

    monkeypatch.setattr(badge.os, "write", interleaved)
    mine = badge.backup_key(live, dest, "20261203T020001Z")
    assert mine == other[0] == dest / badge.BACKUP_KEY_NAME
    assert badge.read_key(dest / badge.BACKUP_KEY_NAME) == KEY
    assert sorted(p.name for p in dest.iterdir()) == [badge.BACKUP_KEY_NAME]


def test_a_badge_read_into_the_patient_field_is_refused_and_never_journaled(booted, keyed):
    """A nurse presenting her badge on the withdrawal screen types its UID wherever the
    focus is, often the patient field. With no patient id format set, or one the UID fits
    (a decimal reader's ten digits look like an IPP), the drug was filed under "patient
    04A1B2…", and the UID was in the append-only journal for good."""
    _, loop = booted
    people.enrol_badge(keyed, "n1", UID, actor=ADMIN)
    loop.run_until_complete(keyed.login("n2", PINS["n2"]))
    before = everything(keyed)
    for typed in (UID.lower(), f" {UID}\r"):
        with pytest.raises(InputError) as refused:
            loop.run_until_complete(keyed.withdraw("PARA500", 1, typed))
        assert refused.value.code == "BADGE_NOT_PATIENT"
        assert UID not in refused.value.message_en.upper()
    assert everything(keyed) == before
    assert keyed.session.state == "menu" and keyed.session.op is None
    assert UID not in journal_text(keyed).upper()
    # a patient id that is no badge still goes on to the usual checks
    with pytest.raises(ArmoireError) as other:
        loop.run_until_complete(keyed.withdraw("PARA500", 1, OTHER))
    assert other.value.code == "NO_STOCK"


# -- a badge among other words ---------------------------------------------------------

@pytest.mark.parametrize("typed", [
    f"Dupont {UID}",                 # the name typed, then the badge
    f"Dupont {UID.lower()}",         # a reader that types lower case
    f"done\n{UID}\r\n",              # a note: a line, then the badge and its Enter
    f"lot:{UID},",                   # punctuation on both sides
    f"Dupont-{UID}",                 # joined by a hyphen
    f"({UID}) vu",
    f"« {UID} »",
    f"04:A1:B2 {OTHER}",             # another enrolled badge, after colon-separated text
])
def test_an_enrolled_uid_among_other_words_is_found(keyed, typed):
    """The reader types where the focus is, after whatever the field already held: the
    whole field is not the UID, but one of its words is."""
    people.enrol_badge(keyed, "n1", UID, actor=ADMIN)
    people.enrol_badge(keyed, "n2", OTHER, actor=ADMIN)
    assert list(keyed.badge_fields([("lot", "LOT2024A"), ("note", typed)])) == ["note"]


def test_a_colon_separated_uid_is_found_among_other_words(keyed):
    people.enrol_badge(keyed, "n1", "04:A1:B2:C3", actor=ADMIN)
    assert list(keyed.badge_fields([("note", "badge 04:a1:b2:c3 lu")])) == ["note"]


@pytest.mark.parametrize("typed", [
    "LOT2024A 04A1B2C3D4E581",       # a number one digit away from the badge
    f"{UID}0 lot",                   # the badge's digits inside a longer number
    f"x{UID}",                       # glued to a word: not a word of its own
    "IPP 1234567890, lot 04A1B2C3",  # ordinary long numbers
    "recounted, 3 missing",
])
def test_text_without_an_enrolled_uid_goes_through(keyed, typed):
    """Only an enrolled badge's exact UID, as a word of its own, is refused: lot numbers,
    patient ids and notes with long numbers are what the cabinet is for."""
    people.enrol_badge(keyed, "n1", UID, actor=ADMIN)
    assert not keyed.badge_fields([("note", typed)])
