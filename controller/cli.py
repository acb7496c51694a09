"""The ``armoire`` command.

Each feature area registers its own sub-commands from its own module (listed in
``SUBCOMMAND_MODULES``), so that areas stay independent and the entry point stays small.
Expected errors (:class:`~controller.errors.ArmoireError`) print one line, ``armoire: [CODE]
english / français``, and exit with the error's status (2 for refused input); usage errors
print ``armoire: [USAGE] …`` and exit 2; no traceback reaches a user.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from controller.errors import ArmoireError

#: Modules defining ``register(subparsers)``; each sub-parser sets ``func(args) -> int``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "controller.journal_cli",
    "controller.backup_cli",
    "controller.docs_cli",
    "controller.run_cli",
    "controller.outputs_cli",
    "controller.admin_cli",
    "sim.cli",
    "controller.stock.cli",
    "controller.layout.cli",
)


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors look like every other refusal.

    argparse prints the whole usage block and then ``prog: error: …``: several lines and no
    code, which scripts cannot grep and people misread. Here an unknown option or a bad
    value is one line with the stable code ``[USAGE]``, exit status 2 (``--help`` still
    shows the usage).
    """

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("armoire").strip()  # "stock advise", or ""
        en = f"{command}: {message}" if command else message
        fr = f"usage incorrect, voir {self.prog} --help"
        self.exit(2, error_line("USAGE", en, fr) + "\n")


def error_line(code: str, message_en: str, message_fr: str) -> str:
    """``armoire: [CODE] english / français`` on one line.

    User-facing text is French and English (DESIGN.md); one line with the code first keeps
    it greppable. The French half is left out only when no translation was given.
    """
    text = message_en if message_fr in ("", message_en) else f"{message_en} / {message_fr}"
    return f"armoire: [{code}] " + " ".join(text.split())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="armoire", description="Armoire automated dispensing cabinet / "
                                                   "armoire à pharmacie sécurisée")
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
        print(error_line(exc.code, exc.message_en, exc.message_fr), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
