"""The pharmacist's formulary and pocket assignments, at the cabinet (controller.formulary):
validation with stable codes, nothing changed on refusal, every change journaled."""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import PINS, SPEC, START, config, restocked

from controller import formulary, relayout, replenishment
from controller.auth import User
from controller.errors import ArmoireError, PermissionDenied
from controller.journal import integrity_problem
from controller.store import JournalEntry, StockDelta
from sim.harness import SimCabinet

PH = User("ph1", "Pharma One", "pharmacist", "fr")
GTIN_OK = "03400930000205"         # valid GS1 check digit
GTIN_OK_13 = "3400930000229"       # EAN-13, valid; stored as 03400930000229
GTIN_OK_8 = "96385074"             # EAN-8, valid


@pytest.fixture
def booted(tmp_path):
    sim = SimCabinet(config(), tmp_path / "f.db", start=START)
    loop = asyncio.new_event_loop()
    cabinet = loop.run_until_complete(sim.boot(SPEC))
    yield sim, cabinet, loop
    loop.run_until_complete(sim.shutdown())
    loop.close()


@pytest.fixture
def cab(booted):
    return booted[1]


def snapshot(cab):
    """Everything a refused change must leave as it was."""
    q = cab.store.query
    return (q("SELECT * FROM drugs ORDER BY id"), q("SELECT * FROM pockets ORDER BY drawer, "
            "row, col"), q("SELECT * FROM layout_proposals"), cab.store.head())


def refused(cab, code, call, *args, **kwargs):
    before = snapshot(cab)
    with pytest.raises(ArmoireError) as info:
        call(cab, *args, **kwargs)
    assert info.value.code == code, info.value.message_en
    assert info.value.message_fr and info.value.message_fr != "" and info.value.message_en
    assert snapshot(cab) == before, f"{code}: something changed"
    return info.value


def test_add_drug_normalises_the_gtin_and_journals_in_one_go(cab):
    drug = formulary.add_drug(cab, "HYDRAL25", " hydralazine ", "25 mg", "tablet", GTIN_OK_13,
                              high_alert=True, actor=PH)
    assert drug["name"] == "hydralazine" and drug["gtin"] == "03400930000229"
    assert (drug["high_alert"], drug["controlled"], drug["assistant_allowed"]) == (1, 0, 0)
    [row] = cab.store.journal_rows(kind="drug_added")
    detail = json.loads(row["detail"])
    assert row["user"] == "ph1" and row["drug"] == "HYDRAL25"
    assert detail["gtin"] == "03400930000229" and detail["high_alert"] == 1
    assert formulary.add_drug(cab, "EAN8", "eight", gtin=GTIN_OK_8, actor=PH)["gtin"] == \
        "000000" + GTIN_OK_8
    # Added, not placed: not offered at the touchscreen until it has a pocket.
    assert "HYDRAL25" not in {d["id"] for d in cab.formulary()}
    assert {d["id"]: d["pockets"] for d in formulary.drugs(cab)}["HYDRAL25"] == []
    assert integrity_problem(cab.store.conn) is None


@pytest.mark.parametrize(("args", "flags", "code"), [
    (("PARA500", "dup"), {}, "DRUG_EXISTS"),
    (("para500", "dup"), {}, "DRUG_EXISTS"),           # differs only by case
    (("X", "short id"), {}, "BAD_DRUG_ID"),
    (("12345678", "looks like a GTIN"), {}, "BAD_DRUG_ID"),
    (("A B", "space"), {}, "BAD_DRUG_ID"),
    (("N" * 33, "too long"), {}, "BAD_DRUG_ID"),
    (("NEW1", "  "), {}, "BAD_NAME"),
    (("NEW1", "x" * 81), {}, "FIELD_TOO_LONG"),
    (("NEW1", "ok", "s" * 41), {}, "FIELD_TOO_LONG"),
    (("NEW1", "ok", None, "f" * 41), {}, "FIELD_TOO_LONG"),
    (("NEW1", "bad\x00name"), {}, "BAD_TEXT"),
    (("NEW1", "ok", None, None, "12345"), {}, "BAD_GTIN"),
    (("NEW1", "ok", None, None, "3400930000A22"), {}, "BAD_GTIN"),
    (("NEW1", "ok", None, None, "03400930000206"), {}, "BAD_GTIN_CHECK"),
    (("NEW1", "ok"), {"controlled": "yes"}, "BAD_FLAG"),
    (("NEW1", "ok"), {"controlled": 1}, "BAD_FLAG"),
    (("NEW1", "ok"), {"dangerous": True}, "BAD_FLAG"),
])
def test_add_drug_refusals_change_nothing(cab, args, flags, code):
    refused(cab, code, formulary.add_drug, *args, actor=PH, **flags)


