"""The ``gpio`` backend: parts wired straight to the Raspberry Pi, driven with gpiozero.

Safety is enforced here, in the callbacks of the end switches and in timers, not in the
controller: the motor is stopped by the end-switch callback on the thread that saw the edge,
and by a timer after ``max_travel_s`` whatever the controller is doing. Magnets are switched
on only together with a timer that switches them off.

Tested without a Pi on gpiozero's ``MockFactory`` with :mod:`sim.physics` driving the pins.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from gpiozero import LED, DigitalInputDevice, DigitalOutputDevice, Motor

from controller.errors import HardwareError
from firmware.protocol import REVERSE_PAUSE_MS
from hal.clock import Clock, RealClock, TimerHandle
from hal.config import MAGNET_MAX_WAIT_S, DrawerHw, HardwareConfig, Timing
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


def timer_failed(drawer: str, exc: BaseException) -> HardwareError:
    """An output was refused because the timer that bounds its on-time could not be armed."""
    return HardwareError(
        f"drawer {drawer}: cannot arm the safety timer of an output ({exc}); nothing was "
        "left on",
        f"tiroir {drawer} : impossible d'armer la minuterie de sécurité d'une sortie ({exc}) ; "
        "rien n'est resté allumé",
        code="ACTUATOR_TIMER", drawer=drawer)


def _switch(pin: int, pin_factory: Any) -> DigitalInputDevice:
    return DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)


def _close_all(devices: Any) -> None:
    """Release what a constructor had claimed before it failed; never raises."""
    for device in reversed(list(devices)):
        with contextlib.suppress(Exception):   # releasing, on the way out of an error
            device.close()


class GpioDrawer:
    """A drawer motor (two direction pins) with closed/open end switches and a Close button."""

    def __init__(self, hw: DrawerHw, timing: Timing, clock: Clock, emit: Emitter,
                 pin_factory: Any = None) -> None:
        if hw.pins is None:
            raise ValueError(f"drawer {hw.id}: no pins configured for the gpio backend")
        self.id = hw.id
        self._timing = timing
        self._clock = clock
        self._emit = emit
        self._lock = threading.RLock()
        self._motion = Motion.STOPPED
        #: Between a reversal's stop and its new run (``REVERSE_PAUSE_MS``): motor off.
        self._pausing = False
        self._timers: list[TimerHandle] = []
        pins = hw.pins
        claimed: list[Any] = []
        try:
            self._motor = Motor(forward=pins.motor_forward, backward=pins.motor_backward,
                                pwm=False, pin_factory=pin_factory)
            claimed.append(self._motor)
            # Switches close to ground: pull-up, active when low. DigitalInputDevice rather
            # than Button: no hold-time thread per input, which we do not need.
            self._sw_closed = _switch(pins.switch_closed, pin_factory)
            claimed.append(self._sw_closed)
            self._sw_open = _switch(pins.switch_open, pin_factory)
            claimed.append(self._sw_open)
            self._button = _switch(pins.close_button, pin_factory)
        except BaseException:
            _close_all(claimed)   # a retry must find these pins free
            raise
        self._inputs = {"closed": self._sw_closed, "open": self._sw_open,
                        "button": self._button}
        # Debounced levels: a change counts once the input has held it for
        # switch_debounce_s (a timer restarted by every edge), like the firmware's sampling.
        self._stable: dict[str, bool] = {}
        self._settling: dict[str, TimerHandle] = {}
        self.inputs_settled()
        self._sw_closed.when_activated = self._on_closed_pressed
        self._sw_closed.when_deactivated = lambda: self._edge("closed")
        self._sw_open.when_activated = self._on_open_pressed
        self._sw_open.when_deactivated = lambda: self._edge("open")
        self._button.when_activated = lambda: self._edge("button")
        self._button.when_deactivated = lambda: self._edge("button")
        self._motor.stop()

    # -- commands -------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if self._motion is Motion.OPENING:
                return
            if self._motion is Motion.STOPPED and self._sw_open.is_active \
                    and not self._sw_closed.is_active:
                self._emit(HardwareEvent(EventKind.OPENED, self.id))
                return
            self._start(Motion.OPENING)

    def close(self) -> None:
        with self._lock:
            if self._motion is Motion.CLOSING:
                return
            if self._motion is Motion.STOPPED and self._sw_closed.is_active \
                    and not self._sw_open.is_active:
                self._emit(HardwareEvent(EventKind.CLOSED, self.id))
                return
            self._start(Motion.CLOSING)

    def stop(self) -> None:
        with self._lock:
            self._halt()

    @property
    def switches(self) -> SwitchState:
        return SwitchState(closed=bool(self._sw_closed.is_active),
                           open=bool(self._sw_open.is_active))

    @property
    def motion(self) -> Motion:
        return self._motion

    # -- internals ------------------------------------------------------------------------
    def _start(self, motion: Motion) -> None:
        """Run the motor the ``motion`` way; one still turning (or pausing) the other way is
        stopped and driven only after ``REVERSE_PAUSE_MS``, as the drawer boards do."""
        turning = bool(self._motor.is_active) or self._pausing
        self._halt()
        self._motion = motion
        if not turning:
            self._energise(motion)
            return
        self._pausing = True
        try:
            self._timers.append(self._clock.call_later(
                REVERSE_PAUSE_MS / 1000, lambda: self._energise_later(motion)))
        except Exception as exc:
            self._halt()
            raise timer_failed(self.id, exc) from exc

    def _energise_later(self, motion: Motion) -> None:
        with self._lock:
            if self._motion is not motion or not self._pausing:
                return  # stopped or commanded again since
            try:
                self._energise(motion)
            except Exception:  # motor left off (halted); the controller's deadline sees it
                log.exception("drawer %s: the motor could not be started after its pause",
                              self.id)

    def _energise(self, motion: Motion) -> None:
        """The motor on for ``motion``, unless the drawer is already at that end: a run
        reversed just after it began finds its end switch still pressed, and driving into
        it would only end as a jam. Nor with both end switches pressed: the drawer's
        position is then unknown, and a stuck switch would never give the edge that ends
        the run (the motor would push into the end stop until the travel limit); that is a
        switch fault, named as a run's end names it (as the drawer boards do)."""
        self._pausing = False
        arrived, other = (self._sw_open, self._sw_closed) if motion is Motion.OPENING \
            else (self._sw_closed, self._sw_open)
        if arrived.is_active and other.is_active:
            self._fault(EventKind.SWITCH_FAULT,
                        switch="closed" if motion is Motion.OPENING else "open",
                        reason="both pressed")
            return
        if arrived.is_active and not other.is_active:
            self._arrive(motion)
            return
        leaving = other
        started = motion
        # The travel timer is the motor's maximum on-time: armed first, so that a motor
        # never runs without it (if it cannot be armed, the motor is never switched on).
        try:
            self._timers.append(self._clock.call_later(
                self._timing.max_travel_s, lambda: self._on_travel_timeout(started)))
            if leaving.is_active:
                self._timers.append(self._clock.call_later(
                    self._timing.switch_release_s,
                    lambda: self._check_left(started, leaving)))
        except Exception as exc:
            self._halt()
            raise timer_failed(self.id, exc) from exc
        try:
            if motion is Motion.OPENING:
                self._motor.forward()
            else:
                self._motor.backward()
        except BaseException:
            self._halt()   # a pin that failed half-way: both bridge inputs low again
            raise

    def _arrive(self, motion: Motion) -> None:
        """A run at its end: motor off, that switch counted as pressed (so its bounce is not
        taken for a move), the arrival reported."""
        self._halt()
        opening = motion is Motion.OPENING
        self._stable["open" if opening else "closed"] = True
        self._emit(HardwareEvent(EventKind.OPENED if opening else EventKind.CLOSED, self.id))

    def _halt(self) -> None:
        self._motor.stop()
        self._motion = Motion.STOPPED
        self._pausing = False
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _fault(self, kind: EventKind, **detail: Any) -> None:
        self._halt()
        self._emit(HardwareEvent(kind, self.id, detail))

    def _on_travel_timeout(self, motion: Motion) -> None:
        with self._lock:
            if self._motion is motion:
                self._fault(EventKind.JAMMED, motion=motion.value,
                            seconds=self._timing.max_travel_s)

    def _check_left(self, motion: Motion, leaving: DigitalInputDevice) -> None:
        with self._lock:
            if self._motion is motion and leaving.is_active:
                name = "closed" if leaving is self._sw_closed else "open"
                self._fault(EventKind.SWITCH_FAULT, switch=name, reason="did not release")

    # The end of a run is acted on at the first edge, undebounced: the motor must stop at
    # its end switch at once (safety). The switch then counts as pressed, so its contact
    # bounce cannot be taken for a move.
    def _on_open_pressed(self) -> None:
        with self._lock:
            if self._motion is Motion.OPENING:
                if self._sw_closed.is_active:
                    self._fault(EventKind.SWITCH_FAULT, switch="closed", reason="both pressed")
                else:
                    self._arrive(Motion.OPENING)
            self._edge("open")

    def _on_closed_pressed(self) -> None:
        with self._lock:
            if self._motion is Motion.CLOSING:
                if self._sw_open.is_active:
                    self._fault(EventKind.SWITCH_FAULT, switch="open", reason="both pressed")
                else:
                    self._arrive(Motion.CLOSING)
            self._edge("closed")

    # Reports (uncommanded moves, Close presses) wait until the level has held.
    def _edge(self, name: str) -> None:
        with self._lock:
            timer = self._settling.pop(name, None)
            if timer is not None:
                timer.cancel()
            self._settling[name] = self._clock.call_later(
                self._timing.switch_debounce_s, lambda: self._settled(name))

    def _settled(self, name: str) -> None:
        with self._lock:
            self._settling.pop(name, None)
            level = bool(self._inputs[name].is_active)
            if level == self._stable[name]:
                return   # bounce, or back where it was
            self._stable[name] = level
            if name == "button":
                if level:
                    self._emit(HardwareEvent(EventKind.CLOSE_PRESSED, self.id))
            elif self._motion is not Motion.STOPPED:
                return
            elif level and self._stable[other := "closed" if name == "open" else "open"] \
                    and self._inputs[other].is_active:
                # Pressed while the other end's switch is pressed too (held, and still now:
                # not one whose release is settling): a sensor fault, never a position (a
                # closed drawer's stuck open switch was a forced opening, an open drawer's
                # stuck closed switch went unreported), as on the boards.
                self._fault(EventKind.SWITCH_FAULT, switch=name, reason="both pressed")
            elif level == (name == "open"):
                # the open switch pressed, or the closed one released, with no command
                self._emit(HardwareEvent(EventKind.MOVED_UNCOMMANDED, self.id,
                                         {"switch": name}))

    def inputs_settled(self) -> None:
        """Take the inputs' present levels as the debounced state, with no report: at
        start-up (and in the simulator once the physics has driven the pins) they are a
        state, not edges."""
        with self._lock:
            for timer in self._settling.values():
                timer.cancel()
            self._settling.clear()
            self._stable = {name: bool(dev.is_active) for name, dev in self._inputs.items()}

    def shutdown(self) -> None:
        with self._lock:
            self._halt()
            for timer in self._settling.values():
                timer.cancel()
            self._settling.clear()
        for dev in (self._motor, self._sw_closed, self._sw_open, self._button):
            dev.close()


