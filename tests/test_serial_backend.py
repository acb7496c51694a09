"""The real serial backend, over real ptys, against emulated drawer boards running the firmware.

The same cases as tests/test_hal_gpio.py, on the same physics: what the controller sees must
not depend on the backend. After each ``advance`` the test calls ``sim.settle()``, which
returns once the boards' events have reached the listener (bytes cross a real tty).
"""

from __future__ import annotations

import pytest

from controller.errors import ConfigError, HardwareError
from firmware import protocol
from hal.backends import build_hardware
from hal.config import DrawerHw, HardwareConfig, Timing
from hal.parts import EventKind, HardwareEvent, Motion
from hal.serial_backend import SerialHardware
from sim.board_emulator import MOTOR_FORWARD
from sim.simulator import Simulator

TIMING = Timing(max_travel_s=4.0, switch_release_s=0.8, magnet_pulse_s=0.3)
DRAWERS = (DrawerHw("A", "matrix", 3, 3), DrawerHw("B", "cubie", 2, 2))


@pytest.fixture
def rig():
    config = HardwareConfig("serial", DRAWERS, timing=TIMING)
    sim = Simulator(config, travel_s=2.0)
    hw = build_hardware(config, sim.clock, simulator=sim)
    assert isinstance(hw, SerialHardware)
    events: list[HardwareEvent] = []
    hw.set_listener(events.append)
    yield sim, hw, events
    hw.close()
    sim.close()


def advance(sim, seconds):
    """As the scenario runner does in serial mode: small steps, settling after each."""
    steps = max(1, round(seconds / 0.1))
    for _ in range(steps):
        sim.clock.advance(seconds / steps)
        sim.settle()


def kinds(events):
    return [(e.kind, e.drawer) for e in events]


def motor_pin(sim, drawer):
    return sim.board(drawer).bank.pin(MOTOR_FORWARD).state


def test_open_runs_motor_until_open_switch_then_stops(rig):
    sim, hw, events = rig
    hw.drawers["A"].open()
    assert hw.drawers["A"].motion is Motion.OPENING
    advance(sim, 3.0)
    assert kinds(events) == [(EventKind.OPENED, "A")]
    run = sim.physics.motor_runs[-1]
    assert run.direction == "open"
    assert run.stop is not None and run.stop - run.start == pytest.approx(2.0, abs=0.02)
    assert hw.drawers["A"].switches.open and not hw.drawers["A"].switches.closed
    assert hw.drawers["A"].motion is Motion.STOPPED
    assert not motor_pin(sim, "A")


def test_open_is_idempotent(rig):
    sim, hw, events = rig
    hw.drawers["A"].open()
    hw.drawers["A"].open()
    advance(sim, 3.0)
    assert len(sim.physics.motor_runs) == 1
    hw.drawers["A"].open()
    advance(sim, 0.5)
    assert len(sim.physics.motor_runs) == 1
    assert kinds(events) == [(EventKind.OPENED, "A"), (EventKind.OPENED, "A")]


def test_close_after_open(rig):
    sim, hw, events = rig
    hw.drawers["A"].open()
    advance(sim, 3.0)
    hw.drawers["A"].close()
    advance(sim, 3.0)
    assert kinds(events)[-1] == (EventKind.CLOSED, "A")
    assert sim.physics.drawers["A"].position == 0.0
    assert [r.direction for r in sim.physics.motor_runs] == ["open", "close"]
    assert hw.drawers["A"].switches.closed


def test_jam_stops_motor_at_max_travel_and_reports(rig):
    sim, hw, events = rig
    sim.physics.inject("A", "jam")
    hw.drawers["A"].open()
    advance(sim, 6.0)
    assert kinds(events) == [(EventKind.JAMMED, "A")]
    assert events[0].detail == {"motion": "opening", "seconds": TIMING.max_travel_s}
    run = sim.physics.motor_runs[-1]
    assert run.stop is not None
    assert run.stop - run.start == pytest.approx(TIMING.max_travel_s, abs=0.02)
    assert hw.drawers["A"].motion is Motion.STOPPED
    assert not motor_pin(sim, "A")


