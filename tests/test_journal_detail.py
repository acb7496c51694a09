"""The journal page's detail column in the reader's language: every key the code journals
has words, codes from a closed set read as words, free values stay as typed (escaped), the raw
JSON stays on the page for audits, and the exports keep the raw detail (they are contracts)."""

from __future__ import annotations

import ast
import html
import json
import re
from functools import cache
from pathlib import Path

import pytest
from test_web import ph_login, running_web
from test_web_texts import _called_name

from controller.cli import main
from controller.store import JournalEntry
from controller.web.i18n import EN, FR, code_words, journal_code, journal_detail

REPO = Path(__file__).resolve().parents[1]
#: Where detail keys are written: the controller and tools journal; hal/ posts the hardware
#: events whose detail a drawer fault journals as it came.
FILES = (sorted((REPO / "controller").rglob("*.py")) + sorted((REPO / "tools").glob("*.py"))
         + sorted((REPO / "hal").rglob("*.py")))

Func = ast.FunctionDef | ast.AsyncFunctionDef


class Unreadable(AssertionError):
    pass


class Source:
    """The parsed files, with what the key scan needs to follow a detail to its origins:
    each node's parent, every function by name, module-level names, dataclass fields."""

    def __init__(self) -> None:
        self.trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in FILES}
        self.parent: dict[ast.AST, ast.AST] = {}
        self.path: dict[ast.AST, Path] = {}
        self.funcs: dict[str, list[Func]] = {}
        self.params: dict[str, list[list[str]]] = {}
        self.fields: dict[str, list[list[str]]] = {}  # classes' only
        self.calls: list[ast.Call] = []
        for path, tree in self.trees.items():
            for node in ast.walk(tree):
                self.path[node] = path
                for child in ast.iter_child_nodes(node):
                    self.parent[child] = node
                if isinstance(node, Func):
                    self.funcs.setdefault(node.name, []).append(node)
                    names = [a.arg for a in node.args.posonlyargs + node.args.args]
                    self.params.setdefault(node.name, []).append(
                        names[1:] if names[:1] in (["self"], ["cls"]) else names)
                elif isinstance(node, ast.ClassDef):  # its __init__'s, or a dataclass's
                    init = [s for s in node.body if isinstance(s, Func) and s.name == "__init__"]
                    fields = ([a.arg for a in init[0].args.args[1:]] if init else
                              [s.target.id for s in node.body if isinstance(s, ast.AnnAssign)
                               and isinstance(s.target, ast.Name)])
                    if fields:
                        self.params.setdefault(node.name, []).append(fields)
                        self.fields.setdefault(node.name, []).append(fields)
                elif isinstance(node, ast.Call):
                    self.calls.append(node)
        self.busy: set[object] = set()

    def where(self, node: ast.AST) -> str:
        return f"{self.path[node].relative_to(REPO)}:{getattr(node, 'lineno', '?')}"

    def enclosing(self, node: ast.AST) -> Func | None:
        up = self.parent.get(node)
        while up is not None and not isinstance(up, Func):
            up = self.parent.get(up)
        return up

    def module_value(self, node: ast.AST, name: str) -> ast.expr | None:
        for stmt in self.trees[self.path[node]].body:
            targets = (stmt.targets if isinstance(stmt, ast.Assign)
                       else [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return stmt.value  # type: ignore[union-attr]
        return None

    def strings(self, node: ast.expr) -> set[str]:
        """The constant strings a module-level tuple holds (``FLAGS``, ``FIELDS``)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.Tuple | ast.List):
            return set().union(*(self.strings(e) for e in node.elts))
        if isinstance(node, ast.Starred):
            return self.strings(node.value)
        if isinstance(node, ast.Name):
            value = self.module_value(node, node.id)
            if value is not None:
                return self.strings(value)
        raise Unreadable(f"{self.where(node)}: keys this test cannot read: {ast.unparse(node)}")

    def passed_as(self, name: str) -> set[str]:
        """Keys of whatever any call passes as ``name``: by keyword (the ``context`` of a
        re-layout's ``move_in``), or by position to a class (a ``HardwareEvent``'s
        ``detail``)."""
        if ("field", name) in self.busy:
            return set()
        self.busy.add(("field", name))
        keys: set[str] = set()
        for call in self.calls:
            for kw in call.keywords:
                if kw.arg == name:
                    keys |= self.keys(kw.value)
            for params in self.fields.get(_called_name(call) or "", []):
                if name in params and params.index(name) < len(call.args):
                    arg = call.args[params.index(name)]
                    if not isinstance(arg, ast.Starred):
                        keys |= self.keys(arg)
        return keys

    def called_back(self, func: str, at: int) -> set[str]:
        """Keys a function receives when it is handed over as a callback (a drawer's
        ``on_fault`` is the cabinet's ``_on_drawer_fault``): what the callee's calls of
        that parameter pass at position ``at``."""
        keys: set[str] = set()
        for call in self.calls:
            for i, arg in enumerate(call.args):
                if (isinstance(arg, ast.Attribute | ast.Name)
                        and (arg.attr if isinstance(arg, ast.Attribute) else arg.id) == func):
                    for params in self.params.get(_called_name(call) or "", []):
                        if i < len(params):
                            keys |= self.callback_args(params[i], at)
        return keys

    def callback_args(self, name: str, at: int) -> set[str]:
        keys: set[str] = set()
        for call in self.calls:
            if _called_name(call) == name and at < len(call.args):
                keys |= self.keys(call.args[at])
        return keys

    def name_keys(self, node: ast.Name) -> set[str]:
        func = self.enclosing(node)
        if func is None:
            value = self.module_value(node, node.id)
            if value is None:
                raise Unreadable(f"{self.where(node)}: where does {node.id} come from?")
            return self.keys(value)
        keys: set[str] = set()
        found = False
        for stmt in ast.walk(func):  # its assignments in the function
            if isinstance(stmt, ast.Assign):
                for t in stmt.targets:
                    if isinstance(t, ast.Name) and t.id == node.id:
                        found = True
                        keys |= self.keys(stmt.value)
                    elif (isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)
                          and t.value.id == node.id):
                        found = True
                        if not (isinstance(t.slice, ast.Constant)
                                and isinstance(t.slice.value, str)):
                            raise Unreadable(f"{self.where(t)}: a key this test cannot read")
                        keys.add(t.slice.value)
        args = func.args
        if args.kwarg is not None and args.kwarg.arg == node.id:  # **detail: callers' names
            found = True
            for call in self.calls:
                if _called_name(call) == func.name:
                    keys |= {kw.arg for kw in call.keywords if kw.arg is not None}
        names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        if node.id in names:  # a parameter: what its callers pass
            found = True
            positional = [a.arg for a in args.posonlyargs + args.args]
            if positional[:1] in (["self"], ["cls"]):
                positional = positional[1:]
            for call in self.calls:
                if _called_name(call) != func.name:
                    continue
                for kw in call.keywords:
                    if kw.arg == node.id:
                        keys |= self.keys(kw.value)
                if node.id in positional and positional.index(node.id) < len(call.args):
                    keys |= self.keys(call.args[positional.index(node.id)])
            if node.id in positional:
                keys |= self.called_back(func.name, positional.index(node.id))
        if not found:
            raise Unreadable(f"{self.where(node)}: where does {node.id} come from?")
        return keys

    def keys(self, node: ast.expr) -> set[str]:
        """The keys a journal detail built by ``node`` can have, nested dicts' included."""
        if node in self.busy:  # a detail built from itself (``detail = {**detail, …}``)
            return set()
        self.busy.add(node)
        try:
            return self._keys(node)
        finally:
            self.busy.discard(node)

    def _keys(self, node: ast.expr) -> set[str]:
        if isinstance(node, ast.Constant) and node.value is None:
            return set()
        if isinstance(node, ast.Dict):
            keys: set[str] = set()
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:
                    keys |= self.keys(v)
                    continue
                if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                    raise Unreadable(f"{self.where(node)}: a key this test cannot read: "
                                     f"{ast.unparse(k)}")
                keys.add(k.value)
                if isinstance(v, ast.Dict | ast.DictComp):
                    keys |= self.keys(v)
            return keys
        if isinstance(node, ast.DictComp):
            [gen] = node.generators
            if isinstance(node.key, ast.Constant) and isinstance(node.key.value, str):
                keys = {node.key.value}
            elif (isinstance(node.key, ast.Name) and isinstance(gen.target, ast.Name)
                  and gen.target.id == node.key.id):
                keys = self.strings(gen.iter)
            elif (isinstance(node.key, ast.Name) and isinstance(gen.target, ast.Tuple)
                  and isinstance(gen.iter, ast.Tuple)):  # over (("witness", …), …)
                at = [e.id for e in gen.target.elts if isinstance(e, ast.Name)].index(
                    node.key.id)
                keys = set().union(*(self.strings(t.elts[at]) for t in gen.iter.elts
                                     if isinstance(t, ast.Tuple)))
            else:
                raise Unreadable(f"{self.where(node)}: keys this test cannot read")
            if isinstance(node.value, ast.Dict | ast.DictComp):
                keys |= self.keys(node.value)
            return keys
        if isinstance(node, ast.IfExp):
            return self.keys(node.body) | self.keys(node.orelse)
        if isinstance(node, ast.BoolOp):
            return set().union(*(self.keys(v) for v in node.values))
        if isinstance(node, ast.Name):
            return self.name_keys(node)
        if isinstance(node, ast.Attribute):  # op.context, event.detail: whatever is passed
            return self.passed_as(node.attr)
        if isinstance(node, ast.Call):
            name = _called_name(node)
            if name == "dict":
                return set().union(*(self.keys(a) for a in node.args),
                                   {kw.arg for kw in node.keywords if kw.arg})
            if name == "get" and node.args and isinstance(node.args[0], ast.Constant):
                return self.passed_as(str(node.args[0].value))  # extra.get("context")
            if name in self.funcs:  # a helper building it: what it returns
                return set().union(*(self.keys(r.value) for f in self.funcs[name]
                                     for r in ast.walk(f)
                                     if isinstance(r, ast.Return) and r.value is not None))
        raise Unreadable(f"{self.where(node)}: a detail this test cannot read: "
                         f"{ast.unparse(node)}")


@cache
def journaled_keys() -> frozenset[str]:
    """Every key the code can write in a journal row's detail, read from its source: the
    ``detail`` of each ``JournalEntry(...)``, followed back through names, parameters, the
    helpers that build it and the hardware events a drawer fault carries."""
    src = Source()
    keys: set[str] = set()
    for call in src.calls:
        if _called_name(call) != "JournalEntry":
            continue
        for kw in call.keywords:
            if kw.arg == "detail":
                keys |= src.keys(kw.value)
    return frozenset(keys)


def test_the_source_scan_finds_keys_built_far_from_the_journal_entry():
    """The keys that are not in the ``JournalEntry(...)`` itself: an intent's, a drawer
    fault's (from the drawer's own deadline, the boards' events, a jam's exposure), a
    re-layout's put-back context, a drug's fields and its changes. Were the scan blind to
    them, the words test below would prove nothing for them."""
    keys = journaled_keys()
    assert {"reason", "operation", "witness", "expected_before", "put_back", "position",
            "limit_s", "motion", "seconds", "rebooted", "events_lost", "switch", "at",
            "name", "gtin", "controlled", "max_per_withdrawal", "changes", "before", "after",
            "note", "proposal", "problem", "by", "attempts", "failures"} <= keys


def test_the_scan_refuses_a_detail_it_cannot_read():
    """A detail built some new way fails the scan, rather than let its keys through."""
    src = Source()
    tree = ast.parse("JournalEntry('x', detail=make_it_up())")
    call = tree.body[0].value  # type: ignore[attr-defined]
    src.path[call] = src.path[call.keywords[0].value] = FILES[0]
    with pytest.raises(Unreadable):
        src.keys(call.keywords[0].value)


def test_every_key_the_code_journals_has_words_in_french_and_english():
    """A key added to a journal row without its words fails here, before a pharmacist
    reads a raw English key on a French page."""
    missing = sorted(k for k in journaled_keys()
                     if f"journal.key.{k}" not in FR or f"journal.key.{k}" not in EN)
    assert missing == []
    for key in [k for k in FR if k.startswith(("journal.key.", "journal.value."))]:
        assert key in EN, key
        assert FR[key].strip() and EN[key].strip(), key


# -- the words --------------------------------------------------------------------------------
def test_keys_and_closed_codes_read_as_words_and_free_values_as_written():
    raw = json.dumps({"reason": "power_loss", "operation": "withdraw", "by": "badge",
                      "position": "part_open", "badge_revoked": True, "note": "lot abîmé",
                      "proposal": 12})
    assert journal_detail("fr", raw) == (
        "Motif : coupure de courant ; Opération : Prélèvement ; Par : badge ; "
        "Position : entrouvert ; Badge retiré : oui ; Note : lot abîmé ; Proposition : 12")
    assert journal_detail("en", raw) == (
        "Reason: power loss; Operation: Withdrawal; By: badge; Position: part open; "
        "Badge revoked: yes; Note: lot abîmé; Proposal: 12")


def test_nested_lists_unknown_keys_and_bad_json_are_shown_not_lost():
    """A drug's changes (field -> before, after), lists, a key from a newer version (shown
    as itself), a detail that is not an object: nothing is dropped."""
    raw = json.dumps({"changes": {"controlled": {"before": False, "after": True}},
                      "lookalikes": ["A", "B"], "gtin": None, "new_key": "x"})
    assert journal_detail("fr", raw) == (
        "Modifications : (Stupéfiant : (Avant : non, Après : oui)) ; "
        "Médicaments ressemblants : A, B ; GTIN : — ; new_key : x")
    assert journal_detail("en", "[1, 2]") == "[1, 2]"
    assert journal_detail("en", "not json") == "not json"
    assert journal_detail("en", None) == journal_detail("en", "{}") == ""


# -- the page and the exports ----------------------------------------------------------------
@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def _detail_cells(page: str) -> list[tuple[str, str]]:
    """(raw JSON from the title, words shown) of the journal table's detail cells."""
    return [(html.unescape(raw), html.unescape(words).strip()) for raw, words in re.findall(
        r'<td class="detail" title="([^"]*)">([^<]*)</td>', page)]


DETAIL = {"operation": "withdraw", "reason": "power_loss", "note": "<b>x</b> & \"y\""}


def test_the_journal_page_shows_the_detail_in_the_reader_s_words_and_keeps_the_json(web):
    """The detail read "reason: power_loss; operation: withdraw" on French pages. It now
    reads in the reader's words, the free note as typed (escaped, never markup), and the
    raw JSON, for audits, is the cell's title."""
    web.portal.call(web.runtime.store.append,
                    JournalEntry("discrepancy", code="INTERRUPTED", detail=DETAIL))
    c = web.client()
    ph_login(c)  # pharma1 reads French
    page = c.get("/pharmacy/journal", params={"kind": "discrepancy"}).text
    assert "<b>x</b>" not in page
    [(raw, words)] = _detail_cells(page)
    assert json.loads(raw) == DETAIL
    assert words == ('Note : <b>x</b> & "y" ; Opération : Prélèvement ; '
                     'Motif : coupure de courant')  # the journal stores keys sorted

    en = web.client()
    ph_login(en, "admin1")  # admin1 reads English
    [(raw, words)] = _detail_cells(en.get("/pharmacy/journal",
                                          params={"kind": "discrepancy"}).text)
    assert json.loads(raw) == DETAIL
    assert words == 'Note: <b>x</b> & "y"; Operation: Withdrawal; Reason: power loss'


def test_the_export_keeps_the_raw_detail(web, capsys):
    """The export is a contract: its detail stays the journaled keys and codes."""
    web.portal.call(web.runtime.store.append,
                    JournalEntry("discrepancy", code="INTERRUPTED", detail=DETAIL))
    assert main(["journal", "export", "--db", web.runtime.store.path, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    [row] = [r for r in rows if r["kind"] == "discrepancy"]
    detail = row["detail"]
    assert (json.loads(detail) if isinstance(detail, str) else detail) == DETAIL


# -- error codes ------------------------------------------------------------------------------
def _literal_codes(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _literal_codes(node.body) | _literal_codes(node.orelse)
    return set()


def _hardware_codes(src: Source) -> set[str]:
    """Every ``code`` a ``HardwareError`` or one of its subclasses carries or is raised
    with: what an ``exc.code`` journaled after a hardware error can be."""
    hardware = {"HardwareError"}
    classes = [n for tree in src.trees.values() for n in ast.walk(tree)
               if isinstance(n, ast.ClassDef)]
    grew = True
    while grew:
        grew = False
        for cls in classes:
            if cls.name not in hardware and any(
                    isinstance(b, ast.Name) and b.id in hardware for b in cls.bases):
                hardware.add(cls.name)
                grew = True
    codes: set[str] = set()
    for cls in classes:
        if cls.name in hardware:
            for stmt in cls.body:
                if (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
                        and stmt.targets[0].id == "code"):
                    codes |= _literal_codes(stmt.value)
    for call in src.calls:
        if _called_name(call) in hardware:
            for kw in call.keywords:
                if kw.arg == "code":
                    codes |= _literal_codes(kw.value)
    return codes


class Codes:
    """The values a code given to a journal row can take, read from the source: literals,
    choices, f-strings and ``.upper()`` of them; a name through its assignments, the
    tuples a loop unpacks it from, or, for a parameter, its ``Literal`` annotation, its
    default and what every caller passes (as a callback too). Three families are the
    code's own constants: a drawer ``state`` (the drawer machine's states), an
    ``exc.code`` (every hardware error's code), an alarm row's ``kind`` (``alarms.KINDS``).
    Anything else is :class:`Unreadable`: a code passed through a variable the scan cannot
    follow fails the test instead of going through without words (``MISSING`` did)."""

    def __init__(self, src: Source) -> None:
        from test_alarm_texts import _fault_kinds

        from controller.alarms import KINDS as ALARM_KINDS
        from controller.drawer import STATES as DRAWER_STATES

        self.src = src
        self.hardware = _hardware_codes(src)
        self.states = set(DRAWER_STATES)
        self.alarm_kinds = set(ALARM_KINDS)
        self.fault_kinds = _fault_kinds()
        self.busy: set[object] = set()

    def of(self, node: ast.expr) -> set[str]:
        if node in self.busy:
            return set()
        self.busy.add(node)
        try:
            return self._of(node)
        finally:
            self.busy.discard(node)

    def _of(self, node: ast.expr) -> set[str]:
        src = self.src
        if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)):
            return set() if node.value is None else {node.value}
        if isinstance(node, ast.IfExp):
            return self.of(node.body) | self.of(node.orelse)
        if isinstance(node, ast.JoinedStr):
            texts = {""}
            for part in node.values:
                values = (self.of(part.value) if isinstance(part, ast.FormattedValue)
                          else self.of(part))
                texts = {t + v for t in texts for v in values}
            return texts
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("upper", "lower") and not node.args):
            return {getattr(v, node.func.attr)() for v in self.of(node.func.value)}
        if isinstance(node, ast.Attribute) and node.attr == "code":
            return set(self.hardware)  # exc.code: a hardware error's
        if (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
                and node.slice.value == "kind" and src.path[node].name == "alarms.py"):
            return set(self.alarm_kinds)  # an alarm row's kind
        if isinstance(node, ast.Name):
            return self.name(node)
        raise Unreadable(f"{src.where(node)}: a code this test cannot read: {ast.unparse(node)}")

    def name(self, node: ast.Name) -> set[str]:
        src = self.src
        if node.id == "state":
            return set(self.states)  # a drawer's state (unit.state, what open() returned)
        func = src.enclosing(node)
        if func is None:
            value = src.module_value(node, node.id)
            if value is None:
                raise Unreadable(f"{src.where(node)}: where does {node.id} come from?")
            return self.of(value)
        if func.name == "_on_drawer_fault" and node.id == "kind":
            return set(self.fault_kinds)  # the drawer machine's faults and the cabinet's own
        codes: set[str] = set()
        found = False
        for stmt in ast.walk(func):
            if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == node.id for t in stmt.targets):
                found = True
                codes |= self.of(stmt.value)
            elif (isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Tuple)
                  and node.id in [e.id for e in stmt.target.elts if isinstance(e, ast.Name)]):
                found = True
                codes |= self.unpacked(func, stmt, node.id)
        args = func.args
        every = args.posonlyargs + args.args + args.kwonlyargs
        param = next((a for a in every if a.arg == node.id), None)
        if param is not None:
            found = True
            literal = self.literal_annotation(node, param.annotation)
            if literal is not None:
                return codes | literal  # mypy holds every caller to it
            given = self.defaults(func, node.id) | self.passed(func, node.id)
            if not given:  # handed over as a callback, say: its type must say what it takes
                raise Unreadable(f"{src.where(node)}: nothing passes {node.id} a code this "
                                 "test can read; annotate it with a Literal")
            codes |= given
        if not found:
            if src.enclosing(func) is not None:  # a closure's: the outer function's name
                return self.outer(func, node)
            raise Unreadable(f"{src.where(node)}: where does {node.id} come from?")
        return codes

    def outer(self, func: Func, node: ast.Name) -> set[str]:
        """A name a nested function reads from the function around it."""
        name = ast.Name(node.id)
        self.src.parent[name] = self.src.parent[func]
        self.src.path[name] = self.src.path[func]
        return self.name(name)

    def literal_annotation(self, node: ast.AST, annotation: ast.expr | None) -> set[str] | None:
        """The values of a ``Literal[...]`` annotation, written in place or as a
        module-level alias; None for any other annotation."""
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            annotation = ast.parse(annotation.value, mode="eval").body  # postponed
        if isinstance(annotation, ast.Name):  # an alias, of this module or imported
            for tree in self.src.trees.values():
                alias = self.src.module_value(tree.body[0], annotation.id) if tree.body else None
                if alias is not None:
                    return self.literal_annotation(tree, alias)
            return None
        if (isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name)
                and annotation.value.id == "Literal"):
            elts = (annotation.slice.elts if isinstance(annotation.slice, ast.Tuple)
                    else [annotation.slice])
            return set().union(*(_literal_codes(e) for e in elts))
        return None

    def unpacked(self, func: Func, loop: ast.For, name: str) -> set[str]:
        """A loop variable unpacked from tuples (``for qty, lot, code in rows``): that
        element of every tuple appended to the list the loop goes over."""
        at = [e.id for e in loop.target.elts if isinstance(e, ast.Name)].index(name)  # type: ignore[attr-defined]
        over = loop.iter
        if isinstance(over, ast.Call) and _called_name(over) == "sorted" and over.args:
            over = over.args[0]
        if not isinstance(over, ast.Name):
            raise Unreadable(f"{self.src.where(loop)}: a loop this test cannot read")
        codes: set[str] = set()
        for call in ast.walk(func):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "append" and isinstance(call.func.value, ast.Name)
                    and call.func.value.id == over.id):
                item = call.args[0]
                if not isinstance(item, ast.Tuple):
                    raise Unreadable(f"{self.src.where(call)}: an item this test cannot read")
                codes |= self.of(item.elts[at])
        return codes

    def defaults(self, func: Func, name: str) -> set[str]:
        args = func.args
        positional = args.posonlyargs + args.args
        pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults,
                         strict=True))
        pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                  if d is not None]
        return set().union(*(self.of(d) for a, d in pairs if a.arg == name))

    def passed(self, func: Func, name: str) -> set[str]:
        """What every call of ``func`` (by its name) passes for parameter ``name``."""
        positional = [a.arg for a in func.args.posonlyargs + func.args.args]
        if positional[:1] in (["self"], ["cls"]):
            positional = positional[1:]
        codes: set[str] = set()
        for call in self.src.calls:
            if _called_name(call) != func.name:
                continue
            for kw in call.keywords:
                if kw.arg == name:
                    codes |= self.of(kw.value)
            if name in positional and positional.index(name) < len(call.args):
                codes |= self.of(call.args[positional.index(name)])
        return codes


