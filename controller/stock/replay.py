"""Current versus proposed: replay the history under two sets of levels and compare them the
way the pharmacy talk does (orders, average stock, stock-outs, fill rate), in text and SVG.

The plot is a small hand-written SVG rather than matplotlib: it adds no dependency to the
Raspberry Pi image (matplotlib pulls in fonts, Pillow and a C++ build), it is text that the
cabinet's web pages can inline as is, and two lines on two axes need nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from controller.errors import InputError
from controller.stock.advise import DEFAULT_CURRENT_MAX, DEFAULT_CURRENT_MIN
from controller.stock.history import (
    DemandMatrix,
    FloatArray,
    Period,
    Withdrawal,
    to_matrix,
)
from controller.stock.simulate import SimArrays, simulate_policy


@dataclass(frozen=True)
class SimResult:
    """Totals of one policy over all items replayed; ``per_item`` keeps the detail."""

    label: str
    items: list[str]
    periods: int
    period: Period
    orders: int
    #: Sum over items of the mean on-hand at the end of each period, in units.
    avg_stock: float
    #: Item-periods in which some demand was lost.
    stockout_periods: int
    demand: float
    served: float
    #: Total on hand over all items at the end of each period.
    stock_path: list[float]
    per_item: SimArrays

    @property
    def lost(self) -> float:
        return self.demand - self.served

    @property
    def fill_rate_units_served(self) -> float:
        """Units served from stock / units demanded (1 when nothing was demanded)."""
        return self.served / self.demand if self.demand > 0 else 1.0


def simulate(history: Iterable[Withdrawal] | DemandMatrix,
             levels: Mapping[str, tuple[int, int]], *, period: Period = "day",
             lead_time: int = 1, review: int = 1, label: str = "proposed") -> SimResult:
    """Replay ``history`` under ``levels`` (item → (min, max)) with the rules of
    :mod:`controller.stock.simulate`. Items of the history without levels are left out."""
    matrix = history if isinstance(history, DemandMatrix) else to_matrix(history, period)
    if lead_time < 0 or review < 1:
        raise InputError("lead time must be ≥ 0 and review ≥ 1",
                         "le délai doit être ≥ 0 et la revue ≥ 1")
    keep = [i for i, name in enumerate(matrix.items) if name in levels]
    if not keep:
        raise InputError("no item of the history has parameters",
                         "aucun article de l'historique n'a de paramètres")
    names = [matrix.items[i] for i in keep]
    lo = np.array([levels[n][0] for n in names], dtype=np.float64)
    hi = np.array([levels[n][1] for n in names], dtype=np.float64)
    if np.any(lo < 0) or np.any(hi <= lo):
        raise InputError("every item needs 0 ≤ min < max",
                         "chaque article doit avoir 0 ≤ min < max")
    y = matrix.demand[keep]
    res = simulate_policy(y, lo, hi, lead_time=lead_time, review=review, keep_path=True)
    path = res.stock_path[0] if res.stock_path is not None else np.zeros(y.shape[1])
    return SimResult(label=label, items=names, periods=y.shape[1], period=matrix.period,
                     orders=int(res.orders.sum()), avg_stock=float(res.avg_stock.sum()),
                     stockout_periods=int(res.stockout_periods.sum()),
                     demand=float(res.demand.sum()), served=float(res.served.sum()),
                     stock_path=[float(v) for v in path], per_item=res)


def current_levels_for(items: Sequence[str], current: Mapping[str, tuple[int, int]] | None,
                       capacity: Mapping[str, int | None], *,
                       default_min: int = DEFAULT_CURRENT_MIN,
                       default_max: int = DEFAULT_CURRENT_MAX) -> dict[str, tuple[int, int]]:
    """Today's levels: from ``current`` when given for the item, else the cabinet default
    (min 10, the thesis's low-stock rule; max the pocket capacity, else ``default_max``)."""
    out: dict[str, tuple[int, int]] = {}
    for name in items:
        if current is not None and name in current:
            out[name] = current[name]
            continue
        cap = capacity.get(name)
        hi = cap if cap is not None else default_max
        # A pocket of 10 or fewer is always "low": refilled whenever below full.
        out[name] = (min(default_min, hi - 1), hi)
    return out


def _pct(new: float, old: float) -> str:
    if old == 0:
        return "—" if new == 0 else "+∞"
    return f"{(new - old) / old * 100:+.0f}%"


def comparison_text(current: SimResult, proposed: SimResult, *, lead_time: int,
                    review: int) -> str:
    """The talk's table, in English and French."""
    unit = {"day": ("days", "jours"), "week": ("weeks", "semaines"),
            "month": ("months", "mois")}[proposed.period]
    lines = [
        f"Replay of {proposed.periods} {unit[0]}, {len(proposed.items)} items, lost sales, "
        f"lead time {lead_time}, review every {review} / "
        f"Rejeu de {proposed.periods} {unit[1]}, {len(proposed.items)} articles, ventes "
        f"perdues, délai {lead_time}, revue toutes les {review}",
        "",
        f"{'':58}{'current':>12}{'proposed':>12}{'change':>9}",
        f"{'':58}{'actuel':>12}{'proposé':>12}{'écart':>9}",
    ]
    rows = [
        ("Restock orders / Commandes de réassort", current.orders, proposed.orders, "{:.0f}"),
        ("Average stock, units / Stock moyen, unités", current.avg_stock,
         proposed.avg_stock, "{:.1f}"),
        ("Stock-outs, item-periods / Ruptures, article-périodes", current.stockout_periods,
         proposed.stockout_periods, "{:.0f}"),
        ("Lost units / Unités non servies", current.lost, proposed.lost, "{:.0f}"),
    ]
    for label, old, new, fmt in rows:
        lines.append(f"{label:58}{fmt.format(old):>12}{fmt.format(new):>12}"
                     f"{_pct(float(new), float(old)):>9}")
    cf, pf = current.fill_rate_units_served, proposed.fill_rate_units_served
    lines.append(f"{'Fill rate, units served / Taux de service, unités servies':58}"
                 f"{cf * 100:>11.2f}%{pf * 100:>11.2f}%{(pf - cf) * 100:>+8.2f}pt")
    return "\n".join(lines) + "\n"


def _points(values: Sequence[float] | FloatArray, n: int, peak: float,
            box: tuple[float, float, float, float]) -> str:
    """SVG polyline points for values 0…peak spread over n slots in the box (x, y, w, h),
    shared by the CLI's chart and the pharmacist page's small plots so both scale alike."""
    x0, y0, w, h = box
    return " ".join(f"{x0 + w * i / max(n - 1, 1):.1f},{y0 + h * (1 - float(v) / peak):.1f}"
                    for i, v in enumerate(values))


def svg_plot(current: SimResult, proposed: SimResult, *, width: int = 720,
             height: int = 320) -> str:
    """Total units on hand per period under both policies, as a standalone SVG document."""
    left, right, top, bottom = 70, 20, 40, 40
    series: list[tuple[str, str, FloatArray]] = [
        ("current / actuel", "#888888", np.asarray(current.stock_path, dtype=np.float64)),
        ("proposed / proposé", "#1f5fbf", np.asarray(proposed.stock_path, dtype=np.float64)),
    ]
    n = max(len(s[2]) for s in series)
    peak = max(1.0, max(float(s[2].max()) if len(s[2]) else 0.0 for s in series))
    plot_w, plot_h = width - left - right, height - top - bottom

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14">'
        f'{escape("Units on hand, all items / Unités en stock, tous articles")}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak:.0f}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
        f'<text x="{left + plot_w}" y="{top + plot_h + 16}" text-anchor="end">'
        f'{escape(proposed.period)} {n}</text>',
    ]
    for k, (label, colour, values) in enumerate(series):
        points = _points(values, n, peak, (left, top, plot_w, plot_h))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" '
                     f'points="{points}"/>')
        ly = top + plot_h + 30
        lx = left + k * 200
        parts.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 20}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{lx + 26}" y="{ly}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def sparkline_svg(current: Sequence[float], proposed: Sequence[float], *, width: int = 360,
                  height: int = 60) -> str:
    """Units on hand in one pocket under both policies, small enough to sit under each
    proposal on the pharmacist's page. Only numbers reach the markup: every value goes
    through ``float``, so nothing stored with a proposal can inject anything."""
    series = [("#888888", [float(v) for v in current]),
              ("#1f5fbf", [float(v) for v in proposed])]
    n = max((len(v) for _, v in series), default=0)
    peak = max([1.0, *(max(v) for _, v in series if v)])
    pad = 2.0
    box = (pad, pad, width - 2 * pad, height - 2 * pad)
    lines = [f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="'
             f'{_points(values, n, peak, box)}"/>'
             for colour, values in series if values]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<line x1="0" y1="{height - pad}" x2="{width}" y2="{height - pad}" '
            f'stroke="#cccccc"/>{"".join(lines)}</svg>')
