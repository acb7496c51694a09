"""The one place where a hardware backend is chosen.

The choice comes from the configuration (``backend = "gpio" | "serial"``) and, for the
simulator, from an explicit ``simulator`` argument. A backend whose driver is missing is a
start-up error; nothing here ever falls back to the simulator on its own.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from controller.errors import ConfigError, HardwareError
from hal.clock import Clock
from hal.config import HardwareConfig
from hal.parts import Hardware

#: gpiozero pin factories allowed on a real cabinet (module, class).
REAL_PIN_FACTORIES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
}
#: The Debian package that brings each driver; the cabinet's virtualenv sees it because
#: install.sh makes it with --system-site-packages (docs/deploy.md, "Installing").
DRIVER_PACKAGES = {"lgpio": "python3-lgpio", "rpigpio": "python3-rpi.gpio",
                   "pigpio": "python3-pigpio"}


class SimulatorLike(Protocol):
    def gpio_factory(self) -> Any: ...

    def power_on(self) -> None: ...


def real_pin_factory(name: str) -> Any:
    if name not in REAL_PIN_FACTORIES:
        raise ConfigError(
            f"hardware.pin_factory: unknown GPIO driver {name!r} "
            f"(one of {', '.join(REAL_PIN_FACTORIES)})",
            f"hardware.pin_factory : pilote GPIO inconnu {name!r}")
    module_name, class_name = REAL_PIN_FACTORIES[name]
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)()
    except Exception as exc:  # the driver's own import or open error, whatever its type
        # Said with what to do: this line is all `journalctl -u armoire` shows.
        package = DRIVER_PACKAGES[name]
        raise HardwareError(
            f"GPIO driver {name!r} is not available on this machine: {exc}; on the "
            f"cabinet's Pi, install Debian's {package} (sudo deploy/install.sh does), or "
            "name the driver it has in hardware.pin_factory; a machine without GPIO runs "
            "armoire run --sim",
            f"Le pilote GPIO {name!r} n'est pas disponible sur cette machine : {exc} ; sur "
            f"le Pi de l'armoire, installez le paquet Debian {package} (sudo "
            "deploy/install.sh le fait), ou nommez le pilote présent dans "
            "hardware.pin_factory ; une machine sans GPIO lance armoire run --sim",
            code="DRIVER_MISSING") from exc


def build_hardware(config: HardwareConfig, clock: Clock, *,
                   simulator: SimulatorLike | None = None) -> Hardware:
    if config.backend == "gpio":
        from hal.gpio import GpioHardware

        factory = simulator.gpio_factory() if simulator is not None \
            else real_pin_factory(config.pin_factory)
        gpio = GpioHardware(config, clock, pin_factory=factory)
        if simulator is not None:
            simulator.power_on()
            gpio.inputs_settled()   # the physics has just driven the inputs: a state
        return gpio
    if config.backend == "serial":
        try:
            serial_backend = importlib.import_module("hal.serial_backend")
        except ImportError as exc:
            raise ConfigError("hardware.backend: the serial backend is not installed",
                              "hardware.backend : le pilote série n'est pas installé") from exc
        hardware: Hardware = serial_backend.build(config, clock, simulator=simulator)
        if simulator is not None:
            simulator.power_on()
        return hardware
    raise ConfigError(f"hardware.backend: unknown backend {config.backend!r} (gpio or serial)",
                      f"hardware.backend : pilote inconnu {config.backend!r} (gpio ou serial)")


def cut_outputs(config: HardwareConfig) -> str:
    """Every output of the configured hardware off, for systemd's ``ExecStopPost=``; says
    what was done. Only the gpio backend has outputs the Pi must cut itself: a drawer
    board stops its motor and magnets on its own when the Pi goes quiet."""
    if config.backend == "gpio":
        from hal.gpio import cut_outputs as cut_gpio

        parts = cut_gpio(config, real_pin_factory(config.pin_factory))
        return (f"gpio: {parts} part(s) switched off and released / {parts} organe(s) "
                "coupé(s) et libéré(s)")
    if config.backend == "serial":
        return ("serial: the drawer boards cut their own outputs (firmware watchdog) / les "
                "cartes des tiroirs coupent elles-mêmes leurs sorties (chien de garde du "
                "firmware)")
    raise ConfigError(f"hardware.backend: unknown backend {config.backend!r} (gpio or serial)",
                      f"hardware.backend : pilote inconnu {config.backend!r} (gpio ou serial)")
