"""The real gpio backend on gpiozero's mock pins, with the simulator's physics behind them."""

from __future__ import annotations

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from hal.backends import build_hardware
from hal.config import MAX_MAGNET_PULSE_S, HardwareConfig, Timing
from hal.gpio import GpioHardware
from hal.parts import EventKind, HardwareEvent, Motion
from sim.simulator import Simulator, auto_wire

TIMING = Timing(max_travel_s=4.0, switch_release_s=0.8, magnet_pulse_s=0.3)


@pytest.fixture
def rig():
    config = HardwareConfig("gpio", auto_wire([("A", "matrix", 3, 3), ("B", "cubie", 2, 2)]),
                            timing=TIMING)
    sim = Simulator(config, travel_s=2.0)
    hw = build_hardware(config, sim.clock, simulator=sim)
    assert isinstance(hw, GpioHardware)
    events: list[HardwareEvent] = []
    hw.set_listener(events.append)
    yield sim, hw, events
    hw.close()


def kinds(events):
    return [(e.kind, e.drawer) for e in events]


def test_open_runs_motor_until_open_switch_then_stops(rig):
    sim, hw, events = rig
    hw.drawers["A"].open()
    assert hw.drawers["A"].motion is Motion.OPENING
    sim.clock.advance(3.0)
    assert kinds(events) == [(EventKind.OPENED, "A")]
    run = sim.physics.motor_runs[-1]
    assert run.direction == "open"
    # travel 2 s: the motor stops on the tick the switch closes, not at the 4 s cut-off
    assert run.stop is not None and run.stop - run.start == pytest.approx(2.0, abs=0.02)
    assert hw.drawers["A"].switches.open and not hw.drawers["A"].switches.closed
    assert sim.factory is not None
    pins = config_pins(hw, "A")
    assert not sim.factory.pin(pins.motor_forward).state


def config_pins(hw, drawer):
    pins = hw.config.drawer(drawer).pins
    assert pins is not None
    return pins


def test_open_is_idempotent(rig):
    sim, hw, events = rig
    hw.drawers["A"].open()
    hw.drawers["A"].open()  # a repeated command while opening changes nothing
    sim.clock.advance(3.0)
    assert len(sim.physics.motor_runs) == 1
    hw.drawers["A"].open()  # already open: reports it, no motor
    sim.clock.advance(0.5)
    assert len(sim.physics.motor_runs) == 1
    assert kinds(events) == [(EventKind.OPENED, "A"), (EventKind.OPENED, "A")]


def test_close_after_open(rig):
    sim, hw, events = rig
    hw.drawers["A"].open()
    sim.clock.advance(3.0)
    hw.drawers["A"].close()
    sim.clock.advance(3.0)
    assert kinds(events)[-1] == (EventKind.CLOSED, "A")
    assert sim.physics.drawers["A"].position == 0.0
    assert [r.direction for r in sim.physics.motor_runs] == ["open", "close"]


def test_jam_stops_motor_at_max_travel_and_reports(rig):
    sim, hw, events = rig
    sim.physics.inject("A", "jam")
    hw.drawers["A"].open()
    sim.clock.advance(6.0)
    assert kinds(events) == [(EventKind.JAMMED, "A")]
    run = sim.physics.motor_runs[-1]
    assert run.stop is not None
    assert run.stop - run.start == pytest.approx(TIMING.max_travel_s, abs=0.02)
    assert hw.drawers["A"].motion is Motion.STOPPED
    assert not sim.factory.pin(config_pins(hw, "A").motor_forward).state


def test_stuck_closed_switch_stops_motor_early(rig):
    sim, hw, events = rig
    sim.physics.inject("A", "switch_stuck")
    hw.drawers["A"].open()
    sim.clock.advance(3.0)
    assert kinds(events) == [(EventKind.SWITCH_FAULT, "A")]
    assert events[0].detail["switch"] == "closed"
    run = sim.physics.motor_runs[-1]
    assert run.stop is not None
    assert run.stop - run.start == pytest.approx(TIMING.switch_release_s, abs=0.02)


def test_magnet_is_pulsed_never_held(rig):
    sim, hw, events = rig
    latch = hw.latches[("B", 1, 0)]
    latch.release()
    latch.release()  # a second call while on does not lengthen the pulse
    assert latch.energised
    sim.clock.advance(1.0)
    assert not latch.energised
    pulses = sim.physics.magnet_pulses
    assert len(pulses) == 1 and pulses[0].pocket == ("B", 1, 0)
    assert pulses[0].stop is not None
    assert pulses[0].stop - pulses[0].start == pytest.approx(TIMING.magnet_pulse_s, abs=0.02)
    assert (1, 0) in sim.physics.drawers["B"].lids_open
    assert events[-1].kind is EventKind.LATCH_RELEASED


