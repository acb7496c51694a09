"""The ward's days (controller/localtime.py): expiry, registers, the journal page and the
withdrawal history cut days at the ward's midnight, not UTC's."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from helpers import DRAWERS, PINS, SPEC, config

from controller import localtime, register, replenishment
from controller.cli import main
from controller.config import from_dict
from controller.errors import ArmoireError, ConfigError
from controller.store import JournalEntry, Store
from sim.harness import SimCabinet

PARIS = localtime.zone("Europe/Paris")


def in_zone(name: str):
    return config(cabinet={"drawers": DRAWERS, "timezone": name})


# -- the zone itself -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Europe/Pariss", "", "+01:00", "../../etc/passwd",
                                  "/usr/share/zoneinfo/Europe/Paris", "Europe/../UTC",
                                  # files of the zone database that are not a place's zone
                                  "localtime", "posixrules", "Factory", "right/Europe/Paris",
                                  "posix/Europe/Paris"])
def test_a_name_that_is_not_a_zone_is_refused(name):
    with pytest.raises(ValueError):
        localtime.zone(name)


def test_the_configuration_names_a_bad_zone_and_never_guesses(monkeypatch, caplog):
    with pytest.raises(ConfigError) as bad:
        in_zone("Europe/Pariss")
    assert "cabinet.timezone" in bad.value.message_en and "Europe/Pariss" in bad.value.message_en
    assert "fuseau horaire" in bad.value.message_fr
    with pytest.raises(ConfigError):
        in_zone(1)  # type: ignore[arg-type]
    assert in_zone("Europe/Paris").settings.timezone == "Europe/Paris"
    # Unset: the simulator is UTC on every machine; a cabinet takes the system's zone.
    monkeypatch.setattr(localtime, "system_zone_name", lambda: "America/Montreal")
    raw = {"cabinet": {"drawers": DRAWERS}}
    assert from_dict(raw, sim=True).settings.timezone == "UTC"
    real = {"cabinet": {"drawers": [{"id": "A", "type": "matrix", "rows": 1, "cols": 1}]},
            "hardware": {"backend": "gpio", "drawers": {"A": {
                "motor_forward": 17, "motor_backward": 27, "switch_closed": 4,
                "switch_open": 5, "close_button": 6}}}}
    assert from_dict(real, sim=False).settings.timezone == "America/Montreal"
    # A system that names no zone: UTC days, said out loud.
    monkeypatch.setattr(localtime, "system_zone_name", lambda: None)
    caplog.clear()
    assert from_dict(real, sim=False).settings.timezone == "UTC"
    assert "cabinet.timezone is not set and the system names no time zone" in caplog.text


def test_the_system_zone_is_read_from_tz_then_localtime_then_etc_timezone(tmp_path):
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/Europe/Paris")
    names = tmp_path / "timezone"
    names.write_text("Asia/Tokyo\n")
    missing = tmp_path / "nothing"
    assert localtime.system_zone_name(link, names, {"TZ": ":America/Montreal"}) \
        == "America/Montreal"
    assert localtime.system_zone_name(link, names, {"TZ": "Nowhere/Else"}) == "Europe/Paris"
    assert localtime.system_zone_name(missing, names, {}) == "Asia/Tokyo"
    names.write_text("garbage\n")
    assert localtime.system_zone_name(missing, names, {}) is None
    assert localtime.system_zone_name(missing, missing, {}) is None


def test_days_start_at_the_ward_s_midnight_across_summer_time():
    # Winter: Paris is UTC+1; the last Sunday of March has 23 hours, October's 25.
    assert localtime.day_start(date(2026, 12, 4), PARIS) == "2026-12-03T23:00:00.000+00:00"
    assert localtime.day_start(date(2026, 3, 29), PARIS) == "2026-03-28T23:00:00.000+00:00"
    assert localtime.day_after(date(2026, 3, 29), PARIS) == "2026-03-29T22:00:00.000+00:00"
    assert localtime.day_after(date(2026, 10, 25), PARIS) == "2026-10-25T23:00:00.000+00:00"
    # Where clocks jumped at midnight (São Paulo, 2018-11-04 00:00 -> 01:00), the day starts
    # at its first real instant, 01:00 local.
    sao_paulo = localtime.zone("America/Sao_Paulo")
    first = localtime.day_start(date(2018, 11, 4), sao_paulo)
    assert first == "2018-11-04T03:00:00.000+00:00"
    assert localtime.local_day(first, sao_paulo) == date(2018, 11, 4)
    # The ends of the calendar do not overflow.
    assert localtime.day_after(date.max, PARIS) == "\uffff"
    assert localtime.day_start(date.min, PARIS) == ""
    assert localtime.local_day("2026-12-03T23:30:00.000+00:00", PARIS) == date(2026, 12, 4)
    assert localtime.local_text("2026-12-03T23:30:00.000+00:00", PARIS) == "2026-12-04 00:30"
    assert localtime.local_text("not a time", PARIS) == "not a time"
    with pytest.raises(ValueError):
        localtime.local_day("2026-12-03T23:30:00", PARIS)  # no offset: not a journal time
    # Past the calendar's end in the ward's zone: refused, or shown as written, never a crash.
    last = "9999-12-31T23:30:00.000+00:00"
    with pytest.raises(ValueError):
        localtime.local_day(last, PARIS)
    assert localtime.local_text(last, PARIS) == last
    assert localtime.local_text("0001-01-01T00:10:00.000+00:00",
                                localtime.zone("America/Montreal")).startswith("0001-01-01T")


# -- expiry ----------------------------------------------------------------------------------
def expiry_at_midnight(tmp_path: Path, zone: str) -> tuple[int, int, str | None]:
    """A lot labelled 2026-12-03, loaded at 23:50 Paris time on the 3rd; twenty minutes
    later (00:10 on the 4th in Paris, still the 3rd in UTC) a nurse asks for it."""
    async def go() -> tuple[int, int, str | None]:
        start = datetime(2026, 12, 3, 22, 50, tzinfo=UTC)
        sim = SimCabinet(in_zone(zone), tmp_path / f"{zone.replace('/', '-')}.db",
                         start=start)
        await sim.boot(SPEC)
        cab = sim.cab
        await sim.run(cab.login("t1", PINS["t1"]))
        await sim.operate(cab.restock("PARA500", "PARA500", 10, lot="L1", expiry="2026-12-03"))
        pocket = cab.pockets_of("PARA500")[0]
        before = cab.usable(pocket)
        await cab.logout()
        sim.simulator.clock.now += 20 * 60
        await sim.run(cab.login("n1", PINS["n1"]))
        after = cab.usable(pocket)
        refused = None
        try:
            await sim.operate(cab.withdraw("PARA500", 1, "P1"))
        except ArmoireError as exc:
            refused = exc.code
        await sim.shutdown()
        return before, after, refused
    return asyncio.run(go())


def test_a_lot_expires_at_the_ward_s_midnight_not_at_utc_s(tmp_path):
    assert expiry_at_midnight(tmp_path, "Europe/Paris") == (10, 0, "NO_STOCK")
    # The same minutes on a UTC cabinet are still the 3rd: the lot is given.
    assert expiry_at_midnight(tmp_path, "UTC") == (10, 10, None)


def test_the_expiry_alarm_comes_at_the_ward_s_midnight(tmp_path):
    """The hourly sweep alone, counted from the start at 23:50, would raise it at 00:50."""
    async def go() -> tuple[set[str], set[str]]:
        start = datetime(2026, 12, 3, 22, 50, tzinfo=UTC)  # 23:50 in Paris
        sim = SimCabinet(in_zone("Europe/Paris"), tmp_path / "m.db", start=start)
        await sim.boot(SPEC)
        cab = sim.cab
        await sim.run(cab.login("t1", PINS["t1"]))
        await sim.operate(cab.restock("PARA500", "PARA500", 10, lot="L1", expiry="2026-12-03"))
        await cab.logout()

        def kinds() -> set[str]:
            return {a["kind"] for a in cab.alarms.list() if a["drug"] == "PARA500"}
        before = kinds()
        clock = sim.simulator.clock
        clock.tick = 1.0
        clock.advance(11 * 60 - (clock.now % 60))  # to 00:01:xx, Paris time
        await sim.settle(lambda: "expired" in kinds(), limit=5)
        after = kinds()
        await sim.shutdown()
        return before, after

    before, after = asyncio.run(go())
    assert "expiry" in before and "expired" not in before
    assert "expired" in after


def test_the_cabinet_records_its_zone_for_the_tools_that_read_the_database(tmp_path, caplog):
    async def go(zone: str) -> str | None:
        sim = SimCabinet(in_zone(zone), tmp_path / "z.db",
                         start=datetime(2026, 12, 3, 8, tzinfo=UTC))
        await sim.boot(SPEC)
        recorded = sim.cab.store.meta(localtime.META_KEY)
        await sim.shutdown()
        return recorded
    assert asyncio.run(go("Europe/Paris")) == "Europe/Paris"
    caplog.clear()
    assert asyncio.run(go("America/Montreal")) == "America/Montreal"
    assert "time zone changed from Europe/Paris to America/Montreal" in caplog.text


# -- registers, journal page, history ----------------------------------------------------------
def night_rows(db: Path, zone: str | None = "Europe/Paris") -> None:
    """Morphine restocked at 22:30 UTC on 30 November (23:30 in Paris) and taken at 23:30 UTC
    (00:30 on 1 December in Paris)."""
    clock = iter([datetime(2026, 11, 30, 22, 30, tzinfo=UTC),
                  datetime(2026, 11, 30, 23, 30, tzinfo=UTC)])
    store = Store(db, wallclock=lambda: next(clock))
    if zone is not None:
        store.set_meta(localtime.META_KEY, zone)
    store.append(JournalEntry("restock", user="t1", drug="MORPH10", drawer="B", row=0, col=1,
                              qty=5, lot="M1", expiry="2030-01-31"))
    store.append(JournalEntry("withdraw", user="n1", drug="MORPH10", drawer="B", row=0, col=1,
                              qty=2, lot="M1", patient="P1"))
    with store.transaction() as c:
        c.execute("INSERT INTO drugs (id, name) VALUES ('MORPH10', 'morphine')")
    store.close()


def test_a_register_counts_the_ward_s_days(tmp_path):
    db = tmp_path / "r.db"
    night_rows(db)
    conn = sqlite3.connect(db)
    december = register.build(conn, "MORPH10", date(2026, 12, 1), date(2026, 12, 31), PARIS)
    assert (december.opening, [x.kind for x in december.lines], december.closing) == (
        5, ["withdraw"], 3)
    assert december.lines[0].local_time == "2026-12-01 00:30:00"
    assert december.lines[0].ts.startswith("2026-11-30T23:30")  # the evidence, unchanged
    november = register.build(conn, "MORPH10", date(2026, 11, 1), date(2026, 11, 30), PARIS)
    assert [x.kind for x in november.lines] == ["restock"] and november.closing == 5
    # Cut at UTC's midnight, both would be November's.
    utc = register.build(conn, "MORPH10", date(2026, 11, 1), date(2026, 11, 30))
    assert [x.kind for x in utc.lines] == ["restock", "withdraw"]
    rows = list(csv.reader(io.StringIO(register.to_csv(december).removeprefix("\ufeff"))))
    assert rows[0][:4] == ["seq", "ts", "local_time", "kind"]
    assert rows[1][1:4] == ["2026-12-01..2026-12-31 (Europe/Paris)", "", "opening_balance"]
    assert rows[1][-1] == "5" and rows[-1][3] == "closing_balance" and rows[-1][-1] == "3"
    conn.close()


def test_the_register_command_takes_the_zone_the_cabinet_recorded(tmp_path, capsys):
    db = tmp_path / "r.db"
    night_rows(db)
    args = ["journal", "register", "--db", str(db), "--drug", "MORPH10", "--from",
            "2026-12-01", "--to", "2026-12-01"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(Europe/Paris)" in out and ",withdraw," in out and ",restock," not in out
    assert main([*args, "--timezone", "UTC"]) == 0
    assert ",withdraw," not in capsys.readouterr().out  # 23:30 UTC is still 30 November
    with pytest.raises(SystemExit) as bad:
        main([*args, "--timezone", "Mars/Olympus"])
    assert bad.value.code == 2
    assert "not a time zone name" in capsys.readouterr().err
    # A zone this machine does not know, recorded in the database: refused, not guessed.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = 'Mars/Olympus' WHERE key = 'timezone'")
    assert main(args) == 2
    assert "[BAD_TIMEZONE]" in capsys.readouterr().err


def test_the_night_shift_s_withdrawals_count_for_the_ward_s_day(tmp_path):
    db = tmp_path / "h.db"
    night_rows(db)
    conn = sqlite3.connect(db)
    pockets = {"B:0:1": replenishment.Pocket("B", 0, 1, "MORPH10", 20)}
    assert replenishment.withdrawal_history(conn, pockets, PARIS) == [
        (date(2026, 12, 1), "B:0:1", 2.0)]
    assert replenishment.withdrawal_history(conn, pockets) == [
        (date(2026, 11, 30), "B:0:1", 2.0)]
    # A day not over yet is left out.
    assert replenishment.withdrawal_history(conn, pockets, PARIS,
                                            before=date(2026, 12, 1)) == []
    conn.close()


def test_a_withdrawal_time_past_the_calendar_s_end_is_damage_not_a_crash(tmp_path):
    from test_store_journal import tamper

    db = tmp_path / "h.db"
    night_rows(db)
    tamper(db, "UPDATE journal SET ts = '9999-12-31T23:30:00.000+00:00' WHERE seq = 2")
    conn = sqlite3.connect(db)
    pockets = {"B:0:1": replenishment.Pocket("B", 0, 1, "MORPH10", 20)}
    with pytest.raises(ArmoireError) as refused:
        replenishment.withdrawal_history(conn, pockets, PARIS)
    assert refused.value.code == "JOURNAL_INTEGRITY" and "journal row 2 " in str(
        refused.value.message_en)
    conn.close()


def test_a_history_read_that_fails_says_it_changed_nothing(tmp_path):
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database at all " * 200)
    with pytest.raises(ArmoireError) as failed:
        replenishment.history_at(str(broken), {}, PARIS, date(2026, 12, 3))
    assert failed.value.code == "DB_CORRUPT"
    assert "could not be read" in failed.value.message_en
    assert "n'a pas pu être lue" in failed.value.message_fr


def test_export_counts_the_ward_s_days_and_leaves_out_the_last_unfinished_one(tmp_path,
                                                                              capsys):
    db = tmp_path / "e.db"
    night_rows(db)
    # One more withdrawal the next evening: the journal's last day, maybe not over.
    store = Store(db, wallclock=lambda: datetime(2026, 12, 2, 18, tzinfo=UTC))
    store.append(JournalEntry("withdraw", user="n1", drug="MORPH10", drawer="B", row=0, col=1,
                              qty=1, lot="M1", patient="P2"))
    with store.transaction() as c:
        c.execute("INSERT INTO drawers (id, type, rows, cols, position) "
                  "VALUES ('B', 'cubie', 2, 2, 0)")
        c.execute("INSERT INTO pockets (drawer, row, col, drug, capacity) "
                  "VALUES ('B', 0, 1, 'MORPH10', 20)")
    store.close()
    history, current = tmp_path / "h.csv", tmp_path / "c.csv"
    base = ["stock", "export", "--db", str(db), "--history", str(history), "--current",
            str(current)]
    assert main(base) == 0
    # 00:30 on 1 December in Paris; the 2nd's withdrawal is on the last day, left out.
    assert history.read_text().splitlines() == ["date,item,quantity", "2026-12-01,B-1-2,2"]
    # In UTC the night withdrawal is the 30th's.
    assert main([*base, "--timezone", "UTC"]) == 0
    assert history.read_text().splitlines() == ["date,item,quantity", "2026-11-30,B-1-2,2"]
    capsys.readouterr()


@pytest.fixture
def web(tmp_path):
    from test_web import running_web
    yield from running_web(tmp_path)


def test_the_journal_page_shows_and_filters_the_ward_s_days(web):
    """The demo cabinet is in Paris: a withdrawal at 23:30 UTC on 30 November is shown at
    00:30 on 1 December, and filtered as December's."""
    from test_web import ph_login

    store = web.runtime.store
    assert web.cabinet.settings.timezone == "Europe/Paris"
    real = store.wallclock
    store.wallclock = lambda: datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    try:
        web.portal.call(lambda: store.append(JournalEntry(
            "withdraw", user="ide1", drug="MORPH10", drawer="B", row=0, col=1, qty=1,
            lot="NIGHT1", patient="P1")))
    finally:
        store.wallclock = real
    ph = web.client()
    ph_login(ph)
    december = ph.get("/pharmacy/journal", params={"from": "2026-12-01", "to": "2026-12-01"})
    assert "NIGHT1" in december.text and "01/12/2026<br>00:30:00" in december.text
    november = ph.get("/pharmacy/journal", params={"from": "2026-11-30", "to": "2026-11-30"})
    assert "NIGHT1" not in november.text
    register_page = ph.get("/pharmacy/register", params={
        "drug": "MORPH10", "from": "2026-12-01", "to": "2026-12-01"}).text
    assert "Europe/Paris" in register_page and "01/12/2026<br>00:30:00" in register_page
    # A time past the calendar's end in Paris (a damaged row) is shown as written.
    store.wallclock = lambda: datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
    try:
        web.portal.call(lambda: store.append(JournalEntry("login", user="ide1")))
    finally:
        store.wallclock = real
    page = ph.get("/pharmacy/journal")
    assert page.status_code == 200 and "9999-12-31T23:30:00.000+00:00" in page.text


