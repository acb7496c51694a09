"""The main journeys in Chromium, on the simulated cabinet behind the real web server.

Each test gets its own cabinet (temporary database, demo layout) and a fresh browser
profile. If Chromium is missing the tests fail with the reason: a skipped browser test
would hide a broken UI.
"""

from __future__ import annotations

import grp
import itertools
import os
import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from web_helpers import PINS, SiteProxy, demo_config

from controller.alarms import Where
from controller.web.browser import chromium_path, launch
from controller.web.server import BackgroundServer

#: A lot expiry the running (real-clock) cabinet always accepts, whatever day CI runs.
NEXT_YEAR = (date.today() + timedelta(days=365)).isoformat()

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def playwright():
    chromium_path()  # fails (not skips) with a clear message when Chromium is missing
    with sync_playwright() as p:
        yield p


def make_server(tmp_path, **kw):
    return BackgroundServer(demo_config(tmp_path, **kw), tmp_path / "cabinet.db")


@pytest.fixture
def cabinet(tmp_path):
    with make_server(tmp_path) as server:
        yield server


@pytest.fixture
def pharmacy_pc(tmp_path):
    """The cabinet as a pharmacy PC reaches it: through the site's proxy, on its socket.
    Yields the cabinet and the proxy's URL."""
    path = tmp_path / "proxy.sock"
    group = grp.getgrgid(os.getgid()).gr_name  # the tests cannot use armoire-proxy
    config = demo_config(tmp_path, extra=f'proxy_socket = "{path}"\nproxy_group = "{group}"\n')
    with BackgroundServer(config, tmp_path / "cabinet.db") as server:
        proxy = SiteProxy(path)
        try:
            yield server, proxy.url
        finally:
            proxy.close()


@pytest.fixture
def page(playwright, tmp_path):
    context = launch(playwright, tmp_path / "profile")
    context.set_default_timeout(15000)
    page = context.pages[0] if context.pages else context.new_page()
    yield page
    context.close()


def pin_login(page: Page, base: str, user: str, pin: str | None = None) -> None:
    page.goto(base + "/")
    page.click(f"button[data-user='{user}']")
    for digit in pin or PINS[user]:
        page.click(f"#login .key[data-digit='{digit}']")
    expect(page.locator("#pin-dots")).to_have_text("●" * len(pin or PINS[user]))
    page.click("#login-ok")


def restocked_lots(cabinet):
    """(lot, expiry) of each restock the technician prep1 started, as the cabinet recorded
    its intent: what a scan read, whatever the page showed."""
    cab = cabinet.runtime.cabinet
    intents = cabinet.call(lambda: cab.store.journal_rows(kind="intent"))
    return [(i["lot"], i["expiry"]) for i in intents if i["user"] == "prep1"]


def test_nurse_withdrawal_from_login_to_closed_drawer(cabinet, page):
    base = cabinet.url
    pin_login(page, base, "ide1")
    expect(page).to_have_url(base + "/menu")
    page.click("#go-withdraw")
    page.fill("#patient", "P-042")
    page.fill("#drug-search", "hydr")
    expect(page.locator("label.drug-option:visible")).to_have_count(2)
    expect(page.locator("#drug-list")).to_contain_text("hydrOXYzine")
    expect(page.locator("#drug-list")).to_contain_text("hydrALAZINE")
    page.fill("#drug-search", "hydrox")
    expect(page.locator("label.drug-option:visible")).to_have_count(1)
    page.click("label.drug-option:visible")
    page.click("button[data-step='1'][data-for='qty']")
    expect(page.locator("#qty")).to_have_value("2")
    page.click("#go")
    expect(page).to_have_url(base + "/operation")
    expect(page.locator("#op-msg")).to_have_text("Prenez 2 dans la poche A-1-3")
    expect(page.locator("#pocket-A-1-3")).to_have_class("pocket target")
    physics = cabinet.runtime.simulator.physics
    assert cabinet.call(lambda: physics.drawers["A"].position) >= 0.95  # really open
    expect(page.locator("[data-sim-state='A']")).to_have_text("ouvert")
    page.fill("#count", "16")
    page.click("#confirm-count")
    expect(page.locator("#counted")).to_be_visible()
    page.click("#sim-close-A")  # the drawer's physical Close button, in the simulator
    expect(page).to_have_url(base + "/menu")
    # said once on the menu: what was recorded, as the lists name the drug, and where
    expect(page.locator("#flash")).to_have_text(
        "Prélèvement enregistré : 2 × hydrOXYzine 25 mg comprimé, poche A-1-3")
    assert label_lines(page, "#flash", "A-1-3") == 1
    page.reload()
    expect(page.locator("#flash .flash")).to_have_count(0)
    assert cabinet.call(lambda: physics.drawers["A"].position) == 0.0
    cab = cabinet.runtime.cabinet
    rows = cabinet.call(lambda: cab.store.journal_rows(kind="withdraw"))
    assert rows[-1]["drug"] == "HYDROX25" and rows[-1]["qty"] == 2
    assert rows[-1]["patient"] == "P-042" and rows[-1]["user"] == "ide1"
    assert cabinet.call(lambda: cab.store.on_hand("A", 0, 2)) == 16


def test_technician_restock_refuses_a_wrong_scan(cabinet, page):
    base = cabinet.url
    pin_login(page, base, "prep1")
    page.click("#go-restock")
    expect(page.locator(".picklist").first).to_contain_text("A-2-3")  # 9 métoprolol ≤ 10
    page.click("#pick-A-2-3")
    expect(page.locator("#scan")).to_be_focused()
    page.fill("#lot", "ME-9001")
    page.fill("#expiry", NEXT_YEAR)
    page.click("#scan")
    page.keyboard.type("03400930000014")  # paracétamol's box, not métoprolol's
    page.keyboard.press("Enter")
    expect(page.locator("#flash")).to_contain_text("WRONG_SCAN")
    expect(page.locator("#flash")).to_contain_text("mauvais produit")
    expect(page.locator("#scan")).to_be_focused()
    expect(page.locator("#lot")).to_have_value("ME-9001")
    cab = cabinet.runtime.cabinet
    assert cabinet.call(lambda: cab.store.on_hand("A", 1, 2)) == 9
    assert not restocked_lots(cabinet)  # refused before any intent
    page.keyboard.type("03400930000090")
    page.keyboard.press("Enter")
    expect(page).to_have_url(base + "/operation")
    expect(page.locator("#op-msg")).to_have_text("Rangez 21 dans la poche A-2-3")
    page.fill("#count", "30")
    page.click("#confirm-count")
    page.click("#close-drawer")  # the on-screen Close button
    expect(page).to_have_url(base + "/menu")
    assert cabinet.call(lambda: cab.store.on_hand("A", 1, 2)) == 30
    lots = cabinet.call(lambda: cab.store.pocket_stock("A", 1, 2))
    assert {x["lot"]: x["expiry"] for x in lots}["ME-9001"] == NEXT_YEAR



def test_a_datamatrix_typed_by_a_keyboard_scanner_keeps_its_group_separators(cabinet, page):
    """A USB scanner in keyboard mode types a GS1 group separator as Ctrl+], which a text
    field drops: "10ME-7<GS>17..." reached the cabinet as lot "ME-717..." with no expiry,
    so the DataMatrix's lot was recorded wrong (or the restock refused, LOT_REQUIRED)."""
    base = cabinet.url
    pin_login(page, base, "prep1")
    page.goto(base + "/restock/A/1/2")
    expect(page.locator("#scan")).to_be_focused()
    page.keyboard.type("0103400930000090" + "10ME-7")
    page.keyboard.press("Control+BracketRight")
    page.keyboard.type("17" + NEXT_YEAR[2:4] + NEXT_YEAR[5:7] + NEXT_YEAR[8:10])
    page.keyboard.press("Enter")
    expect(page).to_have_url(base + "/operation")
    assert restocked_lots(cabinet) == [("ME-7", NEXT_YEAR)]


