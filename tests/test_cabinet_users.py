"""Cabinet methods added for the screens: users, formulary, pharmacy logins."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading

import pytest
from helpers import PINS, SPEC, START, config

from controller import people
from controller.alarms import Where
from controller.auth import UNKNOWN_USER_JOURNAL_S, User
from controller.cabinet import Cabinet
from controller.errors import AuthError, InputError, NotFound, PermissionDenied, RuleViolation
from sim.harness import SimCabinet


@pytest.fixture
def booted(tmp_path):
    """The cabinet and the loop it runs on (coroutines must run there)."""
    sim = SimCabinet(config(), tmp_path / "c.db", start=START)
    loop = asyncio.new_event_loop()
    cabinet = loop.run_until_complete(sim.boot(SPEC))
    yield cabinet, loop
    loop.run_until_complete(sim.shutdown())
    loop.close()


@pytest.fixture
def cab(booted):
    return booted[0]


@pytest.fixture
def create(booted):
    """people.create_user on the cabinet's loop (it hashes the PIN off the loop)."""
    cabinet, loop = booted

    def make(*args, **kwargs):
        return loop.run_until_complete(people.create_user(cabinet, *args, **kwargs))
    return make


PH = User("ph1", "Pharma One", "pharmacist", "fr")
NURSE = User("n1", "Nurse One", "nurse", "fr")
ADMIN = User("ad1", "Admin One", "admin", "en")


def test_create_user_hashes_the_pin_and_journals_without_it(cab, create):
    create("n9", "Nurse Nine", "nurse", "583920", "en", actor=PH)
    row = cab.store.query("SELECT * FROM users WHERE id='n9'")[0]
    assert row["pin_hash"].startswith("$argon2id$") and "583920" not in row["pin_hash"]
    assert cab.authenticate("n9", "583920").lang == "en"
    entries = cab.store.journal_rows(kind="user_created")
    assert entries[-1]["user"] == "ph1" and "583920" not in (entries[-1]["detail"] or "")


@pytest.mark.parametrize(("args", "code"), [
    (("n1", "Dup", "nurse", "583920"), "USER_EXISTS"),
    (("x", "Short", "nurse", "583920"), "BAD_USER_ID"),
    (("..", "Dots", "nurse", "583920"), "BAD_USER_ID"),
    ((".n9", "Dot", "nurse", "583920"), "BAD_USER_ID"),
    (("n9-", "Dash", "nurse", "583920"), "BAD_USER_ID"),
    (("../n9", "Path", "nurse", "583920"), "BAD_USER_ID"),
    (("n\x07x9", "Bell", "nurse", "583920"), "BAD_USER_ID"),
    (("n9 x", "Space", "nurse", "583920"), "BAD_USER_ID"),
    (("n9", "", "nurse", "583920"), "BAD_NAME"),
    (("n9", "N", "chief", "583920"), "BAD_ROLE"),
    (("n9", "N", "nurse", "123"), "BAD_PIN_FORMAT"),
])
def test_create_user_refuses_bad_input(cab, create, args, code):
    with pytest.raises((InputError, RuleViolation)) as exc:
        create(*args, actor=PH)
    assert exc.value.code == code


def test_only_user_managers_create_or_deactivate(cab, create):
    with pytest.raises(PermissionDenied):
        create("n9", "N", "nurse", "583920", actor=NURSE)
    with pytest.raises(PermissionDenied):
        create("ad9", "A", "admin", "583920", actor=PH)
    create("ad9", "A", "admin", "583920", actor=ADMIN)
    with pytest.raises(PermissionDenied):
        people.deactivate_user(cab, "ad9", actor=PH)
    with pytest.raises(RuleViolation):
        people.deactivate_user(cab, "ph1", actor=PH)


def test_deactivated_user_cannot_log_in(cab):
    people.deactivate_user(cab, "n2", actor=PH)
    with pytest.raises(Exception, match="wrong user or PIN"):
        cab.authenticate("n2", PINS["n2"])
    assert cab.store.journal_rows(kind="user_deactivated")[-1]["user"] == "ph1"
    assert {u["id"]: u["active"] for u in people.users(cab)}["n2"] == 0


