"""Withdrawal history: reading it, checking it, and turning it into a demand matrix.

The cabinet records one row per withdrawal; the advisor needs one number per item and period.
A day with no row for an item is a day without demand, so the matrix is dense with zeros, and
the history spans the first to the last date seen (not the calendar year) so that items do not
look idle before the cabinet was in service.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from controller.dates import parse_day
from controller.errors import InputError

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")

#: One withdrawal: when, which item, how many units.
Withdrawal = tuple[date, str, float]

FloatArray = npt.NDArray[np.float64]

#: The largest quantity accepted in one row, and in one item's period once rows are added up.
#: No cabinet pocket gives out a million units in a day, a week or a month, so a larger
#: number is a typing or export error; refusing it also keeps every sum the advisor makes
#: (lead-time windows, bisections on integer levels) far below 2**53, where floats stop
#: counting units exactly and a search for the smallest level would never end.
MAX_QUANTITY = 1_000_000


#: The longest history accepted, first to last date: ten years. The matrix has one column a
#: day from the first date to the last, so a typo in a year (2204 for 2024) would build
#: tens of thousands of columns per item, nearly all zeros, and exhaust a Pi's memory.
MAX_SPAN_DAYS = 3653


@dataclass(frozen=True)
class DemandMatrix:
    """Demand per item (rows) and period (columns), oldest period first."""

    items: list[str]
    demand: FloatArray
    period: Period
    start: date

    @property
    def n_periods(self) -> int:
        return int(self.demand.shape[1])


def period_index(day: date, start: date, period: Period) -> int:
    """Index of the period holding ``day``; weeks start on Monday, months on the 1st.

    Calendar-aligned buckets keep the weekly pattern of a ward (quiet weekends) inside each
    bucket instead of smearing it across two, which would fake variability.
    """
    if period == "day":
        return (day - start).days
    if period == "week":
        monday = start.toordinal() - start.weekday()
        return (day.toordinal() - monday) // 7
    return (day.year - start.year) * 12 + day.month - start.month


def to_matrix(history: Iterable[Withdrawal], period: Period = "day") -> DemandMatrix:
    """Aggregate withdrawals into a dense items × periods matrix.

    Items are sorted so that the output is the same whatever the order of the rows. Weeks
    and months cut by the first or last date are left out: only whole periods are demand
    (a history already in per-period totals, every date on a Monday or a 1st, keeps all).
    """
    if period not in PERIODS:
        raise InputError(f"unknown period {period!r} (day, week or month)",
                         f"période inconnue {period!r} (day, week ou month)")
    rows = list(history)
    if not rows:
        raise InputError("the history is empty", "l'historique est vide")
    start = min(r[0] for r in rows)
    end = max(r[0] for r in rows)
    check_span(start, end)
    items = sorted({r[1] for r in rows})
    index = {name: i for i, name in enumerate(items)}
    n = period_index(end, start, period) + 1
    demand = np.zeros((len(items), n), dtype=np.float64)
    for day, item, qty in rows:
        demand[index[item], period_index(day, start, period)] += qty
    if demand.size and float(demand.max()) > MAX_QUANTITY:
        i, j = np.unravel_index(int(np.argmax(demand)), demand.shape)
        first = _period_start(start, int(j), period)
        raise InputError(
            f"item {items[int(i)]}: {demand[i, j]:g} units in the {period} of {first} "
            f"(more than {MAX_QUANTITY:,} units in one {period} is not plausible)",
            f"article {items[int(i)]} : {demand[i, j]:g} unités sur la période ({period}) du "
            f"{first} (plus de {MAX_QUANTITY:,} unités par période n'est pas plausible)")
    # A week or month cut by the ends of the history holds only some of its days' demand:
    # bucketed as a full one it reads as a quiet period and biases the forecast down (the
    # last one most, as it weighs most in recent-weighted methods). Only whole periods are
    # kept; a history with none is refused rather than advised on a fraction of a period.
    # A history whose every date starts its period (monthly totals dated the 1st, as
    # exported by most stock systems) is already per period: its last one is whole.
    per_period = period != "day" and all(_period_start(d, 0, period) == d for d, _, _ in rows)
    whole_from = 1 if _period_start(start, 0, period) != start else 0
    whole_to = n - 1 if (not per_period and period_index(end + timedelta(days=1), start,
                                                         period) == n - 1) else n
    if whole_to <= whole_from:
        raise InputError(
            f"the history ({start} to {end}) holds no whole {period}: use a shorter period",
            f"l'historique ({start} au {end}) ne couvre aucune période entière ({period}) : "
            "choisissez une période plus courte")
    return DemandMatrix(items=items, demand=demand[:, whole_from:whole_to], period=period,
                        start=_period_start(start, whole_from, period))


def check_span(start: date, end: date, path: Path | None = None,
               lines: tuple[int, int] | None = None) -> None:
    """Refuse a history longer than :data:`MAX_SPAN_DAYS`, naming the ``lines`` of its first
    and last dates in ``path`` when it was read from a file: one of the two is likely a
    typo, and only the reader can tell which."""
    if (end - start).days < MAX_SPAN_DAYS:
        return
    years = MAX_SPAN_DAYS // 365
    at_en, at_fr = ("", ""), ("", "")
    if lines is not None:
        at_en = (f" (line {lines[0]})", f" (line {lines[1]})")
        at_fr = (f" (ligne {lines[0]})", f" (ligne {lines[1]})")
    file_en, file_fr = (f"{path}: ", f"{path} : ") if path is not None else ("", "")
    raise InputError(
        f"{file_en}the history runs from {start}{at_en[0]} to {end}{at_en[1]}: more than "
        f"{years} years, is a year mistyped?",
        f"{file_fr}l'historique va du {start}{at_fr[0]} au {end}{at_fr[1]} : plus de "
        f"{years} ans, une année est-elle mal saisie ?")


def _period_start(start: date, index: int, period: Period) -> date:
    """First day of the period ``index`` (see :func:`period_index`), to name it in messages."""
    if period == "day":
        return date.fromordinal(start.toordinal() + index)
    if period == "week":
        return date.fromordinal(start.toordinal() - start.weekday() + 7 * index)
    months = start.month - 1 + index
    return date(start.year + months // 12, months % 12 + 1, 1)


def bad_line(path: Path, line: int, en: str, fr: str) -> InputError:
    return InputError(f"{path}, line {line}: {en}", f"{path}, ligne {line} : {fr}",
                      line=line)


def parse_quantity(text: str, path: Path, line: int) -> float:
    """A quantity is a finite number ≥ 0; anything else is refused, never guessed."""
    try:
        qty = float(text)
    except ValueError:
        raise bad_line(path, line, f"quantity {text!r} is not a number",
                   f"la quantité {text!r} n'est pas un nombre") from None
    if not math.isfinite(qty) or qty < 0:
        raise bad_line(path, line, f"quantity {text!r} must be a finite number ≥ 0",
                   f"la quantité {text!r} doit être un nombre fini ≥ 0")
    if qty > MAX_QUANTITY:
        raise bad_line(path, line, f"quantity {text!r} is above {MAX_QUANTITY:,} units",
                       f"la quantité {text!r} dépasse {MAX_QUANTITY:,} unités")
    return qty


def read_history_csv(path: str | Path) -> list[Withdrawal]:
    """Read ``date,item,quantity`` rows (ISO dates), refusing the whole file on any bad line.

    Refusing rather than skipping matters: a silently dropped line is a drug whose demand is
    underestimated, hence a pocket that runs empty.
    """
    path = Path(path)
    rows: list[Withdrawal] = []
    day_totals: dict[tuple[date, str], float] = {}
    # Line of each date seen, to name the lines of the first and last dates if the span is
    # refused.
    lines: dict[date, int] = {}
    reader = open_csv(path)
    header = read_header(reader, path, ("date", "item", "quantity"))
    col = {name: header.index(name) for name in ("date", "item", "quantity")}
    for line, record in records(reader, path, header):
        text = record[col["date"]].strip()
        try:
            day = parse_day(text)
        except ValueError:
            raise bad_line(path, line, f"date {text!r} is not YYYY-MM-DD",
                           f"la date {text!r} n'est pas au format AAAA-MM-JJ") from None
        item = record[col["item"]].strip()
        if not item:
            raise bad_line(path, line, "empty item", "article vide")
        qty = parse_quantity(record[col["quantity"]].strip(), path, line)
        # Name the line where one day's total becomes absurd; longer periods are checked
        # when the rows are added up (to_matrix).
        total = day_totals[(day, item)] = day_totals.get((day, item), 0.0) + qty
        if total > MAX_QUANTITY:
            raise bad_line(path, line, f"{item} on {day} adds up to {total:g} units, above "
                           f"{MAX_QUANTITY:,}", f"{item} le {day} totalise {total:g} "
                           f"unités, plus de {MAX_QUANTITY:,}")
        rows.append((day, item, qty))
        lines.setdefault(day, line)
    if not rows:
        raise InputError(f"{path}: no withdrawal rows (empty history)",
                         f"{path} : aucune ligne de retrait (historique vide)")
    first, last = min(lines), max(lines)
    check_span(first, last, path, (lines[first], lines[last]))
    return rows


def open_csv(path: Path) -> Any:
    """A ``csv.reader`` over a UTF-8 file (a spreadsheet's BOM is no data), read whole.

    The text is decoded here rather than by ``open()``: a file saved in Latin-1 or
    Windows-1252 then gets an error naming the line of its first bad byte, where a decoding
    error halfway through a buffered read names nothing and reaches the user as a traceback.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}",
                         f"impossible de lire {path} : {exc.strerror}") from None
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise bad_line(path, line, "not UTF-8 text (save it as CSV UTF-8)",
                       "texte non UTF-8 (enregistrez-le en CSV UTF-8)") from None
    return csv.reader(io.StringIO(text, newline=""))


