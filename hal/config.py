"""Hardware configuration: what is wired where, and the safety limits of every actuator.

The limits have hard ceilings here (``MAX_*``) that no configuration can raise: a typo in a
TOML file must not be able to hold a magnet on for a minute or run a motor into a wall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: A pocket magnet pulse is never longer than this, whatever the configuration says.
MAX_MAGNET_PULSE_S = 1.0
#: A drawer motor never runs longer than this in one command.
MAX_TRAVEL_S = 20.0
#: Switch and button debounce bounds (the firmware's MIN/MAX_DEBOUNCE_MS): long enough to
#: outlast contact bounce, short enough that a press is never missed.
MIN_DEBOUNCE_S = 0.005
MAX_DEBOUNCE_S = 0.1
#: A magnet rests at least this long after each pulse (coil heating); a configuration may
#: lengthen the rest up to MAX_MAGNET_OFF_S, never shorten it (firmware: MIN/MAX_MAGNET_OFF_MS).
MIN_MAGNET_OFF_S = 0.5
MAX_MAGNET_OFF_S = 10.0
#: A release that cannot start at once waits its turn if it can start within this, else it is
#: refused (MAGNET_BUSY) (firmware: MAGNET_MAX_WAIT_MS).
MAGNET_MAX_WAIT_S = 2.0

DRAWER_TYPES = ("matrix", "cubie", "carousel")


@dataclass(frozen=True)
class Timing:
    #: Motor cut-off: a drawer that has not reached its end switch by then is jammed.
    max_travel_s: float = 6.0
    #: The end switch the drawer leaves must release within this, or it is stuck.
    switch_release_s: float = 1.0
    #: Length of the pulse that releases a pocket lid.
    magnet_pulse_s: float = 0.3
    #: An end switch or the Close button must hold a new level this long before an
    #: uncommanded move or a press is reported. Stopping the motor at its end switch is never
    #: delayed by it. Drawer boards get it (and magnet_min_off_s) in CONFIG at each HELLO.
    switch_debounce_s: float = 0.025
    #: Rest of a magnet after each pulse; magnets are also pulsed one at a time (ULN2803).
    magnet_min_off_s: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_travel_s", min(self.max_travel_s, MAX_TRAVEL_S))
        object.__setattr__(self, "magnet_pulse_s", min(self.magnet_pulse_s, MAX_MAGNET_PULSE_S))
        object.__setattr__(self, "switch_debounce_s",
                           max(MIN_DEBOUNCE_S, min(self.switch_debounce_s, MAX_DEBOUNCE_S)))
        object.__setattr__(self, "magnet_min_off_s",
                           max(MIN_MAGNET_OFF_S, min(self.magnet_min_off_s, MAX_MAGNET_OFF_S)))


@dataclass(frozen=True)
class DrawerPins:
    motor_forward: int
    motor_backward: int
    switch_closed: int
    switch_open: int
    close_button: int
    led: int | None = None
    #: (row, col) -> magnet pin, for lidded (cubie) pockets only.
    magnets: dict[tuple[int, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class DrawerHw:
    id: str
    type: str
    rows: int
    cols: int
    pins: DrawerPins | None = None      # gpio backend
    port: str | None = None             # serial backend: the drawer board's device

    @property
    def lidded(self) -> bool:
        return self.type == "cubie"

    def pockets(self) -> list[tuple[int, int]]:
        return [(r, c) for r in range(self.rows) for c in range(self.cols)]


@dataclass(frozen=True)
class HardwareConfig:
    backend: str                        # "gpio" | "serial"
    drawers: tuple[DrawerHw, ...]
    timing: Timing = field(default_factory=Timing)
    #: gpiozero pin factory for the real cabinet; never guessed, never the mock.
    pin_factory: str = "lgpio"
    buzzer_pin: int | None = None

    def drawer(self, drawer_id: str) -> DrawerHw:
        for d in self.drawers:
            if d.id == drawer_id:
                return d
        raise KeyError(drawer_id)
