"""Badges through the pages: an admin enrols one from the users page, the lock screen takes
it and asks its holder's PIN; nothing about the UID is shown, kept, logged or journaled."""

from __future__ import annotations

import html
import json
import logging

import pytest
from test_web import login, page_csrf, ph_login, running_web
from web_helpers import PINS, SOCKET

from controller.web.limits import MAX_FAILURES

UID = "04A1B2C3D4E580"


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def enrol(web, user="ide1", uid=UID):
    admin = web.client()
    token = ph_login(admin, "admin1")
    r = admin.post(f"/pharmacy/users/{user}/badge", data={"csrf": token, "badge": uid})
    assert r.status_code == 303 and r.headers["location"] == "/pharmacy/users"
    return admin, token


def badge_in(c, uid=UID, page="/"):
    """The reader types the UID into the lock screen's badge field, then Enter; ``page``:
    where the CSRF token is read (a browser elsewhere than the kiosk is sent from the lock
    screen to the pharmacy login)."""
    return c.post("/login/badge", data={"csrf": page_csrf(c, page), "badge": uid})


def test_a_badge_then_the_pin_logs_in_and_the_journal_says_so(web, caplog):
    caplog.set_level(logging.DEBUG)
    admin, _ = enrol(web)
    users = admin.get("/pharmacy/users").text
    assert 'id="has-badge-ide1"' in users and 'id="badge-revoke-ide1"' in users
    kiosk = web.client(host="127.0.0.1")
    assert 'id="badge"' in kiosk.get("/").text and "Présentez votre badge" in kiosk.get(
        "/").text
    r = badge_in(kiosk, UID.lower())
    assert r.status_code == 303 and r.headers["location"] == "/login/pin"
    page = kiosk.get("/login/pin").text
    assert "Bonjour Claire Martin" in page and 'id="badge-not-me"' in page
    assert web.cabinet.session.state == "locked"
    token = page_csrf(kiosk, "/login/pin")
    r = kiosk.post("/login/pin", data={"csrf": token, "pin": PINS["ide1"]})
    assert r.status_code == 303 and r.headers["location"] == "/menu"
    assert web.cabinet.session.user.id == "ide1"
    entry = web.runtime.store.journal_rows(kind="login")[-1]
    assert entry["user"] == "ide1" and json.loads(entry["detail"]) == {"by": "badge"}
    everything = json.dumps(web.runtime.store.journal_rows()) + caplog.text
    assert UID not in everything and UID.lower() not in everything


def test_a_wrong_pin_after_a_badge_counts_and_the_pin_page_stays(web):
    enrol(web)
    kiosk = web.client(host="127.0.0.1")
    badge_in(kiosk)
    token = page_csrf(kiosk, "/login/pin")
    r = kiosk.post("/login/pin", data={"csrf": token, "pin": "000001"})
    assert r.headers["location"] == "/login/pin"
    page = kiosk.get("/login/pin").text
    assert "[AUTH_FAILED]" in page and "Bonjour Claire Martin" in page
    assert web.runtime.store.query("SELECT failed FROM users WHERE id='ide1'")[0][
        "failed"] == 1


def test_not_me_forgets_the_badge(web):
    enrol(web)
    kiosk = web.client(host="127.0.0.1")
    badge_in(kiosk)
    kiosk.get("/")  # "Not me"
    r = kiosk.get("/login/pin")
    assert r.status_code == 303 and r.headers["location"] == "/"
    token = page_csrf(kiosk)
    r = kiosk.post("/login/pin", data={"csrf": token, "pin": PINS["ide1"]})
    assert "[BADGE_AGAIN]" in kiosk.get("/").text
    assert web.cabinet.session.state == "locked"


def test_an_unknown_badge_is_refused_clearly_and_summed_up_without_its_uid(web):
    kiosk = web.client(host="127.0.0.1")
    for i in range(3):
        r = badge_in(kiosk, f"DEADBEEF{i:02d}")
        assert r.headers["location"] == "/"
        page = kiosk.get("/").text
        assert "[AUTH_FAILED]" in page and "badge non reconnu" in page
        # Badges are enrolled by IT (manage_badges: admins), not by a pharmacist.
        assert "administrateur" in page and "pharmacien" not in page
        assert f"DEADBEEF{i:02d}" not in page
    web.cabinet._journal_unknown(web.cabinet.clock.monotonic() + 3600)
    rows = [json.loads(r["detail"]) for r in web.runtime.store.journal_rows(kind="auth_failed")]
    assert {"reason": "unknown badge", "attempts": 2} in rows
    assert "DEADBEEF" not in json.dumps(web.runtime.store.journal_rows())