def test_stuck_closed_switch_stops_motor_early(rig):
    sim, hw, events = rig
    sim.physics.inject("A", "switch_stuck")
    hw.drawers["A"].open()
    advance(sim, 3.0)
    assert kinds(events) == [(EventKind.SWITCH_FAULT, "A")]
    assert events[0].detail == {"switch": "closed", "reason": "did not release"}
    run = sim.physics.motor_runs[-1]
    assert run.stop is not None
    assert run.stop - run.start == pytest.approx(TIMING.switch_release_s, abs=0.02)


def test_magnet_is_pulsed_never_held(rig):
    sim, hw, events = rig
    latch = hw.latches[("B", 1, 0)]
    latch.release()
    latch.release()
    assert latch.energised
    advance(sim, 1.0)
    assert not latch.energised
    pulses = sim.physics.magnet_pulses
    assert len(pulses) == 1 and pulses[0].pocket == ("B", 1, 0)
    assert pulses[0].stop is not None
    assert pulses[0].stop - pulses[0].start == pytest.approx(TIMING.magnet_pulse_s, abs=0.02)
    assert (1, 0) in sim.physics.drawers["B"].lids_open
    assert events[-1] == HardwareEvent(EventKind.LATCH_RELEASED, "B", {"row": 1, "col": 0})


def test_close_button_and_uncommanded_opening(rig):
    sim, hw, events = rig
    sim.physics.press_close_button("A")
    sim.physics.pull_open("B")
    advance(sim, 0.1)
    assert sorted(kinds(events), key=str) == sorted(
        [(EventKind.CLOSE_PRESSED, "A"), (EventKind.MOVED_UNCOMMANDED, "B")], key=str)


def test_safe_state_stops_everything(rig):
    sim, hw, events = rig
    hw.drawers["A"].open()
    hw.latches[("B", 0, 0)].release()
    advance(sim, 0.1)
    hw.safe_state()
    assert not motor_pin(sim, "A")
    assert not sim.board("B").bank.pin(sim.physics.drawers["B"].pins.magnets[(0, 0)]).state
    assert not hw.latches[("B", 0, 0)].energised
    advance(sim, 5.0)
    assert not motor_pin(sim, "A")


def test_indicator_and_link_state(rig):
    sim, hw, events = rig
    assert hw.link_ok()
    hw.indicators["A"].on()
    assert sim.board("A").bank.pin(25).state
    hw.indicators["A"].off()
    assert not sim.board("A").bank.pin(25).state
    hello = hw.links["A"].hello
    assert hello["version"] == protocol.FIRMWARE_VERSION and hello["drawer_id"] == "A"
    state = hw.describe()["A"]
    assert state["position"] == "closed" and state["link"] == "up"
    assert state["firmware"] == protocol.FIRMWARE_VERSION


def test_long_advance_keeps_the_link_and_the_board_watchdog_quiet(rig):
    sim, hw, events = rig
    sim.clock.advance(30.0)   # one big step: heartbeats ride on the virtual clock
    sim.settle()
    assert hw.link_ok() and events == []
    assert not sim.board("A").board.watchdog_tripped


def test_firmware_version_mismatch_is_a_startup_error():
    config = HardwareConfig("serial", DRAWERS, timing=TIMING)
    sim = Simulator(config)
    sim.board_version = "0.0.9"
    try:
        with pytest.raises(HardwareError) as err:
            build_hardware(config, sim.clock, simulator=sim)
        assert err.value.code == "FIRMWARE_MISMATCH"
        assert "0.0.9" in err.value.message_en
    finally:
        sim.close()


def test_board_for_another_drawer_is_refused():
    config = HardwareConfig("serial", DRAWERS, timing=TIMING)
    sim = Simulator(config)
    try:
        sim.serial_ports()
        sim.board("B").board.drawer_id = "Z"
        with pytest.raises(HardwareError) as err:
            build_hardware(config, sim.clock, simulator=sim)
        assert err.value.code == "BOARD_MISMATCH"
    finally:
        sim.close()


