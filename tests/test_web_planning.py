"""The planning pages: layout proposal (pharmacy), re-layout tasks (touchscreen), par levels
(pharmacy), the pick list from the approved levels, alarms in the person's language."""

from __future__ import annotations

import functools
import html
import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from test_web import HOSTILE, login, ph_login, running_web, wait_for
from web_helpers import PINS

from controller import relayout, replenishment
from controller.alarms import Where, message
from controller.stock.classify import classify
from controller.stock.forecast import METHODS
from controller.store import JournalEntry
from controller.web import app as app_module
from controller.web.i18n import EN, FR


@pytest.fixture
def web(tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "LAYOUT_SECONDS", 1.0)  # the page asks for 5 s
    yield from running_web(tmp_path)


def propose_on_page(c, token, **extra):
    r = c.post("/pharmacy/layout/propose", data={"csrf": token, "max_moves": "", **extra})
    assert r.status_code == 303 and r.headers["location"] == "/pharmacy/layout", r.text
    return c.get("/pharmacy/layout").text


def last_proposal(web):
    rows = web.runtime.store.query("SELECT id FROM layout_proposals ORDER BY id DESC LIMIT 1")
    return relayout.describe(web.cabinet, rows[0]["id"]) if rows else None


def test_layout_page_computes_shows_and_approves(web):
    c = web.client()
    token = ph_login(c)
    page = c.get("/pharmacy/layout").text
    assert 'id="no-proposal"' in page and "Aujourd&#39;hui" in page
    r = c.post("/pharmacy/layout/propose", data={"max_moves": ""})
    assert r.status_code == 403 and "CSRF_FAILED" in r.text and last_proposal(web) is None
    r = c.post("/pharmacy/layout/propose", data={"csrf": token, "max_moves": "-2"})
    assert "[BAD_NUMBER]" in c.get("/pharmacy/layout").text and last_proposal(web) is None
    page = propose_on_page(c, token)
    proposal = last_proposal(web)
    assert proposal["created_by"] == "pharma1" and proposal["status"] == "proposed"
    assert web.cabinet.session.state == "locked"  # the touchscreen was never used
    assert f'id="score-today-adjacent">{proposal["current_adjacent"]}<' in page
    assert f'id="score-adjacent"><b>{proposal["adjacent"]}</b>' in page
    assert "paires à risque dans un même tiroir ouvert" in page
    assert page.count('class="pocket') >= 2 * 18  # today and proposed, drawer by drawer
    assert len(re.findall(r"<li>Sortir |<li>Ranger ", page)) == len(proposal["moves"])
    # Both pockets of each conflicting pair are outlined, and the pair is listed.
    for pair in proposal["conflicts"]:
        for r, col in pair["cells"]:
            label = f'{pair["drawer"]}-{r + 1}-{col + 1}'
            assert re.search(r'class="pocket conflict[^"]*" data-pocket="' + label, page)
    assert page.count("similarité") == len(proposal["conflicts"]) + page.count(
        'id="pairs-today"') * proposal["current_adjacent"]
    # Approve without the token: refused; with it: the task list replaces the buttons.
    pid = proposal["id"]
    assert c.post(f"/pharmacy/layout/{pid}/approve", data={"note": "x"}).status_code == 403
    r = c.post(f"/pharmacy/layout/{pid}/approve", data={"csrf": token, "note": "ok pour moi"})
    assert r.status_code == 303
    page = c.get("/pharmacy/layout").text
    assert "Plan approuvé" in page and 'id="approve-layout"' not in page
    tasks = relayout.tasks(web.cabinet)
    assert len(tasks) == len(proposal["moves"])
    if tasks:
        assert 'id="layout-tasks"' in page and f'id="task-{tasks[0]["id"]}"' in page
    row = web.runtime.store.journal_rows(kind="layout_approved")[-1]
    assert row["user"] == "pharma1" and "ok pour moi" in row["detail"]
    # Deciding twice is refused with the cabinet's code, shown on the page.
    c.post(f"/pharmacy/layout/{pid}/reject", data={"csrf": token, "note": ""})
    assert "[PROPOSAL_DECIDED]" in c.get("/pharmacy/layout").text


