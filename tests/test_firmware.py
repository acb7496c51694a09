"""The board firmware under CPython, on a fake ``machine`` (no hardware, no emulator)."""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from firmware import board as fw
from firmware import protocol as p
from sim.pinbank import FakeMachine, PinBank

FIRMWARE = Path(fw.__file__).parent
CONFIG = SimpleNamespace(DRAWER_ID="A", MOTOR_FORWARD=2, MOTOR_BACKWARD=3, SWITCH_CLOSED=4,
                         SWITCH_OPEN=5, CLOSE_BUTTON=6, LED=25, MAGNETS=(7, 8, 9, 10))


class Rig:
    def __init__(self) -> None:
        self.bank = PinBank()
        self.board = fw.make_board(FakeMachine(self.bank), CONFIG, boot_id=0x1234, now=0)
        self.now = 0
        self.seq = 0
        self.dec = p.Decoder()
        self.frames: list[tuple[int, int, bytes]] = []
        self.set_switches(closed=True, opened=False)

    def set_switches(self, closed: bool, opened: bool) -> None:
        for number, pressed in ((CONFIG.SWITCH_CLOSED, closed), (CONFIG.SWITCH_OPEN, opened)):
            pin = self.bank.pin(number)
            pin.drive_low() if pressed else pin.drive_high()

    def pin(self, number: int) -> bool:
        return self.bank.pin(number).state

    def send(self, cmd: int, args: bytes = b"", seq: int | None = None) -> bytes:
        if seq is None:
            self.seq = p.seq_after(self.seq)
            seq = self.seq
        out = self.board.receive(p.encode(seq, cmd, args), self.now)
        frames = self.dec.feed(out)
        self.frames += frames
        replies = [f for f in frames if f[1] == cmd | p.RESPONSE and f[0] == seq]
        assert len(replies) == 1
        return replies[0][2]

    def step(self, ms: int, by: int = 10, beat: bool = False) -> None:
        """Board time passes; with ``beat`` the Pi's heartbeat arrives every 200 ms."""
        end = self.now + ms
        while self.now < end:
            self.now += by
            self.frames += self.dec.feed(self.board.poll(self.now))
            if beat and self.now % 200 == 0:
                self.send(p.POLL, b"\x00\x00")

    def press(self, hold_ms: int) -> None:
        """The Close button held down for ``hold_ms``, then let go."""
        button = self.bank.pin(CONFIG.CLOSE_BUTTON)
        button.drive_low()
        self.step(hold_ms)
        button.drive_high()

    def events(self) -> list[int]:
        return [p.unpack_events(f[2], 0)[0][1] for f in self.frames if f[1] == p.EVENT]

    def hello(self) -> dict:
        return p.unpack_hello(self.send(p.HELLO))


@pytest.fixture
def rig() -> Rig:
    r = Rig()
    r.step(10)   # first look at the switches
    return r


def test_nothing_runs_before_hello(rig):
    assert rig.send(p.OPEN)[0] == p.NEED_HELLO
    assert not rig.pin(CONFIG.MOTOR_FORWARD)
    hello = rig.hello()
    assert hello["version"] == p.FIRMWARE_VERSION and hello["drawer_id"] == "A"
    assert hello["boot_id"] == 0x1234 and hello["pockets"] == 4
    assert rig.send(p.OPEN)[0] == p.OK
    assert rig.pin(CONFIG.MOTOR_FORWARD)


def test_open_stops_at_switch_and_reports(rig):
    rig.hello()
    reply = rig.send(p.OPEN)
    assert reply[1] & p.ST_MOTION_MASK == p.MOTION_OPENING
    rig.step(100)
    rig.set_switches(closed=False, opened=False)
    rig.step(100)
    assert rig.pin(CONFIG.MOTOR_FORWARD)
    rig.set_switches(closed=False, opened=True)
    rig.step(10)
    assert not rig.pin(CONFIG.MOTOR_FORWARD)
    assert rig.events() == [p.EV_OPENED]
    assert rig.send(p.OPEN)[1] & p.ST_MOTION_MASK == p.MOTION_STOPPED  # already open
    assert rig.events() == [p.EV_OPENED, p.EV_OPENED]
    assert not rig.pin(CONFIG.MOTOR_FORWARD)


def test_resent_sequence_number_runs_once(rig):
    rig.hello()
    first = rig.send(p.OPEN, seq=7)
    rig.send(p.STOP, seq=8)
    assert not rig.pin(CONFIG.MOTOR_FORWARD)
    assert rig.send(p.STOP, seq=8) == rig.frames[-1][2]   # cached answer
    rig.send(p.OPEN, seq=9)
    rig.send(p.STOP, seq=10)
    # the last STOP is answered from the cache, the motor stays off
    rig.send(p.STOP, seq=10)
    assert not rig.pin(CONFIG.MOTOR_FORWARD)
    assert first[0] == p.OK