def test_proposals_learn_from_finished_days_only(tmp_path, mocker):
    """Withdrawals of today (not over) are not learned from: half a day would read as a
    quiet one."""
    async def go() -> tuple[list[tuple[date, str, float]], date]:
        start = datetime(2026, 9, 1, 8, tzinfo=UTC)
        sim = SimCabinet(in_zone("Europe/Paris"), tmp_path / "p.db", start=start)
        await sim.boot(SPEC)
        cab = sim.cab
        await sim.run(cab.login("ph1", PINS["ph1"]))
        await sim.operate(cab.restock("PARA500", "PARA500", 60, lot="L1", expiry="2027-06-30"))
        for day in range(3):
            await sim.operate(cab.withdraw("PARA500", 1, f"P{day}"))
            await cab.logout()
            sim.simulator.clock.now += 86400
            await sim.run(cab.login("ph1", PINS["ph1"]))
        await sim.operate(cab.withdraw("PARA500", 5, "P9"))  # today
        spy = mocker.spy(replenishment, "withdrawal_history")
        replenishment.propose(cab)
        today = cab.today()
        await sim.shutdown()
        return spy.spy_return, today

    history, today = asyncio.run(go())
    assert [(d, q) for d, _, q in history] == [
        (today - timedelta(days=n), 1.0) for n in (3, 2, 1)]


