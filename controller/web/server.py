"""Serving the web app inside the controller's event loop, in production and in tests.

uvicorn runs as a coroutine in the loop that started the cabinet (``loop="none"``): one loop
owns the hardware, the database and the pages, as the design asks. The access log stays off:
it would record every URL and, behind a proxy, headers; nothing there is needed to run a
cabinet, and PINs and tokens must never reach a log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import grp
import logging
import os
import socket
import stat
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import uvicorn

from controller.config import DEFAULT_PROXY_GROUP, Config
from controller.errors import ArmoireError, ListenError
from controller.runtime import Runtime, start
from controller.web.app import create_app
from controller.web.events import EventHub

T = TypeVar("T")
log = logging.getLogger(__name__)


class Server(uvicorn.Server):
    """uvicorn, plus: a stop request also ends the live-update streams at once (otherwise the
    graceful shutdown would wait for pages that never stop listening); and it listens on
    the proxy's Unix socket beside its TCP port when the configuration names one."""

    def __init__(self, config: uvicorn.Config, hub: EventHub, *,
                 proxy_socket: str | None = None,
                 proxy_group: str = DEFAULT_PROXY_GROUP) -> None:
        super().__init__(config)
        self.hub = hub
        self.proxy_socket = proxy_socket
        self.proxy_group = proxy_group

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on ``sockets``, or on the doors :func:`bind_sockets` opens from the
        configuration (closed, and the proxy's socket file removed, when it returns)."""
        if sockets is not None:
            await super().serve(sockets=sockets)
            return
        own = bind_sockets(self.config.host, self.config.port, self.proxy_socket,
                           self.proxy_group)
        if self.proxy_socket is not None:  # said once the socket exists, not before
            log.info("the TLS proxy's socket is %s (group %s)", self.proxy_socket,
                     self.proxy_group)
        try:
            await super().serve(sockets=own)
        finally:
            close_sockets(own, self.proxy_socket)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.hub.close()
        super().handle_exit(sig, frame)

    def request_stop(self) -> None:
        self.hub.close()
        self.should_exit = True


def build_server(runtime: Runtime, host: str, port: int, *, log_level: str = "info") -> Server:
    app = create_app(runtime)
    # uvicorn does not read forwarding headers (proxy_headers=False, whatever
    # FORWARDED_ALLOW_IPS says): the app decides the client, the kiosk and the scheme in
    # one place, controller.web.limits.identify, from the socket and the TCP peer uvicorn
    # leaves as they are.
    config = uvicorn.Config(app, host=host, port=port, loop="none", lifespan="on",
                            access_log=False, log_level=log_level, server_header=False,
                            timeout_graceful_shutdown=3, log_config=None,
                            proxy_headers=False)
    return Server(config, app.state.web.hub, proxy_socket=runtime.config.proxy_socket,
                  proxy_group=runtime.config.proxy_group)


def socket_failed(path: str, en: str, fr: str) -> ArmoireError:
    """The proxy's socket cannot be made: a wrong path or group, which no restart mends."""
    return ArmoireError(f"server.proxy_socket: cannot listen on {path}: {en}",
                        f"server.proxy_socket : écoute impossible sur {path} : {fr}",
                        code="PROXY_SOCKET_FAILED")


def tcp_socket(host: str, port: int) -> socket.socket:
    """The kiosk's door: ``host``:``port`` (loopback unless ``--host`` says otherwise)."""
    sock: socket.socket | None = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                          f"écoute impossible sur {host}:{port} : {exc.strerror or exc}"
                          ) from exc
    return sock


