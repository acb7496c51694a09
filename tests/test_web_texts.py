"""What the screens say and what their buttons do: the journal's kinds in the reader's
language, and the expired-lots screen removing exactly what its buttons list."""

from __future__ import annotations

import ast
import html
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from helpers import consistent, restocked
from test_web import login, page_csrf, ph_login, running_web, wait_for

from controller.cabinet import SIGNS
from controller.store import JournalEntry
from controller.web.i18n import EN, FR

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


# -- every journaled kind has a label ---------------------------------------------------------
def _kinds_of(node: ast.expr, where: str) -> set[str]:
    """The kinds an argument can be: a literal, a choice between literals, or an
    operation's kind (``op.kind``: one of ``cabinet.SIGNS``). Anything else is a kind this
    test cannot see, so it fails rather than let an unlabelled kind through."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _kinds_of(node.body, where) | _kinds_of(node.orelse, where)
    if isinstance(node, ast.Attribute) and node.attr == "kind":
        return set(SIGNS)
    raise AssertionError(f"{where}: a journal kind this test cannot read: {ast.unparse(node)}")


def _param_position(func: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> int:
    params = [a.arg for a in func.args.posonlyargs + func.args.args]
    if params and params[0] == "self":
        params = params[1:]
    return params.index(name)


def _called_name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def journaled_kinds() -> set[str]:
    """Every kind the code writes in the journal, read from its source: the first argument
    of each ``JournalEntry(...)``; where that is a parameter of the enclosing function (the
    outcome's ``entry(kind, ...)``, the alarms' ``_set(..., kind, ...)``), what every call
    of that function in the module passes for it."""
    kinds: set[str] = set()
    files = sorted((REPO / "controller").rglob("*.py")) + sorted((REPO / "tools").glob("*.py"))
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                parents[child] = parent
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and _called_name(call) == "JournalEntry"):
                continue
            where = f"{path.relative_to(REPO)}:{call.lineno}"
            arg = call.args[0] if call.args else next(
                k.value for k in call.keywords if k.arg == "kind")
            if not isinstance(arg, ast.Name):
                kinds |= _kinds_of(arg, where)
                continue
            func = parents.get(call)
            while func is not None and not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                func = parents.get(func)
            assert isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef), where
            pos = _param_position(func, arg.id)
            callers = [c for c in ast.walk(tree) if isinstance(c, ast.Call)
                       and _called_name(c) == func.name]
            assert callers, f"{where}: nothing calls {func.name}"
            for c in callers:
                value = next((k.value for k in c.keywords if k.arg == arg.id), None)
                if value is None:
                    value = c.args[pos]
                kinds |= _kinds_of(value, f"{path.relative_to(REPO)}:{c.lineno}")
    return kinds


def test_the_source_scan_finds_the_kinds_built_at_run_time():
    """The scan reads the kinds that are not plain literals where the entry is built (an
    operation's outcome, a decision, an alarm's change of state): were it blind to them,
    the label test below would prove nothing for them."""
    kinds = journaled_kinds()
    assert {"withdraw", "remove", "move_in", "count", "count_correction", "levels_approved",
            "levels_rejected", "alarm_acknowledged", "alarm_resolved", "intent",
            "integrity_failed", "database_restored", "layout_task_done"} <= kinds


def test_every_kind_the_code_journals_has_a_label_in_french_and_english():
    """A kind added to the code without its words fails here, before a pharmacist reads a
    raw code on a French page."""
    missing = sorted(k for k in journaled_kinds()
                     if f"journal.kind.{k}" not in FR or f"journal.kind.{k}" not in EN)
    assert missing == []
    for key in [k for k in FR if k.startswith("journal.kind.")]:
        assert FR[key] != EN[key], key  # really translated


def _kind_cells(page: str) -> list[tuple[str, str]]:
    """(raw code, words shown) of the journal table's kind cells."""
    return [(code, html.unescape(words).strip()) for code, words in
            re.findall(r'<td class="kind" title="([^"]*)">([^<]*)', page)]


