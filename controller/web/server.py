"""Serving the web app inside the controller's event loop, in production and in tests.

uvicorn runs as a coroutine in the loop that started the cabinet (``loop="none"``): one loop
owns the hardware, the database and the pages, as the design asks. The access log stays off:
it would record every URL and, behind a proxy, headers; nothing there is needed to run a
cabinet, and PINs and tokens must never reach a log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import uvicorn

from controller.config import Config
from controller.runtime import Runtime, start
from controller.web.app import create_app
from controller.web.events import EventHub

T = TypeVar("T")


class Server(uvicorn.Server):
    """uvicorn, plus: a stop request also ends the live-update streams at once (otherwise the
    graceful shutdown would wait for pages that never stop listening)."""

    def __init__(self, config: uvicorn.Config, hub: EventHub) -> None:
        super().__init__(config)
        self.hub = hub

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
    # one place, controller.web.limits.identify, from the TCP peer uvicorn leaves as it is.
    config = uvicorn.Config(app, host=host, port=port, loop="none", lifespan="on",
                            access_log=False, log_level=log_level, server_header=False,
                            timeout_graceful_shutdown=3, log_config=None,
                            proxy_headers=False)
    return Server(config, app.state.web.hub)


class BackgroundServer:
    """A simulated cabinet and its pages on a free loopback port, in a thread with its own
    loop: for the browser tests and the screenshot tool, which drive it from outside."""

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
        self.runtime = await start(self.config, sim=True, db_path=self.db_path)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            self.server = build_server(self.runtime, "127.0.0.1", port, log_level="warning")
            task = asyncio.create_task(self.server.serve(sockets=[sock]))
            while not self.server.started and not task.done():
                await asyncio.sleep(0.01)
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            await task
        finally:
            await self.runtime.stop()

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
