"""Scenario files (``../shared/contracts/scenario.md``): a cabinet scripted from power-on.

The whole file is validated before anything runs: a malformed scenario is refused with the
field named and no database is touched. Then each step runs against the real controller on
the simulator; a step that fails (wrong PIN, wrong scan…) reports ``ok: false`` with the
error's stable code and the run goes on, as the contract says.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from controller import config as configuration
from controller import localtime, people
from controller.auth import PinHasher
from controller.cli_support import loads_json
from controller.errors import ArmoireError, ConfigError, InputError, NotFound, StoreError
from controller.journal import verify
from controller.provision import apply_spec
from controller.store import Store
from sim.harness import SimCabinet

# step kind -> (required fields, optional fields) with their types
STEP_FIELDS: dict[str, tuple[dict[str, type | tuple[type, ...]],
                             dict[str, type | tuple[type, ...]]]] = {
    "login": ({"user": str, "pin": str}, {}),
    "logout": ({}, {}),
    "restock": ({"scan": str, "qty": int},
                {"drug": str, "lot": str, "expiry": str, "drawer": str, "row": int, "col": int,
                 "take": int}),
    "withdraw": ({"drug": str, "qty": int},
                 {"patient": str, "take": int, "power_loss": str}),
    "return": ({"drug": str, "qty": int}, {"patient": str, "lot": str, "expiry": str}),
    "waste": ({"drug": str, "qty": int},
              {"witness": str, "witness_pin": str, "patient": str, "take": int}),
    "count": ({"drawer": str, "row": int, "col": int}, {"found": int}),
    "remove_expired": ({"drawer": str, "row": int, "col": int}, {}),
    "fault": ({"drawer": str, "kind": str}, {}),
    "advance": ({"seconds": (int, float)}, {}),
    "power_loss": ({}, {}),
    "reboot": ({}, {}),
    "reset_drawer": ({"drawer": str}, {}),
    "resolve": ({"kind": str}, {"drug": str, "note": str}),
    "acknowledge": ({"kind": str}, {"drug": str}),
    "unlock": ({"user": str}, {}),
    "press_close": ({"drawer": str}, {}),
    "pull_open": ({"drawer": str}, {}),
}
FAULT_KINDS = ("jam", "switch_stuck", "clear")
COMMON = {"do", "expect", "comment"}
#: Largest whole number a step may carry (qty, take, found, row, col): the cap keeps numbers
#: SQLite cannot store (2**63 and up: OverflowError) out of the run. What the simulated
#: person does or sees (take, found) and pocket numbers are ≥ 0 too, or the file is broken.
#: A quantity asked of the cabinet is not checked here: a negative, zero or above-limit one is
#: a step the cabinet refuses (ok: false, BAD_QTY), as the contract says of steps that must
#: fail.
MAX_WHOLE = 10**9
ASKED = frozenset({"qty"})


_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}([T ]|$)")


def _bad(where: str, en: str, fr: str) -> InputError:
    return InputError(f"{where}: {en}", f"{where} : {fr}", code="BAD_SCENARIO")


def _typed(value: Any, kind: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, kind)


def validate(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _bad("scenario", "expected a JSON object", "objet JSON attendu")
    for key in ("cabinet", "steps"):
        if key not in data:
            raise _bad(key, "missing", "manquant")
    for key in ("users", "drugs", "layout", "steps"):
        if key in data and not isinstance(data[key], list):
            raise _bad(key, "expected a list", "liste attendue")
    drawer_ids = set()
    try:
        drawers = configuration.parse_drawers(
            data["cabinet"].get("drawers") if isinstance(data["cabinet"], dict) else None,
            "cabinet.drawers")
        drawer_ids = {d.id for d in drawers}
    except ConfigError as exc:
        raise InputError(exc.message_en, exc.message_fr, code="BAD_SCENARIO") from None
    if "start" in data:
        start = data["start"]
        # A string in the extended form (2026-11-23T08:00…): fromisoformat would also take a
        # number turned into text (20261123) as a date, which the contract does not allow.
        if not isinstance(start, str) or not _ISO_START.match(start):
            raise _bad("start", f"expected an ISO date-time string, not {start!r}",
                       f"date ISO attendue (texte), pas {start!r}")
        try:
            datetime.fromisoformat(start)
        except ValueError:
            raise _bad("start", "expected an ISO date-time", "date ISO attendue") from None
    for key in ("cabinet", "hardware", "session", "alarms", "security", "patients"):
        if key in data and not isinstance(data[key], dict):
            raise _bad(key, "expected an object", "objet attendu")
    for i, step in enumerate(data["steps"]):
        where = f"steps[{i}]"
        if not isinstance(step, dict):
            raise _bad(where, "expected an object", "objet attendu")
        kind = step.get("do")
        if kind not in STEP_FIELDS:
            raise _bad(f"{where}.do", f"unknown step {kind!r}", f"étape inconnue {kind!r}")
        required, optional = STEP_FIELDS[kind]
        for name in required:
            if name not in step:
                raise _bad(f"{where}.{name}", "missing", "manquant")
        for name, value in step.items():
            if name in COMMON:
                continue
            expected = required.get(name) or optional.get(name)
            if expected is None:
                raise _bad(f"{where}.{name}", f"unknown field for '{kind}'",
                           f"champ inconnu pour « {kind} »")
            if not _typed(value, expected):
                raise _bad(f"{where}.{name}", f"wrong type ({value!r})",
                           f"type incorrect ({value!r})")
            low = -MAX_WHOLE if name in ASKED else 0
            if expected is int and not low <= value <= MAX_WHOLE:
                raise _bad(f"{where}.{name}", f"a whole number from {low} to {MAX_WHOLE}, "
                           f"not {value!r}", f"entier de {low} à {MAX_WHOLE}, pas {value!r}")
        if "drawer" in step and step["drawer"] not in drawer_ids:
            raise _bad(f"{where}.drawer", f"unknown drawer {step['drawer']!r}",
                       f"tiroir inconnu {step['drawer']!r}")
        if kind == "fault" and step["kind"] not in FAULT_KINDS:
            raise _bad(f"{where}.kind", f"fault kind is one of {', '.join(FAULT_KINDS)}",
                       "type de défaut inconnu")
        if kind == "withdraw" and step.get("power_loss", "while_open") != "while_open":
            raise _bad(f"{where}.power_loss", "only 'while_open' is supported",
                       "seul 'while_open' est possible")
        if kind == "advance" and not 0 <= step["seconds"] <= 86400 * 400:
            raise _bad(f"{where}.seconds", "between 0 and 400 days", "entre 0 et 400 jours")
        if "expect" in step and not isinstance(step["expect"], dict):
            raise _bad(f"{where}.expect", "expected an object", "objet attendu")
    return data


def load(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = loads_json(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"scenario not found: {p}", f"scénario introuvable : {p}",
                         code="BAD_SCENARIO") from None
    except (ValueError, OSError) as exc:  # bad JSON or UTF-8, a key twice, a directory…
        raise InputError(f"{p}: not valid JSON ({exc})", f"{p} : JSON invalide ({exc})",
                         code="BAD_SCENARIO") from None
    return validate(data)


def build_config(data: dict[str, Any], backend: str) -> configuration.Config:
    raw: dict[str, Any] = {"cabinet": data["cabinet"],
                           "hardware": {"backend": backend, **data.get("hardware", {})}}
    raw["hardware"]["backend"] = backend
    for section in ("session", "alarms", "security", "patients"):
        if section in data:
            raw[section] = data[section]
    raw.setdefault("security", {"argon2_time_cost": 1, "argon2_memory_kib": 8192})
    try:
        return configuration.from_dict(raw, sim=True)
    except ConfigError as exc:
        raise InputError(exc.message_en, exc.message_fr, code="BAD_SCENARIO") from None


def check_provisioning(data: dict[str, Any], config: configuration.Config) -> None:
    """Provision the scenario's users, drugs and layout into a throw-away in-memory database.

    The same code and rules as the real run (a PIN too short, a layout naming an unknown drug
    or pocket), but before the scenario's database file is created or opened: a scenario
    refused here leaves no file behind and changes none.
    """
    spec = {k: data.get(k, []) for k in ("users", "drugs", "layout")}
    store = Store(":memory:")
    try:
        # Cheapest argon2 costs: only the rules matter here, the hashes are thrown away.
        apply_spec(store, spec, config.drawers, PinHasher(1, 8), pins_to_change=False)
    except InputError as exc:
        raise InputError(exc.message_en, exc.message_fr, code="BAD_SCENARIO") from None
    finally:
        store.close()


class Runner:
    def __init__(self, data: dict[str, Any], db: str | Path, backend: str = "gpio") -> None:
        self.data = validate(data)
        self.config = build_config(self.data, backend)
        check_provisioning(self.data, self.config)
        start = datetime.fromisoformat(self.data["start"]) if "start" in self.data else None
        if start is not None and start.tzinfo is None:
            # A start without its offset is the ward's clock, as a person writes it: in the
            # cabinet's zone (UTC unless the scenario's cabinet names one).
            start = start.replace(tzinfo=localtime.zone(self.config.settings.timezone))
        self.sim = SimCabinet(self.config, db, start=start)
        self.spec = {k: self.data.get(k, []) for k in ("users", "drugs", "layout")}

    async def run(self) -> dict[str, Any]:
        results = []
        try:
            await self.sim.boot(self.spec)
        except StoreError as exc:
            await self.sim.shutdown()
            if exc.code not in ("DB_UNREADABLE", "DB_SCHEMA"):
                raise
            # --db names a file that is not an Armoire database: the input is refused
            # (exit 2), as journal verify refuses it, rather than reported as a fault.
            raise InputError(f"--db: {exc.message_en}", f"--db : {exc.message_fr}",
                             code=exc.code) from None
        try:
            for step in self.data["steps"]:
                results.append(await self._step(step))
            return self._report(results)
        finally:
            await self.sim.shutdown()

    async def _step(self, step: dict[str, Any]) -> dict[str, Any]:
        kind = step["do"]
        result: dict[str, Any] = {"do": kind}
        try:
            extra = await getattr(self, f"_do_{kind}")(step)
            result["ok"] = True
            if extra:
                result.update(extra)
        except ArmoireError as exc:
            result.update({"ok": False, "error": exc.message_en, "code": exc.code})
        expect = step.get("expect")
        if expect is not None:
            result["as_expected"] = all(result.get(k) == v for k, v in expect.items())
        return result

    # -- steps ----------------------------------------------------------------------------
    async def _do_login(self, s: dict[str, Any]) -> None:
        await self.sim.run(self.sim.cab.login(s["user"], s["pin"]))

    async def _do_logout(self, s: dict[str, Any]) -> None:
        await self.sim.run(self.sim.cab.logout())

    async def _do_restock(self, s: dict[str, Any]) -> dict[str, Any]:
        pocket = (s["drawer"], s["row"], s["col"]) if "drawer" in s else None
        op = await self.sim.operate(self.sim.cab.restock(
            s.get("drug"), s["scan"], s["qty"], lot=s.get("lot"), expiry=s.get("expiry"),
            pocket=pocket), take=s.get("take"))
        return {"pocket": op.pocket.label}

    async def _do_withdraw(self, s: dict[str, Any]) -> dict[str, Any]:
        start = self.sim.cab.withdraw(s["drug"], s["qty"], s.get("patient"))
        if s.get("power_loss") == "while_open":
            op = await self.sim.open_for(start)
            await self.sim.act(op, s.get("take"))
            self.sim.power_loss()
            return {"pocket": op.pocket.label, "interrupted": "power_loss"}
        op = await self.sim.operate(start, take=s.get("take"))
        return {"pocket": op.pocket.label}

    async def _do_return(self, s: dict[str, Any]) -> dict[str, Any]:
        op = await self.sim.operate(self.sim.cab.return_(s["drug"], s["qty"], s.get("patient"),
                                                         s.get("lot"), s.get("expiry")))
        return {"pocket": op.pocket.label}

    async def _do_waste(self, s: dict[str, Any]) -> dict[str, Any]:
        op = await self.sim.operate(self.sim.cab.waste(
            s["drug"], s["qty"], witness=s.get("witness"), witness_pin=s.get("witness_pin"),
            patient=s.get("patient")), take=s.get("take"))
        return {"pocket": op.pocket.label}

    async def _do_count(self, s: dict[str, Any]) -> dict[str, Any]:
        op = await self.sim.open_for(self.sim.cab.count(s["drawer"], s["row"], s["col"]))
        seen = await self.sim.act(op)
        counted = s.get("found", seen)
        if "found" in s:
            self.sim.physical[(op.pocket.drawer, op.pocket.row, op.pocket.col)] = counted
        await self.sim.finish(op, counted)
        return {"counted": counted}

    async def _do_remove_expired(self, s: dict[str, Any]) -> dict[str, Any]:
        op = await self.sim.operate(self.sim.cab.remove_expired(s["drawer"], s["row"],
                                                                s["col"]))
        return {"removed": op.qty}

    async def _do_fault(self, s: dict[str, Any]) -> None:
        self.sim.simulator.physics.inject(s["drawer"], s["kind"])

    async def _do_advance(self, s: dict[str, Any]) -> None:
        seconds = float(s["seconds"])
        if self.sim.cabinet is None:
            self.sim.simulator.clock.now += seconds  # nothing runs while the power is off
            return
        # Long waits jump in one-second strides: the physics needs no finer step when idle.
        tick = self.sim.simulator.clock.tick
        if seconds > 10:
            self.sim.simulator.clock.tick = min(60.0, max(1.0, seconds / 2000))
        try:
            await self.sim.advance(seconds)
        finally:
            self.sim.simulator.clock.tick = tick

    async def _do_power_loss(self, s: dict[str, Any]) -> None:
        self.sim.power_loss()

    async def _do_reboot(self, s: dict[str, Any]) -> None:
        if self.sim.cabinet is not None:
            self.sim.power_loss()  # a reboot of a running cabinet is a cut and a start
        await self.sim.boot()

    async def _do_reset_drawer(self, s: dict[str, Any]) -> dict[str, Any]:
        state = await self.sim.run(self.sim.cab.reset_drawer(s["drawer"]))
        return {"state": state}

    def _alarm(self, s: dict[str, Any], states: tuple[str, ...] = ("open", "acknowledged")
               ) -> int:
        """The first alarm of the step's kind (and drug) in one of ``states``: an
        acknowledge looks for an open one only, else it would pick one already acknowledged
        while another still waits."""
        for alarm in self.sim.cab.alarms.list():
            if alarm["kind"] == s["kind"] and s.get("drug") in (None, alarm["drug"]) \
                    and alarm["state"] in states:
                return int(alarm["id"])
        raise NotFound(f"no open {s['kind']} alarm", f"aucune alarme {s['kind']} ouverte",
                       code="UNKNOWN_ALARM")

    async def _do_resolve(self, s: dict[str, Any]) -> None:
        self.sim.cab.resolve_alarm(self._alarm(s), s.get("note", ""))

    async def _do_acknowledge(self, s: dict[str, Any]) -> None:
        self.sim.cab.acknowledge_alarm(self._alarm(s, ("open",)))

    async def _do_unlock(self, s: dict[str, Any]) -> None:
        people.unlock_user(self.sim.cab, s["user"])

    async def _do_press_close(self, s: dict[str, Any]) -> None:
        _ = self.sim.cab
        self.sim.simulator.physics.press_close_button(s["drawer"])
        await self.sim.advance(0.05)
        op = self.sim.cab.session.op
        if op is not None:
            await self.sim.settle(lambda: op.drawer_closed)

    async def _do_pull_open(self, s: dict[str, Any]) -> None:
        _ = self.sim.cab
        self.sim.simulator.physics.pull_open(s["drawer"])
        await self.sim.advance(0.05)

    # -- report ---------------------------------------------------------------------------
    def _report(self, steps: list[dict[str, Any]]) -> dict[str, Any]:
        store = self.sim.store
        own = store is None
        if store is None:  # powered off at the end: read the file as the next boot would
            store = Store(self.sim.db_path, wallclock=self.sim.wallclock)
        try:
            stock = store.stock_by_pocket()
            alarms = [{k: a[k] for k in ("kind", "drug", "drawer", "row", "col", "lot",
                                         "state", "message")}
                      for a in store.query("SELECT * FROM alarms ORDER BY id")]
            verdict = verify(store.conn)
        finally:
            if own:
                store.close()
        return {"steps": steps, "stock": stock, "alarms": alarms,
                "journal": {"rows": verdict.rows, "head": verdict.head,
                            "verified": verdict.ok}}
