"""The web layer as an attacker on the hospital network would try it, route by route.

The routes are read from the app object itself, so a page added without saying who may use
it fails here until it is given a line in ``WHO`` (and is then attacked like the others).
"""

from __future__ import annotations

import functools
import re

import pytest
from starlette.routing import Mount, Route
from test_web import login, page_csrf, ph_login, running_web

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
    ("GET", "/pharmacy/register"): PH,
    ("GET", "/pharmacy/register.csv"): PH,
    ("GET", "/pharmacy/users"): PH,
    ("POST", "/pharmacy/users"): PH,
    ("POST", "/pharmacy/users/{user}/unlock"): PH,
    ("POST", "/pharmacy/users/{user}/pin"): PH,
    ("POST", "/pharmacy/users/{user}/deactivate"): PH,
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
    """A browser logged in as ``principal`` and its CSRF token."""
    c = web.client()
    if principal == "anonymous":
        return c, page_csrf(c)
    kind, role = principal.split(":")
    if kind == PHARMACY:
        return c, ph_login(c, LOGINS[role])
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
    other_token = page_csrf(stranger)
    anon = web.client()
    anon_token = page_csrf(anon)
    nurse_side = web.client()
    ph_other = ph_login(nurse_side, "admin1")
    c = web.client()
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
