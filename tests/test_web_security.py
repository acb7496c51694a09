"""The web layer as an attacker on the hospital network would try it, route by route.

The routes are read from the app object itself, so a page added without saying who may use
it fails here until it is given a line in ``WHO`` (and is then attacked like the others).
"""

from __future__ import annotations

import functools
import html
import re

import pytest
from starlette.routing import Mount, Route
from test_web import login, page_csrf, ph_login, running_web
from web_helpers import SOCKET

from controller.store import JournalEntry

PHARMACY = "pharmacy"
CABINET = "cabinet"
#: Who can be on the other end of a request: nobody, someone logged in at the touchscreen
#: (any role may log in there), or a pharmacy login (pharmacists and admins only).
LOGINS = {"nurse": "ide1", "assistant": "as1", "technician": "prep1",
          "pharmacist": "pharma1", "admin": "admin1"}
PRINCIPALS = ("anonymous", *(f"{CABINET}:{r}" for r in LOGINS),
              f"{PHARMACY}:pharmacist", f"{PHARMACY}:admin")
EVERYONE = frozenset(PRINCIPALS)
LOGGED_IN = EVERYONE - {"anonymous"}
AT_CABINET = frozenset(p for p in PRINCIPALS if p.startswith(CABINET))


def cabinet(*roles: str) -> frozenset[str]:
    return frozenset(f"{CABINET}:{r}" for r in roles)


def pharmacy(*roles: str) -> frozenset[str]:
    """A pharmacy page: its roles, from a pharmacy login or from the touchscreen."""
    return frozenset(f"{kind}:{r}" for r in roles for kind in (CABINET, PHARMACY))


WITHDRAW = cabinet("nurse", "assistant", "pharmacist")
RESTOCK = cabinet("nurse", "technician", "pharmacist")
TECH = cabinet("technician", "pharmacist")
WASTE = cabinet("nurse", "pharmacist")
COUNT = cabinet("nurse", "technician", "pharmacist")
PH = pharmacy("pharmacist", "admin")
PHARMACIST = pharmacy("pharmacist")

#: Every route, by method and path, and who may use it: the specification this file holds
#: the app to, written apart from the app's own declarations.
WHO: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/"): EVERYONE,
    ("POST", "/lang"): EVERYONE,
    ("POST", "/login"): EVERYONE,
    ("POST", "/login/badge"): EVERYONE,
    ("GET", "/login/pin"): EVERYONE,
    ("POST", "/login/pin"): EVERYONE,
    ("POST", "/logout"): EVERYONE,
    ("POST", "/touch"): LOGGED_IN,
    ("GET", "/events"): LOGGED_IN,
    ("GET", "/menu"): AT_CABINET,
    ("GET", "/withdraw"): WITHDRAW,
    ("POST", "/withdraw"): WITHDRAW,
    ("GET", "/return"): WITHDRAW,
    ("POST", "/return"): WITHDRAW,
    ("GET", "/waste"): WASTE,
    ("POST", "/waste"): WASTE,
    ("GET", "/operation"): AT_CABINET,
    ("POST", "/operation/count"): AT_CABINET,
    ("POST", "/operation/close"): AT_CABINET,
    ("POST", "/sim/close"): AT_CABINET,
    ("GET", "/restock"): RESTOCK,
    ("GET", "/restock/{drawer}/{row}/{col}"): RESTOCK,
    ("POST", "/restock/{drawer}/{row}/{col}"): RESTOCK,
    ("POST", "/restock/{drawer}/{row}/{col}/remove"): TECH,
    ("GET", "/remove"): TECH,
    ("POST", "/remove"): TECH,
    ("GET", "/count"): COUNT,
    ("POST", "/count"): COUNT,
    ("GET", "/drawers"): TECH,
    ("POST", "/drawers/reset"): TECH,
    ("GET", "/relayout"): TECH,
    ("POST", "/relayout/finish"): TECH,
    ("POST", "/relayout/{task}/start"): TECH,
    ("POST", "/relayout/{task}/put_back"): TECH,
    ("GET", "/pin"): AT_CABINET,
    ("POST", "/pin"): AT_CABINET,
    ("GET", "/pharmacy/login"): EVERYONE,
    ("POST", "/pharmacy/login"): EVERYONE,
    ("GET", "/pharmacy"): PH,
    ("POST", "/pharmacy/alarms/{alarm}/resolve"): PH,
    ("POST", "/pharmacy/alarms/{alarm}/ack"): PH,
    ("GET", "/pharmacy/journal"): PH,
    ("POST", "/pharmacy/journal"): PH,
    ("POST", "/pharmacy/journal.csv"): PH,
    ("GET", "/pharmacy/register"): PH,
    ("GET", "/pharmacy/register.csv"): PH,
    ("GET", "/pharmacy/users"): PH,
    ("POST", "/pharmacy/users"): PH,
    ("POST", "/pharmacy/users/{user}/unlock"): PH,
    ("POST", "/pharmacy/users/{user}/pin"): PH,
    ("POST", "/pharmacy/users/{user}/deactivate"): PH,
    ("POST", "/pharmacy/users/{user}/reactivate"): PH,
    ("POST", "/pharmacy/users/{user}/badge"): pharmacy("admin"),
    ("POST", "/pharmacy/users/{user}/badge/revoke"): pharmacy("admin"),
    ("GET", "/pharmacy/pin"): PH,
    ("POST", "/pharmacy/pin"): PH,
    ("GET", "/pharmacy/cabinet"): PH,
    ("GET", "/pharmacy/picklist.csv"): PH,
    ("GET", "/pharmacy/layout"): PHARMACIST,
    ("POST", "/pharmacy/layout/propose"): PHARMACIST,
    ("POST", "/pharmacy/layout/{proposal}/approve"): PHARMACIST,
    ("POST", "/pharmacy/layout/{proposal}/reject"): PHARMACIST,
    ("POST", "/pharmacy/layout/tasks/{task}/return"): PHARMACIST,
    ("POST", "/pharmacy/layout/abandon"): PHARMACIST,
    ("GET", "/pharmacy/levels"): PHARMACIST,
    ("POST", "/pharmacy/levels/propose"): PHARMACIST,
    ("POST", "/pharmacy/levels/{proposal}/decide"): PHARMACIST,
    ("GET", "/pharmacy/formulary"): PHARMACIST,
    ("POST", "/pharmacy/formulary"): PHARMACIST,
    ("POST", "/pharmacy/formulary/{drug}/edit"): PHARMACIST,
    ("POST", "/pharmacy/pockets/{drawer}/{row}/{col}/assign"): PHARMACIST,
    ("POST", "/pharmacy/pockets/{drawer}/{row}/{col}/capacity"): PHARMACIST,
    ("POST", "/pharmacy/pockets/{drawer}/{row}/{col}/unassign"): PHARMACIST,
}

