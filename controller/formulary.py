"""The pharmacist's formulary: adding and correcting drugs, placing them in pockets.

The provisioning seed writes the formulary and the first layout when a cabinet is set up;
after that, this module is the only way drugs and pocket assignments change outside a
re-layout (:mod:`controller.relayout`, which only moves drugs already placed). Every change
is checked here, whoever calls (pharmacy pages, tools, tests), refused with a stable code and
nothing written when it fails, and journaled in the same transaction as the table write.

A drug's id never changes: the journal, the stock and the alarms refer to it. A pocket
changes drug only while it is empty, so the cabinet never believes a pocket holds one drug
while it holds another (the same rule as a re-layout's ``move_out`` / ``move_in``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from controller.alarms import Where, note
from controller.auth import User
from controller.cabinet import Cabinet, Pocket
from controller.errors import InputError, RuleViolation, StateError
from controller.layout.model import Drawer, parse_problem
from controller.scan import gtin_check_ok
from controller.store import JournalEntry

#: A drug id starts with a letter: the technician's scanner reads a label of 8, 12, 13 or 14
#: digits as a GTIN (controller.scan.read), so an all-digit id could never be scanned.
DRUG_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{1,31}$")
NAME_MAX = 80
STRENGTH_MAX = 40
FORM_MAX = 40
#: The largest pocket the screens accept (no cabinet pocket holds more units).
CAPACITY_MAX = 10_000
FLAGS = ("controlled", "high_alert", "assistant_allowed")
FIELDS = ("name", "strength", "form", "gtin", *FLAGS, "max_per_withdrawal")
#: The largest per-withdrawal limit a drug can be given: the cabinet's own cap on any one
#: operation (Cabinet._check_qty).
MAX_PER_WITHDRAWAL = 1000
PERMISSION = "manage_formulary"


@dataclass(frozen=True)
class Notice:
    """Something the pharmacist should know that is not a reason to refuse."""

    code: str
    en: str
    fr: str

    def message(self, lang: str) -> str:
        return self.fr if lang == "fr" else self.en


def normalise_gtin(text: str) -> str:
    """A GTIN as the scanner reads it: 8, 12, 13 or 14 digits, padded to GTIN-14, with a
    valid GS1 check digit (a typo would make every box of the drug refused at restock)."""
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit() and len(digits) in (8, 12, 13, 14)):
        raise InputError("a GTIN is 8, 12, 13 or 14 digits",
                         "un GTIN compte 8, 12, 13 ou 14 chiffres", code="BAD_GTIN")
    gtin = digits.zfill(14)
    if not gtin_check_ok(gtin):
        raise InputError(f"GTIN {digits}: wrong check digit (mistyped?)",
                         f"GTIN {digits} : clé de contrôle fausse (erreur de saisie ?)",
                         code="BAD_GTIN_CHECK")
    return gtin


def _text(value: Any, field: str, limit: int, *, required: bool = False) -> str | None:
    """Trimmed text; empty is None (or refused when required); too long is refused, never
    cut, as everywhere else in the cabinet."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InputError(f"{field}: text expected", f"{field} : texte attendu",
                         code="BAD_INPUT")
    text = value.strip()
    if len(text) > limit:
        raise InputError(f"{field}: {limit} characters at most ({len(text)} given)",
                         f"{field} : {limit} caractères au plus ({len(text)} saisis)",
                         code="FIELD_TOO_LONG")
    if not text.isprintable():
        raise InputError(f"{field}: control characters are not allowed",
                         f"{field} : caractères de contrôle interdits", code="BAD_TEXT")
    if required and not text:
        raise InputError("give the drug's name", "indiquez le nom du médicament",
                         code="BAD_NAME")
    return text or None


def _flag(value: Any, field: str) -> int:
    if not isinstance(value, bool):
        raise InputError(f"{field}: true or false", f"{field} : vrai ou faux", code="BAD_FLAG")
    return int(value)