def test_pharmacy_login_is_for_pharmacists_and_admins(booted):
    cab, loop = booted

    def run(_, coro):
        return loop.run_until_complete(coro)

    assert run(cab, cab.pharmacy_login("ph1", PINS["ph1"])).role == "pharmacist"
    assert cab.store.journal_rows(kind="login")[-1]["code"] == "PHARMACY"
    with pytest.raises(PermissionDenied):
        run(cab, cab.pharmacy_login("t1", PINS["t1"]))
    assert cab.session.state == "locked"


def test_actor_acts_without_the_touchscreen_session(cab):
    alarm = cab.alarms.raise_("discrepancy", Where("PARA500", "A", 0, 0), "test")
    with pytest.raises(PermissionDenied):
        cab.resolve_alarm(alarm, "no", actor=NURSE)
    cab.resolve_alarm(alarm, "counted", actor=PH)
    assert cab.alarms.get(alarm)["state"] == "resolved"


def test_formulary_lists_placed_drugs_with_usable_units(cab):
    drugs = {d["id"]: d for d in cab.formulary()}
    assert set(drugs) == {"PARA500", "MORPH10", "HYDROX25"}
    assert drugs["PARA500"]["usable"] == 0 and drugs["MORPH10"]["controlled"] == 1


def _lock_out(cab, user_id):
    for _ in range(cab.settings.max_pin_failures):
        with pytest.raises(AuthError):
            cab.authenticate(user_id, "000001")


def test_each_locked_user_has_her_own_lockout_alarm_and_unlock_closes_only_hers(cab, create):
    # "n1" is a prefix of "n10": the alarm must be matched on the exact user id.
    create("n10", "Nurse Ten", "nurse", "583920", actor=PH)
    _lock_out(cab, "n10")
    _lock_out(cab, "n1")
    lockouts = {a["user"]: a for a in cab.alarms.list() if a["kind"] == "auth_lockout"}
    assert set(lockouts) == {"n1", "n10"}
    assert "n1 locked" in lockouts["n1"]["message"]
    raised = [r for r in cab.store.journal_rows(kind="alarm_raised")
              if r["code"] == "auth_lockout"]
    assert [r["user"] for r in raised] == ["n10", "n1"]

    people.unlock_user(cab, "n1", actor=PH)
    left = [a for a in cab.alarms.list() if a["kind"] == "auth_lockout"]
    assert [a["user"] for a in left] == ["n10"]
    assert cab.alarms.get(lockouts["n1"]["id"])["state"] == "resolved"
    locked = {u["id"]: u["locked"] for u in people.users(cab)}
    assert locked["n10"] == 1 and locked["n1"] == 0

    people.unlock_user(cab, "n10", actor=PH)
    assert not [a for a in cab.alarms.list() if a["kind"] == "auth_lockout"]


def test_only_an_admin_unlocks_an_admin(cab, create):
    """An admin's lockout stops whoever is guessing the PIN of the account that makes
    admins: a pharmacist lifting it would give them more guesses."""
    create("ad2", "Admin Two", "admin", "583920", actor=ADMIN)
    _lock_out(cab, "ad2")
    head = cab.store.head()
    with pytest.raises(PermissionDenied) as refused:
        people.unlock_user(cab, "ad2", actor=PH)
    assert refused.value.code == "FORBIDDEN"
    assert cab.store.head() == head
    assert {u["id"]: u["locked"] for u in people.users(cab)}["ad2"] == 1
    assert [a["user"] for a in cab.alarms.list() if a["kind"] == "auth_lockout"] == ["ad2"]
    people.unlock_user(cab, "ad2", actor=ADMIN)
    assert {u["id"]: u["locked"] for u in people.users(cab)}["ad2"] == 0
    assert cab.authenticate("ad2", "583920").role == "admin"


def test_the_guide_says_who_unlocks_an_admin():
    """docs/core.md still said any pharmacist unlocks a locked account, an admin's too."""
    from pathlib import Path

    core = (Path(__file__).parents[1] / "docs" / "core.md").read_text()
    rule = core[core.index("Five wrong PINs lock the account"):].split("\n\n")[0]
    assert "an admin only" in rule