class MagnetDuty:
    """The magnets' duty cycle, shared by every latch on the Pi's header (they share the
    ULN2803s): one magnet on at a time, and each rests ``magnet_min_off_s`` after a pulse.

    The same rules as the firmware's ``MagnetBank``: a release that cannot start now waits
    its turn (first come, first served) if it can start within ``MAGNET_MAX_WAIT_S``, and is
    refused with ``MAGNET_BUSY`` otherwise. The controller releases one latch per operation,
    after the drawer has opened, so a withdrawal normally never waits.
    """

    def __init__(self, timing: Timing, clock: Clock) -> None:
        self._pulse = timing.magnet_pulse_s
        self._rest = timing.magnet_min_off_s
        self._clock = clock
        self._lock = threading.RLock()
        self._on: GpioLatch | None = None
        self._on_since = 0.0
        self._waiting: list[GpioLatch] = []
        self._off_at: dict[PocketAddress, float] = {}
        self._timer: TimerHandle | None = None

    def _ready_at(self, latch: GpioLatch) -> float:
        off = self._off_at.get(latch.address)
        return float("-inf") if off is None else off + self._rest

    def request(self, latch: GpioLatch) -> None:
        with self._lock:
            if latch is self._on or latch in self._waiting:
                return   # already pulsing or queued: never a longer or a second pulse
            now = self._clock.monotonic()
            free = now if self._on is None else max(now, self._on_since + self._pulse)
            for queued in self._waiting:
                free = max(free, self._ready_at(queued)) + self._pulse
            start = max(free, self._ready_at(latch))
            if self._on is None and start <= now + 1e-9:
                self._start(latch, now)
            elif start - now > MAGNET_MAX_WAIT_S + 1e-9:
                raise magnet_busy(latch.address[0])
            else:
                self._waiting.append(latch)
                self._next(now)

    def _start(self, latch: GpioLatch, now: float) -> None:
        self._on = latch
        self._on_since = now
        try:
            latch._switch_on()
        except BaseException:
            self._on = None   # it never came on: the next release must not wait for it
            raise

    def ended(self, latch: GpioLatch) -> None:
        """The latch's pulse ended (or was cut short): it rests from now."""
        with self._lock:
            now = self._clock.monotonic()
            self._off_at[latch.address] = now
            if self._on is latch:
                self._on = None
            self._next(now)

    def _next(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._on is not None or not self._waiting:
            return   # the pulse's end will call ended()
        head = self._waiting[0]
        at = self._ready_at(head)
        if at <= now + 1e-9:
            self._start(self._waiting.pop(0), now)
        else:
            self._timer = self._clock.call_later(at - now, self._retry)

    def _retry(self) -> None:
        with self._lock:
            self._timer = None
            self._next(self._clock.monotonic())

    def cancel(self) -> None:
        """Safe state: nothing waiting fires later."""
        with self._lock:
            self._waiting.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


class GpioLatch:
    """A pocket lid's electromagnet: a pulse releases it; a timer always ends the pulse.
    When it may be pulsed is :class:`MagnetDuty`'s decision."""

    def __init__(self, address: PocketAddress, pin: int, timing: Timing, clock: Clock,
                 emit: Emitter, pin_factory: Any = None, duty: MagnetDuty | None = None) -> None:
        self.address = address
        self._pulse = timing.magnet_pulse_s
        self._clock = clock
        self._emit = emit
        self._duty = duty if duty is not None else MagnetDuty(timing, clock)
        self._lock = threading.Lock()
        self._out = DigitalOutputDevice(pin, initial_value=False, pin_factory=pin_factory)
        self._timer: TimerHandle | None = None

    def release(self) -> None:
        """Pulse now, or in its turn (bounded); raises HardwareError MAGNET_BUSY if the
        duty cycle would make it wait longer than MAGNET_MAX_WAIT_S."""
        self._duty.request(self)

    def _switch_on(self) -> None:
        with self._lock:
            if self._out.value:
                return
            # A magnet is pulsed, never held: its end is armed before it is switched on (the
            # end waits for this lock, so it cannot come first).
            try:
                self._timer = self._clock.call_later(self._pulse, self._end_pulse)
            except Exception as exc:
                raise timer_failed(self.address[0], exc) from exc
            try:
                self._out.on()
            except BaseException:
                self._timer.cancel()
                self._timer = None
                self._out.off()
                raise

    def _end_pulse(self) -> None:
        with self._lock:
            self._out.off()
            self._timer = None
        drawer, row, col = self.address
        self._emit(HardwareEvent(EventKind.LATCH_RELEASED, drawer, {"row": row, "col": col}))
        self._duty.ended(self)

    @property
    def energised(self) -> bool:
        return bool(self._out.value)

    def off(self) -> None:
        with self._lock:
            was_on = bool(self._out.value)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._out.off()
        if was_on:
            self._duty.ended(self)   # cut short, it rests all the same

    def shutdown(self) -> None:
        self.off()
        self._out.close()


class GpioIndicator:
    def __init__(self, pin: int, pin_factory: Any = None) -> None:
        self._led = LED(pin, pin_factory=pin_factory)

    def on(self) -> None:
        self._led.on()

    def off(self) -> None:
        self._led.off()

    def shutdown(self) -> None:
        self._led.close()


class GpioBuzzer:
    """An active buzzer; beeps are bounded by a timer like every other output."""

    def __init__(self, pin: int, clock: Clock, pin_factory: Any = None) -> None:
        self._out = DigitalOutputDevice(pin, initial_value=False, pin_factory=pin_factory)
        self._clock = clock
        self._lock = threading.Lock()
        self._timer: TimerHandle | None = None

    def beep(self, seconds: float) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()   # a new beep replaces the one in progress
            self._out.on()
            self._timer = self._clock.call_later(min(seconds, 2.0), self._end)

    def _end(self) -> None:
        with self._lock:
            self._timer = None
            self._out.off()

    def off(self) -> None:
        """Silence now and forget the pending end: no timer may touch the pin afterwards."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._out.off()

    @property
    def sounding(self) -> bool:
        return bool(self._out.value)

    def shutdown(self) -> None:
        self.off()
        self._out.close()


class GpioHardware(PartsBase[GpioDrawer, GpioLatch, GpioIndicator]):
    """All parts of a cabinet wired to the Pi's GPIO header."""

    backend = "gpio"

    def __init__(self, config: HardwareConfig, clock: Clock, pin_factory: Any = None) -> None:
        super().__init__()
        self.config = config
        self.pin_factory = pin_factory
        self.buzzer: GpioBuzzer | None = None
        self.magnet_duty = MagnetDuty(config.timing, clock)
        try:
            for hw in config.drawers:
                self._drawers[hw.id] = GpioDrawer(hw, config.timing, clock, self._emit,
                                                  pin_factory)
                assert hw.pins is not None
                for (row, col), pin in hw.pins.magnets.items():
                    self._latches[(hw.id, row, col)] = GpioLatch(
                        (hw.id, row, col), pin, config.timing, clock, self._emit, pin_factory,
                        self.magnet_duty)
                if hw.pins.led is not None:
                    self._indicators[hw.id] = GpioIndicator(hw.pins.led, pin_factory)
            if config.buzzer_pin is not None:
                self.buzzer = GpioBuzzer(config.buzzer_pin, clock, pin_factory)
        except BaseException:
            # Half a cabinet claimed: give every pin back, or a retry (a corrected
            # configuration, a restart of the service) fails with GPIOPinInUse.
            self._shutdown_parts()
            raise

    def link_ok(self) -> bool:
        return True

    def inputs_settled(self) -> None:
        """The input pins now read the physical state (the simulator calls this after
        driving them): their levels are the debounced state, not edges to report."""
        for drawer in self._drawers.values():
            drawer.inputs_settled()

    def safe_state(self) -> None:
        """Every output off. Each part is tried whatever the others do: one pin that errors
        must not leave the next drawer's motor or a magnet on. Failures are reported after
        all parts were tried, as HardwareError SAFE_STATE_INCOMPLETE."""
        steps: list[tuple[str, Any]] = [
            *((f"drawer {d_id} motor", drawer.stop) for d_id, drawer in self._drawers.items()),
            ("magnet queue", self.magnet_duty.cancel),
            *((f"magnet {addr}", latch.off) for addr, latch in self._latches.items()),
            *((f"indicator {d_id}", led.off) for d_id, led in self._indicators.items())]
        if self.buzzer is not None:
            steps.append(("buzzer", self.buzzer.off))
        failed: list[str] = []
        for name, step in steps:
            try:
                step()
            except Exception as exc:
                log.exception("safe state: %s could not be switched off", name)
                failed.append(f"{name}: {exc}")
        if failed:
            raise HardwareError(
                f"not every output could be switched off: {'; '.join(failed)}",
                f"toutes les sorties n'ont pas pu être coupées : {'; '.join(failed)}",
                code="SAFE_STATE_INCOMPLETE")

    def close(self) -> None:
        try:
            self.safe_state()
        finally:
            self._shutdown_parts()

    def _shutdown_parts(self) -> None:
        parts: list[Any] = [*self._drawers.values(), *self._latches.values(),
                            *self._indicators.values()]
        if self.buzzer is not None:
            parts.append(self.buzzer)
        for part in parts:
            with contextlib.suppress(Exception):   # one stuck part must not keep the others'
                part.shutdown()


def cut_outputs(config: HardwareConfig, pin_factory: Any) -> int:
    """Every output pin the configuration names driven to off, then given back; returns
    how many parts were cut.

    For systemd's ``ExecStopPost=``, which runs however the controller ended. A controller
    killed outright (SIGKILL, the watchdog's abort, an out-of-memory kill) never reaches
    :meth:`GpioHardware.close`, and the Pi's GPIO lines keep the level they had when their
    owner died: a motor mid-run or a pocket magnet would stay driven until the next start
    claims the pins, or for good if that start fails before it builds the hardware. The
    drawer boards cut their own outputs when the Pi goes quiet (their firmware watchdog);
    parts wired to the Pi have only this. Building the parts claims every output at its
    off level (motors stopped, magnets, lights and buzzer off); closing them repeats the
    safe state and releases the pins as the controller's own stop does.
    """
    hardware = GpioHardware(config, RealClock(), pin_factory)
    parts = (len(hardware.drawers) + len(hardware.latches) + len(hardware.indicators)
             + (hardware.buzzer is not None))
    hardware.close()
    return parts
