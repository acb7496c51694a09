"""``armoire stock advise|simulate``: through controller.cli.main with only this module
registered (journal_cli and sim.cli live on other branches until the merge), and once as a
real process. Every refused input: exit 2, the line named, no output file."""

import csv
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

import controller.cli
from controller.stock.generator import WardSpec, generate_ward, to_withdrawals

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def only_stock(monkeypatch):
    monkeypatch.setattr(controller.cli, "SUBCOMMAND_MODULES", ("controller.stock.cli",))


def run(*argv: str) -> int:
    return controller.cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hist") / "history.csv"
    matrix, _ = generate_ward(WardSpec(n_items=12, days=180, seed=5))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "item", "quantity"])
        for day, item, qty in to_withdrawals(matrix):
            writer.writerow([day.isoformat(), item, f"{qty:g}"])
    return path


def test_advise_writes_parameters(history, tmp_path, capsys):
    out = tmp_path / "params.csv"
    assert run("stock", "advise", history, "-o", out, "--lead-time", "1", "--review", "1",
               "--target-fill", "0.995") == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 12
    for col in ("item", "min", "max", "abc", "xyz", "movement", "method",
                "forecast_per_period", "expected_fill_rate_units_served",
                "expected_avg_stock", "expected_orders", "status"):
        assert col in rows[0]
    assert all(int(r["min"]) < int(r["max"]) for r in rows)
    assert "units served" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left


def test_simulate_prints_the_comparison_and_plots(history, tmp_path, capsys):
    params = tmp_path / "params.csv"
    assert run("stock", "advise", history, "-o", params) == 0
    capsys.readouterr()
    plot = tmp_path / "replay.svg"
    assert run("stock", "simulate", history, "--params", params, "--plot", plot) == 0
    out = capsys.readouterr().out
    for label in ("Restock orders", "Average stock", "Stock-outs",
                  "Fill rate, units served", "Taux de service, unités servies"):
        assert label in out
    assert plot.read_text().startswith("<svg")


def test_simulate_with_a_current_policy(history, tmp_path, capsys):
    params = tmp_path / "params.csv"
    assert run("stock", "advise", history, "-o", params) == 0
    current = tmp_path / "current.csv"
    current.write_text("item,min,max\n" + "".join(f"DRUG{i:02d},900,99999\n" for i in range(12)))
    capsys.readouterr()
    assert run("stock", "simulate", history, "--params", params, "--current", current) == 0
    out = capsys.readouterr().out
    fill_line = next(line for line in out.splitlines() if line.startswith("Fill rate"))
    assert "100.00%" in fill_line  # 99999 units on hand serve everything


def test_once_as_a_real_process(history, tmp_path):
    out = tmp_path / "params.csv"
    code = ("import sys, controller.cli as c; c.SUBCOMMAND_MODULES = ('controller.stock.cli',);"
            " sys.exit(c.main(sys.argv[1:]))")
    ok = subprocess.run([sys.executable, "-c", code, "stock", "advise", str(history),
                         "-o", str(out)], capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    assert out.exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("date,item,quantity\n2025-01-01,A,1\n2025-13-01,A,2\n")
    refused = subprocess.run([sys.executable, "-c", code, "stock", "advise", str(bad),
                              "-o", str(tmp_path / "never.csv")],
                             capture_output=True, text=True, cwd=REPO)
    assert refused.returncode == 2
    assert "line 3" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "never.csv").exists()


BAD_HISTORIES = {
    "malformed date": ("date,item,quantity\n2025-01-01,A,1\n01/02/2025,A,2\n", "line 3"),
    "basic-format date": ("date,item,quantity\n2025-01-01,A,1\n20250102,A,2\n", "line 3"),
    "week date": ("date,item,quantity\n2025-W01-2,A,1\n", "line 2"),
    "negative quantity": ("date,item,quantity\n2025-01-01,A,1\n2025-01-02,A,-2\n", "line 3"),
    "non-numeric quantity": ("date,item,quantity\n2025-01-01,A,two\n", "line 2"),
    "infinite quantity": ("date,item,quantity\n2025-01-01,A,inf\n", "line 2"),
    "absurd quantity": ("date,item,quantity\n2025-01-01,A,1e16\n2025-01-02,A,1\n", "line 2"),
    "huge quantities adding up to inf": (
        "date,item,quantity\n2025-01-02,A,1\n2025-01-01,A,1e308\n2025-01-01,A,1e308\n",
        "line 3"),
    "day total above the cap": (
        "date,item,quantity\n2025-01-01,A,600000\n2025-01-02,B,1\n2025-01-01,A,600000\n",
        "line 4"),
    "empty item": ("date,item,quantity\n2025-01-01,,1\n", "line 2"),
    "missing field": ("date,item,quantity\n2025-01-01,A,1\n2025-01-02,A\n", "line 3"),
    "missing column": ("date,item\n2025-01-01,A\n", "line 1"),
    "empty file": ("", "empty"),
    "header only": ("date,item,quantity\n", "empty history"),
    "typo year": ("date,item,quantity\n2025-01-01,A,1\n2204-01-02,A,2\n2025-01-03,A,1\n",
                  "line 3"),
    "typo year first": ("date,item,quantity\n2025-01-01,A,1\n1925-01-02,A,2\n", "line 3"),
}