def test_a_version_1_database_gets_the_alarm_user_column(tmp_path):
    from controller.store import SCHEMA_VERSION, JournalEntry, Store

    path = tmp_path / "old.db"
    store = Store(path)
    # Make it what a version-1 cabinet left: no alarms.user, one open lockout alarm.
    with store.transaction() as c:
        c.execute("ALTER TABLE alarms DROP COLUMN user")
        c.execute("ALTER TABLE users DROP COLUMN must_change_pin")
        c.execute("ALTER TABLE drugs DROP COLUMN max_per_withdrawal")
        c.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
        c.execute("""INSERT INTO alarms (kind, state, message, opened_ts, updated_ts)
                     VALUES ('auth_lockout', 'open', 'user n1 locked after 5 wrong PINs',
                     'x', 'x')""")
        store.append(JournalEntry("alarm_raised", user="n1", code="auth_lockout",
                                  detail={"alarm": 1, "message": "user n1 locked"}))
    store.close()
    store = Store(path)
    assert store.meta("schema_version") == str(SCHEMA_VERSION) == "4"
    assert store.query("SELECT user FROM alarms")[0]["user"] == "n1"
    assert store.query("SELECT must_change_pin FROM users") == []
    from controller.journal import verify
    assert verify(store.conn).ok
    store.close()


def test_pin_checks_run_in_a_worker_thread_and_leave_the_loop_free(booted, monkeypatch):
    """argon2 costs tens of milliseconds a check on a Pi: the loop that drives the drawers
    must keep running meanwhile. The check below can only finish if the loop runs a task
    while the hash is being checked, which it cannot do when the check blocks the loop."""
    cab, loop = booted
    # The simulator hashes on the loop (its clock is virtual); a real cabinet does not.
    assert inspect.signature(Cabinet).parameters["offload"].default is asyncio.to_thread
    monkeypatch.setattr(cab, "offload", asyncio.to_thread)
    real_verify = cab.hasher.verify
    loop_ran = threading.Event()
    seen: list[tuple[bool, bool]] = []

    def verify(pin_hash, pin):
        on_loop_thread = threading.current_thread() is threading.main_thread()
        seen.append((on_loop_thread, loop_ran.wait(10)))
        return real_verify(pin_hash, pin)

    monkeypatch.setattr(cab.hasher, "verify", verify)

    async def scenario():
        async def other_work():
            loop_ran.set()

        check = asyncio.ensure_future(cab.authenticate_async("n1", PINS["n1"]))
        await asyncio.sleep(0)
        other = asyncio.ensure_future(other_work())
        user = await check
        await other
        return user

    assert loop.run_until_complete(scenario()).id == "n1"
    assert seen == [(False, True)]


def test_concurrent_wrong_pins_for_one_person_all_count(booted):
    cab, loop = booted
    limit = cab.settings.max_pin_failures

    async def attempts():
        return await asyncio.gather(*(cab.authenticate_async("n1", "000001")
                                      for _ in range(limit + 3)), return_exceptions=True)

    results = loop.run_until_complete(attempts())
    codes = [r.code for r in results]
    assert codes == ["AUTH_FAILED"] * (limit - 1) + ["AUTH_LOCKED"] * 4
    row = cab.store.query("SELECT failed, locked FROM users WHERE id='n1'")[0]
    assert (row["failed"], row["locked"]) == (limit, 1)
    counted = [r for r in cab.store.journal_rows(kind="auth_failed") if r["code"] == "AUTH_FAILED"]
    assert [json.loads(r["detail"])["failures"] for r in counted] == list(range(1, limit + 1))
    assert len([a for a in cab.alarms.list() if a["kind"] == "auth_lockout"]) == 1
    # Locked: even the right PIN is refused now, and no hash is checked for it.
    with pytest.raises(AuthError, match="locked"):
        loop.run_until_complete(cab.authenticate_async("n1", PINS["n1"]))


