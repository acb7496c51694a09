"""The systemd units: accepted by systemd-analyze, and saying what docs/deploy.md promises.

``systemd-analyze verify`` refuses units whose ExecStart= binary does not exist (here,
/opt/armoire/venv/bin/armoire). The units are therefore verified from a temporary copy in which
every missing Exec*= binary is replaced by a stub script; everything else is verified as
written, and a deliberately broken copy proves the check can fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = ["armoire.service", "armoire-verify.service", "armoire-backup.service",
         "armoire-backup.timer"]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")

_EXEC = re.compile(r"^(Exec\w+=)([-@:+!]*)(\S+)(.*)$")


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order; repeated keys (DeviceAllow=) are kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            assert current is not None, f"{path.name}: key outside a section: {line}"
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def copy_with_stub_binaries(dest: Path) -> list[Path]:
    """Copy the units into ``dest``, pointing missing Exec binaries at an executable stub."""
    stub = dest / "bin" / "stub"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    out = []
    for name in UNITS:
        lines = []
        for line in (DEPLOY / name).read_text().splitlines():
            match = _EXEC.match(line)
            if match and not Path(match.group(3)).exists():
                line = f"{match.group(1)}{match.group(2)}{stub}{match.group(4)}"
            lines.append(line)
        (dest / name).write_text("\n".join(lines) + "\n")
        out.append(dest / name)
    return out


def analyze_verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", "--recursive-errors=no", *map(str, paths)],
        capture_output=True, text=True, timeout=60, cwd=paths[0].parent)


@needs_analyze
def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    result = analyze_verify(copy_with_stub_binaries(tmp_path))
    ours = [line for line in (result.stdout + result.stderr).splitlines()
            if any(name in line for name in UNITS) or "bin/stub" in line]
    assert result.returncode == 0, result.stderr
    assert ours == []


@needs_analyze
def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path):
    paths = copy_with_stub_binaries(tmp_path)
    broken = paths[0].read_text().replace("WatchdogSec=", "WatchdogSecs=")
    paths[0].write_text(broken)
    result = analyze_verify(paths)
    assert result.returncode != 0
    assert "WatchdogSecs" in result.stderr


@needs_analyze
def test_controller_unit_hardening_exposure_is_low(tmp_path):
    paths = copy_with_stub_binaries(tmp_path)
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--man=no", "--threshold=25",
         str(paths[0])], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:]


def test_controller_unit_contract():
    unit = parse_unit(DEPLOY / "armoire.service")
    svc = "Service"
    assert values(unit, svc, "Type") == ["notify"]
    assert values(unit, svc, "NotifyAccess") == ["main"]
    assert values(unit, svc, "WatchdogSec")
    assert values(unit, svc, "Restart") == ["on-failure"]
    assert values(unit, svc, "RestartPreventExitStatus") == ["2"]
    assert values(unit, svc, "ProtectSystem") == ["strict"]
    assert values(unit, svc, "ReadWritePaths") == ["/var/lib/armoire"]
    assert values(unit, svc, "NoNewPrivileges") == ["yes"]
    assert values(unit, svc, "PrivateTmp") == ["yes"]
    assert values(unit, svc, "DevicePolicy") == ["closed"]
    assert sorted(values(unit, svc, "DeviceAllow")) == ["char-gpiochip rw", "char-ttyACM rw"]
    assert "GPIOZERO_PIN_FACTORY=lgpio" in values(unit, svc, "Environment")
    assert values(unit, svc, "User") == ["armoire"]
    (exec_start,) = values(unit, svc, "ExecStart")
    assert " run " in exec_start and "--host 127.0.0.1" in exec_start
    assert "--sim" not in exec_start
    # However it ended, the outputs are cut after it, with the same configuration.
    (stop_post,) = values(unit, svc, "ExecStopPost")
    assert stop_post.startswith("-/opt/armoire/venv/bin/armoire outputs-off ")
    assert stop_post.split("--config ")[1] == exec_start.split("--config ")[1]
    # Journal verification is a separate, non-fatal unit (see the unit's comment).
    assert not values(unit, svc, "ExecStartPre")
    assert "armoire-verify.service" in values(unit, "Unit", "Wants")[0]
    assert not values(unit, "Unit", "Requires")
    assert values(unit, "Install", "WantedBy") == ["multi-user.target"]


def test_the_controller_unit_gives_the_proxy_its_socket_and_nothing_more():
    """The example's ``[server] proxy_socket`` is in the unit's runtime directory (the only
    place under /run it may write; emptied when it stops, so no stale socket); the
    directory lets the proxy's user reach the socket but not list it (0751: what lies
    there, lgpio's pipes, stays 0640 by UMask=0027); and the controller is in the
    socket's group, so that it may give the socket that group (``chown`` to a group one is
    not in is refused without a capability, and the unit has none)."""
    import tomllib

    unit = parse_unit(DEPLOY / "armoire.service")
    svc = "Service"
    (directory,) = values(unit, svc, "RuntimeDirectory")
    assert values(unit, svc, "RuntimeDirectoryMode") == ["0751"]
    assert values(unit, svc, "UMask") == ["0027"]
    (groups,) = values(unit, svc, "SupplementaryGroups")
    example = (DEPLOY / "armoire.example.toml").read_text(encoding="utf-8")
    match = re.search(r'^# proxy_socket = "(.*)"$', example, re.M)
    assert match, "the example names the socket, commented out"
    server = tomllib.loads(example.replace("# proxy_socket", "proxy_socket"))["server"]
    assert Path(server["proxy_socket"]).parent == Path("/run") / directory
    from controller.config import DEFAULT_PROXY_GROUP

    assert DEFAULT_PROXY_GROUP in groups.split()
    assert "AF_UNIX" in values(unit, svc, "RestrictAddressFamilies")[0].split()
    install = (DEPLOY / "install.sh").read_text(encoding="utf-8")
    assert f"groupadd --system {DEFAULT_PROXY_GROUP}" in install


def test_verify_unit_is_a_boot_oneshot_recording_its_result():
    unit = parse_unit(DEPLOY / "armoire-verify.service")
    assert values(unit, "Service", "Type") == ["oneshot"]
    assert values(unit, "Unit", "Before") == ["armoire.service"]
    (exec_start,) = values(unit, "Service", "ExecStart")
    assert exec_start.endswith("journal verify --config /etc/armoire/armoire.toml")
    (post,) = values(unit, "Service", "ExecStopPost")
    assert "$$SERVICE_RESULT" in post and "journal-verify.status" in post


def test_backup_timer_runs_the_backup_command_nightly():
    timer = parse_unit(DEPLOY / "armoire-backup.timer")
    assert len(values(timer, "Timer", "OnCalendar")) == 1
    assert values(timer, "Timer", "Persistent") == ["true"]
    service = parse_unit(DEPLOY / "armoire-backup.service")
    (exec_start,) = values(service, "Service", "ExecStart")
    assert exec_start.endswith("armoire backup --config /etc/armoire/armoire.toml")


def test_hardware_watchdog_drop_in():
    conf = parse_unit(DEPLOY / "system.conf.d" / "armoire-watchdog.conf")
    (runtime,) = values(conf, "Manager", "RuntimeWatchdogSec")
    # The Pi's SoC watchdog cannot count beyond about 15 s.
    assert int(runtime.rstrip("s")) <= 15


def test_only_what_a_restart_cannot_mend_exits_with_the_status_the_unit_does_not_restart(
        tmp_path, capsys):
    """RestartPreventExitStatus=2: a refused configuration exits 2 (a restart would fail
    the same way), a hardware fault 3 (a board may come back: restarted)."""
    from controller.cli import main
    from controller.errors import ConfigError, HardwareError, InputError

    bad = tmp_path / "armoire.toml"
    bad.write_text("[cabinet]\ndrawers = 5\n", encoding="utf-8")
    assert main(["run", "--sim", "--config", str(bad), "--db", str(tmp_path / "c.db")]) == 2
    assert "[BAD_CONFIG]" in capsys.readouterr().err
    assert ConfigError("x", "x").exit_code == InputError("x", "x").exit_code == 2
    assert HardwareError("x", "x").exit_code == 3


def test_the_unit_and_the_guide_tell_it_what_to_do_with_an_unreadable_database():
    """DB_UNREADABLE exits 2, so the unit stays failed: the unit file and docs/deploy.md
    must name the remedy (restore a backup), not leave IT restarting it."""
    from controller.errors import DatabaseUnreadable

    assert DatabaseUnreadable("x", "x").exit_code == 2
    unit = (DEPLOY / "armoire.service").read_text()
    assert re.search(r"# DB_UNREADABLE[^\n]*armoire restore", unit)
    guide = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    assert "`DB_UNREADABLE`" in guide and "`armoire restore`" in guide


#: The hospitals' zone, and its two clock changes of 2027 (last Sundays of March and October):
#: 02:00-03:00 does not exist on the first and happens twice on the second.
PARIS = ZoneInfo("Europe/Paris")
DST_DAYS_2027 = [date(2027, 3, 28), date(2027, 10, 31)]
_ELAPSE = re.compile(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$")


def calendar_elapses(spec: str, since: datetime, count: int) -> list[datetime]:
    """The next ``count`` times ``spec`` elapses after ``since``, by systemd's own calendar
    arithmetic (``systemd-analyze calendar``). A spec without a zone is read in
    Europe/Paris, the zone the cabinets' system clock is set to; printed in UTC (TZ=UTC)."""
    assert SYSTEMD_ANALYZE is not None
    parts = spec.split()
    if len(parts) == 2:  # date and time, no zone: the system's, i.e. the ward's
        spec = f"{spec} Europe/Paris"
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "calendar", f"--iterations={count}",
         f"--base-time=@{int(since.timestamp())}", spec],
        capture_output=True, text=True, timeout=60, env={**os.environ, "TZ": "UTC"})
    assert result.returncode == 0, result.stderr
    found = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
             for m in map(_ELAPSE.match, map(str.strip, result.stdout.splitlines())) if m]
    assert len(found) == count, result.stdout
    return found


