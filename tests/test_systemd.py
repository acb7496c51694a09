"""The sd_notify client against a fake systemd: a datagram socket bound in a temp dir."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.systemd import ServiceNotifier, callable_check, database_check

INTERVAL = 0.05  # WATCHDOG_USEC=100000 -> one round every 50 ms


@pytest.fixture
def fake_systemd(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    # A short directory of our own: AF_UNIX paths are limited to 108 bytes, pytest's tmp_path
    # can be longer than that.
    with tempfile.TemporaryDirectory(prefix="sdn") as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.setenv("WATCHDOG_USEC", "100000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        try:
            yield sock
        finally:
            sock.close()


def drain(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket, as text."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def collect(sock: socket.socket, seconds: float) -> list[str]:
    await asyncio.sleep(seconds)
    return drain(sock)


async def wait_for_message(sock: socket.socket, predicate: str, seconds: float = 3.0) -> list[str]:
    """Collect datagrams until one contains ``predicate``; fail after ``seconds``."""
    seen: list[str] = []
    async with asyncio.timeout(seconds):
        while not any(predicate in m for m in seen):
            await asyncio.sleep(INTERVAL / 5)
            seen += drain(sock)
    return seen


def make_wal_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    conn.close()


def test_silent_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = ServiceNotifier()
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    # Returns at once instead of looping forever.
    asyncio.run(asyncio.wait_for(notifier.watchdog_loop([lambda: True]), 1))


def test_ready_is_sent_once(fake_systemd):
    notifier = ServiceNotifier()
    assert notifier.ready("up") is True
    assert notifier.ready("up again") is False
    assert drain(fake_systemd) == ["READY=1\nSTATUS=up"]
    notifier.close()


def test_abstract_socket_address(monkeypatch):
    name = f"armoire-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(1)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert ServiceNotifier().ready() is True
        assert sock.recv(100).startswith(b"READY=1")
    finally:
        sock.close()


def test_watchdog_interval_is_half_of_watchdog_usec(fake_systemd, monkeypatch):
    assert ServiceNotifier().watchdog_interval() == pytest.approx(0.05)
    # A watchdog meant for another process (inherited environment) is not ours.
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert ServiceNotifier().watchdog_interval() is None


def test_watchdog_stops_while_database_locked_and_resumes(fake_systemd, tmp_path):
    db = tmp_path / "armoire.db"
    make_wal_db(db)

    async def scenario() -> None:
        notifier = ServiceNotifier()
        task = asyncio.create_task(notifier.watchdog_loop(
            [database_check(db, busy_timeout_s=0.01)], check_timeout_s=0.5))
        try:
            assert "WATCHDOG=1" in await wait_for_message(fake_systemd, "WATCHDOG=1")

            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            seen = await wait_for_message(fake_systemd, "watchdog withheld")
            failure = next(m for m in seen if "withheld" in m)
            assert "database" in failure and "locked" in failure
            # While the lock is held: several rounds, not one ping.
            assert "WATCHDOG=1" not in await collect(fake_systemd, 6 * INTERVAL)

            holder.execute("ROLLBACK")
            holder.close()
            seen = await wait_for_message(fake_systemd, "WATCHDOG=1")
            assert "STATUS=cabinet ready" in seen
        finally:
            task.cancel()
            notifier.close()

    asyncio.run(scenario())


def test_watchdog_stops_when_hardware_link_fails_and_resumes(fake_systemd, tmp_path):
    db = tmp_path / "armoire.db"
    make_wal_db(db)
    link = {"up": True}

    async def link_ok() -> bool:  # an async check, as the serial backend's would be
        await asyncio.sleep(0)
        return link["up"]

    async def scenario() -> None:
        notifier = ServiceNotifier()
        checks = [database_check(db), callable_check("drawer-link", link_ok)]
        # Generous check timeout: a slow CI machine must not fail the database check here.
        task = asyncio.create_task(notifier.watchdog_loop(checks, check_timeout_s=1.0))
        try:
            await wait_for_message(fake_systemd, "WATCHDOG=1")
            link["up"] = False
            seen = await wait_for_message(fake_systemd, "withheld")
            assert any("drawer-link: check returned False" in m for m in seen)
            assert not any("database" in m for m in seen if "withheld" in m)
            assert "WATCHDOG=1" not in await collect(fake_systemd, 6 * INTERVAL)
            link["up"] = True
            await wait_for_message(fake_systemd, "WATCHDOG=1")
        finally:
            task.cancel()
            notifier.close()

    asyncio.run(scenario())


def test_failing_checks_raising_or_hanging(fake_systemd):
    def broken() -> bool:
        raise RuntimeError("board B not answering")

    async def hangs() -> bool:
        await asyncio.sleep(10)
        return True

    async def scenario() -> list[str]:
        notifier = ServiceNotifier()
        return await notifier.run_checks(
            [callable_check("serial", broken), callable_check("slow", hangs), lambda: True],
            timeout_s=0.05)

    failures = asyncio.run(scenario())
    assert failures == ["serial: board B not answering", "slow: no answer within 0.05 s"]


def test_database_check_fails_on_missing_file_without_creating_it(tmp_path):
    missing = tmp_path / "nope.db"

    async def scenario() -> list[str]:
        return await ServiceNotifier({}).run_checks([database_check(missing)], 1.0)

    assert asyncio.run(scenario())[0].startswith("database: unable to open")
    assert not missing.exists()
