"""The same scenario gives the same outcome on the gpio and the serial backend, and the
cabinet survives a drawer board's link going down and coming back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from helpers import PINS, SPEC, START, config, login, scenario

from controller.errors import HardwareError
from hal.parts import EventKind, HardwareEvent
from sim.harness import SimCabinet
from sim.scenario import Runner

RICH = scenario([
    login("t1"),
    {"do": "restock", "drug": "PARA500", "scan": "03400930000011", "qty": 30, "lot": "L1",
     "expiry": "2027-01-31"},
    {"do": "restock", "drug": "MORPH10", "scan": "MORPH10", "qty": 10, "lot": "M1",
     "expiry": "2027-02-28"},
    {"do": "logout"}, login("n1"),
    {"do": "withdraw", "drug": "PARA500", "qty": 2, "patient": "P1"},
    {"do": "withdraw", "drug": "MORPH10", "qty": 1, "patient": "P1", "take": 2},
    {"do": "fault", "drawer": "A", "kind": "jam"},
    {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P1"},
    {"do": "fault", "drawer": "A", "kind": "clear"},
    {"do": "fault", "drawer": "B", "kind": "switch_stuck"},
    {"do": "withdraw", "drug": "MORPH10", "qty": 1, "patient": "P1"},
    {"do": "fault", "drawer": "B", "kind": "clear"},
    {"do": "logout"}, login("t1"),
    {"do": "reset_drawer", "drawer": "A"}, {"do": "reset_drawer", "drawer": "B"},
    {"do": "logout"}, login("n1"),
    {"do": "withdraw", "drug": "PARA500", "qty": 3, "patient": "P2",
     "power_loss": "while_open"},
    {"do": "reboot"}, login("ph1"),
    {"do": "count", "drawer": "A", "row": 0, "col": 0},
    {"do": "resolve", "kind": "discrepancy"},
    {"do": "advance", "seconds": 120},
])


def faults(cab: Any) -> list[dict[str, Any]]:
    """Open alarms but low stock (the pockets left empty are low from the start)."""
    return [a for a in cab.alarms.list() if a["kind"] != "low_stock"]


def outcome(report):
    return {"steps": report["steps"], "stock": report["stock"],
            "alarms": [(a["kind"], a["drug"], a["drawer"], a["state"]) for a in report["alarms"]],
            "rows": report["journal"]["rows"], "verified": report["journal"]["verified"]}


def test_gpio_and_serial_give_the_same_outcome(tmp_path):
    gpio = asyncio.run(Runner(RICH, tmp_path / "g.db", backend="gpio").run())
    serial = asyncio.run(Runner(RICH, tmp_path / "s.db", backend="serial").run())
    assert outcome(gpio) == outcome(serial)
    codes = [s.get("code") for s in gpio["steps"]]
    # Both faults were seen: the jam left drawer A part-open (its stocked pocket is to be
    # counted), the stuck closed switch kept drawer B shut (nothing taken).
    assert codes.count("JAMMED_PART_OPEN") == 1 and codes.count("DRAWER_FAULT") == 1
    assert gpio["journal"]["verified"]


def test_a_scenario_run_twice_writes_the_same_journal(tmp_path):
    """Time in a scenario is virtual: the journal, down to its head hash, does not depend on
    how fast the machine hashes PINs or replays faults (the head can then stand in a
    regression test). Each backend keeps its own timing, so heads are compared per backend."""
    first = asyncio.run(Runner(RICH, tmp_path / "a.db", backend="gpio").run())
    again = asyncio.run(Runner(RICH, tmp_path / "b.db", backend="gpio").run())
    assert first["journal"]["rows"] > 20
    assert again["journal"] == first["journal"]


def test_link_down_takes_the_drawer_offline_and_back(tmp_path):
    async def go():
        sim = SimCabinet(config(), tmp_path / "l.db", start=START)
        cab = await sim.boot(SPEC)
        await sim.run(cab.login("n1", PINS["n1"]))
        await sim.operate(cab.restock("PARA500", "PARA500", 20, lot="L", expiry="2027-01-01"))
        part = cab.hardware.drawers["A"]
        real_open = part.open

        def unreachable():
            raise HardwareError("board A does not answer", code="LINK_DOWN")

        part.open = unreachable  # the next command finds the board gone
        try:
            await sim.run(cab.withdraw("PARA500", 1, "P1"))
        except HardwareError as exc:
            # Whether the board ran the OPEN whose answer was lost is unknown: the matrix
            # drawer's stocked pocket may have been reached, and is to be counted.
            assert exc.code == "POSITION_UNKNOWN"
        else:
            raise AssertionError("withdraw should have failed")
        assert cab.units["A"].state == "offline"
        assert cab.store.on_hand("A", 0, 0) == 20
        assert [a["kind"] for a in faults(cab)] == ["drawer_fault", "discrepancy"]
        part.open = real_open
        cab._post(HardwareEvent(EventKind.LINK_UP, "A", {"rebooted": False}))
        await sim.settle(lambda: cab.units["A"].state == "closed" and len(faults(cab)) == 1,
                         limit=1)
        assert cab.units["A"].state == "closed"
        # The fault is resolved by the link coming back; the count is the pharmacist's.
        assert [a["kind"] for a in faults(cab)] == ["discrepancy"]
        op = await sim.operate(cab.withdraw("PARA500", 1, "P1"))
        assert op.step == "done" and cab.store.on_hand("A", 0, 0) == 19
        cab._post(HardwareEvent(EventKind.LINK_DOWN, "A", {"reason": "timeout"}))
        await sim.settle(lambda: cab.units["A"].state == "offline", limit=1)
        assert cab.units["A"].state == "offline"
        await sim.shutdown()
    asyncio.run(go())


def test_controller_stops_a_drawer_whose_backend_never_reports(tmp_path):
    """Safety again above the backend: no event within the limit -> motor off, jammed."""
    async def go():
        sim = SimCabinet(config(), tmp_path / "q.db", start=START)
        cab = await sim.boot(SPEC)
        await sim.run(cab.login("n1", PINS["n1"]))
        await sim.operate(cab.restock("PARA500", "PARA500", 20, lot="L", expiry="2027-01-01"))
        part = cab.hardware.drawers["A"]
        stops = []
        part.open = lambda: None  # a backend that takes the command and never reports
        real_stop = part.stop
        part.stop = lambda: (stops.append(sim.simulator.clock.now), real_stop())
        t0 = sim.simulator.clock.now
        try:
            await sim.run(cab.withdraw("PARA500", 1, "P1"))
        except HardwareError as exc:
            assert exc.code == "DRAWER_FAULT"
        else:
            raise AssertionError("withdraw should have failed")
        unit = cab.units["A"]
        assert unit.state == "jammed" and unit.last_fault["reason"].startswith("no end switch")
        assert stops and abs(stops[0] - t0 - unit.limit_s) < 0.1
        assert cab.store.on_hand("A", 0, 0) == 20
        await sim.shutdown()
    asyncio.run(go())


@contextmanager
def one_matrix_drawer(backend: str) -> Iterator[tuple[Any, Any, list[HardwareEvent]]]:
    """One 2×2 matrix drawer A on ``backend`` (gpio pins or a drawer board), run by the
    simulator's physics, with the events it reports; closed down on the way out."""
    from hal.backends import build_hardware
    from hal.config import HardwareConfig, Timing
    from sim.simulator import Simulator, auto_wire

    drawers = auto_wire([("A", "matrix", 2, 2)])
    config = HardwareConfig(backend, drawers, timing=Timing(max_travel_s=4.0,
                                                            switch_release_s=0.8))
    sim = Simulator(config, travel_s=2.0)
    hw = build_hardware(config, sim.clock, simulator=sim)
    events: list[HardwareEvent] = []
    hw.set_listener(events.append)
    try:
        yield sim, hw, events
    finally:
        hw.close()
        sim.close()


