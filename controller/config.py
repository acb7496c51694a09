"""The one TOML configuration file of a cabinet.

Everything a site changes lives here: geometry, backend and wiring, timeouts, alarm rules,
database path. Validation names the field that is wrong (``hardware.drawers.A.switch_open``)
so that the person editing the file can fix it without reading code.
"""

from __future__ import annotations

import difflib
import errno
import ipaddress
import logging
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from controller import localtime
from controller.backup import MAX_KEEP_DAYS
from controller.errors import ConfigError, InputError
from firmware.protocol import MAX_POCKETS as MAX_SERIAL_POCKETS
from hal.config import (
    DRAWER_TYPES,
    MAX_DEBOUNCE_S,
    MAX_MAGNET_OFF_S,
    MAX_MAGNET_PULSE_S,
    MAX_TRAVEL_S,
    MIN_DEBOUNCE_S,
    MIN_MAGNET_OFF_S,
    DrawerHw,
    DrawerPins,
    HardwareConfig,
    Timing,
)

log = logging.getLogger(__name__)


#: The touchscreen locks after this long without a touch. Below 10 s a nurse counting a
#: pocket is logged out mid-count; above 15 minutes (the pharmacy pages' own limit) a
#: session left open is anyone's.
MIN_INACTIVITY_S = 10.0
MAX_INACTIVITY_S = 900.0


@dataclass(frozen=True)
class DrawerSpec:
    id: str
    type: str
    rows: int
    cols: int


@dataclass(frozen=True)
class Settings:
    inactivity_s: float = 90.0
    low_stock_units: int = 10
    expiry_window_days: int = 30
    max_pin_failures: int = 5
    #: argon2id cost; the defaults follow OWASP's minimum for a small device.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    #: The hospital's patient identifier (IPP) as a regular expression the whole id must
    #: match, and an example of it for the screens; None accepts any text.
    patient_id_pattern: str | None = None
    patient_id_example: str | None = None
    #: The ward's time zone (IANA name): where its days start, for expiry above all
    #: (controller/localtime.py). A cabinet takes it from the file or from the system.
    timezone: str = "UTC"


@dataclass(frozen=True)
class BackupSettings:
    """``[backup]``: read by ``armoire backup`` (the nightly unit), checked with the rest of
    the file at the controller's start so that a value the backup would refuse is seen then."""

    #: Absolute path of the backups' directory; None when the file does not say.
    dir: str | None = None
    #: Days of backups to keep, 1 to ``MAX_KEEP_DAYS``; None when the file does not say.
    keep_days: int | None = None


#: The controller's port when ``[server] port`` does not say (and the kiosk's).
DEFAULT_PORT = 8080
#: The lowest port an unprivileged process (armoire.service has no capabilities) may
#: listen on.
MIN_SERVICE_PORT = 1024
#: The host names the server always answers to, whatever ``[server] hosts`` adds: the
#: kiosk's (http://127.0.0.1:PORT/) and loopback's other names, as a Host header has them.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: The group of the proxy's socket when ``[server] proxy_group`` does not say: install.sh
#: creates it and puts the controller's user in it; the site adds its proxy's user.
DEFAULT_PROXY_GROUP = "armoire-proxy"
#: The longest path a Unix socket may have (sun_path is 108 bytes, with its final NUL).
MAX_SOCKET_PATH = 107
_GROUP_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
#: One label of a DNS host name (RFC 1123), lower case.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


@dataclass(frozen=True)
class Config:
    name: str
    drawers: tuple[DrawerSpec, ...]
    hardware: HardwareConfig
    settings: Settings = field(default_factory=Settings)
    database: str | None = None
    #: ``[server] port``: where ``armoire run`` serves, and the kiosk looks (install.sh).
    port: int = DEFAULT_PORT
    #: ``[server] hosts``: the names (or addresses) browsers may reach the server by, beside
    #: :data:`LOOPBACK_HOSTS`, as :func:`host_name` writes them.
    hosts: tuple[str, ...] = ()
    #: ``[server] proxy_socket``: the Unix socket the site's TLS proxy connects to, the only
    #: door where its forwarding headers are believed (controller.web.limits.identify).
    proxy_socket: str | None = None
    #: ``[server] proxy_group``: the group that may open it (the proxy's user is a member).
    proxy_group: str = DEFAULT_PROXY_GROUP
    #: ``[database] badge_key``: the badges' key file (controller.badge), when it is not
    #: beside the database.
    badge_key: str | None = None
    backup: BackupSettings = field(default_factory=BackupSettings)
    #: A provisioning file (scenario format: users, drugs, layout) applied to an empty database.
    seed: Path | None = None
    source: Path | None = None
    #: ``[layout] lasa``: the hospital's LASA list (``name_a,name_b[,score]``), read at start,
    #: a floor on the similarity of every layout the cabinet proposes.
    lasa: tuple[tuple[str, str, float], ...] = ()


