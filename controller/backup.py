"""Nightly copies of the cabinet database, kept for N days.

Why the SQLite online backup API and not ``cp``: the controller keeps writing while the backup
runs (the cabinet is in use at night), and a file copy of a WAL database taken mid-write is a
mix of two states — or misses the ``-wal`` file altogether. The backup API copies pages from
one read transaction, i.e. one committed state, without blocking the controller's writers.

The copy is made in one step (``pages=-1``): in WAL mode that holds a single read snapshot
while writers go on. A page-by-page backup restarts every time another connection writes,
and could never finish on a busy cabinet.

A backup is written under a temporary name, checked (``PRAGMA integrity_check``), flushed to
disk and only then renamed to its final name, so that a power cut during the backup can never
leave a truncated file that looks like a good backup. Pruning only ever deletes files whose
name this module made, and always keeps the newest backup, even if it is older than
``keep_days`` (backups stopped, or the clock jumped): the last good copy is never thrown away.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller import badge
from controller.cli_support import output_dir
from controller.dblock import refuse_root_in_foreign_directory
from controller.errors import ConfigError, InputError, StoreError
from controller.store import db_uri

PREFIX = "armoire-"
SUFFIX = ".db"
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^armoire-(\d{8}T\d{6}Z)\.db$")
#: What an interrupted backup leaves: the copy being written and SQLite's files beside it.
_LEFTOVER = re.compile(r"^armoire-(\d{8}T\d{6}Z)\.db\.partial(-journal|-wal|-shm)?$")
#: A leftover this old is no backup in progress (one takes seconds to minutes).
LEFTOVER_AGE = timedelta(days=1)
#: Backups hold patient ids: owner and group only, whatever the umask of whoever runs the
#: backup (the unit's is 027, a shell's usually 022). A folder the backup creates likewise.
FILE_MODE = 0o640
DIR_MODE = 0o750


@dataclass(frozen=True)
class BackupResult:
    path: Path
    pruned: list[Path] = field(default_factory=list)
    #: The copy of the badge key beside the backups (None: the cabinet has none yet).
    badge_key: Path | None = None


def backup_name(when: datetime) -> str:
    """File name for a backup taken at ``when`` (UTC, sortable, no colons for FAT USB sticks)."""
    return f"{PREFIX}{when.astimezone(UTC).strftime(_STAMP_FORMAT)}{SUFFIX}"


def backup_time(path: Path) -> datetime | None:
    """When a backup was taken, from its name; None for files this module did not make.

    The name, not the mtime, is the reference: copying a backup directory around (to a USB
    stick, back again) rewrites mtimes but not names.
    """
    match = _NAME.match(path.name)
    if not match:
        return None
    return datetime.strptime(match.group(1), _STAMP_FORMAT).replace(tzinfo=UTC)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Longest retention: 100 years. Larger values are typos, and past about 700,000 days the
#: cut-off date falls before year 1 (OverflowError, after the backup was already written).
MAX_KEEP_DAYS = 36_500


def check_keep_days(keep_days: int) -> None:
    """Refuse a retention that is not a whole number of days from 1 to MAX_KEEP_DAYS."""
    if (isinstance(keep_days, bool) or not isinstance(keep_days, int)
            or not 1 <= keep_days <= MAX_KEEP_DAYS):
        raise InputError(f"keep_days must be a whole number from 1 to {MAX_KEEP_DAYS}, not "
                         f"{keep_days!r}", f"keep_days doit être un entier de 1 à "
                         f"{MAX_KEEP_DAYS}, pas {keep_days!r}")


def _check_database(path: Path) -> None:
    """Refuse a file SQLite cannot read as a database, without writing to it."""
    try:
        conn = sqlite3.connect(db_uri(path, "ro"), uri=True, timeout=30)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise InputError(f"--db: {path} is not a database ({exc})",
                         f"--db : {path} n'est pas une base de données ({exc})",
                         code="DB_UNREADABLE") from exc


def _refuse_root_on_service_files(db: Path, dest: Path) -> None:
    """Refuse root a backup of the service user's database, or into its folders.

    ``sudo armoire backup`` with the ``-u armoire`` forgotten made a backup owned by root,
    mode 0640, that the service cannot read back for a restore, or a whole backups folder
    owned by root, where every nightly backup then failed. Refusing (``WRONG_USER``, naming
    ``sudo -u``) rather than handing the files to the database's owner: it is what
    ``admin``, ``restore`` and ``run`` already do, it changes nothing, and a chown would have
    to follow every file SQLite makes beside the copy, and fails on a FAT USB stick anyway.
    The database's own ``-wal``/``-shm``, should root's connection create them, SQLite
    itself gives to the database's owner.
    """
    refuse_root_in_foreign_directory(db.absolute().parent)
    existing = dest.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # the folder the backup would create its folder in
    refuse_root_in_foreign_directory(existing)


def backup_database(db: str | os.PathLike[str], dest_dir: str | os.PathLike[str], *,
                    now: datetime | None = None) -> Path:
    """Copy the live database ``db`` into ``dest_dir``; return the new backup's path.

    Raises :class:`InputError` if ``db`` does not exist (it is never created) and
    :class:`StoreError` if the copy fails or does not pass the integrity check.
    """
    source_path = Path(db)
    dest = Path(dest_dir)
    _refuse_root_on_service_files(source_path, dest)
    if not source_path.is_file():
        raise InputError(f"database not found: {source_path}",
                         f"base de données introuvable : {source_path}")
    # Refused before the destination is created: a file that is not an SQLite database (a
    # typo in --db) is bad input, exit 2, and must leave no empty backup folder behind.
    _check_database(source_path)
    created = output_dir(dest, "--dest")
    if created:
        with contextlib.suppress(OSError):
            dest.chmod(DIR_MODE)
    when = now or datetime.now(UTC)
    final = dest / backup_name(when)
    partial = final.with_name(final.name + ".partial")
    partial.unlink(missing_ok=True)

    try:
        # Created empty with its final mode before SQLite writes a page into it (SQLite takes
        # an empty file for an empty database, and gives its journal the same mode).
        try:
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        except OSError as exc:
            raise sqlite3.OperationalError(f"cannot create {partial}: {exc.strerror}") from exc
        source = sqlite3.connect(db_uri(source_path, "rw"), uri=True,
                                 timeout=30)
        try:
            target = sqlite3.connect(partial)
            try:
                source.backup(target, pages=-1)
                # A backup is one self-contained file: no -wal/-shm companions to lose.
                target.execute("PRAGMA journal_mode=DELETE")
                verdict = target.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                target.close()
        finally:
            source.close()
        if verdict != "ok":
            raise StoreError(f"backup failed its integrity check: {verdict}",
                             f"la sauvegarde a échoué au contrôle d'intégrité : {verdict}",
                             code="BACKUP_FAILED")
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, final)
        fsync_dir(dest)
    except (sqlite3.Error, OSError) as exc:
        # OSError: the device failing under the flush or the rename (an I/O error, a USB
        # stick pulled) is the same failed backup, said in one coded line, not a traceback.
        raise StoreError(f"backup of {source_path} failed: {exc}",
                         f"échec de la sauvegarde de {source_path} : {exc}",
                         code="BACKUP_FAILED") from exc
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        if created and not final.exists():  # a failed first backup leaves no empty folder
            with contextlib.suppress(OSError):
                dest.rmdir()
    return final


def prune_backups(dest_dir: str | os.PathLike[str], keep_days: int, *,
                  now: datetime | None = None) -> list[Path]:
    """Delete this module's backups older than ``keep_days``, and what interrupted backups
    left; return what was deleted.

    The newest ``keep_days`` backups always stay, whatever their age: with one a night that
    changes nothing, but a clock set years ahead (a Pi whose RTC lost its battery, then a
    wrong manual fix) would otherwise make every real backup look old and delete them all
    but tonight's. Other files in the directory (a pharmacist's manual copy, notes) are
    never touched.
    """
    check_keep_days(keep_days)
    dest = Path(dest_dir)
    if not dest.is_dir():
        return []
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    dated: list[tuple[datetime, Path]] = []
    for entry in dest.iterdir():
        taken = backup_time(entry)
        if taken is not None and entry.is_file():
            dated.append((taken, entry))
    dated.sort()
    removed = []
    for taken, entry in dated[:-keep_days]:  # never the newest keep_days
        if taken < cutoff:
            entry.unlink()
            removed.append(entry)
    # A backup cut by a power loss leaves its partial copy, which holds patient ids as the
    # backups do: gone once it is clearly not being written (a day old, by its name).
    stale = (now or datetime.now(UTC)) - LEFTOVER_AGE
    for entry in sorted(dest.iterdir()):
        match = _LEFTOVER.match(entry.name)
        if match and entry.is_file() and datetime.strptime(
                match.group(1), _STAMP_FORMAT).replace(tzinfo=UTC) < stale:
            entry.unlink()
            removed.append(entry)
    return removed


def run_backup(db: str | os.PathLike[str], dest_dir: str | os.PathLike[str], keep_days: int,
               *, now: datetime | None = None,
               badge_key: str | None = None) -> BackupResult:
    """Back up, copy the badge key (``badge_key``: its configured path, else the file
    beside ``db``), then prune — in that order, so a failed backup never costs an old
    one. The key is needed to restore badges: without it every badge would be unknown."""
    check_keep_days(keep_days)
    path = backup_database(db, dest_dir, now=now)
    key_file = badge.key_path(db, badge_key)
    try:
        key_copy = badge.backup_key(key_file, Path(dest_dir), path.name.removeprefix(
            PREFIX).removesuffix(SUFFIX))
    except (OSError, ConfigError) as exc:
        raise StoreError(f"the database is backed up in {path}, but not the badge key "
                         f"{key_file}: {exc}", f"la base est sauvegardée dans {path}, mais "
                         f"pas la clé des badges {key_file} : {exc}",
                         code="BACKUP_KEY_FAILED") from exc
    return BackupResult(path=path, pruned=prune_backups(dest_dir, keep_days, now=now),
                        badge_key=key_copy)