@pytest.mark.parametrize("case", sorted(BAD_HISTORIES))
def test_bad_history_is_refused(case, tmp_path, capsys):
    text, where = BAD_HISTORIES[case]
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    out = tmp_path / "params.csv"
    assert run("stock", "advise", bad, "-o", out) == 2
    err = capsys.readouterr().err
    assert where in err and "BAD_INPUT" in err
    assert not out.exists()


def test_refused_input_leaves_an_existing_file_untouched(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,item,quantity\n2025-01-01,A,x\n")
    out = tmp_path / "params.csv"
    out.write_text("keep me\n")
    assert run("stock", "advise", bad, "-o", out) == 2
    assert out.read_text() == "keep me\n"


@pytest.mark.parametrize("argv", [
    ["--period", "year"], ["--lead-time", "-1"], ["--review", "0"],
    ["--target-fill", "1.2"], ["--target-fill", "abc"], ["--unknown-option"],
    ["--lead-time", "99999999999999999999"], ["--review", "367"],
])
def test_bad_options_exit_2_and_write_nothing(argv, history, tmp_path):
    out = tmp_path / "params.csv"
    with pytest.raises(SystemExit) as exc:
        run("stock", "advise", history, "-o", out, *argv)
    assert exc.value.code == 2
    assert not out.exists()


def test_missing_history_file(tmp_path, capsys):
    assert run("stock", "advise", tmp_path / "nope.csv", "-o", tmp_path / "p.csv") == 2
    assert "cannot read" in capsys.readouterr().err


BAD_PARAMS = {
    "min not a number": ("item,min,max\nDRUG00,x,5\n", "line 2"),
    "max under min": ("item,min,max\nDRUG00,5,5\n", "line 2"),
    "negative min": ("item,min,max\nDRUG00,-1,5\n", "line 2"),
    "duplicate item": ("item,min,max\nDRUG00,1,5\nDRUG00,1,6\n", "line 3"),
    "no max column": ("item,min\nDRUG00,1\n", "line 1"),
    "negative lead time": ("item,min,max,lead_time,review\nDRUG00,1,5,-3,1\n", "line 2"),
    "lead time not a number": ("item,min,max,lead_time,review\nDRUG00,1,5,abc,1\n",
                               "line 2"),
    "review of 0": ("item,min,max,lead_time,review\nDRUG00,1,5,1,0\n", "line 2"),
    "absurd lead time": ("item,min,max,lead_time\nDRUG00,1,5,100000\n", "line 2"),
    "max above capacity": ("item,min,max,capacity\nDRUG00,5,50,10\n", "line 2"),
    "absurd max": ("item,min,max\nDRUG00,1,99999999999999999999\n", "line 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_PARAMS))
def test_bad_params_are_refused(case, history, tmp_path, capsys):
    text, where = BAD_PARAMS[case]
    params = tmp_path / "params.csv"
    params.write_text(text)
    plot = tmp_path / "plot.svg"
    assert run("stock", "simulate", history, "--params", params, "--plot", plot) == 2
    assert where in capsys.readouterr().err
    assert not plot.exists()


def test_plot_must_be_svg(history, tmp_path, capsys):
    params = tmp_path / "params.csv"
    params.write_text("item,min,max\nDRUG00,1,5\n")
    plot = tmp_path / "plot.png"
    assert run("stock", "simulate", history, "--params", params, "--plot", plot) == 2
    assert "SVG" in capsys.readouterr().err
    assert not plot.exists()


def test_params_without_any_history_item(history, tmp_path, capsys):
    params = tmp_path / "params.csv"
    params.write_text("item,min,max\nOTHER,1,5\n")
    assert run("stock", "simulate", history, "--params", params) == 2
    assert "no item" in capsys.readouterr().err


def test_weekly_round_trip(tmp_path, capsys):
    start = date(2025, 1, 6)
    hist = tmp_path / "h.csv"
    hist.write_text("date,item,quantity\n" + "".join(
        f"{start + timedelta(days=d)},A,{1 + d % 3}\n" for d in range(120)))
    params = tmp_path / "p.csv"
    assert run("stock", "advise", hist, "-o", params, "--period", "week") == 0
    assert "week" in params.read_text()
    assert run("stock", "simulate", hist, "--params", params) == 0
    assert "weeks" in capsys.readouterr().out


@pytest.fixture
def cabinet_db(tmp_path) -> Path:
    """A cabinet database with one withdrawal, closed so that export reads it as a copy."""
    from controller.store import JournalEntry, StockDelta, Store

    store = Store(tmp_path / "cab.db")
    store.append(JournalEntry("restock", user="t1", drug="D", drawer="A", row=0, col=0,
                              qty=10, lot="L1", expiry="2027-01-01"),
                 [StockDelta("A", 0, 0, "L1", "D", "2027-01-01", 10)])
    store.close()
    return tmp_path / "cab.db"


def test_export_refuses_to_write_over_its_own_database(cabinet_db, tmp_path, capsys):
    before = cabinet_db.read_bytes()
    assert run("stock", "export", "--db", cabinet_db, "--history", cabinet_db,
               "--current", tmp_path / "c.csv") == 2
    assert "[BAD_OUTPUT]" in capsys.readouterr().err
    assert cabinet_db.read_bytes() == before
    assert not (tmp_path / "c.csv").exists()


def test_export_refuses_one_file_for_both_outputs(cabinet_db, tmp_path, capsys):
    out = tmp_path / "x.csv"
    out.write_text("OLD\n")
    assert run("stock", "export", "--db", cabinet_db, "--history", out, "--current", out) == 2
    assert "--current" in capsys.readouterr().err
    assert out.read_text() == "OLD\n"


@pytest.mark.parametrize("bad", ["missing/c.csv", "folder"])
def test_export_checks_every_output_before_writing_any(cabinet_db, tmp_path, capsys, bad):
    (tmp_path / "folder").mkdir()
    hist = tmp_path / "h.csv"
    hist.write_text("OLD\n")
    assert run("stock", "export", "--db", cabinet_db, "--history", hist,
               "--current", tmp_path / bad) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert hist.read_text() == "OLD\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cab.db", "folder", "h.csv"]


def test_outputs_may_not_be_an_input_or_a_directory(history, tmp_path, capsys):
    copy = tmp_path / "history.csv"
    copy.write_bytes(history.read_bytes())
    assert run("stock", "advise", copy, "-o", copy) == 2
    assert copy.read_bytes() == history.read_bytes()
    (tmp_path / "dir").mkdir()
    assert run("stock", "advise", copy, "-o", tmp_path / "dir") == 2
    params = tmp_path / "p.csv"
    assert run("stock", "advise", copy, "-o", params) == 0
    assert run("stock", "simulate", copy, "--params", params, "--plot", tmp_path / "d.svg"
               ) == 0
    (tmp_path / "dir.svg").mkdir()
    capsys.readouterr()
    assert run("stock", "simulate", copy, "--params", params, "--plot", tmp_path / "dir.svg"
               ) == 2
    err = capsys.readouterr().err
    assert "[BAD_OUTPUT]" in err and "directory" in err


def test_quantities_up_to_the_cap_are_advised_and_period_sums_are_capped(tmp_path, capsys):
    from controller.stock.history import MAX_QUANTITY

    hist = tmp_path / "h.csv"
    hist.write_text("date,item,quantity\n" + "".join(
        f"2025-01-{d:02d},A,{MAX_QUANTITY}\n" for d in (6, 7)) + "2025-01-09,B,1\n")
    out = tmp_path / "p.csv"
    assert run("stock", "advise", hist, "-o", out) == 0
    assert {r["item"] for r in csv.DictReader(out.open())} == {"A", "B"}
    out.unlink()
    capsys.readouterr()
    assert run("stock", "advise", hist, "-o", out, "--period", "week") == 2
    err = capsys.readouterr().err
    assert "item A" in err and "2025-01-06" in err
    assert not out.exists()


@pytest.mark.parametrize("argv", [["--lead-time", "99999999999999999999"], ["--review", "367"],
                                  ["--default-max", str(10 ** 30)]])
def test_simulate_options_are_bounded(argv, history, tmp_path, capsys):
    params = tmp_path / "params.csv"
    params.write_text("item,min,max\nDRUG00,1,5\n")
    with pytest.raises(SystemExit) as exc:
        run("stock", "simulate", history, "--params", params, *argv)
    assert exc.value.code == 2 and argv[0] in capsys.readouterr().err


def test_a_current_max_above_the_capacity_is_refused(history, tmp_path, capsys):
    params = tmp_path / "params.csv"
    params.write_text("item,min,max\nDRUG00,1,5\n")
    current = tmp_path / "current.csv"
    current.write_text("item,min,max,capacity\nDRUG00,5,50,10\n")
    assert run("stock", "simulate", history, "--params", params, "--current", current) == 2
    assert "capacity (10)" in capsys.readouterr().err


def test_refusals_are_one_line_in_english_and_french(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,item,quantity\n2025-01-01,A,x\n")
    code = ("import sys, controller.cli as c; c.SUBCOMMAND_MODULES = ('controller.stock.cli',);"
            " sys.exit(c.main(sys.argv[1:]))")
    for argv, start in ((["stock", "advise", str(bad), "-o", str(tmp_path / "p.csv")],
                         "armoire: [BAD_INPUT] "),
                        (["stock", "advise", str(bad), "-o", "p.csv", "--frob"],
                         "armoire: [USAGE] "),
                        (["stock", "advise", str(bad), "-o", "p.csv", "--lead-time", "x"],
                         "armoire: [USAGE] stock advise: argument --lead-time")):
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                              text=True, cwd=REPO)
        assert proc.returncode == 2 and proc.stdout == ""
        [line] = proc.stderr.splitlines()
        assert line.startswith(start), line
        assert (" / " in line and ("ligne 2" in line or "usage incorrect" in line)), line
    assert not (tmp_path / "p.csv").exists()


def test_proposed_levels_never_exceed_the_quantity_cap(tmp_path, capsys):
    """Big quantities over a long lead time would ask for hundreds of millions of units: a
    file that ``stock simulate`` (rightly) refuses to read back."""
    from controller.stock.history import MAX_QUANTITY

    hist = tmp_path / "h.csv"
    hist.write_text("date,item,quantity\n" + "".join(
        f"2025-01-{d:02d},A,{MAX_QUANTITY if d % 2 else 1}\n" for d in range(1, 11)))
    out = tmp_path / "p.csv"
    assert run("stock", "advise", hist, "-o", out, "--lead-time", "366", "--review", "366"
               ) == 0
    [row] = list(csv.DictReader(out.open()))
    assert int(row["min"]) < int(row["max"]) <= MAX_QUANTITY
    assert run("stock", "simulate", hist, "--params", out) == 0


UNREADABLE_HISTORIES = {
    "latin-1 file": b"date,item,quantity\n2025-01-01,A,1\n2025-01-02,PARAC\xc9TAMOL,2\n",
    "oversized field": b"date,item,quantity\n2025-01-01,A,1\n2025-01-02," + b"A" * 200_000
                       + b",1\n",
}


@pytest.mark.parametrize("case", sorted(UNREADABLE_HISTORIES))
def test_a_history_the_csv_reader_cannot_read_is_refused_naming_the_line(case, tmp_path,
                                                                         capsys):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(UNREADABLE_HISTORIES[case])
    out = tmp_path / "params.csv"
    assert run("stock", "advise", bad, "-o", out) == 2
    err = capsys.readouterr().err
    assert "[BAD_INPUT]" in err and "line 3" in err and "ligne 3" in err
    assert "Traceback" not in err and len(err) < 1000
    assert not out.exists()


def test_a_params_file_not_in_utf8_is_refused_and_a_bom_is_not(history, tmp_path, capsys):
    params = tmp_path / "params.csv"
    params.write_bytes(b"item,min,max\nDRUG\xe900,1,5\n")
    plot = tmp_path / "plot.svg"
    assert run("stock", "simulate", history, "--params", params, "--plot", plot) == 2
    assert "line 2" in capsys.readouterr().err and not plot.exists()
    params.write_bytes(b"\xef\xbb\xbfitem,min,max\nDRUG00,1,5\n")
    assert run("stock", "simulate", history, "--params", params) == 0


@pytest.mark.parametrize("damage", ["pockets page", "garbage"])
def test_export_of_a_corrupt_database_is_refused_and_writes_nothing(cabinet_db, tmp_path,
                                                                    capsys, damage):
    """Damage past the pages the opening check reads shows only when the pockets are read:
    it must still be a one-line DB_UNREADABLE, not a traceback."""
    from helpers import damage_table

    if damage == "garbage":
        cabinet_db.write_bytes(b"not a database at all" * 500)
    else:
        damage_table(cabinet_db, "pockets")
    assert "[DB_UNREADABLE]" in refused_export(cabinet_db, tmp_path, capsys, 2)


def refused_export(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   status: int) -> str:
    """``stock export`` of ``db`` exits with ``status``, with no traceback and neither file
    written; its standard error, for the code and message to be checked."""
    hist, cur = tmp_path / "h.csv", tmp_path / "c.csv"
    assert run("stock", "export", "--db", db, "--history", hist, "--current", cur) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err and not hist.exists() and not cur.exists()
    return err


def test_the_history_span_is_bounded_whatever_its_source():
    """The cabinet's journal (a clock set wrong) reaches to_matrix without a file."""
    from controller.errors import InputError
    from controller.stock.history import MAX_SPAN_DAYS, to_matrix

    start = date(2025, 1, 1)
    longest = [(start, "A", 1.0), (start + timedelta(days=MAX_SPAN_DAYS - 1), "A", 1.0)]
    assert to_matrix(longest).n_periods == MAX_SPAN_DAYS
    with pytest.raises(InputError) as err:
        to_matrix([(start, "A", 1.0), (date(2204, 1, 1), "A", 1.0)], "month")
    assert "2204-01-01" in err.value.message_en and "ans" in err.value.message_fr


def test_weeks_and_months_cut_by_the_ends_of_the_history_are_left_out():
    """A partial period bucketed as a whole one looks quiet and biases demand down."""
    from controller.errors import InputError
    from controller.stock.history import to_matrix

    def daily(first: date, last: date) -> list[tuple[date, str, float]]:
        return [(first + timedelta(days=d), "A", 1.0) for d in range((last - first).days + 1)]

    weeks = to_matrix(daily(date(2025, 1, 1), date(2025, 1, 29)), "week")  # Wed to Wed
    assert weeks.start == date(2025, 1, 6) and weeks.demand.tolist() == [[7.0, 7.0, 7.0]]
    months = to_matrix(daily(date(2025, 1, 15), date(2025, 4, 10)), "month")
    assert months.start == date(2025, 2, 1) and months.demand.tolist() == [[28.0, 31.0]]
    whole = to_matrix(daily(date(2025, 1, 6), date(2025, 1, 19)), "week")  # Mon to Sun
    assert whole.demand.tolist() == [[7.0, 7.0]]
    assert to_matrix(daily(date(2025, 1, 1), date(2025, 1, 3))).n_periods == 3  # days
    with pytest.raises(InputError) as err:
        to_matrix(daily(date(2025, 1, 1), date(2025, 1, 8)), "week")
    assert "no whole week" in err.value.message_en


def test_a_history_of_monthly_totals_dated_the_first_keeps_its_last_month():
    """Stock systems export a month's total on its 1st: that month is whole, not cut."""
    from controller.stock.history import to_matrix

    totals = [(date(2025, m, 1), item, float(m)) for m in (1, 2, 3) for item in ("A", "B")]
    months = to_matrix(totals, "month")
    assert months.start == date(2025, 1, 1)
    assert months.demand.tolist() == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    mondays = [(date(2025, 1, 6) + timedelta(weeks=w), "A", 2.0) for w in range(3)]
    assert to_matrix(mondays, "week").demand.tolist() == [[2.0, 2.0, 2.0]]
    # One row off a period's start makes it daily data again, cut at its end.
    assert to_matrix([*totals, (date(2025, 3, 2), "A", 1.0)], "month").n_periods == 2


def test_export_of_a_journal_with_a_malformed_withdrawal_is_refused(cabinet_db, tmp_path,
                                                                   capsys):
    """A withdrawal row whose quantity is text: JOURNAL_INTEGRITY naming the row, exit 3 (the
    store is wrong, not the command), no traceback and no file written."""
    from test_store_journal import tamper

    from controller.store import JournalEntry, Store

    store = Store(cabinet_db)
    store.append(JournalEntry("withdraw", user="n1", drug="D", drawer="A", row=0, col=0,
                              qty=1, lot="L1", patient="P"))
    store.close()
    tamper(cabinet_db, "UPDATE journal SET qty = 'x' WHERE kind = 'withdraw'")
    err = refused_export(cabinet_db, tmp_path, capsys, 3)
    assert "[JOURNAL_INTEGRITY] journal row 2 " in err