def _get(table: dict[str, Any], key: str, kind: type, where: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise ConfigError(f"{where}.{key}: missing", f"{where}.{key} : manquant")
        return default
    value = table[key]
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}",
                          f"{where}.{key} : {kind.__name__} attendu, reçu {value!r}")
    return value


def _table(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """``parent[key]`` as a table (empty if absent). A value where a table belongs
    (``timeouts = 5``) is refused by name: it must not crash the loader, nor be taken for an
    empty table so that the defaults silently replace what the site meant to set."""
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table ([{where}]), got {value!r}",
                          f"{where} : table attendue ([{where}]), reçu {value!r}")
    return value


#: The keys each table may hold. The file is shared: ``[backup]`` is read by ``armoire
#: backup`` and ``[kiosk]`` by install.sh, so they are known here too.
TOP_KEYS = ("cabinet", "hardware", "database", "seed", "session", "alarms", "security",
            "patients", "backup", "kiosk", "server", "layout")
CABINET_KEYS = ("name", "drawers", "timezone")
DRAWER_KEYS = ("id", "type", "rows", "cols")
HARDWARE_KEYS = ("backend", "buzzer", "pin_factory", "timeouts", "drawers")
TIMEOUT_KEYS = ("max_travel_seconds", "switch_release_seconds", "magnet_pulse_ms",
                "magnet_min_off_ms", "switch_debounce_ms")
PIN_KEYS = ("motor_forward", "motor_backward", "switch_closed", "switch_open", "close_button")
GPIO_DRAWER_KEYS = (*PIN_KEYS, "indicator_led", "magnets")
SERIAL_DRAWER_KEYS = ("port",)
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "session": ("inactivity_seconds",),
    "alarms": ("low_stock_units", "expiry_window_days"),
    "security": ("max_pin_failures", "argon2_time_cost", "argon2_memory_kib"),
    "patients": ("id_pattern", "id_example"),
    "database": ("path", "badge_key"),
    "backup": ("dir", "keep_days"),
    "kiosk": ("url", "blank_after_seconds"),
    "server": ("port", "hosts", "proxy_socket", "proxy_group"),
    "layout": ("lasa",),
}