def test_the_journal_shows_each_kind_in_the_readers_language_and_keeps_the_code(web):
    """The journal page showed "restock", "login"… on French pages. The words are now the
    reader's, the raw code stays in the cell's title, and the kind filter, whose options
    read as words too, still filters on the code."""
    web.portal.call(web.runtime.store.append, JournalEntry("levels_approved", user="pharma1",
                                                           detail={"proposal": 1}))
    # e.g. from a newer version
    web.portal.call(web.runtime.store.append, JournalEntry("kind_of_tomorrow"))
    c = web.client()
    ph_login(c)  # pharma1 reads French
    page = c.get("/pharmacy/journal").text
    cells = dict(_kind_cells(page))
    assert cells["levels_approved"] == "Niveaux approuvés"
    assert cells["restock"] == "Réapprovisionnement"
    assert cells["login"] == "Connexion"
    assert cells["kind_of_tomorrow"] == "kind_of_tomorrow"  # no words: the code, not a blank
    assert re.search(r'<option value="levels_approved"[^>]*>Niveaux approuvés</option>', page)

    filtered = c.get("/pharmacy/journal", params={"kind": "restock"}).text
    assert {code for code, _ in _kind_cells(filtered)} == {"restock"}
    assert re.search(r'<option value="restock" selected[^>]*>Réapprovisionnement</option>',
                     html.unescape(filtered))

    en = web.client()
    ph_login(en, "admin1")  # admin1 reads English
    cells = dict(_kind_cells(en.get("/pharmacy/journal").text))
    assert cells["levels_approved"] == "Par levels approved"
    assert cells["restock"] == "Restock"
    assert cells["login"] == "Login"


# -- the expired-lots screen ------------------------------------------------------------------
AMOX = ("A", 1, 1)  # A-2-2: the demo's amoxicillin, lot AM-3310 (14 units)


def _expired_cabinet(web, monkeypatch) -> str:
    """A-2-2 holds two expired lots (AM-3310, 14, and AM-0001, 5) and a good one (AM-9001,
    7); the cabinet's day is five days after AM-3310's expiry. Returns AM-3310's expiry."""
    store = web.runtime.store
    [lot] = store.query("SELECT expiry FROM stock WHERE lot = 'AM-3310'")
    expiry = date.fromisoformat(lot["expiry"])
    restocked(store, "AMOX1G", AMOX, 5, "AM-0001", (expiry - timedelta(days=30)).isoformat())
    restocked(store, "AMOX1G", AMOX, 7, "AM-9001", (expiry + timedelta(days=400)).isoformat())
    monkeypatch.setattr(web.cabinet, "today", lambda: expiry + timedelta(days=5))
    return lot["expiry"]


def _pocket_forms(page: str) -> dict[str, str]:
    return dict(re.findall(r'<form [^>]*id="remove-([A-Z0-9-]+)"(.*?)</form>', page, re.S))


def test_the_expired_lots_screen_has_one_button_per_pocket_listing_its_lots(web, monkeypatch):
    """One button per lot removed every expired lot of the pocket. The technician at the
    drawer takes out every expired box of the pocket at once, so the screen now has one
    form per pocket, naming each expired lot (number, expiry, units) and a button saying
    how many units go; the good lot of the pocket is not listed."""
    _expired_cabinet(web, monkeypatch)
    c = web.client(host="127.0.0.1")
    login(c, "prep1")
    forms = _pocket_forms(html.unescape(c.get("/remove").text))
    assert list(forms) == ["A-2-2"]
    form = forms["A-2-2"]
    assert "AM-3310" in form and "AM-0001" in form and "AM-9001" not in form
    assert form.count("<button") == 1
    assert "Retirer les 19 unité(s) périmée(s)" in form

    c.post("/logout", data={"csrf": page_csrf(c, "/menu")})
    web.runtime.store.conn.execute("UPDATE users SET lang = 'en' WHERE id = 'prep1'")
    en = web.client(host="127.0.0.1")
    login(en, "prep1")
    form = _pocket_forms(html.unescape(en.get("/remove").text))["A-2-2"]
    assert "Remove the 19 expired unit(s)" in form and "AM-0001" in form


