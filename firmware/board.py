"""The drawer board's logic: plain classes stepped by ``poll(now_ms)``, no I/O of their own.

The board's asyncio tasks (``main.py``) call these in loops with the board's uptime in
milliseconds; the emulator (``sim/board_emulator.py``) calls the very same methods on the
simulator's virtual clock. Keeping time an argument, never read inside, is what lets one piece
of code be both the firmware and a deterministic model of it.

Safety on the board does not depend on the Pi: the motor stops at its end switch or after the
maximum travel time, a magnet pulse ends after its capped length, and if the Pi's heartbeat
stops every output goes off (Klipper's ``max_duration`` idea). The limits the Pi sends are
clamped to the caps below, which no message can raise.

Pins are injected: any object with MicroPython's ``Pin.value([v])`` (and ``irq`` for the Close
button). Switches and the button pull their input to ground when pressed.
"""

try:
    from firmware import protocol as P
except ImportError:  # on the board, the modules sit at the filesystem root
    import protocol as P  # type: ignore[no-redef, import-not-found]

try:  # noqa: SIM105  (MicroPython has no contextlib)
    from typing import Any
except ImportError:  # MicroPython has no typing; annotations are never evaluated there
    pass

#: Hard caps, repeated from the Pi's hal/config.py so that a dead or confused Pi cannot exceed
#: them either.
MAX_TRAVEL_MS = 20000
MAX_PULSE_MS = 1000
MIN_HEARTBEAT_MS = 200
MAX_HEARTBEAT_MS = 5000
#: An end switch or the Close button must hold a new level this long before an uncommanded
#: move or a press is reported (contact bounce lasts a few ms). Ending a motor run at its end
#: switch is never delayed by it: the first sample that sees the switch stops the motor.
DEBOUNCE_MS = 25
MIN_DEBOUNCE_MS = 5
MAX_DEBOUNCE_MS = 100
#: Events kept for the Pi until it acknowledges them; older ones are dropped and counted.
MAX_QUEUE = 32
#: Magnet duty cycle. One magnet on at a time per board (the ULN2803's dissipation), and a
#: magnet rests at least MAGNET_OFF_MS after a pulse before the next (the coil's heating).
#: board_config's MAGNET_MIN_OFF_MS may lengthen the rest within the bounds, never shorten it.
MAGNET_OFF_MS = 1000
MIN_MAGNET_OFF_MS = 500
MAX_MAGNET_OFF_MS = 10000
#: A RELEASE that cannot start at once waits its turn if it can start within this; beyond, it
#: is refused (BUSY) rather than fired long after the person stopped waiting.
MAGNET_MAX_WAIT_MS = 2000


class Limits:
    """Actuation limits in effect; ``configure`` clamps what the Pi asks for to the caps."""

    def __init__(self) -> None:
        self.max_travel_ms = 6000
        self.switch_release_ms = 1000
        self.pulse_ms = 300
        self.heartbeat_ms = 1000
        self.debounce_ms = DEBOUNCE_MS
        self.magnet_off_ms = MAGNET_OFF_MS

    def set_magnet_off(self, ms: int) -> None:
        """From board_config: clamped, so no configuration goes below the rest time."""
        self.magnet_off_ms = max(MIN_MAGNET_OFF_MS, min(ms, MAX_MAGNET_OFF_MS))

    def set_debounce(self, ms: int) -> None:
        """From board_config, then from the Pi's CONFIG: clamped like the other limits."""
        self.debounce_ms = max(MIN_DEBOUNCE_MS, min(ms, MAX_DEBOUNCE_MS))

    def configure(self, travel: int, release: int, pulse: int, heartbeat: int) -> None:
        self.max_travel_ms = max(1, min(travel, MAX_TRAVEL_MS))
        self.switch_release_ms = max(1, min(release, MAX_TRAVEL_MS))
        self.pulse_ms = max(1, min(pulse, MAX_PULSE_MS))
        self.heartbeat_ms = max(MIN_HEARTBEAT_MS, min(heartbeat, MAX_HEARTBEAT_MS))


