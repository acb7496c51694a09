"""Staff badges: what a USB badge reader types, and the keyed hash the cabinet keeps of it.

The reader is a keyboard wedge: it types the card's UID, then Enter, like the barcode
scanner. A badge only says who is at the cabinet (what she has); her PIN is still asked (what
she knows), and typing one's id by hand stays possible for a forgotten badge.

The raw UID is never stored, logged or journaled. A UID is short (4 to 10 bytes, often
sequential within a batch of cards), so a plain hash of it could be reversed by trying every
value: the database keeps ``HMAC-SHA256(key, uid)`` under a per-cabinet secret key that lives
outside the database, in a file of its own (mode 0600). A copy of the database alone (one
sent for analysis, an export of its history) then tells nothing about the badges. The backup
folder holds the key too (a restore must keep badges working), so it must be kept as safe as
the key itself (docs/deploy.md).

The key is made once, when the cabinet has no badge yet (at provisioning or at the first
start of a version with badges). Once badges are enrolled, a missing or unreadable key file
is a start-up error (``BADGE_KEY_MISSING`` / ``BADGE_KEY_UNREADABLE``), never a new key:
a new key would silently orphan every enrolled badge. ``armoire backup`` copies the key
beside the database backups and ``armoire restore`` puts it back (docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from controller.errors import ConfigError, InputError

if TYPE_CHECKING:
    from controller.store import Store

log = logging.getLogger(__name__)

#: The key file's name beside the database when the configuration names none
#: (``[database] badge_key``), and beside the backups.
KEY_SUFFIX = ".badge-key"
BACKUP_KEY_NAME = "armoire-badge.key"
KEY_BYTES = 32
KEY_MODE = 0o600
#: What a reader may send: card UIDs are 4 to 10 bytes, typed as hex (8 to 20 characters) or
#: as a decimal number; some readers add a prefix or a site code. Beyond this it is noise
#: (a held key, something pasted), refused rather than hashed.
UID_MIN, UID_MAX = 4, 32


def check_uid(raw: object) -> str:
    """The UID as it is hashed: surrounding spaces removed, letters upper-cased (one card
    read as ``04a1b2`` by one reader and ``04A1B2`` by another is the same card). Anything
    else than 4 to 32 ASCII letters, digits, ``-`` or ``:`` is ``BAD_BADGE``: control
    characters, a line break in the middle, text too long to be a card."""
    text = raw.strip() if isinstance(raw, str) else ""
    ok = (UID_MIN <= len(text) <= UID_MAX and text.isascii()
          and all(c.isalnum() or c in "-:" for c in text))
    if not ok:
        raise InputError("unreadable badge: present it again", "badge illisible : "
                         "présentez-le à nouveau", code="BAD_BADGE")
    return text.upper()


#: A word of free text, as far as badges go: a run of the characters a UID may hold.
#: Anything else (spaces, line breaks, punctuation, accented letters) separates words.
_RUN = re.compile(r"[A-Za-z0-9:-]+")
_JOINS = re.compile(r"[-:]")


def words_like_uids(value: object) -> set[str]:
    """Every word of ``value`` that could be a badge's UID, as :func:`check_uid` gives it:
    the reader types wherever the focus is, after whatever the field already held
    ("Dupont " then the badge), so the whole field is not enough. A word is a run of
    letters, digits, ``-`` and ``:`` (a UID may hold those), and each part of it between
    ``-`` or ``:`` too ("Dupont-04A1..."). A UID glued to other letters or digits is not
    a word of its own and is not found: looking inside words would hash every substring.
    The set is bounded by the text's length (about one word per five characters)."""
    if not isinstance(value, str):
        return set()
    found: set[str] = set()
    for run in _RUN.findall(value):
        parts = [run, *_JOINS.split(run)] if _JOINS.search(run) else [run]
        found.update(p.upper() for p in parts if UID_MIN <= len(p) <= UID_MAX)
    return found


def holder_reader(store: Store, key: bytes | None) -> Callable[[str], str | None] | None:
    """A reader of words (:func:`words_like_uids`) that says whose enrolled badge each is,
    or None while no badge is enrolled or the cabinet has no key (then nothing is hashed at
    all). The badges are read once and each distinct word hashed once, however many fields
    or rows the caller reads with it."""
    if key is None:
        return None
    holders = {str(r["hash"]): str(r["user"])
               for r in store.query("SELECT hash, user FROM badges")}
    if not holders:
        return None
    hashes: dict[str, str] = {}

    def holder_of(word: str) -> str | None:
        if word not in hashes:
            hashes[word] = badge_hash(key, word)
        return holders.get(hashes[word])
    return holder_of