def _limit(value: Any) -> int | None:
    """The largest quantity a nurse may take at once, or None for no limit but the
    cabinet's. A limit stops the "10 instead of 1" typed at the screen for the drugs where
    it matters (an opioid, potassium), before any drawer opens."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 1 <= value <= MAX_PER_WITHDRAWAL:
        raise InputError(f"the limit per withdrawal is a whole number from 1 to "
                         f"{MAX_PER_WITHDRAWAL}, or none",
                         f"la limite par prélèvement est un entier de 1 à "
                         f"{MAX_PER_WITHDRAWAL}, ou aucune", code="BAD_LIMIT")
    return value


def _values(name: Any, strength: Any, form: Any, gtin: Any,
            flags: dict[str, Any]) -> dict[str, Any]:
    flags = dict(flags)
    limit = _limit(flags.pop("max_per_withdrawal", None))
    unknown = set(flags) - set(FLAGS)
    if unknown:
        raise InputError(f"unknown flag(s): {', '.join(sorted(unknown))}",
                         f"indicateur(s) inconnu(s) : {', '.join(sorted(unknown))}",
                         code="BAD_FLAG")
    raw_gtin = _text(gtin, "gtin", 14)
    return {"name": _text(name, "name", NAME_MAX, required=True),
            "strength": _text(strength, "strength", STRENGTH_MAX),
            "form": _text(form, "form", FORM_MAX),
            "gtin": raw_gtin,
            **{f: _flag(flags.get(f, False), f) for f in FLAGS},
            "max_per_withdrawal": limit}


def _check_gtin_free(cabinet: Cabinet, gtin: str, drug_id: str) -> None:
    rows = cabinet.store.query("SELECT id FROM drugs WHERE gtin = ? AND id != ?",
                               (gtin, drug_id))
    if rows:
        other = rows[0]["id"]
        raise RuleViolation(f"GTIN {gtin} is already drug {other}'s",
                            f"le GTIN {gtin} est déjà celui de {other}", code="GTIN_TAKEN")


def add_drug(cabinet: Cabinet, drug_id: Any, name: Any, strength: Any = None,
             form: Any = None, gtin: Any = None, *, actor: User | None = None,
             **flags: Any) -> dict[str, Any]:
    """A new drug in the formulary (not yet in any pocket). Journaled ``drug_added``."""
    user = cabinet.acting(actor, PERMISSION)
    if not isinstance(drug_id, str) or not DRUG_ID_RE.match(drug_id.strip()):
        raise InputError("a drug id is 2 to 32 letters, digits, '.', '_' or '-', "
                         "starting with a letter",
                         "un code médicament compte 2 à 32 lettres, chiffres, « . », « _ » "
                         "ou « - », et commence par une lettre", code="BAD_DRUG_ID")
    drug_id = drug_id.strip()
    values = _values(name, strength, form, gtin, flags)
    if values["gtin"] is not None:
        values["gtin"] = normalise_gtin(values["gtin"])
    taken = cabinet.store.query("SELECT id FROM drugs WHERE lower(id) = lower(?)", (drug_id,))
    if taken:
        # Case-insensitively: PARA500 and para500 would be two drugs nobody can tell apart.
        raise RuleViolation(f"drug id {taken[0]['id']!r} already exists",
                            f"le code {taken[0]['id']!r} existe déjà", code="DRUG_EXISTS")
    if values["gtin"] is not None:
        _check_gtin_free(cabinet, values["gtin"], drug_id)
    with cabinet.store.transaction() as c:
        c.execute("INSERT INTO drugs (id, name, strength, form, gtin, assistant_allowed, "
                  "controlled, high_alert, max_per_withdrawal) VALUES (?, ?, ?, ?, ?, ?, ?, "
                  "?, ?)",
                  (drug_id, values["name"], values["strength"], values["form"],
                   values["gtin"], values["assistant_allowed"], values["controlled"],
                   values["high_alert"], values["max_per_withdrawal"]))
        cabinet.store.append(JournalEntry("drug_added", user=user.id, drug=drug_id,
                                          detail=values))
    return cabinet.drug(drug_id)


def change_drug(cabinet: Cabinet, drug_id: str, name: Any, strength: Any = None,
                form: Any = None, gtin: Any = None, *, actor: User | None = None,
                **flags: Any) -> tuple[dict[str, Any], list[Notice]]:
    """Correct a drug (every field but its id). Returns the changes (field -> before,
    after; empty when nothing changed, and then nothing is written) and warnings.

    A GTIN already on record is kept as it is even when its check digit is wrong (older
    formularies carry such codes and the boxes still scan); a new or changed GTIN must be
    valid. A drug newly flagged controlled or high-alert that sits in an open drawer is
    accepted (the flag is true, and it brings the witness rule for waste at once) with a
    warning to move it, which a re-layout does.
    """
    user = cabinet.acting(actor, PERMISSION)
    before = cabinet.drug(drug_id)
    values = _values(name, strength, form, gtin, flags)
    if values["gtin"] is not None and values["gtin"].zfill(14) != before["gtin"]:
        values["gtin"] = normalise_gtin(values["gtin"])
        _check_gtin_free(cabinet, values["gtin"], drug_id)
    elif values["gtin"] is not None:
        values["gtin"] = before["gtin"]
    changes = {f: {"before": before[f], "after": values[f]} for f in FIELDS
               if before[f] != values[f]}
    if not changes:
        return {}, []
    with cabinet.store.transaction() as c:
        c.execute("UPDATE drugs SET name=?, strength=?, form=?, gtin=?, assistant_allowed=?, "
                  "controlled=?, high_alert=?, max_per_withdrawal=? WHERE id=?",
                  (values["name"], values["strength"], values["form"], values["gtin"],
                   values["assistant_allowed"], values["controlled"], values["high_alert"],
                   values["max_per_withdrawal"], drug_id))
        superseded = _supersede_proposals(c) if cabinet.pockets_of(drug_id) else 0
        cabinet.store.append(JournalEntry(
            "drug_changed", user=user.id, drug=drug_id,
            detail={"changes": changes,
                    **({"superseded_proposals": superseded} if superseded else {})}))
    warnings = []
    if values["controlled"] or values["high_alert"]:
        open_pockets = [p.label for p in cabinet.pockets_of(drug_id)
                        if not _lidded(cabinet, p.drawer)]
        if open_pockets:
            where = ", ".join(open_pockets)
            warnings.append(Notice(
                "NEEDS_LIDDED_POCKET",
                f"{values['name']} is in an open drawer ({where}): move it to a lidded "
                "pocket (compute a new layout)",
                f"{values['name']} est dans un tiroir ouvert ({where}) : placez-le dans "
                "une poche à couvercle (calculez un nouveau plan)"))
    return changes, warnings


def _sort_key(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold())
                   if not unicodedata.combining(c))


def drugs(cabinet: Cabinet) -> list[dict[str, Any]]:
    """Every drug of the formulary with the pockets holding it (placed or not), for the
    pharmacist's list; ``gtin_ok`` is False for a code on record with a wrong check digit."""
    # Alphabetical as a reader expects it: "énoxaparine" among the e's, not after "z".
    rows = sorted(cabinet.store.query("SELECT * FROM drugs"),
                  key=lambda r: (_sort_key(r["name"]), _sort_key(r["strength"] or ""), r["id"]))
    where: dict[str, list[str]] = {}
    for p in cabinet.store.query(
            "SELECT p.drug, p.drawer, p.row, p.col FROM pockets p JOIN drawers d "
            "ON d.id = p.drawer WHERE p.drug IS NOT NULL ORDER BY d.position, p.row, p.col"):
        where.setdefault(p["drug"], []).append(f"{p['drawer']}-{p['row'] + 1}-{p['col'] + 1}")
    return [{**r, "pockets": where.get(r["id"], []),
             "gtin_ok": r["gtin"] is None or gtin_check_ok(r["gtin"])} for r in rows]


