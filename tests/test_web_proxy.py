"""The TLS proxy's own door, through the real server: uvicorn listening on a loopback port
(the kiosk's) and on a Unix socket (the proxy's, ``[server] proxy_socket``), as
``armoire run`` does. Forwarding headers are believed on the socket only."""

from __future__ import annotations

import grp
import http.client
import json
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from web_helpers import csrf_of, demo_config

from controller.errors import ArmoireError
from controller.web.server import BackgroundServer, bind_sockets, close_sockets

#: The current user's own group: the tests cannot put the socket in armoire-proxy.
GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.fixture
def served(tmp_path):
    """The demo cabinet served on a free loopback port and on a socket in ``tmp_path``."""
    path = tmp_path / "run" / "proxy.sock"
    path.parent.mkdir()
    config = demo_config(tmp_path, extra=f'proxy_socket = "{path}"\n'
                                         f'proxy_group = "{GROUP}"\n')
    with BackgroundServer(config, tmp_path / "web.db") as server:
        yield server, path


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class OnSocket(http.client.HTTPConnection):
    """HTTP over the proxy's Unix socket, as nginx's ``proxy_pass http://unix:…`` does."""

    def __init__(self, path: Path) -> None:
        super().__init__("armoire.chu.fr", timeout=10)  # the Host the browser asked for
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(self.path))