#: Path parameters filled with values that exist in the demo cabinet, so that a refusal is
#: the role check's and not a 404's.
PARAMS = {"drawer": "A", "row": "0", "col": "0", "task": "1", "alarm": "1", "user": "ide2",
          "proposal": "1", "drug": "PARA500"}
#: A plausible form for every POST, so that only the role check can stop it.
FORM = {"drug": "PARA500", "qty": "1", "patient": "P-ATTACK", "count": "0", "drawer": "A",
        "row": "0", "col": "0", "note": "x", "id": "evil", "name": "Evil", "role": "admin",
        "pin": "583920", "lang": "fr", "capacity": "5", "decision": "accept",
        "badge": "04A1B2C3D4E580", "current_pin": "918273", "new_pin": "583920",
        "confirm_pin": "583920", "scan": "x", "user_id": "ide2"}


def app_routes(app) -> set[tuple[str, str]]:
    out = set()
    for route in app.routes:
        if isinstance(route, Mount):
            assert route.path == "/static", f"a mount other than /static: {route.path}"
            continue
        assert isinstance(route, Route), route
        for method in route.methods or ():
            if method != "HEAD":
                out.add((method, route.path))
    return out


def url_of(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], path)


def snapshot(web) -> tuple:
    """What a refused request must leave as it was."""
    store = web.runtime.store
    return tuple(tuple(tuple(r.values()) for r in store.query(f"SELECT * FROM {table}"))
                 for table in ("journal", "users", "alarms", "pockets", "drugs", "badges",
                               "layout_proposals"))


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def test_every_route_says_who_may_use_it(web):
    routes = app_routes(web.app)
    missing = sorted(routes - set(WHO))
    assert not missing, f"routes nobody decided who may use (add them to WHO): {missing}"
    gone = sorted(set(WHO) - routes)
    assert not gone, f"WHO lists routes the app no longer has: {gone}"


def session_of(web, principal: str):
    """A browser logged in as ``principal`` and its CSRF token: at the touchscreen for the
    cabinet's session (which opens there only), elsewhere for the others."""
    if principal == "anonymous":
        c = web.client()
        return c, page_csrf(c, "/pharmacy/login")
    kind, role = principal.split(":")
    if kind == PHARMACY:
        c = web.client()
        return c, ph_login(c, LOGINS[role])
    c = web.client(host="127.0.0.1")
    return c, login(c, LOGINS[role])


def refused(r, method: str) -> bool:
    if r.status_code == 403:
        return "CSRF_FAILED" not in r.text  # the role check's refusal, not the token's
    # A page that needs another login sends the browser to it.
    return method == "GET" and r.status_code == 303 and r.headers["location"] in (
        "/", "/pharmacy/login")


def test_every_route_refuses_whoever_may_not_use_it(web):
    """Each kind of person, in turn, tries every route that is not theirs, with a valid
    CSRF token and a plausible form: each is refused and nothing changes."""
    routes = app_routes(web.app)
    tried = 0
    for principal in PRINCIPALS:
        c, token = session_of(web, principal)
        for method, path in sorted(routes):
            if principal in WHO.get((method, path), EVERYONE):
                continue
            before = snapshot(web)
            if method == "GET":
                r = c.get(url_of(path))
            else:
                r = c.post(url_of(path), data={"csrf": token, **FORM})
            assert refused(r, method), (principal, method, path, r.status_code, r.text[:300])
            assert snapshot(web) == before, (principal, method, path)
            tried += 1
        if principal.startswith(CABINET):
            web.portal.call(functools.partial(web.cabinet.logout))
    assert tried > 150  # the loop really attacked