def test_only_a_pharmacist_keeps_the_formulary(cab):
    for role in ("nurse", "assistant", "technician", "admin"):
        who = User("x1", "X", role)
        for call, args in ((formulary.add_drug, ("NEW1", "new")),
                           (formulary.change_drug, ("PARA500", "renamed")),
                           (formulary.assign_pocket, ("A", 2, 0, "PARA500", 10)),
                           (formulary.unassign_pocket, ("A", 0, 0))):
            err = refused(cab, "FORBIDDEN", call, *args, actor=who)
            assert isinstance(err, PermissionDenied)


def test_change_drug_journals_before_and_after_of_changed_fields_only(cab):
    changes, notices = formulary.change_drug(
        cab, "HYDROX25", "hydroxyzine", "25 mg", "tablet", GTIN_OK, assistant_allowed=True,
        actor=PH)
    assert changes == {"gtin": {"before": None, "after": GTIN_OK},
                       "assistant_allowed": {"before": 0, "after": 1}}
    assert notices == []
    [row] = cab.store.journal_rows(kind="drug_changed")
    assert row["drug"] == "HYDROX25" and json.loads(row["detail"])["changes"] == changes
    assert cab.drug("HYDROX25")["assistant_allowed"] == 1
    # Saving the same values again writes nothing.
    head = cab.store.head()
    assert formulary.change_drug(cab, "HYDROX25", "hydroxyzine", "25 mg", "tablet", GTIN_OK,
                                 assistant_allowed=True, actor=PH) == ({}, [])
    assert cab.store.head() == head


def test_a_legacy_gtin_is_kept_but_a_new_one_must_be_valid(cab):
    # PARA500's seed GTIN has a wrong check digit: it still scans, and editing the name
    # must not force the pharmacist to retype a box's code.
    assert cab.drug("PARA500")["gtin"] == "03400930000011"
    changes, _ = formulary.change_drug(cab, "PARA500", "paracetamol", "500 mg", "tablet",
                                       "03400930000011", assistant_allowed=True, actor=PH)
    assert changes == {}
    assert not {d["id"]: d for d in formulary.drugs(cab)}["PARA500"]["gtin_ok"]
    refused(cab, "BAD_GTIN_CHECK", formulary.change_drug, "PARA500", "paracetamol", "500 mg",
            "tablet", "03400930000012", assistant_allowed=True, actor=PH)
    formulary.add_drug(cab, "NEW1", "new", gtin=GTIN_OK, actor=PH)
    refused(cab, "GTIN_TAKEN", formulary.change_drug, "HYDROX25", "hydroxyzine",
            gtin=GTIN_OK, actor=PH)
    refused(cab, "GTIN_TAKEN", formulary.add_drug, "NEW2", "new", gtin=GTIN_OK[1:], actor=PH)
    refused(cab, "UNKNOWN_DRUG", formulary.change_drug, "NOPE", "x", actor=PH)
    refused(cab, "BAD_NAME", formulary.change_drug, "PARA500", "", actor=PH)


def test_flagging_a_placed_drug_controlled_warns_it_sits_in_an_open_drawer(cab):
    changes, notices = formulary.change_drug(cab, "HYDROX25", "hydroxyzine", "25 mg",
                                             "tablet", controlled=True, actor=PH)
    assert changes["controlled"] == {"before": 0, "after": 1}
    assert [n.code for n in notices] == ["NEEDS_LIDDED_POCKET"] and "A-2-3" in notices[0].en
    assert cab.drug("HYDROX25")["controlled"] == 1  # the flag is recorded nonetheless