def _known(table: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Refuse a key the code never reads. A misspelt safety setting
    (``max_travel_second = 3``) would otherwise be ignored in silence and the default run in
    its place: the site believes it set a limit that is not there."""
    for key in table:
        if key in keys:
            continue
        name = f"{where}.{key}" if where else key
        near = difflib.get_close_matches(str(key), keys, n=1)
        hint_en = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(keys)}"
        hint_fr = f" ; vouliez-vous dire {near[0]!r} ?" if near else \
            f" ; connues : {', '.join(keys)}"
        raise ConfigError(f"{name}: unknown key{hint_en}", f"{name} : clé inconnue{hint_fr}")


def parse_drawers(items: Any, where: str) -> tuple[DrawerSpec, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: at least one drawer is needed",
                          f"{where} : au moins un tiroir est nécessaire")
    seen: set[str] = set()
    result = []
    for i, d in enumerate(items):
        w = f"{where}[{i}]"
        if not isinstance(d, dict):
            raise ConfigError(f"{w}: expected a table", f"{w} : table attendue")
        _known(d, DRAWER_KEYS, w)
        did = _get(d, "id", str, w)
        if not did or did in seen:
            raise ConfigError(f"{w}.id: empty or duplicate drawer id {did!r}",
                              f"{w}.id : identifiant de tiroir vide ou en double {did!r}")
        seen.add(did)
        kind = _get(d, "type", str, w, "matrix")
        if kind not in DRAWER_TYPES:
            raise ConfigError(f"{w}.type: {kind!r} is not one of {', '.join(DRAWER_TYPES)}",
                              f"{w}.type : {kind!r} n'est pas un type de tiroir connu")
        rows, cols = _get(d, "rows", int, w), _get(d, "cols", int, w)
        if not (1 <= rows <= 20 and 1 <= cols <= 20):
            raise ConfigError(f"{w}: rows and cols must be between 1 and 20",
                              f"{w} : lignes et colonnes entre 1 et 20")
        result.append(DrawerSpec(did, kind, rows, cols))
    return tuple(result)


#: GPIOs no output may use. Until the controller claims them, and again once a stopped or
#: killed controller has given them back, GPIO2–8 are pulled *up* (GPIO2 and 3 by fixed
#: 1.8 kΩ resistors): a motor driver or a magnet's transistor on one of them is on while
#: the Pi boots and after every stop. GPIO14 is the UART's TXD, driven high whenever a
#: serial console is enabled, and 15 its RXD. docs/deploy.md, "Pin budget".
NOT_FOR_OUTPUTS = frozenset({2, 3, 4, 5, 6, 7, 8, 14, 15})


def _check_output(pin: int, key: str) -> None:
    """An actuator's pin must be low, hence off, whenever nobody drives it."""
    if pin in NOT_FOR_OUTPUTS:
        raise ConfigError(
            f"{key}: GPIO {pin} cannot drive an output: it is pulled up (or is the serial "
            "console's) while the controller is not running, so the part would be on; use "
            "GPIO10-13 or 16-27 (docs/deploy.md, Pin budget)",
            f"{key} : la broche GPIO {pin} ne peut pas commander une sortie : elle est tirée "
            "au niveau haut (ou sert à la console série) quand le contrôleur ne tourne pas, "
            "la pièce serait alimentée ; utilisez GPIO10-13 ou 16-27 (docs/deploy.md)")


def _pins(table: Any, drawer: DrawerSpec, where: str) -> DrawerPins:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of pins", f"{where} : table attendue")
    _known(table, GPIO_DRAWER_KEYS, where)
    values = {n: _get(table, n, int, where) for n in PIN_KEYS}
    led = _get(table, "indicator_led", int, where, None)
    magnets: dict[tuple[int, int], int] = {}
    grid = table.get("magnets", [])
    # One row of pins per drawer row, top first; each row left to right.
    if drawer.type == "cubie" or grid:
        if not (isinstance(grid, list) and len(grid) == drawer.rows and all(
                isinstance(r, list) and len(r) == drawer.cols for r in grid)):
            raise ConfigError(
                f"{where}.magnets: a cubie drawer needs {drawer.rows} rows of "
                f"{drawer.cols} magnet pins",
                f"{where}.magnets : un tiroir à casiers demande {drawer.rows} lignes de "
                f"{drawer.cols} broches d'aimant")
        for r, pins in enumerate(grid):
            for c, pin in enumerate(pins):
                if not isinstance(pin, int) or isinstance(pin, bool):
                    raise ConfigError(f"{where}.magnets[{r}][{c}]: expected a pin number",
                                      f"{where}.magnets[{r}][{c}] : numéro de broche attendu")
                magnets[(r, c)] = pin
    used = [*values.values(), *magnets.values()] + ([led] if led is not None else [])
    if len(set(used)) != len(used):
        raise ConfigError(f"{where}: a pin is used twice", f"{where} : broche utilisée deux fois")
    if any(not 2 <= p <= 27 for p in used):
        raise ConfigError(f"{where}: GPIO pins are numbered 2 to 27 (BCM)",
                          f"{where} : les broches GPIO vont de 2 à 27 (BCM)")
    _check_output(values["motor_forward"], f"{where}.motor_forward")
    _check_output(values["motor_backward"], f"{where}.motor_backward")
    if led is not None:
        _check_output(led, f"{where}.indicator_led")
    for (r, c), pin in magnets.items():
        _check_output(pin, f"{where}.magnets[{r}][{c}]")
    return DrawerPins(**values, led=led, magnets=magnets)


def parse_hardware(table: dict[str, Any], drawers: tuple[DrawerSpec, ...], *,
                   sim: bool) -> HardwareConfig:
    where = "hardware"
    _known(table, HARDWARE_KEYS, where)
    backend = _get(table, "backend", str, where, "gpio")
    if backend not in ("gpio", "serial"):
        raise ConfigError(f"hardware.backend: {backend!r} is not gpio or serial",
                          f"hardware.backend : {backend!r} n'est ni gpio ni serial")
    t = _table(table, "timeouts", "hardware.timeouts")
    w = "hardware.timeouts"
    _known(t, TIMEOUT_KEYS, w)

    def timed(key: str, default: float, low: float, high: float) -> float:
        """A time within the hardware layer's limits. Outside them it is refused, by name:
        the layers below would clamp it (they are the last safety), and a site's setting
        quietly replaced by another is worse than a clear error at start."""
        value = float(_get(t, key, float, w, default))
        if not low <= value <= high:
            raise ConfigError(f"{w}.{key}: {value:g} is outside {low:g}–{high:g}",
                              f"{w}.{key} : {value:g} hors de {low:g}–{high:g}")
        return value

    timing = Timing(
        max_travel_s=timed("max_travel_seconds", Timing.max_travel_s, 0.5, MAX_TRAVEL_S),
        switch_release_s=timed("switch_release_seconds", Timing.switch_release_s, 0.1,
                               MAX_TRAVEL_S),
        magnet_pulse_s=timed("magnet_pulse_ms", Timing.magnet_pulse_s * 1000, 20,
                             MAX_MAGNET_PULSE_S * 1000) / 1000,
        switch_debounce_s=timed("switch_debounce_ms", Timing.switch_debounce_s * 1000,
                                MIN_DEBOUNCE_S * 1000, MAX_DEBOUNCE_S * 1000) / 1000,
        magnet_min_off_s=timed("magnet_min_off_ms", Timing.magnet_min_off_s * 1000,
                               MIN_MAGNET_OFF_S * 1000, MAX_MAGNET_OFF_S * 1000) / 1000)
    if not timing.switch_release_s < timing.max_travel_s:
        raise ConfigError(f"{w}: switch_release_seconds must be below max_travel_seconds",
                          f"{w} : switch_release_seconds doit être inférieur à "
                          "max_travel_seconds")
    wiring = _table(table, "drawers", "hardware.drawers")
    # Wiring for a drawer the cabinet does not have is a typo in a drawer id, not a spare.
    _known(wiring, tuple(d.id for d in drawers), "hardware.drawers")
    hws: list[DrawerHw] = []
    if backend == "gpio" and sim and not wiring:
        from sim.simulator import auto_wire
        try:
            hws = list(auto_wire([(d.id, d.type, d.rows, d.cols) for d in drawers]))
        except ValueError as exc:
            raise ConfigError(f"hardware: {exc}", f"hardware : {exc}") from exc
    else:
        for d in drawers:
            w = f"hardware.drawers.{d.id}"
            entry = wiring.get(d.id)
            if backend == "gpio":
                if entry is None and not sim:
                    raise ConfigError(f"{w}: no pins for this drawer",
                                      f"{w} : aucune broche pour ce tiroir")
                hws.append(DrawerHw(d.id, d.type, d.rows, d.cols, pins=_pins(entry, d, w)))
            else:
                if d.type == "cubie" and d.rows * d.cols > MAX_SERIAL_POCKETS:
                    # The protocol counts and addresses pockets with one byte (HELLO, RELEASE).
                    raise ConfigError(
                        f"{w}: a drawer board addresses at most {MAX_SERIAL_POCKETS} pockets, "
                        f"this drawer has {d.rows * d.cols}; split it into two drawers",
                        f"{w} : une carte de tiroir adresse au plus {MAX_SERIAL_POCKETS} "
                        f"cases, ce tiroir en a {d.rows * d.cols} ; divisez-le en deux tiroirs",
                        code="TOO_MANY_POCKETS")
                if entry is not None and not isinstance(entry, dict):
                    raise ConfigError(f"{w}: expected a table (port = …)",
                                      f"{w} : table attendue (port = …)")
                if entry is not None:
                    _known(entry, SERIAL_DRAWER_KEYS, w)
                port = None if entry is None else _get(entry, "port", str, w)
                if port is None and not sim:
                    raise ConfigError(f"{w}.port: missing", f"{w}.port : manquant")
                hws.append(DrawerHw(d.id, d.type, d.rows, d.cols, port=port))
    buzzer = _get(table, "buzzer", int, where, None)
    if buzzer is not None and not 2 <= buzzer <= 27:
        # As for the drawers' pins: a typo (240 for 24) would otherwise reach gpiozero,
        # whose error is a traceback and a restart loop, not a line naming the key.
        raise ConfigError(f"hardware.buzzer: GPIO pins are numbered 2 to 27 (BCM), "
                          f"not {buzzer}",
                          f"hardware.buzzer : les broches GPIO vont de 2 à 27 (BCM), "
                          f"pas {buzzer}")
    if backend == "gpio":
        pins = [p for hw in hws if hw.pins for p in (
            hw.pins.motor_forward, hw.pins.motor_backward, hw.pins.switch_closed,
            hw.pins.switch_open, hw.pins.close_button, *hw.pins.magnets.values(),
            *([hw.pins.led] if hw.pins.led is not None else []))]
        pins += [buzzer] if buzzer is not None else []
        if buzzer is not None:
            _check_output(buzzer, "hardware.buzzer")
        dup = sorted({p for p in pins if pins.count(p) > 1})
        if dup:
            raise ConfigError(f"hardware: GPIO {dup[0]} is wired to two parts",
                              f"hardware : la broche GPIO {dup[0]} est câblée deux fois")
    return HardwareConfig(backend=backend, drawers=tuple(hws), timing=timing,
                          pin_factory=_get(table, "pin_factory", str, where, "lgpio"),
                          buzzer_pin=buzzer)


def _patients(table: Any) -> tuple[str | None, str | None]:
    """``[patients] id_pattern`` and ``id_example``: the example must match the pattern, so
    a pattern that refuses every real id is caught when the file is loaded, not at the
    first withdrawal of the night."""
    if not isinstance(table, dict):
        raise ConfigError("patients: expected a table", "patients : table attendue")
    _known(table, SECTION_KEYS["patients"], "patients")
    pattern = _get(table, "id_pattern", str, "patients", None)
    example = _get(table, "id_example", str, "patients", None)
    if pattern is None:
        if example is not None:
            raise ConfigError("patients.id_example: only with patients.id_pattern",
                              "patients.id_example : seulement avec patients.id_pattern")
        return None, None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"patients.id_pattern: not a regular expression ({exc})",
                          f"patients.id_pattern : expression régulière invalide ({exc})"
                          ) from None
    if example is None or not compiled.fullmatch(example):
        raise ConfigError("patients.id_example: give an id that id_pattern accepts",
                          "patients.id_example : donnez un identifiant accepté par "
                          "id_pattern")
    return pattern, example


