"""``armoire stock advise``, ``armoire stock simulate`` and ``armoire stock export``.

Both commands check everything they read before writing anything, and write their files
atomically, so a refused input (exit status 2) leaves no file behind and an existing
parameters file untouched.
"""

from __future__ import annotations

import argparse
import csv
import io
import sqlite3
import sys
from collections import Counter
from datetime import date, tzinfo
from pathlib import Path
from typing import Any

from controller.cli_support import (
    check_outputs,
    fraction,
    whole_number,
    write_all_atomic,
    write_atomic,
    zone_arg,
)
from controller.errors import InputError
from controller.localtime import local_day
from controller.stock.advise import (
    DEFAULT_CURRENT_MAX,
    AdviseOptions,
    ItemInfo,
    advise_matrix,
)
from controller.stock.history import (
    MAX_QUANTITY,
    PERIODS,
    Period,
    read_history_csv,
    to_matrix,
)
from controller.stock.params_io import MAX_PERIODS, read_params_csv, write_params_csv
from controller.stock.replay import (
    comparison_text,
    current_levels_for,
    simulate,
    svg_plot,
)


def register(subparsers: Any) -> None:
    """Add ``stock advise``, ``stock simulate`` and ``stock export`` to ``armoire``."""
    stock = subparsers.add_parser(
        "stock", help="replenishment advisor / conseil de réassort",
        description="Propose and replay pocket min/max levels from withdrawal history.")
    sub = stock.add_subparsers(dest="stock_command", required=True,
                               parser_class=type(stock))

    adv = sub.add_parser("advise", help="propose min/max per item / proposer min/max",
                         description="Fill rate here means the share of units served from "
                         "stock (taux de service en unités), not of periods without stock-out.")
    adv.add_argument("history", type=Path, help="CSV date,item,quantity (withdrawals)")
    adv.add_argument("-o", "--output", type=Path, required=True, help="parameters CSV to write")
    adv.add_argument("--period", choices=PERIODS, default="day")
    adv.add_argument("--lead-time", type=whole_number(0, MAX_PERIODS), default=1,
                     help=f"periods from order to refill, at most {MAX_PERIODS} (default 1)")
    adv.add_argument("--review", type=whole_number(1, MAX_PERIODS), default=1,
                     help="periods between two reviews of a pocket (default 1)")
    adv.add_argument("--target-fill", type=fraction, default=0.995,
                     help="target fill rate, units served (default 0.995)")
    adv.add_argument("--current", type=Path,
                     help="current item,min,max[,capacity] CSV: today's levels to compare "
                     "with, and the capacity that caps max (as written by stock export)")
    adv.set_defaults(func=cmd_advise)

    exp = sub.add_parser("export", help="a cabinet's withdrawals and levels as CSV / "
                         "retraits et niveaux d'une armoire en CSV",
                         description="Write the cabinet's withdrawal history (date,item,"
                         "quantity) and today's levels (item,min,max,capacity,drug), one "
                         "item per stocked pocket, for stock advise and stock simulate. "
                         "The database is opened read-only: use it on a backup copy.")
    exp.add_argument("--db", required=True, help="the cabinet's SQLite database")
    exp.add_argument("--history", type=Path, required=True, help="history CSV to write")
    exp.add_argument("--current", type=Path, required=True, help="levels CSV to write")
    exp.add_argument("--default-min", type=whole_number(0, MAX_QUANTITY), default=10,
                     help="the cabinet's low-stock rule where no min was approved "
                     "([alarms] low_stock_units, default 10)")
    exp.add_argument("--timezone", type=zone_arg,
                     help="zone whose days the history counts, such as Europe/Paris "
                     "(default: the one the cabinet recorded in the database, else this "
                     "system's)")
    exp.set_defaults(func=cmd_export)

    sim = sub.add_parser("simulate", help="replay current vs proposed / rejouer actuel vs "
                         "proposé")
    sim.add_argument("history", type=Path, help="CSV date,item,quantity (withdrawals)")
    sim.add_argument("--params", type=Path, required=True, help="proposed parameters CSV")
    sim.add_argument("--current", type=Path,
                     help="current item,min,max CSV (default: min 10, max = capacity or "
                     "--default-max)")
    sim.add_argument("--plot", type=Path, help="SVG file to write (units on hand)")
    sim.add_argument("--period", choices=PERIODS, help="default: the parameters file's")
    sim.add_argument("--lead-time", type=whole_number(0, MAX_PERIODS),
                     help="default: the parameters file's, else 1")
    sim.add_argument("--review", type=whole_number(1, MAX_PERIODS),
                     help="default: the parameters file's, else 1")
    sim.add_argument("--default-max", type=whole_number(1, MAX_QUANTITY),
                     default=DEFAULT_CURRENT_MAX,
                     help=f"max of the default current policy (default {DEFAULT_CURRENT_MAX})")
    sim.set_defaults(func=cmd_simulate)


