"""Faults on the serial line and on the boards, through a fault-injecting pty proxy.

In every case: no drawer opens twice, none is left moving, the backend reports the fault
(LINK_DOWN, ``link_ok()``, an exception on the command that could not be carried out) and
recovers when the line comes back. Waits are on conditions with generous real-time deadlines,
never on durations.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from firmware import board as fw
from firmware import protocol as P
from hal.config import DrawerHw, HardwareConfig, Timing
from hal.parts import EventKind, HardwareEvent, Motion
from hal.serial_backend import LinkDown, SerialHardware
from sim.board_emulator import MOTOR_FORWARD
from sim.line_proxy import TO_BOARD, TO_PI, LineProxy
from sim.simulator import Simulator

TIMING = Timing(max_travel_s=4.0, switch_release_s=0.8, magnet_pulse_s=0.3)
DRAWERS = (DrawerHw("A", "matrix", 2, 2), DrawerHw("B", "cubie", 2, 2))


class Rig:
    def __init__(self, tmp_path, seed: int = 0) -> None:
        self.config = HardwareConfig("serial", DRAWERS, timing=TIMING)
        self.sim = Simulator(self.config, travel_s=2.0)
        ports = self.sim.serial_ports()
        self.proxy = {d: LineProxy(path, str(tmp_path / f"cable-{d}"), seed=seed)
                      for d, path in ports.items()}
        self.hw = SerialHardware(self.config, self.sim.clock,
                                 {d: p.path for d, p in self.proxy.items()})
        self.hw.start()
        self.sim.register_serial_client(self.hw)
        self.events: list[HardwareEvent] = []
        self.hw.set_listener(self.events.append)

    def advance(self, seconds: float, step: float = 0.1) -> None:
        for _ in range(max(1, round(seconds / step))):
            self.sim.clock.advance(step)
            self.sim.settle()

    def wait_for(self, condition, deadline: float = 20.0, step: float = 0.1) -> None:
        """Drive virtual time until ``condition()``; fail after ``deadline`` real seconds."""
        end = time.monotonic() + deadline
        while not condition():
            assert time.monotonic() < end, "condition not reached"
            self.advance(step, step)

    def runs(self, drawer: str, direction: str | None = None):
        return [r for r in self.sim.physics.motor_runs
                if r.drawer == drawer and (direction is None or r.direction == direction)]

    def kinds(self, drawer: str | None = None):
        return [e.kind for e in self.events if drawer is None or e.drawer == drawer]

    def motor_on(self, drawer: str) -> bool:
        return bool(self.sim.board(drawer).bank.pin(MOTOR_FORWARD).state)

    def close(self) -> None:
        self.hw.close()
        for proxy in self.proxy.values():
            proxy.close()
        self.sim.close()

    def assert_nothing_moving(self) -> None:
        self.advance(0.1)   # the physics records a motor stop on the tick after it
        for drawer in ("A", "B"):
            assert not self.motor_on(drawer)
            assert all(r.stop is not None for r in self.runs(drawer)), drawer


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def test_corrupted_command_and_answer_are_resent_and_run_once(rig):
    rig.proxy["A"].fault("corrupt", TO_BOARD, 2)   # the OPEN twice
    rig.proxy["A"].fault("corrupt", TO_PI, 1)      # then its answer
    rig.hw.drawers["A"].open()
    assert rig.hw.drawers["A"].motion is Motion.OPENING
    rig.advance(3.0)
    assert len(rig.runs("A")) == 1
    assert rig.kinds("A") == [EventKind.OPENED]
    assert rig.hw.links["A"].resent >= 3
    assert rig.sim.board("A").board.decoder.bad_frames >= 2
    assert rig.hw.link_ok()


def test_dropped_answer_and_dropped_event(rig):
    rig.proxy["A"].fault("drop", TO_PI, 1)        # the answer to OPEN: resent, cached reply
    rig.hw.drawers["A"].open()
    rig.proxy["A"].fault("drop", TO_PI, 1)        # the pushed OPENED event
    rig.advance(3.0)
    assert len(rig.runs("A")) == 1
    assert rig.kinds("A") == [EventKind.OPENED]   # recovered by the next poll, once
    assert rig.proxy["A"].injected["drop"] == 2


def test_duplicated_frames_change_nothing(rig):
    rig.proxy["A"].rates[TO_BOARD]["duplicate"] = 1.0
    rig.proxy["A"].rates[TO_PI]["duplicate"] = 1.0
    rig.hw.drawers["A"].open()
    rig.advance(3.0)
    rig.hw.drawers["A"].close()
    rig.advance(3.0)
    assert [r.direction for r in rig.runs("A")] == ["open", "close"]
    assert rig.kinds("A") == [EventKind.OPENED, EventKind.CLOSED]


def test_board_that_stops_answering(rig):
    rig.hw.drawers["A"].open()
    rig.advance(0.5)
    rig.sim.board("A").muted = True
    rig.wait_for(lambda: not rig.hw.link_ok())
    assert rig.kinds("A")[-1] is EventKind.LINK_DOWN
    with pytest.raises(LinkDown) as err:
        rig.hw.drawers["A"].close()
    assert err.value.code == "LINK_DOWN"
    rig.hw.drawers["B"].open()            # the other drawers carry on
    rig.wait_for(lambda: not rig.motor_on("A"))   # the board's watchdog: heartbeat lost
    position = rig.sim.physics.drawers["A"].position
    assert 0.0 < position < 1.0
    rig.sim.board("A").muted = False
    rig.wait_for(rig.hw.link_ok)
    up = [e for e in rig.events if e.kind is EventKind.LINK_UP]
    assert up and up[-1].drawer == "A" and up[-1].detail["board_watchdog"] is True
    assert up[-1].detail["rebooted"] is False
    assert rig.hw.drawers["A"].motion is Motion.STOPPED
    assert len(rig.runs("A", "open")) == 1
    rig.hw.drawers["A"].close()
    rig.wait_for(lambda: EventKind.CLOSED in rig.kinds("A"))
    assert EventKind.OPENED in rig.kinds("B")
    rig.assert_nothing_moving()


def test_board_reboots_mid_command(rig):
    rig.hw.drawers["A"].open()
    rig.advance(0.5)
    rig.sim.board("A").reboot()
    assert not rig.motor_on("A")
    rig.wait_for(lambda: EventKind.LINK_UP in rig.kinds("A"))
    kinds = rig.kinds("A")
    assert kinds[kinds.index(EventKind.LINK_DOWN) + 1] is EventKind.LINK_UP
    up = next(e for e in rig.events if e.kind is EventKind.LINK_UP)
    assert up.detail["rebooted"] is True
    assert rig.hw.link_ok()
    rig.advance(3.0)
    assert len(rig.runs("A")) == 1          # the open is not replayed by anyone
    assert rig.hw.drawers["A"].motion is Motion.STOPPED
    rig.hw.drawers["A"].close()
    rig.wait_for(lambda: EventKind.CLOSED in rig.kinds("A"))
    assert [r.direction for r in rig.runs("A")] == ["open", "close"]
    rig.assert_nothing_moving()


def test_board_resets_between_running_a_command_and_answering_it(rig):
    """OPEN reaches the board and starts the motor; the board resets before its answer
    leaves. The resend meets a fresh board ("who are you?"): refused, not run again."""
    rig.sim.board("A").crash_after = P.OPEN
    with pytest.raises(LinkDown):
        rig.hw.drawers["A"].open()
    assert not rig.motor_on("A")
    rig.wait_for(rig.hw.link_ok)
    assert [e.kind for e in rig.events] == [EventKind.LINK_DOWN, EventKind.LINK_UP]
    assert rig.events[0].detail["reason"] == "board reset"
    assert rig.events[1].detail["rebooted"] is True
    rig.advance(2.0)
    assert len(rig.runs("A")) <= 1   # at most the instant before the reset: never twice
    assert rig.sim.physics.drawers["A"].position < 0.05
    rig.assert_nothing_moving()


def test_command_to_a_rebooted_board_is_refused_not_replayed(rig):
    rig.sim.board("A").reboot()
    with pytest.raises(LinkDown):
        rig.hw.drawers["A"].open()          # the board answers "who are you?"
    assert rig.runs("A") == []
    rig.wait_for(rig.hw.link_ok)
    rig.advance(1.0)
    assert rig.runs("A") == []


def test_cable_unplugged_and_plugged_back(rig):
    rig.hw.drawers["A"].open()
    rig.advance(0.5)
    rig.proxy["A"].unplug()
    rig.wait_for(lambda: not rig.hw.link_ok())
    assert rig.kinds("A")[-1] is EventKind.LINK_DOWN
    with pytest.raises(LinkDown):
        rig.hw.drawers["A"].open()
    rig.wait_for(lambda: not rig.motor_on("A"))   # watchdog on the board
    rig.proxy["A"].plug()
    rig.wait_for(rig.hw.link_ok)
    assert rig.kinds("A")[-1] is EventKind.LINK_UP
    assert len(rig.runs("A")) == 1
    rig.hw.drawers["A"].open()
    rig.wait_for(lambda: EventKind.OPENED in rig.kinds("A"))
    assert [r.direction for r in rig.runs("A")] == ["open", "open"]
    rig.assert_nothing_moving()


def test_events_during_a_short_unplug_arrive_after_it_once(rig):
    rig.hw.drawers["A"].open()
    rig.proxy["A"].silent[TO_PI] = True     # answers lost: LINK_DOWN, but the board hears us
    rig.wait_for(lambda: not rig.hw.link_ok())
    rig.advance(2.5)                        # the drawer reaches its end meanwhile
    assert rig.sim.physics.drawers["A"].position == 1.0
    assert EventKind.OPENED not in rig.kinds("A")
    rig.proxy["A"].silent[TO_PI] = False
    rig.wait_for(rig.hw.link_ok)
    kinds = rig.kinds("A")
    assert kinds.count(EventKind.OPENED) == 1
    assert kinds.index(EventKind.OPENED) < kinds.index(EventKind.LINK_UP)
    assert len(rig.runs("A")) == 1


def test_events_past_a_full_board_queue_are_counted_and_the_rest_delivered(rig):
    """While the Pi hears nothing the board keeps 32 events and drops older ones: when the
    line is back, the Pi jumps past the lost ones, counts them in LINK_UP, and goes on
    delivering (it used to wait for the lost ones forever: no event from that drawer again)."""
    rig.proxy["A"].silent[TO_PI] = True          # answers lost, the board still hears us
    rig.wait_for(lambda: not rig.hw.link_ok())
    presses = fw.MAX_QUEUE + 5
    for _ in range(presses):
        rig.sim.physics.press_close_button("A")   # held 0.15 s, let go for 0.05 s
        rig.advance(0.2)
    rig.proxy["A"].silent[TO_PI] = False
    rig.wait_for(rig.hw.link_ok)
    kinds = rig.kinds("A")
    up = [e for e in rig.events if e.kind is EventKind.LINK_UP]
    assert up[-1].detail["events_lost"] == presses - fw.MAX_QUEUE
    assert kinds.count(EventKind.CLOSE_PRESSED) == fw.MAX_QUEUE
    assert kinds.index(EventKind.LINK_UP) > max(
        i for i, k in enumerate(kinds) if k is EventKind.CLOSE_PRESSED)
    assert rig.hw.links["A"].describe()["events_lost"] == presses - fw.MAX_QUEUE
    rig.hw.drawers["A"].open()
    rig.wait_for(lambda: EventKind.OPENED in rig.kinds("A"))
    rig.sim.physics.press_close_button("A")
    rig.wait_for(lambda: rig.kinds("A")[-1] is EventKind.CLOSE_PRESSED)


def test_events_lost_while_the_link_is_up_make_the_controller_look_again(rig):
    """A loss noticed by an ordinary heartbeat: the drawer's state as the controller knows it
    may be wrong, so the link is reported down ("events lost") and up again with the count,
    the path on which the controller re-reads the end switches."""
    board = rig.sim.board("A")
    burst = fw.MAX_QUEUE + 8
    rig.proxy["A"].fault("drop", TO_PI, burst)    # every push of the burst is lost
    with rig.sim.lock:
        for _ in range(burst):
            board.board.emit(P.EV_CLOSE_PRESSED, 0)
        board._send(board.board.take_output())
    rig.wait_for(lambda: EventKind.LINK_UP in rig.kinds("A"))
    rig.advance(0.4)
    down = [e for e in rig.events if e.kind is EventKind.LINK_DOWN]
    up = [e for e in rig.events if e.kind is EventKind.LINK_UP]
    assert [e.detail["reason"] for e in down] == ["events lost"]
    assert len(up) == 1 and up[0].detail["events_lost"] == burst - fw.MAX_QUEUE
    assert up[0].detail["rebooted"] is False
    kinds = rig.kinds("A")
    assert kinds.count(EventKind.CLOSE_PRESSED) == fw.MAX_QUEUE
    assert kinds.index(EventKind.LINK_DOWN) < kinds.index(EventKind.LINK_UP)
    assert rig.hw.link_ok()


def test_drawer_state_after_the_link_returns_is_the_boards_current_one(rig):
    """Events kept during a cut carry the status of their time; the POLL header carries the
    status of now. The drawer opened (OPENED kept), then was pushed shut by hand: at LINK_UP
    the switches must read closed, not the open of the old event."""
    rig.hw.drawers["A"].open()
    rig.proxy["A"].silent[TO_PI] = True
    rig.wait_for(lambda: not rig.hw.link_ok())
    rig.advance(2.5)                                   # OPENED queued on the board
    assert rig.sim.physics.drawers["A"].position == 1.0
    rig.sim.physics.pull_open("A", to=0.0)             # pushed shut by hand
    rig.advance(0.2)
    assert rig.sim.board("A").board.status() & P.ST_SW_CLOSED
    seen = {}

    def on_event(event: HardwareEvent) -> None:
        rig.events.append(event)
        if event.kind is EventKind.LINK_UP:            # what the controller reads at LINK_UP
            seen["switches"] = rig.hw.drawers["A"].switches

    rig.hw.set_listener(on_event)
    rig.proxy["A"].silent[TO_PI] = False
    rig.wait_for(rig.hw.link_ok)
    assert EventKind.OPENED in rig.kinds("A")
    assert seen["switches"].closed and not seen["switches"].open


def test_noise_on_the_line(tmp_path):
    """About 8 % of drawer A's frames damaged each way, plus bursts of garbage: commands are
    carried out once or refused, every event arrives once, and nothing is left moving."""
    rig = Rig(tmp_path, seed=7)
    try:
        for direction in (TO_BOARD, TO_PI):
            rig.proxy["A"].rates[direction].update(corrupt=0.03, drop=0.03, duplicate=0.02)
        accepted = {"open": 0, "close": 0}
        for _ in range(4):
            for command in ("open", "close"):
                rig.proxy["A"].noise(TO_BOARD, bytes(range(1, 200)))
                rig.proxy["A"].noise(TO_PI, bytes([0x55, 0x00, 0x13, 0x37, 0x00]))
                rig.wait_for(rig.hw.link_ok)
                try:
                    getattr(rig.hw.drawers["A"], command)()
                    accepted[command] += 1
                except LinkDown:
                    continue
                want = EventKind.OPENED if command == "open" else EventKind.CLOSED
                rig.wait_for(lambda want=want, n=accepted[command]: rig.kinds("A").count(want) >= n)
        rig.advance(0.1)
        runs = rig.runs("A")
        assert len(rig.runs("A", "open")) == accepted["open"]
        assert len(rig.runs("A", "close")) == accepted["close"]
        assert rig.kinds("A").count(EventKind.OPENED) == accepted["open"]
        assert rig.kinds("A").count(EventKind.CLOSED) == accepted["close"]
        assert all(r.stop is not None for r in runs)
        assert rig.proxy["A"].injected["corrupt"] + rig.proxy["A"].injected["drop"] > 0
    finally:
        rig.close()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=400))
def test_board_never_acts_on_noise(noise):
    """Arbitrary bytes (with no valid frame in them) never move a motor or a magnet."""
    from types import SimpleNamespace

    from firmware import board as fw
    from sim.pinbank import FakeMachine, PinBank

    assume(not P.Decoder().feed(noise))
    bank = PinBank()
    cfg = SimpleNamespace(DRAWER_ID="A", MOTOR_FORWARD=2, MOTOR_BACKWARD=3, SWITCH_CLOSED=4,
                          SWITCH_OPEN=5, CLOSE_BUTTON=6, LED=25, MAGNETS=(7, 8))
    board = fw.make_board(FakeMachine(bank), cfg, 1, 0)
    board.receive(P.encode(1, P.HELLO), 0)
    assert board.receive(noise, 1) == b""
    assert not any(bank.pin(n).state for n in (2, 3, 7, 8, 25))


def test_frame_with_bad_crc_is_never_acted_on():
    from types import SimpleNamespace

    from firmware import board as fw
    from sim.pinbank import FakeMachine, PinBank

    bank = PinBank()
    cfg = SimpleNamespace(DRAWER_ID="A", MOTOR_FORWARD=2, MOTOR_BACKWARD=3, SWITCH_CLOSED=4,
                          SWITCH_OPEN=5, CLOSE_BUTTON=6, LED=25, MAGNETS=())
    board = fw.make_board(FakeMachine(bank), cfg, 1, 0)
    board.receive(P.encode(1, P.HELLO), 0)
    body = bytearray([5, 2, P.OPEN])
    crc = P.crc16(body) ^ 0x0001
    bad = bytes(P.cobs_encode(bytes(body) + bytes([crc >> 8, crc & 0xFF]))) + b"\x00"
    assert board.receive(bad, 1) == b""
    assert not bank.pin(2).state


def test_board_watchdog_tripping_while_the_link_is_up_is_reported(rig):
    """The Pi stalls (its heartbeat is late by more than the board's watchdog) but the link
    never fails a request: the board has cut the motor mid-travel. The controller must be
    told, the way a link that went and came back tells it (LINK_DOWN then LINK_UP with
    ``board_watchdog``), so that it re-reads the switches instead of waiting for an OPENED
    that will never come."""
    link = rig.hw.links["A"]
    rig.hw.drawers["A"].open()
    assert link._timer is not None
    link._timer.cancel()                       # the Pi's process stalls...
    for _ in range(15):                        # ...for 1.5 s of board time
        rig.sim.clock.advance(0.1)
    assert not rig.motor_on("A")               # the board's watchdog cut the motor
    assert 0.0 < rig.sim.physics.drawers["A"].position < 1.0
    link.start_heartbeat()                     # the Pi comes back; its link never went down
    rig.advance(1.0)
    down = [e for e in rig.events if e.kind is EventKind.LINK_DOWN and e.drawer == "A"]
    up = [e for e in rig.events if e.kind is EventKind.LINK_UP and e.drawer == "A"]
    assert down and up, (rig.kinds("A"), link.board_watchdog)
    assert up[-1].detail["board_watchdog"] is True
    assert rig.hw.link_ok()
    assert rig.hw.drawers["A"].motion is Motion.STOPPED
    assert EventKind.OPENED not in rig.kinds("A")


def test_reader_thread_survives_a_frame_whose_handling_raises(rig, monkeypatch):
    """Whatever goes wrong with one frame (here a bug in delivering an event) must not end
    the link's reader thread: it carries every answer, so a dead reader is a drawer lost for
    good, with nothing in the log to say why."""
    link = rig.hw.links["A"]
    real = link._deliver
    calls = []

    def deliver(kind: int, arg: int) -> None:
        calls.append(kind)
        if len(calls) == 1:
            raise KeyError("a bug in one event")
        real(kind, arg)

    monkeypatch.setattr(link, "_deliver", deliver)
    rig.hw.drawers["A"].open()
    rig.wait_for(lambda: bool(calls))
    assert link._reader is not None and link._reader.is_alive()
    rig.advance(3.0)
    rig.hw.drawers["A"].close()                 # answered: the reader still carries answers
    rig.wait_for(lambda: EventKind.CLOSED in rig.kinds("A"))
    assert rig.hw.link_ok()


def test_a_reboot_with_the_same_boot_id_is_still_seen_and_its_events_delivered(rig):
    """A board's boot id is its microsecond timer at start-up (16 bits), which can repeat
    across boots, and its uptime only looks like a restart if the Pi saw it larger before.
    The backend used to trust those two alone: a rebooted board that repeated its boot id
    kept the Pi's old event count, so every new event (numbered from 0 again) was taken for
    an old one and dropped, and each OPENED/CLOSED of that drawer was lost for good. The
    board said who it was (NEED_HELLO) and numbers its events from 0: that is a restart."""
    for _ in range(3):
        rig.hw.drawers["A"].open()
        rig.wait_for(lambda: rig.sim.physics.drawers["A"].position == 1.0)
        rig.hw.drawers["A"].close()
        rig.wait_for(lambda: rig.sim.physics.drawers["A"].position == 0.0)
    rig.advance(0.5)
    emulator = rig.sim.board("A")
    before = emulator.board
    emulator.reboot()
    emulator.board.boot_id = before.boot_id          # the same 16 bits as the last boot
    emulator.board.boot_ms = before.boot_ms - 60_000  # and an uptime that never went down
    rig.events.clear()
    rig.wait_for(lambda: EventKind.LINK_UP in rig.kinds("A"))
    up = next(e for e in rig.events if e.kind is EventKind.LINK_UP)
    assert up.detail["rebooted"] is True
    rig.hw.drawers["A"].open()
    rig.wait_for(lambda: EventKind.OPENED in rig.kinds("A"), deadline=10.0)
    rig.assert_nothing_moving()
