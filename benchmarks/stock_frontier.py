"""How far can *any* min/max policy go on the ward benchmark? An oracle bound.

Not a test: it prints figures, with the machine they ran on, for docs/stock.md.

Issue 6 asks, on generated daily ward data, for the target fill rate (99.5% of units served)
with at least 20% less average stock *and* 20% fewer restock orders than the classical
normal-approximation policy. Whether that is possible at all depends on the classical
policy's max, which the issue leaves open. This script answers it for each reading of the
baseline (``benchmarks/stock_bench.py``), independently of any forecasting method:

* every item gets a wide grid of (min, max = min + Q) policies: every integer min from 0 to
  the largest demand of the replay over L + R + 1 days (a larger min only adds stock: no
  stock-out is possible any more) and 48 order quantities Q spaced geometrically from 1 unit
  to the item's whole replay demand;
* every candidate is replayed on the *replay period itself* (the last quarter), i.e. with
  perfect knowledge of the future: no policy fitted on the past can do better than the best
  choice in this grid (up to the grid's spacing);
* the question "is there a choice, one candidate per item, with aggregate fill ≥ 99.5%,
  orders ≤ 0.8 × baseline and stock ≤ 0.8 × baseline?" is a knapsack-like integer program;
  its Lagrangian dual gives a *lower bound* on the stock of every such choice:

      stock ≥ max over λ, ν ≥ 0 of  Σ_items min_candidates (stock + λ·orders + ν·lost)
                                    − λ·(0.8 × baseline orders) − ν·(0.5% of demand)

  (weak duality: for any feasible choice the bracket is at most its stock). If the bound
  exceeds 0.8 × the baseline's stock, the criterion is impossible for *every* min/max policy
  on that grid, whatever the forecast. The best feasible choice found (among the Lagrangian
  solutions, and by a bisection on the weight of an order) is printed too: the optimum lies
  between the two.

The aggregate fill constraint is weaker than the advisor's per-item target, so the bound
holds a fortiori for per-item targets.

Then the same choice is made *honestly*: the grid is replayed on the last 274 days of the
fit period, the choice (aggregate fill, 20% fewer orders than the baseline there) is made
on them, and replayed on the 182 days it never saw. What it loses against the oracle is
the price of not knowing the future. Last, the advisor itself at order costs near zero,
against the baseline with no order cost in its rule.

Run: ``.venv/bin/python benchmarks/stock_frontier.py`` (about fifteen minutes on two cores).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.stock.advise import (
    AdviseOptions,
    normal_policy,
    order_up_to_policy,
    propose_levels,
)
from controller.stock.generator import WardSpec, generate_ward
from controller.stock.history import FloatArray
from controller.stock.simulate import simulate_policy

TRAIN_SHARE = 0.75
N_MIN = 96
N_Q = 48
CHUNK = 64

Float32Array = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.intp]


@dataclass
class Grid:
    """Outcome of every candidate of every item on the replay period (items × candidates)."""

    stock: Float32Array
    orders: Float32Array
    lost: Float32Array
    mins: FloatArray
    maxs: FloatArray
    demand: float


def candidate_grid(test: FloatArray, horizon: int) -> tuple[FloatArray, FloatArray]:
    t_len = test.shape[1]
    window = min(horizon + 1, t_len)
    kernel = np.ones(window)
    peak = np.array([np.convolve(row, kernel, mode="valid").max() for row in test])
    total = test.sum(axis=1)
    frac = np.linspace(0.0, 1.0, N_MIN)
    # Every integer min up to the peak where the peak is small; evenly spaced otherwise.
    mins = np.where(peak[:, None] + 1 <= N_MIN,
                    np.minimum(np.arange(N_MIN)[None, :], peak[:, None]),
                    np.round(frac[None, :] * peak[:, None]))
    ratio = np.linspace(0.0, 1.0, N_Q)
    qs = np.round(np.exp(ratio[None, :] * np.log(np.maximum(total, 1.0))[:, None]))
    lo = np.repeat(mins, N_Q, axis=1)
    hi = lo + np.tile(np.maximum(qs, 1.0), (1, N_MIN))
    return lo, hi


def replay_grid(test: FloatArray, options: AdviseOptions) -> Grid:
    horizon = options.lead_time + options.review
    lo, hi = candidate_grid(test, horizon)
    stock = np.empty(lo.shape, dtype=np.float32)
    orders = np.empty(lo.shape, dtype=np.float32)
    lost = np.empty(lo.shape, dtype=np.float32)
    for start in range(0, test.shape[0], CHUNK):
        part = slice(start, start + CHUNK)
        r = simulate_policy(test[part], lo[part], hi[part], lead_time=options.lead_time,
                            review=options.review)
        stock[part] = r.avg_stock
        orders[part] = r.orders
        lost[part] = r.lost
    return Grid(stock, orders, lost, lo, hi, float(test.sum()))


def dual_bound(grid: Grid, order_cap: float, lost_cap: float) -> tuple[float, float, float,
                                                                          float]:
    """max over (λ, ν) of the Lagrangian; returns (bound, λ, ν, best feasible stock)."""
    best = (-np.inf, 0.0, 0.0)
    feasible = np.inf
    # λ is in units of stock per order, ν of stock per lost unit: scan wide log grids, then
    # refine around the best point.
    lams = np.concatenate([[0.0], np.geomspace(1e-3, 1e2, 16)])
    nus = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 16)])
    for _round in range(3):
        for lam in lams:
            for nu in nus:
                value = grid.stock + lam * grid.orders + nu * grid.lost
                pick = value.argmin(axis=1)
                rows = np.arange(len(pick))
                bound = float(value[rows, pick].sum()) - lam * order_cap - nu * lost_cap
                if bound > best[0]:
                    best = (bound, float(lam), float(nu))
                s = float(grid.stock[rows, pick].sum())
                if (grid.orders[rows, pick].sum() <= order_cap
                        and grid.lost[rows, pick].sum() <= lost_cap):
                    feasible = min(feasible, s)
        _, lam0, nu0 = best
        lams = np.geomspace(max(lam0, 1e-4) / 2.5, max(lam0, 1e-4) * 2.5, 7)
        nus = np.geomspace(max(nu0, 1e-4) / 2.5, max(nu0, 1e-4) * 2.5, 7)
    return best[0], best[1], best[2], feasible


def lagrangian_pick(grid: Grid, lam: float, fill: float) -> IndexArray:
    """Per item, the candidate minimising stock + λ·orders + ν·lost, with the smallest ν
    (bisection) whose choice reaches the aggregate ``fill`` on the grid's own data."""
    rows = np.arange(grid.stock.shape[0])
    lo, hi = 0.0, 1.0
    while True:
        pick = (grid.stock + lam * grid.orders + hi * grid.lost).argmin(axis=1)
        if 1.0 - grid.lost[rows, pick].sum() / grid.demand >= fill or hi > 1e6:
            break
        lo, hi = hi, hi * 4
    for _ in range(22):
        mid = (lo + hi) / 2
        pick = (grid.stock + lam * grid.orders + mid * grid.lost).argmin(axis=1)
        if 1.0 - grid.lost[rows, pick].sum() / grid.demand >= fill:
            hi = mid
        else:
            lo = mid
    return np.asarray((grid.stock + lam * grid.orders + hi * grid.lost).argmin(axis=1))


