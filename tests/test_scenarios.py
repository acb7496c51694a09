"""The scenario contract: every step kind, the JSON output, faults, power loss."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import SPEC, START, config, login, scenario

from controller.cli import main
from controller.errors import InputError
from sim.scenario import Runner, validate

HERE = Path(__file__).parent


def run(data, tmp_path, backend="gpio"):
    return asyncio.run(Runner(data, tmp_path / "c.db", backend=backend).run())


def steps_ok(report):
    return [(s["do"], s["ok"], s.get("code")) for s in report["steps"]]


RESTOCK = {"do": "restock", "drug": "PARA500", "scan": "03400930000011", "qty": 30,
           "lot": "L1", "expiry": "2027-01-31"}


def test_contract_example_via_cli(tmp_path, capsys):
    code = main(["sim", "run", str(HERE / "scenarios" / "contract_example.json"),
                 "--db", str(tmp_path / "x.db"), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["do"] for s in report["steps"]] == [
        "login", "restock", "withdraw", "fault", "advance", "power_loss", "reboot", "logout"]
    assert all(s["ok"] for s in report["steps"])
    assert report["stock"] == [{"drug": "PARA500", "drawer": "A", "row": 0, "col": 0,
                                "on_hand": 28}]
    assert report["journal"]["verified"] is True
    assert len(report["journal"]["head"]) == 64
    assert set(report) == {"steps", "stock", "alarms", "journal"}


def test_withdraw_flow_and_low_stock(tmp_path):
    report = run(scenario([
        login("t1"), {**RESTOCK, "qty": 12}, {"do": "logout"},
        login("n1"), {"do": "withdraw", "drug": "PARA500", "qty": 2, "patient": "P001"},
    ]), tmp_path)
    assert all(s["ok"] for s in report["steps"])
    assert report["stock"][0]["on_hand"] == 10
    # Empty at start, every pocket was low; the restock closed paracetamol's alarm and the
    # withdrawal to 10 (its level) opened a new one.
    low = [a for a in report["alarms"] if a["kind"] == "low_stock" and a["drug"] == "PARA500"]
    assert [a["state"] for a in low] == ["resolved", "open"]


def test_an_open_low_stock_alarm_tells_the_units_left_now(tmp_path):
    """The technician reads how many units are left on the alarm: its text follows each
    withdrawal while it stays open, with one alarm and one alarm_raised row throughout."""
    db = tmp_path / "c.db"
    report = asyncio.run(Runner(scenario([
        login("t1"), {**RESTOCK, "qty": 10}, {"do": "logout"}, login("n1"),
        {"do": "withdraw", "drug": "PARA500", "qty": 2, "patient": "P001"},
        {"do": "withdraw", "drug": "PARA500", "qty": 3, "patient": "P001"},
    ]), db).run())
    assert all(s["ok"] for s in report["steps"])
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT message FROM alarms WHERE kind='low_stock' "
                         "AND state='open' AND drug='PARA500'").fetchall() == [
            ("pocket A-1-1: 5 unit(s) left (level 10)",)]
        # Raised at start for the empty pocket, open throughout (10 is its level).
        assert c.execute("SELECT COUNT(*) FROM journal WHERE kind='alarm_raised' "
                         "AND code='low_stock' AND drug='PARA500'").fetchone() == (1,)


def test_take_more_than_asked_records_discrepancy(tmp_path):
    report = run(scenario([
        login("n1"), RESTOCK,
        {"do": "withdraw", "drug": "PARA500", "qty": 2, "patient": "P001", "take": 3},
    ]), tmp_path)
    assert report["stock"][0]["on_hand"] == 27  # the count the nurse reported
    kinds = [a["kind"] for a in report["alarms"] if a["state"] == "open"]
    assert "discrepancy" in kinds


def test_jam_stops_motor_raises_alarm_and_changes_no_stock(tmp_path):
    data = scenario([
        login("n1"), RESTOCK, {"do": "fault", "drawer": "A", "kind": "jam"},
        {"do": "withdraw", "drug": "PARA500", "qty": 2, "patient": "P001"},
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P001"},
        {"do": "fault", "drawer": "A", "kind": "clear"},
        {"do": "logout"}, login("t1"), {"do": "reset_drawer", "drawer": "A"},
        {"do": "logout"}, login("n1"),
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P001"},
    ])
    runner = Runner(data, tmp_path / "c.db")
    report = asyncio.run(runner.run())
    res = steps_ok(report)
    # Part-open (the jam let it travel a quarter out): no stock moved, but the pocket it
    # exposed is to be counted before its stock is trusted.
    assert res[3] == ("withdraw", False, "JAMMED_PART_OPEN")
    assert [(a["kind"], a["drawer"], a["row"], a["col"]) for a in report["alarms"]
            if a["kind"] == "discrepancy"] == [("discrepancy", "A", 0, 0)]
    assert res[4] == ("withdraw", False, "DRAWER_OUT_OF_SERVICE")
    assert res[8][1] is True and report["steps"][8]["state"] == "closed"
    assert res[-1] == ("withdraw", True, None)
    assert report["stock"][0]["on_hand"] == 29
    faults = [a for a in report["alarms"] if a["kind"] == "drawer_fault"]
    assert faults and faults[0]["state"] == "resolved"
    physics = runner.sim.simulator.physics
    jam_run = next(r for r in physics.motor_runs if r.drawer == "A" and r.direction == "open"
                   and r.stop is not None and r.stop - r.start > 5)
    assert jam_run.stop - jam_run.start == pytest.approx(6.0, abs=0.05)  # max_travel_s
    assert all(r.stop is not None for r in physics.motor_runs)  # no motor left running


def test_stuck_switch_is_a_drawer_fault(tmp_path):
    report = run(scenario([
        login("n1"), RESTOCK, {"do": "fault", "drawer": "A", "kind": "switch_stuck"},
        {"do": "withdraw", "drug": "PARA500", "qty": 2, "patient": "P001"},
    ]), tmp_path)
    # The motor ran half the drawer out while its stuck switch still read closed: where
    # the matrix drawer stands is unknown, so nothing is said taken and its pocket is counted.
    assert steps_ok(report)[-1] == ("withdraw", False, "POSITION_UNKNOWN")
    assert report["stock"][0]["on_hand"] == 30
    assert any(a["kind"] == "drawer_fault" and "switch" in a["message"]
               for a in report["alarms"])
    assert [(a["kind"], a["drawer"], a["state"]) for a in report["alarms"]
            if a["kind"] == "discrepancy"] == [("discrepancy", "A", "open")]


def test_power_loss_while_open_becomes_discrepancy_after_restart(tmp_path):
    report = run(scenario([
        login("n1"), RESTOCK,
        {"do": "withdraw", "drug": "PARA500", "qty": 2, "patient": "P001",
         "power_loss": "while_open"},
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P001"},
        {"do": "reboot"},
        login("ph1"),
        {"do": "count", "drawer": "A", "row": 0, "col": 0},
        {"do": "resolve", "kind": "discrepancy", "note": "counted after power cut"},
    ]), tmp_path)
    res = steps_ok(report)
    assert res[2] == ("withdraw", True, None) and report["steps"][2]["interrupted"]
    assert res[3] == ("withdraw", False, "POWERED_OFF")
    assert all(ok for _, ok, _ in res[4:]), res
    # The count found the 28 the nurse left; the correction is journaled, the alarm closed.
    assert report["stock"][0]["on_hand"] == 28
    disc = [a for a in report["alarms"] if a["kind"] == "discrepancy"]
    assert disc[0]["state"] == "resolved" and "power loss" in disc[0]["message"]
    assert report["journal"]["verified"]


def test_return_waste_witness_remove_expired(tmp_path):
    report = run(scenario([
        login("t1"),
        {"do": "restock", "drug": "MORPH10", "scan": "0103400930000028172612011010LOTM",
         "qty": 10},
        {"do": "restock", "drug": "PARA500", "scan": "PARA500", "qty": 10, "lot": "OLD",
         "expiry": "2026-11-30"},
        {"do": "logout"}, login("n1"),
        {"do": "waste", "drug": "MORPH10", "qty": 1},
        {"do": "waste", "drug": "MORPH10", "qty": 1, "witness": "n1", "witness_pin": "482913"},
        {"do": "waste", "drug": "MORPH10", "qty": 1, "witness": "n2", "witness_pin": "000001"},
        {"do": "waste", "drug": "MORPH10", "qty": 1, "witness": "n2", "witness_pin": "771346"},
        {"do": "withdraw", "drug": "MORPH10", "qty": 2, "patient": "P9"},
        {"do": "return", "drug": "MORPH10", "qty": 1, "patient": "P9"},
        {"do": "advance", "seconds": 8 * 86400},
        login("n1"),
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P9"},
        {"do": "logout"}, login("t1"),
        {"do": "remove_expired", "drawer": "A", "row": 0, "col": 0},
    ]), tmp_path)
    res = steps_ok(report)
    assert res[5] == ("waste", False, "WITNESS_REQUIRED")
    assert res[6] == ("waste", False, "WITNESS_SELF")
    assert res[7] == ("waste", False, "AUTH_FAILED")
    assert res[8][1] and res[9][1] and res[10][1]
    assert res[13] == ("withdraw", False, "NO_STOCK")  # the only lot has expired
    assert res[16][1] and report["steps"][16]["removed"] == 10
    stock = {s["drug"]: s["on_hand"] for s in report["stock"]}
    assert stock == {"PARA500": 0, "MORPH10": 8, "HYDROX25": 0}
    expired = [a for a in report["alarms"] if a["kind"] == "expired"]
    assert expired and all(a["state"] == "resolved" for a in expired)


def test_restock_rules(tmp_path):
    report = run(scenario([
        login("t1"),
        {"do": "restock", "drug": "PARA500", "scan": "03400930000028", "qty": 5, "lot": "L",
         "expiry": "2027-01-01"},
        {"do": "restock", "drug": "PARA500", "scan": "PARA500", "qty": 5, "lot": "L",
         "expiry": "2025-01-01"},
        {"do": "restock", "drug": "PARA500", "scan": "PARA500", "qty": 61, "lot": "L",
         "expiry": "2027-01-01"},
        {"do": "restock", "drug": "PARA500", "scan": "PARA500", "qty": 0, "lot": "L",
         "expiry": "2027-01-01"},
        {"do": "restock", "drug": "PARA500", "scan": "PARA500", "qty": -2, "lot": "L",
         "expiry": "2027-01-01"},
        {"do": "restock", "drug": "PARA500", "scan": "PARA500", "qty": 5},
        {"do": "restock", "drug": "PARA500", "scan": "0103400930000011172701311010AB",
         "qty": 5, "lot": "OTHER"},
        {"do": "restock", "drug": "NOPE", "scan": "NOPE", "qty": 5, "lot": "L",
         "expiry": "2027-01-01"},
        # Python reads these as dates too; the cabinet writes and shows YYYY-MM-DD only.
        {"do": "restock", "drug": "PARA500", "scan": "PARA500", "qty": 5, "lot": "L",
         "expiry": "20270131"},
        {"do": "restock", "drug": "PARA500", "scan": "PARA500", "qty": 5, "lot": "L",
         "expiry": "2027-W05-1"},
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P1"},
    ]), tmp_path)
    assert [c for _, _, c in steps_ok(report)[1:]] == [
        "WRONG_SCAN", "EXPIRED_LOT", "OVER_CAPACITY", "BAD_QTY", "BAD_QTY", "LOT_REQUIRED",
        "LOT_MISMATCH", "UNKNOWN_DRUG", "BAD_DATE", "BAD_DATE", "FORBIDDEN"]
    assert report["stock"][0]["on_hand"] == 0


def test_roles_and_lockout(tmp_path):
    report = run(scenario([
        login("as1"),
        {"do": "withdraw", "drug": "HYDROX25", "qty": 1, "patient": "P1"},
        {"do": "logout"},
        *[{"do": "login", "user": "n2", "pin": "000000"} for _ in range(5)],
        login("n2"),
        {"do": "login", "user": "ghost", "pin": "123456"},
        login("n1"), {"do": "unlock", "user": "n2"}, {"do": "logout"},
        login("ph1"), {"do": "unlock", "user": "n2"}, {"do": "logout"},
        login("n2"),
    ]), tmp_path)
    codes = [c for _, _, c in steps_ok(report)]
    assert codes[1] == "FORBIDDEN_DRUG"
    assert codes[3:7] == ["AUTH_FAILED"] * 4
    assert codes[7] == "AUTH_LOCKED"     # fifth wrong PIN locks
    assert codes[8] == "AUTH_LOCKED"     # the right PIN no longer opens
    assert codes[9] == "AUTH_FAILED"     # unknown user: same answer as a wrong PIN
    assert codes[11] == "FORBIDDEN"      # a nurse cannot unlock
    assert codes[14] is None and codes[16] is None
    lock = [a for a in report["alarms"] if a["kind"] == "auth_lockout"]
    assert lock and lock[0]["state"] == "resolved"


def test_technician_cannot_withdraw_and_nurse_cannot_resolve(tmp_path):
    report = run(scenario([
        login("n1"), RESTOCK,
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P1", "take": 2},
        {"do": "resolve", "kind": "discrepancy"},
        {"do": "logout"}, login("t1"),
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P1"},
        {"do": "resolve", "kind": "discrepancy"},
    ]), tmp_path)
    codes = [c for _, _, c in steps_ok(report)]
    assert codes[3] == "FORBIDDEN" and codes[6] == "FORBIDDEN" and codes[7] == "FORBIDDEN"


def test_inactivity_logout(tmp_path):
    report = run(scenario([
        login("n1"), {"do": "advance", "seconds": 100},
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P1"},
        login("n1"), {"do": "advance", "seconds": 30},
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P1"},
    ], session={"inactivity_seconds": 90}), tmp_path)
    codes = [c for _, _, c in steps_ok(report)]
    assert codes[2] == "NOT_LOGGED_IN"
    assert codes[3] is None and codes[5] == "NO_STOCK"  # still logged in after 30 s


def test_commands_in_wrong_state(tmp_path):
    report = run(scenario([
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P1"},
        login("n1"), login("n2"),
        {"do": "reset_drawer", "drawer": "A"},
    ]), tmp_path)
    codes = [c for _, _, c in steps_ok(report)]
    assert codes == ["NOT_LOGGED_IN", None, "SESSION_OPEN", "FORBIDDEN"]


def test_press_close_and_forced_open(tmp_path):
    report = run(scenario([
        login("n1"), RESTOCK,
        {"do": "pull_open", "drawer": "A"},
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P1"},
        {"do": "press_close", "drawer": "A"},
        {"do": "acknowledge", "kind": "drawer_fault"},
    ]), tmp_path)
    codes = [c for _, _, c in steps_ok(report)]
    assert codes[3] == "DRAWER_OUT_OF_SERVICE"
    assert codes[4] is None and codes[5] is None
    fault = [a for a in report["alarms"] if a["kind"] == "drawer_fault"]
    assert fault[0]["state"] == "acknowledged" and "forced" in fault[0]["message"]


def test_a_matrix_drawer_pulled_open_asks_for_a_count_of_every_stocked_pocket(tmp_path):
    """Nobody the journal can name opened it, and an open drawer exposes every pocket: each
    one holding stock is to be counted before it is trusted again. Empty pockets are not,
    and a lidded drawer's pockets, still latched, are not either."""
    from controller.alarms import message

    report = run(scenario([
        login("t1"), RESTOCK,
        {"do": "restock", "drug": "MORPH10", "scan": "03400930000028", "qty": 5, "lot": "M1",
         "expiry": "2027-06-30"},
        {"do": "logout"},
        {"do": "pull_open", "drawer": "A"},
        {"do": "pull_open", "drawer": "B"},
    ]), tmp_path)
    assert all(ok for _, ok, _ in steps_ok(report))
    counts = [a for a in report["alarms"] if a["kind"] == "discrepancy"]
    assert [(a["drawer"], a["row"], a["col"], a["drug"]) for a in counts] == [
        ("A", 0, 0, "PARA500")]   # HYDROX25's pocket in A is empty; B is lidded
    assert counts[0]["message"] == "drawer A opened without a command: count pocket A-1-1"
    assert message(counts[0], "fr") == "tiroir A ouvert sans commande : comptez la poche A-1-1"
    faults = {a["drawer"] for a in report["alarms"] if a["kind"] == "drawer_fault"}
    assert faults == {"A", "B"}