def test_a_badge_is_taken_at_the_cabinet_only(web):
    """Anyone who can reach the server could otherwise try card numbers (a batch's are
    often sequential) and learn who holds each: the name the PIN page greets. The badge
    reader is at the cabinet; elsewhere the lock screen has no badge field, and both badge
    steps are refused before any lookup (nothing counted, nothing journaled)."""
    enrol(web)
    before = len(web.runtime.store.journal_rows())
    remote = web.client(host="10.0.0.5")
    assert 'id="badge"' not in remote.get("/").text
    for _ in range(MAX_FAILURES + 1):
        r = badge_in(remote, page="/pharmacy/login")
        assert r.status_code == 403 and "BADGE_KIOSK_ONLY" in r.text
        assert "Claire" not in r.text and UID not in r.text
    token = page_csrf(remote, "/pharmacy/login")
    r = remote.post("/login/pin", data={"csrf": token, "pin": PINS["ide1"]})
    assert r.status_code == 403 and "BADGE_KIOSK_ONLY" in r.text
    assert remote.get("/login/pin").status_code == 403
    # A browser through the site's proxy (on its socket) is not the kiosk either.
    proxied = web.client(host=SOCKET, headers={"X-Forwarded-For": "10.0.0.6"})
    assert badge_in(proxied, page="/pharmacy/login").status_code == 403
    assert len(web.runtime.store.journal_rows()) == before
    assert web.runtime.store.query("SELECT failed FROM users WHERE id='ide1'")[0][
        "failed"] == 0
    ph_login(remote)  # nothing counted against this client


def test_a_badge_pending_at_the_cabinet_cannot_be_finished_from_elsewhere(web):
    """Even with the kiosk's own cookie (copied, or fixed beforehand by someone who gave the
    browser a token she knows), the PIN step of a badge is the cabinet's only."""
    enrol(web)
    kiosk = web.client(host="127.0.0.1")
    badge_in(kiosk)
    token = page_csrf(kiosk, "/login/pin")
    remote = web.client(host="10.0.0.5")
    remote.cookies.update(kiosk.cookies)
    r = remote.post("/login/pin", data={"csrf": token, "pin": PINS["ide1"]})
    assert r.status_code == 403 and "BADGE_KIOSK_ONLY" in r.text
    assert web.cabinet.session.state == "locked"


def test_noise_from_the_reader_is_refused_and_changes_nothing(web):
    kiosk = web.client(host="127.0.0.1")
    before = len(web.runtime.store.journal_rows())
    for noise in ("A" * 64, "04A1\x01B2C3", "04 A1"):
        r = badge_in(kiosk, noise)
        assert r.headers["location"] == "/"
        page = kiosk.get("/").text
        assert "[BAD_BADGE]" in page and noise not in page
    assert len(web.runtime.store.journal_rows()) == before


def test_a_locked_person_s_badge_is_refused_like_her_id(web):
    enrol(web)
    web.runtime.store.conn.execute("UPDATE users SET locked=1 WHERE id='ide1'")
    kiosk = web.client(host="127.0.0.1")
    badge_in(kiosk)
    assert "[AUTH_LOCKED]" in kiosk.get("/").text
    assert kiosk.get("/login/pin").headers["location"] == "/"


def test_only_an_admin_enrols_from_the_users_page(web):
    ph = web.client()
    token = ph_login(ph, "pharma1")
    assert 'id="badge-ide1"' not in ph.get("/pharmacy/users").text
    r = ph.post("/pharmacy/users/ide1/badge", data={"csrf": token, "badge": UID})
    assert r.status_code == 403
    assert web.runtime.store.query("SELECT * FROM badges") == []
    kiosk = web.client(host="127.0.0.1")
    token = login(kiosk, "ide1")
    r = kiosk.post("/pharmacy/users/ide2/badge", data={"csrf": token, "badge": UID})
    assert r.status_code == 403
    assert web.runtime.store.query("SELECT * FROM badges") == []


