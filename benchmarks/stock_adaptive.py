"""Adaptive min/max (levels recomputed every day) against the classical policies, ward data.

Not a test: it prints figures, with the machine they ran on, for docs/stock.md.

Every policy measured so far keeps one (min, max) per item between fits, and loses out of
sample to the generator's trends and level shifts. Here min and max follow the demand known
each day (``controller/stock/adaptive.py``): an SES level and spread per item,
min = ⌈level·(L+R) + k·spread·√(L+R)⌉, max = min + max(1, round(c·level)).

The parameters (α, k, c) are chosen per item from a grid by replaying the adaptive rule on
the last 274 **known** days (levels smoothed on the known days only, pockets starting full),
at every re-fit: once at day 548 (K = 182), or every 28 days (K = 28). Three choices:

* **per item**: the least stock among the candidates whose item fill ≥ the aim and whose
  orders ≤ 0.8 × what normal + muR (fitted on the same known days) placed on those days;
  else the best fill within that order budget; else the fewest orders;
* **catalogue**: the Lagrangian allocation of ``stock_frontier.py`` (aggregate fill ≥ aim,
  total orders ≤ 0.8 × normal + muR's on those days, least stock);
* **catalogue vs EOQ**: the same with 0.8 × normal + EOQ's orders as the budget.

The chosen parameters are then replayed on days 548-729 with the rule still adapting every
day on the growing history; at a re-fit the pockets keep their stock and deliveries due
(``SimState``). Both baselines are re-fitted on the same days as in ``stock_rolling.py``
(whole past). Replay-period demand is never used for a choice: the grid is smoothed and
replayed on ``y[:, :day]`` only.

Run: ``PYTHONPATH=. python benchmarks/stock_adaptive.py`` (a few minutes on two cores).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe
from stock_frontier import Grid, IndexArray, frontier_choice
from stock_rolling import Run, pct, rolling

from controller.stock.adaptive import AdaptiveLevels, Smoothed, simulate_varying, smooth
from controller.stock.advise import AdviseOptions, normal_policy, order_up_to_policy
from controller.stock.generator import WardSpec, generate_ward
from controller.stock.history import FloatArray
from controller.stock.simulate import simulate_policy

TRAIN_SHARE = 0.75
TARGET = 0.995
FIT_DAYS = 274
LEAD, REVIEW = 1, 1
HORIZON = LEAD + REVIEW
ALPHAS = (0.03, 0.1, 0.25)
KS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
COVERS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0)
CHUNK = 512


@dataclass(frozen=True)
class Params:
    """Candidate parameters, one column each (1 × C)."""

    alpha_index: np.ndarray
    k: FloatArray
    cover: FloatArray

    @staticmethod
    def grid() -> Params:
        a, k, c = np.meshgrid(np.arange(len(ALPHAS)), KS, COVERS, indexing="ij")
        return Params(a.reshape(1, -1).astype(np.intp), k.reshape(1, -1).astype(np.float64),
                      c.reshape(1, -1).astype(np.float64))

    def pick(self, choice: IndexArray) -> Params:
        """One candidate per item (N × 1)."""
        return Params(self.alpha_index[0, choice][:, None], self.k[0, choice][:, None],
                      self.cover[0, choice][:, None])

    def rule(self, smoothed: Smoothed, offset: int) -> AdaptiveLevels:
        return AdaptiveLevels(smoothed, self.alpha_index, self.k, self.cover, HORIZON, offset)


def items(smoothed: Smoothed, part: slice) -> Smoothed:
    return Smoothed(smoothed.alphas, smoothed.level[:, :, part], smoothed.spread[:, :, part])


def replay_known(y: FloatArray, day: int, params: Params) -> Grid:
    """Every candidate replayed on the last FIT_DAYS days before ``day``, smoothed on the
    days before ``day`` only, pockets starting full."""
    known = y[:, :day]
    smoothed = smooth(known, ALPHAS)
    recent = known[:, day - FIT_DAYS:]
    shape = (y.shape[0], params.k.shape[1])
    stock, orders, lost = (np.empty(shape, dtype=np.float32) for _ in range(3))
    for lo in range(0, y.shape[0], CHUNK):
        part = slice(lo, lo + CHUNK)
        r = simulate_varying(recent[part], params.rule(items(smoothed, part), day - FIT_DAYS),
                             lead_time=LEAD, review=REVIEW)
        stock[part], orders[part], lost[part] = r.avg_stock, r.orders, r.lost
    none = np.zeros(shape)
    return Grid(stock, orders, lost, none, none, float(recent.sum()))


def per_item_choice(grid: Grid, demand: FloatArray, cap: FloatArray, aim: float) -> IndexArray:
    """Least stock with item fill ≥ aim and orders ≤ cap; else the best fill within the cap;
    else the fewest orders (ties: least stock)."""
    fill = 1.0 - np.divide(grid.lost, demand[:, None], out=np.zeros(grid.lost.shape),
                           where=demand[:, None] > 0)
    within = grid.orders <= cap[:, None] + 1e-9
    ok = within & (fill >= aim - 1e-12)
    big = 1e12
    best = np.where(ok, grid.stock, big).argmin(axis=1)
    # Fallbacks: lexicographic scores (the stock term is < 1e6 per item here).
    by_fill = np.where(within, -fill * 1e7 + grid.stock, big).argmin(axis=1)
    by_orders = (grid.orders * 1e7 + grid.stock).argmin(axis=1)
    out = np.where(ok.any(axis=1), best, np.where(within.any(axis=1), by_fill, by_orders))
    return np.asarray(out, dtype=np.intp)


def step_adaptive(run: Run, chunk: FloatArray, rule: AdaptiveLevels) -> None:
    r = simulate_varying(chunk, rule, lead_time=LEAD, review=REVIEW, start=run.state)
    run.state = r.end
    run.days += chunk.shape[1]
    run.demand += r.demand[:, 0]
    run.served += r.served[:, 0]
    run.stock_days += r.avg_stock[:, 0] * chunk.shape[1]
    run.orders += r.orders[:, 0]
    run.stockouts += r.stockout_periods[:, 0]


def adaptive_runs(y: FloatArray, start: int, cadence: int,
                  options: AdviseOptions) -> tuple[dict[str, Run], float]:
    """Every adaptive choice, re-chosen every ``cadence`` days; returns runs and grid time."""
    params = Params.grid()
    full = smooth(y, ALPHAS)  # causal: column t uses days < t only (tested)
    n = y.shape[0]
    names = ([f"adaptive, per item, aim {a}" for a in (0.995, 0.997, 0.999)]
             + [f"adaptive, catalogue, aim {a}" for a in (0.995, 0.997, 0.999)]
             + [f"adaptive, catalogue vs EOQ orders, aim {a}" for a in (0.995, 0.999)])
    runs = {name: Run(n) for name in names}
    grid_time = 0.0
    for day in range(start, y.shape[1], cadence):
        known = y[:, :day]
        recent = known[:, day - FIT_DAYS:]
        chunk = y[:, day:min(day + cadence, y.shape[1])]
        t0 = time.perf_counter()
        grid = replay_known(y, day, params)
        grid_time += time.perf_counter() - t0
        # Order budgets: what each baseline, fitted on the same known days, placed there.
        mur = simulate_policy(recent, *order_up_to_policy(known, options), lead_time=LEAD,
                              review=REVIEW).orders
        eoq = simulate_policy(recent, *normal_policy(known, options), lead_time=LEAD,
                              review=REVIEW).orders
        demand = recent.sum(axis=1)
        for name, run in runs.items():
            aim = float(name.rsplit(" ", 1)[1])
            if "per item" in name:
                choice = per_item_choice(grid, demand, 0.8 * mur, aim)
            else:
                cap = 0.8 * float((eoq if "EOQ" in name else mur).sum())
                pick = frontier_choice(grid, cap, aim)
                if pick is None:
                    raise SystemExit(f"day {day}: no choice within the order budget at {aim}")
                choice = pick
            step_adaptive(run, chunk, params.pick(choice).rule(full, day))
    return runs, grid_time


def compare(r: Run, b: Run) -> str:
    return (f"{(r.fill - b.fill) * 100:+.2f} pt, {pct(r.stock, b.stock)}, "
            f"{pct(float(r.orders.sum()), float(b.orders.sum()))}")


def met(r: Run, b: Run) -> bool:
    return bool(r.fill >= TARGET and r.stock <= 0.8 * b.stock
                and r.orders.sum() <= 0.8 * b.orders.sum())


def main() -> int:
    t_start = time.perf_counter()
    print(describe())
    print(f"numpy {np.__version__}")
    print()
    matrix, _ = generate_ward(WardSpec(n_items=4100, days=730, seed=1))
    y = matrix.demand
    start = round(y.shape[1] * TRAIN_SHARE)
    options = AdviseOptions(target_fill=TARGET)
    n_cand = len(ALPHAS) * len(KS) * len(COVERS)
    print(f"Ward cabinet, {y.shape[0]:,} generated daily series (seed 1), L={LEAD} R={REVIEW} "
          f"day; replay days {start}-{y.shape[1] - 1}; adaptive min/max recomputed every day "
          f"(SES alpha in {ALPHAS}, k in {KS}, cover c in {COVERS} days: {n_cand} candidates "
          f"per item), chosen on the last {FIT_DAYS} known days at every re-fit (every K "
          f"days); baselines re-fitted on the whole past every K days; stock and deliveries "
          f"due carried over; fill = units served")
    print()
    baselines: dict[tuple[int, str], Run] = {}
    results: list[tuple[int, str, Run]] = []
    for cadence in (y.shape[1] - start, 28):
        t0 = time.perf_counter()
        base, _ = rolling(y, start, cadence, None, {
            "normal + EOQ": lambda h: normal_policy(h, options),
            "normal + muR": lambda h: order_up_to_policy(h, options)})
        for name, r in base.items():
            baselines[(cadence, name)] = r
        runs, grid_time = adaptive_runs(y, start, cadence, options)
        results += [(cadence, name, r) for name, r in runs.items()]
        print(f"K={cadence}: {time.perf_counter() - t0:.0f} s ({grid_time:.0f} s replaying "
              f"the candidate grids on the known days)")
    print()
    print("| K (days) | policy | fill (units served) | items at 99.5% | average stock | orders "
          "| stock-outs | vs normal + muR (fill, stock, orders) | vs normal + EOQ (fill, stock, "
          "orders) | criterion vs normal + muR | criterion vs normal + EOQ |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cadence in (y.shape[1] - start, 28):
        mur, eoq = baselines[(cadence, "normal + muR")], baselines[(cadence, "normal + EOQ")]
        rows = [("normal + EOQ", eoq), ("normal + muR", mur)]
        rows += [(name, r) for k, name, r in results if k == cadence]
        for name, r in rows:
            vs_mur = "" if r is mur else compare(r, mur)
            vs_eoq = "" if r is eoq else compare(r, eoq)
            base = r is mur or r is eoq
            c_mur = "" if base else ("MET" if met(r, mur) else "NOT MET")
            c_eoq = "" if base else ("MET" if met(r, eoq) else "NOT MET")
            print(f"| {cadence} | {name} | {r.fill:.4f} | {r.reached} | {r.stock:,.0f} | "
                  f"{r.orders.sum():,.0f} | {r.stockouts.sum():,.0f} | {vs_mur} | {vs_eoq} | "
                  f"{c_mur} | {c_eoq} |")
    print()
    # Each adaptive run against the static baselines too (K = 182), whatever its own K.
    static = y.shape[1] - start
    for cadence, name, r in results:
        if cadence == static:
            continue
        verdicts = [f"{b} K={static}: {'MET' if met(r, baselines[(static, b)]) else 'NOT MET'}"
                    for b in ("normal + muR", "normal + EOQ")]
        print(f"K={cadence} {name} vs static baselines: " + "; ".join(verdicts))
    print()
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
