"""PINs through the pages: a new person is sent to choose her own PIN and can do nothing
else until she has; a pharmacist resets a forgotten one; no PIN is ever shown or kept."""

from __future__ import annotations

import json

import pytest
from test_web import login, page_csrf, ph_login, running_web
from web_helpers import PINS

NEW = "736251"


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def test_a_new_nurse_chooses_her_own_pin_at_the_touchscreen_first(web):
    ph = web.client()
    token = ph_login(ph)
    r = ph.post("/pharmacy/users", data={"csrf": token, "id": "ide9", "name": "Nouvelle IDE",
                                         "role": "nurse", "lang": "fr", "pin": "583920"})
    assert r.status_code == 303
    assert 'id="pin-pending-ide9"' in ph.get("/pharmacy/users").text

    kiosk = web.client(host="127.0.0.1")
    token = page_csrf(kiosk)
    r = kiosk.post("/login", data={"csrf": token, "user_id": "ide9", "pin": "583920"})
    assert r.status_code == 303
    # Every page sends her to choose her PIN; every action is refused until then.
    for path in ("/menu", "/withdraw", "/count", "/restock"):
        r = kiosk.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/pin", path
    page = kiosk.get("/pin").text
    assert 'id="pin-required"' in page and 'data-dots-for="confirm_pin"' in page
    token = page_csrf(kiosk, "/pin")
    r = kiosk.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                      "patient": "P1"})
    assert r.status_code == 403 and "PIN_CHANGE_REQUIRED" in r.text
    head = web.runtime.store.head()
    for data, code in (({"current_pin": "583920", "new_pin": NEW, "confirm_pin": "736252"},
                        "PIN_MISMATCH"),
                       ({"current_pin": "583920", "new_pin": "123456", "confirm_pin": "123456"},
                        "WEAK_PIN")):
        r = kiosk.post("/pin", data={"csrf": token, **data})
        assert r.status_code == 303 and r.headers["location"] == "/pin"
        page = kiosk.get("/pin").text
        assert f"[{code}]" in page and NEW not in page and "583920" not in page
    assert web.runtime.store.head() == head
    r = kiosk.post("/pin", data={"csrf": token, "current_pin": "583921", "new_pin": NEW,
                                 "confirm_pin": NEW})
    assert "[AUTH_FAILED]" in kiosk.get("/pin").text
    r = kiosk.post("/pin", data={"csrf": token, "current_pin": "583920", "new_pin": NEW,
                                 "confirm_pin": NEW})
    assert r.status_code == 303 and r.headers["location"] == "/menu"
    menu = kiosk.get("/menu")
    assert menu.status_code == 200 and "Votre code PIN est changé" in menu.text
    assert 'id="go-pin"' in menu.text and 'id="pin-required"' not in kiosk.get("/pin").text
    rows = json.dumps(web.runtime.store.journal_rows())
    assert "pin_changed" in rows and NEW not in rows and "583920" not in rows


def test_a_pharmacist_resets_a_forgotten_pin_and_ends_the_person_s_sessions(web):
    cab = web.cabinet
    other = web.client()
    ph_login(other, "pharma1")
    admin = web.client()
    token = ph_login(admin, "admin1")
    r = admin.post("/pharmacy/users/pharma1/pin", data={"csrf": token, "confirm": "pharma1",
                                                        "pin": "482611"})
    assert r.status_code == 303
    assert "PIN reset: to be changed" in admin.get("/pharmacy/users").text
    # Her open pharmacy session is over; her next login must choose a PIN first.
    assert other.get("/pharmacy").headers["location"] == "/pharmacy/login"
    assert cab.pin_change_required("pharma1")
    token = page_csrf(other, "/pharmacy/login")
    r = other.post("/pharmacy/login", data={"csrf": token, "user_id": "pharma1",
                                            "pin": "482611"})
    assert r.status_code == 303
    assert other.get("/pharmacy/users").headers["location"] == "/pharmacy/pin"
    token = page_csrf(other, "/pharmacy/pin")
    r = other.post("/pharmacy/users/ide1/pin", data={"csrf": token, "confirm": "ide1",
                                                     "pin": "111222"})
    assert r.status_code == 403 and "PIN_CHANGE_REQUIRED" in r.text
    r = other.post("/pharmacy/pin", data={"csrf": token, "current_pin": "482611",
                                          "new_pin": NEW, "confirm_pin": NEW})
    assert r.headers["location"] == "/pharmacy"
    users = other.get("/pharmacy/users").text
    assert users.count('id="reset-') >= 1
    # A pharmacist may not reset an admin's PIN, nor her own here; the page offers neither.
    assert 'id="reset-admin1"' not in users and 'id="reset-pharma1"' not in users
    assert 'id="deactivate-admin1"' not in users
    token = page_csrf(other, "/pharmacy/users")
    r = other.post("/pharmacy/users/admin1/pin", data={"csrf": token, "confirm": "admin1",
                                                       "pin": "482611"})
    assert r.status_code == 403 and "FORBIDDEN" in r.text
    assert not cab.pin_change_required("admin1")
    rows = json.dumps(web.runtime.store.journal_rows())
    assert "482611" not in rows and NEW not in rows and PINS["pharma1"] not in rows


