"""A whole cabinet on the simulator: the real controller, the real backend, simulated physics.

The harness owns what outlives a power cut (the physics, the database file, the virtual clock)
and rebuilds what does not (the controller process: store connection, backend, cabinet) at
each boot. A simulated person acts only through the same doors as a real one: the cabinet's
API (the touchscreen) and the physical world (taking from a pocket, pressing Close).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from controller import localtime
from controller.auth import PinHasher
from controller.cabinet import Cabinet, Operation
from controller.config import Config
from controller.errors import ArmoireError, HardwareError
from controller.provision import apply_drawers, apply_spec
from controller.store import Store, starting_on
from hal.backends import build_hardware
from sim.simulator import Simulator

#: Virtual seconds the harness lets pass, at most, waiting for the cabinet to get somewhere.
SETTLE_LIMIT_S = 120.0


async def at_once(work: Callable[..., Any], *args: Any) -> Any:
    """A PIN hash run on the loop, not in a thread: while the loop waits for a thread,
    :meth:`SimCabinet.settle` advances the virtual clock, so the journal's times (and its
    head) would depend on how fast this machine hashes. A scenario run twice must give the
    same journal."""
    return work(*args)


class SimCabinet:
    def __init__(self, config: Config, db_path: str | Path, *, start: datetime | None = None,
                 travel_s: float = 2.0) -> None:
        self.config = config
        self.zone = localtime.zone(config.settings.timezone)
        self.db_path = str(db_path)
        self.simulator = Simulator(config.hardware, travel_s=travel_s)
        self.start = start or datetime.now(UTC).replace(hour=8, minute=0, second=0,
                                                       microsecond=0)
        #: Units physically in each pocket: what a person sees, whatever the database says.
        self.physical: dict[tuple[str, int, int], int] = {}
        self.cabinet: Cabinet | None = None
        self.store: Store | None = None
        self.boots = 0

    # -- time -----------------------------------------------------------------------------
    def wallclock(self) -> datetime:
        return self.start + timedelta(seconds=self.simulator.clock.now)

    def today(self) -> date:
        """The ward's day, as the cabinet reckons it (its zone, from the configuration)."""
        return self.wallclock().astimezone(self.zone).date()

    async def _yield(self) -> None:
        """Let the boards' bytes through (serial), then the loop run what they posted."""
        self.simulator.settle()
        for _ in range(3):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Let virtual time pass, giving the controller's loop its turn at every tick."""
        clock = self.simulator.clock
        end = clock.now + seconds
        while clock.now < end - 1e-9:
            clock.advance(min(clock.tick, end - clock.now))
            await self._yield()

    async def settle(self, done: Callable[[], bool], limit: float = SETTLE_LIMIT_S) -> bool:
        clock = self.simulator.clock
        end = clock.now + limit
        await self._yield()
        while not done():
            if clock.now >= end:
                return False
            clock.advance(clock.tick)
            await self._yield()
        return True

    async def run(self, coro: Any, until: Callable[[], bool] | None = None) -> Any:
        """Run a cabinet coroutine while time passes, until it returns (or ``until`` holds)."""
        task = asyncio.ensure_future(coro)
        await self.settle(lambda: task.done() or (until is not None and until()))
        if not task.done():
            if until is not None and until():
                return task
            task.cancel()
            raise HardwareError("the cabinet did not respond in time",
                                "l'armoire n'a pas répondu à temps", code="SIM_TIMEOUT")
        return task.result()

    # -- life cycle -----------------------------------------------------------------------
    async def boot(self, spec: dict[str, Any] | None = None, *,
                   wait_integrity: bool = True) -> Cabinet:
        with starting_on(self.db_path):  # a damaged file: DB_UNREADABLE, as `armoire run`
            return await self._boot(spec, wait_integrity)

    async def _boot(self, spec: dict[str, Any] | None, wait_integrity: bool) -> Cabinet:
        self.store = Store(self.db_path, wallclock=self.wallclock)
        if spec is not None and self.store.meta("provisioned") is None:
            hasher = PinHasher(self.config.settings.argon2_time_cost,
                               self.config.settings.argon2_memory_kib)
            apply_spec(self.store, spec, self.config.drawers, hasher, pins_to_change=False,
                       zone=self.zone)
            self.store.set_meta("provisioned", self.wallclock().isoformat())
        elif self.store.meta("provisioned") is not None:
            apply_drawers(self.store, self.config.drawers)   # GEOMETRY_CHANGED on a re-run
        if self.boots == 0:
            # A file that already holds stock (a scenario run again on its database): the
            # pockets physically hold what it says, or the first count finds them empty.
            for row in self.store.stock_by_pocket():
                self.physical.setdefault((row["drawer"], row["row"], row["col"]),
                                         int(row["on_hand"]))
        hardware = build_hardware(self.config.hardware, self.simulator.clock,
                                  simulator=self.simulator)
        self.cabinet = Cabinet(self.config, self.store, hardware, self.simulator.clock,
                               today=self.today, offload=at_once)
        await self.cabinet.start()
        # The real cabinet serves while its start-up integrity check runs; a scenario waits
        # for the verdict so that what it asserts next does not depend on thread timing.
        if wait_integrity and self.cabinet.integrity_checked is not None:
            await self.cabinet.integrity_checked
        await self.settle(lambda: False, limit=0.05)
        self.boots += 1
        return self.cabinet

    def power_loss(self) -> None:
        """The process dies: no clean shutdown, no outcome written, outputs unpowered."""
        self.simulator.power_loss()
        if self.store is not None:
            self.store.conn.close()  # what was not committed is gone, as in a real cut
        self.cabinet = None
        self.store = None

    async def shutdown(self) -> None:
        if self.cabinet is not None:
            await self.cabinet.shutdown()
            self.cabinet.hardware.close()
        if self.store is not None:
            self.store.close()
        self.simulator.close()
        self.cabinet = None
        self.store = None

    @property
    def cab(self) -> Cabinet:
        if self.cabinet is None:
            raise HardwareError("the cabinet is off (power loss); reboot it first",
                                "l'armoire est hors tension ; redémarrez-la", code="POWERED_OFF")
        return self.cabinet

    # -- a person at the cabinet ----------------------------------------------------------
    async def open_for(self, start: Any) -> Operation:
        """Start an operation and wait until the drawer is open for the person."""
        result: Operation = await self.run(start)
        return result

    async def act(self, op: Operation, take: int | None = None) -> int:
        """The person waits for the lid (a second at most), takes or puts units, physically;
        returns the count they now see."""
        key = (op.pocket.drawer, op.pocket.row, op.pocket.col)
        physics = self.simulator.physics
        reachable = await self.settle(lambda: physics.accessible(*key), limit=1.0)
        here = self.physical.get(key, 0)
        if reachable:
            sign = {"withdraw": -1, "waste": -1, "remove": -1, "restock": 1, "return": 1}
            n = op.qty if take is None else take
            here = max(0, here + sign.get(op.kind, 0) * n)
            self.physical[key] = here
        return here

    async def finish(self, op: Operation, count: int) -> None:
        """Confirm the count on screen, then press the drawer's Close button."""
        await self.run(self.cab.confirm_count(count))
        self.simulator.physics.press_close_button(op.pocket.drawer)
        await self.settle(lambda: op.done.is_set())

    async def operate(self, start: Any, take: int | None = None) -> Operation:
        op = await self.open_for(start)
        count = await self.act(op, take)
        await self.finish(op, count)
        return op


def error_dict(exc: ArmoireError) -> dict[str, Any]:
    return {"ok": False, "error": exc.message_en, "code": exc.code}
