"""The register of one drug's movements, with its running balance (registre des stupéfiants).

French law asks a ward to account for every unit of a controlled drug: each entry and exit,
when, by whom, for which patient, with which witness for a destruction, and the balance after
it. The journal holds all of it; this module reads it back in that form, for one drug over a
period, from the journal alone (never the stock table), so the register is as trustworthy as
the hash chain behind it.

The balance is the cabinet's: units in its pockets plus units on the technician's bench during
a re-layout. Moves between pockets (``move_out``, ``move_in``) are listed as transfers and do
not change it; a count that found more or fewer units than expected (``count_correction``) is
an entry or an exit like any other, because that is what happened to the stock, and so is a
stuck re-layout's bench taken back to the pharmacy (``bench_return``, an exit).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date
from zoneinfo import ZoneInfo

from controller.errors import StoreError
from controller.journal import (
    BENCH_EXITS,
    MOVEMENTS,
    damaged_journal,
    pocket_label,
    unreadable_problem,
    verify,
)
from controller.localtime import UTC_ZONE, day_after, day_start, local_text
from controller.store import db_uri, is_damage

#: Kinds that move units between pockets without units entering or leaving the cabinet.
TRANSFERS = frozenset({"move_out", "move_in"})

#: ``ts`` is the journal's own time (UTC), the evidence; ``local_time`` is the ward's clock.
COLUMNS = ("seq", "ts", "local_time", "kind", "code", "user", "witness", "patient", "pocket", "lot",
           "expiry", "entry", "exit", "transfer", "balance")


@dataclass(frozen=True)
class Line:
    seq: int
    ts: str
    local_time: str
    kind: str
    code: str
    user: str
    witness: str
    patient: str
    pocket: str
    lot: str
    expiry: str
    entry: int
    exit: int
    transfer: int
    balance: int


@dataclass(frozen=True)
class Register:
    drug: str
    start: date | None
    end: date | None
    #: The zone whose days ``start`` and ``end`` are (IANA name), printed with the period.
    zone: str
    opening: int
    lines: list[Line]
    closing: int
    entries: int
    exits: int


def _witness(detail: str | None) -> str:
    if not detail:
        return ""
    try:
        data = json.loads(detail)
    except ValueError:
        return ""
    return str(data.get("witness") or "") if isinstance(data, dict) else ""


def build_checked(path: str, drug: str, start: date | None = None, end: date | None = None,
                  zone: ZoneInfo = UTC_ZONE) -> Register:
    """:func:`build` for the pharmacy pages, once the hash chain is checked.

    The register is what the cabinet shows an auditor as the controlled drugs' record; a row
    edited in the database file (a quantity, a patient) must be refused with
    ``JOURNAL_INTEGRITY``, as ``armoire journal register`` refuses it, never shown as the
    cabinet's. Reading the whole chain takes seconds on a Pi, so this runs in a worker
    thread, on a read-only connection of its own; the check and the register read one
    snapshot, so rows the cabinet appends meanwhile are neither half seen nor missed.
    """
    conn = sqlite3.connect(db_uri(path, "ro"), uri=True, isolation_level=None, timeout=5.0)
    try:
        conn.execute("BEGIN")
        try:
            verdict = verify(conn)
            if not verdict.ok:
                raise damaged_journal(verdict.bad_seq, verdict.reason or "broken chain",
                                      "register")
            return build(conn, drug, start, end, zone)
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        problem = unreadable_problem(exc)
        raise StoreError(problem, f"la base ne peut pas être lue jusqu'au bout ({exc}) : "
                         "lancez armoire journal verify", code="JOURNAL_INTEGRITY") from exc
    finally:
        conn.close()

def build(conn: sqlite3.Connection, drug: str, start: date | None = None,
          end: date | None = None, zone: ZoneInfo = UTC_ZONE) -> Register:
    """The drug's register from ``start`` to ``end`` (the ward's days in ``zone``, both
    included; open-ended when None). The opening balance sums every movement before
    ``start``: a register "from the 1st" opens at the ward's midnight, not UTC's."""
    lo = day_start(start, zone) if start else ""
    hi = day_after(end, zone) if end else "\uffff"
    opening = balance = 0
    lines: list[Line] = []
    entries = exits = 0
    signs = {**MOVEMENTS, **BENCH_EXITS}
    kinds = sorted(signs)
    marks = ", ".join("?" for _ in kinds)
    for row in conn.execute(
            f"SELECT seq, ts, kind, code, user, drawer, row, col, lot, expiry, qty, patient, "
            f"detail FROM journal WHERE drug = ? AND kind IN ({marks}) AND ts < ? "
            f"ORDER BY seq", (drug, *kinds, hi)):
        seq, ts, kind, code, user, drawer, r, c, lot, expiry, qty, patient, detail = row
        signed = 0 if kind in TRANSFERS else signs[kind] * int(qty or 0)
        if ts < lo:
            opening += signed
            balance += signed
            continue
        if kind in TRANSFERS and not qty:
            continue  # a pocket changing hands with nothing in it moves no unit
        balance += signed
        entries += max(signed, 0)
        exits += max(-signed, 0)
        lines.append(Line(
            seq=int(seq), ts=str(ts), local_time=local_text(str(ts), zone, seconds=True),
            kind=str(kind), code=str(code or ""),
            user=str(user or ""), witness=_witness(detail), patient=str(patient or ""),
            pocket=pocket_label(drawer, r, c) if drawer else "", lot=str(lot or ""),
            expiry=str(expiry or ""), entry=max(signed, 0), exit=max(-signed, 0),
            transfer=MOVEMENTS[kind] * int(qty or 0) if kind in TRANSFERS else 0,
            balance=balance))
    return Register(drug, start, end, zone.key, opening, lines, balance, entries, exits)


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: patient ids and lots are typed by people, and
    one starting with = + - @ (or a tab or carriage return) would be run as a formula."""
    if not isinstance(value, str):
        return str(value)  # counts and balances: a negative number is a number
    text = value
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def to_csv(reg: Register, names: Iterable[str] = COLUMNS) -> str:
    """The register as CSV (UTF-8 with a byte-order mark, so spreadsheets read accents),
    opening and closing balances on their own lines."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    header = list(names)
    out.writerow(header)
    period = f"{reg.start or ''}..{reg.end or ''} ({reg.zone})"

    def balance_row(kind: str, value: int) -> list[object]:
        cells: dict[str, object] = {"ts": period, "kind": kind, "balance": value}
        return [cells.get(n, "") for n in header]

    out.writerow(balance_row("opening_balance", reg.opening))
    for line in reg.lines:
        values = asdict(line)
        out.writerow([csv_cell(values[n]) for n in header])
    out.writerow(balance_row("closing_balance", reg.closing))
    return "\ufeff" + buf.getvalue()


__all__ = ["COLUMNS", "Line", "Register", "build", "build_checked", "csv_cell", "to_csv"]
