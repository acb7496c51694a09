"""``armoire admin``: the first admin of a new cabinet, or a new PIN for an admin nobody
else can help, from the Pi's console with the controller stopped; and ``armoire badge``,
a person's badge enrolled or revoked from the same console.

There is no default account and no default PIN. A cabinet installed without a seed file
has nobody who may log in; this is how IT gives it its first admin, who then creates
everyone else from the pharmacy pages. The same command is the way back in when the only
admin is locked out or has forgotten her PIN. It takes the database's lock, so it is
refused while the controller runs (``DB_IN_USE``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from controller import badge
from controller.auth import PinHasher
from controller.config import Config, load
from controller.dblock import DatabaseLock
from controller.errors import InputError
from controller.people import console_admin, console_badge, console_revoke_all
from controller.runtime import badge_key_for, console_database, provision_or_check
from controller.store import Store

#: ``--db`` of the console's commands that provision or check the database as a start does.
DB_HELP = ("the database (default: the configuration's [database] path) / la base (par "
           "défaut : [database] path de la configuration)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "admin", help="create the first admin, or give an admin a new PIN (controller "
                      "stopped) / créer le premier admin, ou donner un nouveau code "
                      "PIN à un admin (contrôleur arrêté)",
        description="Create an admin account ID, or give the existing admin ID a new PIN and "
                    "unlock it. A one-time PIN is drawn and printed once; its owner must "
                    "choose her own at her first login. Refused while the controller runs. "
                    "/ Crée le compte admin ID, ou donne à l'admin ID un nouveau code PIN et "
                    "le débloque. Un code PIN à usage unique est tiré et affiché une fois ; "
                    "sa titulaire choisit le sien à sa première connexion. Refusé pendant "
                    "que le contrôleur tourne.")
    parser.add_argument("--config", type=Path, metavar="FILE", required=True,
                        help="cabinet configuration (TOML): drawers and [database] path / "
                             "configuration de l'armoire (TOML) : tiroirs et [database] path")
    parser.add_argument("--db", type=Path, metavar="FILE", help=DB_HELP)
    parser.add_argument("--id", required=True, metavar="ID",
                        help="the admin's user id / identifiant de l'admin")
    parser.add_argument("--name", default="", metavar="NAME",
                        help="the person's name (needed to create the account) / nom de la "
                             "personne (requis pour créer le compte)")
    parser.add_argument("--lang", choices=("fr", "en"), default="fr",
                        help="language of the account's screens (default fr) / langue des "
                             "écrans du compte (par défaut fr)")
    parser.set_defaults(func=run)

    badge = subparsers.add_parser(
        "badge", help="enrol or revoke a person's badge (controller stopped) / "
                      "enregistrer ou retirer le badge d'une personne (contrôleur arrêté)",
        description="Enrol (or replace) the badge of person ID, or revoke it. The badge's "
                    "UID is read from standard input (present the badge to a USB reader, "
                    "or pipe it in), never from the command line, which other users of "
                    "the Pi can read (ps). revoke-all drops every badge: the way out when "
                    "the badge key is lost. audit lists the badges whose number is stored "
                    "as text (a name, a note, a lot), never the number: those badges are "
                    "to be replaced; exit 1 if any. Refused while the controller runs. / "
                    "Enregistre (ou remplace) le badge de la personne ID, ou le retire. "
                    "L'identifiant du badge est lu sur l'entrée standard (présentez le badge "
                    "à un lecteur USB), jamais sur la ligne de commande, que les autres "
                    "utilisateurs du Pi peuvent lire (ps). revoke-all retire tous les "
                    "badges : l'issue quand la clé des badges est perdue. audit liste les "
                    "badges dont le numéro est enregistré comme texte (un nom, une note, un "
                    "lot), jamais le numéro : ces badges sont à remplacer ; code 1 s'il y "
                    "en a. Refusé pendant que le contrôleur tourne.")
    badge.add_argument("action", choices=("enrol", "revoke", "revoke-all", "audit"),
                       help="what to do (see above) / que faire (voir ci-dessus)")
    badge.add_argument("--config", type=Path, metavar="FILE", required=True,
                       help="cabinet configuration (TOML): drawers and [database] paths / "
                            "configuration de l'armoire (TOML) : tiroirs et chemins "
                            "[database]")
    badge.add_argument("--db", type=Path, metavar="FILE", help=DB_HELP)
    badge.add_argument("--id", metavar="ID",
                       help="the person's user id (enrol, revoke) / identifiant de la "
                            "personne (enrol, revoke)")
    badge.set_defaults(func=run_badge)


def refuse_badges(store: Store, path: str, config: Config, given: dict[str, str]) -> None:
    """The console's own badge gate, the pages' ``Web.refuse_badges``: at the Pi's
    keyboard the reader types into the command line as anywhere else, and an option's
    text (``--name``, ``--id``) is stored, journaled or echoed by these commands. An
    enrolled badge's UID among its words is ``BADGE_NOT_TEXT``, naming the option, never
    the UID, before anything is written. Nothing to check (and no key is read or made)
    while no badge is enrolled; with badges and the key lost, ``BADGE_KEY_MISSING``: the
    controller would not start either, and ``armoire badge revoke-all`` is the way out."""
    if not store.query("SELECT 1 FROM badges LIMIT 1"):
        return
    key = badge_key_for(store, path, config)
    found = badge.fields_holding_badges(store, key, given.items())
    if found:
        option = f"--{found[0]}"
        raise badge.typed_into(found[0], option, option)


def audit(store: Store, path: str, config: Config) -> int:
    """``armoire badge audit``: whose badge number is stored as text, and where (exit 1),
    from rows written before UIDs were found among other words; never the number."""
    found = (badge.stored_as_text(store, badge_key_for(store, path, config))
             if store.query("SELECT 1 FROM badges LIMIT 1") else [])
    for holder, table, where in found:
        print(f"badge of {holder}: {table} row {where} (replace this badge) / badge de "
              f"{holder} : table {table} ligne {where} (remplacez ce badge)")
    if not found:
        print("no badge number stored as text / aucun numéro de badge enregistré comme "
              "texte")
    return 1 if found else 0


def read_uid() -> str:
    """One line from standard input: typed unseen at a terminal (the reader types the UID
    then Enter), else read from the pipe; bounded, so noise cannot fill the memory."""
    if sys.stdin.isatty():
        return getpass.getpass("badge: present it to the reader / présentez le badge : ")
    return sys.stdin.readline(256)


def run_badge(args: argparse.Namespace) -> int:
    config = load(args.config, console=True)
    path = console_database(config, args.db)
    if (args.id is None) != (args.action in ("revoke-all", "audit")):
        raise InputError("--id is needed to enrol or revoke one badge, and not with "
                         "revoke-all or audit", "--id est requis pour enregistrer ou "
                         "retirer un badge, et pas avec revoke-all ni audit", code="USAGE")
    with DatabaseLock(path):  # refused (DB_IN_USE) before anyone presents a badge
        raw = read_uid() if args.action == "enrol" else None
        store = Store(path)
        try:
            provision_or_check(store, config)
            if args.action == "revoke-all":  # no key needed: the way out of a lost one
                count = console_revoke_all(store)
                print(f"{count} badge(s) revoked / {count} badge(s) retiré(s)")
                return 0
            if args.action == "audit":
                return audit(store, path, config)
            refuse_badges(store, path, config, {"id": args.id})
            # Only an enrolment needs the key (and makes it on a cabinet that has none).
            key = badge_key_for(store, path, config) if raw is not None else None
            replaced = console_badge(store, key, args.id, raw)
        finally:
            store.close()
    user = args.id.strip()
    if args.action == "revoke":
        print(f"badge of {user} revoked / badge de {user} retiré")
    elif replaced:
        print(f"badge of {user} replaced / badge de {user} remplacé")
    else:
        print(f"badge enrolled for {user} / badge enregistré pour {user}")
    return 0


def run(args: argparse.Namespace) -> int:
    # The hardware tables are not used here (the console may run on a machine without
    # them); the days are the cabinet's, as the controller counts them.
    config = load(args.config, console=True)
    path = console_database(config, args.db)
    with DatabaseLock(path):
        store = Store(path)
        try:
            provision_or_check(store, config)
            refuse_badges(store, path, config, {"id": args.id, "name": args.name})
            hasher = PinHasher(config.settings.argon2_time_cost,
                               config.settings.argon2_memory_kib)
            pin, created = console_admin(store, hasher, args.id, args.name, args.lang)
        finally:
            store.close()
    what = ("created" if created else "new PIN, unlocked",
            "créé" if created else "nouveau code PIN, débloqué")
    print(f"admin {args.id.strip()}: {what[0]} / {what[1]}")
    print(f"one-time PIN: {pin} (to be changed at the first login; shown only now) / "
          f"code PIN à usage unique : {pin} (à changer à la première connexion ; affiché "
          "cette seule fois)")
    return 0