def test_both_backends_debounce_the_close_button_and_switches_alike():
    """The same contact bounce, on the gpio backend's pins and on a drawer board's: a 10 ms
    glitch is nothing, a press that bounces is one press, a drawer pulled out of its closed
    switch is one uncommanded move (the gpio backend used to report each bounce)."""

    def run(backend: str) -> list[tuple[EventKind, str | None]]:
        with one_matrix_drawer(backend) as (sim, hw, events):
            model = sim.physics.drawers["A"]
            button = model.bank.pin(model.pins.close_button)
            sim.advance(0.1)
            button.drive_low()                   # a glitch: one 10 ms sample
            sim.advance(0.01)
            button.drive_high()
            sim.advance(0.2)
            for _ in range(3):                   # a press that bounces on the way down
                button.drive_low()
                sim.advance(0.01)
                button.drive_high()
                sim.advance(0.01)
            button.drive_low()
            sim.advance(0.15)
            button.drive_high()                  # and on the way up
            sim.advance(0.01)
            button.drive_low()
            sim.advance(0.01)
            button.drive_high()
            sim.advance(0.3)
            sim.physics.pull_open("A", to=0.3)
            sim.advance(0.3)
            return [(e.kind, e.drawer) for e in events]

    expected = [(EventKind.CLOSE_PRESSED, "A"), (EventKind.MOVED_UNCOMMANDED, "A")]
    assert run("gpio") == expected
    assert run("serial") == expected


