"""The cabinet: sessions, dispensing operations, recovery after a power cut.

Every operation on a pocket follows the same write-ahead path (the thesis's chapter II.7):

1. check who asks, what, and that the stock allows it — nothing is written if it fails;
2. commit an ``intent`` row to the journal (who, what, which pocket, how many);
3. open the drawer (motor until its end switch), pulse the pocket's magnet if it is lidded;
4. the person takes (or puts), then confirms on screen the count they see in the pocket;
5. commit the outcome (movement rows per lot, a correction and a ``discrepancy`` alarm if the
   count is not what the journal expects), in one transaction with the stock projection;
6. the Close button (or the screen) closes the drawer until its end switch.

A power cut between 2 and 5 leaves an intent without an outcome: at the next start it becomes
a ``discrepancy`` alarm for a pharmacist, never a guess. All of this runs on one asyncio loop;
hardware callbacks (any thread) only post events into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from transitions.extensions.asyncio import AsyncMachine

from controller import badge, localtime
from controller import scan as scanning
from controller.alarms import Alarms, AlarmText, ResolveNote, Where, note, text
from controller.auth import (
    PIN_CHECKS_AT_ONCE,
    UNKNOWN_USER_JOURNAL_S,
    LogoutReason,
    PharmacyLogoutReason,
    PinHasher,
    User,
    require,
)
from controller.config import Config
from controller.dates import parse_day
from controller.drawer import STATES_FR, DrawerUnit
from controller.errors import (
    ArmoireError,
    AuthError,
    ConfigError,
    HardwareError,
    InputError,
    NotFound,
    RuleViolation,
    StateError,
    StoreError,
)
from controller.journal import integrity_problem, integrity_problem_at
from controller.store import JournalEntry, StockDelta, Store
from controller.tasks import keep
from hal.clock import Clock, TimerHandle
from hal.parts import EventKind, Hardware, HardwareEvent

log = logging.getLogger(__name__)

#: Staff badges one person may have refused within BADGE_TEXT_WINDOW_S (read into a text
#: field, or enrolled while another person holds them) before her account locks: each
#: refusal tells her that a card number is enrolled, and a batch of cards is often
#: numbered in sequence. A nurse who badges into a field by mistake does it once or
#: twice, sees the message and types; five within a quarter of an hour is someone trying
#: numbers (docs/ui.md, *Badge reader*).
BADGE_TEXT_MAX = 5
BADGE_TEXT_WINDOW_S = 900.0

#: Operation kind -> sign of the expected stock movement.
SIGNS = {"withdraw": -1, "waste": -1, "remove": -1, "restock": +1, "return": +1, "count": 0,
         "move_out": -1, "move_in": +1}
#: Drawer faults found when the cabinet starts: a drawer not closed, with nobody at it.
AT_START = ("open_at_start", "ajar_at_start")
#: The same, found when a drawer's board answers again (silent at start, or rebooted).
AT_LINK_UP = ("open_at_link_up", "ajar_at_link_up")
#: ``meta`` key prefix (+ drawer id): the last intent after which the lidded drawer was seen
#: closed, every lid pushed home.
LIDS_HOME = "lids_home."
#: Why an operation's pockets were asked to be counted after a fault on the drawer's way
#: (:attr:`Operation.exposed_by`): the code its intent is closed with.
Exposure = Literal["JAMMED_PART_OPEN", "POSITION_UNKNOWN"]
#: Faults of a drawer held by an operation that leave it somewhere a hand may reach: kind ->
#: the code the person reads and the intent's outcome, and the text of the count alarms. A
#: drawer whose board falls silent may stand anywhere: the board may have run the command
#: whose answer was lost, and its own watchdog stops the motor wherever it is then.
EXPOSING: dict[str, tuple[Exposure, str]] = {"jammed": ("JAMMED_PART_OPEN", "jammed_part_open"),
                                             "switch_fault": ("POSITION_UNKNOWN",
                                                              "switch_fault_unknown"),
                                             "offline": ("POSITION_UNKNOWN", "offline_unknown")}
#: Why a drawer went offline when the hardware answered and refused the command (its link
#: is up, the motor did not run on it): its switches still say where it stands.
REFUSED = frozenset({"BOARD_REFUSED", "ACTUATOR_TIMER"})
#: Why a lid's RELEASE failed when the hardware answered (the magnet was not pulsed); any
#: other reason (no answer) leaves the lid possibly up.
ANSWERED = REFUSED | {"MAGNET_BUSY"}
#: Operation kind -> the permission it needs.
PERMISSION = {"withdraw": "withdraw", "waste": "waste", "remove": "remove",
              "restock": "restock", "return": "return", "count": "count",
              "move_out": "move_stock", "move_in": "move_stock"}

SESSION_STATES = ["locked", "menu", *SIGNS]
#: Drawer states in which a drawer is in use: no other drawer may open meanwhile.
DRAWER_IN_USE = frozenset({"opening", "open", "closing"})
#: How often every lot's expiry is re-checked while the cabinet runs.
EXPIRY_SWEEP_S = 3600.0
#: The midnight sweep runs this long after midnight, so that the clock has surely turned.
MIDNIGHT_MARGIN_S = 1.0
SESSION_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "login", "source": "locked", "dest": "menu"},
    {"trigger": "logout", "source": "menu", "dest": "locked"},
    {"trigger": "logout", "source": list(SIGNS), "dest": "locked",
     "conditions": "no_drawer_open"},
    {"trigger": "finish", "source": list(SIGNS), "dest": "menu"},
    *({"trigger": f"begin_{k}", "source": "menu", "dest": k} for k in SIGNS),
]
#: What a user id may look like (it is shown on screens and written in the journal).


@dataclass(frozen=True)
class Pocket:
    drawer: str
    row: int
    col: int
    drug: str | None
    capacity: int
    min_level: int | None = None
    max_level: int | None = None

    @property
    def label(self) -> str:
        """How people name a pocket: drawer, row, column, counted from 1."""
        return f"{self.drawer}-{self.row + 1}-{self.col + 1}"


def fitted_levels(levels: tuple[int | None, int | None], capacity: int
                  ) -> tuple[int | None, int | None]:
    """Approved (min, max) within a pocket's capacity, as a capacity change caps them
    (``formulary.set_capacity``): max down to the capacity, min under it."""
    lo, hi = levels
    if hi is not None and hi > capacity:
        hi = capacity
        lo = min(lo, capacity - 1) if lo is not None else None
    if lo is not None:
        lo = max(0, lo)
    return lo, hi


@dataclass(frozen=True)
class Taken:
    """Where the units of a withdrawal came from, as the journal has it (for a return)."""
    lot: str
    expiry: str | None
    pocket: tuple[str, int, int]


@dataclass(frozen=True)
class BadgeHolder:
    """Whom a badge presented at the lock screen names, with the badge's keyed hash (never
    its UID): the PIN step checks that same badge again (:meth:`Cabinet.holds_badge`)
    without hashing it a second time."""
    user: User
    badge_hash: str


@dataclass
class Operation:
    intent: int
    kind: str
    user: User
    pocket: Pocket
    drug: dict[str, Any]
    qty: int
    expected_before: int
    lot: str | None = None
    expiry: str | None = None
    patient: str | None = None
    witness: str | None = None
    capacity: int | None = None    # move_in: the pocket's capacity for its new drug
    #: move_in: the approved (min, max) the drug had in the pocket it left, (None, None)
    #: for the default rule.
    levels: tuple[int | None, int | None] = (None, None)
    #: Written into the detail of the intent and of every row of the outcome: what the
    #: operation is for when its kind alone does not say (a re-layout's put back).
    context: dict[str, Any] = field(default_factory=dict)
    #: The day the intent was written: which lots may be given is decided as of that day,
    #: so a withdrawal that crosses midnight records what was planned when the drawer opened.
    day: str = ""
    step: str = "opening"          # opening -> act -> (closing) -> done | aborted
    counted: int | None = None
    drawer_closed: bool = False
    #: The pockets asked to be counted because the drawer jammed part-open, or lost track of
    #: where it stands (a switch fault on its way), during this operation (their labels);
    #: empty when the fault exposed nothing that holds stock.
    exposed: list[str] = field(default_factory=list)
    #: Why ``exposed`` was asked: ``JAMMED_PART_OPEN`` or ``POSITION_UNKNOWN``.
    exposed_by: Exposure = "JAMMED_PART_OPEN"
    #: The drawer fault that asked them (``jammed``, ``switch_fault``, ``offline``): what the
    #: person is told happened.
    exposed_fault: str = "jammed"
    outcome_error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def expected_after(self) -> int:
        return self.expected_before + SIGNS[self.kind] * self.qty

    def describe(self) -> dict[str, Any]:
        return {"intent": self.intent, "kind": self.kind, "drug": self.drug["id"],
                "drug_name": self.drug["name"], "pocket": self.pocket.label,
                "drawer": self.pocket.drawer, "row": self.pocket.row, "col": self.pocket.col,
                "qty": self.qty, "step": self.step, "counted": self.counted,
                "drawer_closed": self.drawer_closed}


class Session:
    """The touchscreen session: who is logged in and what they are doing.

    locked -> menu -> withdraw | restock | return | waste | count | remove -> menu -> locked;
    logging out (or timing out) is refused while a drawer is open for an operation.
    """

    state: str

    def __init__(self) -> None:
        self.user: User | None = None
        self.op: Operation | None = None
        self.machine = AsyncMachine(model=self, states=SESSION_STATES,
                                    transitions=SESSION_TRANSITIONS,
                                    initial="locked", queued=True, auto_transitions=False)

    async def fire(self, trigger: str) -> None:
        """Run a trigger bound by transitions; a refused transition is a StateError."""
        if not await getattr(self, trigger)():
            raise StateError(f"cannot {trigger} now ({self.state})",
                             f"action impossible maintenant ({self.state})", code="WRONG_STATE")

    def no_drawer_open(self) -> bool:
        return self.op is None or self.op.step in ("done", "aborted") or self.op.drawer_closed

    def on_enter_locked(self) -> None:
        self.user = None


Listener = Callable[[dict[str, Any]], None]
Offload = Callable[..., Awaitable[Any]]


class Cabinet:
    def __init__(self, config: Config, store: Store, hardware: Hardware, clock: Clock,
                 *, today: Callable[[], date] | None = None,
                 offload: Offload = asyncio.to_thread) -> None:
        """``offload`` runs a PIN hash off the loop (a worker thread). The simulator passes
        one that runs it at once: its clock is virtual, and time passing while a thread
        hashes would stamp the journal with how fast the host machine is."""
        self.config = config
        self.offload = offload
        self.settings = config.settings
        self.store = store
        self.hardware = hardware
        self.clock = clock
        self.alarms = Alarms(store)
        self.hasher = PinHasher(self.settings.argon2_time_cost, self.settings.argon2_memory_kib)
        self._hash_slots = asyncio.Semaphore(PIN_CHECKS_AT_ONCE)
        self._auth_locks: dict[str, asyncio.Lock] = {}
        #: Failed logins held back for the journal's summary row, by reason ("unknown
        #: user", "unknown badge").
        self._unknown_failures: dict[str, int] = {}
        self._unknown_logged: float | None = None
        #: When each person last had a badge refused (badge_refused), within the window.
        self._badge_refusals: dict[str, deque[float]] = {}
        #: The per-cabinet key of the badges' hashes (controller.badge); None until
        #: the runtime loads it (tools and tests that need no badge).
        self.badge_key: bytes | None = None
        self._unknown_timer: TimerHandle | None = None
        self.session = Session()
        #: The ward's zone: days (expiry above all) are the ward's, not UTC's.
        self.zone = localtime.zone(self.settings.timezone)
        self.today = today or (lambda: store.wallclock().astimezone(self.zone).date())
        self.listeners: list[Listener] = []
        self.units: dict[str, DrawerUnit] = {
            d_id: DrawerUnit(d_id, part, clock, self._on_drawer_fault,
                             limit_s=config.hardware.timing.max_travel_s + 2.0,
                             on_closed=self._lids_home)
            for d_id, part in hardware.drawers.items()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._activity = 0.0
        self._timer: TimerHandle | None = None
        self._sweep_timer: TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Set by :meth:`shutdown`: movements cut short from then on are not faults.
        self._stopping = False
        #: The start-up integrity check, running beside the cabinet until it reports.
        self.integrity_checked: asyncio.Task[bool] | None = None

    # == start-up =========================================================================
    async def start(self) -> None:
        """Recover, look at the drawers and every lot, then serve; the integrity check runs
        beside. Run it inside :func:`controller.store.starting_on`, which refuses a damaged
        database as DB_UNREADABLE."""
        # Every row the cabinet writes chains to the journal's last one: if that cannot be
        # read, nothing can be recorded, not even the alarm saying so. Refuse to start.
        self.store.head()
        self._record_zone()
        self._loop = asyncio.get_running_loop()
        self.hardware.set_listener(self._post)
        self.recover()
        for unit in self.units.values():
            await unit.sync_from_switches()
            if unit.state == "open":  # no operation survives a restart: nobody is using it
                self._on_drawer_fault(unit, "open_at_start", {})
            elif unit.state == "unknown":  # neither end switch: ajar, out of service
                self._on_drawer_fault(unit, "ajar_at_start", {})
        self.check_expiry()
        # A pocket may be low already (provisioned empty, or written before its alarm
        # existed): the rule holds from the start.
        self.check_all_low_stock()
        # Started last: if a step above refuses the database, no thread is left reading the
        # file as the caller closes it. (The check turns its own failures into its alarm;
        # ``keep`` logs what is left, such as the alarm's write failing.)
        check = self.integrity_checked = asyncio.ensure_future(self.check_integrity_async())
        keep(self._tasks, check, "the start-up integrity check", log)
        self._schedule_sweep()
        self._emit({"type": "ready"})

    def _record_zone(self) -> None:
        """Write the ward's zone into the database, where tools that read it later (a
        backup, ``armoire journal register``) find where its days start; a change of zone
        is logged, since days are cut differently from then on."""
        before = self.store.meta(localtime.META_KEY)
        if before != self.settings.timezone:
            if before is not None:
                log.warning("time zone changed from %s to %s: days (expiry, registers) are "
                            "cut at the new zone's midnight from now on", before,
                            self.settings.timezone)
            self.store.set_meta(localtime.META_KEY, self.settings.timezone)
        log.info("ward time zone: %s", self.settings.timezone)

    def _schedule_sweep(self) -> None:
        """Lots expire while nobody touches them: re-check every lot once an hour, and just
        after the ward's midnight, when a day's lots expire, so that the night shift sees
        the alarm at 00:00 and not up to an hour later."""
        def fire() -> None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._sweep)

        now = self.store.wallclock().astimezone(self.zone)
        midnight = localtime.day_start(now.date() + timedelta(days=1), self.zone)
        to_midnight = (datetime.fromisoformat(midnight) - now).total_seconds()
        self._sweep_timer = self.clock.call_later(
            min(EXPIRY_SWEEP_S, max(to_midnight, 0.0) + MIDNIGHT_MARGIN_S), fire)

    def _sweep(self) -> None:
        if self._stopping:  # posted before shutdown cancelled its timer: too late to run
            return
        self.check_expiry()
        self._schedule_sweep()

    def check_integrity(self) -> bool:
        """The hash chain and the stock projection, as `journal verify` does.

        A failure does not stop the cabinet (nurses still need their drugs); it raises an
        alarm only a pharmacist can close, and is journaled.
        """
        return self._report_integrity(integrity_problem(self.store.conn))

    async def check_integrity_async(self) -> bool:
        """:meth:`check_integrity` at every start, off the loop.

        The check reads the whole journal (seconds on a Pi after years of a busy ward), so
        it runs in a worker thread on its own connection while the cabinet already serves;
        the alarm, if any, is raised on the loop when the check ends.
        """
        if self.store.private:
            return self.check_integrity()
        stop = threading.Event()
        try:
            problem = await asyncio.to_thread(integrity_problem_at, self.store.path,
                                              stop.is_set)
        except asyncio.CancelledError:
            stop.set()  # shutting down: the thread ends soon instead of finishing the check
            raise
        except Exception as exc:  # a check that dies is a failed check, and must be seen
            log.error("[INTEGRITY_CHECK_FAILED] the start-up integrity check could not finish:"
                      " %s", type(exc).__name__, exc_info=exc)
            problem = text("check_failed", x=type(exc).__name__)
        return self._report_integrity(problem)

    def _report_integrity(self, problem: AlarmText | None) -> bool:
        if problem is None:
            return True
        with self.store.transaction():
            self.store.append(JournalEntry("integrity_failed", code="JOURNAL_INTEGRITY",
                                           detail={"problem": problem}))
            self.alarms.raise_("journal_integrity", Where(), problem)
        return False

    def recover(self) -> None:
        """Intents left without an outcome by a power cut become discrepancies."""
        for intent in self.store.open_intents():
            detail = {"operation": (intent.get("code") or "").lower(), "reason": "power_loss"}
            where = Where(intent["drug"], intent["drawer"], intent["row"], intent["col"])
            with self.store.transaction():
                self.store.append(JournalEntry(
                    "discrepancy", drug=intent["drug"], drawer=intent["drawer"],
                    row=intent["row"], col=intent["col"], qty=intent["qty"],
                    ref=intent["seq"], code="INTERRUPTED", detail=detail))
                self.alarms.raise_(
                    "discrepancy", where,
                    text("interrupted", n=intent["seq"]),
                    ref=intent["seq"])

    def _post(self, event: HardwareEvent) -> None:
        """Hardware listener: any thread. Only hands the event to the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch, event)

    def _dispatch(self, event: HardwareEvent) -> None:
        if self._stopping:
            # Posted as the outputs were cut (a motor stopped short, a board link closing):
            # not a fault of the drawer, and the next start reads its switches anyway.
            return
        self._spawn(self._handle_event(event))

    def _spawn(self, coro: Any) -> None:
        keep(self._tasks, asyncio.ensure_future(coro), "a background task", log)

    async def _handle_event(self, event: HardwareEvent) -> None:
        if event.kind is EventKind.CLOSE_PRESSED:
            op = self.session.op
            if op is not None and op.pocket.drawer == event.drawer:
                if op.step == "act":
                    try:
                        await self.close_drawer()
                    except ArmoireError as exc:   # jammed part-open: said on the screen
                        self._emit({"type": "error", "code": exc.code, "en": exc.message_en,
                                    "fr": exc.message_fr})
                return
            unit = self.units.get(event.drawer) if event.drawer else None
            # Open with no operation on it (left so by a power cut): closing is the safe way,
            # and the button is what anyone at the cabinet will press.
            if unit is not None and unit.state == "open" and await unit.close() == "closed":
                self.alarms.auto_resolve("drawer_fault", Where(drawer=unit.id),
                                         note("close_button"))
            return
        if event.kind is EventKind.LINK_DOWN and event.drawer in self.units:
            # A drawer already offline (its command failed first) is not faulted twice:
            # the unit's machine keeps one report per fault.
            await self.units[event.drawer].fire("ev_offline", detail=dict(event.detail))
            return
        if event.kind is EventKind.LINK_UP and event.drawer in self.units:
            unit = self.units[event.drawer]
            if unit.state == "offline":
                await unit.fire("ev_online")
                await unit.sync_from_switches()
                if unit.state == "closed":
                    self.alarms.auto_resolve("drawer_fault", Where(drawer=unit.id),
                                             note("board_back"))
                elif unit.state in ("open", "unknown") and self._op_on(unit.id) is None:
                    # Not closed, and no operation of ours on it: its board was silent at
                    # start (slower than the Pi after a power cut) or rebooted and lost what
                    # it saw. Nobody knows who reached in meanwhile: as if found so at start.
                    self._on_drawer_fault(
                        unit, "open_at_link_up" if unit.state == "open" else "ajar_at_link_up",
                        {"rebooted": bool(event.detail.get("rebooted"))})
            self._emit({"type": "hardware", "kind": event.kind.value, "drawer": event.drawer})
            return
        if event.drawer in self.units:
            await self.units[event.drawer].handle(event)
        self._emit({"type": "hardware", "kind": event.kind.value, "drawer": event.drawer})

    def _on_drawer_fault(self, unit: DrawerUnit, kind: str, detail: dict[str, Any]) -> None:
        """Journal the fault and raise its alarm in one transaction: a power cut between the
        two would leave a fault nobody is told about. The counts a jam part-open asks for
        are in it too: the operation's outcome comes later, and a cut before it leaves an
        intent whose discrepancy alarm (at the next start) is then the one already open for
        its pocket, while the other exposed pockets would otherwise never be asked for."""
        op = self._op_on(unit.id)
        # A switch fault while the drawer stands open (not moving) is no less exposing than
        # one on its way: the drawer is out of service, cannot be driven shut, and stands
        # open with nobody's operation on it until a technician resets it. The person's
        # count (before or after the fault) says what the pocket held then, not after. A
        # board silent while its drawer stands open may answer again before she closes (the
        # drawer was in front of her all along): that is decided when she does
        # (close_drawer). Once the operation has seen its drawer closed, it exposes nothing.
        exposing = op is not None and kind in EXPOSING and not op.drawer_closed and not (
            kind == "offline" and op.step == "act")
        with self.store.transaction():
            if exposing and op is not None:
                detail = {**detail, **self._jam_exposure(unit, op, kind, detail.get("reason"))}
            self.store.append(JournalEntry("drawer_fault", drawer=unit.id, code=kind.upper(),
                                           detail=detail))
            self.alarms.raise_("drawer_fault", Where(drawer=unit.id),
                               text("fault", d=unit.id, k=kind.replace("_", " ")))
            if kind == "forced_open" and self._drawer_type(unit.id) == "matrix":
                self._count_exposed_pockets(unit.id, "forced_open")
            elif kind in AT_START or kind in AT_LINK_UP:
                # Open or ajar while the cabinet was off (or the board silent): every pocket
                # of a matrix drawer was within reach of anyone, for as long as it lasted;
                # of a lidded drawer, the lid released since it last closed. The
                # interrupted operation's own pocket (if any) already has its alarm;
                # raise_ keeps it to one.
                self._count_exposed_pockets(
                    unit.id, "open_at_start" if kind in AT_START else "open_at_link_up",
                    only=None if self._drawer_type(unit.id) == "matrix"
                    else self._lid_maybe_released(unit.id))
            elif kind == "magnet_failed" and op is not None \
                    and detail.get("reason") not in ANSWERED:
                # No answer to the RELEASE: the board may have pulsed the magnet before
                # falling silent, and the lid then stands up until the drawer closes.
                op.exposed_by, op.exposed_fault = "POSITION_UNKNOWN", "offline"
                op.exposed = self._count_exposed_pockets(
                    unit.id, "offline_unknown", only={(op.pocket.row, op.pocket.col)},
                    ref=op.intent)
            elif exposing and op is not None and detail.get("position") != "closed":
                self._ask_counts(unit, op, kind, detail.get("reason"))
        self._emit({"type": "drawer_fault", "drawer": unit.id, "kind": kind})

    def _ask_counts(self, unit: DrawerUnit, op: Operation, kind: str, reason: Any = None
                    ) -> None:
        """The drawer faulted (``kind``) where a hand may reach, during ``op``: ask for the
        count of what it exposes (a matrix drawer's stocked pockets; a lidded drawer's
        released lid, none before it was open), in the caller's transaction, and keep on
        ``op`` what the person is to be told.

        A closed switch that does not let go as a lidded drawer starts to open may have
        stuck on the drawer's last way shut, where it read as the arrival: the drawer may
        have stood part-open since, with the lid its last operation released still up. That
        lid is asked for too (not as this operation's: its own lid was never pulsed, and she
        took nothing)."""
        op.exposed_by, why = EXPOSING[kind]
        op.exposed_fault = kind
        lidded = self._drawer_type(unit.id) != "matrix"
        if lidded and op.step == "opening" and reason == "did not release":
            self._count_exposed_pockets(unit.id, why,
                                        only=self._lid_maybe_released(unit.id, op.intent))
        only = None if not lidded else (
            set() if op.step == "opening" else {(op.pocket.row, op.pocket.col)})
        op.exposed = self._count_exposed_pockets(unit.id, why, only=only, ref=op.intent)
        if op.step != "opening" and op.counted is None and op.pocket.label not in op.exposed:
            # The pocket being served may hold nothing in the stock table yet (a restock or
            # a move in, not counted): the units just put in stand within reach all the
            # same. Its alarm is the one the count's own difference will find (the
            # operation's drug, not the pocket's).
            self.alarms.raise_("discrepancy", self._op_where(op),
                               text(why, d=unit.id, p=op.pocket.label), ref=op.intent)
            op.exposed = sorted([*op.exposed, op.pocket.label], key=lambda label: [
                int(n) for n in label.rsplit("-", 2)[1:]])

    def _last_intent_on(self, drawer: str, before: int | None = None
                        ) -> dict[str, Any] | None:
        """The drawer's latest intent (before the intent ``before``, if given): the last
        operation that opened it."""
        rows = self.store.query("SELECT seq, row, col FROM journal WHERE kind = 'intent' "
                                "AND drawer = ? AND (? IS NULL OR seq < ?) "
                                "ORDER BY seq DESC LIMIT 1", (drawer, before, before))
        return rows[0] if rows else None

    def _lids_home(self, unit: DrawerUnit) -> None:
        """A lidded drawer seen closed has every lid pushed home: note up to which intent,
        for a restart (or a board back) that finds it open again. Nothing is journaled: a
        note that cannot be written leaves the drawer's last lid counted then, the lesser
        harm."""
        if self._drawer_type(unit.id) in (None, "matrix"):
            return
        last = self._last_intent_on(unit.id)
        key = f"{LIDS_HOME}{unit.id}"
        if last is None or self.store.meta(key) == str(last["seq"]):
            return
        try:
            self.store.set_meta(key, str(last["seq"]))
        except StoreError as exc:
            log.warning("drawer %s: could not note its lids home (%s)", unit.id, exc.code)

    def _lid_maybe_released(self, drawer: str, before: int | None = None
                            ) -> set[tuple[int, int]]:
        """The lid a lidded drawer found open or ajar may have left released: the last
        operation's, unless the drawer was seen closed since its intent. A lid springs open
        when its magnet is pulsed, once the drawer is open, and only closing pushes it
        home; so a drawer found open after that operation's count (a power cut before the
        Close) stands with that pocket within reach of anyone. An operation ``aborted``
        released no lid: it never reached the open drawer, or its board answered that the
        magnet was not pulsed.

        ``before``: the intent of an operation whose closed switch did not let go; the
        operation before it is the one asked about, and the drawer's having been seen closed
        since is not believed (that closed switch is the one in doubt)."""
        last = self._last_intent_on(drawer, before)
        if last is None or (before is None and self.store.meta(f"{LIDS_HOME}{drawer}")
                            == str(last["seq"])) \
                or self.store.query("SELECT 1 FROM journal WHERE ref = ? AND kind = 'aborted'",
                                    (last["seq"],)):
            return set()
        return {(last["row"], last["col"])}

    def _op_on(self, drawer: str) -> Operation | None:
        """The session's operation holding ``drawer``, if one does."""
        op = self.session.op
        if op is None or op.pocket.drawer != drawer or op.step in ("done", "aborted"):
            return None
        return op

    def _drawer_type(self, drawer: str) -> str | None:
        spec = next((d for d in self.config.drawers if d.id == drawer), None)
        return spec.type if spec is not None else None

    @staticmethod
    def _jam_exposure(unit: DrawerUnit, op: Operation, kind: str, reason: Any
                      ) -> dict[str, Any]:
        """Where a drawer that faulted (``kind``) on its way during ``op`` stands, from its
        end switches (read once the motor is stopped; the drawer board's status comes with
        its report). Only its closed switch pressed alone says that nothing was exposed;
        neither (part-open), both or switches that cannot be read (position unknown) mean a
        hand may have reached in.

        A switch fault says the switches cannot be believed: the closed switch that "did not
        release" reads the same whether the motor stalled at the start (nothing exposed) or
        the switch is stuck and the drawer ran half open meanwhile. Its position is unknown,
        never ``closed``: counting pockets for nothing is the lesser harm. A jam while
        opening is reported after the closed switch has let go, or it would be that switch
        fault: the jam that stays closed is a backend that never moved the motor, caught by
        the controller's own deadline. A drawer whose board fell silent is where nobody
        knows: the board's last report is stale, and it may have run the command whose
        answer was lost, until its watchdog stopped the motor. One that answered and refused
        the command (``REFUSED``) did not run it, and its switches still read."""
        position = "unknown"
        # A silent board's last report is stale; one that refused the command still reads.
        if kind == "jammed" or (kind == "offline" and reason in REFUSED):
            with contextlib.suppress(HardwareError):
                sw = unit.part.switches
                position = ("closed" if sw.closed and not sw.open
                            else "unknown" if sw.closed and sw.open else "part_open")
        return {"position": position, "operation": op.intent}

    def _count_exposed_pockets(self, drawer: str, why: str, *,
                               only: set[tuple[int, int]] | None = None,
                               ref: int | None = None) -> list[str]:
        """Ask for the count of each pocket a drawer exposed that holds stock, with a
        ``discrepancy`` alarm (its text ``why``, "drawer A jammed part-open: count pocket
        A-1-1"; the count page lists
        them first); returns their labels. ``only``: the pockets that were reachable, None
        for all of them.

        A drawer pulled open with no command was opened by nobody the journal can name, and
        a drawer jammed part-open stays so, with nobody's operation on it, until a technician
        resets it: whatever it exposed may have been taken, and a dispensing cabinet's
        failed or forced drawer is inventoried before it is trusted again. An open (matrix)
        drawer exposes every pocket. A lidded (cubie) drawer's pockets stay latched, and a
        carousel shows one slot at its window: only the pocket an operation opened counts
        (the caller says which)."""
        labels = []
        for row in self.store.query(
                """SELECT p.drug, p.row, p.col FROM pockets p JOIN stock s
                   ON s.drawer = p.drawer AND s.row = p.row AND s.col = p.col
                   WHERE p.drawer = ? AND p.drug IS NOT NULL
                   GROUP BY p.row, p.col HAVING SUM(s.on_hand) > 0
                   ORDER BY p.row, p.col""", (drawer,)):
            if only is not None and (row["row"], row["col"]) not in only:
                continue
            label = f"{drawer}-{row['row'] + 1}-{row['col'] + 1}"
            self.alarms.raise_("discrepancy", Where(row["drug"], drawer, row["row"], row["col"]),
                               text(why, d=drawer, p=label), ref=ref)
            labels.append(label)
        return labels

    def _emit(self, message: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(message)

    # == people ===========================================================================
    def user(self, user_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM users WHERE id = ? AND active = 1", (user_id,))
        if not rows:
            raise NotFound(f"unknown user {user_id!r}", f"utilisateur inconnu {user_id!r}",
                           code="UNKNOWN_USER")
        return rows[0]

    def authenticate(self, user_id: str, pin: str) -> User:
        """Check a PIN here, on the caller's thread (tools, tests). Counts failures; locks
        after the limit. Screens use :meth:`authenticate_async`, which keeps the loop free."""
        row = self._auth_row(user_id)
        if row is None:
            self.hasher.dummy_verify(str(pin))
            raise self._unknown_user()
        return self._auth_outcome(row, self.hasher.verify(row["pin_hash"], str(pin)))

    async def authenticate_async(self, user_id: str, pin: str) -> User:
        """:meth:`authenticate` with argon2 in a worker thread, so that the loop that drives
        the drawers and serves the pages never waits for a hash. At most
        ``PIN_CHECKS_AT_ONCE`` hashes run together; and one check at a time per person, from
        reading her row to counting the outcome, so concurrent wrong PINs all count."""
        row = self._auth_row(user_id)
        if row is None:
            await self._hash_check(self.hasher.dummy_verify, str(pin))
            raise self._unknown_user()
        async with self._auth_locks.setdefault(str(row["id"]), asyncio.Lock()):
            row = self._auth_row(user_id)  # as the attempts before this one left it
            if row is None:
                raise self._unknown_user()
            ok = await self._hash_check(self.hasher.verify, row["pin_hash"], str(pin))
            return self._auth_outcome(row, ok)

    async def _hash_check(self, check: Callable[..., Any], *args: str) -> Any:
        async with self._hash_slots:
            return await self.offload(check, *args)

    async def hash_pin(self, pin: str) -> str:
        """A PIN's argon2 hash, computed off the loop like every check."""
        result: str = await self._hash_check(self.hasher.hash, pin)
        return result

    def pin_change_required(self, user_id: str) -> bool:
        """True while the person's PIN is one someone else chose (first PIN, reset)."""
        rows = self.store.query("SELECT must_change_pin FROM users WHERE id=?", (user_id,))
        return bool(rows and rows[0]["must_change_pin"])

    def check_own_pin(self, user: User) -> None:
        """Nothing is done under a PIN that a pharmacist or an admin also knows: whoever
        calls (touchscreen, pharmacy pages, tools), the person first sets her own."""
        if self.pin_change_required(user.id):
            raise AuthError("choose your own PIN first", "choisissez d'abord votre propre "
                            "code PIN", code="PIN_CHANGE_REQUIRED")

    def _auth_row(self, user_id: str) -> dict[str, Any] | None:
        """The active person, refused at once when locked (no hash is checked for her)."""
        rows = self.store.query("SELECT * FROM users WHERE id = ? AND active = 1", (user_id,))
        if not rows:
            return None
        if rows[0]["locked"]:
            self.store.append(JournalEntry("auth_failed", user=user_id, code="AUTH_LOCKED"))
            raise AuthError("this account is locked; ask a pharmacist",
                            "ce compte est bloqué ; demandez à un pharmacien",
                            code="AUTH_LOCKED")
        return rows[0]

    def _unknown_user(self, reason: str = "unknown user") -> AuthError:
        """An unknown id gets a wrong PIN's answer. Guessing ids must not grow the journal:
        one row sums up the unknown-id failures at most every UNKNOWN_USER_JOURNAL_S. The
        failures held back are written when that interval ends (a timer), or at shutdown:
        not at the next failure, which may come hours later or never, so the journal says
        that someone was guessing, and when. Unknown badges are summed up the same way, in
        a row of their own (``reason``), never with the badge's UID."""
        self._unknown_failures[reason] = self._unknown_failures.get(reason, 0) + 1
        now = self.clock.monotonic()
        if self._unknown_logged is None or now - self._unknown_logged >= UNKNOWN_USER_JOURNAL_S:
            self._journal_unknown(now)
        elif self._unknown_timer is None:
            self._unknown_timer = self.clock.call_later(
                self._unknown_logged + UNKNOWN_USER_JOURNAL_S - now, self._unknown_due)
        if reason == "unknown badge":
            # Badges are enrolled by IT (manage_badges: admins only), not by a pharmacist.
            return AuthError("badge not recognised: type your user id, or ask an "
                             "administrator (IT) to enrol your badge", "badge non reconnu : "
                             "saisissez votre identifiant, ou demandez à un administrateur "
                             "(informatique) d'enregistrer votre badge", code="AUTH_FAILED")
        return AuthError("wrong user or PIN", "identifiant ou code PIN incorrect")

    def _journal_unknown(self, now: float) -> None:
        """Write the unknown-id failures held back, if any (one row)."""
        if self._unknown_timer is not None:
            self._unknown_timer.cancel()
            self._unknown_timer = None
        if not self._unknown_failures:
            return
        for reason, attempts in sorted(self._unknown_failures.items(), reverse=True):
            self.store.append(JournalEntry("auth_failed", code="AUTH_FAILED", detail={
                "reason": reason, "attempts": attempts}))
        self._unknown_failures, self._unknown_logged = {}, now

    def _unknown_due(self) -> None:
        """Timer (any thread): the summary's interval is over; the write is the loop's."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._unknown_flush)

    def _unknown_flush(self) -> None:
        self._unknown_timer = None
        if not self._stopping:
            self._journal_unknown(self.clock.monotonic())

    def _auth_outcome(self, row: dict[str, Any], ok: bool) -> User:
        """Count a wrong PIN (in SQL, so no attempt is lost) and lock at the limit; clear the
        count after a right one, unless the person was locked or deactivated meanwhile."""
        user_id = str(row["id"])
        if not ok:
            with self.store.transaction() as c:
                c.execute("UPDATE users SET failed = failed + 1 WHERE id=?", (user_id,))
                failed = int(c.execute("SELECT failed FROM users WHERE id=?",
                                       (user_id,)).fetchone()[0])
                locked = failed >= self.settings.max_pin_failures
                if locked:
                    c.execute("UPDATE users SET locked=1 WHERE id=?", (user_id,))
                self.store.append(JournalEntry("auth_failed", user=user_id, code="AUTH_FAILED",
                                               detail={"failures": failed}))
                if locked:
                    self.store.append(JournalEntry("auth_lockout", user=user_id,
                                                   code="AUTH_LOCKED"))
                    self.alarms.raise_("auth_lockout", Where(user=user_id),
                                       text("locked", u=user_id, n=failed),
                                       user=user_id)
            if locked:
                # Wrong PINs typed from inside her own open session (changing her PIN):
                # whoever is typing them must not keep using the account.
                self.end_session_of(user_id, "locked")
                raise AuthError("too many wrong PINs: this account is now locked",
                                "trop de codes erronés : ce compte est bloqué",
                                code="AUTH_LOCKED")
            raise AuthError("wrong user or PIN", "identifiant ou code PIN incorrect")
        current = self._auth_row(user_id)
        if current is None:
            raise self._unknown_user()
        if current["failed"]:
            with self.store.transaction() as c:
                c.execute("UPDATE users SET failed=0 WHERE id=?", (user_id,))
        return User(row["id"], row["name"], row["role"], row["lang"])

    def badge_fields(self, typed: Iterable[tuple[str, object]]) -> dict[str, set[str]]:
        """The fields, among ``typed`` (name, value), that hold the UID of a badge enrolled
        here, alone or among other words, each with whose badges: the reader types wherever
        the focus is, after whatever the field held (:func:`badge.badges_in_fields`)."""
        return badge.badges_in_fields(self.store, self.badge_key, typed)

    def badge_refused(self, user_id: str, *, field: str | None = None,
                      taken_for: str | None = None) -> None:
        """Journal that an enrolled badge was refused to ``user_id``: read into text field
        ``field`` (``badge_in_text``), or enrolled for ``taken_for`` while another person
        holds it (``badge_taken``). Never the number nor its hash: the row says who learnt
        that some card number is enrolled, and when. BADGE_TEXT_MAX of them within
        BADGE_TEXT_WINDOW_S lock the account as wrong PINs do (``AUTH_LOCKED``, an
        ``auth_lockout`` alarm for whoever manages users, the session ended): the answer
        cannot be the same for an enrolled number (it must not be stored) and for a lot
        number, so the number of answers is what is limited."""
        now = self.clock.monotonic()
        times = self._badge_refusals.setdefault(user_id, deque())
        while times and now - times[0] >= BADGE_TEXT_WINDOW_S:
            times.popleft()
        times.append(now)
        locked = len(times) >= BADGE_TEXT_MAX
        with self.store.transaction() as c:
            if taken_for is not None:
                self.store.append(JournalEntry("badge_taken", user=user_id,
                                               detail={"id": taken_for}))
            else:
                self.store.append(JournalEntry("badge_in_text", user=user_id,
                                               detail={"field": field or "?"}))
            if locked:
                c.execute("UPDATE users SET locked=1 WHERE id=?", (user_id,))
                self.store.append(JournalEntry("auth_lockout", user=user_id,
                                               code="AUTH_LOCKED"))
                self.alarms.raise_("auth_lockout", Where(user=user_id),
                                   text("badge_probe", u=user_id, n=len(times)),
                                   user=user_id)
        if locked:
            del self._badge_refusals[user_id]
            self.end_session_of(user_id, "locked")
            raise AuthError("too many staff badges refused: this account is now locked",
                            "trop de badges du personnel refusés : ce compte est bloqué",
                            code="AUTH_LOCKED")

    def badge_hash_of(self, uid: str) -> str:
        """The stored form of a badge (already checked by :func:`badge.check_uid`)."""
        if self.badge_key is None:
            raise ConfigError("badges are not set up on this cabinet (no badge key)",
                              "les badges ne sont pas configurés sur cette armoire (pas de "
                              "clé des badges)", code="BADGE_KEY_MISSING")
        return badge.badge_hash(self.badge_key, uid)

    async def identify_badge(self, raw: str) -> BadgeHolder:
        """Who holds the badge the reader typed: the first half of a badge login, the PIN
        is still to be checked (:meth:`login`). Garbage is ``BAD_BADGE`` and changes
        nothing; an unknown badge, or one of a deactivated person, is counted like an
        unknown id (``AUTH_FAILED``, summed up in the journal without the UID); a locked
        person's badge is refused like her id (``AUTH_LOCKED``, journaled)."""
        badge_hash = self.badge_hash_of(badge.check_uid(raw))
        rows = self.store.query(
            "SELECT u.id FROM badges b JOIN users u ON u.id = b.user "
            "WHERE b.hash = ? AND u.active = 1", (badge_hash,))
        if not rows:
            raise self._unknown_user("unknown badge")
        row = self._auth_row(str(rows[0]["id"]))
        if row is None:  # deactivated between the two reads
            raise self._unknown_user("unknown badge")
        return BadgeHolder(User(row["id"], row["name"], row["role"], row["lang"]), badge_hash)

    def holds_badge(self, user_id: str, badge_hash: str) -> bool:
        """Whether this badge (:meth:`badge_hash_of`) still opens this active person's
        account: a badge revoked, replaced, or its holder deactivated while her PIN was
        awaited opens nothing."""
        return bool(self.store.query(
            "SELECT 1 FROM badges b JOIN users u ON u.id = b.user "
            "WHERE b.user = ? AND b.hash = ? AND u.active = 1", (user_id, badge_hash)))

    async def login(self, user_id: str, pin: str, *, by_badge: bool = False) -> User:
        """Open the cabinet's session after the PIN check. ``by_badge``: the person was
        identified by her badge (:meth:`identify_badge`), which the login row says."""
        if self.session.state != "locked":
            raise StateError("someone is logged in; log out first",
                             "une session est ouverte ; déconnectez-vous d'abord",
                             code="SESSION_OPEN")
        user = await self.authenticate_async(user_id, pin)
        if self.session.state != "locked":  # someone else logged in while the PIN was checked
            raise StateError("someone is logged in; log out first",
                             "une session est ouverte ; déconnectez-vous d'abord",
                             code="SESSION_OPEN")
        await self.session.fire("login")
        self.session.user = user
        self.store.append(JournalEntry("login", user=user.id,
                                       detail={"by": "badge"} if by_badge else {}))
        self.touch()
        self._emit({"type": "session", "state": "menu", "user": user.id})
        return user

    async def logout(self, *, reason: LogoutReason = "user") -> None:
        session = self.session
        if session.state == "locked":
            return
        if not session.no_drawer_open():
            raise StateError("close the drawer first", "fermez d'abord le tiroir",
                             code="DRAWER_OPEN")
        user = session.user
        op = session.op
        if op is not None and op.step not in ("done", "aborted"):
            self._abandon(op)
        await session.fire("logout")
        session.op = None
        self._cancel_timer()
        self.store.append(JournalEntry("logout", user=user.id if user else None,
                                       code=reason.upper()))
        self._emit({"type": "session", "state": "locked", "reason": reason})

    def touch(self) -> None:
        """Any action by the person restarts the inactivity timer."""
        self._activity = self.clock.monotonic()
        self._cancel_timer()
        self._timer = self.clock.call_later(self.settings.inactivity_s, self._inactivity_check)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _inactivity_check(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: self._spawn(self._timeout()))

    async def _timeout(self) -> None:
        idle = self.clock.monotonic() - self._activity
        if self.session.state == "locked" or self._stopping:
            return
        if idle + 1e-6 < self.settings.inactivity_s or not self.session.no_drawer_open():
            self._timer = self.clock.call_later(
                max(1.0, self.settings.inactivity_s - idle), self._inactivity_check)
            return
        await self.logout(reason="inactivity")

    def current_user(self) -> User:
        user = self.session.user
        if user is None or self.session.state == "locked":
            raise AuthError("log in first", "identifiez-vous d'abord", code="NOT_LOGGED_IN")
        return user

    # == formulary and pockets ============================================================
    def drug(self, drug_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM drugs WHERE id = ?", (drug_id,))
        if not rows:
            raise NotFound(f"unknown drug {drug_id!r}", f"médicament inconnu {drug_id!r}",
                           code="UNKNOWN_DRUG")
        return rows[0]

    def pockets_of(self, drug_id: str) -> list[Pocket]:
        return [Pocket(**r) for r in self.store.query(
            """SELECT p.drawer, p.row, p.col, p.drug, p.capacity, p.min_level, p.max_level
               FROM pockets p JOIN drawers d ON d.id = p.drawer WHERE p.drug = ?
               ORDER BY d.position, p.row, p.col""", (drug_id,))]

    def pocket(self, drawer: str, row: int, col: int) -> Pocket:
        rows = self.store.query(
            "SELECT drawer, row, col, drug, capacity, min_level, max_level FROM pockets "
            "WHERE drawer=? AND row=? AND col=?", (drawer, row, col))
        if not rows:
            raise NotFound(f"no pocket {drawer}-{row + 1}-{col + 1}",
                           f"aucune poche {drawer}-{row + 1}-{col + 1}", code="UNKNOWN_POCKET")
        return Pocket(**rows[0])

    def usable(self, pocket: Pocket) -> int:
        """Units that may be given: lots not expired."""
        today = self.today().isoformat()
        return sum(int(lot["on_hand"]) for lot in self._lots(pocket)
                   if lot["expiry"] is None or lot["expiry"] >= today)

    def _first_to_expire(self, pockets: list[Pocket], *, usable_only: bool) -> Pocket:
        """Of ``pockets`` (each able to give the whole quantity), the one whose earliest lot
        expires first: first expiry, first out across the drug's pockets as within one.

        Taking the first pocket by position left the lot expiring first in another pocket
        to expire there unused (waste, expiry alarms). ``usable_only`` (a withdrawal): only
        lots that may still be given count, since an expired lot is never given; a waste
        takes a pocket's lots earliest first, expired ones included, so they count. An
        unknown expiry comes last, as lots are ordered; ties keep the positional order."""
        today = self.today().isoformat()

        def earliest(p: Pocket) -> tuple[bool, str]:
            for x in self._lots(p):  # by expiry, an unknown one last
                if not usable_only or x["expiry"] is None or x["expiry"] >= today:
                    return (x["expiry"] is None, x["expiry"] or "")
            return (True, "")

        return min(pockets, key=earliest)  # min keeps the first of equal keys

    def _lots(self, pocket: Pocket) -> list[dict[str, Any]]:
        return self.store.pocket_stock(pocket.drawer, pocket.row, pocket.col)

    def low_level(self, pocket: Pocket) -> int:
        return pocket.min_level if pocket.min_level is not None \
            else self.settings.low_stock_units

    # == operations =======================================================================
    @staticmethod
    def may_withdraw(user: User, drug: Mapping[str, Any]) -> bool:
        """The one rule on who takes which drug, asked by withdraw() and by the touchscreen's
        list, so an assistant is never offered a drug the cabinet would then refuse her."""
        return user.role != "assistant" or bool(drug["assistant_allowed"])

    async def withdraw(self, drug_id: str, qty: int, patient: str | None = None) -> Operation:
        user = self._begin_check("withdraw")
        drug = self.drug(drug_id)
        if not self.may_withdraw(user, drug):
            raise RuleViolation(f"{drug['name']} is not allowed for nursing assistants",
                                f"{drug['name']} n'est pas autorisé aux aides-soignants",
                                code="FORBIDDEN_DRUG")
        if not patient or not str(patient).strip():
            raise InputError("choose a patient", "choisissez un patient", code="NO_PATIENT")
        self._check_patient(patient)
        self._check_qty(qty)
        limit = drug.get("max_per_withdrawal")
        if limit is not None and qty > limit:
            raise RuleViolation(
                f"{drug['name']}: at most {limit} per withdrawal (the pharmacy's limit)",
                f"{drug['name']} : au plus {limit} par prélèvement (limite de la pharmacie)",
                code="ABOVE_LIMIT")
        pockets = self.pockets_of(drug_id)
        if not pockets:
            raise RuleViolation(f"{drug['name']} is not stocked in this cabinet",
                                f"{drug['name']} n'est pas dans cette armoire",
                                code="NOT_IN_CABINET")
        ready = [p for p in pockets if self.usable(p) >= qty]
        if not ready:
            have = sum(self.usable(p) for p in pockets)
            if have >= qty:
                # Enough in the cabinet, but one withdrawal opens one pocket: "only 6" for
                # 5 asked told the nurse nothing she could act on.
                most = max(self.usable(p) for p in pockets)
                raise RuleViolation(
                    f"{drug['name']}: no pocket holds {qty} usable unit(s), at most {most} "
                    f"from one pocket: take {most}, then the rest",
                    f"{drug['name']} : aucune poche n'en contient {qty} utilisable(s), au plus "
                    f"{most} dans une poche : prenez-en {most}, puis le reste",
                    code="NO_STOCK")
            raise RuleViolation(f"only {have} usable unit(s) of {drug['name']} in the cabinet",
                                f"seulement {have} unité(s) utilisable(s) de {drug['name']}",
                                code="NO_STOCK")
        return await self._run(user, "withdraw", self._first_to_expire(ready, usable_only=True),
                               drug, qty, patient=str(patient))

    async def return_(self, drug_id: str, qty: int, patient: str | None = None,
                      lot: str | None = None, expiry: str | None = None) -> Operation:
        """Unused units back into the drug's pocket. A lot the pocket already holds keeps
        its expiry; a lot new to the pocket needs its expiry, or it could never expire.

        With no lot number (the touchscreen asks for none), the units go back into the lot
        they were taken from: the drug's last withdrawal for the patient (by this person
        when no patient is named), and of its lots the one expiring first. Only with no
        such withdrawal on record, the pocket's earliest lot that may still be given."""
        user = self._begin_check("return")
        drug = self.drug(drug_id)
        self._check_qty(qty)
        self._check_patient(patient)
        taken = self._last_withdrawn(drug["id"], patient, user) if lot is None else None
        pocket = self._return_pocket(drug, qty, taken)
        lots = self._lots(pocket)
        if taken is not None:
            lot, expiry = taken.lot, taken.expiry
            if expiry is not None and expiry < self.today().isoformat():
                raise RuleViolation(f"lot {lot} expired on {expiry}: do not put it back",
                                    f"le lot {lot} est périmé depuis le {expiry} : "
                                    "ne pas le remettre", code="EXPIRED_LOT")
        if lot is None:
            # The earliest lot that may still be given (lots come by expiry): the one a
            # withdrawal takes first. Never an expired lot, where the units would be lost
            # to the ward, nor the latest, which would give them a later expiry than theirs.
            today = self.today().isoformat()
            givable = [x for x in lots if x["expiry"] is None or x["expiry"] >= today]
            if not givable:
                raise RuleViolation("no lot to return into: give the lot number",
                                    "aucun lot pour ce retour : saisissez le numéro de lot",
                                    code="NO_LOT")
            lot = str(givable[0]["lot"])
        known = next((x for x in lots if x["lot"] == lot), None)
        if known is not None:
            expiry = known["expiry"]
        else:
            if not expiry:
                raise InputError(f"lot {lot} is not in pocket {pocket.label}: give its expiry",
                                 f"le lot {lot} n'est pas dans la poche {pocket.label} : "
                                 "saisissez sa date de péremption", code="EXPIRY_REQUIRED")
            lot, expiry = self._lot_and_expiry(scanning.Scan(raw=""), lot, expiry)
            if expiry < self.today().isoformat():
                raise RuleViolation(f"lot {lot} expired on {expiry}: do not put it back",
                                    f"le lot {lot} est périmé depuis le {expiry} : "
                                    "ne pas le remettre", code="EXPIRED_LOT")
        return await self._run(user, "return", pocket, drug, qty, patient=patient, lot=lot,
                               expiry=expiry)

    def _return_pocket(self, drug: dict[str, Any], qty: int, taken: Taken | None) -> Pocket:
        """The pocket the returned units were taken from, while it still holds the drug and
        has room for them; else the drug's first pocket with room.

        A withdrawal opens the pocket whose lot expires first, not always the first: sent to
        the first pocket with room, the units would land in a pocket that never held their
        lot, and the journal's (lot, expiry) would no longer say where they came from."""
        if taken is not None:
            back = next((p for p in self.pockets_of(drug["id"])
                         if (p.drawer, p.row, p.col) == taken.pocket), None)
            if back is not None and self._total(back) + qty <= back.capacity:
                return back
        return self._pocket_with_room(drug, qty)

    def _last_withdrawn(self, drug_id: str, patient: str | None,
                        user: User) -> Taken | None:
        """The lot, expiry and pocket units of a return were taken from, as the journal has
        it.

        Without it, a return went into the pocket's earliest lot still there: units of a
        lot the withdrawal had emptied took another lot's later expiry, and were still
        given once their own had passed; and a withdrawal that emptied the pocket left
        the return refused (NO_LOT) on a screen with no lot field.
        """
        # The patient as the withdrawal recorded it (the same text: see withdraw).
        who, value = ("patient", str(patient)) if patient and str(patient).strip() \
            else ("user", user.id)
        last = self.store.query(
            f"SELECT ref FROM journal WHERE kind='withdraw' AND drug=? AND {who}=? "
            "ORDER BY seq DESC LIMIT 1", (drug_id, value))
        if not last:
            return None
        rows = self.store.query(
            "SELECT lot, expiry, drawer, row, col FROM journal WHERE kind='withdraw' AND ref=? "
            "AND lot IS NOT NULL ORDER BY (expiry IS NULL), expiry, lot LIMIT 1",
            (last[0]["ref"],))
        if not rows:
            return None
        r = rows[0]
        return Taken(str(r["lot"]), r["expiry"], (str(r["drawer"]), int(r["row"]), int(r["col"])))

    async def waste(self, drug_id: str, qty: int, *, witness: str | None = None,
                    witness_pin: str | None = None, patient: str | None = None) -> Operation:
        user = self._begin_check("waste")
        drug = self.drug(drug_id)
        self._check_qty(qty)
        self._check_patient(patient)
        witness_id = None
        if drug["controlled"]:
            if not witness or witness_pin is None:
                raise RuleViolation("wasting a controlled drug needs a witness",
                                    "la destruction d'un stupéfiant demande un témoin",
                                    code="WITNESS_REQUIRED")
            if witness == user.id:
                raise RuleViolation("the witness must be another person",
                                    "le témoin doit être une autre personne",
                                    code="WITNESS_SELF")
            witness_user = await self.authenticate_async(witness, witness_pin)
            if not witness_user.can("witness"):
                # A rule about the witness, not the actor's permission: said so, with her
                # name, and refused like the other witness rules (back to the form).
                raise RuleViolation(
                    f"{witness_user.name} may not witness a destruction "
                    f"(role: {witness_user.role}); ask a nurse or a pharmacist",
                    f"{witness_user.name} ne peut pas être témoin d'une destruction : "
                    "demandez à une IDE ou à un pharmacien",
                    code="WITNESS_NOT_ALLOWED")
            if self.pin_change_required(witness_user.id):
                # Whoever chose that PIN could name her as the witness of a destruction
                # she never saw.
                raise AuthError(f"the witness {witness_user.id} must first choose her own PIN",
                                f"le témoin {witness_user.id} doit d'abord choisir son propre "
                                "code PIN", code="WITNESS_PIN_CHANGE_REQUIRED")
            witness_id = witness_user.id
        pockets = [p for p in self.pockets_of(drug["id"]) if self._total(p) >= qty]
        if not pockets:
            raise RuleViolation("not that many units in the cabinet",
                                "pas autant d'unités dans l'armoire", code="NO_STOCK")
        return await self._run(user, "waste", self._first_to_expire(pockets, usable_only=False),
                               drug, qty, patient=patient, witness=witness_id)

    async def restock(self, drug_id: str | None, scan: str, qty: int, *, lot: str | None = None,
                      expiry: str | None = None, pocket: tuple[str, int, int] | None = None
                      ) -> Operation:
        user = self._begin_check("restock")
        self._check_qty(qty)
        target = self.pocket(*pocket) if pocket else None
        if target is None:
            if drug_id is None:
                raise InputError("say which drug or pocket to restock",
                                 "indiquez le médicament ou la poche", code="NO_TARGET")
            drug = self.drug(drug_id)
        else:
            if target.drug is None:
                raise RuleViolation(f"pocket {target.label} has no drug in the approved layout",
                                    f"la poche {target.label} n'a pas de médicament attribué",
                                    code="POCKET_UNASSIGNED")
            drug = self.drug(target.drug)
        read = scanning.read(scan)
        self._match_scan(read, drug)
        lot, expiry = self._lot_and_expiry(read, lot, expiry)
        if expiry < self.today().isoformat():
            raise RuleViolation(f"lot {lot} expired on {expiry}: do not load it",
                                f"le lot {lot} est périmé depuis le {expiry} : ne pas le ranger",
                                code="EXPIRED_LOT")
        if target is None:
            target = self._pocket_with_room(drug, qty)
        elif self._total(target) + qty > target.capacity:
            raise self._expired_in_the_way(target, qty) or RuleViolation(
                f"pocket {target.label} holds {target.capacity}; it has {self._total(target)}",
                f"la poche {target.label} contient au plus {target.capacity} ; "
                f"elle en a {self._total(target)}", code="OVER_CAPACITY")
        return await self._run(user, "restock", target, drug, qty, lot=lot, expiry=expiry)

    async def count(self, drawer: str, row: int, col: int) -> Operation:
        user = self._begin_check("count")
        pocket = self.pocket(drawer, row, col)
        if pocket.drug is None:
            raise RuleViolation(f"pocket {pocket.label} is empty in the layout",
                                f"la poche {pocket.label} n'est pas attribuée",
                                code="POCKET_UNASSIGNED")
        return await self._run(user, "count", pocket, self.drug(pocket.drug), 0)

    async def remove_expired(self, drawer: str, row: int, col: int,
                             lots: Collection[str] | None = None) -> Operation:
        """Take every expired lot out of a pocket, in one opening of its drawer.

        ``lots``: the expired lots the person was shown (the expired-lots screen lists them
        on the pocket's button). When the pocket's expired lots are no longer exactly
        those (midnight passed and another lot expired, someone removed one meanwhile),
        the removal is refused ``EXPIRED_LOTS_CHANGED`` before anything moves, so that the
        drawer never asks for more or fewer boxes than the screen said."""
        user = self._begin_check("remove")
        pocket = self.pocket(drawer, row, col)
        today = self.today().isoformat()
        expired = [lot for lot in self._lots(pocket)
                   if lot["expiry"] is not None and lot["expiry"] < today]
        if not expired or pocket.drug is None:
            raise RuleViolation(f"no expired lot in pocket {pocket.label}",
                                f"aucun lot périmé dans la poche {pocket.label}",
                                code="NOTHING_EXPIRED")
        if lots is not None and set(lots) != {str(lot["lot"]) for lot in expired}:
            now = ", ".join(sorted(str(lot["lot"]) for lot in expired))
            raise StateError(
                f"the expired lots of pocket {pocket.label} have changed (now: {now}): "
                "look at the list again",
                f"les lots périmés de la poche {pocket.label} ont changé (maintenant : "
                f"{now}) : revoyez la liste", code="EXPIRED_LOTS_CHANGED")
        qty = sum(int(lot["on_hand"]) for lot in expired)
        return await self._run(user, "remove", pocket, self.drug(pocket.drug), qty)

    async def move_out(self, drawer: str, row: int, col: int) -> Operation:
        """Re-layout: empty a pocket onto the bench; the pocket is unassigned."""
        user = self._begin_check("move_out")
        pocket = self.pocket(drawer, row, col)
        if pocket.drug is None:
            raise RuleViolation(f"pocket {pocket.label} holds no drug",
                                f"la poche {pocket.label} ne contient aucun médicament",
                                code="POCKET_UNASSIGNED")
        return await self._run(user, "move_out", pocket, self.drug(pocket.drug),
                               self._total(pocket))

    async def move_in(self, drug_id: str, drawer: str, row: int, col: int,
                      capacity: int, qty: int | None = None, *,
                      levels: tuple[int | None, int | None] = (None, None),
                      context: dict[str, Any] | None = None) -> Operation:
        """Re-layout: put a drug's units from the bench into its new (empty) pocket.

        ``qty`` None takes every unit of the drug on the bench (a drug with one pocket). A
        drug spread over several pockets fills each new pocket with part of them (earliest
        expiry first), and its last pocket takes the rest. ``levels``: the approved (min,
        max) the drug had in the pocket it left, which its new pocket keeps (within its
        capacity), as it keeps that pocket's capacity. ``context`` tags its journal rows
        (``{"put_back": task}`` when the units go back into the pocket they left).
        """
        user = self._begin_check("move_in")
        drug = self.drug(drug_id)
        pocket = self.pocket(drawer, row, col)
        if pocket.drug not in (None, drug_id) or self._total(pocket):
            raise RuleViolation(f"pocket {pocket.label} is not empty yet",
                                f"la poche {pocket.label} n'est pas encore vide",
                                code="POCKET_OCCUPIED")
        on_bench = self.store.on_bench(drug_id)
        if qty is None:
            qty = on_bench
        elif isinstance(qty, bool) or not isinstance(qty, int) or not 0 <= qty <= on_bench:
            raise InputError(f"{qty!r}: between 0 and the {on_bench} unit(s) on the bench",
                             f"{qty!r} : entre 0 et les {on_bench} unité(s) du plan de travail",
                             code="BAD_QTY")
        if capacity < qty:
            raise RuleViolation(f"{qty} units do not fit in a pocket of {capacity}",
                                f"{qty} unités ne tiennent pas dans une poche de {capacity}",
                                code="OVER_CAPACITY")
        return await self._run(user, "move_in", pocket, drug, qty, capacity=capacity,
                               levels=levels, context=dict(context or {}))

    # -- the common path ------------------------------------------------------------------
    def _begin_check(self, kind: str) -> User:
        user = self.current_user()
        self.check_own_pin(user)
        require(user, PERMISSION[kind])
        self._refuse_while_busy()
        self.touch()
        return user

    def _refuse_while_busy(self, *, claiming: bool = False) -> None:
        """``OPERATION_RUNNING`` unless the session is at its menu; when ``claiming`` (see
        :meth:`_claim`), also while an operation is still held, as it is for a moment after
        the session is back at its menu."""
        if self.session.state != "menu" or (claiming and self.session.op is not None):
            raise StateError("finish the current operation first",
                             "terminez d'abord l'opération en cours", code="OPERATION_RUNNING")

    def _check_patient(self, patient: str | None) -> None:
        """A patient id in the hospital's format (``[patients] id_pattern``), when it has
        one: a bed number or a name typed where the IPP goes would file the drug under
        nobody, or under someone else."""
        if patient and self.badge_fields([("patient", str(patient))]):
            # Its UID must not reach the append-only journal as a patient id, nor be echoed.
            # The pages refuse it before (Web.refuse_badges); this is for other callers.
            raise badge.typed_into("patient", "patient id", "identifiant patient")
        pattern = self.settings.patient_id_pattern
        if not patient or pattern is None:
            return
        if not re.fullmatch(pattern, str(patient).strip()):
            example = self.settings.patient_id_example
            raise InputError(f"patient id {patient!r} is not in the hospital's format "
                             f"(like {example})",
                             f"l'identifiant patient {patient!r} n'est pas au format de "
                             f"l'hôpital (par exemple {example})", code="BAD_PATIENT_ID")

    @staticmethod
    def _check_qty(qty: Any) -> None:
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0 or qty > 1000:
            raise InputError("the quantity must be a whole number above 0",
                             "la quantité doit être un entier supérieur à 0", code="BAD_QTY")

    def _total(self, pocket: Pocket) -> int:
        return self.store.on_hand(pocket.drawer, pocket.row, pocket.col)

    def _pocket_with_room(self, drug: dict[str, Any], qty: int) -> Pocket:
        pockets = self.pockets_of(drug["id"])
        if not pockets:
            raise RuleViolation(f"{drug['name']} has no pocket in the approved layout",
                                f"{drug['name']} n'a pas de poche dans le plan approuvé",
                                code="NOT_IN_CABINET")
        for p in pockets:
            if self._total(p) + qty <= p.capacity:
                return p
        for p in pockets:
            if (refusal := self._expired_in_the_way(p, qty)) is not None:
                raise refusal
        p = pockets[0]
        raise RuleViolation(
            f"no room for {qty} more {drug['name']} (pocket {p.label} holds {p.capacity})",
            f"pas de place pour {qty} {drug['name']} de plus (poche {p.label} : "
            f"{p.capacity} au plus)", code="OVER_CAPACITY")

    def _expired_in_the_way(self, pocket: Pocket, qty: int) -> RuleViolation | None:
        """``REMOVE_EXPIRED_FIRST`` when ``qty`` more units fit in ``pocket`` once its expired
        units are out, and only then; None otherwise.

        Expired units still take room in the pocket, while the pick list counts only usable
        ones: a technician bringing the list's quantity was refused ``OVER_CAPACITY`` ("it
        has 14"), with nothing saying those 14 were expired units to remove first. The
        cabinet never discards them by itself: their removal is an operation of its own
        (``remove_expired``), journaled lot by lot."""
        expired = self._total(pocket) - self.usable(pocket)
        if not expired or self.usable(pocket) + qty > pocket.capacity:
            return None
        return RuleViolation(
            f"pocket {pocket.label} still holds {expired} expired unit(s): remove them first "
            f"(expired lots), then put in the {qty}",
            f"la poche {pocket.label} contient encore {expired} unité(s) périmée(s) : "
            f"retirez-les d'abord (lots périmés), puis rangez les {qty}",
            code="REMOVE_EXPIRED_FIRST")

    @staticmethod
    def _match_scan(read: scanning.Scan, drug: dict[str, Any]) -> None:
        if read.gtin is not None:
            ok = drug["gtin"] is not None and read.gtin == drug["gtin"]
        else:
            ok = read.raw == drug["id"]
        if not ok:
            raise RuleViolation(
                f"wrong product: this box is not {drug['name']} {drug['strength'] or ''}".strip(),
                f"mauvais produit : cette boîte n'est pas {drug['name']} "
                f"{drug['strength'] or ''}".strip(), code="WRONG_SCAN")

    @staticmethod
    def _lot_and_expiry(read: scanning.Scan, lot: str | None,
                        expiry: str | None) -> tuple[str, str]:
        if read.lot and lot and read.lot != lot:
            raise RuleViolation(f"the box says lot {read.lot}, not {lot}",
                                f"la boîte porte le lot {read.lot}, pas {lot}",
                                code="LOT_MISMATCH")
        if read.expiry and expiry and read.expiry.isoformat() != expiry:
            raise RuleViolation(f"the box says expiry {read.expiry}, not {expiry}",
                                f"la boîte indique une péremption au {read.expiry}",
                                code="EXPIRY_MISMATCH")
        lot = read.lot or lot
        exp = read.expiry.isoformat() if read.expiry else expiry
        if not lot or not exp:
            raise InputError("record the lot and the expiry date",
                             "saisissez le lot et la date de péremption", code="LOT_REQUIRED")
        try:
            exp = parse_day(exp).isoformat()
        except ValueError:
            raise InputError(f"expiry {exp!r} is not a date (YYYY-MM-DD)",
                             f"péremption {exp!r} : date attendue (AAAA-MM-JJ)",
                             code="BAD_DATE") from None
        if len(str(lot)) > 40:
            raise InputError("a lot number has at most 40 characters",
                             "un numéro de lot a au plus 40 caractères", code="FIELD_TOO_LONG")
        return str(lot), exp

    async def _run(self, user: User, kind: str, pocket: Pocket, drug: dict[str, Any], qty: int,
                   **extra: Any) -> Operation:
        unit = self.units.get(pocket.drawer)
        if unit is None:
            raise HardwareError(f"drawer {pocket.drawer} is not connected",
                                f"le tiroir {pocket.drawer} n'est pas connecté",
                                code="DRAWER_MISSING")
        self._claim(unit)
        before = self._total(pocket)
        intent = self.store.append(JournalEntry(
            "intent", user=user.id, drug=drug["id"], drawer=pocket.drawer, row=pocket.row,
            col=pocket.col, qty=qty, lot=extra.get("lot"), expiry=extra.get("expiry"),
            patient=extra.get("patient"), code=kind.upper(),
            detail={**{k: v for k, v in (("witness", extra.get("witness")),
                                         ("expected_before", before)) if v is not None},
                    **(extra.get("context") or {})}))
        op = Operation(intent, kind, user, pocket, drug, qty, before,
                       day=self.today().isoformat(), **extra)
        self.session.op = op
        await self.session.fire(f"begin_{kind}")
        self._emit({"type": "operation", **op.describe()})
        try:
            state = await unit.open()
        except ArmoireError:
            state = unit.state
        if self._stopping:
            # The outputs were cut on the drawer's way: nothing could be taken, and the
            # drawer did not fail. No fault, no alarm; the next start reads its switches.
            await self._abort_for_shutdown(op)
            raise StateError("the cabinet is shutting down; nothing was taken from stock",
                             "l'armoire est à l'arrêt ; aucun mouvement de stock",
                             code="SHUTTING_DOWN")
        if state != "open" and op.exposed:
            await self._end_jammed_open(op, op.exposed_by)
            raise self._jammed_part_open(op)
        if state != "open":
            await self._abort(op, f"DRAWER_{state.upper()}")
            raise HardwareError(
                f"drawer {pocket.drawer} did not open ({state.replace('_', ' ')}); "
                "nothing was taken from stock",
                f"le tiroir {pocket.drawer} ne s'est pas ouvert "
                f"({STATES_FR.get(state, state)}) ; "
                "aucun mouvement de stock", code="DRAWER_FAULT")
        latch = self.hardware.latches.get((pocket.drawer, pocket.row, pocket.col))
        if latch is not None:
            try:
                latch.release()
            except HardwareError as exc:  # the drawer board went away between the two
                # The drawer stands open with no operation on it: journaled and alarmed
                # like one found open, so that someone closes it (its Close button does).
                self._on_drawer_fault(unit, "magnet_failed", {
                    "row": pocket.row, "col": pocket.col, "reason": exc.code})
                if op.exposed:   # the board may have pulsed it: the lid may be up
                    await self._end_jammed_open(op, op.exposed_by)
                    raise self._jammed_part_open(op) from exc
                await self._abort(op, exc.code)
                raise
        op.step = "act"
        self._emit({"type": "operation", **op.describe()})
        return op

    def _claim(self, unit: DrawerUnit) -> None:
        """Refuse, before anything is written, an operation that cannot have the drawer.

        Runs with no ``await`` between it and the intent and ``session.op`` that follow, so
        a double submit (two taps, two requests, a witness's PIN checked meanwhile) cannot
        get two intents in: the second finds the first's operation. One drawer at a time:
        no other may be moving or open, and this one must be at rest (closed, or open with
        nobody on it, which ``open`` re-drives)."""
        self._refuse_while_busy(claiming=True)
        if unit.faulted or unit.state == "unknown":
            unit._require("cmd_open")  # raises the out-of-service error
        for other in self.units.values():
            if other is not unit and other.state in DRAWER_IN_USE:
                raise StateError(f"drawer {other.id} is {other.state}: close it first",
                                 f"le tiroir {other.id} est {STATES_FR[other.state]} : "
                                 "fermez-le d'abord", code="OTHER_DRAWER_OPEN")
        if unit.state not in ("closed", "open"):
            raise StateError(f"drawer {unit.id} is {unit.state}: wait until it stops",
                             f"le tiroir {unit.id} est {STATES_FR[unit.state]} : "
                             "attendez qu'il s'arrête", code="DRAWER_BUSY")

    async def _abort(self, op: Operation, code: str, *, unknown: bool = False) -> None:
        """End an operation whose drawer never served it. ``unknown``: the drawer stood
        part-open meanwhile, so what was taken is not known: the outcome is a
        ``discrepancy`` row (as after a power cut), not ``aborted`` (nothing taken)."""
        op.step = "aborted"
        if unknown:
            self.store.append(JournalEntry(
                "discrepancy", user=op.user.id, drug=op.drug["id"], drawer=op.pocket.drawer,
                row=op.pocket.row, col=op.pocket.col, qty=op.qty, ref=op.intent, code=code,
                detail={"operation": op.kind, "reason": code.lower(), "count": op.exposed}))
        else:
            self.store.append(JournalEntry("aborted", user=op.user.id, drug=op.drug["id"],
                                           drawer=op.pocket.drawer, row=op.pocket.row,
                                           col=op.pocket.col, ref=op.intent, code=code))
        op.done.set()
        await self.session.fire("finish")
        self.session.op = None
        self._emit({"type": "operation", **op.describe()})

    async def _end_jammed_open(self, op: Operation, code: Exposure) -> None:
        """The drawer jammed part-open (or lost its position) before it served ``op``: the
        pockets it exposed are already asked to be counted (with the fault's row); this is
        the outcome that closes the intent, ``code`` saying which fault."""
        await self._abort(op, code, unknown=True)

    @staticmethod
    def _jammed_part_open(op: Operation) -> HardwareError:
        """What the person at the cabinet reads when the drawer jammed part-open, or lost
        its position (a switch fault on its way: it may stand anywhere)."""
        d, pockets = op.pocket.drawer, ", ".join(op.exposed)
        if op.exposed_by == "POSITION_UNKNOWN":
            fault_en, fault_fr = (
                (f"drawer {d} does not answer (its board is silent): where it stands is "
                 "unknown",
                 f"le tiroir {d} ne répond plus (sa carte est muette) : sa position est "
                 "inconnue") if op.exposed_fault == "offline" else
                (f"drawer {d} has a switch fault: where it stands is unknown",
                 f"le tiroir {d} a un capteur en défaut : sa position est inconnue"))
            if op.step == "aborted":
                return HardwareError(
                    f"{fault_en}, and pocket(s) {pockets} may have been reached. Take "
                    "nothing from it; the pharmacy must count them before their stock is "
                    "trusted",
                    f"{fault_fr}, et la ou les poches {pockets} ont pu être atteintes. N'y "
                    "prenez rien ; la pharmacie doit les compter avant que leur stock soit "
                    "fiable", code="POSITION_UNKNOWN")
            return HardwareError(
                f"{fault_en}. Take nothing more from it; the "
                f"pharmacy must count pocket(s) {pockets} before their stock is trusted, and "
                "a technician must reset the drawer",
                f"{fault_fr}. N'y prenez plus rien ; la "
                f"pharmacie doit compter la ou les poches {pockets} avant que leur stock soit "
                "fiable, et un préparateur doit réarmer le tiroir", code="POSITION_UNKNOWN")
        if op.step == "aborted":   # on its way open, before the operation was served
            return HardwareError(
                f"drawer {d} jammed part-open: pocket(s) {pockets} may have been reached. "
                "Take nothing from it; the pharmacy must count them before their stock is "
                "trusted",
                f"le tiroir {d} s'est bloqué entrouvert : la ou les poches {pockets} ont pu "
                "être atteintes. N'y prenez rien ; la pharmacie doit les compter avant que "
                "leur stock soit fiable", code="JAMMED_PART_OPEN")
        return HardwareError(
            f"drawer {d} jammed while closing and stands part-open: take nothing more from "
            f"it; the pharmacy must count pocket(s) {pockets} before their stock is trusted, "
            "and a technician must reset the drawer",
            f"le tiroir {d} s'est bloqué en se fermant et reste entrouvert : n'y prenez plus "
            f"rien ; la pharmacie doit compter la ou les poches {pockets} avant que leur "
            "stock soit fiable, et un préparateur doit réarmer le tiroir",
            code="JAMMED_PART_OPEN")

    async def _abort_for_shutdown(self, op: Operation) -> None:
        """Abort an operation whose drawer had not opened yet when the cabinet stopped.

        Called by :meth:`shutdown` itself, so that the ``aborted`` row is written before the
        database closes whatever became of the task that waits for the drawer, and by that
        task if it wakes first: whichever comes second finds the operation aborted."""
        if op.step == "opening":
            await self._abort(op, "SHUTDOWN")

    async def confirm_count(self, count_left: int) -> Operation:
        """The person reports how many units they see in the pocket now."""
        op = self._current_op()
        if op.counted is not None:
            raise StateError("the count is already recorded", "le comptage est déjà enregistré",
                             code="ALREADY_COUNTED")
        if not isinstance(count_left, int) or isinstance(count_left, bool) or count_left < 0 \
                or count_left > 100000:
            raise InputError("the count must be a whole number, 0 or more",
                             "le compte doit être un entier positif ou nul", code="BAD_COUNT")
        room = op.capacity if op.kind == "move_in" else op.pocket.capacity
        if room is not None and count_left > room:
            # A pocket cannot hold more than fits: a slip of the finger (60 for 6) would
            # book phantom units, and then refuse every restock for want of room.
            raise RuleViolation(
                f"pocket {op.pocket.label} holds at most {room}: count again",
                f"la poche {op.pocket.label} contient au plus {room} : recomptez",
                code="COUNT_ABOVE_CAPACITY")
        if op.kind == "move_out" and count_left:
            raise RuleViolation(
                f"pocket {op.pocket.label} must be emptied: take the {count_left} unit(s) "
                "left onto the bench, then count 0",
                f"la poche {op.pocket.label} doit être vidée : posez les {count_left} unité(s) "
                "restantes sur le plan de travail, puis comptez 0", code="POCKET_NOT_EMPTY")
        self.touch()
        # The count's rows and the alarms it raises (low stock, expiry) are one transaction:
        # a power cut between them would lose the alarms, and an expiry alarm would only
        # come back at the next hourly sweep. If the alarms cannot be written, neither is
        # the count, and the operation still waits for it.
        with self.store.transaction():
            self._commit_outcome(op, count_left)
            self._after_stock_change(op)
        op.counted = count_left
        await self._maybe_finish(op)
        return op

    async def close_drawer(self) -> Operation:
        """From the screen or the drawer's Close button."""
        op = self._current_op()
        if op.drawer_closed or op.step == "closing":
            return op
        op.step = "closing"
        self._emit({"type": "operation", **op.describe()})
        unit = self.units[op.pocket.drawer]
        try:
            state = await unit.close()
        except ArmoireError:
            # The drawer faulted while open (a switch, its board's link): it is out of
            # service, its motor stopped and its fault alarmed. The operation still ends:
            # the count is what was taken, and a technician resets the drawer.
            state = unit.state
        if self._stopping:
            # Outputs were cut for a shutdown: the drawer stopped where it was, which is no
            # fault of its own. The next start reads its switches (ajar, open) and the
            # intent's outcome, if it has none, becomes a discrepancy then.
            return op
        op.drawer_closed = True
        if state != "closed":
            with self.store.transaction():
                if state == "offline" and not op.exposed:
                    # Its board fell silent while it stood open and is silent still: it
                    # stays open, where nobody knows, with nobody's operation on it.
                    self._ask_counts(unit, op, "offline")
                self.store.append(JournalEntry(
                    "drawer_fault", drawer=unit.id, ref=op.intent,
                    code=f"CLOSE_{state.upper()}",
                    detail={"count": op.exposed} if op.exposed else {}))
        op.step = "act" if op.counted is None else "closing"
        await self._maybe_finish(op)
        if state != "closed" and op.exposed:
            # The count (if confirmed) stands; the operation ends or still waits for it. But
            # the drawer stays part-open with nobody on it: the person is told to take
            # nothing more, and that the pharmacy counts before the stock is trusted.
            raise self._jammed_part_open(op)
        return op

    def _current_op(self) -> Operation:
        op = self.session.op
        if op is not None and op.step == "opening":
            # The count field and Close are on the screen from the start: "no operation"
            # would tell a nurse whose drawer is on its way that her operation is lost.
            d = op.pocket.drawer
            raise StateError(f"drawer {d} is still opening: wait until it is open",
                             f"le tiroir {d} s'ouvre encore : attendez qu'il soit ouvert",
                             code="DRAWER_OPENING")
        if op is None or op.step in ("done", "aborted"):
            raise StateError("no operation is waiting for this", "aucune opération en attente",
                             code="NO_OPERATION")
        return op

    async def _maybe_finish(self, op: Operation) -> None:
        if op.counted is None or not op.drawer_closed:
            self._emit({"type": "operation", **op.describe()})
            return
        op.step = "done"
        op.done.set()
        await self.session.fire("finish")
        self.session.op = None
        self.touch()
        self._emit({"type": "operation", **op.describe()})

    def _abandon(self, op: Operation) -> None:
        """Logged out before the count: the pocket's content is unknown."""
        if op.counted is None:
            with self.store.transaction():
                self.store.append(JournalEntry(
                    "discrepancy", user=op.user.id, drug=op.drug["id"], drawer=op.pocket.drawer,
                    row=op.pocket.row, col=op.pocket.col, qty=op.qty, ref=op.intent,
                    code="UNCONFIRMED"))
                self.alarms.raise_("discrepancy", self._op_where(op),
                                   text("unconfirmed", n=op.intent),
                                   ref=op.intent)
        op.step = "aborted"
        op.done.set()

    @staticmethod
    def _where(p: Pocket) -> Where:
        return Where(p.drug, p.drawer, p.row, p.col)

    @staticmethod
    def _op_where(op: Operation) -> Where:
        """Where an operation's discrepancy is, with the drug it moved: a ``move_in``'s
        pocket had no drug when it began, and its alarm named none."""
        p = op.pocket
        return Where(op.drug["id"], p.drawer, p.row, p.col)

    # -- outcome --------------------------------------------------------------------------
    def _commit_outcome(self, op: Operation, counted: int) -> None:
        p = op.pocket
        lots = self._lots(p)
        rows: list[tuple[JournalEntry, list[StockDelta]]] = []
        today = op.day or self.today().isoformat()

        def entry(kind: str, qty: int, lot: str | None, expiry: str | None,
                  code: str | None = None) -> JournalEntry:
            return JournalEntry(kind, user=op.user.id, drug=op.drug["id"], drawer=p.drawer,
                                row=p.row, col=p.col, qty=qty, lot=lot, expiry=expiry,
                                patient=op.patient, ref=op.intent, code=code,
                                detail={**({"witness": op.witness} if op.witness else {}),
                                        **op.context})

        def delta(lot: str, expiry: str | None, d: int) -> StockDelta:
            return StockDelta(p.drawer, p.row, p.col, lot, op.drug["id"], expiry, d)

        if op.kind in ("restock", "return"):
            assert op.lot is not None
            expiry = op.expiry or next((x["expiry"] for x in lots if x["lot"] == op.lot), None)
            rows.append((entry(op.kind, op.qty, op.lot, expiry),
                         [delta(op.lot, expiry, op.qty)]))
        elif op.kind == "move_in":
            left = op.qty
            for lot in self.store.query("SELECT * FROM bench WHERE drug=? AND qty > 0 "
                                        "ORDER BY expiry, lot", (op.drug["id"],)):
                take = min(left, int(lot["qty"]))
                if take:
                    rows.append((entry("move_in", take, lot["lot"], lot["expiry"]),
                                 [delta(lot["lot"], lot["expiry"], take)]))
                    left -= take
        elif op.kind in ("withdraw", "waste", "remove", "move_out"):
            if op.kind == "move_out":
                plan = [(x, int(x["on_hand"])) for x in lots]
            elif op.kind == "remove":
                plan = [(x, int(x["on_hand"])) for x in lots
                        if x["expiry"] is not None and x["expiry"] < today]
            else:
                usable = [x for x in lots if op.kind == "waste" or x["expiry"] is None
                          or x["expiry"] >= today]
                plan, left = [], op.qty
                for x in usable:  # first expiry, first out
                    take = min(left, int(x["on_hand"]))
                    if take:
                        plan.append((x, take))
                        left -= take
            for x, n in plan:
                rows.append((entry(op.kind, n, x["lot"], x["expiry"]),
                             [delta(x["lot"], x["expiry"], -n)]))
        if not rows and op.kind in ("move_out", "move_in"):
            # Nothing to carry, but the pocket still changes hands: the journal says so, and
            # this row closes the intent (else the next start would call it interrupted).
            rows.append((entry(op.kind, 0, None, None), []))
        if op.kind == "move_out" and (p.min_level, p.max_level) != (None, None):
            # The pocket's approved levels are wiped with its drug: the journal keeps them
            # for the drug's move_in (relayout.start_task), as the task keeps its capacity.
            for e, _ in rows:
                e.detail["levels"] = [p.min_level, p.max_level]
        # What the journal will say the pocket holds once these rows are written; the count
        # is checked against that, so whatever the rows could not cover shows up as a
        # discrepancy instead of vanishing.
        expected = sum(int(x["on_hand"]) for x in lots) + sum(
            d.delta for _, deltas in rows for d in deltas)
        correction = counted - expected
        with self.store.transaction() as c:
            for e, deltas in rows:
                self.store.append(e, deltas)
                if e.kind in ("move_out", "move_in") and e.qty:
                    self._bench(c, e)
            if op.kind == "move_out":
                c.execute("UPDATE pockets SET drug=NULL, capacity=0, min_level=NULL, "
                          "max_level=NULL WHERE drawer=? AND row=? AND col=?",
                          (p.drawer, p.row, p.col))
            elif op.kind == "move_in":
                lo, hi = fitted_levels(op.levels, op.capacity or 0)
                c.execute("UPDATE pockets SET drug=?, capacity=?, min_level=?, "
                          "max_level=? WHERE drawer=? AND row=? AND col=?",
                          (op.drug["id"], op.capacity, lo, hi, p.drawer, p.row, p.col))
            if correction:
                moved = [(d.lot, d.expiry) for _, deltas in rows for d in deltas]
                self._correct(op, correction, entry, delta, moved)
                self.alarms.raise_(
                    "discrepancy", self._op_where(op),
                    text("counted", p=p.label, n=counted, e=expected),
                    ref=op.intent, user=op.user.id)
            if op.kind == "count":
                self.store.append(entry("count", counted, None, None))

    @staticmethod
    def _bench(c: Any, e: JournalEntry) -> None:
        """Units between two pockets during a re-layout wait on the technician's bench."""
        assert e.qty is not None and e.lot is not None
        sign = 1 if e.kind == "move_out" else -1
        c.execute("INSERT INTO bench (drug, lot, expiry, qty) VALUES (?, ?, ?, 0) "
                  "ON CONFLICT (drug, lot) DO NOTHING", (e.drug, e.lot, e.expiry))
        if sign > 0:
            # The same lot from two pockets with two expiries (typed differently at restock)
            # meets here: the bench keeps the earlier, so no unit leaves with a later one. An
            # empty bench row is a fresh start.
            c.execute("UPDATE bench SET expiry = ? WHERE drug=? AND lot=? AND ? IS NOT NULL "
                      "AND (qty = 0 OR expiry IS NULL OR ? < expiry)",
                      (e.expiry, e.drug, e.lot, e.expiry, e.expiry))
        c.execute("UPDATE bench SET qty = qty + ? WHERE drug=? AND lot=?",
                  (sign * e.qty, e.drug, e.lot))

    def _correct(self, op: Operation, correction: int, entry: Any, delta: Any,
                 moved: list[tuple[str, str | None]]) -> None:
        """Bring the projection to what was counted, lot by lot: units missing come off the
        latest lots, units found go to the earliest expiry they may have.

        ``moved``: the (lot, expiry) of each stock row the operation wrote. Units found
        after it are of those lots (a restock's lot; the lots a withdrawal took from, when
        fewer were taken than asked), else of a lot the pocket holds; of these, the one
        expiring first. Booked on a later lot, a unit left by a short withdrawal of a lot
        about to expire took that later expiry, and was given once its own had passed.
        """
        lots = list(reversed(self._lots(op.pocket)))
        if correction > 0:
            candidates = moved or [(str(x["lot"]), x["expiry"]) for x in lots]
            if candidates:
                # Earliest expiry first, an unknown one (None) last, as lots are ordered.
                lot, expiry = min(candidates, key=lambda c: (c[1] is None, c[1] or "", c[0]))
            else:
                # Units found in a pocket with no lot on record: their lot and expiry are
                # unknown, so they are booked as expired the day before, never given, and
                # the expiry alarm sends someone to check them.
                unknown = (self.today() - timedelta(days=1)).isoformat()
                lot, expiry = op.lot or "UNKNOWN", op.expiry or unknown
            self.store.append(entry("count_correction", correction, lot, expiry,
                                    "DISCREPANCY"), [delta(lot, expiry, correction)])
            return
        left = -correction
        for x in lots:
            n = min(left, int(x["on_hand"]))
            if n:
                self.store.append(entry("count_correction", -n, x["lot"], x["expiry"],
                                        "DISCREPANCY"), [delta(x["lot"], x["expiry"], -n)])
                left -= n
        if left:
            raise RuleViolation("the count is below zero for this pocket",
                                "le compte est négatif pour cette poche", code="BAD_COUNT")

    # -- rules after stock moves ----------------------------------------------------------
    def _after_stock_change(self, op: Operation) -> None:
        """Alarms after an outcome. A ``move_out`` leaves the pocket empty and unassigned:
        its drug, now on the bench, is out of the nurses' reach like one withdrawn to zero,
        so the low-stock rule runs on the pocket as it was (its drug, its level). The
        drug's ``move_in`` closes such alarms of the pockets it left."""
        p = op.pocket
        now = self.pocket(p.drawer, p.row, p.col)
        self.check_low_stock(p if op.kind == "move_out" else now)
        if op.kind == "move_in":
            self._resolve_low_stock_outside(
                {self._where(x) for x in self.pockets_of(op.drug["id"])},
                note("moved", p=now.label), drug=op.drug["id"])
        self.check_expiry(p)

    def _resolve_low_stock_outside(self, held: set[Where], reason: ResolveNote,
                                   drug: str | None = None,
                                   open_alarms: list[dict[str, Any]] | None = None) -> None:
        """Close the low-stock alarms (of ``drug``, or of any) raised on a pocket that does
        not hold that drug any more: no refill can ever close them there. ``open_alarms``:
        the open low-stock alarms, when the caller has read them already."""
        if open_alarms is None:
            open_alarms = self.alarms.open_of("low_stock")
        for alarm in open_alarms:
            where = Where(alarm["drug"], alarm["drawer"], alarm["row"], alarm["col"])
            if drug in (None, where.drug) and where not in held:
                self.alarms.auto_resolve_known(alarm, reason)

    def check_all_low_stock(self) -> None:
        """Every pocket's low-stock alarm as its stock stands: at start, and when a re-layout
        ends or is abandoned (called in the transaction that ends it).

        A ``move_out`` leaves its drug's alarm on the pocket it left while the drug waits on
        the bench; its ``move_in`` closes it. A re-layout that ends without one (abandoned, or
        the drug sent out of the cabinet) would leave that alarm open forever on a pocket
        that no longer holds the drug: once no task is pending, such alarms are resolved,
        and the drug's actual pockets carry its low-stock state.

        It reads the whole cabinet in four queries (pockets, open alarms, pending tasks,
        usable stock), whatever its size: pocket by pocket, a cabinet of thousands of
        pockets issued three queries each at every start. Only the alarms that change are
        written, in the order the pockets are read, as pocket by pocket, and in one
        transaction: at a first start thousands of alarms may change, and one commit (one
        fsync) each took seconds; a restart where nothing changed writes nothing."""
        pockets = [Pocket(**r) for r in self.store.query(
            "SELECT drawer, row, col, drug, capacity, min_level, max_level FROM pockets "
            "WHERE drug IS NOT NULL")]
        placed = [self._where(p) for p in pockets]
        open_alarms = self.alarms.open_of("low_stock")
        pending = self.store.query("SELECT 1 FROM layout_tasks WHERE state='pending' LIMIT 1")
        held = set(placed)
        outside = [] if pending else [
            a for a in open_alarms if Where(a["drug"], a["drawer"], a["row"], a["col"])
            not in held]
        usable = self.store.usable_by_pocket(self.today().isoformat())
        first_open: dict[Where, dict[str, Any]] = {}
        for alarm in open_alarms:  # as find_open: the oldest of an alarm's duplicates
            first_open.setdefault(Where(alarm["drug"], alarm["drawer"], alarm["row"],
                                        alarm["col"], alarm["lot"], alarm["user"]), alarm)
        changes: list[tuple[Pocket, AlarmText | None, dict[str, Any] | None]] = []
        for pocket, where in zip(pockets, placed, strict=True):
            message = self._low_stock_message(
                pocket, usable.get((pocket.drawer, pocket.row, pocket.col), 0))
            found = first_open.get(where)
            if (found is None and message is not None) or (
                    found is not None and found["message"] != message):
                changes.append((pocket, message, found))
        if not outside and not changes:
            return
        with self.store.transaction():
            if outside:
                self._resolve_low_stock_outside(held, note("drug_gone"),
                                                open_alarms=outside)
            for pocket, message, found in changes:
                self._apply_low_stock(pocket, message, found)

    def check_low_stock(self, pocket: Pocket) -> None:
        """The pocket's low-stock alarm follows its usable units and its (approved) level.
        An unassigned pocket has none: no drug is missing from it."""
        if pocket.drug is None:
            return
        self._apply_low_stock(pocket, self._low_stock_message(pocket, self.usable(pocket)),
                              self.alarms.find_open("low_stock", self._where(pocket)))

    def _low_stock_message(self, pocket: Pocket, usable: int) -> AlarmText | None:
        """The pocket's low-stock alarm message with ``usable`` units, None if not low."""
        level = self.low_level(pocket)
        if usable <= level:
            return text("low_stock", p=pocket.label, n=usable, l=level)
        return None

    def _apply_low_stock(self, pocket: Pocket, message: AlarmText | None,
                         alarm: dict[str, Any] | None) -> None:
        """The low-stock rule's outcome (``message``: the alarm's message, None when not low)
        on a pocket whose open alarm (None: none) the caller has read, one pocket at a time
        or the whole cabinet at once."""
        where = self._where(pocket)
        if message is not None:
            self.alarms.raise_known("low_stock", where, message, alarm, refresh=True)
        elif alarm is not None:
            self.alarms.auto_resolve_known(alarm, note("above_level"))

    def check_expiry(self, pocket: Pocket | None = None) -> None:
        """Expiry alarms follow the lots: of one pocket after it changed, of all otherwise."""
        today = self.today()
        soon = (today + timedelta(days=self.settings.expiry_window_days)).isoformat()
        if pocket is None:
            lots = self.store.query("SELECT * FROM stock WHERE on_hand > 0")
        else:
            lots = self.store.query(
                "SELECT * FROM stock WHERE on_hand > 0 AND drawer=? AND row=? AND col=?",
                (pocket.drawer, pocket.row, pocket.col))
        present = set()
        for lot in lots:
            if lot["expiry"] is None:
                continue
            where = Where(lot["drug"], lot["drawer"], lot["row"], lot["col"], lot["lot"])
            present.add(where)
            label = f"{lot['drawer']}-{lot['row'] + 1}-{lot['col'] + 1}"
            if lot["expiry"] < today.isoformat():
                self.alarms.auto_resolve("expiry", where, note("now_expired"))
                self.alarms.raise_("expired", where,
                                   text("expired", lot=lot["lot"], p=label, date=lot["expiry"]))
            elif lot["expiry"] <= soon:
                self.alarms.raise_("expiry", where,
                                   text("expiry", lot=lot["lot"], p=label, date=lot["expiry"]))
        for alarm in self.alarms.list():
            if pocket is not None and (alarm["drawer"], alarm["row"], alarm["col"]) != (
                    pocket.drawer, pocket.row, pocket.col):
                continue
            if alarm["kind"] in ("expiry", "expired"):
                where = Where(alarm["drug"], alarm["drawer"], alarm["row"], alarm["col"],
                              alarm["lot"])
                if where not in present:
                    self.alarms.auto_resolve(alarm["kind"], where, note("lot_gone"))

    # == pharmacist and technician tools ==================================================
    async def reset_drawer(self, drawer: str) -> str:
        user = self.current_user()
        self.check_own_pin(user)
        require(user, "reset_drawer")
        unit = self.units.get(drawer)
        if unit is None:
            raise NotFound(f"no drawer {drawer}", f"aucun tiroir {drawer}",
                           code="UNKNOWN_DRAWER")
        op = self.session.op
        if op is not None and op.pocket.drawer == drawer and op.step not in ("done", "aborted"):
            raise StateError(f"drawer {drawer} is in use: finish the operation first",
                             f"le tiroir {drawer} est en cours d'utilisation : terminez "
                             "l'opération d'abord", code="OPERATION_RUNNING")
        self.touch()
        state = await unit.reset() if unit.state != "closed" else "closed"
        self.store.append(JournalEntry("drawer_reset", user=user.id, drawer=drawer,
                                       code=state.upper()))
        if state == "closed":
            self.alarms.auto_resolve("drawer_fault", Where(drawer=drawer),
                                     note("reset_by", u=user.id))
        return state

    def acting(self, actor: User | None, permission: str | None = None) -> User:
        """Who acts: the touchscreen's user, or a pharmacy-page user the caller authenticated,
        checked against ``permission`` when one is given.

        The pharmacy pages run in another browser while a nurse may be using the touchscreen:
        their pharmacist is not the cabinet session's user, so those calls pass ``actor``
        (obtained from :meth:`authenticate`). Only touchscreen actions restart its timer.
        """
        if actor is None:
            actor = self.current_user()
            self.touch()
        self.check_own_pin(actor)
        if permission is not None:
            require(actor, permission)
        return actor

    async def pharmacy_login(self, user_id: str, pin: str) -> User:
        """A pharmacy-page login (another browser): checked like a touchscreen PIN, journaled,
        and limited to the roles that read the journal; the touchscreen session is untouched."""
        user = await self.authenticate_async(user_id, pin)
        require(user, "read_journal")
        self.store.append(JournalEntry("login", user=user.id, code="PHARMACY"))
        return user

    def pharmacy_logout(self, user: User, *, reason: PharmacyLogoutReason = "user") -> None:
        self.store.append(JournalEntry("logout", user=user.id, code=f"PHARMACY_{reason.upper()}"))

    def resolve_alarm(self, alarm_id: int, note: str = "", *, actor: User | None = None) -> None:
        user = self.acting(actor)
        self.alarms.resolve(alarm_id, user, note)

    def acknowledge_alarm(self, alarm_id: int, *, actor: User | None = None) -> None:
        user = self.acting(actor)
        self.alarms.acknowledge(alarm_id, user)

    def close_lockout_alarm(self, user_id: str, actor: User, reason: ResolveNote) -> None:
        """Her own lockout alarm only (exact id: unlocking ide1 leaves ide10's open)."""
        alarm = self.alarms.find_open("auth_lockout", Where(user=user_id))
        if alarm is not None:
            self.alarms.resolve(int(alarm["id"]), actor, reason)

    def end_session_of(self, user_id: str, reason: LogoutReason) -> None:
        """The person is logged in at the cabinet but may no longer be (deactivated, PIN
        reset): lock it now, or, while her operation runs (a drawer may be open: its count
        and close still need her), as soon as it is over. Until then nobody else can log in
        (SESSION_OPEN)."""
        session = self.session
        if session.user is None or session.user.id != user_id or session.state == "locked":
            return
        if self.session.op is None:
            self._spawn(self.logout(reason=reason))
            return

        def when_over(message: dict[str, Any]) -> None:
            if message.get("type") == "session" and message.get("state") == "locked":
                self.listeners.remove(when_over)  # locked meanwhile (logout, inactivity)
            elif message.get("type") == "operation" and message.get("step") in (
                    "done", "aborted"):
                self.listeners.remove(when_over)
                self._spawn(self.logout(reason=reason))

        self.listeners.append(when_over)

    # == reports ==========================================================================
    def formulary(self) -> list[dict[str, Any]]:
        """Drugs placed in this cabinet, with what can be given now (non-expired units)."""
        today = self.today().isoformat()
        return self.store.query(
            """SELECT d.id, d.name, d.strength, d.form, d.controlled, d.high_alert,
                      d.assistant_allowed, d.max_per_withdrawal,
                      COALESCE(SUM(CASE WHEN s.expiry IS NULL OR s.expiry >= ?
                                   THEN s.on_hand END), 0) AS usable
               FROM drugs d JOIN pockets p ON p.drug = d.id
               LEFT JOIN stock s ON s.drawer = p.drawer AND s.row = p.row AND s.col = p.col
               GROUP BY d.id ORDER BY d.name, d.strength""", (today,))

    def stock_report(self) -> list[dict[str, Any]]:
        return self.store.stock_by_pocket()

    async def shutdown(self) -> None:
        self._stopping = True
        self._cancel_timer()
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
        self.hardware.safe_state()
        for unit in self.units.values():
            await unit.shutdown()
        op = self.session.op
        if op is not None:
            await self._abort_for_shutdown(op)
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Last, once the hardware is safe: a journal that cannot be written must not keep
        # a motor running.
        try:
            self._journal_unknown(self.clock.monotonic())  # guesses still held back
        except Exception:
            log.exception("could not journal the unknown-id failures held back")
