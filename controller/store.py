"""The cabinet's database: formulary, geometry, approved layout, users, stock, alarms, journal.

SQLite in WAL mode with ``synchronous=FULL``: a transaction that returned is on disk, whatever
happens to the power next. The journal is append-only (triggers refuse UPDATE and DELETE) and
hash-chained (each row carries the hash of the previous one), so tampering with the file is
detected by :func:`controller.journal.verify`. Stock per pocket and lot is a projection of the
journal, written in the same transaction as the journal row that changes it.

sqlite-utils creates the schema and serves reads. Writes that must be atomic use the
connection directly inside :meth:`Store.transaction` (``BEGIN IMMEDIATE``): sqlite-utils'
write helpers commit on their own, which would split a journal row from its stock update.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from controller.errors import DatabaseUnreadable, RuleViolation, StoreError

SCHEMA_VERSION = 4
#: The schema versions a database may have for :class:`Store` to open it: the current one,
#: and the older ones ``_migrate`` upgrades. Any other is refused (``DB_SCHEMA``).
OPENABLE_SCHEMAS = tuple(str(v) for v in range(1, SCHEMA_VERSION + 1))
GENESIS = "0" * 64

JOURNAL_FIELDS = ("seq", "ts", "kind", "user", "drug", "drawer", "row", "col", "qty", "lot",
                  "expiry", "patient", "ref", "code", "detail", "prev_hash")


#: Journal kinds that close an intent: the pocket's outcome is known (a movement, a count)
#: or explicitly unknown (a discrepancy), or the drawer never opened (aborted).
OUTCOME_KINDS = frozenset({"restock", "return", "withdraw", "waste", "remove", "move_out",
                           "move_in", "count", "count_correction", "aborted", "discrepancy"})

#: SQLite's error names (Python ≥ 3.11 ``sqlite_errorname``) to the cabinet's stable codes.
_SQLITE_CODES = {"SQLITE_FULL": "DB_FULL", "SQLITE_READONLY": "DB_READONLY",
                 "SQLITE_BUSY": "DB_BUSY", "SQLITE_LOCKED": "DB_BUSY",
                 "SQLITE_IOERR": "DB_IO_ERROR", "SQLITE_CORRUPT": "DB_CORRUPT",
                 "SQLITE_NOTADB": "DB_CORRUPT", "SQLITE_CANTOPEN": "DB_CANNOT_OPEN"}


def db_uri(path: str | os.PathLike[str], mode: str) -> str:
    """The SQLite URI of the database file at ``path`` (``mode`` ``ro`` or ``rw``: never
    create one). Built from the resolved path by ``as_uri()``, which percent-encodes '?', '#'
    and '%'; a raw ``file:{path}`` would read them as the query, a fragment or an escape, and
    then open, or create, another file than the one named."""
    return f"{Path(path).resolve().as_uri()}?mode={mode}"


def store_error(exc: sqlite3.Error) -> StoreError:
    """A database failure as a coded error the screens and tools can show. Nothing was
    written: the transaction it happened in has been rolled back."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    base = next((c for n, c in _SQLITE_CODES.items() if name.startswith(n)), "DB_ERROR")
    return StoreError(f"the cabinet's database refused the write ({name or exc}); "
                      "nothing was recorded: call IT",
                      f"la base de l'armoire a refusé l'écriture ({name or exc}) ; "
                      "rien n'a été enregistré : appelez l'informatique", code=base)


def is_damage(exc: sqlite3.Error) -> bool:
    """A file that is not a sound SQLite database (corrupt pages, not a database at all):
    what no retry mends, unlike a lock, a full disk or a missing mount."""
    return store_error(exc).code == "DB_CORRUPT"


@contextmanager
def starting_on(path: str) -> Iterator[None]:
    """Open, provision and start a controller on the database at ``path`` inside this block.

    Starting reads the geometry, the open intents, every lot and the journal's head: a page
    SQLite cannot read there (a damaged file) would end ``armoire run`` in a traceback and a
    restart loop onto the same damage. It is refused instead as :class:`DatabaseUnreadable`
    (one line, exit 2) telling IT to restore a backup; any other database error becomes its
    coded :func:`store_error`.
    """
    try:
        yield
    except sqlite3.Error as exc:
        if not is_damage(exc):
            raise store_error(exc) from exc
        raise _damaged(path, exc) from exc
    except StoreError as exc:  # a write at start (an alarm) met the damage
        if exc.code != "DB_CORRUPT":
            raise
        raise _damaged(path, exc.__cause__ or exc) from exc


