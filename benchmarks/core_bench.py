"""Cabinet core on the simulator: time from a withdrawal request to the motor command, and
the resident memory of the controller.

The latency is software time only: checks, the intent row committed to SQLite with
``synchronous=FULL`` (an fsync), the drawer machine's transition, and the gpio backend's
``motor.forward()`` on gpiozero's mock pins. Real pins add microseconds; the disk's fsync is
what dominates, so run it on the storage the cabinet will use (an SD card is far slower than
this machine's SSD). Prints figures, asserts nothing.

    .venv/bin/python benchmarks/core_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe

from controller import runtime
from controller.config import load

ROOT = Path(__file__).resolve().parents[1]


def rss_kib() -> int:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def main(runs: int) -> None:
    print(describe())
    baseline = rss_kib()
    config = load(ROOT / "sim" / "demo" / "cabinet.toml", sim=True)
    with tempfile.TemporaryDirectory() as tmp:
        rt = await runtime.start(config, sim=True, db_path=Path(tmp) / "bench.db")
        cab = rt.cabinet
        drawer = rt.cabinet.hardware.drawers["A"]
        motor = drawer._motor  # type: ignore[attr-defined]
        forward = motor.forward
        stamps: list[float] = []

        def timed_forward(*a: object, **k: object) -> None:
            stamps.append(time.perf_counter())
            forward(*a, **k)

        motor.forward = timed_forward
        await cab.login("ide1", "482913")
        latencies = []
        for i in range(runs):
            if cab.usable(cab.pockets_of("PARA1G")[0]) < 1:
                break
            stamps.clear()
            t0 = time.perf_counter()
            op = await cab.withdraw("PARA1G", 1, f"P{i}")
            latencies.append((stamps[0] - t0) * 1000)
            await cab.confirm_count(op.expected_after)
            await cab.close_drawer()
            await asyncio.wait_for(op.done.wait(), 10)
        gc.collect()
        after = rss_kib()
        await rt.stop()
    latencies.sort()
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print(f"withdrawal request -> motor command, {len(latencies)} runs: "
          f"median {statistics.median(latencies):.2f} ms, p95 {p95:.2f} ms, "
          f"max {latencies[-1]:.2f} ms")
    print(f"controller resident memory: {after / 1024:.1f} MiB "
          f"(interpreter and imports before start: {baseline / 1024:.1f} MiB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    asyncio.run(main(parser.parse_args().runs))