@needs_analyze
@pytest.mark.parametrize("day", DST_DAYS_2027, ids=["spring", "autumn"])
def test_the_nightly_backup_runs_exactly_once_on_the_days_the_clocks_change(day):
    """At 02:30 local time the backup fired never on the spring day (02:00-03:00 does not
    exist in Europe/Paris) and relied on systemd's choice between the two 02:30s in autumn.
    The ward's calendar days around each change, as systemd computes them, get one
    backup each."""
    timer = parse_unit(DEPLOY / "armoire-backup.timer")
    (spec,) = values(timer, "Timer", "OnCalendar")
    first = day - timedelta(days=1)
    since = datetime(first.year, first.month, first.day, tzinfo=PARIS) - timedelta(seconds=1)
    runs = calendar_elapses(spec, since, 5)
    days = [run.astimezone(PARIS).date() for run in runs]
    for wanted in (first, day, day + timedelta(days=1)):
        assert days.count(wanted) == 1, (wanted, runs)


@needs_analyze
def test_the_calendar_check_sees_the_missing_hour():
    """The check above can fail: 02:30 local, the old schedule, has no run on the spring day."""
    first = DST_DAYS_2027[0] - timedelta(days=1)
    since = datetime(first.year, first.month, first.day, tzinfo=PARIS) - timedelta(seconds=1)
    days = [run.astimezone(PARIS).date()
            for run in calendar_elapses("*-*-* 02:30:00", since, 3)]
    assert DST_DAYS_2027[0] not in days


