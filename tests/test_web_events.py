"""The live-update hub: bounded queues, slow pages dropped, streams ending cleanly."""

from __future__ import annotations

import asyncio
import json

from controller.auth import User
from controller.web.events import QUEUE_SIZE, EventHub
from controller.web.sessions import MAX_SESSIONS, SessionStore


def test_a_slow_page_is_dropped_and_the_others_still_get_everything():
    async def scenario():
        hub = EventHub()
        slow, fast = hub.subscribe("a"), hub.subscribe("b")
        got = []
        for i in range(QUEUE_SIZE + 5):
            hub.publish({"n": i})
            got.append(fast.queue.get_nowait()["n"])
        assert slow.dropped and slow not in hub.clients
        assert got == list(range(QUEUE_SIZE + 5)) and fast in hub.clients
        # The dropped page's stream still sends what was queued, then ends.
        lines = [chunk async for chunk in hub.stream(slow)]
        assert lines[0].startswith("retry:")
        assert json.loads(lines[1][len("data: "):]) == {"n": 0}
        assert len(lines) == 1 + QUEUE_SIZE

    asyncio.run(scenario())


def test_cut_and_close_end_streams():
    async def scenario():
        hub = EventHub()
        client = hub.subscribe("tok")
        hub.publish({"type": "session", "state": "locked"}, only="tok")
        hub.cut("tok")
        lines = [chunk async for chunk in hub.stream(client)]
        assert "locked" in lines[-1]
        other = hub.subscribe("x")
        hub.close()
        assert [chunk async for chunk in hub.stream(other)] == ["retry: 2000\n\n"]

    asyncio.run(scenario())


def test_session_store_rotates_tokens_and_keeps_the_cabinet_session():
    store = SessionStore()
    anon = store.new()
    nurse = store.login(anon, User("n", "N", "nurse"), "cabinet")
    assert store.get(anon.token) is None and store.get(nurse.token) is nurse
    assert nurse.csrf != anon.csrf
    for _ in range(MAX_SESSIONS + 10):
        store.new()
    assert store.get(nurse.token) is nurse and len(store) <= MAX_SESSIONS
    second = store.login(None, User("m", "M", "nurse"), "cabinet")
    assert store.get(nurse.token) is None and store.get(second.token) is second
    assert not nurse.csrf_ok(None) and not nurse.csrf_ok("x") and nurse.csrf_ok(nurse.csrf)