def _damaged(path: str, cause: BaseException) -> DatabaseUnreadable:
    return DatabaseUnreadable(
        f"the database {path} is damaged and cannot be read ({cause}): the cabinet cannot "
        "start; restore the last backup with armoire restore (docs/deploy.md)",
        f"la base {path} est endommagée et illisible ({cause}) : l'armoire ne peut pas "
        "démarrer ; restaurez la dernière sauvegarde avec armoire restore (docs/deploy.md)")


def _blob(value: object) -> object:
    """A value JSON has no form for. The cabinet never writes one; an edited file can hold
    a BLOB in any column (the same letters as bytes look alike in most viewers). It is
    hashed as an object no column can hold, so the row fails its hash, named by
    ``journal verify``, instead of ending the check in a ``TypeError``."""
    if isinstance(value, bytes):
        return {"blob": value.hex()}
    raise TypeError(f"a journal field of type {type(value).__name__}")


def row_hash(row: dict[str, Any]) -> str:
    """The hash of a journal row: every recorded field, in a fixed order, and the previous hash."""
    payload = json.dumps([row.get(k) for k in JOURNAL_FIELDS], separators=(",", ":"),
                         ensure_ascii=False, sort_keys=False, default=_blob)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StockDelta:
    drawer: str
    row: int
    col: int
    lot: str
    drug: str
    expiry: str | None
    delta: int


@dataclass
class JournalEntry:
    kind: str
    user: str | None = None
    drug: str | None = None
    drawer: str | None = None
    row: int | None = None
    col: int | None = None
    qty: int | None = None
    lot: str | None = None
    expiry: str | None = None
    patient: str | None = None
    ref: int | None = None
    code: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def utcnow() -> datetime:
    return datetime.now(UTC)


#: A database holds PIN hashes and patient ids: owner and group only (the service's unit
#: has UMask=0027; a console command run with sudo has 022).
DB_FILE_MODE = 0o640