@pytest.mark.parametrize("bad, field", [
    ({"steps": [{"do": "dance"}]}, "steps[0].do"),
    ({"steps": [{"do": "withdraw", "drug": "X"}]}, "steps[0].qty"),
    ({"steps": [{"do": "withdraw", "drug": "X", "qty": "2"}]}, "steps[0].qty"),
    ({"steps": [{"do": "fault", "drawer": "Z", "kind": "jam"}]}, "steps[0].drawer"),
    ({"steps": [{"do": "fault", "drawer": "A", "kind": "fire"}]}, "steps[0].kind"),
    ({"steps": [{"do": "advance", "seconds": -1}]}, "steps[0].seconds"),
    ({"steps": "nope"}, "steps"),
    # What the simulated person takes or finds, and pocket numbers, are whole numbers ≥ 0: a
    # negative one is a broken file, not a step for the cabinet to refuse (a negative "take"
    # put units into the simulated pocket, a negative "found" left the drawer open and the
    # next steps failing). A negative qty is asked of the cabinet, which refuses it (below).
    ({"steps": [{"do": "withdraw", "drug": "X", "qty": -10 ** 30}]}, "steps[0].qty"),
    ({"steps": [{"do": "withdraw", "drug": "X", "qty": 2, "take": -1}]}, "steps[0].take"),
    ({"steps": [{"do": "count", "drawer": "A", "row": 0, "col": 0, "found": -3}]},
     "steps[0].found"),
    ({"steps": [{"do": "count", "drawer": "A", "row": -1, "col": 0}]}, "steps[0].row"),
    # … and small enough for the database (SQLite stops at 2**63 - 1: OverflowError).
    ({"steps": [{"do": "count", "drawer": "A", "row": 10 ** 30, "col": 0}]}, "steps[0].row"),
    ({"steps": [{"do": "restock", "scan": "X", "qty": 2, "take": 10 ** 30}]},
     "steps[0].take"),
])
def test_malformed_scenarios_are_refused_before_running(bad, field, tmp_path):
    data = scenario([])
    data.update(bad)
    with pytest.raises(InputError) as err:
        validate(data)
    assert field in err.value.message_en and err.value.code == "BAD_SCENARIO"


