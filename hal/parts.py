"""What the controller may ask of the hardware: small protocols named after the real parts.

Commands are idempotent — ``open()`` on an open drawer is a no-op, never a toggle — so that a
retried command (after a timeout, a lost acknowledgement, a restart) cannot do harm. Parts
report what happened through :class:`HardwareEvent`s posted to a single listener; the
listener may be called from any thread (gpiozero callbacks, timers, the serial reader) and
must only hand the event over to the controller's event loop.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from controller.errors import HardwareError

log = logging.getLogger(__name__)


class Motion(enum.Enum):
    """What the drawer's motor is doing, as the backend commanded it."""

    STOPPED = "stopped"
    OPENING = "opening"
    CLOSING = "closing"


class EventKind(enum.Enum):
    OPENED = "opened"                    # open end switch reached; motor stopped
    CLOSED = "closed"                    # closed end switch reached; motor stopped
    JAMMED = "jammed"                    # motor ran its maximum time without reaching a switch
    SWITCH_FAULT = "switch_fault"        # switches contradict the motion (stuck, both active)
    MOVED_UNCOMMANDED = "moved_uncommanded"  # drawer left its end position with no command
    CLOSE_PRESSED = "close_pressed"      # the person pressed the drawer's Close button
    LATCH_RELEASED = "latch_released"    # a pocket magnet pulse ended
    LINK_DOWN = "link_down"              # a drawer board stopped answering
    LINK_UP = "link_up"
    SCAN = "scan"                        # a barcode was read by a hardware scanner


@dataclass(frozen=True)
class HardwareEvent:
    kind: EventKind
    drawer: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


EventListener = Callable[[HardwareEvent], None]


@dataclass(frozen=True)
class SwitchState:
    closed: bool  # the closed end-of-travel switch is pressed
    open: bool    # the open end-of-travel switch is pressed


class Drawer(Protocol):
    """A motorised drawer with two end-of-travel switches.

    ``open()``/``close()`` start the motor towards an end switch and return at once; the
    backend stops the motor itself at the switch or after the maximum travel time, then posts
    OPENED / CLOSED / JAMMED / SWITCH_FAULT.
    """

    id: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def switches(self) -> SwitchState: ...

    @property
    def motion(self) -> Motion: ...


class PocketLatch(Protocol):
    """The electromagnet holding a pocket's lid: pulsed to release, never held on."""

    def release(self) -> None: ...

    @property
    def energised(self) -> bool: ...


class Indicator(Protocol):
    def on(self) -> None: ...

    def off(self) -> None: ...


class Buzzer(Protocol):
    def beep(self, seconds: float) -> None: ...


PocketAddress = tuple[str, int, int]


class Hardware(Protocol):
    """Everything one backend drives. Built in exactly one place: :mod:`hal.backends`."""

    @property
    def backend(self) -> str: ...

    @property
    def drawers(self) -> Mapping[str, Drawer]: ...

    @property
    def latches(self) -> Mapping[PocketAddress, PocketLatch]: ...

    @property
    def indicators(self) -> Mapping[str, Indicator]: ...

    @property
    def buzzer(self) -> Buzzer | None: ...

    def set_listener(self, listener: EventListener) -> None: ...

    def link_ok(self) -> bool: ...

    def safe_state(self) -> None:
        """Every output off: motors stopped, magnets released, indicators off."""
        ...

    def close(self) -> None: ...


def magnet_busy(drawer: str) -> HardwareError:
    """A release refused by the magnets' duty-cycle limit (both backends raise this one)."""
    return HardwareError(
        f"drawer {drawer}: the pocket latches are busy (one magnet at a time, each rests "
        "between pulses); try again in a few seconds",
        f"tiroir {drawer} : les verrous des cases sont occupés (un aimant à la fois, chacun "
        "se repose entre deux impulsions) ; réessayez dans quelques secondes",
        code="MAGNET_BUSY", drawer=drawer)


def _ignore(event: HardwareEvent) -> None:
    """Listener used until the controller attaches its own; events before that are moot."""


class Emitter:
    """The one door from a backend's threads to the controller's listener."""

    def __init__(self) -> None:
        self.listener: EventListener = _ignore

    def __call__(self, event: HardwareEvent) -> None:
        try:
            self.listener(event)
        except Exception:  # a listener bug must not kill a reader or callback thread
            log.exception("hardware event listener failed on %s", event)


D = TypeVar("D")
L = TypeVar("L")
I = TypeVar("I")  # noqa: E741


class PartsBase(Generic[D, L, I]):
    """What every backend shares: its parts by address, and the listener hand-off."""

    def __init__(self) -> None:
        self._emit = Emitter()
        self._drawers: dict[str, D] = {}
        self._latches: dict[PocketAddress, L] = {}
        self._indicators: dict[str, I] = {}

    @property
    def drawers(self) -> Mapping[str, D]:
        return self._drawers

    @property
    def latches(self) -> Mapping[PocketAddress, L]:
        return self._latches

    @property
    def indicators(self) -> Mapping[str, I]:
        return self._indicators

    def set_listener(self, listener: EventListener) -> None:
        self._emit.listener = listener
