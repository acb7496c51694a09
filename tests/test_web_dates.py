"""Days typed on the pages read as the page's language says (controller.dates.parse_typed_day).

Chromium's ``type="date"`` shows and reads its day in the *browser's* locale: a French page
on an English-locale PC showed mm/dd/yyyy, so 03/12 typed by a French pharmacist filtering
a narcotics register meant 12 March. Every day is now a text field whose format is written
in the reader's words (JJ/MM/AAAA in French; YYYY-MM-DD, accepted everywhere), read by the
server, and refused with a stable code when it is impossible or ambiguous.
"""

from __future__ import annotations

import html
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from test_web import login, ph_login, running_web

TEMPLATES = Path(__file__).resolve().parents[1] / "controller" / "web" / "templates"


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def journal_seqs(page: str) -> list[int]:
    return [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", page)]


def test_no_page_leaves_a_day_to_the_browser_s_locale():
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"type=\"?date\b", text), template.name


def test_a_french_pharmacist_filters_the_journal_day_first(web):
    ph = web.client()
    ph_login(ph)  # pharma1 reads French
    today = web.cabinet.today()
    page = ph.get("/pharmacy/journal").text
    assert 'name="from"' in page and "JJ/MM/AAAA" in page
    everything = journal_seqs(page)
    assert everything
    french = ph.get("/pharmacy/journal", params={"from": today.strftime("%d/%m/%Y")})
    assert french.status_code == 200 and journal_seqs(french.text) == everything
    assert f'name="from" value="{today.strftime("%d/%m/%Y")}"' in french.text
    iso = ph.get("/pharmacy/journal", params={"from": today.isoformat()})
    assert journal_seqs(iso.text) == everything
    # ISO is accepted, and shown back the French way (one way of writing on the page)
    assert f'name="from" value="{today.strftime("%d/%m/%Y")}"' in iso.text
    tomorrow = today + timedelta(days=1)
    later = ph.get("/pharmacy/journal", params={"from": tomorrow.strftime("%d/%m/%Y")})
    assert journal_seqs(later.text) == []


@pytest.mark.parametrize("typed", ["31/02/2027", "29/02/2027", "03/13/2027", "2027-02-30",
                                   "03/12/27", "hier"])