# == pockets ================================================================================
def _lidded(cabinet: Cabinet, drawer_id: str) -> bool:
    """The layout engine's own definition (:attr:`controller.layout.model.Drawer.lidded`):
    only a cubie pocket opens alone; a matrix or carousel drawer shows its neighbours."""
    row = cabinet.store.query("SELECT * FROM drawers WHERE id=?", (drawer_id,))[0]
    return Drawer(row["id"], row["type"], row["rows"], row["cols"]).lidded


def _supersede_proposals(c: Any) -> int:
    """A layout proposal computed before the formulary or the pockets changed would move
    drugs from where they no longer are: it can no longer be approved."""
    cur = c.execute("UPDATE layout_proposals SET status='superseded' WHERE status='proposed'")
    return int(cur.rowcount or 0)


def _check_free_to_change(cabinet: Cabinet, pocket: Pocket) -> None:
    if cabinet.store.query("SELECT 1 FROM layout_tasks WHERE state='pending' LIMIT 1"):
        raise StateError("a re-layout is running: finish its tasks first",
                         "un réaménagement est en cours : terminez d'abord ses tâches",
                         code="RELAYOUT_RUNNING")
    op = cabinet.session.op
    if op is not None and op.step not in ("done", "aborted") and (
            op.pocket.drawer, op.pocket.row, op.pocket.col) == (
            pocket.drawer, pocket.row, pocket.col):
        raise StateError(f"pocket {pocket.label} is in use at the cabinet: try again after",
                         f"la poche {pocket.label} est en cours d'utilisation à l'armoire : "
                         "réessayez ensuite", code="OPERATION_RUNNING")