CONFIG = "/etc/armoire/armoire.toml"
ARMOIRE = "/opt/armoire/venv/bin/armoire"


def armoire_condition(unit: dict[str, list[tuple[str, str]]]) -> str:
    """The unit's ``armoire has-database`` condition (after the check that it can run)."""
    (condition,) = [c for c in values(unit, "Service", "ExecCondition")
                    if c.startswith(ARMOIRE)]
    return condition


def run_exec(line: str, config: Path) -> int:
    """A unit's ``armoire`` command line, run in-process on ``config`` instead of
    /etc/armoire/armoire.toml: what systemd would run, arguments and all."""
    import shlex

    from controller.cli import main

    argv = shlex.split(line)
    assert argv[0] == ARMOIRE and CONFIG in argv, line
    return main([str(config) if word == CONFIG else word for word in argv[1:]])


@pytest.mark.parametrize("name", ["armoire-verify.service", "armoire-backup.service"])
def test_verify_and_backup_units_follow_the_configured_database(tmp_path, capsys, name):
    """The units skipped (ConditionPathExists=/var/lib/armoire/armoire.db) whenever
    ``[database] path`` named another file: no verification at boot, no backups, no error.
    Their condition and their command now both read the path from the configuration: a
    cabinet whose database is elsewhere is verified and backed up, one with no database
    yet (first boot) skips, and a configuration that cannot say fails the unit visibly
    (exit 255: ExecCondition= reads 1-254 as "skip")."""
    from controller.store import Store

    unit = parse_unit(DEPLOY / name)
    assert not [v for k, v in unit["Unit"] if k.startswith("Condition")]
    condition = armoire_condition(unit)
    (start,) = values(unit, "Service", "ExecStart")
    db = tmp_path / "data" / "ward-3.db"
    config = tmp_path / "armoire.toml"
    config.write_text(f'[database]\npath = "{db}"\n[backup]\ndir = "{tmp_path / "bk"}"\n'
                      "keep_days = 3\n", encoding="utf-8")

    assert run_exec(condition, config) == 1  # first boot: skipped, not failed
    assert not db.exists()
    db.parent.mkdir()
    Store(db).close()
    assert run_exec(condition, config) == 0
    capsys.readouterr()
    assert run_exec(start, config) == 0
    out = capsys.readouterr().out
    assert ("journal OK" in out) if "verify" in start else (str(tmp_path / "bk") in out), out

    for bad in ("[database]\npath = 5\n", "[cabinet]\n", '[database]\npath = "rel.db"\n'):
        config.write_text(bad, encoding="utf-8")
        assert run_exec(condition, config) == 255, bad
        assert "armoire: [" in capsys.readouterr().err


