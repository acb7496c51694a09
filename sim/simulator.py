"""The simulated cabinet: a virtual clock, the physics, and the mock pins that join them."""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory

from hal.config import DrawerHw, DrawerPins, HardwareConfig
from sim.clock import SimClock
from sim.physics import CabinetPhysics

#: BCM GPIO numbers free on a Pi header (0 and 1 are kept for the HAT EEPROM).
PI_GPIOS = tuple(range(2, 28))


class Simulator:
    """Owns the simulated world; a backend built with it runs its real code on mock pins."""

    def __init__(self, config: HardwareConfig, *, travel_s: float = 2.0,
                 tick: float = 0.01) -> None:
        self.config = config
        self.clock = SimClock(tick=tick)
        self.physics = CabinetPhysics(config, travel_s=travel_s)
        self.clock.add_ticker(self.physics.tick)
        self.factory: MockFactory | None = None

    def gpio_factory(self) -> MockFactory:
        """A fresh set of mock pins (one controller process), with the physics behind them."""
        self.factory = MockFactory()
        self.physics.attach(self.factory)
        return self.factory

    def power_on(self) -> None:
        """The backend is built: its input pins now read the physical state."""
        self.physics.sync()

    def power_loss(self) -> None:
        """The controller process dies with every output; the physical world stays as it is."""
        self.physics.power_off()
        self.clock.drop_timers()
        if self.factory is not None:
            self.factory.reset()
        self.factory = None


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