#: Ten years: further than any lot's shelf life, and far inside the calendar.
MAX_EXPIRY_WINDOW_DAYS = 3650


def parse_settings(table: dict[str, Any]) -> Settings:
    s, a = _table(table, "session", "session"), _table(table, "alarms", "alarms")
    sec = _table(table, "security", "security")
    for name, section in (("session", s), ("alarms", a), ("security", sec)):
        _known(section, SECTION_KEYS[name], name)
    pattern, example = _patients(table.get("patients", {}))
    settings = Settings(
        inactivity_s=_get(s, "inactivity_seconds", float, "session", Settings.inactivity_s),
        low_stock_units=_get(a, "low_stock_units", int, "alarms", Settings.low_stock_units),
        expiry_window_days=_get(a, "expiry_window_days", int, "alarms",
                                Settings.expiry_window_days),
        max_pin_failures=_get(sec, "max_pin_failures", int, "security",
                              Settings.max_pin_failures),
        argon2_time_cost=_get(sec, "argon2_time_cost", int, "security",
                              Settings.argon2_time_cost),
        argon2_memory_kib=_get(sec, "argon2_memory_kib", int, "security",
                               Settings.argon2_memory_kib),
        patient_id_pattern=pattern, patient_id_example=example,
    )
    if not 0 <= settings.expiry_window_days <= MAX_EXPIRY_WINDOW_DAYS:
        # Beyond the calendar the expiry check's date arithmetic overflows at start (a
        # traceback and a restart loop); below zero the warning silently never comes.
        raise ConfigError(f"alarms.expiry_window_days: from 0 to {MAX_EXPIRY_WINDOW_DAYS}, "
                          f"not {settings.expiry_window_days}",
                          f"alarms.expiry_window_days : de 0 à {MAX_EXPIRY_WINDOW_DAYS}, "
                          f"pas {settings.expiry_window_days}")
    if settings.low_stock_units < 0:
        raise ConfigError(f"alarms.low_stock_units: 0 or more, not {settings.low_stock_units}",
                          f"alarms.low_stock_units : 0 ou plus, pas {settings.low_stock_units}")
    # Not a comparison that NaN passes: "nan" or "inf" (valid TOML floats) would leave the
    # touchscreen open for good, the last person's session to whoever comes next.
    if not MIN_INACTIVITY_S <= settings.inactivity_s <= MAX_INACTIVITY_S:
        raise ConfigError(
            f"session.inactivity_seconds: from {MIN_INACTIVITY_S:g} to {MAX_INACTIVITY_S:g}, "
            f"not {settings.inactivity_s:g}",
            f"session.inactivity_seconds : de {MIN_INACTIVITY_S:g} à {MAX_INACTIVITY_S:g}, "
            f"pas {settings.inactivity_s:g}")
    if not 1 <= settings.max_pin_failures <= 10:
        raise ConfigError("security.max_pin_failures: between 1 and 10",
                          "security.max_pin_failures : entre 1 et 10")
    if settings.argon2_memory_kib < 8192 or settings.argon2_time_cost < 1:
        raise ConfigError("security: argon2 cost below the safe minimum (8 MiB, 1 pass)",
                          "security : coût argon2 sous le minimum sûr (8 Mio, 1 passe)")
    return settings


