"""Shared set-up for the web tests: the demo cabinet on a temporary database."""

from __future__ import annotations

import re
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
