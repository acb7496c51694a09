"""Physical models of the cabinet's parts, attached *below* the real backends.

The gpio backend drives gpiozero pins; here those pins are gpiozero's mock pins and this module
plays the physical world behind them: a drawer moves while its motor pins are driven, its end
switches close at the ends of travel, a lid springs open when its magnet is pulsed. Faults are
injected here (a jam, a stuck switch, a power cut), never in the code under test.

The physical state (drawer positions, lids) outlives the controller: after a simulated power
loss and reboot, a drawer left open is still open.

Each drawer's pins live in a *pin bank*: for the gpio backend every drawer shares gpiozero's
``MockFactory`` (the Pi's header); for the serial backend each drawer board has its own
:class:`sim.pinbank.PinBank` and its own pin numbers. A bank only needs ``pin(n)`` returning
something with ``state``, ``drive_low()`` and ``drive_high()``, so the physics is the same
whichever backend sits above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpiozero.pins.mock import MockFactory

from hal.config import DrawerHw, DrawerPins, HardwareConfig

#: Minimum magnet on-time for a lid to release (the spring needs the latch fully pulled).
LID_RELEASE_S = 0.05
#: How far a jammed drawer still moves, as a share of its travel.
JAM_SLACK = 0.25
#: How long a person holds the Close button (longer than any debounce time).
BUTTON_PRESS_S = 0.15


@dataclass
class MotorRun:
    drawer: str
    direction: str
    start: float
    stop: float | None = None


@dataclass
class MagnetPulse:
    pocket: tuple[str, int, int]
    start: float
    stop: float | None = None


@dataclass
class DrawerModel:
    hw: DrawerHw
    travel_s: float = 2.0
    position: float = 0.0             # 0 = closed, 1 = fully open
    #: While jammed the drawer only moves within this range (a quarter of its travel around
    #: where it was when it jammed): the motor runs, the far end switch is never reached.
    jam_range: tuple[float, float] | None = None
    switch_stuck: bool = False        # the closed switch reads pressed whatever happens
    open_switch_stuck: bool = False   # the open switch reads pressed whatever happens
    lids_open: set[tuple[int, int]] = field(default_factory=set)
    magnet_on_since: dict[tuple[int, int], float] = field(default_factory=dict)
    #: Where this drawer's pins are (None: unpowered) and their numbers in that bank.
    bank: Any = None
    board_pins: DrawerPins | None = None

    @property
    def pins(self) -> DrawerPins:
        pins = self.board_pins or self.hw.pins
        assert pins is not None, f"drawer {self.hw.id}: no pins"
        return pins

    @property
    def closed_switch(self) -> bool:
        return self.switch_stuck or self.position <= 0.0

    @property
    def open_switch(self) -> bool:
        return self.open_switch_stuck or self.position >= 1.0


class CabinetPhysics:
    """The drawers, switches and lids of one cabinet, and the record of what the outputs did."""

    def __init__(self, config: HardwareConfig, travel_s: float = 2.0) -> None:
        self.config = config
        self.drawers = {hw.id: DrawerModel(hw, travel_s=travel_s) for hw in config.drawers}
        self.motor_runs: list[MotorRun] = []
        self.magnet_pulses: list[MagnetPulse] = []
        self.powered = False
        self.factory: MockFactory | None = None
        self.now = 0.0
        #: Close buttons held down, and when they are let go.
        self.button_release_at: dict[str, float] = {}

    # -- wiring ---------------------------------------------------------------------------
    def attach(self, factory: MockFactory) -> None:
        """Bind to a fresh set of mock pins (a new controller process after a reboot)."""
        self.factory = factory
        self.powered = True
        for model in self.drawers.values():
            if model.hw.pins is not None:
                model.bank = factory

    def attach_board(self, drawer: str, bank: Any, pins: DrawerPins) -> None:
        """Bind one drawer to its own board's pins (serial backend: one bank per board)."""
        model = self.drawers[drawer]
        model.bank = bank
        model.board_pins = pins
        self.powered = True

    def sync(self) -> None:
        """Drive every input from the physical state (after the backend has set up its pins,
        which resets their pulls)."""
        self._sync_inputs()

    def power_off(self) -> None:
        """Every output loses power at once: motors stop, magnets drop."""
        self._close_records()
        self.powered = False
        self.factory = None
        for model in self.drawers.values():
            model.bank = None

    # -- time -----------------------------------------------------------------------------
    def tick(self, now: float, dt: float) -> None:
        self.now = now
        if not self.powered:
            return
        for model in self._wired():
            self._move(model, now, dt)
            self._magnets(model, now)
        for drawer, at in list(self.button_release_at.items()):
            if now >= at - 1e-9:
                del self.button_release_at[drawer]
                model = self.drawers[drawer]
                if model.bank is not None:
                    self._set_input(model, model.pins.close_button, False)
        self._sync_inputs()

    def _wired(self) -> list[DrawerModel]:
        return [m for m in self.drawers.values() if m.bank is not None]

    @staticmethod
    def _pin_on(model: DrawerModel, pin: int) -> bool:
        return bool(model.bank.pin(pin).state)

    def _move(self, model: DrawerModel, now: float, dt: float) -> None:
        pins = model.pins
        fwd = self._pin_on(model, pins.motor_forward)
        bwd = self._pin_on(model, pins.motor_backward)
        direction = "open" if fwd and not bwd else "close" if bwd and not fwd else None
        self._record_motor(model.hw.id, direction, now)
        if direction is None:
            return
        step = dt / model.travel_s
        position = model.position + (step if direction == "open" else -step)
        lo, hi = model.jam_range if model.jam_range is not None else (0.0, 1.0)
        model.position = min(max(position, lo), hi)
        if model.position <= 0.0:
            model.lids_open.clear()  # closing the drawer pushes every lid home

    def _magnets(self, model: DrawerModel, now: float) -> None:
        for rc, pin in model.pins.magnets.items():
            on = self._pin_on(model, pin)
            address = (model.hw.id, *rc)
            if on and rc not in model.magnet_on_since:
                model.magnet_on_since[rc] = now
                self.magnet_pulses.append(MagnetPulse(address, now))
            elif not on and rc in model.magnet_on_since:
                del model.magnet_on_since[rc]
                self._end_pulse(address, now)
            if on and now - model.magnet_on_since[rc] >= LID_RELEASE_S:
                model.lids_open.add(rc)

    def _record_motor(self, drawer: str, direction: str | None, now: float) -> None:
        current = next((r for r in reversed(self.motor_runs)
                        if r.drawer == drawer and r.stop is None), None)
        if current is not None and current.direction != direction:
            current.stop = now
            current = None
        if current is None and direction is not None:
            self.motor_runs.append(MotorRun(drawer, direction, now))

    def _end_pulse(self, address: tuple[str, int, int], now: float) -> None:
        for pulse in reversed(self.magnet_pulses):
            if pulse.pocket == address and pulse.stop is None:
                pulse.stop = now
                return

    def _close_records(self) -> None:
        for run in self.motor_runs:
            if run.stop is None:
                run.stop = self.now
        for pulse in self.magnet_pulses:
            if pulse.stop is None:
                pulse.stop = self.now
        for model in self.drawers.values():
            model.magnet_on_since.clear()

    @staticmethod
    def _set_input(model: DrawerModel, pin: int, pressed: bool) -> None:
        """Switches and buttons pull their pin to ground when pressed."""
        if model.bank is None:
            return
        mock = model.bank.pin(pin)
        if bool(mock.state) is (not pressed):
            return  # already at the level the switch gives
        if pressed:
            mock.drive_low()
        else:
            mock.drive_high()

    def _sync_inputs(self) -> None:
        for model in self._wired():
            pins = model.pins
            self._set_input(model, pins.switch_closed, model.closed_switch)
            self._set_input(model, pins.switch_open, model.open_switch)

    # -- what people and faults do -------------------------------------------------------
    def press_close_button(self, drawer: str) -> None:
        """A person presses the button and lets go ``BUTTON_PRESS_S`` later (virtual time):
        a real press lasts long enough to pass the debounce, a zero-length one would not."""
        model = self.drawers[drawer]
        if model.bank is None:
            return
        self._set_input(model, model.pins.close_button, True)
        self.button_release_at[drawer] = self.now + BUTTON_PRESS_S

    def pull_open(self, drawer: str, to: float = 0.5) -> None:
        """Someone forces the drawer open by hand."""
        self.drawers[drawer].position = to
        self._sync_inputs()

    def inject(self, drawer: str, kind: str) -> None:
        model = self.drawers[drawer]
        if kind == "jam":
            origin = model.position
            model.jam_range = (max(0.0, origin - JAM_SLACK), min(1.0, origin + JAM_SLACK))
        elif kind == "stall":
            # Jammed with no slack: the motor runs and the drawer does not move at all, so
            # the end switch it stands on never releases (a motor stalled at the start).
            model.jam_range = (model.position, model.position)
        elif kind == "switch_stuck":
            model.switch_stuck = True
        elif kind == "open_switch_stuck":
            model.open_switch_stuck = True
        elif kind == "clear":
            model.jam_range = None
            model.switch_stuck = False
            model.open_switch_stuck = False
        else:
            raise ValueError(kind)
        self._sync_inputs()

    def accessible(self, drawer: str, row: int, col: int) -> bool:
        """Can a hand reach into this pocket right now?"""
        model = self.drawers[drawer]
        if model.position < 0.95:
            return False
        return not model.hw.lidded or (row, col) in model.lids_open

    def describe(self) -> dict[str, Any]:
        return {d: {"position": round(m.position, 3), "lids_open": sorted(m.lids_open)}
                for d, m in self.drawers.items()}
