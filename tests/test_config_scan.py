"""Configuration validation names the field; scans are read as the box says."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from controller import config as configuration
from controller.errors import ConfigError, InputError
from controller.scan import gtin_check_ok, read

REPO = Path(__file__).resolve().parents[1]


def test_example_and_demo_configs_load():
    example = configuration.load(REPO / "deploy" / "armoire.example.toml")
    assert example.hardware.backend == "gpio"
    assert example.hardware.drawer("B").pins.magnets[(2, 2)] == 26
    assert example.hardware.timing.magnet_pulse_s == pytest.approx(0.3)
    demo = configuration.load(REPO / "sim" / "demo" / "cabinet.toml", sim=True)
    assert demo.seed is not None and demo.seed.is_file()


BASE = {"cabinet": {"drawers": [{"id": "A", "type": "matrix", "rows": 2, "cols": 2}]}}
PINS = {"motor_forward": 17, "motor_backward": 27, "switch_closed": 4, "switch_open": 5,
        "close_button": 6}


@pytest.mark.parametrize("raw, field", [
    ({}, "cabinet"),
    ({"cabinet": {"drawers": []}}, "cabinet.drawers"),
    ({"cabinet": {"drawers": [{"id": "A", "type": "safe", "rows": 2, "cols": 2}]}},
     "cabinet.drawers[0].type"),
    ({"cabinet": {"drawers": [{"id": "A", "rows": "2", "cols": 2}]}}, "cabinet.drawers[0].rows"),
    ({**BASE, "hardware": {"backend": "usb"}}, "hardware.backend"),
    ({**BASE, "hardware": {}}, "hardware.drawers.A"),
    ({**BASE, "hardware": {"drawers": {"A": {**PINS, "switch_open": 17}}}}, "hardware.drawers.A"),
    ({**BASE, "hardware": {"drawers": {"A": {**PINS, "close_button": 40}}}}, "hardware.drawers.A"),
    ({**BASE, "hardware": {"drawers": {"A": PINS}, "timeouts": {"magnet_pulse_ms": 1}}},
     "hardware.timeouts"),
    ({**BASE, "hardware": {"drawers": {"A": PINS}}, "session": {"inactivity_seconds": 1}},
     "session.inactivity_seconds"),
    # A touchscreen that never locks: nan passes any "below" test, inf any "at least".
    *(({**BASE, "hardware": {"drawers": {"A": PINS}}, "session": {"inactivity_seconds": v}},
       "session.inactivity_seconds") for v in (float("nan"), float("inf"), 901)),
    ({**BASE, "hardware": {"drawers": {"A": PINS}}, "security": {"argon2_memory_kib": 64}},
     "security"),
    ({**BASE, "hardware": {"drawers": {"A": PINS}}, "database": "x"}, "database"),
    ({**BASE, "hardware": {"drawers": {"A": PINS}}, "database": {"path": 3}}, "database.path"),
    # A value where a table belongs (``timeouts = 5``, ``session = "x"``) is named, never a
    # traceback, and never silently replaced by the defaults.
    ({**BASE, "hardware": "gpio"}, "hardware"),
    ({**BASE, "hardware": {"drawers": {"A": PINS}, "timeouts": 5}}, "hardware.timeouts"),
    ({**BASE, "hardware": {"drawers": [PINS]}}, "hardware.drawers"),
    ({**BASE, "hardware": {"backend": "serial", "drawers": {"A": 5}}}, "hardware.drawers.A"),
    ({**BASE, "hardware": {"drawers": {"A": PINS}}, "session": 3}, "session"),
    ({**BASE, "hardware": {"drawers": {"A": PINS}}, "session": "x"}, "session"),
    ({**BASE, "hardware": {"drawers": {"A": PINS}}, "alarms": [1]}, "alarms"),
    ({**BASE, "hardware": {"drawers": {"A": PINS}}, "security": 1}, "security"),
])
def test_bad_configuration_names_the_field(raw, field):
    with pytest.raises(ConfigError) as err:
        configuration.from_dict(raw, sim=False)
    assert err.value.message_en.startswith(field)


CUBIE = {"cabinet": {"drawers": [{"id": "B", "type": "cubie", "rows": 1, "cols": 2}]}}


@pytest.mark.parametrize("raw, field", [
    # GPIO2-8 are pulled up while no controller drives them (2 and 3 by fixed resistors),
    # 14 is the serial console's TXD: an output there is on while the Pi boots, and after
    # every stop or kill.
    ({**BASE, "hardware": {"drawers": {"A": {**PINS, "motor_forward": 2}}}},
     "hardware.drawers.A.motor_forward"),
    ({**BASE, "hardware": {"drawers": {"A": {**PINS, "motor_backward": 14}}}},
     "hardware.drawers.A.motor_backward"),
    ({**BASE, "hardware": {"drawers": {"A": {**PINS, "indicator_led": 8}}}},
     "hardware.drawers.A.indicator_led"),
    ({**BASE, "hardware": {"drawers": {"A": PINS}, "buzzer": 3}}, "hardware.buzzer"),
    ({**CUBIE, "hardware": {"drawers": {"B": {**PINS, "magnets": [[20, 7]]}}}},
     "hardware.drawers.B.magnets[0][1]"),
])
def test_an_output_on_a_pin_that_is_high_at_rest_is_refused(raw, field):
    with pytest.raises(ConfigError) as err:
        configuration.from_dict(raw, sim=False)
    assert err.value.message_en.startswith(f"{field}: GPIO ")
    assert "broche GPIO" in err.value.message_fr and err.value.code == "BAD_CONFIG"
    # The same pins as inputs (switches and buttons, pulled up in software) are fine.
    configuration.from_dict({**BASE, "hardware": {"drawers": {"A": {
        **PINS, "switch_closed": 2, "switch_open": 3, "close_button": 8}}}}, sim=False)


def test_run_with_a_value_where_a_table_belongs_exits_2_with_a_code(tmp_path, capsys):
    from controller.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text('[cabinet]\n[[cabinet.drawers]]\nid="A"\ntype="matrix"\nrows=2\ncols=2\n'
                   '[hardware]\ntimeouts = 5\n')
    status = main(["run", "--sim", "--config", str(cfg), "--db", str(tmp_path / "r.db")])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "[BAD_CONFIG] hardware.timeouts" in err and "Traceback" not in err


def test_configuration_that_is_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        configuration.load(tmp_path)


@pytest.mark.parametrize("port", ["70000", "-1", "0", "http"])
def test_run_refuses_a_port_out_of_range_before_creating_anything(tmp_path, capsys, port):
    from controller.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text('[cabinet]\n[[cabinet.drawers]]\nid="A"\ntype="matrix"\nrows=2\ncols=2\n')
    with pytest.raises(SystemExit) as exc:
        main(["run", "--sim", "--config", str(cfg), "--db", str(tmp_path / "r.db"),
              "--port", port])
    assert exc.value.code == 2 and "--port" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]


@pytest.mark.parametrize("command", [None, ["has-database"], ["backup"]])
def test_a_configuration_the_service_may_not_read_says_how_to_let_it(tmp_path, monkeypatch,
                                                                      capsys, command):
    """The controller and its units read the file as the user armoire: a copy put there
    under root's umask 077 (0600) stopped them with a bare "Permission denied". The line
    says what docs/deploy.md says: 0640, group armoire (install.sh does it at every run)."""
    import errno

    cfg = tmp_path / "armoire.toml"
    cfg.write_text('[database]\npath = "/var/lib/armoire/armoire.db"\n')
    denied = OSError(errno.EACCES, "Permission denied")

    def refuse(*args: object, **kwargs: object) -> None:
        raise denied

    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr(Path, "open", refuse)
    if command is None:
        with pytest.raises(ConfigError) as err:
            configuration.load(cfg)
        en, fr = err.value.message_en, err.value.message_fr
    else:
        from controller.cli import main

        assert main([*command, "--config", str(cfg)]) in (2, 255)
        en, _, fr = capsys.readouterr().err.partition(" / ")
    assert "Permission denied" in en and "chmod 0640" in en and "armoire" in en, en
    assert "chmod 0640" in fr and "install.sh" in fr, fr


def test_unreadable_toml(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[cabinet\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        configuration.load(bad)


@pytest.mark.parametrize("key, value", [
    ("magnet_pulse_ms", 60000), ("magnet_pulse_ms", 5), ("max_travel_seconds", 600),
    ("switch_debounce_ms", 1), ("switch_debounce_ms", 500), ("magnet_min_off_ms", 100),
    ("magnet_min_off_ms", 60000), ("switch_release_seconds", 0.01),
])
def test_a_time_outside_the_hardware_limits_is_refused_by_name(key, value):
    """The hardware layer would clamp it (it is the last safety); the configuration says so
    instead of quietly running with another value than the site wrote."""
    with pytest.raises(ConfigError) as info:
        configuration.from_dict({**BASE, "hardware": {"drawers": {"A": PINS},
                                                      "timeouts": {key: value}}}, sim=False)
    assert f"hardware.timeouts.{key}" in info.value.message_en
    assert f"hardware.timeouts.{key}" in info.value.message_fr


WIRED = {**BASE, "hardware": {"drawers": {"A": PINS}}}


@pytest.mark.parametrize("raw, name, near", [
    # A misspelt safety limit must not leave the default in force without a word.
    ({**BASE, "hardware": {"drawers": {"A": PINS}, "timeouts": {"max_travel_second": 3}}},
     "hardware.timeouts.max_travel_second", "max_travel_seconds"),
    ({**BASE, "hardware": {"drawers": {"A": {**PINS, "swich_open": 5}}}},
     "hardware.drawers.A.swich_open", "switch_open"),
    ({**BASE, "hardware": {"drawers": {"A": PINS, "C": PINS}}}, "hardware.drawers.C", None),
    ({**BASE, "hardware": {"backend": "serial", "drawers": {"A": {"port": "/dev/x",
                                                                  "baud": 9600}}}},
     "hardware.drawers.A.baud", None),
    ({**BASE, "hardware": {"drawers": {"A": PINS}, "buzer": 24}}, "hardware.buzer", "buzzer"),
    ({**WIRED, "alarms": {"low_stock_unit": 3}}, "alarms.low_stock_unit", "low_stock_units"),
    ({**WIRED, "security": {"max_pin_failure": 3}}, "security.max_pin_failure",
     "max_pin_failures"),
    ({**WIRED, "session": {"timeout": 30}}, "session.timeout", None),
    ({**WIRED, "patients": {"pattern": "[0-9]+"}}, "patients.pattern", "id_pattern"),
    ({**WIRED, "database": {"paht": "x.db"}}, "database.paht", "path"),
    ({**WIRED, "backup": {"keep_day": 3}}, "backup.keep_day", "keep_days"),
    ({**WIRED, "kiosk": {"uri": "http://127.0.0.1:8080/"}}, "kiosk.uri", "url"),
    ({**WIRED, "server": {"prot": 8080}}, "server.prot", "port"),
    ({**WIRED, "alarm": {"low_stock_units": 3}}, "alarm", "alarms"),
    ({**WIRED, "cabinet": {**BASE["cabinet"], "nom": "x"}}, "cabinet.nom", None),
    ({"cabinet": {"drawers": [{"id": "A", "rows": 2, "cols": 2, "colums": 3}]},
      "hardware": {"drawers": {"A": PINS}}}, "cabinet.drawers[0].colums", "cols"),
])
def test_an_unknown_key_is_refused_by_name_with_the_nearest_known_one(raw, name, near):
    with pytest.raises(ConfigError) as info:
        configuration.from_dict(raw, sim=False)
    assert info.value.message_en.startswith(f"{name}: unknown key")
    assert info.value.message_fr.startswith(f"{name} : clé inconnue")
    if near is not None:
        assert f"did you mean {near!r}" in info.value.message_en
        assert f"vouliez-vous dire {near!r}" in info.value.message_fr


def test_every_key_of_the_shared_file_is_known_to_the_loader():
    """[backup] and [kiosk] are read by other tools from the same file; the loader must
    accept them, and the example (which sets every key) must load as it is."""
    raw = {**WIRED, "backup": {"dir": "/b", "keep_days": 3},
           "kiosk": {"url": "http://127.0.0.1:8080/", "blank_after_seconds": 0},
           "patients": {"id_pattern": "[0-9]+", "id_example": "12"},
           "security": {"max_pin_failures": 3, "argon2_time_cost": 2,
                        "argon2_memory_kib": 19456},
           "session": {"inactivity_seconds": 30},
           "alarms": {"low_stock_units": 3, "expiry_window_days": 10},
           "database": {"path": "x.db"}, "seed": "s.json", "server": {"port": 8080}}
    loaded = configuration.from_dict(raw, sim=False)
    assert loaded.settings.max_pin_failures == 3 and loaded.database == "x.db"


@pytest.mark.parametrize("server, kiosk, wanted", [
    ({}, {}, 8080),
    ({"port": 8443}, {}, 8443),
    ({"port": 8443}, {"url": "http://127.0.0.1:8443/"}, 8443),
    ({"port": 8443}, {"url": "http://127.0.0.1:8443"}, 8443),
    ({}, {"url": "http://127.0.0.1:8080/"}, 8080),
    ({"port": 0}, {}, "server.port"),
    ({"port": 80}, {"url": "http://127.0.0.1:80/"}, "server.port"),
    ({"port": 1023}, {}, "server.port"),
    ({"port": 1024}, {}, 1024),
    ({"port": 65536}, {}, "server.port"),
    ({"port": "8080"}, {}, "server.port"),
    ({"port": True}, {}, "server.port"),
    ({"port": 8443}, {"url": "http://127.0.0.1:8080/"}, "kiosk.url"),
    ({}, {"url": "http://127.0.0.1:80801/"}, "kiosk.url"),
    ({}, {"url": "http://localhost:8080/"}, "kiosk.url"),
    ({}, {"url": 8080}, "kiosk.url"),
])
def test_the_server_port_is_bounded_and_the_kiosk_url_on_it(server, kiosk, wanted):
    """``[server] port`` is where ``armoire run`` serves and where install.sh sends the
    kiosk; a ``[kiosk] url`` elsewhere would be a dead touchscreen, refused by name."""
    raw = {**WIRED, "server": server, "kiosk": kiosk}
    if isinstance(wanted, int):
        assert configuration.from_dict(raw, sim=False).port == wanted
        return
    with pytest.raises(ConfigError) as info:
        configuration.from_dict(raw, sim=False)
    assert info.value.message_en.startswith(wanted) and info.value.message_fr.startswith(wanted)


@pytest.mark.parametrize("hosts, wanted", [
    (None, ()),
    ([], ()),
    (["armoire.chu.fr"], ("armoire.chu.fr",)),
    (["Armoire.CHU.fr", "armoire.chu.fr"], ("armoire.chu.fr",)),
    (["pharmacie-4b", "10.1.2.3", "fd00::5", "[fd00::6]"],
     ("pharmacie-4b", "10.1.2.3", "[fd00::5]", "[fd00::6]")),
    ("armoire.chu.fr", "server.hosts"),
    (["*"], "server.hosts"),
    (["*.chu.fr"], "server.hosts"),
    (["https://armoire.chu.fr"], "server.hosts"),
    (["armoire.chu.fr:8443"], "server.hosts"),
    (["armoire.chu.fr/pharmacy"], "server.hosts"),
    ([""], "server.hosts"),
    (["armoire chu"], "server.hosts"),
    (["-armoire.chu.fr"], "server.hosts"),
    (["armoire..chu.fr"], "server.hosts"),
    (["a" * 64 + ".chu.fr"], "server.hosts"),
    (["[fd00::zz]"], "server.hosts"),
    ([8080], "server.hosts"),
])
def test_the_host_names_the_server_answers_to_are_checked_when_loaded(hosts, wanted):
    """``[server] hosts``: the names (or addresses) a browser may reach the controller by,
    beside loopback's own, against DNS rebinding. Each is a plain host name or IP address:
    a scheme, a port, a path or a wildcard (``*`` would turn the check off) is refused by
    name when the file is loaded, never found out from a refused page."""
    raw = {**WIRED, "server": {} if hosts is None else {"hosts": hosts}}
    if isinstance(wanted, tuple):
        assert configuration.from_dict(raw, sim=False).hosts == wanted
        return
    with pytest.raises(ConfigError) as info:
        configuration.from_dict(raw, sim=False)
    assert info.value.code == "BAD_CONFIG"
    assert info.value.message_en.startswith(wanted) and info.value.message_fr.startswith(wanted)
    assert info.value.message_en != info.value.message_fr


def armoire_run(tmp_path, capsys, monkeypatch, table: str) -> tuple[int, str]:
    """``armoire run --sim`` on a one-drawer configuration plus ``table`` (TOML), which
    must stop before serving: its exit status and standard error."""
    from controller.cli import main

    def never_serve(*args, **kwargs):
        raise AssertionError("the controller was started")

    monkeypatch.setattr("controller.web.server.build_server", never_serve)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[cabinet]\n[[cabinet.drawers]]\nid="A"\ntype="matrix"\nrows=2\ncols=2\n'
                   + table)
    code = main(["run", "--sim", "--config", str(cfg), "--db", str(tmp_path / "a.db")])
    return code, capsys.readouterr().err


def test_a_bad_host_name_stops_armoire_run_with_exit_2(tmp_path, capsys, monkeypatch):
    code, err = armoire_run(tmp_path, capsys, monkeypatch,
                            '[server]\nhosts = ["armoire.chu.fr:8443"]\n')
    assert code == 2 and "[BAD_CONFIG] server.hosts" in err and "Traceback" not in err
    assert not (tmp_path / "a.db").exists()


@pytest.mark.parametrize("server, wanted", [
    ({}, (None, "armoire-proxy")),
    ({"proxy_socket": "/run/armoire/proxy.sock"}, ("/run/armoire/proxy.sock", "armoire-proxy")),
    ({"proxy_socket": "/run/armoire/proxy.sock", "proxy_group": "www-data"},
     ("/run/armoire/proxy.sock", "www-data")),
    ({"proxy_socket": "proxy.sock"}, "server.proxy_socket"),
    ({"proxy_socket": "run/armoire/proxy.sock"}, "server.proxy_socket"),
    ({"proxy_socket": "/run/armoire/"}, "server.proxy_socket"),
    ({"proxy_socket": "/run/armoire/../proxy.sock"}, "server.proxy_socket"),
    ({"proxy_socket": "/run//armoire/proxy.sock"}, "server.proxy_socket"),
    ({"proxy_socket": "/run/armoire/proxy\x00.sock"}, "server.proxy_socket"),
    ({"proxy_socket": "/run/" + "x" * 120 + ".sock"}, "server.proxy_socket"),
    ({"proxy_socket": ""}, "server.proxy_socket"),
    ({"proxy_socket": 8080}, "server.proxy_socket"),
    ({"proxy_socket": "/run/armoire/proxy.sock", "proxy_group": "Www Data"},
     "server.proxy_group"),
    ({"proxy_socket": "/run/armoire/proxy.sock", "proxy_group": ""}, "server.proxy_group"),
    ({"proxy_socket": "/run/armoire/proxy.sock", "proxy_group": 33}, "server.proxy_group"),
])
def test_the_proxy_socket_is_checked_when_loaded(server, wanted):
    """``[server] proxy_socket``: the only door where the TLS proxy's forwarding headers are
    believed. The service runs in /run/armoire, so a relative path would name a socket
    nobody configured the proxy for; one the kernel cannot bind (longer than a Unix
    socket's 107 bytes, a NUL) or that is not written plainly is refused by name when the
    file is loaded, exit 2, rather than found out by the proxy's 502."""
    raw = {**WIRED, "server": server}
    if isinstance(wanted, tuple):
        config = configuration.from_dict(raw, sim=False)
        assert (config.proxy_socket, config.proxy_group) == wanted
        return
    with pytest.raises(ConfigError) as info:
        configuration.from_dict(raw, sim=False)
    assert info.value.code == "BAD_CONFIG"
    assert info.value.message_en.startswith(wanted) and info.value.message_fr.startswith(wanted)
    assert "unknown key" not in info.value.message_en, info.value.message_en
    assert info.value.message_en != info.value.message_fr


def test_a_relative_proxy_socket_stops_armoire_run_with_exit_2(tmp_path, capsys, monkeypatch):
    code, err = armoire_run(tmp_path, capsys, monkeypatch,
                            '[server]\nproxy_socket = "proxy.sock"\n')
    assert code == 2 and "[BAD_CONFIG] server.proxy_socket" in err and "Traceback" not in err
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "proxy.sock").exists()


