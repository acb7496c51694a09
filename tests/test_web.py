"""The web app without a browser: security rules, escaping, roles, errors, health."""

from __future__ import annotations

import functools
import html
import logging
import re
from types import SimpleNamespace

import pytest
from anyio.from_thread import start_blocking_portal
from starlette.testclient import TestClient
from web_helpers import PINS, SOCKET, csrf_of, demo_config, through

from controller.alarms import Where
from controller.errors import AuthError
from controller.runtime import start
from controller.store import JournalEntry
from controller.web.app import create_app
from controller.web.i18n import EN, FR

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def running_web(tmp_path, extra_config=""):
    """The demo cabinet and its app on a temporary database (other test files reuse it);
    ``extra_config`` is TOML added to the demo's configuration."""
    config = demo_config(tmp_path, extra=extra_config)
    with start_blocking_portal() as portal:
        runtime = portal.call(functools.partial(start, config, sim=True,
                                                db_path=str(tmp_path / "web.db")))
        app = create_app(runtime)
        # Refused PINs from remote clients answered at once, as PINs are hashed cheaply
        # here: test_web_security checks the production delay.
        app.state.web.failed_pin_answer_s = 0.0

        def client(host="testclient", headers=None, base_url="http://testserver",
                   raise_server_exceptions=True):
            """A browser; ``host`` is its address as the app sees it (127.0.0.1 without a
            forwarding header: the kiosk; ``SOCKET``: through the site's proxy, on its
            socket); ``base_url`` its scheme (https: behind TLS)."""
            c = TestClient(through(app, host), follow_redirects=False, client=(host, 50000),
                           headers=headers,
                           base_url=base_url, raise_server_exceptions=raise_server_exceptions)
            c.portal = portal  # the app must run on the loop that owns the cabinet
            return c

        try:
            yield SimpleNamespace(client=client, runtime=runtime, portal=portal, app=app,
                                  cabinet=runtime.cabinet)
        finally:
            portal.call(runtime.stop)


def page_csrf(c, path="/"):
    r = c.get(path)
    assert r.status_code == 200, r.text
    return csrf_of(r.text)


def login(c, user):
    token = page_csrf(c)
    r = c.post("/login", data={"csrf": token, "user_id": user, "pin": PINS[user]})
    assert r.status_code == 303 and r.headers["location"] == "/menu", r.text
    return page_csrf(c, "/menu")


def ph_login(c, user="pharma1"):
    token = page_csrf(c, "/pharmacy/login")
    r = c.post("/pharmacy/login", data={"csrf": token, "user_id": user, "pin": PINS[user]})
    assert r.status_code == 303 and r.headers["location"] == "/pharmacy", r.text
    return page_csrf(c, "/pharmacy")


def test_healthz(web):
    r = web.client().get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_session_cookie_is_opaque_httponly_strict(web):
    c = web.client(host="127.0.0.1")
    r = c.get("/")
    cookie = r.headers["set-cookie"]
    assert "armoire_sid=" in cookie and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "default-src 'self'" in r.headers["content-security-policy"]
    login(c, "ide1")
    # Logging in replaces the token: the anonymous one no longer leads anywhere.
    old = cookie.split(";")[0].split("=", 1)[1]
    assert c.cookies.get("armoire_sid") != old


def test_posts_without_csrf_are_refused(web):
    c = web.client(host="127.0.0.1")
    r = c.post("/login", data={"user_id": "ide1", "pin": PINS["ide1"]})
    assert r.status_code == 403 and "CSRF_FAILED" in r.text
    assert web.cabinet.session.state == "locked"
    r = c.post("/login", data={"csrf": "forged", "user_id": "ide1", "pin": PINS["ide1"]},
               headers={"accept": "application/json"})
    assert r.status_code == 403 and r.json()["code"] == "CSRF_FAILED"
    login(c, "ide1")
    before = len(web.runtime.store.journal_rows(kind="intent"))
    r = c.post("/withdraw", data={"drug": "PARA500", "qty": "1", "patient": "P1"})
    assert r.status_code == 403 and "CSRF_FAILED" in r.text
    r = c.post("/logout", data={})
    assert r.status_code == 403
    assert len(web.runtime.store.journal_rows(kind="intent")) == before
    assert web.cabinet.session.state == "menu"


def test_hostile_names_are_shown_as_text(web):
    store = web.runtime.store
    with store.transaction() as conn:
        conn.execute("UPDATE drugs SET name=?, form=? WHERE id='IBU400'", (HOSTILE, HOSTILE))
        conn.execute("UPDATE users SET name=? WHERE id='ide2'", (HOSTILE,))
    c = web.client(host="127.0.0.1")  # the kiosk: the only lock screen that lists names
    lock = c.get("/").text
    assert HOSTILE not in lock and "&lt;script&gt;alert(1)&lt;/script&gt;" in lock
    token = login(c, "ide1")
    page = c.get("/withdraw").text
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # A hostile patient id typed at the cabinet comes back escaped on a refused form...
    r = c.post("/withdraw", data={"csrf": token, "drug": "IBU400", "qty": "0",
                                  "patient": HOSTILE})
    assert r.status_code == 303
    again = c.get("/withdraw").text
    assert "[BAD_QTY]" in again and HOSTILE not in again
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in again
    # ...and in the pharmacist's journal, where it was recorded by a real withdrawal.
    web.portal.call(functools.partial(web.cabinet.logout))
    ph = web.client()
    ph_login(ph)
    web.portal.call(web.runtime.store.append,
                    JournalEntry("note", patient=HOSTILE, drug=HOSTILE))
    journal = ph.get("/pharmacy/journal").text
    assert HOSTILE not in journal and "&lt;script&gt;" in journal
    cabinet_page = ph.get("/pharmacy/cabinet").text
    assert HOSTILE not in cabinet_page


def test_nurse_cannot_use_pharmacist_endpoints(web):
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    alarm = web.cabinet.alarms.raise_("discrepancy", Where("PARA500", "A", 0, 0), "test")
    for path, data in [(f"/pharmacy/alarms/{alarm}/resolve", {"note": "x"}),
                       (f"/pharmacy/alarms/{alarm}/ack", {}),
                       ("/pharmacy/users", {"id": "evil", "name": "Evil", "role": "admin",
                                            "pin": "583920", "lang": "fr"}),
                       ("/pharmacy/users/ide2/deactivate", {})]:
        r = c.post(path, data={"csrf": token, **data})
        assert r.status_code == 403, path
        assert "FORBIDDEN" in r.text
    assert c.get("/pharmacy").status_code == 403
    assert c.get("/pharmacy/journal").status_code == 403
    assert web.cabinet.alarms.get(alarm)["state"] == "open"
    assert not web.runtime.store.query("SELECT 1 FROM users WHERE id='evil'")


def test_technician_cannot_resolve_a_discrepancy_from_the_pharmacy_login(web):
    c = web.client()
    token = page_csrf(c, "/pharmacy/login")
    r = c.post("/pharmacy/login", data={"csrf": token, "user_id": "prep1",
                                        "pin": PINS["prep1"]})
    assert r.status_code == 403 and "[FORBIDDEN]" in r.text
    assert c.get("/pharmacy").headers["location"] == "/pharmacy/login"


def test_anonymous_cannot_act_or_listen(web):
    c = web.client()
    token = page_csrf(c, "/pharmacy/login")
    assert c.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                     "patient": "P"}).status_code == 403
    assert c.get("/menu").headers["location"] == "/"
    assert c.get("/events").status_code == 403
    assert c.get("/pharmacy").headers["location"] == "/pharmacy/login"


def test_a_second_browser_cannot_act_as_the_cabinet_user(web):
    nurse = web.client(host="127.0.0.1")
    login(nurse, "ide1")
    other = web.client(host="127.0.0.1")
    token = page_csrf(other)
    assert "Une session est ouverte" in other.get("/").text
    assert other.get("/menu").headers["location"] == "/"
    r = other.post("/login", data={"csrf": token, "user_id": "ide2", "pin": PINS["ide2"]})
    assert r.status_code == 303
    assert "[SESSION_OPEN]" in other.get("/").text
    # The pharmacy login works meanwhile, without touching the cabinet's session.
    ph_login(other)
    assert web.cabinet.session.user.id == "ide1"
    # When the cabinet locks, the nurse's browser session ends with it.
    web.portal.call(functools.partial(web.cabinet.logout, reason="inactivity"))
    assert nurse.get("/menu").headers["location"] == "/"


