"""The store's guarantees: durable settings, append-only journal, tamper evidence."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from controller.alarms import message as alarm_message
from controller.cli import main
from controller.errors import RuleViolation
from controller.journal import integrity_problem, projection_mismatches, verify
from controller.store import GENESIS, JournalEntry, StockDelta, Store, row_hash


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "j.db")
    s.append(JournalEntry("restock", user="t1", drug="D", drawer="A", row=0, col=0, qty=10,
                          lot="L1", expiry="2027-01-01"),
             [StockDelta("A", 0, 0, "L1", "D", "2027-01-01", 10)])
    s.append(JournalEntry("withdraw", user="n1", drug="D", drawer="A", row=0, col=0, qty=3,
                          lot="L1", patient="P1"),
             [StockDelta("A", 0, 0, "L1", "D", "2027-01-01", -3)])
    s.append(JournalEntry("login", user="n1"))
    yield s
    s.close()



def not_low(cab: Any) -> list[dict[str, Any]]:
    """Open alarms but low stock: the seed's pockets are empty, so all are low at start."""
    return [a for a in cab.alarms.list() if a["kind"] != "low_stock"]

def test_durability_settings(store):
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_journal_refuses_update_and_delete(store):
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("UPDATE journal SET qty = 1 WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("DELETE FROM journal WHERE seq = 3")
    assert verify(store.conn).ok and verify(store.conn).rows == 3


def test_stock_and_journal_commit_together(store):
    with pytest.raises(RuleViolation):
        store.append(JournalEntry("withdraw", drug="D", drawer="A", row=0, col=0, qty=50,
                                  lot="L1"),
                     [StockDelta("A", 0, 0, "L1", "D", None, -50)])
    assert verify(store.conn).rows == 3  # the refused row was rolled back with its stock
    assert store.on_hand("A", 0, 0) == 7
    assert projection_mismatches(store.conn) == []


def tamper(path, sql):
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER journal_no_update")
    conn.execute("DROP TRIGGER journal_no_delete")
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("sql, bad_row", [
    ("UPDATE journal SET qty = 1 WHERE seq = 2", 2),
    ("UPDATE journal SET patient = 'P2' WHERE seq = 2", 2),
    ("DELETE FROM journal WHERE seq = 2", 2),
    ("UPDATE journal SET hash = 'x' WHERE seq = 3", 3),
    # The same text as bytes (a BLOB), shown alike by most viewers, and other bytes: the
    # cabinet never writes a BLOB, so either is a row that does not match its hash.
    ("UPDATE journal SET patient = CAST('P1' AS BLOB) WHERE seq = 2", 2),
    ("UPDATE journal SET user = x'6e32' WHERE seq = 3", 3),
])
def test_tampering_is_detected_by_journal_verify(store, sql, bad_row, capsys):
    path = store.path
    assert main(["journal", "verify", "--db", path]) == 0
    store.close()
    tamper(path, sql)
    assert main(["journal", "verify", "--db", path]) == 1
    err = capsys.readouterr().err
    assert f"row {bad_row}" in err and "TAMPERED" in err


def test_stock_table_edit_is_detected(store, capsys):
    store.conn.execute("UPDATE stock SET on_hand = 70")
    assert main(["journal", "verify", "--db", store.path]) == 1
    assert "MISMATCH" in capsys.readouterr().err


@pytest.mark.parametrize("sql, english, french", [
    ("UPDATE journal SET qty = 99 WHERE seq = 2", "journal altered at row 2",
     "journal modifié à la ligne 2 : le contenu de la ligne ne correspond pas à son empreinte"),
    ("UPDATE stock SET on_hand = 70", "stock of A-1-1 lot L1", "stock de A-1-1 lot L1"),
])
def test_a_failed_verification_ends_with_a_coded_line_saying_what_to_do(store, capsys, sql,
                                                                         english, french):
    """What `journalctl -u armoire-verify -b` shows the technician after a boot: the
    cabinet's one-line form (code first, English / French, as every other refusal), and
    what to do next, not only the detail lines."""
    path = store.path
    store.close()
    tamper(path, sql)
    assert main(["journal", "verify", "--db", path]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("armoire: [JOURNAL_INTEGRITY] " + english), last
    en, fr = last.split(" / ", 1)
    assert french in fr, last
    assert "armoire restore" in en and "armoire restore" in fr, last
    assert "pharmacist" in en and "pharmacien" in fr, last


@pytest.mark.parametrize("value", ["7.5", "'abc'", "x'37'"])
def test_stock_table_values_that_are_not_whole_numbers_are_mismatches(store, capsys, value):
    """7 is what the journal says: 7.5 (which int() let pass as 7), text (which int() crashed
    on) and the bytes b'7' are all reported as mismatches, exit status 1."""
    assert main(["journal", "verify", "--db", store.path]) == 0
    store.conn.execute(f"UPDATE stock SET on_hand = {value}")
    stored = store.conn.execute("SELECT on_hand FROM stock").fetchone()[0]
    capsys.readouterr()
    assert main(["journal", "verify", "--db", store.path]) == 1
    err = capsys.readouterr().err
    assert "MISMATCH A-1-1 lot L1: on_hand is" in err and "the journal says 7" in err
    assert "Traceback" not in err
    [found] = projection_mismatches(store.conn)
    assert (found.field, found.journal, found.table) == ("on_hand", 7, stored)


@pytest.mark.parametrize("column, value, journal", [
    ("expiry", "'2099-12-31'", "2027-01-01"),   # an expired lot would be given again
    ("expiry", "NULL", "2027-01-01"),
    ("drug", "'MORPH10'", "D"),                 # units booked under another drug
])
def test_a_lot_s_drug_or_expiry_edited_in_the_stock_table_is_detected(store, capsys, column,
                                                                      value, journal):
    """The count still agrees, but the lot is no longer what the journal put there: its
    expiry decides whether it is given, its drug what a nurse is given."""
    store.conn.execute(f"UPDATE stock SET {column} = {value}")
    stored = store.conn.execute(f"SELECT {column} FROM stock").fetchone()[0]
    [found] = projection_mismatches(store.conn)
    assert (found.key, found.field, found.journal, found.table) == (
        ("A", 0, 0, "L1"), column, journal, stored)
    assert main(["journal", "verify", "--db", store.path]) == 1
    err = capsys.readouterr().err
    assert f"MISMATCH A-1-1 lot L1: {column} is {stored!r} in the stock table" in err
    problem = integrity_problem(store.conn)
    assert problem is not None and f"{column} is {stored!r}" in problem
    french = alarm_message({"kind": "journal_integrity", "message": problem}, "fr")
    assert f"{stored!r} dans la table du stock, {journal!r} selon le journal" in french


def test_lot_rules_of_the_stock_table_are_the_journal_s(tmp_path):
    """Replayed from the journal alone, a lot keeps the earlier expiry when units of it come
    with another, and an emptied lot taking units again is the new lot (drug and expiry);
    an empty lot's leftover drug and expiry are not checked (they give nothing)."""
    s = Store(tmp_path / "r.db")

    def move(kind: str, qty: int, drug: str, expiry: str | None) -> None:
        sign = -1 if kind == "withdraw" else 1
        s.append(JournalEntry(kind, drug=drug, drawer="A", row=0, col=0, qty=qty, lot="L1",
                              expiry=expiry),
                 [StockDelta("A", 0, 0, "L1", drug, expiry, sign * qty)])

    move("restock", 5, "D", "2027-06-30")
    move("restock", 5, "D", "2027-01-31")   # typed earlier: the lot keeps 2027-01-31
    move("restock", 5, "D", "2028-01-31")   # typed later: still 2027-01-31
    assert projection_mismatches(s.conn) == []
    assert s.conn.execute("SELECT expiry FROM stock").fetchone()[0] == "2027-01-31"
    move("withdraw", 15, "D", "2027-01-31")
    s.conn.execute("UPDATE stock SET drug = 'E', expiry = '1999-01-01'")  # empty: moot
    assert projection_mismatches(s.conn) == []
    move("restock", 4, "E", "2029-03-31")   # the emptied lot is E's lot now
    assert projection_mismatches(s.conn) == []
    assert tuple(s.conn.execute("SELECT drug, expiry FROM stock").fetchone()) == ("E",
                                                                         "2029-03-31")
    s.close()


@pytest.mark.parametrize("name", ["cab?x.db", "cab#1.db", "cab%41.db"])
def test_read_only_tools_open_the_named_file_and_create_nothing(store, tmp_path, capsys,
                                                                name):
    db = tmp_path / "copy" / name
    db.parent.mkdir()
    store.conn.execute(f"VACUUM INTO '{db}'")
    assert main(["journal", "verify", "--db", str(db)]) == 0
    assert main(["stock", "export", "--db", str(db), "--history", str(tmp_path / "h.csv"),
                 "--current", str(tmp_path / "c.csv")]) == 0
    assert [p.name for p in db.parent.iterdir()] == [name]


def test_export_json(store, capsys):
    assert main(["journal", "export", "--db", store.path, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["restock", "withdraw", "login"]
    assert rows[1]["prev_hash"] == rows[0]["hash"] and rows[1]["patient"] == "P1"
    assert {"ts", "user", "drug", "drawer", "row", "col", "qty", "lot", "hash"} <= set(rows[0])


def test_verify_bad_db_arguments(tmp_path, capsys):
    assert main(["journal", "verify", "--db", str(tmp_path / "none.db")]) == 2
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    assert main(["journal", "verify", "--db", str(junk)]) == 2
    assert "DB_UNREADABLE" in capsys.readouterr().err


def test_committed_rows_survive_a_killed_process(tmp_path):
    """A real SIGKILL while a writer runs: every acknowledged row is in the file."""
    db = tmp_path / "k.db"
    script = textwrap.dedent(f"""
        import sys
        from controller.store import JournalEntry, Store
        s = Store({str(db)!r})
        for i in range(100000):
            s.append(JournalEntry("login", user=f"u{{i}}"))
            print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acknowledged = -1
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 200:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    conn = sqlite3.connect(db)
    verdict = verify(conn)
    assert verdict.ok and verdict.rows >= acknowledged + 1


def test_committed_diagrams_match_the_code(tmp_path):
    from pathlib import Path

    from controller.docs_cli import write_diagrams
    committed = Path(__file__).resolve().parents[1] / "docs" / "diagrams"
    for path in write_diagrams(tmp_path):
        assert (committed / path.name).read_text() == path.read_text(), (
            f"{path.name} is stale: run `make diagrams`")
    assert "cmd_open" in (committed / "drawer.md").read_text()


def test_diagrams_out_that_is_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    assert main(["docs", "diagrams", "--out", str(f)]) == 2
    assert "[BAD_OUTPUT]" in capsys.readouterr().err and f.read_text() == "x"


def test_cabinet_start_raises_an_alarm_when_the_journal_was_altered(tmp_path):
    import asyncio

    from helpers import SPEC, START, config

    from sim.harness import SimCabinet

    async def boot_twice():
        sim = SimCabinet(config(), tmp_path / "c.db", start=START)
        cab = await sim.boot(SPEC)
        assert cab.check_integrity() and not_low(cab) == []
        await sim.shutdown()
        tamper(tmp_path / "c.db", "UPDATE journal SET detail = '{}' WHERE seq = 1")
        cab = await sim.boot()
        alarms = not_low(cab)
        assert [a["kind"] for a in alarms] == ["journal_integrity"]
        assert "row 1" in alarms[0]["message"]
        await sim.shutdown()

    asyncio.run(boot_twice())


def test_cabinet_serves_while_its_start_up_integrity_check_runs(tmp_path, mocker):
    """Years of journal take seconds to check on a Pi: the cabinet must not wait for them.

    The stand-in check blocks until the test, on the loop, sees start() return; if start()
    awaited the check, the check would time out and start() would raise. The verdict still
    comes, as an alarm, once the check ends.
    """
    import asyncio
    import threading

    from helpers import SPEC, START, config

    from controller import cabinet as cabinet_module
    from sim.harness import SimCabinet

    async def go():
        sim = SimCabinet(config(), tmp_path / "c.db", start=START)
        await sim.boot(SPEC)
        await sim.shutdown()
        tamper(tmp_path / "c.db", "UPDATE journal SET qty = qty + 1 WHERE seq = 2")
        started = threading.Event()
        real = cabinet_module.integrity_problem_at

        def slow_check(path, stop=None):
            assert started.wait(timeout=10), "start() waited for the integrity check"
            return real(path, stop)

        mocker.patch.object(cabinet_module, "integrity_problem_at", side_effect=slow_check)
        cab = await sim.boot(wait_integrity=False)
        assert cab.integrity_checked is not None and not cab.integrity_checked.done()
        assert not_low(cab) == []
        started.set()
        assert await cab.integrity_checked is False
        alarms = not_low(cab)
        assert [a["kind"] for a in alarms] == ["journal_integrity"]
        assert "row 2" in alarms[0]["message"]
        assert cab.store.journal_rows(kind="integrity_failed")
        await sim.shutdown()

    asyncio.run(go())


def test_a_cabinet_stopping_during_its_integrity_check_stops_the_check(tmp_path, mocker):
    """asyncio.run waits for worker threads at exit: a check of years of journal must not
    hold a restart back. Cancelled, the check's thread is told to stop, and verify obeys."""
    import asyncio
    import threading

    from helpers import SPEC, START, config

    from controller import cabinet as cabinet_module
    from controller.journal import CheckStopped
    from sim.harness import SimCabinet

    told_to_stop = threading.Event()
    started = threading.Event()

    def endless_check(path, stop=None):
        started.set()
        for _ in range(1000):  # about ten seconds at most, then the test fails
            if stop is not None and stop():
                told_to_stop.set()
                raise CheckStopped
            threading.Event().wait(0.01)
        return None

    async def go():
        sim = SimCabinet(config(), tmp_path / "c.db", start=START)
        await sim.boot(SPEC)
        await sim.shutdown()
        mocker.patch.object(cabinet_module, "integrity_problem_at", side_effect=endless_check)
        cab = await sim.boot(wait_integrity=False)
        assert cab.integrity_checked is not None and not cab.integrity_checked.done()
        # Shut down once the check runs in its thread: a task cancelled before its first
        # step never starts one, and there is nothing to stop (on a loaded machine, that
        # made this test fail without any fault in the cabinet).
        for _ in range(500):
            if started.is_set():
                break
            await asyncio.sleep(0.01)
        assert started.is_set()
        await sim.shutdown()
        assert cab.integrity_checked.cancelled()

    asyncio.run(go())
    assert told_to_stop.wait(timeout=5)
    # verify itself obeys: asked to stop, it gives no verdict at all.
    conn = sqlite3.connect(tmp_path / "c.db")
    try:
        with pytest.raises(CheckStopped):
            verify(conn, stop=lambda: True)
        assert verify(conn, stop=lambda: False).ok
    finally:
        conn.close()


def test_a_private_in_memory_database_is_checked_on_its_own_connection(tmp_path):
    """A worker thread's new connection to ':memory:' would see an empty database: the
    check must then run on the cabinet's own connection, and still catch tampering."""
    import asyncio

    from helpers import SPEC, START, config

    from sim.harness import SimCabinet

    async def go():
        sim = SimCabinet(config(), ":memory:", start=START)
        cab = await sim.boot(SPEC)
        assert not_low(cab) == []
        cab.store.conn.execute("DROP TRIGGER journal_no_update")
        cab.store.conn.execute("UPDATE journal SET detail = '{}' WHERE seq = 1")
        assert await cab.check_integrity_async() is False
        assert [a["kind"] for a in not_low(cab)] == ["journal_integrity"]
        await sim.shutdown()

    asyncio.run(go())


def test_a_lot_row_emptied_then_refilled_takes_the_new_lot_s_drug_and_expiry(tmp_path):
    from controller.store import JournalEntry, StockDelta, Store

    store = Store(tmp_path / "s.db")
    try:
        def move(kind, drug, expiry, delta):
            store.append(JournalEntry(kind, drug=drug, drawer="A", row=0, col=0, qty=abs(delta),
                                      lot="24A01", expiry=expiry),
                         [StockDelta("A", 0, 0, "24A01", drug, expiry, delta)])

        def row():
            return store.query("SELECT drug, expiry, on_hand FROM stock WHERE lot='24A01'")[0]

        move("restock", "HYDROX25", "2027-01-31", 5)
        move("withdraw", "HYDROX25", "2027-01-31", -5)
        # Another drug's lot of the same number into the emptied row (a reassigned pocket).
        move("restock", "PARA500", "2031-06-30", 20)
        assert row() == {"drug": "PARA500", "expiry": "2031-06-30", "on_hand": 20}
        # More of the lot typed with a later expiry: the earlier one stays.
        move("restock", "PARA500", "2032-01-31", 5)
        assert row()["expiry"] == "2031-06-30"
        move("restock", "PARA500", "2030-01-31", 5)
        assert row() == {"drug": "PARA500", "expiry": "2030-01-31", "on_hand": 30}
        move("withdraw", "PARA500", "2030-01-31", -3)
        assert row()["expiry"] == "2030-01-31"
        assert projection_mismatches(store.conn) == []
    finally:
        store.close()


def test_one_lot_from_two_pockets_leaves_the_bench_with_the_earlier_expiry(tmp_path):
    from controller.cabinet import Cabinet
    from controller.store import JournalEntry, Store

    store = Store(tmp_path / "b.db")
    try:
        def bench(kind, expiry, qty):
            with store.transaction() as c:
                Cabinet._bench(c, JournalEntry(kind, drug="PARA500", lot="L", expiry=expiry,
                                               qty=qty))

        def state():
            return store.query("SELECT expiry, qty FROM bench")[0]

        bench("move_out", "2031-01-31", 10)
        bench("move_out", "2027-01-31", 10)
        assert state() == {"expiry": "2027-01-31", "qty": 20}
        bench("move_in", "2027-01-31", 20)
        # Emptied: the next lot on the bench is a fresh start.
        bench("move_out", "2031-01-31", 4)
        assert state() == {"expiry": "2031-01-31", "qty": 4}
    finally:
        store.close()


@pytest.fixture
def long_journal_db(tmp_path):
    """A closed database whose journal spans many pages: damaging its last page leaves the
    first row readable, as the opening check sees it."""
    store = Store(tmp_path / "long.db")
    store.conn.execute("INSERT INTO drugs (id, name) VALUES ('D', 'drug')")
    store.append(JournalEntry("restock", user="t1", drug="D", drawer="A", row=0, col=0,
                              qty=500, lot="L1", expiry="2027-01-01"),
                 [StockDelta("A", 0, 0, "L1", "D", "2027-01-01", 500)])
    for _ in range(300):
        store.append(JournalEntry("withdraw", user="n1", drug="D", drawer="A", row=0, col=0,
                                  qty=1, lot="L1", patient="P1"),
                     [StockDelta("A", 0, 0, "L1", "D", "2027-01-01", -1)])
    store.close()
    return tmp_path / "long.db"


@pytest.mark.parametrize("command, table", [
    (["journal", "verify"], "journal"),
    (["journal", "verify"], "stock"),
    (["journal", "export"], "journal"),
    (["journal", "export", "--json"], "journal"),
    (["journal", "register", "--drug", "D"], "journal"),
])
def test_journal_tools_refuse_a_database_damaged_past_its_first_pages(
        long_journal_db, tmp_path, capsys, command, table):
    """One line, DB_UNREADABLE, exit 2 and nothing on standard output: a corrupt copy is
    refused like an unreadable one, never half-printed and never a traceback."""
    from helpers import damage_table

    damage_table(long_journal_db, table)
    assert main([*command, "--db", str(long_journal_db)]) == 2
    out, err = capsys.readouterr()
    assert "[DB_UNREADABLE]" in err and "Traceback" not in err
    assert out == ""


def test_register_to_a_file_of_a_damaged_database_writes_nothing(long_journal_db, tmp_path,
                                                                   capsys):
    from helpers import damage_table

    damage_table(long_journal_db, "journal")
    out = tmp_path / "register.csv"
    assert main(["journal", "register", "--db", str(long_journal_db), "--drug", "D",
                 "-o", str(out)]) == 2
    assert "[DB_UNREADABLE]" in capsys.readouterr().err and not out.exists()


def rechain(path):
    """Recompute every row's hash and link: a rewrite of the whole chain, which verify cannot
    tell from the real one (why the head is exported elsewhere)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    prev = GENESIS
    for r in conn.execute("SELECT * FROM journal ORDER BY seq").fetchall():
        row = {**dict(r), "prev_hash": prev}
        prev = row_hash(row)
        conn.execute("UPDATE journal SET prev_hash=?, hash=? WHERE seq=?",
                     (row["prev_hash"], prev, row["seq"]))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("whole_chain", [False, True])
def test_export_of_a_row_whose_detail_is_not_json_is_refused(store, capsys, whole_chain):
    """A detail edited to text that is not JSON: with the chain broken (and, if the whole
    chain was rewritten around it, still) the export refuses with JOURNAL_INTEGRITY naming
    the row, exit 3, printing nothing: no traceback half-way through."""
    store.append(JournalEntry("alarm_raised", code="low_stock", detail={"alarm": 1}))
    store.close()
    tamper(store.path, "UPDATE journal SET detail = '{not json' WHERE seq = 4")
    if whole_chain:
        rechain(store.path)
    for flags in ([], ["--json"]):
        assert main(["journal", "export", "--db", store.path, *flags]) == 3
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "[JOURNAL_INTEGRITY] journal row 4" in captured.err
        assert "Traceback" not in captured.err


def test_a_bench_lot_s_expiry_edited_is_detected(tmp_path):
    """Units on the technician's bench carry their expiry into their next pocket (the
    move_in row is written from it): an edit there would launder a later expiry."""
    s = Store(tmp_path / "b.db")
    s.append(JournalEntry("restock", drug="D", drawer="A", row=0, col=0, qty=6, lot="L1",
                          expiry="2027-01-31"),
             [StockDelta("A", 0, 0, "L1", "D", "2027-01-31", 6)])
    with s.transaction() as c:
        s.append(JournalEntry("move_out", drug="D", drawer="A", row=0, col=0, qty=6, lot="L1",
                              expiry="2027-01-31"),
                 [StockDelta("A", 0, 0, "L1", "D", "2027-01-31", -6)])
        c.execute("INSERT INTO bench (drug, lot, expiry, qty) VALUES ('D', 'L1', '2027-01-31', 6)")
    assert projection_mismatches(s.conn) == []
    s.conn.execute("UPDATE bench SET expiry = '2031-01-31'")
    [found] = projection_mismatches(s.conn)
    assert (found.key, found.field, found.journal, found.table) == (
        ("bench:D", -1, -1, "L1"), "expiry", "2027-01-31", "2031-01-31")
    assert found.describe().startswith("bench:D lot L1: expiry is '2031-01-31'")
    s.close()


def test_verify_reads_one_snapshot_while_the_cabinet_writes(store, capsys, monkeypatch):
    """``journal verify`` may run while the controller serves (by hand, or a boot check
    that outlived its timeout). The chain, the journal's replay and the stock table are
    read in one read transaction: a withdrawal committed between two of those reads is
    not a stock mismatch, and is not reported as one."""
    import controller.journal as journal

    real = journal.replay_lots
    done = []

    def replay_then_the_cabinet_commits(conn):
        lots = real(conn)
        if not done:  # the cabinet's next withdrawal lands between the two reads
            done.append(store.append(
                JournalEntry("withdraw", user="n1", drug="D", drawer="A", row=0, col=0,
                             qty=2, lot="L1", patient="P2"),
                [StockDelta("A", 0, 0, "L1", "D", "2027-01-01", -2)]))
        return lots

    monkeypatch.setattr(journal, "replay_lots", replay_then_the_cabinet_commits)
    assert main(["journal", "verify", "--db", store.path]) == 0, capsys.readouterr().err
    assert done and "3 rows" in capsys.readouterr().out
    monkeypatch.setattr(journal, "replay_lots", real)
    assert main(["journal", "verify", "--db", store.path]) == 0  # and 4 rows next time


def test_verify_of_a_configured_database_that_is_missing_names_the_configuration(
        tmp_path, capsys):
    """The boot unit runs ``journal verify --config FILE``: a refusal naming ``--db``, an
    option nobody gave, sent the technician looking for it. It names what was given: the
    configuration and its ``[database] path``; nothing is created."""
    db = tmp_path / "missing.db"
    cfg = tmp_path / "armoire.toml"
    cfg.write_text(f'[database]\npath = "{db}"\n', encoding="utf-8")
    assert main(["journal", "verify", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("armoire: [DB_NOT_FOUND] "), err
    en, fr = err.split(" / ", 1)
    assert "--db" not in err, err
    assert f"{cfg}" in en and "[database] path" in en and str(db) in en, err
    assert f"{cfg}" in fr and "[database] path" in fr and str(db) in fr, err
    assert not db.exists()
    assert main(["journal", "verify", "--db", str(db)]) == 2
    assert capsys.readouterr().err.startswith(f"armoire: [DB_NOT_FOUND] --db: no database at {db}")