@cache
def journaled_codes() -> frozenset[str]:
    """Every code the cabinet can journal, as a row's ``code`` or a detail's ``reason``,
    read from its source: every ``JournalEntry(code=…)``, followed back through names,
    parameters and callers (:class:`Codes`); what an operation's ``_abort`` and its
    outcome's ``entry`` are given; ``DRAWER_<STATE>`` of a drawer that did not open,
    ``CLOSE_<STATE>`` of one that did not close, and each drawer fault's kind."""
    src = Source()
    codes = Codes(src)
    found: set[str] = set()
    for call in src.calls:
        if _called_name(call) == "JournalEntry":
            for kw in call.keywords:
                if kw.arg == "code":
                    found |= codes.of(kw.value)
    found |= codes.hardware
    return frozenset(found)


def test_the_code_scan_finds_the_codes_journaled_far_from_the_journal_entry():
    """Codes passed through a variable: an intent's operation (``WITHDRAW``), the reasons
    a session ended (``INACTIVITY``, ``PHARMACY_MAX_AGE``), the units a re-layout's bench
    did not bring back (``MISSING``), a count's ``DISCREPANCY``, an alarm's kind. The scan
    missed them, and they showed on French pages as bare codes."""
    assert {"JAMMED_PART_OPEN", "INTERRUPTED", "SHUTDOWN", "DRAWER_OPENING", "CLOSE_JAMMED",
            "BOARD_NOT_ANSWERING", "LINK_DOWN", "MAGNET_BUSY", "ACTUATOR_TIMER",
            "BOARD_REFUSED", "FORCED_OPEN", "AJAR_AT_LINK_UP", "AUTH_LOCKED"} <= journaled_codes()
    assert {"WITHDRAW", "RESTOCK", "MOVE_IN", "USER", "INACTIVITY", "DEACTIVATED",
            "PIN_RESET", "LOCKED", "PHARMACY_USER", "PHARMACY_INACTIVITY",
            "PHARMACY_MAX_AGE", "MISSING", "DISCREPANCY", "low_stock",
            "auth_lockout"} <= journaled_codes()


