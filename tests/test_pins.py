"""PINs only their owner knows (controller.people): a PIN someone else chose must be changed
before anything is done under it; changing one's own asks for the current one; a reset
unlocks, ends the person's session, and is journaled without any PIN."""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import PINS, SPEC, START, config

from controller import people
from controller.auth import User
from controller.errors import ArmoireError, AuthError
from controller.journal import verify
from sim.harness import SimCabinet

PH = User("ph1", "Pharma One", "pharmacist", "fr")
ADMIN = User("ad1", "Admin One", "admin", "en")
NEW_PIN = "736251"


@pytest.fixture
def sim(tmp_path):
    sim = SimCabinet(config(), tmp_path / "p.db", start=START)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(sim.boot(SPEC))
    sim.loop = loop  # type: ignore[attr-defined]
    yield sim
    loop.run_until_complete(sim.shutdown())
    loop.close()


def run(sim, coro):
    return sim.loop.run_until_complete(sim.run(coro))


def code_of(sim, coro):
    with pytest.raises(ArmoireError) as info:
        run(sim, coro)
    assert info.value.message_fr and info.value.message_en
    return info.value.code


def everything_written(sim):
    return json.dumps(sim.store.journal_rows()) + json.dumps(sim.store.query(
        "SELECT * FROM alarms"))


def test_a_new_person_sets_her_own_pin_before_anything_else(sim):
    cab = sim.cab
    run(sim, people.create_user(cab, "n9", "Nurse Nine", "nurse", "583920", actor=PH))
    assert cab.pin_change_required("n9")
    user = run(sim, cab.login("n9", "583920"))
    # Logged in, but nothing is done under a PIN the pharmacist knows, whoever calls.
    assert code_of(sim, cab.withdraw("PARA500", 1, "P1")) == "PIN_CHANGE_REQUIRED"
    with pytest.raises(AuthError) as info:
        cab.acknowledge_alarm(1, actor=user)
    assert info.value.code == "PIN_CHANGE_REQUIRED"
    # Refusals change nothing: a weak or unchanged PIN is refused before any hash.
    head = sim.store.head()
    assert code_of(sim, people.change_own_pin(cab, "583920", "111111")) == "WEAK_PIN"
    assert code_of(sim, people.change_own_pin(cab, "583920", "12ab56")) == "BAD_PIN_FORMAT"
    assert code_of(sim, people.change_own_pin(cab, "583920", "583920")) == "PIN_UNCHANGED"
    assert sim.store.head() == head
    # A wrong current PIN counts like a wrong login.
    assert code_of(sim, people.change_own_pin(cab, "000001", NEW_PIN)) == "AUTH_FAILED"
    assert {u["id"]: u["failed"] for u in people.users(cab)}["n9"] == 1
    assert cab.pin_change_required("n9")
    run(sim, people.change_own_pin(cab, "583920", NEW_PIN))
    assert not cab.pin_change_required("n9")
    assert {u["id"]: u["failed"] for u in people.users(cab)}["n9"] == 0
    [row] = sim.store.journal_rows(kind="pin_changed")
    assert row["user"] == "n9"
    # Now the cabinet serves her; the old PIN is gone, and no PIN was written anywhere.
    assert code_of(sim, cab.withdraw("PARA500", 1, "P1")) == "NO_STOCK"
    run(sim, cab.logout())
    assert code_of(sim, cab.login("n9", "583920")) == "AUTH_FAILED"
    run(sim, cab.login("n9", NEW_PIN))
    written = everything_written(sim)
    assert "583920" not in written and NEW_PIN not in written
    assert verify(sim.store.conn).ok


def test_wrong_current_pins_lock_the_account_as_logins_do(sim):
    cab = sim.cab
    run(sim, cab.login("n1", PINS["n1"]))
    codes = [code_of(sim, people.change_own_pin(cab, f"00000{i}", NEW_PIN))
             for i in range(1, cab.settings.max_pin_failures + 1)]
    assert codes[-1] == "AUTH_LOCKED" and set(codes[:-1]) == {"AUTH_FAILED"}
    assert any(a["kind"] == "auth_lockout" and a["user"] == "n1" for a in cab.alarms.list())
    # Whoever typed them is no longer in the account: its session at the cabinet ends.
    sim.loop.run_until_complete(sim.settle(lambda: cab.session.state == "locked"))
    assert cab.session.state == "locked"
    assert sim.store.journal_rows(kind="logout")[-1]["code"] == "LOCKED"
    assert code_of(sim, people.change_own_pin(cab, PINS["n1"], NEW_PIN)) == "NOT_LOGGED_IN"
    assert code_of(sim, cab.login("n1", PINS["n1"])) == "AUTH_LOCKED"


