"""Time for the hardware layer.

Every actuation limit (motor travel time, magnet pulse) is enforced with a timer from a
:class:`Clock`, never with ``sleep``. In the cabinet the clock is real time; in the simulator it
is a virtual clock that the scenario runner advances, so the *same* backend code runs with
deterministic timing and a 60-second wait takes no time at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class RealClock:
    """Wall-clock timers on daemon threads: callbacks run on their own thread, like gpiozero's."""

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        timer = threading.Timer(max(0.0, delay), callback)
        timer.daemon = True
        timer.start()
        return timer
