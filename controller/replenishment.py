"""Par levels in the cabinet: from the journal's withdrawals to the technician's pick list.

The advisor (:mod:`controller.stock`) proposes a min and a max for each pocket from that
pocket's own withdrawal history; a pharmacist approves or rejects each proposal (journaled);
an approved min replaces the default "≤ 10 units" low-stock rule for that pocket, and the
approved max is what the technician refills to. Pocket capacity caps the max.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, date, tzinfo
from typing import Any

import numpy as np
import numpy.typing as npt

from controller import localtime
from controller.auth import User
from controller.cabinet import Cabinet, Pocket
from controller.decisions import ensure_undecided, note_detail
from controller.errors import NotFound, RuleViolation, StateError, StoreError
from controller.stock import AdviseOptions, ItemInfo, Proposal, advise_matrix
from controller.stock.history import to_matrix
from controller.stock.simulate import simulate_policy
from controller.store import JournalEntry, db_uri, store_error
from controller.tasks import check_stop, stoppable_thread

#: Journal rows read between two looks at the stop flag (see :func:`withdrawal_history`):
#: a few milliseconds of reading on a Pi, so that a stop is never long in coming.
STOP_EVERY_ROWS = 2000


def pocket_key(drawer: str, row: int, col: int) -> str:
    return f"{drawer}:{row}:{col}"


def stocked_pockets(conn: sqlite3.Connection) -> dict[str, Pocket]:
    """Every pocket with a drug assigned, by :func:`pocket_key`."""
    return {pocket_key(p["drawer"], p["row"], p["col"]): Pocket(**dict(p))
            for p in conn.execute(
                "SELECT drawer, row, col, drug, capacity, min_level, max_level FROM pockets "
                "WHERE drug IS NOT NULL")}


def withdrawal_history(conn: sqlite3.Connection, pockets: Mapping[str, Pocket],
                       zone: tzinfo = UTC, *, before: date | None = None,
                       stop: threading.Event | None = None
                       ) -> list[tuple[date, str, float]]:
    """(day, pocket, units) for the withdrawals of the drug each pocket holds today.

    History follows the drug, not the place: after a re-layout moves a drug, its past
    withdrawals count for its new pocket, and the drug that took its old place starts with
    its own history, not its predecessor's. A drug kept in several pockets keeps each
    pocket's own history of it (which pocket a moved unit would have come from is unknown,
    so those rows are left out). Waste and removals are not demand.

    Days are the ward's (``zone``): the night shift's withdrawals after local midnight
    belong to the new day, as on the ward's own records. Days from ``before`` on are left
    out: the cabinet passes today, which is not over, and a day half counted would read as
    a quiet day to the advisor.

    The cabinet writes every withdrawal with a UTC ISO time (:data:`STORE_TS`) and a whole
    number of units; a row with another time or quantity can only come from a damaged or
    edited journal (which is hash-chained). Learning from it would mean guessing, so the
    history is refused, naming the first such row with ``JOURNAL_INTEGRITY`` (the code of
    the start-up check's alarm). SQLite's ``SUM`` would have counted text as 0.

    ``stop`` (set when the service stops, see :func:`propose_async`) is looked at every
    :data:`STOP_EVERY_ROWS` rows: reading years of a busy ward takes seconds on a Pi, and
    a read nobody waits for any more must not hold the stop (:class:`~controller.tasks.
    Stopped`). It only reads, so stopping part-way leaves nothing half done.
    """
    homes: dict[str, list[str]] = {}
    for key, pocket in pockets.items():
        homes.setdefault(str(pocket.drug), []).append(key)
    units: dict[tuple[date, str], float] = {}
    # One pass in Python, checking each row as it is read. Summing in SQLite instead (with
    # the zone's offsets as date() shifts and the checks in SQL) was measured no faster:
    # 0.6 s either way for 220,000 rows on x86.
    rows = conn.execute("SELECT seq, ts, drawer, row, col, drug, qty FROM journal "
                        "WHERE kind = 'withdraw' ORDER BY seq")
    while True:
        check_stop(stop)
        chunk = rows.fetchmany(STOP_EVERY_ROWS)
        if not chunk:
            break
        for seq, ts, drawer, row, col, drug, qty in chunk:
            try:
                day = localtime.local_day(ts, zone) \
                    if isinstance(ts, str) and STORE_TS.fullmatch(ts) else None
            except ValueError:  # 2026-13-45, 25:00, or past the calendar's end in this zone
                day = None
            if day is None or type(qty) is not int or qty < 0:
                raise _damaged_withdrawal(seq, ts, qty)
            if before is not None and day >= before:
                continue
            places = homes.get(drug, [])
            key = pocket_key(drawer, row, col)
            home = places[0] if len(places) == 1 else key if key in places else None
            if home is not None:
                units[(day, home)] = units.get((day, home), 0.0) + float(qty)
    return [(day, key, qty) for (day, key), qty in sorted(units.items())]


#: A journal time as the store writes it (``Store.now_iso``): UTC, to the millisecond.
#: Another form (no offset, another offset, basic ISO) was not written by the cabinet.
STORE_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00", re.ASCII)


def _damaged_withdrawal(seq: int, ts: object, qty: object) -> StoreError:
    return StoreError(
        f"journal row {seq} is not a valid withdrawal (time {ts!r}, quantity {qty!r}): "
        "the journal is damaged, no history can be learned from it; run armoire journal "
        "verify and call IT",
        f"la ligne {seq} du journal n'est pas un retrait valide (heure {ts!r}, quantité "
        f"{qty!r}) : le journal est endommagé, aucun historique ne peut en être tiré ; "
        "lancez armoire journal verify et appelez l'informatique",
        code="JOURNAL_INTEGRITY")


def pocket_levels(pockets: Mapping[str, Pocket], default_min: int
                   ) -> dict[str, tuple[int, int]]:
    """Today's (min, max) of each pocket, as the low-stock alarm and the pick list apply it.

    An approved min, else the cabinet's default "≤ ``default_min`` units" rule; an approved
    max, else the capacity. It must be a valid (min < max) policy to be replayed: the
    default rule in a pocket of 10 means "refill at 9 or less" in practice.
    """
    out = {}
    for key, p in pockets.items():
        high = p.max_level if p.max_level is not None else p.capacity
        low = p.min_level if p.min_level is not None else default_min
        out[key] = (max(0, min(low, high - 1)), high)
    return out


def propose(cabinet: Cabinet, options: AdviseOptions | None = None, *,
            actor: User | None = None) -> list[dict[str, Any]]:
    """Compute proposals for every stocked pocket with history; store them as 'proposed'.

    Earlier undecided proposals for the same pocket are superseded, so the pharmacist only
    ever sees the latest. ``actor`` is the pharmacist logged into the pharmacy pages; without
    it, the touchscreen's user acts.
    """
    user = cabinet.acting(actor, "approve_levels")
    pockets = stocked_pockets(cabinet.store.conn)
    history = withdrawal_history(cabinet.store.conn, pockets, cabinet.zone,
                                 before=cabinet.today())
    history, info = _prepare(cabinet, history, pockets)
    return _store(cabinet, user, pockets, *_advise(history, options or AdviseOptions(), info))


async def propose_async(cabinet: Cabinet, options: AdviseOptions | None = None, *,
                        actor: User | None = None) -> list[dict[str, Any]]:
    """:func:`propose` for the controller's event loop. Reading years of withdrawals
    (seconds on a Pi for a busy ward) and the advisor (replays of every pocket's history)
    run in worker threads so drawers, switches and pages keep being served. The history is
    read on a connection of its own (a connection belongs to its thread); the cabinet's own
    connection is only used from the loop, before and after.

    Both workers stop at their next chunk when this task is cancelled (the service
    stopping: :func:`~controller.tasks.stoppable_thread`), and the task ends after them.
    Nothing is written before both have finished, so a stop part-way writes nothing."""
    user = cabinet.acting(actor, "approve_levels")  # refused before any work
    pockets = stocked_pockets(cabinet.store.conn)
    if cabinet.store.private:
        history = withdrawal_history(cabinet.store.conn, pockets, cabinet.zone,
                                     before=cabinet.today())
    else:
        history = await stoppable_thread(history_at, cabinet.store.path, pockets,
                                         cabinet.zone, cabinet.today())
    history, info = _prepare(cabinet, history, pockets)
    proposals, paths = await stoppable_thread(_advise, history, options or AdviseOptions(),
                                              info)
    return _store(cabinet, user, pockets, proposals, paths)


def history_at(path: str, pockets: Mapping[str, Pocket], zone: tzinfo, before: date, *,
               stop: threading.Event | None = None) -> list[tuple[date, str, float]]:
    """:func:`withdrawal_history` on a read-only connection of its own, for a worker
    thread (``stop``: see there); a database error has the store's code, said as a read
    that changed nothing."""
    try:
        conn = sqlite3.connect(db_uri(path, "ro"), uri=True, timeout=5.0)
        try:
            return withdrawal_history(conn, pockets, zone, before=before, stop=stop)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        code = store_error(exc).code  # the store's codes: DB_BUSY, DB_CORRUPT…
        raise StoreError(f"the cabinet's database could not be read ({exc}); nothing was "
                         "changed: try again, and call IT if it persists",
                         f"la base de l'armoire n'a pas pu être lue ({exc}) ; rien n'a été "
                         "modifié : réessayez, et appelez l'informatique si cela persiste",
                         code=code) from exc


#: Points kept of each replay for the page's small plot (six days a point over two years).
PATH_POINTS = 120


def _advise(history: list[tuple[date, str, float]], options: AdviseOptions,
            info: Mapping[str, ItemInfo], *, stop: threading.Event | None = None
            ) -> tuple[list[Proposal], dict[str, tuple[list[float], list[float]]]]:
    """The proposals, and for each the units on hand day by day under today's and the
    proposed levels: the replay behind the figures the pharmacist sees, averaged over
    at most :data:`PATH_POINTS` stretches so it can be kept with the proposal. No history
    (every pocket with withdrawals has capacity 0) is no proposal.

    ``stop`` is looked at between its stages (:func:`~controller.tasks.check_stop`) and
    within the advisor's (its classification of the pockets too): the advisor classifies
    the pockets against one another (ABC by share of value), so its work cannot be cut
    into pockets without changing its answer, only abandoned."""
    if not history:
        return [], {}
    matrix = to_matrix(history, options.period)
    check_stop(stop)
    proposals = advise_matrix(matrix, options, info, stop=stop)
    check_stop(stop)
    row = {name: i for i, name in enumerate(matrix.items)}
    # One pass for every pocket, today's levels and the proposal side by side.
    lines = simulate_policy(
        matrix.demand[[row[p.item] for p in proposals]],
        np.array([[p.current_min, p.min] for p in proposals], dtype=np.float64).reshape(-1, 2),
        np.array([[p.current_max, p.max] for p in proposals], dtype=np.float64).reshape(-1, 2),
        lead_time=options.lead_time, review=options.review, keep_item_paths=True).item_paths
    assert lines is not None
    chunks = min(PATH_POINTS, matrix.n_periods)

    def points(line: npt.NDArray[np.float64]) -> list[float]:
        return [round(float(c.mean()), 2) for c in np.array_split(line, chunks)]

    return proposals, {p.item: (points(current), points(proposed))
                       for p, (current, proposed) in zip(proposals, lines, strict=True)}


def _prepare(cabinet: Cabinet, history: list[tuple[date, str, float]],
             pockets: Mapping[str, Pocket]
             ) -> tuple[list[tuple[date, str, float]], dict[str, ItemInfo]]:
    """The history the advisor learns from, and what it needs to know of each pocket in
    it: capacity, criticality, today's levels."""
    if not history:
        raise RuleViolation("no withdrawals in the journal before today (a day is learned "
                            "from once it is over): nothing to learn from yet",
                            "aucun retrait dans le journal avant aujourd'hui (une journée "
                            "compte une fois finie) : rien à apprendre pour l'instant",
                            code="NO_HISTORY")
    # A pocket of capacity 0 holds nothing to replenish: no level fits in it (min < max ≤ 0),
    # and left in, its (0, 0) levels made the advisor refuse every pocket's proposals.
    history = [h for h in history if pockets[h[1]].capacity >= 1]
    drugs = {d["id"]: d for d in cabinet.store.query("SELECT * FROM drugs")}
    levels = pocket_levels(pockets, cabinet.settings.low_stock_units)
    # Only pockets with history are advised.
    info = {}
    for key in sorted({h[1] for h in history}):
        p = pockets[key]
        info[key] = ItemInfo(capacity=p.capacity or None,
                             critical=bool(drugs[p.drug]["high_alert"]) if p.drug else False,
                             current_min=levels[key][0], current_max=levels[key][1])
    return history, info


def _store(cabinet: Cabinet, user: User, pockets: dict[str, Pocket],
           proposals: list[Proposal], paths: Mapping[str, tuple[list[float], list[float]]]
           ) -> list[dict[str, Any]]:
    now = cabinet.store.now_iso()
    created = []
    # A new computation replaces every pending proposal of the pockets it advised, and of
    # those it skipped for holding nothing (capacity 0): no level of theirs can be approved.
    replaced = [pockets[prop.item] for prop in proposals] + [
        p for p in pockets.values() if p.capacity < 1]
    with cabinet.store.transaction() as c:
        for p in replaced:
            c.execute("UPDATE level_proposals SET status='superseded' WHERE drawer=? AND row=? "
                      "AND col=? AND status='proposed'", (p.drawer, p.row, p.col))
        for prop in proposals:
            p = pockets[prop.item]
            details = {k: v for k, v in asdict(prop).items() if k not in ("item", "extra")}
            details["path_current"], details["path_proposed"] = paths[prop.item]
            cur = c.execute(
                """INSERT INTO level_proposals (drawer, row, col, drug, min_level, max_level,
                   current_min, current_max, details, created_ts) VALUES
                   (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (p.drawer, p.row, p.col, p.drug, prop.min, prop.max, prop.current_min,
                 prop.current_max, json.dumps(details), now))
            created.append(int(cur.lastrowid or 0))
        cabinet.store.append(JournalEntry("levels_proposed", user=user.id,
                                          detail={"proposals": len(created)}))
    return [proposal(cabinet, i) for i in created]


def proposal(cabinet: Cabinet, proposal_id: int) -> dict[str, Any]:
    rows = cabinet.store.query("SELECT * FROM level_proposals WHERE id=?", (proposal_id,))
    if not rows:
        raise NotFound(f"no proposal {proposal_id}", f"aucune proposition {proposal_id}",
                       code="UNKNOWN_PROPOSAL")
    row = rows[0]
    row["details"] = json.loads(row["details"])
    return row


def pending(cabinet: Cabinet) -> list[dict[str, Any]]:
    ids = cabinet.store.query("SELECT id FROM level_proposals WHERE status='proposed' "
                              "ORDER BY drawer, row, col")
    return [proposal(cabinet, r["id"]) for r in ids]


def stale_reason(prop: Mapping[str, Any], pocket: Pocket) -> tuple[str, str] | None:
    """Why a proposal no longer fits its pocket (English, French), or None if it still does.

    A proposal is computed for one drug in one pocket of one capacity: its max was capped by
    that capacity and its min chosen below it. Another drug since, or another capacity
    (a re-layout, a pocket emptied and given its drug back with a new box size), and the
    levels answer a question nobody asks any more; capping them again on accept would
    approve levels the advisor never proposed. Proposals stored without their capacity
    (before it was recorded) are stale when their max does not fit the pocket.
    """
    if pocket.drug != prop["drug"]:
        return ("the pocket's drug changed since this proposal: compute a new one",
                "le médicament de la poche a changé depuis cette proposition : "
                "calculez-en une nouvelle")
    details = prop.get("details") or {}
    if "capacity" in details and details["capacity"] != pocket.capacity:
        return (f"the pocket's capacity changed since this proposal ({details['capacity']} "
                f"then, {pocket.capacity} now): compute a new one",
                f"la capacité de la poche a changé depuis cette proposition "
                f"({details['capacity']} alors, {pocket.capacity} maintenant) : "
                "calculez-en une nouvelle")
    if int(prop["max_level"]) > pocket.capacity:  # stored before capacities were
        return (f"this proposal's max ({prop['max_level']}) is above the pocket's capacity "
                f"({pocket.capacity}): compute a new one",
                f"le maximum de cette proposition ({prop['max_level']}) dépasse la capacité "
                f"de la poche ({pocket.capacity}) : calculez-en une nouvelle")
    return None


def decide(cabinet: Cabinet, proposal_id: int, accept: bool, note: str = "", *,
           actor: User | None = None) -> None:
    """The pharmacist's decision; an accepted proposal becomes the pocket's levels.

    Only a proposal computed for the pocket as it is now can be accepted (see
    :func:`stale_reason`); a stale one is refused with ``PROPOSAL_STALE`` and can still be
    rejected, which changes nothing in the pocket but takes it off the pharmacist's list.
    """
    user = cabinet.acting(actor, "approve_levels")
    prop = proposal(cabinet, proposal_id)
    ensure_undecided(proposal_id, prop["status"])
    pocket = cabinet.pocket(prop["drawer"], prop["row"], prop["col"])
    stale = stale_reason(prop, pocket)
    if accept and stale is not None:
        raise StateError(*stale, code="PROPOSAL_STALE")
    lo, hi = int(prop["min_level"]), int(prop["max_level"])
    with cabinet.store.transaction() as c:
        c.execute("UPDATE level_proposals SET status=?, decided_by=?, decided_ts=? WHERE id=?",
                  ("approved" if accept else "rejected", user.id, cabinet.store.now_iso(),
                   proposal_id))
        if accept:
            c.execute("UPDATE pockets SET min_level=?, max_level=? WHERE drawer=? AND row=? "
                      "AND col=?", (lo, hi, pocket.drawer, pocket.row, pocket.col))
        cabinet.store.append(JournalEntry(
            "levels_approved" if accept else "levels_rejected", user=user.id,
            drug=prop["drug"], drawer=pocket.drawer, row=pocket.row, col=pocket.col,
            ref=None, detail={"proposal": proposal_id, "min": lo, "max": hi,
                              "previous_min": pocket.min_level,
                              "previous_max": pocket.max_level,
                              **note_detail(note)}))
    if accept:
        cabinet.check_low_stock(cabinet.pocket(pocket.drawer, pocket.row, pocket.col))


def pick_list(cabinet: Cabinet) -> list[dict[str, Any]]:
    """Pockets at or under their level, with how many to bring to refill them.

    ``bring`` fills the pocket to its refill level with usable units: expired ones still in
    it (``expired``) go back to the pharmacy (the remove step), so they do not count.

    A line is work for the technician: a pocket with nothing to bring and nothing expired to
    take back is left out. That is a pocket of capacity 0 (refill to 0, always "at its
    level"), or one already holding its refill level under a higher low-stock level; listed,
    they sent a technician to the ward to bring 0 units.
    """
    result = []
    for p in cabinet.store.query(
            """SELECT p.drawer, p.row, p.col, p.drug, p.capacity, p.min_level, p.max_level
               FROM pockets p JOIN drawers d ON d.id = p.drawer WHERE p.drug IS NOT NULL
               ORDER BY d.position, p.row, p.col"""):
        pocket = Pocket(**p)
        usable, level = cabinet.usable(pocket), cabinet.low_level(pocket)
        if usable > level:
            continue
        on_hand = cabinet.store.on_hand(pocket.drawer, pocket.row, pocket.col)
        refill_to = pocket.max_level if pocket.max_level is not None else pocket.capacity
        bring = max(0, refill_to - usable)
        if bring == 0 and on_hand == usable:
            continue
        result.append({"drawer": pocket.drawer, "row": pocket.row, "col": pocket.col,
                       "pocket": pocket.label, "drug": pocket.drug, "usable": usable,
                       "on_hand": on_hand, "expired": on_hand - usable, "level": level,
                       "refill_to": refill_to, "bring": bring})
    return result