def test_missing_port_is_a_startup_error(tmp_path):
    from hal.clock import RealClock
    config = HardwareConfig("serial", (DrawerHw("A", "matrix", 1, 1,
                                                port=str(tmp_path / "ttyNONE")),))
    with pytest.raises(HardwareError) as err:
        build_hardware(config, RealClock())
    assert err.value.code == "PORT_UNAVAILABLE"
    with pytest.raises(ConfigError):
        build_hardware(HardwareConfig("serial", (DrawerHw("A", "matrix", 1, 1),)), RealClock())


def test_power_loss_resets_boards_and_a_reboot_finds_the_drawer_where_it_was():
    config = HardwareConfig("serial", DRAWERS, timing=TIMING)
    sim = Simulator(config, travel_s=2.0)
    try:
        hw = build_hardware(config, sim.clock, simulator=sim)
        hw.drawers["A"].open()
        advance(sim, 1.0)                # half open, motor running
        old_board = sim.board("A")
        sim.power_loss()
        assert not old_board.bank.pin(MOTOR_FORWARD).state
        assert sim.physics.motor_runs[-1].stop is not None
        position = sim.physics.drawers["A"].position
        assert 0.3 < position < 0.7
        sim.clock.advance(2.0)
        assert sim.physics.drawers["A"].position == position
        hw2 = build_hardware(config, sim.clock, simulator=sim)   # the reboot
        events: list[HardwareEvent] = []
        hw2.set_listener(events.append)
        drawer = hw2.drawers["A"]
        assert drawer.motion is Motion.STOPPED
        assert not drawer.switches.open and not drawer.switches.closed
        assert hw2.link_ok()
        drawer.close()
        advance(sim, 2.0)
        assert kinds(events) == [(EventKind.CLOSED, "A")]
        hw2.close()
    finally:
        sim.close()


def test_heartbeat_on_the_real_clock():
    """On a cabinet the heartbeat runs on RealClock timers (threads), not on the simulator's."""
    import time

    from hal.clock import RealClock
    from hal.serial_backend import build

    config = HardwareConfig("serial", DRAWERS[:1], timing=TIMING)
    sim = Simulator(config)
    try:
        hw = build(config, RealClock(), simulator=sim)
        sent = hw.links["A"].sent
        deadline = time.monotonic() + 10.0
        while hw.links["A"].sent < sent + 3:
            assert time.monotonic() < deadline, "no heartbeat on the real clock"
            time.sleep(0.05)
        assert hw.link_ok()
        hw.close()
    finally:
        sim.close()


def test_forty_pocket_drawer_through_shift_registers():
    config = HardwareConfig("serial", (DrawerHw("C", "cubie", 5, 8),), timing=TIMING)
    sim = Simulator(config)
    try:
        hw = build_hardware(config, sim.clock, simulator=sim)
        events: list[HardwareEvent] = []
        hw.set_listener(events.append)
        assert len(hw.latches) == 40
        hw.latches[("C", 4, 7)].release()
        hw.latches[("C", 0, 1)].release()
        advance(sim, 1.0)
        pulses = sorted(sim.physics.magnet_pulses, key=lambda m: m.pocket)
        assert [m.pocket for m in pulses] == [("C", 0, 1), ("C", 4, 7)]
        for pulse in pulses:
            assert pulse.stop is not None
            assert pulse.stop - pulse.start == pytest.approx(TIMING.magnet_pulse_s, abs=0.02)
        assert sim.physics.drawers["C"].lids_open == {(0, 1), (4, 7)}
        assert sorted((e.detail["row"], e.detail["col"]) for e in events) == [(0, 1), (4, 7)]
        hw.close()
    finally:
        sim.close()


def test_runner_style_driving_without_settle():
    """Small steps with a brief real-time yield between them (no settle): events still arrive,
    from the reader thread, soon after the tick that caused them."""
    import time

    config = HardwareConfig("serial", DRAWERS, timing=TIMING)
    sim = Simulator(config, travel_s=2.0)
    try:
        hw = build_hardware(config, sim.clock, simulator=sim)
        events: list[HardwareEvent] = []
        hw.set_listener(events.append)
        hw.drawers["A"].open()
        deadline = time.monotonic() + 10.0
        while not events:
            assert time.monotonic() < deadline
            sim.clock.advance(0.05)
            time.sleep(0.001)
        assert kinds(events) == [(EventKind.OPENED, "A")]
        assert sim.clock.now >= 2.0
        sim.advance(1.0)   # the helper: steps + settle
        assert kinds(events) == [(EventKind.OPENED, "A")]
        hw.close()
    finally:
        sim.close()