def test_a_pharmacist_resets_a_forgotten_pin_which_unlocks_and_must_be_changed(sim):
    cab = sim.cab
    for i in range(cab.settings.max_pin_failures):
        with pytest.raises(AuthError):
            cab.authenticate("n2", f"00000{i + 1}")
    assert any(a["kind"] == "auth_lockout" for a in cab.alarms.list())
    nurse = cab.authenticate("n1", PINS["n1"])
    head = sim.store.head()
    assert code_of(sim, people.reset_pin(cab, "n2", "482611", actor=nurse)) == "FORBIDDEN"
    assert code_of(sim, people.reset_pin(cab, "ph1", "482611", actor=PH)) == "OWN_PIN"
    assert code_of(sim, people.reset_pin(cab, "ad1", "482611", actor=PH)) == "FORBIDDEN"
    assert code_of(sim, people.reset_pin(cab, "n2", "222222", actor=PH)) == "WEAK_PIN"
    assert code_of(sim, people.reset_pin(cab, "ghost", "482611", actor=PH)) == "UNKNOWN_USER"
    assert sim.store.head() == head
    run(sim, people.reset_pin(cab, "n2", "482611", actor=PH))
    assert not [a for a in cab.alarms.list() if a["kind"] == "auth_lockout"]
    users = {u["id"]: u for u in people.users(cab)}
    assert (users["n2"]["locked"], users["n2"]["failed"]) == (0, 0)
    assert cab.pin_change_required("n2")
    [row] = sim.store.journal_rows(kind="pin_reset")
    assert (row["user"], json.loads(row["detail"])) == ("ph1", {"id": "n2"})
    run(sim, cab.login("n2", "482611"))
    assert code_of(sim, cab.withdraw("PARA500", 1, "P1")) == "PIN_CHANGE_REQUIRED"
    run(sim, people.change_own_pin(cab, "482611", NEW_PIN))
    assert "482611" not in everything_written(sim)
    # An admin may reset an admin's PIN (not her own).
    other = User("ad2", "Admin Two", "admin", "fr")
    run(sim, people.create_user(cab, "ad2", "Admin Two", "admin", "590317", actor=ADMIN))
    with pytest.raises(AuthError):  # her first PIN is not hers: she acts only once changed
        run(sim, people.reset_pin(cab, "ad1", "482611", actor=other))
    run(sim, people.reset_pin(cab, "ad2", "482611", actor=ADMIN))


def test_a_reset_ends_the_person_s_session_at_the_cabinet(sim):
    cab = sim.cab
    run(sim, cab.login("n1", PINS["n1"]))
    run(sim, people.reset_pin(cab, "n1", "482611", actor=PH))
    sim.loop.run_until_complete(sim.settle(lambda: cab.session.state == "locked"))
    assert cab.session.state == "locked"
    assert sim.store.journal_rows(kind="logout")[-1]["code"] == "PIN_RESET"


def test_people_of_a_version_2_database_keep_their_pins(tmp_path):
    from controller.store import Store

    path = tmp_path / "v2.db"
    store = Store(path)
    with store.transaction() as c:
        c.execute("ALTER TABLE users DROP COLUMN must_change_pin")
        c.execute("ALTER TABLE drugs DROP COLUMN max_per_withdrawal")
        c.execute("INSERT INTO drugs (id, name) VALUES ('D1', 'd')")
        c.execute("INSERT INTO users (id, name, role, pin_hash) VALUES ('n1', 'N', 'nurse', "
                  "'x')")
        c.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    store.close()
    store = Store(path)
    try:
        assert store.meta("schema_version") == "4"
        assert store.query("SELECT id, must_change_pin FROM users") == [
            {"id": "n1", "must_change_pin": 0}]
        assert store.query("SELECT id, max_per_withdrawal FROM drugs") == [
            {"id": "D1", "max_per_withdrawal": None}]
    finally:
        store.close()


def test_a_witness_whose_pin_someone_else_chose_cannot_witness(sim):
    cab = sim.cab
    run(sim, people.reset_pin(cab, "n2", "482611", actor=PH))
    run(sim, cab.login("n1", PINS["n1"]))
    head = sim.store.head()
    assert code_of(sim, cab.waste("MORPH10", 1, witness="n2", witness_pin="482611")) == (
        "WITNESS_PIN_CHANGE_REQUIRED")
    assert sim.store.head() == head and cab.session.op is None


def test_a_reset_made_while_the_new_pin_is_hashed_wins(sim, monkeypatch):
    cab = sim.cab
    run(sim, cab.login("n1", PINS["n1"]))
    real_hash = cab.hash_pin
    calls = []

    async def slow_hash(pin):
        calls.append(pin)
        if len(calls) == 1:  # the change's hash: a reset lands meanwhile
            await people.reset_pin(cab, "n1", "482611", actor=PH)
        return await real_hash(pin)

    monkeypatch.setattr(cab, "hash_pin", slow_hash)
    assert code_of(sim, people.change_own_pin(cab, PINS["n1"], NEW_PIN)) == (
        "PIN_CHANGED_MEANWHILE")
    monkeypatch.undo()
    assert cab.pin_change_required("n1")
    assert cab.authenticate("n1", "482611").id == "n1"
    assert [r["kind"] for r in sim.store.journal_rows() if r["kind"].startswith("pin_")] == [
        "pin_reset"]


def test_tools_too_refuse_a_drawer_reset_under_someone_else_s_pin(sim):
    cab = sim.cab
    run(sim, people.create_user(cab, "t9", "Tech Nine", "technician", "583920", actor=PH))
    run(sim, cab.login("t9", "583920"))
    assert code_of(sim, cab.reset_drawer("A")) == "PIN_CHANGE_REQUIRED"
