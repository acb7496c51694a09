"""What the ``armoire`` sub-commands share: argument types and writing an output file.

Argument types refuse bad values in argparse itself, so a wrong option is a usage error
(exit status 2) before any work starts. Output files are written through a temporary file,
flushed to disk and renamed over the target: a refused input, a crash or a power cut never
leaves a half-written file where a tool expects a complete one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from controller import localtime
from controller.errors import InputError

#: (English, French) of a database path given as ``--db``.
DB_OPTION = ("--db", "--db")


def database_given(config: str | Path | None) -> tuple[str, str]:
    """How a refusal names where the database path came from (English, French): ``--db``,
    or, without it, the ``[database] path`` of ``--config FILE``. Naming ``--db`` when only
    ``--config`` was typed sent the technician looking for an option nobody gave."""
    if config is None:
        return DB_OPTION
    return (f"--config {config}: [database] path", f"--config {config} : [database] path")


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum`` (and at most ``maximum``).

    A maximum keeps absurd values (a port of 70000, a lead time of 10**20 periods) from
    reaching code that would fail on them with a traceback, or after having done work.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be ≥ {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text!r} must be ≤ {maximum}")
        return value

    return parse


def zone_arg(text: str) -> str:
    """``--timezone``: an IANA zone name, checked as the configuration checks it."""
    try:
        localtime.zone(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time zone name such as Europe/Paris") from None
    return text


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value:  # NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return value


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0 (a duration, a limit)."""
    value = _number(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def duration(maximum: float) -> Callable[[str], float]:
    """An argparse type: seconds, finite, above 0 and at most ``maximum``.

    ``inf`` (which float() accepts) would make a time-limited search never return.
    """

    def parse(text: str) -> float:
        value = positive_number(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{text!r} must be ≤ {maximum:g} seconds")
        return value

    return parse


#: Largest --seed: numpy's generators take any whole number ≥ 0, but a bounded one keeps a
#: seed printable, typable and the same on every platform.
MAX_SEED = 2**32 - 1


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKeyError(key)
        obj[key] = value
    return obj


def loads_json(text: str) -> Any:
    """``json.loads`` that refuses an object naming a key twice.

    The standard parser keeps the last value silently: ``{"threshold": 0.25, …,
    "threshold": 0.9}`` would be read as 0.9 while a reviewer reading the file saw 0.25.
    Raises :class:`json.JSONDecodeError` or :class:`DuplicateKeyError` (both ValueError).
    A document nested deeper than the parser recurses (``[[[[…]]]]``) is a decode error
    too, not a ``RecursionError`` traceback.
    """
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def fraction(text: str) -> float:
    """An argparse type: a share strictly between 0 and 1 (a fill-rate target)."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1, e.g. 0.995")
    return value


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: after resolving links, or as hard links."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet: it cannot be the other
        return False


def check_outputs(outputs: Sequence[tuple[str, str | Path]],
                  inputs: Sequence[tuple[str, str | Path]] = ()) -> None:
    """Refuse output paths before any work starts, so a refused run writes nothing.

    An output must be a file name (not an existing directory) in an existing directory, and
    must not be one of the command's inputs nor another of its outputs: writing the history
    over the database it was exported from, or both exports to one name, destroys data while
    the command reports success. ``outputs`` and ``inputs`` are (option, path) pairs; the
    option names the culprit in the message.
    """
    seen: list[tuple[str, Path]] = []
    for flag, raw in outputs:
        path = Path(raw)
        if path.is_dir():
            raise InputError(f"{flag} {path}: is a directory, give a file name",
                             f"{flag} {path} : est un dossier, donnez un nom de fichier",
                             code="BAD_OUTPUT", field=flag)
        folder = path.resolve().parent
        if not folder.is_dir():
            raise InputError(f"{flag} {path}: no such directory {folder}",
                             f"{flag} {path} : dossier inexistant {folder}",
                             code="BAD_OUTPUT", field=flag)
        for other_flag, other in [*inputs, *seen]:
            if str(other) != "-" and _same_file(path, Path(other)):
                raise InputError(
                    f"{flag} {path}: same file as {other_flag}, it would be overwritten",
                    f"{flag} {path} : même fichier que {other_flag}, il serait écrasé",
                    code="BAD_OUTPUT", field=flag)
        seen.append((flag, path))


def output_dir(path: Path, option: str) -> bool:
    """Make sure ``path`` is a directory outputs can go in, creating it if needed; True when
    this call created it (so a caller that fails later can remove what it made). A file in
    its place or a directory that cannot be made is bad input (``BAD_OUTPUT``)."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: is a file, give a directory",
                         f"{option} {path} : est un fichier, donnez un dossier",
                         code="BAD_OUTPUT")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot create the directory: {exc.strerror}",
                         f"{option} {path} : impossible de créer le dossier : {exc.strerror}",
                         code="BAD_OUTPUT") from None
    return created


def _cannot_write(target: Path, exc: OSError) -> InputError:
    reason = exc.strerror or str(exc)
    return InputError(f"cannot write {target}: {reason}",
                      f"impossible d'écrire {target} : {reason}", code="BAD_OUTPUT")


def _stage(target: Path, data: str | bytes) -> str:
    """Write ``data`` to a temporary file beside ``target``, flushed to disk; its name."""
    if target.is_dir():
        raise InputError(f"{target}: is a directory, give a file name",
                         f"{target} : est un dossier, donnez un nom de fichier",
                         code="BAD_OUTPUT")
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and a rename."""
    write_all_atomic([(path, data)])


def write_all_atomic(files: Sequence[tuple[str | Path, str | bytes]]) -> None:
    """Write several files so that none is replaced unless all could be written.

    Every file is first written completely to a temporary name beside its target; only then
    are they renamed over their targets. A full disk or a missing folder for the second file
    therefore leaves the first one untouched too.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            staged.append((_stage(Path(path), data), Path(path)))
        while staged:
            tmp, target = staged[0]
            try:
                os.replace(tmp, target)
            except IsADirectoryError as exc:
                raise _cannot_write(target, exc) from None
            staged.pop(0)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
