"""Approved par levels drive the low-stock alarm and the pick list."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from helpers import PINS, SPEC, START, config

from controller import replenishment
from controller.errors import PermissionDenied, RuleViolation, StateError
from sim.harness import SimCabinet


async def build(tmp_path, days=40):
    start = datetime(2026, 9, 1, 8, tzinfo=UTC)
    sim = SimCabinet(config(), tmp_path / "r.db", start=start)
    await sim.boot(SPEC)
    cab = sim.cab
    await sim.run(cab.login("ph1", PINS["ph1"]))
    await sim.operate(cab.restock("PARA500", "PARA500", 60, lot="L1", expiry="2027-06-30"))
    for day in range(days):
        if cab.session.state == "locked":
            await sim.run(cab.login("ph1", PINS["ph1"]))
        if cab.usable(cab.pockets_of("PARA500")[0]) < 6:
            await sim.operate(cab.restock("PARA500", "PARA500", 40, lot=f"L{day}",
                                          expiry="2027-06-30"))
        await sim.operate(cab.withdraw("PARA500", 1 + day % 3, f"P{day}"))
        await cab.logout()
        sim.simulator.clock.now += 86400  # next day
        await sim.run(cab.login("ph1", PINS["ph1"]))
    return sim


def test_proposal_approval_drives_alarm_and_pick_list(tmp_path):
    async def go():
        sim = await build(tmp_path)
        cab = sim.cab
        proposals = replenishment.propose(cab)
        assert [(p["drawer"], p["row"], p["col"]) for p in proposals] == [("A", 0, 0)]
        prop = proposals[0]
        assert 0 <= prop["min_level"] <= prop["max_level"] <= 60
        assert prop["details"]["expected_fill_rate_units_served"] > 0
        pocket = cab.pockets_of("PARA500")[0]
        assert cab.low_level(pocket) == 10  # the default until a pharmacist decides
        replenishment.decide(cab, prop["id"], accept=True, note="ok")
        pocket = cab.pockets_of("PARA500")[0]
        assert (pocket.min_level, pocket.max_level) == (prop["min_level"],
                                                        min(prop["max_level"], 60))
        assert cab.low_level(pocket) == prop["min_level"]
        with pytest.raises(StateError):
            replenishment.decide(cab, prop["id"], accept=False)
        rows = cab.store.journal_rows(kind="levels_approved")
        assert rows and rows[0]["user"] == "ph1"
        # the pick list follows the approved level
        usable = cab.usable(pocket)
        listed = replenishment.pick_list(cab)
        in_list = any(p["pocket"] == "A-1-1" for p in listed)
        assert in_list == (usable <= prop["min_level"])
        await sim.shutdown()
    asyncio.run(go())


def test_levels_need_a_pharmacist_and_history(tmp_path):
    async def go():
        sim = SimCabinet(config(), tmp_path / "r.db", start=START)
        await sim.boot(SPEC)
        await sim.run(sim.cab.login("ph1", PINS["ph1"]))
        with pytest.raises(RuleViolation) as err:
            replenishment.propose(sim.cab)
        assert err.value.code == "NO_HISTORY"
        await sim.cab.logout()
        await sim.run(sim.cab.login("n1", PINS["n1"]))
        with pytest.raises(PermissionDenied):
            replenishment.propose(sim.cab)
        await sim.shutdown()
    asyncio.run(go())


def test_pick_list_uses_default_level_and_capacity(tmp_path):
    async def go():
        sim = SimCabinet(config(), tmp_path / "r.db", start=START)
        await sim.boot(SPEC)
        cab = sim.cab
        await sim.run(cab.login("t1", PINS["t1"]))
        await sim.operate(cab.restock("PARA500", "PARA500", 8, lot="L", expiry="2027-01-01"))
        await sim.operate(cab.restock("HYDROX25", "HYDROX25", 25, lot="H",
                                      expiry="2027-01-01"))
        listed = {p["drug"]: p for p in replenishment.pick_list(cab)}
        assert listed["PARA500"]["bring"] == 52 and listed["PARA500"]["level"] == 10
        assert "HYDROX25" not in listed and listed["MORPH10"]["bring"] == 20
        await sim.shutdown()
    asyncio.run(go())


def test_pharmacy_pages_act_as_their_own_pharmacist(tmp_path):
    """With ``actor=``, the pharmacy login decides while the touchscreen is locked."""
    async def go():
        sim = await build(tmp_path, days=20)
        cab = sim.cab
        await cab.logout()
        assert cab.session.state == "locked"
        with pytest.raises(PermissionDenied):
            replenishment.propose(cab, actor=cab.authenticate("t1", PINS["t1"]))
        pharmacist = cab.authenticate("ph1", PINS["ph1"])
        prop = replenishment.propose(cab, actor=pharmacist)[0]
        with pytest.raises(PermissionDenied):
            replenishment.decide(cab, prop["id"], True, actor=cab.authenticate("n1", PINS["n1"]))
        replenishment.decide(cab, prop["id"], accept=False, note="not now", actor=pharmacist)
        assert replenishment.pending(cab) == []
        rows = cab.store.journal_rows(kind="levels_rejected")
        assert rows[-1]["user"] == "ph1" and "not now" in rows[-1]["detail"]
        assert cab.session.state == "locked"
        await sim.shutdown()
    asyncio.run(go())


def run_after_the_loop(mocker, name):
    """``replenishment.<name>`` replaced by the real one that first waits for an event only a
    coroutine on the event loop (the returned ``on_loop``) can set: called on the loop
    thread, it would wait in vain and fail, so a pass shows it ran in a worker thread."""
    loop_ran = threading.Event()
    real = getattr(replenishment, name)

    def after_the_loop(*args, **kwargs):
        assert loop_ran.wait(timeout=10), f"the event loop was blocked by {name}"
        return real(*args, **kwargs)

    async def on_loop():
        await asyncio.sleep(0)
        loop_ran.set()

    return mocker.patch.object(replenishment, name, side_effect=after_the_loop), on_loop


def test_propose_async_runs_the_advisor_off_the_event_loop(tmp_path, mocker):
    """The advisor replays every pocket's history; on the loop it would stall the drawers.

    The stand-in advisor waits for an event that only a coroutine on the loop can set: if it
    ran on the loop thread it would time out, and the proposals would be the real ones.
    """
    async def go():
        sim = await build(tmp_path, days=12)
        cab = sim.cab
        stand_in, on_loop = run_after_the_loop(mocker, "_advise")
        made, _ = await asyncio.gather(replenishment.propose_async(cab), on_loop())
        assert stand_in.call_count == 1
        assert [(p["drawer"], p["row"], p["col"]) for p in made] == [("A", 0, 0)]
        assert [p["id"] for p in replenishment.pending(cab)] == [made[0]["id"]]
        assert cab.store.journal_rows(kind="levels_proposed")[-1]["user"] == "ph1"
        await sim.shutdown()
    asyncio.run(go())


def test_propose_async_reads_the_history_off_the_event_loop(tmp_path, mocker):
    """Years of a busy ward's withdrawals take seconds to read on a Pi: on a connection of
    its own, in a worker thread, to the same proposals as the cabinet's connection gives."""
    async def go():
        sim = await build(tmp_path, days=12)
        cab = sim.cab
        stand_in, on_loop = run_after_the_loop(mocker, "withdrawal_history")
        made, _ = await asyncio.gather(replenishment.propose_async(cab), on_loop())
        assert stand_in.call_count == 1
        assert stand_in.call_args.args[0] is not cab.store.conn
        mocker.stopall()
        again = replenishment.propose(cab)  # on the cabinet's own connection
        await sim.shutdown()
        return made, again

    made, again = asyncio.run(go())
    assert [(p["drawer"], p["row"], p["col"], p["min_level"], p["max_level"]) for p in made] \
        == [(p["drawer"], p["row"], p["col"], p["min_level"], p["max_level"]) for p in again]
    assert made


