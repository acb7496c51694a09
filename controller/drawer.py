"""One state machine per drawer, fed by hardware events on the controller's loop.

    closed -> opening -> open -> closing -> closed
    opening/closing -> jammed          (motor ran its maximum time)
    any -> switch_fault                (end switches contradict each other; once)
    closed/offline -> forced_open      (moved with no command)
    jammed/switch_fault/forced_open/unknown/open/offline -> closing   (cmd_reset)
    any -> offline -> unknown          (drawer board link lost, then back: re-read switches)

A fault reported again while the drawer is still in it is no new fault (no second
``on_fault``): see ``TRANSITIONS``.

Commands drive the hardware in ``on_enter`` callbacks; the backend enforces travel limits on
its own, so the machine never has to be fast to be safe. ``finalize_event`` — a callback that
always runs, even when a transition raised — stops the motor whenever the drawer is left in a
fault state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from transitions.extensions.asyncio import AsyncMachine

from controller.errors import HardwareError, StateError
from controller.tasks import keep
from hal.clock import Clock, TimerHandle
from hal.parts import Drawer, EventKind, HardwareEvent

log = logging.getLogger(__name__)

STATES = ["unknown", "closed", "opening", "open", "closing", "jammed", "switch_fault",
          "forced_open", "offline"]
FAULT_STATES = frozenset({"jammed", "switch_fault", "forced_open", "offline"})
#: The one French wording of the drawer states, for the cabinet's messages ("le tiroir A est
#: en cours d'ouverture") and the screens (the ``state.*`` keys of ``controller.web.i18n``).
STATES_FR = {"unknown": "état inconnu", "closed": "fermé",
             "opening": "en cours d'ouverture", "open": "ouvert",
             "closing": "en cours de fermeture", "jammed": "bloqué",
             "switch_fault": "capteur en défaut", "forced_open": "ouvert de force",
             "offline": "hors ligne (carte muette)"}

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "cmd_open", "source": "closed", "dest": "opening"},
    # Idempotent, but checked: the drawer may have been pushed shut since it was last seen
    # open (after a power cut, say). The backend re-reports OPENED without moving when the
    # open switch is pressed, and drives the motor otherwise.
    {"trigger": "cmd_open", "source": "open", "dest": "opening"},
    {"trigger": "cmd_close", "source": ["open", "opening"], "dest": "closing"},
    {"trigger": "cmd_close", "source": "closed", "dest": None},
    {"trigger": "ev_opened", "source": ["opening", "unknown"], "dest": "open"},
    {"trigger": "ev_closed", "source": ["closing", "unknown"], "dest": "closed"},
    {"trigger": "ev_jammed", "source": ["opening", "closing"], "dest": "jammed"},
    # One physical fault is one report to the cabinet (one ``drawer_fault`` row): a backend
    # may see the same fault twice (gpio's end of a run and its debounced switch both read
    # two switches pressed; a silent board fails the command sent to it and is reported
    # down by its link). Told again while the drawer is still in that fault, it is no news:
    # the first report wins. Once the drawer has left it (a reset, its board back), the
    # same fault again is a new one.
    {"trigger": "ev_switch_fault", "source": "switch_fault", "dest": None,
     "after": "_repeated"},
    {"trigger": "ev_switch_fault", "source": [s for s in STATES if s != "switch_fault"],
     "dest": "switch_fault"},
    # From offline too: a drawer put offline by a refused motor command still has its
    # switches read (its link is up), and a reset now brings it back. A move it reports
    # meanwhile was dropped, and the reset closed the drawer over pockets nobody counted.
    {"trigger": "ev_moved", "source": ["closed", "offline"], "dest": "forced_open"},
    # From offline too: a motor command the hardware refused with its link up (a board's
    # FAILED answer, a gpio safety timer that could not be armed) puts the drawer offline,
    # and no LINK_UP will come to end it. Resetting drives it shut, which is the check: a
    # board still out of reach refuses at once, and the drawer is offline again.
    {"trigger": "cmd_reset",
     "source": ["jammed", "switch_fault", "forced_open", "unknown", "open", "offline"],
     "dest": "closing"},
    {"trigger": "ev_offline", "source": "offline", "dest": None, "after": "_repeated"},
    {"trigger": "ev_offline", "source": [s for s in STATES if s != "offline"],
     "dest": "offline"},
    {"trigger": "ev_online", "source": "offline", "dest": "unknown"},
]

EVENT_TRIGGERS = {
    EventKind.OPENED: "ev_opened",
    EventKind.CLOSED: "ev_closed",
    EventKind.JAMMED: "ev_jammed",
    EventKind.SWITCH_FAULT: "ev_switch_fault",
    EventKind.MOVED_UNCOMMANDED: "ev_moved",
}


class DrawerUnit:
    """The controller's view of one drawer; the model of its AsyncMachine."""

    state: str

    def __init__(self, drawer_id: str, part: Drawer, clock: Clock,
                 on_fault: Callable[[DrawerUnit, str, dict[str, Any]], None],
                 limit_s: float = 10.0,
                 on_closed: Callable[[DrawerUnit], None] | None = None) -> None:
        self.id = drawer_id
        #: The controller's own limit on one movement, above the backend's (which should
        #: always answer first): a backend that never reports cannot leave a motor running.
        self.limit_s = limit_s
        self.part = part
        self.clock = clock
        self.on_fault = on_fault
        #: Told each time the drawer is seen closed: closing pushes every lid home.
        self.on_closed = on_closed
        self.last_fault: dict[str, Any] = {}
        #: Set when the controller stops: outputs are off, no movement will end.
        self.stopping = False
        #: The deadlines of the movements under way.
        self._deadlines: list[TimerHandle] = []
        #: Transitions started from callbacks; kept referenced until done.
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Condition()
        self.machine = AsyncMachine(
            model=self, states=STATES, transitions=TRANSITIONS, initial="unknown",
            queued=True, auto_transitions=False, ignore_invalid_triggers=False,
            after_state_change="_notify", finalize_event="_finalize", send_event=True)

    # -- hardware side effects ------------------------------------------------------------
    def on_enter_opening(self, event: Any) -> None:
        self._drive(self.part.open)

    def on_enter_closing(self, event: Any) -> None:
        self._drive(self.part.close)

    def _drive(self, command: Callable[[], None]) -> None:
        """Send a motor command. If it cannot reach the drawer (its board's link is down),
        the drawer goes offline: queued after this transition, as the machine is queued."""
        try:
            command()
        except HardwareError as exc:
            self._spawn(self.fire("ev_offline", detail={"reason": exc.code}))

    def on_enter_closed(self, event: Any) -> None:
        if self.on_closed is not None:
            self.on_closed(self)

    def on_enter_jammed(self, event: Any) -> None:
        self._fault("jammed", event)

    def on_enter_switch_fault(self, event: Any) -> None:
        self._fault("switch_fault", event)

    def on_enter_forced_open(self, event: Any) -> None:
        self._fault("forced_open", event)

    def on_enter_offline(self, event: Any) -> None:
        self._fault("offline", event)

    def _fault(self, kind: str, event: Any) -> None:
        detail = dict(event.kwargs.get("detail") or {})
        self.last_fault = {"kind": kind, **detail}
        self.on_fault(self, kind, detail)

    def _repeated(self, event: Any) -> None:
        """The fault the drawer is already in, reported again: kept out of the journal (the
        first report is the fault's row), but logged for whoever looks into the backend."""
        log.info("drawer %s: %s reported again while in it, not journaled: %s", self.id,
                 self.state, dict(event.kwargs.get("detail") or {}))

    def _finalize(self, event: Any) -> None:
        if self.state in FAULT_STATES or event.error is not None:
            # If the link is down the board's own watchdog has switched its outputs off.
            with contextlib.suppress(HardwareError):
                self.part.stop()

    async def _notify(self, event: Any) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- API ------------------------------------------------------------------------------
    @property
    def faulted(self) -> bool:
        return self.state in FAULT_STATES

    async def sync_from_switches(self) -> None:
        """At start-up (or when its board is back) the drawer is wherever it was left."""
        try:
            sw = self.part.switches
        except HardwareError as exc:
            await self.fire("ev_offline", detail={"reason": exc.code})
            return
        if sw.closed and not sw.open:
            await self.fire("ev_closed")
        elif sw.open and not sw.closed:
            await self.fire("ev_opened")
        elif sw.open and sw.closed:
            await self.fire("ev_switch_fault", detail={"switch": "both", "at": "start"})
        # neither switch: somewhere in between; stays 'unknown' until reset

    async def handle(self, event: HardwareEvent) -> None:
        trigger = EVENT_TRIGGERS.get(event.kind)
        if trigger is None:
            return
        if trigger in self.machine.get_triggers(self.state):
            await self.fire(trigger, detail=dict(event.detail))
        # An event that does not apply in this state (a repeated OPENED…) changes nothing.

    async def open(self) -> str:
        """Open and wait until the drawer is open or has faulted; returns the final state."""
        return await self._command("cmd_open", "open")

    async def close(self) -> str:
        return await self._command("cmd_close", "closed")

    async def reset(self) -> str:
        return await self._command("cmd_reset", "closed")

    async def _command(self, trigger: str, target: str) -> str:
        self._require(trigger)
        await self.fire(trigger)  # queued: the transition may still be waiting its turn
        loop = asyncio.get_running_loop()
        moving = "opening" if trigger == "cmd_open" else "closing"

        def overdue() -> None:
            loop.call_soon_threadsafe(lambda: self._spawn(self._overdue(moving)))

        timer = self.clock.call_later(self.limit_s, overdue)
        self._deadlines.append(timer)
        try:
            return await self.wait_for({target} | FAULT_STATES)
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):   # dropped meanwhile by shutdown()
                self._deadlines.remove(timer)

    def _spawn(self, coro: Any) -> None:
        keep(self._tasks, asyncio.ensure_future(coro), f"drawer {self.id}: a background task",
             log)

    async def _overdue(self, moving: str) -> None:
        if self.state == moving and not self.stopping:
            with contextlib.suppress(HardwareError):
                self.part.stop()
            await self.fire("ev_jammed", detail={"reason": "no end switch reported in time",
                                                 "limit_s": self.limit_s})

    def _require(self, trigger: str) -> None:
        if trigger not in self.machine.get_triggers(self.state):
            if self.faulted or self.state == "unknown":
                raise HardwareError(
                    f"drawer {self.id} is out of service ({self.state}); "
                    "a technician must check and reset it",
                    f"tiroir {self.id} hors service ({self.state}) ; "
                    "un préparateur doit le vérifier et le réarmer",
                    code="DRAWER_OUT_OF_SERVICE")
            raise StateError(f"drawer {self.id} is {self.state}",
                             f"le tiroir {self.id} est dans l'état {self.state}",
                             code="DRAWER_BUSY")

    async def fire(self, name: str, **kwargs: Any) -> None:
        method = getattr(self, name)
        await method(**kwargs)

    async def wait_for(self, states: set[str] | frozenset[str]) -> str:
        """Wait for one of ``states``; at shutdown, return the state the drawer stopped in."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.state in states or self.stopping)
        return self.state

    async def shutdown(self) -> None:
        """The controller stops and has switched the outputs off: a movement under way will
        never reach its end switch, and that is not a jam. Deadlines are dropped and whoever
        waits gets the state the drawer stopped in; the next start reads its switches.

        Cancelling a waiting command is not enough: ``transitions`` swallows a cancellation
        that lands inside a transition, and the waiter would then sit until the deadline
        called the stopped drawer jammed."""
        self.stopping = True
        for timer in self._deadlines:
            timer.cancel()
        self._deadlines.clear()
        for task in self._tasks:
            task.cancel()
        async with self._changed:
            self._changed.notify_all()
