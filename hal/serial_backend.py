"""The ``serial`` backend: one drawer board per drawer, each on its own serial line.

The boards run ``firmware/`` and speak :mod:`firmware.protocol`. This backend offers the same
parts as the gpio backend (drawers, pocket latches, indicators, one event listener), so the
controller drives a serial cabinet exactly as it drives a gpio one. What differs lives here:

* **Requests are stop-and-wait, one outstanding per board.** A command returns once the board
  has acknowledged it; without an answer it is resent with the *same* sequence number after
  ``RESEND_TIMEOUT_S`` (real time: it is about the wire), at most ``ATTEMPTS`` times. The
  board runs a repeated sequence number once and answers it from its cache, so a resend can
  never open a drawer twice.
* **Events come from the board**, pushed as they happen and kept by the board until a POLL
  acknowledges them; the POLL is also the heartbeat (every ``HEARTBEAT_S`` on the backend's
  clock). Events are delivered in order, once, from the reader thread.
* **The link can fail.** No answer after every resend, a board that answers "who are you?"
  (it rebooted), or a port that vanished (cable unplugged) posts LINK_DOWN for that drawer; a
  command on a drawer whose link is down raises :class:`LinkDown` (a ``HardwareError`` with
  code ``LINK_DOWN``) and is *not* replayed later. The heartbeat keeps probing; when the board
  answers again the backend says HELLO, re-sends the limits, drains the events the board kept,
  and posts LINK_UP (``detail["rebooted"]`` tells whether the board restarted meanwhile; a
  rebooted board has stopped its motor and magnets).
* **Start-up checks the boards**: protocol version, firmware version (must be the one in
  ``firmware/``), the drawer id flashed into the board (a board on the wrong port is refused)
  and its number of pockets. Any mismatch is a :class:`~controller.errors.HardwareError` with a
  stable code, and nothing is driven.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any

import serial

from controller.errors import ConfigError, HardwareError
from firmware import protocol as P
from hal.clock import Clock, TimerHandle
from hal.config import DrawerHw, HardwareConfig, Timing
from hal.parts import (
    Emitter,
    EventKind,
    HardwareEvent,
    Motion,
    PartsBase,
    PocketAddress,
    SwitchState,
    magnet_busy,
)

log = logging.getLogger(__name__)

BAUDRATE = 115200
#: Real-time wait for an answer before the same frame is sent again.
RESEND_TIMEOUT_S = 0.1
#: Sends of one request (first + resends) before the board is declared not answering.
ATTEMPTS = 5
#: While a link is down, the heartbeat sends one HELLO and waits this long for it.
PROBE_TIMEOUT_S = 0.05
#: Heartbeat / event poll period, on the backend's clock.
HEARTBEAT_S = 0.2
#: The boards turn every output off after this long without hearing from the Pi.
BOARD_WATCHDOG_MS = 1000
#: How often a vanished port is looked for again (real time).
REOPEN_S = 0.2

_MOTIONS = {P.MOTION_STOPPED: Motion.STOPPED, P.MOTION_OPENING: Motion.OPENING,
            P.MOTION_CLOSING: Motion.CLOSING}
_SWITCHES = {P.SWITCH_CLOSED: "closed", P.SWITCH_OPEN: "open"}
_REASONS = {P.REASON_NOT_RELEASED: "did not release", P.REASON_BOTH: "both pressed"}


class LinkDown(HardwareError):
    """A drawer board did not answer (or restarted). Whether the command ran is unknown: if
    only the answers were lost, an OPEN may be running. The controller takes the drawer
    offline and, on LINK_UP, believes the end switches, never its own guess."""

    code = "LINK_DOWN"




class _Pending:
    def __init__(self, seq: int, cmd: int) -> None:
        self.seq = seq
        self.cmd = cmd
        self.reply = b""
        self.failed = False
        self.done = threading.Event()


def open_port(port: str) -> Any:
    """A pyserial port, with timeouts on both directions; real devices are locked
    exclusively so that no second process can talk to a board behind our back."""
    kwargs: dict[str, Any] = {"baudrate": BAUDRATE, "timeout": 0.05, "write_timeout": 0.5}
    if "://" not in port:
        kwargs["exclusive"] = True
    return serial.serial_for_url(port, **kwargs)


class BoardLink:
    """The line to one drawer board: port, reader thread, requests, events, link state."""

    def __init__(self, hw: DrawerHw, port: str, timing: Timing, clock: Clock,
                 emit: Emitter) -> None:
        self.hw = hw
        self.port = port
        self.timing = timing
        self.clock = clock
        self._emit = emit
        self._serial: Any = None
        self._tx = threading.Lock()
        self._state = threading.Lock()
        self._pending: _Pending | None = None
        self._seq = 0
        self._decoder = P.Decoder()
        self._running = False
        self._reader: threading.Thread | None = None
        self._timer: TimerHandle | None = None
        self.up = False
        self.status = 0
        self.energised: set[int] = set()
        self.expected_event: int | None = None
        self.boot_id: int | None = None
        self.uptime_ms = 0
        self.hello: dict[str, Any] = {}
        self.problem: HardwareError | None = None
        self.board_watchdog = False
        #: The board answered NEED_HELLO since we last met it: it has restarted, whatever
        #: its boot id and uptime look like (the boot id is 16 bits of a timer at start-up,
        #: and can repeat). Consumed by the next HELLO.
        self._reset_seen = False
        #: A restart seen by a HELLO whose LINK_UP has not been posted yet.
        self._reboot_unreported = False
        #: Events the board dropped and this side never delivered (total, and not yet
        #: reported with a LINK_UP); the board's own saturating count is ``board_dropped``.
        self.events_lost = 0
        self._unreported_loss = 0
        self.board_dropped = 0
        self.last_fault = 0
        self.sent = 0
        self.resent = 0

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Open the port, meet the board, check it; raises HardwareError on any failure."""
        try:
            self._serial = open_port(self.port)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise HardwareError(
                f"drawer {self.hw.id}: cannot open serial port {self.port}: {exc}",
                f"tiroir {self.hw.id} : impossible d'ouvrir le port série {self.port} : {exc}",
                code="PORT_UNAVAILABLE") from exc
        self._running = True
        self._reader = threading.Thread(target=self._read_loop, name=f"serial-{self.hw.id}",
                                        daemon=True)
        self._reader.start()
        if not self._resync(probe=False):
            if self.problem is not None:
                raise self.problem
            raise HardwareError(
                f"drawer {self.hw.id}: the drawer board on {self.port} does not answer",
                f"tiroir {self.hw.id} : la carte du tiroir sur {self.port} ne répond pas",
                code="BOARD_NOT_ANSWERING")

    def start_heartbeat(self) -> None:
        self._timer = self.clock.call_later(HEARTBEAT_S, self._beat)

    def stop(self) -> None:
        """Stop the heartbeat and the reader and close the port; nothing is sent."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._close_port()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=1.0)

    def _close_port(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            with contextlib.suppress(Exception):
                ser.close()
        self._fail_pending()

    def _fail_pending(self) -> None:
        with self._state:
            pending = self._pending
        if pending is not None:
            pending.failed = True
            pending.done.set()

    # -- reader thread --------------------------------------------------------------------
    def _read_loop(self) -> None:
        while self._running:
            ser = self._serial
            if ser is None:
                time.sleep(REOPEN_S)
                if not self._running:
                    return
                try:
                    ser = open_port(self.port)
                except (serial.SerialException, OSError, ValueError):
                    continue
                self._decoder = P.Decoder()
                self._serial = ser
                continue
            try:
                data = ser.read(max(1, ser.in_waiting))
            except Exception:  # port gone: SerialException, OSError, or a closed handle
                if not self._running:
                    return
                self._close_port()
                self.mark_down("port lost")
                continue
            if data:
                for seq, cmd, args in self._decoder.feed(data):
                    self._on_frame(seq, cmd, args)

    def _on_frame(self, seq: int, cmd: int, args: bytes) -> None:
        try:
            if cmd == P.EVENT:
                if len(args) == P.EVENT_SIZE:
                    self._take_events(P.unpack_events(args, 0))
                return
            if not cmd & P.RESPONSE:
                return
            with self._state:
                pending = self._pending
            if pending is None or pending.seq != seq or pending.cmd != cmd & ~P.RESPONSE:
                return   # a late or duplicated answer to a request already settled
            if len(args) >= 2 and args[0] in (P.OK, P.BAD_ARGS, P.NEED_HELLO) \
                    and pending.cmd != P.HELLO:
                self.status = args[1]
            if pending.cmd == P.POLL and args and args[0] == P.OK:
                self._take_poll(args)
            pending.reply = args
            pending.done.set()
        except (struct.error, IndexError, ValueError):
            log.warning("drawer %s: malformed frame from the board dropped", self.hw.id)
        except Exception:   # this thread carries every answer: one frame must not end it
            log.exception("drawer %s: a frame from the board could not be handled",
                          self.hw.id)

    def _take_poll(self, args: bytes) -> None:
        _, status, fault, dropped, _, uptime, nbits = struct.unpack(P.POLL_FORMAT,
                                                                    args[:P.POLL_SIZE])
        self.uptime_ms = uptime
        self.board_dropped = dropped
        self.last_fault = fault
        events = P.unpack_events(args, P.POLL_SIZE + nbits)
        self._skip_lost(events)
        self._take_events(events)
        # The header is the board's state now; the events carry the status of when they
        # happened, older. Applied last, so the newest state is the one that stays.
        self.status = status
        self.energised = set(P.from_bitmap(args[P.POLL_SIZE:P.POLL_SIZE + nbits]))

    def _skip_lost(self, events: list[tuple[int, int, int, int]]) -> None:
        """A POLL answer starts with the oldest event the board still holds past our ack. If
        that is beyond the one we expect, the board's full queue dropped the ones between:
        they will never come, so waiting for them would block every later event. Jump to
        the board's oldest and count the loss (reported with LINK_UP, see ``poll``)."""
        if not events or self.expected_event is None:
            return
        gap = P.id_delta(events[0][0], self.expected_event)
        if gap > 0:
            log.warning("drawer %s: %d events lost (board queue full)", self.hw.id, gap)
            self.events_lost += gap
            self._unreported_loss += gap
            self.expected_event = events[0][0]

    def _take_events(self, events: list[tuple[int, int, int, int]]) -> None:
        for event_id, kind, arg, status in events:
            if self.expected_event is None or P.id_delta(event_id, self.expected_event) != 0:
                continue   # already delivered, or after a gap the next POLL will fill
            self.expected_event = (self.expected_event + 1) & 0xFFFF
            self.status = status
            self._deliver(kind, arg)

    def _deliver(self, kind: int, arg: int) -> None:
        drawer = self.hw.id
        if kind == P.EV_OPENED:
            self._emit(HardwareEvent(EventKind.OPENED, drawer))
        elif kind == P.EV_CLOSED:
            self._emit(HardwareEvent(EventKind.CLOSED, drawer))
        elif kind == P.EV_JAMMED:
            motion = _MOTIONS.get(arg, Motion.STOPPED).value
            self._emit(HardwareEvent(EventKind.JAMMED, drawer,
                                     {"motion": motion, "seconds": self.timing.max_travel_s}))
        elif kind == P.EV_SWITCH_FAULT:
            self._emit(HardwareEvent(EventKind.SWITCH_FAULT, drawer,
                                     {"switch": _SWITCHES.get(arg & 0x0F, "?"),
                                      "reason": _REASONS.get(arg >> 4, "?")}))
        elif kind == P.EV_MOVED_UNCOMMANDED:
            self._emit(HardwareEvent(EventKind.MOVED_UNCOMMANDED, drawer,
                                     {"switch": _SWITCHES.get(arg, "?")}))
        elif kind == P.EV_CLOSE_PRESSED:
            self._emit(HardwareEvent(EventKind.CLOSE_PRESSED, drawer))
        elif kind == P.EV_LATCH_RELEASED:
            self.energised.discard(arg)
            row, col = divmod(arg, self.hw.cols)
            self._emit(HardwareEvent(EventKind.LATCH_RELEASED, drawer, {"row": row, "col": col}))
        elif kind == P.EV_WATCHDOG:
            self.board_watchdog = True   # reported with the LINK_UP that follows

    def describe(self) -> dict[str, Any]:
        """The board's state as last reported (diagnostics page, logs)."""
        position = P.position_of(self.status)
        return {
            "link": "up" if self.up else "down", "port": self.port,
            "position": ("closed", "open", "between", "invalid")[position],
            "motion": _MOTIONS.get(self.status & P.ST_MOTION_MASK, Motion.STOPPED).value,
            "switches": {"closed": bool(self.status & P.ST_SW_CLOSED),
                         "open": bool(self.status & P.ST_SW_OPEN)},
            "magnets_on": sorted(self.energised), "last_fault": self.last_fault,
            "uptime_ms": self.uptime_ms, "firmware": self.hello.get("version"),
            "boot_id": self.boot_id, "frames_sent": self.sent, "frames_resent": self.resent,
            "bad_frames_received": self._decoder.bad_frames, "events_lost": self.events_lost,
            "board_events_dropped": self.board_dropped}

    # -- requests -------------------------------------------------------------------------
    def transact(self, cmd: int, args: bytes = b"", attempts: int = ATTEMPTS,
                 timeout: float = RESEND_TIMEOUT_S) -> bytes:
        """Send one request and wait for its answer, resending the same frame on timeout."""
        if threading.current_thread() is self._reader:
            raise RuntimeError("hardware commands must not be issued from the event listener")
        with self._tx:
            ser = self._serial
            if ser is None:
                raise self._link_down("port not open")
            self._seq = P.seq_after(self._seq)
            pending = _Pending(self._seq, cmd)
            frame = P.encode(self._seq, cmd, args)
            with self._state:
                self._pending = pending
            try:
                for attempt in range(attempts):
                    try:
                        ser.write(frame)
                    except Exception:
                        break
                    self.sent += 1
                    self.resent += 1 if attempt else 0
                    if pending.done.wait(timeout):
                        if pending.failed:
                            break
                        return pending.reply
            finally:
                with self._state:
                    self._pending = None
        raise self._link_down(f"no answer to {P.COMMAND_NAMES.get(cmd, cmd)}")

    def _link_down(self, why: str) -> LinkDown:
        return LinkDown(f"drawer {self.hw.id}: drawer board not answering ({why})",
                        f"tiroir {self.hw.id} : la carte du tiroir ne répond pas ({why})",
                        drawer=self.hw.id)

    def command(self, cmd: int, args: bytes = b"") -> bytes:
        """A request from the controller: carried out once, or LinkDown and nothing done."""
        if not self.up:
            raise self._link_down("link down")
        try:
            reply = self.transact(cmd, args)
        except LinkDown:
            self.mark_down("no answer")
            raise
        if reply and reply[0] == P.NEED_HELLO:
            self._reset_seen = True
            self.mark_down("board reset")
            raise self._link_down("the board restarted")
        if cmd == P.RELEASE and reply and reply[0] == P.BUSY:
            raise magnet_busy(self.hw.id)
        if not reply or reply[0] != P.OK:
            raise HardwareError(f"drawer {self.hw.id}: the board refused "
                                f"{P.COMMAND_NAMES.get(cmd, cmd)} (result {reply[:1].hex()})",
                                f"tiroir {self.hw.id} : la carte a refusé la commande",
                                code="BOARD_REFUSED")
        return reply

    def mark_down(self, reason: str) -> None:
        with self._state:   # reader and heartbeat may both notice: one LINK_DOWN
            was_up, self.up = self.up, False
        if was_up:
            self._emit(HardwareEvent(EventKind.LINK_DOWN, self.hw.id, {"reason": reason}))

    # -- heartbeat and resynchronisation -----------------------------------------------------
    def _beat(self) -> None:
        if not self._running:
            return
        try:
            if self.up:
                self.poll()
            else:
                self._resync(probe=True)
        except Exception:
            log.exception("drawer %s: heartbeat failed", self.hw.id)
        finally:
            if self._running:
                self._timer = self.clock.call_later(HEARTBEAT_S, self._beat)

    def poll(self) -> None:
        """Heartbeat and event collection: returns once the board's pending events are in."""
        try:
            self._drain()
        except LinkDown:
            self.mark_down("no answer")
        except _BoardReset:
            self.mark_down("board reset")
            self._resync(probe=False)
        else:
            if self._unreported_loss:
                self._report_loss("events lost")
            elif self.board_watchdog:
                # The Pi was late (a stall longer than the board's watchdog) but no request
                # failed: the board has cut its motor and magnets, and no OPENED, CLOSED or
                # LATCH_RELEASED will come for what it cut. Without this the flag waited for
                # a LINK_UP that never came, and the controller was never told.
                self._report_loss("board watchdog")

    def _report_loss(self, reason: str) -> None:
        """Events were lost, or the board's watchdog cut its outputs, while the link was up:
        what the controller believes about this drawer may be wrong (a lost CLOSED, a motor
        stopped mid-travel…). Say so the way a link that went and came back does, LINK_DOWN
        (``reason``) then LINK_UP with the count and ``board_watchdog``, so the controller
        takes the drawer offline and re-reads its switches on LINK_UP."""
        self.mark_down(reason)
        with self._state:
            self.up = True
        self._emit(HardwareEvent(EventKind.LINK_UP, self.hw.id,
                                 {"rebooted": False, "board_watchdog": self.board_watchdog,
                                  "events_lost": self._take_unreported_loss()}))
        self.board_watchdog = False

    def _take_unreported_loss(self) -> int:
        lost, self._unreported_loss = self._unreported_loss, 0
        return lost

    def _drain(self) -> None:
        for _ in range(64):
            ack = self.expected_event or 0
            reply = self.transact(P.POLL, bytes([ack >> 8, ack & 0xFF]))
            if reply and reply[0] == P.NEED_HELLO:
                self._reset_seen = True
                raise _BoardReset
            if len(reply) < P.POLL_SIZE or not reply[4]:
                return

    def _check(self, info: Mapping[str, Any]) -> HardwareError | None:
        drawer = self.hw.id
        if info["protocol"] != P.PROTOCOL_VERSION:
            return HardwareError(
                f"drawer {drawer}: board speaks protocol {info['protocol']}, "
                f"this software {P.PROTOCOL_VERSION}",
                f"tiroir {drawer} : la carte parle le protocole {info['protocol']}, "
                f"ce logiciel le {P.PROTOCOL_VERSION}", code="PROTOCOL_MISMATCH")
        if info["version"] != P.FIRMWARE_VERSION:
            return HardwareError(
                f"drawer {drawer}: board runs firmware {info['version']}, this software needs "
                f"{P.FIRMWARE_VERSION}; flash it (firmware/flash.sh)",
                f"tiroir {drawer} : la carte a le micrologiciel {info['version']}, il faut le "
                f"{P.FIRMWARE_VERSION} ; flashez-la (firmware/flash.sh)",
                code="FIRMWARE_MISMATCH")
        pockets = self.hw.rows * self.hw.cols if self.hw.lidded else 0
        if info["drawer_id"] != drawer or info["pockets"] < pockets:
            return HardwareError(
                f"drawer {drawer}: the board on {self.port} is set up for drawer "
                f"{info['drawer_id']!r} with {info['pockets']} pockets ({pockets} needed)",
                f"tiroir {drawer} : la carte sur {self.port} est prévue pour le tiroir "
                f"{info['drawer_id']!r} avec {info['pockets']} cases ({pockets} nécessaires)",
                code="BOARD_MISMATCH")
        return None

    def _resync(self, probe: bool) -> bool:
        """Meet the board (again): HELLO, checks, limits, queued events; then the link is up."""
        if self._serial is None:
            return False
        try:
            reply = self.transact(P.HELLO, b"", 1 if probe else ATTEMPTS,
                                  PROBE_TIMEOUT_S if probe else RESEND_TIMEOUT_S)
            info = P.unpack_hello(reply)
        except LinkDown:
            return False
        except (struct.error, IndexError, ValueError, UnicodeError):
            return False
        problem = self._check(info)
        if problem is not None:
            if self.problem is None and self.boot_id is not None:
                self._emit(HardwareEvent(EventKind.LINK_DOWN, self.hw.id,
                                         {"reason": problem.code}))
            self.problem = problem
            return False
        self.problem = None
        # A restart: the board said so (NEED_HELLO), or its boot id changed, or its uptime
        # went down, or its event numbering went back behind events already delivered
        # (the board numbers from 0 at each boot, and never goes back otherwise). Missing
        # one kept the old count, and every new event was dropped as an old one.
        next_event = int(info["next_event"])
        rebooted = self.boot_id is not None and (
            self._reset_seen or info["boot_id"] != self.boot_id
            or int(info["uptime_ms"]) < self.uptime_ms
            or (self.expected_event is not None
                and P.id_delta(next_event, self.expected_event) < 0))
        self._reset_seen = False
        first = self.boot_id is None
        if first or rebooted:
            self.expected_event = next_event
            self.energised.clear()
        self._reboot_unreported = self._reboot_unreported or rebooted
        self.boot_id = int(info["boot_id"])
        self.uptime_ms = int(info["uptime_ms"])
        self.hello = info
        t = self.timing
        limits = struct.pack(">HHHHHH", round(t.max_travel_s * 1000),
                             round(t.switch_release_s * 1000), round(t.magnet_pulse_s * 1000),
                             BOARD_WATCHDOG_MS, round(t.switch_debounce_s * 1000),
                             round(t.magnet_min_off_s * 1000))
        try:
            # [:1]: an answer without its result byte has not confirmed the limits either
            if self.transact(P.CONFIG, limits)[:1] != bytes([P.OK]):
                return False
            self._drain()   # events kept while we were apart come before LINK_UP
        except (LinkDown, _BoardReset):
            return False
        if not self.up:
            self.up = True
            lost = self._take_unreported_loss()
            if not first:
                self._emit(HardwareEvent(EventKind.LINK_UP, self.hw.id,
                                         {"rebooted": self._reboot_unreported,
                                          "board_watchdog": self.board_watchdog,
                                          "events_lost": lost}))
        self._reboot_unreported = False
        self.board_watchdog = False
        return True


