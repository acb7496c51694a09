"""Replay a demand history under min/max pocket parameters.

The rules are the cabinet's, made exact so that a pharmacist can check any figure by hand:

* each pocket starts full (on hand = max, nothing on order): the day the levels go live;
  a replay can instead carry on from where another stopped (:class:`SimState`), with new
  levels but the same stock and deliveries due, as when proposals are re-fitted;
* in each period, deliveries due that period arrive first, then demand is served from what is
  on hand; what cannot be served is **lost** (a nurse takes the drug elsewhere: a ward does not
  back-order), and counts against the fill rate;
* at the end of every ``review``-th period (the ends of periods R−1, 2R−1, … counting from 0)
  the pocket is reviewed: when on hand plus on order is at or under ``min``, a restock order
  brings the position up to ``max``;
* an order placed at the end of period t arrives at the start of period t + 1 + lead_time, so a
  lead time of 0 is "restocked before the next period" and the protection interval is
  lead time + review periods;
* average stock is the mean on-hand at the end of each period (after demand);
* **fill rate = units served from stock / units demanded** (not the share of periods without
  stock-out, which flatters slow movers); a stock-out is a period with lost demand.

Everything is vectorised over items and over candidate parameter sets, so the advisor can try
dozens of (min, max) pairs per item in one pass over the history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from controller.stock.history import FloatArray


@dataclass(frozen=True)
class SimState:
    """Where a replay stopped, so that another replay can carry on from it.

    Levels are re-fitted from time to time (the pharmacist recomputes proposals from the
    journal whenever they like): the pockets keep what they hold and what is on its way, and
    only min and max change. Replaying each stretch between re-fits from a full pocket would
    credit every re-fit with a free refill, so the stretches are chained through this state.
    """

    #: Units on hand, shaped like the replay's ``mins``.
    on_hand: FloatArray
    #: Deliveries still due: a ring buffer of ``lead_time + 1`` slots, slot ``t % (L + 1)``
    #: holding what arrives at the start of absolute period ``t``.
    pipeline: FloatArray
    #: Absolute index of the next period to replay: the review calendar and the ring buffer
    #: count from the first period ever replayed, not from the start of this stretch.
    period: int


@dataclass(frozen=True)
class SimArrays:
    """Per item (and candidate) outcome of a replay; arrays share the shape of ``mins``."""

    orders: FloatArray
    demand: FloatArray
    served: FloatArray
    stockout_periods: FloatArray
    avg_stock: FloatArray
    #: Total on hand over all items at the end of each period, per candidate (C × T), or None.
    stock_path: FloatArray | None
    #: On hand of each item at the end of each period, per candidate (N × C × T), or None.
    item_paths: FloatArray | None = None
    #: The state after the last period: pass it as ``start`` to carry on.
    end: SimState | None = None

    @property
    def lost(self) -> FloatArray:
        return np.asarray(self.demand - self.served, dtype=np.float64)

    @property
    def fill_rate(self) -> FloatArray:
        """Units served / units demanded; 1 where nothing was demanded."""
        out = np.ones_like(self.demand)
        np.divide(self.served, self.demand, out=out, where=self.demand > 0)
        return out


def starting_state(start: SimState | None, full: FloatArray, lead_time: int
                   ) -> tuple[FloatArray, FloatArray, int]:
    """On hand, deliveries due and first absolute period of a replay: pockets at ``full``
    with nothing on order, or where ``start`` left them (copies: the replay writes in them).

    Deliveries are a ring buffer: slot t % (L+1) holds what arrives at the start of period
    t; an order placed at the end of t lands in the slot just emptied, due at t + 1 + L.
    """
    shape = full.shape
    slots = lead_time + 1
    if start is None:
        return np.array(full, dtype=np.float64), np.zeros((slots, *shape)), 0
    on_hand = np.asarray(start.on_hand, dtype=np.float64).reshape(shape).copy()
    pipeline = np.asarray(start.pipeline, dtype=np.float64)
    if pipeline.shape[0] != slots or pipeline[0].size != on_hand.size:
        raise ValueError("start state is for another lead time or other items")
    return on_hand, pipeline.reshape((slots, *shape)).copy(), start.period


#: The levels in force at a review: ``levels(t)`` is (mins, maxs), items × candidates, for
#: the review at the end of local period t − 1 (so it may use periods < t); ``levels(0)``
#: gives the shape and, without a start state, the full pockets.
LevelsAt = Callable[[int], tuple[FloatArray, FloatArray]]


def simulate_policy(demand: FloatArray, mins: FloatArray, maxs: FloatArray, *,
                    lead_time: int, review: int, keep_path: bool = False,
                    keep_item_paths: bool = False, start: SimState | None = None) -> SimArrays:
    """Replay ``demand`` (items × periods) under ``mins``/``maxs`` of shape (items,) or
    (items, candidates); see the module docstring for the exact rules. ``keep_item_paths``
    keeps every item's on-hand line (memory items × candidates × periods: for plots of a
    cabinet's pockets, not for the advisor's thousands of candidates).

    ``start`` carries on from an earlier replay's ``end`` (same items, same lead time, same
    shape of ``mins``) instead of starting full: min and max may differ from that replay's,
    the stock and the deliveries due are kept. Without it the pockets start full."""
    lo = np.asarray(mins, dtype=np.float64)
    hi = np.asarray(maxs, dtype=np.float64)
    squeeze = lo.ndim == 1
    if squeeze:
        lo = lo[:, None]
        hi = hi[:, None]
    if lo.shape[0] != demand.shape[0] or lo.shape != hi.shape:
        raise ValueError("mins and maxs must have one row per item")
    out = replay(demand, lambda t: (lo, hi), lead_time=lead_time, review=review,
                 keep_path=keep_path, keep_item_paths=keep_item_paths, start=start)
    if not squeeze:
        return out
    assert out.end is not None
    end = SimState(out.end.on_hand[:, 0].copy(), out.end.pipeline[:, :, 0].copy(),
                   out.end.period)
    return SimArrays(out.orders[:, 0], out.demand[:, 0], out.served[:, 0],
                     out.stockout_periods[:, 0], out.avg_stock[:, 0], out.stock_path,
                     None if out.item_paths is None else out.item_paths[:, 0], end)


def replay(demand: FloatArray, levels: LevelsAt, *, lead_time: int, review: int,
           keep_path: bool = False, keep_item_paths: bool = False,
           start: SimState | None = None) -> SimArrays:
    """The replay itself, items × candidates, with levels that may change at each review
    (:data:`LevelsAt`): constant for :func:`simulate_policy`, recomputed from the demand
    known so far for an adaptive rule. One loop, so both follow the same rules."""
    if lead_time < 0 or review < 1:
        raise ValueError("lead_time must be ≥ 0 and review ≥ 1")
    n, t_len = demand.shape
    lo, hi = levels(0)
    if lo.ndim != 2 or lo.shape[0] != n or lo.shape != hi.shape:
        raise ValueError("levels must give items × candidates arrays")
    shape = lo.shape
    slots = lead_time + 1
    on_hand, pipeline, first = starting_state(start, hi, lead_time)
    on_order = pipeline.sum(axis=0)
    orders = np.zeros(shape)
    served = np.zeros(shape)
    stockouts = np.zeros(shape)
    stock_sum = np.zeros(shape)
    path = np.zeros((shape[1], t_len)) if keep_path else None
    item_paths = np.zeros((*shape, t_len)) if keep_item_paths else None
    # Preallocated buffers and ``out=``: the loop runs once per period over items ×
    # candidates, and temporary arrays would cost more than the arithmetic.
    columns = np.ascontiguousarray(demand.T)
    take = np.empty(shape)
    short = np.empty(shape, dtype=bool)
    position = np.empty(shape)
    need = np.empty(shape, dtype=bool)
    for t in range(t_len):
        now = first + t
        slot = pipeline[now % slots]
        on_hand += slot
        on_order -= slot
        d = columns[t][:, None]
        np.minimum(on_hand, d, out=take)
        on_hand -= take
        served += take
        np.less(take, d, out=short)
        stockouts += short
        stock_sum += on_hand
        if path is not None:
            path[:, t] = on_hand.sum(axis=0)
        if item_paths is not None:
            item_paths[:, :, t] = on_hand
        if (now + 1) % review == 0:
            lo, hi = levels(t + 1)
            np.add(on_hand, on_order, out=position)
            np.less_equal(position, lo, out=need)
            # The order lands in the slot just emptied: due at the start of t + 1 + L.
            np.subtract(hi, position, out=slot)
            slot *= need
            np.maximum(slot, 0.0, out=slot)
            orders += slot > 0
            on_order += slot
        else:
            slot.fill(0.0)
    total = np.broadcast_to(demand.sum(axis=1, keepdims=True), shape).copy()
    avg = stock_sum / max(t_len, 1)
    end = SimState(on_hand.copy(), pipeline.copy(), first + t_len)
    return SimArrays(orders, total, served, stockouts, avg, path, item_paths, end)
