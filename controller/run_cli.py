"""``armoire run``: the controller with its touchscreen and pharmacy pages.

One process, one asyncio loop: :func:`controller.runtime.start` brings the cabinet up, then
uvicorn serves the pages from the same loop until SIGTERM (systemd) or SIGINT (Ctrl-C), after
which the cabinet is brought down cleanly (motors off, database closed). The server binds to
loopback unless told otherwise: the kiosk browser runs on the cabinet itself, and the pharmacy
reaches it through whatever the site puts in front (see docs/ui.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from controller import config as configuration
from controller.cli_support import whole_number
from controller.runtime import start

log = logging.getLogger("controller.run")

DEFAULT_CONFIG = "/etc/armoire/armoire.toml"
#: What install.sh wrote for the kiosk from the configuration (docs/deploy.md, "Kiosk").
KIOSK_ENV = Path("/etc/armoire/kiosk.env")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="run the cabinet and serve its screens / faire "
                                   "fonctionner l'armoire et servir ses écrans",
                              description="Start the controller and serve the touchscreen "
                                          "and pharmacy pages. / Démarre le contrôleur et "
                                          "sert l'écran tactile et les pages de la "
                                          "pharmacie.")
    p.add_argument("--sim", action="store_true",
                   help="run on the simulator instead of the configured hardware / "
                        "fonctionner sur le simulateur au lieu du matériel configuré")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: loopback) / adresse d'écoute (par défaut "
                        ": la boucle locale)")
    p.add_argument("--port", type=whole_number(1, 65535),
                   help="TCP port, 1 to 65535 (default: [server] port of the configuration, "
                        "else 8080) / port TCP, de 1 à 65535 (par défaut : [server] port de "
                        "la configuration, sinon 8080)")
    p.add_argument("--db", help="database file (default: the configuration's) / fichier de "
                                "la base (par défaut : celui de la configuration)")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help=f"configuration file (default {DEFAULT_CONFIG}) / fichier de "
                        f"configuration (par défaut {DEFAULT_CONFIG})")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)  # one line per state change
    config = configuration.load(args.config, sim=args.sim)
    return asyncio.run(_serve(config, args))


def check_kiosk(port: int) -> None:
    """Warn when the kiosk's URL, which install.sh wrote, is not on the port served.

    A ``[server] port`` changed without rerunning the installer leaves the touchscreen on a
    dead page; the controller itself runs fine, so it says so in its log (``journalctl -u
    armoire``) rather than refusing to start: the pharmacy may still reach it.
    """
    try:
        text = KIOSK_ENV.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return  # no kiosk on this machine (a laptop, --no-kiosk)
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "ARMOIRE_KIOSK_URL":
            url = value.strip().strip("'\"")
            if not configuration.kiosk_url_on(url, port):
                log.warning("the kiosk opens %s but the controller serves port %d: rerun "
                            "deploy/install.sh so that the touchscreen follows [server] port "
                            "/ relancez deploy/install.sh pour que l'écran suive [server] port",
                            url, port)


async def _serve(config: configuration.Config, args: argparse.Namespace) -> int:
    from controller.web.server import build_server

    # The configured port unless told otherwise: the kiosk's URL is written from the same
    # [server] port (install.sh), so the unit passes none and the two cannot drift apart.
    port = args.port if args.port is not None else config.port
    check_kiosk(port)
    runtime = await start(config, sim=args.sim, db_path=args.db)
    server = build_server(runtime, args.host, port)

    def on_signal(sig: int, frame: FrameType | None) -> None:
        # uvicorn handles the signal while it serves and re-sends it when it returns; this
        # handler receives that copy, so the default action (die at once) never runs before
        # the cabinet is shut down below.
        server.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        log.info("serving %s on http://%s:%d/", config.name, args.host, port)
        await server.serve()
    finally:
        await runtime.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("cabinet stopped")
    return 0