def cmd_advise(args: argparse.Namespace) -> int:
    """Read, advise, then write: the output file appears only when all went well."""
    options = AdviseOptions(period=args.period, lead_time=args.lead_time, review=args.review,
                            target_fill=args.target_fill)
    check_outputs([("-o", args.output)],
                  [("HISTORY", args.history), ("--current", args.current or "-")])
    info = {}
    if args.current is not None:
        info = {k: ItemInfo(capacity=v.capacity, current_min=v.min, current_max=v.max)
                for k, v in read_params_csv(args.current).levels.items()}
    history = read_history_csv(args.history)
    matrix = to_matrix(history, options.period)
    proposals = advise_matrix(matrix, options, info)
    write_params_csv(args.output, proposals, options)
    reached = sum(p.expected_fill_rate_units_served >= options.target_fill for p in proposals)
    classes = Counter(f"{p.abc}{p.xyz}" for p in proposals)
    moves = Counter(p.movement for p in proposals)
    print(f"{len(proposals)} items, {matrix.n_periods} {options.period}(s) of history -> "
          f"{args.output} / {len(proposals)} articles, proposition écrite dans {args.output}")
    print(f"target fill rate (units served) {options.target_fill:.1%} reached on history by "
          f"{reached}/{len(proposals)} items / taux de service cible (unités servies) "
          f"atteint sur l'historique par {reached}/{len(proposals)} articles")
    print("classes: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())) + "; "
          + ", ".join(f"{k} {v}" for k, v in sorted(moves.items())))
    print("Each proposal awaits a pharmacist's approval (status=proposed) / Chaque "
          "proposition attend la validation d'un pharmacien (status=proposed).")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Check every input (and the plot's name) before replaying, then print and plot."""
    if args.plot is not None and args.plot.suffix.lower() != ".svg":
        raise InputError(f"--plot {args.plot}: the plot is written as SVG, name it *.svg",
                         f"--plot {args.plot} : le graphique est en SVG, nommez-le *.svg")
    if args.plot is not None:
        check_outputs([("--plot", args.plot)],
                      [("HISTORY", args.history), ("--params", args.params),
                       ("--current", args.current or "-")])
    params = read_params_csv(args.params)
    period: Period = args.period or _period(params.period, args.params)
    lead_time = _first(args.lead_time, params.lead_time, 1)
    review = _first(args.review, params.review, 1)
    current = read_params_csv(args.current).levels if args.current is not None else None
    history = read_history_csv(args.history)
    matrix = to_matrix(history, period)
    proposed = {k: (v.min, v.max) for k, v in params.levels.items()}
    capacity = {k: v.capacity for k, v in params.levels.items()}
    cur_levels = current_levels_for(
        matrix.items, {k: (v.min, v.max) for k, v in current.items()} if current else None,
        capacity, default_max=args.default_max)
    new = simulate(matrix, proposed, lead_time=lead_time, review=review, label="proposed")
    old = simulate(matrix, {k: cur_levels[k] for k in new.items}, lead_time=lead_time,
                   review=review, label="current")
    missing = len(matrix.items) - len(new.items)
    sys.stdout.write(comparison_text(old, new, lead_time=lead_time, review=review))
    if missing:
        print(f"{missing} item(s) of the history have no proposed parameters and were left out"
              f" / {missing} article(s) sans paramètres proposés, non rejoué(s)")
    if args.plot is not None:
        write_atomic(args.plot, svg_plot(old, new))
        print(f"plot / graphique: {args.plot}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """History and levels per stocked pocket, named as on the pick list (A-1-1).

    The history is the one the cabinet's own proposals learn from: it follows each drug
    through re-layouts. Both files are built before either is written.
    """
    from controller.journal_cli import database_zone, reading
    from controller.replenishment import pocket_levels, stocked_pockets, withdrawal_history

    # Both outputs are checked (folder exists, not a directory, not the database, not each
    # other) before the database is read, and written together below: a refused export
    # leaves every file as it was.
    check_outputs([("--history", args.history), ("--current", args.current)],
                  [("--db", args.db)])
    with reading(args.db) as conn:
        conn.row_factory = sqlite3.Row
        pockets = stocked_pockets(conn)
        zone = database_zone(conn, args.timezone)
        # The day of the journal's last row may not have been over when the copy was
        # taken; half a day would read as a quiet one, so the history stops the day before.
        last = conn.execute("SELECT ts FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        history = withdrawal_history(conn, pockets, zone,
                                     before=_last_day(last[0], zone) if last else None)
    levels = pocket_levels(pockets, args.default_min)
    hist = io.StringIO()
    out = csv.writer(hist, lineterminator="\n")
    out.writerow(["date", "item", "quantity"])
    for day, key, qty in history:
        out.writerow([day.isoformat(), pockets[key].label, f"{qty:g}"])
    cur = io.StringIO()
    out = csv.writer(cur, lineterminator="\n")
    out.writerow(["item", "min", "max", "capacity", "drug"])
    for key, p in sorted(pockets.items(), key=lambda kv: kv[1].label):
        low, high = levels[key]
        if high >= 1:  # a pocket of capacity 0 holds nothing to replenish
            out.writerow([p.label, low, high, p.capacity, p.drug])
    write_all_atomic([(args.history, hist.getvalue()), (args.current, cur.getvalue())])
    used = len({key for _, key, _ in history})
    print(f"{len(history)} rows, {used} of {len(pockets)} stocked pockets with withdrawals -> "
          f"{args.history}; levels -> {args.current} / {len(history)} lignes, {used} poches "
          f"sur {len(pockets)} avec des retraits")
    return 0


def _last_day(ts: object, zone: tzinfo) -> date | None:
    """The ward's day of the journal's last time; None for a time that is not one (the
    withdrawal rows are checked, and named, by ``withdrawal_history``)."""
    try:
        return local_day(str(ts), zone)
    except ValueError:
        return None


def _period(text: str | None, path: Path) -> Period:
    for period in PERIODS:
        if text in (None, "", period):
            return period if text else "day"
    raise InputError(f"{path}: unknown period {text!r}", f"{path} : période inconnue {text!r}")


def _first(*values: int | None) -> int:
    """The first value given: the command line wins over the file, the file over defaults."""
    for value in values:
        if value is not None:
            return value
    raise ValueError("no value")