def test_configured_pulse_is_capped():
    assert Timing(magnet_pulse_s=30.0).magnet_pulse_s == MAX_MAGNET_PULSE_S


def test_close_button_and_uncommanded_opening(rig):
    sim, hw, events = rig
    sim.physics.press_close_button("A")
    sim.physics.pull_open("B")
    assert events == []                                  # not before they have held
    sim.clock.advance(TIMING.switch_debounce_s + 0.01)
    assert kinds(events) == [(EventKind.CLOSE_PRESSED, "A"), (EventKind.MOVED_UNCOMMANDED, "B")]


def _bounce(pin, times: int) -> None:
    """Contact bounce: level changes far shorter than the debounce time."""
    for _ in range(times):
        pin.drive_high()
        pin.drive_low()


def test_closed_switch_bounce_after_closing_is_not_a_move(rig):
    """The closed switch bounces as the drawer arrives: CLOSED once, the motor stopped at the
    first edge, and no MOVED_UNCOMMANDED (the controller would put the drawer out of service
    as forced open)."""
    sim, hw, events = rig
    hw.drawers["A"].open()
    sim.clock.advance(3.0)
    hw.drawers["A"].close()
    sim.clock.advance(3.0)
    run = sim.physics.motor_runs[-1]
    assert run.stop is not None and run.stop - run.start == pytest.approx(2.0, abs=0.02)
    _bounce(sim.factory.pin(config_pins(hw, "A").switch_closed), 3)
    sim.clock.advance(0.5)
    assert kinds(events) == [(EventKind.OPENED, "A"), (EventKind.CLOSED, "A")]


def test_controller_keeps_a_bouncing_closed_drawer_in_service(rig):
    import asyncio

    from controller.drawer import DrawerUnit

    sim, hw, events = rig
    faults: list[str] = []

    async def run() -> str:
        loop = asyncio.get_running_loop()
        unit = DrawerUnit("A", hw.drawers["A"], sim.clock, lambda u, k, d: faults.append(k))
        hw.set_listener(lambda e: loop.call_soon_threadsafe(
            lambda: asyncio.ensure_future(unit.handle(e))))
        await unit.sync_from_switches()
        _bounce(sim.factory.pin(config_pins(hw, "A").switch_closed), 2)
        sim.clock.advance(0.2)
        for _ in range(50):   # let every posted event run its transition
            await asyncio.sleep(0)
        return unit.state

    assert asyncio.run(run()) == "closed"
    assert faults == []


def test_bouncing_close_button_is_one_press(rig):
    """One press with bounce on the way down and up: one CLOSE_PRESSED, as the firmware."""
    sim, hw, events = rig
    pin = sim.factory.pin(config_pins(hw, "A").close_button)
    pin.drive_low()
    _bounce(pin, 3)
    sim.clock.advance(0.1)
    pin.drive_high()
    pin.drive_low()
    pin.drive_high()
    sim.clock.advance(0.1)
    assert kinds(events) == [(EventKind.CLOSE_PRESSED, "A")]


def test_short_glitch_on_the_open_switch_is_not_a_move(rig):
    sim, hw, events = rig
    pin = sim.factory.pin(config_pins(hw, "A").switch_open)
    pin.drive_low()
    pin.drive_high()
    sim.clock.advance(0.2)
    assert events == []


def test_debounce_time_is_capped():
    assert Timing(switch_debounce_s=5.0).switch_debounce_s == 0.1
    assert Timing(switch_debounce_s=0.0).switch_debounce_s == 0.005


def test_safe_state_stops_everything(rig):
    sim, hw, events = rig
    hw.drawers["A"].open()
    hw.latches[("B", 0, 0)].release()
    sim.clock.advance(0.1)
    hw.safe_state()
    pins_a, pins_b = config_pins(hw, "A"), config_pins(hw, "B")
    assert not sim.factory.pin(pins_a.motor_forward).state
    assert not sim.factory.pin(pins_b.magnets[(0, 0)]).state
    sim.clock.advance(5.0)  # no timer may switch anything back on
    assert not sim.factory.pin(pins_a.motor_forward).state


def test_backend_on_global_mock_factory():
    """The backend also works on gpiozero's global factory, as set by Device.pin_factory."""
    Device.pin_factory = MockFactory()
    config = HardwareConfig("gpio", auto_wire([("A", "matrix", 1, 1)]))
    from hal.clock import RealClock
    hw = GpioHardware(config, RealClock())
    assert hw.drawers["A"].motion is Motion.STOPPED
    hw.close()