@pytest.mark.parametrize("stage", ["history", "advice", "classification"])
def test_a_stop_during_a_proposal_ends_its_worker_with_nothing_written(tmp_path, mocker,
                                                                        stage):
    """The service is stopped (its tasks cancelled) while a pharmacist's proposal is being
    computed. A worker thread cannot be killed: one that read on for seconds (years of a
    busy ward) held the stop until systemd killed the whole controller (TimeoutStopSec),
    whatever it was writing elsewhere. The cancelled task sets the computation's stop flag;
    the worker sees it at its next chunk and ends; the task ends after it, having written
    nothing. The worker is held at its first chunk until the flag is set (events, not
    sleeps): it had then read one journal row of twelve, or built the matrix only, or
    begun classifying the pockets (ABC, XYZ), which then ran to its end: no pocket is
    classified once the flag is set."""
    from controller import localtime
    from controller.stock import classify

    async def go():
        sim = await build(tmp_path, days=12)
        cab = sim.cab
        journal = len(cab.store.journal_rows())
        worker_name, owner, blocker_name = {
            "history": ("history_at", localtime, "local_day"),
            "advice": ("_advise", replenishment, "to_matrix"),
            "classification": ("_advise", classify, "xyz_classes")}[stage]
        flags: list[threading.Event | None] = []
        reached, ended, unblock = threading.Event(), threading.Event(), threading.Event()
        outcome: list[BaseException] = []
        real_worker = getattr(replenishment, worker_name)
        real_blocker = getattr(owner, blocker_name)
        calls = []

        def worker(*args, **kwargs):
            flags.append(kwargs.get("stop"))
            try:
                return real_worker(*args, **kwargs)
            except BaseException as exc:
                outcome.append(exc)
                raise
            finally:
                ended.set()

        def blocker(*args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                calls.append(args)
                if len(calls) == 1:
                    reached.set()
                    (flags[0] or unblock).wait(timeout=10)
            return real_blocker(*args, **kwargs)

        classified = []
        real_classes = classify.Classes

        def classes(*args, **kwargs):
            classified.append(args)
            return real_classes(*args, **kwargs)

        mocker.patch.object(classify, "Classes", side_effect=classes)
        mocker.patch.object(replenishment, worker_name, side_effect=worker)
        mocker.patch.object(owner, blocker_name, side_effect=blocker)
        mocker.patch.object(replenishment, "STOP_EVERY_ROWS", 1)
        task = asyncio.ensure_future(replenishment.propose_async(cab))
        try:
            assert await asyncio.to_thread(reached.wait, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert ended.is_set(), "the worker was still running after its task ended"
        finally:
            unblock.set()
            await asyncio.to_thread(ended.wait, 10)
        assert [type(e).__name__ for e in outcome] == ["Stopped"]
        assert len(calls) == 1
        assert classified == []
        assert cab.store.query("SELECT COUNT(*) AS n FROM level_proposals")[0]["n"] == 0
        assert len(cab.store.journal_rows()) == journal
        await sim.shutdown()
    asyncio.run(go())


def test_history_follows_the_drug_when_a_relayout_moves_it(tmp_path):
    """Proposals for a pocket must learn from the drug it holds, not from its last tenant."""
    async def go():
        sim = await build(tmp_path, days=12)
        conn = sim.cab.store.conn
        taken = sum(r["qty"] for r in sim.cab.store.journal_rows(kind="withdraw"))
        assert taken > 0
        history = replenishment.withdrawal_history(conn, replenishment.stocked_pockets(conn))
        assert {key for _, key, _ in history} == {"A:0:0"}
        # The end state of a re-layout: paracetamol now in A-3-3, hydroxyzine in A-1-1.
        conn.execute("UPDATE pockets SET drug = NULL WHERE drawer = 'A' AND row = 1 AND col = 2")
        conn.execute("UPDATE pockets SET drug = 'PARA500', capacity = 60 "
                     "WHERE drawer = 'A' AND row = 2 AND col = 2")
        conn.execute("UPDATE pockets SET drug = 'HYDROX25' WHERE drawer = 'A' AND row = 0 "
                     "AND col = 0")
        pockets = replenishment.stocked_pockets(conn)
        moved = replenishment.withdrawal_history(conn, pockets)
        assert {key for _, key, _ in moved} == {"A:2:2"}
        assert sum(q for _, _, q in moved) == taken
        assert [d for d, _, _ in moved] == [d for d, _, _ in history]
        # Kept in two pockets, the drug keeps each pocket's own history of it.
        conn.execute("UPDATE pockets SET drug = 'PARA500' WHERE drawer = 'A' AND row = 0 "
                     "AND col = 0")
        both = replenishment.withdrawal_history(conn, replenishment.stocked_pockets(conn))
        assert both == history
        await sim.shutdown()
    asyncio.run(go())


def test_export_feeds_advise_and_simulate_with_the_cabinet_s_own_levels(tmp_path, capsys):
    """A pharmacy measures proposals against its ward's real levels, as the talk did."""
    import csv

    from controller.cli import main

    async def go():
        sim = await build(tmp_path, days=20)
        taken = sum(r["qty"] for r in sim.cab.store.journal_rows(kind="withdraw"))
        await sim.shutdown()
        return taken
    taken = asyncio.run(go())
    db, hist, cur = tmp_path / "r.db", tmp_path / "h.csv", tmp_path / "c.csv"
    assert main(["stock", "export", "--db", str(db), "--history", str(hist),
                 "--current", str(cur)]) == 0
    rows = list(csv.DictReader(hist.open()))
    assert {r["item"] for r in rows} == {"A-1-1"}
    assert sum(float(r["quantity"]) for r in rows) == taken
    levels = {r["item"]: r for r in csv.DictReader(cur.open())}
    assert set(levels) == {"A-1-1", "A-2-3", "B-1-2"}  # every stocked pocket
    assert (levels["A-1-1"]["min"], levels["A-1-1"]["max"], levels["A-1-1"]["drug"]) == (
        "10", "60", "PARA500")
    params = tmp_path / "p.csv"
    assert main(["stock", "advise", str(hist), "-o", str(params), "--current", str(cur)]) == 0
    [prop] = list(csv.DictReader(params.open()))
    assert prop["item"] == "A-1-1" and int(prop["max"]) <= 60
    assert (prop["current_min"], prop["current_max"], prop["capacity"]) == ("10", "60", "60")
    capsys.readouterr()
    assert main(["stock", "simulate", str(hist), "--params", str(params),
                 "--current", str(cur)]) == 0
    assert "current" in capsys.readouterr().out
    # A database that is not there: exit 2, nothing written.
    for f in (hist, cur):
        f.unlink()
    assert main(["stock", "export", "--db", str(tmp_path / "none.db"), "--history",
                 str(hist), "--current", str(cur)]) == 2
    assert not hist.exists() and not cur.exists()
    assert "DB_NOT_FOUND" in capsys.readouterr().err


def test_each_proposal_keeps_the_replay_behind_its_figures(tmp_path):
    """The page's small plot must be the same replay as the fill, stock and orders shown."""
    async def go():
        sim = await build(tmp_path, days=40)
        [prop] = replenishment.propose(sim.cab)
        d = prop["details"]
        cur, new = d["path_current"], d["path_proposed"]
        assert len(cur) == len(new) == 40  # one point a day when there are few days
        assert sum(new) / len(new) == pytest.approx(d["expected_avg_stock"], abs=0.01)
        assert sum(cur) / len(cur) == pytest.approx(d["current_avg_stock"], abs=0.01)
        assert max(new) <= prop["max_level"] and min(new) >= 0
        assert cur != new
        await sim.shutdown()
    asyncio.run(go())


def test_a_long_replay_is_kept_in_at_most_path_points(tmp_path):
    from datetime import date, timedelta

    from controller.stock import AdviseOptions, ItemInfo

    days = 3 * replenishment.PATH_POINTS + 7
    history = [(date(2025, 1, 1) + timedelta(days=i), "A:0:0", float(1 + i % 4))
               for i in range(days)]
    [prop], paths = replenishment._advise(history, AdviseOptions(),
                                          {"A:0:0": ItemInfo(capacity=60)})
    cur, new = paths["A:0:0"]
    assert len(cur) == len(new) == replenishment.PATH_POINTS
    assert sum(new) / len(new) == pytest.approx(prop.expected_avg_stock, rel=0.02)


def test_a_proposal_for_an_older_capacity_is_refused_on_accept_but_can_be_rejected(tmp_path):
    """Levels capped by a capacity the pocket no longer has must not be approved.

    ``formulary.set_capacity`` supersedes pending proposals itself, but a re-layout or a
    pocket emptied and given its drug back with another box size changes the capacity
    underneath them: here, the end state of such a change.
    """
    async def go():
        sim = await build(tmp_path, days=20)
        cab = sim.cab
        [old] = replenishment.propose(cab)
        assert old["details"]["capacity"] == 60
        with cab.store.transaction() as c:
            c.execute("UPDATE pockets SET capacity = 8 WHERE drawer = 'A' AND row = 0 "
                      "AND col = 0")
        with pytest.raises(StateError) as err:
            replenishment.decide(cab, old["id"], accept=True)
        assert err.value.code == "PROPOSAL_STALE" and "60" in err.value.message_en
        pocket = cab.pocket("A", 0, 0)
        assert (pocket.min_level, pocket.max_level) == (None, None)
        assert cab.store.journal_rows(kind="levels_approved") == []
        # Still on the list, so it can be turned down.
        assert [p["id"] for p in replenishment.pending(cab)] == [old["id"]]
        replenishment.decide(cab, old["id"], accept=False, note="capacity changed")
        assert replenishment.proposal(cab, old["id"])["status"] == "rejected"
        # A new computation learns the new capacity and can be accepted.
        [new] = replenishment.propose(cab)
        assert new["details"]["capacity"] == 8 and new["max_level"] <= 8
        replenishment.decide(cab, new["id"], accept=True)
        pocket = cab.pocket("A", 0, 0)
        assert (pocket.min_level, pocket.max_level) == (new["min_level"], new["max_level"])
        await sim.shutdown()
    asyncio.run(go())


def test_a_proposal_stored_without_its_capacity_must_fit_the_pocket(tmp_path):
    """Proposals from before capacities were recorded are accepted only if their levels fit
    the pocket as they stand: never capped on accept (levels the advisor did not propose),
    never written as a min of -1 for a pocket of capacity 0."""
    async def go():
        sim = await build(tmp_path, days=20)
        cab = sim.cab
        [prop] = replenishment.propose(cab)
        with cab.store.transaction() as c:  # as stored before capacities were, too big
            c.execute("UPDATE level_proposals SET details = json_remove(details, "
                      "'$.capacity'), max_level = 61 WHERE id = ?", (prop["id"],))
        with pytest.raises(StateError) as err:
            replenishment.decide(cab, prop["id"], accept=True)
        assert err.value.code == "PROPOSAL_STALE" and "61" in err.value.message_fr
        assert (cab.pocket("A", 0, 0).min_level, cab.pocket("A", 0, 0).max_level) == (
            None, None)
        with cab.store.transaction() as c:  # the pocket's capacity, 60: it fits
            c.execute("UPDATE level_proposals SET max_level = 60 WHERE id = ?", (prop["id"],))
        replenishment.decide(cab, prop["id"], accept=True)
        pocket = cab.pocket("A", 0, 0)
        assert (pocket.min_level, pocket.max_level) == (prop["min_level"], 60)
        await sim.shutdown()
    asyncio.run(go())


def test_a_new_computation_supersedes_a_stale_proposal(tmp_path):
    async def go():
        sim = await build(tmp_path, days=20)
        cab = sim.cab
        [old] = replenishment.propose(cab)
        with cab.store.transaction() as c:
            c.execute("UPDATE pockets SET capacity = 8 WHERE drawer = 'A' AND row = 0 "
                      "AND col = 0")
        [new] = replenishment.propose(cab)
        assert replenishment.proposal(cab, old["id"])["status"] == "superseded"
        assert [p["id"] for p in replenishment.pending(cab)] == [new["id"]]
        with pytest.raises(StateError) as err:
            replenishment.decide(cab, old["id"], accept=True)
        assert err.value.code == "PROPOSAL_DECIDED"
        await sim.shutdown()
    asyncio.run(go())


def test_a_pocket_of_capacity_0_gets_no_proposal(tmp_path):
    """No level fits in a pocket that holds nothing; it must not block the other pockets."""
    async def go():
        sim = await build(tmp_path, days=10)
        cab = sim.cab
        await sim.operate(cab.restock("HYDROX25", "HYDROX25", 20, lot="H1",
                                      expiry="2027-06-30"))
        for day in range(6):
            await sim.operate(cab.withdraw("HYDROX25", 1 + day % 2, f"H{day}"))
            await cab.logout()
            sim.simulator.clock.now += 86400
            await sim.run(cab.login("ph1", PINS["ph1"]))
        with cab.store.transaction() as c:
            c.execute("UPDATE pockets SET capacity = 0 WHERE drawer = 'A' AND row = 0 "
                      "AND col = 0")
        [prop] = replenishment.propose(cab)
        assert (prop["drawer"], prop["row"], prop["col"], prop["drug"]) == ("A", 1, 2,
                                                                             "HYDROX25")
        with cab.store.transaction() as c:
            c.execute("UPDATE pockets SET capacity = 0 WHERE drawer = 'A' AND row = 1 "
                      "AND col = 2")
        assert replenishment.propose(cab) == []
        assert replenishment.pending(cab) == []
        await sim.shutdown()
    asyncio.run(go())


BAD_WITHDRAWALS = [
    ("ts = 'yesterday'", "'yesterday'"),
    ("ts = '2026-13-45T08:00:00+00:00'", "2026-13-45"),
    ("ts = '2026-11-23T08:00:00'", "'2026-11-23T08:00:00'"),  # no offset: whose day is it?
    ("ts = '20261123'", "'20261123'"),
    ("ts = '20261130T233000Z'", "'20261130T233000Z'"),          # forms the store never writes
    ("ts = '2026-11-30 23:30:00.000+00:00'", "'2026-11-30 23:30:00.000+00:00'"),
    ("ts = '2026-11-30T23:30:00.000+05:00'", "'2026-11-30T23:30:00.000+05:00'"),
    ("ts = '2026-11-30T25:30:00.000+00:00'", "'2026-11-30T25:30:00.000+00:00'"),
    ("ts = X'00'", "b'\\x00'"),
    ("qty = NULL", "None"),
    ("qty = 'two'", "'two'"),
    ("qty = 2.5", "2.5"),
    ("qty = -3", "-3"),
]


@pytest.mark.parametrize("change, shown", BAD_WITHDRAWALS)
def test_a_malformed_withdrawal_row_refuses_the_history(tmp_path, change, shown):
    """The journal is hash-chained: a withdrawal with a bad day or quantity is damage, named
    by its row with JOURNAL_INTEGRITY, never a ValueError/TypeError nor silent demand of 0."""
    from test_store_journal import tamper

    from controller.errors import StoreError
    from controller.store import JournalEntry, Store

    store = Store(tmp_path / "h.db")
    for qty in (1, 2):
        store.append(JournalEntry("withdraw", user="n1", drug="D", drawer="A", row=0, col=0,
                                  qty=qty, lot="L", patient="P"))
    pockets = {"A:0:0": replenishment.Pocket("A", 0, 0, "D", 10)}
    assert sum(q for _, _, q in replenishment.withdrawal_history(store.conn, pockets)) == 3
    store.close()
    tamper(tmp_path / "h.db", f"UPDATE journal SET {change} WHERE seq = 2")
    store = Store(tmp_path / "h.db")
    with pytest.raises(StoreError) as refused:
        replenishment.withdrawal_history(store.conn, pockets)
    assert refused.value.code == "JOURNAL_INTEGRITY"
    assert "journal row 2 " in refused.value.message_en and shown in refused.value.message_en
    assert "ligne 2 du journal" in refused.value.message_fr
    store.close()


def test_the_pick_list_leaves_out_pockets_with_nothing_to_bring_nor_take_back(tmp_path):
    """A pocket of capacity 0 is always "at its level" (0 ≤ 10), and so is a full pocket of 8
    under the default level of 10: neither may send a technician to bring 0 units. Expired
    units in such a pocket are still work (taken back), so it is listed then."""
    async def go():
        sim = SimCabinet(config(), tmp_path / "r.db", start=START)
        await sim.boot(SPEC)
        cab = sim.cab
        await sim.run(cab.login("t1", PINS["t1"]))
        await sim.operate(cab.restock("HYDROX25", "HYDROX25", 3, lot="H",
                                      expiry="2026-12-01"))
        await sim.operate(cab.restock("PARA500", "PARA500", 8, lot="P", expiry="2027-06-30"))
        with cab.store.transaction() as c:
            c.execute("UPDATE pockets SET capacity = 0 WHERE drug IN ('MORPH10', 'HYDROX25')")
            c.execute("UPDATE pockets SET capacity = 8 WHERE drug = 'PARA500'")
        assert replenishment.pick_list(cab) == []
        sim.simulator.clock.now += 10 * 86400  # past the hydroxyzine's expiry
        [line] = replenishment.pick_list(cab)
        assert (line["drug"], line["bring"], line["expired"]) == ("HYDROX25", 0, 3)
        await sim.shutdown()
    asyncio.run(go())