def test_malformed_file_exit_code_and_no_db(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    db = tmp_path / "never.db"
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "sim", "run", str(bad),
                           "--db", str(db), "--json"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "BAD_SCENARIO" in proc.stderr and "Traceback" not in proc.stderr
    assert not db.exists()


@pytest.mark.parametrize("patch, field", [
    ({"users": [{"id": "x", "name": "X", "role": "nurse", "pin": "12"}]}, "users[0]"),
    ({"layout": [{"drug": "NOPE", "drawer": "A", "row": 0, "col": 0}]}, "layout[0].drug"),
    ({"layout": [{"drug": "PARA500", "drawer": "A", "row": 7, "col": 0}]}, "layout[0]"),
    # Numbers SQLite cannot store were an OverflowError traceback, not a refusal.
    ({"layout": [{"drug": "PARA500", "drawer": "A", "row": 0, "col": 0,
                  "capacity": 10 ** 30}]}, "layout[0].capacity"),
    ({"layout": [{"drug": "PARA500", "drawer": "A", "row": 10 ** 30, "col": 0}]},
     "layout[0].row"),
    # One pocket given twice: the second line silently took it, and the first drug was
    # left with no pocket (NOT_IN_CABINET at its first restock).
    ({"layout": [{"drug": "PARA500", "drawer": "A", "row": 0, "col": 0, "capacity": 60},
                 {"drug": "HYDROX25", "drawer": "A", "row": 0, "col": 0, "capacity": 30}]},
     "layout[1]"),
])
def test_bad_provisioning_data_creates_no_database(tmp_path, patch, field):
    data = {**scenario([login("n1")]), **patch}
    with pytest.raises(InputError) as err:
        asyncio.run(Runner(data, tmp_path / "c.db").run())
    assert field in err.value.message_en and err.value.code == "BAD_SCENARIO"
    assert list(tmp_path.iterdir()) == []


def test_bad_provisioning_data_leaves_an_existing_database_unchanged(tmp_path):
    assert run(scenario([login("n1")]), tmp_path)["journal"]["verified"]
    before = (tmp_path / "c.db").read_bytes()
    data = scenario([login("n1")])
    data["users"] = [*data["users"], {"id": "x", "name": "X", "role": "nurse", "pin": "12"}]
    with pytest.raises(InputError):
        run(data, tmp_path)
    assert (tmp_path / "c.db").read_bytes() == before


@pytest.mark.parametrize("patch, field", [
    ({"start": 20261123}, "start"), ({"start": "20261123"}, "start"),
    ({"hardware": [1]}, "hardware"), ({"session": "x"}, "session"),
])
def test_wrongly_typed_sections_are_refused_with_one_line(tmp_path, patch, field):
    sc = tmp_path / "s.json"
    sc.write_text(json.dumps({**scenario([]), **patch}))
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "sim", "run", str(sc),
                           "--db", str(tmp_path / "x.db")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    [line] = proc.stderr.splitlines()
    assert "[BAD_SCENARIO]" in line and f"{field}:" in line
    assert not (tmp_path / "x.db").exists()


def test_a_negative_take_is_refused_with_one_line_and_no_database(tmp_path):
    sc = tmp_path / "s.json"
    sc.write_text(json.dumps(scenario([
        login("t1"), RESTOCK, {"do": "logout"}, login("n1"),
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P1", "take": -1}])))
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "sim", "run", str(sc),
                           "--db", str(tmp_path / "x.db"), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert "[BAD_SCENARIO]" in line and "steps[4].take:" in line
    assert not (tmp_path / "x.db").exists()


def test_a_key_named_twice_is_refused(tmp_path, capsys):
    sc = tmp_path / "s.json"
    sc.write_text(json.dumps(scenario([]))[:-1] + ', "steps": [{"do": "logout"}]}')
    assert main(["sim", "run", str(sc), "--db", str(tmp_path / "x.db")]) == 2
    assert "duplicate key 'steps'" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


def test_a_file_that_is_not_a_database_is_refused_input(tmp_path, capsys):
    sc = tmp_path / "s.json"
    sc.write_text(json.dumps(scenario([])))
    bad = tmp_path / "notdb.db"
    bad.write_text("hello")
    assert main(["sim", "run", str(sc), "--db", str(bad)]) == 2  # as journal verify does
    assert "[DB_UNREADABLE]" in capsys.readouterr().err
    assert bad.read_text() == "hello"


def test_a_lot_expiring_overnight_raises_alarms_without_anyone_touching_it(tmp_path):
    report = run(scenario([
        login("t1"),
        {**RESTOCK, "expiry": "2026-12-10"},   # inside the 30-day window already
        {"do": "logout"},
        {"do": "advance", "seconds": 18 * 86400 + 7200},  # now 2026-12-11, past expiry
    ]), tmp_path)
    kinds = {(a["kind"], a["state"]) for a in report["alarms"]}
    assert ("expired", "open") in kinds
    assert ("expiry", "resolved") in kinds  # the warning gave way to the expired alarm


def test_opening_stock_expiry_may_be_relative_to_the_provisioning_day(tmp_path):
    """A demo or training cabinet set up on any day keeps its near-expiry lot near expiry."""
    from controller.auth import PinHasher
    from controller.provision import apply_spec
    from controller.store import Store

    def provision(name, stock):
        store = Store(tmp_path / name, wallclock=lambda: START)
        try:
            apply_spec(store, {**SPEC, "stock": stock}, config().drawers, PinHasher(1, 8192))
            return [(r["lot"], r["expiry"], r["on_hand"])
                    for r in store.query("SELECT lot, expiry, on_hand FROM stock ORDER BY lot")]
        finally:
            store.close()

    where = {"drawer": "A", "row": 0, "col": 0, "qty": 5}
    assert provision("ok.db", [{**where, "lot": "R", "expires_in_days": 22},
                               {**where, "lot": "F", "expiry": "2027-03-31"}]) == [
        ("F", "2027-03-31", 5), ("R", (START.date() + timedelta(days=22)).isoformat(), 5)]
    for i, bad in enumerate([{**where, "lot": "B"},
                             {**where, "lot": "B", "expiry": "2027-03-31", "expires_in_days": 3},
                             {**where, "lot": "B", "expiry": "31/03/2027"},
                             {**where, "lot": "B", "expiry": "20270331"},
                             {**where, "lot": "B", "expires_in_days": -1},
                             {**where, "lot": "B", "expires_in_days": 10 ** 7},
                             {**where, "lot": "B", "expires_in_days": "22"}]):
        with pytest.raises(InputError) as err:
            provision(f"bad{i}.db", [{**where, "lot": "GOOD", "expiry": "2027-03-31"}, bad])
        assert "stock[1]" in err.value.message_en
        conn = sqlite3.connect(tmp_path / f"bad{i}.db")
        try:  # all or nothing: the good first lot and the users are not left behind either
            assert conn.execute("SELECT COUNT(*) FROM stock").fetchone()[0] == 0
            assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0
        finally:
            conn.close()


def test_a_patient_id_outside_the_hospital_s_format_is_refused(tmp_path):
    report = run(scenario([
        login("t1"), RESTOCK, {"do": "logout"}, login("n1"),
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "lit 12"},
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "2026123"},
        {"do": "return", "drug": "PARA500", "qty": 1, "patient": "Dupont"},
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": " 20261234 "},
        {"do": "return", "drug": "PARA500", "qty": 1},
    ], patients={"id_pattern": "[0-9]{8}", "id_example": "20261234"}), tmp_path)
    assert [c for _, _, c in steps_ok(report)[4:]] == [
        "BAD_PATIENT_ID", "BAD_PATIENT_ID", "BAD_PATIENT_ID", None, None]
    assert report["stock"][0]["on_hand"] == 30


def test_acknowledge_without_a_drug_takes_the_next_open_alarm(tmp_path):
    """Two low-stock alarms: the second acknowledge is for the one still open, not the one
    the first step already acknowledged (which gave ALARM_NOT_OPEN)."""
    report = run(scenario([
        login("t1"), {**RESTOCK, "qty": 5},
        {"do": "restock", "drug": "HYDROX25", "scan": "HYDROX25", "qty": 5, "lot": "H1",
         "expiry": "2027-01-31"},
        # Above its level: the alarm its empty pocket raised at start is closed.
        {"do": "restock", "drug": "MORPH10", "scan": "MORPH10", "qty": 15, "lot": "M1",
         "expiry": "2027-01-31"},
        {"do": "logout"}, login("ph1"),
        {"do": "acknowledge", "kind": "low_stock"},
        {"do": "acknowledge", "kind": "low_stock"},
        {"do": "acknowledge", "kind": "low_stock"},
    ]), tmp_path)
    assert [c for _, _, c in steps_ok(report)[6:]] == [None, None, "UNKNOWN_ALARM"]
    low = [a["state"] for a in report["alarms"] if a["kind"] == "low_stock"
           and a["state"] != "resolved"]
    assert low == ["acknowledged", "acknowledged"]


def test_a_scenario_run_again_on_its_database_starts_from_the_stock_it_left(tmp_path):
    """The pockets hold what the file says when the next run opens it: the simulated person
    must not find them empty (which turned the first count into a false discrepancy)."""
    steps = [login("t1"), {**RESTOCK, "qty": 20}, {"do": "logout"}, login("n1"),
             {"do": "withdraw", "drug": "PARA500", "qty": 2, "patient": "P1"}]
    first = run(scenario(steps), tmp_path)
    again = run(scenario(steps), tmp_path)
    assert all(s["ok"] for s in first["steps"] + again["steps"])
    assert again["stock"][0]["on_hand"] == 36
    assert not [a for a in again["alarms"] if a["kind"] == "discrepancy"]


def test_a_re_run_on_a_database_of_another_cabinet_is_refused(tmp_path, capsys):
    """A scenario run again on its database with a drawer changed is refused with a code,
    not run on the old geometry as if provisioning had happened."""
    first = scenario([login("t1"), RESTOCK, {"do": "logout"}])
    sc = tmp_path / "s.json"
    sc.write_text(json.dumps(first))
    db = tmp_path / "x.db"
    assert main(["sim", "run", str(sc), "--db", str(db), "--json"]) == 0
    capsys.readouterr()
    changed = json.loads(json.dumps(first))
    changed["cabinet"]["drawers"][0]["rows"] += 1
    sc.write_text(json.dumps(changed))
    assert main(["sim", "run", str(sc), "--db", str(db), "--json"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "[GEOMETRY_CHANGED]" in out.err
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT SUM(on_hand) FROM stock").fetchone()[0] == 30


def test_two_drugs_of_one_gtin_in_a_seed_are_refused_not_one_dropped():
    """The drugs went in with INSERT OR REPLACE, which meets the unique GTIN index by
    deleting the row already there: a formulary giving one GTIN twice (13 and 14 digits,
    or a copy-paste) lost its first drug without a word, or failed on a layout line with
    "unknown drug" for a drug the file plainly has."""
    from controller.provision import apply_drugs
    from controller.store import Store

    drugs = [{"id": "PARA500", "name": "paracetamol", "gtin": "03400930000011"},
             {"id": "IBU200", "name": "ibuprofen", "gtin": "3400930000011"}]
    store = Store(":memory:")
    try:
        with pytest.raises(InputError) as err:
            apply_drugs(store, drugs)
        assert err.value.code == "GTIN_TAKEN"
        assert "drugs[1].gtin" in err.value.message_en and "PARA500" in err.value.message_fr
        assert store.query("SELECT id FROM drugs") == []
    finally:
        store.close()