def test_assign_a_new_drug_to_an_empty_pocket(cab):
    formulary.add_drug(cab, "IBU400", "ibuprofen", "400 mg", "tablet", GTIN_OK, actor=PH)
    notices = formulary.assign_pocket(cab, "A", 2, 0, "IBU400", 40, actor=PH)
    assert notices == []
    pocket = cab.pocket("A", 2, 0)
    assert (pocket.drug, pocket.capacity, pocket.min_level) == ("IBU400", 40, None)
    [row] = cab.store.journal_rows(kind="pocket_assigned")
    assert (row["user"], row["drug"], row["drawer"], row["row"], row["col"], row["qty"]) == (
        "ph1", "IBU400", "A", 2, 0, 40)
    # Now part of the cabinet: offered at the touchscreen (0 usable), low on stock.
    assert {d["id"]: d["usable"] for d in cab.formulary()}["IBU400"] == 0
    assert any(a["kind"] == "low_stock" and a["drug"] == "IBU400" for a in cab.alarms.list())
    assert integrity_problem(cab.store.conn) is None


def test_assign_warns_of_a_lookalike_in_a_pocket_sharing_a_side(cab):
    formulary.add_drug(cab, "HYDRAL25", "hydralazine", "25 mg", "tablet", actor=PH)
    # A-1-3 touches A-2-3 (hydroxyzine 25 mg): the engine's look-alike pair.
    notices = formulary.assign_pocket(cab, "A", 0, 2, "HYDRAL25", 30, actor=PH)
    assert [n.code for n in notices] == ["LOOKALIKE_NEIGHBOUR"]
    assert "hydroxyzine" in notices[0].en and "A-2-3" in notices[0].fr
    detail = json.loads(cab.store.journal_rows(kind="pocket_assigned")[-1]["detail"])
    assert detail["lookalikes"] == ["HYDROX25"]
    # The same pair by the engine's own count of today's layout.
    assert relayout.score_today(cab)[0] == 1
    # A diagonal or distant pocket is no neighbour.
    formulary.unassign_pocket(cab, "A", 0, 2, actor=PH)
    assert formulary.assign_pocket(cab, "A", 2, 0, "HYDRAL25", 30, actor=PH) == []


def test_assign_refusals_change_nothing(booted):
    sim, cab, loop = booted
    formulary.add_drug(cab, "KCL10", "potassium chloride", "10 %", "ampoule", high_alert=True,
                       actor=PH)
    formulary.add_drug(cab, "OXY5", "oxycodone", "5 mg", controlled=True, actor=PH)
    refused(cab, "NEEDS_LIDDED_POCKET", formulary.assign_pocket, "A", 2, 0, "KCL10", 10,
            actor=PH)
    refused(cab, "NEEDS_LIDDED_POCKET", formulary.assign_pocket, "A", 2, 0, "OXY5", 10,
            actor=PH)
    refused(cab, "POCKET_OCCUPIED", formulary.assign_pocket, "A", 0, 0, "KCL10", 10, actor=PH)
    refused(cab, "UNKNOWN_POCKET", formulary.assign_pocket, "A", 9, 9, "KCL10", 10, actor=PH)
    refused(cab, "UNKNOWN_DRUG", formulary.assign_pocket, "B", 0, 0, "NOPE", 10, actor=PH)
    for capacity in (0, -1, 10_001, True, "12", 2.5):
        refused(cab, "BAD_CAPACITY", formulary.assign_pocket, "B", 0, 0, "KCL10", capacity,
                actor=PH)
    # A lidded pocket takes them.
    assert formulary.assign_pocket(cab, "B", 0, 0, "KCL10", 10, actor=PH) == []
    # While a re-layout runs, no pocket changes drug.
    cab.store.conn.execute(
        "INSERT INTO layout_proposals (id, created_ts, created_by, problem, solution, adjacent, "
        "same_drawer, status) VALUES (1, 'now', 'ph1', '{}', '{}', 0, 0, 'approved')")
    cab.store.conn.execute(
        "INSERT INTO layout_tasks (proposal, seq, drug, dst_drawer, dst_row, dst_col, capacity)"
        " VALUES (1, 0, 'PARA500', 'A', 2, 2, 60)")
    err = refused(cab, "RELAYOUT_RUNNING", formulary.assign_pocket, "B", 1, 0, "OXY5", 10,
                  actor=PH)
    assert "réaménagement" in err.message_fr
    refused(cab, "RELAYOUT_RUNNING", formulary.unassign_pocket, "B", 0, 0, actor=PH)