def test_missing_driver_is_a_startup_error():
    from controller.errors import HardwareError
    config = HardwareConfig("gpio", auto_wire([("A", "matrix", 1, 1)]), pin_factory="pigpio")
    from hal.clock import RealClock
    with pytest.raises(HardwareError) as err:
        build_hardware(config, RealClock())
    assert err.value.code == "DRIVER_MISSING"
    # What to do, in both languages: journalctl -u armoire shows nothing else.
    assert "python3-pigpio" in err.value.message_en and "hardware.pin_factory" in \
        err.value.message_en, err.value.message_en
    assert "installez" in err.value.message_fr and "python3-pigpio" in err.value.message_fr


def test_too_many_pins_for_gpio():
    with pytest.raises(ValueError, match="serial backend"):
        auto_wire([("A", "cubie", 6, 6)])


def test_failed_construction_gives_every_pin_back():
    """The buzzer wired to a magnet's pin: construction fails at the end, and a corrected
    configuration must then find all the drawers' pins free (not GPIOPinInUse)."""
    from gpiozero.exc import GPIOPinInUse

    from sim.clock import SimClock

    wired = auto_wire([("A", "cubie", 2, 2)])
    factory, clock = MockFactory(), SimClock()
    assert wired[0].pins is not None
    bad = HardwareConfig("gpio", wired, buzzer_pin=wired[0].pins.magnets[(1, 1)])
    with pytest.raises(GPIOPinInUse):
        GpioHardware(bad, clock, pin_factory=factory)
    hw = GpioHardware(HardwareConfig("gpio", wired, buzzer_pin=27), clock, pin_factory=factory)
    hw.close()


def test_buzzer_is_silenced_by_safe_state_and_its_timer_dies_with_close():
    from sim.clock import SimClock

    factory, clock = MockFactory(), SimClock()
    hw = GpioHardware(HardwareConfig("gpio", auto_wire([("A", "matrix", 1, 1)]), buzzer_pin=27),
                      clock, pin_factory=factory)
    assert hw.buzzer is not None
    hw.buzzer.beep(1.0)
    assert factory.pin(27).state
    hw.safe_state()
    assert not factory.pin(27).state          # every output off includes the buzzer
    hw.buzzer.beep(1.0)
    hw.close()
    clock.advance(1.5)                        # the beep's end must not touch a closed device


def test_safe_state_drops_releases_waiting_their_turn(rig):
    sim, hw, events = rig
    hw.latches[("B", 0, 0)].release()
    hw.latches[("B", 0, 1)].release()           # waits for (0, 0) to end
    assert not hw.latches[("B", 0, 1)].energised
    sim.clock.advance(0.1)
    hw.safe_state()
    sim.clock.advance(3.0)                      # nothing waiting may fire after safe state
    assert [p.pocket for p in sim.physics.magnet_pulses] == [("B", 0, 0)]


def test_magnet_rest_is_configurable_never_below_the_floor():
    from hal.config import MIN_MAGNET_OFF_S

    assert Timing(magnet_min_off_s=0.0).magnet_min_off_s == MIN_MAGNET_OFF_S
    assert Timing(magnet_min_off_s=3.0).magnet_min_off_s == 3.0


def _timers_fail_once(sim, monkeypatch) -> None:
    """The next timer cannot be armed (the real clock's threading.Timer: "can't start new
    thread" on a Pi out of threads)."""
    real = sim.clock.call_later
    state = {"failed": False}

    def call_later(delay, callback):
        if not state["failed"]:
            state["failed"] = True
            raise RuntimeError("can't start new thread")
        return real(delay, callback)

    monkeypatch.setattr(sim.clock, "call_later", call_later)


def test_motor_is_not_left_running_when_its_cut_off_timer_cannot_be_armed(rig, monkeypatch):
    """The travel timer is the motor's maximum on-time on the Pi: a motor started without it
    must be stopped at once, and the caller gets a HardwareError with a stable code."""
    from controller.errors import HardwareError

    sim, hw, events = rig
    _timers_fail_once(sim, monkeypatch)
    with pytest.raises(HardwareError) as err:
        hw.drawers["A"].open()
    assert err.value.code == "ACTUATOR_TIMER"
    assert not sim.factory.pin(config_pins(hw, "A").motor_forward).state
    assert hw.drawers["A"].motion is Motion.STOPPED
    hw.drawers["A"].open()                      # the timers work again: so does the drawer
    sim.clock.advance(3.0)
    assert kinds(events) == [(EventKind.OPENED, "A")]