def test_the_hardware_layer_still_caps_what_reaches_it():
    from hal.config import Timing

    t = Timing(max_travel_s=600, magnet_pulse_s=60, switch_debounce_s=0, magnet_min_off_s=0)
    assert (t.max_travel_s, t.magnet_pulse_s) == (20.0, 1.0)
    assert (t.switch_debounce_s, t.magnet_min_off_s) == (0.005, 0.5)


def test_scans():
    assert read("PARA500").gtin is None
    assert read("3400930000011").gtin == "03400930000011"
    s = read("0103400930000011172701311012AB\x1d21SERIAL")
    assert (s.gtin, s.lot, s.expiry) == ("03400930000011", "12AB", date(2027, 1, 31))
    assert read("]d20103400930000011172701311012AB").lot == "12AB"
    assert read("(01)03400930000011(17)270131(10)12AB").expiry == date(2027, 1, 31)
    assert gtin_check_ok("03400930000014") and not gtin_check_ok("03400930000011")
    for junk in ["", "   ", "\x00\x01\x02", "0199", "x" * 500]:
        with pytest.raises(InputError):
            read(junk)


def test_serial_drawer_with_more_pockets_than_the_protocol_addresses_is_refused():
    """Pockets are counted and addressed with one byte on the wire: a 16 x 16 cubie drawer on
    a board would crash its HELLO and could not have pocket 256 released."""
    def raw(rows: int, cols: int) -> dict:
        return {**BASE, "cabinet": {"drawers": [{"id": "A", "type": "cubie", "rows": rows,
                                                 "cols": cols}]},
                "hardware": {"backend": "serial", "drawers": {"A": {"port": "/dev/x"}}}}

    with pytest.raises(ConfigError) as err:
        configuration.from_dict(raw(16, 16), sim=False)
    assert err.value.code == "TOO_MANY_POCKETS"
    assert "255" in err.value.message_en and "255" in err.value.message_fr
    assert configuration.from_dict(raw(15, 17), sim=False).hardware.drawers[0].rows == 15