def test_an_expiry_typed_the_french_way_is_taken_and_an_impossible_one_refused_in_french(
        cabinet, english_browser):
    """A French technician types the expiry day first (JJ/MM/AAAA, as the field says), even
    on a kiosk browser set to English. An impossible day is refused in French and the
    scanner keeps the focus: the field's old HTML pattern stopped such a date in the
    browser, with Chromium's own bubble in the browser's language, and moved the focus to the
    expiry field, so the technician's next scan was typed into the date."""
    page = english_browser
    base = cabinet.url
    pin_login(page, base, "prep1")
    page.goto(base + "/restock/A/1/2")  # A-2-3, métoprolol
    expect(page.locator("#expiry")).to_have_attribute("placeholder", "JJ/MM/AAAA")
    page.fill("#lot", "ME-9001")
    day = date.fromisoformat(NEXT_YEAR)
    page.fill("#expiry", f"31/02/{day.year}")
    page.click("#scan")
    page.keyboard.type("03400930000090")
    page.keyboard.press("Enter")
    expect(page.locator("#flash")).to_contain_text("BAD_DATE")
    expect(page.locator("#flash")).to_contain_text("péremption : date attendue (JJ/MM/AAAA")
    expect(page.locator("#scan")).to_be_focused()
    expect(page.locator("#lot")).to_have_value("ME-9001")
    expect(page.locator("#expiry")).to_have_value(f"31/02/{day.year}")
    page.fill("#expiry", day.strftime("%d/%m/%Y"))
    page.click("#scan")
    page.keyboard.type("03400930000090")
    page.keyboard.press("Enter")
    expect(page).to_have_url(base + "/operation")
    assert restocked_lots(cabinet) == [("ME-9001", NEXT_YEAR)]