def test_board_tool_info_and_maintenance(capsys):
    import json

    from hal import board_tool

    config = HardwareConfig("serial", DRAWERS, timing=TIMING)
    sim = Simulator(config)
    try:
        ports = sim.serial_ports()
        assert board_tool.main([ports["A"], "info"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["version"] == protocol.FIRMWARE_VERSION and info["drawer_id"] == "A"
        assert board_tool.main([ports["B"], "maintenance"]) == 0
        assert sim.board("B").board.maintenance
        sim.board("A").board.version = "0.0.1"
        assert board_tool.main([ports["A"], "info"]) == 3
        assert "flash" in capsys.readouterr().err
    finally:
        sim.close()


def test_boards_take_debounce_and_magnet_rest_from_the_pis_configuration():
    timing = Timing(max_travel_s=4.0, switch_release_s=0.8, magnet_pulse_s=0.3,
                    switch_debounce_s=0.05, magnet_min_off_s=2.5)
    config = HardwareConfig("serial", DRAWERS, timing=timing)
    sim = Simulator(config, travel_s=2.0)
    hw = build_hardware(config, sim.clock, simulator=sim)
    try:
        advance(sim, 0.5)
        for drawer in ("A", "B"):
            limits = sim.board(drawer).board.limits
            assert (limits.debounce_ms, limits.magnet_off_ms) == (50, 2500)
    finally:
        hw.close()
        sim.close()


def test_board_tool_reports_a_board_it_cannot_understand_without_a_traceback(capsys):
    """The tool exists to check what a board runs: a board with another protocol, whose HELLO
    answer has another layout, must get the tool's exit 3 and a clear message with a code,
    not a struct.error traceback."""
    from hal import board_tool

    config = HardwareConfig("serial", DRAWERS, timing=TIMING)
    sim = Simulator(config)
    try:
        ports = sim.serial_ports()
        board = sim.board("A").board
        real = board.handle

        def handle(seq, cmd, args, now):
            if cmd == protocol.HELLO:   # protocol 2: result and version only
                return protocol.encode(seq, cmd | protocol.RESPONSE, bytes([protocol.OK, 2]))
            return real(seq, cmd, args, now)

        board.handle = handle
        assert board_tool.main([ports["A"], "info"]) == 3
        err = capsys.readouterr().err
        assert "PROTOCOL_MISMATCH" in err and "Traceback" not in err
    finally:
        sim.close()


def test_board_tool_reports_a_port_that_fails_without_a_traceback(capsys, monkeypatch):
    import serial

    from hal import board_tool

    class Gone:
        in_waiting = 0

        def write(self, data: bytes) -> int:
            raise serial.SerialException("device reports readiness to read but returned no data")

        def close(self) -> None:
            pass

    monkeypatch.setattr(board_tool, "open_port", lambda port: Gone())
    assert board_tool.main(["/dev/ttyACM9", "info"]) == 3
    assert "PORT_UNAVAILABLE" in capsys.readouterr().err


def test_a_config_answer_without_a_result_is_a_startup_error_with_a_code():
    """A board whose CONFIG answer carries no result byte (a firmware bug, a CRC collision)
    has not confirmed the limits: start-up refuses it with a HardwareError, never an
    IndexError out of the backend."""
    config = HardwareConfig("serial", DRAWERS, timing=TIMING)
    sim = Simulator(config)
    try:
        sim.serial_ports()
        board = sim.board("A").board
        real = board.handle

        def handle(seq, cmd, args, now):
            if cmd == protocol.CONFIG:
                return protocol.encode(seq, cmd | protocol.RESPONSE, b"")
            return real(seq, cmd, args, now)

        board.handle = handle
        with pytest.raises(HardwareError) as err:
            build_hardware(config, sim.clock, simulator=sim)
        assert err.value.code == "BOARD_NOT_ANSWERING"
    finally:
        sim.close()
