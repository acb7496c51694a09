"""Exact model (OR-Tools CP-SAT) for objective 1: proves optimality or a lower bound.

Local search cannot tell "optimal" from "stuck"; a proof can. The model is a plain
assignment (x[d, p] = drug d in pocket p, only where size/lid/pin rules allow) with one
Boolean per pocket side ``z_e``. For each side e = (p, q) and each drug i that may stand at p,
``z_e ≥ x[i, p] + Σ_{j incompatible with i} x[j, q] − 1``: aggregating the incompatible
drugs of q in one sum (at most one of them is there) gives far fewer and tighter rows than
one row per incompatible pair. It is sized for small and medium cabinets only; the solver
skips it when the model would be too large to help within the time limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from controller.layout.model import IntArray, Problem

#: Above this many terms the model is too large to give a useful bound in seconds.
MAX_TERMS = 60_000


@dataclass
class ExactResult:
    where: IntArray | None
    objective: int | None
    bound: int
    optimal: bool


def model_terms(problem: Problem) -> int:
    """Rough size of the model (linear terms), to decide whether to build it at all."""
    inc = problem.incompatible[: problem.n_drugs, : problem.n_drugs]
    return int(len(problem.edges) * 2 * (problem.n_drugs + inc.sum()))


def _grid_orbit_representatives(rows: int, cols: int,
                                square_symmetric: bool) -> list[tuple[int, int]]:
    reps = []
    for r in range(rows):
        for c in range(cols):
            images = {(r, c), (rows - 1 - r, c), (r, cols - 1 - c), (rows - 1 - r, cols - 1 - c)}
            if square_symmetric:
                images |= {(b, a) for a, b in images}
            if (r, c) == min(images):
                reps.append((r, c))
    return reps


def symmetry_anchor(problem: Problem) -> tuple[int, list[int]] | None:
    """Symmetry breaking: one drug restricted to one pocket per orbit of the cabinet's symmetries.

    Valid only when no drug-specific rule tells pockets apart (every drug allowed everywhere,
    no move limit). Mirror images of a drawer are then equivalent, and so are identical
    drawers; pinning the most constrained drug to one representative of each orbit removes up
    to 2 x 8 equivalent copies of every layout from the proof.
    """
    n = problem.n_drugs
    if n == 0 or problem.max_moves is not None or not problem.allowed[:n].all():
        return None
    inc = problem.incompatible[:n, :n]
    d0 = int(np.argmax(inc.sum(axis=1)))
    spots: list[int] = []
    seen_shapes: set[tuple[str, int, int]] = set()
    for d in problem.drawers:
        shape = (d.type, d.rows, d.cols)
        if shape in seen_shapes:
            continue  # an identical drawer is a relabelling of the first one
        seen_shapes.add(shape)
        square = d.rows == d.cols and d.type != "carousel"
        for r, c in _grid_orbit_representatives(d.rows, d.cols, square):
            spots.append(problem.pocket_index(d.id, r, c))
    return d0, spots


def solve_exact(problem: Problem, time_limit: float, hint: IntArray | None = None,
                workers: int | None = None, seed: int = 0,
                parameters: dict[str, object] | None = None) -> ExactResult:
    started = time.perf_counter()  # building the model counts against the time limit
    n, npk = problem.n_drugs, problem.n_pockets
    allowed = problem.allowed[:n]
    inc = problem.incompatible[:n, :n]
    m = cp_model.CpModel()
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    spots_of = [np.flatnonzero(allowed[d]).tolist() for d in range(n)]
    for d in range(n):
        for p in spots_of[d]:
            x[d, p] = m.new_bool_var(f"x{d}_{p}")
    by_pocket: list[list[cp_model.IntVar]] = [[] for _ in range(npk)]
    for (_, pk), v in x.items():
        by_pocket[pk].append(v)
    for d in range(n):
        m.add_exactly_one([x[d, pk] for pk in spots_of[d]])
    for pk in range(npk):
        if n == npk:
            m.add_exactly_one(by_pocket[pk])  # a full cabinet: much tighter than "at most one"
        elif len(by_pocket[pk]) > 1:
            m.add_at_most_one(by_pocket[pk])
    anchor = symmetry_anchor(problem)
    if anchor is not None:
        d0, spots = anchor
        m.add_bool_or([x[d0, p] for p in spots if (d0, p) in x])
    incompatible_of = [np.flatnonzero(inc[i]).tolist() for i in range(n)]
    compatible_of = [[j for j in np.flatnonzero(inc[i] == 0).tolist() if j != i]
                     for i in range(n)]
    z = []
    for a, b in problem.edges.tolist():
        ze = m.new_bool_var(f"z{a}_{b}")
        z.append(ze)
        for p, q in ((a, b), (b, a)):
            for i in range(n):
                if (i, p) not in x:
                    continue
                if n == npk:
                    # q is never empty, so "an incompatible drug at q" is "no compatible
                    # drug at q": the same row with the (much shorter) compatible list.
                    friends = [x[j, q] for j in compatible_of[i] if (j, q) in x]
                    m.add(ze >= x[i, p] - sum(friends))
                    continue
                others = [x[j, q] for j in incompatible_of[i] if (j, q) in x]
                if others:
                    m.add(ze >= x[i, p] + sum(others) - 1)
    # Redundant but tightening: drug i at a pocket with k sides, and only c_i drugs it is
    # compatible with (empty pockets count as compatible), has at least k - c_i bad sides.
    degree = np.zeros(npk, dtype=np.int64)
    for a, b in problem.edges.tolist():
        degree[a] += 1
        degree[b] += 1
    compatible = (n - 1) - inc.sum(axis=1) + (npk - n)
    sides: list[list[cp_model.IntVar]] = [[] for _ in range(npk)]
    for (a, b), ze in zip(problem.edges.tolist(), z, strict=True):
        sides[a].append(ze)
        sides[b].append(ze)
    for pk in range(npk):
        terms = [(int(degree[pk] - compatible[d]), x[d, pk]) for d in range(n)
                 if (d, pk) in x and degree[pk] > compatible[d]]
        if terms:
            m.add(sum(sides[pk]) >= sum(w * v for w, v in terms))
    if problem.max_moves is not None:
        stay = [x[d, int(problem.home[d])] for d in range(n)
                if problem.home[d] >= 0 and (d, int(problem.home[d])) in x]
        n_home = int((problem.home[:n] >= 0).sum())
        m.add(sum(stay) >= n_home - problem.max_moves)
    m.minimize(sum(z))
    if hint is not None:
        for (d, pk), v in x.items():
            m.add_hint(v, bool(hint[d] == pk))
    solver = cp_model.CpSolver()
    # CP-SAT overshoots its limit by a few tens of milliseconds: keep a margin.
    remaining = time_limit - (time.perf_counter() - started) - 0.05
    solver.parameters.max_time_in_seconds = max(0.01, remaining)
    # Core-based search proves "≥ k" step by step, which suits optima of a few conflicts.
    # Measured on twelve 18-drug thesis instances (seconds to prove, mean / max): default
    # portfolio, 2 workers: no bound above 0 after 10 s; core, 2 workers: 1.0-3.8 / 2.4-8.4
    # (unstable); core, 1 worker: 1.5 / 3.6; core, 1 worker, no LP relaxation: 1.0 / 2.4;
    # plus the short "no compatible neighbour" rows of a full cabinet: 0.6 / 1.6.
    # The LP relaxation of this assignment model is weak, so it only costs time.
    solver.parameters.optimize_with_core = True
    solver.parameters.linearization_level = 0
    solver.parameters.num_workers = workers or 1
    solver.parameters.random_seed = seed
    for key, val in (parameters or {}).items():  # for tuning experiments
        setattr(solver.parameters, key, val)
    status = solver.solve(m)
    bound = max(0, int(np.ceil(solver.best_objective_bound - 1e-6)))
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        where = np.full(n, -1, dtype=np.int64)
        for (d, pk), v in x.items():
            if solver.boolean_value(v):
                where[d] = pk
        obj = round(solver.objective_value)
        return ExactResult(where, obj, obj if status == cp_model.OPTIMAL else bound,
                           status == cp_model.OPTIMAL)
    return ExactResult(None, None, bound, False)
