"""Shared set-up for the web tests: the demo cabinet on a temporary database."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from pathlib import Path
from typing import Any

from controller.config import Config, load

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "sim" / "demo"
PINS = {"ide1": "482913", "ide2": "771346", "as1": "390155", "prep1": "551234",
        "pharma1": "918273", "admin1": "604817"}
#: The host names the web tests' clients use (TestClient's default, the HTTPS cases).
TEST_HOSTS = ("testserver", "armoire.chu.fr", "cabinet.example")
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
#: The proxy's Unix socket (``[server] proxy_socket``) as the tests' clients name it: a
#: ``host`` of this value is a request through the site's proxy, on its socket.
SOCKET = "/run/armoire/proxy.sock"


def through(app: Any, host: str) -> Any:
    """``app`` as reached from ``host``: unchanged for a TCP client, and for :data:`SOCKET`
    with the scope uvicorn gives a request on a Unix socket (the socket's path as the
    server's address, no port, no client), which TestClient cannot make by itself."""
    if host != SOCKET:
        return app

    async def on_socket(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "server": (SOCKET, None), "client": None}
        await app(scope, receive, send)

    return on_socket


def demo_config(tmp_path: Path, *, inactivity: int = 90, extra: str = "") -> Config:
    """The demo cabinet's configuration, with cheap PIN hashing and the given inactivity;
    ``extra`` is TOML appended to it (tables the demo does not have)."""
    text = (DEMO / "cabinet.toml").read_text(encoding="utf-8")
    text = text.replace('seed = "demo-seed.json"', f'seed = "{DEMO / "demo-seed.json"}"')
    text = re.sub(r"inactivity_seconds = \d+", f"inactivity_seconds = {inactivity}", text)
    text += "\n[security]\nargon2_time_cost = 1\nargon2_memory_kib = 8192\n"
    # The names the tests' browsers ask for (Starlette's TestClient, the HTTPS cases),
    # beside loopback's own: any other Host is refused (BAD_HOST).
    text += f"\n[server]\nhosts = {list(TEST_HOSTS)!r}\n".replace("'", '"')
    text += extra
    path = tmp_path / "cabinet.toml"
    path.write_text(text, encoding="utf-8")
    return load(path, sim=True)


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class SiteProxy:
    """A stand-in for the site's TLS proxy, for the browser tests: a loopback TCP port
    whose every request goes on to the cabinet's proxy socket with ``X-Forwarded-For``
    added, as nginx does; answers (live-update streams included) flow back as they come.
    Chromium cannot speak to a Unix socket itself."""

    def __init__(self, socket_path: str | Path, client: str = "10.0.0.7") -> None:
        self.socket_path = str(socket_path)
        self.client = client.encode()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, name="site-proxy", daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                browser, _ = self.listener.accept()
            except OSError:
                return  # closed
            cabinet = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            cabinet.connect(self.socket_path)
            threading.Thread(target=self._requests, args=(browser, cabinet),
                             daemon=True).start()
            threading.Thread(target=self._answers, args=(cabinet, browser),
                             daemon=True).start()

    def _requests(self, browser: socket.socket, cabinet: socket.socket) -> None:
        """Each request's head with the client's address added, then its body."""
        reader = browser.makefile("rb")
        try:
            while True:
                head = [reader.readline()]
                while head[-1] not in (b"\r\n", b"\n", b""):
                    head.append(reader.readline())
                if head[-1] == b"":
                    return
                length = 0
                for line in head[1:-1]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                cabinet.sendall(b"".join(head[:-1]) + b"X-Forwarded-For: " + self.client
                                + b"\r\n\r\n" + (reader.read(length) if length else b""))
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                cabinet.shutdown(socket.SHUT_WR)

    @staticmethod
    def _answers(cabinet: socket.socket, browser: socket.socket) -> None:
        try:
            while data := cabinet.recv(65536):
                browser.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                browser.shutdown(socket.SHUT_RDWR)
            browser.close()
            cabinet.close()
