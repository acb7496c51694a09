"""The drawer board's entry point (MicroPython runs ``main.py`` at power-up).

Four asyncio tasks share one :class:`board.Board`: the link (bytes in, responses out), the
motor, the magnets and the watchdog (the Pi's heartbeat, and the chip's own ``machine.WDT``).
Each task only calls the board's ``poll_*`` step with the uptime and sends what it produced;
all the rules live in ``board.py`` where the emulator and the tests run them too.

Copy ``protocol.py``, ``board.py``, ``board_config.py`` and this file to the board's root
(``firmware/flash.sh``); under CPython they are the ``firmware`` package, hence the two-way
imports.
"""

import sys
import time

try:
    import asyncio
except ImportError:  # older MicroPython
    import uasyncio as asyncio  # type: ignore[no-redef]

try:
    from firmware import board as B
    from firmware import board_config
except ImportError:  # at the board's root
    import board as B  # type: ignore[no-redef, import-not-found]
    import board_config  # type: ignore[no-redef, import-not-found]

try:  # noqa: SIM105  (MicroPython has no contextlib)
    from typing import Any
except ImportError:
    pass

#: A file on the board's flash: present with "1" after a MAINTENANCE command, so that the
#: next boot stays in the REPL (the hardware watchdog, once started, cannot be stopped, so the
#: only way out of the running firmware is a reset).
MAINTENANCE_FLAG = "maintenance.flag"

#: How often the motor and magnet tasks look at the switches and timers: the overshoot past
#: an end switch is at most this long.
POLL_S = 0.005
WATCHDOG_S = 0.01
#: The chip's watchdog is fed only while the motor and the magnet task have both run within
#: this long: a task that died (its error escaped even the safe state) stops the feeding, and
#: the chip resets with every output low, instead of a motor running with nothing to stop it.
TASK_STALE_MS = 500


class Uptime:
    """Milliseconds since boot that never wrap: ``ticks_ms`` wraps (about 12 days on the
    RP2040), MicroPython's ints do not, so differences are summed into an int."""

    def __init__(self, ticks: Any, diff: Any) -> None:
        self.ticks = ticks
        self.diff = diff
        self.last = ticks()
        self.ms = 0

    def now(self) -> int:
        t = self.ticks()
        self.ms += self.diff(t, self.last)
        self.last = t
        return self.ms


def uptime_clock() -> Uptime:
    ticks = getattr(time, "ticks_ms", None)
    if ticks is not None:
        return Uptime(ticks, getattr(time, "ticks_diff"))  # noqa: B009

    def cpython_ms() -> int:
        return int(time.monotonic() * 1000)

    def minus(a: int, b: int) -> int:
        return a - b

    return Uptime(cpython_ms, minus)


def always() -> bool:
    return True


