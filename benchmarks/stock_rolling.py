"""Rolling-origin benchmark of the replenishment advisor on generated ward data.

Not a test: it prints figures, with the machine they ran on, for docs/stock.md.

``stock_bench.py`` fits once on the first 548 days and replays the last 182 with the same
parameters throughout. A cabinet does not work that way: the pharmacist recomputes proposals
from the journal whenever they like (``controller/replenishment.py``). Here every policy is
re-fitted every K days of the replay on the history known that day, either the whole past or
only its last W days, and the replay carries on from the stock and the deliveries due
(``SimState``), with lost sales, lead time 1 and review 1 as everywhere else. The advisor
and both classical baselines (normal + EOQ, normal + muR; their definitions unchanged) are
re-fitted on the same days on the same history, so the comparison is like for like. K = 182
is the static benchmark (one fit), and must give ``stock_bench.py``'s figures.

``--allocation`` runs instead the experiment of docs/stock.md "What is left": allocating the
fill target over the catalogue rather than per item, against normal + muR, re-fitted every 28
days. It is ``stock_frontier.py``'s honest choice (every item's grid of 4,608 (min, max)
policies replayed on the last 274 known days, one policy per item by the Lagrangian rule for
an aggregate fill aim and 20% fewer orders than normal + muR on those days), made again at
every re-fit on what is known that day.

Run: ``PYTHONPATH=. python benchmarks/stock_rolling.py`` (about 3 minutes on two cores);
``… --allocation`` (about 10 minutes).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe

from controller.stock.advise import (
    AdviseOptions,
    normal_policy,
    order_up_to_policy,
    propose_levels,
)
from controller.stock.generator import WardSpec, generate_ward
from controller.stock.history import FloatArray
from controller.stock.simulate import SimState, simulate_policy

TRAIN_SHARE = 0.75
TARGET = 0.995
#: Fits a policy on a history (items × days): (mins, maxs).
Fitter = Callable[[FloatArray], tuple[FloatArray, FloatArray]]


@dataclass
class Run:
    """One policy replayed over the whole replay period, per item."""

    n: int
    days: int = 0
    demand: FloatArray = field(init=False)
    served: FloatArray = field(init=False)
    stock_days: FloatArray = field(init=False)
    orders: FloatArray = field(init=False)
    stockouts: FloatArray = field(init=False)
    state: SimState | None = None

    def __post_init__(self) -> None:
        self.demand, self.served, self.stock_days, self.orders, self.stockouts = (
            np.zeros(self.n) for _ in range(5))

    def step(self, y: FloatArray, mins: FloatArray, maxs: FloatArray) -> None:
        r = simulate_policy(y, mins, maxs, lead_time=1, review=1, start=self.state)
        self.state = r.end
        self.days += y.shape[1]
        self.demand += r.demand
        self.served += r.served
        self.stock_days += r.avg_stock * y.shape[1]
        self.orders += r.orders
        self.stockouts += r.stockout_periods

    @property
    def fill(self) -> float:
        return float(self.served.sum() / self.demand.sum())

    @property
    def stock(self) -> float:
        """Sum over items of the mean on-hand over the replay period."""
        return float(self.stock_days.sum() / self.days)

    @property
    def reached(self) -> int:
        fill = np.divide(self.served, self.demand, out=np.ones(self.n), where=self.demand > 0)
        return int((fill >= TARGET - 1e-12).sum())


def rolling(y: FloatArray, start: int, cadence: int, window: int | None,
            fitters: dict[str, Fitter]) -> tuple[dict[str, Run], float]:
    """Replay ``y[:, start:]``, re-fitting every policy every ``cadence`` days on the days
    before (the last ``window`` of them, or all); returns the runs and the fitting time."""
    runs = {name: Run(y.shape[0]) for name in fitters}
    fit_time = 0.0
    for day in range(start, y.shape[1], cadence):
        history = y[:, 0 if window is None else max(0, day - window):day]
        chunk = y[:, day:min(day + cadence, y.shape[1])]
        for name, fit in fitters.items():
            t0 = time.perf_counter()
            mins, maxs = fit(history)
            fit_time += time.perf_counter() - t0
            runs[name].step(chunk, mins, maxs)
    return runs, fit_time


def allocation(y: FloatArray, start: int, cadence: int, fit_days: int,
               aims: tuple[float, ...]) -> tuple[Run, dict[float, Run]]:
    """normal + muR and the catalogue allocation at each aim, re-fitted every ``cadence``
    days; the allocation learns from the last ``fit_days`` days known at each re-fit."""
    from stock_frontier import frontier_choice, replay_grid

    options = AdviseOptions(target_fill=TARGET)
    base, runs = Run(y.shape[0]), {aim: Run(y.shape[0]) for aim in aims}
    rows = np.arange(y.shape[0])
    for day in range(start, y.shape[1], cadence):
        history, recent = y[:, :day], y[:, day - fit_days:day]
        chunk = y[:, day:min(day + cadence, y.shape[1])]
        mins, maxs = order_up_to_policy(history, options)
        base.step(chunk, mins, maxs)
        # The order budget: 20% fewer than the baseline would have placed on those days.
        on_recent = simulate_policy(recent, mins, maxs, lead_time=1, review=1)
        grid = replay_grid(recent, options)
        for aim, run in runs.items():
            pick = frontier_choice(grid, 0.8 * float(on_recent.orders.sum()), aim)
            if pick is None:
                raise SystemExit(f"day {day}: no choice within the order budget at {aim}")
            run.step(chunk, grid.mins[rows, pick], grid.maxs[rows, pick])
    return base, runs


def main_allocation(y: FloatArray, start: int) -> int:
    cadence, fit_days = 28, 274
    t0 = time.perf_counter()
    base, runs = allocation(y, start, cadence, fit_days, (0.995, 0.997, 0.999))
    print(f"Catalogue allocation against normal + muR, both re-fitted every {cadence} days "
          f"(muR on the whole past, the allocation on the last {fit_days} days), replay days "
          f"{start}-{y.shape[1] - 1}, in {time.perf_counter() - t0:.0f} s")
    print()
    print("| policy | fill (units served) | average stock | orders | vs normal + muR (stock, "
          "orders) | issue criterion |")
    print("|---|---|---|---|---|---|")
    print(f"| normal + muR | {base.fill:.4f} | {base.stock:,.0f} | {base.orders.sum():,.0f} "
          f"| | |")
    for aim, r in runs.items():
        met = (r.fill >= TARGET and r.stock <= 0.8 * base.stock
               and r.orders.sum() <= 0.8 * base.orders.sum())
        print(f"| allocation, aggregate fill aimed at {aim} on the known days | {r.fill:.4f} "
              f"| {r.stock:,.0f} | {r.orders.sum():,.0f} | {pct(r.stock, base.stock)}, "
              f"{pct(float(r.orders.sum()), float(base.orders.sum()))} "
              f"| {'MET' if met else 'NOT MET'} |")
    return 0


def pct(new: float, old: float) -> str:
    return f"{(new - old) / old * 100:+.1f}%"


def main() -> int:
    print(describe())
    print(f"numpy {np.__version__}")
    print()
    matrix, _ = generate_ward(WardSpec(n_items=4100, days=730, seed=1))
    y = matrix.demand
    start = round(y.shape[1] * TRAIN_SHARE)
    if "--allocation" in sys.argv[1:]:
        return main_allocation(y, start)
    options = AdviseOptions(target_fill=TARGET)
    fitters: dict[str, Fitter] = {
        "normal + EOQ": lambda h: normal_policy(h, options),
        "normal + muR": lambda h: order_up_to_policy(h, options),
        "advisor": lambda h: (lambda lv: (lv.mins, lv.maxs))(propose_levels(h, options)),
    }
    baselines = ("normal + EOQ", "normal + muR")
    print(f"Ward cabinet, {y.shape[0]:,} generated daily series (seed 1), L=1 R=1 day, order "
          f"cost {options.order_cost} EUR; replay days {start}-{y.shape[1] - 1} "
          f"({y.shape[1] - start} days), every policy re-fitted every K days on the history "
          f"known that day; stock and deliveries due carried over; fill = units served")
    print()
    print("| K (days) | history | policy | fill (units served) | items at 99.5% | average "
          "stock | orders | stock-outs | vs normal + EOQ (fill, stock, orders) | vs normal + "
          "muR (fill, stock, orders) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    verdicts: list[str] = []
    for cadence in (y.shape[1] - start, 28, 7):
        for window in (None, 365, 182):
            t0 = time.perf_counter()
            runs, fit_time = rolling(y, start, cadence, window, fitters)
            hist = "whole past" if window is None else f"last {window} days"
            for name, r in runs.items():
                cols = []
                for base in baselines:
                    if name == base:
                        cols.append("")
                        continue
                    b = runs[base]
                    cols.append(f"{(r.fill - b.fill) * 100:+.2f} pt, {pct(r.stock, b.stock)}, "
                                f"{pct(float(r.orders.sum()), float(b.orders.sum()))}")
                print(f"| {cadence} | {hist} | {name} | {r.fill:.4f} | {r.reached} | "
                      f"{r.stock:,.0f} | {r.orders.sum():,.0f} | {r.stockouts.sum():,.0f} | "
                      f"{cols[0]} | {cols[1]} |")
            ours = runs["advisor"]
            for base in baselines:
                b = runs[base]
                met = (ours.fill >= TARGET and ours.stock <= 0.8 * b.stock
                       and ours.orders.sum() <= 0.8 * b.orders.sum())
                verdicts.append(f"K={cadence}, {hist}: issue criterion vs {base}: "
                                f"{'MET' if met else 'NOT MET'}")
            verdicts.append(f"K={cadence}, {hist}: {time.perf_counter() - t0:.0f} s "
                            f"({fit_time:.0f} s fitting)")
    print()
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