def test_magnet_is_not_left_on_when_its_pulse_timer_cannot_be_armed(rig, monkeypatch):
    from controller.errors import HardwareError

    sim, hw, events = rig
    latch = hw.latches[("B", 0, 0)]
    _timers_fail_once(sim, monkeypatch)
    with pytest.raises(HardwareError) as err:
        latch.release()
    assert err.value.code == "ACTUATOR_TIMER"
    assert not latch.energised
    assert not sim.factory.pin(config_pins(hw, "B").magnets[(0, 0)]).state
    sim.clock.advance(1.5)                       # rested: the duty cycle is not stuck on it
    hw.latches[("B", 0, 1)].release()
    assert hw.latches[("B", 0, 1)].energised
    sim.clock.advance(0.5)
    assert not hw.latches[("B", 0, 1)].energised


def test_safe_state_reaches_every_output_when_one_part_fails(rig, monkeypatch):
    """A pin that errors on one drawer must not leave the other drawers' motors and the
    magnets on: every part is made safe, then the failure is reported."""
    from controller.errors import HardwareError

    sim, hw, events = rig
    hw.drawers["B"].open()
    hw.latches[("B", 0, 0)].release()
    sim.clock.advance(0.1)

    def broken_stop() -> None:
        raise OSError("lgpio: bad handle")

    monkeypatch.setattr(hw.drawers["A"], "stop", broken_stop)
    with pytest.raises(HardwareError) as err:
        hw.safe_state()
    assert err.value.code == "SAFE_STATE_INCOMPLETE"
    pins_b = config_pins(hw, "B")
    assert not sim.factory.pin(pins_b.motor_forward).state
    assert not sim.factory.pin(pins_b.magnets[(0, 0)]).state
    assert hw.drawers["B"].motion is Motion.STOPPED


def test_a_reversal_stops_the_motor_and_pauses_before_driving_it_back(rig):
    """Reversing a spinning gear motor at once is a current surge through the H-bridge; the
    backend stops it and waits REVERSE_PAUSE_MS, like the drawer boards (firmware)."""
    from firmware.protocol import REVERSE_PAUSE_MS

    sim, hw, events = rig
    pins = config_pins(hw, "A")
    forward, backward = sim.factory.pin(pins.motor_forward), sim.factory.pin(pins.motor_backward)
    hw.drawers["A"].open()
    sim.clock.advance(1.0)                          # half way out
    hw.drawers["A"].close()
    assert not forward.state and not backward.state  # stopped, not reversed
    assert hw.drawers["A"].motion is Motion.CLOSING
    hw.drawers["A"].close()                         # idempotent: the pause is not restarted
    sim.clock.advance(REVERSE_PAUSE_MS / 1000 - 0.05)
    assert not backward.state
    sim.clock.advance(0.1)
    assert backward.state
    sim.clock.advance(2.0)
    assert kinds(events) == [(EventKind.CLOSED, "A")]
    opened, closed = sim.physics.motor_runs[-2:]
    assert (opened.direction, closed.direction) == ("open", "close")
    assert closed.start - opened.stop == pytest.approx(REVERSE_PAUSE_MS / 1000, abs=0.02)


def test_a_run_reversed_before_leaving_its_switch_is_not_driven_into_it(rig):
    """Closing a drawer that has not yet left its closed switch: after the pause it is
    already closed, so it reports so instead of running into its end until a jam."""
    from firmware.protocol import REVERSE_PAUSE_MS

    sim, hw, events = rig
    hw.drawers["A"].open()
    assert hw.drawers["A"].switches.closed
    hw.drawers["A"].close()                         # before the drawer has moved
    sim.clock.advance(REVERSE_PAUSE_MS / 1000 + 0.05)
    assert kinds(events) == [(EventKind.CLOSED, "A")]
    assert hw.drawers["A"].motion is Motion.STOPPED
    assert "close" not in [r.direction for r in sim.physics.motor_runs]
    sim.clock.advance(5.0)                          # and no jam later
    assert kinds(events) == [(EventKind.CLOSED, "A")]


def _output_pins(config):
    """Every pin the gpio backend drives: motors, magnets, lights, buzzer."""
    pins = []
    for hw in config.drawers:
        p = hw.pins
        pins += [p.motor_forward, p.motor_backward, *p.magnets.values()]
        if p.led is not None:
            pins.append(p.led)
    if config.buzzer_pin is not None:
        pins.append(config.buzzer_pin)
    return pins


def example_hardware():
    from pathlib import Path

    from controller import config as configuration

    example = Path(__file__).resolve().parents[1] / "deploy" / "armoire.example.toml"
    return example, configuration.load(example).hardware