def test_every_post_needs_the_csrf_token_of_its_own_session(web):
    """Every POST route, from a session allowed to use it (a pharmacist at the cabinet may
    use all but the admin's badge forms; an anonymous browser the public ones): no token,
    another session's token in the form or in the header, the token of the session this
    browser had before logging in: 403 CSRF_FAILED and nothing changes."""
    stranger = web.client()
    other_token = page_csrf(stranger, "/pharmacy/login")
    anon = web.client(host="127.0.0.1")
    anon_token = page_csrf(anon)
    nurse_side = web.client()
    ph_other = ph_login(nurse_side, "admin1")
    c = web.client(host="127.0.0.1")
    old_token = page_csrf(c)
    token = login(c, "pharma1")
    assert token not in (old_token, other_token, ph_other)
    posts = sorted(path for method, path in app_routes(web.app) if method == "POST")
    for path in posts:
        for browser, good in ((c, token), (anon, anon_token)):
            for bad in ({}, {"data": {"csrf": other_token}}, {"data": {"csrf": ph_other}},
                        {"headers": {"x-csrf-token": other_token}},
                        {"data": {"csrf": old_token}}, {"data": {"csrf": good[:-1]}}):
                before = snapshot(web)
                data = {**FORM, **bad.get("data", {})}
                r = browser.post(url_of(path), data=data, headers=bad.get("headers"))
                assert r.status_code == 403 and "CSRF_FAILED" in r.text, (path, bad, r.text)
                assert snapshot(web) == before, (path, bad)
    assert web.cabinet.session.user.id == "pharma1"


