"""What the nurse is told once her operation is over: which operation was recorded, and a
blind count's difference reported to the pharmacy without the number it was expected."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from test_web import login, running_web, wait_for


@pytest.fixture
def web(tmp_path):
    for running in running_web(tmp_path):
        # As the app's lifespan does (the test client does not run it): the cabinet's
        # events, among them the operation's end that the menu's confirmation comes from.
        running.cabinet.listeners.append(running.app.state.web.on_cabinet_event)
        yield running


def flashes(page: str) -> list[str]:
    """The messages on top of a page, as read (tags and entities gone)."""
    found = re.findall(r'<p class="flash [^"]*" role="alert">(.*?)</p>', page, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", f)).split()) for f in found]


def test_the_menu_confirms_the_withdrawal_once(web):
    """Back on the menu once the drawer closed, nothing said the withdrawal had been
    recorded. The menu says so once, naming the operation, the quantity, the drug as the
    lists name it and the pocket; a reload does not say it again."""
    cab = web.cabinet
    store = web.runtime.store
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    before = store.on_hand("B", 0, 0)
    c.post("/withdraw", data={"csrf": token, "drug": "MORPH10", "qty": "2", "patient": "P1"})
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    assert not [f for f in flashes(c.get("/operation").text) if "enregistré" in f]
    c.post("/operation/count", data={"csrf": token, "count": str(before - 2)})
    c.post("/operation/close", data={"csrf": token})
    wait_for(web, lambda: cab.session.op is None)
    menu = flashes(c.get("/menu").text)
    assert menu == ["Prélèvement enregistré : 2 × morphine 10 mg/mL ampoule, poche B-1-1"]
    assert not flashes(c.get("/menu").text)  # one-shot


def test_the_menu_confirms_in_the_nurse_s_language(web):
    cab = web.cabinet
    store = web.runtime.store
    store.conn.execute("UPDATE users SET lang = 'en' WHERE id = 'ide2'")
    c = web.client(host="127.0.0.1")
    token = login(c, "ide2")
    c.post("/return", data={"csrf": token, "drug": "PARA1G", "qty": "1", "patient": "P1"})
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    op = cab.session.op
    left = store.on_hand(op.pocket.drawer, op.pocket.row, op.pocket.col) + 1
    label = op.pocket.label
    c.post("/operation/close", data={"csrf": token})
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.drawer_closed)
    # the count after the drawer closed ends the operation: straight to the menu
    r = c.post("/operation/count", data={"csrf": token, "count": str(left)})
    assert r.headers["location"] == "/menu"
    assert flashes(c.get("/menu").text) == [
        f"Return recorded: 1 × paracétamol 1 g comprimé, pocket {label}"]


def count_a_3_3(web, n: int) -> tuple[Any, str, str]:
    """The nurse counts n in A-3-3 (hydralazine), its drawer still open: her browser, its
    CSRF token and the operation page then."""
    cab = web.cabinet
    c = web.client(host="127.0.0.1")
    token = login(c, "ide1")
    c.post("/count", data={"csrf": token, "drawer": "A", "row": "2", "col": "2"})
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    c.post("/operation/count", data={"csrf": token, "count": str(n)})
    return c, token, c.get("/operation").text


def test_a_blind_count_s_difference_is_said_reported_never_its_expected_number(web):
    """Counting 40 where 48 were expected, the nurse saw only "Compte enregistré : 40", as
    if nothing were wrong. The count stays blind (the expected number is never shown), but
    the screen says a difference was found and reported to the pharmacy, at the drawer and
    on the menu after."""
    cab = web.cabinet
    store = web.runtime.store
    expected = store.on_hand("A", 2, 2)
    assert expected > 8
    counted = expected - 8
    c, token, page = count_a_3_3(web, counted)
    gap = re.search(r'<p id="count-gap" class="([^"]*)">(.*?)</p>', page, re.S)
    assert gap is not None and "hidden" not in gap.group(1)
    assert "écart signalé à la pharmacie" in html.unescape(gap.group(2))
    assert not re.search(rf"\b{expected}\b", gap.group(2))
    c.post("/operation/close", data={"csrf": token})
    wait_for(web, lambda: cab.session.op is None)
    [said] = flashes(c.get("/menu").text)
    assert said == (f"Compte enregistré : {counted} × hydrALAZINE 25 mg comprimé, poche A-3-3"
                    " — écart signalé à la pharmacie")
    assert [a for a in cab.alarms.list() if a["kind"] == "discrepancy"]


def test_a_count_that_matches_reports_no_difference(web):
    cab = web.cabinet
    expected = web.runtime.store.on_hand("A", 2, 2)
    c, token, page = count_a_3_3(web, expected)
    assert 'id="count-gap"' not in page and "écart" not in html.unescape(page)
    c.post("/operation/close", data={"csrf": token})
    wait_for(web, lambda: cab.session.op is None)
    assert flashes(c.get("/menu").text) == [
        f"Compte enregistré : {expected} × hydrALAZINE 25 mg comprimé, poche A-3-3"]
