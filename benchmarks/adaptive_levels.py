"""Adaptive min/max: levels recomputed every period from the demand known that period.

Every policy of :mod:`controller.stock.advise` is static: one (min, max) per item until the
next fit. Trends and level shifts then make it too high or too low for months. Here the
levels follow a smoothed demand rate instead, updated every period:

* ``level`` is simple exponential smoothing of the demand per period, and ``spread`` the
  smoothed absolute one-step error times 1.25 (the mean absolute deviation of a normal law is
  0.8 σ). Both start as running means (weight ``max(α, 1/n)``), so nothing before the first
  period is assumed;
* min = ⌈q·level·(L+R) + k·spread·√(L+R)⌉ and max = min + max(1, round(c·level)): c periods
  of cover on top of the protection interval. q = 1 is the textbook form (safety stock from
  the spread); k = 0 with q > 1 scales the whole reorder point with the level, as an
  empirical lead-time quantile does, which suits intermittent items whose spread says
  little about their next lump.

Column t of :class:`Smoothed` uses only periods before t. The review at the end of period t
knows period t, so it uses column t + 1; a replay starting at period t with full pockets
fills them to column t's max. :func:`simulate_varying` replays under the cabinet's rules
(those of :func:`controller.stock.simulate.simulate_policy`) with levels that change every
period, for a grid of candidates (k, c, α) per item at once.

Experimental: used by ``benchmarks/stock_adaptive.py``, not by the advisor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.stock.history import FloatArray
from controller.stock.simulate import LevelsAt, SimArrays, SimState, replay

IntArray = npt.NDArray[np.intp]
#: Mean absolute deviation → standard deviation under a normal law.
MAD_TO_SIGMA = 1.25


@dataclass(frozen=True)
class Smoothed:
    """Smoothed rate and spread per period, one row per smoothing constant.

    Arrays are (periods + 1) × len(alphas) × items: index t is what is known before period t
    (t = 0: nothing, all zero)."""

    alphas: tuple[float, ...]
    level: FloatArray
    spread: FloatArray


def smooth(demand: FloatArray, alphas: tuple[float, ...],
           weekly: FloatArray | None = None) -> Smoothed:
    """SES level and smoothed |error| × 1.25 of ``demand`` (items × periods), per α.

    With ``weekly`` (7 factors, period t having factor ``weekly[t % 7]``) the smoothing is
    of the demand divided by its period's factor: the level is a deseasonalised rate, to be
    multiplied back by :class:`AdaptiveLevels` for the periods it protects."""
    n, t_len = demand.shape
    if weekly is not None:
        factors = np.asarray(weekly, dtype=np.float64)[np.arange(t_len) % 7]
        demand = demand / factors[None, :]
    a = np.asarray(alphas, dtype=np.float64)[:, None]
    level = np.zeros((t_len + 1, len(alphas), n))
    spread = np.zeros((t_len + 1, len(alphas), n))
    lv = np.zeros((len(alphas), n))
    mad = np.zeros((len(alphas), n))
    for t in range(t_len):
        d = demand[:, t][None, :]
        if t > 0:
            # The error of the forecast made before period t; t errors seen so far.
            w = np.maximum(a, 1.0 / t)
            mad = mad + w * (np.abs(d - lv) - mad)
        w = np.maximum(a, 1.0 / (t + 1))
        lv = lv + w * (d - lv)
        level[t + 1] = lv
        spread[t + 1] = MAD_TO_SIGMA * mad
    return Smoothed(tuple(alphas), level, spread)


@dataclass(frozen=True)
class AdaptiveLevels:
    """The adaptive rule for candidate parameters, as a :data:`LevelsAt` for a replay.

    ``alpha_index``, ``k``, ``cover`` and ``scale`` (q, default 1) broadcast to items ×
    candidates: (1, C) for a grid
    shared by all items, (N, 1) for one choice per item. ``offset`` is the absolute period of
    the replay's first period: local t reads column ``offset + t``."""

    smoothed: Smoothed
    alpha_index: IntArray
    k: FloatArray
    cover: FloatArray
    horizon: int
    offset: int = 0
    scale: FloatArray | None = None
    #: The 7 factors ``smooth`` was given, if any: column t protects periods t … t + h − 1,
    #: so its level and spread are multiplied by their mean factor.
    weekly: FloatArray | None = None

    def __call__(self, t: int) -> tuple[FloatArray, FloatArray]:
        col = self.offset + t
        n = self.smoothed.level.shape[2]
        shape = np.broadcast_shapes(self.alpha_index.shape, self.k.shape, self.cover.shape,
                                    (n, 1))
        idx = np.broadcast_to(self.alpha_index, shape)
        level = np.take_along_axis(self.smoothed.level[col].T, idx, axis=1)
        spread = np.take_along_axis(self.smoothed.spread[col].T, idx, axis=1)
        if self.weekly is not None:
            f = float(np.mean(np.asarray(self.weekly)[(col + np.arange(self.horizon)) % 7]))
            level = level * f
            spread = spread * f
        mean = level * self.horizon if self.scale is None else self.scale * level * self.horizon
        mins = np.ceil(mean + self.k * spread * math.sqrt(self.horizon) - 1e-9)
        np.maximum(mins, 0.0, out=mins)
        maxs = mins + np.maximum(1.0, np.round(self.cover * level))
        return mins, maxs


def simulate_varying(demand: FloatArray, levels: LevelsAt, *, lead_time: int, review: int,
                     start: SimState | None = None) -> SimArrays:
    """Replay ``demand`` (items × periods) with levels that may change every period: the
    simulator's own :func:`~controller.stock.simulate.replay`, whose review at the end of
    local period t uses ``levels(t + 1)`` (known: periods ≤ t). With constant levels it is
    :func:`~controller.stock.simulate.simulate_policy`. Shapes are items × candidates."""
    return replay(demand, levels, lead_time=lead_time, review=review, start=start)
