"""An emulated drawer board: the firmware's own logic, on simulated pins, behind a real tty.

Each emulator owns a pseudo-terminal (``os.openpty``, raw mode). The serial backend opens the
pty's path with pyserial exactly as it opens ``/dev/ttyACM0`` on a cabinet, so the bytes cross
a real tty driver. Behind the pty runs :class:`firmware.board.Board`, built by the firmware's
own :func:`firmware.board.make_board` on a :class:`sim.pinbank.FakeMachine`, whose pins the
simulator's physics drives (the same physics as the gpio simulation).

Two kinds of time, on purpose:

* **Board time is the simulator's virtual clock.** The firmware's ``poll(now_ms)`` runs from a
  :class:`sim.clock.SimClock` ticker, and commands are executed at the virtual time at which
  they arrive. Motor cut-offs, switch-release checks, magnet pulses and the heartbeat watchdog
  are therefore measured in virtual time, exactly like the gpio backend's timers, and a
  60-second ``advance`` takes no real time.
* **The wire is real time.** Bytes are read from the pty by a thread as soon as they arrive; the
  Pi's resend timeouts are real-time (they are about a tty, not about the physics).

A lock (the simulator's) makes a command and a clock tick never interleave.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import tty
from types import SimpleNamespace
from typing import Any

from firmware import board as fw
from firmware import protocol
from hal.config import DrawerHw, DrawerPins
from sim.clock import SimClock
from sim.physics import CabinetPhysics
from sim.pinbank import FakeMachine, PinBank, ShiftRegisterChain

#: Emulated boards' wiring: the firmware's board_config numbering. Up to DIRECT_MAGNETS
#: pockets, magnets are on GPIOs 7..; beyond, on a 74HC595 chain (data 7, clock 8, latch 9,
#: /OE 10) whose outputs are numbered from MAGNET_BASE in the board's pin bank.
MOTOR_FORWARD, MOTOR_BACKWARD, SWITCH_CLOSED, SWITCH_OPEN, CLOSE_BUTTON, LED = 2, 3, 4, 5, 6, 25
DIRECT_MAGNETS = 12
SHIFT_DATA, SHIFT_CLOCK, SHIFT_LATCH, SHIFT_ENABLE = 7, 8, 9, 10
MAGNET_BASE = 100


def board_wiring(hw: DrawerHw) -> tuple[SimpleNamespace, DrawerPins]:
    """The board_config the emulated board runs with, and the same pins for the physics."""
    pockets = hw.pockets() if hw.lidded else []
    shift = len(pockets) > DIRECT_MAGNETS
    first = MAGNET_BASE if shift else SHIFT_DATA
    magnets = {(r, c): first + r * hw.cols + c for r, c in pockets}
    config = SimpleNamespace(
        DRAWER_ID=hw.id, MOTOR_FORWARD=MOTOR_FORWARD, MOTOR_BACKWARD=MOTOR_BACKWARD,
        SWITCH_CLOSED=SWITCH_CLOSED, SWITCH_OPEN=SWITCH_OPEN, CLOSE_BUTTON=CLOSE_BUTTON, LED=LED,
        MAGNETS=() if shift else tuple(magnets[rc] for rc in pockets),
        MAGNET_SHIFT=(SHIFT_DATA, SHIFT_CLOCK, SHIFT_LATCH, SHIFT_ENABLE, len(pockets))
        if shift else None)
    pins = DrawerPins(motor_forward=MOTOR_FORWARD, motor_backward=MOTOR_BACKWARD,
                      switch_closed=SWITCH_CLOSED, switch_open=SWITCH_OPEN,
                      close_button=CLOSE_BUTTON, led=LED, magnets=magnets)
    return config, pins


def board_ms(now: float) -> int:
    return round(now * 1000)


class BoardEmulator:
    """One drawer board. ``path`` is the tty the backend opens (a symlink to the pty)."""

    def __init__(self, hw: DrawerHw, clock: SimClock, physics: CabinetPhysics,
                 lock: threading.RLock, directory: str, generation: int, *,
                 version: str = protocol.FIRMWARE_VERSION, drawer_id: str | None = None) -> None:
        self.hw = hw
        self.clock = clock
        self.physics = physics
        self.lock = lock
        self.version = version
        self.config, self.pins = board_wiring(hw)
        if drawer_id is not None:
            self.config.DRAWER_ID = drawer_id
        self.bank = PinBank()
        self.chain: ShiftRegisterChain | None = None
        if self.config.MAGNET_SHIFT:
            data, shift_clock, latch, enable, count = self.config.MAGNET_SHIFT
            self.chain = ShiftRegisterChain(self.bank, data, shift_clock, latch, enable,
                                            [MAGNET_BASE + i for i in range(count)],
                                            seed=generation)
        self.machine = FakeMachine(self.bank)
        self.boots = 0
        self.board = self._boot()
        #: Fault injection: the board hears nothing and says nothing (its control loop runs).
        self.muted = False
        #: Fault injection: after running this command, the board resets before answering.
        self.crash_after: int | None = None
        self.frames_in = 0
        self._running = True
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.path.join(directory, f"board-{hw.id}-{generation}")
        os.symlink(os.ttyname(self._slave), self.path)
        physics.attach_board(hw.id, self.bank, self.pins)
        clock.add_ticker(self._tick)
        self._thread = threading.Thread(target=self._read_loop, name=f"board-{hw.id}",
                                        daemon=True)
        self._thread.start()

    def _boot(self) -> fw.Board:
        self.boots += 1
        boot_id = random.getrandbits(16)
        return fw.make_board(self.machine, self.config, boot_id, board_ms(self.clock.now),
                             version=self.version)

    # -- time and bytes -----------------------------------------------------------------------
    def _tick(self, now: float, dt: float) -> None:
        with self.lock:
            if self._running:
                self._send(self.board.poll(board_ms(now)))

    def _read_loop(self) -> None:
        while self._running:
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except (OSError, ValueError):
                if not self._running:
                    return
                continue
            with self.lock:
                if not self._running or self.muted:
                    continue
                self.frames_in += data.count(0)
                out = self.board.receive(data, board_ms(self.clock.now))
                if self.crash_after is not None and self.board.last_cmd == self.crash_after:
                    self.crash_after = None
                    self.bank.reset()
                    self.board = self._boot()   # the answer dies with the board
                    continue
                self._send(out)

    def _send(self, data: bytes) -> None:
        """Like a UART with nobody listening: what the pty cannot take is lost, never queued."""
        if not data or self.muted:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except (BlockingIOError, OSError):
                return
            view = view[n:]

    # -- faults -------------------------------------------------------------------------------
    def reboot(self) -> None:
        """The board resets (brown-out, watchdog): outputs drop, all its memory is gone."""
        with self.lock:
            self.bank.reset()
            self.board = self._boot()

    def power_off(self) -> None:
        """The cabinet loses power: the board's outputs drop and its tty disappears."""
        with self.lock:
            self._running = False
            self.bank.reset()
        self.clock.remove_ticker(self._tick)
        self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def describe(self) -> dict[str, Any]:
        board = self.board
        return {"boots": self.boots, "boot_id": board.boot_id, "status": board.status(),
                "events_queued": len(board.events), "bad_frames": board.decoder.bad_frames}