def test_a_badge_taken_is_refused_and_a_revoked_badge_opens_nothing(web):
    admin, token = enrol(web)
    r = admin.post("/pharmacy/users/ide2/badge", data={"csrf": token, "badge": UID})
    page = admin.get(r.headers["location"]).text
    assert "[BADGE_TAKEN]" in page and UID not in page
    assert [r["user"] for r in web.runtime.store.query("SELECT user FROM badges")] == ["ide1"]
    r = admin.post("/pharmacy/users/ide1/badge/revoke", data={"csrf": token})
    assert "ide1's badge revoked" in html.unescape(admin.get(r.headers["location"]).text)
    kiosk = web.client(host="127.0.0.1")
    badge_in(kiosk)
    assert "[AUTH_FAILED]" in kiosk.get("/").text
    entry = web.runtime.store.journal_rows(kind="badge_revoked")[-1]
    assert entry["user"] == "admin1" and json.loads(entry["detail"]) == {"id": "ide1"}


def test_a_badge_left_on_the_screen_is_forgotten_after_its_minute(web, monkeypatch):
    """Nobody typed the PIN: the next person at the cabinet does not find the name waiting
    for a PIN; the badge is asked again."""
    import time
    from types import SimpleNamespace

    from controller.web.sessions import BADGE_PIN_S

    enrol(web)
    kiosk = web.client(host="127.0.0.1")
    badge_in(kiosk)
    token = page_csrf(kiosk, "/login/pin")
    later = time.monotonic() + BADGE_PIN_S + 1
    monkeypatch.setattr("controller.web.app.time", SimpleNamespace(monotonic=lambda: later))
    r = kiosk.post("/login/pin", data={"csrf": token, "pin": PINS["ide1"]})
    assert r.headers["location"] == "/login/pin"
    assert kiosk.get("/login/pin").headers["location"] == "/"
    assert "[BADGE_AGAIN]" in kiosk.get("/").text
    assert web.cabinet.session.state == "locked"


def test_a_badge_read_into_the_id_field_is_not_shown_back(web):
    """The reader types wherever the focus is: a person who touched the id field, then
    presented her badge, sent its UID as a user id. The refused login must not put it back
    in the field (the page, the session's form). A real id typed at the cabinet is kept
    after a wrong PIN, as before; another browser is refused before the id is read
    (CABINET_KIOSK_ONLY) and gets nothing back, so that nothing tells which ids exist."""
    enrol(web)
    kiosk = web.client(host="127.0.0.1")
    for uid in (UID, "04FFEE0011", "9" * 40):  # enrolled, not enrolled, too long
        r = kiosk.post("/login", data={"csrf": page_csrf(kiosk), "user_id": uid, "pin": ""})
        assert r.headers["location"] == "/"
        page = kiosk.get("/").text
        assert ("[AUTH_FAILED]" in page or "[FIELD_TOO_LONG]" in page) and uid not in page
    kiosk.post("/login", data={"csrf": page_csrf(kiosk), "user_id": "ide1", "pin": "000001"})
    assert 'value="ide1"' in kiosk.get("/").text
    remote = web.client(host="10.0.0.5")
    token = page_csrf(remote, "/pharmacy/login")
    for typed in ("ide1", "nobody1"):
        r = remote.post("/login", data={"csrf": token, "user_id": typed, "pin": "000001"})
        assert r.status_code == 403 and "[CABINET_KIOSK_ONLY]" in r.text
        assert typed not in r.text and typed not in remote.get("/pharmacy/login").text


@pytest.mark.parametrize("change", ["revoke", "replace"])
def test_a_badge_revoked_or_replaced_while_its_pin_is_awaited_opens_nothing(web, change):
    """A stolen badge presented, then revoked (or the person given a new one) within its
    minute: its PIN step is refused (BADGE_AGAIN), no PIN is checked or counted, and no
    login is journaled "by badge" for a badge that opens nothing."""
    admin, token = enrol(web)
    kiosk = web.client(host="127.0.0.1")
    badge_in(kiosk)
    pin_token = page_csrf(kiosk, "/login/pin")
    if change == "revoke":
        admin.post("/pharmacy/users/ide1/badge/revoke", data={"csrf": token})
    else:
        admin.post("/pharmacy/users/ide1/badge", data={"csrf": token, "badge": "04FFEE0011"})
    before = len(web.runtime.store.journal_rows())
    r = kiosk.post("/login/pin", data={"csrf": pin_token, "pin": PINS["ide1"]})
    assert r.headers["location"] == "/login/pin"
    assert kiosk.get("/login/pin").headers["location"] == "/"
    assert "[BADGE_AGAIN]" in kiosk.get("/").text
    assert web.cabinet.session.state == "locked"
    assert len(web.runtime.store.journal_rows()) == before


