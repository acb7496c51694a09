"""Simulated pins for the emulated drawer boards, and a fake MicroPython ``machine`` on them.

gpiozero's ``MockFactory`` only knows a Pi header's pin names, and a drawer board has its own
numbering (and possibly dozens of magnets), so each emulated board gets a :class:`PinBank`.
It offers the small part of gpiozero's mock-pin interface that :mod:`sim.physics` uses
(``state``, ``drive_low``, ``drive_high``), so the physics drives a board's pins exactly as it
drives the Pi's mock pins.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class SimPin:
    """One GPIO: an output the firmware sets, or an input the physics drives.

    An input reads what drives it from outside (a switch to ground), else its pull-up; a
    board that reboots and sets its pull-ups again therefore still reads a pressed switch.
    """

    def __init__(self, number: int) -> None:
        self.number = number
        self.output = False
        self.pull_up = False
        self._out = False
        self._external: bool | None = None
        self._handlers: list[tuple[Callable[[Any], None], int]] = []

    @property
    def state(self) -> bool:
        if self.output:
            return self._out
        if self._external is not None:
            return self._external
        return self.pull_up

    @state.setter
    def state(self, value: bool) -> None:
        self._change(lambda: setattr(self, "_out", bool(value)))

    def configure(self, output: bool, pull_up: bool = False) -> None:
        def apply() -> None:
            self.output = output
            self.pull_up = pull_up
        self._change(apply)

    def drive_low(self) -> None:
        self._change(lambda: setattr(self, "_external", False))

    def drive_high(self) -> None:
        self._change(lambda: setattr(self, "_external", True))

    def _change(self, action: Callable[[], None]) -> None:
        old = self.state
        action()
        level = self.state
        if old == level:
            return
        edge = FakePin.IRQ_RISING if level else FakePin.IRQ_FALLING
        for handler, trigger in list(self._handlers):
            if trigger & edge:
                handler(self)


class PinBank:
    """The pins of one board, created on first use, any number."""

    def __init__(self) -> None:
        self._pins: dict[int, SimPin] = {}
        self._lock = threading.Lock()

    def pin(self, number: int) -> SimPin:
        with self._lock:
            if number not in self._pins:
                self._pins[number] = SimPin(number)
            return self._pins[number]

    def reset(self) -> None:
        """Power gone: every output low."""
        for pin in list(self._pins.values()):
            if pin.output:
                pin.state = False


class FakePin:
    """MicroPython's ``machine.Pin`` as the firmware uses it, on a :class:`PinBank`."""

    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8
    bank: PinBank

    def __init__(self, number: int, mode: int = -1, pull: int = -1, *,
                 value: int | None = None) -> None:
        self._pin = self.bank.pin(number)
        if mode == self.OUT:
            if value is not None:
                self._pin.state = bool(value)
            self._pin.configure(output=True)
        elif mode == self.IN:
            self._pin.configure(output=False, pull_up=pull == self.PULL_UP)

    def value(self, v: int | None = None) -> int:
        if v is None:
            return 1 if self._pin.state else 0
        self._pin.state = bool(v)
        return 1 if self._pin.state else 0

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)

    def irq(self, handler: Callable[[Any], None] | None = None,
            trigger: int = IRQ_FALLING | IRQ_RISING) -> None:
        self._pin._handlers = [] if handler is None else [(lambda _pin: handler(self), trigger)]


class FakeWDT:
    def __init__(self, timeout: int = 5000) -> None:
        self.timeout = timeout
        self.feeds = 0

    def feed(self) -> None:
        self.feeds += 1


class FakeMachine:
    """Stands in for the ``machine`` module: ``machine.Pin`` maps onto one board's bank."""

    def __init__(self, bank: PinBank) -> None:
        self.bank = bank
        self.Pin = type("Pin", (FakePin,), {"bank": bank})
        self.WDT = FakeWDT
