"""The oracle bound of benchmarks/stock_frontier.py, behind docs/stock.md's "impossible":
on small random instances it never exceeds the true optimum found by brute force, and the
choices it reports are really feasible."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from stock_frontier import Grid, dual_bound, frontier_choice


def brute_force(grid: Grid, order_cap: float, lost_cap: float) -> float:
    n, c = grid.stock.shape
    best = np.inf
    for pick in itertools.product(range(c), repeat=n):
        rows = np.arange(n)
        if (grid.orders[rows, pick].sum() <= order_cap
                and grid.lost[rows, pick].sum() <= lost_cap):
            best = min(best, float(grid.stock[rows, pick].sum()))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_bound_never_exceeds_the_optimum_and_choices_are_feasible(seed):
    rng = np.random.default_rng(seed)
    n, c = 4, 5
    # Candidates trade stock against orders and lost units, as min/max policies do.
    stock = rng.uniform(1, 20, (n, c)).astype(np.float32)
    orders = (40 / stock + rng.uniform(0, 2, (n, c))).astype(np.float32)
    lost = np.maximum(0, 10 - stock + rng.normal(0, 1, (n, c))).astype(np.float32)
    grid = Grid(stock, orders, lost, np.zeros((n, c)), np.ones((n, c)), demand=100.0)
    order_cap = float(np.median(orders.sum(axis=0)))
    lost_cap = float(np.median(lost.sum(axis=0)))
    optimum = brute_force(grid, order_cap, lost_cap)
    bound, _, _, found = dual_bound(grid, order_cap, lost_cap)
    assert bound <= optimum + 1e-3
    assert found >= optimum - 1e-3  # a reported choice is never better than possible
    pick = frontier_choice(grid, order_cap, 1.0 - lost_cap / grid.demand)
    if pick is not None:
        rows = np.arange(n)
        assert grid.orders[rows, pick].sum() <= order_cap
        assert grid.lost[rows, pick].sum() <= lost_cap + 1e-3
        assert grid.stock[rows, pick].sum() >= optimum - 1e-3