def test_layout_reject_and_english(web):
    cab = web.cabinet
    c = web.client()
    token = ph_login(c)
    c.post("/lang", data={"csrf": token, "lang": "en", "next": "pharmacy"})
    page = propose_on_page(c, token, max_moves="2")
    assert "look-alike pairs side by side" in page and "Compute a proposal" in page
    proposal = last_proposal(web)
    assert len(proposal["moves"]) <= 2 * 2  # a swap cycle may use the bench
    r = c.post(f"/pharmacy/layout/{proposal['id']}/reject", data={"csrf": token,
                                                                   "note": "pas maintenant"})
    assert r.status_code == 303
    assert "Proposal rejected" in c.get("/pharmacy/layout").text
    assert relayout.describe(cab, proposal["id"])["status"] == "rejected"
    assert relayout.tasks(cab) == []


@pytest.mark.parametrize("who", ["ide1", "prep1"])
def test_nurse_and_technician_are_refused_on_pharmacist_endpoints(web, who):
    c = web.client(host="127.0.0.1")
    token = login(c, who)
    for path in ("/pharmacy/layout/propose", "/pharmacy/layout/1/approve",
                 "/pharmacy/layout/1/reject", "/pharmacy/levels/propose",
                 "/pharmacy/levels/1/decide"):
        r = c.post(path, data={"csrf": token, "note": "", "decision": "accept"})
        assert r.status_code == 403 and "FORBIDDEN" in r.text, path
    for path in ("/pharmacy/layout", "/pharmacy/levels"):
        assert c.get(path).status_code == 403
    assert last_proposal(web) is None


def test_admin_sees_no_layout_nor_levels(web):
    c = web.client()
    token = ph_login(c, "admin1")
    assert 'id="tab-layout"' not in c.get("/pharmacy").text
    assert c.get("/pharmacy/layout").status_code == 403
    r = c.post("/pharmacy/layout/propose", data={"csrf": token})
    assert r.status_code == 403 and last_proposal(web) is None