def test_pharmacist_pages_resolve_unlock_create_journal(web):
    cab = web.cabinet
    c = web.client()
    token = ph_login(c)
    alarm = cab.alarms.raise_("discrepancy", Where("PARA500", "A", 0, 0), "pocket A-1-1")
    assert f'id="alarm-{alarm}"' in c.get("/pharmacy").text
    r = c.post(f"/pharmacy/alarms/{alarm}/resolve", data={"csrf": token, "note": "recounted"})
    assert r.status_code == 303 and cab.alarms.get(alarm)["state"] == "resolved"
    with pytest.raises(Exception, match="locked"):
        for _ in range(6):
            try:
                cab.authenticate("ide2", "000000")
            except Exception as exc:
                if "locked" in str(exc):
                    raise
    assert c.post("/pharmacy/users/ide2/unlock", data={"csrf": token}).status_code == 303
    assert cab.authenticate("ide2", PINS["ide2"]).id == "ide2"
    # A locked admin: the pharmacist is offered no Unlock, and a forged one is refused.
    for _ in range(cab.settings.max_pin_failures):
        with pytest.raises(AuthError):
            cab.authenticate("admin1", "000000")
    users = c.get("/pharmacy/users").text
    assert 'id="unlock-ide2"' not in users and 'id="unlock-admin1"' not in users
    r = c.post("/pharmacy/users/admin1/unlock", data={"csrf": token})
    assert r.status_code == 403 and "[FORBIDDEN]" in r.text
    assert web.runtime.store.query("SELECT locked FROM users WHERE id='admin1'")[0]["locked"]
    r = c.post("/pharmacy/users", data={"csrf": token, "id": "ide9", "name": "Nouvelle IDE",
                                        "role": "nurse", "lang": "en", "pin": "583920"})
    assert r.status_code == 303
    assert cab.authenticate("ide9", "583920").lang == "en"
    r = c.post("/pharmacy/users", data={"csrf": token, "id": "ide10", "name": "X",
                                        "role": "nurse", "lang": "fr", "pin": "111111"})
    assert "[WEAK_PIN]" in c.get("/pharmacy/users").text
    assert c.post("/pharmacy/users/ide9/deactivate", data={"csrf": token,
                                                             "confirm": "ide9"}).status_code == 303
    journal = c.get("/pharmacy/journal", params={"kind": "user_created"}).text
    assert "ide9" in journal and "583920" not in journal
    assert "user_deactivated" in c.get("/pharmacy/journal").text
    for day in ("yesterday", "20261123", "2026-W48-1"):
        assert "[BAD_DATE]" in c.get("/pharmacy/journal", params={"from": day}).text, day
    page2 = c.get("/pharmacy/journal", params={"page": "2"})
    assert page2.status_code == 200 and "Page 2" in page2.text
    assert "Tiroir A" in c.get("/pharmacy/cabinet").text


def test_the_journals_drug_filter_takes_the_name_the_pharmacist_types(web):
    """The journal's "Médicament" filter matched the drug id only: a pharmacist who typed
    "morphine" (or "Morphine", "morph") was told there was no movement at all, which an
    audit of a controlled drug would take for the truth."""
    c = web.client()
    ph_login(c)

    def rows(drug):
        page = c.get("/pharmacy/journal", params={"drug": drug}).text
        return re.findall(r"<small>(MORPH10|OXYC5|PARA500|PARA1G)</small></td>", page)

    by_id = rows("MORPH10")
    assert by_id and set(by_id) == {"MORPH10"}  # the opening stock at least
    for typed in ("morphine", "Morphine", "morph", "morph10", "MORPHINE "):
        assert rows(typed) == by_id, typed
    assert set(rows("paracétamol")) == {"PARA500", "PARA1G"}
    assert set(rows("paracetamol")) == {"PARA500", "PARA1G"}  # accents do not matter
    assert rows("nothing-like-it") == []


def test_the_alarms_page_offers_resolve_only_where_the_reader_may_resolve(web):
    """The alarms page gave every alarm a Resolve button: an admin, who may resolve only a
    lockout, got an error page ("seul un rôle autorisé peut clore une alarme discrepancy
    [FORBIDDEN]") for every other one she touched."""
    cab = web.cabinet
    low = cab.alarms.raise_("low_stock", Where("PARA500", "A", 0, 0), "pocket A-1-1: 3 left")
    gap = cab.alarms.raise_("discrepancy", Where("MORPH10", "B", 0, 0), "pocket B-1-1")
    for _ in range(cab.settings.max_pin_failures):
        with pytest.raises(AuthError):
            cab.authenticate("ide2", "000000")
    [lockout] = [a["id"] for a in cab.alarms.list() if a["kind"] == "auth_lockout"]
    admin = web.client()
    ph_login(admin, "admin1")
    page = admin.get("/pharmacy").text
    assert f'id="resolve-{lockout}"' in page
    for alarm in (low, gap):
        assert f'id="alarm-{alarm}"' in page and f'id="resolve-{alarm}"' not in page
        assert f'id="ack-{alarm}"' in page  # she may still acknowledge it
    pharmacist = web.client()
    ph_login(pharmacist)
    page = pharmacist.get("/pharmacy").text
    for alarm in (low, gap, lockout):
        assert f'id="resolve-{alarm}"' in page


def test_errors_in_the_persons_language_with_code_and_no_trace(web, monkeypatch):
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")  # ide1 reads French
    r = c.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "2", "patient": ""})
    assert r.headers["location"] == "/withdraw"
    assert "choisissez un patient" in c.get("/withdraw").text

    def boom():
        raise RuntimeError("secret internals")

    monkeypatch.setattr(web.cabinet, "formulary", boom)
    r = c.get("/withdraw")
    assert r.status_code == 500
    assert "INTERNAL" in r.text and "secret internals" not in r.text
    assert "Traceback" not in r.text
    assert c.get("/no/such/page").status_code == 404


def test_language_toggle_on_the_lock_screen(web):
    c = web.client(host="127.0.0.1")
    assert "Identifiez-vous" in c.get("/").text
    c.post("/lang", data={"csrf": page_csrf(c), "lang": "en"})
    assert "Log in" in c.get("/").text


def test_no_pin_nor_token_in_logs(web, caplog):
    caplog.set_level(logging.DEBUG)
    c = web.client(host="127.0.0.1")
    token = page_csrf(c)
    c.post("/login", data={"csrf": token, "user_id": "ide1", "pin": "999999"})
    login(c, "ide1")
    web.portal.call(functools.partial(web.cabinet.logout))
    p = web.client()
    ph_login(p)
    text = caplog.text
    for pin in (PINS["ide1"], "999999", PINS["pharma1"]):
        assert pin not in text
    for cookie in list(c.cookies.values()) + list(p.cookies.values()):
        assert cookie not in text


def test_catalogues_have_the_same_keys():
    assert set(FR) == set(EN)
    assert all(v.strip() for v in [*FR.values(), *EN.values()])


def test_every_drawer_state_has_its_words_in_both_languages():
    """A drawer's state is shown on the screens; a missing entry shows its raw key."""
    from controller.drawer import STATES

    for state in STATES:
        assert f"state.{state}" in FR and f"state.{state}" in EN, state


def wait_for(web, predicate, timeout=10.0):
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if web.portal.call(functools.partial(_check, predicate)):
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


async def _check(predicate):
    return predicate()


def test_waste_of_a_controlled_drug_needs_a_witness_pin(web):
    cab = web.cabinet
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    assert "witness_pin" in c.get("/waste").text
    r = c.post("/waste", data={"csrf": token, "drug": "MORPH10", "qty": "1"})
    assert r.headers["location"] == "/waste"
    assert "[WITNESS_REQUIRED]" in c.get("/waste").text
    r = c.post("/waste", data={"csrf": token, "drug": "MORPH10", "qty": "1",
                               "witness": "ide2", "witness_pin": PINS["ide2"]})
    assert r.headers["location"] == "/operation"
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    assert "Prenez 1 à détruire dans la poche B-1-1" in c.get("/operation").text
    assert c.post("/operation/count", data={"csrf": token, "count": "11"}).status_code == 303
    assert c.post("/operation/close", data={"csrf": token}).status_code == 303
    wait_for(web, lambda: cab.session.op is None)
    row = web.runtime.store.journal_rows(kind="waste")[-1]
    assert row["drug"] == "MORPH10" and '"witness": "ide2"' in row["detail"]
    assert PINS["ide2"] not in (row["detail"] or "")


def test_a_witness_whose_role_may_not_witness_is_refused_on_the_waste_form(web):
    """A nurse who names a nursing assistant as the witness was sent to an error page
    ("votre rôle (assistant) ne permet pas cette action (witness) [FORBIDDEN]"): her form
    was lost, and the message spoke of *her* role, which is not the assistant's."""
    cab = web.cabinet
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    r = c.post("/waste", data={"csrf": token, "drug": "MORPH10", "qty": "1",
                               "witness": "as1", "witness_pin": PINS["as1"]})
    assert r.status_code == 303 and r.headers["location"] == "/waste"
    page = html.unescape(c.get("/waste").text)
    assert "[WITNESS_NOT_ALLOWED]" in page
    assert "Inès Petit ne peut pas être témoin" in page and "votre rôle" not in page
    assert 'value="as1"' in page and PINS["as1"] not in page  # the form is kept, not the PIN
    assert cab.session.op is None
    assert not web.runtime.store.journal_rows(kind="intent")


