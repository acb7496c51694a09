"""Checking and exporting the hash-chained journal.

Verification recomputes every row's hash from its recorded fields and the previous row's hash.
Editing any field of any row, deleting a row, or inserting one breaks the chain at that row,
even when the attacker dropped the append-only triggers first; only rewriting every later row
and the head would hide it, which is why the head is exported for safe-keeping elsewhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.alarms import AlarmText, text
from controller.errors import StoreError
from controller.store import GENESIS, is_damage, row_hash


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rows: int
    head: str
    bad_seq: int | None = None
    reason: str | None = None


class CheckStopped(Exception):
    """A running check was asked to stop (the cabinet is shutting down): no verdict."""


#: How many rows :func:`verify` checks between two looks at its ``stop`` flag.
STOP_EVERY = 4096


def verify(conn: sqlite3.Connection, stop: Callable[[], bool] | None = None) -> Verdict:
    """Recompute the chain; ``stop``, polled every few thousand rows, ends it early with
    :class:`CheckStopped` so a cabinet asked to stop does not wait for years of journal."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    cur = conn.execute("SELECT * FROM journal ORDER BY seq")
    names = [d[0] for d in cur.description]
    for values in cur:
        if stop is not None and count % STOP_EVERY == 0 and stop():
            raise CheckStopped
        row = dict(zip(names, values, strict=True))
        seq = int(row["seq"])
        if seq != expected_seq:
            return Verdict(False, count, prev, expected_seq, f"row {expected_seq} is missing")
        if row["prev_hash"] != prev:
            return Verdict(False, count, prev, seq, "previous-hash link broken")
        if row_hash(row) != row["hash"]:
            return Verdict(False, count, prev, seq, "row content does not match its hash")
        prev = str(row["hash"])
        expected_seq += 1
        count += 1
    return Verdict(True, count, prev)


#: Journal kinds that move stock, and the sign of their quantity.
MOVEMENTS = {"restock": 1, "return": 1, "withdraw": -1, "waste": -1, "remove": -1,
             "count_correction": 1, "move_out": -1, "move_in": 1}

#: Journal kinds that take units off the re-layout bench, out of the cabinet: a stuck
#: task's units a pharmacist recorded as returned to the pharmacy (``relayout.
#: return_to_pharmacy``; code ``MISSING`` for those not found). No pocket: not MOVEMENTS.
BENCH_EXITS = {"bench_return": -1}

LotKey = tuple[str, int, int, str]


@dataclass
class LotState:
    """One lot in one place as the journal alone says it should be: how many units, of which
    drug, expiring when. Drug and expiry decide what may be given, so they are checked as
    closely as the count: an expiry pushed back in the stock table would let an expired lot
    be handed out while every count still agreed."""
    on_hand: int = 0
    drug: object = None
    expiry: object = None

    def take(self, delta: int, drug: object, expiry: object) -> None:
        """The stock table's rule (``Store._apply``): units put into an empty lot are that
        lot now, with their drug and expiry; units added to a lot that holds some keep its
        drug and the earlier expiry; units taken out change neither."""
        if self.on_hand == 0 and delta > 0:
            self.drug, self.expiry = drug, expiry
        elif delta > 0 and expiry is not None and (self.expiry is None
                                                   or str(expiry) < str(self.expiry)):
            self.expiry = expiry
        self.on_hand += delta


def replay_lots(conn: sqlite3.Connection) -> dict[LotKey, LotState]:
    """Every pocket's lots as the journal alone says they should be."""
    lots: dict[LotKey, LotState] = {}
    for kind, drawer, row, col, lot, drug, expiry, qty in conn.execute(
            "SELECT kind, drawer, row, col, lot, drug, expiry, qty FROM journal ORDER BY seq"):
        sign = MOVEMENTS.get(kind)
        if sign is None:
            continue
        state = lots.setdefault((drawer, row, col, lot), LotState())
        state.take(sign * int(qty), drug, expiry)
    return lots


def replay(conn: sqlite3.Connection) -> dict[LotKey, int]:
    """Stock per pocket and lot as the journal alone says it should be."""
    return {key: lot.on_hand for key, lot in replay_lots(conn).items()}


def replay_bench(conn: sqlite3.Connection) -> dict[tuple[str, str], LotState]:
    """Units on the technician's bench (between two pockets of a re-layout) per drug and
    lot, with the expiry they carry (the bench's rule, ``Cabinet._bench``: a lot arriving
    from two pockets keeps the earlier expiry)."""
    bench: dict[tuple[str, str], LotState] = {}
    for kind, drug, lot, expiry, qty in conn.execute(
            "SELECT kind, drug, lot, expiry, qty FROM journal "
            "WHERE kind IN ('move_out', 'move_in', 'bench_return') ORDER BY seq"):
        if lot is None:  # a move or a return of nothing: no lot on the bench
            continue
        state = bench.setdefault((drug, lot), LotState(drug=drug, expiry=expiry))
        if kind == "move_out":
            if qty and expiry is not None and (state.on_hand == 0 or state.expiry is None
                                               or str(expiry) < str(state.expiry)):
                state.expiry = expiry
            state.on_hand += int(qty)
        else:
            state.on_hand -= int(qty)
    return bench


@dataclass(frozen=True)
class Mismatch:
    """Where the stock table and the journal disagree: a lot's ``on_hand``, ``drug`` or
    ``expiry`` (a bench lot's pocket is ``bench:<drug>``)."""
    key: LotKey
    field: str
    journal: object
    table: object

    def where(self) -> str:
        drawer, row, col, _ = self.key
        return drawer if str(drawer).startswith("bench:") else pocket_label(drawer, row, col)

    def describe(self) -> str:
        return (f"{self.where()} lot {self.key[3]}: {self.field} is {self.table!r} in the "
                f"stock table, the journal says {self.journal!r}")


