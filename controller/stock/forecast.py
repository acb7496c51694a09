"""Forecasters made for intermittent demand, vectorised over items with plain NumPy.

Most drugs in a ward cabinet are not taken every day: a series is mostly zeros with a few
withdrawals of varying size. Simple exponential smoothing or a moving average then lurches
after each withdrawal and decays in between, so its value on the day the parameters are set is
luck. The methods below model the two things that matter separately (how often, how much):

* Croston (1972) and its bias-corrected form SBA (Syntetos & Boylan 2005);
* TSB (Teunter, Syntetos & Babai 2011), which lets the demand probability decay, so an item
  going to sleep is noticed;
* IMAPA (Petropoulos & Kourentzes 2015), temporal aggregation over several bucket sizes
  (ADIDA is the one-level case), which averages out the zeros;
* a plain bootstrap level (the historical mean), whose distribution is the history itself.

Every function takes a matrix ``y`` of demand (items × periods, oldest first) and returns the
forecast per item as a rate per period. Loops run over periods, never over items, so a
catalogue of thousands of drugs costs the same Python overhead as one. NumPy only on purpose:
statsforecast needs numba/LLVM, heavy to build and slow to start on a Raspberry Pi.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from controller.stock.history import FloatArray

#: Smoothing constants: the small values the literature recommends for intermittent series.
ALPHA = 0.1
TSB_BETA = 0.1
IMAPA_MAX_LEVEL = 12
#: Demand periods a smoothed forecast needs before it says more about the item than about
#: how it was started or when its last withdrawals fell. With a constant α an exponentially
#: smoothed estimate averages over about the last 1/α updates. Croston's and SBA's size and
#: interval, and TSB's size, are updated once per demand period: with fewer than 1/α of them
#: they still weigh their starting values heavily. TSB's probability and IMAPA's levels jump
#: by α at each withdrawal and decay in between: with few withdrawals their final value says
#: when the last ones came more than how often they come.
WARM_UP_EVENTS = round(1 / ALPHA)
#: Methods with nothing to warm up: the plain mean over the active periods.
UNSMOOTHED = frozenset({"bootstrap"})


def croston(y: FloatArray, alpha: float = ALPHA) -> FloatArray:
    """Croston: smoothed demand size over smoothed interval, both updated on demand periods.

    Initialised with the first demand and the number of periods up to it (counting that one).
    """
    n, t_len = y.shape
    size = np.zeros(n)
    interval = np.ones(n)
    started = np.zeros(n, dtype=bool)
    last = np.full(n, -1.0)
    for t in range(t_len):
        has = y[:, t] > 0
        gap = t - last
        first = has & ~started
        upd = has & started
        size[first] = y[first, t]
        interval[first] = gap[first]
        size[upd] += alpha * (y[upd, t] - size[upd])
        interval[upd] += alpha * (gap[upd] - interval[upd])
        started |= has
        last[has] = t
    return np.where(started, size / interval, 0.0)


def sba(y: FloatArray, alpha: float = ALPHA) -> FloatArray:
    """Syntetos–Boylan approximation: Croston times (1 − α/2), removing its known upward bias."""
    return croston(y, alpha) * (1.0 - alpha / 2.0)


def active_periods(y: FloatArray) -> FloatArray:
    """Periods from each item's first withdrawal to the end (at least 1).

    Zeros before an item's first withdrawal say it was not stocked yet, not that nobody
    needed it: counting them would dilute the rate of every drug introduced mid-history.
    """
    t_len = y.shape[1]
    has = y > 0
    first = np.where(has.any(axis=1), has.argmax(axis=1), t_len - 1)
    return np.asarray(np.maximum(t_len - first, 1), dtype=np.float64)


def tsb(y: FloatArray, alpha: float = ALPHA, beta: float = TSB_BETA) -> FloatArray:
    """TSB: demand probability updated every period, size on demand periods; forecast p × z.

    Initialised with the share of active periods with demand and the mean non-zero size, so a
    short history does not start from an arbitrary guess; updates start at the first demand.
    """
    n, t_len = y.shape
    nonzero = y > 0
    count = nonzero.sum(axis=1)
    active = active_periods(y)
    first = t_len - active
    prob = count / active
    size = np.divide(y.sum(axis=1), count, out=np.zeros(n), where=count > 0)
    for t in range(t_len):
        has = nonzero[:, t]
        live = t >= first
        prob = np.where(live, prob + beta * (has - prob), prob)
        size[has] += alpha * (y[has, t] - size[has])
    return np.asarray(prob * size, dtype=np.float64)


def ses(y: FloatArray, alpha: float = ALPHA) -> FloatArray:
    """Simple exponential smoothing, initialised with the series mean (stable on short series)."""
    level = y.mean(axis=1) if y.shape[1] else np.zeros(y.shape[0])
    for t in range(y.shape[1]):
        level = level + alpha * (y[:, t] - level)
    return np.asarray(level, dtype=np.float64)


def adida(y: FloatArray, level: int, alpha: float = ALPHA) -> FloatArray:
    """ADIDA: sum into non-overlapping buckets of ``level`` periods (aligned on the most recent
    period), smooth the bucket series with SES, divide back to a rate per period."""
    t_len = y.shape[1]
    buckets = t_len // level
    if buckets == 0:
        return np.asarray(y.sum(axis=1) / max(t_len, 1), dtype=np.float64)
    tail = y[:, t_len - buckets * level:]
    agg = tail.reshape(y.shape[0], buckets, level).sum(axis=2)
    return ses(agg, alpha) / level


def imapa(y: FloatArray, max_level: int = IMAPA_MAX_LEVEL, alpha: float = ALPHA) -> FloatArray:
    """IMAPA: the mean of ADIDA over levels 1..K, K = min(max_level, periods // 4, ≥ 1).

    Averaging levels hedges between reacting fast (level 1) and seeing through zeros (high
    levels) without choosing one per item on an error measure.
    """
    levels = max(1, min(max_level, y.shape[1] // 4))
    return np.mean([adida(y, k, alpha) for k in range(1, levels + 1)], axis=0)


def bootstrap_level(y: FloatArray) -> FloatArray:
    """The mean over active periods: with it the lead-time demand distribution is the history
    unscaled."""
    if y.shape[1] == 0:
        return np.zeros(y.shape[0])
    return np.asarray(y.sum(axis=1) / active_periods(y), dtype=np.float64)


#: The methods the advisor tries for every item, by the name written in the parameters file.
METHODS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "croston": croston,
    "sba": sba,
    "tsb": tsb,
    "imapa": imapa,
    "bootstrap": bootstrap_level,
}


def forecast_all(y: FloatArray, methods: Sequence[str]) -> FloatArray:
    """Forecasts of ``methods`` side by side (items × methods); SBA reuses Croston's pass."""
    cache: dict[str, FloatArray] = {}

    def run(name: str) -> FloatArray:
        if name == "sba" and "croston" in cache:
            return cache["croston"] * (1.0 - ALPHA / 2.0)
        cache[name] = METHODS[name](y)
        return cache[name]

    order = sorted(methods, key=lambda m: m != "croston")  # Croston first, if asked for
    results = {name: run(name) for name in order}
    return np.stack([results[m] for m in methods], axis=1)


def lead_time_sums(y: FloatArray, horizon: int) -> FloatArray:
    """Every rolling sum of ``horizon`` consecutive periods (items × windows).

    These are the observed demands over a protection interval (lead time + review): an
    empirical distribution that keeps the lumps and the zeros a normal law would smooth away.
    A history shorter than the horizon gives one sample, its total scaled up to the horizon.
    Windows starting before an item's first withdrawal are marked −1 (see
    :func:`active_periods`): below any reorder point, and not counted as samples.
    """
    t_len = y.shape[1]
    if t_len < horizon:
        return np.asarray(y.sum(axis=1, keepdims=True) * horizon / max(t_len, 1),
                          dtype=np.float64)
    csum = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(y, axis=1)], axis=1)
    sums = csum[:, horizon:] - csum[:, :-horizon]
    first = t_len - active_periods(y)
    # Keep at least one window (the last) even for an item first seen in the final periods.
    first = np.minimum(first, sums.shape[1] - 1)
    before = np.arange(sums.shape[1])[None, :] < first[:, None]
    return np.asarray(np.where(before, -1.0, sums), dtype=np.float64)
