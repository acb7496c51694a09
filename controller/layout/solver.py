"""``solve(problem, time_limit, seed)``: tabu search, then a proof when one is affordable.

Small and medium cabinets get a short tabu run (usually already optimal) whose layout hints
the exact CP-SAT model; the model either proves it optimal, improves it, or leaves a lower
bound. Large cabinets spend the whole budget on tabu search. A layout with no adjacent
conflict is optimal for objective 1 without any proof (0 is a bound).
"""

from __future__ import annotations

import time

import numpy as np

from controller.errors import InputError
from controller.layout.exact import MAX_TERMS, model_terms, solve_exact
from controller.layout.model import Problem, Solution, conflicts_of, where_to_placements
from controller.layout.search import Tabu, fewest_moves_layout, initial_layout, tabu_search


def solve(problem: Problem, time_limit: float = 10.0, seed: int = 0, *,
          same_drawer: bool = True, exact: bool | None = None) -> Solution:
    """Best layout found within ``time_limit`` seconds (deterministic for a given seed,
    up to where the clock stops the search).

    ``same_drawer=False`` ignores objective 2 (the thesis's protocol counts only pockets that
    share a side). ``exact``: force the CP-SAT proof on or off (default: when small enough).
    """
    if not time_limit > 0:
        raise InputError("time_limit: must be > 0 seconds", "time_limit : doit être > 0 s",
                         field="time_limit")
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    rng = np.random.default_rng(seed)
    n = problem.n_drugs
    if n == 0:
        return Solution([], 0, 0, 0, time.perf_counter() - t0)
    start = initial_layout(problem, rng)
    st = Tabu(problem, same_drawer=same_drawer)
    st.load(start)
    moved0 = st.moved()
    if problem.max_moves is not None and moved0 > problem.max_moves:
        # The greedy start may move more drugs than the rules force: judge by the fewest.
        fewest = fewest_moves_layout(problem)
        if fewest is not None:
            start = fewest
            st.load(start)
            moved0 = st.moved()
    if problem.max_moves is not None and moved0 > problem.max_moves:
        raise InputError(
            f"max_moves: the size/lid/pin rules force {moved0} drugs out of today's pockets, "
            f"more than max_moves = {problem.max_moves}",
            f"max_moves : les règles de taille, couvercle ou réservation obligent à déplacer "
            f"{moved0} médicaments, plus que max_moves = {problem.max_moves}",
            field="max_moves")
    use_exact = model_terms(problem) <= MAX_TERMS if exact is None else exact
    # Phase 1: objective 1 (and moves) only; every pocket of an open drawer is "in conflict"
    # for objective 2, which would drown the few pockets that matter for objective 1.
    polish_wanted = same_drawer and bool(st.mat.any())
    phase1 = Tabu(problem, same_drawer=False)
    target = phase1.w1 - 1 if polish_wanted else 0
    budget = min(time_limit * 0.1, 0.25) if use_exact else time_limit * (
        0.6 if polish_wanted else 1.0)
    res = tabu_search(problem, start, deadline=min(deadline, t0 + budget), seed=seed,
                      same_drawer=False, target=target)
    where = res.where
    adjacent, _ = conflicts_of(problem, where)
    lower: int | None = 0 if adjacent == 0 else None
    if not use_exact and adjacent > 0 and polish_wanted:
        # no proof coming: keep pushing objective 1 before polishing objective 2
        res = tabu_search(problem, where, deadline=min(deadline, t0 + 0.8 * time_limit),
                          seed=seed + 2, same_drawer=False, target=target)
        where = res.where
        adjacent, _ = conflicts_of(problem, where)
        lower = 0 if adjacent == 0 else None
    if use_exact and adjacent > 0 and time.perf_counter() < deadline - 0.05:
        ex = solve_exact(problem, deadline - time.perf_counter(), hint=where, seed=seed)
        lower = ex.bound
        if ex.where is not None and ex.objective is not None and ex.objective < adjacent:
            where, adjacent = ex.where, ex.objective
    # Phase 3: remaining time lowers objective 2 (then 3) without giving back objective 1.
    if polish_wanted and time.perf_counter() < deadline - 0.05:
        polish = tabu_search(problem, where, deadline=deadline, seed=seed + 1,
                             same_drawer=True)
        if conflicts_of(problem, polish.where)[0] <= adjacent:
            where = polish.where
    adjacent, same = conflicts_of(problem, where)
    moved = None
    if problem.current is not None:
        st.load(where)
        moved = st.moved()
    return Solution(where_to_placements(problem, where), adjacent, same, lower,
                    time.perf_counter() - t0, moved)
