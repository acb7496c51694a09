"""deploy/install.sh: lint, dry run (prints everything, changes nothing), real run into a fake
root, idempotence; and the files it installs (kiosk script, udev rules, example config)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
INSTALL = DEPLOY / "install.sh"
SCRIPTS = [INSTALL, DEPLOY / "kiosk" / "armoire-kiosk.sh", DEPLOY / "ci-system-deps.sh"]
SHELLCHECK = shutil.which("shellcheck")


def install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "ARMOIRE_PREFIX"}
    full_env.update(env or {})
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True,
                          timeout=60, env=full_env)


def tree(root: Path) -> dict[str, bytes | str]:
    """Every path under root with its content (files) or link target (symlinks)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
        else:
            out[rel] = "dir"
    return out


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed (make system-deps)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script):
    assert SHELLCHECK is not None
    result = subprocess.run([SHELLCHECK, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_dry_run_into_prefix_prints_every_action_and_changes_nothing(tmp_path):
    (tmp_path / "boot" / "firmware").mkdir(parents=True)
    config_txt = tmp_path / "boot" / "firmware" / "config.txt"
    config_txt.write_text("[all]\ndtparam=audio=on\n")
    before = tree(tmp_path)

    result = install("--dry-run", "--prefix", str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert tree(tmp_path) == before
    out = result.stdout
    assert "dry run" in out
    for expected in [
        f"+ install -d -m 0750 {tmp_path}/var/lib/armoire",
        f"+ python3 -m venv --system-site-packages {tmp_path}/opt/armoire/venv",
        f"{tmp_path}/etc/armoire/armoire.toml",
        f"{tmp_path}/etc/systemd/system/armoire.service",
        f"{tmp_path}/etc/systemd/system/armoire-verify.service",
        f"{tmp_path}/etc/systemd/system/armoire-backup.timer",
        f"{tmp_path}/etc/systemd/system.conf.d/armoire-watchdog.conf",
        f"{tmp_path}/etc/udev/rules.d/99-armoire.rules",
        f"{tmp_path}/usr/local/lib/armoire/armoire-kiosk",
        f"{tmp_path}/etc/xdg/autostart/armoire-kiosk.desktop",
        "ARMOIRE_BLANK_SECONDS=0",
        "dtparam=watchdog=on",
        f"+ systemctl --root={tmp_path} --quiet enable armoire-verify.service "
        "armoire.service armoire-backup.timer",
    ]:
        assert expected in out, expected


def test_dry_run_on_the_real_root_needs_no_root_and_changes_nothing():
    watched = [Path("/etc/armoire"), Path("/opt/armoire"), Path("/var/lib/armoire"),
               Path("/etc/systemd/system/armoire.service")]
    if any(p.exists() for p in watched):
        pytest.skip("this machine has an Armoire installation")
    passwd = Path("/etc/passwd").read_bytes()

    result = install("--dry-run")

    assert result.returncode == 0, result.stderr
    assert not any(p.exists() for p in watched)
    assert Path("/etc/passwd").read_bytes() == passwd
    out = result.stdout
    assert "+ apt-get install" in out or "+ env DEBIAN_FRONTEND=noninteractive apt-get" in out
    assert re.search(r"^\+ useradd --system .* armoire$", out, re.M)
    assert "+ chown armoire:armoire /var/lib/armoire" in out
    assert "+ systemctl enable armoire-verify.service armoire.service armoire-backup.timer" in out
    assert "+ udevadm control --reload" in out


def test_real_install_into_fake_root_then_again(tmp_path):
    (tmp_path / "boot" / "firmware").mkdir(parents=True)
    config_txt = tmp_path / "boot" / "firmware" / "config.txt"
    config_txt.write_text("[cm4]\notg_mode=1\n")

    first = install("--no-venv", env={"ARMOIRE_PREFIX": str(tmp_path)})
    assert first.returncode == 0, first.stderr

    etc = tmp_path / "etc"
    for unit in ["armoire.service", "armoire-verify.service", "armoire-backup.service",
                 "armoire-backup.timer"]:
        assert (etc / "systemd/system" / unit).read_bytes() == (DEPLOY / unit).read_bytes()
    assert (etc / "systemd/system/multi-user.target.wants/armoire.service").is_symlink()
    assert (etc / "systemd/system/multi-user.target.wants/armoire-verify.service").is_symlink()
    assert (etc / "systemd/system/timers.target.wants/armoire-backup.timer").is_symlink()
    assert (etc / "systemd/system.conf.d/armoire-watchdog.conf").is_file()
    config = etc / "armoire/armoire.toml"
    assert config.read_bytes() == (DEPLOY / "armoire.example.toml").read_bytes()
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    assert (etc / "udev/rules.d/99-armoire.rules").is_file()
    kiosk = tmp_path / "usr/local/lib/armoire/armoire-kiosk"
    assert os.access(kiosk, os.X_OK)
    assert "ARMOIRE_BLANK_SECONDS=0" in (etc / "armoire/kiosk.env").read_text()
    assert (tmp_path / "var/lib/armoire/backups").is_dir()
    # The watchdog line lands under [all], not inside the [cm4] filter.
    assert config_txt.read_text().endswith("[cm4]\notg_mode=1\n\n[all]\ndtparam=watchdog=on\n")

    # The site edits its configuration (blanking after 5 min) and its udev serials...
    config.write_text(config.read_text().replace("blank_after_seconds = 0",
                                                 "blank_after_seconds = 300"))
    rules = etc / "udev/rules.d/99-armoire.rules"
    rules.write_text(rules.read_text().replace("REPLACE-ME-DRAWER-A", "E6614103E7452D2F"))
    before = tree(tmp_path)

    # ...and installs again: site files kept, kiosk settings follow the configuration,
    # nothing else changes.
    second = install("--no-venv", "--prefix", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert "armoire.toml kept" in second.stdout
    after = tree(tmp_path)
    changed = {k for k in after if before.get(k) != after[k]} | (before.keys() - after.keys())
    assert changed == {"etc/armoire/kiosk.env"}
    assert "ARMOIRE_BLANK_SECONDS=300" in (etc / "armoire/kiosk.env").read_text()
    assert "E6614103E7452D2F" in rules.read_text()
    assert config_txt.read_text().count("dtparam=watchdog=on") == 1


def test_a_first_install_says_how_to_create_the_first_admin_and_an_upgrade_does_not(tmp_path):
    """A cabinet installed without a seed has no account: the installer's closing steps are
    what the technician follows next, so they name the command that creates the first admin
    (as it parses with the real parser, run as armoire) and the checklist by its title.
    Starting the controller first would refuse it (DB_IN_USE)."""
    from controller.cli import build_parser

    first = install("--no-venv", "--prefix", str(tmp_path))
    assert first.returncode == 0, first.stderr
    steps = first.stdout.split("Next", 1)[1]
    title = re.search(r'docs/deploy\.md, "([^"]+)"', steps)
    assert title and f"## {title[1]}\n" in (ROOT / "docs/deploy.md").read_text(), steps
    command = re.search(r"sudo -u armoire /opt/armoire/venv/bin/armoire (admin [^\n]*)", steps)
    assert command, steps
    args = build_parser().parse_args(shlex.split(command[1]))
    assert str(args.config) == "/etc/armoire/armoire.toml"
    assert steps.index("armoire admin") < steps.index("systemctl start armoire")
    assert "timezone" in steps

    again = install("--no-venv", "--prefix", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "armoire admin" not in again.stdout
    assert "cabinet ready" in again.stdout


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_install_sets_the_modes_of_directories_that_already_exist(tmp_path):
    """A data partition mounted on /var/lib/armoire (mkfs makes its root 0755), or a folder
    someone made by hand, must still end up closed: it holds the database and the backups."""
    data = tmp_path / "var/lib/armoire"
    (data / "backups").mkdir(parents=True)
    data.chmod(0o755)
    (data / "backups").chmod(0o777)

    result = install("--no-venv", "--prefix", str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert mode(data) == "0o750"
    assert mode(data / "backups") == "0o750"


def test_the_kiosk_settings_are_readable_by_the_desktop_user(tmp_path):
    """The kiosk runs as the desktop user, not as armoire: it must reach /etc/armoire/kiosk.env
    (else it silently falls back to port 8080 and never blanks), while the cabinet's own
    configuration stays closed to other users."""
    result = install("--no-venv", "--prefix", str(tmp_path))
    assert result.returncode == 0, result.stderr
    etc = tmp_path / "etc/armoire"
    assert etc.stat().st_mode & 0o001, f"others cannot enter /etc/armoire ({mode(etc)})"
    assert (etc / "kiosk.env").stat().st_mode & 0o004
    assert (etc / "armoire.toml").stat().st_mode & 0o007 == 0


def test_bad_kiosk_setting_is_refused(tmp_path):
    config = tmp_path / "etc/armoire/armoire.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[kiosk]\nurl = "http://example.org/"\n')
    before = tree(tmp_path)
    result = install("--no-venv", "--prefix", str(tmp_path))
    assert result.returncode != 0
    assert "[kiosk] url" in result.stderr
    assert tree(tmp_path) == before

    config.write_text("[kiosk\n")
    result = install("--no-venv", "--prefix", str(tmp_path))
    assert result.returncode != 0
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr
    assert tree(tmp_path) == before | {"etc/armoire/armoire.toml": b"[kiosk\n"}


def test_the_kiosk_opens_the_port_the_controller_serves(tmp_path, monkeypatch):
    """The controller's port was written in its unit (--port 8080) and the kiosk's in
    [kiosk] url: change one and the touchscreen showed a dead page. Both now come from
    [server] port: the unit passes no --port, ``armoire run`` serves the configured one,
    and the installer points the kiosk at it."""
    from controller.cli import main

    config = tmp_path / "etc/armoire/armoire.toml"
    config.parent.mkdir(parents=True)
    example = (DEPLOY / "armoire.example.toml").read_text()
    assert re.search(r"^\[server\]\n(#.*\n)*port = 8080$", example, re.M)
    config.write_text(re.sub(r"^port = 8080$", "port = 8443", example, flags=re.M))
    result = install("--no-venv", "--prefix", str(tmp_path))
    assert result.returncode == 0, result.stderr
    kiosk_env = (tmp_path / "etc/armoire/kiosk.env").read_text()
    assert "ARMOIRE_KIOSK_URL='http://127.0.0.1:8443/'" in kiosk_env, kiosk_env

    unit = (DEPLOY / "armoire.service").read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    assert "--port" not in exec_start
    served: list[tuple[str, int]] = []

    class Stop(Exception):
        pass

    def build_server(runtime, host, port):
        served.append((host, port))
        raise Stop

    monkeypatch.setattr("controller.web.server.build_server", build_server)
    argv = exec_start.split()[1:]
    argv = [str(config) if w == "/etc/armoire/armoire.toml" else w for w in argv]
    with pytest.raises(Stop):
        main([*argv, "--sim", "--db", str(tmp_path / "c.db")])
    assert served == [("127.0.0.1", 8443)]


@pytest.mark.parametrize("server", ["", "port = 8443"])
def test_a_kiosk_url_on_another_port_than_the_controller_is_refused(tmp_path, capsys, server):
    """A [kiosk] url left at 8080 after [server] port moved (or the reverse) is the dead
    page again: refused by the installer before it changes anything, and by the controller
    at start (BAD_CONFIG, naming both keys), never served to a blank screen."""
    from controller.cli import main

    url = "http://127.0.0.1:9000/" if not server else "http://127.0.0.1:8080/"
    config = tmp_path / "etc/armoire/armoire.toml"
    config.parent.mkdir(parents=True)
    example = (DEPLOY / "armoire.example.toml").read_text()
    config.write_text(re.sub(r"^port = 8080$", server, example, flags=re.M)
                      .replace("\n[kiosk]\n", f'\n[kiosk]\nurl = "{url}"\n'))
    before = tree(tmp_path)
    result = install("--no-venv", "--prefix", str(tmp_path))
    assert result.returncode != 0
    assert "[kiosk] url" in result.stderr and "[server] port" in result.stderr, result.stderr
    assert tree(tmp_path) == before
    assert main(["run", "--sim", "--config", str(config), "--db", str(tmp_path / "c.db")]) == 2
    err = capsys.readouterr().err
    assert "[BAD_CONFIG]" in err and "kiosk.url" in err and "server.port" in err, err
    assert not (tmp_path / "c.db").exists()


@pytest.mark.parametrize(("url", "warned"), [("http://127.0.0.1:8443/", False),
                                             ("http://127.0.0.1:8080/", True)])
def test_the_controller_says_when_the_kiosk_was_not_pointed_at_its_port(tmp_path, caplog,
                                                                        monkeypatch, url,
                                                                        warned):
    """[server] port changed without rerunning the installer: the kiosk still opens the
    old port. The controller cannot fix the kiosk (its file is root's), but its log says
    what to do instead of leaving IT to find out why the screen is dead."""
    import logging

    from controller import run_cli

    env = tmp_path / "kiosk.env"
    env.write_text(f"# Written by deploy/install.sh\nARMOIRE_KIOSK_URL='{url}'\n"
                   "ARMOIRE_BLANK_SECONDS=0\n")
    monkeypatch.setattr(run_cli, "KIOSK_ENV", env)
    with caplog.at_level(logging.WARNING):
        run_cli.check_kiosk(8443)
    said = [r.getMessage() for r in caplog.records if "kiosk opens" in r.getMessage()]
    assert bool(said) == warned, said
    if warned:
        assert "install.sh" in said[0] and url in said[0]


def test_unknown_option_is_refused():
    result = install("--frobnicate")
    assert result.returncode == 2
    assert "unknown option" in result.stderr


# --- what it installs --------------------------------------------------------------------------

def test_kiosk_flags_keep_chromium_offline_and_quiet():
    script = (DEPLOY / "kiosk" / "armoire-kiosk.sh").read_text()
    for flag in ["--kiosk", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--noerrdialogs",
                 "--disable-session-crashed-bubble", "--host-resolver-rules="]:
        assert flag in script
    assert "while true" in script  # restarted when it exits
    desktop = (DEPLOY / "kiosk" / "armoire-kiosk.desktop").read_text()
    assert "Exec=/usr/local/lib/armoire/armoire-kiosk" in desktop


def test_udev_rules_name_the_drawers_and_the_scanner():
    lines = [line for line in (DEPLOY / "99-armoire.rules").read_text().splitlines()
             if line and not line.startswith("#")]
    key = re.compile(r'^\s*[A-Z]+(\{[^}]+\})?(==|!=|\+=|:=|=)"[^"]*"\s*$')
    for line in lines:
        for part in line.split(","):
            assert key.match(part), f"malformed udev key: {part!r} in {line!r}"
    text = "\n".join(lines)
    assert 'SYMLINK+="armoire-drawer-A"' in text and 'SYMLINK+="armoire-drawer-B"' in text
    assert 'SYMLINK+="armoire-scanner"' in text
    assert text.count('ATTRS{serial}==') >= 2


def test_example_config_fits_the_pi_gpio_header():
    config = tomllib.loads((DEPLOY / "armoire.example.toml").read_text())
    drawers = config["cabinet"]["drawers"]
    hardware = config["hardware"]
    assert hardware["backend"] == "gpio"
    assert {d["type"] for d in drawers} <= {"matrix", "cubie", "carousel"}
    pins: list[int] = [hardware["buzzer"]]
    for drawer in drawers:
        wiring = hardware["drawers"][drawer["id"]]
        for name in ["motor_forward", "motor_backward", "switch_closed", "switch_open",
                     "close_button", "indicator_led"]:
            pins.append(wiring[name])
        if drawer["type"] == "cubie":
            magnets = wiring["magnets"]
            assert len(magnets) == drawer["rows"]
            assert all(len(row) == drawer["cols"] for row in magnets)
            pins += [pin for row in magnets for pin in row]
        # Outputs on pins pulled down at boot, so nothing moves before the controller runs.
        outputs = [wiring["motor_forward"], wiring["motor_backward"],
                   *[p for row in wiring.get("magnets", []) for p in row]]
        assert all(p >= 9 and p not in (14, 15) for p in outputs)
    assert len(pins) == len(set(pins)), "a GPIO is used twice"
    # GPIO0/1 belong to the HAT EEPROM; 2/3 stay free for the I2C RTC.
    assert all(2 <= p <= 27 and p not in (2, 3) for p in pins)
    assert len(pins) == 22
    timeouts = hardware["timeouts"]
    assert timeouts["max_travel_seconds"] > 0 and timeouts["magnet_pulse_ms"] > 0
    assert config["alarms"]["low_stock_units"] == 10
    assert config["database"]["path"] == "/var/lib/armoire/armoire.db"
    assert config["backup"]["keep_days"] >= 1
    assert config["session"]["inactivity_seconds"] > 0
    assert config["alarms"]["expiry_window_days"] > 0


def test_example_config_documents_exactly_the_keys_the_code_reads():
    """Every key in the example (its commented variants included) is read by the code that
    takes it (controller/config.py, `armoire backup`, install.sh for [kiosk]), and every key
    the controller's loader reads is in the example: a site must not set a key that does
    nothing, nor miss one that exists."""
    example = (DEPLOY / "armoire.example.toml").read_text()
    documented = set(re.findall(r"^#?\s*([a-z_0-9]+)\s*=\s*\S", example, re.M))
    tables = {part for name in re.findall(r"^#?\s*\[+([a-z_.A-Z0-9]+)\]", example, re.M)
              for part in name.split(".")}
    loader = (ROOT / "controller" / "config.py").read_text()
    readers = loader + (ROOT / "controller" / "backup_cli.py").read_text() + INSTALL.read_text()
    unread = sorted(k for k in documented if f'"{k}"' not in readers)
    assert unread == [], f"keys in the example that no code reads: {unread}"
    read = set(re.findall(r'_get\(\w+, "([a-z_0-9]+)"', loader))
    read |= set(re.findall(r'get\("([a-z_0-9]+)"', loader))
    read |= {"motor_forward", "motor_backward", "switch_closed", "switch_open", "close_button"}
    undocumented = sorted(k for k in read if k not in documented | tables)
    assert undocumented == [], f"keys the loader reads that the example never shows: " \
                               f"{undocumented}"


def test_kiosk_restarts_chromium_and_runs_once_per_session(tmp_path):
    """Fake chromium (exits at once, logging its arguments) and curl (healthy) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    starts = tmp_path / "starts"
    (bin_dir / "chromium").write_text(f'#!/bin/sh\necho "$*" >> {starts}\nexit 1\n')
    (bin_dir / "curl").write_text("#!/bin/sh\nexit 0\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env_file = tmp_path / "kiosk.env"
    env_file.write_text("ARMOIRE_KIOSK_URL='http://127.0.0.1:8099/'\nARMOIRE_BLANK_SECONDS=0\n")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path),
           "ARMOIRE_KIOSK_ENV": str(env_file), "ARMOIRE_KIOSK_RESTART_DELAY": "0.1"}
    script = str(DEPLOY / "kiosk" / "armoire-kiosk.sh")

    first = subprocess.Popen(["bash", script], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = 50
        while deadline and (not starts.exists() or len(starts.read_text().splitlines()) < 3):
            subprocess.run(["sleep", "0.1"])
            deadline -= 1
        # A second kiosk in the same session steps aside.
        second = subprocess.run(["bash", script], env=env, capture_output=True, text=True,
                                timeout=10)
    finally:
        first.kill()
        first.wait()
    launches = starts.read_text().splitlines()
    assert len(launches) >= 3, "chromium was not restarted after exiting"
    assert "--kiosk http://127.0.0.1:8099/" in launches[0]
    assert "--disable-background-networking" in launches[0]
    assert second.returncode == 0 and "already running" in second.stderr


@pytest.mark.parametrize("blank, wanted", [(0, False), (60, True)])
def test_a_blanking_kiosk_gets_its_blanking_tools_installed(tmp_path, blank, wanted):
    """swayidle and wlopm do the blanking on Wayland; the installer asks for them exactly
    when the configuration asks for blanking, not on every cabinet."""
    (tmp_path / "boot" / "firmware").mkdir(parents=True)
    (tmp_path / "boot" / "firmware" / "config.txt").write_text("[all]\n")
    config = tmp_path / "etc" / "armoire" / "armoire.toml"
    config.parent.mkdir(parents=True)
    example = (DEPLOY / "armoire.example.toml").read_text()
    config.write_text(example.replace("blank_after_seconds = 0", f"blank_after_seconds = {blank}"))

    result = install("--dry-run", "--prefix", str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert f"ARMOIRE_BLANK_SECONDS={blank}" in result.stdout
    packages = re.search(r"would install: (.*)\)", result.stdout)
    assert packages is not None, result.stdout
    assert ("swayidle" in packages[1].split() and "wlopm" in packages[1].split()) == wanted
    assert "python3-lgpio" in packages[1].split()


@pytest.mark.parametrize("tools", [True, False])
def test_kiosk_blanks_with_swayidle_or_says_why_it_cannot(tmp_path, tools):
    """On Wayland, blanking asked: swayidle runs with the configured timeout; without the
    tools the kiosk says so in the session's log instead of leaving the screen lit silently.
    PATH holds only what the script needs, so the host's own packages cannot leak in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("flock", "rm", "sleep"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    calls = tmp_path / "calls"
    # Chromium stops the script once it is reached: everything before it has run.
    (bin_dir / "chromium").write_text('#!/bin/bash\nkill -TERM "$PPID"\n')
    (bin_dir / "curl").write_text("#!/bin/bash\nexit 0\n")
    if tools:
        (bin_dir / "swayidle").write_text(f'#!/bin/bash\necho "swayidle $*" >> {calls}\n')
        (bin_dir / "wlopm").write_text("#!/bin/bash\nexit 0\n")
    for stub in bin_dir.iterdir():
        if not stub.is_symlink():
            stub.chmod(0o755)
    env_file = tmp_path / "kiosk.env"
    env_file.write_text("ARMOIRE_KIOSK_URL='http://127.0.0.1:8099/'\nARMOIRE_BLANK_SECONDS=45\n")
    env = {"PATH": str(bin_dir), "XDG_RUNTIME_DIR": str(tmp_path), "WAYLAND_DISPLAY": "w-0",
           "ARMOIRE_KIOSK_ENV": str(env_file)}

    result = subprocess.run([shutil.which("bash") or "/bin/bash",
                             str(DEPLOY / "kiosk" / "armoire-kiosk.sh")],
                            env=env, capture_output=True, text=True, timeout=20)

    if tools:
        for _ in range(50):  # swayidle was started in the background
            if calls.exists():
                break
            subprocess.run(["sleep", "0.1"])
        assert calls.read_text().split("\n")[0].startswith("swayidle -w timeout 45 ")
        assert "missing" not in result.stderr
    else:
        assert not calls.exists()
        assert "blanking after 45s asked, but swayidle or wlopm is missing" in result.stderr


def _installed_venv(root: Path) -> None:
    """A stand-in for /opt/armoire/venv of an earlier install: this test run's Python."""
    import sys

    bin_dir = root / "opt/armoire/venv/bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)


def test_an_upgrade_refused_configuration_stops_the_installer_before_any_change(tmp_path):
    """An upgrade keeps the site's configuration and restarts the controller on the new
    code. A configuration the new code refuses (a key it no longer reads, a value it now
    bounds) took the cabinet down at that restart, with nothing in the installer's output:
    it is now checked with the new code first, and refused before anything changes."""
    first = install("--no-venv", "--prefix", str(tmp_path))
    assert first.returncode == 0, first.stderr
    config = tmp_path / "etc/armoire/armoire.toml"
    config.write_text(config.read_text().replace('name = "Cabinet 1"',
                                                 'name = "Cabinet 1"\ncolour = "blue"'))
    _installed_venv(tmp_path)
    unit = tmp_path / "etc/systemd/system/armoire.service"
    unit.write_text("# the previous version's unit\n")
    before = tree(tmp_path)

    again = install("--no-venv", "--prefix", str(tmp_path))

    assert again.returncode != 0
    assert "[BAD_CONFIG] cabinet.colour" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    assert tree(tmp_path) == before

    # Fixed, it goes through, and the dry run says the configuration was checked.
    config.write_text(config.read_text().replace('colour = "blue"\n', ""))
    dry = install("--dry-run", "--no-venv", "--prefix", str(tmp_path))
    assert dry.returncode == 0, dry.stderr
    assert "configuration accepted by this version" in dry.stdout


def test_an_upgrade_that_changes_the_board_firmware_says_so_before_any_change(tmp_path):
    """With drawer boards, the controller refuses a board on another firmware version: an
    upgrade that changes it leaves the cabinet down until every board is flashed, and the
    installer says so, naming both versions and the procedure. Same version, or a cabinet
    wired to the Pi: not a word."""
    from firmware.protocol import FIRMWARE_VERSION

    first = install("--no-venv", "--prefix", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "firmware" not in first.stderr   # the example is wired to the Pi (gpio)
    stamp = tmp_path / "opt/armoire/firmware-version"
    assert stamp.read_text().strip() == FIRMWARE_VERSION
    config = tmp_path / "etc/armoire/armoire.toml"
    config.write_text(config.read_text().replace('backend = "gpio"', 'backend = "serial"', 1))
    same = install("--dry-run", "--no-venv", "--prefix", str(tmp_path))
    assert same.returncode == 0 and "FIRMWARE_MISMATCH" not in same.stderr, same.stderr
    stamp.write_text("0.4.0\n")
    upgrade = install("--dry-run", "--no-venv", "--prefix", str(tmp_path))
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"firmware is {FIRMWARE_VERSION} (installed before: 0.4.0)" in upgrade.stderr
    assert "FIRMWARE_MISMATCH" in upgrade.stderr and "make firmware PORT=" in upgrade.stderr


def _fake_tools(bin_dir: Path, present: list[str], log: Path) -> None:
    """A PATH of nothing but stand-ins: ``present`` commands exist, ``id -u`` says root,
    apt-get logs what it is asked for, and python3 has no venv module (Debian without
    python3-venv)."""
    bin_dir.mkdir()
    scripts = {name: "#!/bin/sh\nexit 0\n" for name in present}
    scripts["id"] = "#!/bin/sh\necho 0\n"
    scripts["apt-get"] = f'#!/bin/sh\necho "$*" >> {log}\n'
    scripts["python3"] = "#!/bin/sh\nexit 1\n"
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)


def test_system_deps_install_what_make_and_the_tests_need_on_a_fresh_debian(tmp_path):
    """README: ``make run`` and ``make test`` are the whole set-up on a fresh Debian. There,
    python3 has no venv module (python3-venv), so the very first step of both failed; and
    without the ``systemd`` package (a container) the units' systemd-analyze tests were
    skipped while ``make test`` passed, so CI did not check the units it claims to."""
    log = tmp_path / "apt.log"
    _fake_tools(tmp_path / "bin", ["chromium", "shellcheck"], log)
    env = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path)}
    script = str(DEPLOY / "ci-system-deps.sh")

    result = subprocess.run(["/bin/bash", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    installed = log.read_text().split("\n")[-2].split()
    assert {"python3-venv", "systemd"} <= set(installed), installed
    assert "chromium" not in installed and "shellcheck" not in installed

    # What `make run` asks before it makes .venv: the venv module only.
    log.unlink()
    result = subprocess.run(["/bin/bash", script, "--venv"], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert log.read_text().split("\n")[-2].split()[-1] == "python3-venv"


def test_make_checks_for_the_venv_module_before_making_the_venv():
    dry = subprocess.run(["make", "-n", "-W", "pyproject.toml", ".venv/.installed"], cwd=ROOT,
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    deps = next(i for i, line in enumerate(lines) if "ci-system-deps.sh --venv" in line)
    venv = next(i for i, line in enumerate(lines) if "-m venv" in line)
    assert deps < venv


def test_a_kiosk_url_with_a_path_waits_for_the_controller_at_its_root(tmp_path):
    """The kiosk waited for ``<url>/healthz``: with a ``[kiosk] url`` naming a page (both
    the installer and the controller accept any page on the port), that is no route, so
    it waited for ever and the touchscreen stayed on the bare desktop. The health check is
    the controller's own, at the root of the port, whatever page the kiosk opens."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    starts = tmp_path / "starts"
    asked = tmp_path / "asked"
    (bin_dir / "chromium").write_text(f'#!/bin/sh\necho "$*" >> {starts}\nexit 1\n')
    # A controller that answers /healthz at its root only, as controller/web does.
    (bin_dir / "curl").write_text(
        f'#!/bin/sh\nfor a; do last=$a; done\necho "$last" >> {asked}\n'
        '[ "$last" = http://127.0.0.1:8099/healthz ]\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env_file = tmp_path / "kiosk.env"
    env_file.write_text("ARMOIRE_KIOSK_URL='http://127.0.0.1:8099/pharmacy/stock'\n"
                        "ARMOIRE_BLANK_SECONDS=0\n")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path),
           "ARMOIRE_KIOSK_ENV": str(env_file), "ARMOIRE_KIOSK_RESTART_DELAY": "0.1"}
    kiosk = subprocess.Popen(["bash", str(DEPLOY / "kiosk" / "armoire-kiosk.sh")], env=env,
                             stderr=subprocess.DEVNULL)
    try:
        polls = 50
        while polls and not starts.exists():
            subprocess.run(["sleep", "0.1"])
            polls -= 1
    finally:
        kiosk.kill()
        kiosk.wait()
    assert starts.exists(), f"Chromium never started; health asked at {asked.read_text()}"
    assert "--kiosk http://127.0.0.1:8099/pharmacy/stock" in starts.read_text()


def _with_lasa(config: Path, name: str) -> None:
    config.write_text(config.read_text().replace('# [layout]\n# lasa = "lasa.csv"',
                                                 f'[layout]\nlasa = "{name}"'))


def test_the_lasa_list_and_the_configuration_are_made_readable_by_the_service(tmp_path):
    """The controller (user armoire) reads the configuration and its LASA list at start;
    the installer checked them as root, who reads anything. A list copied in under a
    strict umask (0600, root's) passed that check, then the upgrade's restart stopped the
    cabinet (BAD_CONFIG, permission denied). Both site files are made 0640 root:armoire
    at every run, like the configuration when it is first written."""
    first = install("--no-venv", "--prefix", str(tmp_path))
    assert first.returncode == 0, first.stderr
    config = tmp_path / "etc/armoire/armoire.toml"
    _with_lasa(config, "lasa.csv")
    lasa = config.parent / "lasa.csv"
    lasa.write_text("Xatral,Zyloric\n")
    lasa.chmod(0o600)
    config.chmod(0o600)

    again = install("--no-venv", "--prefix", str(tmp_path))

    assert again.returncode == 0, again.stderr
    assert mode(lasa) == "0o640" and mode(config) == "0o640"
    assert "skip: chown root:armoire /etc/armoire/lasa.csv (fake root)" in again.stdout


@pytest.mark.parametrize("name, why", [
    ("/home/pi/lasa.csv", "ProtectHome"), ("/tmp/lasa.csv", "PrivateTmp"),
    ("missing.csv", "does not exist")])
def test_a_lasa_list_the_controller_would_not_find_stops_the_installer(tmp_path, name, why):
    """The controller's unit sees neither /home nor the real /tmp (ProtectHome=,
    PrivateTmp=), and a configured list that is missing stops it at start: the cabinet
    would be down after the upgrade's restart. Refused first, nothing changed."""
    first = install("--no-venv", "--prefix", str(tmp_path))
    assert first.returncode == 0, first.stderr
    config = tmp_path / "etc/armoire/armoire.toml"
    _with_lasa(config, name)
    if not name.endswith("missing.csv"):
        target = tmp_path / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("Xatral,Zyloric\n")
    before = tree(tmp_path)

    again = install("--no-venv", "--prefix", str(tmp_path))

    assert again.returncode != 0
    assert "[layout] lasa" in again.stderr and why in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    assert tree(tmp_path) == before


def test_an_upgrade_keeps_the_previous_versions_configuration_working(tmp_path, capsys):
    """The configuration of the version before [server], [database] badge_key and [layout]
    (its kiosk url written out on 8080, the port its unit passed): the new code accepts
    it, the kiosk stays on 8080, and the units find its database."""
    # The example less what today added: no [server] table, the kiosk's url given.
    old = re.sub(r"^\[server\]\n(#.*\n|port = .*\n)*\n", "",
                 (DEPLOY / "armoire.example.toml").read_text(), flags=re.M)
    old = re.sub(r"^# (\[layout\]|lasa = |badge_key = ).*\n", "", old, flags=re.M)
    old = old.replace('# url = "http://127.0.0.1:8080/"', 'url = "http://127.0.0.1:8080/"')
    assert not re.search(r"^(\[server\]|\[layout\]|# badge_key|# lasa)", old, re.M)
    assert 'url = "http://127.0.0.1:8080/"' in old
    config = tmp_path / "etc/armoire/armoire.toml"
    config.parent.mkdir(parents=True)
    config.write_text(old)
    _installed_venv(tmp_path)

    result = install("--no-venv", "--prefix", str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "configuration accepted by this version" in result.stdout
    assert config.read_text() == old
    assert ("ARMOIRE_KIOSK_URL='http://127.0.0.1:8080/'"
            in (tmp_path / "etc/armoire/kiosk.env").read_text())
    from controller.backup_cli import configured_database
    from controller.config import load

    loaded = load(config)
    assert (loaded.port, loaded.badge_key, loaded.lasa) == (8080, None, ())
    assert configured_database(config) == Path("/var/lib/armoire/armoire.db")


@pytest.mark.parametrize("table, key, value", [
    ("database", "badge_key", "/etc/armoire/badge.key"),
    ("database", "path", "/srv/armoire/armoire.db"),
    ("backup", "dir", "/media/usb/armoire")])
def test_a_file_the_units_may_not_write_is_named_by_the_installer(tmp_path, table, key,
                                                                  value):
    """The units write only below /var/lib/armoire (ReadWritePaths=) and wait only for its
    mount (RequiresMountsFor=). A badge key configured elsewhere could not be made at the
    first start (BADGE_KEY_UNREADABLE, read-only file system), a database elsewhere could
    not be opened, backups elsewhere failed every night: the installer says so, naming
    the key and the drop-in that allows it, and still installs (a site may have one)."""
    first = install("--no-venv", "--prefix", str(tmp_path))
    assert first.returncode == 0 and "ReadWritePaths" not in first.stderr, first.stderr
    config = tmp_path / "etc/armoire/armoire.toml"
    text = config.read_text()
    text = re.sub(rf"^\[{table}\]\n", f'[{table}]\n{key} = "{value}"\n', text, flags=re.M)
    text = re.sub(rf'^{key} = "/var/lib/armoire[^"]*"\n', "", text, flags=re.M)
    config.write_text(text)

    again = install("--no-venv", "--prefix", str(tmp_path))

    assert again.returncode == 0, again.stderr
    assert f"[{table}] {key} {value}" in again.stderr, again.stderr
    assert "ReadWritePaths=" in again.stderr and "RequiresMountsFor=" in again.stderr


@pytest.mark.parametrize("port", ["80", "1023"])
def test_a_port_the_service_may_not_listen_on_is_refused(tmp_path, port):
    """armoire.service has no capabilities (CapabilityBoundingSet= empty), so it cannot
    listen below 1024: a [server] port of 80 passed every check, then the controller
    failed to listen at each of its five starts, and the kiosk waited on a dead port.
    Refused by the installer, before any change, and by the controller (BAD_CONFIG)."""
    config = tmp_path / "etc/armoire/armoire.toml"
    config.parent.mkdir(parents=True)
    config.write_text(re.sub(r"^port = 8080$", f"port = {port}",
                             (DEPLOY / "armoire.example.toml").read_text(), flags=re.M))
    before = tree(tmp_path)
    result = install("--no-venv", "--prefix", str(tmp_path))
    assert result.returncode != 0
    assert "[server] port must be a whole number from 1024 to 65535" in result.stderr
    assert tree(tmp_path) == before


def _installed_armoire(root: Path, lacks: tuple[str, ...] = ()) -> None:
    """A stand-in for /opt/armoire/venv/bin/armoire of an earlier install: this checkout's
    command, less the (sub-)commands named in ``lacks``, as a version written before them
    would be (argparse then refuses them: ``invalid choice``, exit 2)."""
    import sys

    bin_dir = root / "opt/armoire/venv/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    armoire = bin_dir / "armoire"
    armoire.write_text(
        f"#!{sys.executable}\n"
        "import argparse, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "add_parser = argparse._SubParsersAction.add_parser\n"
        "def older(self, name, **kwargs):\n"
        f"    if name in {lacks!r}:\n"
        "        return argparse.ArgumentParser()  # registered nowhere\n"
        "    return add_parser(self, name, **kwargs)\n"
        "argparse._SubParsersAction.add_parser = older\n"
        "from controller.cli import main\n"
        "sys.exit(main())\n")
    armoire.chmod(0o755)


@pytest.mark.parametrize(("lacks", "named"), [
    (("has-database",), "armoire has-database --config"),
    (("verify",), "armoire journal verify --config"),
    (("outputs-off",), "armoire outputs-off --config")])
@pytest.mark.parametrize("dry", [False, True])
def test_no_venv_over_an_armoire_that_lacks_what_the_units_run_is_refused(tmp_path, lacks,
                                                                         named, dry):
    """``--no-venv`` installs this version's units and leaves the installed code as it is.
    Over code older than ``armoire has-database``, the verification and backup units'
    ExecCondition= failed to parse it (exit 2, read as "skip") and both were skipped at
    every boot and every night, in silence. The installer asks the armoire the units will
    run for each command and option they use, and refuses before any change."""
    first = install("--no-venv", "--prefix", str(tmp_path))
    assert first.returncode == 0, first.stderr
    _installed_armoire(tmp_path, lacks)
    unit = tmp_path / "etc/systemd/system/armoire-verify.service"
    unit.write_text("# the previous version's unit\n")
    before = tree(tmp_path)

    again = install(*(["--dry-run"] if dry else []), "--no-venv", "--prefix", str(tmp_path))

    assert again.returncode != 0
    assert named in again.stderr, again.stderr
    assert "/opt/armoire/venv/bin/armoire" in again.stderr
    assert "nothing was changed" in again.stderr and "without --no-venv" in again.stderr
    assert "Traceback" not in again.stderr
    assert tree(tmp_path) == before


def test_no_venv_over_an_armoire_that_has_every_command_goes_on(tmp_path):
    """The same check passes the code the units need, and says that it looked."""
    _installed_armoire(tmp_path)
    result = install("--no-venv", "--prefix", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "/opt/armoire/venv/bin/armoire runs every command the units use" in result.stdout
    assert (tmp_path / "etc/systemd/system/armoire-verify.service").is_file()


def test_no_venv_without_any_installed_armoire_says_the_units_cannot_run(tmp_path):
    """No code at all (a fake root, or a first install with --no-venv): nothing to ask, and
    every unit would fail at start (loudly: the controller's own unit too), so the files
    are installed, with a warning naming what is missing."""
    result = install("--no-venv", "--prefix", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "WARNING: no /opt/armoire/venv/bin/armoire" in result.stderr, result.stderr
