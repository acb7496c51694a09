"""Tabu search over swaps, the engine's workhorse.

The layout problem is a quadratic assignment problem (flow = incompatibility, distance =
"shares a side", plus "same open drawer"), and it behaves like graph colouring: what matters
is the handful of pockets still in conflict. So, as in Tabucol, each iteration evaluates
every swap of a *conflicting* pocket with any other pocket (empty ones included), all at once
with numpy, and takes the best non-tabu one. Per-pocket sums ``M_adj`` (incompatible
neighbours of each drug if it stood there) and per-drawer sums ``K`` make a swap's cost change
a few table look-ups; a swap updates them in O(degree · n) instead of recounting.

The three objectives (adjacent pairs, same-open-drawer pairs, drugs moved from today's
layout) are folded into one integer cost with weights large enough to keep their order.
Hard rules (pocket size, lids for high-alert/controlled drugs, pins, ``max_moves``) are masks:
a swap that breaks one is never considered, so every visited layout is valid.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from controller.layout.model import IntArray, Problem, bad


@dataclass
class SearchResult:
    where: IntArray
    cost: int
    iterations: int
    seconds: float


def initial_layout(problem: Problem, rng: np.random.Generator) -> IntArray:
    """A valid layout: today's placements where still allowed, the rest by bipartite matching.

    Greedy most-constrained-first usually suffices; an augmenting path (which may shift an
    already placed drug to another allowed pocket) rescues the cases where it does not, so a
    layout is found whenever one exists.
    """
    n, npk = problem.n_drugs, problem.n_pockets
    allowed = problem.allowed
    holder = np.full(npk, -1, dtype=np.int64)
    where = np.full(n, -1, dtype=np.int64)
    for d in range(n):
        h = int(problem.home[d])
        if h >= 0 and allowed[d, h] and holder[h] < 0:
            holder[h], where[d] = d, h
    todo = [d for d in range(n) if where[d] < 0]
    todo.sort(key=lambda d: (int(allowed[d].sum()), rng.random()))
    for d in todo:
        options = np.flatnonzero(allowed[d, :npk] & (holder < 0))
        if len(options):
            p = int(rng.choice(options))
            holder[p], where[d] = d, p
            continue
        if not _augment(d, allowed, holder, where):
            raise bad("drugs", f"no layout can hold every drug: {problem.drugs[d].id} has no "
                      "free pocket its size, lid or pin rule allows",
                      f"aucune disposition ne peut accueillir tous les médicaments : "
                      f"{problem.drugs[d].id} n'a plus d'emplacement permis")
    return where


def fewest_moves_layout(problem: Problem) -> IntArray | None:
    """A valid layout moving as few drugs of ``current`` as the hard rules allow (None if no
    valid layout exists).

    :func:`initial_layout` is greedy: to make room for a constrained drug it may push a drug
    out of today's pocket when moving a new drug would have done, so its move count is not
    what the rules force. ``max_moves`` is judged against this minimum instead: a min-cost
    matching (drug -> pocket costs 1 for a drug of ``current`` leaving its pocket, else 0).
    Each drug keeps arcs to its home and to ``n`` other allowed pockets: the other n - 1
    drugs hold at most n - 1 of those, so some optimal matching uses no other arc, and the
    graph stays at most n (n + 1) arcs even on a 100,000-pocket cabinet.
    """
    from ortools.graph.python import min_cost_flow

    n, npk = problem.n_drugs, problem.n_pockets
    tails: list[IntArray] = []
    heads: list[IntArray] = []
    costs: list[IntArray] = []
    for d in range(n):
        options = np.flatnonzero(problem.allowed[d, :npk])
        h = int(problem.home[d])
        others = options[options != h][:n]
        tails.append(np.full(len(others), d, dtype=np.int64))
        heads.append(others)
        costs.append(np.full(len(others), 1 if h >= 0 else 0, dtype=np.int64))
        if h >= 0 and problem.allowed[d, h]:
            tails.append(np.array([d], dtype=np.int64))
            heads.append(np.array([h], dtype=np.int64))
            costs.append(np.zeros(1, dtype=np.int64))
    tail = np.concatenate(tails) if tails else np.zeros(0, dtype=np.int64)
    head = np.concatenate(heads) if heads else np.zeros(0, dtype=np.int64)
    cost = np.concatenate(costs) if costs else np.zeros(0, dtype=np.int64)
    pockets, pocket_node = np.unique(head, return_inverse=True)
    sink = n + len(pockets)
    flow = min_cost_flow.SimpleMinCostFlow()
    first = flow.add_arcs_with_capacity_and_unit_cost(
        tail, n + pocket_node, np.ones(len(tail), dtype=np.int64), cost)
    flow.add_arcs_with_capacity_and_unit_cost(
        n + np.arange(len(pockets)), np.full(len(pockets), sink),
        np.ones(len(pockets), dtype=np.int64), np.zeros(len(pockets), dtype=np.int64))
    supplies = np.zeros(sink + 1, dtype=np.int64)
    supplies[:n] = 1
    supplies[sink] = -n
    flow.set_nodes_supplies(np.arange(sink + 1), supplies)
    if n == 0 or flow.solve() != flow.OPTIMAL:
        return None
    used = flow.flows(first) > 0
    where = np.full(n, -1, dtype=np.int64)
    where[tail[used]] = head[used]
    return where


def _augment(start: int, allowed: np.ndarray, holder: IntArray, where: IntArray) -> bool:
    parent: dict[int, int] = {}  # pocket -> drug that wants it
    queue = deque([start])
    seen_drugs = {start}
    while queue:
        d = queue.popleft()
        for p in np.flatnonzero(allowed[d, : len(holder)]).tolist():
            if p in parent:
                continue
            parent[p] = d
            if holder[p] < 0:
                while True:  # shift drugs back along the path
                    drug = parent[p]
                    old = int(where[drug])
                    holder[p], where[drug] = drug, p
                    if drug == start:
                        return True
                    p = old
            other = int(holder[p])
            if other not in seen_drugs:
                seen_drugs.add(other)
                queue.append(other)
    return False


class Tabu:
    """Incremental state of one layout under swaps; see the module docstring."""

    def __init__(self, problem: Problem, *, same_drawer: bool = True) -> None:
        self.problem = problem
        n, npk = problem.n_drugs, problem.n_pockets
        self.n, self.P = n, npk
        self.inc = problem.incompatible.astype(np.int64)
        self.drawer = np.array([k for k, _, _ in problem.pockets], dtype=np.int64)
        is_matrix = np.array([d.type == "matrix" for d in problem.drawers])
        self.mat = is_matrix[self.drawer].astype(np.int64) if same_drawer \
            else np.zeros(npk, dtype=np.int64)
        nbrs: list[list[int]] = [[] for _ in range(npk)]
        for a, b in problem.edges.tolist():
            nbrs[a].append(b)
            nbrs[b].append(a)
        self.nbrs = [np.array(x, dtype=np.int64) for x in nbrs]
        homes = problem.home[:n]
        n_home = int((homes >= 0).sum())
        self.w3 = 1 if n_home else 0
        self.w2 = (n_home + 1) if (self.mat.any()) else 0
        n_pairs = int(self.inc.sum()) // 2
        self.w1 = self.w2 * (n_pairs + 1) + n_home + 1
        # mv[d, p] = 1 if drug d has a home and p is not it (the empty pseudo-drug never moves).
        mv = np.zeros((n + 1, npk), dtype=np.int64)
        for d in range(n):
            if homes[d] >= 0:
                mv[d] = 1
                mv[d, homes[d]] = 0
        self.mv = mv
        self.max_moves = problem.max_moves
        allowed = np.ones((n + 1, npk), dtype=bool)
        allowed[:n] = problem.allowed[:n]
        self.allowed = allowed

    def load(self, where: IntArray) -> None:
        n, npk = self.n, self.P
        x = np.full(npk, n, dtype=np.int64)
        x[where] = np.arange(n)
        self.x = x
        inc = self.inc
        self.m_adj = np.zeros((npk, n + 1), dtype=np.int64)
        for p in range(npk):
            if len(self.nbrs[p]):
                self.m_adj[p] = inc[x[self.nbrs[p]]].sum(axis=0)
        nk = len(self.problem.drawers)
        self.k = np.zeros((nk, n + 1), dtype=np.int64)
        for k in range(nk):
            self.k[k] = inc[x[self.drawer == k]].sum(axis=0)
        self.cost = self.full_cost()

    def full_cost(self) -> int:
        x, ar = self.x, np.arange(self.P)
        c = self.w1 * self.m_adj[ar, x] + self.w2 * self.mat * self.k[self.drawer, x]
        return int(c.sum()) // 2 + self.w3 * int(self.mv[x, ar].sum())

    def moved(self) -> int:
        return int(self.mv[self.x, np.arange(self.P)].sum())

    def where(self) -> IntArray:
        w = np.empty(self.n, dtype=np.int64)
        real = self.x < self.n
        w[self.x[real]] = np.flatnonzero(real)
        return w

    def pocket_costs(self) -> tuple[IntArray, IntArray]:
        """(pairwise cost each pocket takes part in, its moved-drug cost)."""
        x, ar = self.x, np.arange(self.P)
        c = self.w1 * self.m_adj[ar, x] + self.w2 * self.mat * self.k[self.drawer, x]
        return c, self.w3 * self.mv[x, ar]

    def wpair(self, rows: IntArray) -> IntArray:
        """Pair weight of each pocket in ``rows`` with every pocket: w1 if they share a side,
        plus w2 if they share an open drawer.

        Built for the examined rows only (at most :data:`ROW_CAP`): a pocket-by-pocket
        table is P² integers, 80 GB for the 100,000 pockets a problem may have, and it was
        rebuilt by every search phase (6,000 pockets took 1.5 GB and 7 s over a 1 s limit).
        """
        out = np.zeros((len(rows), self.P), dtype=np.int64)
        if self.w2:
            same = (self.drawer[rows][:, None] == self.drawer[None, :]) \
                & (self.mat[rows][:, None] > 0)
            same[np.arange(len(rows)), rows] = False
            out += self.w2 * same
        for k, r in enumerate(rows.tolist()):
            out[k, self.nbrs[r]] += self.w1
        return out

    def deltas(self, rows: IntArray, c: IntArray) -> tuple[IntArray, np.ndarray]:
        """Cost change of swapping each pocket in ``rows`` with every pocket, and validity."""
        x, inc, n = self.x, self.inc, self.n
        xr = x[rows]
        dr = self.drawer
        # M[r, d]: cost pocket r would take part in if it held drug d (others unchanged).
        m_rows = self.w1 * self.m_adj[rows] + self.w2 * self.mat[rows, None] * (
            self.k[dr[rows]] - inc[xr])
        m_cols = self.w1 * self.m_adj[:, xr] + self.w2 * self.mat[:, None] * (
            self.k[dr[:, None], xr[None, :]] - inc[x[:, None], xr[None, :]])
        d = m_rows[:, x] + m_cols.T - c[rows, None] - c[None, :]
        d += 2 * self.wpair(rows) * inc[xr][:, x]
        mvr = self.mv[xr]            # drug at r moving to q
        # Indexed in one step: mv[x] alone would be a P x P table (75 GiB at 100,000 pockets).
        mvc = self.mv[x[:, None], rows[None, :]].T  # drug at q moving to r
        mv_now = self.mv[x, np.arange(self.P)]
        dm = mvr + mvc - mv_now[rows, None] - mv_now[None, :]
        d += self.w3 * dm
        valid = self.allowed[xr] & self.allowed[x[:, None], rows[None, :]].T
        valid &= ~((xr[:, None] == n) & (x[None, :] == n))
        valid[np.arange(len(rows)), rows] = False
        if self.max_moves is not None:
            valid &= (self.moved() + dm) <= self.max_moves
        return d, valid

    def swap(self, p: int, q: int) -> None:
        a, b = int(self.x[p]), int(self.x[q])
        diff = self.inc[b] - self.inc[a]
        if len(self.nbrs[p]):
            self.m_adj[self.nbrs[p]] += diff
        if len(self.nbrs[q]):
            self.m_adj[self.nbrs[q]] -= diff
        self.k[self.drawer[p]] += diff
        self.k[self.drawer[q]] -= diff
        self.x[p], self.x[q] = b, a


def tabu_search(problem: Problem, start: IntArray, *, deadline: float, seed: int,
                target: int = 0, same_drawer: bool = True,
                max_iterations: int | None = None) -> SearchResult:
    """Improve ``start`` until ``deadline`` (``time.perf_counter()``) or cost ≤ ``target``.

    Stagnation triggers a restart from the best layout shaken by random valid swaps: plain
    tabu search gets stuck in one basin on these near-random incompatibility graphs.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    st = Tabu(problem, same_drawer=same_drawer)
    st.load(start)
    best_x, best_cost = st.x.copy(), st.cost
    tabu = np.zeros((st.n + 1, st.P), dtype=np.int64)
    it = 0
    since_best = 0
    stall = max(500, 10 * st.P)
    while best_cost > target:
        if time.perf_counter() >= deadline:
            break
        if max_iterations is not None and it >= max_iterations:
            break
        it += 1
        c, u = st.pocket_costs()
        rows = _candidate_rows(st, c, u, rng)
        if len(rows) == 0:
            break
        d, valid = st.deltas(rows, c)
        x = st.x
        is_tabu = (tabu[x[rows]] > it) | (it < tabu[x[:, None], rows[None, :]].T)
        ok = valid & (~is_tabu | (st.cost + d < best_cost))
        if not ok.any():
            ok = valid
            if not ok.any():
                break
        dm = np.where(ok, d, np.iinfo(np.int64).max)
        flat = np.flatnonzero(dm == dm.min())
        pick = int(flat[rng.integers(len(flat))])
        r, q = int(rows[pick // st.P]), pick % st.P
        a, b = int(x[r]), int(x[q])
        st.swap(r, q)
        st.cost += int(d.flat[pick])
        conflicted = len(rows)
        tenure = int(rng.integers(10)) + int(0.6 * conflicted)
        tabu[a, r] = it + tenure
        tabu[b, q] = it + tenure
        tabu[st.n] = 0
        if st.cost < best_cost:
            best_cost, best_x = st.cost, st.x.copy()
            since_best = 0
        else:
            since_best += 1
            if since_best > stall:
                _shake(st, best_x, rng)
                tabu[:] = 0
                since_best = 0
    st.x = best_x
    return SearchResult(st.where(), best_cost, it, time.perf_counter() - t0)


#: At most this many pockets are examined per iteration (each against every pocket), so an
#: iteration stays around a millisecond on a 1,000-pocket cabinet.
ROW_CAP = 64


def _candidate_rows(st: Tabu, c: IntArray, u: IntArray, rng: np.random.Generator) -> IntArray:
    """Conflicting pockets; when there are too many, the adjacent conflicts first (objective 1
    outranks the rest), topped up with a random sample of the others."""
    rows = np.flatnonzero((c + u) > 0)
    if len(rows) <= ROW_CAP:
        return rows
    adjacent = rows[c[rows] >= st.w1]
    if len(adjacent) >= ROW_CAP:
        return np.sort(rng.choice(adjacent, ROW_CAP, replace=False))
    others = rows[c[rows] < st.w1]
    extra = rng.choice(others, ROW_CAP - len(adjacent), replace=False)
    return np.sort(np.concatenate([adjacent, extra]))


def _shake(st: Tabu, best_x: IntArray, rng: np.random.Generator) -> None:
    """Restart near the best layout: a few random valid swaps among conflicting pockets."""
    st.load(_where_of(best_x, st.n))
    for _ in range(max(3, st.P // 20)):
        c, u = st.pocket_costs()
        rows = np.flatnonzero((c + u) > 0)
        if len(rows) == 0:
            return
        _, valid = st.deltas(rows, c)
        cand = np.flatnonzero(valid)
        if len(cand) == 0:
            return
        pick = int(rng.choice(cand))
        st.swap(int(rows[pick // st.P]), pick % st.P)
    st.cost = st.full_cost()


def _where_of(x: IntArray, n: int) -> IntArray:
    w = np.empty(n, dtype=np.int64)
    real = x < n
    w[x[real]] = np.flatnonzero(real)
    return w
