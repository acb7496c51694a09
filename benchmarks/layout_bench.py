"""Speed and quality of the layout engine; prints the machine and every figure.

``python benchmarks/layout_bench.py [--instances N] [--time-limit S]``. Not a timed test:
timings depend on the machine, so they are measured and reported here, not asserted.

1. The thesis protocol (uniform random symmetric similarity, conflicts = incompatible pairs
   in pockets sharing a side) on its three cabinets, thresholds 0.25, 0.5, 0.75: mean/max
   adjacent conflicts, how many solves are proven optimal, slowest solve.
2. A 1,000-pocket cabinet (10 matrix drawers of 10x10, 1,000 drugs, threshold 0.25) with the
   contract's full objective, under a 25 s limit.
3. A realistic mixed cabinet: matrix + cubie + carousel drawers, sizes, high-alert and
   controlled drugs, pins, today's layout and a move limit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib.metadata import version

import numpy as np

from controller.layout.model import (
    Drawer,
    Drug,
    Pin,
    Placement,
    Problem,
    conflicts_of,
    parse_problem,
)
from controller.layout.solver import solve
from controller.layout.thesis import (
    CONFIGURATIONS,
    heuristic_alternate,
    random_similarity,
    thesis_problem,
)


def load() -> str:
    """Other jobs share this machine: the load average says how much the timings suffered."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def machine() -> str:
    return (f"platform: {platform.platform()}; CPUs: {os.cpu_count()}; "
            f"python {sys.version.split()[0]}; numpy {np.__version__}; "
            f"ortools {version('ortools')}")


def thesis_protocol(instances: int, time_limit: float) -> None:
    print(f"\n1. Thesis protocol, {instances} random instances per row, "
          f"time limit {time_limit:g} s per solve (objective 1 only, as in the thesis)")
    print(f"{'cabinet':26s} {'thr':>5s} {'heur.3':>7s} {'mean':>6s} {'max':>4s} "
          f"{'proven':>7s} {'mean s':>7s} {'max s':>6s}")
    rng = np.random.default_rng(2026)
    for label, nd, r, c in CONFIGURATIONS:
        for thr in (0.25, 0.5, 0.75):
            found, heur, secs, proven = [], [], [], 0
            for t in range(instances):
                problem = thesis_problem(nd, r, c, random_similarity(nd * r * c, rng), thr)
                heur.append(conflicts_of(problem, heuristic_alternate(problem))[0])
                t0 = time.perf_counter()
                sol = solve(problem, time_limit, seed=t, same_drawer=False)
                secs.append(time.perf_counter() - t0)
                found.append(sol.adjacent_conflicts)
                proven += sol.lower_bound == sol.adjacent_conflicts
            print(f"{label:26s} {thr:5.2f} {np.mean(heur):7.2f} {np.mean(found):6.2f} "
                  f"{max(found):4d} {proven:3d}/{instances:<3d} {np.mean(secs):7.2f} "
                  f"{max(secs):6.2f}", flush=True)


def big_cabinet(time_limit: float) -> None:
    n = 1000
    rng = np.random.default_rng(7)
    sim = random_similarity(n, rng)
    data = {"cabinet": {"drawers": [{"id": f"D{k}", "type": "matrix", "rows": 10, "cols": 10}
                                    for k in range(10)]},
            "drugs": [{"id": f"M{i}"} for i in range(n)],
            "similarity": {"matrix": sim.tolist()}, "threshold": 0.25}
    text = json.dumps(data)
    t0 = time.perf_counter()
    problem = parse_problem(json.loads(text))  # what `armoire layout solve` does with a file
    built = time.perf_counter() - t0
    t1 = time.perf_counter()
    first = solve(problem, time_limit, seed=0, same_drawer=False)
    took1 = time.perf_counter() - t1
    t1 = time.perf_counter()
    sol = solve(problem, time_limit, seed=0)
    took = time.perf_counter() - t1
    random_fill = conflicts_of(problem, np.random.default_rng(0).permutation(n))
    print(f"\n2. 1,000 pockets (10 matrix drawers 10x10, 1,000 drugs, threshold 0.25), "
          f"time limit {time_limit:g} s")
    print(f"   json.loads + parse_problem ({len(text) / 1e6:.0f} MB, 1,000,000-cell matrix) "
          f"{built:.2f} s")
    print(f"   objective 1 only: {took1:.2f} s, adjacent conflicts {first.adjacent_conflicts} "
          f"(lower bound {first.lower_bound})")
    print(f"   both objectives: {took:.2f} s, adjacent conflicts {sol.adjacent_conflicts}, "
          f"same drawer {sol.same_drawer_conflicts} (random fill: adjacent {random_fill[0]}, "
          f"same drawer {random_fill[1]})")


def mixed_cabinet(time_limit: float) -> None:
    rng = np.random.default_rng(11)
    drawers = [Drawer("M1", "matrix", 4, 6, 2.0), Drawer("M2", "matrix", 4, 6, 2.0),
               Drawer("C1", "cubie", 3, 4, 3.0), Drawer("R1", "carousel", 2, 8, 1.0)]
    n = 70
    drugs = [Drug(f"X{i}", size=float(rng.choice([1.0, 2.0, 3.0], p=[0.6, 0.3, 0.1])),
                  high_alert=i % 17 == 0, controlled=i % 23 == 5,
                  pinned=Pin("M1", 0, 0) if i == 1 else None) for i in range(n)]
    for i, d in enumerate(drugs):
        if (d.high_alert or d.controlled) and d.size is not None and d.size > 3:
            drugs[i] = Drug(d.id, size=3.0, high_alert=d.high_alert, controlled=d.controlled)
    sim = random_similarity(n, rng) ** 3  # sparse: few strongly confusable pairs
    base = Problem(drawers, drugs, sim, 0.5)
    today = solve(base, 1.0, seed=5).placements
    # today's layout, then 10 new look-alike pairs appear: how much can 8 moves fix?
    sim2 = sim.copy()
    for _ in range(10):
        i, j = rng.choice(n, 2, replace=False)
        sim2[i, j] = sim2[j, i] = 0.9
    current = [Placement(p.drug, p.drawer, p.row, p.col) for p in today]
    problem = Problem(drawers, drugs, sim2, 0.5, current, 8)
    where_today = np.array([problem.pocket_index(p.drawer, p.row, p.col) for p in today])
    before = conflicts_of(problem, where_today)
    sol = solve(problem, time_limit, seed=0)
    print(f"\n3. Mixed cabinet (2 matrix 4x6, cubie 3x4, carousel 2x8; {n} drugs with sizes, "
          f"high-alert/controlled, a pin), 10 new LASA pairs, max 8 moves, "
          f"time limit {time_limit:g} s")
    print(f"   today's layout: adjacent {before[0]}, same drawer {before[1]}; proposed: "
          f"adjacent {sol.adjacent_conflicts} (lower bound {sol.lower_bound}), same drawer "
          f"{sol.same_drawer_conflicts}, moved {sol.moved}; {sol.seconds:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--instances", type=int, default=30)
    parser.add_argument("--time-limit", type=float, default=2.9)
    parser.add_argument("--big-time-limit", type=float, default=25.0)
    args = parser.parse_args()
    print(machine())
    print(f"at start: {load()}")
    thesis_protocol(args.instances, args.time_limit)
    big_cabinet(args.big_time_limit)
    mixed_cabinet(args.time_limit)
    print(f"\nat end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
