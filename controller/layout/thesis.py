"""The thesis's protocol (chapter III), its three heuristics, and the engine on the same draws.

Protocol (III.5, III.7): a symmetric similarity matrix with uniform random entries in [0, 1)
and a zero diagonal; a threshold turns it into the incompatibility matrix (S ≥ threshold);
conflicts are incompatible pairs in pockets that share a side within a drawer. Pockets are
filled drawer by drawer, column by column (the order of its figure 3.10).

Heuristics (III.4.1): 1. direct fill in drug order; 2. drugs sorted by decreasing number of
incompatibles, then filled; 3. that sorted list taken alternately from both ends (strongest,
weakest, second strongest, second weakest…), then filled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from controller.layout.model import Drawer, Drug, FloatArray, IntArray, Problem, conflicts_of
from controller.layout.solver import solve

#: (label, drawers, rows, cols) of tables 3.4-3.7.
CONFIGURATIONS: tuple[tuple[str, int, int, int], ...] = (
    ("18 drugs, 2 drawers 3x3", 2, 3, 3),
    ("120 drugs, 4 drawers 5x6", 4, 5, 6),
    ("144 drugs, 4 drawers 6x6", 4, 6, 6),
)
#: Table 3.7: means of 100 trials, threshold 0.25 (direct, sorted, alternated).
TABLE_3_7: tuple[tuple[float, float, float], ...] = (
    (17.17, 16.8, 16.15), (145.7, 146.7, 145.3), (179.53, 180.48, 177.21))
THRESHOLDS_3_8 = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)
#: Table 3.8: 18-drug cabinet, 100 trials per threshold; rows = heuristics 1, 2, 3.
TABLE_3_8: tuple[tuple[float, ...], ...] = (
    (16.31, 15.33, 14.3, 13.03, 11.68, 11.01, 10.28, 8.95, 7.46, 6.58, 5.74),
    (16.34, 16.35, 15.55, 13.86, 13.13, 11.92, 10.9, 9.77, 9.17, 7.86, 6.94),
    (16.9, 15.81, 14.23, 13.24, 11.68, 10.64, 9.61, 8.49, 7.08, 5.97, 4.96),
)


def random_similarity(n: int, rng: np.random.Generator) -> FloatArray:
    upper = np.triu(rng.random((n, n)), 1)
    return upper + upper.T


def thesis_problem(drawers: int, rows: int, cols: int, similarity: FloatArray,
                   threshold: float) -> Problem:
    n = drawers * rows * cols
    return Problem([Drawer(f"T{k + 1}", "matrix", rows, cols) for k in range(drawers)],
                   [Drug(f"M{i + 1}") for i in range(n)], similarity, threshold)


def fill_order(problem: Problem) -> IntArray:
    """Pockets in the thesis's filling order: drawer by drawer, down each column."""
    return np.array([problem.pocket_index(d.id, r, c) for d in problem.drawers
                     for c in range(d.cols) for r in range(d.rows)], dtype=np.int64)


def _fill(problem: Problem, order: Sequence[int]) -> IntArray:
    where = np.empty(problem.n_drugs, dtype=np.int64)
    where[np.asarray(order, dtype=np.int64)] = fill_order(problem)[: problem.n_drugs]
    return where


def heuristic_direct(problem: Problem) -> IntArray:
    return _fill(problem, range(problem.n_drugs))


def _by_incompatibles(problem: Problem) -> list[int]:
    n = problem.n_drugs
    degree = problem.incompatible[:n, :n].sum(axis=1)
    return sorted(range(n), key=lambda i: (-int(degree[i]), i))


def heuristic_sorted(problem: Problem) -> IntArray:
    return _fill(problem, _by_incompatibles(problem))


def heuristic_alternate(problem: Problem) -> IntArray:
    ranked = _by_incompatibles(problem)
    order: list[int] = []
    lo, hi = 0, len(ranked) - 1
    while lo <= hi:
        order.append(ranked[lo])
        if lo != hi:
            order.append(ranked[hi])
        lo, hi = lo + 1, hi - 1
    return _fill(problem, order)