def _rows(reader: Any, path: Path) -> Iterator[list[str]]:
    """The reader's rows; what the csv module cannot parse (a field above its size limit, a
    quote left open over the whole file) is refused naming the line, not a traceback."""
    while True:
        try:
            record: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field limit" in str(exc):
                limit = csv.field_size_limit()
                raise bad_line(path, reader.line_num, f"a field is longer than {limit:,} "
                               "characters", f"un champ dépasse {limit:,} caractères"
                               ) from None
            raise bad_line(path, reader.line_num, f"not a readable CSV row ({exc})",
                           f"ligne CSV illisible ({exc})") from None
        yield record


def records(reader: Any, path: Path, header: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty row after the header; a row whose field
    count differs from the header's is refused, naming its line."""
    for record in _rows(reader, path):
        line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            raise bad_line(path, line, f"expected {len(header)} fields, got {len(record)}",
                           f"{len(header)} champs attendus, {len(record)} trouvés")
        yield line, record


def read_header(reader: Any, path: Path, required: Sequence[str]) -> list[str]:
    """First non-empty row of a ``csv.reader``, lower-cased; required columns must be there."""
    for record in _rows(reader, path):
        if record and any(cell.strip() for cell in record):
            header = [cell.strip().lower() for cell in record]
            missing = [name for name in required if name not in header]
            if missing:
                names = ", ".join(missing)
                raise bad_line(path, reader.line_num, f"missing column(s) {names} in the header",
                               f"colonne(s) {names} absente(s) de l'en-tête")
            return header
    raise InputError(f"{path}: the file is empty", f"{path} : le fichier est vide")
