"""From the assignment engine's proposal to the layout the cabinet enforces.

1. :func:`propose` builds the engine's problem from the cabinet itself (its drawers, the
   drugs placed today, today's layout as ``current`` so that moves cost), solves it, and
   stores the proposal with today's score beside it for the pharmacist.
2. :func:`approve` (pharmacist) turns the moves into a technician's task list. Nothing moves
   in the database at approval: a pocket's drug changes only when its stock has physically
   left it, so the cabinet never believes a pocket holds one drug while it holds another.
3. Each task runs through the cabinet's write-ahead path: ``move_out`` (drawer opens, the
   technician empties the pocket onto the bench, counts 0, the pocket is unassigned) then
   ``move_in`` (the units go into their new pocket, which is assigned to the drug). Restock
   then enforces the new layout as it enforced the old one.

A drug in several pockets (a fast mover given two) is several *slots* for the engine, whose
contract places each id once: the first pocket keeps the drug's id, the others are
``ID#2``, ``ID#3``… with the same name, strength and form (so the same look-alike
neighbours) and a similarity of 0 between themselves (two pockets of one drug side by side
are no confusion). Slots never leave this module: proposals are shown, approved and carried
out with the drug's real id, and each new pocket keeps the capacity of the pocket its slot
came from.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from controller.alarms import Where, text
from controller.auth import User, require
from controller.cabinet import Cabinet, Operation
from controller.decisions import ensure_undecided, note_detail
from controller.errors import InputError, NotFound, RuleViolation, StateError
from controller.layout import Placement, count_conflicts, moves, parse_problem, solve
from controller.layout.model import Drug, Problem, Solution
from controller.layout.names import LasaWarning, lasa_matches
from controller.store import JournalEntry

SLOT_SEP = "#"


def current_placements(cabinet: Cabinet) -> list[dict[str, Any]]:
    return cabinet.store.query(
        "SELECT drug, drawer, row, col, capacity FROM pockets WHERE drug IS NOT NULL "
        "ORDER BY drawer, row, col")


def drug_of(slot: str) -> str:
    """The drug a layout slot stands for (the id itself for a drug's first pocket)."""
    return slot.split(SLOT_SEP, 1)[0]


def _slots(placed: list[dict[str, Any]]) -> list[str]:
    """One layout id per placed pocket, in the order of ``placed``."""
    seen: dict[str, int] = {}
    out = []
    for p in placed:
        n = seen[p["drug"]] = seen.get(p["drug"], 0) + 1
        out.append(p["drug"] if n == 1 else f"{p['drug']}{SLOT_SEP}{n}")
    return out


def build_problem(cabinet: Cabinet, *, max_moves: int | None = None,
                  threshold: float | None = None) -> dict[str, Any]:
    """The contract's problem format, for the cabinet as it is today (one slot per placed
    pocket, see the module's docstring)."""
    placed = current_placements(cabinet)
    odd = sorted({p["drug"] for p in placed if SLOT_SEP in p["drug"]})
    if odd:
        # Provisioning accepts any id; one with the separator could not be told from a slot.
        raise RuleViolation(
            f"a re-layout cannot handle drug ids containing '{SLOT_SEP}': {', '.join(odd)}",
            f"un réaménagement ne sait pas traiter les codes contenant « {SLOT_SEP} » : "
            f"{', '.join(odd)}", code="BAD_DRUG_ID")
    ids = _slots(placed)
    drugs = {d["id"]: d for d in cabinet.store.query("SELECT * FROM drugs")}
    problem: dict[str, Any] = {
        "cabinet": {"drawers": [
            {"id": d["id"], "type": d["type"], "rows": d["rows"], "cols": d["cols"]}
            for d in cabinet.store.query("SELECT * FROM drawers ORDER BY position")]},
        "drugs": [{"id": i, "name": drugs[d]["name"],
                   **({"strength": drugs[d]["strength"]} if drugs[d]["strength"] else {}),
                   **({"form": drugs[d]["form"]} if drugs[d]["form"] else {}),
                   "high_alert": bool(drugs[d]["high_alert"]),
                   "controlled": bool(drugs[d]["controlled"])}
                  for i, d in ((i, drug_of(i)) for i in ids)],
        "current": [{"drug": i, "drawer": p["drawer"], "row": p["row"], "col": p["col"]}
                    for i, p in zip(ids, placed, strict=True)],
    }
    copies = [[a, b] for a in ids for b in ids if a < b and drug_of(a) == drug_of(b)]
    if copies:
        problem["similarity"] = {"pairs": [[a, b, 0] for a, b in copies]}
    if cabinet.config.lasa:
        problem["lasa"] = [list(entry) for entry in cabinet.config.lasa]
    if max_moves is not None:
        problem["max_moves"] = max_moves
    if threshold is not None:
        problem["threshold"] = threshold
    return problem


def lasa_warnings(cabinet: Cabinet) -> list[LasaWarning]:
    """The entries of the cabinet's LASA list (``[layout] lasa``) that match no drug of its
    formulary, or several different ones: shown on the pharmacy's layout page, so that a
    pair the list meant to keep apart is never lost in silence."""
    if not cabinet.config.lasa:
        return []
    drugs = [Drug(d["id"], d["name"], d["strength"] or "", d["form"] or "")
             for d in cabinet.store.query("SELECT id, name, strength, form FROM drugs "
                                          "ORDER BY id")]
    return lasa_matches(drugs, cabinet.config.lasa).warnings


def propose(cabinet: Cabinet, *, max_moves: int | None = None, threshold: float | None = None,
            time_limit: float = 5.0, seed: int = 0,
            actor: User | None = None) -> dict[str, Any]:
    """``actor`` is the pharmacist logged into the pharmacy pages; without it, the
    touchscreen's user acts (as for :meth:`Cabinet.resolve_alarm`)."""
    user, problem_dict, problem = _prepare(cabinet, max_moves, threshold, actor)
    solution = solve(problem, time_limit=time_limit, seed=seed)
    return _store(cabinet, user, problem_dict, problem, solution)


async def propose_async(cabinet: Cabinet, *, max_moves: int | None = None,
                        threshold: float | None = None, time_limit: float = 5.0, seed: int = 0,
                        actor: User | None = None) -> dict[str, Any]:
    """:func:`propose` for the controller's event loop: the search (seconds of CPU) runs in
    a worker thread so drawers and pages keep being served; the database is only touched
    from the loop, before and after."""
    user, problem_dict, problem = _prepare(cabinet, max_moves, threshold, actor)
    solution = await asyncio.to_thread(solve, problem, time_limit=time_limit, seed=seed)
    return _store(cabinet, user, problem_dict, problem, solution)


def _prepare(cabinet: Cabinet, max_moves: int | None, threshold: float | None,
             actor: User | None) -> tuple[User, dict[str, Any], Problem]:
    user = cabinet.acting(actor, "approve_layout")
    if tasks(cabinet):
        # Drugs on the bench are in no pocket: a proposal made now would leave them out.
        raise StateError("a re-layout is running: finish its tasks first",
                         "un réaménagement est en cours : terminez d'abord ses tâches",
                         code="RELAYOUT_RUNNING")
    problem_dict = build_problem(cabinet, max_moves=max_moves, threshold=threshold)
    if not problem_dict["drugs"]:
        raise RuleViolation("no drug is placed in the cabinet yet",
                            "aucun médicament n'est encore placé", code="EMPTY_LAYOUT")
    return user, problem_dict, parse_problem(problem_dict)


def _keep_copies_in_place(today: list[Placement], proposed: list[dict[str, Any]]
                          ) -> list[dict[str, Any]]:
    """Slots of one drug are interchangeable: give each pocket of the drug that the proposal
    keeps to the slot already there, so that no move shuffles a drug between its own
    pockets (the engine, seeing distinct ids, may swap them at no cost to its score)."""
    now = {p.drug: (p.drawer, p.row, p.col) for p in today}
    by_drug: dict[str, list[dict[str, Any]]] = {}
    for p in proposed:
        by_drug.setdefault(drug_of(p["drug"]), []).append(p)
    out = []
    for group in by_drug.values():
        if len(group) == 1:
            out.extend(group)
            continue
        slots = sorted(p["drug"] for p in group)
        pockets = [(p["drawer"], p["row"], p["col"]) for p in group]
        staying = {s: now[s] for s in slots if now.get(s) in pockets}
        free_slots = [s for s in slots if s not in staying]
        free_pockets = [q for q in pockets if q not in staying.values()]
        for s, (d, r, c) in [*staying.items(), *zip(free_slots, free_pockets, strict=True)]:
            out.append({"drug": s, "drawer": d, "row": r, "col": c})
    return out


def _store(cabinet: Cabinet, user: User, problem_dict: dict[str, Any], problem: Problem,
           solution: Solution) -> dict[str, Any]:
    today = [Placement(p["drug"], p["drawer"], p["row"], p["col"])
             for p in problem_dict["current"]]
    now_adjacent, now_same = count_conflicts(problem, today)
    stored = solution.to_dict()
    stored["placements"] = _keep_copies_in_place(today, stored["placements"])
    with cabinet.store.transaction() as c:
        c.execute("UPDATE layout_proposals SET status='superseded' WHERE status='proposed'")
        cur = c.execute(
            """INSERT INTO layout_proposals (created_ts, created_by, problem, solution, adjacent,
               same_drawer, lower_bound, current_adjacent, current_same_drawer)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (cabinet.store.now_iso(), user.id, json.dumps(problem_dict),
             json.dumps(stored), solution.adjacent_conflicts,
             solution.same_drawer_conflicts, solution.lower_bound, now_adjacent, now_same))
        proposal_id = int(cur.lastrowid or 0)
        cabinet.store.append(JournalEntry(
            "layout_proposed", user=user.id,
            detail={"proposal": proposal_id, "adjacent": solution.adjacent_conflicts,
                    "same_drawer": solution.same_drawer_conflicts,
                    "current_adjacent": now_adjacent}))
    return describe(cabinet, proposal_id)


def describe(cabinet: Cabinet, proposal_id: int) -> dict[str, Any]:
    """A proposal with what the pharmacist needs to judge it: the conflicting pairs (to
    highlight on the drawing), today's score, and the technician's moves. Drugs are named by
    their ids; each move also carries its ``slot`` and ``source`` (the pocket its capacity
    comes from)."""
    rows = cabinet.store.query("SELECT * FROM layout_proposals WHERE id=?", (proposal_id,))
    if not rows:
        raise NotFound(f"no layout proposal {proposal_id}",
                       f"aucune proposition de plan {proposal_id}", code="UNKNOWN_PROPOSAL")
    row = rows[0]
    problem_dict = json.loads(row["problem"])
    solution = json.loads(row["solution"])
    problem = parse_problem(problem_dict)
    placements = [Placement(p["drug"], p["drawer"], p["row"], p["col"])
                  for p in solution["placements"]]
    today = [Placement(p["drug"], p["drawer"], p["row"], p["col"])
             for p in problem_dict["current"]]
    source = {p.drug: {"drawer": p.drawer, "row": p.row, "col": p.col} for p in today}
    return {**{k: row[k] for k in ("id", "status", "created_ts", "created_by", "adjacent",
                                   "same_drawer", "lower_bound", "current_adjacent",
                                   "current_same_drawer", "decided_by", "decided_ts")},
            "placements": [{**p, "drug": drug_of(p["drug"])} for p in solution["placements"]],
            "conflicts": [{**c, "a": drug_of(c["a"]), "b": drug_of(c["b"])}
                          for c in conflict_pairs(problem, placements)],
            "moves": [{**m.to_dict(), "drug": drug_of(m.drug), "slot": m.drug,
                       "source": source.get(m.drug)} for m in moves(today, placements)]}


def conflict_pairs(problem: Any, placements: list[Placement]) -> list[dict[str, Any]]:
    """Incompatible drugs in pockets sharing a side: the pairs to draw in red.

    The sides are the engine's own (``problem.edges``), so a carousel's ring (its last slot
    next to its first) is drawn as the engine counts it: every adjacent conflict of the
    proposal's score appears here, none is left for the pharmacist to find alone.
    """
    index = {d.id: i for i, d in enumerate(problem.drugs)}
    at = {(p.drawer, p.row, p.col): p.drug for p in placements}
    found = []
    for a, b in problem.edges.tolist():
        (drawer, row, col), (_, nr, nc) = sorted((problem.pocket_label(a),
                                                  problem.pocket_label(b)))
        drug, other = at.get((drawer, row, col)), at.get((drawer, nr, nc))
        if drug is not None and other is not None \
                and problem.incompatible[index[drug], index[other]]:
            found.append(((drawer, row, col, nr, nc), {
                "a": drug, "b": other, "drawer": drawer, "cells": [[row, col], [nr, nc]],
                "similarity": round(float(problem.similarity[index[drug], index[other]]), 3)}))
    return [pair for _, pair in sorted(found, key=lambda item: item[0])]


def approve(cabinet: Cabinet, proposal_id: int, note: str = "", *,
            actor: User | None = None) -> list[dict[str, Any]]:
    user = cabinet.acting(actor, "approve_layout")
    proposal = describe(cabinet, proposal_id)
    ensure_undecided(proposal_id, proposal["status"])
    if cabinet.store.query("SELECT 1 FROM layout_tasks WHERE state='pending' LIMIT 1"):
        raise StateError("the previous re-layout is not finished",
                         "le réaménagement précédent n'est pas terminé",
                         code="RELAYOUT_RUNNING")
    stored = json.loads(cabinet.store.query(
        "SELECT problem FROM layout_proposals WHERE id=?", (proposal_id,))[0]["problem"])
    fresh = build_problem(cabinet)
    if any(stored.get(part) != fresh.get(part) for part in ("cabinet", "drugs", "current",
                                                            "lasa")):
        # Made from another layout than today's (a re-layout or a pocket change since):
        # its moves would start from pockets that no longer hold what they say. Or from
        # other drugs (a name, a high-alert or controlled flag changed while it was being
        # computed: the change superseded the proposals stored before it, not this one),
        # so it may leave a drug now high-alert in an open drawer or by a new look-alike.
        # Or under another LASA list (changed, then the controller restarted): a pair
        # listed since may be side by side in it.
        raise StateError("the cabinet or its drugs changed since this proposal: compute a "
                         "new one",
                         "l'armoire ou ses médicaments ont changé depuis cette "
                         "proposition : calculez-en une nouvelle", code="PROPOSAL_STALE")
    capacity = {(p["drawer"], p["row"], p["col"]): p["capacity"]
                for p in current_placements(cabinet)}
    with cabinet.store.transaction() as c:
        c.execute("UPDATE layout_proposals SET status='approved', decided_by=?, decided_ts=? "
                  "WHERE id=?", (user.id, cabinet.store.now_iso(), proposal_id))
        for seq, m in enumerate(proposal["moves"]):
            src, dst = m["from"] or {}, m["to"] or {}
            c.execute(
                """INSERT INTO layout_tasks (proposal, seq, drug, src_drawer, src_row, src_col,
                   dst_drawer, dst_row, dst_col, capacity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,
                   ?)""",
                (proposal_id, seq, m["drug"], src.get("drawer"), src.get("row"),
                 src.get("col"), dst.get("drawer"), dst.get("row"), dst.get("col"),
                 _capacity_of(capacity, m["source"])))
        cabinet.store.append(JournalEntry(
            "layout_approved", user=user.id,
            detail={"proposal": proposal_id, "moves": len(proposal["moves"]),
                    **note_detail(note)}))
    return tasks(cabinet)


def _capacity_of(capacity: dict[tuple[str, int, int], int], source: dict[str, Any] | None
                 ) -> int:
    """The capacity a slot's new pocket gets: that of the pocket it leaves."""
    if source is None:
        return 0
    return capacity.get((source["drawer"], source["row"], source["col"]), 0)


def reject(cabinet: Cabinet, proposal_id: int, note: str = "", *,
           actor: User | None = None) -> None:
    user = cabinet.acting(actor, "approve_layout")
    proposal = describe(cabinet, proposal_id)
    ensure_undecided(proposal_id, proposal["status"])
    with cabinet.store.transaction() as c:
        c.execute("UPDATE layout_proposals SET status='rejected', decided_by=?, decided_ts=? "
                  "WHERE id=?", (user.id, cabinet.store.now_iso(), proposal_id))
        cabinet.store.append(JournalEntry("layout_rejected", user=user.id,
                                          detail={"proposal": proposal_id,
                                                  **note_detail(note)}))


def abandon(cabinet: Cabinet, note: str = "", *, actor: User | None = None) -> int:
    """Stop a re-layout halfway: its pending tasks are dropped, and the cabinet keeps the
    layout it has now (each pocket's drug is always what the technician left in it).

    Refused while any unit waits on the bench (``DRUG_ON_BENCH``: they belong in a pocket
    first, or they would be in none), while a drug taken out with no unit is in no pocket
    (``DRUG_WITHOUT_POCKET``: it would leave the cabinet's layout unseen) or while an
    operation runs. Returns how many tasks were
    dropped. Journaled ``layout_abandoned``.
    """
    user = cabinet.acting(actor, "approve_layout")
    pending = tasks(cabinet)
    if not pending:
        raise StateError("no re-layout is running", "aucun réaménagement en cours",
                         code="NO_RELAYOUT")
    op = cabinet.session.op
    if op is not None and op.step not in ("done", "aborted"):
        raise StateError("an operation is running at the cabinet: try again after",
                         "une opération est en cours à l'armoire : réessayez ensuite",
                         code="OPERATION_RUNNING")
    benched = cabinet.store.query("SELECT drug, SUM(qty) AS n FROM bench GROUP BY drug "
                                  "HAVING SUM(qty) > 0 ORDER BY drug")
    if benched:
        listed = ", ".join(f"{r['drug']} ({r['n']})" for r in benched)
        raise RuleViolation(f"units wait on the bench: {listed}; put them in a pocket first",
                            f"des unités attendent sur le plan de travail : {listed} ; rangez-les "
                            "d'abord dans une poche", code="DRUG_ON_BENCH")
    # A drug taken out with no unit left puts nothing on the bench, yet it is between two
    # pockets all the same: dropped now, it would be in none (off the pick list, refused at
    # restock, its low-stock alarm closed by the sweep below).
    homeless = sorted({t["drug"] for t in pending if t["dst_drawer"] is not None
                       and not cabinet.pockets_of(t["drug"])})
    if homeless:
        listed = ", ".join(homeless)
        raise RuleViolation(f"{listed}: taken out of its pocket and in no pocket now; do its "
                            "move into its new pocket first (count 0 if it has no unit)",
                            f"{listed} : sorti de sa poche et dans aucune poche maintenant ; "
                            "rangez-le d'abord dans sa nouvelle poche (comptez 0 s'il n'a "
                            "aucune unité)", code="DRUG_WITHOUT_POCKET")
    proposal = int(pending[0]["proposal"])
    with cabinet.store.transaction() as c:
        c.execute("UPDATE layout_tasks SET state='abandoned', done_by=?, done_ts=? "
                  "WHERE state='pending'", (user.id, cabinet.store.now_iso()))
        cabinet.store.append(JournalEntry("layout_abandoned", user=user.id,
                                          detail={"proposal": proposal,
                                                  "tasks": len(pending),
                                                  **note_detail(note)}))
        cabinet.check_all_low_stock()  # no move_in will close a move_out's alarm now
    return len(pending)


def tasks(cabinet: Cabinet, *, pending_only: bool = True) -> list[dict[str, Any]]:
    sql = "SELECT * FROM layout_tasks" + (" WHERE state='pending'" if pending_only else "")
    return cabinet.store.query(sql + " ORDER BY proposal, seq")


def next_step(cabinet: Cabinet, task: dict[str, Any]) -> str:
    """What the task still needs: 'out' (empty the source pocket) or 'in' (fill the target)."""
    if task["src_drawer"] is not None:
        src = cabinet.pocket(task["src_drawer"], task["src_row"], task["src_col"])
        if src.drug == task["drug"]:
            return "out"
    return "in"


def _first_pending(cabinet: Cabinet, task_id: int, out_of_order: tuple[str, str]
                   ) -> dict[str, Any]:
    """The task, refused unless it is pending (``UNKNOWN_TASK``) and the first of the
    pending ones (``TASK_ORDER``, with the caller's words): tasks free pockets in order."""
    rows = cabinet.store.query("SELECT * FROM layout_tasks WHERE id=?", (task_id,))
    if not rows or rows[0]["state"] != "pending":
        raise NotFound(f"no pending task {task_id}", f"aucune tâche {task_id} en attente",
                       code="UNKNOWN_TASK")
    first = cabinet.store.query("SELECT id FROM layout_tasks WHERE state='pending' "
                                "ORDER BY proposal, seq LIMIT 1")
    if first[0]["id"] != task_id:
        raise StateError(*out_of_order, code="TASK_ORDER")
    return rows[0]


async def start_task(cabinet: Cabinet, task_id: int) -> Operation:
    """Open the drawer for the task's next half; the technician then acts and counts as for
    any operation (``confirm_count``, Close)."""
    task = _first_pending(cabinet, task_id, (
        "do the tasks in their order: an earlier move frees this pocket",
        "faites les tâches dans l'ordre : une tâche précédente libère cette poche"))
    back = put_back_into(cabinet, task)
    if back is not None:
        raise StateError(
            f"this move's units were put back into pocket {back}: it cannot be started "
            "again; a pharmacist abandons the re-layout (and may propose a new one)",
            f"les unités de ce déplacement ont été remises dans la poche {back} : il ne "
            "peut pas être repris ; un pharmacien abandonne le réaménagement (et peut en "
            "proposer un nouveau)", code="PUT_BACK_DONE")
    if next_step(cabinet, task) == "out":
        return await cabinet.move_out(task["src_drawer"], task["src_row"], task["src_col"])
    if task["dst_drawer"] is None or cabinet.pocket(
            task["dst_drawer"], task["dst_row"], task["dst_col"]).drug == task["drug"]:
        # Its last half was recorded (units into their new pocket; or, for a task with no
        # target, the pocket emptied onto the bench), but the cabinet stopped (a power cut,
        # the session ended) before the task was marked: mark it now instead of asking to
        # fill a full pocket again, or refusing a bench task forever, which left it first in
        # the order with its units on the bench (no later task, no abandon, no proposal).
        finish_task(cabinet, task_id)
        raise StateError("this move was already done (recorded before an interruption): "
                         "go on with the next",
                         "ce déplacement était déjà fait (enregistré avant une "
                         "interruption) : passez au suivant", code="TASK_ALREADY_DONE")
    # A drug spread over several pockets: while another of its pockets is still to be
    # filled, this one takes what fits and leaves the rest on the bench; the last takes all.
    later = cabinet.store.query(
        "SELECT 1 FROM layout_tasks WHERE state='pending' AND drug=? AND id != ? "
        "AND dst_drawer IS NOT NULL AND (proposal, seq) > (?, ?) LIMIT 1",
        (task["drug"], task_id, task["proposal"], task["seq"]))
    bench = cabinet.store.on_bench(task["drug"])
    levels = _levels_left(cabinet, task)
    if later:
        return await cabinet.move_in(task["drug"], task["dst_drawer"], task["dst_row"],
                                     task["dst_col"], task["capacity"],
                                     min(bench, task["capacity"]), levels=levels)
    # The last pocket takes every unit left, raising its capacity if they are more than it
    # inherits (an earlier pocket filled while the bench was short took less than it could,
    # or old stock was recorded above its pocket's capacity) rather than leaving units on
    # the bench with nowhere to go. A count above that capacity is refused as any other.
    return await cabinet.move_in(task["drug"], task["dst_drawer"], task["dst_row"],
                                 task["dst_col"], max(task["capacity"], bench), levels=levels)


def in_service(cabinet: Cabinet, drawer: str) -> bool:
    """The drawer can open for an operation: connected, not faulted, its position known."""
    unit = cabinet.units.get(drawer)
    return unit is not None and not unit.faulted and unit.state != "unknown"


def _halfway(cabinet: Cabinet, task: dict[str, Any]) -> bool:
    """The task's drug has left its old pocket and is not in its new one yet: its units are
    on the bench, or it had none and is in no pocket at all."""
    if task["state"] != "pending" or task["dst_drawer"] is None \
            or next_step(cabinet, task) != "in":
        return False
    if cabinet.pocket(task["dst_drawer"], task["dst_row"], task["dst_col"]).drug \
            == task["drug"]:
        return False
    return cabinet.store.on_bench(task["drug"]) > 0 or not cabinet.pockets_of(task["drug"])


def can_put_back(cabinet: Cabinet, task: dict[str, Any]) -> bool:
    """What the task list offers instead of Start: the task is halfway and its new pocket's
    drawer is out of service, so the units cannot go where they were going."""
    return _halfway(cabinet, task) and not in_service(cabinet, task["dst_drawer"])


async def put_back(cabinet: Cabinet, task_id: int) -> Operation:
    """Return a halfway task's units from the bench into the pocket they left, when the
    drawer of their new pocket is out of service (jammed, offline, forced open…).

    Without it such a re-layout was stuck: the move in refused (drawer out of service), the
    abandon refused (``DRUG_ON_BENCH``, ``DRUG_WITHOUT_POCKET``: a drug must never leave the
    cabinet unseen). The units stay in the cabinet's custody all along: the put back is an
    ordinary ``move_in`` into the old pocket (intent written before the drawer opens,
    counted, a difference a discrepancy), tagged ``{"put_back": task}`` in the journal. The
    pocket gets the drug back with the capacity the task carries (that of the pocket it
    left) and the approved levels it had. The task stays pending and its next half is the
    move out again: the pharmacist may now abandon, or the technician redo it once the
    drawer is reset.

    Refused, writing nothing: ``FORBIDDEN`` (not technician or pharmacist),
    ``UNKNOWN_TASK``, ``TASK_ORDER`` (not the first pending task), ``NOTHING_TO_PUT_BACK``
    (not halfway), ``DESTINATION_IN_SERVICE`` (its drawer works: finish the move in),
    ``ORIGIN_UNKNOWN``/``ORIGIN_TAKEN`` (the old pocket cannot be told, or holds another drug
    or units now: a pharmacist decides), and the cabinet's own refusals (old pocket's drawer
    out of service, an operation running).
    """
    require(cabinet.current_user(), "move_stock")
    task = _stuck(cabinet, task_id)
    origin = origin_of(cabinet, task)
    if origin is None:
        raise RuleViolation("the pocket these units came from is not known: call a "
                            "pharmacist",
                            "la poche d'où viennent ces unités est inconnue : appelez un "
                            "pharmacien", code="ORIGIN_UNKNOWN")
    old = cabinet.pocket(*origin)
    if old.drug is not None or cabinet.store.on_hand(*origin):
        raise RuleViolation(
            f"pocket {old.label}, where these units came from, is no longer free "
            f"({old.drug or 'units'} in it): call a pharmacist",
            f"la poche {old.label}, d'où viennent ces unités, n'est plus libre "
            f"({old.drug or 'des unités'} dedans) : appelez un pharmacien",
            code="ORIGIN_TAKEN")
    bench = cabinet.store.on_bench(task["drug"])
    return await cabinet.move_in(task["drug"], *origin, max(task["capacity"], bench), bench,
                                 levels=_levels_left(cabinet, task),
                                 context={"put_back": task_id})


def put_back_into(cabinet: Cabinet, task: dict[str, Any]) -> str | None:
    """The pocket a task with no source of its own (a swap cycle's drug coming off the
    bench) had its units put back into, if it had: the label, else None.

    Such a task has no move out to redo: the benching was an earlier task's, done. Started
    again, it would move the empty bench (0 units) into its new pocket and leave the drug
    in two, one of them outside the approved layout. A put back whose count was never
    confirmed (a power cut) wrote no ``move_in`` row: its units are still on the bench and
    the task may go on."""
    if task["src_drawer"] is not None or task["dst_drawer"] is None:
        return None
    rows = cabinet.store.query(
        "SELECT drawer, row, col FROM journal WHERE kind='move_in' AND drug=? "
        "AND detail LIKE '%put_back%' AND CASE WHEN json_valid(detail) THEN "
        "json_extract(detail, '$.put_back') END = ? ORDER BY seq DESC LIMIT 1",
        (task["drug"], task["id"]))
    if not rows:
        return None
    return cabinet.pocket(rows[0]["drawer"], rows[0]["row"], rows[0]["col"]).label


def _stuck(cabinet: Cabinet, task_id: int) -> dict[str, Any]:
    """The task, if it is the first pending one, halfway, with its new pocket's drawer out
    of service: what both ways out (:func:`put_back`, :func:`return_to_pharmacy`) need."""
    task = _first_pending(cabinet, task_id, (
        "only the first task can be halfway: put back its units",
        "seule la première tâche peut être à moitié faite : rangez ses unités"))
    if not _halfway(cabinet, task):
        raise StateError("nothing of this task waits between two pockets",
                         "rien de cette tâche n'attend entre deux poches",
                         code="NOTHING_TO_PUT_BACK")
    if in_service(cabinet, task["dst_drawer"]):
        raise StateError(f"drawer {task['dst_drawer']} works: put the units into their new "
                         "pocket (Start)",
                         f"le tiroir {task['dst_drawer']} fonctionne : rangez les unités dans "
                         "leur nouvelle poche (Commencer)", code="DESTINATION_IN_SERVICE")
    return task


def return_to_pharmacy(cabinet: Cabinet, task_id: int, counted: Any, note: str = "", *,
                       actor: User | None = None) -> int:
    """The last way out, a pharmacist's: a stuck task's units (its new drawer out of
    service) that cannot go back into their old pocket (taken by another drug, unknown, or
    its drawer out of service too) leave the cabinet for the pharmacy, counted.

    ``counted`` is what the pharmacist takes away (0 to the units on the bench; more is
    ``BAD_COUNT``: the bench cannot hold units the journal never put there). One
    ``bench_return`` row per lot, earliest expiry first, for the units counted, and rows
    coded ``MISSING`` with a discrepancy alarm for those not found: the register lists both
    as exits. The bench, the rows and the task (``returned``, no longer pending) change in
    one transaction, so a power cut leaves all or nothing. The drug is then in no pocket
    unless it has another: the pharmacist places it again (formulary page) when the drawer
    works. Refused ``PUT_BACK_FIRST`` while the units can go back into their old pocket:
    the cabinet keeps what it can, and ``COUNT_ORIGIN_FIRST`` while the old pocket has an
    open discrepancy alarm for the drug (a put back cut short may have left the units
    there). Returns the units recorded as returned.
    """
    user = cabinet.acting(actor, "approve_layout")
    task = _stuck(cabinet, task_id)
    op = cabinet.session.op
    if op is not None and op.step not in ("done", "aborted"):
        raise StateError("an operation is running at the cabinet: try again after",
                         "une opération est en cours à l'armoire : réessayez ensuite",
                         code="OPERATION_RUNNING")
    origin = origin_of(cabinet, task)
    if origin is not None and in_service(cabinet, origin[0]) \
            and cabinet.pocket(*origin).drug is None and not cabinet.store.on_hand(*origin):
        label = cabinet.pocket(*origin).label
        raise RuleViolation(f"the units can go back into pocket {label}: put them back at "
                            "the cabinet",
                            f"les unités peuvent retourner dans la poche {label} : "
                            "remettez-les à l'armoire", code="PUT_BACK_FIRST")
    drug = task["drug"]
    if origin is not None and cabinet.alarms.find_open("discrepancy", Where(drug, *origin)):
        # A put back cut short (a power cut, a jam) may have left the units in the old
        # pocket, which the journal says is empty: recorded as returned or missing now,
        # they would stay there unseen, under the next drug placed in that pocket.
        label = cabinet.pocket(*origin).label
        raise RuleViolation(f"pocket {label} is to be counted first (it may hold these "
                            "units): count it and resolve its alarm, then return them",
                            f"la poche {label} doit d'abord être comptée (elle peut contenir "
                            "ces unités) : comptez-la et clôturez son alarme, puis "
                            "retournez-les", code="COUNT_ORIGIN_FIRST")
    bench = cabinet.store.on_bench(drug)
    if isinstance(counted, bool) or not isinstance(counted, int) or not 0 <= counted <= bench:
        raise InputError(f"{counted!r}: count between 0 and the {bench} unit(s) on the bench",
                         f"{counted!r} : comptez entre 0 et les {bench} unité(s) du plan de "
                         "travail",
                         code="BAD_COUNT")
    detail = {"task": task_id, "proposal": task["proposal"], **note_detail(note)}
    lots = cabinet.store.query("SELECT lot, expiry, qty FROM bench WHERE drug=? AND qty > 0 "
                               "ORDER BY expiry, lot", (drug,))
    left = counted
    with cabinet.store.transaction() as c:
        rows: list[tuple[int, str | None, str | None, str | None]] = []
        for lot in lots:
            taken = min(left, int(lot["qty"]))
            left -= taken
            if taken:
                rows.append((taken, lot["lot"], lot["expiry"], None))
            if int(lot["qty"]) - taken:
                rows.append((int(lot["qty"]) - taken, lot["lot"], lot["expiry"], "MISSING"))
        if not rows:  # a drug with no unit still leaves the cabinet's layout: say so
            rows.append((0, None, None, None))
        for qty, lot_id, expiry, code in sorted(rows, key=lambda r: r[3] is not None):
            cabinet.store.append(JournalEntry("bench_return", user=user.id, drug=drug,
                                              qty=qty, lot=lot_id, expiry=expiry, code=code,
                                              detail=dict(detail)))
            if qty:
                c.execute("UPDATE bench SET qty = qty - ? WHERE drug=? AND lot=?",
                          (qty, drug, lot_id))
        c.execute("UPDATE layout_tasks SET state='returned', done_by=?, done_ts=? WHERE id=?",
                  (user.id, cabinet.store.now_iso(), task_id))
        if counted < bench:
            cabinet.alarms.raise_("discrepancy", Where(drug),
                                  text("bench_missing", n=bench - counted, drug=drug,
                                       c=counted, b=bench),
                                  user=user.id)
        if not c.execute("SELECT 1 FROM layout_tasks WHERE state='pending' LIMIT 1"
                         ).fetchone():
            cabinet.check_all_low_stock()
    return counted


def origin_of(cabinet: Cabinet, task: dict[str, Any]) -> tuple[str, int, int] | None:
    """The pocket the task's drug left: the task's source, or for a drug put back from the
    bench (a swap cycle) the source of the task that benched it, the k-th put-back of a drug
    in a proposal matching its k-th benching, as the engine's task list orders them."""
    if task["src_drawer"] is not None:
        return task["src_drawer"], task["src_row"], task["src_col"]
    same = cabinet.store.query(
        "SELECT id, src_drawer, src_row, src_col, dst_drawer FROM layout_tasks "
        "WHERE proposal=? AND drug=? ORDER BY seq", (task["proposal"], task["drug"]))
    benched = [t for t in same if t["dst_drawer"] is None and t["src_drawer"] is not None]
    back = [t["id"] for t in same if t["src_drawer"] is None]
    k = back.index(task["id"])
    if k < len(benched):
        return benched[k]["src_drawer"], benched[k]["src_row"], benched[k]["src_col"]
    return None


def _levels_left(cabinet: Cabinet, task: dict[str, Any]) -> tuple[int | None, int | None]:
    """The approved (min, max) of the pocket this task's drug left, which its new pocket
    keeps: without them it fell back to the default low-stock rule and to refilling up to
    the capacity (a controlled drug kept at 8 of 20 was brought to 20).

    A pocket's levels are wiped when it is emptied; the ``move_out`` journal rows keep them
    (for the pocket left, see :func:`_origin`).
    """
    origin = origin_of(cabinet, task)
    if origin is None:
        return None, None
    rows = cabinet.store.query(
        "SELECT detail FROM journal WHERE kind='move_out' AND drug=? AND drawer=? AND row=? "
        "AND col=? ORDER BY seq DESC LIMIT 1", (task["drug"], *origin))
    if not rows or not rows[0]["detail"]:
        return None, None
    lo, hi = (json.loads(rows[0]["detail"]).get("levels") or [None, None])
    return lo, hi


def finish_task(cabinet: Cabinet, task_id: int) -> bool:
    """Mark the task done once its last half is recorded; True when it is."""
    rows = cabinet.store.query("SELECT * FROM layout_tasks WHERE id=?", (task_id,))
    if not rows:
        raise NotFound(f"no task {task_id}", f"aucune tâche {task_id}", code="UNKNOWN_TASK")
    task = rows[0]
    if task["dst_drawer"] is not None:
        dst = cabinet.pocket(task["dst_drawer"], task["dst_row"], task["dst_col"])
        done = dst.drug == task["drug"]
    else:
        done = next_step(cabinet, task) == "in"
    if done and task["state"] == "pending":
        user = cabinet.current_user()
        cabinet.check_own_pin(user)
        with cabinet.store.transaction() as c:
            c.execute("UPDATE layout_tasks SET state='done', done_by=?, done_ts=? WHERE id=?",
                      (user.id, cabinet.store.now_iso(), task_id))
            cabinet.store.append(JournalEntry("layout_task_done", user=user.id,
                                              drug=task["drug"],
                                              detail={"task": task_id,
                                                      "proposal": task["proposal"]}))
            if not c.execute("SELECT 1 FROM layout_tasks WHERE state='pending' LIMIT 1"
                             ).fetchone():  # the last task ends the re-layout: one sweep
                cabinet.check_all_low_stock()
    return done


def score_today(cabinet: Cabinet) -> tuple[int, int]:
    problem_dict = build_problem(cabinet)
    today = [Placement(p["drug"], p["drawer"], p["row"], p["col"])
             for p in problem_dict["current"]]
    return count_conflicts(parse_problem(problem_dict), today) if today else (0, 0)


__all__ = ["abandon", "approve", "build_problem", "can_put_back", "conflict_pairs",
           "describe", "drug_of", "finish_task", "in_service", "next_step", "origin_of",
           "propose", "propose_async", "put_back", "put_back_into", "reject",
           "return_to_pharmacy", "score_today", "start_task", "tasks"]