def test_the_patient_id_format_is_checked_when_the_file_is_loaded():
    from controller.config import from_dict
    from controller.errors import ConfigError

    base = {"cabinet": {"drawers": [{"id": "A", "rows": 1, "cols": 1}]}}
    ok = from_dict({**base, "patients": {"id_pattern": "[0-9]{8}", "id_example": "20261234"}},
                   sim=True)
    assert ok.settings.patient_id_pattern == "[0-9]{8}"
    assert from_dict(base, sim=True).settings.patient_id_pattern is None
    for bad in ({"id_pattern": "[0-9"}, {"id_pattern": "[0-9]{8}"},
                {"id_pattern": "[0-9]{8}", "id_example": "1234"},
                {"id_example": "1234"}, {"id_pattern": 8, "id_example": "8"}):
        with pytest.raises(ConfigError) as info:
            from_dict({**base, "patients": bad}, sim=True)
        assert "patients." in info.value.message_en


def test_a_noise_scan_is_refused_as_unreadable_never_a_crash():
    """biip reads text after a GS1 symbology identifier as a Digital Link URI too, and a
    misread whose text has '//' then ']' made urllib raise ValueError: the restock page
    answered 500 and lost the lot and expiry the technician had typed."""
    for noise in ["]d2//b9ISZ]zl304G36", "]d2https://[x", "]Q3//[", "0103400930000011\x1d//[x"]:
        with pytest.raises(InputError) as err:
            read(noise)
        assert err.value.code == "BAD_SCAN"


