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

LotKey = tuple[str, int, int, str]


def replay(conn: sqlite3.Connection) -> dict[LotKey, int]:
    """Stock per pocket and lot as the journal alone says it should be."""
    totals: dict[LotKey, int] = {}
    for kind, drawer, row, col, lot, qty in conn.execute(
            "SELECT kind, drawer, row, col, lot, qty FROM journal ORDER BY seq"):
        sign = MOVEMENTS.get(kind)
        if sign is None:
            continue
        key = (drawer, row, col, lot)
        totals[key] = totals.get(key, 0) + sign * int(qty)
    return totals


def replay_bench(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """Units on the technician's bench (between two pockets of a re-layout) per drug and lot."""
    totals: dict[tuple[str, str], int] = {}
    for kind, drug, lot, qty in conn.execute(
            "SELECT kind, drug, lot, qty FROM journal WHERE kind IN ('move_out', 'move_in') "
            "ORDER BY seq"):
        key = (drug, lot)
        totals[key] = totals.get(key, 0) + (1 if kind == "move_out" else -1) * int(qty)
    return totals


def projection_mismatches(conn: sqlite3.Connection) -> list[tuple[LotKey, int, object]]:
    """(pocket and lot, journal says, stock table says) wherever the two disagree.

    Conservation per pocket: restocked + returned − withdrawn − wasted − removed ± count
    corrections = on hand. The stock table is a projection kept in the journal row's own
    transaction, so any difference means corruption or tampering. The table's values are
    compared as stored: the columns are not STRICT, so an edit can leave 28.9 or 'abc' there,
    and converting with ``int()`` would let the first pass as 28 and crash on the second.
    Anything that is not a whole number is a mismatch.
    """
    expected = replay(conn)
    actual: dict[LotKey, object] = {
        (d, r, c, lot): n for d, r, c, lot, n in conn.execute(
            "SELECT drawer, row, col, lot, on_hand FROM stock")}
    # The bench is one more place stock can be: keyed as pseudo-pocket "bench:<drug>".
    for (drug, lot), n in replay_bench(conn).items():
        expected[(f"bench:{drug}", -1, -1, lot)] = n
    for drug, lot, n in conn.execute("SELECT drug, lot, qty FROM bench"):
        actual[(f"bench:{drug}", -1, -1, lot)] = n
    return [(key, expected.get(key, 0), actual.get(key, 0))
            for key in sorted(set(expected) | set(actual), key=str)
            if not _same_count(expected.get(key, 0), actual.get(key, 0))]


def _same_count(expected: int, stored: object) -> bool:
    """Whether a stored count is the whole number ``expected`` (an int, not 28.0 or '28')."""
    return type(stored) is int and stored == expected


def pocket_label(drawer: object, row: object, col: object) -> str:
    """A pocket as on the pick list (A-1-2), whatever an edited table left in its columns."""
    if type(row) is int and type(col) is int:
        return f"{drawer}-{row + 1}-{col + 1}"
    return f"{drawer}-{row!r}-{col!r}"


def integrity_problem(conn: sqlite3.Connection, stop: Callable[[], bool] | None = None
                      ) -> str | None:
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
    if not verdict.ok:
        return f"journal altered at row {verdict.bad_seq}: {verdict.reason}"
    if mismatches:
        (drawer, row, col, lot), journal, stock = mismatches[0]
        return (f"stock of {pocket_label(drawer, row, col)} lot {lot} is {stock!r}, "
                f"the journal says {journal} ({len(mismatches)} difference(s))")
    return None


def unreadable_problem(exc: BaseException) -> str:
    """The integrity problem of a check that could not read the database to the end. English,
    as alarms are stored; ``controller.alarms`` gives its French form."""
    return (f"the database could not be read to the end ({exc}): run armoire journal verify; "
            "if it is damaged, restore the last backup")


def integrity_problem_at(path: str, stop: Callable[[], bool] | None = None) -> str | None:
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


def export(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT * FROM journal ORDER BY seq")
    names = [d[0] for d in cur.description]
    rows = []
    for values in cur:
        row = dict(zip(names, values, strict=True))
        rows.append(row)
    return rows