def test_the_pocket_s_button_removes_its_expired_lots_and_leaves_the_good_one(
        web, monkeypatch):
    _expired_cabinet(web, monkeypatch)
    cab = web.cabinet
    store = web.runtime.store
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")
    form = _pocket_forms(c.get("/remove").text)["A-2-2"]
    lots = re.findall(r'name="lot" value="([^"]+)"', form)
    assert sorted(lots) == ["AM-0001", "AM-3310"]
    r = c.post("/remove", data={"csrf": token, "drawer": "A", "row": "1", "col": "1",
                                "lot": lots})
    assert r.headers["location"] == "/operation"
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    op_page = html.unescape(c.get("/operation").text)
    assert "Retirez les lots périmés (19) de la poche A-2-2" in op_page
    # At the open drawer, the lots whose boxes come out are named again; the good one not.
    taken = op_page[op_page.index('id="op-lots"'):]
    taken = taken[:taken.index("</ul>")]
    assert "Lot AM-0001" in taken and "Lot AM-3310" in taken and "AM-9001" not in taken
    c.post("/operation/count", data={"csrf": token, "count": "7"})  # the good lot is left
    c.post("/operation/close", data={"csrf": token})
    wait_for(web, lambda: cab.session.op is None)
    assert sorted((x["lot"], x["qty"], x["user"]) for x in store.journal_rows(kind="remove")
                  ) == [("AM-0001", 5, "prep1"), ("AM-3310", 14, "prep1")]
    left = {x["lot"]: x["on_hand"] for x in store.pocket_stock(*AMOX)}
    assert left.get("AM-9001") == 7 and not left.get("AM-3310") and not left.get("AM-0001")
    assert not [a for a in cab.alarms.list() if a["kind"] == "discrepancy"]
    assert consistent(web.runtime.store.path)
    assert "Aucun lot périmé" in c.get("/remove").text


def test_a_pocket_whose_expired_lots_changed_since_the_screen_was_shown_is_refused(
        web, monkeypatch):
    """The button names the lots it removes. If the pocket's expired lots are no longer
    those (midnight passed and another lot expired, someone else removed one), the
    removal is refused with EXPIRED_LOTS_CHANGED before any drawer opens, rather than take
    out more or fewer than the screen said."""
    _expired_cabinet(web, monkeypatch)
    cab = web.cabinet
    store = web.runtime.store
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")
    before = len(store.query("SELECT seq FROM journal"))
    r = c.post("/remove", data={"csrf": token, "drawer": "A", "row": "1", "col": "1",
                                "lot": ["AM-3310"]})  # AM-0001 expired too meanwhile
    assert r.headers["location"] == "/remove"
    page = html.unescape(c.get("/remove").text)
    assert "[EXPIRED_LOTS_CHANGED]" in page and "A-2-2" in page
    assert cab.session.op is None
    assert len(store.query("SELECT seq FROM journal")) == before
    assert {x["lot"]: x["on_hand"] for x in store.pocket_stock(*AMOX)} == {
        "AM-3310": 14, "AM-0001": 5, "AM-9001": 7}


# -- the journal's and the register's filters --------------------------------------------------
@pytest.mark.parametrize(("page", "field", "limit"), [
    ("/pharmacy/journal", "kind", 40), ("/pharmacy/journal", "user", 32),
    ("/pharmacy/journal", "drug", 40), ("/pharmacy/journal", "from", 10),
    ("/pharmacy/journal", "to", 10), ("/pharmacy/register", "drug", 40),
    ("/pharmacy/register", "from", 10), ("/pharmacy/register.csv", "to", 10)])
def test_a_filter_longer_than_its_field_is_refused_not_cut(web, page, field, limit):
    """The filters were cut to 40 characters without a word: a pasted id filtered on
    something nobody typed, and "2026-12-01 <anything>" passed for a day. Longer than the
    field holds is now refused with FIELD_TOO_LONG, in both languages, and nothing is
    read."""
    c = web.client()
    ph_login(c)  # French
    before = len(web.runtime.store.query("SELECT seq FROM journal"))
    params = {"drug": "MORPH10"} if page != "/pharmacy/journal" else {}
    long = "2026-12-01 " + "x" * limit
    r = c.get(page, params={**params, field: long})
    text = html.unescape(r.text)
    assert r.status_code == 400 and "[FIELD_TOO_LONG]" in text, text[-600:]
    assert f"{limit} caractères au plus ({len(long)} saisis)" in text
    assert "reg-closing" not in text and "<td class=\"kind\"" not in text
    r = c.get(page, params={**params, field: long}, headers={"accept": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "FIELD_TOO_LONG"
    assert f"{limit} characters at most" in r.json()["error"]
    assert f"{limit} caractères au plus" in r.json()["error_fr"]
    assert len(web.runtime.store.query("SELECT seq FROM journal")) == before


def test_the_filters_name_the_field_too_long_in_the_reader_s_words(web):
    c = web.client()
    ph_login(c)  # French
    r = c.get("/pharmacy/journal", params={"user": "u" * 33},
              headers={"accept": "application/json"})
    assert r.json()["error_fr"] == "utilisateur : 32 caractères au plus (33 saisis)"
    assert r.json()["error"] == "user: 32 characters at most (33 given)"
    ok = c.get("/pharmacy/journal", params={"user": "u" * 32, "drug": "d" * 40})
    assert ok.status_code == 200