def test_duplicate_open_does_not_restart_motor(rig):
    rig.hello()
    rig.send(p.OPEN, seq=5)
    rig.step(300)
    rig.set_switches(closed=False, opened=True)
    rig.step(10)
    assert not rig.pin(CONFIG.MOTOR_FORWARD)
    rig.set_switches(closed=False, opened=False)   # the person pulls it a bit
    rig.send(p.OPEN, seq=5)                         # a late duplicate of the old command
    assert not rig.pin(CONFIG.MOTOR_FORWARD)


def test_jam_after_max_travel(rig):
    rig.hello()
    rig.send(p.CONFIG, bytes([0x0F, 0xA0, 0x03, 0x20, 0x01, 0x2C, 0x03, 0xE8]))  # 4000/800/300
    rig.send(p.OPEN)
    rig.set_switches(closed=False, opened=False)
    rig.step(3990, beat=True)
    assert rig.pin(CONFIG.MOTOR_FORWARD)
    rig.step(10, beat=True)
    assert not rig.pin(CONFIG.MOTOR_FORWARD)
    assert rig.events() == [p.EV_JAMMED]


def test_switch_that_does_not_release_is_a_fault(rig):
    rig.hello()
    rig.send(p.OPEN)
    rig.step(990)
    assert rig.pin(CONFIG.MOTOR_FORWARD)
    rig.step(10)
    assert not rig.pin(CONFIG.MOTOR_FORWARD)
    ev = [p.unpack_events(f[2], 0)[0] for f in rig.frames if f[1] == p.EVENT]
    assert ev[0][1] == p.EV_SWITCH_FAULT and ev[0][2] == p.SWITCH_CLOSED


def test_magnet_pulse_is_capped_and_ended(rig):
    rig.hello()
    reply = rig.send(p.CONFIG, bytes([0x4E, 0x20, 0x03, 0xE8, 0x27, 0x10, 0x03, 0xE8]))
    assert (reply[6] << 8) | reply[7] == fw.MAX_PULSE_MS     # 10 s asked, 1 s given
    assert rig.send(p.RELEASE, bytes([2]))[2] == 1
    rig.send(p.RELEASE, bytes([2]))                          # no second pulse
    assert rig.pin(CONFIG.MAGNETS[2])
    rig.step(990)
    assert rig.pin(CONFIG.MAGNETS[2])
    rig.step(10)
    assert not rig.pin(CONFIG.MAGNETS[2])
    assert rig.events() == [p.EV_LATCH_RELEASED]
    assert rig.send(p.RELEASE, bytes([9]))[0] == p.BAD_ARGS


def test_heartbeat_loss_turns_everything_off(rig):
    rig.hello()
    rig.send(p.OPEN)
    rig.send(p.RELEASE, bytes([0]))
    rig.set_switches(closed=False, opened=False)
    rig.step(250)
    rig.send(p.POLL, b"\x00\x00")    # heartbeat
    rig.step(1000)
    assert rig.pin(CONFIG.MOTOR_FORWARD)
    rig.step(20)
    assert not rig.pin(CONFIG.MOTOR_FORWARD)
    assert not any(rig.pin(n) for n in CONFIG.MAGNETS)
    assert p.EV_WATCHDOG in rig.events()
    assert rig.send(p.POLL, b"\x00\x00")[1] & p.ST_WATCHDOG
    rig.hello()   # a new session clears the flag
    assert not rig.send(p.POLL, b"\x00\x00")[1] & p.ST_WATCHDOG


def test_poll_returns_unacknowledged_events_and_counts_losses(rig):
    rig.hello()
    for _ in range(fw.MAX_QUEUE + 3):
        rig.press(hold_ms=40)
        rig.step(40)
    reply = rig.send(p.POLL, b"\x00\x00")
    result, status, fault, lost, more, uptime, nbits = p.struct.unpack(p.POLL_FORMAT,
                                                                        reply[:p.POLL_SIZE])
    assert lost == 3 and more == 1 and uptime == rig.now
    events = p.unpack_events(reply, p.POLL_SIZE + nbits)
    assert len(events) == p.MAX_EVENTS_PER_POLL and events[0][0] == 3
    ack = events[-1][0] + 1
    reply = rig.send(p.POLL, bytes([ack >> 8, ack & 0xFF]))
    assert p.unpack_events(reply, p.POLL_SIZE + nbits)[0][0] == ack


def test_close_button_is_debounced(rig):
    rig.hello()
    button = rig.bank.pin(CONFIG.CLOSE_BUTTON)
    for _ in range(3):   # contact bounce: short lows, each seen by one 5 ms sample
        button.drive_low()
        rig.step(5, by=5)
        button.drive_high()
        rig.step(5, by=5)
    assert rig.events() == []
    button.drive_low()   # then held: one press, once it has held for the debounce time
    rig.step(fw.DEBOUNCE_MS - 5, by=5)
    assert rig.events() == []
    rig.step(10, by=5)
    button.drive_high()
    rig.step(5, by=5)
    button.drive_low()   # a bounce as it is let go is not a second press
    rig.step(5, by=5)
    button.drive_high()
    rig.step(100, by=5)
    assert rig.events() == [p.EV_CLOSE_PRESSED]


