"""What every benchmark prints first: the machine its figures come from."""

from __future__ import annotations

import os
import platform
import sys


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"machine: {platform.node()} | {platform.system()} {platform.release()} "
            f"{platform.machine()} | CPU: {cpu} x{os.cpu_count()} | "
            f"Python {sys.version.split()[0]}")


if __name__ == "__main__":
    print(describe())