def _placed_pocket(cabinet: Cabinet, drawer: str, row: int, col: int) -> Pocket:
    """A pocket holding a drug, and free to change now (no re-layout, no operation in it)."""
    pocket = cabinet.pocket(drawer, row, col)
    if pocket.drug is None:
        raise RuleViolation(f"pocket {pocket.label} holds no drug",
                            f"la poche {pocket.label} ne contient aucun médicament",
                            code="POCKET_UNASSIGNED")
    _check_free_to_change(cabinet, pocket)
    return pocket


def _check_capacity(capacity: Any) -> int:
    if not isinstance(capacity, int) or isinstance(capacity, bool) \
            or not 1 <= capacity <= CAPACITY_MAX:
        raise InputError(f"the capacity is a whole number from 1 to {CAPACITY_MAX}",
                         f"la capacité est un entier de 1 à {CAPACITY_MAX}",
                         code="BAD_CAPACITY")
    return capacity


def lookalike_neighbours(cabinet: Cabinet, drawer: str, row: int, col: int,
                         drug_id: str) -> list[dict[str, Any]]:
    """Drugs in pockets sharing a side with this one that look or sound like ``drug_id``.

    The layout engine's own rule: its similarity (names, strength, form), its threshold
    and its adjacency (a carousel's rows are rings), through a problem made of this drawer
    and the drugs in it, so a warning here is a conflict the engine would count.
    """
    drawer_row = cabinet.store.query("SELECT * FROM drawers WHERE id=?", (drawer,))[0]
    placed = cabinet.store.query("SELECT drug, row, col FROM pockets WHERE drawer=? "
                                 "AND drug IS NOT NULL AND drug != ?", (drawer, drug_id))
    if not placed:
        return []
    all_drugs = {d["id"]: d for d in cabinet.store.query("SELECT * FROM drugs")}
    ids = [drug_id, *sorted({p["drug"] for p in placed})]
    problem = parse_problem({
        "cabinet": {"drawers": [{"id": drawer, "type": drawer_row["type"],
                                 "rows": drawer_row["rows"], "cols": drawer_row["cols"]}]},
        "drugs": [{"id": i, "name": all_drugs[i]["name"],
                   **({"strength": all_drugs[i]["strength"]} if all_drugs[i]["strength"]
                      else {}),
                   **({"form": all_drugs[i]["form"]} if all_drugs[i]["form"] else {})}
                  for i in ids]})
    index = {d: i for i, d in enumerate(ids)}
    at = {problem.pocket_index(drawer, p["row"], p["col"]): p["drug"] for p in placed}
    here = problem.pocket_index(drawer, row, col)
    found = []
    for a, b in problem.edges.tolist():
        if here not in (a, b):
            continue
        other = b if a == here else a
        neighbour = at.get(other)
        if neighbour is not None and problem.incompatible[0, index[neighbour]]:
            _, r, c = problem.pocket_label(other)
            found.append({"drug": neighbour, "name": all_drugs[neighbour]["name"],
                          "pocket": f"{drawer}-{r + 1}-{c + 1}",
                          "similarity": round(float(problem.similarity[0, index[neighbour]]),
                                              3)})
    return found


