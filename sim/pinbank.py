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
    """One GPIO: an output the firmware sets, or an input the physics drives."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.output = False
        self.pull_up = False
        self._level = False
        self._handlers: list[tuple[Callable[[Any], None], int]] = []

    @property
    def state(self) -> bool:
        return self._level

    @state.setter
    def state(self, value: bool) -> None:
        self._set(bool(value))

    def drive_low(self) -> None:
        self._set(False)

    def drive_high(self) -> None:
        self._set(True)

    def _set(self, level: bool) -> None:
        old, self._level = self._level, level
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
            self._pin.output = True
            if value is not None:
                self._pin.state = bool(value)
        elif mode == self.IN:
            self._pin.output = False
            self._pin.pull_up = pull == self.PULL_UP
            if self._pin.pull_up:
                self._pin.state = True   # nothing pulls it down yet

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