def test_the_code_scan_refuses_a_code_it_cannot_read():
    """A code given some new way (a dictionary's value, a function's result) fails the
    scan rather than pass without words."""
    src = Source()
    for text in ("JournalEntry('x', code=codes['a'])", "JournalEntry('x', code=make_it())"):
        call = ast.parse(text).body[0].value  # type: ignore[attr-defined]
        for node in ast.walk(call):
            src.path[node] = FILES[0]
        with pytest.raises(Unreadable):
            Codes(src).of(call.keywords[0].value)


def test_every_code_the_cabinet_journals_has_words_in_french_and_english():
    """A code journaled without words showed as the bare code to the pharmacist resolving a
    discrepancy: ``Motif : BOARD_NOT_ANSWERING``."""
    missing = sorted(c for c in journaled_codes()
                     if code_words("fr", c) is None or code_words("en", c) is None)
    assert missing == []


def test_codes_read_as_words_with_the_code_kept_for_searching():
    raw = json.dumps({"reason": "BOARD_NOT_ANSWERING", "row": 0})
    assert journal_detail("fr", raw) == (
        "Motif : la carte du tiroir ne répond pas (BOARD_NOT_ANSWERING) ; Rangée : 0")
    assert journal_detail("en", raw) == (
        "Reason: the drawer's board does not answer (BOARD_NOT_ANSWERING); Row: 0")
    assert journal_code("fr", "DRAWER_OPENING") == "tiroir en cours d'ouverture (DRAWER_OPENING)"
    assert journal_code("en", "CLOSE_JAMMED") == "drawer jammed while closing (CLOSE_JAMMED)"
    assert journal_code("en", "NEWER_CODE") == "NEWER_CODE"  # a code without words: itself
    assert journal_detail("en", json.dumps({"reason": "NEWER_CODE"})) == "Reason: NEWER_CODE"