def test_both_backends_pulse_magnets_one_at_a_time_with_rest_and_bounded_wait():
    """Four releases at once on a cubie drawer with 1 s pulses: the first fires, the next two
    wait their turn (no two magnets ever on together), the fourth would wait over the bound
    and is refused with MAGNET_BUSY; a pocket pulsed again rests first."""
    import pytest

    from hal.backends import build_hardware
    from hal.config import MAGNET_MAX_WAIT_S, HardwareConfig, Timing
    from sim.simulator import Simulator, auto_wire

    def run(backend: str) -> tuple[list[tuple[int, int]], list[float]]:
        drawers = auto_wire([("B", "cubie", 2, 2)])
        config = HardwareConfig(backend, drawers, timing=Timing(magnet_pulse_s=1.0,
                                                                magnet_min_off_s=1.0))
        sim = Simulator(config, travel_s=2.0)
        hw = build_hardware(config, sim.clock, simulator=sim)
        try:
            latches = hw.latches
            latches[("B", 0, 0)].release()
            latches[("B", 0, 1)].release()
            latches[("B", 1, 0)].release()
            with pytest.raises(HardwareError) as err:
                latches[("B", 1, 1)].release()
            assert err.value.code == "MAGNET_BUSY"
            assert err.value.message_fr != err.value.message_en
            overlap = False
            for _ in range(400):
                sim.advance(0.01, step=0.01)
                on = [p for p in sim.physics.magnet_pulses if p.stop is None]
                overlap = overlap or len(on) > 1
            assert not overlap
            latches[("B", 1, 0)].release()        # just pulsed: rests 1 s first
            sim.advance(2.0)
            pulses = sim.physics.magnet_pulses
            starts = [p.start for p in pulses]
            return [(p.pocket[1], p.pocket[2]) for p in pulses], starts
        finally:
            hw.close()
            sim.close()

    for backend in ("gpio", "serial"):
        order, starts = run(backend)
        assert order == [(0, 0), (0, 1), (1, 0), (1, 0)], backend
        assert starts[2] - starts[0] <= MAGNET_MAX_WAIT_S + 0.05
        assert starts[3] - starts[2] >= 1.0 + 1.0 - 0.02, backend   # pulse, then the rest


def test_both_end_switches_pressed_is_a_switch_fault_and_drives_no_motor():
    """An end switch that sticks pressed at the other end (the closed switch of an open
    drawer) says nothing true about where the drawer is. Both backends used to stay silent
    (or call it an uncommanded move, a position), and a Close then drove the motor blind:
    the stuck closed switch never gave the edge that ends the run, so the motor pushed the
    drawer into its end stop until the travel limit and the drawer was called jammed. Both
    pressed, with no motion, is a switch fault; and a command given while both are pressed
    reports the fault again and never switches the motor on."""

    def run(backend: str) -> tuple[list[tuple[EventKind, dict[str, Any]]], int]:
        with one_matrix_drawer(backend) as (sim, hw, events):
            hw.drawers["A"].open()
            sim.advance(3.0)
            sim.physics.inject("A", "switch_stuck")   # open, and the closed switch pressed
            sim.advance(0.3)
            hw.drawers["A"].close()
            sim.advance(5.0)
            hw.drawers["A"].open()
            sim.advance(5.0)
            assert sim.physics.drawers["A"].position == 1.0   # it never moved
            return [(e.kind, dict(e.detail)) for e in events], len(sim.physics.motor_runs)

    both = "both pressed"
    expected = [(EventKind.OPENED, {}),
                (EventKind.SWITCH_FAULT, {"switch": "closed", "reason": both}),
                (EventKind.SWITCH_FAULT, {"switch": "open", "reason": both}),
                (EventKind.SWITCH_FAULT, {"switch": "closed", "reason": both})]
    for backend in ("gpio", "serial"):
        assert run(backend) == (expected, 1), backend