def assert_guarded(r, where: str, *, cached: bool = False) -> None:
    """The headers every response carries (docs/ui.md, Output)."""
    csp = r.headers.get("content-security-policy", "")
    directives = dict(d.strip().partition(" ")[::2] for d in csp.split(";") if d.strip())
    assert directives.get("default-src") == "'self'", (where, csp)
    assert directives.get("script-src") == "'self'", (where, csp)
    assert directives.get("frame-ancestors") == "'none'", (where, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (where, csp)
    assert r.headers.get("x-frame-options") == "DENY", where
    assert r.headers.get("x-content-type-options") == "nosniff", where
    assert r.headers.get("referrer-policy") == "no-referrer", where
    if not cached:
        assert r.headers.get("cache-control") == "no-store", where


def test_every_page_and_every_refusal_carries_the_security_headers(web):
    """Every GET route of the app (the pharmacist at the cabinet may open them all), the
    downloads (a register holds patient ids), refusals, unknown pages, too-large bodies."""
    c = web.client(host="127.0.0.1")
    token = login(c, "pharma1")
    web.portal.call(web.cabinet.store.append,
                    JournalEntry("note", patient="P-SECRET", drug="PARA500"))
    for method, path in sorted(app_routes(web.app)):
        if method != "GET" or path == "/events":  # a stream: below, from its refusal
            continue
        url = url_of(path) + ("?drug=PARA500" if path == "/pharmacy/register.csv" else "")
        r = c.get(url)
        # (the badge's PIN page answers the cabinet's own screen only: BADGE_KIOSK_ONLY)
        assert r.status_code in (200, 303, 403), (path, r.status_code)
        assert_guarded(r, path)
    r = c.get("/static/app.js")
    assert r.status_code == 200
    assert_guarded(r, "static", cached=True)
    anon = web.client()
    for r in (anon.get("/events"), anon.get("/no/such/page"), anon.post("/withdraw"),
              anon.post("/pharmacy/users"), anon.get("/pharmacy/users"), c.put("/menu"),
              c.post("/withdraw", content=b"x" * (65 * 1024),
                     headers={"content-type": "application/x-www-form-urlencoded"}),
              c.post("/withdraw", data={"csrf": token, "qty": "nope"},
                     headers={"accept": "application/json"})):
        assert r.status_code >= 400 or r.headers["location"] == "/pharmacy/login"
        assert_guarded(r, f"{r.request.method} {r.request.url.path} {r.status_code}")


def test_a_proxy_that_names_no_client_is_never_taken_for_the_kiosk(web):
    """A TLS proxy that says it forwards HTTPS but not for whom (no X-Forwarded-For)
    still forwards remote browsers: they must not get what only the cabinet's own screen
    gets (the list of names, the badge step, no limit on wrong PINs), nor share one
    allowance. On its socket such a request is refused; and with the same headers at the
    TCP port (a proxy not moved to its socket), too: the headers ignored, every browser
    behind it would be the kiosk."""
    for where in (SOCKET, "127.0.0.1"):
        for marker in ({}, {"x-forwarded-proto": "https"},
                       {"x-forwarded-host": "armoire.chu.fr"}, {"via": "1.1 nginx"}):
            if where != SOCKET and not marker:
                continue  # the kiosk itself
            remote = web.client(host=where, headers=marker)
            before = snapshot(web)
            for method, path in (("GET", "/"), ("GET", "/pharmacy/login"),
                                 ("POST", "/pharmacy/login"), ("POST", "/login")):
                r = remote.request(method, path, data={"user_id": "ide1", "pin": "482913"})
                assert r.status_code == 400, (where, marker, path, r.status_code)
                assert "userlist" not in r.text and "set-cookie" not in r.headers
                assert ("[PROXY_CLIENT_MISSING]" if where == SOCKET
                        else "[PROXY_NOT_ON_SOCKET]") in r.text, (where, marker)
                assert_guarded(r, f"{where} {marker} {path}")
            assert snapshot(web) == before
    assert web.cabinet.session.state == "locked"


def test_a_refused_proxy_is_logged_once_so_it_can_be_mended(web, caplog):
    """The proxy's mistake reaches only the browsers behind it: IT reads in the log what
    to change, once per kind of mistake, whatever the flood."""
    import logging

    with caplog.at_level(logging.WARNING, logger="controller.web.limits"):
        for _ in range(3):
            web.client(host="127.0.0.1", headers={"x-forwarded-for": "10.1.2.3"}).get("/")
            web.client(host=SOCKET, headers={"via": "1.1 nginx"}).get("/")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert any("[PROXY_NOT_ON_SOCKET]" in m and "proxy_socket" in m for m in lines), lines
    assert any("[PROXY_CLIENT_MISSING]" in m and "X-Forwarded-For" in m for m in lines)


def test_a_login_or_a_change_of_role_in_one_browser_gives_a_new_session(web):
    """Session fixation: whatever token a browser had (planted by someone, or the nurse's
    before the pharmacist logs in on the same screen), a login makes a new one, with a new
    CSRF token, and the old one leads nowhere any more."""
    c = web.client(host="127.0.0.1")
    planted = "A" * 43
    c.cookies.set("armoire_sid", planted, domain="testserver.local")
    anon_token = page_csrf(c)
    nurse_token = login(c, "ide1")
    nurse_sid = c.cookies.get("armoire_sid")
    assert nurse_sid != planted and nurse_token != anon_token
    # The nurse's screen, then the pharmacist logs in to the pharmacy pages on it.
    ph_token = ph_login(c, "pharma1")
    ph_sid = c.cookies.get("armoire_sid")
    assert ph_sid not in (planted, nurse_sid) and ph_token != nurse_token
    for old in (planted, nurse_sid):
        thief = web.client(host="10.0.0.66")
        thief.cookies.set("armoire_sid", old, domain="testserver.local")
        assert thief.get("/menu").headers["location"] == "/"
        assert thief.get("/pharmacy").headers["location"] == "/pharmacy/login"
    # Back to a nurse at the cabinet: the pharmacist's token is dead too.
    web.portal.call(functools.partial(web.cabinet.logout))
    login(c, "ide2")
    thief = web.client(host="10.0.0.66")
    thief.cookies.set("armoire_sid", ph_sid, domain="testserver.local")
    assert thief.get("/pharmacy").headers["location"] == "/pharmacy/login"
    assert "Hugo Bernard" in c.get("/menu").text


def test_every_session_cookie_is_httponly_strict_and_secure_behind_tls(web):
    for base, secure in (("https://armoire.chu.fr", True), ("http://testserver", False)):
        c = web.client(base_url=base, host="10.0.0.9")
        kiosk = web.client(base_url=base, host="127.0.0.1")  # the cabinet's session: there
        cookies = [c.get("/").headers["set-cookie"], kiosk.get("/").headers["set-cookie"]]
        token = page_csrf(kiosk)
        r = kiosk.post("/login", data={"csrf": token, "user_id": "ide1", "pin": "482913"})
        cookies.append(r.headers["set-cookie"])
        web.portal.call(functools.partial(web.cabinet.logout))
        token = page_csrf(c, "/pharmacy/login")
        r = c.post("/pharmacy/login", data={"csrf": token, "user_id": "pharma1",
                                            "pin": "918273"})
        cookies.append(r.headers["set-cookie"])
        for cookie in cookies:
            flags = [f.strip().lower() for f in cookie.split(";")]
            assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
            assert ("secure" in flags) == secure, (base, cookie)
            assert not any(f.startswith(("domain=", "expires=", "max-age=")) for f in flags)


@pytest.mark.parametrize("path", ["//evil.example/", "//evil.example/%2e%2e/", "/\\evil.example",
                                  "/menu/", "//evil.example/menu/", "/%2F%2Fevil.example/"])
def test_no_url_sends_the_browser_to_another_site(web, path):
    c = web.client(host="127.0.0.1")
    login(c, "ide1")
    r = c.get(path)
    location = r.headers.get("location", "")
    assert not re.match(r"^(https?:)?[/\\]{2}(?!testserver)", location), (path, location)


def test_the_language_form_and_refused_posts_only_go_back_to_this_site(web):
    c = web.client(host="127.0.0.1")
    token = page_csrf(c)
    for target in ("https://evil.example", "//evil.example", "pharmacy"):
        r = c.post("/lang", data={"csrf": token, "lang": "en", "next": target})
        assert r.headers["location"] in ("/", "/pharmacy/login"), target
    ph = web.client()
    token = ph_login(ph)
    # A refused edit goes back to the drug's form, whatever its id looks like.
    for drug in ("javascript:alert(1)", "@evil.example", "%5C%5Cevil.example"):
        r = ph.post(f"/pharmacy/formulary/{drug}/edit", data={"csrf": token, "name": ""})
        assert r.status_code == 303, (drug, r.status_code)
        assert r.headers["location"].startswith("/pharmacy/formulary?edit="), r.headers


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py",
                                  "/static/..%2fapp.py", "/static/%2e%2e%2fapp.py",
                                  "/static//etc/passwd", "/static/..%5capp.py",
                                  "/static/../../sessions.py", "/static/%2e%2e/%2e%2e/cabinet.py"])