@pytest.mark.parametrize(("result", "written"), [("success", True), ("exit-code", True),
                                                 ("exec-condition", False)])
def test_verify_status_line_is_left_alone_when_the_unit_is_skipped(tmp_path, result, written):
    """ExecStopPost= also runs after an ExecCondition= that skipped the unit (no database
    yet): that is no verification, and must not overwrite the last one's status line."""
    unit = parse_unit(DEPLOY / "armoire-verify.service")
    (post,) = values(unit, "Service", "ExecStopPost")
    status = tmp_path / "journal-verify.status"
    status.write_text("before\n")
    match = re.fullmatch(r"/bin/sh -c '(.*)'", post)
    assert match, post
    script = (match.group(1).replace("$$", "$").replace("%%", "%")
              .replace("/var/lib/armoire/journal-verify.status", str(status)))
    env = {**os.environ, "SERVICE_RESULT": result, "EXIT_CODE": "exited", "EXIT_STATUS": "1"}
    subprocess.run(["/bin/sh", "-c", script], env=env, check=True, timeout=30)
    text = status.read_text()
    assert (f"result={result} " in text) if written else (text == "before\n"), text


def test_journal_verify_needs_a_database_or_a_configuration(capsys):
    from controller.cli import main

    assert main(["journal", "verify"]) == 2
    assert "--db FILE or --config FILE" in capsys.readouterr().err


