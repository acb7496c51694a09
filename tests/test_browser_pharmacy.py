"""The pharmacy pages in Chromium, for what only a browser shows: the printed register and
tables that must fit a desk's (1366×768) or a tablet's (1024×768) screen."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from test_browser import cabinet, label_lines, page, playwright  # noqa: F401  (fixtures)
from web_helpers import PINS

pytestmark = pytest.mark.browser


def pharmacy_login(tab: Page, base: str, user: str = "pharma1") -> None:
    tab.goto(base + "/pharmacy/login")
    tab.fill("#user_id", user)
    tab.fill("#pin", PINS[user])
    tab.click("#ph-login")
    expect(tab).to_have_url(base + "/pharmacy")


def test_the_printed_register_is_the_register_alone_and_fits_the_paper(cabinet, page):  # noqa: F811
    """Printed from the page, the register came with the header, the tabs and the filter
    form, and its table was cut at the paper's edge (a scrolling box prints as clipped)."""
    base = cabinet.url
    page.set_viewport_size({"width": 1366, "height": 768})
    pharmacy_login(page, base)
    page.goto(base + "/pharmacy/register?drug=MORPH10")
    expect(page.locator("#print-register")).to_be_visible()
    expect(page.locator("#reg-printed")).to_be_hidden()  # on paper only: "Imprimé le …"
    # An A4 page in portrait, its margins aside, is about 700 CSS pixels wide.
    page.set_viewport_size({"width": 700, "height": 990})
    page.emulate_media(media="print")
    for hidden in ("nav.tabs", "form.filters", "#print-register", "header", "h1"):
        expect(page.locator(hidden).first).to_be_hidden()
    for shown in ("#reg-heading", "#reg-period", "#reg-balances", "#reg-lines",
                  "#reg-printed"):
        expect(page.locator(shown)).to_be_visible()
    table = page.locator("#reg-lines").bounding_box()
    assert table is not None and table["x"] >= 0 and table["x"] + table["width"] <= 700, table


PAGES = ("/pharmacy", "/pharmacy/journal", "/pharmacy/register?drug=MORPH10",
         "/pharmacy/users", "/pharmacy/cabinet", "/pharmacy/formulary",
         "/pharmacy/formulary?edit=MORPH10", "/pharmacy/layout", "/pharmacy/levels")


def test_every_pharmacy_page_fits_a_desk_and_a_tablet_without_sideways_scrolling(
        cabinet, page):  # noqa: F811
    """On a 1024×768 tablet the formulary was 1,188 px wide (1,150 in English): the
    add-a-drug form, beside the table, was off the screen to the right."""
    base = cabinet.url
    pharmacy_login(page, base)
    for width in (1366, 1024):
        page.set_viewport_size({"width": width, "height": 768})
        for path in PAGES:
            page.goto(base + path)
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= width, (path, width, wide)
        # nor scrolled out of sight inside its own box: each drug's Edit button is on screen
        page.goto(base + "/pharmacy/formulary")
        edit = page.locator("#edit-MORPH10").bounding_box()
        assert edit is not None and edit["x"] + edit["width"] <= width, (width, edit)


def test_a_lot_number_is_never_broken_at_its_hyphen_in_the_journal_or_the_register(
        cabinet, page):  # noqa: F811
    """At 1366×768 the journal showed lot "MO-" on one line and "1201" on the next, which
    reads as two lots (a browser breaks a line after a hyphen); the register too on a
    tablet."""
    base = cabinet.url
    pharmacy_login(page, base)
    for width in (1366, 1024):
        page.set_viewport_size({"width": width, "height": 768})
        for path, table in (("/pharmacy/journal?drug=MORPH10", "table.journal"),
                            ("/pharmacy/register?drug=MORPH10", "#reg-lines")):
            page.goto(base + path)
            assert label_lines(page, table, "MO-1201") == 1, (path, width)


#: How many lines of buttons a users row may take at 1024 px: one, or two for an admin,
#: whose rows also hold the badge reader's field.
ROW_LINES = {"pharma1": 1, "admin1": 2}


@pytest.mark.parametrize("user", ["pharma1", "admin1"])
def test_a_users_row_fits_one_or_two_lines_on_a_tablet(cabinet, page, user):  # noqa: F811
    """At 1024 px each row of the users list took three lines (the side form squeezed the
    table, and each row held a temporary PIN field): with sixty staff, a long page. The
    lines are counted from the cell's buttons, fields and tags, which sit side by side on
    one line and stack when it wraps; the name and role cells hold one line of text."""
    base = cabinet.url
    pharmacy_login(page, base, user)
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto(base + "/pharmacy/users")
    rows = page.evaluate("""() => [...document.querySelectorAll('#active-users tbody tr')]
      .map(tr => {
        const boxes = [...tr.lastElementChild.querySelectorAll(
            '.btn, .tag, input:not([type=hidden])')]
          .map(e => e.getBoundingClientRect()).filter(r => r.height > 0)
          .sort((a, b) => a.top - b.top);
        let lines = 0, bottom = -Infinity;
        for (const r of boxes) {
          if (r.top >= bottom - 2) { lines += 1; }
          bottom = Math.max(bottom, r.bottom);
        }
        const text = [...tr.cells].slice(0, 4).map(td => {
          const range = document.createRange(); range.selectNodeContents(td);
          return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
        });
        return {id: tr.id, lines, text};
      })""")
    assert len(rows) >= 6, rows
    for row in rows:
        assert row["lines"] <= ROW_LINES[user] and max(row["text"]) == 1, row