class PolledReader:
    """Reads only the bytes already waiting on a stream, never more: for USB stdin.

    MicroPython's ``sys.stdin.buffer.read(n)`` reads ``n`` bytes one at a time and blocks
    until all ``n`` have arrived, and ``asyncio.StreamReader`` only waits until *one* byte is
    readable before calling it. An 8-byte frame read with ``read(64)`` would therefore stall
    the whole asyncio loop (motor task, end switches, watchdog) until 56 more bytes came. So
    each byte is read with ``read(1)`` only while ``poller`` says one is waiting, and when
    nothing is, the task sleeps for a poll period and lets the other tasks run.
    """

    def __init__(self, stream: Any, poller: Any, idle_s: float = 0.002) -> None:
        self.stream = stream
        self.poller = poller
        self.idle_s = idle_s

    def read_ready(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n and self.poller.poll(0):
            byte = self.stream.read(1)
            if not byte:
                break
            out.extend(byte)
        return bytes(out)

    async def read(self, n: int) -> bytes:
        while True:
            data = self.read_ready(n)
            if data:
                return data
            await asyncio.sleep(self.idle_s)


def stdin_reader(select_module: Any, stdin: Any, buffer: Any) -> PolledReader:
    """A :class:`PolledReader` on USB stdin: polled on ``stdin``, read from its buffer."""
    poller = select_module.poll()
    poller.register(stdin, select_module.POLLIN)
    return PolledReader(buffer, poller)


async def link_task(board: Any, clock: Uptime, reader: Any, write: Any, running: Any) -> None:
    """Bytes in, answers out. Nothing that goes wrong with one read may end this task: the
    board would go deaf while its motor task runs on (the Pi would only see silence)."""
    while running() and not board.maintenance:
        try:
            data = await reader.read(64)
            if data:
                out = board.receive(bytes(data), clock.now())
                if out:
                    write(out)
        except asyncio.CancelledError:
            raise
        except Exception:  # counted; the next read goes on
            board.errors += 1
            await asyncio.sleep(POLL_S)   # a stream that keeps failing must not spin


def set_maintenance_flag(on: bool, path: str = MAINTENANCE_FLAG) -> None:
    with open(path, "w") as f:
        f.write("1" if on else "0")


def take_maintenance_flag(path: str = MAINTENANCE_FLAG) -> bool:
    """True once after a MAINTENANCE command (the flag is cleared as it is read)."""
    try:
        with open(path) as f:
            wanted = f.read().strip() == "1"
    except OSError:
        return False
    if wanted:
        set_maintenance_flag(False, path)
    return wanted


def control_step(board: Any, step: Any, now: int) -> None:
    """One motor or magnet step. These steps are what end a motor run or a magnet pulse, and
    the watchdog task keeps feeding the chip's watchdog whatever they do: a step that raised
    (a MemoryError on a fragmented heap) and ended its task would leave its output on with
    no limit. So an error is counted and every output goes off, and the task goes on."""
    try:
        step(now)
    except Exception:
        board.errors += 1
        board.safe_state(now)


async def motor_task(board: Any, clock: Uptime, write: Any, running: Any,
                     beats: Any) -> None:
    while running():
        now = clock.now()
        control_step(board, board.poll_drawer, now)
        beats["motor"] = now
        out = board.take_output()
        if out:
            write(out)
        await asyncio.sleep(POLL_S)


async def magnet_task(board: Any, clock: Uptime, write: Any, running: Any,
                      beats: Any) -> None:
    while running():
        now = clock.now()
        control_step(board, board.poll_magnets, now)
        beats["magnet"] = now
        out = board.take_output()
        if out:
            write(out)
        await asyncio.sleep(POLL_S)


def tasks_alive(beats: Any, now: int) -> bool:
    """True while every control task has run within TASK_STALE_MS."""
    return all(now - last <= TASK_STALE_MS for last in beats.values())


async def watchdog_task(board: Any, clock: Uptime, write: Any, wdt: Any, running: Any,
                        beats: Any) -> None:
    while running():
        now = clock.now()
        board.poll_watchdog(now)
        out = board.take_output()
        if out:
            write(out)
        if wdt is not None and tasks_alive(beats, now):
            wdt.feed()
        await asyncio.sleep(WATCHDOG_S)


async def run(board: Any, clock: Uptime, reader: Any, write: Any, wdt: Any = None,
              running: Any = always) -> None:
    """The four tasks until ``running()`` turns false or MAINTENANCE ends the link."""
    start = clock.now()
    beats = {"motor": start, "magnet": start}
    tasks = [asyncio.create_task(link_task(board, clock, reader, write, running)),
             asyncio.create_task(motor_task(board, clock, write, running, beats)),
             asyncio.create_task(magnet_task(board, clock, write, running, beats)),
             asyncio.create_task(watchdog_task(board, clock, write, wdt, running, beats))]
    while running() and not board.maintenance:
        await asyncio.sleep(WATCHDOG_S)
    for task in tasks:
        task.cancel()
    board.safe_state()


def main() -> None:
    import machine as _machine
    import micropython

    machine = _machine  # type: Any  # (mypy would take benchmarks/machine.py for it)
    cfg = board_config
    pin = machine.Pin
    if take_maintenance_flag() or pin(cfg.MAINTENANCE_PIN, pin.IN, pin.PULL_UP).value() == 0:
        print("armoire: maintenance mode, link not started")
        return
    clock = uptime_clock()
    boot_id = getattr(time, "ticks_us")() & 0xFFFF  # noqa: B009  # differs boot to boot
    board = B.make_board(machine, cfg, boot_id, clock.now())
    wdt = machine.WDT(timeout=cfg.HW_WATCHDOG_MS)
    if cfg.LINK == "uart":
        uart = machine.UART(cfg.UART_ID, cfg.BAUDRATE, tx=pin(cfg.UART_TX), rx=pin(cfg.UART_RX))
        reader = asyncio.StreamReader(uart)  # type: Any
        write = uart.write
    else:
        import select

        micropython.kbd_intr(-1)   # a 0x03 byte inside a frame must not mean Ctrl-C
        # not asyncio.StreamReader(sys.stdin.buffer): its read(64) blocks the loop (see
        # PolledReader); the UART's read returns what has arrived, so it keeps StreamReader.
        reader = stdin_reader(select, sys.stdin, sys.stdin.buffer)
        write = sys.stdout.buffer.write
    asyncio.run(run(board, clock, reader, write, wdt))
    if board.maintenance:       # the link task ended after answering MAINTENANCE
        set_maintenance_flag(True)
        machine.reset()


if __name__ == "__main__":
    main()