def left_driven(hw, monkeypatch):
    """Mock pins for the real backend, every output of ``hw`` driven high, as a killed
    controller leaves them. Returns the factory and the output pins."""
    import hal.backends

    factory = MockFactory()
    monkeypatch.setattr(hal.backends, "real_pin_factory", lambda name: factory)
    outputs = _output_pins(hw)
    for n in outputs:
        pin = factory.pin(n)
        pin.function = "output"
        pin.state = True
    return factory, outputs


def test_outputs_left_on_by_a_killed_controller_are_cut_and_released():
    """A controller killed outright never reaches its safe state, and the lines keep the
    level it left: systemd's ExecStopPost= runs cut_outputs, which must switch every one
    off and give the pins back for the next start."""
    from hal.clock import RealClock
    from hal.gpio import cut_outputs

    _, config = example_hardware()
    factory = MockFactory()
    outputs = _output_pins(config)
    assert len(outputs) == 22 - 6   # the pin budget: 6 inputs (switches and buttons)
    for n in outputs:   # what the killed process left: every output driven
        pin = factory.pin(n)
        pin.function = "output"
        pin.state = True
    assert cut_outputs(config, factory) == 2 + 9 + 2 + 1   # drawers, magnets, lights, buzzer
    assert [n for n in outputs if factory.pin(n).state] == []
    GpioHardware(config, RealClock(), factory).close()   # the next start claims them


def test_the_outputs_off_command_on_the_example_configuration(monkeypatch, capsys):
    """`armoire outputs-off` as the unit runs it: the example (gpio) configuration's
    outputs all off; while the controller holds the pins, GPIO_BUSY, exit 3."""
    from controller.cli import main

    example, hw = example_hardware()
    factory, outputs = left_driven(hw, monkeypatch)
    assert main(["outputs-off", "--config", str(example)]) == 0
    out = capsys.readouterr().out
    assert "switched off and released" in out
    assert out.strip() and [line for line in out.splitlines() if " / " not in line] == [], out
    assert [n for n in outputs if factory.pin(n).state] == []

    from hal.clock import RealClock

    running = GpioHardware(hw, RealClock(), factory)   # a controller still running
    try:
        assert main(["outputs-off", "--config", str(example)]) == 3
        assert "[GPIO_BUSY]" in capsys.readouterr().err
    finally:
        running.close()


def test_every_refusal_of_outputs_off_is_in_the_guide():
    """What `armoire outputs-off` prints in `journalctl -u armoire` when it could not cut
    the outputs is what IT looks up in docs/deploy.md: GPIO_BUSY was there, OUTPUTS_NOT_CUT
    (the driver refused a pin: the outputs may still be on) was not."""
    import re
    from pathlib import Path

    source = (Path(__file__).parents[1] / "controller" / "outputs_cli.py").read_text()
    guide = (Path(__file__).parents[1] / "docs" / "deploy.md").read_text()
    codes = re.findall(r'code="([A-Z_]+)"', source)
    assert codes == ["GPIO_BUSY", "OUTPUTS_NOT_CUT"]
    assert [c for c in codes if f"`[{c}]`" not in guide] == []


def test_outputs_are_cut_whatever_else_the_configuration_now_refuses(monkeypatch, capsys,
                                                                      tmp_path):
    """ExecStopPost= read the whole configuration: one edited since the controller started
    (a LASA list not copied in yet, a port now refused) made outputs-off stop at BAD_CONFIG
    and leave a killed controller's motor or magnet driven. Only the drawers and the
    hardware tables, which say which pins to cut, are read now."""
    import re

    from controller.cli import main

    example, hw = example_hardware()
    config = tmp_path / "armoire.toml"
    text = re.sub(r"^port = 8080$", "port = 80", example.read_text(), flags=re.M)
    config.write_text(text.replace('# [layout]\n# lasa = "lasa.csv"',
                                   '[layout]\nlasa = "not-yet.csv"'))
    factory, outputs = left_driven(hw, monkeypatch)
    assert main(["outputs-off", "--config", str(config)]) == 0, capsys.readouterr().err
    assert [n for n in outputs if factory.pin(n).state] == []


def test_outputs_off_on_drawer_boards_says_so_in_english_and_french():
    """With drawer boards nothing is cut by the Pi; the line the unit logs says why, in
    both languages, as the gpio one does."""
    from types import SimpleNamespace

    from hal.backends import cut_outputs

    said = cut_outputs(SimpleNamespace(backend="serial"))  # type: ignore[arg-type]
    assert said.startswith("serial: ") and " / " in said and "firmware" in said, said