def test_return_and_remove_pages(web):
    cab = web.cabinet
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    assert "Retour de médicament" in c.get("/return").text
    r = c.post("/return", data={"csrf": token, "drug": "PARA500", "qty": "1", "patient": "P7"})
    assert r.headers["location"] == "/operation"
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    c.post("/operation/count", data={"csrf": token, "count": "49"})
    c.post("/sim/close", data={"csrf": token, "drawer": "A"})
    wait_for(web, lambda: cab.session.op is None)
    assert web.runtime.store.on_hand("A", 0, 0) == 49
    assert c.get("/remove").status_code == 403  # a nurse does not remove expired stock
    assert c.post("/logout", data={"csrf": token}).headers["location"] == "/"
    token = login(c, "prep1")
    assert "Aucun lot périmé" in c.get("/remove").text
    assert "A-2-3" in c.get("/restock").text


def test_technician_removes_an_expired_lot(web, monkeypatch):
    from datetime import date, timedelta

    cab = web.cabinet
    # The demo's lots expire relative to the day it is set up: five days after AM-3310's.
    [lot] = web.runtime.store.query("SELECT expiry FROM stock WHERE lot = 'AM-3310'")
    expired_on = date.fromisoformat(lot["expiry"])
    monkeypatch.setattr(cab, "today", lambda: expired_on + timedelta(days=5))
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")
    page = c.get("/remove").text
    assert "AM-3310" in page and "A-2-2" in page
    r = c.post("/remove", data={"csrf": token, "drawer": "A", "row": "1", "col": "1"})
    assert r.headers["location"] == "/operation"
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    assert "Retirez les lots périmés (14) de la poche A-2-2" in c.get("/operation").text
    c.post("/operation/count", data={"csrf": token, "count": "0"})
    c.post("/operation/close", data={"csrf": token})
    wait_for(web, lambda: cab.session.op is None)
    assert web.runtime.store.on_hand("A", 1, 1) == 0
    assert "Aucun lot périmé" in c.get("/remove").text


def test_a_technician_removes_the_expired_units_from_the_restock_page_then_restocks(
        web, monkeypatch):
    """The pick list says to bring 30 to A-2-2 and that 14 expired units are to be removed
    first. Restocking the 30 before that was refused OVER_CAPACITY ("elle en a 14"), on a
    page suggesting 16 and saying nothing of expired units. Now the page says so and offers
    the removal; the refusal names it; after the removal (journaled), the technician is back
    on the pocket's page and the 30 go in."""
    from datetime import date, timedelta

    cab = web.cabinet
    store = web.runtime.store
    [lot] = store.query("SELECT expiry FROM stock WHERE lot = 'AM-3310'")
    monkeypatch.setattr(cab, "today",
                        lambda: date.fromisoformat(lot["expiry"]) + timedelta(days=5))
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")
    pick = html.unescape(c.get("/restock").text)
    row = pick[pick.index('id="pick-A-2-2"'):]
    row = row[:row.index("</a>")]
    assert "apporter 30" in row and "14 périmé(s) à retirer d'abord" in row
    url = "/restock/A/1/1"
    page = html.unescape(c.get(url).text)
    assert 'id="remove-first"' in page and "Retirer d'abord les 14 périmé(s)" in page
    assert re.search(r'name="qty" value="30"', page)  # the pick list's quantity
    delivery = {"csrf": token, "scan": "AMOX1G", "qty": "30", "lot": "AM-9001",
                "expiry": "2031-01-15"}
    r = c.post(url, data=delivery)
    assert r.headers["location"] == url
    page = html.unescape(c.get(url).text)
    assert "[REMOVE_EXPIRED_FIRST]" in page and "14 unité(s) périmée(s)" in page
    assert cab.session.op is None

    r = c.post(url + "/remove", data={"csrf": token})
    assert r.headers["location"] == "/operation"
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    assert "Retirez les lots périmés (14) de la poche A-2-2" in c.get("/operation").text
    c.post("/operation/count", data={"csrf": token, "count": "0"})
    c.post("/operation/close", data={"csrf": token})
    wait_for(web, lambda: cab.session.op is None)
    assert [(x["lot"], x["qty"]) for x in store.journal_rows(kind="remove")] == [
        ("AM-3310", 14)]
    assert c.get("/menu").headers["location"] == url  # back to the pocket, delivery in hand
    assert c.get("/menu").status_code == 200          # once only
    page = c.get(url).text
    assert 'id="remove-first"' not in page

    r = c.post(url, data=delivery)
    assert r.headers["location"] == "/operation"
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    c.post("/operation/count", data={"csrf": token, "count": "30"})
    c.post("/operation/close", data={"csrf": token})
    wait_for(web, lambda: cab.session.op is None)
    assert store.on_hand("A", 1, 1) == 30


def test_a_nurse_restocking_is_told_who_removes_the_expired_units(web, monkeypatch):
    from datetime import date, timedelta

    cab = web.cabinet
    [lot] = web.runtime.store.query("SELECT expiry FROM stock WHERE lot = 'AM-3310'")
    monkeypatch.setattr(cab, "today",
                        lambda: date.fromisoformat(lot["expiry"]) + timedelta(days=5))
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    page = html.unescape(c.get("/restock/A/1/1").text)
    assert "Demandez à un préparateur ou à un pharmacien" in page
    assert 'id="remove-first-go"' not in page
    assert c.post("/restock/A/1/1/remove", data={"csrf": token}).status_code == 403
    assert cab.session.op is None


def test_a_nurse_counts_a_pocket_an_alarm_flags_blind(web):
    """The discrepancy alarm says 'count the pocket': the count page lists that pocket first,
    never shows how many the cabinet expects, and runs the ordinary blind count."""
    cab = web.cabinet
    store = web.runtime.store
    expected = store.on_hand("A", 2, 2)
    web.portal.call(functools.partial(_check, lambda: cab.alarms.raise_(
        "discrepancy", Where("HYDRAL25", "A", 2, 2), "operation #1 interrupted")))
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    assert 'href="/count"' in c.get("/menu").text
    page = c.get("/count").text
    rows = re.findall(r'<form method="post" action="/count" class="pickrow[^"]*" '
                      r'id="count-([A-Z]-\d-\d)">(.*?)</form>', page, re.S)
    assert rows[0][0] == "A-3-3" and "à compter" in rows[0][1]
    assert all("à compter" not in html for _, html in rows[1:])
    assert len(rows) == len(store.stock_by_pocket())
    assert not re.search(rf"\b{expected}\b", rows[0][1].split("</span>", 1)[1])
    r = c.post("/count", data={"csrf": token, "drawer": "A", "row": "2", "col": "2"})
    assert r.headers["location"] == "/operation"
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    assert "Comptez la poche A-3-3" in c.get("/operation").text
    c.post("/operation/count", data={"csrf": token, "count": str(expected - 1)})
    c.post("/operation/close", data={"csrf": token})
    wait_for(web, lambda: cab.session.op is None)
    assert store.on_hand("A", 2, 2) == expected - 1
    assert store.journal_rows(kind="count")[-1]["qty"] == expected - 1
    assert store.journal_rows(kind="count_correction")[-1]["qty"] == -1


def test_the_count_operation_screen_does_not_show_what_the_cabinet_expects(web):
    """A blind count is blind on the screen where it is typed too: the drawer drawn beside
    the count field shows no pocket's units, or the person would copy the number instead of
    counting (and a missing unit would never raise its discrepancy)."""
    cab = web.cabinet
    expected = web.runtime.store.on_hand("A", 2, 2)
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    c.post("/count", data={"csrf": token, "drawer": "A", "row": "2", "col": "2"})
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    page = c.get("/operation").text
    assert 'id="pocket-A-3-3"' in page and "Comptez la poche A-3-3" in page
    assert 'class="pstock"' not in page
    pocket = re.search(r'id="pocket-A-3-3">(.*?)</div>', page, re.S)
    assert pocket and not re.search(rf"\b{expected}\b", pocket.group(1))


def test_the_withdrawal_screen_asks_the_count_left_without_showing_it(web):
    """Every operation asks how many are left in the pocket: the drawer drawn beside that
    field shows no pocket's units, or the nurse would copy (or subtract from) the cabinet's
    number instead of counting, and a unit missing from the pocket would go unseen."""
    cab = web.cabinet
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    c.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "2", "patient": "P1"})
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    op = cab.session.op
    before = web.runtime.store.on_hand(op.pocket.drawer, op.pocket.row, op.pocket.col)
    page = c.get("/operation").text
    assert 'id="count-form"' in page and 'class="pstock"' not in page
    pocket = re.search(rf'id="pocket-{op.pocket.label}">(.*?)</div>', page, re.S)
    assert pocket and not re.search(rf"\b({before}|{op.expected_after})\b", pocket.group(1))