def test_uncommanded_movement_is_reported_once_it_holds(rig):
    rig.hello()
    rig.set_switches(closed=False, opened=False)
    rig.step(fw.DEBOUNCE_MS - 5, by=5)
    assert rig.events() == []
    rig.step(10, by=5)
    assert rig.events() == [p.EV_MOVED_UNCOMMANDED]


def test_bounce_of_the_closed_switch_after_closing_is_not_a_move(rig):
    """The drawer reaches its closed switch, which bounces once: the motor stops on the
    first sample, CLOSED is reported, and the 5 ms release is not an uncommanded opening
    (it used to put the drawer out of service, forced open)."""
    rig.hello()
    rig.set_switches(closed=False, opened=True)
    rig.step(10)
    rig.frames.clear()
    rig.send(p.CLOSE)
    rig.set_switches(closed=False, opened=False)
    rig.step(100)
    rig.set_switches(closed=True, opened=False)     # arrives
    rig.step(5, by=5)
    assert not rig.pin(CONFIG.MOTOR_BACKWARD)       # stopped on the first sample
    rig.set_switches(closed=False, opened=False)    # bounce, seen by one sample
    rig.step(5, by=5)
    rig.set_switches(closed=True, opened=False)
    rig.step(100, by=5)
    assert rig.events() == [p.EV_CLOSED]



def event_args(rig: Rig) -> list[tuple[int, int]]:
    return [p.unpack_events(f[2], 0)[0][1:3] for f in rig.frames if f[1] == p.EVENT]


def test_both_switches_pressed_at_rest_is_a_switch_fault_not_a_move(rig):
    """A closed drawer whose open switch sticks pressed is not a drawer forced open: both
    end switches pressed is a sensor fault (it used to be MOVED_UNCOMMANDED, a position).
    Likewise the closed switch sticking on an open drawer (it used to go unreported)."""
    rig.hello()
    rig.set_switches(closed=True, opened=True)
    rig.step(fw.DEBOUNCE_MS + 10, by=5)
    assert event_args(rig) == [(p.EV_SWITCH_FAULT, p.SWITCH_OPEN | (p.REASON_BOTH << 4))]
    rig.set_switches(closed=False, opened=True)     # the open drawer, switches sane again
    rig.step(fw.DEBOUNCE_MS + 10, by=5)
    rig.frames.clear()
    rig.set_switches(closed=True, opened=True)
    rig.step(fw.DEBOUNCE_MS + 10, by=5)
    assert event_args(rig) == [(p.EV_SWITCH_FAULT, p.SWITCH_CLOSED | (p.REASON_BOTH << 4))]


def test_a_drawer_from_one_end_to_the_other_between_samples_is_no_switch_fault(rig):
    """Both switches change in one sample (a drawer shoved from end to end): each debounced
    level is checked against the other switch as it is now, not as it was held."""
    rig.hello()
    rig.set_switches(closed=False, opened=True)
    rig.step(fw.DEBOUNCE_MS + 10, by=5)
    rig.set_switches(closed=True, opened=False)
    rig.step(fw.DEBOUNCE_MS + 10, by=5)
    rig.set_switches(closed=False, opened=True)
    rig.step(fw.DEBOUNCE_MS + 10, by=5)
    assert p.EV_SWITCH_FAULT not in rig.events()


def test_a_command_with_both_switches_pressed_never_drives_the_motor(rig):
    """With both end switches pressed the drawer's position is unknown: OPEN and CLOSE
    report the switch fault and leave the motor off (they used to drive it blind until the
    release check or the travel limit)."""
    rig.hello()
    rig.set_switches(closed=True, opened=True)
    rig.step(fw.DEBOUNCE_MS + 10, by=5)
    rig.frames.clear()
    for cmd, switch in ((p.OPEN, p.SWITCH_CLOSED), (p.CLOSE, p.SWITCH_OPEN)):
        assert rig.send(cmd)[0] == p.OK
        assert not rig.pin(CONFIG.MOTOR_FORWARD) and not rig.pin(CONFIG.MOTOR_BACKWARD)
        rig.step(50, by=5)
        assert not rig.pin(CONFIG.MOTOR_FORWARD) and not rig.pin(CONFIG.MOTOR_BACKWARD)
        assert event_args(rig)[-1] == (p.EV_SWITCH_FAULT, switch | (p.REASON_BOTH << 4))
    assert rig.board.drawer.motion == p.MOTION_STOPPED


def test_debounce_comes_from_board_config_within_caps():
    for asked, given in ((40, 40), (1, fw.MIN_DEBOUNCE_MS), (5000, fw.MAX_DEBOUNCE_MS)):
        cfg = SimpleNamespace(**{**vars(CONFIG), "SWITCH_DEBOUNCE_MS": asked})
        board = fw.make_board(FakeMachine(PinBank()), cfg, boot_id=1, now=0)
        assert board.limits.debounce_ms == given


def test_noise_on_the_line_changes_nothing(rig):
    rig.hello()
    out = rig.board.receive(bytes(range(256)) * 4 + b"\x00\x05\x01\x10\x00\x00\x00", rig.now)
    assert out == b""
    assert not rig.pin(CONFIG.MOTOR_FORWARD)


