"""A pharmacist's and a ward manager's week on the pharmacy pages (TestClient): what they
stumbled on when walking them at a desk (1366×768) and on a tablet (1024×768), in French and
in English, and what the pages now do instead."""

from __future__ import annotations

import html
import re

import pytest
from test_web import ph_login, running_web


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def between(page: str, start: str, end: str) -> str:
    """The part of ``page`` from the element whose opening tag holds ``start`` to ``end``."""
    i = page.index(start)
    return page[i:page.index(end, i)]


def test_the_register_prints_with_the_drug_the_period_and_a_signature(web):
    """The controlled-drug register is printed each month and signed: the page had no Print
    button, and printed as it was, the header, the tabs and the filter form included, with
    the drug only as the chosen option of a list cut at "morphine 10 mg/" and the period
    only as two form fields; nothing said who printed it nor when."""
    c = web.client()
    ph_login(c)  # pharma1, Dr Anne Rousseau, reads French
    page = c.get("/pharmacy/register", params={"drug": "MORPH10", "from": "01/11/2026",
                                               "to": "30/11/2026"}).text
    assert re.search(r'<button[^>]*data-print[^>]*id="print-register"', page)
    printed = html.unescape(between(page, 'id="register-print"', "</section>"))
    assert "printable" in between(page, "<section", ">").split('class="')[1]
    assert "morphine 10 mg/mL ampoule (MORPH10)" in printed
    assert "du 01/11/2026 au 30/11/2026" in printed
    assert "Imprimé le" in printed and "Dr Anne Rousseau" in printed
    assert "Visa du pharmacien" in printed
    assert 'id="reg-lines"' in printed and 'id="reg-closing"' in printed
    # What is not to be printed stays out of the printable part.
    assert "reg-show" not in printed and 'name="drug"' not in printed
    # Without a period, it says so rather than printing nothing.
    whole = html.unescape(c.get("/pharmacy/register", params={"drug": "MORPH10"}).text)
    assert "depuis le début du journal jusqu'à maintenant" in whole


def test_the_register_prints_in_english_for_an_english_reader(web):
    web.runtime.store.conn.execute("UPDATE users SET lang='en' WHERE id='pharma1'")
    c = web.client()
    ph_login(c)
    page = html.unescape(c.get("/pharmacy/register", params={
        "drug": "MORPH10", "from": "2026-11-01"}).text)
    printed = between(page, 'id="register-print"', "</section>")
    assert "from 2026-11-01 until now" in printed
    assert "Printed on" in printed and "Pharmacist's signature" in printed
