"""The drug register (controller.register): every unit of a controlled drug in and out of
the cabinet with its running balance, from the journal alone; on the pharmacy page, as CSV,
and from the command line."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from datetime import date

import pytest
from helpers import PINS, login, scenario
from test_web import login as web_login
from test_web import ph_login, running_web

from controller import register
from controller.cli import main
from sim.scenario import Runner

MORPH_GTIN = "03400930000028"
FORMULA = "=HYPERLINK(\"http://x\")"


def morphine_history(tmp_path):
    """Restock, withdraw (a patient id typed as a formula), witnessed waste, return, a
    count that finds one ampoule missing."""
    db = tmp_path / "r.db"
    report = asyncio.run(Runner(scenario([
        login("t1"),
        {"do": "restock", "drug": "MORPH10", "scan": MORPH_GTIN, "qty": 12, "lot": "M1",
         "expiry": "2030-01-31"},
        {"do": "logout"}, login("n1"),
        {"do": "withdraw", "drug": "MORPH10", "qty": 2, "patient": FORMULA},
        {"do": "waste", "drug": "MORPH10", "qty": 1, "witness": "n2",
         "witness_pin": PINS["n2"], "patient": "P7"},
        {"do": "return", "drug": "MORPH10", "qty": 1, "patient": "P7"},
        {"do": "count", "drawer": "B", "row": 0, "col": 1, "found": 9},
        {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P8"},
    ]), db).run())
    assert [s["ok"] for s in report["steps"]][:8] == [True] * 8, report["steps"]
    return db


def test_the_register_lists_each_movement_with_its_balance(tmp_path):
    db = morphine_history(tmp_path)
    conn = sqlite3.connect(db)
    reg = register.build(conn, "MORPH10")
    kinds = [(line.kind, line.entry, line.exit, line.balance) for line in reg.lines]
    assert kinds == [("restock", 12, 0, 12), ("withdraw", 0, 2, 10), ("waste", 0, 1, 9),
                     ("return", 1, 0, 10), ("count_correction", 0, 1, 9)]
    assert (reg.opening, reg.entries, reg.exits, reg.closing) == (0, 13, 4, 9)
    waste = reg.lines[2]
    assert (waste.user, waste.witness, waste.patient, waste.pocket, waste.lot) == (
        "n1", "n2", "P7", "B-1-2", "M1")
    assert reg.lines[1].patient == FORMULA and reg.lines[0].expiry == "2030-01-31"
    # The closing balance is what the cabinet holds (pockets and bench), by the stock table.
    held = conn.execute("SELECT SUM(on_hand) FROM stock WHERE drug='MORPH10'").fetchone()[0]
    assert reg.closing == held == 9
    # A period opens with the balance of everything before it.
    next_year = date(int(reg.lines[0].ts[:4]) + 1, 1, 1)
    after = register.build(conn, "MORPH10", start=next_year)
    assert (after.opening, after.lines, after.closing) == (9, [], 9)
    before = register.build(conn, "MORPH10", end=date(2000, 1, 1))
    assert (before.opening, before.lines, before.closing) == (0, [], 0)
    # Another drug's rows never enter it.
    assert all(line.kind != "withdraw" or line.patient != "P8" for line in reg.lines)


def test_transfers_between_pockets_do_not_change_the_balance():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE journal (seq INTEGER, ts TEXT, kind TEXT, code TEXT, user TEXT,"
                 " drug TEXT, drawer TEXT, row INTEGER, col INTEGER, lot TEXT, expiry TEXT, "
                 "qty INTEGER, patient TEXT, detail TEXT)")
    rows = [(1, "restock", "A", 5), (2, "move_out", "A", 5), (3, "move_in", "B", 5),
            (4, "move_out", "B", 0), (5, "withdraw", "B", 2)]
    for seq, kind, drawer, qty in rows:
        conn.execute("INSERT INTO journal VALUES (?, '2026-11-23T08:00:00', ?, NULL, 't1', "
                     "'X', ?, 0, 0, 'L', NULL, ?, NULL, NULL)", (seq, kind, drawer, qty))
    reg = register.build(conn, "X")
    assert [(x.kind, x.transfer, x.balance) for x in reg.lines] == [
        ("restock", 0, 5), ("move_out", -5, 5), ("move_in", 5, 5), ("withdraw", 0, 3)]
    assert (reg.entries, reg.exits, reg.closing) == (5, 2, 3)


def test_the_csv_cannot_run_a_formula_in_a_spreadsheet(tmp_path):
    reg = register.build(sqlite3.connect(morphine_history(tmp_path)), "MORPH10")
    text = register.to_csv(reg)
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[0]["kind"] == "opening_balance" and rows[0]["balance"] == "0"
    assert rows[-1]["kind"] == "closing_balance" and rows[-1]["balance"] == "9"
    withdraw = next(r for r in rows if r["kind"] == "withdraw")
    assert withdraw["patient"] == "'" + FORMULA and withdraw["exit"] == "2"
    assert all(not (v or "").startswith(("=", "+", "@")) for r in rows for v in r.values())


def test_the_command_writes_the_register_and_refuses_bad_input(tmp_path, capsys):
    db = morphine_history(tmp_path)
    out = tmp_path / "reg.csv"
    assert main(["journal", "register", "--db", str(db), "--drug", "MORPH10",
                 "-o", str(out)]) == 0
    assert out.read_bytes().startswith("\ufeff".encode())
    assert "closing_balance" in out.read_text(encoding="utf-8-sig")
    capsys.readouterr()
    assert main(["journal", "register", "--db", str(db), "--drug", "MORPH10",
                 "--from", "2000-01-01", "--to", "2000-01-31"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(",0")
    for args, code in ((["--drug", "NOPE"], "UNKNOWN_DRUG"),
                       (["--drug", "MORPH10", "--from", "2026-02-01", "--to", "2026-01-01"],
                        "BAD_PERIOD"),
                       (["--drug", "MORPH10", "-o", str(db)], "BAD_OUTPUT")):
        before = db.read_bytes()
        assert main(["journal", "register", "--db", str(db), *args]) == 2
        assert f"[{code}]" in capsys.readouterr().err
        assert db.read_bytes() == before
    with pytest.raises(SystemExit) as info:
        main(["journal", "register", "--db", str(db), "--drug", "MORPH10",
              "--from", "20260101"])
    assert info.value.code == 2


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def test_the_pharmacy_page_shows_the_register_and_serves_its_csv(web):
    ph = web.client()
    ph_login(ph)
    assert 'id="go-register"' in ph.get("/pharmacy/journal").text
    page = ph.get("/pharmacy/register").text
    options = page.split('id="reg-drug"')[1].split("</select>")[0]
    assert options.index("MORPH10") < options.index("PARA500")  # controlled drugs first
    page = ph.get("/pharmacy/register", params={"drug": "MORPH10"}).text
    held = web.runtime.store.query("SELECT SUM(on_hand) AS n FROM stock WHERE drug='MORPH10'")
    assert f'id="reg-closing">{held[0]["n"]}<' in page
    assert "Réapprovisionnement" in page and 'id="reg-csv"' in page
    r = ph.get("/pharmacy/register.csv", params={"drug": "MORPH10", "from": "2000-01-01"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="register-MORPH10-2000-01-01-now.csv"' in r.headers["content-disposition"]
    assert r.text.splitlines()[-1].endswith(f",{held[0]['n']}")
    for params, code in (({"drug": "NOPE"}, "UNKNOWN_DRUG"),
                         ({"drug": "MORPH10", "to": "20261231"}, "BAD_DATE")):
        assert f"[{code}]" in ph.get("/pharmacy/register", params=params).text
    assert "NO_DRUG" in ph.get("/pharmacy/register.csv").text


def test_the_pharmacy_page_refuses_the_register_of_an_altered_journal(web):
    """The page and its CSV are the register an auditor is shown, as the command's: a
    restock's quantity edited in the database file under the running cabinet is refused
    with JOURNAL_INTEGRITY naming the row, never shown with a balance that adds up."""
    ph = web.client()
    ph_login(ph)
    assert "[JOURNAL_INTEGRITY]" not in ph.get("/pharmacy/register",
                                               params={"drug": "MORPH10"}).text
    conn = sqlite3.connect(web.runtime.store.path)
    conn.execute("DROP TRIGGER journal_no_update")
    [seq] = conn.execute("SELECT seq FROM journal WHERE drug = 'MORPH10' AND qty > 0 "
                         "ORDER BY seq LIMIT 1").fetchone()
    conn.execute("UPDATE journal SET qty = qty + 5 WHERE seq = ?", (seq,))
    conn.commit()
    conn.close()
    page = ph.get("/pharmacy/register", params={"drug": "MORPH10"}).text
    assert "[JOURNAL_INTEGRITY]" in page and f"ligne {seq} du journal" in page
    assert "le registre n'est pas affiché" in page.replace("&#39;", "'")
    assert 'id="reg-closing"' not in page
    r = ph.get("/pharmacy/register.csv", params={"drug": "MORPH10"})
    assert not r.headers["content-type"].startswith("text/csv")
    assert "[JOURNAL_INTEGRITY]" in r.text


def test_a_nurse_reads_no_register(web):
    c = web.client(host="127.0.0.1")
    web_login(c, "ide1")
    for path in ("/pharmacy/register", "/pharmacy/register.csv?drug=MORPH10"):
        assert c.get(path).status_code == 403


def test_the_last_day_there_is_filters_without_overflowing(tmp_path, capsys):
    db = morphine_history(tmp_path)
    reg = register.build(sqlite3.connect(db), "MORPH10", end=date.max)
    assert reg.closing == 9
    assert main(["journal", "register", "--db", str(db), "--drug", "MORPH10",
                 "--to", "9999-12-31"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(",9")


def test_the_register_of_an_altered_journal_is_refused_and_nothing_written(tmp_path, capsys):
    """The register is read from the journal alone and handed to auditors as the controlled
    drugs' record, so it is printed only from a journal whose chain holds, as the export:
    a withdrawal's quantity edited in the file is ``JOURNAL_INTEGRITY``, exit 3, naming the
    row, and neither a CSV nor a line of it appears."""
    db = morphine_history(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER journal_no_update")
    conn.execute("UPDATE journal SET qty = 1 WHERE kind = 'withdraw' AND drug = 'MORPH10'")
    conn.commit()
    [seq] = conn.execute("SELECT seq FROM journal WHERE kind = 'withdraw' "
                         "AND drug = 'MORPH10'").fetchone()
    conn.close()
    capsys.readouterr()
    out = tmp_path / "reg.csv"
    for extra in ([], ["-o", str(out)]):
        assert main(["journal", "register", "--db", str(db), "--drug", "MORPH10",
                     *extra]) == 3
        captured = capsys.readouterr()
        assert "[JOURNAL_INTEGRITY]" in captured.err and f"row {seq}" in captured.err
        assert captured.out == "" and not out.exists()