class Motor:
    """Two direction inputs of an H-bridge; never both on."""

    def __init__(self, forward: Any, backward: Any) -> None:
        self.forward_pin = forward
        self.backward_pin = backward
        self.off()

    def forward(self) -> None:
        self.backward_pin.value(0)
        self.forward_pin.value(1)

    def backward(self) -> None:
        self.forward_pin.value(0)
        self.backward_pin.value(1)

    def off(self) -> None:
        self.forward_pin.value(0)
        self.backward_pin.value(0)

    def running(self) -> bool:
        return bool(self.forward_pin.value() or self.backward_pin.value())


class DrawerControl:
    """One motorised drawer: the same rules as the Pi's gpio backend (hal/gpio.py).

    Commands are idempotent: ``open`` while opening does nothing; on a drawer already open it
    reports OPENED again without running the motor.
    """

    def __init__(self, motor: Motor, sw_closed: Any, sw_open: Any, limits: Limits,
                 emit: Any) -> None:
        self.motor = motor
        self.sw_closed = sw_closed
        self.sw_open = sw_open
        self.limits = limits
        self.emit = emit
        self.motion = P.MOTION_STOPPED
        self.started_ms = 0
        self.leaving = -1          # the end switch that must release soon, or -1
        self.energise_at = -1      # when a reversed run's motor starts (P.REVERSE_PAUSE_MS)
        # (closed, open) at the previous poll; None before the first
        self.last = None  # type: tuple[bool, bool] | None
        #: The Close button's pin (pulled up, low when pressed), or None.
        self.button = None  # type: Any
        # Debounced levels of (closed switch, open switch, button) and since when each raw
        # level has been what it is: a change counts once it has held for debounce_ms.
        self.stable = [False, False, False]
        self.raw = [False, False, False]
        self.since = [0, 0, 0]
        self.last_fault = 0

    # -- inputs -----------------------------------------------------------------------------
    def closed_pressed(self) -> bool:
        return self.sw_closed.value() == 0

    def open_pressed(self) -> bool:
        return self.sw_open.value() == 0

    def button_pressed(self) -> bool:
        return self.button is not None and self.button.value() == 0

    def look(self, now: int) -> None:
        """First look after boot: the inputs' levels are a state, not edges."""
        closed = self.closed_pressed()
        opened = self.open_pressed()
        self.last = (closed, opened)
        levels = [closed, opened, self.button_pressed()]
        self.stable = list(levels)
        self.raw = list(levels)
        self.since = [now, now, now]

    def settle(self, i: int, level: bool, now: int) -> bool:
        """Debounce input ``i``: True when its level has just held long enough to count."""
        if level != self.raw[i]:
            self.raw[i] = level
            self.since[i] = now
        if level != self.stable[i] and now - self.since[i] >= self.limits.debounce_ms:
            self.stable[i] = level
            return True
        return False

    # -- commands ---------------------------------------------------------------------------
    def open(self, now: int) -> None:
        if self.motion == P.MOTION_OPENING:
            return
        if self.motion == P.MOTION_STOPPED and self.open_pressed() and not self.closed_pressed():
            self.emit(P.EV_OPENED, 0)
            return
        self.start(P.MOTION_OPENING, now)

    def close(self, now: int) -> None:
        if self.motion == P.MOTION_CLOSING:
            return
        if self.motion == P.MOTION_STOPPED and self.closed_pressed() and not self.open_pressed():
            self.emit(P.EV_CLOSED, 0)
            return
        self.start(P.MOTION_CLOSING, now)

    def stop(self) -> None:
        self.motor.off()
        self.motion = P.MOTION_STOPPED
        self.leaving = -1
        self.energise_at = -1

    def start(self, motion: int, now: int) -> None:
        """Run the motor the ``motion`` way; one still turning (or pausing) the other way is
        stopped and driven only after ``REVERSE_PAUSE_MS`` (:meth:`poll` does it)."""
        turning = self.motor.running() or self.energise_at >= 0
        self.stop()
        self.last_fault = 0
        self.motion = motion
        if turning:
            self.energise_at = now + P.REVERSE_PAUSE_MS
            self.started_ms = self.energise_at
        else:
            self.energise(now)

    def energise(self, now: int) -> None:
        """The motor on for the run ``self.motion`` names, unless the drawer is already at
        its end: a run reversed just after it began finds its end switch still pressed, and
        driving into it would only end as a jam. Nor with both end switches pressed: the
        drawer's position is then unknown, and a stuck switch would never give the edge
        that ends the run (the motor would push into the end stop until the travel limit);
        that is a switch fault, reported as the run would report it at its end."""
        self.energise_at = -1
        self.started_ms = now
        closed, opened = self.closed_pressed(), self.open_pressed()
        if closed and opened:
            far = P.SWITCH_CLOSED if self.motion == P.MOTION_OPENING else P.SWITCH_OPEN
            self.fault(P.EV_SWITCH_FAULT, far | (P.REASON_BOTH << 4))
            return
        if self.motion == P.MOTION_OPENING:
            if opened and not closed:
                self.arrive(P.MOTION_OPENING)
                return
            self.motor.forward()
            self.leaving = P.SWITCH_CLOSED if closed else -1
        else:
            if closed and not opened:
                self.arrive(P.MOTION_CLOSING)
                return
            self.motor.backward()
            self.leaving = P.SWITCH_OPEN if opened else -1

    def arrive(self, motion: int) -> None:
        """A run at its end: motor off, that switch counted as pressed (so its bounce is not
        read as a move), the arrival reported."""
        self.stop()
        if motion == P.MOTION_OPENING:
            self.stable[1] = True
            self.emit(P.EV_OPENED, 0)
        else:
            self.stable[0] = True
            self.emit(P.EV_CLOSED, 0)

    def fault(self, kind: int, arg: int) -> None:
        self.stop()
        self.last_fault = kind
        self.emit(kind, arg)

    # -- the step ---------------------------------------------------------------------------
    def poll(self, now: int) -> None:
        if self.energise_at >= 0 and now - self.energise_at >= 0:
            self.energise(now)
        closed = self.closed_pressed()
        opened = self.open_pressed()
        if self.last is None:
            self.look(now)
        was_closed, was_open = self.last or (closed, opened)
        self.last = (closed, opened)
        # The end of a run: on the first sample that sees the switch, undebounced (safety).
        # The switch then counts as pressed, so its bounce cannot read as a move.
        if opened and not was_open and self.motion == P.MOTION_OPENING:
            if closed:
                self.fault(P.EV_SWITCH_FAULT, P.SWITCH_CLOSED | (P.REASON_BOTH << 4))
            else:
                self.arrive(P.MOTION_OPENING)
        if closed and not was_closed and self.motion == P.MOTION_CLOSING:
            if opened:
                self.fault(P.EV_SWITCH_FAULT, P.SWITCH_OPEN | (P.REASON_BOTH << 4))
            else:
                self.arrive(P.MOTION_CLOSING)
        # Reports, only once a level has held for the debounce time. A switch pressed while
        # the other one is pressed too (held, and still now: not one that has just let go)
        # is a sensor fault, never a position: a closed
        # drawer whose open switch sticks was reported forced open, and an open drawer whose
        # closed switch sticks went unreported (the next Close then ran until the jam).
        if self.settle(1, opened, now) and opened and self.motion == P.MOTION_STOPPED:
            if closed and self.stable[0]:
                self.fault(P.EV_SWITCH_FAULT, P.SWITCH_OPEN | (P.REASON_BOTH << 4))
            else:
                self.emit(P.EV_MOVED_UNCOMMANDED, P.SWITCH_OPEN)
        if self.settle(0, closed, now) and self.motion == P.MOTION_STOPPED:
            if not closed:
                self.emit(P.EV_MOVED_UNCOMMANDED, P.SWITCH_CLOSED)
            elif opened and self.stable[1]:
                self.fault(P.EV_SWITCH_FAULT, P.SWITCH_CLOSED | (P.REASON_BOTH << 4))
        if self.settle(2, self.button_pressed(), now) and self.stable[2]:
            self.emit(P.EV_CLOSE_PRESSED, 0)
        if self.motion != P.MOTION_STOPPED:
            elapsed = now - self.started_ms
            if elapsed >= self.limits.max_travel_ms:
                self.fault(P.EV_JAMMED, self.motion)
            elif self.leaving >= 0 and elapsed >= self.limits.switch_release_ms:
                held = closed if self.leaving == P.SWITCH_CLOSED else opened
                if held:
                    self.fault(P.EV_SWITCH_FAULT, self.leaving | (P.REASON_NOT_RELEASED << 4))
                else:
                    self.leaving = -1


