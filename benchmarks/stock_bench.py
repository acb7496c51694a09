"""Benchmark of the replenishment advisor (``controller/stock``): quality and speed.

Not a test: it prints figures, with the machine they were measured on, for docs/stock.md.

Quality is measured out of sample: parameters are fitted on the first three quarters of
each series and replayed (lost sales, periodic review, lead time) on the last quarter, for
the advisor and for two classical normal-approximation policies with the same
min = μ(L+R) + z σ √(L+R), z for 99.5%: max = min + Wilson EOQ with the same costs
(``controller.stock.advise.normal_policy``), and max = min + μR, the textbook periodic
(R, s, S) of ward practice (``order_up_to_policy``). Two data sets:

* generated ward-cabinet daily withdrawals (``controller.stock.generator``), 4,100 items;
* the car-parts benchmark of intermittent demand (2,674 monthly series), read from
  ``../shared/data/carparts.csv`` next to the repository (never copied into it).

Speed: a 4,100-item catalogue with two years of daily history, advised end to end
(classes, forecasts, candidates, replays, current policy) with ``advise_matrix``.

Run: ``.venv/bin/python benchmarks/stock_bench.py`` (about a minute).
"""

from __future__ import annotations

import csv
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.stock.advise import (
    PERIOD_YEARS,
    AdviseOptions,
    advise_matrix,
    normal_policy,
    order_up_to_policy,
    propose_levels,
)
from controller.stock.generator import WardSpec, generate_ward
from controller.stock.history import FloatArray
from controller.stock.simulate import simulate_policy

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRAIN_SHARE = 0.75


@dataclass
class Totals:
    demand: float = 0.0
    served: float = 0.0
    stock: float = 0.0
    orders: float = 0.0
    stockouts: float = 0.0
    items: int = 0
    reached: int = 0
    holding_cost: float = 0.0
    ordering_cost: float = 0.0

    @property
    def fill(self) -> float:
        return self.served / self.demand if self.demand else 1.0

    def add(self, y: FloatArray, mins: FloatArray, maxs: FloatArray, options: AdviseOptions,
            target: float) -> None:
        r = simulate_policy(y, mins, maxs, lead_time=options.lead_time, review=options.review)
        self.demand += float(r.demand.sum())
        self.served += float(r.served.sum())
        self.stock += float(r.avg_stock.sum())
        self.orders += float(r.orders.sum())
        self.stockouts += float(r.stockout_periods.sum())
        self.items += len(mins)
        self.reached += int((r.fill_rate >= target).sum())
        per_period = options.holding_rate * PERIOD_YEARS[options.period]
        self.holding_cost += float(r.avg_stock.sum()) * y.shape[1] * per_period \
            * options.default_unit_cost
        self.ordering_cost += float(r.orders.sum()) * options.order_cost


def split(y: FloatArray) -> tuple[FloatArray, FloatArray]:
    cut = round(y.shape[1] * TRAIN_SHARE)
    return y[:, :cut], y[:, cut:]


#: The two classical baselines: the same min, μ(L+R) + z σ √(L+R) with z for 99.5%, and
#: max = min + Wilson EOQ, or max = min + μR (textbook periodic (R, s, S), S = s + μR).
BASELINES = ("normal + EOQ", "normal + muR")


def baselines(train: FloatArray, options: AdviseOptions) -> list[tuple[FloatArray, FloatArray]]:
    return [normal_policy(train, options), order_up_to_policy(train, options)]


def compare(groups: list[FloatArray], options: AdviseOptions) -> tuple[Totals, list[Totals]]:
    ours, classical = Totals(), [Totals() for _ in BASELINES]
    for y in groups:
        train, test = split(y)
        levels = propose_levels(train, options)
        ours.add(test, levels.mins, levels.maxs, options, options.target_fill)
        for totals, (mins, maxs) in zip(classical, baselines(train, options), strict=True):
            totals.add(test, mins, maxs, options, options.target_fill)
    return ours, classical


def pct(new: float, old: float) -> str:
    return f"{(new - old) / old * 100:+.1f}%" if old else "n/a"


def table(title: str, ours: Totals, classical: list[Totals]) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| policy | fill rate (units served) | items at target | average stock (units) "
        "| restock orders | stock-outs (item-periods) | holding + ordering cost (EUR) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, t in (*zip(BASELINES, classical, strict=True), ("advisor", ours)):
        lines.append(f"| {name} | {t.fill:.4f} | {t.reached}/{t.items} | {t.stock:,.0f} "
                     f"| {t.orders:,.0f} | {t.stockouts:,.0f} | {t.holding_cost:,.0f} + "
                     f"{t.ordering_cost:,.0f} = {t.holding_cost + t.ordering_cost:,.0f} |")
    total_ours = ours.holding_cost + ours.ordering_cost
    for name, base in zip(BASELINES, classical, strict=True):
        total_base = base.holding_cost + base.ordering_cost
        lines.append(f"| advisor vs {name} | {(ours.fill - base.fill) * 100:+.2f} pt | "
                     f"| {pct(ours.stock, base.stock)} | {pct(ours.orders, base.orders)} "
                     f"| {pct(ours.stockouts, base.stockouts)} "
                     f"| {pct(total_ours, total_base)} |")
    lines.append("")
    return lines