def test_a_database_that_cannot_be_looked_at_fails_the_units_not_skips_them(tmp_path, capsys):
    """ExecCondition= reads exit 1 as "skip": a look at the database that failed (a path
    the system refuses, an unreadable folder) ended in a traceback, exit 1, and the boot
    verification and nightly backups were skipped without a word. It is exit 255 now, the
    unit failed and visible, with the reason on one coded line."""
    unit = parse_unit(DEPLOY / "armoire-backup.service")
    condition = armoire_condition(unit)
    config = tmp_path / "armoire.toml"
    too_long = tmp_path / ("x" * 300) / "armoire.db"  # ENAMETOOLONG, even for root
    config.write_text(f'[database]\npath = "{too_long}"\n', encoding="utf-8")
    assert run_exec(condition, config) == 255
    err = capsys.readouterr().err
    assert err.startswith("armoire: [") and "Traceback" not in err, err


def test_an_unexpected_failure_of_the_condition_fails_the_units(tmp_path, capsys, monkeypatch):
    """Whatever goes wrong in ``has-database`` (a bug, a library missing from the virtualenv
    once it has started), the answer is 255, never the traceback's exit 1 that systemd
    takes for "no database yet, skip": no boot verification and no backups, unseen."""
    def broken(path: Path) -> Path:
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr("controller.backup_cli.configured_database", broken)
    unit = parse_unit(DEPLOY / "armoire-verify.service")
    condition = armoire_condition(unit)
    assert run_exec(condition, tmp_path / "armoire.toml") == 255
    err = capsys.readouterr().err
    assert err.startswith("armoire: [") and "something unforeseen" in err, err


@pytest.mark.parametrize("name", ["armoire-verify.service", "armoire-backup.service"])
@pytest.mark.parametrize("binary, status", [
    ("missing", 255),        # no virtualenv at all: systemd's exec failure was a silent skip
    ("no-interpreter", 255),  # the venv's Python gone: the same exec failure
    ("not-executable", 255),
    ("sound", 0),
])
def test_a_missing_armoire_fails_the_units_instead_of_skipping_them(tmp_path, name, binary,
                                                                    status):
    """ExecCondition= reads every exit from 1 to 254 as "skip": when /opt/armoire/venv/bin/
    armoire cannot be run (no virtualenv, its Python gone), systemd's own exec failure
    (203/EXEC) skipped the boot verification and the nightly backup without a word. A
    first condition, run by /bin/sh without Python, exits 255 then (the unit fails,
    visibly, with a coded line in its log), before the has-database condition runs."""
    unit = parse_unit(DEPLOY / name)
    conditions = values(unit, "Service", "ExecCondition")
    assert len(conditions) == 2 and conditions[1] == armoire_condition(unit)
    match = re.fullmatch(r"/bin/sh -c '(.*)'", conditions[0])
    assert match, conditions[0]
    armoire = tmp_path / "venv" / "bin" / "armoire"
    armoire.parent.mkdir(parents=True)
    python = tmp_path / "venv" / "bin" / "python3"
    if binary != "missing":
        armoire.write_text(f"#!{python}\nimport sys\n")
        armoire.chmod(0o644 if binary == "not-executable" else 0o755)
    if binary != "no-interpreter":
        python.symlink_to("/bin/sh")
    assert "%" not in match.group(1)  # no systemd specifier to expand
    script = match.group(1).replace("$$", "$").replace(ARMOIRE, str(armoire))
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == status, done.stderr
    if status:
        assert f"[ARMOIRE_MISSING] {armoire}" in done.stderr, done.stderr
        assert "réinstallez" in done.stderr
    else:
        assert done.stderr == ""
