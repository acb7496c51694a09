"""The ``armoire`` command.

Each feature area registers its own sub-commands from its own module (listed in
``SUBCOMMAND_MODULES``), so that areas stay independent and the entry point stays small.
Expected errors (:class:`~controller.errors.ArmoireError`) print a one-line message with their
stable code and exit with the error's status (2 for refused input); no traceback reaches a user.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from controller.errors import ArmoireError

#: Modules defining ``register(subparsers)``; each sub-parser sets ``func(args) -> int``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "controller.journal_cli",
    "controller.backup_cli",
    "controller.docs_cli",
    "controller.run_cli",
    "sim.cli",
    "controller.stock.cli",
    "controller.layout.cli",
)


class _Parser(argparse.ArgumentParser):
    """argparse exits with status 2 on bad usage already; keep its message on one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="armoire", description="Armoire automated dispensing cabinet")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in SUBCOMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except ArmoireError as exc:
        print(f"armoire: error [{exc.code}]: {exc.message_en}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