def ask(door: str | Path, method: str, path: str, headers: dict[str, str] | None = None,
        data: dict[str, str] | None = None) -> Answer:
    """One request, on the kiosk's TCP door (a URL) or on the proxy's socket (a path)."""
    if isinstance(door, Path):
        conn: http.client.HTTPConnection = OnSocket(door)
    else:
        where = urlsplit(door)
        conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    body = urlencode(data).encode() if data is not None else None
    sent = {**(headers or {})}
    if body is not None:
        sent["content-type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=sent)
        r = conn.getresponse()
        return Answer(r.status, r.headers, r.read().decode())
    finally:
        conn.close()


def journal_rows(server: BackgroundServer) -> int:
    assert server.runtime is not None
    store = server.runtime.store
    return len(server.call(lambda: store.query("SELECT seq FROM journal")))


def test_the_socket_is_the_proxy_s_alone(served):
    """Made 0660 in the proxy's group: only the proxy (and the controller) may open it."""
    _, path = served
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    assert grp.getgrgid(path.stat().st_gid).gr_name == GROUP


def test_a_browser_through_the_proxy_socket_is_known_by_its_address(served):
    """The proxy's client is the address it added, over HTTPS as it says: never the
    kiosk (no names), a Secure cookie, and its failed PINs count against that address."""
    server, path = served
    proxied = {"x-forwarded-for": "10.1.2.3", "x-forwarded-proto": "https"}
    r = ask(path, "GET", "/", proxied)
    assert (r.status, r.headers["location"]) == (303, "/pharmacy/login")
    r = ask(path, "GET", "/pharmacy/login", proxied)
    assert r.status == 200 and "Secure" in r.headers["set-cookie"]
    assert 'class="userlist"' not in r.text
    cookie = r.headers["set-cookie"].split(";")[0]
    r = ask(path, "POST", "/pharmacy/login",
            {**proxied, "cookie": cookie, "accept": "application/json"},
            {"csrf": csrf_of(r.text), "user_id": "nobody", "pin": "583920"})
    assert r.json()["code"] == "AUTH_FAILED", r.text
    assert server.server is not None
    throttle = server.server.config.app.state.web.throttle
    assert server.call(lambda: list(throttle._failures)) == ["fwd:10.1.2.3"]


def test_the_kiosk_on_loopback_tcp_is_still_the_kiosk(served):
    server, _ = served
    r = ask(server.url, "GET", "/")
    assert r.status == 200 and 'class="userlist"' in r.text
    assert "Secure" not in r.headers["set-cookie"]


@pytest.mark.parametrize("headers", [
    {"x-forwarded-for": "10.1.2.3"},
    {"x-forwarded-for": "10.1.2.3", "x-forwarded-proto": "https"},
    {"via": "1.1 nginx"},
    {"forwarded": "for=10.1.2.3"},
])
def test_forwarding_headers_on_loopback_tcp_are_not_believed(served, headers):
    """A proxy still pointed at the TCP port, or any process on the Pi posing as one:
    refused, neither the kiosk (names, badges, unlimited PINs) nor a proxied client."""
    server, _ = served
    before = journal_rows(server)
    for method, where in (("GET", "/"), ("GET", "/pharmacy/login"), ("POST", "/login")):
        r = ask(server.url, method, where, {**headers, "accept": "application/json"},
                {"user_id": "ide1", "pin": "482913"} if method == "POST" else None)
        assert r.status == 400 and r.json()["code"] == "PROXY_NOT_ON_SOCKET", r.text
        assert "set-cookie" not in r.headers
    assert journal_rows(server) == before


@pytest.mark.parametrize("headers", [
    {}, {"x-forwarded-proto": "https"}, {"via": "1.1 nginx"}, {"x-forwarded-for": ""},
])
def test_the_socket_without_the_client_s_address_is_refused(served, headers):
    """A proxy on its socket that does not say for whom: refused with its code, never the
    kiosk, nothing read nor written."""
    server, path = served
    before = journal_rows(server)
    for method, where in (("GET", "/"), ("GET", "/pharmacy/login"), ("POST", "/login")):
        r = ask(path, method, where, {**headers, "accept": "application/json"},
                {"user_id": "ide1", "pin": "482913"} if method == "POST" else None)
        assert r.status == 400 and r.json()["code"] == "PROXY_CLIENT_MISSING", r.text
        assert r.json()["error"] != r.json()["error_fr"]
        assert "set-cookie" not in r.headers
    assert journal_rows(server) == before
    assert server.runtime is not None and server.runtime.cabinet.session.state == "locked"


def test_a_stale_socket_is_replaced_and_any_other_file_is_left_alone(tmp_path):
    """A socket left by a controller that was killed is taken over; a file that is not a
    socket is never deleted (a mistyped path), the start refused with its code."""
    stale = tmp_path / "proxy.sock"
    old = socket.socket(socket.AF_UNIX)
    old.bind(str(stale))
    old.close()
    sockets = bind_sockets("127.0.0.1", 0, str(stale), GROUP)
    try:
        assert stale.is_socket() and len(sockets) == 2
    finally:
        close_sockets(sockets, str(stale))
    assert not stale.exists()  # removed when the server stops
    precious = tmp_path / "armoire.db"
    precious.write_text("data")
    with pytest.raises(ArmoireError) as info:
        bind_sockets("127.0.0.1", 0, str(precious), GROUP)
    assert info.value.code == "PROXY_SOCKET_FAILED" and precious.read_text() == "data"
    assert info.value.message_en != info.value.message_fr


@pytest.mark.parametrize("where, group", [("missing-dir/proxy.sock", GROUP),
                                          ("proxy.sock", "no-such-group-here")])
def test_a_socket_that_cannot_be_made_stops_the_start_with_its_code(tmp_path, where, group):
    with pytest.raises(ArmoireError) as info:
        bind_sockets("127.0.0.1", 0, str(tmp_path / where), group)
    assert info.value.code == "PROXY_SOCKET_FAILED" and info.value.exit_code == 2
    assert not (tmp_path / where).exists()


def test_the_server_as_armoire_run_starts_it_opens_both_doors_and_closes_them(tmp_path):
    """``armoire run`` serves through ``build_server(...).serve()`` with no sockets given:
    the server opens the TCP port and the configured socket itself, and removes the
    socket's file when it stops (no door left that answers nothing)."""
    import asyncio
    import functools

    from controller.runtime import start
    from controller.web.server import build_server

    path = tmp_path / "proxy.sock"
    config = demo_config(tmp_path, extra=f'proxy_socket = "{path}"\n'
                                         f'proxy_group = "{GROUP}"\n')

    async def scenario() -> tuple[Answer, Answer]:
        runtime = await start(config, sim=True, db_path=str(tmp_path / "run.db"))
        try:
            server = build_server(runtime, "127.0.0.1", 0, log_level="warning")
            task = asyncio.create_task(server.serve())
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            loop = asyncio.get_running_loop()
            kiosk = await loop.run_in_executor(None, functools.partial(
                ask, f"http://127.0.0.1:{port}", "GET", "/"))
            proxied = await loop.run_in_executor(None, functools.partial(
                ask, path, "GET", "/", {"x-forwarded-for": "10.1.2.3"}))
            server.request_stop()
            await task
            return kiosk, proxied
        finally:
            await runtime.stop()

    kiosk, proxied = asyncio.run(scenario())
    assert kiosk.status == 200 and 'class="userlist"' in kiosk.text
    assert (proxied.status, proxied.headers["location"]) == (303, "/pharmacy/login")
    assert not path.exists()


def test_a_port_already_taken_is_its_own_code_and_leaves_no_socket(tmp_path):
    """The TCP port held by another process: LISTEN_FAILED, exit 3 (a restart may find it
    free), and the proxy's socket is not made either."""
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        with pytest.raises(ArmoireError) as info:
            bind_sockets("127.0.0.1", port, str(tmp_path / "proxy.sock"), GROUP)
    finally:
        taken.close()
    assert (info.value.code, info.value.exit_code) == ("LISTEN_FAILED", 3)
    assert info.value.message_en != info.value.message_fr
    assert not (tmp_path / "proxy.sock").exists()
