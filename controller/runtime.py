"""Bringing a cabinet up and down: the one process that owns the hardware and the database.

``start()`` opens the store (provisioning an empty one from the configuration's seed file),
builds the backend in the one place that chooses it (:func:`hal.backends.build_hardware`),
starts the cabinet, and only then tells systemd READY. With ``sim=True`` the backend runs on
the simulator, whose virtual clock is driven here at wall-clock speed so that a person at the
simulated touchscreen sees drawers take their real time to open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller import badge, localtime
from controller.auth import PinHasher
from controller.cabinet import Cabinet
from controller.config import Config
from controller.dblock import DatabaseLock
from controller.errors import ConfigError, InputError
from controller.provision import apply_drawers, apply_spec
from controller.store import Store, starting_on
from controller.systemd import ServiceNotifier, callable_check, database_check
from hal.backends import build_hardware
from hal.clock import Clock, RealClock

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    store: Store
    cabinet: Cabinet
    db_path: str
    simulator: Any = None
    notifier: ServiceNotifier = field(default_factory=ServiceNotifier)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    lock: DatabaseLock | None = None

    async def stop(self) -> None:
        self.notifier.stopping()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        try:
            await self.cabinet.shutdown()
            self.cabinet.hardware.close()
        finally:
            # Whatever the hardware did on the way down, the database is closed and freed.
            self.store.close()
            if self.lock is not None:
                self.lock.release()
            self.notifier.close()


def provision_or_check(store: Store, config: Config, *, pins_to_change: bool = True) -> None:
    """A new database gets the configuration's seed (users, formulary, layout, stock); one
    already set up is checked against the configuration's drawers (``apply_drawers``).
    The seed's people must change their PINs at their first login, except on a simulated
    cabinet (``pins_to_change=False``, see ``provision.apply_users``)."""
    if store.meta("provisioned") is not None:
        apply_drawers(store, config.drawers)
        return
    from controller.cli_support import loads_json

    spec: dict[str, Any] = {}
    if config.seed is not None:
        try:
            spec = loads_json(config.seed.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # unreadable, not UTF-8 or JSON, a key twice
            raise ConfigError(f"seed: cannot read {config.seed}: {exc}",
                              f"seed : lecture impossible de {config.seed} : {exc}") from exc
        if not isinstance(spec, dict):
            raise InputError("seed: expected a JSON object", "seed : objet JSON attendu")
    hasher = PinHasher(config.settings.argon2_time_cost, config.settings.argon2_memory_kib)
    # The seed and the mark that it was applied commit together: cut between the two (a
    # power cut at the first start), the next start would apply the seed again, booking
    # the opening stock twice, or be refused for ever once a pocket's capacity is passed.
    with store.transaction():
        apply_spec(store, spec, config.drawers, hasher, pins_to_change=pins_to_change,
                   zone=localtime.zone(config.settings.timezone))
        store.set_meta("provisioned", store.now_iso())


def badge_key_for(store: Store, db_path: str | Path, config: Config) -> bytes:
    """The cabinet's badge key (controller.badge): read from its file, or made now if no
    badge was ever enrolled (a new cabinet, or the first start of a version with badges).
    With badges enrolled and no usable file: ``BADGE_KEY_MISSING`` / ``_UNREADABLE``."""
    enrolled = int(store.query("SELECT count(*) AS n FROM badges")[0]["n"])
    path = badge.key_path(db_path, config.badge_key)
    key = badge.load_or_create_key(path, enrolled)
    known, ident = store.meta("badge_key_id"), badge.key_id(key)
    if known != ident:
        if known is not None and enrolled:
            raise ConfigError(
                f"badge key {path} is not the key the {enrolled} enrolled badge(s) were "
                "made with: put back the right one (the backup folder keeps it)",
                f"la clé des badges {path} n'est pas celle des {enrolled} badge(s) "
                "enregistrés : remettez la bonne (le dossier des sauvegardes la garde)",
                code="BADGE_KEY_MISMATCH")
        store.set_meta("badge_key_id", ident)
    return key


async def _drive_sim_clock(simulator: Any, period: float = 0.02) -> None:
    """Advance the simulator's virtual clock with wall time, on the controller's loop."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(period)
        now = time.monotonic()
        simulator.clock.advance(min(now - last, 1.0))
        last = now