def test_a_mistyped_number_or_date_is_named_as_people_call_it(web):
    """A refused number or date names the field as the screen does ("quantité", "du"), not
    as the form does ("qty", "from")."""
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    c.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "deux", "patient": "P1"})
    page = c.get("/withdraw").text
    assert "[BAD_NUMBER]" in page and "quantité : nombre entier attendu" in page
    assert "qty" not in page.split("[BAD_NUMBER]", 1)[1].split("<", 1)[0]
    assert web.cabinet.session.op is None
    ph = web.client()
    ph_login(ph)
    r = ph.get("/pharmacy/journal", params={"from": "hier"})
    assert "[BAD_DATE]" in r.text and "du : date attendue (JJ/MM/AAAA ou AAAA-MM-JJ)" in r.text


def test_a_technician_resets_a_faulted_drawer_from_the_touchscreen(web):
    cab = web.cabinet
    unit = cab.units["A"]
    web.portal.call(functools.partial(unit.fire, "ev_switch_fault",
                                      detail={"switch": "closed"}))
    assert unit.state == "switch_fault"
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    assert "/drawers" not in c.get("/menu").text
    assert c.get("/drawers").status_code == 403
    assert c.post("/drawers/reset", data={"csrf": token, "drawer": "A"}).status_code == 403
    assert unit.state == "switch_fault"
    c.post("/logout", data={"csrf": token})
    token = login(c, "prep1")
    assert "Tiroirs à vérifier (1)" in c.get("/menu").text
    page = c.get("/drawers").text
    assert 'id="reset-A"' in page and 'id="reset-B"' not in page
    assert "capteur en défaut" in page
    r = c.post("/drawers/reset", data={"csrf": token, "drawer": "A"})
    assert r.status_code == 303 and r.headers["location"] == "/drawers"
    page = c.get("/drawers").text
    assert "Tiroir A réarmé : fermé." in page and 'id="reset-A"' not in page
    assert unit.state == "closed"
    assert not [a for a in cab.alarms.list() if a["kind"] == "drawer_fault"]
    assert web.runtime.store.journal_rows(kind="drawer_reset")[-1]["user"] == "prep1"
    r = c.post("/drawers/reset", data={"csrf": token, "drawer": "Z"})
    assert "[UNKNOWN_DRAWER]" in c.get(r.headers["location"]).text


def test_failed_logins_are_limited_per_client_without_checking_pins(web, monkeypatch):
    from controller.web.limits import MAX_FAILURES

    cab = web.cabinet
    checks = []
    real_verify = cab.hasher.verify
    monkeypatch.setattr(cab.hasher, "verify", lambda h, p: checks.append(1) or real_verify(h, p))
    # Away from the cabinet, the pharmacy login is the only PIN form (/login: the kiosk's).
    c = web.client(host="10.0.0.5")
    token = page_csrf(c, "/pharmacy/login")
    for i in range(MAX_FAILURES):
        r = c.post("/pharmacy/login", data={"csrf": token, "user_id": f"guess{i}",
                                            "pin": "000001"})
        assert r.headers["location"] == "/pharmacy/login"
        assert "[AUTH_FAILED]" in c.get("/pharmacy/login").text
    assert len(checks) == MAX_FAILURES
    journal = len(web.runtime.store.query("SELECT seq FROM journal"))
    # Used up: even the right PIN is refused, unchecked, and nothing is written.
    r = c.post("/pharmacy/login", data={"csrf": token, "user_id": "admin1",
                                        "pin": PINS["admin1"]})
    assert r.headers["location"] == "/pharmacy/login"
    page = c.get("/pharmacy/login").text
    assert "[TOO_MANY_ATTEMPTS]" in page and "attendez une minute" in page
    c.post("/lang", data={"csrf": token, "lang": "en", "next": "pharmacy"})
    r = c.post("/pharmacy/login", data={"csrf": token, "user_id": "pharma1",
                                        "pin": PINS["pharma1"]})
    assert r.headers["location"] == "/pharmacy/login"
    page = c.get("/pharmacy/login").text
    assert "[TOO_MANY_ATTEMPTS]" in page and "wait a minute" in page
    assert len(checks) == MAX_FAILURES
    assert len(web.runtime.store.query("SELECT seq FROM journal")) == journal
    assert cab.session.state == "locked"
    # Another client (here the kiosk) is not affected.
    login(web.client(host="127.0.0.1"), "ide1")
    assert cab.session.user.id == "ide1"


def test_the_kiosk_is_never_locked_out_of_logging_in(web):
    """Wrong ids typed at the cabinet's own screen, more than any remote client may: the
    next nurse still logs in (accounts lock on their own; the ward keeps its cabinet)."""
    from controller.web.limits import MAX_FAILURES

    c = web.client(host="127.0.0.1")
    token = page_csrf(c)
    for i in range(MAX_FAILURES + 3):
        c.post("/login", data={"csrf": token, "user_id": f"guess{i}", "pin": "000001"})
        assert "[AUTH_FAILED]" in c.get("/").text
    login(c, "ide1")
    assert web.cabinet.session.user.id == "ide1"


def test_client_key_knows_the_kiosk_from_proxied_and_remote_clients():
    from starlette.requests import Request

    from controller.web.limits import client_key, is_kiosk

    def request(host, headers=()):
        return Request(scope_of(host, list(headers)))

    assert client_key(request("127.0.0.1")) == "kiosk" and is_kiosk(request("::1"))
    proxied = request(SOCKET, [("x-forwarded-for", "6.6.6.6, 10.1.2.3")])
    assert client_key(proxied) == "fwd:10.1.2.3" and not is_kiosk(proxied)
    assert not is_kiosk(request(SOCKET, [("forwarded", "for=10.1.2.3")]))
    # A remote client cannot pass for anyone by writing a forwarding header.
    remote = request("10.1.2.3", [("x-forwarded-for", "127.0.0.1")])
    assert client_key(remote) == "peer:10.1.2.3" and not is_kiosk(remote)
    assert not is_kiosk(request("testclient"))


def test_a_pharmacy_login_at_the_kiosk_keeps_the_cabinet_inactivity_limit(web, monkeypatch):
    import controller.web.sessions as sessions_module

    inactivity = web.cabinet.settings.inactivity_s
    kiosk = web.client(host="127.0.0.1")               # the touchscreen's own browser
    remote = web.client(host="10.0.0.9")               # a pharmacy workstation
    proxied = web.client(host=SOCKET, headers={"x-forwarded-for": "10.0.0.8"})
    tokens = {c: ph_login(c) for c in (kiosk, remote, proxied)}
    start = sessions_module.time.monotonic()

    def at(seconds):
        monkeypatch.setattr(sessions_module.time, "monotonic", lambda: start + seconds)

    # Busy at the kiosk: a touch restarts its clock.
    at(inactivity - 10)
    assert kiosk.post("/touch", data={"csrf": tokens[kiosk]}).status_code == 204
    at(2 * inactivity - 20)
    assert kiosk.get("/pharmacy").status_code == 200
    # Then left alone longer than the cabinet allows: gone, nothing created.
    at(3 * inactivity)
    r = kiosk.post("/pharmacy/users", data={"csrf": tokens[kiosk], "id": "mallory",
                                            "name": "M", "role": "pharmacist", "lang": "fr",
                                            "pin": "583920"})
    assert r.status_code == 403  # the session, and so its CSRF token, is gone
    assert not web.runtime.store.query("SELECT 1 FROM users WHERE id='mallory'")
    assert kiosk.get("/pharmacy").headers["location"] == "/pharmacy/login"
    # Away from the kiosk the pharmacy's own 15 minutes hold.
    at(14 * 60)
    for c in (remote, proxied):
        assert c.get("/pharmacy").status_code == 200


