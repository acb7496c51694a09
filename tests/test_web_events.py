"""The live-update hub: bounded queues, slow pages dropped, streams ending cleanly."""

from __future__ import annotations

import asyncio
import json

import pytest
from test_web import login, ph_login, running_web, wait_for

from controller.auth import User
from controller.web.events import ENDED, QUEUE_SIZE, EventHub
from controller.web.sessions import COOKIE, MAX_SESSIONS, SessionStore


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


def test_a_page_that_must_choose_a_pin_hears_only_of_its_session():
    hub = EventHub()
    restricted, full = hub.subscribe("a", sessions_only=True), hub.subscribe("b")
    for message in ({"type": "operation", "drug": "MORPH10"}, {"type": "sim"},
                    {"type": "alarms", "open": 2}, {"type": "session", "state": "locked"}):
        hub.publish(message)
    assert restricted.queue.qsize() == 1 and full.queue.qsize() == 4
    assert restricted.queue.get_nowait() == {"type": "session", "state": "locked"}


def test_cut_and_close_end_streams():
    async def scenario():
        hub = EventHub()
        client = hub.subscribe("tok")
        hub.publish({"type": "session", "state": "locked"}, only="tok")
        hub.cut("tok")
        lines = [chunk async for chunk in hub.stream(client)]
        assert "locked" in lines[-2] and json.loads(lines[-1][len("data: "):]) == ENDED
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


def test_every_way_a_session_ends_is_reported(monkeypatch):
    import controller.web.sessions as sessions_module

    ended: list[str] = []
    store = SessionStore(on_end=ended.append)
    a = store.login(None, User("p", "P", "pharmacist"), "pharmacy")
    store.drop(a.token)                                    # logout
    b = store.login(None, User("q", "Q", "pharmacist"), "pharmacy")
    store.end_user("q")                                    # deactivated or locked
    c = store.login(None, User("n", "N", "nurse"), "cabinet")
    store.end_cabinet()                                    # the cabinet locked
    d = store.login(None, User("r", "R", "pharmacist"), "pharmacy")
    later = sessions_module.time.monotonic() + sessions_module.PHARMACY_IDLE_S + 1
    monkeypatch.setattr(sessions_module.time, "monotonic", lambda: later)
    assert store.peek(d.token) is None                     # idle expiry
    assert ended == [a.token, b.token, c.token, d.token]


def test_a_stream_ends_when_its_session_is_no_longer_alive(monkeypatch):
    import controller.web.events as events_module

    monkeypatch.setattr(events_module, "RECHECK_S", 0.0)

    async def scenario():
        hub = EventHub()
        client = hub.subscribe("tok")
        answers = iter([True, False])
        hub.publish({"n": 1})
        lines = [chunk async for chunk in hub.stream(client, lambda: next(answers))]
        assert json.loads(lines[1][len("data: "):]) == {"n": 1}
        assert json.loads(lines[-1][len("data: "):]) == {"type": "session", "state": "ended"}
        assert client not in hub.clients

    asyncio.run(scenario())


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def _stream_of(web, c):
    """A live-update stream of this browser's session, as /events makes it."""
    hub = web.app.state.web.hub
    return web.portal.call(_subscribe, hub, c.cookies.get(COOKIE))


async def _subscribe(hub, token):
    return hub.subscribe(token)


def _messages(client):
    messages = []
    while not client.queue.empty():
        messages.append(client.queue.get_nowait())
    return messages


def _last(client):
    messages = _messages(client)
    return messages[-1] if messages else None


def test_logout_and_deactivation_cut_the_live_updates(web):
    ph = web.client()
    token = ph_login(ph)
    stream = _stream_of(web, ph)
    assert ph.post("/logout", data={"csrf": token}).headers["location"] == "/pharmacy/login"
    assert stream.dropped and _last(stream) == ENDED

    # As the app's lifespan does (the test client does not run it): the cabinet's events.
    cab_listeners = web.cabinet.listeners
    cab_listeners.append(web.app.state.web.on_cabinet_event)
    victim, admin = web.client(), web.client()
    ph_login(victim)
    admin_token = ph_login(admin, "admin1")
    stream = _stream_of(web, victim)
    nurse = web.client(host="127.0.0.1")
    login(nurse, "ide2")
    nurse_stream = _stream_of(web, nurse)
    for user in ("pharma1", "ide2"):
        r = admin.post(f"/pharmacy/users/{user}/deactivate",
                       data={"csrf": admin_token, "confirm": user})
        assert r.status_code == 303
    assert stream.dropped and _last(stream) == ENDED
    wait_for(web, lambda: nurse_stream.dropped)    # when the cabinet locks
    assert ENDED in _messages(nurse_stream)
    assert stream not in web.app.state.web.hub.clients


def test_the_stream_check_does_not_keep_an_idle_pharmacy_session(web, monkeypatch):
    import controller.web.sessions as sessions_module

    ph = web.client()
    ph_login(ph)
    token = ph.cookies.get(COOKIE)
    app_web = web.app.state.web
    stream = _stream_of(web, ph)
    start = sessions_module.time.monotonic()
    monkeypatch.setattr(sessions_module.time, "monotonic", lambda: start + 10 * 60)
    assert app_web.alive(token)
    monkeypatch.setattr(sessions_module.time, "monotonic",
                        lambda: start + sessions_module.PHARMACY_IDLE_S + 60)
    assert not app_web.alive(token)   # idle since the last page, whatever the stream did
    assert stream.dropped and _last(stream) == ENDED


def test_an_error_the_cabinet_meets_alone_is_kept_for_the_kiosk_next_page(web):
    """The drawer's own Close button closed a drawer that jammed part-open: no page call
    awaits it, so the cabinet sends an ``error`` event. The operation page leaves for the
    menu as the operation ends; the menu must still say it, in the person's language."""
    web.cabinet.listeners.append(web.app.state.web.on_cabinet_event)
    nurse = web.client(host="127.0.0.1")
    login(nurse, "ide1")
    web.portal.call(web.cabinet._emit, {
        "type": "error", "code": "JAMMED_PART_OPEN",
        "en": "drawer A jammed while closing <A-1-1>",
        "fr": "le tiroir A s'est bloqué en se fermant <A-1-1>"})
    page = nurse.get("/menu").text
    assert "JAMMED_PART_OPEN" in page
    assert "s&#39;est bloqué en se fermant &lt;A-1-1&gt;" in page or \
        "drawer A jammed while closing &lt;A-1-1&gt;" in page
    assert "<A-1-1>" not in page
    other = web.client()                       # a pharmacy page is not the kiosk
    ph_login(other)
    assert "JAMMED_PART_OPEN" not in other.get("/pharmacy").text
