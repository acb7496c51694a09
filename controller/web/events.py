"""Live state for the pages: the cabinet's events fanned out to server-sent-event streams.

The Cabinet calls its listeners synchronously on the controller's loop; the hub turns each
message into one small JSON event per subscribed page. Each page has a bounded queue: a page
that does not read (a stalled browser, a dead network) is dropped rather than allowed to grow
memory or slow the cabinet; its browser reconnects and reloads the state it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

QUEUE_SIZE = 64
#: A comment line this often keeps proxies and the browser from closing an idle stream, and
#: lets the stream notice a shutdown.
KEEPALIVE_S = 15.0
POLL_S = 0.5
#: How often a stream checks that its session is still alive (expired, ended without the
#: hub being told): a page never listens long for a session that is gone.
RECHECK_S = 5.0
#: The last message of a stream whose session ended: the page goes to its login screen.
ENDED: dict[str, Any] = {"type": "session", "state": "ended"}


@dataclass(eq=False)
class Client:
    #: Which browser session the stream belongs to: the cabinet's events (drug, pocket) only go
    #: to logged-in pages, and a page whose session ends is told so, then cut.
    token: str
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False
    #: Only session changes (logout, lock): for a page whose person must first choose her
    #: own PIN, which may follow the cabinet's lock but see nothing of what it does.
    sessions_only: bool = False


class EventHub:
    def __init__(self) -> None:
        self.clients: set[Client] = set()
        self.closing = False

    def subscribe(self, token: str, *, sessions_only: bool = False) -> Client:
        client = Client(token, sessions_only=sessions_only)
        self.clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        self.clients.discard(client)

    def publish(self, message: dict[str, Any], *, only: str | None = None) -> None:
        """Called on the loop (Cabinet listener or the app itself); never blocks."""
        for client in list(self.clients):
            if only is not None and client.token != only:
                continue
            if client.sessions_only and message.get("type") != "session":
                continue
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("dropping a slow live-update client")
                client.dropped = True
                self.clients.discard(client)

    def cut(self, token: str) -> None:
        """End the streams of one browser session (after telling it why)."""
        for client in list(self.clients):
            if client.token == token:
                if not client.dropped:
                    # A stalled page with a full queue is cut all the same, untold.
                    with contextlib.suppress(asyncio.QueueFull):
                        client.queue.put_nowait(ENDED)
                client.dropped = True
                self.clients.discard(client)

    def close(self) -> None:
        """Shutting down: every stream ends at its next wake-up."""
        self.closing = True

    async def stream(self, client: Client, alive: Callable[[], bool] | None = None
                     ) -> AsyncIterator[str]:
        """The text/event-stream body for one page; ``alive`` says whether its session still
        is, checked every RECHECK_S (the stream ends when it is not)."""
        yield "retry: 2000\n\n"
        idle = 0.0
        checked = time.monotonic()
        try:
            while not self.closing:
                if alive is not None and time.monotonic() - checked >= RECHECK_S:
                    checked = time.monotonic()
                    if not client.dropped and not alive():
                        self.cut(client.token)
                if client.dropped and client.queue.empty():
                    break
                try:
                    message = await asyncio.wait_for(client.queue.get(), POLL_S)
                except TimeoutError:
                    idle += POLL_S
                    if idle >= KEEPALIVE_S:
                        idle = 0.0
                        yield ": keepalive\n\n"
                    continue
                if message is None:
                    break
                idle = 0.0
                yield f"data: {json.dumps(message, ensure_ascii=False)}\n\n"
        finally:
            self.unsubscribe(client)
