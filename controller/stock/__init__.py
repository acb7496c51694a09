"""Replenishment advisor: proposes each pocket's min/max from the cabinet's withdrawals.

What it does (see ``docs/stock.md`` for the method and the measured results): classify every
item (ABC by consumption value × XYZ by variability, demand pattern, fast/slow/sleeping,
criticality), forecast demand with methods made for intermittent series (Croston, SBA, TSB,
IMAPA, bootstrap; plain NumPy, no numba, so it runs on the cabinet's Raspberry Pi), choose per
item the parameters that reach the target **fill rate — the share of units served from
stock** — at least holding and ordering cost in a replay of the item's own history, and
compare current and proposed levels. Nothing is applied by itself: every :class:`Proposal`
has ``status="proposed"`` until a pharmacist approves it.

Policy, everywhere: periodic review every ``review`` periods; when on hand plus on order is at
or under ``min``, order up to ``max``; the order arrives ``lead_time`` periods after the
period it was placed in ends; demand not served is lost (a ward does not back-order).

Python API for the cabinet (the CLI ``armoire stock advise|simulate`` is a thin layer on it)::

    from controller.stock import (AdviseOptions, ItemInfo, advise, read_history_csv,
                                  simulate, write_params_csv)

    history = read_history_csv("withdrawals.csv")     # or any iterable of (date, item, qty)
    options = AdviseOptions(period="day", lead_time=1, review=1, target_fill=0.995)
    info = {"PARACETAMOL 500": ItemInfo(capacity=120, unit_cost=0.02, critical=False,
                                        current_min=10, current_max=100)}
    proposals = advise(history, options, info)       # list[Proposal], one per item
    write_params_csv("params.csv", proposals, options)  # atomic
    approved = {p.item: (p.min, p.max) for p in proposals}   # after the pharmacist's review
    result = simulate(history, approved, period="day", lead_time=1, review=1)  # SimResult
    result.orders, result.avg_stock, result.stockout_periods, result.fill_rate_units_served

Bad input raises :class:`controller.errors.InputError` naming the file and line.
Array-level entry points for bulk use and benchmarks: :func:`propose_levels`,
:func:`normal_policy` and :func:`order_up_to_policy` (the two classical baselines),
:func:`simulate_policy`.
"""

from controller.stock.advise import (
    AdviseOptions,
    ItemInfo,
    Proposal,
    advise,
    advise_matrix,
    normal_policy,
    order_up_to_policy,
    propose_levels,
)
from controller.stock.history import DemandMatrix, read_history_csv, to_matrix
from controller.stock.params_io import read_params_csv, write_params_csv
from controller.stock.replay import SimResult, comparison_text, simulate, svg_plot
from controller.stock.simulate import SimState, simulate_policy

__all__ = [
    "AdviseOptions",
    "DemandMatrix",
    "ItemInfo",
    "Proposal",
    "SimResult",
    "SimState",
    "advise",
    "advise_matrix",
    "comparison_text",
    "normal_policy",
    "order_up_to_policy",
    "propose_levels",
    "read_history_csv",
    "read_params_csv",
    "simulate",
    "simulate_policy",
    "svg_plot",
    "to_matrix",
    "write_params_csv",
]