def test_a_pharmacy_session_that_expires_is_journaled_as_ended(web, monkeypatch):
    """The journal says when a pharmacy session ended, however it ended: by its Log out
    button (PHARMACY_USER), after idleness (PHARMACY_INACTIVITY), past its working day
    (PHARMACY_MAX_AGE); and an abandoned one is found by the app's own rounds, not only
    when its browser comes back."""
    import controller.web.sessions as sessions_module

    store = web.runtime.store
    real = sessions_module.time.monotonic
    idle = web.client()
    ph_login(idle)
    forgotten = web.client()
    ph_login(forgotten, "admin1")
    start = real()
    monkeypatch.setattr(sessions_module.time, "monotonic",
                        lambda: start + sessions_module.PHARMACY_IDLE_S + 1)
    assert idle.get("/pharmacy").headers["location"] == "/pharmacy/login"
    ends = {r["user"]: r["code"] for r in store.journal_rows(kind="logout")}
    assert ends == {"pharma1": "PHARMACY_INACTIVITY"}
    # Nobody comes back to the other one: the app's rounds end it all the same.
    web.portal.call(functools.partial(_check, web.app.state.web.sessions.sweep))
    ends = {r["user"]: r["code"] for r in store.journal_rows(kind="logout")}
    assert ends == {"pharma1": "PHARMACY_INACTIVITY", "admin1": "PHARMACY_INACTIVITY"}
    # Busy all day long: ended at the working day's end, said so.
    monkeypatch.setattr(sessions_module.time, "monotonic", real)
    busy = web.client()
    token = ph_login(busy)
    born = real()
    for tick in range(1, sessions_module.PHARMACY_MAX_S // 600 + 1):  # every 10 minutes
        monkeypatch.setattr(sessions_module.time, "monotonic",
                            lambda k=tick: born + k * 600 - 1)
        assert busy.post("/touch", data={"csrf": token}).status_code == 204
    monkeypatch.setattr(sessions_module.time, "monotonic",
                        lambda: born + sessions_module.PHARMACY_MAX_S + 1)
    assert busy.get("/pharmacy").headers["location"] == "/pharmacy/login"
    assert store.journal_rows(kind="logout")[-1]["code"] == "PHARMACY_MAX_AGE"
    assert len(store.journal_rows(kind="logout")) == 3


def test_a_flood_of_anonymous_visits_cannot_starve_the_lock_screen(web):
    from controller.web.sessions import MAX_SESSIONS

    sessions = web.app.state.web.sessions
    kiosk = web.client(host="127.0.0.1")
    token = page_csrf(kiosk)                 # the lock screen, waiting for a nurse
    # Unknown URLs and refused posts create no session at all...
    for i in range(50):
        stranger = web.client()
        assert stranger.get(f"/nope{i}").status_code == 404
        assert stranger.post("/login", data={"user_id": "ide1"}).status_code == 403
        assert "set-cookie" not in stranger.get(f"/nope{i}").headers
    assert len(sessions) == 1
    # ...and pages that do (the lock screen) push out old anonymous sessions, the kiosk's
    # included; its login still works: its CSRF token is checked without stored state.
    for _ in range(MAX_SESSIONS + 5):
        page_csrf(web.client(), "/pharmacy/login")  # elsewhere: the pharmacy login
    assert kiosk.cookies.get("armoire_sid") not in sessions
    r = kiosk.post("/login", data={"csrf": token, "user_id": "ide1", "pin": PINS["ide1"]})
    assert r.status_code == 303 and r.headers["location"] == "/menu"
    assert web.cabinet.session.user.id == "ide1"
    # A forged token for that cookie is still refused.
    other = web.client(host="127.0.0.1")
    page_csrf(other)
    r = other.post("/login", data={"csrf": token, "user_id": "ide2", "pin": PINS["ide2"]})
    assert r.status_code == 403 and "CSRF_FAILED" in r.text


def test_an_ended_login_is_not_revived_by_its_old_csrf_token(web):
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    web.portal.call(functools.partial(web.cabinet.logout, reason="inactivity"))
    r = c.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                  "patient": "P1"})
    assert r.status_code == 403 and "CSRF_FAILED" in r.text


BIG = str(2**63)


def test_out_of_range_numbers_are_refused_as_bad_numbers(web, caplog):
    caplog.set_level(logging.ERROR)
    store = web.runtime.store
    journal = len(store.query("SELECT seq FROM journal"))
    json_ = {"accept": "application/json"}
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")
    r = c.get(f"/restock/A/{BIG}/0")
    assert r.status_code == 400 and "[BAD_NUMBER]" in r.text
    r = c.post("/remove", data={"csrf": token, "drawer": "A", "row": BIG, "col": "0"},
               headers=json_)
    assert r.status_code == 400 and r.json()["code"] == "BAD_NUMBER"
    r = c.post("/remove", data={"csrf": token, "drawer": "A", "row": "9" * 5000, "col": "0"})
    assert r.headers["location"] == "/remove" and "[BAD_NUMBER]" in c.get("/remove").text
    r = c.post(f"/relayout/{BIG}/start", data={"csrf": token}, headers=json_)
    assert r.status_code == 400 and r.json()["code"] == "BAD_NUMBER"
    assert c.post("/logout", data={"csrf": token}).status_code == 303
    p = web.client()
    pt = ph_login(p)
    r = p.get("/pharmacy/journal", params={"page": BIG})
    assert r.status_code == 400 and "[BAD_NUMBER]" in r.text
    for path, data in ((f"/pharmacy/alarms/{BIG}/resolve", {}),
                       (f"/pharmacy/alarms/{BIG}/ack", {}),
                       (f"/pharmacy/levels/{BIG}/decide", {"decision": "accept"}),
                       (f"/pharmacy/layout/{BIG}/approve", {}),
                       (f"/pharmacy/layout/{BIG}/reject", {}),
                       ("/pharmacy/layout/propose", {"max_moves": BIG})):
        r = p.post(path, data={"csrf": pt, **data}, headers=json_)
        assert r.status_code == 400 and r.json()["code"] == "BAD_NUMBER", path
        assert "nombre" in r.json()["error_fr"]
    assert not caplog.records  # no stack trace, nothing unexpected
    # Nothing changed: only the logins and the logout were journaled.
    kinds = [r["kind"] for r in store.query("SELECT kind FROM journal WHERE seq > ?",
                                             (journal,))]
    assert kinds == ["login", "logout", "login"]


def test_a_malformed_form_body_is_refused_as_bad_form(web, caplog):
    caplog.set_level(logging.ERROR)
    c = web.client(host="127.0.0.1")
    page_csrf(c)
    journal = len(web.runtime.store.query("SELECT seq FROM journal"))
    r = c.post("/login", content=b"xx", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400 and "[BAD_FORM]" in r.text and "Formulaire illisible" in r.text
    r = c.post("/login", content=b"xx", headers={"content-type": "multipart/form-data",
                                                  "accept": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "BAD_FORM"
    assert "could not be read" in r.json()["error"]
    assert not caplog.records and "Traceback" not in r.text
    assert len(web.runtime.store.query("SELECT seq FROM journal")) == journal
    assert web.cabinet.session.state == "locked"


def test_too_long_input_is_refused_never_cut(web):
    store = web.runtime.store
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    intents = len(store.journal_rows(kind="intent"))
    patient = "IPP-" + "0" * 34 + "-42"                      # 41 characters
    r = c.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                  "patient": patient})
    assert r.headers["location"] == "/withdraw"
    page = c.get("/withdraw").text
    assert "[FIELD_TOO_LONG]" in page and "40 caractères au plus" in page
    r = c.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                  "patient": patient}, headers={"accept": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "FIELD_TOO_LONG"
    assert "40 characters at most" in r.json()["error"]
    assert len(store.journal_rows(kind="intent")) == intents
    assert web.cabinet.session.op is None
    # Exactly at the limit: recorded as typed.
    r = c.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                  "patient": patient[:40]})
    assert r.headers["location"] == "/operation"
    wait_for(web, lambda: web.cabinet.session.op is not None)
    assert store.journal_rows(kind="intent")[-1]["patient"] == patient[:40]


def test_restock_refuses_an_expiry_or_lot_with_anything_after_it(web):
    store = web.runtime.store
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")
    pocket = store.query("SELECT drawer, row, col FROM pockets WHERE drug='PARA500'")[0]
    url = f"/restock/{pocket['drawer']}/{pocket['row']}/{pocket['col']}"
    intents = len(store.journal_rows(kind="intent"))
    for lot, expiry in (("L1", "2031-01-15 <- checked? no: 2020"), ("L" * 41, "2031-01-15")):
        r = c.post(url, data={"csrf": token, "scan": "PARA500", "qty": "1", "lot": lot,
                              "expiry": expiry})
        assert r.headers["location"] == url
        assert "[FIELD_TOO_LONG]" in c.get(url).text
    assert len(store.journal_rows(kind="intent")) == intents
    assert web.cabinet.session.op is None


def test_deactivating_the_nurse_at_the_cabinet_locks_it(web):
    cab = web.cabinet
    nurse = web.client(host="127.0.0.1")
    login(nurse, "ide1")
    ph = web.client()
    pt = ph_login(ph)
    assert ph.post("/pharmacy/users/ide1/deactivate",
                   data={"csrf": pt, "confirm": "ide1"}).status_code == 303
    wait_for(web, lambda: cab.session.state == "locked")
    assert web.runtime.store.journal_rows(kind="logout")[-1]["code"] == "DEACTIVATED"
    assert nurse.get("/menu").headers["location"] == "/"
    login(web.client(host="127.0.0.1"), "ide2")     # the cabinet is free for the next nurse
    assert cab.session.user.id == "ide2"