def test_the_pin_page_goes_back_to_the_lock_screen_when_the_badge_s_minute_is_over(web):
    """The server forgets the badge after BADGE_PIN_S; the screen must not go on greeting
    its holder by name for whoever comes next: the page leaves by itself at the same time
    (what is left of the minute, not a new one when the page is reloaded)."""
    import re

    from controller.web.sessions import BADGE_PIN_S

    enrol(web)
    kiosk = web.client(host="127.0.0.1")
    badge_in(kiosk)
    page = kiosk.get("/login/pin").text
    found = re.search(r'<meta http-equiv="refresh" content="(\d+);url=/">', page)
    assert found is not None and 0 < int(found.group(1)) <= BADGE_PIN_S


def test_every_badge_form_needs_its_csrf_token(web):
    """The four badge forms (lock screen, PIN step, enrol, revoke) are refused without
    their page's token, or with another session's, and nothing changes."""
    admin, token = enrol(web)
    kiosk = web.client(host="127.0.0.1")
    own = page_csrf(kiosk)
    before = (web.runtime.store.query("SELECT * FROM badges"),
              len(web.runtime.store.journal_rows()))
    for forged in (None, "forged", token):  # the admin's token is not the kiosk's
        extra = {} if forged is None else {"csrf": forged}
        assert kiosk.post("/login/badge", data={**extra, "badge": UID}).status_code == 403
    badge_in(kiosk)
    for forged in (None, "forged", token):
        extra = {} if forged is None else {"csrf": forged}
        assert kiosk.post("/login/pin", data={**extra, "pin": PINS["ide1"]}
                          ).status_code == 403
    for forged in (None, "forged", own):
        extra = {} if forged is None else {"csrf": forged}
        r = admin.post("/pharmacy/users/ide2/badge", data={**extra, "badge": "04FFEE0011"})
        assert r.status_code == 403
        assert admin.post("/pharmacy/users/ide1/badge/revoke", data=extra).status_code == 403
    assert web.cabinet.session.state == "locked"
    assert web.runtime.store.query("SELECT * FROM badges") == before[0]


def test_a_badge_read_into_the_patient_field_is_refused_and_not_shown_back(web):
    enrol(web)
    kiosk = web.client(host="127.0.0.1")
    token = login(kiosk, "ide2")
    r = kiosk.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                      "patient": UID.lower()})
    assert r.status_code == 303 and r.headers["location"] == "/withdraw"
    page = kiosk.get("/withdraw").text
    assert "[BADGE_NOT_PATIENT]" in page and "badge du personnel" in page
    assert UID not in page.upper()
    assert not web.runtime.store.journal_rows(kind="intent")


# -- a badge read into any other text field --------------------------------------------------