def test_a_scanner_sending_symbology_identifiers_reads_every_symbol():
    """A scanner set to send AIM symbology identifiers (how ]d2 tells a GS1 DataMatrix
    apart) sends them for every symbol: an EAN-13 box as ]E0, an ITF-14 carton as ]I1,
    the cabinet's own Code 128 or DataMatrix label as ]C0 / ]d1. Those were taken whole for
    a drug id, so the right box was refused as WRONG_SCAN ("this box is not ...")."""
    assert read("]E03400930000011").gtin == "03400930000011"
    assert read("]E412345670").gtin == "00000012345670"
    assert read("]I103400930000011").gtin == "03400930000011"
    for label in ["]C0PARA500", "]d1PARA500", "]Q1PARA500", "]A0PARA500"]:
        s = read(label)
        assert (s.raw, s.gtin) == ("PARA500", None)
    s = read("]e00103400930000011")
    assert s.gtin == "03400930000011"
    with pytest.raises(InputError):
        read("]C0")


@pytest.mark.parametrize("backup, field", [
    ({"keep_days": "14"}, "backup.keep_days"),
    ({"keep_days": 0}, "backup.keep_days"),
    ({"keep_days": 14.5}, "backup.keep_days"),
    ({"keep_days": 10**9}, "backup.keep_days"),
    ({"dir": 5}, "backup.dir"),
    ({"dir": ""}, "backup.dir"),
    ({"dir": "backups"}, "backup.dir"),
])
def test_a_backup_setting_the_nightly_backup_would_refuse_stops_the_controller(backup, field):
    """``[backup]`` is read by ``armoire backup`` at 02:30, not by the controller; a value
    that command refuses must stop the controller at start, where IT sees it, rather than
    fail every night's backup in a unit nobody looks at."""
    raw = {**BASE, "hardware": {"drawers": {"A": PINS}}, "backup": backup}
    with pytest.raises(ConfigError) as err:
        configuration.from_dict(raw, sim=False)
    assert err.value.message_en.startswith(field)