class _BoardReset(Exception):
    """The board answered NEED_HELLO: it restarted since we last met it."""


class SerialDrawer:
    def __init__(self, link: BoardLink) -> None:
        self.id = link.hw.id
        self._link = link

    def open(self) -> None:
        self._link.command(P.OPEN)

    def close(self) -> None:
        self._link.command(P.CLOSE)

    def stop(self) -> None:
        self._link.command(P.STOP)

    @property
    def switches(self) -> SwitchState:
        status = self._link.status
        return SwitchState(closed=bool(status & P.ST_SW_CLOSED), open=bool(status & P.ST_SW_OPEN))

    @property
    def motion(self) -> Motion:
        return _MOTIONS.get(self._link.status & P.ST_MOTION_MASK, Motion.STOPPED)


class SerialLatch:
    def __init__(self, address: PocketAddress, index: int, link: BoardLink) -> None:
        self.address = address
        self.index = index
        self._link = link

    def release(self) -> None:
        reply = self._link.command(P.RELEASE, bytes([self.index]))
        if len(reply) >= 3 and reply[2]:
            self._link.energised.add(self.index)

    @property
    def energised(self) -> bool:
        return self.index in self._link.energised


class SerialIndicator:
    def __init__(self, link: BoardLink) -> None:
        self._link = link

    def on(self) -> None:
        self._link.command(P.LED, b"\x01")

    def off(self) -> None:
        self._link.command(P.LED, b"\x00")