def test_asyncio_tasks_run_the_board_under_cpython():
    """main.run's four tasks, with an asyncio stream standing in for the USB serial port."""
    from firmware import main

    bank = PinBank()
    board = fw.make_board(FakeMachine(bank), CONFIG, boot_id=1, now=0)
    bank.pin(CONFIG.SWITCH_CLOSED).drive_low()
    written = bytearray()
    stop = False
    ran = False

    async def scenario() -> None:
        nonlocal stop, ran
        reader = asyncio.StreamReader()
        task = asyncio.ensure_future(main.run(board, main.uptime_clock(), reader,
                                              written.extend, running=lambda: not stop))
        reader.feed_data(p.encode(1, p.HELLO) + p.encode(2, p.OPEN))
        for _ in range(400):
            await asyncio.sleep(0.005)
            if bank.pin(CONFIG.MOTOR_FORWARD).state:
                ran = True
                break
        stop = True
        await asyncio.wait_for(task, 2.0)

    asyncio.run(scenario())
    assert ran
    assert not bank.pin(CONFIG.MOTOR_FORWARD).state   # the tasks end with every output off
    assert [f[1] for f in p.Decoder().feed(bytes(written))] == [p.HELLO | p.RESPONSE,
                                                                p.OPEN | p.RESPONSE]


def test_maintenance_command_ends_the_link_for_flashing(tmp_path):
    """MAINTENANCE (with its key, drawer stopped) answers, ends the tasks and leaves a flag
    so that the reset that follows boots into the REPL once."""
    from firmware import main

    bank = PinBank()
    board = fw.make_board(FakeMachine(bank), CONFIG, boot_id=1, now=0)
    bank.pin(CONFIG.SWITCH_CLOSED).drive_low()
    written = bytearray()

    async def scenario() -> None:
        reader = asyncio.StreamReader()
        task = asyncio.ensure_future(main.run(board, main.uptime_clock(), reader,
                                              written.extend))
        reader.feed_data(p.encode(1, p.HELLO) + p.encode(2, p.MAINTENANCE, b"nope")
                         + p.encode(3, p.MAINTENANCE, p.MAINTENANCE_KEY))
        await asyncio.wait_for(task, 5.0)

    asyncio.run(scenario())
    replies = [(f[1] & 0x7F, f[2][0]) for f in p.Decoder().feed(bytes(written))]
    assert replies == [(p.HELLO, p.OK), (p.MAINTENANCE, p.BAD_ARGS), (p.MAINTENANCE, p.OK)]
    flag = str(tmp_path / "flag")
    assert not main.take_maintenance_flag(flag)
    main.set_maintenance_flag(True, flag)
    assert main.take_maintenance_flag(flag)
    assert not main.take_maintenance_flag(flag)   # once


def test_maintenance_refused_while_moving(rig):
    rig.hello()
    rig.send(p.OPEN)
    assert rig.send(p.MAINTENANCE, p.MAINTENANCE_KEY)[0] == p.BUSY
    assert rig.pin(CONFIG.MOTOR_FORWARD) and not rig.board.maintenance


# -- what the board may import ------------------------------------------------------------------
ALLOWED = {"machine", "time", "asyncio", "uasyncio", "struct", "micropython", "sys", "select",
           "firmware", "protocol", "board", "board_config", "main"}


def _guarded_typing(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """``typing`` is allowed only inside ``try: ... except ImportError`` (MicroPython lacks it)."""
    parent = parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id == "ImportError"
                for h in parent.handlers):
            return True
        parent = parents.get(parent)
    return False