def test_the_journal_page_shows_a_row_s_code_in_words_with_the_code(web):
    web.portal.call(web.runtime.store.append, JournalEntry(
        "drawer_fault", drawer="A", code="OFFLINE", detail={"reason": "LINK_DOWN"}))
    c = web.client()
    ph_login(c)  # French
    page = c.get("/pharmacy/journal", params={"kind": "drawer_fault"}).text
    assert "tiroir hors ligne (carte muette) (OFFLINE)" in html.unescape(page)
    [(raw, words)] = _detail_cells(page)
    assert words == "Motif : liaison avec la carte du tiroir perdue (LINK_DOWN)"
    assert json.loads(raw) == {"reason": "LINK_DOWN"}


def test_a_free_value_that_looks_like_a_code_stays_as_written():
    """A drug's id is a free value: the one code-like id does not read as a code's words."""
    assert journal_detail("en", json.dumps({"id": "SHUTDOWN"})) == "Id: SHUTDOWN"


def test_intents_session_ends_bench_returns_and_alarms_read_as_words():
    """Codes of the code column that showed bare on French pages: an intent's operation
    (its kind's words), why a session ended, the units a bench did not bring back, an
    alarm row's kind (the alarm's title)."""
    assert journal_code("fr", "WITHDRAW") == "Prélèvement (WITHDRAW)"
    assert journal_code("en", "MOVE_IN") == "Transfer: into a pocket (MOVE_IN)"
    assert journal_code("fr", "INACTIVITY") == "déconnexion après inactivité (INACTIVITY)"
    assert journal_code("en", "PHARMACY_MAX_AGE") == (
        "pharmacy pages: session's maximum time reached (PHARMACY_MAX_AGE)")
    assert journal_code("fr", "MISSING") == "unités manquantes au retour (MISSING)"
    assert journal_code("fr", "low_stock") == "Stock bas (low_stock)"
    assert journal_code("en", "withdraw") == "withdraw"  # an operation's code is in capitals


def test_the_register_shows_a_line_s_code_in_words_and_its_csv_the_code(web):
    web.portal.call(web.runtime.store.append, JournalEntry(
        "count_correction", drug="MORPH10", drawer="A", row=0, col=0, qty=-1, lot="L1",
        code="DISCREPANCY"))
    c = web.client()
    ph_login(c)  # French
    page = html.unescape(c.get("/pharmacy/register", params={"drug": "MORPH10"}).text)
    assert "<small>écart de comptage (DISCREPANCY)</small>" in page
    csv = c.get("/pharmacy/register.csv", params={"drug": "MORPH10"}).text
    assert ",DISCREPANCY," in csv and "écart" not in csv