def test_a_pending_layout_proposal_is_superseded_by_a_pocket_change(booted):
    sim, cab, loop = booted
    loop.run_until_complete(sim.run(cab.login("ph1", PINS["ph1"])))
    proposal = relayout.propose(cab, time_limit=0.5)
    formulary.add_drug(cab, "IBU400", "ibuprofen", actor=PH)
    formulary.assign_pocket(cab, "A", 2, 0, "IBU400", 40, actor=PH)
    assert relayout.describe(cab, proposal["id"])["status"] == "superseded"
    with pytest.raises(ArmoireError):
        relayout.approve(cab, proposal["id"])
    detail = json.loads(cab.store.journal_rows(kind="pocket_assigned")[-1]["detail"])
    assert detail["superseded_proposals"] == 1


def test_unassign_only_an_empty_pocket_with_nothing_on_the_bench(cab):
    refused(cab, "POCKET_UNASSIGNED", formulary.unassign_pocket, "A", 2, 0, actor=PH)
    # Empty it the way the cabinet would (a journaled movement keeps conservation).
    store = cab.store
    store.append(JournalEntry("restock", drug="HYDROX25", drawer="A", row=1, col=2, qty=3,
                              lot="L1", expiry="2030-01-01"),
                 [StockDelta("A", 1, 2, "L1", "HYDROX25", "2030-01-01", 3)])
    refused(cab, "POCKET_NOT_EMPTY", formulary.unassign_pocket, "A", 1, 2, actor=PH)
    store.append(JournalEntry("withdraw", drug="HYDROX25", drawer="A", row=1, col=2, qty=3,
                              lot="L1", expiry="2030-01-01"),
                 [StockDelta("A", 1, 2, "L1", "HYDROX25", "2030-01-01", -3)])
    with store.transaction() as c:  # units of the drug waiting on the technician's bench
        c.execute("INSERT INTO bench VALUES ('HYDROX25', 'B1', '2030-01-01', 2)")
    refused(cab, "DRUG_ON_BENCH", formulary.unassign_pocket, "A", 1, 2, actor=PH)
    with store.transaction() as c:
        c.execute("UPDATE bench SET qty=0")
    assert formulary.unassign_pocket(cab, "A", 1, 2, actor=PH) == "HYDROX25"
    pocket = cab.pocket("A", 1, 2)
    assert (pocket.drug, pocket.capacity) == (None, 0)
    [row] = store.journal_rows(kind="pocket_unassigned")
    assert (row["user"], row["drug"], row["drawer"], row["row"], row["col"]) == (
        "ph1", "HYDROX25", "A", 1, 2)
    # Out of the cabinet, still in the formulary (the journal refers to it).
    assert "HYDROX25" not in {d["id"] for d in cab.formulary()}
    assert cab.drug("HYDROX25")["name"] == "hydroxyzine"
    assert not [a for a in cab.alarms.list()
                if a["kind"] == "low_stock" and a["drug"] == "HYDROX25"]