@pytest.mark.parametrize("path", sorted(FIRMWARE.glob("*.py")), ids=lambda p: p.name)
def test_firmware_only_imports_what_micropython_has(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            # no f-strings (older MicroPython builds lack them), no variable annotations
            assert not isinstance(node, ast.JoinedStr | ast.AnnAssign), \
                f"{path.name}:{getattr(node, 'lineno', '?')}: not for MicroPython"
            continue
        for name in names:
            if name == "typing" and _guarded_typing(node, parents):
                continue
            assert name in ALLOWED, f"{path.name}:{node.lineno}: imports {name}"


# -- flashing ----------------------------------------------------------------------------------
def test_flash_script_copies_the_firmware_with_the_drawer_id(tmp_path):
    import os
    import shutil
    import subprocess

    log = tmp_path / "log"
    fake = tmp_path / "mpremote"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "$LOG"\n'
                    'for a in "$@"; do case "$a" in *board_config.py) [ -f "$a" ] && '
                    'grep DRAWER_ID "$a" >> "$LOG";; esac; done\n')
    fake.chmod(0o755)
    env = {**os.environ, "MPREMOTE": str(fake), "LOG": str(log)}
    script = FIRMWARE / "flash.sh"
    done = subprocess.run([str(script), "/dev/ttyACM3", "C"], env=env, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    args = log.read_text().splitlines()
    assert args[:2] == ["connect", "/dev/ttyACM3"]
    for name in ("protocol.py", "board.py", "board_config.py", "main.py"):
        assert f":{name}" in args
    assert 'DRAWER_ID = "C"' in args
    assert "reset" in args and args.index("reset") > args.index(":main.py")
    bad = subprocess.run([str(script), "/dev/ttyACM3", "C; rm -rf /"], env=env,
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    if shutil.which("shellcheck"):
        assert subprocess.run(["shellcheck", str(script)], check=False).returncode == 0


# -- magnets behind shift registers ---------------------------------------------------------
def test_shift_register_magnets_land_on_the_right_output_and_start_off():
    from sim.pinbank import ShiftRegisterChain

    bank = PinBank()
    outputs = [100 + i for i in range(40)]
    chain = ShiftRegisterChain(bank, 7, 8, 9, 10, outputs, seed=3)
    assert any(chain.storage), "the chips power up with random contents"
    assert not any(bank.pin(n).state for n in outputs), "/OE pulled high: all off"
    cfg = SimpleNamespace(**{**vars(CONFIG), "MAGNETS": (), "MAGNET_SHIFT": (7, 8, 9, 10, 40)})
    board = fw.make_board(FakeMachine(bank), cfg, boot_id=1, now=0)
    assert not any(bank.pin(n).state for n in outputs), "first shift clears before /OE low"
    assert not bank.pin(10).state
    board.receive(p.encode(1, p.HELLO), 0)
    board.receive(p.encode(2, p.RELEASE, bytes([37])), 0)
    assert [n - 100 for n in outputs if bank.pin(n).state] == [37]
    board.receive(p.encode(3, p.RELEASE, bytes([0])), 0)
    assert [n - 100 for n in outputs if bank.pin(n).state] == [37]   # one magnet at a time
    board.poll(board.limits.pulse_ms)
    assert [n - 100 for n in outputs if bank.pin(n).state] == [0]    # then the next
    bank.reset()                       # the MCU resets; the chips keep their contents...
    assert chain.storage[0]
    assert not any(bank.pin(n).state for n in outputs)   # ...but /OE goes high: all off


# -- USB stdin as MicroPython implements it -----------------------------------------------------
class MicroPythonStdinBuffer:
    """``sys.stdin.buffer`` on MicroPython: ``read(n)`` takes n bytes one at a time and blocks
    until all n have arrived (shared/runtime/sys_stdio_mphal.c). A blocking read would hang
    the whole asyncio loop, so here it is recorded instead of waited for."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.blocked: list[int] = []

    def read(self, n: int) -> bytes:
        if len(self.data) < n:
            self.blocked.append(n)   # on the board: the loop stops here until n bytes came
        out, self.data = bytes(self.data[:n]), self.data[n:]
        return out


class MicroPythonPoll:
    """``select.poll()`` on the board: stdin is readable while a byte is waiting."""

    def __init__(self, buffer: MicroPythonStdinBuffer) -> None:
        self.buffer = buffer
        self.registered: list[object] = []

    def register(self, stream: object, mask: int) -> None:
        self.registered.append(stream)

    def poll(self, timeout: int = -1) -> list[tuple[object, int]]:
        return [(self.registered[0], 1)] if self.buffer.data else []


class MicroPythonStreamReader:
    """extmod/asyncio/stream.py: wait until the stream is readable, then ``read(n)`` on it."""

    def __init__(self, stream: MicroPythonStdinBuffer) -> None:
        self.stream = stream

    async def read(self, n: int) -> bytes:
        while not self.stream.data:
            await asyncio.sleep(0.001)
        return self.stream.read(n)


def test_usb_link_reads_only_what_has_arrived(monkeypatch, tmp_path):
    """main() on USB: an 8-byte frame is answered without a read that would block the loop
    until 64 bytes came (the motor task must keep watching the end switches meanwhile)."""
    from firmware import main

    buffer = MicroPythonStdinBuffer()
    stdin = SimpleNamespace(buffer=buffer)
    written = bytearray()
    bank = PinBank()
    captured: dict[str, object] = {}
    real_run = main.run

    async def fake_run(board, clock, reader, write, wdt=None, running=None):
        captured.update(board=board, reader=reader)

    monkeypatch.chdir(tmp_path)                       # no maintenance flag here
    monkeypatch.setitem(__import__("sys").modules, "machine", FakeMachine(bank))
    monkeypatch.setitem(__import__("sys").modules, "micropython",
                        SimpleNamespace(kbd_intr=lambda c: None))
    monkeypatch.setitem(__import__("sys").modules, "select",
                        SimpleNamespace(POLLIN=1, poll=lambda: MicroPythonPoll(buffer)))
    monkeypatch.setattr(main, "time", SimpleNamespace(ticks_us=lambda: 7, ticks_ms=lambda: 0,
                                                      ticks_diff=lambda a, b: a - b))
    monkeypatch.setattr(main.sys, "stdin", stdin)
    monkeypatch.setattr(main.sys, "stdout", SimpleNamespace(
        buffer=SimpleNamespace(write=written.extend)))
    monkeypatch.setattr(main.asyncio, "StreamReader", MicroPythonStreamReader)
    monkeypatch.setattr(main, "run", fake_run)
    main.main()
    board, reader = captured["board"], captured["reader"]
    stop = False
    polls: list[int] = []

    async def scenario() -> None:
        nonlocal stop
        real = board.poll_drawer
        board.poll_drawer = lambda now: (polls.append(now), real(now))[1]
        task = asyncio.ensure_future(real_run(board, main.uptime_clock(), reader,
                                              written.extend, running=lambda: not stop))
        buffer.data.extend(p.encode(1, p.HELLO))     # one frame, 8 bytes: far less than 64
        for _ in range(400):
            await asyncio.sleep(0.005)
            if p.Decoder().feed(bytes(written)):
                break
        seen = len(polls)
        for _ in range(400):                          # the loop keeps turning afterwards
            await asyncio.sleep(0.005)
            if len(polls) > seen + 3:
                break
        stop = True
        await asyncio.wait_for(task, 2.0)

    asyncio.run(scenario())
    assert buffer.blocked == [], "a read asked for more bytes than had arrived"
    assert [f[1] for f in p.Decoder().feed(bytes(written))] == [p.HELLO | p.RESPONSE]
    assert len(polls) > 3


# -- one frame that goes wrong does not take the link down ---------------------------------------
def test_board_with_more_outputs_than_a_byte_answers_hello():
    """A 256-output shift chain: HELLO used to raise struct.error and kill the link task."""
    cfg = SimpleNamespace(**{**vars(CONFIG), "MAGNETS": (), "MAGNET_SHIFT": (7, 8, 9, 10, 256)})
    board = fw.make_board(FakeMachine(PinBank()), cfg, boot_id=1, now=0)
    frames = p.Decoder().feed(board.receive(p.encode(1, p.HELLO), 0))
    assert p.unpack_hello(frames[0][2])["pockets"] == p.MAX_POCKETS


def test_a_frame_whose_handling_raises_is_answered_failed_and_the_link_goes_on(rig):
    rig.hello()
    real = rig.board.execute

    def broken(cmd, args, now):
        if cmd == p.LED:
            raise ValueError("a bug in one command")
        return real(cmd, args, now)

    rig.board.execute = broken
    assert rig.send(p.LED, b"\x01", seq=40)[0] == p.FAILED
    assert rig.send(p.LED, b"\x01", seq=40)[0] == p.FAILED   # a resend is not run again
    assert rig.board.errors == 1
    assert rig.send(p.OPEN)[0] == p.OK                       # the next command runs
    assert rig.pin(CONFIG.MOTOR_FORWARD)


def test_link_task_survives_an_exception_and_answers_the_next_frame():
    from firmware import main

    bank = PinBank()
    board = fw.make_board(FakeMachine(bank), CONFIG, boot_id=1, now=0)
    real = board.receive
    calls = []

    def receive(data, now):
        calls.append(data)
        if len(calls) == 1:
            raise MemoryError("out of memory once")
        return real(data, now)

    board.receive = receive
    written = bytearray()
    stop = False

    async def scenario() -> None:
        nonlocal stop
        reader = asyncio.StreamReader()
        task = asyncio.ensure_future(main.run(board, main.uptime_clock(), reader,
                                              written.extend, running=lambda: not stop))
        reader.feed_data(p.encode(1, p.HELLO))
        for _ in range(400):
            await asyncio.sleep(0.005)
            if len(calls) == 1:
                break
        reader.feed_data(p.encode(2, p.HELLO))
        for _ in range(400):
            await asyncio.sleep(0.005)
            if written:
                break
        stop = True
        await asyncio.wait_for(task, 2.0)

    asyncio.run(scenario())
    assert board.errors == 1
    assert [f[1] for f in p.Decoder().feed(bytes(written))] == [p.HELLO | p.RESPONSE]


# -- magnet duty cycle ---------------------------------------------------------------------------
def magnets_on(rig: Rig) -> list[int]:
    return [i for i, n in enumerate(CONFIG.MAGNETS) if rig.pin(n)]


def test_one_magnet_at_a_time_the_next_waits_its_turn(rig):
    rig.hello()
    assert rig.send(p.RELEASE, bytes([0]))[2] == 1          # on now
    assert rig.send(p.RELEASE, bytes([1]))[2] == 0          # accepted, waiting its turn
    assert magnets_on(rig) == [0]
    seen = set()
    for _ in range(80):
        rig.step(10)
        on = magnets_on(rig)
        assert len(on) <= 1
        seen.update(on)
    assert seen == {0, 1}
    assert rig.events() == [p.EV_LATCH_RELEASED, p.EV_LATCH_RELEASED]


def test_a_magnet_rests_between_pulses(rig):
    rig.hello()
    rig.send(p.RELEASE, bytes([0]))
    rig.step(300)                                             # pulse over
    assert magnets_on(rig) == []
    assert rig.send(p.RELEASE, bytes([0]))[2] == 0          # too soon: waits its rest
    rig.step(fw.MAGNET_OFF_MS - 10, beat=True)
    assert magnets_on(rig) == []
    rig.step(10)
    assert magnets_on(rig) == [0]


def test_duty_cycle_holds_under_a_stream_of_releases(rig):
    """A RELEASE every 100 ms for 10 s (a confused or hostile Pi) keeps the magnet within
    pulse / (pulse + rest) of the time on; it used to be on 90 % of the time."""
    rig.hello()
    on_ms = 0
    for _ in range(100):
        rig.send(p.RELEASE, b"\x00")
        for _ in range(10):
            rig.step(10, beat=True)
            on_ms += 10 if rig.pin(CONFIG.MAGNETS[0]) else 0
    pulse = rig.board.limits.pulse_ms
    assert on_ms <= 10000 * pulse / (pulse + fw.MAGNET_OFF_MS) + pulse


def test_a_release_that_would_wait_too_long_is_refused_busy(rig):
    rig.hello()
    rig.send(p.CONFIG, bytes([0x17, 0x70, 0x03, 0xE8, 0x03, 0xE8, 0x03, 0xE8]))  # 1 s pulse
    assert rig.send(p.RELEASE, bytes([0]))[2] == 1          # now
    assert rig.send(p.RELEASE, bytes([1]))[2] == 0          # at 1 s
    assert rig.send(p.RELEASE, bytes([2]))[2] == 0          # at 2 s: the longest wait
    reply = rig.send(p.RELEASE, bytes([3]))                  # at 3 s: too long
    assert reply[0] == p.BUSY
    rig.step(4000, beat=True)
    assert rig.events().count(p.EV_LATCH_RELEASED) == 3


def test_magnet_rest_comes_from_board_config_never_below_the_floor():
    for asked, given in ((3000, 3000), (0, fw.MIN_MAGNET_OFF_MS),
                         (10 ** 6, fw.MAX_MAGNET_OFF_MS)):
        cfg = SimpleNamespace(**{**vars(CONFIG), "MAGNET_MIN_OFF_MS": asked})
        board = fw.make_board(FakeMachine(PinBank()), cfg, boot_id=1, now=0)
        assert board.limits.magnet_off_ms == given


def test_config_sets_debounce_and_magnet_rest_within_their_caps(rig):
    """The Pi's configuration is the one place for every timing: CONFIG carries the
    debounce and the magnet rest too, clamped by the firmware like the other limits."""
    rig.hello()
    base = bytes([0x17, 0x70, 0x03, 0xE8, 0x01, 0x2C, 0x03, 0xE8])  # 6 s, 1 s, 300 ms, 1 s
    reply = rig.send(p.CONFIG, base + bytes([0x00, 0x32, 0x09, 0xC4]))  # 50 ms, 2.5 s
    assert reply[0] == p.OK and len(reply) == 2 + 12
    assert (reply[10] << 8 | reply[11], reply[12] << 8 | reply[13]) == (50, 2500)
    assert (rig.board.limits.debounce_ms, rig.board.limits.magnet_off_ms) == (50, 2500)
    reply = rig.send(p.CONFIG, base + bytes([0x00, 0x00, 0x00, 0x01]))  # asks below the floors
    assert (rig.board.limits.debounce_ms, rig.board.limits.magnet_off_ms) == (
        fw.MIN_DEBOUNCE_MS, fw.MIN_MAGNET_OFF_MS)
    assert (reply[10] << 8 | reply[11], reply[12] << 8 | reply[13]) == (
        fw.MIN_DEBOUNCE_MS, fw.MIN_MAGNET_OFF_MS)
    reply = rig.send(p.CONFIG, base)  # the four-value form still works, and leaves them be
    assert reply[0] == p.OK and len(reply) == 2 + 8
    assert rig.board.limits.debounce_ms == fw.MIN_DEBOUNCE_MS
    assert rig.send(p.CONFIG, base + b"\x00\x32")[0] == p.BAD_ARGS


def _run_with_one_failing_step(step_name: str, command: bytes) -> PinBank:
    """main.run with the board's ``step_name`` raising once after ``command`` was sent, limits
    short (100 ms travel and pulse) and the Pi's heartbeat watchdog at its longest, so that
    only the task's own step can end the output in the time the test waits."""
    from firmware import main

    bank = PinBank()
    board = fw.make_board(FakeMachine(bank), CONFIG, boot_id=1, now=0)
    bank.pin(CONFIG.SWITCH_CLOSED).drive_low()
    real = getattr(board, step_name)
    armed = []

    def step(now):
        if armed == [True]:
            armed.append(False)
            raise MemoryError("heap fragmented once")
        return real(now)

    setattr(board, step_name, step)
    stop = False

    async def scenario() -> None:
        nonlocal stop
        reader = asyncio.StreamReader()
        task = asyncio.ensure_future(main.run(board, main.uptime_clock(), reader,
                                              lambda data: None, running=lambda: not stop))
        limits = bytes([0, 100, 0, 50, 0, 100, 0x13, 0x88])   # travel, release, pulse, 5 s
        reader.feed_data(p.encode(1, p.HELLO) + p.encode(2, p.CONFIG, limits) + command)
        for _ in range(400):
            await asyncio.sleep(0.005)
            if board.status() & (p.ST_MAGNET_ON | p.ST_MOTION_MASK):
                break
        armed.append(True)   # the output is on: its task's next step raises
        for _ in range(100):   # 0.5 s: five times the limits, a tenth of the watchdog
            await asyncio.sleep(0.005)
        outputs = [bank.pin(CONFIG.MOTOR_FORWARD).state] + [bank.pin(n).state
                                                            for n in CONFIG.MAGNETS]
        stop = True
        await asyncio.wait_for(task, 2.0)
        assert len(armed) == 2, "the failing step never ran"
        assert not any(outputs), "an output stayed on after its task's step raised"

    asyncio.run(scenario())
    return bank


def test_motor_is_off_after_the_motor_task_step_raises():
    """A MemoryError in the motor task's step must not end the only task that enforces the
    motor's maximum on-time while the watchdog task goes on feeding the chip's watchdog."""
    _run_with_one_failing_step("poll_drawer", p.encode(3, p.OPEN))


def test_magnet_is_off_after_the_magnet_task_step_raises():
    """Same for the pulse of a pocket magnet: it must end, not stay held."""
    _run_with_one_failing_step("poll_magnets", p.encode(3, p.RELEASE, b"\x01"))


def _feeds_while_running(break_motor_task: bool) -> tuple[int, int]:
    """main.run for 1 s with a counting watchdog; (feeds in the first 0.2 s, in the last
    0.3 s). With ``break_motor_task``, the motor task's step raises and so does the safe state
    it then tries, once: the error escapes and the task ends."""
    from firmware import main

    bank = PinBank()
    board = fw.make_board(FakeMachine(bank), CONFIG, boot_id=1, now=0)
    bank.pin(CONFIG.SWITCH_CLOSED).drive_low()
    feeds: list[float] = []

    class Wdt:
        def feed(self) -> None:
            feeds.append(time.monotonic())

    if break_motor_task:
        real_safe = board.safe_state
        broken = []

        def poll_drawer(now):
            raise MemoryError("heap fragmented")

        def safe_state(now=0):
            if not broken:
                broken.append(True)
                raise OSError("pin bank gone")
            return real_safe(now)

        board.poll_drawer = poll_drawer
        board.safe_state = safe_state
    stop = False

    async def scenario() -> None:
        nonlocal stop
        reader = asyncio.StreamReader()
        task = asyncio.ensure_future(main.run(board, main.uptime_clock(), reader,
                                              lambda data: None, Wdt(),
                                              running=lambda: not stop))
        await asyncio.sleep(1.0)
        stop = True
        await asyncio.wait_for(task, 2.0)

    start = time.monotonic()
    asyncio.run(scenario())
    return (sum(1 for t in feeds if t - start < 0.2),
            sum(1 for t in feeds if t - start > 0.7 and t - start < 1.0))


def test_the_chip_watchdog_is_starved_once_a_control_task_has_died():
    """If the motor task dies, nothing ends a motor run: the chip's watchdog must then reset
    the board (every output low) instead of being fed by the watchdog task forever."""
    early, late = _feeds_while_running(break_motor_task=True)
    assert early > 0 and late == 0
    early, late = _feeds_while_running(break_motor_task=False)
    assert early > 0 and late > 0


def test_a_reversal_pauses_the_motor_before_driving_it_back(rig):
    """Reversing a spinning gear motor at once is a current surge through the H-bridge."""
    rig.hello()
    rig.send(p.OPEN)
    rig.step(100)
    rig.set_switches(closed=False, opened=False)
    rig.step(300)
    assert rig.pin(CONFIG.MOTOR_FORWARD)
    reply = rig.send(p.CLOSE)
    assert reply[1] & p.ST_MOTION_MASK == p.MOTION_CLOSING
    assert not rig.pin(CONFIG.MOTOR_FORWARD) and not rig.pin(CONFIG.MOTOR_BACKWARD)
    rig.step(p.REVERSE_PAUSE_MS - 10)
    assert not rig.pin(CONFIG.MOTOR_BACKWARD)
    rig.step(10)
    assert rig.pin(CONFIG.MOTOR_BACKWARD)
    rig.step(300)
    rig.set_switches(closed=True, opened=False)
    rig.step(10)
    assert not rig.pin(CONFIG.MOTOR_BACKWARD)
    assert rig.events() == [p.EV_CLOSED]


def test_a_run_reversed_before_leaving_its_switch_reports_the_end_it_is_at(rig):
    """Closed again before the drawer left its closed switch: CLOSED after the pause, not
    a run into the end stop until a jam."""
    rig.hello()
    rig.send(p.OPEN)
    rig.send(p.CLOSE)
    rig.step(p.REVERSE_PAUSE_MS + 20)
    assert not rig.pin(CONFIG.MOTOR_BACKWARD) and not rig.pin(CONFIG.MOTOR_FORWARD)
    assert rig.events() == [p.EV_CLOSED]
    rig.step(2000)
    assert rig.events() == [p.EV_CLOSED]
