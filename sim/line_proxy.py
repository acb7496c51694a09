"""A fault-injecting serial cable between the backend and an emulated board.

The proxy opens the board's tty and offers its own pty (behind a symlink, like a udev name
``/dev/armoire-drawer-A``) to the backend. Frames (split at the 0x00 delimiter) pass through,
unless a fault says otherwise: dropped, duplicated, corrupted (a bit flipped), or lost because
one direction is silent; noise can be injected between frames; and the cable can be unplugged
(the pty disappears: the backend's reads fail) and plugged back (a new pty behind the same
path), as a USB-serial adapter does.

Counted faults (``drop[TO_BOARD] = 2``: the next two frames to the board) make tests exact;
rates (``rates[TO_PI]["corrupt"] = 0.1``) with a seeded generator make noise tests.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import tty

TO_BOARD = "to_board"
TO_PI = "to_pi"
FAULTS = ("drop", "duplicate", "corrupt")


class LineProxy:
    def __init__(self, target: str, path: str, seed: int = 0) -> None:
        self.target = target
        self.path = path
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = {
            fault: {TO_BOARD: 0, TO_PI: 0} for fault in FAULTS}
        self.rates: dict[str, dict[str, float]] = {
            TO_BOARD: dict.fromkeys(FAULTS, 0.0), TO_PI: dict.fromkeys(FAULTS, 0.0)}
        self.silent = {TO_BOARD: False, TO_PI: False}
        self.passed = {TO_BOARD: 0, TO_PI: 0}
        self.injected = {fault: 0 for fault in FAULTS}
        self._buf = {TO_BOARD: bytearray(), TO_PI: bytearray()}
        self._board = os.open(target, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._board)
        self._master = -1
        self._slave = -1
        self.plug()
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="line-proxy", daemon=True)
        self._thread.start()

    # -- the cable ------------------------------------------------------------------------
    def plug(self) -> None:
        with self.lock:
            if self._master >= 0:
                return
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._master, self._slave = master, slave
            self._buf[TO_BOARD].clear()
            link = self.path + ".new"
            with contextlib.suppress(OSError):
                os.unlink(link)
            os.symlink(os.ttyname(slave), link)
            os.replace(link, self.path)

    def unplug(self) -> None:
        with self.lock:
            if self._master < 0:
                return
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            for fd in (self._master, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._master = self._slave = -1

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def fault(self, kind: str, direction: str, count: int = 1) -> None:
        with self.lock:
            self.counts[kind][direction] += count

    def noise(self, direction: str, data: bytes) -> None:
        """Raw bytes on the line, between frames."""
        with self.lock:
            self._write(direction, data)

    # -- pumping --------------------------------------------------------------------------
    def _loop(self) -> None:
        while self._running:
            fds = [self._board] + ([self._master] if self._master >= 0 else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                continue
            for fd in ready:
                direction = TO_PI if fd == self._board else TO_BOARD
                try:
                    data = os.read(fd, 4096)
                except (BlockingIOError, OSError):
                    continue
                with self.lock:
                    self._take(direction, data)

    def _take(self, direction: str, data: bytes) -> None:
        buf = self._buf[direction]
        buf.extend(data)
        while True:
            end = buf.find(0)
            if end < 0:
                return
            frame = bytes(buf[:end + 1])
            del buf[:end + 1]
            for out in self._apply(direction, frame):
                self._write(direction, out)

    def _apply(self, direction: str, frame: bytes) -> list[bytes]:
        if self.silent[direction]:
            return []
        decided = {}
        for kind in FAULTS:
            if self.counts[kind][direction] > 0:
                self.counts[kind][direction] -= 1
                decided[kind] = True
            else:
                decided[kind] = self.rng.random() < self.rates[direction][kind]
            if decided[kind]:
                self.injected[kind] += 1
        if decided["drop"]:
            return []
        if decided["corrupt"] and len(frame) > 1:
            bad = bytearray(frame)
            at = self.rng.randrange(len(bad) - 1)
            bad[at] ^= 1 << self.rng.randrange(8)
            frame = bytes(bad)
        self.passed[direction] += 1
        return [frame, frame] if decided["duplicate"] else [frame]

    def _write(self, direction: str, data: bytes) -> None:
        fd = self._board if direction == TO_BOARD else self._master
        if fd < 0:
            return   # unplugged: the bytes go nowhere
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except (BlockingIOError, OSError):
                return
            view = view[n:]

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=1.0)
        self.unplug()
        with contextlib.suppress(OSError):
            os.close(self._board)