def test_static_files_stay_in_their_folder(web, path):
    r = web.client().get(path)
    assert r.status_code in (400, 404), (path, r.status_code)
    assert "import" not in r.text and "root:" not in r.text


def test_a_huge_upload_is_refused_before_it_is_read(web):
    c = web.client()
    token = ph_login(c)
    before = snapshot(web)
    r = c.post("/pharmacy/formulary", data={"csrf": token, "id": "X1", "name": "X"},
               files={"photo": ("x.bin", b"\0" * (2 * 1024 * 1024), "application/pdf")})
    assert r.status_code == 413 and "BODY_TOO_LARGE" in r.text
    r = c.post("/pharmacy/formulary", data={"csrf": token, "id": "X1",
                                            "name": "N" * (70 * 1024)})
    assert r.status_code == 413
    many = {f"f{i}": "1" for i in range(500)}
    r = c.post("/pharmacy/formulary", data={"csrf": token, "id": "X1", "name": "X", **many})
    assert r.status_code == 400 and "BAD_FORM" in r.text
    assert snapshot(web) == before


def test_a_refused_pin_takes_as_long_whether_the_id_exists_or_not(web):
    """From a remote browser a wrong PIN for a real person writes her failure to the
    journal (a synchronous commit) and a locked account answers without hashing at all,
    while an unknown id does neither: the time to answer would tell which ids exist. Every
    refused PIN from elsewhere than the kiosk is answered no sooner than
    ``failed_pin_answer_s`` after it was typed, whoever the id. (Elsewhere, the pharmacy
    login is the only PIN form: the cabinet's login, and with it the waste form's witness
    PIN, are the kiosk's, and refused elsewhere before any id is looked up.)"""
    import time

    state = web.app.state.web
    floor = 0.3
    state.failed_pin_answer_s = floor
    cab = web.cabinet

    def lock_ide2():
        with cab.store.transaction() as conn:
            conn.execute("UPDATE users SET locked=1 WHERE id='ide2'")

    web.portal.call(lock_ide2)

    def timed(path, user_id):
        c = web.client(host="10.0.0.7")
        token = page_csrf(c, "/pharmacy/login")
        start = time.monotonic()
        r = c.post(path, data={"csrf": token, "user_id": user_id, "pin": "583920"},
                   headers={"accept": "application/json"})
        took = time.monotonic() - start
        return r.json()["code"], took

    for user_id in ("ide1", "nobody-here", "ide2", "pharma1"):
        code, took = timed("/pharmacy/login", user_id)
        assert code in ("AUTH_FAILED", "AUTH_LOCKED") and took >= floor, (user_id, code)
        code, took = timed("/login", user_id)
        assert code == "CABINET_KIOSK_ONLY", (user_id, code)
    # The kiosk is a person at the screen, with no clock to read the answer by: no wait.
    web.portal.call(functools.partial(cab.logout))
    kiosk = web.client(host="127.0.0.1")
    token = page_csrf(kiosk)
    start = time.monotonic()
    kiosk.post("/login", data={"csrf": token, "user_id": "nobody-here", "pin": "583920"})
    assert time.monotonic() - start < floor