def load(path: str | Path, *, sim: bool = False, console: bool = False) -> Config:
    """``console``: for the console commands (``armoire admin``, ``badge``, ``restore``),
    which run on the cabinet but drive no hardware: its tables are not checked (as in the
    simulator), but days are the cabinet's, as ``armoire run`` counts them. Read as the
    simulator's, a configuration without ``cabinet.timezone`` made a seed provisioned from
    the console count its lots' expiry in UTC days, the controller in the ward's."""
    p = Path(path)
    return from_dict(_read(p), sim=sim, source=p, console=console)


def load_hardware(path: str | Path) -> HardwareConfig:
    """Only the drawers and the hardware tables: which pins to drive off.

    For ``armoire outputs-off``, the controller unit's ``ExecStopPost=``: the file may have
    been edited since the controller started, and a mistake elsewhere (a LASA list not yet
    copied in, a kiosk setting) must not keep it from cutting a killed controller's motors
    and magnets."""
    raw = _read(Path(path))
    cabinet = raw.get("cabinet")
    if not isinstance(cabinet, dict):
        raise ConfigError("cabinet: missing table", "cabinet : table manquante")
    drawers = parse_drawers(cabinet.get("drawers"), "cabinet.drawers")
    return parse_hardware(_table(raw, "hardware", "hardware"), drawers, sim=False)