def stored(web):
    """Every row of every table: what a refused form must leave as it was."""
    store = web.runtime.store
    tables = [r["name"] for r in store.query(
        "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    return {t: store.query(f"SELECT * FROM {t}") for t in tables}


def restock_url(web):
    p = web.runtime.store.query("SELECT drawer, row, col FROM pockets WHERE drug='PARA500'")[0]
    return f"/restock/{p['drawer']}/{p['row']}/{p['col']}"


#: Real forms whose free text is stored or journaled: who fills it, where it goes, the form
#: (the UID in one field), the field's name as the message says it (in the person's
#: language: admin1 reads English), and a value of
#: the same form that must come back on the re-displayed page (only the badge is dropped).
TEXT_FIELDS = [
    ("prep1", restock_url, {"scan": "PARA500", "qty": "3", "lot": UID.lower(),
                            "expiry": "2031-01-15"}, "« lot »", 'value="2031-01-15"'),
    ("prep1", lambda web: "/remove", {"drawer": "A", "row": "1", "col": "1",
                                      "lot": UID}, "« lot »", None),
    ("ide1", lambda web: "/waste", {"drug": "MORPH10", "qty": "1", "witness": f" {UID} ",
                                    "witness_pin": PINS["ide2"]}, "« témoin »",
     'value="MORPH10" checked'),
    ("pharma1", lambda web: f"/pharmacy/alarms/{web.alarm}/resolve", {"note": UID},
     "« note »", None),
    ("admin1", lambda web: "/pharmacy/users", {"id": "ide9", "name": UID, "role": "nurse",
                                               "lang": "fr", "pin": "583920"},
     '"name"', 'value="ide9"'),  # admin1 reads English
    ("pharma1", lambda web: "/pharmacy/formulary", {"which": "add", "id": "NEWD1",
                                                    "name": "Nouveau",
                                                    "strength": UID, "form": "cp"},
     "« dosage »", 'value="Nouveau"'),
]


#: The same, with the badge read after text the field already held, or the person had
#: typed: a name, a line of a note, a lot's prefix.
AFTER_TEXT = [
    ("prep1", restock_url, {"scan": "PARA500", "qty": "3", "lot": f"L24-{UID.lower()}",
                            "expiry": "2031-01-15"}, "« lot »", 'value="2031-01-15"'),
    ("ide1", lambda web: "/waste", {"drug": "MORPH10", "qty": "1",
                                    "witness": f"Bernard {UID}",
                                    "witness_pin": PINS["ide2"]}, "« témoin »",
     'value="MORPH10" checked'),
    ("pharma1", lambda web: f"/pharmacy/alarms/{web.alarm}/resolve",
     {"note": f"recompté, 3 manquants.\r\n{UID}\r\n"}, "« note »", None),
    ("admin1", lambda web: "/pharmacy/users", {"id": "ide9", "name": f"Dupont {UID}",
                                               "role": "nurse", "lang": "fr",
                                               "pin": "583920"},
     '"name"', 'value="ide9"'),
]


@pytest.mark.parametrize(("who", "where", "data", "words", "kept"), TEXT_FIELDS + AFTER_TEXT,
                         ids=["restock-lot", "remove-lot", "waste-witness", "alarm-note",
                              "user-name", "drug-strength", "lot-after-text",
                              "witness-after-name", "note-after-a-line",
                              "name-after-name"])
def test_a_badge_read_into_a_text_field_is_refused_and_nothing_is_written(
        web, caplog, who, where, data, words, kept):
    """The reader types wherever the focus is: a lot number, a note, a witness, a name.
    Stored or journaled, the UID would be in the append-only journal for good and on every
    page that shows it. Refused with BADGE_NOT_TEXT naming the field, nothing written, and
    the UID is shown back nowhere: not in the message, not in the re-displayed form."""
    from controller.alarms import Where

    caplog.set_level(logging.DEBUG)
    enrol(web)
    web.alarm = web.cabinet.alarms.raise_("discrepancy", Where("PARA500", "A", 0, 0),
                                          "pocket A-1-1")
    c = web.client(host="127.0.0.1")
    token = (ph_login(c, who) if who in ("pharma1", "admin1") else login(c, who))
    url = where(web)
    before = stored(web)
    r = c.post(url, data={"csrf": token, **data}, headers={"accept": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "BADGE_NOT_TEXT"
    assert UID not in r.text.upper()
    r = c.post(url, data={"csrf": token, **data})
    assert r.status_code == 303
    back = r.headers["location"]
    assert UID not in back.upper()
    page = html.unescape(c.get(back).text)
    assert "[BADGE_NOT_TEXT]" in page and words in page
    assert UID not in page.upper()
    if kept is not None:  # the rest of the form is kept; only the badge is dropped
        assert kept in page
    after = stored(web)
    # Nothing written but the refusals themselves (two requests), journaled without the UID
    # (docs/ui.md: each tells the person that a number is enrolled), unless the badge is
    # her own (ide1's: it tells her nothing, and is no probe).
    added = after.pop("journal")[len(before["journal"]):]
    probes = 0 if who == "ide1" else 2
    assert [(r["kind"], r["user"]) for r in added] == [("badge_in_text", who)] * probes
    assert UID not in json.dumps(added).upper()
    before.pop("journal")
    assert after == before
    assert web.cabinet.session.op is None
    assert UID not in caplog.text.upper()


def test_a_badge_in_the_journal_search_is_refused_and_not_echoed(web):
    """The journal's filters come back in their boxes: a badge read into the user box
    would be shown back in the page, and in the links to the next pages."""
    enrol(web)
    c = web.client()
    ph_login(c)
    for typed in (UID, f"ide1 {UID}"):
        r = c.get("/pharmacy/journal", params={"user": typed, "kind": "login"})
        assert r.status_code == 400 and "[BADGE_NOT_TEXT]" in r.text
        assert UID not in r.text.upper()
    assert c.get("/pharmacy/journal", params={"user": "ide1"}).status_code == 200


@pytest.fixture
def hashed(monkeypatch):
    """The UIDs the cabinet computes a keyed hash of, in order."""
    from controller import badge

    computed: list[str] = []
    real = badge.badge_hash

    def counting(key, uid):
        computed.append(uid)
        return real(key, uid)

    monkeypatch.setattr(badge, "badge_hash", counting)
    return computed


def test_text_that_is_no_badge_goes_through_and_costs_no_hmac_without_badges(web, hashed):
    """One keyed hash per distinct word shaped like a UID (a badge may come after other
    words), none for words too short to be one, and none at all while no badge is
    enrolled: the check must not slow down a cabinet that does not use badges."""
    from controller.alarms import Where

    cab = web.cabinet
    computed = hashed

    c = web.client()
    token = ph_login(c)
    first = cab.alarms.raise_("discrepancy", Where("PARA500", "A", 0, 0), "pocket A-1-1")
    r = c.post(f"/pharmacy/alarms/{first}/resolve", data={"csrf": token, "note": "LOT2024A"})
    assert r.status_code == 303 and cab.alarms.get(first)["state"] == "resolved"
    assert computed == []
    enrol(web)
    computed.clear()
    for pocket, note, hashed in ((1, "vu, ok: 3 en + 2", []),  # no word of a UID's shape
                                 (2, "LOT2024A", ["LOT2024A"]),
                                 (3, "recounted, 3 missing, lot2024a missing",
                                  ["LOT2024A", "MISSING", "RECOUNTED"])):
        alarm = cab.alarms.raise_("discrepancy", Where("PARA500", "A", 0, pocket),
                                  f"pocket A-1-{pocket + 1}")
        r = c.post(f"/pharmacy/alarms/{alarm}/resolve", data={"csrf": token, "note": note})
        assert r.status_code == 303 and cab.alarms.get(alarm)["state"] == "resolved"
        assert sorted(computed) == hashed
        computed.clear()


def test_a_badge_at_the_lock_screen_is_hashed_once(web, hashed):
    """The badge step computes the badge's keyed hash once: the lookup of its holder and
    the check again at the PIN step use the same one."""
    enrol(web)
    hashed.clear()
    kiosk = web.client(host="127.0.0.1")
    assert badge_in(kiosk).headers["location"] == "/login/pin"
    token = page_csrf(kiosk, "/login/pin")
    r = kiosk.post("/login/pin", data={"csrf": token, "pin": PINS["ide1"]})
    assert r.headers["location"] == "/menu"
    assert hashed == [UID]


def test_long_numbers_that_are_no_badge_go_through_among_other_words(web):
    """Lots, patient ids and notes are full of long numbers and codes: only an enrolled
    badge's exact UID, as a word of its own, is refused."""
    from controller.alarms import Where

    enrol(web)
    c = web.client()
    token = ph_login(c)
    alarm = web.cabinet.alarms.raise_("discrepancy", Where("PARA500", "A", 0, 0),
                                      "pocket A-1-1")
    note = f"IPP 1234567890, lot 04A1B2C3D4E581 ({UID}0), x{UID}"
    r = c.post(f"/pharmacy/alarms/{alarm}/resolve", data={"csrf": token, "note": note})
    assert r.status_code == 303 and web.cabinet.alarms.get(alarm)["state"] == "resolved"


# -- learning which card numbers are enrolled ------------------------------------------------

def in_text(c, uid=UID):
    """A text field's badge check, as cheaply as a person can ask it: the journal's search
    box (a GET: nothing else is stored or done)."""
    return c.get("/pharmacy/journal", params={"user": f"ide1 {uid}"})


def test_a_badge_refused_in_a_text_field_is_journaled_without_its_number(web, caplog):
    """Each answer BADGE_NOT_TEXT tells that a number is enrolled: who asked, when and in
    which field is journaled, never the number nor its hash."""
    caplog.set_level(logging.DEBUG)
    enrol(web)
    c = web.client()
    ph_login(c)
    assert in_text(c).status_code == 400
    [row] = web.runtime.store.journal_rows(kind="badge_in_text")
    assert row["user"] == "pharma1" and json.loads(row["detail"]) == {"field": "user"}
    assert UID not in json.dumps(web.runtime.store.journal_rows()).upper()
    [stored_hash] = [r["hash"] for r in web.runtime.store.query("SELECT hash FROM badges")]
    assert stored_hash not in json.dumps(web.runtime.store.journal_rows())
    # (the test client's own log, httpx's, has the URL it asked for; the server's has not)
    server_logs = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert server_logs and UID not in " ".join(server_logs).upper()
    # An unknown number is not journaled: a lot number is no event.
    assert in_text(c, "04FFEE0011").status_code == 200
    assert len(web.runtime.store.journal_rows(kind="badge_in_text")) == 1


def test_a_field_whose_name_is_a_badge_does_not_echo_it(web):
    """A field's name is shown in the message when the page does not know it: a name that
    is the badge itself must not come back."""
    enrol(web)
    c = web.client()
    ph_login(c)
    r = c.get("/pharmacy/journal", params={UID: UID})
    assert r.status_code == 400 and "[BADGE_NOT_TEXT]" in r.text
    assert UID not in r.text.upper()
    assert json.loads(web.runtime.store.journal_rows(kind="badge_in_text")[-1]["detail"]) \
        == {"field": "?"}


def test_asking_about_card_numbers_again_and_again_locks_the_account(web, monkeypatch):
    """Someone trying card numbers (a batch's are often sequential) learns that one is
    enrolled from each BADGE_NOT_TEXT. A nurse who badges into a field by mistake does so
    once, perhaps twice: BADGE_TEXT_MAX refusals within BADGE_TEXT_WINDOW_S lock the
    account like wrong PINs (AUTH_LOCKED, journaled, an auth_lockout alarm for whoever
    manages users), and the session ends. Refusals further apart than the window do not
    add up."""
    from controller.cabinet import BADGE_TEXT_MAX, BADGE_TEXT_WINDOW_S

    enrol(web)
    now = [1000.0]
    monkeypatch.setattr(web.cabinet.clock, "monotonic", lambda: now[0])
    c = web.client()
    ph_login(c)
    for _ in range(BADGE_TEXT_MAX - 1):
        assert in_text(c).status_code == 400
    now[0] += BADGE_TEXT_WINDOW_S + 1  # the first ones are now out of the window
    for _ in range(BADGE_TEXT_MAX - 1):
        assert in_text(c).status_code == 400
    store = web.runtime.store
    assert store.query("SELECT locked FROM users WHERE id='pharma1'")[0]["locked"] == 0
    r = in_text(c)
    assert r.status_code == 401 and "[AUTH_LOCKED]" in r.text and UID not in r.text.upper()
    assert store.query("SELECT locked FROM users WHERE id='pharma1'")[0]["locked"] == 1
    [lockout] = store.journal_rows(kind="auth_lockout")
    assert lockout["user"] == "pharma1" and lockout["code"] == "AUTH_LOCKED"
    [alarm] = store.query("SELECT * FROM alarms WHERE kind='auth_lockout'")
    assert alarm["state"] == "open" and "badge" in alarm["message"]
    assert in_text(c).status_code != 400  # the session is over: no more answers
    assert UID not in json.dumps(store.journal_rows()).upper()


def test_a_nurse_at_the_cabinet_is_locked_out_the_same_way(web):
    enrol(web)
    from controller.cabinet import BADGE_TEXT_MAX

    kiosk = web.client(host="127.0.0.1")
    token = login(kiosk, "ide2")
    for _ in range(BADGE_TEXT_MAX - 1):
        r = kiosk.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                          "patient": f"IPP {UID}"})
        assert "[BADGE_NOT_PATIENT]" in kiosk.get(r.headers["location"]).text
    assert web.cabinet.session.state == "menu"
    r = kiosk.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                      "patient": f"IPP {UID}"},
                   headers={"accept": "application/json"})
    assert r.status_code == 401 and r.json()["code"] == "AUTH_LOCKED"
    assert web.cabinet.session.state == "locked"
    assert web.runtime.store.query("SELECT locked FROM users WHERE id='ide2'")[0]["locked"]
    assert [(r["user"], json.loads(r["detail"])) for r in web.runtime.store.journal_rows(
        kind="badge_in_text")] == [("ide2", {"field": "patient"})] * BADGE_TEXT_MAX
    assert not web.runtime.store.journal_rows(kind="intent")