HEURISTICS: tuple[tuple[str, Callable[[Problem], IntArray]], ...] = (
    ("direct", heuristic_direct), ("sorted", heuristic_sorted),
    ("alternate", heuristic_alternate))


@dataclass
class Row:
    label: str
    means: list[float]          # direct, sorted, alternate, engine
    thesis: Sequence[float]     # the thesis's three figures
    optimal_share: float        # engine runs whose objective 1 is proven optimal
    max_seconds: float


def run_trials(drawers: int, rows: int, cols: int, threshold: float, trials: int,
               rng: np.random.Generator, time_limit: float) -> tuple[list[float], float, float]:
    n = drawers * rows * cols
    sums = [0.0] * 4
    proven = 0
    slowest = 0.0
    for t in range(trials):
        problem = thesis_problem(drawers, rows, cols, random_similarity(n, rng), threshold)
        for k, (_, heuristic) in enumerate(HEURISTICS):
            sums[k] += conflicts_of(problem, heuristic(problem))[0]
        t0 = time.perf_counter()
        sol = solve(problem, time_limit, seed=t, same_drawer=False)
        slowest = max(slowest, time.perf_counter() - t0)
        sums[3] += sol.adjacent_conflicts
        proven += sol.lower_bound == sol.adjacent_conflicts
    return [s / trials for s in sums], proven / trials, slowest


def reproduce(trials: int = 100, seed: int = 0, time_limit: float = 1.0,
              progress: Callable[[str], None] | None = None) -> tuple[list[Row], list[Row]]:
    """Tables 3.7 and 3.8 re-run: our heuristics, the engine, and the thesis's figures."""
    rng = np.random.default_rng(seed)
    t37 = []
    for (label, nd, r, c), fig in zip(CONFIGURATIONS, TABLE_3_7, strict=True):
        means, share, slowest = run_trials(nd, r, c, 0.25, trials, rng, time_limit)
        t37.append(Row(label, means, fig, share, slowest))
        if progress:
            progress(label)
    t38 = []
    for k, thr in enumerate(THRESHOLDS_3_8):
        means, share, slowest = run_trials(2, 3, 3, thr, trials, rng, time_limit)
        t38.append(Row(f"threshold {thr:.2f}", means, [row[k] for row in TABLE_3_8], share,
                       slowest))
        if progress:
            progress(f"threshold {thr:.2f}")
    return t37, t38


def format_tables(t37: list[Row], t38: list[Row], trials: int, time_limit: float) -> str:
    head = (f"{'':26s} {'direct':>15s} {'sorted':>15s} {'alternate':>15s} "
            f"{'engine':>8s} {'proven':>7s} {'max s':>6s}")
    sub = f"{'':26s} {'ours / thesis':>15s} {'ours / thesis':>15s} {'ours / thesis':>15s}"

    def line(row: Row) -> str:
        cells = [f"{row.means[k]:6.2f} / {row.thesis[k]:6.2f}" for k in range(3)]
        return (f"{row.label:26s} {cells[0]:>15s} {cells[1]:>15s} {cells[2]:>15s} "
                f"{row.means[3]:8.2f} {row.optimal_share:6.0%} {row.max_seconds:6.2f}")

    out = [f"Adjacent incompatible pairs, mean of {trials} random trials "
           f"(engine time limit {time_limit:g} s per solve)",
           "Moyenne des couples incompatibles voisins sur "
           f"{trials} essais aléatoires", "",
           "Table 3.7 (threshold / seuil 0.25)", head, sub]
    out += [line(r) for r in t37]
    out += ["", "Table 3.8 (18 drugs, 2 drawers 3x3 / 18 médicaments, 2 tiroirs 3x3)", head, sub]
    out += [line(r) for r in t38]
    out += ["", "proven = share of engine solves whose optimum is proven (lower bound reached) "
            "/ part des optimums prouvés"]
    return "\n".join(out)