def assign_pocket(cabinet: Cabinet, drawer: str, row: int, col: int, drug_id: str,
                  capacity: Any, *, actor: User | None = None) -> list[Notice]:
    """Put a drug into an empty, unassigned pocket. Journaled ``pocket_assigned``; the
    pocket then needs a restock, so it is on the technician's pick list at once.

    Refused: a controlled or high-alert drug outside a lidded pocket (the layout engine's
    rule), a pocket already assigned or not empty, a running re-layout. Warned: look-alike
    drugs in pockets sharing a side, and a drug now in several pockets (which one a nurse's
    drawer opens depends on the stock, so the pharmacist should mean it).
    """
    user = cabinet.acting(actor, PERMISSION)
    capacity = _check_capacity(capacity)
    pocket = cabinet.pocket(drawer, row, col)
    drug = cabinet.drug(drug_id)
    _check_free_to_change(cabinet, pocket)
    if pocket.drug is not None:
        raise RuleViolation(f"pocket {pocket.label} already holds {pocket.drug}",
                            f"la poche {pocket.label} contient déjà {pocket.drug}",
                            code="POCKET_OCCUPIED")
    if cabinet.store.on_hand(drawer, row, col):
        raise RuleViolation(f"pocket {pocket.label} is not empty: count it first",
                            f"la poche {pocket.label} n'est pas vide : comptez-la d'abord",
                            code="POCKET_NOT_EMPTY")
    if (drug["controlled"] or drug["high_alert"]) and not _lidded(cabinet, drawer):
        raise RuleViolation(
            f"{drug['name']} is controlled or high-alert: only in a lidded pocket, "
            f"not in open drawer {drawer}",
            f"{drug['name']} est un stupéfiant ou à haut risque : uniquement dans une poche "
            f"à couvercle, pas dans le tiroir ouvert {drawer}", code="NEEDS_LIDDED_POCKET")
    elsewhere = [p.label for p in cabinet.pockets_of(drug_id)]
    lookalikes = lookalike_neighbours(cabinet, drawer, row, col, drug_id)
    with cabinet.store.transaction() as c:
        c.execute("UPDATE pockets SET drug=?, capacity=?, min_level=NULL, max_level=NULL "
                  "WHERE drawer=? AND row=? AND col=?", (drug_id, capacity, drawer, row, col))
        # Empty lots left by the pocket's previous drug: a lot number of the new drug that
        # happened to match would otherwise be booked under the old drug.
        c.execute("UPDATE stock SET drug=? WHERE drawer=? AND row=? AND col=? AND on_hand=0",
                  (drug_id, drawer, row, col))
        superseded = _supersede_proposals(c)
        cabinet.store.append(JournalEntry(
            "pocket_assigned", user=user.id, drug=drug_id, drawer=drawer, row=row, col=col,
            qty=capacity,
            detail={"capacity": capacity,
                    **({"lookalikes": [x["drug"] for x in lookalikes]} if lookalikes else {}),
                    **({"superseded_proposals": superseded} if superseded else {})}))
        cabinet.check_low_stock(cabinet.pocket(drawer, row, col))
    warnings = [Notice(
        "LOOKALIKE_NEIGHBOUR",
        f"look-alike next to {pocket.label}: {x['name']} in {x['pocket']} "
        f"(similarity {x['similarity']:.2f})",
        f"médicament ressemblant à côté de {pocket.label} : {x['name']} en {x['pocket']} "
        f"(similarité {x['similarity']:.2f})") for x in lookalikes]
    if elsewhere:
        where = ", ".join(elsewhere)
        warnings.append(Notice(
            "DRUG_IN_SEVERAL_POCKETS",
            f"{drug['name']} is also in {where}: a withdrawal opens, of its pockets holding "
            "enough, the one whose lot expires first; a restock fills the first with room",
            f"{drug['name']} est aussi en {where} : un retrait ouvre, parmi ses poches qui en "
            "contiennent assez, celle dont le lot périme le premier ; un réassort remplit la "
            "première qui a de la place"))
    return warnings