def _read(p: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file not found: {p}",
                          f"fichier de configuration introuvable : {p}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}", f"{p} : TOML invalide : {exc}") from exc
    except OSError as exc:  # a directory, no permission…: still one coded line, no traceback
        raise unreadable_config(p, exc) from exc
    return raw


def unreadable_config(path: Path, exc: OSError) -> ConfigError:
    """The refusal of a configuration file that cannot be read. The controller and its
    units read it as the user armoire: refused for lack of rights, the line says how to
    give them (docs/deploy.md, checklist step 6), not only "Permission denied"."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, PermissionError) or exc.errno == errno.EACCES:
        return ConfigError(
            f"cannot read configuration {path}: {reason}: the cabinet reads it as the user "
            f"armoire: sudo chgrp armoire {path} && sudo chmod 0640 {path} (deploy/install.sh "
            "does it at every run)",
            f"configuration {path} illisible : {reason} : l'armoire la lit en tant "
            f"qu'utilisateur armoire : sudo chgrp armoire {path} && sudo chmod 0640 {path} "
            "(deploy/install.sh le fait à chaque passage)")
    return ConfigError(f"cannot read configuration {path}: {reason}",
                       f"configuration {path} illisible : {reason}")


def from_dict(raw: dict[str, Any], *, sim: bool, source: Path | None = None,
              console: bool = False) -> Config:
    _known(raw, TOP_KEYS, "")
    cabinet = raw.get("cabinet")
    if not isinstance(cabinet, dict):
        raise ConfigError("cabinet: missing table", "cabinet : table manquante")
    _known(cabinet, CABINET_KEYS, "cabinet")
    port = parse_server_port(raw)
    hosts = parse_server_hosts(raw)
    proxy_socket, proxy_group = parse_proxy_socket(raw)
    backup = parse_backup(raw)
    drawers = parse_drawers(cabinet.get("drawers"), "cabinet.drawers")
    hardware = parse_hardware(_table(raw, "hardware", "hardware"), drawers, sim=sim or console)
    database = parse_database(raw)
    badge_key = parse_badge_key(raw)
    seed = raw.get("seed")
    seed_path = None
    if seed is not None:
        if not isinstance(seed, str):
            raise ConfigError("seed: expected a file name", "seed : nom de fichier attendu")
        seed_path = (source.parent if source else Path.cwd()) / seed
    settings = replace(parse_settings(raw), timezone=_timezone(cabinet, sim=sim))
    return Config(name=_get(cabinet, "name", str, "cabinet", "Armoire"), drawers=drawers,
                  hardware=hardware, settings=settings, database=database, port=port,
                  hosts=hosts, proxy_socket=proxy_socket, proxy_group=proxy_group,
                  badge_key=badge_key, backup=backup, seed=seed_path, source=source,
                  lasa=parse_lasa(raw, source))


def parse_lasa(raw: dict[str, Any], source: Path | None) -> tuple[tuple[str, str, float], ...]:
    """``[layout] lasa``: the list file (relative to the configuration), read now.

    Read at start rather than at each proposal: a list that is missing or malformed stops
    the controller by name, instead of a proposal quietly computed without the pairs the
    pharmacy listed. A changed list is read at the next restart.
    """
    table = _table(raw, "layout", "layout")
    _known(table, SECTION_KEYS["layout"], "layout")
    name = table.get("lasa")
    if name is None:
        return ()
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("layout.lasa: expected a file name",
                          "layout.lasa : nom de fichier attendu")
    from controller.layout.names import read_lasa_csv

    path = (source.parent if source else Path.cwd()) / name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"layout.lasa: file not found: {path}",
                          f"layout.lasa : fichier introuvable : {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"layout.lasa: cannot read {path}: {exc}",
                          f"layout.lasa : lecture impossible de {path} : {exc}") from None
    try:
        return tuple(read_lasa_csv(text, str(path)))
    except InputError as exc:
        raise ConfigError(f"layout.lasa: {exc.message_en}",
                          f"layout.lasa : {exc.message_fr}") from None


def parse_server_port(raw: dict[str, Any]) -> int:
    """``[server] port``, checked against ``[kiosk] url``.

    The kiosk (install.sh writes its URL from this file) and the controller must meet on
    one port: a ``[kiosk] url`` left on 8080 after the port moved was a dead page on the
    touchscreen, found only when a nurse needed a drug. The same rule is in install.sh,
    which runs before any Python environment exists.
    """
    table = _table(raw, "server", "server")
    _known(table, SECTION_KEYS["server"], "server")
    port = _get(table, "port", int, "server", DEFAULT_PORT)
    # Not below 1024: the service runs without capabilities, and an unprivileged process
    # may not listen there; such a port passed every check, then every start failed.
    if not MIN_SERVICE_PORT <= port <= 65535:
        raise ConfigError(f"server.port: from {MIN_SERVICE_PORT} to 65535, not {port} (the "
                          "service, without privileges, cannot listen below 1024)",
                          f"server.port : de {MIN_SERVICE_PORT} à 65535, pas {port} (le "
                          "service, sans privilèges, ne peut écouter sous 1024)")
    kiosk = _table(raw, "kiosk", "kiosk")
    _known(kiosk, SECTION_KEYS["kiosk"], "kiosk")
    url = kiosk.get("url")
    if url is not None and not kiosk_url_on(url, port):
        raise ConfigError(
            f"kiosk.url: the kiosk must open this controller, http://127.0.0.1:{port}/ "
            f"(server.port {port}), not {url!r}; or leave kiosk.url out",
            f"kiosk.url : le kiosque doit ouvrir ce contrôleur, http://127.0.0.1:{port}/ "
            f"(server.port {port}), pas {url!r} ; ou retirez kiosk.url")
    return port


def host_name(text: str) -> str | None:
    """A host name or IP address as the server compares it with a request's Host header
    (lower case, an IPv6 address in brackets and compressed), or None when ``text`` is
    neither. Shared by ``[server] hosts`` and the check of each request
    (``controller.web.limits.TrustedHosts``), so that both read a name the same way."""
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        ip = None
    if ip is not None:
        return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    name = text.lower()
    if bare != text or len(name) > 253 or not _HOST_NAME_RE.match(name):
        return None
    return name


def parse_server_hosts(raw: dict[str, Any]) -> tuple[str, ...]:
    """``[server] hosts``: the names the pharmacy's browsers use for the controller (its
    DNS name behind the site's proxy, or the address ``--host`` binds), beside loopback's.

    A request with any other Host is refused (``BAD_HOST``): a page elsewhere could point a
    name of its own at the cabinet's address (DNS rebinding) and read the cabinet's pages
    as its own. Each entry is a plain name or address; a scheme, a port, a path or a
    wildcard is refused here, when the controller starts, rather than found out by a
    pharmacist's refused page (``*`` would turn the check off altogether).
    """
    table = _table(raw, "server", "server")
    value = table.get("hosts", [])
    example = 'hosts = ["armoire.chu.example", "10.1.2.3"]'
    if not isinstance(value, list):
        raise ConfigError(f"server.hosts: expected a list of host names ({example}), "
                          f"got {value!r}",
                          f"server.hosts : liste de noms d'hôte attendue ({example}), "
                          f"reçu {value!r}")
    hosts: list[str] = []
    for entry in value:
        name = host_name(entry) if isinstance(entry, str) else None
        if name is None:
            raise ConfigError(
                f"server.hosts: {entry!r} is not a host name or IP address (no scheme, "
                "port, path nor wildcard: armoire.chu.example, 10.1.2.3, fd00::5)",
                f"server.hosts : {entry!r} n'est pas un nom d'hôte ni une adresse IP (ni "
                "schéma, ni port, ni chemin, ni joker : armoire.chu.example, 10.1.2.3, "
                "fd00::5)")
        if name not in hosts:
            hosts.append(name)
    return tuple(hosts)


def parse_proxy_socket(raw: dict[str, Any]) -> tuple[str | None, str]:
    """``[server] proxy_socket`` and ``proxy_group``: where the site's TLS proxy connects,
    the only place its forwarding headers are believed, and the group that may open it.

    Checked here, when the file is loaded (exit 2 from ``armoire run``, and the installer
    stops on it), not when the socket is bound: a relative path would be a socket in the
    service's working directory that no proxy is pointed at, and a path the kernel cannot
    bind (over 107 bytes, a NUL) would only show as the proxy's 502 on a pharmacist's
    screen. Written plainly (no ``..``, ``//`` nor trailing ``/``), so that the path in
    the proxy's configuration and this one are visibly the same file."""
    table = _table(raw, "server", "server")
    path = table.get("proxy_socket")
    group = table.get("proxy_group", DEFAULT_PROXY_GROUP)
    if path is not None:
        plain = isinstance(path, str) and path.startswith("/") and "\x00" not in path and (
            str(Path(path)) == path and ".." not in Path(path).parts and path != "/")
        if not plain:
            raise ConfigError(
                f"server.proxy_socket: the absolute path of a socket file is needed (such as "
                f"/run/armoire/proxy.sock, in the service's runtime directory), not {path!r}",
                f"server.proxy_socket : le chemin absolu d'un fichier socket est nécessaire "
                f"(par exemple /run/armoire/proxy.sock, dans le dossier d'exécution du "
                f"service), pas {path!r}")
        if len(path.encode("utf-8")) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"server.proxy_socket: at most {MAX_SOCKET_PATH} bytes for a Unix socket, "
                f"not {len(path.encode('utf-8'))} ({path!r})",
                f"server.proxy_socket : au plus {MAX_SOCKET_PATH} octets pour un socket "
                f"Unix, pas {len(path.encode('utf-8'))} ({path!r})")
    if not isinstance(group, str) or not _GROUP_RE.match(group):
        raise ConfigError(
            f"server.proxy_group: the name of a system group (such as {DEFAULT_PROXY_GROUP}), "
            f"not {group!r}",
            f"server.proxy_group : le nom d'un groupe du système (par exemple "
            f"{DEFAULT_PROXY_GROUP}), pas {group!r}")
    return path, group