def test_a_pocket_in_use_at_the_cabinet_does_not_change_drug(booted):
    sim, cab, loop = booted
    formulary.add_drug(cab, "IBU400", "ibuprofen", gtin=GTIN_OK, actor=PH)
    formulary.assign_pocket(cab, "A", 2, 0, "IBU400", 40, actor=PH)
    loop.run_until_complete(sim.run(cab.login("t1", PINS["t1"])))
    op = loop.run_until_complete(sim.open_for(cab.restock(
        None, GTIN_OK, 5, lot="IB1", expiry="2030-01-01", pocket=("A", 2, 0))))
    refused(cab, "OPERATION_RUNNING", formulary.unassign_pocket, "A", 2, 0, actor=PH)
    loop.run_until_complete(sim.finish(op, 5))
    assert cab.store.on_hand("A", 2, 0) == 5
    assert integrity_problem(cab.store.conn) is None


def test_the_list_sorts_accented_names_where_a_reader_looks_for_them(cab):
    for drug_id, name in (("ZOLP", "zolpidem"), ("ENOX", "énoxaparine"), ("FURO", "Furosémide")):
        formulary.add_drug(cab, drug_id, name, None, None, None, actor=PH)
    names = [d["name"] for d in formulary.drugs(cab)]
    assert names.index("énoxaparine") < names.index("Furosémide") < names.index("zolpidem")


def test_a_placed_pocket_s_capacity_changes_above_its_units(cab):
    store = cab.store
    restocked(store, "HYDROX25", ("A", 1, 2), 12, "L1", "2030-01-01")
    refused(cab, "POCKET_UNASSIGNED", formulary.set_capacity, "A", 2, 0, 20, actor=PH)
    refused(cab, "UNKNOWN_POCKET", formulary.set_capacity, "A", 9, 9, 20, actor=PH)
    for capacity in (0, -1, 10_001, True, "12", 2.5):
        refused(cab, "BAD_CAPACITY", formulary.set_capacity, "A", 1, 2, capacity, actor=PH)
    err = refused(cab, "CAPACITY_BELOW_STOCK", formulary.set_capacity, "A", 1, 2, 11,
                  actor=PH)
    assert "12" in err.message_en and "12" in err.message_fr
    with pytest.raises(PermissionDenied):
        formulary.set_capacity(cab, "A", 1, 2, 40, actor=User("t1", "T", "technician", "fr"))
    head = store.head()
    assert formulary.set_capacity(cab, "A", 1, 2, 30, actor=PH) == []  # unchanged
    assert store.head() == head
    # Exactly the units held is allowed: the pocket is then full.
    assert formulary.set_capacity(cab, "A", 1, 2, 12, actor=PH) == []
    assert cab.pocket("A", 1, 2).capacity == 12
    [row] = store.journal_rows(kind="pocket_capacity_changed")
    assert (row["user"], row["drug"], row["qty"]) == ("ph1", "HYDROX25", 12)
    assert json.loads(row["detail"]) == {"before": 30, "after": 12}
    # Full and above its level: not on the pick list.
    assert "A-2-3" not in [p["pocket"] for p in replenishment.pick_list(cab)]
    assert integrity_problem(cab.store.conn) is None


def test_a_smaller_capacity_lowers_approved_levels_and_drops_pending_proposals(cab):
    with cab.store.transaction() as c:
        c.execute("UPDATE pockets SET min_level=18, max_level=28 WHERE drawer='A' AND row=1 "
                  "AND col=2")
        c.execute("INSERT INTO level_proposals (drawer, row, col, drug, min_level, max_level, "
                  "current_min, current_max, details, created_ts) VALUES ('A', 1, 2, "
                  "'HYDROX25', 6, 25, 18, 28, '{}', 'now')")
    notices = formulary.set_capacity(cab, "A", 1, 2, 15, actor=PH)
    assert [n.code for n in notices] == ["LEVELS_CAPPED"]
    assert "18/28" in notices[0].en and "14/15" in notices[0].fr
    pocket = cab.pocket("A", 1, 2)
    assert (pocket.capacity, pocket.min_level, pocket.max_level) == (15, 14, 15)
    assert replenishment.pending(cab) == []
    detail = json.loads(cab.store.journal_rows(kind="pocket_capacity_changed")[-1]["detail"])
    assert detail == {"before": 30, "after": 15, "levels_before": [18, 28],
                      "levels_after": [14, 15], "superseded_level_proposals": 1}
    # The technician refills to the new max, never beyond the pocket.
    [line] = [p for p in replenishment.pick_list(cab) if p["pocket"] == "A-2-3"]
    assert (line["refill_to"], line["bring"]) == (15, 15)
    # A larger capacity leaves approved levels as the pharmacist set them.
    assert formulary.set_capacity(cab, "A", 1, 2, 50, actor=PH) == []
    pocket = cab.pocket("A", 1, 2)
    assert (pocket.capacity, pocket.min_level, pocket.max_level) == (50, 14, 15)