def test_a_nurse_s_own_badge_in_a_field_is_refused_but_never_locks_her_out(web):
    """The likeliest badge in a field is the nurse's own: she presents it out of habit while
    the patient field has the focus. It is refused all the same (never stored), but it
    tells her nothing she did not know, so it is neither a probe to journal nor one to
    count: a busy round of such slips must not lock her out mid-shift. Another's badge
    still counts as before (the test above)."""
    from controller.cabinet import BADGE_TEXT_MAX

    enrol(web)                                  # ide1's own badge
    kiosk = web.client(host="127.0.0.1")
    token = login(kiosk, "ide1")
    for _ in range(2 * BADGE_TEXT_MAX):
        r = kiosk.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                          "patient": f"IPP {UID}"})
        assert "[BADGE_NOT_PATIENT]" in kiosk.get(r.headers["location"]).text
    store = web.runtime.store
    assert store.query("SELECT locked FROM users WHERE id='ide1'")[0]["locked"] == 0
    assert web.cabinet.session.state == "menu"
    assert not store.journal_rows(kind="badge_in_text")
    assert not store.journal_rows(kind="intent")
    assert UID not in json.dumps(store.journal_rows()).upper()


def test_an_admin_trying_taken_badges_is_journaled_and_limited_the_same_way(web):
    """Enrolling is the other way to learn that a card number is enrolled (BADGE_TAKEN):
    each refusal is journaled without the number, and counts with the text fields'."""
    from controller.cabinet import BADGE_TEXT_MAX

    admin, token = enrol(web)
    for _ in range(BADGE_TEXT_MAX - 1):
        r = admin.post("/pharmacy/users/ide2/badge", data={"csrf": token, "badge": UID})
        assert "[BADGE_TAKEN]" in admin.get(r.headers["location"]).text
    rows = web.runtime.store.journal_rows(kind="badge_taken")
    assert [(r["user"], json.loads(r["detail"])) for r in rows] == \
        [("admin1", {"id": "ide2"})] * (BADGE_TEXT_MAX - 1)
    r = admin.post("/pharmacy/users/ide2/badge", data={"csrf": token, "badge": UID})
    assert web.runtime.store.query("SELECT locked FROM users WHERE id='admin1'")[0][
        "locked"] == 1
    assert [r["user"] for r in web.runtime.store.query("SELECT user FROM badges")] == ["ide1"]
    assert UID not in json.dumps(web.runtime.store.journal_rows()).upper()


