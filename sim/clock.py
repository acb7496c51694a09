"""A virtual clock for the simulator.

The hardware backends take their timers from a :class:`hal.clock.Clock`; here time only moves
when :meth:`SimClock.advance` is called, in small ticks, and each tick first moves the physics
(drawers travel, switches trip) and then fires the timers that are due. Everything runs on the
thread that advances the clock, so a simulated run is deterministic.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class _Timer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class SimClock:
    def __init__(self, tick: float = 0.01) -> None:
        self.now = 0.0
        self.tick = tick
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._tickers: list[Callable[[float, float], None]] = []

    def monotonic(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self.now + max(0.0, delay), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def add_ticker(self, ticker: Callable[[float, float], None]) -> None:
        """``ticker(now, dt)`` is called at every tick, before due timers fire."""
        self._tickers.append(ticker)

    def remove_ticker(self, ticker: Callable[[float, float], None]) -> None:
        if ticker in self._tickers:
            self._tickers.remove(ticker)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-12:
            dt = min(self.tick, end - self.now)
            self.now += dt
            for ticker in list(self._tickers):
                ticker(self.now, dt)
            self._fire_due()

    def _fire_due(self) -> None:
        while self._timers and self._timers[0].when <= self.now + 1e-12:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()

    def drop_timers(self) -> None:
        """Power loss: every pending timer belonged to the process that just died."""
        self._timers.clear()
