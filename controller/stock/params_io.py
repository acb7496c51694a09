"""Parameter files: writing proposals, reading min/max back, and writing files atomically.

A parameters file is what the pharmacist reviews and what the cabinet will load, so a
half-written one must never exist: every file is written to a temporary name in the same
folder and renamed over the target only once complete (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from controller.cli_support import write_atomic
from controller.errors import InputError
from controller.stock.advise import AdviseOptions, Proposal
from controller.stock.history import MAX_QUANTITY, bad_line, open_csv, read_header, records

#: Column order of a parameters file. The fill-rate columns say "units served" on purpose:
#: the share of units served from stock, not the share of periods without stock-out.
PARAMS_COLUMNS: tuple[str, ...] = (
    "item", "min", "max", "capacity", "critical", "abc", "xyz", "pattern", "movement",
    "method", "forecast_per_period", "safety_stock", "order_quantity",
    "expected_fill_rate_units_served", "expected_avg_stock", "expected_orders",
    "expected_stockout_periods", "current_min", "current_max",
    "current_fill_rate_units_served", "current_avg_stock", "current_orders",
    "period", "lead_time", "review", "status",
)


#: Longest lead time or review interval, in periods (a year of days): longer is a typo, and
#: the replay keeps one slot of deliveries per period of lead time.
MAX_PERIODS = 366


@dataclass(frozen=True)
class FileLevels:
    """One item's min/max as read back from a file (capacity when the file has it)."""

    min: int
    max: int
    capacity: int | None = None


@dataclass(frozen=True)
class ParamsFile:
    levels: dict[str, FileLevels]
    period: str | None
    lead_time: int | None
    review: int | None


def _fmt(value: float) -> str:
    return f"{round(value, 4) + 0.0:.4f}".rstrip("0").rstrip(".") if value == value else ""


def params_csv_text(proposals: Iterable[Proposal], options: AdviseOptions) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PARAMS_COLUMNS)
    for p in proposals:
        writer.writerow([
            p.item, p.min, p.max, "" if p.capacity is None else p.capacity,
            "yes" if p.critical else "no", p.abc, p.xyz, p.pattern, p.movement, p.method,
            _fmt(p.forecast_per_period), _fmt(p.safety_stock), p.order_quantity,
            f"{p.expected_fill_rate_units_served:.4f}", _fmt(p.expected_avg_stock),
            p.expected_orders, p.expected_stockout_periods, p.current_min, p.current_max,
            f"{p.current_fill_rate_units_served:.4f}", _fmt(p.current_avg_stock),
            p.current_orders, options.period, options.lead_time, options.review, p.status,
        ])
    return buffer.getvalue()


def write_params_csv(path: str | Path, proposals: Iterable[Proposal],
                     options: AdviseOptions) -> None:
    """Write proposals (with the run's period, lead time and review, so that ``simulate``
    replays them under the same rules) atomically."""
    write_atomic(path, params_csv_text(proposals, options))


def _int_field(text: str, name: str, path: Path, line: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise bad_line(path, line, f"{name} {text!r} is not a whole number",
                       f"{name} {text!r} n'est pas un nombre entier") from None
    if value < 0:
        raise bad_line(path, line, f"{name} must be ≥ 0", f"{name} doit être ≥ 0")
    if value > MAX_QUANTITY:
        raise bad_line(path, line, f"{name} {value} is above {MAX_QUANTITY:,}",
                       f"{name} {value} dépasse {MAX_QUANTITY:,}")
    return value


def read_params_csv(path: str | Path) -> ParamsFile:
    """Read ``item,min,max`` (and ``capacity``, ``period``, ``lead_time``, ``review`` when
    present), refusing the file on the first bad line."""
    path = Path(path)
    levels: dict[str, FileLevels] = {}
    runs: set[tuple[str, str, str]] = set()
    reader = open_csv(path)
    header = read_header(reader, path, ("item", "min", "max"))
    col = {name: i for i, name in enumerate(header)}
    for line, record in records(reader, path, header):
        item = record[col["item"]].strip()
        if not item:
            raise bad_line(path, line, "empty item", "article vide")
        if item in levels:
            raise bad_line(path, line, f"item {item} appears twice",
                           f"l'article {item} apparaît deux fois")
        lo = _int_field(record[col["min"]].strip(), "min", path, line)
        hi = _int_field(record[col["max"]].strip(), "max", path, line)
        if hi <= lo:
            raise bad_line(path, line, f"max ({hi}) must be above min ({lo})",
                           f"le max ({hi}) doit dépasser le min ({lo})")
        cap = None
        if "capacity" in col and record[col["capacity"]].strip():
            cap = _int_field(record[col["capacity"]].strip(), "capacity", path, line)
            # Refused, not capped: a max the pocket cannot hold is a wrong file (or the
            # wrong pocket), and replaying it would credit today's policy with stock
            # that cannot be there.
            if hi > cap:
                raise bad_line(path, line, f"max ({hi}) is above the pocket's capacity "
                               f"({cap})", f"le max ({hi}) dépasse la capacité de la "
                               f"poche ({cap})")
        levels[item] = FileLevels(lo, hi, cap)
        run = [record[col[k]].strip() if k in col else ""
               for k in ("period", "lead_time", "review")]
        for name, text, least in (("lead_time", run[1], 0), ("review", run[2], 1)):
            # Checked, never replaced: an unreadable lead time silently read as 1 replays
            # the proposal under rules it was not computed for.
            if text and not least <= _int_field(text, name, path, line) <= MAX_PERIODS:
                raise bad_line(path, line, f"{name} must be between {least} and "
                               f"{MAX_PERIODS} periods", f"{name} doit être entre "
                               f"{least} et {MAX_PERIODS} périodes")
        runs.add((run[0], run[1], run[2]))
    if not levels:
        raise InputError(f"{path}: no parameter rows", f"{path} : aucune ligne de paramètres")
    if len(runs) > 1:
        raise InputError(f"{path}: rows disagree on period, lead time or review",
                         f"{path} : les lignes diffèrent sur période, délai ou revue")
    period, lead, review = next(iter(runs))
    return ParamsFile(levels, period or None, int(lead) if lead else None,
                      int(review) if review else None)