def test_unknown_ids_do_not_grow_the_journal_but_real_failures_do(booted, monkeypatch):
    cab, loop = booted
    before = len(cab.store.journal_rows(kind="auth_failed"))
    for i in range(30):
        with pytest.raises(AuthError, match="wrong user or PIN"):
            loop.run_until_complete(cab.authenticate_async(f"nobody{i}", "000001"))
    rows = cab.store.journal_rows(kind="auth_failed")[before:]
    assert len(rows) == 1 and json.loads(rows[0]["detail"]) == {
        "reason": "unknown user", "attempts": 1}
    # Later (the summary interval has passed): one row sums up the attempts since.
    later = cab.clock.monotonic() + 61
    monkeypatch.setattr(cab.clock, "monotonic", lambda: later)
    with pytest.raises(AuthError):
        loop.run_until_complete(cab.authenticate_async("nobody", "000001"))
    rows = cab.store.journal_rows(kind="auth_failed")[before:]
    assert len(rows) == 2 and json.loads(rows[1]["detail"])["attempts"] == 30
    # A real person's wrong PIN is still journaled at every attempt (lockout, audit).
    with pytest.raises(AuthError):
        loop.run_until_complete(cab.authenticate_async("n2", "000001"))
    assert cab.store.journal_rows(kind="auth_failed")[-1]["user"] == "n2"


def test_a_burst_of_unknown_ids_is_journaled_when_its_minute_is_over(booted):
    """The summary row of unknown-id failures is written when its interval ends, not at
    the next failure (hours later, or never): the journal must say that someone was
    guessing, and when. What is still pending at shutdown is written then."""
    cab, loop = booted
    clock = cab.clock
    before = len(cab.store.journal_rows(kind="auth_failed"))
    for i in range(12):
        with pytest.raises(AuthError):
            loop.run_until_complete(cab.authenticate_async(f"nobody{i}", "000001"))
    assert len(cab.store.journal_rows(kind="auth_failed")) == before + 1
    clock.advance(UNKNOWN_USER_JOURNAL_S + 1)
    loop.run_until_complete(asyncio.sleep(0.05))    # the timer hands the write to the loop
    rows = cab.store.journal_rows(kind="auth_failed")[before:]
    assert [json.loads(r["detail"])["attempts"] for r in rows] == [1, 11]
    # Nothing pending: no empty row.
    clock.advance(UNKNOWN_USER_JOURNAL_S + 1)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert len(cab.store.journal_rows(kind="auth_failed")) == before + 2
    # Guesses left pending when the controller stops are not lost either.
    for i in range(3):
        with pytest.raises(AuthError):
            loop.run_until_complete(cab.authenticate_async(f"x{i}", "000001"))
    loop.run_until_complete(cab.shutdown())
    rows = cab.store.journal_rows(kind="auth_failed")[before:]
    assert [json.loads(r["detail"])["attempts"] for r in rows] == [1, 11, 1, 2]


@pytest.mark.parametrize("bad", ["..", "../etc", "a/b", "a\\b", "n9\n", "n\x00x", "n9 ", "-x"])
def test_provisioning_refuses_a_bad_user_id_and_writes_nothing(bad):
    from controller.auth import PinHasher
    from controller.provision import apply_users
    from controller.store import Store

    store = Store(":memory:")
    users = [{"id": "n9", "name": "N", "role": "nurse", "pin": "583920"},
             {"id": bad, "name": "Bad", "role": "nurse", "pin": "583920"}]
    with pytest.raises(InputError) as exc:
        apply_users(store, users, PinHasher(1, 8))
    assert exc.value.code == "BAD_USER_ID" and "users[1]" in exc.value.message_en
    assert store.query("SELECT id FROM users") == []