def test_an_impossible_or_unreadable_day_is_refused_in_french(web, typed):
    ph = web.client()
    ph_login(ph)
    r = ph.get("/pharmacy/journal", params={"from": typed})
    text = html.unescape(r.text)
    assert r.status_code == 400 and "[BAD_DATE]" in text
    assert "du : date attendue (JJ/MM/AAAA ou AAAA-MM-JJ)" in text
    r = ph.get("/pharmacy/journal", params={"to": typed},
               headers={"accept": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "BAD_DATE"
    assert "DD/MM/YYYY or YYYY-MM-DD" in r.json()["error"]


def test_a_slashed_day_on_an_english_page_is_refused_as_ambiguous(web):
    ph = web.client()
    ph_login(ph, "admin1")  # reads English
    assert "YYYY-MM-DD" in ph.get("/pharmacy/journal").text
    r = ph.get("/pharmacy/journal", params={"from": "03/12/2027"})
    assert r.status_code == 400 and "[AMBIGUOUS_DATE]" in r.text
    assert "from: 03/12/2027 reads day first or month first: write YYYY-MM-DD" in (
        html.unescape(r.text))
    r = ph.get("/pharmacy/journal", params={"from": "03/12/2027"},
               headers={"accept": "application/json"})
    assert r.json()["code"] == "AMBIGUOUS_DATE" and "AAAA-MM-JJ" in r.json()["error_fr"]
    assert ph.get("/pharmacy/journal", params={"from": "31/02/2027"}).status_code == 400
    ok = ph.get("/pharmacy/journal", params={"from": web.cabinet.today().isoformat()})
    assert ok.status_code == 200
    assert f'name="from" value="{web.cabinet.today().isoformat()}"' in ok.text


def test_the_register_reads_french_days_and_names_its_file_in_iso(web):
    ph = web.client()
    ph_login(ph)
    params = {"drug": "MORPH10", "from": "01/01/2000", "to": "31/12/2099"}
    page = ph.get("/pharmacy/register", params=params).text
    assert 'id="reg-closing"' in page and 'value="01/01/2000"' in page
    assert "register.csv?drug=MORPH10&amp;from=2000-01-01&amp;to=2099-12-31" in page
    r = ph.get("/pharmacy/register.csv", params=params)
    assert 'filename="register-MORPH10-2000-01-01-2099-12-31.csv"' in (
        r.headers["content-disposition"])
    r = ph.get("/pharmacy/register", params={**params, "to": "31/02/2099"})
    assert r.status_code == 400 and "[BAD_DATE]" in r.text and "reg-closing" not in r.text


def test_a_french_technician_types_the_expiry_day_first(web):
    store = web.runtime.store
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")  # reads French
    url = "/restock/A/1/2"     # A-2-3, métoprolol
    page = c.get(url).text
    assert 'placeholder="JJ/MM/AAAA"' in page
    expiry = date.today() + timedelta(days=400)
    intents = len(store.journal_rows(kind="intent"))
    for typed in ("31/02/2031", "2031-02-31", "3/12"):
        r = c.post(url, data={"csrf": token, "scan": "03400930000090", "qty": "1",
                              "lot": "ME-1", "expiry": typed})
        assert r.headers["location"] == url, typed
        page = html.unescape(c.get(url).text)
        assert "[BAD_DATE]" in page and "péremption : date attendue (JJ/MM/AAAA" in page
        assert f'value="{typed}"' in page  # what was typed is kept, to be put right
    assert len(store.journal_rows(kind="intent")) == intents
    assert web.cabinet.session.op is None
    r = c.post(url, data={"csrf": token, "scan": "03400930000090", "qty": "1", "lot": "ME-1",
                          "expiry": expiry.strftime("%d/%m/%Y")})
    assert r.headers["location"] == "/operation"
    assert store.journal_rows(kind="intent")[-1]["expiry"] == expiry.isoformat()


def test_an_english_technician_s_slashed_expiry_is_refused_as_ambiguous(web):
    store = web.runtime.store
    web.portal.call(_set_lang, web, "prep1", "en")
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")
    url = "/restock/A/1/2"
    assert 'placeholder="YYYY-MM-DD"' in c.get(url).text
    intents = len(store.journal_rows(kind="intent"))
    c.post(url, data={"csrf": token, "scan": "03400930000090", "qty": "1", "lot": "ME-1",
                      "expiry": "03/12/2031"})
    page = html.unescape(c.get(url).text)
    assert "[AMBIGUOUS_DATE]" in page and "write YYYY-MM-DD" in page
    assert len(store.journal_rows(kind="intent")) == intents


async def _set_lang(web, user: str, lang: str) -> None:
    web.runtime.store.conn.execute("UPDATE users SET lang = ? WHERE id = ?", (lang, user))


# -- days and times the pharmacy pages show ----------------------------------------------
def _time_cells(page: str) -> list[tuple[str, str]]:
    """(title, text) of the journal's and the register's time cells."""
    return [(html.unescape(title), re.sub(r"\s+", " ", html.unescape(text).replace("<br>", " "))
             .strip()) for title, text in re.findall(
                r'<td class="nowrap" title="([^"]*)">(.*?)</td>', page)]


def _local(web, ts: str) -> datetime:
    return datetime.fromisoformat(ts).astimezone(web.cabinet.zone)


def test_the_journal_shows_its_times_in_the_reader_s_format_with_the_iso_time_kept(web):
    """Times read 2026-12-03 on French pages, beside days typed and shown JJ/MM/AAAA: they
    now read the reader's way, and the cell's title keeps the journal's own time (UTC,
    ISO) for audits."""
    ph = web.client()
    ph_login(ph)  # pharma1 reads French
    cells = _time_cells(ph.get("/pharmacy/journal").text)
    assert cells
    for title, shown in cells:
        assert shown == _local(web, title).strftime("%d/%m/%Y %H:%M:%S"), (title, shown)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T[\d:.]+\+00:00", title)
    en = web.client()
    ph_login(en, "admin1")  # reads English
    for title, shown in _time_cells(en.get("/pharmacy/journal").text):
        assert shown == _local(web, title).strftime("%Y-%m-%d %H:%M:%S")


def test_the_register_shows_times_and_expiries_the_reader_s_way_and_its_csv_in_iso(web):
    ph = web.client()
    ph_login(ph)  # French
    page = ph.get("/pharmacy/register", params={"drug": "MORPH10"}).text
    cells = _time_cells(page)
    assert cells
    for title, shown in cells:
        assert shown == _local(web, title).strftime("%d/%m/%Y %H:%M:%S")
    expiries = re.findall(r'<small class="expiry" title="([^"]*)">([^<]*)</small>', page)
    assert expiries
    for iso, shown in expiries:
        assert shown == date.fromisoformat(iso).strftime("%d/%m/%Y")
    csv = ph.get("/pharmacy/register.csv", params={"drug": "MORPH10"}).text
    assert expiries[0][0] in csv and expiries[0][1] not in csv  # a contract: ISO days
    assert re.search(r",\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},", csv)


def test_the_alarms_page_shows_when_an_alarm_opened_the_reader_s_way(web):
    from controller import alarms
    cab = web.runtime.cabinet
    alarm = cab.alarms.get(web.portal.call(
        cab.alarms.raise_, "drawer_fault", alarms.Where(drawer="B"),
        alarms.text("fault", d="B", k="jammed")))
    ph = web.client()
    ph_login(ph)  # French
    shown = _local(web, alarm["opened_ts"]).strftime("%d/%m/%Y %H:%M")
    assert shown in ph.get("/pharmacy").text


def test_no_word_or_script_is_left_for_the_browser_s_date_input():
    """The date inputs went: their bubble's words (``valid.date``) and the script's branch
    for them were dead, and the words of a field no page has drift unread."""
    from controller.web.i18n import EN, FR, VALIDITY

    script = (TEMPLATES.parent / "static" / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"""type\s*===?\s*["']date["']""", script)
    assert "valid.date" not in FR and "valid.date" not in EN and "date" not in VALIDITY
    # Every word the pages carry for the bubbles is one the script reads, and back.
    read = set(re.findall(r"validity\.(\w+)", script))
    assert read == set(VALIDITY)
    assert {k for k in FR if k.startswith("valid.")} == {f"valid.{k}" for k in VALIDITY}
    assert {k for k in EN if k.startswith("valid.")} == {f"valid.{k}" for k in VALIDITY}


def test_the_touchscreen_s_lots_show_their_expiry_the_reader_s_way(web, monkeypatch):
    """The expired-lots screen (each pocket's lots) and the open drawer's lots read
    "périmé le 2031-01-15" on a French screen, where every other day is JJ/MM/AAAA."""
    from test_web import wait_for
    from test_web_texts import _expired_cabinet, _pocket_forms

    iso = _expired_cabinet(web, monkeypatch)
    french = date.fromisoformat(iso).strftime("%d/%m/%Y")
    cab = web.cabinet
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")
    form = _pocket_forms(html.unescape(c.get("/remove").text))["A-2-2"]
    assert f"Lot AM-3310, périmé le {french} : 14 unité(s)" in form and iso not in form
    c.post("/remove", data={"csrf": token, "drawer": "A", "row": "1", "col": "1"})
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    page = html.unescape(c.get("/operation").text)
    lots = page[page.index('id="op-lots"'):page.index("</ul>", page.index('id="op-lots"'))]
    assert f"Lot AM-3310, périmé le {french} : 14 unité(s)" in lots and iso not in lots
