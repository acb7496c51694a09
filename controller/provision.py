"""Putting a cabinet's set-up into its database: drawers, formulary, layout, users.

Used by the demo configuration (its ``seed`` file) and by scenario files, which share one
format (``../shared/contracts/scenario.md``): the same validation, the same errors.
"""

from __future__ import annotations

from datetime import UTC, timedelta, tzinfo
from typing import Any

from controller.auth import PinHasher, check_pin_format, check_role, check_user_id
from controller.config import DrawerSpec
from controller.dates import parse_day
from controller.errors import InputError
from controller.store import JournalEntry, StockDelta, Store


def _str(d: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
    v = d.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip():
        raise InputError(f"{where}.{key}: expected a non-empty string",
                         f"{where}.{key} : texte non vide attendu")
    return v


#: Largest whole number a set-up file may give (row, col, capacity, qty, days): far above any
#: cabinet, far below what SQLite stores (2**63 - 1), where a larger one was an OverflowError.
MAX_WHOLE = 10**9
#: Largest ``expires_in_days``: a century. A date past 9999-12-31 does not exist (OverflowError).
MAX_EXPIRY_DAYS = 36_600


def _int(d: dict[str, Any], key: str, where: str, minimum: int = 0,
         default: int | None = None, maximum: int = MAX_WHOLE) -> int:
    v = d.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise InputError(f"{where}.{key}: expected a whole number of at least {minimum}",
                         f"{where}.{key} : entier d'au moins {minimum} attendu")
    if v > maximum:
        raise InputError(f"{where}.{key}: at most {maximum}",
                         f"{where}.{key} : au plus {maximum}")
    return v


def apply_drawers(store: Store, drawers: tuple[DrawerSpec, ...]) -> None:
    """Make the database's drawers those of the configuration, which says what is built.

    Run at every start, not only the first: a drawer added to the configuration gets its
    empty pockets. A drawer whose geometry changed, or one the database has and the
    configuration no longer names, is refused (``GEOMETRY_CHANGED``) before anything runs:
    its pockets may hold journaled stock the cabinet could no longer reach or would place
    in the wrong pocket.
    """
    with store.transaction() as c:
        named = {d.id for d in drawers}
        gone = [r[0] for r in c.execute("SELECT id FROM drawers ORDER BY position, id")
                if r[0] not in named]
        if gone:
            listed = ", ".join(gone)
            raise InputError(
                f"cabinet.drawers: drawer(s) {listed} are in the database but not in the "
                "configuration; empty them and change the layout before removing a drawer",
                f"cabinet.drawers : tiroir(s) {listed} dans la base mais pas dans la "
                "configuration ; videz-les et changez l'agencement avant de retirer un tiroir",
                code="GEOMETRY_CHANGED")
        for i, d in enumerate(drawers):
            existing = c.execute("SELECT type, rows, cols FROM drawers WHERE id=?",
                                 (d.id,)).fetchone()
            if existing is None:
                c.execute("INSERT INTO drawers VALUES (?, ?, ?, ?, ?)",
                          (d.id, d.type, d.rows, d.cols, i))
                c.executemany("INSERT INTO pockets (drawer, row, col) VALUES (?, ?, ?)",
                              [(d.id, r, k) for r in range(d.rows) for k in range(d.cols)])
            elif tuple(existing) != (d.type, d.rows, d.cols):
                raise InputError(
                    f"cabinet.drawers: drawer {d.id} differs from the one in the database; "
                    "a geometry change needs a new layout",
                    f"cabinet.drawers : le tiroir {d.id} diffère de celui de la base",
                    code="GEOMETRY_CHANGED")


def apply_drugs(store: Store, drugs: Any) -> None:
    if not isinstance(drugs, list):
        raise InputError("drugs: expected a list", "drugs : liste attendue")
    rows = []
    seen: set[str] = set()
    #: GTIN-14 -> the drug id that has it. The insert below replaces on any unique index,
    #: so a GTIN given twice would silently delete the first drug instead of failing.
    gtins: dict[str, str] = {}
    for i, d in enumerate(drugs):
        w = f"drugs[{i}]"
        if not isinstance(d, dict):
            raise InputError(f"{w}: expected an object", f"{w} : objet attendu")
        did = _str(d, "id", w)
        assert did is not None
        if did in seen:
            raise InputError(f"{w}.id: duplicate drug id {did!r}", f"{w}.id : doublon {did!r}")
        seen.add(did)
        gtin = _str(d, "gtin", w, required=False)
        if gtin is not None and not (gtin.isdigit() and len(gtin) in (8, 12, 13, 14)):
            raise InputError(f"{w}.gtin: 8 to 14 digits", f"{w}.gtin : 8 à 14 chiffres")
        if gtin is not None:
            other = gtins.setdefault(gtin.zfill(14), did)
            if other != did:
                raise InputError(f"{w}.gtin: GTIN {gtin} is already drug {other}'s",
                                 f"{w}.gtin : le GTIN {gtin} est déjà celui de {other}",
                                 code="GTIN_TAKEN")
        rows.append((did, _str(d, "name", w), _str(d, "strength", w, False),
                     _str(d, "form", w, False), gtin.zfill(14) if gtin else None,
                     int(bool(d.get("assistant_allowed", False))),
                     int(bool(d.get("controlled", False))),
                     int(bool(d.get("high_alert", False))),
                     _limit(d, w)))
    with store.transaction() as c:
        c.executemany("INSERT OR REPLACE INTO drugs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _limit(d: dict[str, Any], where: str) -> int | None:
    """A drug's optional largest quantity per withdrawal (controller.formulary's rule)."""
    if d.get("max_per_withdrawal") is None:
        return None
    from controller.formulary import MAX_PER_WITHDRAWAL

    value = _int(d, "max_per_withdrawal", where, 1)
    if value > MAX_PER_WITHDRAWAL:
        raise InputError(f"{where}.max_per_withdrawal: at most {MAX_PER_WITHDRAWAL}",
                         f"{where}.max_per_withdrawal : au plus {MAX_PER_WITHDRAWAL}")
    return value


def apply_layout(store: Store, layout: Any, *, user: str | None = None) -> None:
    """Install an approved layout: pocket -> drug and capacity. Journaled."""
    if not isinstance(layout, list):
        raise InputError("layout: expected a list", "layout : liste attendue")
    #: (drawer, row, col) -> the line that placed it: a second line for the same pocket
    #: would silently take it from the first drug, left with no pocket at all.
    placed: dict[tuple[str, int, int], int] = {}
    with store.transaction() as c:
        for i, p in enumerate(layout):
            w = f"layout[{i}]"
            if not isinstance(p, dict):
                raise InputError(f"{w}: expected an object", f"{w} : objet attendu")
            drug, drawer = _str(p, "drug", w), _str(p, "drawer", w)
            row, col = _int(p, "row", w), _int(p, "col", w)
            first = placed.setdefault((str(drawer), row, col), i)
            if first != i:
                where = f"{drawer}-{row + 1}-{col + 1}"
                raise InputError(f"{w}: pocket {where} is already layout[{first}]'s",
                                 f"{w} : la poche {where} est déjà celle de layout[{first}]",
                                 code="POCKET_OCCUPIED")
            cap = _int(p, "capacity", w, default=0)
            if c.execute("SELECT 1 FROM drugs WHERE id=?", (drug,)).fetchone() is None:
                raise InputError(f"{w}.drug: unknown drug {drug!r}",
                                 f"{w}.drug : médicament inconnu {drug!r}", code="UNKNOWN_DRUG")
            cur = c.execute("UPDATE pockets SET drug=?, capacity=? WHERE drawer=? AND row=? "
                            "AND col=?", (drug, cap, drawer, row, col))
            if cur.rowcount != 1:
                raise InputError(f"{w}: no pocket {drawer} row {row} col {col}",
                                 f"{w} : pas de poche {drawer} ligne {row} colonne {col}",
                                 code="UNKNOWN_POCKET")
            store.append(JournalEntry("layout_set", user=user, drug=drug, drawer=drawer,
                                      row=row, col=col, qty=cap))


def apply_users(store: Store, users: Any, hasher: PinHasher, *,
                pins_to_change: bool = True) -> None:
    """The seed's people. Their PINs were written in a file by whoever set the cabinet up,
    so none is its owner's alone: like a PIN a pharmacist gives, each must be changed at the
    first login (``must_change_pin``) before anything is done under it. ``pins_to_change``
    is False only for a simulated cabinet (the demo, scenarios, tests), whose people are
    published examples that hold no drug."""
    if not isinstance(users, list):
        raise InputError("users: expected a list", "users : liste attendue")
    rows = []
    for i, u in enumerate(users):
        w = f"users[{i}]"
        if not isinstance(u, dict):
            raise InputError(f"{w}: expected an object", f"{w} : objet attendu")
        uid, name, role, pin = (_str(u, "id", w), _str(u, "name", w), _str(u, "role", w),
                                _str(u, "pin", w))
        assert role is not None and pin is not None
        try:
            check_user_id(uid)
            check_role(role)
            check_pin_format(pin)
        except InputError as exc:
            raise InputError(f"{w}: {exc.message_en}", f"{w} : {exc.message_fr}",
                             code=exc.code) from None
        lang = u.get("lang", "fr")
        if lang not in ("fr", "en"):
            raise InputError(f"{w}.lang: fr or en", f"{w}.lang : fr ou en")
        rows.append((uid, name, role, hasher.hash(pin), lang))
    with store.transaction() as c:
        for uid, name, role, pin_hash, lang in rows:
            c.execute("INSERT OR REPLACE INTO users (id, name, role, pin_hash, lang, "
                      "must_change_pin) VALUES (?, ?, ?, ?, ?, ?)",
                      (uid, name, role, pin_hash, lang, int(pins_to_change)))
            store.append(JournalEntry("user_set", user=None, detail={"id": uid, "role": role}))


def _expiry(store: Store, s: dict[str, Any], where: str, zone: tzinfo) -> str:
    """A lot's expiry: a date, or a number of days after provisioning (the ward's day).

    The relative form keeps a demonstration or training cabinet meaningful on any day it is
    set up (a lot near expiry stays near expiry), where fixed dates would all lapse.
    """
    if ("expiry" in s) == ("expires_in_days" in s):
        raise InputError(f"{where}: give either expiry or expires_in_days",
                         f"{where} : indiquer soit expiry soit expires_in_days")
    if "expires_in_days" in s:
        days = _int(s, "expires_in_days", where, maximum=MAX_EXPIRY_DAYS)
        return (store.wallclock().astimezone(zone).date() + timedelta(days=days)).isoformat()
    text = str(_str(s, "expiry", where))
    try:
        return parse_day(text).isoformat()
    except ValueError:
        raise InputError(f"{where}.expiry: expected a date YYYY-MM-DD",
                         f"{where}.expiry : date AAAA-MM-JJ attendue") from None


def apply_stock(store: Store, stock: Any, zone: tzinfo = UTC) -> None:
    """Opening stock of a new cabinet (what was counted into it), journaled as restocks."""
    if not isinstance(stock, list):
        raise InputError("stock: expected a list", "stock : liste attendue")
    for i, s in enumerate(stock):
        w = f"stock[{i}]"
        if not isinstance(s, dict):
            raise InputError(f"{w}: expected an object", f"{w} : objet attendu")
        drawer, lot = _str(s, "drawer", w), _str(s, "lot", w)
        expiry = _expiry(store, s, w, zone)
        row, col, qty = _int(s, "row", w), _int(s, "col", w), _int(s, "qty", w, minimum=1)
        pocket = store.query("SELECT drug, capacity FROM pockets WHERE drawer=? AND row=? "
                             "AND col=?", (drawer, row, col))
        if not pocket or pocket[0]["drug"] is None:
            raise InputError(f"{w}: no drug is assigned to that pocket",
                             f"{w} : aucun médicament n'est attribué à cette poche")
        if store.on_hand(str(drawer), row, col) + qty > pocket[0]["capacity"]:
            raise InputError(f"{w}.qty: above the pocket's capacity",
                             f"{w}.qty : au-delà de la capacité de la poche")
        drug = pocket[0]["drug"]
        store.append(JournalEntry("restock", drug=drug, drawer=drawer, row=row, col=col,
                                  qty=qty, lot=lot, expiry=expiry, code="OPENING_STOCK"),
                     [StockDelta(str(drawer), row, col, str(lot), drug, expiry, qty)])


def apply_spec(store: Store, spec: dict[str, Any], drawers: tuple[DrawerSpec, ...],
               hasher: PinHasher, *, pins_to_change: bool = True,
               zone: tzinfo = UTC) -> None:
    """All or nothing: a bad user at the end leaves no half-provisioned cabinet.
    ``pins_to_change``: see :func:`apply_users`; ``zone``: the ward's, whose day relative
    expiries count from."""
    with store.transaction():
        apply_drawers(store, drawers)
        apply_drugs(store, spec.get("drugs", []))
        apply_layout(store, spec.get("layout", []))
        apply_users(store, spec.get("users", []), hasher, pins_to_change=pins_to_change)
        apply_stock(store, spec.get("stock", []), zone)
