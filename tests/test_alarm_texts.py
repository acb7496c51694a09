"""Alarm messages in the reader's language wherever they are shown. The cabinet stores them
in English (the journal and the exports keep them so); a French reader gets the French form
of every text the cabinet can raise, on the alarms page and in the journal's detail."""

from __future__ import annotations

import ast
import json
import string
from pathlib import Path

import pytest
from test_journal_detail import _detail_cells
from test_web import ph_login, running_web

from controller import alarms
from controller.alarms import TEXTS, message, text
from controller.store import JournalEntry
from controller.web.i18n import journal_detail

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "controller").rglob("*.py")) + sorted((REPO / "tools").glob("*.py"))


def _called(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _calls(name: str) -> list[tuple[str, ast.Call]]:
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _called(node) == name:
                found.append((f"{path.relative_to(REPO)}:{node.lineno}", node))
    return found


# -- what the cabinet can raise ----------------------------------------------------------
def test_every_alarm_the_code_raises_takes_its_text_from_the_catalogue():
    """An alarm written as a sentence at its raise site had no French form until someone
    wrote a regex for it (the restore's and the re-layout bench's never got one). Every
    ``raise_`` now takes an ``AlarmText`` (mypy checks the type), built by
    ``alarms.text(name, ...)`` from ``TEXTS``, where the French form is the English's pair;
    this scan also refuses a sentence written in place, literal or formatted."""
    raised = _calls("raise_")
    assert len(raised) >= 12
    for where, call in raised:
        args = call.args[2:3] or [k.value for k in call.keywords if k.arg == "message"]
        assert args, f"{where}: an alarm with no message"
        assert not isinstance(args[0], ast.Constant | ast.JoinedStr | ast.BinOp), (
            f"{where}: an alarm text written in place: {ast.unparse(args[0])}")


def _sample(field: str) -> str:
    """A value of the kind each field holds, as the cabinet formats it."""
    return {"k": "jammed", "f": "expiry", "why": "previous-hash link broken",
            "d": "A", "p": "A-1-2", "lot": "L 7", "x": "DatabaseError: disk I/O error",
            "date": "2026-03-01", "ts": "2026-03-01T10:00:00+00:00", "t": "'2027-01-01'",
            "j": "'2026-01-01'", "w": "A-1-2", "b": "armoire-2026-03-01.db", "u": "ide1",
            "drug": "MORPH10"}.get(field, "3")


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_each_text_the_cabinet_raises_reads_in_french(name):
    """Every text of the catalogue: the stored English is the English template filled in,
    and a French reader gets the French template with the same values (a fault, a stock
    field and a broken-chain reason in French words)."""
    en, fr = TEXTS[name]
    fields = {f for _, f, _, _ in string.Formatter().parse(en) if f}
    assert fields == {f for _, f, _, _ in string.Formatter().parse(fr) if f}, name
    assert fr.strip() and fr != en, name
    values = {f: _sample(f) for f in fields}
    stored = text(name, **values)
    assert stored == en.format(**values)
    alarm = {"kind": "discrepancy", "message": stored}
    assert message(alarm, "en") == stored
    french = message(alarm, "fr")
    words = {**values, **{f: alarms.french_value(f, v) for f, v in values.items()}}
    assert french == fr.format(**words)


def _fault_kinds() -> set[str]:
    """The kinds a drawer fault can have: the drawer machine's ``_fault("jammed", ...)`` and
    the cabinet's own ``_on_drawer_fault(unit, "open_at_start", ...)``."""
    kinds = set()
    for where, call in _calls("_fault") + _calls("_on_drawer_fault"):
        arg = call.args[0] if _called(call) == "_fault" else call.args[1]
        if isinstance(arg, ast.Name):
            continue  # the callback passing its own parameter on
        choices = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
        for choice in choices:
            assert isinstance(choice, ast.Constant) and isinstance(choice.value, str), where
            kinds.add(choice.value)
    return kinds


def test_every_drawer_fault_reads_in_french():
    """"drawer A: open at link up": the fault's own words are translated too, for every
    fault the code can raise."""
    kinds = _fault_kinds()
    assert {"jammed", "offline", "open_at_start", "ajar_at_link_up", "magnet_failed"} <= kinds
    for kind in kinds:
        stored = text("fault", d="A", k=kind.replace("_", " "))
        assert kind.replace("_", " ") not in message({"message": stored}, "fr"), kind


def test_the_restore_and_the_bench_alarms_read_in_french():
    """The two texts that had no French form: a French pharmacist read them in English."""
    restored = text("restored", b="armoire-2026-03-01.db", ts="2026-03-01T10:00:00+00:00")
    assert message({"kind": "discrepancy", "message": restored}, "fr") == (
        "base restaurée depuis la sauvegarde armoire-2026-03-01.db (dernière ligne "
        "2026-03-01T10:00:00+00:00) : comptez toutes les poches")
    bench = text("bench_missing", n=2, drug="MORPH10", c=3, b=5)
    assert message({"kind": "discrepancy", "message": bench}, "fr") == (
        "banc de réaménagement : 2 unité(s) de MORPH10 manquante(s) au retour à la "
        "pharmacie (3 sur 5)")


def test_a_message_from_elsewhere_still_falls_back_to_the_kind_s_title():
    alarm = {"kind": "drawer_fault", "message": "something new", "drawer": "B", "row": None}
    assert message(alarm, "fr") == "Défaut de tiroir · tiroir B"
    assert alarms.translated("something new", "fr") == "something new"


# -- where they are shown ------------------------------------------------------------------
def test_the_journal_detail_shows_an_alarm_s_message_in_the_reader_s_words():
    """An ``alarm_raised`` row's detail carries the stored message, and an
    ``integrity_failed`` row its problem: French pages read them in French."""
    raw = json.dumps({"alarm": 4, "message": "drawer A jammed part-open: count pocket A-2-3"})
    assert journal_detail("fr", raw) == (
        "Alarme : 4 ; Message : tiroir A bloqué entrouvert : comptez la poche A-2-3")
    assert journal_detail("en", raw) == (
        "Alarm: 4; Message: drawer A jammed part-open: count pocket A-2-3")
    problem = json.dumps({"problem": "journal altered at row 12: row 11 is missing"})
    assert journal_detail("fr", problem) == (
        "Problème : journal modifié à la ligne 12 : la ligne 11 manque")


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def test_the_alarms_page_and_the_journal_page_read_the_restore_alarm_in_french(web):
    restored = text("restored", b="b.db", ts="2026-03-01T10:00:00+00:00")
    web.portal.call(web.runtime.cabinet.alarms.raise_, "discrepancy", alarms.Where(), restored)
    c = web.client()
    ph_login(c)  # pharma1 reads French
    assert "base restaurée depuis la sauvegarde b.db" in c.get("/pharmacy").text
    cells = _detail_cells(c.get("/pharmacy/journal", params={"kind": "alarm_raised"}).text)
    assert any("base restaurée depuis la sauvegarde b.db" in words for _, words in cells)
    assert any(json.loads(raw)["message"] == restored for raw, _ in cells)  # stored as is
    web.portal.call(web.runtime.store.append, JournalEntry("integrity_failed", detail={
        "problem": "journal altered at row 3: previous-hash link broken"}))
    [(_, words)] = _detail_cells(c.get("/pharmacy/journal",
                                       params={"kind": "integrity_failed"}).text)
    assert words == "Problème : journal modifié à la ligne 3 : lien vers la ligne précédente rompu"


# -- the notes an alarm closes itself with ------------------------------------------------
#: The calls that close an alarm with a note the code writes, and where that note is.
NOTE_ARGS = {"auto_resolve": 2, "auto_resolve_known": 1, "_resolve_low_stock_outside": 1,
             "close_lockout_alarm": 2}


def test_every_note_an_alarm_closes_with_takes_its_words_from_the_catalogue():
    """"above its level", "now expired", "reset by prep1"… were English sentences written
    where the alarm closed, shown in English on French pages. Each is now a pair in
    ``alarms.NOTES``, built by ``alarms.note(name, ...)`` (a ``ResolveNote``, which mypy
    requires); this scan refuses a sentence written in place, literal or formatted, and
    any other value but a parameter passed on."""
    seen = 0
    for name, at in NOTE_ARGS.items():
        for where, call in _calls(name):
            args = call.args[at:at + 1] or [k.value for k in call.keywords
                                            if k.arg in ("reason", "note")]
            assert args, f"{where}: closed with no note"
            arg = args[0]
            seen += 1
            ok = (isinstance(arg, ast.Call) and _called(arg) == "note") or isinstance(
                arg, ast.Name)
            assert ok, f"{where}: a note written in place: {ast.unparse(arg)}"
    assert seen >= 12


@pytest.mark.parametrize("name", sorted(alarms.NOTES))
def test_each_note_an_alarm_closes_with_reads_in_french(name):
    en, fr = alarms.NOTES[name]
    fields = {f for _, f, _, _ in string.Formatter().parse(en) if f}
    assert fields == {f for _, f, _, _ in string.Formatter().parse(fr) if f}, name
    assert fr.strip() and fr != en, name
    values = {f: _sample(f) for f in fields}
    stored = alarms.note(name, **values)
    assert stored == en.format(**values)  # the journal keeps the English
    assert alarms.translated_note(stored, "en") == stored
    assert alarms.translated_note(stored, "fr") == fr.format(**values)


def test_the_journal_shows_a_self_closed_alarm_s_note_in_the_reader_s_words(web):
    """The note stays English in the journal; the page reads it in the reader's words, and
    a person's own note as she typed it."""
    cab = web.runtime.cabinet
    where = alarms.Where(drawer="B")
    web.portal.call(cab.alarms.raise_, "drawer_fault", where, text("fault", d="B", k="jammed"))
    web.portal.call(cab.alarms.auto_resolve, "drawer_fault", where,
                    alarms.note("reset_by", u="prep1"))
    c = web.client()
    ph_login(c)  # French
    cells = _detail_cells(c.get("/pharmacy/journal", params={"kind": "alarm_resolved"}).text)
    [(raw, words)] = [cell for cell in cells if "prep1" in cell[0]]
    assert json.loads(raw)["note"] == "reset by prep1"
    assert words.endswith("Note : réarmé par prep1")
    assert journal_detail("fr", json.dumps({"note": "vu avec le cadre"})) == (
        "Note : vu avec le cadre")


def test_an_expiry_day_in_an_alarm_reads_as_a_french_reader_writes_it():
    """"lot L7 in A-1-2 expires on 2026-12-25" was shown to French readers as "périme le
    2026-12-25": the pharmacy pages show days as JJ/MM/AAAA in French, and an alarm about an
    expiry must read the same way (the stored English keeps ISO, for the exports)."""
    stored = text("expiry", lot="L7", p="A-1-2", date="2026-12-25")
    assert message({"kind": "expiry", "message": stored}, "fr") == (
        "lot L7 dans A-1-2 : périme le 25/12/2026")
    assert message({"kind": "expiry", "message": stored}, "en") == stored
    gone = text("expired", lot="L7", p="A-1-2", date="2026-02-01")
    assert message({"kind": "expired", "message": gone}, "fr").endswith("depuis le 01/02/2026")
    # A value that is not a day (an older version's text) is shown as stored.
    assert alarms.french_value("date", "soon") == "soon"