def badges_in_fields(store: Store, key: bytes | None,
                     typed: Iterable[tuple[str, object]]) -> dict[str, set[str]]:
    """The fields, among ``typed`` (name, value), that hold the UID of a badge enrolled in
    ``store`` (anyone's, active or not) as a word (:func:`words_like_uids`), in the order
    sent, each with whose badges they hold: a person's own badge in a field tells her
    nothing she did not know, another's tells her that number is enrolled. The pages
    (through :meth:`Cabinet.badge_fields`) and the console tools share it, so that a field
    refused at one is refused at the other. One keyed hash per distinct word shaped like a
    UID, none while no badge is enrolled or the cabinet has no key."""
    if key is None:
        return {}
    words = [(name, word) for name, value in typed for word in words_like_uids(value)]
    holder_of = holder_reader(store, key) if words else None
    if holder_of is None:
        return {}
    found: dict[str, set[str]] = {}
    for name, word in words:
        holder = holder_of(word)
        if holder is not None:
            found.setdefault(name, set()).add(holder)
    return found


def fields_holding_badges(store: Store, key: bytes | None,
                          typed: Iterable[tuple[str, object]]) -> list[str]:
    """The names of the fields that hold an enrolled badge (:func:`badges_in_fields`)."""
    return list(badges_in_fields(store, key, typed))