def test_seeded_people_must_change_their_pins_on_a_real_cabinet(tmp_path):
    """A seed file's PINs were written by whoever set the cabinet up: on a real cabinet
    each person must choose her own before acting; the simulator's demo people need not."""
    from web_helpers import demo_config

    from controller.runtime import provision_or_check
    from controller.store import Store

    config = demo_config(tmp_path)
    real = Store(str(tmp_path / "real.db"))
    provision_or_check(real, config)
    flags = {r["id"]: r["must_change_pin"] for r in real.query(
        "SELECT id, must_change_pin FROM users")}
    assert "ide1" in flags and set(flags.values()) == {1}, flags
    demo = Store(str(tmp_path / "demo.db"))
    provision_or_check(demo, config, pins_to_change=False)
    assert {r["must_change_pin"] for r in demo.query("SELECT must_change_pin FROM users")} == {0}


@pytest.fixture
def reactivate(booted):
    """people.reactivate_user on the cabinet's loop (it hashes the new PIN off the loop)."""
    cabinet, loop = booted
    return lambda *a, **kw: loop.run_until_complete(people.reactivate_user(cabinet, *a, **kw))


def test_a_nurse_back_from_leave_gets_her_account_back_with_a_pin_to_change(cab, reactivate):
    """A deactivated account came back from no page: a nurse back from months of leave
    needed a new id, and the journal named her by two. Reactivated, she is the same id,
    but her old PIN (unused for months, perhaps known to others) no longer opens it: she
    logs in with the temporary one and must choose her own. Her badge is not given back."""
    cab.store.conn.execute("INSERT INTO badges (user, hash, enrolled_ts, enrolled_by) "
                           "VALUES ('n2', 'h', '2025-01-01T00:00:00Z', 'ad1')")
    people.deactivate_user(cab, "n2", actor=PH)
    reactivate("n2", "583920", actor=PH)
    row = cab.store.query("SELECT active, must_change_pin, locked FROM users WHERE id='n2'")[0]
    assert (row["active"], row["must_change_pin"], row["locked"]) == (1, 1, 0)
    with pytest.raises(AuthError):
        cab.authenticate("n2", PINS["n2"])
    assert cab.authenticate("n2", "583920").id == "n2"
    assert not cab.store.query("SELECT 1 FROM badges WHERE user='n2'")
    back = cab.store.journal_rows(kind="user_reactivated")
    assert [(r["user"], json.loads(r["detail"])) for r in back] == [("ph1", {"id": "n2"})]
    reset = cab.store.journal_rows(kind="pin_reset")[-1]
    assert reset["seq"] == back[0]["seq"] + 1 and json.loads(reset["detail"]) == {"id": "n2"}
    assert "583920" not in json.dumps([dict(r) for r in cab.store.journal_rows()])


@pytest.mark.parametrize(("who", "pin", "by", "error", "code"), [
    ("n1", "583920", PH, RuleViolation, "USER_ACTIVE"),
    ("nobody", "583920", PH, NotFound, "UNKNOWN_USER"),
    ("n2", "583920", NURSE, PermissionDenied, "FORBIDDEN"),
    ("ad2", "583920", PH, PermissionDenied, "FORBIDDEN"),
    ("n2", "123", PH, InputError, "BAD_PIN_FORMAT"),
    ("n2", "111111", PH, InputError, "WEAK_PIN"),
])
def test_a_reactivation_refused_changes_nothing(cab, create, reactivate, who, pin, by, error,
                                               code):
    """Whoever may deactivate may reactivate (manage_users), an admin's account by an admin
    only, and only with a temporary PIN that passes the rules."""
    create("ad2", "Admin Two", "admin", "583920", actor=ADMIN)
    people.deactivate_user(cab, "n2", actor=PH)
    people.deactivate_user(cab, "ad2", actor=ADMIN)
    head = cab.store.head()
    before = cab.store.query("SELECT * FROM users ORDER BY id")
    with pytest.raises(error) as refused:
        reactivate(who, pin, actor=by)
    assert refused.value.code == code
    assert cab.store.head() == head
    assert cab.store.query("SELECT * FROM users ORDER BY id") == before


def test_an_admin_reactivates_an_admin(cab, create, reactivate):
    create("ad2", "Admin Two", "admin", "583920", actor=ADMIN)
    people.deactivate_user(cab, "ad2", actor=ADMIN)
    reactivate("ad2", "604829", actor=ADMIN)
    assert cab.authenticate("ad2", "604829").role == "admin"