def _create_private(path: str) -> None:
    """Create a database file that does not exist yet, owner and group only, whatever the
    umask: ``armoire admin`` run by hand before the first start (docs/deploy.md) made it
    0644 otherwise. SQLite gives its -wal and -shm files the database's own mode, and an
    empty file is a valid new database. An existing file is left as it is."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE))
    except OSError:
        return  # there already, or no folder, no right: sqlite3.connect says which below


class Store:
    def __init__(self, path: str | Path, *, wallclock: Callable[[], datetime] = utcnow) -> None:
        self.path = str(path)
        self.wallclock = wallclock
        try:
            if not self.private:
                _create_private(self.path)
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            # Only a file that is not a sound database is beyond a restart (exit 2, restore a
            # backup); one locked, busy or on a disk not yet mounted keeps exit 3, so that
            # systemd tries again.
            error = DatabaseUnreadable if is_damage(exc) else StoreError
            raise error(f"cannot open database {self.path}: {exc}",
                        f"impossible d'ouvrir la base {self.path} : {exc}",
                        code="DB_UNREADABLE") from exc
        self.conn.row_factory = sqlite3.Row
        self.db = sqlite_utils.Database(self.conn)
        self._in_tx = False
        self._migrate()

    def close(self) -> None:
        self.conn.close()

    @property
    def private(self) -> bool:
        """An in-memory database (the tests'): no other connection can see it, so readers
        that go to a worker thread on a connection of their own must read this one instead."""
        return self.path in ("", ":memory:")

    # -- schema ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        db = self.db
        if "meta" not in db.table_names():
            with self.transaction():
                self._create_schema()
        version = self.meta("schema_version")
        if version == "1":
            with self.transaction():
                self._upgrade_1_to_2()
            version = self.meta("schema_version")
        if version == "2":
            with self.transaction():
                self._upgrade_2_to_3()
            version = self.meta("schema_version")
        if version == "3":
            with self.transaction():
                self._upgrade_3_to_4()
            version = self.meta("schema_version")
        if version != str(SCHEMA_VERSION):  # OPENABLE_SCHEMAS lists what is handled above
            raise StoreError(f"database schema {version} is not supported ({SCHEMA_VERSION})",
                             f"schéma de base {version} non pris en charge", code="DB_SCHEMA")

    def _create_schema(self) -> None:
        x = self.conn.execute
        x("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        x("""CREATE TABLE drugs (id TEXT PRIMARY KEY, name TEXT NOT NULL, strength TEXT,
             form TEXT, gtin TEXT, assistant_allowed INTEGER NOT NULL DEFAULT 0,
             controlled INTEGER NOT NULL DEFAULT 0, high_alert INTEGER NOT NULL DEFAULT 0,
             max_per_withdrawal INTEGER)""")
        x("CREATE UNIQUE INDEX drugs_gtin ON drugs(gtin) WHERE gtin IS NOT NULL")
        x("""CREATE TABLE drawers (id TEXT PRIMARY KEY, type TEXT NOT NULL,
             rows INTEGER NOT NULL, cols INTEGER NOT NULL, position INTEGER NOT NULL)""")
        x("""CREATE TABLE pockets (drawer TEXT NOT NULL REFERENCES drawers(id),
             row INTEGER NOT NULL, col INTEGER NOT NULL, drug TEXT REFERENCES drugs(id),
             capacity INTEGER NOT NULL DEFAULT 0, min_level INTEGER, max_level INTEGER,
             PRIMARY KEY (drawer, row, col))""")
        x("""CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
             pin_hash TEXT NOT NULL, failed INTEGER NOT NULL DEFAULT 0,
             locked INTEGER NOT NULL DEFAULT 0, lang TEXT NOT NULL DEFAULT 'fr',
             active INTEGER NOT NULL DEFAULT 1,
             must_change_pin INTEGER NOT NULL DEFAULT 0)""")
        x("""CREATE TABLE stock (drawer TEXT NOT NULL, row INTEGER NOT NULL, col INTEGER NOT NULL,
             lot TEXT NOT NULL, drug TEXT NOT NULL, expiry TEXT, on_hand INTEGER NOT NULL
             CHECK (on_hand >= 0), PRIMARY KEY (drawer, row, col, lot))""")
        x("""CREATE TABLE alarms (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,
             state TEXT NOT NULL, drug TEXT, drawer TEXT, row INTEGER, col INTEGER, lot TEXT,
             ref INTEGER, message TEXT, opened_ts TEXT NOT NULL, updated_ts TEXT NOT NULL,
             updated_by TEXT, user TEXT)""")
        x("""CREATE TABLE journal (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, kind TEXT NOT NULL,
             user TEXT, drug TEXT, drawer TEXT, row INTEGER, col INTEGER, qty INTEGER,
             lot TEXT, expiry TEXT, patient TEXT, ref INTEGER, code TEXT, detail TEXT,
             prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""")
        x("""CREATE TABLE level_proposals (id INTEGER PRIMARY KEY, drawer TEXT NOT NULL,
             row INTEGER NOT NULL, col INTEGER NOT NULL, drug TEXT NOT NULL,
             min_level INTEGER NOT NULL, max_level INTEGER NOT NULL,
             current_min INTEGER, current_max INTEGER, details TEXT NOT NULL,
             status TEXT NOT NULL DEFAULT 'proposed', created_ts TEXT NOT NULL,
             decided_by TEXT, decided_ts TEXT)""")
        x("""CREATE TABLE bench (drug TEXT NOT NULL, lot TEXT NOT NULL, expiry TEXT,
             qty INTEGER NOT NULL CHECK (qty >= 0), PRIMARY KEY (drug, lot))""")
        x("""CREATE TABLE layout_proposals (id INTEGER PRIMARY KEY, created_ts TEXT NOT NULL,
             created_by TEXT NOT NULL, problem TEXT NOT NULL, solution TEXT NOT NULL,
             adjacent INTEGER NOT NULL, same_drawer INTEGER NOT NULL, lower_bound INTEGER,
             current_adjacent INTEGER, current_same_drawer INTEGER,
             status TEXT NOT NULL DEFAULT 'proposed', decided_by TEXT, decided_ts TEXT)""")
        x("""CREATE TABLE layout_tasks (id INTEGER PRIMARY KEY, proposal INTEGER NOT NULL
             REFERENCES layout_proposals(id), seq INTEGER NOT NULL, drug TEXT NOT NULL,
             src_drawer TEXT, src_row INTEGER, src_col INTEGER, dst_drawer TEXT,
             dst_row INTEGER, dst_col INTEGER, capacity INTEGER NOT NULL,
             state TEXT NOT NULL DEFAULT 'pending', done_by TEXT, done_ts TEXT)""")
        self._create_badges()
        x("CREATE INDEX journal_ref ON journal(ref)")
        x("CREATE INDEX journal_kind ON journal(kind)")
        x("""CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
             BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END""")
        x("""CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
             BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END""")
        x("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _upgrade_1_to_2(self) -> None:
        """Version 2 gives alarms the person they are about (``user``): a lockout alarm is
        one per locked person, and unlocking one closes hers only. Open lockout alarms of a
        version-1 database get theirs from the journal row that raised them."""
        x = self.conn.execute
        x("ALTER TABLE alarms ADD COLUMN user TEXT")
        x("""UPDATE alarms SET user = (SELECT j.user FROM journal j
             WHERE j.kind = 'alarm_raised' AND j.code = 'auth_lockout'
             AND json_extract(j.detail, '$.alarm') = alarms.id)
             WHERE kind = 'auth_lockout'""")
        x("UPDATE meta SET value = '2' WHERE key = 'schema_version'")

    def _upgrade_2_to_3(self) -> None:
        """Version 3 marks PINs someone else chose (``users.must_change_pin``): a new
        person's first PIN and a reset one must be changed before anything else. People of
        a version-2 database keep the PINs they have. It also gives drugs an optional
        largest quantity per withdrawal (``drugs.max_per_withdrawal``, none until a
        pharmacist sets one)."""
        x = self.conn.execute
        x("ALTER TABLE users ADD COLUMN must_change_pin INTEGER NOT NULL DEFAULT 0")
        x("ALTER TABLE drugs ADD COLUMN max_per_withdrawal INTEGER")
        x("UPDATE meta SET value = '3' WHERE key = 'schema_version'")

    def _create_badges(self) -> None:
        """One badge per person (the primary key), one person per badge (``hash`` unique).
        Only the badge's keyed hash is kept (controller.badge), never its UID."""
        self.conn.execute("""CREATE TABLE IF NOT EXISTS badges (
             user TEXT PRIMARY KEY REFERENCES users(id), hash TEXT NOT NULL UNIQUE,
             enrolled_ts TEXT NOT NULL, enrolled_by TEXT)""")

    def _upgrade_3_to_4(self) -> None:
        """Version 4 adds staff badges (``badges``), none enrolled."""
        self._create_badges()
        self.conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")

    # -- transactions ---------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: everything inside is committed together, or nothing is."""
        if self._in_tx:
            yield self.conn
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise store_error(exc) from exc
        self._in_tx = True
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            # SQLite has already rolled back on its own after some errors (a full disk):
            # a second ROLLBACK would raise and hide the real cause.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise store_error(exc) from exc
            raise
        finally:
            self._in_tx = False

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- journal --------------------------------------------------------------------------
    def now_iso(self) -> str:
        return self.wallclock().astimezone(UTC).isoformat(timespec="milliseconds")

    def head(self) -> tuple[int, str]:
        row = self.conn.execute(
            "SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    def append(self, entry: JournalEntry, deltas: Sequence[StockDelta] = ()) -> int:
        """Journal one event and apply its stock changes atomically; returns the row's seq."""
        with self.transaction() as c:
            seq, prev = self.head()
            row: dict[str, Any] = {
                "seq": seq + 1, "ts": self.now_iso(), "kind": entry.kind, "user": entry.user,
                "drug": entry.drug, "drawer": entry.drawer, "row": entry.row,
                "col": entry.col, "qty": entry.qty, "lot": entry.lot, "expiry": entry.expiry,
                "patient": entry.patient, "ref": entry.ref, "code": entry.code,
                "detail": json.dumps(entry.detail, sort_keys=True, ensure_ascii=False)
                if entry.detail else None,
                "prev_hash": prev,
            }
            row["hash"] = row_hash(row)
            cols = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            c.execute(f"INSERT INTO journal ({cols}) VALUES ({marks})", tuple(row.values()))
            for d in deltas:
                self._apply(c, d)
            return int(row["seq"])

    def _apply(self, c: sqlite3.Connection, d: StockDelta) -> None:
        current = c.execute(
            "SELECT on_hand FROM stock WHERE drawer=? AND row=? AND col=? AND lot=?",
            (d.drawer, d.row, d.col, d.lot)).fetchone()
        on_hand = (0 if current is None else int(current[0])) + d.delta
        if on_hand < 0:
            raise RuleViolation(
                f"pocket {d.drawer}-{d.row + 1}-{d.col + 1} lot {d.lot}: not enough stock",
                f"poche {d.drawer}-{d.row + 1}-{d.col + 1} lot {d.lot} : stock insuffisant",
                code="NO_STOCK")
        if current is None:
            c.execute("INSERT INTO stock VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (d.drawer, d.row, d.col, d.lot, d.drug, d.expiry, on_hand))
        elif int(current[0]) == 0 and d.delta > 0:
            # An emptied lot row taking units again is the lot put in now: another drug's
            # lot of the same number (a re-layout, a reassigned pocket) or the same lot with
            # its own expiry. Keeping the old row's drug and expiry would give them those.
            c.execute("UPDATE stock SET on_hand=?, drug=?, expiry=? WHERE drawer=? AND row=? "
                      "AND col=? AND lot=?",
                      (on_hand, d.drug, d.expiry, d.drawer, d.row, d.col, d.lot))
        else:
            # Units added to a lot already there with another expiry (typed differently at
            # restock) keep the earlier one: an expiry is never pushed back by a merge.
            c.execute("UPDATE stock SET on_hand=?, expiry=CASE WHEN ? > 0 AND ? IS NOT NULL "
                      "AND (expiry IS NULL OR ? < expiry) THEN ? ELSE expiry END "
                      "WHERE drawer=? AND row=? AND col=? AND lot=?",
                      (on_hand, d.delta, d.expiry, d.expiry, d.expiry, d.drawer, d.row, d.col,
                       d.lot))

    def on_bench(self, drug: str) -> int:
        """Units of a drug on the technician's bench, between two pockets of a re-layout."""
        row = self.conn.execute("SELECT COALESCE(SUM(qty), 0) FROM bench WHERE drug=?",
                                (drug,)).fetchone()
        return int(row[0])

    def journal_rows(self, **where: Any) -> list[dict[str, Any]]:
        clauses = " AND ".join(f"{k} = ?" for k in where)
        sql = "SELECT * FROM journal" + (f" WHERE {clauses}" if where else "") + " ORDER BY seq"
        return [dict(r) for r in self.conn.execute(sql, tuple(where.values()))]

    def open_intents(self) -> list[dict[str, Any]]:
        """Intents committed before an actuation whose outcome was never recorded.

        Only an outcome closes an intent. Other rows may name the intent too (a drawer that
        jammed while closing on it, an alarm about it) without saying what the pocket holds.
        """
        marks = ", ".join("?" for _ in OUTCOME_KINDS)
        return [dict(r) for r in self.conn.execute(
            f"""SELECT * FROM journal i WHERE i.kind = 'intent' AND NOT EXISTS
                (SELECT 1 FROM journal o WHERE o.ref = i.seq AND o.kind IN ({marks}))
                ORDER BY seq""", tuple(sorted(OUTCOME_KINDS)))]

    # -- reads ----------------------------------------------------------------------------
    def pocket_stock(self, drawer: str, row: int, col: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            """SELECT * FROM stock WHERE drawer=? AND row=? AND col=? AND on_hand > 0
               ORDER BY (expiry IS NULL), expiry, lot""", (drawer, row, col))]

    def usable_by_pocket(self, today: str) -> dict[tuple[str, int, int], int]:
        """Units that may be given (lots not expired on ``today``, an ISO date) of every
        pocket holding some, in one query; a pocket with none is absent."""
        return {(r[0], r[1], r[2]): int(r[3]) for r in self.conn.execute(
            """SELECT drawer, row, col, SUM(on_hand) FROM stock
               WHERE on_hand > 0 AND (expiry IS NULL OR expiry >= ?)
               GROUP BY drawer, row, col""", (today,))}

    def on_hand(self, drawer: str, row: int, col: int) -> int:
        row_ = self.conn.execute(
            "SELECT COALESCE(SUM(on_hand), 0) FROM stock WHERE drawer=? AND row=? AND col=?",
            (drawer, row, col)).fetchone()
        return int(row_[0])

    def stock_by_pocket(self) -> list[dict[str, Any]]:
        """Units on hand in every assigned pocket, drawer by drawer (the reports' view)."""
        return self.query(
            """SELECT p.drug, p.drawer, p.row, p.col, COALESCE(SUM(s.on_hand), 0) AS on_hand
               FROM pockets p JOIN drawers d ON d.id = p.drawer
               LEFT JOIN stock s ON s.drawer = p.drawer AND s.row = p.row AND s.col = p.col
               WHERE p.drug IS NOT NULL GROUP BY p.drawer, p.row, p.col
               ORDER BY d.position, p.row, p.col""")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(sql, tuple(params))]