def set_capacity(cabinet: Cabinet, drawer: str, row: int, col: int, capacity: Any, *,
                 actor: User | None = None) -> list[Notice]:
    """Change how many units of its drug a placed pocket holds (a new box size, a divider
    moved). Journaled ``pocket_capacity_changed``; the same capacity writes nothing.

    Refused below the units in the pocket (``CAPACITY_BELOW_STOCK``): the cabinet would
    believe it holds more than fits, and the next restock check would be wrong. Approved
    levels above the new capacity cannot be refilled to, so ``max`` comes down to the
    capacity (and ``min`` under it) with a warning and both values journaled; the
    pharmacist can ask for new proposals. Pending level proposals for the pocket were
    computed with the old capacity, so they can no longer be approved as they are.
    """
    user = cabinet.acting(actor, PERMISSION)
    capacity = _check_capacity(capacity)
    pocket = _placed_pocket(cabinet, drawer, row, col)
    if capacity == pocket.capacity:
        return []
    held = cabinet.store.on_hand(drawer, row, col)
    if capacity < held:
        raise RuleViolation(
            f"pocket {pocket.label} holds {held} unit(s) now: the capacity cannot be less",
            f"la poche {pocket.label} contient {held} unité(s) : la capacité ne peut pas "
            "être inférieure", code="CAPACITY_BELOW_STOCK")
    lo, hi = pocket.min_level, pocket.max_level
    capped = hi is not None and hi > capacity
    if capped:
        hi = capacity
        lo = min(lo, capacity - 1) if lo is not None else None
    with cabinet.store.transaction() as c:
        c.execute("UPDATE pockets SET capacity=?, min_level=?, max_level=? "
                  "WHERE drawer=? AND row=? AND col=?", (capacity, lo, hi, drawer, row, col))
        cur = c.execute("UPDATE level_proposals SET status='superseded' WHERE drawer=? "
                        "AND row=? AND col=? AND status='proposed'", (drawer, row, col))
        levels = int(cur.rowcount or 0)
        superseded = _supersede_proposals(c)
        cabinet.store.append(JournalEntry(
            "pocket_capacity_changed", user=user.id, drug=pocket.drug, drawer=drawer,
            row=row, col=col, qty=capacity,
            detail={"before": pocket.capacity, "after": capacity,
                    **({"levels_before": [pocket.min_level, pocket.max_level],
                        "levels_after": [lo, hi]} if capped else {}),
                    **({"superseded_level_proposals": levels} if levels else {}),
                    **({"superseded_proposals": superseded} if superseded else {})}))
        cabinet.check_low_stock(cabinet.pocket(drawer, row, col))
    if not capped:
        return []
    return [Notice("LEVELS_CAPPED",
                   f"pocket {pocket.label}: approved levels {pocket.min_level}/"
                   f"{pocket.max_level} lowered to {lo}/{hi} to fit the capacity",
                   f"poche {pocket.label} : niveaux approuvés {pocket.min_level}/"
                   f"{pocket.max_level} ramenés à {lo}/{hi} pour tenir dans la capacité")]


def unassign_pocket(cabinet: Cabinet, drawer: str, row: int, col: int, *,
                    actor: User | None = None) -> str:
    """Take a drug out of a pocket (out of the cabinet when it was its only pocket). Only an
    empty pocket, and only when none of the drug waits on the technician's bench (those
    units would have nowhere to go). Returns the drug's id. Journaled ``pocket_unassigned``.
    """
    user = cabinet.acting(actor, PERMISSION)
    pocket = _placed_pocket(cabinet, drawer, row, col)
    drug_id = str(pocket.drug)
    held = cabinet.store.on_hand(drawer, row, col)
    if held:
        raise RuleViolation(
            f"pocket {pocket.label} still holds {held} unit(s): remove or move them first",
            f"la poche {pocket.label} contient encore {held} unité(s) : retirez-les d'abord",
            code="POCKET_NOT_EMPTY")
    bench = cabinet.store.on_bench(drug_id)
    if bench:
        raise RuleViolation(
            f"{bench} unit(s) of {drug_id} are on the bench: put them away first",
            f"{bench} unité(s) de {drug_id} sont sur le plan de travail : rangez-les "
            "d'abord", code="DRUG_ON_BENCH")
    with cabinet.store.transaction() as c:
        c.execute("UPDATE pockets SET drug=NULL, capacity=0, min_level=NULL, max_level=NULL "
                  "WHERE drawer=? AND row=? AND col=?", (drawer, row, col))
        superseded = _supersede_proposals(c)
        cabinet.store.append(JournalEntry(
            "pocket_unassigned", user=user.id, drug=drug_id, drawer=drawer, row=row, col=col,
            detail={"capacity": pocket.capacity,
                    **({"superseded_proposals": superseded} if superseded else {})}))
        cabinet.alarms.auto_resolve("low_stock", Where(drug_id, drawer, row, col),
                                    note("unassigned"))
    return drug_id


__all__ = ["add_drug", "assign_pocket", "change_drug", "drugs", "lookalike_neighbours",
           "normalise_gtin", "set_capacity", "unassign_pocket"]
