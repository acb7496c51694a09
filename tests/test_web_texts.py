"""What the screens say: the journal's kinds in the reader's language."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import pytest
from test_web import ph_login, running_web

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
    web.runtime.store.append(JournalEntry("levels_approved", user="pharma1",
                                          detail={"proposal": 1}))
    web.runtime.store.append(JournalEntry("kind_of_tomorrow"))  # e.g. from a newer version
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