def test_hostile_drug_names_are_escaped_on_the_layout_page(web):
    def rename() -> None:  # on the cabinet's loop, which owns every write
        with web.runtime.store.transaction() as conn:
            conn.execute("UPDATE drugs SET name=?, strength=? WHERE id='IBU400'",
                         (HOSTILE, HOSTILE))

    web.portal.call(rename)
    c = web.client()
    token = ph_login(c)
    page = propose_on_page(c, token)
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def run_task_on_touchscreen(web, c, token):
    """One start → count → close round of the first task, as the touchscreen does it, then
    back on the task list, whose form records the round (the kiosk's script posts it)."""
    operate_first_task(web, c, token)
    page = c.get("/relayout").text
    assert 'action="/relayout/finish"' in page and "data-autosubmit" in page
    r = c.post("/relayout/finish", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/relayout", r.text
    return c.get("/relayout").text


def operate_first_task(web, c, token):
    """Start, count and close the first task's operation at the touchscreen; ends when the
    page's live update would send the person back (to the task list, through /menu)."""
    cab = web.cabinet
    page = c.get("/relayout").text
    task_id = int(re.search(r'action="/relayout/(\d+)/start"', page).group(1))
    r = c.post(f"/relayout/{task_id}/start", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/operation", r.text
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    op = cab.session.op
    view = c.get("/operation").text
    if op.kind == "move_out":
        assert "puis comptez 0" in view
        count = 0
    else:
        assert op.kind == "move_in" and "du plan de travail" in view
        count = op.qty
    assert c.post("/operation/count", data={"csrf": token, "count": str(count)}
                  ).status_code == 303
    assert c.post("/operation/close", data={"csrf": token}).status_code == 303
    wait_for(web, lambda: cab.session.op is None)
    # The page's live update sends the person to /menu, which returns to the task list.
    assert c.get("/menu").headers["location"] == "/relayout"


def tasks_and_journal(web):
    store = web.runtime.store
    return (store.query("SELECT * FROM layout_tasks ORDER BY id"),
            store.query("SELECT seq FROM journal"))


def test_coming_back_to_the_task_list_changes_nothing_until_its_form_is_posted(web):
    """``GET /relayout`` used to record the task whose operation had just ended: a GET that
    changed the layout's state, which a prefetch, a reload or a link from another site
    could trigger. The page now only offers it, a form that the kiosk's script posts at
    once; recording is a POST with the session's CSRF token, for the session's own task."""
    ph = web.client()
    ph_token = ph_login(ph)
    propose_on_page(ph, ph_token)
    proposal = last_proposal(web)
    ph.post(f"/pharmacy/layout/{proposal['id']}/approve", data={"csrf": ph_token})
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")
    first = relayout.tasks(web.cabinet)[0]["id"]
    for _ in range(3):  # out then in (or from the bench): the task is done after its last
        operate_first_task(web, c, token)
        before = tasks_and_journal(web)
        for _ in range(2):
            page = c.get("/relayout").text
            assert 'action="/relayout/finish"' in page and "data-autosubmit" in page
            assert 'id="start-task"' not in page  # no stale list to start from meanwhile
            assert tasks_and_journal(web) == before
        for sent in ({}, {"csrf": "forged"}, {"csrf": token[:-1]}):
            r = c.post("/relayout/finish", data=sent)
            assert r.status_code == 403 and "CSRF_FAILED" in r.text
            assert tasks_and_journal(web) == before
        r = c.post("/relayout/finish", data={"csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/relayout"
        page = c.get("/relayout").text
        assert 'action="/relayout/finish"' not in page
        if first not in {t["id"] for t in relayout.tasks(web.cabinet)}:
            break
        assert FR["relayout.half_done"] in html.unescape(page)
        assert tasks_and_journal(web)[0] == before[0]  # half done: nothing to record yet
    assert first not in {t["id"] for t in relayout.tasks(web.cabinet)}
    assert FR["relayout.task_done"] in html.unescape(page)
    done = web.runtime.store.journal_rows(kind="layout_task_done")
    assert [json.loads(r["detail"])["task"] for r in done] == [first]
    # Posted again (a double tap, the browser's resend): nothing more is recorded.
    assert c.post("/relayout/finish", data={"csrf": token}).headers["location"] == "/relayout"
    assert len(web.runtime.store.journal_rows(kind="layout_task_done")) == 1


def test_relayout_tasks_on_the_touchscreen_until_the_proposal_is_the_layout(web):
    cab = web.cabinet
    ph = web.client()
    token = ph_login(ph)
    propose_on_page(ph, token)
    proposal = last_proposal(web)
    assert proposal["moves"], "the demo layout has look-alikes in one open drawer"
    ph.post(f"/pharmacy/layout/{proposal['id']}/approve", data={"csrf": token})
    total = sum(web.runtime.store.on_hand(p["drawer"], p["row"], p["col"])
                for p in relayout.current_placements(cab))
    c = web.client(host="127.0.0.1")
    assert c.get("/relayout").headers["location"] == "/"  # the touchscreen's own page
    nurse_token = login(c, "ide1")
    assert 'id="go-relayout"' not in c.get("/menu").text
    assert c.get("/relayout").status_code == 403
    assert c.post("/relayout/1/start", data={"csrf": nurse_token}).status_code == 403
    c.post("/logout", data={"csrf": nurse_token})
    token = login(c, "prep1")
    menu = c.get("/menu").text
    assert f"Réaménagement ({len(proposal['moves'])})" in menu
    page = c.get("/relayout").text
    assert page.count('id="start-task"') == 1  # only the first task can start
    if any(m["from"] is None for m in proposal["moves"]):  # a swap cycle goes via the bench
        assert "sur le plan de travail (revient à la fin)" in page
        assert "rapporter à la pharmacie" not in page
    for _ in range(2 * len(proposal["moves"]) + 2):
        if not relayout.tasks(cab):
            break
        page = run_task_on_touchscreen(web, c, token)
    assert relayout.tasks(cab) == []
    assert 'id="no-tasks"' in page
    assert 'id="go-relayout"' not in c.get("/menu").text
    placed = {p["drug"]: (p["drawer"], p["row"], p["col"])
              for p in relayout.current_placements(cab)}
    wanted = {p["drug"]: (p["drawer"], p["row"], p["col"]) for p in proposal["placements"]}
    assert placed == wanted
    assert total == sum(web.runtime.store.on_hand(p["drawer"], p["row"], p["col"])
                        for p in relayout.current_placements(cab))
    assert not [a for a in cab.alarms.list() if a["kind"] == "discrepancy"]
    done = web.runtime.store.journal_rows(kind="layout_task_done")
    assert len(done) == len(proposal["moves"]) and {r["user"] for r in done} == {"prep1"}


def stuck_on_the_bench(web, *, swap: bool = False):
    """Paracetamol (A-1-1) approved for B-3-3, taken out onto the bench at the touchscreen
    by the technician, then drawer B goes offline. Returns (client, token, units).
    ``swap``: as a swap cycle's two tasks (onto the bench, then from it into B-3-3)."""
    from helpers import approved_tasks

    from controller import formulary
    from controller.store import StockDelta

    cab = web.cabinet
    store = web.runtime.store

    async def free_b33() -> None:
        """The demo fills every pocket: lorazepam's units taken (journaled), then its
        pocket given up, so B-3-3 can be paracetamol's new pocket."""
        for lot in store.query("SELECT * FROM stock WHERE drawer='B' AND row=2 AND col=2"):
            store.append(JournalEntry("withdraw", drug=lot["drug"], drawer="B", row=2, col=2,
                                      qty=lot["on_hand"], lot=lot["lot"],
                                      expiry=lot["expiry"]),
                         [StockDelta("B", 2, 2, lot["lot"], lot["drug"], lot["expiry"],
                                     -lot["on_hand"])])
        formulary.unassign_pocket(cab, "B", 2, 2, actor=cab.authenticate(
            "pharma1", PINS["pharma1"]))
        # A proposal the layout page can draw: today's layout, paracetamol in B-3-3.
        problem = relayout.build_problem(cab)
        placements = [{**p, **({"drawer": "B", "row": 2, "col": 2}
                               if p["drug"] == "PARA500" else {})}
                      for p in problem["current"]]
        approved_tasks(store, 90, [("PARA500", ("A", 0, 0), (None, None, None), 60),
                                   ("PARA500", (None, None, None), ("B", 2, 2), 60)]
                       if swap else [("PARA500", ("A", 0, 0), ("B", 2, 2), 60)])
        with store.transaction() as conn:
            conn.execute("UPDATE layout_proposals SET problem=?, solution=? WHERE id=90",
                         (json.dumps(problem), json.dumps({"placements": placements})))

    web.portal.call(free_b33)
    before = store.on_hand("A", 0, 0)
    c = web.client(host="127.0.0.1")
    token = login(c, "prep1")
    page = run_task_on_touchscreen(web, c, token)  # the move out: units on the bench
    assert store.on_bench("PARA500") == before and 'id="put-back"' not in page
    web.portal.call(functools.partial(cab.units["B"].fire, "ev_offline",
                                      detail={"reason": "TEST"}))
    return c, token, before


def test_relayout_put_back_on_the_touchscreen_when_the_new_drawer_is_out_of_service(web):
    """Paracetamol taken out of A-1-1 for a pocket of drawer B, and drawer B goes offline:
    the list offers, instead of Start, to put the units back into A-1-1 (with the CSRF
    token, for the technician only); done, the task asks for the move out again and the
    pharmacist's abandon goes through. Meanwhile the pharmacist's return to pharmacy is
    refused: the units can go back."""
    cab = web.cabinet
    store = web.runtime.store
    c, token, before = stuck_on_the_bench(web)
    ph = web.client()
    ph_token = ph_login(ph)
    page = ph.get("/pharmacy/layout").text
    assert 'id="return-to-pharmacy"' in page
    [task] = relayout.tasks(cab)
    ph.post(f"/pharmacy/layout/tasks/{task['id']}/return",
            data={"csrf": ph_token, "count": str(before), "note": ""})
    assert "[PUT_BACK_FIRST]" in ph.get("/pharmacy/layout").text
    assert store.on_bench("PARA500") == before
    page = c.get("/relayout").text
    [task] = relayout.tasks(cab)
    assert 'id="start-task"' not in page and 'id="put-back"' in page
    assert "Le tiroir B est hors service" in page and "Remettre dans A-1-1" in page
    assert c.post(f"/relayout/{task['id']}/put_back", data={}).status_code == 403
    r = c.post(f"/relayout/{task['id']}/put_back", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/operation", r.text
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    assert cab.session.op.pocket.label == "A-1-1"
    assert c.post("/operation/count", data={"csrf": token, "count": str(before)}
                  ).status_code == 303
    assert c.post("/operation/close", data={"csrf": token}).status_code == 303
    wait_for(web, lambda: cab.session.op is None)
    assert c.get("/menu").headers["location"] == "/relayout"
    page = c.get("/relayout").text
    assert 'id="put-back"' not in page and 'id="start-task"' in page
    assert store.on_bench("PARA500") == 0 and store.on_hand("A", 0, 0) == before
    c.post("/logout", data={"csrf": token})
    nurse = web.client(host="127.0.0.1")
    nurse_token = login(nurse, "ide1")
    r = nurse.post(f"/relayout/{task['id']}/put_back", data={"csrf": nurse_token})
    assert r.status_code == 403
    assert ph.post("/pharmacy/layout/abandon", data={"csrf": ph_token, "note": "tiroir B",
                                                   "confirm": "1"}
                   ).status_code == 303
    assert relayout.tasks(cab) == []


def test_a_swap_cycles_task_put_back_offers_no_start_again(web):
    """After the put back of a swap cycle's bench task, and drawer B back, Start would move
    0 units into B-3-3 and leave paracetamol in two pockets: the list offers no Start but
    says why (the pharmacist abandons), and a Start posted anyway is refused
    ``PUT_BACK_DONE`` on the server, in the person's language."""
    cab = web.cabinet
    store = web.runtime.store
    c, token, before = stuck_on_the_bench(web, swap=True)
    [task] = relayout.tasks(cab)
    r = c.post(f"/relayout/{task['id']}/put_back", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/operation", r.text
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    assert c.post("/operation/count", data={"csrf": token, "count": str(before)}
                  ).status_code == 303
    assert c.post("/operation/close", data={"csrf": token}).status_code == 303
    wait_for(web, lambda: cab.session.op is None)
    web.portal.call(functools.partial(cab.units["B"].fire, "ev_online"))
    web.portal.call(cab.units["B"].sync_from_switches)
    assert cab.units["B"].state == "closed"
    page = c.get("/relayout").text
    assert 'id="start-task"' not in page and 'id="put-back"' not in page
    assert 'id="put-back-done"' in page and "remises dans la poche A-1-1" in page
    head = store.head()
    c.post(f"/relayout/{task['id']}/start", data={"csrf": token})
    assert "[PUT_BACK_DONE]" in c.get("/relayout").text
    assert store.head() == head and cab.pocket("B", 2, 2).drug is None


def test_pharmacist_returns_bench_units_to_pharmacy_on_the_layout_page(web):
    """Drawer A goes offline too: the units cannot go back into A-1-1. The layout page's
    form (pharmacist, CSRF) records them as returned to the pharmacy, one short (a
    discrepancy); the re-layout is over. A technician may not post it."""
    cab = web.cabinet
    store = web.runtime.store
    c, token, before = stuck_on_the_bench(web)
    web.portal.call(functools.partial(cab.units["A"].fire, "ev_offline",
                                      detail={"reason": "TEST"}))
    [task] = relayout.tasks(cab)
    path = f"/pharmacy/layout/tasks/{task['id']}/return"
    assert c.post(path, data={"csrf": token, "count": "1"}).status_code == 403
    ph = web.client()
    ph_token = ph_login(ph)
    assert "Le tiroir B est hors service" in ph.get("/pharmacy/layout").text
    assert ph.post(path, data={"count": str(before - 1), "note": ""}).status_code == 403
    r = ph.post(path, data={"csrf": ph_token, "count": str(before - 1), "note": "tiroirs HS"})
    assert r.status_code == 303
    page = ph.get("/pharmacy/layout").text
    assert f"{before - 1} unité(s) enregistrée(s) comme rendues à la pharmacie" in page
    assert relayout.tasks(cab) == [] and store.on_bench("PARA500") == 0
    assert [a["drug"] for a in cab.alarms.list() if a["kind"] == "discrepancy"] == ["PARA500"]


def add_history(web, days=30):
    """Withdrawals of paracétamol 500 mg from A-1-1 over ``days`` past days, journaled as the
    cabinet journals them (the advisor learns from the journal only). Written on the
    cabinet's own loop, as everything it writes is: from the test's thread they raced the
    cabinet's own rows for the next journal seq (UNIQUE constraint failed, seen once)."""
    store = web.runtime.store
    start = datetime.now(UTC) - timedelta(days=days)

    def write() -> None:
        clock = store.wallclock
        try:
            for day in range(days):
                store.wallclock = functools.partial(lambda d: start + timedelta(days=d), day)
                store.append(JournalEntry("withdraw", user="ide1", drug="PARA500", drawer="A",
                                          row=0, col=0, qty=2 + day % 4, lot="PA-2291",
                                          patient=f"P{day}"))
        finally:
            store.wallclock = clock

    web.portal.call(write)


def test_par_levels_accept_changes_the_level_and_the_pick_list(web):
    cab = web.cabinet
    c = web.client()
    token = ph_login(c)
    assert 'id="no-levels"' in c.get("/pharmacy/levels").text
    c.post("/pharmacy/levels/propose", data={"csrf": token})
    assert "[NO_HISTORY]" in c.get("/pharmacy/levels").text
    add_history(web)
    assert c.post("/pharmacy/levels/propose", data={}).status_code == 403
    assert c.post("/pharmacy/levels/propose", data={"csrf": token}).status_code == 303
    page = c.get("/pharmacy/levels").text
    assert "Taux de service en unités" in page and "part des unités demandées" in page
    [prop] = replenishment.pending(cab)
    assert f'id="level-{prop["id"]}"' in page and "A-1-1" in page
    assert f"{prop['current_min']} / {prop['current_max']}" in page
    rate = f"{100 * prop['details']['expected_fill_rate_units_served']:.1f}\u202f%".replace(
        ".", ",")  # a French page's decimal mark
    assert rate in page
    # The replay behind the figures is drawn under them: current and proposed lines.
    figure = page.split(f'id="replay-{prop["id"]}"')[1].split("</figure>")[0]
    assert figure.count("<polyline") == 2 and "unités en poche" in figure
    # The method and movement class are named in the pharmacist's language, not as codes.
    assert FR[f"levels.m.{prop['details']['method']}"] in page
    assert FR[f"levels.mv.{prop['details']['movement']}"] in page
    r = c.post(f"/pharmacy/levels/{prop['id']}/decide",
               data={"csrf": token, "decision": "maybe"})
    assert "[BAD_DECISION]" in c.get("/pharmacy/levels").text
    r = c.post(f"/pharmacy/levels/{prop['id']}/decide",
               data={"csrf": token, "decision": "accept", "note": "vu"})
    assert r.status_code == 303
    assert "Niveaux appliqués à la poche A-1-1" in c.get("/pharmacy/levels").text
    pocket = cab.pocket("A", 0, 0)
    assert (pocket.min_level, pocket.max_level) == (prop["min_level"],
                                                    min(prop["max_level"], pocket.capacity))
    assert web.runtime.store.journal_rows(kind="levels_approved")[-1]["user"] == "pharma1"
    # The technician's pick list follows the approved level and refills to the approved max.
    web.portal.call(functools.partial(cab.logout))
    t = web.client(host="127.0.0.1")
    login(t, "prep1")
    pick = t.get("/restock").text.split("<details")[0]
    listed = {p["pocket"]: p for p in replenishment.pick_list(cab)}
    assert ("pick-A-1-1" in pick) == ("A-1-1" in listed)
    assert ("pick-A-1-1" in pick) == (cab.usable(pocket) <= pocket.min_level)
    for label, p in listed.items():
        assert f'id="pick-{label}"' in pick
        assert f"apporter {p['bring']}" in pick and f"compléter à {p['refill_to']}" in pick
    if "A-1-1" in listed:
        assert listed["A-1-1"]["refill_to"] == pocket.max_level


def test_par_level_reject_keeps_the_level(web):
    cab = web.cabinet
    add_history(web, days=20)
    c = web.client()
    token = ph_login(c)
    c.post("/pharmacy/levels/propose", data={"csrf": token})
    [prop] = replenishment.pending(cab)
    c.post(f"/pharmacy/levels/{prop['id']}/decide",
           data={"csrf": token, "decision": "reject", "note": "trop bas"})
    assert replenishment.pending(cab) == []
    assert (cab.pocket("A", 0, 0).min_level, cab.pocket("A", 0, 0).max_level) == (None, None)
    row = web.runtime.store.journal_rows(kind="levels_rejected")[-1]
    assert row["user"] == "pharma1" and "trop bas" in row["detail"]


def test_alarm_messages_in_the_persons_language(web):
    cab = web.cabinet
    cab.alarms.raise_("low_stock", Where("PARA500", "A", 0, 0),
                      "pocket A-1-1: 3 unit(s) left (level 10)")
    cab.alarms.raise_("expired", Where("AMOX1G", "A", 1, 1, "AM-3310"), "something new")
    c = web.client()
    token = ph_login(c)
    page = c.get("/pharmacy").text
    assert "poche A-1-1 : 3 unité(s) restante(s) (seuil 10)" in page
    assert "Lot périmé dans la poche · poche A-2-2 · lot AM-3310 · amoxicilline" in page
    c.post("/lang", data={"csrf": token, "lang": "en", "next": "pharmacy"})
    page = c.get("/pharmacy").text
    assert "pocket A-1-1: 3 unit(s) left (level 10)" in page and "something new" in page


def test_alarm_message_forms():
    def fr(text, **fields):
        return message({"message": text, "kind": "discrepancy", **fields}, "fr")
    assert fr("pocket B-1-1: counted 11, expected 12") == \
        "poche B-1-1 : 11 compté(s), 12 attendu(s)"
    assert fr("lot L1 in A-1-1 expires on 2027-01-31") == "lot L1 dans A-1-1 : périme le 31/01/2027"
    assert fr("drawer A: jammed") == "tiroir A : bloqué"
    assert fr("user ide2 locked after 5 wrong PINs") == \
        "utilisateur ide2 bloqué après 5 codes erronés"
    assert fr("operation #7 ended without a count") == "opération n°7 terminée sans compte"
    assert fr("?", drawer="B") == "Écart de comptage · tiroir B"
    assert message({"message": "drawer A: jammed", "kind": "drawer_fault"}, "en") == \
        "drawer A: jammed"
    assert PINS  # the demo PINs are shared with test_web


def test_every_advisor_method_and_movement_class_has_a_name_in_both_languages():
    """A code the advisor can write into a proposal must never reach the page untranslated."""
    for name in [*METHODS, "normal", "sleeping"]:
        assert FR.get(f"levels.m.{name}") and EN.get(f"levels.m.{name}")
    y = np.array([[1.0] * 4 + [0.0] * 60, [5.0] * 64, [0.0, 0.0, 0.0, 2.0] * 16])
    movements = {c.movement for c in classify(y, np.ones(3), "day")}
    assert movements == {"sleeping", "fast", "slow"}
    for movement in movements:
        assert FR.get(f"levels.mv.{movement}") and EN.get(f"levels.mv.{movement}")


def test_a_tampered_replay_draws_nothing_and_injects_nothing(web):
    """Only numbers reach the inline SVG: stored text, even hostile, is not drawn."""
    import json

    c = web.client()
    token = ph_login(c)
    add_history(web)
    c.post("/pharmacy/levels/propose", data={"csrf": token})
    [prop] = replenishment.pending(web.cabinet)
    details = {**prop["details"], "path_proposed": [1, HOSTILE]}
    web.runtime.store.conn.execute("UPDATE level_proposals SET details=? WHERE id=?",
                                   (json.dumps(details), prop["id"]))
    page = c.get("/pharmacy/levels").text
    figure = page.split(f'id="replay-{prop["id"]}"')[1].split("</figure>")[0]
    assert "<svg" not in figure and HOSTILE not in page


def test_the_pharmacist_abandons_an_approved_re_layout_from_the_page(web):
    ph = web.client()
    token = ph_login(ph)
    propose_on_page(ph, token)
    proposal = last_proposal(web)
    ph.post(f"/pharmacy/layout/{proposal['id']}/approve", data={"csrf": token})
    page = ph.get("/pharmacy/layout").text
    assert 'id="abandon-layout"' in page
    r = ph.post("/pharmacy/layout/abandon", data={"csrf": token, "note": "later",
                                                   "confirm": "1"})
    assert r.status_code == 303
    page = ph.get("/pharmacy/layout").text
    assert "Réaménagement abandonné" in page and 'id="abandon-layout"' not in page
    assert relayout.tasks(web.cabinet) == []
    ph.post("/pharmacy/layout/abandon", data={"csrf": token, "confirm": "1"})
    assert "[NO_RELAYOUT]" in ph.get("/pharmacy/layout").text


@pytest.mark.parametrize("lang, text", [
    ("fr", "ligne {} du journal"),
    ("en", "journal row {} is not a valid withdrawal"),
])
def test_levels_on_a_journal_with_a_malformed_withdrawal_show_the_error(web, lang, text):
    """The pharmacist gets the page back with the coded message in her language, not a 500,
    and no proposal is made."""
    from test_store_journal import tamper

    add_history(web)
    [seq] = web.runtime.store.query("SELECT MAX(seq) AS seq FROM journal")[0].values()
    tamper(web.runtime.store.path, f"UPDATE journal SET ts = 'garbage' WHERE seq = {seq}")
    c = web.client()
    token = ph_login(c)
    c.post("/lang", data={"csrf": token, "lang": lang, "next": "pharmacy"})
    r = c.post("/pharmacy/levels/propose", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/pharmacy/levels"
    page = c.get("/pharmacy/levels").text
    assert "[JOURNAL_INTEGRITY]" in page and text.format(seq) in page
    assert replenishment.pending(web.cabinet) == []


@pytest.fixture
def lasa_web(tmp_path, monkeypatch):
    """The demo cabinet with a hospital LASA list: one pair it holds, written as a formulary
    would not, and one entry naming drugs it does not have (one of them hostile)."""
    monkeypatch.setattr(app_module, "LAYOUT_SECONDS", 1.0)
    (tmp_path / "lasa.csv").write_text(
        "name_a,name_b\nHydroxyzine (chlorhydrate d') 25 mg cp,HYDRALAZINE\n"
        f"Célébrex,{HOSTILE}\n", encoding="utf-8")
    yield from running_web(tmp_path, extra_config='[layout]\nlasa = "lasa.csv"\n')


def test_layout_page_reports_lasa_entries_that_match_no_drug(lasa_web):
    c = lasa_web.client()
    token = ph_login(c)
    page = c.get("/pharmacy/layout").text
    box = page[page.index('id="lasa-warnings"'):]
    box = box[:box.index("</section>")]
    # One entry (both its names unmatched), counted once.
    assert "Liste LASA de l&#39;hôpital : entrées à vérifier (1)" in box
    assert "« Célébrex » ne correspond à aucun médicament" in box
    assert "&lt;script&gt;" in box and HOSTILE not in page
    assert "hydroxyzine" not in box.lower()  # the pair it holds is matched: nothing to say
    # Still there with a proposal on the page, and in the reader's language.
    c.post("/lang", data={"csrf": token, "lang": "en", "next": "pharmacy"})
    page = propose_on_page(c, token)
    assert "Hospital LASA list: entries to check (1)" in page
    assert "“Célébrex” matches no drug" in page and HOSTILE not in page
    # The proposal the page computed keeps the listed pair at the list's floor.
    stored = lasa_web.runtime.store.query("SELECT problem FROM layout_proposals")[0]["problem"]
    assert ["Hydroxyzine (chlorhydrate d') 25 mg cp", "HYDRALAZINE", 1.0] in json.loads(
        stored)["lasa"]


def test_layout_page_says_nothing_of_lasa_without_a_list(web):
    c = web.client()
    ph_login(c)
    assert 'id="lasa-warnings"' not in c.get("/pharmacy/layout").text


def test_the_layout_page_calls_the_bench_one_name_in_french(web):
    """The stuck hint said "plan de travail" and the abandon hint, just under it,
    "plateau": two names for the one bench, as if units waited in two places."""
    stuck_on_the_bench(web)
    ph = web.client()
    ph_login(ph)
    page = html.unescape(ph.get("/pharmacy/layout").text)
    assert "plateau" not in page
    assert "Impossible tant que des unités attendent sur le plan de travail." in page