def unix_socket(path: str, group: str) -> socket.socket:
    """The proxy's door, 0660 in ``group``: only the proxy's user (a member) and the
    controller may open it, so no other process on the Pi can pass for the proxy.

    A socket already there was left by a controller that was killed (systemd empties
    /run/armoire when the unit stops, but not a laptop's folder): it is replaced. Any
    other file is left alone and the start refused: a path mistyped onto the database
    must not delete it. The mode and group are set before anyone can connect (the socket
    listens only once uvicorn starts serving), and made, not inherited from the umask."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise socket_failed(path, f"no group {group!r} on this system (server.proxy_group; "
                                  "deploy/install.sh creates armoire-proxy)",
                            f"pas de groupe {group!r} sur ce système (server.proxy_group ; "
                            "deploy/install.sh crée armoire-proxy)") from None
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise socket_failed(path, "a file that is not a socket is there; it is left as "
                                      "it is",
                                "un fichier qui n'est pas un socket s'y trouve ; il est "
                                "laissé tel quel")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
    except OSError as exc:
        sock.close()
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        raise socket_failed(path, f"{exc.strerror or exc} (the folder must exist and be the "
                                  f"service's, and the controller's user be in {group!r})",
                            f"{exc.strerror or exc} (le dossier doit exister et être celui "
                            f"du service, et l'utilisateur du contrôleur être dans "
                            f"{group!r})") from exc
    return sock


def bind_sockets(host: str, port: int, proxy_socket: str | None,
                 proxy_group: str) -> list[socket.socket]:
    """Every door the server listens on, bound before the cabinet starts, so that a port
    taken or a socket that cannot be made stops the start before any hardware moves: the
    kiosk's TCP port, and the proxy's Unix socket when ``[server] proxy_socket`` names
    one. One server serves both (``uvicorn.Server.serve(sockets=…)``); which one a
    request came in on is told by ``limits.identify``."""
    sockets = [tcp_socket(host, port)]
    if proxy_socket is not None:
        try:
            sockets.append(unix_socket(proxy_socket, proxy_group))
        except BaseException:
            close_sockets(sockets, None)
            raise
    return sockets


def close_sockets(sockets: list[socket.socket], proxy_socket: str | None) -> None:
    """Close them (uvicorn may have already), and remove the proxy's socket file: a stopped
    controller leaves no door that answers nothing (the proxy then says the cabinet is
    down). Only a socket is removed, whatever is at that path now."""
    for sock in sockets:
        sock.close()
    if proxy_socket is not None:
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.lstat(proxy_socket).st_mode):
                os.unlink(proxy_socket)


class BackgroundServer:
    """A simulated cabinet and its pages on a free loopback port (and on the proxy's socket
    when the configuration names one), in a thread with its own loop: for the browser
    tests and the screenshot tool, which drive it from outside."""

    def __init__(self, config: Config, db_path: str | Path) -> None:
        self.config = config
        self.db_path = str(db_path)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runtime: Runtime | None = None
        self.server: Server | None = None
        self.url = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="armoire-web", daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> str:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the cabinet's web server did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the cabinet's web server failed: {self._error}")
        return self.url

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        sockets = bind_sockets("127.0.0.1", 0, self.config.proxy_socket,
                               self.config.proxy_group)
        try:
            self.runtime = await start(self.config, sim=True, db_path=self.db_path)
            try:
                port = sockets[0].getsockname()[1]
                self.server = build_server(self.runtime, "127.0.0.1", port,
                                           log_level="warning")
                task = asyncio.create_task(self.server.serve(sockets=sockets))
                while not self.server.started and not task.done():
                    await asyncio.sleep(0.01)
                self.url = f"http://127.0.0.1:{port}"
                self._ready.set()
                await task
            finally:
                await self.runtime.stop()
        finally:
            close_sockets(sockets, self.config.proxy_socket)

    def call(self, fn: Callable[[], Awaitable[T] | T], timeout: float = 30.0) -> T:
        """Run ``fn`` on the cabinet's loop (the only place its objects may be touched)."""
        assert self.loop is not None

        async def run() -> Any:
            result = fn()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                return await result
            return result

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if self.loop is not None and self.server is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.server.request_stop)
        self._thread.join(timeout)