def kiosk_url_on(url: object, port: int) -> bool:
    """Whether ``url`` is a page of the controller on loopback port ``port``."""
    base = f"http://127.0.0.1:{port}"
    return isinstance(url, str) and "'" not in url and (url == base or url.startswith(base + "/"))


def parse_database_table(raw: dict[str, Any]) -> dict[str, Any]:
    """The ``[database]`` table (empty if absent), its keys checked."""
    database_table = raw.get("database", {})
    if not isinstance(database_table, dict):
        raise ConfigError("database: expected a table ([database] path = …)",
                          "database : table attendue ([database] path = …)")
    _known(database_table, SECTION_KEYS["database"], "database")
    return database_table


def parse_database(raw: dict[str, Any]) -> str | None:
    """``[database] path``, or None when the file does not say."""
    database = parse_database_table(raw).get("path")
    if database is not None and (not isinstance(database, str) or not database):
        raise ConfigError("database.path: expected a file name",
                          "database.path : nom de fichier attendu")
    return database


def parse_badge_key(raw: dict[str, Any]) -> str | None:
    """``[database] badge_key``, or None for the default beside the database. Shared with
    ``armoire backup``, which copies the key: a relative name there was looked for in the
    unit's working directory and the backup went on without the key."""
    badge_key = parse_database_table(raw).get("badge_key")
    if badge_key is not None and (not isinstance(badge_key, str) or not badge_key
                                  or not Path(badge_key).is_absolute()):
        raise ConfigError("database.badge_key: expected the absolute path of a file",
                          "database.badge_key : chemin absolu de fichier attendu")
    return badge_key