def frontier_choice(grid: Grid, order_cap: float, fill: float) -> IndexArray | None:
    """The least-stock choice the Lagrangian rule finds with orders ≤ ``order_cap`` at
    ``fill`` on the grid's data, or None: a bisection on the weight of an order λ (more
    weight, fewer orders, more stock), each λ with the ν of :func:`lagrangian_pick`. On the
    replay period, an upper estimate of the optimum, to set against the dual's lower bound."""
    rows = np.arange(grid.stock.shape[0])
    lo, hi = np.log(1e-4), np.log(1e3)
    best: IndexArray | None = None
    best_stock = np.inf
    for _ in range(18):
        mid = (lo + hi) / 2
        pick = lagrangian_pick(grid, float(np.exp(mid)), fill)
        if grid.orders[rows, pick].sum() <= order_cap:
            stock = float(grid.stock[rows, pick].sum())
            if stock < best_stock:
                best, best_stock = pick, stock
            hi = mid
        else:
            lo = mid
    return best


def main() -> int:
    print(f"machine: {platform.platform()}; {os.cpu_count()} CPU(s); "
          f"{platform.processor() or platform.machine()}")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}")
    print()
    matrix, _ = generate_ward(WardSpec(n_items=4100, days=730, seed=1))
    y = matrix.demand
    cut = round(y.shape[1] * TRAIN_SHARE)
    train, test = y[:, :cut], y[:, cut:]
    target = 0.995
    # The grid and its replay depend on the data, L and R only, not on costs.
    options = AdviseOptions(target_fill=target)
    t0 = time.perf_counter()
    grid = replay_grid(test, options)
    print(f"oracle: {grid.stock.shape[0]:,} items x {grid.stock.shape[1]:,} candidates "
          f"replayed on the {test.shape[1]} replay days in {time.perf_counter() - t0:.0f} s")
    print()
    lost_cap = (1.0 - target) * grid.demand
    mur = order_up_to_policy(train, options)
    runs = [(f"normal + EOQ, order cost {cost} EUR",
             normal_policy(train, AdviseOptions(order_cost=cost, target_fill=target)))
            for cost in (1.0, 0.3, 3.0)]
    runs.append(("normal + muR (no order cost in the rule)", mur))
    print("| baseline | its fill | its stock | its orders | lower bound on stock at fill "
          ">= 0.995 and orders -20% | best choice found | criterion (stock -20%) |")
    print("|---|---|---|---|---|---|---|")
    for name, (mins, maxs) in runs:
        base = simulate_policy(test, mins, maxs, lead_time=options.lead_time,
                               review=options.review)
        b_stock, b_orders = float(base.avg_stock.sum()), float(base.orders.sum())
        b_fill = float(base.served.sum()) / grid.demand
        bound, _, _, feasible = dual_bound(grid, 0.8 * b_orders, lost_cap)
        pick = frontier_choice(grid, 0.8 * b_orders, target)
        if pick is not None:
            feasible = min(feasible, float(grid.stock[np.arange(len(pick)), pick].sum()))
        verdict = ("impossible for any min/max policy" if bound > 0.8 * b_stock
                   else "not excluded by the bound")
        print(f"| {name} | {b_fill:.4f} | {b_stock:,.0f} | {b_orders:,.0f} | "
              f"{bound:,.0f} ({bound / b_stock - 1:+.1%}) | {feasible:,.0f} "
              f"({feasible / b_stock - 1:+.1%}) | {verdict} |")
    print()

    # The same choice made honestly: the grid replayed on the recent half of the fit period
    # (548 days), one candidate per item chosen by the Lagrangian rule for an aggregate fill
    # and 20% fewer orders than the baseline on that period, then replayed on the 182 days
    # it never saw. This is the best a
    # system-level allocation of the fill target can do without knowing the future.
    fit = train[:, cut // 2:]
    t0 = time.perf_counter()
    learned = replay_grid(fit, options)
    print(f"learned: the same grid replayed on the last {fit.shape[1]} fit days in "
          f"{time.perf_counter() - t0:.0f} s; chosen there, replayed on the replay period")
    print()
    print("| baseline | fill aimed at on the fit period (orders -20% there) | fill on replay "
          "| stock vs baseline | orders vs baseline |")
    print("|---|---|---|---|---|")
    rows = np.arange(learned.stock.shape[0])
    for name, (mins, maxs) in runs:
        on_fit = simulate_policy(fit, mins, maxs, lead_time=options.lead_time,
                                 review=options.review)
        base = simulate_policy(test, mins, maxs, lead_time=options.lead_time,
                               review=options.review)
        for aim in (0.995, 0.999):
            pick = frontier_choice(learned, 0.8 * float(on_fit.orders.sum()), aim)
            if pick is None:
                print(f"| {name} | {aim} | no choice found | | |")
                continue
            r = simulate_policy(test, learned.mins[rows, pick], learned.maxs[rows, pick],
                                lead_time=options.lead_time, review=options.review)
            print(f"| {name} | {aim} | {float(r.served.sum() / r.demand.sum()):.4f} | "
                  f"{float(r.avg_stock.sum() / base.avg_stock.sum()) - 1:+.1%} | "
                  f"{float(r.orders.sum() / base.orders.sum()) - 1:+.1%} |")
    print()

    mins, maxs = mur
    base = simulate_policy(test, mins, maxs, lead_time=options.lead_time, review=options.review)
    b_stock, b_orders = float(base.avg_stock.sum()), float(base.orders.sum())
    # The advisor itself, fitted on the whole fit period, at order costs near zero (the
    # baseline's rule has none) and per-item targets at or below the aggregate one.
    print("| advisor: order cost (EUR), per-item target | fill on replay | stock vs normal + "
          "muR | orders vs normal + muR |")
    print("|---|---|---|---|")
    for cost, aim in ((0.003, 0.995), (0.005, 0.99), (0.005, 0.98)):
        levels = propose_levels(train, AdviseOptions(order_cost=cost, target_fill=aim))
        r = simulate_policy(test, levels.mins, levels.maxs, lead_time=options.lead_time,
                            review=options.review)
        print(f"| {cost}, {aim} | {float(r.served.sum() / r.demand.sum()):.4f} | "
              f"{float(r.avg_stock.sum()) / b_stock - 1:+.1%} | "
              f"{float(r.orders.sum()) / b_orders - 1:+.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