#: What ``MagnetBank.release`` did.
MAGNET_REFUSED = -1
MAGNET_WAITING = 0
MAGNET_ON = 1


class MagnetBank:
    """The pocket-lid magnets: each is pulsed, and every pulse is ended by ``poll``.

    Duty cycle: at most one magnet on at a time, and a magnet rests ``magnet_off_ms`` after
    each pulse. A release that cannot start now joins a queue (first come, first served) if it
    can start within ``MAGNET_MAX_WAIT_MS``, and is refused otherwise.
    """

    def __init__(self, pins: Any, limits: Limits, emit: Any) -> None:
        self.pins = pins
        self.limits = limits
        self.emit = emit
        self.on_since = {}  # type: dict[int, int]
        self.off_at = {}  # type: dict[int, int]
        self.waiting = []  # type: list[int]
        for pin in pins:
            pin.value(0)

    def ready_at(self, index: int) -> int:
        """When this magnet has rested enough to be switched on again (-1: now)."""
        if index in self.off_at:
            return self.off_at[index] + self.limits.magnet_off_ms
        return -1

    def start_at(self, index: int, now: int) -> int:
        """When a release asked now would start: after the pulse on and the queue, rested."""
        free = now
        for on in self.on_since:
            free = max(free, self.on_since[on] + self.limits.pulse_ms)
        for queued in self.waiting:
            free = max(free, self.ready_at(queued)) + self.limits.pulse_ms
        return max(free, self.ready_at(index))

    def release(self, index: int, now: int) -> int:
        if index in self.on_since:
            return MAGNET_ON      # already pulsing: a second pulse would lengthen the on-time
        if index in self.waiting:
            return MAGNET_WAITING
        start = self.start_at(index, now)
        if start <= now:
            self.switch_on(index, now)
            return MAGNET_ON
        if start - now > MAGNET_MAX_WAIT_MS:
            return MAGNET_REFUSED
        self.waiting.append(index)
        return MAGNET_WAITING

    def switch_on(self, index: int, now: int) -> None:
        self.pins[index].value(1)
        self.on_since[index] = now

    def poll(self, now: int) -> None:
        for index in list(self.on_since):
            if now - self.on_since[index] >= self.limits.pulse_ms:
                self.pins[index].value(0)
                del self.on_since[index]
                self.off_at[index] = now
                self.emit(P.EV_LATCH_RELEASED, index)
        if self.waiting and not self.on_since and now >= self.ready_at(self.waiting[0]):
            self.switch_on(self.waiting.pop(0), now)

    def all_off(self, now: int = 0) -> None:
        for pin in self.pins:
            pin.value(0)
        for index in self.on_since:   # cut short, but it was on: it rests all the same
            self.off_at[index] = now
        self.on_since = {}
        self.waiting = []


