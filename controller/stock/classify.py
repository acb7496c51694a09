"""Double classification of items: ABC by consumption value × XYZ by demand variability,
plus the demand pattern and the movement class the pharmacy's dashboards group by.

The classes do not set the parameters (simulation does); they tell the pharmacist where the
money and the risk are, so that approval time goes to A and Z items and critical drugs first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.stock.history import FloatArray, Period
from controller.tasks import check_stop

#: Cumulative shares of consumption value closing the A and B classes (Pareto's 80/15/5).
ABC_LIMITS = (0.80, 0.95)
#: Coefficient-of-variation limits closing X and Y.
XYZ_LIMITS = (0.5, 1.0)
#: Syntetos–Boylan cut-offs: average inter-demand interval and squared CV of sizes.
ADI_CUT = 1.32
CV2_CUT = 0.49
#: Items classified between two looks at the stop flag (:func:`classify`).
STOP_EVERY_ITEMS = 256


@dataclass(frozen=True)
class Classes:
    abc: str
    xyz: str
    #: smooth / erratic / intermittent / lumpy (Syntetos–Boylan).
    pattern: str
    #: fast / slow / sleeping.
    movement: str


def abc_classes(values: FloatArray) -> list[str]:
    """A for the items making the first 80% of the total value, B up to 95%, C for the rest.

    An item is A when the value of the items ranked before it is still under 80%, so the item
    that crosses the line is A (the usual convention) and a single-item catalogue is A.
    """
    order = np.argsort(-values, kind="stable")
    total = float(values.sum())
    out = ["C"] * len(values)
    if total <= 0:
        return out
    before = np.concatenate([[0.0], np.cumsum(values[order])[:-1]]) / total
    for rank, idx in enumerate(order):
        if values[idx] <= 0:
            continue
        out[idx] = "A" if before[rank] < ABC_LIMITS[0] else (
            "B" if before[rank] < ABC_LIMITS[1] else "C")
    return out


def xyz_classes(y: FloatArray, period: Period) -> list[str]:
    """X/Y/Z by the coefficient of variation of demand per bucket.

    Daily data is bucketed by 7 periods first: every ward drug varies from day to day
    (weekends), and on raw days nearly everything would be Z, which says nothing.
    """
    width = 7 if period == "day" and y.shape[1] >= 14 else 1
    buckets = y.shape[1] // width
    agg = y[:, y.shape[1] - buckets * width:].reshape(y.shape[0], buckets, width).sum(axis=2)
    mean = agg.mean(axis=1)
    std = agg.std(axis=1)
    cv = np.divide(std, mean, out=np.full(len(mean), np.inf), where=mean > 0)
    return ["X" if c <= XYZ_LIMITS[0] else "Y" if c <= XYZ_LIMITS[1] else "Z" for c in cv]


def sleeping(y: FloatArray) -> npt.NDArray[np.bool_]:
    """Items with no withdrawal for the last quarter of the history, or for twice their usual
    interval if longer (a drug taken once a month is not asleep after a quiet week)."""
    n, t_len = y.shape
    nonzero = y > 0
    count = nonzero.sum(axis=1)
    adi = np.divide(t_len, count, out=np.full(n, float(t_len)), where=count > 0)
    quiet = np.minimum(np.maximum(t_len // 4, np.ceil(2 * adi)), t_len).astype(int)
    last = np.where(nonzero.any(axis=1), t_len - 1 - np.argmax(nonzero[:, ::-1], axis=1), -1)
    return np.asarray((count == 0) | (last < t_len - quiet), dtype=bool)


def classify(y: FloatArray, unit_costs: FloatArray, period: Period, *,
             stop: threading.Event | None = None) -> list[Classes]:
    """Classes of every row of ``y`` (items × periods).

    ``stop`` (the service stopping, :func:`~controller.tasks.stoppable_thread`) is looked
    at between the classifications and every :data:`STOP_EVERY_ITEMS` items: a cabinet's
    years of history classified to the end held the stop. :class:`~controller.tasks.
    Stopped` then; the classes are the same whether or not it is given."""
    n, t_len = y.shape
    abc = abc_classes(y.sum(axis=1) * unit_costs)
    check_stop(stop)
    xyz = xyz_classes(y, period)
    check_stop(stop)
    nonzero = y > 0
    count = nonzero.sum(axis=1)
    asleep = sleeping(y)
    out: list[Classes] = []
    for i in range(n):
        if i % STOP_EVERY_ITEMS == 0:
            check_stop(stop)
        sizes = y[i, nonzero[i]]
        if count[i] == 0:
            pattern = "none"
        else:
            adi = t_len / count[i]
            cv2 = float(sizes.var() / sizes.mean() ** 2)
            pattern = (("smooth" if cv2 < CV2_CUT else "erratic") if adi < ADI_CUT
                       else ("intermittent" if cv2 < CV2_CUT else "lumpy"))
        if asleep[i]:
            movement = "sleeping"
        elif count[i] * 2 >= t_len:
            movement = "fast"
        else:
            movement = "slow"
        out.append(Classes(abc[i], xyz[i], pattern, movement))
    return out