def test_no_export_of_the_journal_or_the_stock_prints_a_badge(web, capsys, tmp_path):
    """After a day of badges (enrolled from the page and the console's way, a badge login,
    an unknown badge, badges read into fields alone and after other words, a taken badge,
    a lockout for trying numbers), no export, CLI or page, holds a UID or its hash: the
    journal's, the register's, the stock's, the pick list's."""
    from controller.alarms import Where
    from controller.cabinet import BADGE_TEXT_MAX
    from controller.cli import main

    admin, token = enrol(web)
    kiosk = web.client(host="127.0.0.1")
    badge_in(kiosk)
    kiosk.post("/login/pin", data={"csrf": page_csrf(kiosk, "/login/pin"),
                                   "pin": PINS["ide1"]})
    kiosk.post("/logout", data={"csrf": page_csrf(kiosk, "/menu")})
    badge_in(kiosk, "0499887766")  # unknown
    web.cabinet._journal_unknown(web.cabinet.clock.monotonic() + 3600)
    admin.post("/pharmacy/users/ide2/badge", data={"csrf": token, "badge": UID})
    alarm = web.cabinet.alarms.raise_("discrepancy", Where("PARA500", "A", 0, 0), "A-1-1")
    ph = web.client()
    ph_token = ph_login(ph)
    for note in (UID, f"vu {UID.lower()}") * BADGE_TEXT_MAX:
        ph.post(f"/pharmacy/alarms/{alarm}/resolve", data={"csrf": ph_token, "note": note})
    assert web.runtime.store.journal_rows(kind="auth_lockout")
    [stored_hash] = [r["hash"] for r in web.runtime.store.query("SELECT hash FROM badges")]
    db = web.runtime.store.path
    printed = []
    for args in (["journal", "export", "--db", db, "--json"],
                 ["journal", "verify", "--db", db],
                 ["journal", "register", "--db", db, "--drug", "PARA500"],
                 ["stock", "export", "--db", db, "--history", str(tmp_path / "h.csv"),
                  "--current", str(tmp_path / "c.csv")]):
        assert main(args) == 0, args
        printed.append(capsys.readouterr().out)
    printed += [(tmp_path / "h.csv").read_text(), (tmp_path / "c.csv").read_text()]
    reader = web.client()
    ph_login(reader, "admin1")  # pharma1 is locked out by now
    for page in ("/pharmacy/register.csv?drug=PARA500", "/pharmacy/picklist.csv",
                 "/pharmacy/journal"):
        r = reader.get(page)
        assert r.status_code == 200, page
        printed.append(r.text)
    everything = "\n".join(printed)
    assert "badge_in_text" in everything and "badge_taken" in everything
    assert UID not in everything.upper() and stored_hash not in everything