def test_capacity_does_not_change_under_a_running_operation(booted):
    sim, cab, loop = booted
    loop.run_until_complete(sim.run(cab.login("t1", PINS["t1"])))
    op = loop.run_until_complete(sim.open_for(cab.restock(
        None, "03400930000011", 5, lot="P1", expiry="2030-01-01", pocket=("A", 0, 0))))
    refused(cab, "OPERATION_RUNNING", formulary.set_capacity, "A", 0, 0, 80, actor=PH)
    loop.run_until_complete(sim.finish(op, 5))
    assert formulary.set_capacity(cab, "A", 0, 0, 80, actor=PH) == []
    assert cab.pocket("A", 0, 0).capacity == 80
    # Restock checks the new capacity: 76 more do not fit beside the 5.
    with pytest.raises(ArmoireError) as info:
        loop.run_until_complete(sim.run(cab.restock(
            None, "03400930000011", 76, lot="P1", expiry="2030-01-01", pocket=("A", 0, 0))))
    assert info.value.code == "OVER_CAPACITY"


def test_a_limit_per_withdrawal_is_kept_and_enforced_before_any_drawer_opens(booted):
    sim, cab, loop = booted
    for bad in (0, -1, 1001, True, "2", 1.5):
        refused(cab, "BAD_LIMIT", formulary.change_drug, "MORPH10", "morphine", "10 mg/mL",
                "ampoule", controlled=True, high_alert=True, max_per_withdrawal=bad, actor=PH)
    changes, _ = formulary.change_drug(cab, "MORPH10", "morphine", "10 mg/mL", "ampoule",
                                       gtin="03400930000028", controlled=True,
                                       high_alert=True, max_per_withdrawal=2, actor=PH)
    assert changes == {"max_per_withdrawal": {"before": None, "after": 2}}
    assert {d["id"]: d["max_per_withdrawal"] for d in cab.formulary()}["MORPH10"] == 2
    restocked(cab.store, "MORPH10", ("B", 0, 1), 10, "M1", "2030-01-01")
    sim.physical[("B", 0, 1)] = 10
    loop.run_until_complete(sim.run(cab.login("n1", PINS["n1"])))
    head = cab.store.head()
    with pytest.raises(ArmoireError) as info:
        loop.run_until_complete(sim.run(cab.withdraw("MORPH10", 3, "P1")))
    assert info.value.code == "ABOVE_LIMIT" and "2" in info.value.message_fr
    assert cab.store.head() == head and cab.session.op is None
    op = loop.run_until_complete(sim.operate(cab.withdraw("MORPH10", 2, "P1")))
    assert op.qty == 2 and cab.store.on_hand("B", 0, 1) == 8
    # No limit again: the cabinet's own cap only.
    formulary.change_drug(cab, "MORPH10", "morphine", "10 mg/mL", "ampoule",
                          gtin="03400930000028", controlled=True, high_alert=True, actor=PH)
    assert cab.drug("MORPH10")["max_per_withdrawal"] is None


def test_the_pick_list_brings_enough_to_replace_expired_units(cab):
    restocked(cab.store, "HYDROX25", ("A", 1, 2), 12, "OLD", "2026-01-31")
    [line] = [p for p in replenishment.pick_list(cab) if p["pocket"] == "A-2-3"]
    assert (line["usable"], line["expired"], line["refill_to"], line["bring"]) == (0, 12, 30, 30)