def check_database_path(config: Config, *, sim: bool, db_path: str | Path | None) -> None:
    """Refuse, on a real cabinet, a database path taken from the configuration that is
    missing or relative. The service runs in ``/run/armoire``, a tmpfs: such a path puts
    the database there, and its journal and stock are lost at every reboot (and the backup
    and verification units, which refuse such a path, fail). ``--db`` given by hand, and
    the simulator, may be relative."""
    if sim or db_path:
        return
    if config.database is None or not Path(config.database).is_absolute():
        raise ConfigError(
            f"database.path: a cabinet needs the absolute path of its database on the data "
            f"partition (such as /var/lib/armoire/armoire.db), not {config.database!r}: "
            "a relative one is in the service's working directory, a tmpfs emptied at "
            "every reboot",
            f"database.path : une armoire a besoin du chemin absolu de sa base sur la "
            f"partition de données (par exemple /var/lib/armoire/armoire.db), pas "
            f"{config.database!r} : un chemin relatif est dans le dossier de travail du "
            "service, un tmpfs vidé à chaque redémarrage")


def console_database(config: Config, db_path: str | Path | None) -> str:
    """The database a console command (``armoire admin``, ``armoire badge``) works on:
    ``--db``, else the configuration's ``[database] path``. Never a default file name: it
    would be in whatever folder the technician stands in, a database the controller never
    opens, and the first admin made there could never log in."""
    if db_path:
        return str(db_path)
    if config.database is None:
        raise ConfigError(
            "database.path: the configuration names no database; give [database] path "
            "(such as /var/lib/armoire/armoire.db) or --db",
            "database.path : la configuration ne nomme aucune base ; indiquez [database] "
            "path (par exemple /var/lib/armoire/armoire.db) ou --db")
    return str(config.database)


async def start(config: Config, *, sim: bool, db_path: str | Path | None = None) -> Runtime:
    check_database_path(config, sim=sim, db_path=db_path)
    path = str(db_path or config.database or "armoire.db")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    lock = DatabaseLock(path).acquire()  # DB_IN_USE if another controller owns it
    try:
        with starting_on(path):
            store = Store(path)
    except BaseException:
        lock.release()
        raise
    try:
        with starting_on(path):  # a damaged file: DB_UNREADABLE, exit 2, not a traceback
            provision_or_check(store, config, pins_to_change=not sim)
            key = badge_key_for(store, path, config)
            simulator = None
            clock: Clock
            if sim:
                from sim.simulator import Simulator

                simulator = Simulator(config.hardware)
                clock = simulator.clock
            else:
                clock = RealClock()
            hardware = build_hardware(config.hardware, clock, simulator=simulator)
            cabinet = Cabinet(config, store, hardware, clock)
            cabinet.badge_key = key
            await cabinet.start()
    except BaseException:
        store.close()
        lock.release()
        raise
    runtime = Runtime(config, store, cabinet, path, simulator, lock=lock)
    if simulator is not None:
        runtime.tasks.append(asyncio.create_task(_drive_sim_clock(simulator)))
    notifier = runtime.notifier
    notifier.ready()
    runtime.tasks.append(asyncio.create_task(notifier.watchdog_loop([
        database_check(path),
        callable_check("hardware", hardware.link_ok),
    ])))
    log.info("cabinet %s up (%s backend%s)", config.name, config.hardware.backend,
             ", simulated" if sim else "")
    return runtime


async def serve_forever(runtime: Runtime) -> None:
    """Without a web UI: keep the cabinet running until interrupted."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