def test_a_drawer_put_offline_by_a_refused_command_can_be_reset(tmp_path):
    """A motor command that fails without the link going down (the board answered FAILED:
    BOARD_REFUSED; or, on the gpio backend, the safety timer could not be armed:
    ACTUATOR_TIMER) puts the drawer offline. Offline was left only by a LINK_UP, which never
    comes while the link is up (and never on the gpio backend): the drawer stayed out of
    service, shown as a mute board, and a technician's reset was refused, until the
    controller restarted. A reset now drives the drawer shut, which is the check: it closes
    if the hardware obeys, and goes back offline if it does not."""
    async def go():
        sim = SimCabinet(config(), tmp_path / "r.db", start=START)
        cab = await sim.boot(SPEC)
        await sim.run(cab.login("n1", PINS["n1"]))
        await sim.operate(cab.restock("PARA500", "PARA500", 20, lot="L", expiry="2027-01-01"))
        part = cab.hardware.drawers["A"]
        real_open, real_close = part.open, part.close

        def refused():
            raise HardwareError("drawer A: the board refused OPEN", code="BOARD_REFUSED")

        part.open = refused
        with pytest.raises(HardwareError) as failed:
            await sim.run(cab.withdraw("PARA500", 1, "P1"))
        assert failed.value.code == "DRAWER_FAULT"
        assert cab.units["A"].state == "offline"
        await sim.run(cab.logout())
        await sim.run(cab.login("t1", PINS["t1"]))
        part.close = refused                     # the hardware still refuses: offline again
        assert await sim.run(cab.reset_drawer("A")) == "offline"
        part.open, part.close = real_open, real_close
        assert await sim.run(cab.reset_drawer("A")) == "closed"
        assert faults(cab) == []
        await sim.run(cab.logout())
        await sim.run(cab.login("n1", PINS["n1"]))
        op = await sim.operate(cab.withdraw("PARA500", 1, "P1"))
        assert op.step == "done" and cab.store.on_hand("A", 0, 0) == 19
        await sim.shutdown()

    asyncio.run(go())


def test_both_backends_report_a_jam_part_open_alike():
    """The cabinet decides from the switches, read once the jam is reported, whether a
    jammed drawer exposed its pockets: jammed after leaving its closed switch (opening) or
    its open one (closing), it stands part-open, with neither switch pressed, on the gpio
    pins and on a drawer board alike."""
    from hal.parts import SwitchState

    def run(backend: str) -> list[tuple[EventKind, dict[str, Any], SwitchState]]:
        seen = []
        with one_matrix_drawer(backend) as (sim, hw, events):
            drawer = hw.drawers["A"]
            sim.physics.inject("A", "jam")          # at the closed end
            drawer.open()
            sim.advance(5.0)
            seen.append(drawer.switches)
            sim.physics.inject("A", "clear")
            drawer.open()
            sim.advance(3.0)
            sim.physics.inject("A", "jam")          # at the open end
            drawer.close()
            sim.advance(5.0)
            seen.append(drawer.switches)
            assert 0 < sim.physics.drawers["A"].position < 1
            jams = [e for e in events if e.kind is EventKind.JAMMED]
            return [(e.kind, dict(e.detail), sw) for e, sw in zip(jams, seen, strict=True)]

    part_open = SwitchState(closed=False, open=False)
    expected = [(EventKind.JAMMED, {"motion": "opening", "seconds": 4.0}, part_open),
                (EventKind.JAMMED, {"motion": "closing", "seconds": 4.0}, part_open)]
    for backend in ("gpio", "serial"):
        assert run(backend) == expected, backend
