"""One process at a time owns a cabinet's database.

Two controllers on one database (the systemd service, and an engineer's ``armoire run`` by
hand) would both drive the drawers and both write intents and outcomes: each would take the
other's drawer events for its own. A restore while the controller runs would pull the file
from under it. Every owner therefore takes an exclusive ``flock`` on ``<database>.lock`` for as
long as it owns the file; the second gets ``DB_IN_USE`` and changes nothing.

``flock`` rather than a PID file: the kernel drops the lock when the process dies, power cut
and ``kill -9`` included, so a crash never leaves a stale lock that keeps the ward out of its
cabinet. The holder's PID is written into the file only to name it in the refusal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
from pathlib import Path
from types import TracebackType

from controller.errors import InputError, StoreError


class DatabaseLock:
    def __init__(self, database: str | os.PathLike[str]) -> None:
        self.path = Path(f"{os.fspath(database)}.lock")
        self._fd: int | None = None

    def acquire(self) -> DatabaseLock:
        if self._fd is not None:
            return self
        refuse_root_in_foreign_directory(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror}",
                             f"impossible de créer le verrou {self.path} : {exc.strerror}",
                             code="DB_LOCK_FAILED") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (process {holder})" if holder else ""
            raise StoreError(
                f"the database is in use by another Armoire process{who}: stop it first "
                "(sudo systemctl stop armoire)",
                f"la base est utilisée par un autre processus Armoire{who} : arrêtez-le "
                "d'abord (sudo systemctl stop armoire)", code="DB_IN_USE") from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Unlock; the file stays (removing it would let a third process lock a new file
        while a second still waits on the old one)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DatabaseLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def refuse_root_in_foreign_directory(directory: Path) -> None:
    """Refuse root as the owner of a database in another user's directory.

    ``sudo armoire admin …`` with the ``-u armoire`` forgotten (or a restore, or ``armoire
    run`` by hand) would create the database, its lock and its ``-wal``/``-shm`` files
    there as root, mode 0640: the service, which runs as ``armoire``, then cannot open them
    and fails in a restart loop until someone finds and chowns them. The directory's owner
    is the user the files must belong to, so the refusal names the command to run instead.
    """
    if os.geteuid() != 0:
        return
    try:
        owner = directory.stat().st_uid
    except OSError:
        return  # no directory yet: nothing of anyone else's to spoil
    if owner == 0:
        return
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    raise InputError(
        f"run this as {name}, the owner of {directory}, not as root (sudo -u {name} …): "
        "the database files root would create there would keep the service out of them",
        f"lancez cette commande en tant que {name}, propriétaire de {directory}, pas en "
        f"root (sudo -u {name} …) : les fichiers de base que root y créerait en "
        "interdiraient l'accès au service", code="WRONG_USER")


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


__all__ = ["DatabaseLock"]