def parse_backup(raw: dict[str, Any]) -> BackupSettings:
    """``[backup] dir`` and ``keep_days``, as ``armoire backup`` will use them.

    The controller does not back up anything itself, but it is the one IT watches start:
    a ``keep_days = "14"`` or a relative ``dir`` accepted here would make every nightly
    backup fail in ``armoire-backup.service``, a unit nobody looks at, for as long as
    nobody notices there are no backups. A relative directory would be relative to the
    unit's working directory (``/``, read-only under its hardening)."""
    table = _table(raw, "backup", "backup")
    _known(table, SECTION_KEYS["backup"], "backup")
    directory = _get(table, "dir", str, "backup", None)
    if directory is not None and not Path(directory).is_absolute():
        raise ConfigError(
            f"backup.dir: an absolute path is needed (such as /var/lib/armoire/backups), "
            f"not {directory!r}",
            f"backup.dir : un chemin absolu est nécessaire (par exemple "
            f"/var/lib/armoire/backups), pas {directory!r}")
    keep_days = _get(table, "keep_days", int, "backup", None)
    if keep_days is not None and not 1 <= keep_days <= MAX_KEEP_DAYS:
        raise ConfigError(
            f"backup.keep_days: a whole number from 1 to {MAX_KEEP_DAYS}, not {keep_days!r}",
            f"backup.keep_days : un entier de 1 à {MAX_KEEP_DAYS}, pas {keep_days!r}")
    return BackupSettings(dir=directory, keep_days=keep_days)


def _timezone(cabinet: dict[str, Any], *, sim: bool) -> str:
    """``cabinet.timezone``, else the system's zone on a cabinet (what IT set with
    ``timedatectl``), else UTC in the simulator, whose scenarios must end the same on every
    machine. A name that is not an IANA zone is refused: a guessed zone moves the hour at
    which lots expire."""
    name = _get(cabinet, "timezone", str, "cabinet", None)
    if name is None:
        if sim:
            return "UTC"
        system = localtime.system_zone_name()
        if system is None:
            log.warning("cabinet.timezone is not set and the system names no time zone: "
                        "days are UTC days; set cabinet.timezone (e.g. 'Europe/Paris')")
            return "UTC"
        return system
    try:
        localtime.zone(name)
    except ValueError:
        raise ConfigError(f"cabinet.timezone: {name!r} is not a time zone name such as "
                          "'Europe/Paris'",
                          f"cabinet.timezone : {name!r} n'est pas un nom de fuseau horaire "
                          "comme 'Europe/Paris'") from None
    return name