def test_no_pin_badge_patient_or_token_reaches_a_log_or_a_url(web, caplog):
    """A day's secrets typed through the pages (PINs right and wrong, a witness's PIN, a
    new PIN, a badge UID, patient ids on a withdrawal taken and one refused, session and
    CSRF tokens): none is in any log record, and no page
    puts a CSRF token or a patient id in a link or a form's address."""
    import logging

    from controller.web.server import build_server

    assert build_server(web.runtime, "127.0.0.1", 0).config.access_log is False
    caplog.set_level(logging.DEBUG)
    uid, patient, refused_patient = "04FFEEDDCC1234", "IPP-77123456", "IPP-99887766"
    secrets_typed = [uid, patient, refused_patient, "583920", "771346", "246813", "135792"]
    admin = web.client()
    token = ph_login(admin, "admin1")
    admin.post("/pharmacy/users/ide1/badge", data={"csrf": token, "badge": uid})
    kiosk = web.client(host="127.0.0.1")
    token = page_csrf(kiosk)
    seen = [token, *admin.cookies.values(), *kiosk.cookies.values()]
    kiosk.post("/login", data={"csrf": token, "user_id": "ide1", "pin": "583920"})
    kiosk.post("/login/badge", data={"csrf": token, "badge": uid})
    kiosk.post("/login/pin", data={"csrf": token, "pin": "482913"})
    token = page_csrf(kiosk, "/menu")
    assert web.cabinet.session.user.id == "ide1"
    assert "badge" in str(web.runtime.store.journal_rows(kind="login")[-1]["detail"])
    kiosk.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "0",
                                  "patient": refused_patient})
    kiosk.post("/waste", data={"csrf": token, "drug": "MORPH10", "qty": "1", "witness": "ide2",
                               "witness_pin": "583920", "patient": refused_patient})
    kiosk.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "1",
                                  "patient": patient})
    pages = {}
    ph = web.client(host="10.0.0.4")
    ph_token = ph_login(ph)
    ph.post("/pharmacy/pin", data={"csrf": ph_token, "current_pin": "771346",
                                   "new_pin": "246813", "confirm_pin": "246813"})
    ph.post("/pharmacy/pin", data={"csrf": ph_token, "current_pin": "918273",
                                   "new_pin": "135792", "confirm_pin": "135792"})
    for method, path in sorted(app_routes(web.app)):
        if method == "GET" and path.startswith("/pharmacy") and not path.endswith(".csv"):
            pages[path] = ph.get(url_of(path)).text
    pages["journal"] = ph.get("/pharmacy/journal").text
    assert patient in pages["journal"]  # the journal is where it belongs
    tokens = [*seen, token, ph_token, *kiosk.cookies.values(), *ph.cookies.values(),
              *admin.cookies.values()]
    records = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in [*secrets_typed, "482913", "918273", *tokens]:
        assert secret not in records, secret
    for path, text in pages.items():
        for link in re.findall(r'(?:href|action|src)="([^"]*)"', text):
            assert "csrf" not in link and patient not in link and ph_token not in link, (
                path, link)


#: Markup that would run or break out of an attribute if a page let it through.
PAYLOADS = ('"><img src=x onerror=alert(1)>', "</script><script>alert(2)</script>",
            "' onfocus='alert(3)' autofocus='")


def test_stored_markup_typed_by_one_person_is_text_on_everyone_elses_pages(web):
    """Typed through the app's own forms (not written into the database behind its back): a
    drug name by the pharmacist, a user's name by the admin, a note and a patient id; then
    read by others on their pages: the nurse's withdrawal list, the kiosk's lock screen, the
    admin's users page, the journal, the alarms, the cabinet and the formulary. No page has
    the markup as markup; each has it escaped."""
    from markupsafe import escape

    from controller.alarms import Where

    pharmacist = web.client()
    token = ph_login(pharmacist)
    admin = web.client()
    admin_token = ph_login(admin, "admin1")
    drug, user_name, note = PAYLOADS
    r = pharmacist.post("/pharmacy/formulary", data={"csrf": token, "id": "EVIL1",
                                                    "name": drug, "strength": note[:40],
                                                    "form": "comprimé"})
    assert r.status_code == 303 and r.headers["location"] == "/pharmacy/formulary", r.text
    # A drug already in a pocket renamed, so that it is on the touchscreen's lists.
    r = pharmacist.post("/pharmacy/formulary/IBU400/edit", data={
        "csrf": token, "name": drug, "strength": "400 mg", "form": "comprimé",
        "gtin": "03400930000069", "assistant_allowed": "1"})
    assert r.headers["location"] == "/pharmacy/formulary", r.text
    r = admin.post("/pharmacy/users", data={"csrf": admin_token, "id": "evil2",
                                            "name": user_name, "role": "nurse",
                                            "pin": "583920", "lang": "fr"})
    assert r.headers["location"] == "/pharmacy/users", r.text
    assert web.runtime.store.query("SELECT name FROM users WHERE id='evil2'")[0]["name"] \
        == user_name, admin.get("/pharmacy/users").text[-3000:]
    alarm = web.portal.call(functools.partial(
        web.cabinet.alarms.raise_, "discrepancy", Where("PARA500", "A", 0, 0), "test"))
    pharmacist.post(f"/pharmacy/alarms/{alarm}/resolve", data={"csrf": token, "note": note})
    nurse = web.client(host="127.0.0.1")
    lock_page = nurse.get("/").text
    nurse_token = login(nurse, "ide1")
    nurse.post("/withdraw", data={"csrf": nurse_token, "drug": "PARA500", "qty": "0",
                                  "patient": note})
    pages = {"lock": lock_page, "withdraw": nurse.get("/withdraw").text,
             "restock": nurse.get("/restock").text, "count": nurse.get("/count").text}
    for path in ("/pharmacy", "/pharmacy/journal", "/pharmacy/cabinet", "/pharmacy/formulary",
                 "/pharmacy/formulary?edit=EVIL1", "/pharmacy/register?drug=EVIL1",
                 "/pharmacy/layout", "/pharmacy/levels"):
        pages[path] = pharmacist.get(path).text
    pages["/pharmacy/users"] = admin.get("/pharmacy/users").text
    shown = "".join(pages.values())
    for payload in PAYLOADS:
        for name, text in pages.items():
            assert payload not in text, (name, payload)
        assert str(escape(payload)) in shown, payload
    assert str(escape(user_name)) in pages["lock"]
    assert str(escape(drug)) in pages["withdraw"]


