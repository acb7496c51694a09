"""The simulated cabinet: a virtual clock, the physics, and the mock pins that join them.

For the ``serial`` backend the simulator also runs one emulated drawer board per drawer
(:mod:`sim.board_emulator`) behind a pseudo-terminal. Driving a serial simulation:

* ``build_hardware(config, sim.clock, simulator=sim)`` calls :meth:`Simulator.serial_ports`
  (boards start, the physics is attached to their pins) and opens the ptys.
* Advance time with ``sim.clock.advance(dt)`` in small steps (the runner's ``advance`` step,
  e.g. 0.05-0.1 s at a time), and call :meth:`Simulator.settle` after each step and before
  looking at what happened: it returns once every event the boards produced up to now has been
  delivered to the backend's listener. Commands (``drawer.open()``…) need no settle: they
  return once the board has acknowledged them, at the current virtual time.
* :meth:`Simulator.advance` does both (steps, then settle) and works for either backend.
* The listener must hand events over (``loop.call_soon_threadsafe``) and never block: it
  runs on the backend's reader thread, which also carries the answers the runner waits for.
* The backend's heartbeat is a timer on the same clock, so the boards' heartbeat watchdog
  (board time = virtual time) never trips while the clock is driven this way, however long
  an ``advance`` is, and does trip after a ``power_loss``.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import weakref
from typing import Any, Protocol

from gpiozero.pins.mock import MockFactory

from hal.config import DrawerHw, DrawerPins, HardwareConfig
from sim.board_emulator import BoardEmulator
from sim.clock import SimClock
from sim.physics import CabinetPhysics


class SerialClient(Protocol):
    """What the serial backend registers with the simulator (see :meth:`Simulator.settle`)."""

    def settle(self) -> None: ...

    def kill(self) -> None: ...

#: BCM GPIO numbers free on a Pi header (0 and 1 are kept for the HAT EEPROM).
PI_GPIOS = tuple(range(2, 28))


class Simulator:
    """Owns the simulated world; a backend built with it runs its real code on mock pins."""

    def __init__(self, config: HardwareConfig, *, travel_s: float = 2.0,
                 tick: float = 0.01) -> None:
        self.config = config
        self.clock = SimClock(tick=tick)
        self.physics = CabinetPhysics(config, travel_s=travel_s)
        #: Held by every physics tick and by every board step/command, so the emulated boards'
        #: threads never act in the middle of a tick.
        self.lock = threading.RLock()
        self.clock.add_ticker(self._tick_physics)
        self.factory: MockFactory | None = None
        self.boards: dict[str, BoardEmulator] = {}
        #: Firmware version the emulated boards claim (tests set it to check the Pi refuses).
        self.board_version: str | None = None
        self._clients: list[SerialClient] = []
        self._generation = 0
        self._dir: str | None = None
        self._cleanup: weakref.finalize | None = None

    def _tick_physics(self, now: float, dt: float) -> None:
        with self.lock:
            self.physics.tick(now, dt)

    def gpio_factory(self) -> MockFactory:
        """A fresh set of mock pins (one controller process), with the physics behind them."""
        self.factory = MockFactory()
        self.physics.attach(self.factory)
        return self.factory

    def power_on(self) -> None:
        """The backend is built: its input pins now read the physical state."""
        with self.lock:
            self.physics.sync()

    def power_loss(self) -> None:
        """The controller process dies with every output; the physical world stays as it is.

        With drawer boards, they lose power too: their outputs drop, their memory is gone,
        and their ttys vanish (the next :meth:`serial_ports` boots them again)."""
        for client in self._clients:
            client.kill()
        self._clients.clear()
        for board in self.boards.values():
            board.power_off()
        self.boards.clear()
        self.physics.power_off()
        self.clock.drop_timers()
        if self.factory is not None:
            self.factory.reset()
        self.factory = None

    # -- serial backend -----------------------------------------------------------------------
    def serial_ports(self) -> dict[str, str]:
        """Boot one emulated board per drawer (unless running) and return drawer id -> tty.

        Paths carry a generation number, so a port from before a power loss never comes back
        and a dead process's reader cannot steal a new board's bytes."""
        if not self.boards:
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="armoire-boards-")
                # the tty links go even if nobody calls close() (a runner that just exits)
                self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)
            self._generation += 1
            kwargs: dict[str, Any] = {}
            if self.board_version is not None:
                kwargs["version"] = self.board_version
            for hw in self.config.drawers:
                self.boards[hw.id] = BoardEmulator(hw, self.clock, self.physics, self.lock,
                                                   self._dir, self._generation, **kwargs)
            with self.lock:
                self.physics.sync()
        return {drawer: board.path for drawer, board in self.boards.items()}

    def board(self, drawer: str) -> BoardEmulator:
        return self.boards[drawer]

    def register_serial_client(self, client: SerialClient) -> None:
        """The serial backend built on this simulator: settled by :meth:`settle`, killed by a
        power loss (the process it lives in dies)."""
        self._clients.append(client)

    def unregister_serial_client(self, client: SerialClient) -> None:
        if client in self._clients:
            self._clients.remove(client)

    def settle(self) -> None:
        """Let pending bytes be processed: returns once every event the boards have produced
        so far has reached the backend's listener (a poll round trip per board). Call it after
        each ``clock.advance`` step in serial mode; a no-op for the gpio backend, whose events
        are delivered synchronously during the tick."""
        for client in list(self._clients):
            client.settle()

    def advance(self, seconds: float, step: float = 0.1) -> None:
        """Move virtual time in steps of at most ``step``, settling after each: the way to
        drive time that gives the same outcome with the gpio and the serial backend (for gpio,
        settling is a no-op)."""
        remaining = seconds
        while remaining > 1e-12:
            dt = min(step, remaining)
            self.clock.advance(dt)
            self.settle()
            remaining -= dt

    def close(self) -> None:
        """Stop the emulated boards and remove their ttys (end of a test or a run)."""
        for client in list(self._clients):
            client.kill()
        self._clients.clear()
        for board in self.boards.values():
            board.power_off()
        self.boards.clear()
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None
        self._dir = None


def auto_wire(drawers: list[tuple[str, str, int, int]]) -> tuple[DrawerHw, ...]:
    """Give each drawer GPIO pins in order, as a technician following the wiring table would.

    Raises ``ValueError`` when the cabinet needs more pins than a Pi has: such a cabinet needs
    drawer boards (the serial backend).
    """
    free = list(PI_GPIOS)
    result = []
    for drawer_id, kind, rows, cols in drawers:
        need = 5 + (rows * cols if kind == "cubie" else 0)
        if need > len(free):
            raise ValueError(
                f"drawer {drawer_id}: not enough GPIO pins ({need} needed, {len(free)} left); "
                "use the serial backend with drawer boards")
        take, free = free[:need], free[need:]
        magnets = {}
        if kind == "cubie":
            magnets = {(r, c): take[5 + r * cols + c] for r in range(rows) for c in range(cols)}
        pins = DrawerPins(motor_forward=take[0], motor_backward=take[1], switch_closed=take[2],
                          switch_open=take[3], close_button=take[4], magnets=magnets)
        result.append(DrawerHw(drawer_id, kind, rows, cols, pins=pins))
    return tuple(result)
