"""``armoire admin``: the first admin of a new cabinet, or a new PIN for an admin nobody
else can help, from the Pi's console with the controller stopped.

There is no default account and no default PIN. A cabinet installed without a seed file
has nobody who may log in; this is how IT gives it its first admin, who then creates
everyone else from the pharmacy pages. The same command is the way back in when the only
admin is locked out or has forgotten her PIN. It takes the database's lock, so it is
refused while the controller runs (``DB_IN_USE``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from controller.auth import PinHasher
from controller.config import load
from controller.dblock import DatabaseLock
from controller.people import console_admin
from controller.runtime import provision_or_check
from controller.store import Store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "admin", help="create the first admin, or give an admin a new PIN (controller "
                      "stopped)",
        description="Create an admin account ID, or give the existing admin ID a new PIN and "
                    "unlock it. A one-time PIN is drawn and printed once; its owner must "
                    "choose her own at her first login. Refused while the controller runs.")
    parser.add_argument("--config", type=Path, metavar="FILE", required=True,
                        help="cabinet configuration (TOML): drawers and [database] path")
    parser.add_argument("--db", type=Path, metavar="FILE",
                        help="the database (default: the configuration's [database] path)")
    parser.add_argument("--id", required=True, metavar="ID", help="the admin's user id")
    parser.add_argument("--name", default="", metavar="NAME",
                        help="the person's name (needed to create the account)")
    parser.add_argument("--lang", choices=("fr", "en"), default="fr")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # The hardware tables are not used here: the console may run on a machine without them.
    config = load(args.config, sim=True)
    path = str(args.db or config.database or "armoire.db")
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
