"""Talking to systemd: readiness and a watchdog that means something.

The controller runs as a ``Type=notify`` service with ``WatchdogSec=``. systemd then expects
two things from it (``sd_notify(3)``):

* ``READY=1`` once, when the hardware and the database are up, so that units ordered after the
  controller (the kiosk waits for ``/healthz`` anyway) and ``systemctl start`` only return when
  the cabinet can really dispense;
* ``WATCHDOG=1`` at least every ``WatchdogSec``, or systemd kills and restarts the process.

A watchdog ping sent from a timer proves only that a timer fires. Here a ping is sent only when
every health check passes (the event loop runs — it is the one running this code —, the
hardware link answers, the database accepts a write transaction), so a controller that is alive
but useless (a drawer board gone, the database locked by a stuck writer) stops pinging and gets
restarted by systemd, and ``systemctl status armoire`` shows which check failed in its
``Status:`` line.

Why not the ``sdnotify`` package: its last release (0.3.2) dates from 2017, it swallows every
error silently, and it has no notion of the watchdog interval. The protocol is one datagram on
a Unix socket, so the sender lives here, with the checks, where it can be tested against a fake
socket.

Everything is a no-op when ``NOTIFY_SOCKET`` is absent (development, tests, ``make run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence

from controller.store import db_uri

log = logging.getLogger(__name__)

#: What a health check is: a callable returning ``bool`` or an awaitable of ``bool``. Raising
#: counts as failing; the exception's text goes into the ``STATUS=`` line.
CheckFn = Callable[[], bool | Awaitable[bool]]

#: Used when no ``WATCHDOG_USEC`` is set but the caller still wants the checks to run (and
#: report ``STATUS=``), e.g. a service without ``WatchdogSec=`` during commissioning.
DEFAULT_INTERVAL_S = 10.0


class HealthCheck:
    """A named check, so that ``STATUS=`` can say *which* part of the cabinet is unwell."""

    def __init__(self, name: str, fn: CheckFn) -> None:
        self.name = name
        self._fn = fn

    def __call__(self) -> bool | Awaitable[bool]:
        return self._fn()

    def __repr__(self) -> str:
        return f"HealthCheck({self.name!r})"


def callable_check(name: str, fn: CheckFn) -> HealthCheck:
    """Wrap any callable (e.g. ``lambda: hal.link_ok()``) as a named check."""
    return HealthCheck(name, fn)


def database_check(path: str | os.PathLike[str], *, busy_timeout_s: float = 0.5,
                   name: str = "database") -> HealthCheck:
    """A check that passes only if the database would accept a write right now.

    ``BEGIN IMMEDIATE`` takes the write lock (in WAL mode too), so a database held by a stuck
    writer, a full or read-only file system under it, or a missing file all fail the check
    after ``busy_timeout_s``; ``ROLLBACK`` then releases the lock having written nothing. A
    plain ``SELECT`` would pass in every one of those cases, because WAL readers never wait.
    The file is opened with ``mode=rw`` so that a missing database is an error rather than a
    new empty file. The blocking work runs in a worker thread so that it cannot stall the
    event loop it is meant to vouch for.
    """
    uri = db_uri(path, "rw")

    def probe() -> bool:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return True

    async def check() -> bool:
        return await asyncio.to_thread(probe)

    return HealthCheck(name, check)


def _check_name(check: CheckFn) -> str:
    name = getattr(check, "name", None)
    if isinstance(name, str):
        return name
    return getattr(check, "__qualname__", None) or repr(check)


def _socket_address(value: str) -> str | bytes:
    """``@name`` is an abstract-namespace socket (leading NUL byte); anything else a path."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class ServiceNotifier:
    """Sends ``sd_notify`` messages to systemd; silent when not run by systemd.

    Build one at start-up (it reads ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``
    from the environment, or from ``env`` in tests), call :meth:`ready` once the hardware and
    the database are up, and run :meth:`watchdog_loop` as a task for the life of the process.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = _socket_address(raw) if raw else None
        self._sock: socket.socket | None = None
        self._ready_sent = False
        self._last_status: str | None = None
        self._watchdog_usec = self._parse_watchdog(env)

    @staticmethod
    def _parse_watchdog(env: Mapping[str, str]) -> int | None:
        """``WATCHDOG_USEC`` applies to us only if ``WATCHDOG_PID`` is unset or is our PID
        (a child process inheriting the environment must not believe it is watched)."""
        pid = env.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            return None
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        return usec if usec > 0 else None

    @property
    def enabled(self) -> bool:
        """True when systemd gave us a socket to talk to."""
        return self._address is not None

    @property
    def ready_sent(self) -> bool:
        return self._ready_sent

    def watchdog_interval(self) -> float | None:
        """Half of ``WatchdogSec=``, in seconds, as ``sd_watchdog_enabled(3)`` recommends, so
        that one late ping does not get the cabinet killed; ``None`` if no watchdog is set."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True if it was handed to systemd.

        Never raises: a failed send is logged, and if it was a watchdog ping systemd will act
        on the silence anyway. The socket is non-blocking so a wedged receiver cannot freeze
        the event loop.
        """
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            log.warning("sd_notify %r failed: %s", assignments, exc)
            return False
        return True

    def ready(self, status: str = "cabinet ready") -> bool:
        """Tell systemd the cabinet is up. Sent once per process; later calls do nothing and
        return False, so a re-initialised hardware link cannot confuse the service manager."""
        if self._ready_sent or not self.enabled:
            return False
        if self.notify("READY=1", f"STATUS={status}"):
            self._ready_sent = True
            self._last_status = status
            return True
        return False

    def status(self, text: str) -> bool:
        """Set the one-line status shown by ``systemctl status``; repeated text is not resent."""
        if text == self._last_status:
            return False
        sent = self.notify(f"STATUS={text}")
        if sent:
            self._last_status = text
        return sent

    def stopping(self, status: str = "stopping") -> bool:
        """Announce an orderly stop, so that systemd does not count it as a watchdog failure."""
        return self.notify("STOPPING=1", f"STATUS={status}")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start-up time (e.g. during a long migration): ``EXTEND_TIMEOUT_USEC``."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog(self) -> bool:
        """One ``WATCHDOG=1`` ping. Prefer :meth:`watchdog_loop`, which checks before pinging."""
        return self.notify("WATCHDOG=1")

    async def run_checks(self, checks: Sequence[CheckFn], timeout_s: float) -> list[str]:
        """Run every check concurrently; return ``"name: reason"`` for each one that failed.

        A check that takes longer than ``timeout_s`` fails: a hardware link that answers too
        late to keep the watchdog fed is as bad as one that does not answer.
        """

        async def one(check: CheckFn) -> str | None:
            name = _check_name(check)
            try:
                async with asyncio.timeout(timeout_s):
                    result = check()
                    if inspect.isawaitable(result):
                        result = await result
            except TimeoutError:
                return f"{name}: no answer within {timeout_s:g} s"
            except Exception as exc:
                return f"{name}: {exc or type(exc).__name__}"
            return None if result is True else f"{name}: check returned {result!r}"

        results = await asyncio.gather(*(one(c) for c in checks))
        return [r for r in results if r is not None]

    async def watchdog_loop(self, checks: Sequence[CheckFn], *, interval_s: float | None = None,
                            check_timeout_s: float | None = None,
                            healthy_status: str = "cabinet ready") -> None:
        """Ping the watchdog for as long as every check passes; run until cancelled.

        ``interval_s`` defaults to ``WATCHDOG_USEC / 2``. Each round, all checks run (bounded by
        ``check_timeout_s``, default half the interval, so that a round never outlasts the
        ping period); if all pass, ``WATCHDOG=1`` is sent, otherwise no ping and a
        ``STATUS=watchdog withheld: …`` line naming the failed checks. When they pass again,
        pings resume and the status returns to ``healthy_status``. Returns at once (nothing to
        do) when there is no notify socket.
        """
        if not self.enabled:
            return
        interval = interval_s or self.watchdog_interval() or DEFAULT_INTERVAL_S
        timeout = check_timeout_s or interval / 2
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            failures = await self.run_checks(checks, timeout)
            if failures:
                text = "watchdog withheld: " + "; ".join(failures)
                if text != self._last_status:
                    log.error("%s", text)
                self.status(text)
            else:
                if self._last_status != healthy_status and self._last_status is not None \
                        and self._last_status.startswith("watchdog withheld"):
                    log.warning("health checks pass again; watchdog resumed")
                    self.status(healthy_status)
                self.watchdog()
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
