"""Adaptive min/max (levels recomputed every day) against the classical policies, ward data.

Not a test: it prints figures, with the machine they ran on, for docs/stock.md.

Every policy measured so far keeps one (min, max) per item between fits, and loses out of
sample to the generator's trends and level shifts. Here min and max follow the demand known
each day (``benchmarks/adaptive_levels.py``): an SES level and spread per item,
min = ⌈level·(L+R) + k·spread·√(L+R)⌉, max = min + max(1, round(c·level)).

The parameters (α, k, c) are chosen per item from a grid by replaying the adaptive rule on
the last 274 **known** days (levels smoothed on the known days only, pockets starting full),
at every re-fit: once at day 548 (K = 182), or every 28 days (K = 28). Three choices:

* **per item**: the least stock among the candidates whose item fill ≥ the aim and whose
  orders ≤ 0.8 × what normal + muR (fitted on the same known days) placed on those days;
  else the best fill within that order budget; else the fewest orders;
* **catalogue**: the Lagrangian allocation of ``stock_frontier.py`` (aggregate fill ≥ aim,
  total orders ≤ 0.8 × normal + muR's on those days, least stock);
* **catalogue pooled by groups**: the same, but one candidate per group of items with a
  similar known rate and share of days without demand (16 × 10 quantile bins): a choice
  that must hold for a whole group overfits the known days less than one per item;
* **catalogue vs EOQ**: the catalogue choice with 0.8 × normal + EOQ's orders as the
  budget.

The chosen parameters are then replayed on days 548-729 with the rule still adapting every
day on the growing history; at a re-fit the pockets keep their stock and deliveries due
(``SimState``). Both baselines are re-fitted on the same days as in ``stock_rolling.py``
(whole past). Replay-period demand is never used for a choice: the grid is smoothed and
replayed on ``y[:, :day]`` only.

The adaptive rule uses the catalogue's weekday profile, estimated on the known days
(``--plain``: without it). A **hybrid** catalogue choice, over the adaptive grid and
``stock_frontier.py``'s static grid together, is run at K = 182 (``--no-hybrid``: skip it).

Run: ``PYTHONPATH=. python benchmarks/stock_adaptive.py`` (about 6.5 minutes on two cores,
of which about 2 for the hybrid).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adaptive_levels import AdaptiveLevels, LevelsAt, Smoothed, simulate_varying, smooth
from machine import describe
from stock_frontier import Grid, IndexArray, frontier_choice
from stock_rolling import Run, pct, rolling

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
QS = (1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0, 13.0, 16.0, 20.0, 25.0)
CHUNK = 48


@dataclass(frozen=True)
class Params:
    """Candidate parameters, one column each (1 × C)."""

    alpha_index: np.ndarray
    k: FloatArray
    cover: FloatArray
    scale: FloatArray

    @staticmethod
    def grid(families: str = "kq") -> Params:
        """"k": q = 1 and k in KS (safety stock from the spread); "q": k = 0 and q in QS
        (the reorder point scaled with the level); both by default."""
        parts = []
        if "k" in families:
            parts.append(np.meshgrid(np.arange(len(ALPHAS)), KS, COVERS, [1.0],
                                     indexing="ij"))
        if "q" in families:
            parts.append(np.meshgrid(np.arange(len(ALPHAS)), [0.0], COVERS, QS,
                                     indexing="ij"))
        a, k, c, q = (np.concatenate([p[i].ravel() for p in parts])[None, :]
                      for i in range(4))
        return Params(a.astype(np.intp), k.astype(np.float64), c.astype(np.float64),
                      q.astype(np.float64))

    def pick(self, choice: IndexArray) -> Params:
        """One candidate per item (N × 1)."""
        return Params(self.alpha_index[0, choice][:, None], self.k[0, choice][:, None],
                      self.cover[0, choice][:, None], self.scale[0, choice][:, None])

    def rule(self, smoothed: Smoothed, offset: int,
             weekly: FloatArray | None = None) -> AdaptiveLevels:
        return AdaptiveLevels(smoothed, self.alpha_index, self.k, self.cover, HORIZON, offset,
                              self.scale, weekly)


def weekday_profile(known: FloatArray) -> FloatArray:
    """Catalogue demand per weekday over the mean, on the known days only (pooled over all
    items: one item's weekdays are too noisy). Day t has weekday t % 7."""
    totals = known.sum(axis=0)
    days = np.arange(known.shape[1]) % 7
    per_day = np.array([totals[days == d].mean() for d in range(7)])
    return np.asarray(per_day / per_day.mean(), dtype=np.float64)


def items(smoothed: Smoothed, part: slice) -> Smoothed:
    return Smoothed(smoothed.alphas, smoothed.level[:, :, part], smoothed.spread[:, :, part])


def replay_known(y: FloatArray, day: int, params: Params, weekly: bool = False) -> Grid:
    """Every candidate replayed on the last FIT_DAYS days before ``day``, smoothed on the
    days before ``day`` only, pockets starting full."""
    known = y[:, :day]
    profile = weekday_profile(known) if weekly else None
    smoothed = smooth(known, ALPHAS, profile)
    recent = known[:, day - FIT_DAYS:]
    shape = (y.shape[0], params.k.shape[1])
    stock, orders, lost = (np.empty(shape, dtype=np.float32) for _ in range(3))
    for lo in range(0, y.shape[0], CHUNK):
        part = slice(lo, lo + CHUNK)
        rule = params.rule(items(smoothed, part), day - FIT_DAYS, profile)
        r = simulate_varying(recent[part], rule, lead_time=LEAD, review=REVIEW)
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


def groups_of(recent: FloatArray, n_rate: int = 16, n_zero: int = 10) -> IndexArray:
    """Items pooled by their known demand: quantile bins of the mean rate × quantile bins of
    the share of days without demand (both on the known days), as group numbers 0…G−1."""
    rate = recent.mean(axis=1)
    zeros = (recent == 0).mean(axis=1)
    rb = np.searchsorted(np.quantile(rate, np.linspace(0, 1, n_rate + 1)[1:-1]), rate)
    zb = np.searchsorted(np.quantile(zeros, np.linspace(0, 1, n_zero + 1)[1:-1]), zeros)
    _, g = np.unique(rb * n_zero + zb, return_inverse=True)
    return np.asarray(g, dtype=np.intp)


def pooled_choice(grid: Grid, groups: IndexArray, cap: float, aim: float) -> IndexArray | None:
    """The catalogue choice with one candidate per group instead of per item: the grid's
    outcomes are summed over each group's items, so a choice must work for a group as a
    whole, not for one item's luck on the known days."""
    n_groups = int(groups.max()) + 1

    def total(a: np.ndarray) -> np.ndarray:
        out = np.zeros((n_groups, a.shape[1]))
        np.add.at(out, groups, a)
        return out

    pooled = Grid(total(grid.stock).astype(np.float32), total(grid.orders).astype(np.float32),
                  total(grid.lost).astype(np.float32), grid.mins, grid.maxs, grid.demand)
    pick = frontier_choice(pooled, cap, aim)
    return None if pick is None else np.asarray(pick[groups], dtype=np.intp)


def step_adaptive(run: Run, chunk: FloatArray, rule: LevelsAt) -> None:
    r = simulate_varying(chunk, rule, lead_time=LEAD, review=REVIEW, start=run.state)
    run.state = r.end
    run.days += chunk.shape[1]
    run.demand += r.demand[:, 0]
    run.served += r.served[:, 0]
    run.stock_days += r.avg_stock[:, 0] * chunk.shape[1]
    run.orders += r.orders[:, 0]
    run.stockouts += r.stockout_periods[:, 0]


@dataclass(frozen=True)
class Mixed:
    """Static (min, max) for some items, the adaptive rule for the others."""

    adaptive: IndexArray
    rule: AdaptiveLevels
    mins: FloatArray
    maxs: FloatArray

    def __call__(self, t: int) -> tuple[FloatArray, FloatArray]:
        lo, hi = self.rule(t)
        on = self.adaptive.astype(bool)[:, None]
        return np.where(on, lo, self.mins[:, None]), np.where(on, hi, self.maxs[:, None])


def adaptive_runs(y: FloatArray, start: int, cadence: int, options: AdviseOptions, *,
                  weekly: bool = True, hybrid: bool = False
                  ) -> tuple[dict[str, Run], float, dict[str, int]]:
    """Every adaptive choice, re-chosen every ``cadence`` days; returns the runs, the time
    spent replaying grids, and (hybrid) how many items adapt after the last re-fit.

    ``hybrid``: the catalogue choice is made over the adaptive grid **and**
    ``stock_frontier.py``'s 4,608 static (min, max) per item, both replayed on the same
    known days, so each item may keep static levels or adapt."""
    from stock_frontier import replay_grid

    params = Params.grid()
    n = y.shape[0]
    if hybrid:
        names = [f"hybrid static + adaptive, catalogue, aim {a}" for a in (0.995, 0.997, 0.999)]
    else:
        names = ([f"adaptive, per item, aim {a}" for a in (0.995, 0.997, 0.999)]
                 + [f"adaptive, catalogue, aim {a}" for a in (0.995, 0.997, 0.999)]
                 + [f"adaptive, catalogue pooled by groups, aim {a}"
                    for a in (0.993, 0.995, 0.997)]
                 + [f"adaptive, catalogue vs EOQ orders, aim {a}" for a in (0.995, 0.999)])
    runs = {name: Run(n) for name in names}
    counts: dict[str, int] = {}
    grid_time = 0.0
    for day in range(start, y.shape[1], cadence):
        known = y[:, :day]
        recent = known[:, day - FIT_DAYS:]
        chunk = y[:, day:min(day + cadence, y.shape[1])]
        # Causal: column t of the smoothing uses days < t only (tested), and the replay of
        # this stretch reads columns day … day + len(chunk); the weekday profile is the
        # known days'.
        profile = weekday_profile(known) if weekly else None
        full = smooth(y, ALPHAS, profile)
        t0 = time.perf_counter()
        grid = replay_known(y, day, params, weekly)
        static = replay_grid(recent, options) if hybrid else None
        grid_time += time.perf_counter() - t0
        n_adaptive = grid.stock.shape[1]
        if static is not None:
            grid = Grid(np.concatenate([grid.stock, static.stock], axis=1),
                        np.concatenate([grid.orders, static.orders], axis=1),
                        np.concatenate([grid.lost, static.lost], axis=1),
                        grid.mins, grid.maxs, grid.demand)
        # Order budgets: what each baseline, fitted on the same known days, placed there.
        mur = simulate_policy(recent, *order_up_to_policy(known, options), lead_time=LEAD,
                              review=REVIEW).orders
        eoq = simulate_policy(recent, *normal_policy(known, options), lead_time=LEAD,
                              review=REVIEW).orders
        demand = recent.sum(axis=1)
        rows = np.arange(n)
        groups = groups_of(recent)
        for name, run in runs.items():
            aim = float(name.rsplit(" ", 1)[1])
            if "per item" in name:
                choice = per_item_choice(grid, demand, 0.8 * mur, aim)
            else:
                cap = 0.8 * float((eoq if "EOQ" in name else mur).sum())
                pick = (pooled_choice(grid, groups, cap, aim) if "pooled" in name
                        else frontier_choice(grid, cap, aim))
                if pick is None:
                    raise SystemExit(f"day {day}: no choice within the order budget at {aim}")
                choice = pick
            is_adaptive = choice < n_adaptive
            rule = params.pick(np.where(is_adaptive, choice, 0)).rule(full, day, profile)
            if static is None:
                step_adaptive(run, chunk, rule)
            else:
                col = np.where(is_adaptive, 0, choice - n_adaptive)
                step_adaptive(run, chunk, Mixed(is_adaptive, rule, static.mins[rows, col],
                                                static.maxs[rows, col]))
                counts[name] = int(is_adaptive.sum())
        del grid, static
    return runs, grid_time, counts


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
    weekly = "--plain" not in sys.argv[1:]
    n_cand = Params.grid().k.shape[1]
    print(f"Ward cabinet, {y.shape[0]:,} generated daily series (seed 1), L={LEAD} R={REVIEW} "
          f"day; replay days {start}-{y.shape[1] - 1}; adaptive min/max recomputed every day "
          f"(SES alpha in {ALPHAS}; min = ceil(level*(L+R) + k*spread*sqrt(L+R)), k in {KS}, "
          f"or ceil(q*level*(L+R)), q in {QS}; max = min + max(1, round(c*level)), c in "
          f"{COVERS} days: {n_cand} candidates per item; "
          f"{'weekday profile of the known days' if weekly else 'no weekday profile'}), "
          f"chosen on the last {FIT_DAYS} known days at every re-fit (every K days); "
          f"baselines re-fitted on the whole past every K days; stock and deliveries due "
          f"carried over; fill = units served")
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
        runs, grid_time, _ = adaptive_runs(y, start, cadence, options, weekly=weekly)
        results += [(cadence, name, r) for name, r in runs.items()]
        print(f"K={cadence}: {time.perf_counter() - t0:.0f} s ({grid_time:.0f} s replaying "
              f"the candidate grids on the known days)")
        if cadence == y.shape[1] - start and "--no-hybrid" not in sys.argv[1:]:
            # The static grid costs about a minute per re-fit: K = 182 only.
            t0 = time.perf_counter()
            runs, grid_time, counts = adaptive_runs(y, start, cadence, options, weekly=weekly,
                                                    hybrid=True)
            results += [(cadence, name, r) for name, r in runs.items()]
            print(f"K={cadence} hybrid: {time.perf_counter() - t0:.0f} s ({grid_time:.0f} s "
                  f"replaying the grids); items that adapt: "
                  + ", ".join(f"{v} at {k.rsplit(' ', 1)[1]}" for k, v in counts.items()))
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
            is_base = r is mur or r is eoq
            c_mur = "" if is_base else ("MET" if met(r, mur) else "NOT MET")
            c_eoq = "" if is_base else ("MET" if met(r, eoq) else "NOT MET")
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
