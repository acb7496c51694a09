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

from controller.auth import PinHasher
from controller.config import load
from controller.dblock import DatabaseLock
from controller.errors import InputError
from controller.people import console_admin, console_badge, console_revoke_all
from controller.runtime import badge_key_for, console_database, provision_or_check
from controller.store import Store


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
                        help="cabinet configuration (TOML): drawers and [database] path")
    parser.add_argument("--db", type=Path, metavar="FILE",
                        help="the database (default: the configuration's [database] path)")
    parser.add_argument("--id", required=True, metavar="ID", help="the admin's user id")
    parser.add_argument("--name", default="", metavar="NAME",
                        help="the person's name (needed to create the account)")
    parser.add_argument("--lang", choices=("fr", "en"), default="fr")
    parser.set_defaults(func=run)

    badge = subparsers.add_parser(
        "badge", help="enrol or revoke a person's badge (controller stopped) / "
                      "enregistrer ou retirer le badge d'une personne (contrôleur arrêté)",
        description="Enrol (or replace) the badge of person ID, or revoke it. The badge's "
                    "UID is read from standard input (present the badge to a USB reader, "
                    "or pipe it in), never from the command line, which other users of "
                    "the Pi can read (ps). revoke-all drops every badge: the way out when "
                    "the badge key is lost. Refused while the controller runs. / Enregistre "
                    "(ou remplace) le badge de la personne ID, ou le retire. L'identifiant "
                    "du badge est lu sur l'entrée standard (présentez le badge à un lecteur "
                    "USB), jamais sur la ligne de commande, que les autres utilisateurs du "
                    "Pi peuvent lire (ps). revoke-all retire tous les badges : l'issue quand "
                    "la clé des badges est perdue. Refusé pendant que le contrôleur tourne.")
    badge.add_argument("action", choices=("enrol", "revoke", "revoke-all"))
    badge.add_argument("--config", type=Path, metavar="FILE", required=True,
                       help="cabinet configuration (TOML): drawers and [database] paths")
    badge.add_argument("--db", type=Path, metavar="FILE",
                       help="the database (default: the configuration's [database] path)")
    badge.add_argument("--id", metavar="ID", help="the person's user id (enrol, revoke)")
    badge.set_defaults(func=run_badge)


def read_uid() -> str:
    """One line from standard input: typed unseen at a terminal (the reader types the UID
    then Enter), else read from the pipe; bounded, so noise cannot fill the memory."""
    if sys.stdin.isatty():
        return getpass.getpass("badge: present it to the reader / présentez le badge : ")
    return sys.stdin.readline(256)


def run_badge(args: argparse.Namespace) -> int:
    config = load(args.config, sim=True)
    path = console_database(config, args.db)
    if (args.id is None) != (args.action == "revoke-all"):
        raise InputError("--id is needed to enrol or revoke one badge, and not with "
                         "revoke-all", "--id est requis pour enregistrer ou retirer un "
                         "badge, et pas avec revoke-all", code="USAGE")
    with DatabaseLock(path):  # refused (DB_IN_USE) before anyone presents a badge
        raw = read_uid() if args.action == "enrol" else None
        store = Store(path)
        try:
            provision_or_check(store, config)
            if args.action == "revoke-all":  # no key needed: the way out of a lost one
                count = console_revoke_all(store)
                print(f"{count} badge(s) revoked / {count} badge(s) retiré(s)")
                return 0
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
    # The hardware tables are not used here: the console may run on a machine without them.
    config = load(args.config, sim=True)
    path = console_database(config, args.db)
    with DatabaseLock(path):
        store = Store(path)
        try:
            provision_or_check(store, config)
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
