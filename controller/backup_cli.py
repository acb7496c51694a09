"""``armoire backup``: one backup of the database, then pruning of the old ones; and
``armoire restore``: a backup put back in place of the live database.

Run nightly by ``armoire-backup.timer``. The values can come from the cabinet's configuration
file (``--config``: ``[database] path``, ``[backup] dir`` and ``keep_days``) so that the unit
and the configuration cannot disagree; explicit ``--db``/``--dest``/``--keep-days`` win, which
is what an engineer wants when making a one-off copy onto a USB stick.
"""

from __future__ import annotations

import argparse
import shlex
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

from controller.backup import MAX_KEEP_DAYS, run_backup
from controller.badge import BACKUP_KEY_NAME
from controller.cli_support import database_given, whole_number
from controller.errors import ArmoireError, ConfigError, InputError, StoreError

#: ``--db`` of backup and restore, which copy from or over the database the cabinet runs on.
LIVE_DB = "the live database / la base en service"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backup", help="back up the database (SQLite online backup) and prune old backups "
                     "/ sauvegarder la base et supprimer les sauvegardes anciennes",
        description="Copy the live database into DIR as armoire-<UTC time>.db, consistent "
                    "even while the controller writes, then delete backups older than N days "
                    "(the newest N backups are always kept, whatever their age). / Copie la "
                    "base vive dans DIR sous armoire-<heure UTC>.db, cohérente même pendant "
                    "que le contrôleur écrit, puis supprime les sauvegardes de plus de N jours "
                    "(les N plus récentes sont toujours gardées, quel que soit leur âge).")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="cabinet configuration (TOML) supplying the defaults below / "
                             "configuration de l'armoire (TOML) donnant les valeurs par "
                             "défaut ci-dessous")
    parser.add_argument("--db", type=Path, metavar="FILE", help=LIVE_DB)
    parser.add_argument("--dest", type=Path, metavar="DIR",
                        help="directory of the backups / dossier des sauvegardes")
    parser.add_argument("--keep-days", type=whole_number(1, MAX_KEEP_DAYS), metavar="N",
                        help=f"days of backups to keep, 1 to {MAX_KEEP_DAYS} / jours de "
                             f"sauvegardes à garder, de 1 à {MAX_KEEP_DAYS}")
    parser.set_defaults(func=run)
    restore_parser = subparsers.add_parser(
        "restore", help="put a backup back as the live database (controller stopped) / "
                      "remettre une sauvegarde en place de la base (contrôleur arrêté)",
        description="Check BACKUP (integrity, journal hash chain, stock against the journal), "
                    "move the live database and its -wal/-shm files aside (never deleted), "
                    "copy BACKUP in their place, and journal the restore with an alarm asking "
                    "for a count of the cabinet. The badge key beside BACKUP (or --with-key) "
                    "is put back too, a different live key set aside. Refused while the "
                    "controller runs. / "
                    "Contrôle BACKUP (intégrité, chaîne du journal, stock selon le journal), "
                    "met la base vive et ses fichiers -wal/-shm de côté (jamais supprimés), "
                    "copie BACKUP à leur place et journalise la restauration avec une alarme "
                    "qui demande de compter l'armoire. La clé des badges à côté de BACKUP (ou "
                    "--with-key) est remise aussi, une autre clé en service mise de côté. "
                    "Refusé pendant que le contrôleur tourne.")
    restore_parser.add_argument("backup", type=Path, metavar="BACKUP",
                                help="the backup to put back (or a database a restore set "
                                     "aside) / la sauvegarde à remettre (ou une base qu'une "
                                     "restauration a mise de côté)")
    restore_parser.add_argument("--config", type=Path, metavar="FILE",
                                help="cabinet configuration (TOML) giving [database] path / "
                                     "configuration de l'armoire (TOML) donnant [database] "
                                     "path")
    restore_parser.add_argument("--db", type=Path, metavar="FILE", help=LIVE_DB)
    restore_parser.add_argument("--with-key", type=Path, metavar="KEY",
                                help="the badge key to put back with BACKUP instead of the "
                                     "backup folder's (the one a restore set aside, to undo "
                                     "it) / la clé des badges à remettre avec BACKUP au lieu "
                                     "de celle du dossier des sauvegardes (celle qu'une "
                                     "restauration a mise de côté, pour l'annuler)")
    restore_parser.set_defaults(func=run_restore)
    present = subparsers.add_parser(
        "has-database", help="exit 0 if the configured database exists, 1 if not yet "
                             "(for the units' ExecCondition=) / code 0 si la base "
                             "configurée existe, 1 sinon (pour les unités systemd)",
        description="Exit 0 when the database that [database] path of FILE names exists, 1 "
                    "when it does not yet (first boot: the verification and backup units "
                    "are skipped), 255 when the configuration cannot say or the database "
                    "cannot be looked at (the unit fails). / Code 0 quand la base que nomme "
                    "[database] path de FILE existe, 1 quand elle n'existe pas encore "
                    "(premier démarrage : les unités de vérification et de sauvegarde sont "
                    "sautées), 255 quand la configuration ne peut le dire ou que la base ne "
                    "peut être examinée (l'unité échoue).")
    present.add_argument("--config", type=Path, metavar="FILE", required=True,
                         help="cabinet configuration (TOML); only [database] is read / "
                              "configuration de l'armoire (TOML) ; seul [database] est lu")
    present.set_defaults(func=run_has_database)


