"""Synthetic daily withdrawals of a ward cabinet, for tests, benchmarks and demos.

No real ward history is public, so the advisor is checked on series built to have what one
has: a few fast movers taken every day, many slow ones taken now and then, lumpy ones (a
patient on a course takes a box at a time), sleeping ones (a protocol stopped), quieter
weekends, slow trends and sudden shifts (a new consultant, a ward re-purposed). Seeded, so a
figure in the docs can be reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from controller.stock.history import DemandMatrix, Withdrawal

#: Share of each kind of item in a generated catalogue.
MIX: dict[str, float] = {"fast": 0.25, "slow": 0.35, "lumpy": 0.2, "sleeping": 0.2}
#: Relative demand from Monday to Sunday.
WEEKDAY = np.array([1.1, 1.1, 1.05, 1.05, 1.0, 0.75, 0.7])


@dataclass(frozen=True)
class WardSpec:
    n_items: int = 200
    days: int = 730
    seed: int = 0
    start: date = date(2024, 1, 1)


def generate_ward(spec: WardSpec | None = None) -> tuple[DemandMatrix, list[str]]:
    """A demand matrix (items × days) and the kind of each item."""
    spec = spec or WardSpec()
    rng = np.random.default_rng(spec.seed)
    n, t_len = spec.n_items, spec.days
    kinds = rng.choice(list(MIX), size=n, p=list(MIX.values()))
    days = np.arange(t_len)
    weekday = WEEKDAY[(days + spec.start.weekday()) % 7][None, :]
    # Trend: a level that drifts linearly by up to ±40% over the history.
    slope = rng.uniform(-0.4, 0.4, size=(n, 1)) * (rng.random((n, 1)) < 0.4)
    trend = 1.0 + slope * (days[None, :] / max(t_len - 1, 1) - 0.5)
    # Shift: from a random day on, the level is multiplied by 0.5–2 (for a quarter of items).
    shift_day = rng.integers(t_len // 4, max(t_len // 4 + 1, 3 * t_len // 4), size=(n, 1))
    factor = np.where(rng.random((n, 1)) < 0.25, rng.choice([0.5, 0.7, 1.5, 2.0], (n, 1)), 1.0)
    shift = np.where(days[None, :] >= shift_day, factor, 1.0)
    level = weekday * np.clip(trend, 0.2, None) * shift

    # Probability of a withdrawal day and mean quantity on such a day, per kind.
    prob = np.empty((n, 1))
    size = np.empty((n, 1))
    is_ = {k: (kinds == k)[:, None] for k in MIX}
    prob[is_["fast"][:, 0]] = 1.0
    size[is_["fast"][:, 0]] = rng.uniform(2.0, 25.0, (int(is_["fast"].sum()), 1))
    prob[is_["slow"][:, 0]] = rng.uniform(0.05, 0.4, (int(is_["slow"].sum()), 1))
    size[is_["slow"][:, 0]] = rng.uniform(1.0, 3.0, (int(is_["slow"].sum()), 1))
    prob[is_["lumpy"][:, 0]] = rng.uniform(0.02, 0.15, (int(is_["lumpy"].sum()), 1))
    size[is_["lumpy"][:, 0]] = rng.uniform(4.0, 20.0, (int(is_["lumpy"].sum()), 1))
    prob[is_["sleeping"][:, 0]] = rng.uniform(0.05, 0.3, (int(is_["sleeping"].sum()), 1))
    size[is_["sleeping"][:, 0]] = rng.uniform(1.0, 4.0, (int(is_["sleeping"].sum()), 1))

    # Sleeping items stop being used at a random day in the first two thirds.
    stop = rng.integers(max(1, t_len // 6), max(2, 2 * t_len // 3), size=(n, 1))
    awake = np.where(is_["sleeping"], days[None, :] < stop, True)

    fast_qty = rng.poisson(size * level)
    happens = rng.random((n, t_len)) < np.clip(prob * level, 0.0, 1.0)
    # Sizes of intermittent withdrawals: 1 + Poisson (never zero on a withdrawal day); lumpy
    # items draw from a wider law (negative binomial) since a course is taken in one go.
    base = 1 + rng.poisson(np.maximum(size - 1.0, 0.0), (n, t_len))
    lumpy = 1 + rng.negative_binomial(2, 2.0 / (2.0 + np.maximum(size - 1.0, 0.01)), (n, t_len))
    sporadic = np.where(is_["lumpy"], lumpy, base) * happens
    qty = np.where(is_["fast"], fast_qty, sporadic) * awake
    width = len(str(n))
    items = [f"DRUG{i:0{width}d}" for i in range(n)]
    matrix = DemandMatrix(items=items, demand=qty.astype(np.float64), period="day",
                          start=spec.start)
    return matrix, [str(k) for k in kinds]


def to_withdrawals(matrix: DemandMatrix) -> list[Withdrawal]:
    """One row per item and day with demand: the shape of the cabinet's export."""
    rows: list[Withdrawal] = []
    nz_items, nz_days = np.nonzero(matrix.demand)
    for i, t in zip(nz_items.tolist(), nz_days.tolist(), strict=True):
        rows.append((matrix.start + timedelta(days=t), matrix.items[i],
                     float(matrix.demand[i, t])))
    return rows