def test_the_restock_page_keeps_its_buttons_on_the_screen_after_a_refusal(cabinet, page):
    """At 800×480 the restock page's Back button was always below the screen's edge, and
    after a refused scan (its message on top) the Submit button too: the technician with the
    wrong box in hand saw no way back to the pick list."""
    base = cabinet.url
    pin_login(page, base, "prep1")
    page.goto(base + "/restock/A/1/2")  # A-2-3, métoprolol
    page.keyboard.type("03400930000014")  # paracétamol's box
    page.keyboard.press("Enter")
    expect(page.locator("#flash")).to_contain_text("WRONG_SCAN")
    expect(page.locator("#scan")).to_be_focused()
    height = page.viewport_size["height"]
    for selector in ("#scan", "#restock-go", "#restock-back"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["y"] + box["height"] <= height, selector
    page.click("#restock-back")
    expect(page).to_have_url(base + "/restock")
    page.click("#pick-A-2-3")
    page.fill("#lot", "ME-9001")
    page.fill("#expiry", NEXT_YEAR)
    page.fill("#scan", "03400930000090")
    page.click("#restock-go")  # the button, outside the form's column, still submits it
    expect(page).to_have_url(base + "/operation")


def test_pharmacist_resolves_a_discrepancy(cabinet, page):
    base = cabinet.url
    cab = cabinet.runtime.cabinet
    alarm = cabinet.call(lambda: cab.alarms.raise_(
        "discrepancy", Where("MORPH10", "B", 0, 0), "pocket B-1-1: counted 11, expected 12"))
    page.goto(base + "/pharmacy")
    expect(page).to_have_url(base + "/pharmacy/login")
    page.fill("#user_id", "pharma1")
    page.fill("#pin", PINS["pharma1"])
    page.click("#ph-login")
    expect(page).to_have_url(base + "/pharmacy")
    card = page.locator(f"#alarm-{alarm}")
    expect(card).to_contain_text("Écart de comptage")
    card.locator("input[name=note]").fill("recompté : 11, ampoule cassée déclarée")
    page.click(f"#resolve-{alarm}")
    expect(page.locator(f"#alarm-{alarm}")).to_have_count(0)
    row = cabinet.call(lambda: cab.alarms.get(alarm))
    assert row["state"] == "resolved" and row["updated_by"] == "pharma1"
    page.click("#tab-journal")
    page.select_option("select[name=kind]", "alarm_resolved")
    page.click(".filters button")
    expect(page.locator("table.journal tbody")).to_contain_text("pharma1")
    assert cab.session.state == "locked"  # the touchscreen session was never used


def test_inactivity_logout_returns_to_the_lock_screen(playwright, tmp_path):
    with make_server(tmp_path, inactivity=10) as server:
        context = launch(playwright, tmp_path / "profile")
        try:
            page = context.pages[0] if context.pages else context.new_page()
            base = server.url
            pin_login(page, base, "ide1")
            expect(page).to_have_url(base + "/menu")
            expect(page).to_have_url(base + "/?logout=inactivity", timeout=25000)
            expect(page.locator("main")).to_contain_text("Session fermée après inactivité")
            cab = server.runtime.cabinet
            assert server.call(lambda: cab.session.state) == "locked"
            page.goto(base + "/menu")
            expect(page).to_have_url(base + "/")
        finally:
            context.close()


def test_wrong_pins_lock_the_account(cabinet, page):
    base = cabinet.url
    for attempt in range(1, 6):
        pin_login(page, base, "ide2", "135790")
        expected = "AUTH_LOCKED" if attempt == 5 else "AUTH_FAILED"
        expect(page.locator("#flash")).to_contain_text(expected)
    expect(page.locator("#flash")).to_contain_text("ce compte est bloqué")
    expect(page.locator("button[data-user='ide2']")).to_have_count(0)
    page.fill("#user_id", "ide2")
    for digit in PINS["ide2"]:
        page.click(f"#login .key[data-digit='{digit}']")
    page.click("#login-ok")
    expect(page.locator("#flash")).to_contain_text("AUTH_LOCKED")
    cab = cabinet.runtime.cabinet
    assert cabinet.call(lambda: cab.session.state) == "locked"
    alarms = cabinet.call(lambda: cab.alarms.list())
    assert any(a["kind"] == "auth_lockout" and "ide2" in a["message"] for a in alarms)


def test_pharmacist_computes_and_approves_a_layout(cabinet, page):
    base = cabinet.url
    page.goto(base + "/pharmacy/login")
    page.fill("#user_id", "pharma1")
    page.fill("#pin", PINS["pharma1"])
    page.click("#ph-login")
    expect(page).to_have_url(base + "/pharmacy")
    page.click("#tab-layout")
    expect(page.locator("#no-proposal")).to_be_visible()
    page.click("#compute-layout")
    expect(page.locator("#scores")).to_be_visible(timeout=30000)
    expect(page.locator("#moves li").first).to_be_visible()
    cab = cabinet.runtime.cabinet
    proposal = cabinet.call(lambda: cab.store.query(
        "SELECT id, adjacent, current_adjacent FROM layout_proposals")[0])
    expect(page.locator("#score-adjacent")).to_have_text(str(proposal["adjacent"]))
    page.locator("form[action$='/approve'] input[name=note]").fill("vu avec le cadre")
    page.click("#approve-layout")
    expect(page.locator("#flash")).to_contain_text("Plan approuvé")
    expect(page.locator("#layout-tasks li").first).to_be_visible()
    tasks = cabinet.call(lambda: cab.store.query(
        "SELECT COUNT(*) AS n FROM layout_tasks WHERE state='pending'")[0]["n"])
    expect(page.locator("#layout-tasks li")).to_have_count(tasks)
    assert tasks > 0
    assert cabinet.call(lambda: cab.session.state) == "locked"
    # The formulary tab: pockets wait for the re-layout; a drug can still be added.
    page.click("#tab-formulary")
    expect(page.locator("#relayout-running")).to_be_visible()
    page.fill("#add-id", "CODE10")
    page.fill("#add-name", "codéine")
    page.fill("#add-gtin", "03400930000205")
    page.check("#add-drug-form input[name=controlled]")
    page.click("#add-drug")
    expect(page.locator("#flash")).to_contain_text("CODE10 ajouté")
    expect(page.locator("#drug-CODE10")).to_contain_text("stupéfiant")


def new_nurse_at_her_first_login(cabinet, page):
    """A nurse whose account a pharmacist has just created logs in with the temporary PIN:
    the cabinet sends her to the PIN page to choose her own. Returns the base URL and the
    cabinet."""
    from controller import people
    from controller.auth import User

    base = cabinet.url
    cab = cabinet.runtime.cabinet
    pharmacist = User("pharma1", "Pharma", "pharmacist", "fr")
    cabinet.call(lambda: people.create_user(cab, "ide9", "Nouvelle IDE", "nurse", "583920",
                                            actor=pharmacist))
    pin_login(page, base, "ide9", "583920")
    expect(page).to_have_url(base + "/pin")
    expect(page.locator("#pin-required")).to_be_visible()
    return base, cab


def test_a_new_nurse_types_three_pins_on_one_keypad(cabinet, page):
    """The touchscreen has no keyboard: one keypad types into whichever PIN field was
    touched last."""
    base, cab = new_nurse_at_her_first_login(cabinet, page)

    def type_into(field: str, digits: str) -> None:
        page.click(f"#{field}-dots")
        expect(page.locator(f"#{field}-dots")).to_have_class("dots active")
        for digit in digits:
            page.click(f"#pin-form .key[data-digit='{digit}']")

    type_into("current_pin", "583920")
    type_into("new_pin", "736251")
    type_into("confirm_pin", "7362519")  # one digit too many, then taken back
    page.click("#pin-form .key[data-back]")
    expect(page.locator("#current_pin-dots")).to_have_text("●" * 6)
    expect(page.locator("#confirm_pin-dots")).to_have_text("●" * 6)
    page.click("#pin-ok")
    expect(page).to_have_url(base + "/menu")
    assert not cabinet.call(lambda: cab.pin_change_required("ide9"))


def test_the_pin_page_fits_the_cabinets_screen(cabinet, page):
    """At 800×480 the PIN page stacked the three fields over the keypad in a 420 px column:
    keys 7, 8, 9, 0 and Save were below the screen's edge (half of the screen empty beside
    them), so a nurse made to choose her PIN at her first login saw a keypad without them."""
    base, cab = new_nurse_at_her_first_login(cabinet, page)
    height = page.viewport_size["height"]
    for selector in ("#pin-ok", "#pin-form .key[data-digit='0']", "#confirm_pin-dots"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["y"] + box["height"] <= height, selector
    assert page.evaluate("document.documentElement.scrollHeight") <= height
    page.goto(base + "/menu")  # she may not leave: back to the PIN page
    expect(page).to_have_url(base + "/pin")


def test_the_screen_says_when_the_controller_is_out_of_reach(playwright, tmp_path):
    """A screen that looks alive while the controller is gone would let a nurse wait at a
    drawer that will never open. The lock screen learns it from /healthz (asked every ten
    seconds), a live page from its event stream; the notice goes when the answer is back."""
    server = make_server(tmp_path)
    server.start()
    context = launch(playwright, tmp_path / "profile")
    try:
        page = context.pages[0] if context.pages else context.new_page()
        base = server.url
        page.clock.install()
        page.goto(base + "/")
        notice = page.locator("#offline")
        expect(notice).to_be_hidden()
        page.route("**/healthz", lambda route: route.fulfill(status=503, body="down"))
        page.clock.run_for(11000)
        expect(notice).to_be_visible()
        expect(notice).to_have_text("Connexion à l'armoire perdue : reconnexion en cours…")
        page.unroute("**/healthz")
        page.clock.run_for(11000)
        expect(notice).to_be_hidden()

        pin_login(page, base, "ide1")
        expect(page).to_have_url(base + "/menu")
        expect(notice).to_be_hidden()
        server.stop()  # the controller goes away under the nurse's menu
        expect(notice).to_be_visible(timeout=20000)
    finally:
        context.close()
        server.stop()


def keyboard(page: Page, name: str = "Clavier à l'écran"):
    return page.get_by_role("group", name=name)


def tap_keys(page: Page, *labels: str, name: str = "Clavier à l'écran") -> None:
    osk = keyboard(page, name)
    for label in labels:
        osk.get_by_role("button", name=label, exact=True).click()


def assert_above_keyboard(page: Page, selector: str, name: str = "Clavier à l'écran") -> None:
    field = page.locator(selector).bounding_box()
    keys = keyboard(page, name).bounding_box()
    assert field is not None and keys is not None
    assert field["y"] >= 0 and field["y"] + field["height"] <= keys["y"], selector


def test_a_nurse_types_the_search_and_the_patient_on_the_on_screen_keyboard(cabinet, page):
    """The touchscreen has no keyboard and its text fields had no keys: the drug search and
    the patient id could not be typed at the cabinet. An on-screen keyboard comes up under
    the touched field, types where the caret is, and the list filters as it types."""
    base = cabinet.url
    pin_login(page, base, "ide1")
    page.click("#go-withdraw")
    expect(keyboard(page)).to_be_hidden()
    page.click("#drug-search")
    expect(keyboard(page)).to_be_visible()
    assert_above_keyboard(page, "#drug-search")
    key = keyboard(page).get_by_role("button", name="h", exact=True).bounding_box()
    assert key is not None and key["height"] >= 44  # a gloved finger
    tap_keys(page, "h", "y", "d", "r")
    expect(page.locator("#drug-search")).to_have_value("hydr")
    expect(page.locator("#drug-search")).to_be_focused()  # the keys never take the focus
    expect(page.locator("label.drug-option:visible")).to_have_count(2)
    tap_keys(page, "o", "x", "i", "Retour arrière")
    expect(page.locator("#drug-search")).to_have_value("hydrox")
    expect(page.locator("label.drug-option:visible")).to_have_count(1)
    page.click("label.drug-option:visible")  # not a text field: the keyboard goes
    expect(keyboard(page)).to_be_hidden()
    page.click("#patient")
    expect(keyboard(page)).to_be_visible()
    assert_above_keyboard(page, "#patient")
    tap_keys(page, "Majuscules", "p", "Tiret", "0", "4", "2")
    expect(page.locator("#patient")).to_have_value("P-042")
    tap_keys(page, "Entrée")  # submits the form, as Enter on a keyboard
    expect(page).to_have_url(base + "/operation")
    expect(page.locator("#op-msg")).to_have_text("Prenez 1 dans la poche A-1-3")
    expect(keyboard(page)).to_be_hidden()
    page.fill("#count", "17")
    page.click("#confirm-count")
    expect(page.locator("#counted")).to_be_visible()
    page.click("#sim-close-A")
    expect(page).to_have_url(base + "/menu")
    cab = cabinet.runtime.cabinet
    rows = cabinet.call(lambda: cab.store.journal_rows(kind="withdraw"))
    assert rows[-1]["drug"] == "HYDROX25" and rows[-1]["patient"] == "P-042"


def test_the_on_screen_keyboard_closes_and_speaks_the_nurses_language(cabinet, page):
    """AZERTY in French, QWERTY in English; its Close key hides it and leaves the field."""
    base = cabinet.url
    pin_login(page, base, "ide1")
    page.goto(base + "/waste")
    page.click("#witness")
    expect(keyboard(page)).to_be_visible()
    assert "azertyuiop" in "".join(keyboard(page).get_by_role("button").all_inner_texts())
    tap_keys(page, "i", "d", "e", "2")
    expect(page.locator("#witness")).to_have_value("ide2")
    tap_keys(page, "Fermer le clavier")
    expect(keyboard(page)).to_be_hidden()
    expect(page.locator("#witness")).not_to_be_focused()
    expect(page.locator("#witness")).to_have_value("ide2")
    page.click("#witness")  # touched again: the keyboard is back
    expect(keyboard(page)).to_be_visible()
    page.click("#logout")
    page.click("#lang-switch")  # the lock screen in English: its id field has the keys too
    page.click("#user_id")
    english = keyboard(page, "On-screen keyboard")
    expect(english).to_be_visible()
    assert_above_keyboard(page, "#user_id", name="On-screen keyboard")
    assert "qwertyuiop" in "".join(english.get_by_role("button").all_inner_texts())
    tap_keys(page, "a", "s", "1", name="On-screen keyboard")
    expect(page.locator("#user_id")).to_have_value("as1")
    tap_keys(page, "Close the keyboard", name="On-screen keyboard")
    expect(english).to_be_hidden()


def test_the_pharmacy_pages_have_no_on_screen_keyboard(pharmacy_pc, page):
    """The pharmacy pages are used on desktop PCs, with a keyboard (through the cabinet's
    TLS proxy, on its socket)."""
    _, url = pharmacy_pc
    page.goto(url + "/pharmacy/login")
    page.click("#user_id")
    page.keyboard.type("pharma1")
    expect(page.locator("#user_id")).to_have_value("pharma1")
    expect(page.get_by_role("group", name="Clavier à l'écran")).to_have_count(0)


def test_a_pharmacist_at_the_cabinet_logs_in_to_the_pharmacy_pages_on_its_keys(cabinet, page):
    """The lock screen links to the pharmacy login, and a pharmacist at the cabinet (a
    re-layout stuck halfway, a lockout to clear) met its id and PIN fields with no keys: the
    touchscreen has no keyboard. On the kiosk the pharmacy pages have the on-screen keyboard
    too, the digits alone for the PIN (whose dots never show it) and for a number that has
    no − / + beside it."""
    base = cabinet.url
    page.goto(base + "/")
    page.click("a[href='/pharmacy/login']")
    expect(page).to_have_url(base + "/pharmacy/login")
    page.click("#user_id")
    expect(keyboard(page)).to_be_visible()
    assert_above_keyboard(page, "#user_id")
    tap_keys(page, "p", "h", "a", "r", "m", "a", "1")
    expect(page.locator("#user_id")).to_have_value("pharma1")
    page.click("#pin")
    expect(keyboard(page)).to_be_visible()
    expect(osk_key(page, "a")).to_be_hidden()  # a PIN is digits
    assert_above_keyboard(page, "#pin")
    assert_above_keyboard(page, "#ph-login")
    tap_keys(page, *PINS["pharma1"])
    expect(page.locator("#pin")).to_have_attribute("type", "password")
    tap_keys(page, "Entrée")
    expect(page).to_have_url(base + "/pharmacy")
    page.click("#tab-layout")  # a number with no − / +: the digits
    moves = "#propose-form input[name=max_moves]"
    page.click(moves)
    expect(keyboard(page)).to_be_visible()
    expect(osk_key(page, "a")).to_be_hidden()
    tap_keys(page, "2", "5", "Retour arrière", "0")
    expect(page.locator(moves)).to_have_value("20")
    assert_above_keyboard(page, "#compute-layout")


def test_the_scanner_still_types_into_the_scan_field_beside_the_on_screen_keyboard(
        cabinet, page):
    """The scan field keeps the focus and the scanner fills it: no keyboard over the page
    for it; the lot typed on the keyboard, the scan typed by the scanner, as before."""
    base = cabinet.url
    pin_login(page, base, "prep1")
    page.goto(base + "/restock/A/1/2")  # A-2-3, métoprolol
    expect(page.locator("#scan")).to_be_focused()
    expect(keyboard(page)).to_be_hidden()
    page.keyboard.type("03400930000014")  # paracétamol's box
    page.keyboard.press("Enter")
    expect(page.locator("#flash")).to_contain_text("WRONG_SCAN")
    expect(page.locator("#scan")).to_be_focused()
    expect(keyboard(page)).to_be_hidden()
    page.click("#lot")
    expect(keyboard(page)).to_be_visible()
    assert_above_keyboard(page, "#lot")
    tap_keys(page, "Majuscules", "Majuscules", "m", "e", "Tiret", "9", "0", "0", "1")  # caps lock
    expect(page.locator("#lot")).to_have_value("ME-9001")
    tap_keys(page, "Fermer le clavier")
    expect(keyboard(page)).to_be_hidden()
    expect(page.locator("#scan")).to_be_focused()  # back to the scanner's field
    page.fill("#expiry", NEXT_YEAR)
    page.focus("#scan")
    expect(keyboard(page)).to_be_hidden()
    page.keyboard.type("03400930000090")  # the scanner, on the right box
    page.keyboard.press("Enter")
    expect(page).to_have_url(base + "/operation")
    assert restocked_lots(cabinet) == [("ME-9001", NEXT_YEAR)]


def test_a_badge_typed_by_the_reader_on_the_lock_screen_asks_its_holder_s_pin(cabinet, page):
    """The badge reader is a keyboard: it types the card's UID fast, then Enter, wherever the
    focus is. The lock screen's badge field keeps the focus, shows no UID, and the holder's
    PIN page follows; her right PIN logs her in. Typing one's id by hand still works."""
    from controller import people
    from controller.auth import User

    base = cabinet.url
    cab = cabinet.runtime.cabinet
    admin = User("admin1", "IT Admin", "admin", "fr")
    cabinet.call(lambda: people.enrol_badge(cab, "ide1", "04A1B2C3D4E580", actor=admin))
    page.goto(base + "/")
    expect(page.locator("#badge")).to_be_focused()
    expect(keyboard(page)).to_be_hidden()
    height = page.viewport_size["height"]
    for selector in ("#badge", "#login-ok"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["y"] + box["height"] <= height, selector
    page.click("button[data-user='ide2']")  # touching a name: the reader may still type
    expect(page.locator("#badge")).to_be_focused()
    page.keyboard.type("04a1b2c3d4e580")
    expect(page.locator("#badge")).to_have_attribute("type", "password")
    page.keyboard.press("Enter")
    expect(page).to_have_url(base + "/login/pin")
    expect(page.locator("#badge-holder")).to_have_text("Bonjour Claire Martin")
    for digit in PINS["ide1"]:
        page.click(f"#badge-login .key[data-digit='{digit}']")
    page.click("#badge-pin-ok")
    expect(page).to_have_url(base + "/menu")
    assert cabinet.call(lambda: cab.session.user.id) == "ide1"
    page.click("#logout")
    expect(page).to_have_url(base + "/")
    pin_login(page, base, "ide2")  # no badge: her name and her PIN, as before
    expect(page).to_have_url(base + "/menu")


# -- the browser's own bubbles in the reader's language ---------------------------------------
# Chromium words the bubble of a required or out-of-range field in its own language (the
# kiosk's here is English: Debian's Chromium has only en-US), whoever is logged in; the pages
# put the reader's words in it.
@pytest.fixture
def english_browser(playwright, tmp_path):
    """A kiosk browser set to English (its bubbles would be English)."""
    context = launch(playwright, tmp_path / "profile-en", locale="en-US")
    context.set_default_timeout(15000)
    yield context.pages[0] if context.pages else context.new_page()
    context.close()


def validation_message(page: Page, selector: str) -> str:
    """What the field's bubble says (a bubble shows the field's ``validationMessage``)."""
    return str(page.eval_on_selector(selector, "el => el.validationMessage"))


def test_a_french_nurse_on_an_english_browser_gets_french_bubbles(
        cabinet, english_browser):
    page = english_browser
    base = cabinet.url
    pin_login(page, base, "ide1")
    page.click("#go-withdraw")
    page.click("#go")
    expect(page).to_have_url(base + "/withdraw")
    assert validation_message(page, "input[name=drug]") == "Choisissez dans la liste."
    page.click("label.drug-option >> nth=0")
    page.click("#go")
    assert validation_message(page, "#patient") == "Renseignez ce champ."
    page.fill("#patient", "P-042")
    page.fill("#qty", "")
    page.click("#go")
    assert validation_message(page, "#qty") == "Renseignez ce champ."
    page.fill("#qty", "0")
    page.click("#go")
    assert validation_message(page, "#qty") == "Au moins 1."
    expect(page).to_have_url(base + "/withdraw")
    # Put right with the + key (no typing): the form goes, no stale message holds it back.
    page.click("button[data-step='1'][data-for='qty']")
    page.click("#go")
    expect(page).to_have_url(base + "/operation")
    expect(page.locator("#op-msg")).to_contain_text("Prenez 1 dans la poche")
    page.fill("#count", "13")
    page.click("#confirm-count")
    expect(page.locator("#counted")).to_be_visible()
    page.click("#close-drawer")
    expect(page).to_have_url(base + "/menu")


def test_the_pharmacy_pages_speak_the_readers_language_on_a_french_browser(
        cabinet, page):
    base = cabinet.url
    page.goto(base + "/pharmacy/login")
    page.click("#ph-login")
    assert validation_message(page, "#user_id") == "Renseignez ce champ."  # the page is French
    page.click("#lang-switch")
    expect(page.locator("#ph-login")).to_have_text("Log in")
    page.click("#ph-login")
    assert validation_message(page, "#user_id") == "Fill in this field."
    page.fill("#user_id", "admin1")  # who reads English
    page.click("#ph-login")
    assert validation_message(page, "#pin") == "Fill in this field."
    page.fill("#pin", PINS["admin1"])
    page.click("#ph-login")
    expect(page).to_have_url(base + "/pharmacy")
    page.click("#tab-users")
    page.fill("#new-id", "ide7")
    page.click("#add-user")
    assert validation_message(page, "#new-name") == "Fill in this field."
    expect(page).to_have_url(base + "/pharmacy/users")


def test_a_french_page_on_an_english_browser_shows_and_takes_days_the_french_way(
        pharmacy_pc, english_browser):
    """The journal's and the register's days were the browser's date inputs, which Chromium
    shows and reads in its own locale: on this English browser a French pharmacist saw
    mm/dd/yyyy, and 03/12 filtering a narcotics register meant 12 March. The fields now say
    JJ/MM/AAAA, take the day first, and show it back so."""
    page = english_browser
    assert page.evaluate("navigator.language") == "en-US"
    cabinet, base = pharmacy_pc  # a pharmacy PC, through the site's proxy
    page.goto(base + "/pharmacy/login")
    page.fill("#user_id", "pharma1")  # reads French
    page.fill("#pin", PINS["pharma1"])
    page.click("#ph-login")
    expect(page).to_have_url(base + "/pharmacy")
    page.click("#tab-journal")
    field = page.locator("input[name=from]")
    expect(field).to_have_attribute("placeholder", "JJ/MM/AAAA")
    expect(page.locator("label:has(input[name=from]) .datefmt")).to_have_text("JJ/MM/AAAA")
    rows = page.locator("table.journal tbody tr")
    everything = rows.count()
    assert everything > 1
    today = cabinet.call(lambda: cabinet.runtime.cabinet.today())
    field.click()
    page.keyboard.type(today.strftime("%d/%m/%Y"))
    page.click("form.filters button.primary")
    expect(field).to_have_value(today.strftime("%d/%m/%Y"))
    expect(rows).to_have_count(everything)
    field.fill((today + timedelta(days=1)).strftime("%d/%m/%Y"))
    page.click("form.filters button.primary")
    expect(rows).to_have_count(1)
    expect(rows).to_have_text("Rien à afficher.")
    field.fill(today.isoformat())  # ISO is taken too, and shown back the French way
    page.click("form.filters button.primary")
    expect(field).to_have_value(today.strftime("%d/%m/%Y"))
    expect(rows).to_have_count(everything)
    field.fill(f"31/02/{today.year}")
    page.click("form.filters button.primary")
    expect(page.locator("main")).to_contain_text("du : date attendue (JJ/MM/AAAA ou AAAA-MM-JJ)")
    expect(page.locator("main")).to_contain_text("BAD_DATE")
    page.goto(base + "/pharmacy/register")
    page.select_option("#reg-drug", "MORPH10")
    page.fill("input[name=from]", "01/01/2000")
    page.click("#reg-show")
    expect(page.locator("#reg-closing")).to_be_visible()
    expect(page.locator("input[name=from]")).to_have_value("01/01/2000")
    expect(page.locator("#reg-csv")).to_have_attribute(
        "href", re.compile(r"from=2000-01-01"))


def osk_key(page: Page, label: str, name: str = "Clavier à l'écran"):
    return keyboard(page, name).get_by_role("button", name=label, exact=True)


def assert_in_view(page: Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 480, selector


def test_the_keyboard_types_french_accents_in_both_cases(cabinet, page):
    """French names and free text need é è ê à ç ù ô î ï ë, upper case too: an Accents key
    swaps the digits row for a row of accented letters, same height, so the keyboard covers
    no more of the page; Capitals applies to them as to any letter."""
    base = cabinet.url
    pin_login(page, base, "ide1")
    page.click("#go-withdraw")
    page.click("#drug-search")
    height = keyboard(page).bounding_box()["height"]
    accents = osk_key(page, "Accents")
    expect(accents).to_have_attribute("aria-pressed", "false")
    expect(osk_key(page, "é")).to_be_hidden()
    tap_keys(page, "f", "u", "r", "o", "s", "Accents")
    expect(accents).to_have_attribute("aria-pressed", "true")
    expect(osk_key(page, "1")).to_be_hidden()  # in the digits' place
    key = osk_key(page, "é").bounding_box()
    assert key is not None and key["height"] >= 44 and key["width"] >= 44
    assert keyboard(page).bounding_box()["height"] == height
    tap_keys(page, "é")
    expect(page.locator("#drug-search")).to_have_value("furosé")
    expect(page.locator("label.drug-option:visible")).to_have_count(1)
    expect(page.locator("label.drug-option:visible")).to_contain_text("furosémide")
    page.fill("#drug-search", "")
    tap_keys(page, "é", "è", "ê", "ë", "à", "ç", "ù", "ô", "î", "ï")
    expect(page.locator("#drug-search")).to_have_value("éèêëàçùôîï")
    expect(page.locator("#drug-search")).to_be_focused()
    tap_keys(page, "Majuscules", "é", "Majuscules", "Majuscules", "è", "ç", "à", "ù")
    expect(page.locator("#drug-search")).to_have_value("éèêëàçùôîïÉÈÇÀÙ")
    assert "ÉÈÊËÀ" in "".join(keyboard(page).get_by_role("button").all_inner_texts())
    tap_keys(page, "Accents")  # the digits are back
    expect(osk_key(page, "1")).to_be_visible()
    expect(osk_key(page, "é")).to_be_hidden()
    page.click("#logout")
    page.click("#lang-switch")  # English, QWERTY: the same accents
    page.click("#user_id")
    tap_keys(page, "Accents", "é", "ç", name="On-screen keyboard")
    expect(page.locator("#user_id")).to_have_value("éç")


def test_capitals_apply_to_the_next_letter_and_a_second_touch_locks_them(cabinet, page):
    """One touch on Capitals makes the next letter a capital, and only that one (digits and
    signs in between do not use it up); a second touch locks capitals until a third. The
    key shows which: pressed (⇧) for the next letter, ⇪ when locked."""
    base = cabinet.url
    pin_login(page, base, "ide1")
    page.click("#go-withdraw")
    page.click("#patient")
    shift = osk_key(page, "Majuscules")
    expect(shift).to_have_attribute("aria-pressed", "false")
    tap_keys(page, "Majuscules")
    expect(shift).to_have_attribute("aria-pressed", "true")
    expect(shift).to_have_text("⇧")
    expect(osk_key(page, "a")).to_have_text("A", use_inner_text=True)  # what it will type
    tap_keys(page, "Tiret", "1", "p", "a")
    expect(page.locator("#patient")).to_have_value("-1Pa")
    expect(shift).to_have_attribute("aria-pressed", "false")
    expect(osk_key(page, "a")).to_have_text("a", use_inner_text=True)
    tap_keys(page, "Majuscules", "Majuscules")
    expect(shift).to_have_attribute("aria-pressed", "true")
    expect(shift).to_have_text("⇪")
    expect(keyboard(page)).to_have_attribute("data-shift", "lock")
    tap_keys(page, "b", "c", "2", "d")
    expect(page.locator("#patient")).to_have_value("-1PaBC2D")
    expect(shift).to_have_text("⇪")
    tap_keys(page, "Majuscules", "e")
    expect(page.locator("#patient")).to_have_value("-1PaBC2De")
    expect(shift).to_have_attribute("aria-pressed", "false")
    expect(keyboard(page)).to_have_attribute("data-shift", "off")
    tap_keys(page, "Majuscules", "Fermer le clavier")  # a pending capital does not outlive it
    page.click("#patient")
    expect(shift).to_have_attribute("aria-pressed", "false")
    tap_keys(page, "f")
    expect(page.locator("#patient")).to_have_value("-1PaBC2Def")


def morphine_to_waste(page: Page, base: str) -> None:
    """The nurse on the waste page with morphine, a controlled drug, chosen."""
    pin_login(page, base, "ide1")
    page.click("#go-waste")
    page.fill("#drug-search", "morph")
    page.click("label.drug-option:has(input[value=MORPH10])")


def test_the_keyboard_makes_way_for_the_witness_pin_pad(cabinet, page):
    """On the waste page the keyboard covered the witness's PIN pad until it was closed. Its
    Enter key is "Suivant" on the witness id and takes the nurse to the pad, the keyboard
    gone; touching the pad or a number field closes it too, and the touch lands where it
    was aimed. The witness field and the page's button stay above the keys."""
    morphine_to_waste(page, cabinet.url)
    page.click("#witness")
    expect(keyboard(page)).to_be_visible()
    assert_above_keyboard(page, "#witness")
    assert_above_keyboard(page, "#go")
    expect(osk_key(page, "Entrée")).to_have_count(0)
    tap_keys(page, "i", "d", "e", "2", "Suivant")
    expect(keyboard(page)).to_be_hidden()
    expect(page.locator("#witness")).to_have_value("ide2")
    expect(page.locator("#witness_pin-pad")).to_be_focused()
    for selector in ("#witness_pin-dots", "#witness_pin-pad .key[data-digit='0']", "#go"):
        assert_in_view(page, selector)
    for digit in PINS["ide2"][:3]:
        page.click(f"#witness_pin-pad .key[data-digit='{digit}']")
    expect(page.locator("#witness_pin-dots")).to_have_text("●" * 3)
    page.click("#witness")  # back to the id: the keyboard again
    expect(keyboard(page)).to_be_visible()
    digit = PINS["ide2"][3]
    assert_above_keyboard(page, f"#witness_pin-pad .key[data-digit='{digit}']")
    page.click(f"#witness_pin-pad .key[data-digit='{digit}']")  # a pad key above the keys
    expect(keyboard(page)).to_be_hidden()
    expect(page.locator("#witness_pin-dots")).to_have_text("●" * 4)  # the touch landed
    page.click("#witness")
    page.click("#qty")  # a number field has its − / +: no keyboard over them
    expect(keyboard(page)).to_be_hidden()
    for d in PINS["ide2"][4:]:
        page.click(f"#witness_pin-pad .key[data-digit='{d}']")
    page.click("#go")
    expect(page).to_have_url(cabinet.url + "/operation")
    cab = cabinet.runtime.cabinet
    intents = cabinet.call(lambda: cab.store.journal_rows(kind="intent"))
    assert intents[-1]["drug"] == "MORPH10"


def test_touching_a_name_while_the_keyboard_is_up_picks_that_name(cabinet, page):
    """The keyboard going away shortened the page under the finger: the touch on a name
    (or a PIN key) started on one button and ended on another, and nothing was chosen.
    The id field's Enter is "Suivant" too, to the PIN pad."""
    base = cabinet.url
    page.goto(base + "/")
    page.click("#user_id")
    expect(keyboard(page)).to_be_visible()
    assert_above_keyboard(page, "#user_id")
    assert_above_keyboard(page, "#login-ok")
    page.click("button[data-user='ide2']")
    expect(keyboard(page)).to_be_hidden()
    expect(page.locator("#user_id")).to_have_value("ide2")
    page.click("#user_id")
    page.fill("#user_id", "")
    tap_keys(page, "i", "d", "e", "1", "Suivant")
    expect(keyboard(page)).to_be_hidden()
    # The pad is shown; the focus it got goes back to the badge field, which keeps it
    # on the lock screen (the badge reader types wherever the focus is: a badge presented
    # now must reach its own field, not be lost on the pad nor land in the id field).
    expect(page.locator("#pin-pad")).to_be_in_viewport()
    expect(page.locator("#badge")).to_be_focused()
    for digit in PINS["ide1"]:
        page.click(f"#login .key[data-digit='{digit}']")
    page.click("#login-ok")
    expect(page).to_have_url(base + "/menu")


def test_a_date_field_gets_only_the_digits_and_covers_less(cabinet, page):
    """The expiry is digits with hyphens, or slashes in French (inputmode numeric): the
    letters would only hide the drawer and the Submit button under them, so that field gets
    the digits row alone, and the slash of JJ/MM/AAAA."""
    base = cabinet.url
    pin_login(page, base, "prep1")
    page.goto(base + "/restock/A/1/2")
    page.click("#lot")
    full = keyboard(page).bounding_box()
    expect(osk_key(page, "a")).to_be_visible()
    page.click("#expiry")
    expect(keyboard(page)).to_be_visible()
    expect(osk_key(page, "a")).to_be_hidden()
    expect(osk_key(page, "Accents")).to_be_hidden()
    small = keyboard(page).bounding_box()
    assert full is not None and small is not None and small["height"] < full["height"] / 2
    key = osk_key(page, "Tiret").bounding_box()
    assert key is not None and key["height"] >= 44
    tap_keys(page, *[("Tiret" if c == "-" else c) for c in NEXT_YEAR], "0")
    tap_keys(page, "Retour arrière")
    expect(page.locator("#expiry")).to_have_value(NEXT_YEAR)
    french = date.fromisoformat(NEXT_YEAR).strftime("%d/%m/%Y")  # JJ/MM/AAAA, as it says
    page.fill("#expiry", "")
    tap_keys(page, *[("Barre oblique" if c == "/" else c) for c in french])
    expect(page.locator("#expiry")).to_have_value(french)
    assert_above_keyboard(page, "#expiry")
    assert_above_keyboard(page, "#restock-go")
    assert_above_keyboard(page, ".drawing figure")
    page.click("#lot")  # a text field again: the letters are back
    expect(osk_key(page, "a")).to_be_visible()


def test_every_text_field_and_its_button_stay_above_the_keyboard(cabinet, page):
    """At 800x480 the keyboard takes half the screen: whichever touchscreen text field it
    types into, that field and the button that sends its form are still in sight."""
    base = cabinet.url

    def check(path: str, button: str, *fields: str) -> None:
        page.goto(base + path)
        for field in fields:
            page.click(field)
            expect(keyboard(page)).to_be_visible()
            assert_above_keyboard(page, field)
            assert_above_keyboard(page, button)

    check("/", "#login-ok", "#user_id")
    pin_login(page, base, "ide1")
    check("/withdraw", "#go", "#drug-search", "#patient")
    check("/return", "#go", "#drug-search", "#patient")
    check("/waste", "#go", "#drug-search", "#witness")
    page.click("#logout")
    expect(page).to_have_url(base + "/")  # the logout's own navigation first
    pin_login(page, base, "prep1")
    check("/restock/A/1/2", "#restock-go", "#lot", "#expiry")


# -- a pocket's name is never cut at the end of a line -----------------------------------------
def label_lines(page: Page, selector: str, label: str) -> int:
    """On how many lines the pocket label ``label`` is drawn inside ``selector``: "A-2-" at
    the end of a line and "2" on the next reads as another pocket, or none."""
    return int(page.eval_on_selector(selector, """(root, label) => {
        const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        for (let node = walk.nextNode(); node; node = walk.nextNode()) {
            const at = node.data.indexOf(label);
            if (at < 0) continue;
            const range = document.createRange();
            range.setStart(node, at);
            range.setEnd(node, at + label.length);
            return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
        }
        return 0;
    }""", label))


def test_the_pockets_a_jam_exposed_are_each_named_on_one_line(cabinet, page):
    """At 800x480 the jam's message broke "A-2-2" into "A-2-" and "2"."""
    base = cabinet.url
    pin_login(page, base, "ide1")
    labels = [f"A-{r}-{c}" for r in (1, 2, 3) for c in (1, 2, 3)]
    cab = cabinet.runtime.cabinet
    cabinet.call(lambda: cab._emit({
        "type": "error", "code": "JAMMED_PART_OPEN",
        "en": f"drawer A jammed part-open: pocket(s) {', '.join(labels)} may have been reached",
        "fr": (f"le tiroir A s'est bloqué entrouvert : la ou les poches {', '.join(labels)} "
               "ont pu être atteintes. N'y prenez rien ; la pharmacie doit les compter avant "
               "que leur stock soit fiable")}))
    page.reload()  # kept for the kiosk's next page
    expect(page.locator("#flash")).to_contain_text("JAMMED_PART_OPEN")
    for label in labels:
        assert label_lines(page, "#flash", label) == 1, label


def stuck_on_the_bench(cabinet, page: Page) -> None:
    """Paracetamol (A-1-1) approved for B-3-3 (lorazepam's, emptied and given up), taken out
    onto the bench by the technician at the touchscreen, then drawer B goes out of service:
    the re-layout is stuck halfway. The technician stays logged in on the task list."""
    import json

    from helpers import approved_tasks

    from controller import formulary, relayout
    from controller.store import JournalEntry, StockDelta

    base = cabinet.url
    cab = cabinet.runtime.cabinet
    store = cabinet.runtime.store

    def paracetamol_for_b33() -> None:
        for lot in store.query("SELECT * FROM stock WHERE drawer='B' AND row=2 AND col=2"):
            store.append(JournalEntry("withdraw", drug=lot["drug"], drawer="B", row=2, col=2,
                                      qty=lot["on_hand"], lot=lot["lot"], expiry=lot["expiry"]),
                         [StockDelta("B", 2, 2, lot["lot"], lot["drug"], lot["expiry"],
                                     -lot["on_hand"])])
        formulary.unassign_pocket(cab, "B", 2, 2,
                                  actor=cab.authenticate("pharma1", PINS["pharma1"]))
        problem = relayout.build_problem(cab)  # a proposal the layout page can draw
        placements = [{**p, **({"drawer": "B", "row": 2, "col": 2}
                               if p["drug"] == "PARA500" else {})} for p in problem["current"]]
        approved_tasks(store, 90, [("PARA500", ("A", 0, 0), ("B", 2, 2), 60)])
        with store.transaction() as conn:
            conn.execute("UPDATE layout_proposals SET problem=?, solution=? WHERE id=90",
                         (json.dumps(problem), json.dumps({"placements": placements})))

    cabinet.call(paracetamol_for_b33)
    pin_login(page, base, "prep1")
    page.goto(base + "/relayout")
    page.click("#start-task")
    expect(page.locator("#op-msg")).to_contain_text("comptez 0")
    page.fill("#count", "0")
    page.click("#confirm-count")
    page.click("#close-drawer")
    expect(page).to_have_url(base + "/relayout")
    cabinet.call(lambda: cab.units["B"].fire("ev_offline", detail={"reason": "TEST"}))
    page.reload()


def test_the_put_back_button_names_its_pocket_on_one_line(cabinet, page):
    """The re-layout's "Remettre dans A-1-1" read "Remettre dans A-" / "1-1", the stuck
    hint squeezing the task and its button into narrow columns."""
    stuck_on_the_bench(cabinet, page)
    expect(page.locator("#put-back")).to_have_text("Remettre dans A-1-1")
    assert label_lines(page, "#put-back", "A-1-1") == 1
    assert label_lines(page, "#put-back-hint", "A-1-1") == 1
    box = page.locator(".tasktext").first.bounding_box()
    assert box is not None and box["width"] >= 300  # the task reads on a line, not in a column


def test_each_note_of_a_stuck_layout_sits_beside_its_own_button(cabinet, page):
    """The layout page stacked the return's count, its note, its button, then the abandon's
    note and button, all full width: two "Note" fields one under the other, and nothing to
    say which button sends which. Each form is now one framed row, its fields beside its
    button, at the kiosk's size and the pharmacy's."""
    base = cabinet.url
    stuck_on_the_bench(cabinet, page)
    page.click("#logout")
    expect(page).to_have_url(base + "/")  # the logout's own navigation first
    page.goto(base + "/pharmacy/login")
    page.fill("#user_id", "pharma1")
    page.fill("#pin", PINS["pharma1"])
    page.click("#ph-login")
    for width, height in ((800, 480), (1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(base + "/pharmacy/layout")
        for form, button in (("#return-to-pharmacy", "#return-units"),
                             ("#abandon-form", "#abandon-layout")):
            press = page.locator(button).bounding_box()
            for field in page.locator(f"{form} input:not([type=hidden])").all():
                box = field.bounding_box()
                assert box is not None and press is not None
                middle = box["y"] + box["height"] / 2
                assert press["y"] <= middle <= press["y"] + press["height"], (width, form)


def test_the_live_operation_message_keeps_its_pocket_on_one_line(cabinet, page):
    """The page shows "Tiroir A en cours d'ouverture" and the live update writes "Prenez 1
    dans la poche A-1-3": the script keeps the label whole, as the server's pages do."""
    base = cabinet.url
    pin_login(page, base, "ide1")
    page.click("#go-withdraw")
    page.fill("#patient", "P-042")
    page.fill("#drug-search", "hydrox")
    page.click("label.drug-option:visible")
    page.click("#go")
    expect(page).to_have_url(base + "/operation")
    expect(page.locator("#op-msg")).to_have_text("Prenez 1 dans la poche A-1-3")
    expect(page.locator("#op-msg .nobr")).to_have_text("A-1-3")


# -- the kiosk's small screen: nothing needed below the fold --------------------------------
def test_the_lot_s_enter_goes_on_to_the_expiry_whose_enter_submits(cabinet, page):
    """The lot's Enter on the on-screen keyboard submitted the restock with the expiry still
    empty. It is "Suivant" to the expiry, which keeps the keyboard (its digits); the
    expiry's own Enter sends the form."""
    base = cabinet.url
    pin_login(page, base, "prep1")
    page.goto(base + "/restock/A/1/2")  # A-2-3, métoprolol
    page.fill("#scan", "03400930000090")  # the box, read before the lot was typed
    page.click("#lot")
    expect(osk_key(page, "Entrée")).to_have_count(0)
    tap_keys(page, "m", "e", "Tiret", "9", "0", "0", "1", "Suivant")
    expect(page.locator("#expiry")).to_be_focused()
    expect(page).to_have_url(base + "/restock/A/1/2")  # nothing sent
    expect(keyboard(page)).to_be_visible()
    expect(osk_key(page, "a")).to_be_hidden()  # the expiry's digits
    assert_above_keyboard(page, "#expiry")
    tap_keys(page, *[("Tiret" if c == "-" else c) for c in NEXT_YEAR], "Entrée")
    expect(page).to_have_url(base + "/operation")
    expect(page.locator("#op-msg")).to_have_text("Rangez 21 dans la poche A-2-3")


def test_the_restock_heading_stays_in_sight_while_the_lot_is_typed(cabinet, page):
    """With the keyboard up for the lot, the page scrolled the heading (which drug, which
    pocket) off the top: the technician typed a lot without seeing what she restocked."""
    base = cabinet.url
    pin_login(page, base, "prep1")
    page.goto(base + "/restock/A/1/2")
    for field in ("#lot", "#expiry"):
        page.click(field)
        expect(keyboard(page)).to_be_visible()
        heading = page.locator("#restock-what")
        expect(heading).to_contain_text("A-2-3")
        expect(heading).to_contain_text("métoprolol")
        assert_above_keyboard(page, "#restock-what")
        assert_above_keyboard(page, field)
        assert_above_keyboard(page, "#restock-go")
        top = heading.bounding_box()
        box = page.locator(field).bounding_box()
        assert top is not None and box is not None
        assert top["y"] + top["height"] <= box["y"], field  # the field is not under it


def assert_fits(page: Page, *selectors: str) -> None:
    """Each element wholly on the screen, with no scrolling."""
    height = page.viewport_size["height"]
    assert page.evaluate("window.scrollY") == 0
    for selector in selectors:
        box = page.locator(selector).first.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, selector


@pytest.mark.parametrize("size", [(800, 480), (1280, 800)])
def test_the_lock_screen_fits_with_a_message(playwright, cabinet, tmp_path, size):
    """A wrong PIN's message pushed the typed-id field, and the pharmacy link, below the
    800x480 screen's edge."""
    context = launch(playwright, tmp_path / "profile", width=size[0], height=size[1])
    try:
        page = context.pages[0]
        pin_login(page, cabinet.url, "ide1", "000000")
        expect(page.locator("#flash")).to_contain_text("AUTH_FAILED")
        page.evaluate("window.scrollTo(0, 0)")
        assert_fits(page, "#flash .flash", "#badge", "#login .userlist",
                    "button[data-user='admin1']", "button[data-user='prep1']", "#user_id",
                    "#login .key[data-digit='0']", "#login-ok", "a[href='/pharmacy/login']")
        assert page.evaluate("document.documentElement.scrollHeight") <= size[1]
    finally:
        context.close()


def test_the_touchscreen_forms_fit_with_their_refusal(cabinet, page):
    """A refused form comes back with its message on top: at 800x480 its fields and buttons
    must still be on the screen without scrolling."""
    base = cabinet.url
    pin_login(page, base, "ide1")

    def refused(path: str, *fields: str) -> None:
        page.goto(base + path)
        if path != "/waste":
            page.fill("#patient", "P-042")
        page.fill("#drug-search", "morph" if path == "/waste" else "hydrox")
        page.click("label.drug-option:visible")
        page.fill("#qty", "999")
        page.click("#go")
        expect(page.locator("#flash .flash")).to_be_visible()
        assert_fits(page, "#flash .flash", "h1", "#drug-search", "#drug-list", "#qty", "#go",
                    "a[href='/menu']", *fields)

    refused("/withdraw", "#patient")
    refused("/return", "#patient")
    refused("/waste", "#witness", "#witness_pin-dots", "#witness_pin-pad .key[data-digit='0']")
    page.goto(base + "/count")
    page.eval_on_selector("#count-A-1-1 input[name=row]", "el => { el.value = '99'; }")
    page.click("#count-A-1-1 button")
    expect(page).to_have_url(base + "/count")
    expect(page.locator("#flash .flash")).to_be_visible()
    assert_fits(page, "#flash .flash", "h1", "#count-A-1-1 button")


# -- each list screen's Back link on the 800x480 screen ------------------------------------
def assert_uncovered(page: Page, selector: str) -> None:
    """What a finger touching the element's middle would touch is the element itself."""
    assert page.eval_on_selector(selector, """el => {
        const r = el.getBoundingClientRect();
        return el.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2));
    }"""), selector


def long_lists(cabinet) -> None:
    """Lists as a real ward has them: an expired lot in eight pockets (the expired-lots
    screen, and the pick list's "to remove first"), eight re-layout tasks."""
    from helpers import approved_tasks, restocked

    store = cabinet.runtime.store

    def fill() -> None:
        pockets = store.query("SELECT drawer, row, col, drug FROM pockets "
                              "WHERE drug IS NOT NULL ORDER BY drawer, row, col")
        assert len(pockets) >= 9
        for n, p in enumerate(pockets[:8]):
            restocked(store, p["drug"], (p["drawer"], p["row"], p["col"]), 1, f"OLD-{n}",
                      "2020-01-31")
        approved_tasks(store, 91, [
            (p["drug"], (p["drawer"], p["row"], p["col"]),
             (q["drawer"], q["row"], q["col"]), 30)
            for p, q in itertools.pairwise(pockets[:9])])

    cabinet.call(fill)


def test_each_list_screen_s_back_link_is_on_the_screen_without_scrolling(cabinet, page):
    """At 800x480 the count screen's Back link sat under its list of pockets, below the
    screen's edge: a nurse had to scroll to the end to find her way back to the menu. The
    pick list (all pockets opened), the expired lots and the re-layout tasks had it there
    too once their list was long. It is now beside the title, where it covers none of the
    list's buttons."""
    long_lists(cabinet)
    base = cabinet.url
    pin_login(page, base, "prep1")
    for path, first in (("/count", "#count-A-1-1 button"), ("/restock", "a.pickrow"),
                        ("/remove", "form.removepocket button"), ("/relayout", "#start-task"),
                        ("/drawers", "#drawer-A")):
        page.goto(base + path)
        if path == "/restock":
            page.click("details.all summary")  # every pocket listed under the pick list
        page.evaluate("window.scrollTo(0, 0)")
        assert page.evaluate("document.documentElement.scrollHeight") > 480 or path in (
            "/drawers",), path  # a list longer than the screen (the demo has two drawers)
        assert_fits(page, "#page-back", "h1", first)
        assert_uncovered(page, "#page-back")
        assert_uncovered(page, first)
        expect(page.locator("#page-back")).to_have_text("Retour")
        page.click("#page-back")
        expect(page).to_have_url(base + "/menu")


def test_the_drug_chosen_before_a_refusal_is_in_sight_when_the_form_comes_back(
        cabinet, page):
    """A waste of morphine refused for its missing witness came back with morphine still
    chosen but scrolled out of sight at the list's end, under amoxicilline and chlorure de
    potassium: the nurse could not see which drug the form would send once the witness
    was typed. The chosen drug is scrolled into the list's view."""
    morphine_to_waste(page, cabinet.url)
    page.click("#go")
    expect(page.locator("#flash")).to_contain_text("WITNESS_REQUIRED")
    expect(page.locator("input[value=MORPH10]")).to_be_checked()
    chosen = page.locator("label.drug-option:has(input[value=MORPH10])").bounding_box()
    frame = page.locator("#drug-list").bounding_box()
    assert chosen is not None and frame is not None
    assert frame["y"] <= chosen["y"]
    assert chosen["y"] + chosen["height"] <= frame["y"] + frame["height"]
    assert chosen["y"] + chosen["height"] <= page.viewport_size["height"]


# -- a ward's shifts at 800x480 ----------------------------------------------------------------
def test_the_patient_field_keeps_its_label_in_sight_while_it_is_typed(cabinet, page):
    """Touching the patient field scrolled the page so far that its label, "Patient
    (identifiant)", went off the top: the nurse typed into a field that no longer said
    what it was for. The label stays on the screen above the field, with the form's
    button above the keys as before."""
    pin_login(page, cabinet.url, "ide1")
    for path in ("/withdraw", "/return"):
        page.goto(cabinet.url + path)
        page.click("#patient")
        expect(keyboard(page)).to_be_visible()
        label = page.locator("label[for=patient]")
        expect(label).to_have_text("Patient (identifiant)")
        assert_above_keyboard(page, "label[for=patient]")
        assert_above_keyboard(page, "#patient")
        assert_above_keyboard(page, "#go")


def test_the_witness_box_s_title_is_on_one_line_inside_its_box(cabinet, page):
    """At 800x480 "Témoin (pour un stupéfiant)" wrapped onto two lines, its second across
    the box's top border."""
    morphine_to_waste(page, cabinet.url)
    legend = page.locator("fieldset.witness legend")
    expect(legend).to_have_text("Témoin (pour un stupéfiant)")
    assert label_lines(page, "fieldset.witness legend", "Témoin (pour un stupéfiant)") == 1
    box = legend.bounding_box()
    frame = page.locator("fieldset.witness").bounding_box()
    assert box is not None and frame is not None
    assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]


def test_the_count_screen_s_buttons_line_up_in_one_column(cabinet, page):
    """Each Compter button sat right after its drug's name, so the buttons zigzagged down
    the screen with the names' lengths."""
    pin_login(page, cabinet.url, "ide1")
    page.goto(cabinet.url + "/count")
    buttons = page.locator("form.pickrow button")
    assert buttons.count() >= 9
    lefts = {round(b["x"]) for b in (buttons.nth(i).bounding_box() or {"x": -1}
                                     for i in range(buttons.count()))}
    assert len(lefts) == 1, lefts
    assert all(b.bounding_box()["x"] + b.bounding_box()["width"] <= 800  # type: ignore[index]
               for b in buttons.all())


def test_an_expiry_typed_on_a_keyboard_then_the_screen_s_enter_is_refused_in_french(
        cabinet, english_browser):
    """The expiry typed on a physical keyboard, then the on-screen Entrée with the scan
    field empty: the bubble said "Please fill out this field." on the French page, because
    the expiry's change event (as the focus moved to the scan field) cleared the French
    words just set."""
    page = english_browser
    base = cabinet.url
    pin_login(page, base, "prep1")
    page.goto(base + "/restock/A/1/2")
    page.fill("#lot", "ME-9001")
    page.click("#expiry")
    expect(keyboard(page)).to_be_visible()
    page.keyboard.type(NEXT_YEAR)
    tap_keys(page, "Entrée")
    expect(page.locator("#scan")).to_be_focused()
    expect(page).to_have_url(base + "/restock/A/1/2")
    assert validation_message(page, "#scan") == "Renseignez ce champ."
