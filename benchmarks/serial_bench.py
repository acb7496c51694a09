"""Serial link speed through the board emulator over a real pty.

Prints the machine, then:
* the round-trip time of a command (LED on/off) through the serial backend, the pty and the
  emulated board's firmware logic, and back (median, p95);
* the frames per second the link sustains, stop-and-wait (as the backend uses it) and
  pipelined (frames written back to back by a raw client, every answer counted).

A pty has no baud rate: these figures are the software's ceiling. A real 115200-baud line
carries about 11 520 bytes/s, which the last line turns into frames per second for the frame
sizes measured here.

Usage: python benchmarks/serial_bench.py [--commands N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from machine import describe  # benchmarks/machine.py: run this file as a script

from firmware import protocol as P
from hal.config import DrawerHw, HardwareConfig
from hal.serial_backend import build, open_port
from sim.simulator import Simulator


def round_trips(n: int) -> tuple[list[float], float, int]:
    config = HardwareConfig("serial", (DrawerHw("A", "cubie", 5, 8),))
    sim = Simulator(config)
    hw = build(config, sim.clock, simulator=sim)
    led = hw.indicators["A"]
    try:
        for _ in range(50):  # warm-up
            led.on()
        times = []
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            led.on() if i % 2 else led.off()
            times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        resent = hw.links["A"].resent
    finally:
        hw.close()
        sim.close()
    return times, 2 * n / elapsed, resent


def pipelined(n: int) -> tuple[float, int, int]:
    config = HardwareConfig("serial", (DrawerHw("A", "matrix", 1, 1),))
    sim = Simulator(config)
    try:
        port = open_port(sim.serial_ports()["A"])
        port.timeout = 0.5
        dec = P.Decoder()
        port.write(P.encode(1, P.HELLO))
        while not dec.feed(port.read(64)):
            pass
        frames = [P.encode(P.seq_after(i % 254 + 1), P.LED, bytes([i & 1])) for i in range(n)]
        got = 0
        start = time.perf_counter()
        for i in range(0, n, 32):   # the pty buffer takes a few KB: write in bursts
            port.write(b"".join(frames[i:i + 32]))
            while got < min(i + 32, n) - 16:
                got += len(dec.feed(port.read(port.in_waiting or 1)))
        while got < n:
            data = port.read(port.in_waiting or 1)
            if not data:
                break
            got += len(dec.feed(data))
        elapsed = time.perf_counter() - start
        port.close()
        return (n + got) / elapsed, len(frames[0]), got
    finally:
        sim.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=2000)
    args = parser.parse_args()
    print(describe())
    times, fps, resent = round_trips(args.commands)
    ms = sorted(t * 1000 for t in times)
    p95 = ms[int(0.95 * (len(ms) - 1))]
    print(f"command round trip (backend -> pty -> emulated board -> pty -> backend), "
          f"{len(ms)} commands: median {statistics.median(ms):.3f} ms, p95 {p95:.3f} ms, "
          f"max {ms[-1]:.3f} ms, {resent} resends (answer later than 0.1 s)")
    print(f"stop-and-wait: {fps:,.0f} frames/s ({fps / 2:,.0f} commands/s)")
    pfps, size, got = pipelined(args.commands * 5)
    print(f"pipelined: {pfps:,.0f} frames/s ({got} answers to {args.commands * 5} requests)")
    reply = len(P.encode(1, P.LED | P.RESPONSE, b"\x00\x00"))
    per_cmd = size + reply
    print(f"at 115200 baud (10 bits/byte): a command is {size} + {reply} bytes on the wire, "
          f"at most {11520 / per_cmd:,.0f} commands/s ({2 * 11520 / per_cmd:,.0f} frames/s)")


if __name__ == "__main__":
    main()