def read_carparts() -> list[FloatArray]:
    """Series grouped by length (blank cells after a part's series ends are not demand)."""
    path = DATA / "carparts.csv"
    by_length: dict[int, list[list[float]]] = {}
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for record in reader:
            values = [float(v) for v in record[1:] if v.strip() != ""]
            by_length.setdefault(len(values), []).append(values)
    return [np.array(v, dtype=np.float64) for _, v in sorted(by_length.items())]


def main() -> int:
    out: list[str] = [
        f"machine: {platform.platform()}; {os.cpu_count()} CPU(s); "
        f"{platform.processor() or platform.machine()}",
        f"python {sys.version.split()[0]}, numpy {np.__version__}",
        "",
    ]

    # Speed: the full catalogue, end to end.
    matrix, kinds = generate_ward(WardSpec(n_items=4100, days=730, seed=1))
    t0 = time.perf_counter()
    proposals = advise_matrix(matrix, AdviseOptions())
    elapsed = time.perf_counter() - t0
    out.append(f"speed: {len(proposals):,} items x {matrix.n_periods} days advised in "
               f"{elapsed:.1f} s (limit 30 s)")
    out.append("")

    # Quality on ward data, at the default costs and at two others (the trade-off between
    # stock and orders is set by the order cost; the classical policy gets the same costs).
    target = 0.995
    for order_cost in (1.0, 0.3, 3.0):
        options = AdviseOptions(order_cost=order_cost, target_fill=target)
        ours, classical = compare([matrix.demand], options)
        out += table(f"Ward cabinet, 4,100 generated daily series, L=1 R=1 day, "
                     f"order cost {order_cost} EUR, holding 25%/year, unit cost 1 EUR; "
                     f"fit 548 days, replay 182", ours, classical)
        for name, base in zip(BASELINES, classical, strict=True):
            meets = (ours.fill >= target and ours.stock <= 0.8 * base.stock
                     and ours.orders <= 0.8 * base.orders)
            out.append(f"issue criterion vs {name} (fill >= {target}, stock and orders both "
                       f">= 20% below): {'MET' if meets else 'NOT MET'}")
        out.append("")
    # Per kind of generated item, default costs.
    options = AdviseOptions()
    train, test = split(matrix.demand)
    levels = propose_levels(train, options)
    (mins, maxs), (rmins, rmaxs) = baselines(train, options)
    kind = np.array(kinds)
    out.append("Per kind, order cost 1 EUR (advisor / normal + EOQ / normal + muR):")
    out.append("")
    out.append("| kind | items | fill | average stock | orders | advisor's items on "
               "classical parameters |")
    out.append("|---|---|---|---|---|---|")
    fallback = np.array([m == "normal" for m in levels.method])
    for k in ("fast", "slow", "lumpy", "sleeping"):
        sel = kind == k
        a, b, c = Totals(), Totals(), Totals()
        a.add(test[sel], levels.mins[sel], levels.maxs[sel], options, target)
        b.add(test[sel], mins[sel], maxs[sel], options, target)
        c.add(test[sel], rmins[sel], rmaxs[sel], options, target)
        out.append(f"| {k} | {int(sel.sum())} | {a.fill:.4f} / {b.fill:.4f} / {c.fill:.4f} | "
                   f"{a.stock:,.0f} / {b.stock:,.0f} / {c.stock:,.0f} | "
                   f"{a.orders:,.0f} / {b.orders:,.0f} / {c.orders:,.0f} | "
                   f"{int(fallback[sel].sum())} |")
    out.append("")

    # How far the ward criterion is against normal + EOQ: a probe with *no safety stock at
    # all* (min = the mean demand over L+R, fitted on the same 548 days) and 25% larger order
    # quantities than EOQ, i.e. 20% fewer orders. If even this has no less stock, no min/max
    # policy reaching the target can have 20% less stock and 20% fewer orders.
    horizon = options.lead_time + options.review
    probe_min = np.ceil(train.mean(axis=1) * horizon)
    probe_max = probe_min + np.maximum(1.0, np.round((maxs - mins) * 1.25))
    p, b = Totals(), Totals()
    p.add(test, probe_min, probe_max, options, target)
    b.add(test, mins, maxs, options, target)
    out.append(f"probe, no safety stock and 1.25 x EOQ: fill {p.fill:.4f}, stock "
               f"{pct(p.stock, b.stock)}, orders {pct(p.orders, b.orders)} vs normal + EOQ")
    out.append("")

    # Car parts.
    path = DATA / "carparts.csv"
    if not path.exists():
        out.append(f"car parts: {path} not found, skipped")
    else:
        groups = read_carparts()
        for lead in (1, 0):
            options = AdviseOptions(period="month", lead_time=lead, review=1)
            ours, classical = compare(groups, options)
            n = sum(g.shape[0] for g in groups)
            out += table(f"Car parts, {n:,} monthly series, L={lead} R=1 month, order cost "
                         f"1 EUR, holding 25%/year, unit cost 1 EUR; fit the first 3/4 of "
                         f"each series, replay the rest", ours, classical)
            for name, base in zip(BASELINES, classical, strict=True):
                worse_both = ours.fill < base.fill and ours.stock > base.stock
                out.append(f"issue criterion vs {name} (not worse on both fill and stock): "
                           f"{'NOT MET' if worse_both else 'MET'}")
            out.append("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