def test_a_nurse_deactivated_during_her_withdrawal_finishes_it_then_the_cabinet_locks(web):
    cab = web.cabinet
    store = web.runtime.store
    nurse = web.client(host="127.0.0.1")
    token = login(nurse, "ide1")
    r = nurse.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "2",
                                      "patient": "P1"})
    assert r.headers["location"] == "/operation"
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    left = cab.session.op.expected_after
    ph = web.client()
    pt = ph_login(ph)
    assert ph.post("/pharmacy/users/ide1/deactivate",
                   data={"csrf": pt, "confirm": "ide1"}).status_code == 303
    # The drawer is open: she still counts and closes it...
    assert cab.session.user.id == "ide1" and nurse.get("/operation").status_code == 200
    assert nurse.post("/operation/count", data={"csrf": token, "count": str(left)}
                      ).status_code == 303
    nurse.post("/sim/close", data={"csrf": token, "drawer": "A"})
    # ...and the cabinet locks as soon as the operation is over, nothing lost.
    wait_for(web, lambda: cab.session.state == "locked")
    assert store.journal_rows(kind="withdraw")[-1]["qty"] == 2
    assert store.journal_rows(kind="logout")[-1]["code"] == "DEACTIVATED"
    assert not [a for a in cab.alarms.list() if a["kind"] == "discrepancy"]
    assert nurse.get("/menu").headers["location"] == "/"


def test_a_pharmacist_deactivated_during_her_withdrawal_can_only_finish_it(web):
    """Her session at the cabinet outlives the deactivation only for her drawer: the pages
    that manage users, resolve alarms or show the journal are closed to her at once."""
    cab = web.cabinet
    store = web.runtime.store
    c = web.client(host="127.0.0.1")
    token = login(c, "pharma1")
    c.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1", "patient": "P1"})
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    left = cab.session.op.expected_after
    alarm = web.portal.call(functools.partial(_check, lambda: cab.alarms.raise_(
        "discrepancy", Where("IBU400", "A", 0, 1), "test")))
    admin = web.client()
    at = ph_login(admin, "admin1")
    assert admin.post("/pharmacy/users/pharma1/deactivate",
                      data={"csrf": at, "confirm": "pharma1"}).status_code == 303
    before = len(store.journal_rows())
    for path, data in [("/pharmacy/users", {"id": "ide7", "name": "X", "role": "pharmacist",
                                            "pin": "583920", "lang": "fr"}),
                       ("/pharmacy/users/ide2/deactivate", {}),
                       (f"/pharmacy/alarms/{alarm}/resolve", {"note": "x"})]:
        r = c.post(path, data={"csrf": token, **data}, headers={"accept": "application/json"})
        assert r.status_code == 403 and r.json()["code"] == "USER_INACTIVE", path
    assert len(store.journal_rows()) == before
    assert not store.query("SELECT 1 FROM users WHERE id='ide7'")
    assert cab.alarms.get(alarm)["state"] == "open"
    for path in ("/pharmacy/journal", "/pharmacy/users", "/menu"):
        assert c.get(path).headers["location"] == "/operation", path
    # What her open drawer needs still works, and then the cabinet locks.
    assert c.get("/operation").status_code == 200
    assert c.post("/operation/count", data={"csrf": token, "count": str(left)}
                  ).status_code == 303
    c.post("/sim/close", data={"csrf": token, "drawer": "A"})
    wait_for(web, lambda: cab.session.state == "locked")
    assert store.journal_rows(kind="withdraw")[-1]["qty"] == 1


def test_a_second_start_while_an_operation_runs_is_refused_with_its_code(web):
    """A double tap, or a second tab: the cabinet refuses the new operation, and the page
    must say so (409 OPERATION_RUNNING) rather than take the running operation for the one
    it just asked for and answer as if it had started."""
    cab = web.cabinet
    store = web.runtime.store
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    c.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1", "patient": "P1"})
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    running = cab.session.op
    intents = len(store.journal_rows(kind="intent"))
    for path, data in [("/withdraw", {"drug": "IBU400", "qty": "1", "patient": "P2"}),
                       ("/count", {"drawer": "A", "row": "0", "col": "0"})]:
        r = c.post(path, data={"csrf": token, **data}, headers={"accept": "application/json"})
        assert r.status_code == 409 and r.json()["code"] == "OPERATION_RUNNING", path
    r = c.post("/withdraw", data={"csrf": token, "drug": "IBU400", "qty": "1",
                                  "patient": "P2"})
    assert r.headers["location"] == "/withdraw"
    assert "[OPERATION_RUNNING]" in c.get("/operation").text
    assert cab.session.op is running
    assert len(store.journal_rows(kind="intent")) == intents


def test_the_offline_notice_is_in_the_readers_language(web):
    """The notice the page shows when the controller stops answering is the server's text in
    the page's language (French lock screen, English after the switch, the nurse's own
    language once logged in); the script only shows or hides that element."""
    pattern = re.compile(r'<p id="offline" class="[^"]*hidden[^"]*"[^>]*>([^<]+)</p>')

    def notice(page):
        match = pattern.search(page)
        assert match, "no offline notice in the page"
        return html.unescape(match.group(1))

    c = web.client(host="127.0.0.1")
    assert notice(c.get("/").text) == FR["live.offline"]
    c.post("/lang", data={"csrf": page_csrf(c), "lang": "en"})
    assert notice(c.get("/").text) == EN["live.offline"]
    login(c, "ide1")  # reads French
    assert notice(c.get("/menu").text) == FR["live.offline"]
    p = web.client()
    ph_login(p, "admin1")  # reads English
    assert notice(p.get("/pharmacy").text) == EN["live.offline"]
    assert 'getElementById("offline")' in c.get("/static/app.js").text