def run_restore(args: argparse.Namespace) -> int:
    from controller.config import load
    from controller.restore import restore

    # The configuration as the controller reads it at start (the hardware tables aside):
    # its drawers are what the backup must have been taken of, checked before anything
    # moves, since the controller would refuse a database of other drawers afterwards.
    config = load(args.config, console=True) if args.config else None
    db = args.db or (config.database if config is not None else None)
    if not isinstance(db, str | Path) or not str(db):
        raise InputError("missing --db (give it or a --config that has [database] path)",
                         "--db manquant (à donner, ou --config avec [database] path)")
    done = restore(args.backup, Path(str(db)),
                   drawers=config.drawers if config is not None else None,
                   badge_key=config.badge_key if config is not None else None,
                   with_key=args.with_key,
                   given=database_given(None if args.db else args.config))
    # Each line in both languages, the path last and whole (a script takes what follows
    # the first ": "), as ``armoire stock simulate`` prints its plot.
    print(f"restored / restaurée: {done.database}")
    print(f"from backup / depuis la sauvegarde: {done.backup}")
    if done.badge_key is not None:
        print(f"badge key / clé des badges: {done.badge_key}")
    elif done.badges:
        print(f"warning: {done.badges} badge(s) enrolled but no {BACKUP_KEY_NAME} beside the "
              "backup: put the cabinet's key back before starting (--with-key KEY) / "
              f"attention : {done.badges} badge(s) enregistré(s) mais pas de "
              f"{BACKUP_KEY_NAME} à côté de la sauvegarde : remettez la clé des badges en "
              "place avant de démarrer (--with-key CLÉ)")
    print(f"backup's last journal row: #{done.last_seq} at {done.last_ts}; anything after it "
          "is not in the restored database / rien de ce qui a suivi n'y figure")
    for path in done.set_aside:
        print(f"set aside / mis de côté: {path}")
    if done.badge_key_aside is not None:
        print(f"set aside / mis de côté: {done.badge_key_aside}")
    # A restore of the wrong backup is taken back by restoring the database it set aside
    # (its -wal/-shm beside it are read with it) with the badge key it set aside, if any:
    # that database's badges are under that key, and no backup folder lies beside it.
    for path in done.set_aside:
        if not path.name.endswith(("-wal", "-shm")):
            where = (f"--config {shlex.quote(str(args.config))}" if args.db is None
                     else f"--db {shlex.quote(str(args.db))}")
            if done.badge_key_aside is None:
                key, what = "", "la base mise de côté"
            else:
                key = f" --with-key {shlex.quote(str(done.badge_key_aside))}"
                what = "la base et la clé des badges mises de côté"
            print(f"to undo: armoire restore {shlex.quote(str(path))}{key} {where} / pour "
                  f"annuler : la même commande remet {what}")
    print("next: start the controller, then a pharmacist counts every pocket (open alarm) / "
          "ensuite : démarrer, puis un pharmacien compte chaque poche (alarme ouverte)")
    return 0


def _load_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        from controller.config import unreadable_config

        raise unreadable_config(path, exc) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration {path} is not valid TOML: {exc}",
                          f"configuration {path} : TOML invalide : {exc}") from exc