def projection_mismatches(conn: sqlite3.Connection) -> list[Mismatch]:
    """Wherever the stock table disagrees with what the journal says it should hold.

    Conservation per pocket: restocked + returned − withdrawn − wasted − removed ± count
    corrections = on hand; and each lot that holds units is of the drug and expiry the
    journal recorded for it. The stock table is a projection kept in the journal row's own
    transaction, so any difference means corruption or tampering. The table's counts are
    compared as stored: the columns are not STRICT, so an edit can leave 28.9 or 'abc' there,
    and converting with ``int()`` would let the first pass as 28 and crash on the second.
    Anything that is not a whole number is a mismatch.
    """
    expected = replay_lots(conn)
    actual: dict[LotKey, LotState] = {}
    for d, r, c, lot, drug, expiry, n in conn.execute(
            "SELECT drawer, row, col, lot, drug, expiry, on_hand FROM stock"):
        actual[(d, r, c, lot)] = LotState(n, drug, expiry)
    # The bench is one more place stock can be: keyed as pseudo-pocket "bench:<drug>".
    for (drug, lot), state in replay_bench(conn).items():
        expected[(f"bench:{drug}", -1, -1, lot)] = state
    for drug, lot, expiry, n in conn.execute("SELECT drug, lot, expiry, qty FROM bench"):
        actual[(f"bench:{drug}", -1, -1, lot)] = LotState(n, drug, expiry)
    found = []
    for key in sorted(set(expected) | set(actual), key=str):
        want, have = expected.get(key, LotState()), actual.get(key, LotState())
        if not _same_count(want.on_hand, have.on_hand):
            found.append(Mismatch(key, "on_hand", want.on_hand, have.on_hand))
            continue
        if want.on_hand > 0:  # an empty lot gives nothing: its drug and expiry are moot
            found += [Mismatch(key, name, getattr(want, name), getattr(have, name))
                      for name in ("drug", "expiry")
                      if getattr(want, name) != getattr(have, name)]
    return found


def _same_count(expected: int, stored: object) -> bool:
    """Whether a stored count is the whole number ``expected`` (an int, not 28.0 or '28')."""
    return type(stored) is int and stored == expected


def pocket_label(drawer: object, row: object, col: object) -> str:
    """A pocket as on the pick list (A-1-2), whatever an edited table left in its columns."""
    if type(row) is int and type(col) is int:
        return f"{drawer}-{row + 1}-{col + 1}"
    return f"{drawer}-{row!r}-{col!r}"


def integrity_problem(conn: sqlite3.Connection, stop: Callable[[], bool] | None = None
                      ) -> AlarmText | None:
    """What is wrong with the journal or the stock it projects, in one sentence, or None.

    A page SQLite cannot read (a damaged file) is a problem too, never an exception: the
    start-up check runs in a worker thread beside a cabinet that already serves, and an
    exception there would end the check without any alarm, the damage unseen.
    """
    try:
        verdict = verify(conn, stop)
        mismatches = projection_mismatches(conn) if verdict.ok else []
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):  # locked, busy...: the check could not finish, not damage
            raise
        return unreadable_problem(exc)
    return problem_of(verdict, mismatches)


def problem_of(verdict: Verdict, mismatches: list[Mismatch]) -> AlarmText | None:
    """The one sentence of a chain check and a stock check already made: the alarm's, and
    ``armoire journal verify``'s last line, so that the screens and the boot unit's log
    name a problem in the same words (and both have their French form)."""
    if not verdict.ok:
        return text("altered", n=verdict.bad_seq, why=verdict.reason)
    if mismatches:
        first = mismatches[0]
        return text("stock", w=first.where(), lot=first.key[3], f=first.field,
                    t=repr(first.table), j=repr(first.journal), n=len(mismatches))
    return None


def unreadable_problem(exc: BaseException) -> AlarmText:
    """The integrity problem of a check that could not read the database to the end. English,
    as alarms are stored; ``controller.alarms`` gives its French form."""
    return text("unreadable", x=exc)


def integrity_problem_at(path: str, stop: Callable[[], bool] | None = None) -> AlarmText | None:
    """:func:`integrity_problem` on a connection of its own, for a worker thread.

    The chain and the projection are read in one read transaction: in WAL mode that is a
    consistent snapshot, so rows the running cabinet appends meanwhile are neither half
    seen nor reported as differences.
    """
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    try:
        conn.execute("BEGIN")
        try:
            return integrity_problem(conn, stop)
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()


#: What a refusal of a damaged journal withheld: an export or a register (command or page).
WITHHELD = {"export": ("nothing was exported", "rien n'a été exporté"),
            "register": ("the register is not shown", "le registre n'est pas affiché")}


def damaged_journal(seq: int | None, reason: str, withheld: str = "export") -> StoreError:
    """The refusal of a tool or page that would show a journal it cannot vouch for."""
    en, fr = WITHHELD[withheld]
    return StoreError(
        f"journal row {seq}: {reason}; {en}: run armoire journal verify and call IT",
        f"ligne {seq} du journal : {reason} ; {fr} : lancez armoire journal verify et "
        "appelez l'informatique", code="JOURNAL_INTEGRITY")


def export(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT * FROM journal ORDER BY seq")
    names = [d[0] for d in cur.description]
    rows = []
    for values in cur:
        row = dict(zip(names, values, strict=True))
        rows.append(row)
    return rows