class SerialHardware(PartsBase[SerialDrawer, SerialLatch, SerialIndicator]):
    """All drawers of a cabinet, each behind its own drawer board."""

    backend = "serial"
    buzzer = None

    def __init__(self, config: HardwareConfig, clock: Clock, ports: Mapping[str, str]) -> None:
        self.config = config
        super().__init__()
        self.links: dict[str, BoardLink] = {}
        for hw in config.drawers:
            link = BoardLink(hw, ports[hw.id], config.timing, clock, self._emit)
            self.links[hw.id] = link
            self._drawers[hw.id] = SerialDrawer(link)
            self._indicators[hw.id] = SerialIndicator(link)
            if hw.lidded:
                for row, col in hw.pockets():
                    self._latches[(hw.id, row, col)] = SerialLatch(
                        (hw.id, row, col), row * hw.cols + col, link)

    def start(self) -> None:
        try:
            for link in self.links.values():
                link.start()
        except BaseException:
            for link in self.links.values():
                link.stop()
            raise
        for link in self.links.values():
            link.start_heartbeat()

    def link_ok(self) -> bool:
        return all(link.up for link in self.links.values())

    def safe_state(self) -> None:
        """Every board's outputs off; a board out of reach is already safe by its watchdog."""
        for link in self.links.values():
            with contextlib.suppress(HardwareError):
                link.command(P.SAFE)
            link.energised.clear()

    def describe(self) -> dict[str, dict[str, Any]]:
        return {drawer: link.describe() for drawer, link in self.links.items()}

    def settle(self) -> None:
        """Poll every reachable board once: all events they produced so far are delivered
        when this returns (the simulator's ``settle``). Bounded by the resend limit: a board
        that does not answer is marked down, not waited for."""
        for link in self.links.values():
            if link.up:
                link.poll()

    def kill(self) -> None:
        """The process dies (simulated power loss): threads stop, nothing is sent."""
        for link in self.links.values():
            link.stop()

    def close(self) -> None:
        self.safe_state()
        for link in self.links.values():
            link.stop()


def build(config: HardwareConfig, clock: Clock, simulator: Any = None) -> SerialHardware:
    """The serial backend, started: every board met and checked, heartbeats running.

    With a simulator, the ports are the emulated boards' ptys (``simulator.serial_ports()``)
    and the backend registers itself so that ``simulator.settle()`` and
    ``simulator.power_loss()`` reach it."""
    if simulator is not None:
        ports = dict(simulator.serial_ports())
    else:
        ports = {}
        for hw in config.drawers:
            if not hw.port:
                raise ConfigError(f"drawer {hw.id}: no serial port configured (port = ...)",
                                  f"tiroir {hw.id} : aucun port série configuré (port = ...)")
            ports[hw.id] = hw.port
    hardware = SerialHardware(config, clock, ports)
    hardware.start()
    if simulator is not None and hasattr(simulator, "register_serial_client"):
        simulator.register_serial_client(hardware)
    return hardware
