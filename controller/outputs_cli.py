"""``armoire outputs-off``: every output of the cabinet's hardware off, from outside the
controller.

systemd runs it as the controller unit's ``ExecStopPost=``, so that it runs however the
controller ended, a kill included: a killed process never reaches its own safe state, and
GPIO lines keep the level their owner left them at (see :func:`hal.gpio.cut_outputs`).
It needs the pins free, so it is for a stopped controller only: while one runs, it holds
every pin, and this refuses at the first one (``GPIO_BUSY``, exit 3).
"""

from __future__ import annotations

import argparse
from typing import Any

from gpiozero.exc import GPIOPinInUse, GPIOZeroError

from controller import config as configuration
from controller.errors import HardwareError
from controller.run_cli import DEFAULT_CONFIG
from hal.backends import cut_outputs


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "outputs-off", help="switch every motor, magnet, light and buzzer off (controller "
                            "stopped) / couper moteurs, aimants, voyants et buzzer "
                            "(contrôleur arrêté)",
        description="Drive every output of the configured hardware to off and release it. "
                    "Run by systemd after the controller stops, whatever the way it ended. / "
                    "Met chaque sortie du matériel configuré à l'arrêt et la libère. Lancé "
                    "par systemd après l'arrêt du contrôleur, quelle qu'en soit la cause.")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help=f"configuration file (default {DEFAULT_CONFIG}) / fichier de "
                        f"configuration (par défaut {DEFAULT_CONFIG})")
    p.set_defaults(func=_outputs_off)


def _outputs_off(args: argparse.Namespace) -> int:
    hardware = configuration.load_hardware(args.config)
    try:
        done = cut_outputs(hardware)
    except GPIOPinInUse as exc:
        raise HardwareError(
            f"a GPIO pin is in use ({exc}): is the controller still running?",
            f"une broche GPIO est utilisée ({exc}) : le contrôleur tourne-t-il encore ?",
            code="GPIO_BUSY") from exc
    except GPIOZeroError as exc:   # a pin the chip does not have, a driver error
        raise HardwareError(f"the outputs could not be claimed: {exc}",
                            f"les sorties n'ont pas pu être prises : {exc}",
                            code="OUTPUTS_NOT_CUT") from exc
    print(done)
    return 0