def configured_database(config_path: Path) -> Path:
    """The database ``[database] path`` of the configuration names, read on its own.

    The verification and backup units find the database here rather than at a path written
    into them: a cabinet configured elsewhere was otherwise never verified nor backed up,
    without a word. Only ``[database]`` is read (a mistake elsewhere is the controller's to
    refuse); a missing or relative path is refused, as the controller refuses it.
    """
    from controller.config import parse_database

    database = parse_database(_load_config(config_path))
    if database is None or not Path(database).is_absolute():
        raise ConfigError(
            f"database.path: {config_path} must give the absolute path of the database "
            f"(such as /var/lib/armoire/armoire.db), not {database!r}",
            f"database.path : {config_path} doit donner le chemin absolu de la base (par "
            f"exemple /var/lib/armoire/armoire.db), pas {database!r}")
    return Path(database)


#: ExecCondition= skips a unit on exit 1-254 and fails it on 255: a configuration that
#: cannot name the database must fail the unit where it is seen, not skip it in silence.
CONDITION_FAILED = 255


def run_has_database(args: argparse.Namespace) -> int:
    from controller.cli import error_line

    try:
        database = configured_database(args.config)
        exists = _database_exists(database)
    except ArmoireError as exc:
        print(error_line(exc.code, exc.message_en, exc.message_fr), file=sys.stderr)
        return CONDITION_FAILED
    except Exception as exc:  # a traceback exits 1, which ExecCondition= reads as "skip"
        print(error_line("CONDITION_FAILED", f"has-database: {type(exc).__name__}: {exc}",
                         f"has-database : {type(exc).__name__} : {exc}"), file=sys.stderr)
        return CONDITION_FAILED
    if not exists:
        print(f"no database at {database} yet (the controller has never started): nothing "
              f"to do / pas encore de base à {database} : rien à faire")
        return 1
    return 0


def _database_exists(database: Path) -> bool:
    """Whether the database file is there. Only "no such file" is "not yet": any other
    failure to look (a path the system refuses, a folder the service cannot search, a
    folder where the file should be) is an error, because an uncaught one exits 1, which
    ExecCondition= reads as "skip" and would skip the verification and backups silently."""
    try:
        info = database.stat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError(f"database.path: cannot look at {database}: {exc.strerror or exc}",
                         f"database.path : impossible d'examiner {database} : "
                         f"{exc.strerror or exc}", code="DB_UNREADABLE") from exc
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"database.path: {database} is not a file",
                         f"database.path : {database} n'est pas un fichier")
    return True


def run(args: argparse.Namespace) -> int:
    from controller.config import BackupSettings, parse_backup, parse_badge_key, parse_database

    # Only [database] (path, badge_key) and [backup] are read, with the controller's own
    # checks (a refusal names the key, BAD_CONFIG): a mistake elsewhere in the file stops
    # the controller, but must not stop the backups of the database it already has.
    config = _load_config(args.config) if args.config else {}
    database = parse_database(config) if config else None
    key = parse_badge_key(config) if config else None
    backup = parse_backup(config) if config else BackupSettings()

    db = args.db or database
    dest = args.dest or backup.dir
    keep_days = args.keep_days if args.keep_days is not None else backup.keep_days
    missing = [flag for flag, value in
               (("--db", db), ("--dest", dest), ("--keep-days", keep_days)) if value is None]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (give it or a --config that has it)",
                         f"{', '.join(missing)} manquant (à donner, ou --config qui le contient)")
    if (not isinstance(keep_days, int) or isinstance(keep_days, bool)
            or not 1 <= keep_days <= MAX_KEEP_DAYS):
        raise InputError(f"--keep-days must be a whole number from 1 to {MAX_KEEP_DAYS}, "
                         f"not {keep_days!r}", f"--keep-days doit être un entier de 1 à "
                         f"{MAX_KEEP_DAYS}, pas {keep_days!r}")

    for flag, value in (("--db", db), ("--dest", dest)):
        if not isinstance(value, str | Path) or not str(value):
            raise InputError(f"{flag} must be a path, not {value!r}",
                             f"{flag} doit être un chemin, pas {value!r}")
    result = run_backup(Path(str(db)), Path(str(dest)), keep_days, badge_key=key)
    print(f"backup / sauvegarde: {result.path}")
    if result.badge_key is not None:
        print(f"badge key / clé des badges: {result.badge_key}")
    for old in result.pruned:
        print(f"pruned / supprimée: {old}")
    return 0