#: Browsers that are not the cabinet's own touchscreen: a workstation on the ward's network,
#: and the same through a proxy on the Pi, whatever header the proxy adds.
ELSEWHERE = (({"host": "10.0.0.66"}, "direct"),
             ({"host": SOCKET, "headers": {"x-forwarded-for": "10.0.0.66"}}, "xff"),
             ({"host": SOCKET, "headers": {"x-real-ip": "10.0.0.66", "via": "1.1 nginx"}},
              "via"),
             ({"host": SOCKET, "headers": {"forwarded": "for=10.0.0.66;proto=http"}},
              "proto"))


@pytest.mark.parametrize(("where", "name"), ELSEWHERE, ids=[n for _, n in ELSEWHERE])
def test_the_cabinet_session_cannot_be_opened_away_from_the_cabinet(web, where, name):
    """Someone off the ward with a colleague's id and PIN must not open drawers nor record
    withdrawals against patients: ``/login`` (the cabinet's session) answers the kiosk only.
    Refused before anything is looked up: the right PIN, a wrong one, an unknown id and a
    locked account get the same answer (nothing tells which ids exist), no PIN is checked,
    no failure counted against the account or the client, nothing journaled."""
    from controller.web.limits import MAX_FAILURES

    def lock_ide2():
        with web.cabinet.store.transaction() as conn:
            conn.execute("UPDATE users SET locked=1 WHERE id='ide2'")

    web.portal.call(lock_ide2)
    remote = web.client(**where)
    token = page_csrf(remote, "/pharmacy/login")
    before = snapshot(web)
    answers = set()
    for user_id, pin in [("ide1", "482913"), ("ide1", "583920"), ("nobody-here", "583920"),
                         ("ide2", "771346")] * (MAX_FAILURES // 2):
        r = remote.post("/login", data={"csrf": token, "user_id": user_id, "pin": pin})
        assert r.status_code == 403, (user_id, r.status_code, r.text[:300])
        assert "[CABINET_KIOSK_ONLY]" in r.text
        answers.add(r.text)
        r = remote.post("/login", data={"csrf": token, "user_id": user_id, "pin": pin},
                        headers={"accept": "application/json"})
        assert r.status_code == 403 and r.json()["code"] == "CABINET_KIOSK_ONLY"
        assert r.json()["error"] != r.json()["error_fr"]  # in English and in French
        assert "set-cookie" not in r.headers
    assert len(answers) == 1  # the same page whoever the id
    assert web.cabinet.session.state == "locked"
    assert snapshot(web) == before  # no journal row, no failed count, nothing
    # Nothing counted against the client either: the pharmacy login still works from it.
    ph_login(remote)


@pytest.mark.parametrize(("where", "name"), ELSEWHERE, ids=[n for _, n in ELSEWHERE])
def test_the_lock_screen_elsewhere_sends_to_the_pharmacy_login_and_says_why(web, where,
                                                                            name):
    """A PIN form that cannot work is not shown away from the cabinet: the lock screen
    sends the browser to the pharmacy login, which says why, in French then in English."""
    remote = web.client(**where)
    r = remote.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/pharmacy/login"
    page = remote.get("/pharmacy/login").text
    assert 'action="/login"' not in page
    assert "écran tactile de l'armoire" in html.unescape(page), page
    remote.post("/lang", data={"csrf": csrf_of_page(page), "lang": "en", "next": "pharmacy"})
    r = remote.get("/")
    assert r.headers["location"] == "/pharmacy/login"
    assert "cabinet's own touchscreen" in html.unescape(remote.get("/pharmacy/login").text)
    # Logged in to the pharmacy from there: the lock screen leads to its pages.
    ph_login(remote)
    assert remote.get("/").headers["location"] == "/pharmacy"
    # The kiosk still has its lock screen, with its PIN form.
    assert 'action="/login"' in web.client(host="127.0.0.1").get("/").text


def csrf_of_page(text: str) -> str:
    from web_helpers import csrf_of

    return csrf_of(text)


@pytest.mark.parametrize(("where", "name"), ELSEWHERE, ids=[n for _, n in ELSEWHERE])
def test_the_kiosk_s_cabinet_cookie_is_worth_nothing_elsewhere(web, where, name):
    """The cabinet's session cookie copied off the kiosk (or a session reached through a
    proxy on the Pi) is not honoured away from the cabinet: no page of the session, no
    withdrawal, no live updates, no logout; and the nurse at the cabinet keeps her
    session."""
    kiosk = web.client(host="127.0.0.1")
    token = login(kiosk, "ide1")

    def thief():
        """A browser elsewhere holding the kiosk's cookie (afresh for each request: a
        refusal may give it a cookie of its own)."""
        c = web.client(**where)
        c.cookies.update(kiosk.cookies)
        return c

    before = snapshot(web)
    for path in ("/menu", "/withdraw", "/restock", "/pin", "/operation"):
        r = thief().get(path)
        assert r.status_code == 303 and r.headers["location"] in ("/", "/pharmacy/login"), (
            path, r.status_code)
    assert "Claire" not in thief().get("/pharmacy/login").text
    assert thief().get("/events").status_code == 403
    for path, data in (("/withdraw", {"drug": "PARA500", "qty": "1", "patient": "P-THIEF"}),
                       ("/count", {"drawer": "A", "row": "0", "col": "0"}),
                       ("/touch", {}), ("/logout", {}), ("/pin", {
                           "current_pin": "482913", "new_pin": "583920",
                           "confirm_pin": "583920"})):
        for sent in ({"data": {"csrf": token, **data}},
                     {"data": data, "headers": {"x-csrf-token": token}}):
            r = thief().post(path, **sent)
            assert r.status_code == 403, (path, r.status_code, r.text[:300])
    assert snapshot(web) == before
    assert web.cabinet.session.user.id == "ide1" and web.cabinet.session.op is None
    assert "Claire Martin" in kiosk.get("/menu").text  # hers is still good at the cabinet


def test_a_page_asked_for_by_another_host_name_is_refused_against_dns_rebinding(web):
    """A page on another site may point a name it controls at the cabinet's address (DNS
    rebinding) and then read the cabinet's pages as its own, in any browser on the
    network. Such requests carry that name in their Host header: only loopback's own names
    and those the configuration lists (``[server] hosts``; here the names the tests use)
    are answered; any other is refused with 400 ``BAD_HOST`` before anything is read or
    written, a missing or malformed Host too."""
    def asked(host, path="/pharmacy/login", method="GET", **kw):
        return web.client(host="10.0.0.66", headers={"host": host}).request(method, path, **kw)

    # The kiosk (127.0.0.1, localhost, ::1, whatever the port) and the configured names.
    for host in ("127.0.0.1:8080", "localhost:8080", "localhost", "[::1]:8080", "[::1]",
                 "testserver", "ARMOIRE.chu.fr", "armoire.chu.fr:443"):
        assert asked(host).status_code == 200, host
    before = snapshot(web)
    for host in ("evil.example", "evil.example:8080", "armoire.chu.fr.evil.example",
                 "10.0.0.5:8080", "127.0.0.2", "[::2]", "localhost.evil.example", "",
                 "a b", "armoire.chu.fr:80:80"):
        r = asked(host)
        assert r.status_code == 400 and "[BAD_HOST]" in r.text, (host, r.status_code)
        assert_guarded(r, f"Host: {host}")
        assert "set-cookie" not in r.headers
        r = asked(host, "/pharmacy/login", "POST", data={"user_id": "pharma1",
                                                        "pin": "918273"},
                  headers={"accept": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "BAD_HOST", host
        assert r.json()["error"] != r.json()["error_fr"]
    assert snapshot(web) == before
    assert web.cabinet.session.state == "locked"


def test_the_server_as_run_refuses_an_unknown_host_name(web):
    """Through the app as the real server wraps it (build_server), as on the cabinet."""
    from starlette.testclient import TestClient

    from controller.web.server import build_server

    server = build_server(web.runtime, "0.0.0.0", 0)
    server.config.load()
    c = TestClient(server.config.loaded_app, follow_redirects=False, client=("10.0.0.9", 1))
    c.portal = web.portal
    assert c.get("/healthz", headers={"host": "evil.example"}).status_code == 400
    assert c.get("/healthz", headers={"host": "127.0.0.1:8080"}).status_code == 200


def test_a_refused_host_name_is_logged_once_so_it_can_be_added(web, caplog):
    """After an upgrade to a version with the host list, a site whose pharmacy reaches the
    cabinet by a name not yet in ``[server] hosts`` sees only BAD_HOST pages: the log must
    tell IT which name to add, once per name (a flood of names is not logged without end),
    and never a header value that is not a host name (it may be anything)."""
    import logging

    from controller.web import limits

    def asked(host):
        return web.client(host="10.0.0.66", headers={"host": host}).get("/pharmacy/login")

    with caplog.at_level(logging.WARNING, logger="controller.web.limits"):
        for _ in range(3):
            assert asked("armoire-4b.chu.example:443").status_code == 400
        assert asked("a b\x1b[31m").status_code == 400
        for n in range(limits.HOSTS_LOGGED + 5):
            asked(f"flood{n}.example")
    texts = [r.getMessage() for r in caplog.records if r.name == "controller.web.limits"]
    named = [t for t in texts if "armoire-4b.chu.example" in t]
    assert len(named) == 1 and "[server] hosts" in named[0] and "BAD_HOST" in named[0]
    assert not any("\x1b" in t or "a b" in t for t in texts)
    assert sum("flood" in t for t in texts) == limits.HOSTS_LOGGED - 1
