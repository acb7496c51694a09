"""``armoire sim run``: play a scenario file against the simulated cabinet."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from sim import scenario


def _run(args: argparse.Namespace) -> int:
    data = scenario.load(args.scenario)
    runner = scenario.Runner(data, args.db, backend=args.backend)
    report = asyncio.run(runner.run())
    if args.json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        for i, step in enumerate(report["steps"]):
            status = "ok" if step["ok"] else f"FAILED [{step['code']}] {step['error']}"
            print(f"{i:>3} {step['do']:<15} {status}")
        for s in report["stock"]:
            print(f"stock {s['drawer']}-{s['row'] + 1}-{s['col'] + 1} {s['drug']}: "
                  f"{s['on_hand']}")
        for a in report["alarms"]:
            print(f"alarm {a['kind']} ({a['state']}): {a['message']}")
        j = report["journal"]
        print(f"journal: {j['rows']} rows, verified={j['verified']}, head {j['head']}")
    unexpected = [s for s in report["steps"] if s.get("as_expected") is False]
    return 1 if unexpected or not report["journal"]["verified"] else 0


def register(sub: Any) -> None:
    simp = sub.add_parser("sim", help="the simulator: scenarios for hardware-in-the-loop tests / "
                                          "le simulateur : scénarios de test matériel")
    ssub = simp.add_subparsers(dest="sim_command", required=True)
    r = ssub.add_parser("run", help="play a scenario file and print the outcome / jouer un "
                                        "scénario et afficher le résultat")
    r.add_argument("scenario")
    r.add_argument("--db", required=True, help="database file (created if missing)")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--backend", choices=("gpio", "serial"), default="gpio")
    r.set_defaults(func=_run)