def test_a_pin_with_a_line_break_after_its_digits_is_refused(web):
    """A PIN is digits only, end to end: "482611\n" (a scripted client, a pasted line) would
    be hashed with its line break, a PIN no pad can type, and the account would be unusable
    until someone reset it again. Refused as BAD_PIN_FORMAT, nothing written."""
    admin = web.client()
    token = ph_login(admin, "admin1")
    head = web.runtime.store.head()
    json_ = {"accept": "application/json"}
    for pin in ("482611\n", "482611\r\n"):
        r = admin.post("/pharmacy/users/ide2/pin", data={"csrf": token, "confirm": "ide2",
                                                         "pin": pin},
                       headers=json_)
        assert r.status_code == 400 and r.json()["code"] == "BAD_PIN_FORMAT", repr(pin)
        r = admin.post("/pharmacy/users", data={"csrf": token, "id": "ide8", "name": "N",
                                                "role": "nurse", "lang": "fr", "pin": pin},
                       headers=json_)
        assert r.status_code == 400 and r.json()["code"] == "BAD_PIN_FORMAT", repr(pin)
    assert web.runtime.store.head() == head
    assert not web.cabinet.pin_change_required("ide2")


def test_a_nurse_cannot_reset_anyone_s_pin(web):
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    head = web.runtime.store.head()
    r = c.post("/pharmacy/users/ide2/pin", data={"csrf": token, "confirm": "ide2",
                                                 "pin": "482611"})
    assert r.status_code == 403
    assert web.runtime.store.head() == head


def test_sessions_opened_under_the_old_pin_end_when_its_owner_changes_it(web):
    admin = web.client()
    token = ph_login(admin, "admin1")
    admin.post("/pharmacy/users/pharma1/pin", data={"csrf": token, "confirm": "pharma1",
                                                    "pin": "482611"})
    # Someone who knows the temporary PIN logs in as pharma1 first, and waits.
    mallory = web.client()
    token = page_csrf(mallory, "/pharmacy/login")
    mallory.post("/pharmacy/login", data={"csrf": token, "user_id": "pharma1",
                                          "pin": "482611"})
    assert mallory.get("/pharmacy/users").headers["location"] == "/pharmacy/pin"
    owner = web.client()
    token = page_csrf(owner, "/pharmacy/login")
    owner.post("/pharmacy/login", data={"csrf": token, "user_id": "pharma1",
                                        "pin": "482611"})
    token = page_csrf(owner, "/pharmacy/pin")
    r = owner.post("/pharmacy/pin", data={"csrf": token, "current_pin": "482611",
                                          "new_pin": NEW, "confirm_pin": NEW})
    assert r.headers["location"] == "/pharmacy"
    assert owner.get("/pharmacy/users").status_code == 200
    assert mallory.get("/pharmacy/users").headers["location"] == "/pharmacy/login"


def test_a_reset_while_her_drawer_is_open_still_lets_her_count_and_close(web):
    from test_web import wait_for

    cab = web.cabinet
    kiosk = web.client(host="127.0.0.1")
    token = login(kiosk, "ide1")
    r = kiosk.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                      "patient": "P-9"})
    assert r.headers["location"] == "/operation"
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    ph = web.client()
    ph_token = ph_login(ph)
    ph.post("/pharmacy/users/ide1/pin", data={"csrf": ph_token, "confirm": "ide1",
                                              "pin": "482611"})
    assert cab.pin_change_required("ide1")
    assert kiosk.get("/operation").status_code == 200
    before = web.runtime.store.on_hand("A", 0, 0)
    r = kiosk.post("/operation/count", data={"csrf": token, "count": str(before - 1)})
    assert r.status_code == 303, r.text
    kiosk.post("/sim/close", data={"csrf": token, "drawer": "A"})
    wait_for(web, lambda: cab.session.state == "locked")
    withdrawals = web.runtime.store.journal_rows(kind="withdraw")
    assert withdrawals and withdrawals[-1]["patient"] == "P-9"
    assert web.runtime.store.journal_rows(kind="logout")[-1]["code"] == "PIN_RESET"


def test_the_last_day_there_is_is_a_filter_not_a_crash(web):
    ph = web.client()
    ph_login(ph)
    for path in ("/pharmacy/journal", "/pharmacy/register", "/pharmacy/register.csv"):
        r = ph.get(path, params={"drug": "MORPH10", "to": "9999-12-31"})
        assert r.status_code == 200, (path, r.text[:200])


def _events_of(web, c, monkeypatch):
    """The messages /events sends this browser before it ends: the session is declared gone
    at the stream's first check, so the stream drains what it queued and stops."""
    import controller.web.events as events_module

    monkeypatch.setattr(events_module, "RECHECK_S", 0.0)
    app_web = web.app.state.web
    monkeypatch.setattr(app_web, "alive", lambda token: False)
    r = c.get("/events")
    monkeypatch.undo()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    return [json.loads(line[len("data: "):]) for line in r.text.splitlines()
            if line.startswith("data: ")]


def test_the_live_updates_of_a_page_held_at_the_pin_carry_nothing_but_its_session(
        web, monkeypatch):
    """Someone holding a PIN another person chose sees no alarm count, drawer or operation
    through the live updates either, until she has chosen her own."""
    ph = web.client()
    token = ph_login(ph)
    ph.post("/pharmacy/users", data={"csrf": token, "id": "ide9", "name": "Nouvelle IDE",
                                     "role": "nurse", "lang": "fr", "pin": "583920"})
    kiosk = web.client(host="127.0.0.1")
    token = page_csrf(kiosk)
    kiosk.post("/login", data={"csrf": token, "user_id": "ide9", "pin": "583920"})
    held = _events_of(web, kiosk, monkeypatch)
    assert held and all(m["type"] == "session" for m in held), held

    # The same stream for a nurse free to work carries the cabinet's state.
    token = page_csrf(kiosk, "/pin")
    r = kiosk.post("/pin", data={"csrf": token, "current_pin": "583920", "new_pin": NEW,
                                 "confirm_pin": NEW})
    assert r.headers["location"] == "/menu"
    free = _events_of(web, kiosk, monkeypatch)
    assert {"alarms", "sim"} <= {m["type"] for m in free}, free