@pytest.mark.parametrize("zone, start, taken", [
    ("Europe/Paris", "2026-12-03T23:50:00", False),        # the ward's clock
    ("Europe/Paris", "2026-12-03T22:50:00+00:00", False),  # the same instant, with its offset
    ("UTC", "2026-12-03T22:50:00", True),                  # 23:05 on the 3rd on a UTC ward
])
def test_a_scenario_s_start_is_the_ward_s_clock(tmp_path, zone, start, taken):
    """A start written without its offset is the ward's clock: a Paris scenario at 23:50
    starts at 22:50 UTC, and 15 minutes later the lot labelled 3 December is refused."""
    from helpers import login, scenario

    from sim.scenario import Runner

    steps = [login("t1"),
             {"do": "restock", "drug": "PARA500", "scan": "03400930000011", "qty": 5,
              "lot": "L1", "expiry": "2026-12-03"},
             {"do": "logout"}, {"do": "advance", "seconds": 900}, login("n1"),
             {"do": "withdraw", "drug": "PARA500", "qty": 1, "patient": "P1"}]
    data = scenario(steps, cabinet={"drawers": DRAWERS, "timezone": zone}, start=start)
    report = asyncio.run(Runner(data, tmp_path / "s.db").run())
    outcome = report["steps"][-1]
    assert [s["ok"] for s in report["steps"][:-1]] == [True] * 5, report["steps"]
    assert outcome["ok"] is taken and (taken or outcome["code"] == "NO_STOCK")
    first = sqlite3.connect(tmp_path / "s.db").execute(
        "SELECT ts FROM journal ORDER BY seq LIMIT 1").fetchone()[0]
    assert first.startswith("2026-12-03T22:50")
