"""Putting a backup back in place of the live database (``armoire restore``).

After a damaged SD card or a database refused at start, IT restores the last nightly backup.
Done by hand at night, the steps go wrong in the ways that lose data: a live file overwritten
instead of kept, a ``-wal`` file left beside the restored one (SQLite would replay another
database's pages into it), the controller still running, a corrupt backup put back. This does
them in the one safe order:

1. the backup is checked before anything is touched (SQLite integrity, a schema version
   this Armoire opens, the journal's hash chain, the stock table against the journal, and
   the configuration's drawers when it is given);
2. the database lock is taken (``DB_IN_USE`` while the controller runs);
3. the live database and its ``-wal``/``-shm`` files are moved aside, never deleted (the
   main file linked under its new name, so that the live path is never empty);
4. the backup is copied next to the live path and renamed over it, synced to disk;
5. the restored journal gets a ``database_restored`` row, and a ``discrepancy`` alarm tells
   the pharmacist to count the cabinet: whatever happened after the backup is not in it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.alarms import Alarms, Where, text
from controller.backup import FILE_MODE, fsync_dir
from controller.badge import BACKUP_KEY_NAME, key_id, key_path, read_key, restore_key
from controller.cli_support import DB_OPTION
from controller.config import DrawerSpec
from controller.dblock import DatabaseLock
from controller.errors import ConfigError, InputError, StoreError
from controller.journal import projection_mismatches, verify
from controller.store import OPENABLE_SCHEMAS, JournalEntry, Store, db_uri

COMPANIONS = ("", "-wal", "-shm")


@dataclass(frozen=True)
class Restored:
    database: Path
    backup: Path
    #: Where the replaced live files went (empty when there was no live database).
    set_aside: list[Path]
    #: The backup's last journal row (sequence number and time): everything after is gone.
    last_seq: int
    last_ts: str
    #: Where the restored badges' key is (put back from the backup folder or ``with_key``,
    #: or the live key when it already was theirs; None: none found, or no key ever), the
    #: live key it replaced, if different (set aside, never deleted), and how many badges
    #: the restored database holds.
    badge_key: Path | None = None
    badge_key_aside: Path | None = None
    badges: int = 0


def check_backup(backup: Path, drawers: Sequence[DrawerSpec] | None = None
                 ) -> tuple[int, str]:
    """Refuse a backup that is not a sound Armoire database, or (given the configuration's
    ``drawers``) one of a cabinet built otherwise; return its last row."""
    if not backup.is_file():
        raise InputError(f"no backup at {backup}", f"aucune sauvegarde à {backup}",
                         code="BACKUP_NOT_FOUND")
    try:
        conn = sqlite3.connect(db_uri(backup, "ro"), uri=True)
    except sqlite3.Error as exc:
        raise InputError(f"{backup} cannot be opened: {exc}",
                         f"{backup} ne s'ouvre pas : {exc}", code="BAD_BACKUP") from exc
    try:
        try:
            state = conn.execute("PRAGMA integrity_check").fetchone()[0]
            schema = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                                  ).fetchone()
            verdict = verify(conn)
            mismatches = projection_mismatches(conn) if verdict.ok else []
            last = conn.execute("SELECT seq, ts FROM journal ORDER BY seq DESC LIMIT 1"
                                ).fetchone()
            built = [tuple(r) for r in conn.execute(
                "SELECT id, type, rows, cols FROM drawers ORDER BY position, id")]
        except sqlite3.Error as exc:
            raise InputError(f"{backup} is not an Armoire database ({exc})",
                             f"{backup} n'est pas une base Armoire ({exc})",
                             code="BAD_BACKUP") from exc
    finally:
        conn.close()
    if state != "ok":
        raise InputError(f"{backup} is damaged: {state}", f"{backup} est endommagée : {state}",
                         code="BAD_BACKUP")
    # Checked before anything is moved: a backup of a schema this version cannot open (made
    # by a newer Armoire, or its version lost) would pass every other check, replace the
    # working live database, and then keep the controller from starting (DB_SCHEMA).
    version = None if schema is None else str(schema[0])
    if version not in OPENABLE_SCHEMAS:
        raise InputError(f"{backup} has database schema {version}, which this version of "
                         f"Armoire cannot open ({', '.join(OPENABLE_SCHEMAS)})",
                         f"{backup} a le schéma de base {version}, que cette version "
                         "d'Armoire ne sait pas ouvrir", code="BAD_BACKUP")
    if not verdict.ok:
        raise InputError(f"{backup}: journal broken at row {verdict.bad_seq} "
                         f"({verdict.reason})",
                         f"{backup} : journal rompu à la ligne {verdict.bad_seq}",
                         code="BAD_BACKUP")
    if mismatches:
        raise InputError(f"{backup}: stock table disagrees with the journal "
                         f"({mismatches[0].describe()})",
                         f"{backup} : le stock ne correspond pas au journal", code="BAD_BACKUP")
    if last is None:
        raise InputError(f"{backup} has an empty journal", f"{backup} : journal vide",
                         code="BAD_BACKUP")
    problem = None if drawers is None else _other_drawers(built, drawers)
    if problem is not None:
        raise InputError(f"{backup}: {problem[0]}: another cabinet's backup, or one from "
                         "before the drawers were rebuilt",
                         f"{backup} : {problem[1]} : sauvegarde d'une autre armoire, ou "
                         "d'avant la modification des tiroirs", code="BAD_BACKUP")
    return int(last[0]), str(last[1])


def _other_drawers(built: Sequence[tuple[Any, ...]], drawers: Sequence[DrawerSpec]
                   ) -> tuple[str, str] | None:
    """Why the backup's drawers are not the configuration's (English, French), or None.

    The controller's own rule at start (``provision.apply_drawers``): each drawer of the
    database must be in the configuration with the same type and shape; the configuration
    may add drawers. A backup the controller would refuse (``GEOMETRY_CHANGED``) is refused
    here, before the live database is set aside for it."""
    configured = {d.id: (d.type, d.rows, d.cols) for d in drawers}
    for ident, kind, rows, cols in built:
        if ident not in configured:
            return (f"drawer {ident} is in the backup but not in the configuration",
                    f"le tiroir {ident} est dans la sauvegarde mais pas dans la configuration")
        if configured[ident] != (kind, rows, cols):
            want = configured[ident]
            return (f"drawer {ident} is {kind} {rows}x{cols} in the backup, "
                    f"{want[0]} {want[1]}x{want[2]} in the configuration",
                    f"le tiroir {ident} est {kind} {rows}x{cols} dans la sauvegarde, "
                    f"{want[0]} {want[1]}x{want[2]} dans la configuration")
    return None


def restore(backup: str | os.PathLike[str], database: str | os.PathLike[str], *,
            now: datetime | None = None,
            drawers: Sequence[DrawerSpec] | None = None,
            badge_key: str | None = None,
            with_key: str | os.PathLike[str] | None = None,
            given: tuple[str, str] = DB_OPTION) -> Restored:
    """Put ``backup`` in place of ``database`` (see the module's steps). ``drawers``, the
    configuration's, also refuses a backup of a cabinet built otherwise. The badge key
    beside the backup (``armoire-badge.key``) is put back too, at ``badge_key`` (the
    configured path) or beside the database: the restored badges are under that key.
    ``with_key`` is the key file to put back instead: the one an earlier restore set aside,
    when this restore undoes it (a database set aside has no backup folder beside it).
    It must be the key of the backup's badges, checked before anything moves. ``given``
    (English, French) names where ``database`` came from in a refusal."""
    source, live = Path(backup).resolve(), Path(database).absolute()
    if live.exists() and live.resolve() == source:
        raise InputError("the backup is the live database itself",
                         "la sauvegarde est la base en service elle-même", code="BAD_OUTPUT")
    if not live.parent.is_dir():
        raise InputError(f"{given[0]}: no directory {live.parent}",
                         f"{given[1]} : pas de dossier {live.parent}", code="BAD_OUTPUT")
    last_seq, last_ts = check_backup(source, drawers)
    chosen = None if with_key is None else _check_key(Path(with_key), source)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    with DatabaseLock(live):
        partial = live.with_name(f"{live.name}.restoring")
        partial.unlink(missing_ok=True)
        try:
            _copy(source, partial)
        except (OSError, sqlite3.Error) as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise StoreError(f"restore failed, nothing changed: {exc}",
                             f"échec de la restauration, rien n'a changé : {exc}",
                             code="RESTORE_FAILED") from exc
        _checkpoint(live)
        moved = _set_aside(live, stamp, partial)
        aside = [target for _, target in moved]
        try:
            os.replace(partial, live)
            fsync_dir(live.parent)
        except OSError as exc:
            raise _back_out(moved, partial, exc) from exc
        try:
            store = Store(live)  # brings an older schema up to date, like a start would
            try:
                badges = int(store.query("SELECT count(*) AS n FROM badges")[0]["n"])
                wanted = store.meta("badge_key_id")
                with store.transaction():  # the row and its alarm together, or neither
                    store.append(JournalEntry("database_restored", detail={
                        "backup": source.name, "backup_last_seq": last_seq,
                        "backup_last_ts": last_ts, "replaced": [p.name for p in aside]}))
                    Alarms(store).raise_(
                        "discrepancy", Where(),
                        text("restored", b=source.name, ts=last_ts))
            finally:
                store.close()
        except (OSError, sqlite3.Error, StoreError) as exc:
            kept = ", ".join(str(p) for p in aside) or "none"
            raise StoreError(
                f"the backup is in place but its restore could not be journaled ({exc}): "
                f"a pharmacist must count every pocket; replaced files kept: {kept}",
                f"la sauvegarde est en place mais sa restauration n'a pu être journalisée "
                f"({exc}) : un pharmacien doit compter chaque poche ; fichiers remplacés "
                f"conservés : {kept}", code="RESTORE_NOT_JOURNALED") from exc
        key_file = key_path(live, badge_key)
        try:
            installed, key_aside = restore_key(source.parent, wanted, key_file, stamp, chosen)
        except (OSError, ConfigError) as exc:
            copy = chosen or source.parent / BACKUP_KEY_NAME
            raise StoreError(
                f"the database is restored, but not the badge key ({exc}): copy "
                f"{copy} to {key_file} (mode 600) before starting",
                f"la base est restaurée, mais pas la clé des badges ({exc}) : copiez "
                f"{copy} vers {key_file} (mode 600) avant de démarrer",
                code="RESTORE_KEY_FAILED") from exc
    return Restored(live, source, aside, last_seq, last_ts, installed, key_aside, badges)


def _check_key(key_file: Path, backup: Path) -> Path:
    """Refuse, before anything moves, a ``--with-key`` file that is not a usable key or
    not the one the backup's badges were enrolled under: put in place, it would stop the
    next start (``BADGE_KEY_MISMATCH``) with the live key already set aside."""
    try:
        key = read_key(key_file)
    except FileNotFoundError:
        raise InputError(f"--with-key: no badge key at {key_file}",
                         f"--with-key : aucune clé des badges à {key_file}",
                         code="BADGE_KEY_MISSING") from None
    conn = sqlite3.connect(db_uri(backup, "ro"), uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'badge_key_id'").fetchone()
    except sqlite3.Error:
        row = None  # a backup from before badges: no key is theirs
    finally:
        conn.close()
    if row is None or str(row[0]) != key_id(key):
        raise InputError(f"--with-key: {key_file} is not the key of the badges of {backup}",
                         f"--with-key : {key_file} n'est pas la clé des badges de {backup}",
                         code="BADGE_KEY_MISMATCH")
    return key_file


def _copy(source: Path, partial: Path) -> None:
    """The backup, as one self-contained file beside the live one, synced to disk."""
    # Created with its final mode first: the database holds patient ids, and a restore run
    # by hand has a shell's umask (022), not the unit's (027).
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    src = sqlite3.connect(db_uri(source, "ro"), uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checkpoint(live: Path) -> None:
    """Fold the live database's WAL into its main file, so that what is set aside is one
    readable file. A database too damaged for that is set aside as it is, WAL included."""
    if not live.exists():
        return
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(live, timeout=5)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()


def _set_aside(live: Path, stamp: str, partial: Path) -> list[tuple[Path, Path]]:
    """Rename the live files out of the way under a name never used before; on failure,
    rename back what was moved and refuse, so the live database is never left half moved."""
    base = f"{live.name}.replaced-{stamp}"
    n = 1
    while any(live.with_name(base + (f"-{n}" if n > 1 else "") + suffix).exists()
              for suffix in COMPANIONS):
        n += 1
    name = base + (f"-{n}" if n > 1 else "")
    moved: list[tuple[Path, Path]] = []
    try:
        for suffix in ("-wal", "-shm", ""):  # companions first: the main file goes last
            current = live.with_name(live.name + suffix)
            if current.exists():
                target = live.with_name(name + suffix)
                if suffix == "" and _link(current, target):
                    moved.append((current, target))
                    continue
                os.replace(current, target)
                moved.append((current, target))
    except OSError as exc:
        raise _back_out(moved, partial, exc) from exc
    return moved


def _link(current: Path, target: Path) -> bool:
    """Give the live main file its set-aside name as a second link, leaving it in place:
    the backup's rename over the live path then swaps the two in one step, and a power cut
    or a kill at any moment leaves a database there. Renamed away first, the live path
    would stand empty until the backup arrived, and a start in between would create a new,
    empty database and serve from it. False where the file system has no hard links (the
    main file is then renamed, as before)."""
    try:
        os.link(current, target)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            return False
        raise
    return True


def _back_out(moved: list[tuple[Path, Path]], partial: Path, exc: OSError) -> StoreError:
    """Rename back what was set aside, drop the copy, and say the live database is as it
    was."""
    for original, target in reversed(moved):
        with contextlib.suppress(OSError):
            if original.exists() and os.path.samefile(original, target):
                os.unlink(target)  # a second link of a file still in place
            else:
                os.replace(target, original)
    with contextlib.suppress(OSError):
        partial.unlink(missing_ok=True)
    return StoreError(f"restore failed, the live database is unchanged: {exc}",
                      f"échec de la restauration, la base en service est inchangée : {exc}",
                      code="RESTORE_FAILED")


__all__ = ["Restored", "check_backup", "restore"]
