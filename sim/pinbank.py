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

    An input reads what drives it from outside (a switch to ground, a shift register's
    output), else a pull-up (the chip's, or a resistor on the board), else low; a board that
    reboots and sets its pull-ups again therefore still reads a pressed switch.
    """

    def __init__(self, number: int) -> None:
        self.number = number
        self.output = False
        self.pull_up = False
        #: A pull-up resistor on the board itself: it holds when the chip lets go of the pin.
        self.resistor_pull_up = False
        self._out = False
        self._external: bool | None = None
        self._handlers: list[tuple[Callable[[Any], None], int]] = []
        self._watchers: list[Callable[[SimPin, bool], None]] = []

    @property
    def state(self) -> bool:
        if self.output:
            return self._out
        if self._external is not None:
            return self._external
        return self.pull_up or self.resistor_pull_up

    @state.setter
    def state(self, value: bool) -> None:
        self._change(lambda: setattr(self, "_out", bool(value)))

    def watch(self, callback: Callable[[SimPin, bool], None]) -> None:
        """Simulated hardware on this pin (a shift register's clock): told every change."""
        self._watchers.append(callback)

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
        for watcher in list(self._watchers):
            watcher(self, level)
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
        """The chip resets or loses power: its pins let go (high impedance, no pull-ups), so
        an output reads low unless a resistor on the board pulls it up."""
        for pin in list(self._pins.values()):
            if pin.output or pin.pull_up:
                pin.configure(output=False, pull_up=False)


class ShiftRegisterChain:
    """74HC595 chips in a chain, as the board's magnets see them.

    A rising clock shifts the data pin's level in at output 0 (the rest move one along); a
    rising latch copies the shift register to the outputs; /OE high (its board pull-up holds it
    there while the MCU resets) turns every output off. The chips keep their contents across an
    MCU reset, and power up with random contents, which is why /OE matters.
    """

    def __init__(self, bank: PinBank, data: int, clock: int, latch: int, enable: int | None,
                 outputs: list[int], seed: int = 0) -> None:
        import random

        rng = random.Random(seed)
        self.bank = bank
        self.data = bank.pin(data)
        self.enable = bank.pin(enable) if enable is not None else None
        if self.enable is not None:
            self.enable.resistor_pull_up = True
        self.outputs = [bank.pin(n) for n in outputs]
        self.shift = [rng.random() < 0.5 for _ in outputs]
        self.storage = [rng.random() < 0.5 for _ in outputs]
        bank.pin(clock).watch(self._on_clock)
        bank.pin(latch).watch(self._on_latch)
        if self.enable is not None:
            self.enable.watch(lambda _pin, _level: self._drive())
        self._drive()

    def _on_clock(self, pin: SimPin, level: bool) -> None:
        if level:
            self.shift = [self.data.state, *self.shift[:-1]]

    def _on_latch(self, pin: SimPin, level: bool) -> None:
        if level:
            self.storage = list(self.shift)
            self._drive()

    def _drive(self) -> None:
        enabled = self.enable is None or not self.enable.state
        for pin, on in zip(self.outputs, self.storage, strict=True):
            if on and enabled:
                pin.drive_high()
            else:
                pin.drive_low()


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
