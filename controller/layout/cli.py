"""``armoire layout solve|thesis`` and ``armoire lasa score``.

Input is read and validated completely before anything is written, and the solution is
written through a temporary file renamed into place, so a refused problem (exit 2) or an
interrupted solve never leaves a half-written or stale-looking ``SOLUTION.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from controller.cli_support import (
    MAX_SEED,
    DuplicateKeyError,
    check_outputs,
    duration,
    loads_json,
    whole_number,
    write_atomic,
)
from controller.errors import InputError

#: Longest --time-limit: an hour. The engine's answer barely improves after a few minutes
#: (docs/layout.md), and a bound keeps a typo (or 'inf') from holding the tool forever.
MAX_TIME_LIMIT = 3600.0


def _read_text(path: str, what: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is no data
    except FileNotFoundError:
        raise InputError(f"{what}: file not found: {path}",
                         f"{what} : fichier introuvable : {path}", field=what) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{what}: cannot read {path}: {exc}",
                         f"{what} : lecture impossible de {path} : {exc}", field=what) from None


def load_problem_file(path: str) -> Any:
    text = _read_text(path, "problem")
    try:
        return loads_json(text)
    except DuplicateKeyError as exc:
        raise InputError(f"problem: {path}: key {exc.key!r} appears twice in one object",
                         f"problem : {path} : la clé {exc.key!r} apparaît deux fois dans un "
                         "même objet", field="problem") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"problem: malformed JSON in {path} (line {exc.lineno}, column "
                         f"{exc.colno}): {exc.msg}",
                         f"problem : JSON mal formé dans {path} (ligne {exc.lineno}, colonne "
                         f"{exc.colno}) : {exc.msg}", field="problem") from None


def cmd_solve(args: argparse.Namespace) -> int:
    from controller.layout.model import parse_problem
    from controller.layout.solver import solve

    if args.problem == "-" and args.lasa == "-":
        # The problem reads all of standard input: the list would be read empty and the
        # solve would go on as if the hospital had listed no pair.
        raise InputError("--lasa: the problem is read from standard input, so the LASA list "
                         "cannot be: give it as a file",
                         "--lasa : le problème est lu sur l'entrée standard, la liste LASA ne "
                         "peut pas l'être : donnez-la dans un fichier", field="--lasa")
    data = load_problem_file(args.problem)
    if args.lasa:
        from controller.layout.names import read_lasa_csv

        if not isinstance(data, dict):
            raise InputError("problem: must be a JSON object", "problem : doit être un objet JSON",
                             field="problem")
        listed = read_lasa_csv(_read_text(args.lasa, "lasa"), args.lasa)
        extra = data.get("lasa")
        data["lasa"] = (list(extra) if isinstance(extra, list) else []) + [
            list(row) for row in listed]
    problem = parse_problem(data)
    check_outputs([("-o", args.output)],
                  [("PROBLEM", args.problem), ("--lasa", args.lasa or "-")])
    for warning in problem.lasa_warnings:
        # On stderr, so the solution file and the summary line stay as the contract has them.
        print(f"armoire: [{warning.code}] warning: {warning.message('en')} / avertissement : "
              f"{warning.message('fr')}", file=sys.stderr)
    solution = solve(problem, args.time_limit, args.seed)
    write_atomic(args.output, json.dumps(solution.to_dict(), indent=2) + "\n")
    lb = "-" if solution.lower_bound is None else str(solution.lower_bound)
    print(f"adjacent conflicts / conflits voisins: {solution.adjacent_conflicts} "
          f"(lower bound / borne inférieure: {lb}); same drawer / même tiroir: "
          f"{solution.same_drawer_conflicts}; {solution.seconds:.2f} s -> {args.output}")
    return 0


def cmd_thesis(args: argparse.Namespace) -> int:
    from controller.layout.thesis import format_tables, reproduce

    def progress(label: str) -> None:
        print(f"  … {label}", file=sys.stderr, flush=True)

    t37, t38 = reproduce(args.trials, args.seed, args.time_limit, progress)
    print(format_tables(t37, t38, args.trials, args.time_limit))
    return 0


def cmd_lasa_score(args: argparse.Namespace) -> int:
    from controller.layout.names import score_csv

    source = "stdin" if args.file == "-" else args.file
    text = _read_text(args.file, "file")
    sys.stdout.write(score_csv(text, source))
    return 0


def register(subparsers: Any) -> None:
    layout = subparsers.add_parser(
        "layout", help="drug-to-pocket assignment / affectation des médicaments")
    lsub = layout.add_subparsers(dest="layout_command", required=True)
    solve_p = lsub.add_parser("solve", help="solve a layout problem / résoudre une affectation")
    solve_p.add_argument("problem", help="problem JSON file (contracts/layout.md), or -")
    solve_p.add_argument("-o", "--output", required=True, help="solution JSON file to write")
    solve_p.add_argument("--time-limit", type=duration(MAX_TIME_LIMIT), default=10.0,
                         help=f"seconds, at most {MAX_TIME_LIMIT:g} (default 10)")
    solve_p.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0,
                         help=f"random seed, 0 to {MAX_SEED} (default 0)")
    solve_p.add_argument("--lasa", metavar="CSV",
                         help="hospital LASA list, lines name_a,name_b[,score], added to the "
                              "problem's 'lasa' pairs / liste LASA de l'hôpital")
    solve_p.set_defaults(func=cmd_solve)

    thesis_p = lsub.add_parser(
        "thesis", help="re-run the thesis's tables 3.7/3.8 / refaire les tableaux 3.7 et 3.8")
    thesis_p.add_argument("--trials", type=whole_number(1), default=100,
                          help="random trials per row (default 100, as in the thesis)")
    thesis_p.add_argument("--time-limit", type=duration(MAX_TIME_LIMIT), default=1.0,
                          help=f"engine seconds per solve, at most {MAX_TIME_LIMIT:g} "
                          "(default 1)")
    thesis_p.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0,
                          help=f"random seed, 0 to {MAX_SEED} (default 0)")
    thesis_p.set_defaults(func=cmd_thesis)

    lasa = subparsers.add_parser("lasa", help="look-alike/sound-alike names / noms LASA")
    lasub = lasa.add_subparsers(dest="lasa_command", required=True)
    score_p = lasub.add_parser("score", help="score name pairs / noter des paires de noms")
    score_p.add_argument("file", nargs="?", default="-",
                         help="CSV name_a,name_b (default: standard input)")
    score_p.set_defaults(func=cmd_lasa_score)