def stored_as_text(store: Store, key: bytes) -> list[tuple[str, str, str]]:
    """Where the UID of an enrolled badge is stored as a word of some text, as (holder,
    table, row's key): in a row written before the pages and the console found a UID among
    other words ("Dupont 04A1..."). The journal is append-only and such a row stays; what
    can be done is to replace that badge, whose number is in the database (and its
    backups, exports) for good. Never the UID. Reads every text of every table once."""
    holder_of = holder_reader(store, key)
    if holder_of is None:
        return []
    found: list[tuple[str, str, str]] = []
    tables = [str(r["name"]) for r in store.query(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'badges' ORDER BY name")]
    for table in tables:
        keys = [str(c["name"]) for c in sorted(
            (c for c in store.query(f'PRAGMA table_info("{table}")') if c["pk"]),
            key=lambda c: int(c["pk"]))]
        for row in store.query(f'SELECT rowid AS "rowid", * FROM "{table}"'):
            where = "/".join(str(row[k]) for k in keys) if keys else str(row["rowid"])
            for value in row.values():
                for word in words_like_uids(value):
                    holder = holder_of(word)
                    if holder is not None and (holder, table, where) not in found:
                        found.append((holder, table, where))
    return found


def typed_into(field: str, name_en: str, name_fr: str) -> InputError:
    """The refusal of an enrolled badge's UID read into text field ``field``: the reader
    types wherever the focus is, and a UID stored or journaled (as a lot, a note, a name)
    would stay in the append-only journal for good. The message names the field in words
    (``name_en`` / ``name_fr``), never the UID; ``secret_field`` tells the pages to drop
    that field's value when they show the form again. The patient field keeps the code it
    was released with (``BADGE_NOT_PATIENT``); every other field is ``BADGE_NOT_TEXT``."""
    if field == "patient":
        return InputError("this is a staff badge, not a patient id: type the patient's id",
                          "ceci est un badge du personnel, pas un identifiant patient : "
                          "saisissez l'identifiant du patient", code="BADGE_NOT_PATIENT",
                          secret_field=field)
    return InputError(f'"{name_en}": a staff badge was read into this field: type it again',
                      f"« {name_fr} » : un badge du personnel a été lu dans ce champ : "
                      "saisissez-le à nouveau", code="BADGE_NOT_TEXT", secret_field=field)


def badge_hash(key: bytes, uid: str) -> str:
    """The keyed hash stored for a badge (hex). ``uid`` is already :func:`check_uid`'s."""
    return hmac.new(key, uid.encode("ascii"), hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A short fingerprint of a key, kept in the database (``meta badge_key_id``): it tells
    which key file the enrolled badges need, without revealing the key."""
    return hmac.new(key, b"armoire badge key id", hashlib.sha256).hexdigest()[:16]


def key_path(db_path: str | os.PathLike[str], configured: str | None = None) -> Path:
    """Where the key lives: the configured file, else beside the database
    (``armoire.db`` -> ``armoire.db.badge-key``), on the same data partition."""
    if configured:
        return Path(configured)
    db = Path(db_path)
    return db.with_name(db.name + KEY_SUFFIX)


def _missing(path: Path, enrolled: int) -> ConfigError:
    return ConfigError(
        f"badge key {path} is missing while {enrolled} badge(s) are enrolled: restore it "
        f"from the backup folder ({BACKUP_KEY_NAME}); a new key would make every badge "
        "unknown",
        f"clé des badges {path} absente alors que {enrolled} badge(s) sont enregistrés : "
        f"restaurez-la depuis le dossier des sauvegardes ({BACKUP_KEY_NAME}) ; une nouvelle "
        "clé rendrait tous les badges inconnus", code="BADGE_KEY_MISSING")


def _unreadable(path: Path, why: str) -> ConfigError:
    return ConfigError(f"badge key {path} cannot be used: {why}",
                       f"clé des badges {path} inutilisable : {why}",
                       code="BADGE_KEY_UNREADABLE")


def read_key(path: Path) -> bytes:
    """The key in ``path`` (64 hex digits), refused when unreadable, malformed, or open to
    other users than the cabinet's (a key anyone on the Pi can read protects nothing)."""
    try:
        info = path.stat()
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, str(getattr(exc, "strerror", None) or exc)) from exc
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise _unreadable(path, f"mode {stat.S_IMODE(info.st_mode):o}, expected 600 "
                                f"(chmod 600 {path})")
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise _unreadable(path, f"expected {KEY_BYTES * 2} hexadecimal digits")
    return key


def write_key(path: Path, key: bytes) -> None:
    """Write ``key`` to a new file with mode 0600 from its creation (never readable by
    others, whatever the umask), flushed to disk with its folder: a power cut right after
    cannot leave badges enrolled under a key that was never on disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
    try:
        os.write(fd, (key.hex() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _install(key: bytes, target: Path) -> None:
    """``key`` at ``target`` in one step (a copy beside it, synced, renamed over): a power
    cut leaves the old file or the new one, never half a key. The copy's name is its own
    (random): two backups at once (the timer's and one by hand) never remove, nor rename
    into place, the other's copy while it is written."""
    partial = target.with_name(f"{target.name}.partial-{secrets.token_hex(8)}")
    try:
        write_key(partial, key)
        os.replace(partial, target)
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    _sync_dir(target.parent)


def backup_key(key_file: Path, dest: Path, stamp: str) -> Path | None:
    """Copy the cabinet's key beside its database backups (``armoire-badge.key``, 0600):
    the backups are useless for badges without it. It never changes once made, so one copy
    serves every backup; a different key already there (a reinstalled Pi that made its own
    before its backup was restored) is kept as ``armoire-badge.key.replaced-STAMP``, never
    overwritten: the older backups' badges are under it. None when the cabinet has no key."""
    try:
        key = read_key(key_file)
    except FileNotFoundError:
        return None
    target = dest / BACKUP_KEY_NAME
    if target.exists():
        with contextlib.suppress(ConfigError):
            if read_key(target) == key:
                return target
        os.replace(target, target.with_name(f"{target.name}.replaced-{stamp}"))
    _install(key, target)
    return target


def restore_key(backup_dir: Path, wanted: str | None, key_file: Path, stamp: str,
                chosen: Path | None = None) -> tuple[Path | None, Path | None]:
    """Put back, as the cabinet's, the key of the backup folder whose fingerprint is
    ``wanted`` (the restored database's ``badge_key_id``): a restore onto a new Pi keeps
    its badges. ``chosen`` is the one file to take it from instead (a key an earlier
    restore set aside, given to the restore that undoes it). Returns where it went (None:
    no such key, or the database never had one) and where a different live key was set
    aside (never deleted, under a name no earlier restore used).

    A live key that already is the wanted one is kept and returned as in place, whatever
    the folder holds: the undo of a restore that kept the key reads a database set aside
    beside the live one, where no ``armoire-badge.key`` lies, and was warned of a key to
    put back that was there all along."""
    if wanted is None:
        return None, None
    with contextlib.suppress(FileNotFoundError, ConfigError):
        if key_id(read_key(key_file)) == wanted:
            return key_file, None
    candidates = ([chosen] if chosen is not None
                  else sorted(backup_dir.glob(BACKUP_KEY_NAME + "*"), reverse=True))
    key = None
    for candidate in candidates:
        with contextlib.suppress(ConfigError, OSError):
            if key_id(read_key(candidate)) == wanted:
                key = read_key(candidate)
                break
    if key is None:
        return None, None
    aside = None
    if key_file.exists():
        aside = key_file.with_name(f"{key_file.name}.replaced-{stamp}")
        n = 2
        while aside.exists():  # a restore and its undo in one second: keep both keys
            aside = key_file.with_name(f"{key_file.name}.replaced-{stamp}-{n}")
            n += 1
        os.replace(key_file, aside)
    _install(key, key_file)
    return key_file, aside


def load_or_create_key(path: Path, enrolled: int) -> bytes:
    """The cabinet's key. Made (once) only while no badge is enrolled; with badges
    enrolled, a missing file is ``BADGE_KEY_MISSING``."""
    try:
        return read_key(path)
    except FileNotFoundError:
        pass
    if enrolled:
        raise _missing(path, enrolled)
    try:
        _create(path, secrets.token_bytes(KEY_BYTES))
    except OSError as exc:
        raise _unreadable(path, f"cannot create it ({exc.strerror})") from exc
    return read_key(path)


def _create(path: Path, key: bytes) -> None:
    """Make the key file whole or not at all: written and synced under a name of its own,
    then hard-linked to ``path``, which fails if ``path`` exists. The file at ``path`` is
    never empty nor half-written: neither a power cut (an empty key file would stop every
    later start) nor another tool reading it while this one writes (the controller and
    ``armoire badge enrol`` starting together) can find it so. If another tool made it
    first, its key is the cabinet's and this one is dropped."""
    fresh = path.with_name(f"{path.name}.new-{secrets.token_hex(8)}")
    write_key(fresh, key)
    try:
        os.link(fresh, path)
    except FileExistsError:  # made meanwhile by another tool: use that one
        return
    finally:
        with contextlib.suppress(OSError):
            fresh.unlink()
    _sync_dir(path.parent)
    log.info("badge key created at %s", path)


def _sync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