class ShiftOutputs:
    """Outputs behind a chain of 74HC595 shift registers: 40 magnets on four pins.

    The RP2040 has about 20 GPIOs left after the motor, switches and button, so a 40-pocket
    drawer drives its magnets through 5 chained 8-bit registers. Every change shifts the whole
    chain out (index ``count - 1`` first, so index 0 lands on the first chip's Q0) and latches
    it at once. The chips power up with random contents: their output-enable (/OE, active low,
    pulled high on the board) is only driven low after a first all-off shift, so a magnet can
    never come on at power-up.
    """

    def __init__(self, data: Any, clock: Any, latch: Any, enable: Any, count: int) -> None:
        self.data = data
        self.clock = clock
        self.latch = latch
        self.enable = enable
        self.bits = bytearray(count)
        if enable is not None:
            enable.value(1)       # outputs floating (off) until the chain holds zeros
        clock.value(0)
        self.flush()
        if enable is not None:
            enable.value(0)

    def set(self, index: int, on: int) -> None:
        if self.bits[index] != on:
            self.bits[index] = on
            self.flush()

    def flush(self) -> None:
        data = self.data
        clock = self.clock
        self.latch.value(0)
        for i in range(len(self.bits) - 1, -1, -1):
            data.value(self.bits[i])
            clock.value(1)
            clock.value(0)
        self.latch.value(1)

    def outputs(self) -> list:
        return [ShiftOutput(self, i) for i in range(len(self.bits))]