def test_a_body_over_64_kib_is_refused_as_too_large_and_changes_nothing(web):
    from controller.web.limits import MAX_BODY

    assert MAX_BODY == 64 * 1024
    c = web.client(host="127.0.0.1")
    token = page_csrf(c)
    journal = len(web.runtime.store.query("SELECT seq FROM journal"))
    form = {"csrf": token, "user_id": "ide1", "pin": PINS["ide1"]}
    big = "x" * MAX_BODY
    r = c.post("/login", data={**form, "pad": big})  # Content-Length says it
    assert r.status_code == 413 and "[BODY_TOO_LARGE]" in r.text
    assert "Envoi trop volumineux" in r.text
    r = c.post("/login", data={**form, "pad": big}, headers={"accept": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "BODY_TOO_LARGE"
    # Chunked: no length to check beforehand, refused once the bytes pass the limit.
    encoded = "&".join(f"{k}={v}" for k, v in {**form, "pad": big}.items()).encode()
    r = c.post("/login", content=iter([encoded[:40000], encoded[40000:]]),
               headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and "[BODY_TOO_LARGE]" in r.text
    assert len(web.runtime.store.query("SELECT seq FROM journal")) == journal
    assert web.cabinet.session.state == "locked"
    # Just under the limit is an ordinary form.
    r = c.post("/login", data={**form, "pad": "x" * (MAX_BODY - 200)})
    assert r.status_code == 303 and r.headers["location"] == "/menu"


def test_a_form_body_that_is_not_a_proper_form_is_refused_as_bad_form(web):
    c = web.client(host="127.0.0.1")
    token = page_csrf(c)
    journal = len(web.runtime.store.query("SELECT seq FROM journal"))
    urlencoded = {"content-type": "application/x-www-form-urlencoded"}
    bodies = [
        # A broken UTF-8 escape: Starlette would have made it U+FFFD and logged her in.
        (f"csrf={token}&user_id=ide1&pin={PINS['ide1']}&patient=%ff".encode(), urlencoded),
        (f"csrf={token}&user_id=ide\xe91&pin=1".encode("latin-1"), urlencoded),
        ("&".join([f"csrf={token}", *[f"f{i}=1" for i in range(200)]]).encode(), urlencoded),
        (b"not a form", {"content-type": "text/plain", "x-csrf-token": token}),
    ]
    for body, headers in bodies:
        r = c.post("/login", content=body, headers=headers)
        assert r.status_code == 400 and "[BAD_FORM]" in r.text, body[:40]
    assert len(web.runtime.store.query("SELECT seq FROM journal")) == journal
    assert web.cabinet.session.state == "locked"


def test_the_session_cookie_is_secure_over_https_only(web):
    c = web.client(base_url="https://cabinet.example")
    cookie = c.get("/").headers["set-cookie"]
    assert "; secure" in cookie.lower() and "httponly" in cookie.lower()
    # (away from the cabinet, the pharmacy login: the cabinet's session is the kiosk's)
    ph_login(c)  # the login's new token is Secure too, and the browser sends it back
    assert "Dr Anne Rousseau" in c.get("/pharmacy").text
    # The kiosk: plain HTTP over loopback, where a Secure cookie would be dropped.
    k = web.client(host="127.0.0.1")
    assert "secure" not in k.get("/").headers["set-cookie"].lower()
    login(k, "ide1")
    assert "Claire Martin" in k.get("/menu").text


def test_the_server_believes_forwarding_headers_on_the_proxy_socket_only(web):
    """Through the app as the real server wraps it: the site's TLS proxy, on its socket, is
    believed (HTTPS makes the cookie Secure; its client is remote, so no names listed);
    the same headers on loopback TCP are refused, and from any other peer ignored (no
    Secure cookie, and a forged 127.0.0.1 does not make a remote browser the kiosk)."""
    from controller.web.server import build_server

    server = build_server(web.runtime, "127.0.0.1", 0)
    server.config.load()

    def get(peer, **headers):
        c = TestClient(through(server.config.loaded_app, peer), follow_redirects=False,
                       client=(peer, 50000), headers=headers)
        c.portal = web.portal
        r = c.get("/")
        names = 'class="userlist"' in r.text
        if r.status_code == 400:
            return r.text, names
        # The lock screen is the kiosk's; anyone else is sent to the pharmacy login.
        assert (r.status_code, r.headers.get("location")) == (
            (200, None) if names else (303, "/pharmacy/login")), (peer, headers)
        return r.headers.get("set-cookie", ""), names

    cookie, names = get("127.0.0.1")  # the kiosk, in plain HTTP: names to touch
    assert names and cookie and "Secure" not in cookie
    proxied = {"x-forwarded-proto": "https", "x-forwarded-for": "10.1.2.3"}
    cookie, names = get(SOCKET, **proxied)
    assert "Secure" in cookie and not names
    refused, names = get("127.0.0.1", **proxied)
    assert "[PROXY_NOT_ON_SOCKET]" in refused and not names
    cookie, names = get("10.0.0.9", **{"x-forwarded-proto": "https",
                                       "x-forwarded-for": "127.0.0.1"})
    assert cookie and "Secure" not in cookie and not names


ATTACKS = [
    # (TCP peer, or SOCKET, headers, the client key the limits use, is it the kiosk)
    # The kiosk: the touchscreen's browser on loopback TCP, which sends no proxy header.
    ("127.0.0.1", [], "kiosk", True),
    ("::1", [], "kiosk", True),
    ("::ffff:127.0.0.1", [], "kiosk", True),
    # Through the site's TLS proxy, on its socket: keyed on the address it added last.
    (SOCKET, [("x-forwarded-for", "6.6.6.6, 10.1.2.3")], "fwd:10.1.2.3", False),
    (SOCKET, [("x-real-ip", "10.1.2.3")], "fwd:10.1.2.3", False),
    (SOCKET, [("forwarded", 'for=6.6.6.6, for="[2001:db8::7]:4711";proto=https')],
     "fwd:2001:db8::7", False),
    (SOCKET, [("x-forwarded-for", "10.1.2.3:51000")], "fwd:10.1.2.3", False),
    # A proxy that adds its own X-Forwarded-For line (HAProxy) after the client's forged
    # one: the proxy's, the last, is the client; the forged first line must not be it,
    # or a client escapes its failed-login allowance by writing a new one each time.
    (SOCKET, [("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "10.1.2.3")],
     "fwd:10.1.2.3", False),
    # A client (or a forged header passed on by the proxy) naming loopback: a proxied
    # client like any other, never the kiosk.
    (SOCKET, [("x-forwarded-for", "127.0.0.1")], "fwd:127.0.0.1", False),
    # On its socket, a proxy that names no client (none, only the scheme or Via:, an empty
    # or unusable address) is refused: never the kiosk, nor one allowance for everyone.
    (SOCKET, [], None, False),
    (SOCKET, [("x-forwarded-proto", "https")], None, False),
    (SOCKET, [("via", "1.1 nginx")], None, False),
    (SOCKET, [("x-forwarded-for", "")], None, False),
    (SOCKET, [("x-forwarded-for", "unknown")], None, False),
    (SOCKET, [("forwarded", "for=_hidden")], None, False),
    # Forwarding headers on loopback TCP: a proxy at the wrong door, or a process on the Pi
    # posing as one. Refused: ignored, they would make every remote browser the kiosk.
    ("127.0.0.1", [("x-forwarded-for", "10.1.2.3")], None, False),
    ("127.0.0.1", [("x-forwarded-proto", "https")], None, False),
    ("127.0.0.1", [("via", "1.1 nginx")], None, False),
    ("127.0.0.1", [("x-forwarded-for", "")], None, False),
    ("127.0.0.2", [("x-forwarded-for", "10.1.2.3")], None, False),
    ("::1", [("forwarded", "for=10.1.2.3")], None, False),
    # Anyone else writing those headers is the address they connect from.
    ("10.0.0.9", [("x-forwarded-for", "127.0.0.1")], "peer:10.0.0.9", False),
    ("10.0.0.9", [("x-real-ip", "127.0.0.1"), ("forwarded", "for=127.0.0.1"),
                  ("x-forwarded-proto", "https")], "peer:10.0.0.9", False),
    ("testclient", [], "peer:testclient", False),
]


def scope_of(peer: str, headers: list[tuple[str, str]]) -> dict[str, object]:
    """A request's ASGI scope as uvicorn makes it, on TCP from ``peer`` or on the socket."""
    where: dict[str, object] = (
        {"server": (SOCKET, None), "client": None} if peer == SOCKET
        else {"server": ("127.0.0.1", 8080), "client": (peer, 50000)})
    return {"type": "http", **where,
            "headers": [(k.encode(), v.encode()) for k, v in headers]}


@pytest.mark.parametrize(("peer", "headers", "key", "kiosk"), ATTACKS)
def test_forged_forwarding_headers_make_nobody_the_kiosk_nor_someone_else(peer, headers,
                                                                          key, kiosk):
    from controller.web.limits import identify

    client = identify(scope_of(peer, headers))
    assert client.kiosk == kiosk
    if key is None:
        assert client.refused is not None and client.refused.code in (
            "PROXY_CLIENT_MISSING" if peer == SOCKET else "PROXY_NOT_ON_SOCKET")
    else:
        assert (client.key, client.refused) == (key, None)


def test_the_server_decides_who_is_asking_in_one_place(web, monkeypatch):
    """Through the app as the real server wraps it. uvicorn rewrote the client from
    X-Forwarded-For for 127.0.0.1 and ::1, then limits.py read the same headers again on
    the rewritten client: the two disagreed (127.0.0.2; a proxy that sends only
    X-Forwarded-Proto was the kiosk) and a proxied client's key depended on which layer
    ran. One place now decides the client, whether it is the kiosk and whether the page
    came over HTTPS: every case of ATTACKS gives the same answer as limits.py alone."""
    from controller.web.server import build_server

    server = build_server(web.runtime, "127.0.0.1", 0)
    server.config.load()
    throttle = server.config.app.state.web.throttle
    keys: list[str] = []
    real_failed = throttle.failed
    monkeypatch.setattr(throttle, "failed", lambda key: (keys.append(key), real_failed(key)))

    def browser(peer):
        c = TestClient(through(server.config.loaded_app, peer), follow_redirects=False,
                       client=(peer, 50000))
        c.portal = web.portal
        return c

    def ask(peer, headers):
        names = 'class="userlist"' in browser(peer).get("/", headers=headers).text
        c = browser(peer)
        r = c.get("/pharmacy/login", headers=headers)
        assert r.status_code == 200
        # Sent back by hand: a browser on the proxy's HTTPS side returns a Secure cookie,
        # which this client, talking plain HTTP to the app, would keep to itself.
        cookie = r.headers["set-cookie"].split(";")[0]
        form = {"csrf": csrf_of(r.text), "user_id": "nobody", "pin": "000001"}
        c.post("/pharmacy/login", headers=[*headers, ("cookie", cookie)], data=form)
        cabinet = c.post("/login", headers=[*headers, ("cookie", cookie),
                                            ("accept", "application/json")], data=form)
        return (names, "Secure" in r.headers["set-cookie"], cabinet.status_code,
                cabinet.json()["code"])

    def refused(peer, headers):
        """Every request refused before the app: no page, no cookie, no PIN, no count."""
        before = len(web.runtime.store.query("SELECT seq FROM journal"))
        c = browser(peer)
        for method, path in (("GET", "/"), ("GET", "/pharmacy/login"),
                             ("POST", "/pharmacy/login"), ("POST", "/login")):
            r = c.request(method, path, headers=[*headers, ("accept", "application/json")],
                          data={"user_id": "ide1", "pin": "482913"})
            assert r.status_code == 400 and "set-cookie" not in r.headers, (peer, headers)
            assert r.json()["error"] != r.json()["error_fr"]
            codes.add(r.json()["code"])
        assert len(web.runtime.store.query("SELECT seq FROM journal")) == before

    for peer, headers, key, kiosk in ATTACKS:
        keys.clear()
        codes: set[str] = set()
        if key is None:
            refused(peer, headers)
            assert codes == {"PROXY_CLIENT_MISSING" if peer == SOCKET
                             else "PROXY_NOT_ON_SOCKET"}, (peer, headers)
            assert keys == [], (peer, headers)
            continue
        https = peer == SOCKET and (
            ("x-forwarded-proto", "https") in headers or "proto=https" in str(headers))
        names, secure, status, code = ask(peer, headers)
        assert (names, secure) == (kiosk, https), (peer, headers)
        # The cabinet's login: the kiosk's PIN is checked, anyone else's refused unchecked.
        assert (status, code) == ((401, "AUTH_FAILED") if kiosk
                                  else (403, "CABINET_KIOSK_ONLY")), (peer, headers)
        assert keys == ([] if kiosk else [key]), (peer, headers)


@pytest.mark.parametrize("page_too", [False, True])
def test_a_500_page_carries_the_security_headers(web, monkeypatch, caplog, page_too):
    """An error outside the pages' own handler reaches Starlette's last-resort handler, which
    answers from outside every middleware; ``page_too``: even its error page fails."""
    from controller.web.app import Web

    normal = web.client().get("/")
    expected = {k: normal.headers[k] for k in (
        "content-security-policy", "x-frame-options", "x-content-type-options",
        "referrer-policy", "cache-control")}
    assert "frame-ancestors 'none'" in expected["content-security-policy"]

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Web, "keep", boom)
    if page_too:
        monkeypatch.setattr(Web, "render", boom)
    r = web.client(raise_server_exceptions=False).get("/")
    assert r.status_code == 500 and "INTERNAL" in r.text
    assert "secret internals" not in r.text and "Traceback" not in r.text
    for name, value in expected.items():
        assert r.headers.get(name) == value, name


def test_witness_pins_lock_the_witness_and_the_kiosk_is_not_limited(web, monkeypatch):
    """The waste form's witness PIN is a PIN like the login's: wrong ones count against the
    witness's account (which locks; then even the right PIN is refused unchecked). The form
    is the cabinet session's, at the kiosk only (a remote client has no waste form to guess
    on, test_web_security): like its logins, the kiosk is not limited per client, so wrong
    guesses of other ids go on being checked and the right PIN of another witness passes."""
    from controller.web.limits import MAX_FAILURES

    cab = web.cabinet
    limit = cab.settings.max_pin_failures
    checks = []
    real_verify = cab.hasher.verify
    monkeypatch.setattr(cab.hasher, "verify", lambda h, p: checks.append(1) or real_verify(h, p))
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    checks.clear()

    def waste(witness, pin):
        r = c.post("/waste", data={"csrf": token, "drug": "MORPH10", "qty": "1",
                                   "witness": witness, "witness_pin": pin})
        assert r.headers["location"] == "/waste"
        return c.get("/waste").text

    for _ in range(limit):
        page = waste("ide2", "000001")
    assert "[AUTH_LOCKED]" in page
    row = web.runtime.store.query("SELECT failed, locked FROM users WHERE id='ide2'")[0]
    assert row["locked"] == 1 and row["failed"] == limit
    assert "[AUTH_LOCKED]" in waste("ide2", PINS["ide2"])  # locked: the right PIN too
    for i in range(MAX_FAILURES - limit + 1):
        assert "[AUTH_FAILED]" in waste(f"guess{i}", "000001")
    assert len(checks) == MAX_FAILURES + 1  # the locked witness's PIN was never checked
    assert cab.session.op is None
    r = c.post("/waste", data={"csrf": token, "drug": "MORPH10", "qty": "1",
                               "witness": "pharma1", "witness_pin": PINS["pharma1"]})
    assert r.headers["location"] == "/operation"


def test_the_lock_screen_lists_the_users_on_the_kiosk_only(web):
    kiosk = web.client(host="127.0.0.1").get("/").text
    assert "data-user=\"ide1\"" in kiosk and "Claire Martin" in kiosk
    login(web.client(host="127.0.0.1"), "ide1")  # typing the id logs in too
    web.portal.call(web.cabinet.logout)
    for c in (web.client(host="10.0.0.5"),
              web.client(host=SOCKET, headers={"x-forwarded-for": "10.0.0.5"})):
        # Elsewhere, no lock screen at all (its login is the kiosk's): the pharmacy login.
        assert c.get("/").headers["location"] == "/pharmacy/login"
        page = c.get("/pharmacy/login").text
        assert "data-user" not in page and "Claire Martin" not in page
        assert "ide1" not in page and "pharma1" not in page
        assert 'name="user_id"' in page


def test_names_are_in_alphabetical_order_whatever_their_accents(web):
    """Lists were sorted by code point: Élodie came after Zoé at the end of the lock screen's
    list (which scrolls), énoxaparine after zolpidem in the drug list and the register's."""
    from controller import people
    from controller.auth import User

    admin = User("admin1", "IT Admin", "admin", "en")
    for uid, name in (("ide7", "Élodie Durand"), ("ide8", "Zoé Lambert")):
        web.portal.call(lambda uid=uid, name=name: people.create_user(
            web.cabinet, uid, name, "nurse", "583920", actor=admin))
    lock = web.client(host="127.0.0.1").get("/").text
    users = re.findall(r'data-user="([^"]+)"', lock)
    assert users.index("ide1") < users.index("ide7") < users.index("ide2") < users.index("ide8")
    c = web.client(host="127.0.0.1")
    login(c, "ide1")
    drugs = re.findall(r'name="drug" value="([^"]+)"', c.get("/withdraw").text)
    assert drugs.index("KCL10") < drugs.index("ENOX4000") < drugs.index("FUROS40")
    assert drugs.index("LORAZ1") < drugs.index("METOP50") < drugs.index("MORPH10")
    web.portal.call(web.cabinet.logout)
    ph_login(c)
    options = re.findall(r'<option value="([A-Z0-9]+)"', c.get("/pharmacy/register").text)
    assert options.index("KCL10") < options.index("ENOX4000") < options.index("FUROS40")


def test_a_user_id_with_dots_slashes_or_control_characters_is_refused(web):
    c = web.client()
    token = ph_login(c)
    before = web.runtime.store.query("SELECT COUNT(*) AS n FROM users")[0]["n"]
    for bad in ("..", "../x", "a/b", "x\x01y", ".hidden"):
        r = c.post("/pharmacy/users", data={"csrf": token, "id": bad, "name": "N",
                                            "role": "nurse", "pin": "583920", "lang": "fr"},
                   headers={"accept": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "BAD_USER_ID", bad
    assert web.runtime.store.query("SELECT COUNT(*) AS n FROM users")[0]["n"] == before


def test_a_nursing_assistant_is_offered_only_the_drugs_she_may_take(web):
    """The assistant's withdrawal list offered all eighteen drugs, morphine and insulin
    among them: she chose one, typed the patient, touched Open the drawer and only then
    read FORBIDDEN_DRUG. The list offers what her role allows; the cabinet still refuses
    anything else (a forged form)."""
    c = web.client(host="127.0.0.1")  # the kiosk: the only place a cabinet session opens
    token = login(c, "as1")
    page = c.get("/withdraw").text
    offered = set(re.findall(r'name="drug" value="([^"]+)"', page))
    assert offered == {"PARA500", "PARA1G", "IBU400"}
    r = c.post("/withdraw", data={"csrf": token, "drug": "MORPH10", "qty": "1",
                                  "patient": "P1"})
    assert r.status_code == 303 and r.headers["location"] == "/withdraw"
    assert "FORBIDDEN_DRUG" in c.get("/withdraw").text
    assert web.cabinet.session.op is None
    # a nurse still gets every drug
    c.post("/logout", data={"csrf": token})
    c = web.client(host="127.0.0.1")
    login(c, "ide1")
    offered = set(re.findall(r'name="drug" value="([^"]+)"', c.get("/withdraw").text))
    assert "MORPH10" in offered and len(offered) == 18


def returning_page(web):
    """The operation screen at the kiosk (the only place a cabinet session opens) while a
    nurse returns one paracetamol 1 g and its drawer is open."""
    cab = web.cabinet
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    c.post("/return", data={"csrf": token, "drug": "PARA1G", "qty": "1", "patient": "P1"})
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    return c.get("/operation").text


def test_the_operation_screen_names_the_drug_with_its_strength(web):
    """Beside the open drawer the screen read "paracétamol PARA1G": the cabinet holds
    paracétamol 500 mg and 1 g, and the nurse returning a tablet had only the drug id to
    tell which one the drawer was opened for. The side names it as the lists do: name,
    strength, form."""
    page = returning_page(web)
    side = re.search(r'<p class="opdrug">(.*?)</p>', page, re.S)
    assert side is not None
    words = re.sub(r"<[^>]+>", " ", side.group(1)).split()
    assert words[:4] == ["paracétamol", "1", "g", "comprimé"], words


def test_the_operation_screen_says_the_session_stays_open_until_the_drawer_closes(web):
    """With the drawer open the session never times out (``Cabinet._timeout``), and the
    screen said nothing of it: a nurse walking away from an open drawer left her session
    open for the next person. Beside the Close button, in both languages."""
    from controller.web.i18n import EN, FR

    page = returning_page(web)
    form = re.search(r'<form[^>]*id="close-form".*?</form>', page, re.S)
    assert form is not None
    assert html.unescape(FR["op.stays_open"]) in html.unescape(form.group(0))
    assert "until the drawer is closed" in EN["op.stays_open"]
    assert "tant que le tiroir" in FR["op.stays_open"]