def test_the_backup_command_names_the_configuration_key_it_refuses(tmp_path, capsys):
    from controller.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\npath = "{tmp_path / "a.db"}"\n'
                   f'[backup]\ndir = "{tmp_path / "b"}"\nkeep_days = "14"\n')
    assert main(["backup", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "[BAD_CONFIG] backup.keep_days" in err, err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("pin", [0, 1, 28, 240, -1])
def test_a_buzzer_pin_off_the_header_is_refused_by_name(pin):
    """The drawers' pins are checked against GPIO2–27, the buzzer's was not: 240 (a typo
    for 24) reached gpiozero, whose error is a traceback and a restart loop, and 0 or 1
    (the HAT EEPROM's pins) were driven without a word."""
    raw = {**BASE, "hardware": {"drawers": {"A": PINS}, "buzzer": pin}}
    with pytest.raises(ConfigError) as err:
        configuration.from_dict(raw, sim=False)
    assert err.value.message_en.startswith("hardware.buzzer")


@pytest.mark.parametrize("alarms, field", [
    ({"expiry_window_days": 3_000_000}, "alarms.expiry_window_days"),
    ({"expiry_window_days": -1}, "alarms.expiry_window_days"),
    ({"low_stock_units": -1}, "alarms.low_stock_units"),
])
def test_an_alarm_setting_out_of_range_is_refused_by_name(alarms, field):
    """A window of 3,000,000 days (zeros typed twice) passed the configuration and then
    overflowed the date arithmetic of the expiry check: a traceback at start and a restart
    loop, instead of BAD_CONFIG naming the key. A negative one, or a negative low-stock
    level, silently turned the alarm off."""
    raw = {**BASE, "hardware": {"drawers": {"A": PINS}}, "alarms": alarms}
    with pytest.raises(ConfigError) as err:
        configuration.from_dict(raw, sim=False)
    assert err.value.message_en.startswith(field)


def test_an_expiry_window_beyond_the_calendar_does_not_reach_the_cabinet(tmp_path, capsys,
                                                                         monkeypatch):
    code, err = armoire_run(tmp_path, capsys, monkeypatch,
                            "[alarms]\nexpiry_window_days = 3000000\n")
    assert code == 2 and "[BAD_CONFIG] alarms.expiry_window_days" in err