class ShiftOutput:
    """One output of a :class:`ShiftOutputs` chain, with ``Pin.value`` manners."""

    def __init__(self, chain: ShiftOutputs, index: int) -> None:
        self.chain = chain
        self.index = index

    def value(self, v: int | None = None) -> int:
        if v is not None:
            self.chain.set(self.index, 1 if v else 0)
        return self.chain.bits[self.index]


class Heartbeat:
    """Trips once when nothing valid has come from the Pi for ``heartbeat_ms``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.last_rx = -1          # no Pi met yet: nothing to watch
        self.expired = False

    def feed(self, now: int) -> None:
        self.last_rx = now
        self.expired = False

    def poll(self, now: int) -> bool:
        if self.last_rx < 0 or self.expired:
            return False
        if now - self.last_rx > self.limits.heartbeat_ms:
            self.expired = True
            return True
        return False


class Board:
    """One drawer board: link (frames in, responses and events out) and the parts above."""

    def __init__(self, drawer: DrawerControl, magnets: MagnetBank, led: Any, limits: Limits,
                 drawer_id: str, boot_id: int, now: int,
                 version: str = P.FIRMWARE_VERSION) -> None:
        self.drawer = drawer
        self.magnets = magnets
        self.led = led
        self.limits = limits
        self.drawer_id = drawer_id
        self.boot_id = boot_id & 0xFFFF
        self.boot_ms = now
        self.version = version
        self.heartbeat = Heartbeat(limits)
        self.decoder = P.Decoder()
        self.session = False       # a Pi has said HELLO since this boot
        self.last_seq = -1
        self.last_cmd = -1
        self.last_reply = b""
        self.events = []  # type: list[tuple[int, int, int, int]]
        self.next_event = 0
        self.lost = 0
        self.watchdog_tripped = False
        #: Frames whose handling raised (answered FAILED, the link goes on).
        self.errors = 0
        #: Set by MAINTENANCE: main.py resets the board into the REPL once the answer is out.
        self.maintenance = False
        self.outbox = bytearray()
        drawer.emit = self.emit
        magnets.emit = self.emit

    # -- state ------------------------------------------------------------------------------
    def status(self) -> int:
        st = self.drawer.motion & P.ST_MOTION_MASK
        if self.drawer.closed_pressed():
            st |= P.ST_SW_CLOSED
        if self.drawer.open_pressed():
            st |= P.ST_SW_OPEN
        if self.magnets.on_since:
            st |= P.ST_MAGNET_ON
        if self.watchdog_tripped:
            st |= P.ST_WATCHDOG
        return st

    def emit(self, kind: int, arg: int) -> None:
        event = (self.next_event, kind, arg & 0xFF, self.status())
        self.next_event = (self.next_event + 1) & 0xFFFF
        self.events.append(event)
        if len(self.events) > MAX_QUEUE:
            self.events.pop(0)
            self.lost += 1
        if self.session:   # pushed at once for latency; kept until acknowledged by a POLL
            self.outbox.extend(P.encode(0, P.EVENT, P.pack_event(*event)))

    def take_output(self) -> bytes:
        out = bytes(self.outbox)
        self.outbox = bytearray()
        return out

    def safe_state(self, now: int = 0) -> int:
        """Every output off; returns what was on (1 motor, 2 magnets) for the report."""
        was = (1 if self.drawer.motion != P.MOTION_STOPPED or self.drawer.motor.running() else 0)
        was |= 2 if self.magnets.on_since else 0
        self.drawer.stop()
        self.magnets.all_off(now)
        if self.led is not None:
            self.led.value(0)
        return was

    # -- the steps the tasks call -----------------------------------------------------------
    def poll_drawer(self, now: int) -> None:
        self.drawer.poll(now)

    def poll_magnets(self, now: int) -> None:
        self.magnets.poll(now)

    def poll_watchdog(self, now: int) -> None:
        if self.heartbeat.poll(now):
            was = self.safe_state(now)
            self.watchdog_tripped = True
            if was:
                self.emit(P.EV_WATCHDOG, was)

    def poll(self, now: int) -> bytes:
        """One step of every task, in the order the emulator needs; returns bytes to send."""
        self.poll_drawer(now)
        self.poll_magnets(now)
        self.poll_watchdog(now)
        return self.take_output()

    def receive(self, data: bytes, now: int) -> bytes:
        """Bytes from the line; returns responses (and events they caused), in order."""
        for seq, cmd, args in self.decoder.feed(data):
            if cmd & P.RESPONSE or cmd == P.EVENT:
                continue   # our own kind of frame echoed back: not for us
            self.heartbeat.feed(now)
            try:
                reply = self.handle(seq, cmd, args, now)
            except Exception:  # one bad frame must not end the link task
                reply = self.failed(seq, cmd)
            self.outbox.extend(reply)
        return self.take_output()

    def failed(self, seq: int, cmd: int) -> bytes:
        """Answer FAILED to a command whose handling raised, and count it. Cached like any
        answer, so a resend of the same frame is not run again. No message is printed: on
        USB, stdout is the link."""
        self.errors += 1
        frame = P.encode(seq, cmd | P.RESPONSE, bytes([P.FAILED, self.status()]))
        self.last_seq = seq
        self.last_cmd = cmd
        self.last_reply = frame
        return frame

    # -- commands ---------------------------------------------------------------------------
    def handle(self, seq: int, cmd: int, args: bytes, now: int) -> bytes:
        if cmd == P.HELLO:
            if self.drawer.last is None:   # the state the Pi is told is the base for edges
                self.drawer.look(now)
            self.session = True
            self.watchdog_tripped = False
            reply = P.pack_hello(self.boot_id, self.next_event, now - self.boot_ms,
                                 len(self.magnets.pins), self.version, self.drawer_id)
        elif not self.session:
            return P.encode(seq, cmd | P.RESPONSE, bytes([P.NEED_HELLO, self.status()]))
        elif seq == self.last_seq and cmd == self.last_cmd:
            return self.last_reply   # a resend: answered from the cache, never run twice
        else:
            reply = self.execute(cmd, args, now)
        frame = P.encode(seq, cmd | P.RESPONSE, reply)
        self.last_seq = seq
        self.last_cmd = cmd
        self.last_reply = frame
        return frame

    def execute(self, cmd: int, args: bytes, now: int) -> bytes:
        drawer = self.drawer
        if cmd == P.POLL:
            return self.poll_reply(args, now)
        if cmd == P.OPEN:
            drawer.open(now)
        elif cmd == P.CLOSE:
            drawer.close(now)
        elif cmd == P.STOP:
            drawer.stop()
        elif cmd == P.SAFE:
            self.safe_state(now)
        elif cmd == P.RELEASE:
            if len(args) != 1 or args[0] >= len(self.magnets.pins):
                return bytes([P.BAD_ARGS, self.status()])
            done = self.magnets.release(args[0], now)
            if done == MAGNET_REFUSED:
                return bytes([P.BUSY, self.status()])
            return bytes([P.OK, self.status(), 1 if done == MAGNET_ON else 0])
        elif cmd == P.MAINTENANCE:
            if args != P.MAINTENANCE_KEY:
                return bytes([P.BAD_ARGS, self.status()])
            if drawer.motion != P.MOTION_STOPPED:
                return bytes([P.BUSY, self.status()])
            self.safe_state(now)
            self.maintenance = True
        elif cmd == P.LED:
            if len(args) != 1:
                return bytes([P.BAD_ARGS, self.status()])
            if self.led is not None:
                self.led.value(1 if args[0] else 0)
        elif cmd == P.CONFIG:
            # Four values (protocol 0.1) or six: the Pi's debounce and magnet rest too, so
            # its configuration is the one place they are set. Each is clamped to its cap.
            if len(args) not in (8, 12):
                return bytes([P.BAD_ARGS, self.status()])
            values = [(args[i] << 8) | args[i + 1] for i in range(0, len(args), 2)]
            lim = self.limits
            lim.configure(values[0], values[1], values[2], values[3])
            if len(values) == 6:
                lim.set_debounce(values[4])
                lim.set_magnet_off(values[5])
            effect = [lim.max_travel_ms, lim.switch_release_ms, lim.pulse_ms, lim.heartbeat_ms,
                      lim.debounce_ms, lim.magnet_off_ms][:len(values)]
            out = bytearray([P.OK, self.status()])
            for v in effect:
                out.extend(bytes([v >> 8, v & 0xFF]))
            return bytes(out)
        else:
            return bytes([P.UNKNOWN_COMMAND, self.status()])
        return bytes([P.OK, self.status()])

    def poll_reply(self, args: bytes, now: int) -> bytes:
        if len(args) != 2:
            return bytes([P.BAD_ARGS, self.status()])
        ack = (args[0] << 8) | args[1]
        while self.events and P.id_delta(self.events[0][0], ack) < 0:
            self.events.pop(0)
        pending = self.events[:P.MAX_EVENTS_PER_POLL]
        more = 1 if len(self.events) > len(pending) else 0
        bits = P.bitmap(list(self.magnets.on_since), len(self.magnets.pins))
        out = bytearray()
        out.extend(bytes([P.OK, self.status(), self.drawer.last_fault, min(self.lost, 255), more]))
        uptime = (now - self.boot_ms) & 0xFFFFFFFF
        out.extend(bytes([uptime >> 24, (uptime >> 16) & 0xFF, (uptime >> 8) & 0xFF,
                          uptime & 0xFF, len(bits)]))
        out.extend(bits)
        for event in pending:
            out.extend(P.pack_event(*event))
        return bytes(out)


def make_board(machine: Any, config: Any, boot_id: int, now: int,
               version: str = P.FIRMWARE_VERSION) -> Board:
    """Build a board from a ``machine`` module (real or fake) and a ``board_config``-like
    object; the one place that knows pin modes and the interrupt trigger."""
    pin = machine.Pin

    def output(number: int) -> Any:
        return pin(number, pin.OUT, value=0)

    def pulled_up(number: int) -> Any:
        return pin(number, pin.IN, pin.PULL_UP)

    limits = Limits()
    motor = Motor(output(config.MOTOR_FORWARD), output(config.MOTOR_BACKWARD))

    def nothing(kind: int, arg: int) -> None:
        pass

    drawer = DrawerControl(motor, pulled_up(config.SWITCH_CLOSED), pulled_up(config.SWITCH_OPEN),
                           limits, nothing)
    # The button is sampled with the switches and debounced the same way (a press counts
    # once held for the debounce time), so no interrupt handler is needed.
    drawer.button = pulled_up(config.CLOSE_BUTTON)
    limits.set_debounce(getattr(config, "SWITCH_DEBOUNCE_MS", DEBOUNCE_MS))
    limits.set_magnet_off(getattr(config, "MAGNET_MIN_OFF_MS", MAGNET_OFF_MS))
    shift = getattr(config, "MAGNET_SHIFT", None)
    if shift:   # (data, clock, latch, /OE, count): a 74HC595 chain
        chain = ShiftOutputs(output(shift[0]), output(shift[1]), output(shift[2]),
                             pin(shift[3], pin.OUT, value=1) if shift[3] is not None else None,
                             shift[4])
        magnet_pins = chain.outputs()
    else:
        magnet_pins = [output(n) for n in config.MAGNETS]
    magnets = MagnetBank(magnet_pins, limits, nothing)
    led = output(config.LED) if config.LED is not None else None
    return Board(drawer, magnets, led, limits, config.DRAWER_ID, boot_id, now, version)
