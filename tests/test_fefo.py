"""First expiry, first out across the pockets of one drug.

A drug stocked in two pockets: a withdrawal used to open the first pocket by position even
when the other held the lot expiring first, which then expired unused (waste, and expiry
alarms). Each test names what a nurse would see or what the journal must say.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from helpers import booted, consistent, journal, restocked

from controller.formulary import assign_pocket

FIRST, SECOND = ("A", 0, 0), ("A", 0, 1)


async def two_pockets(db: Path, first: list[tuple[int, str, str]],
                      second: list[tuple[int, str, str]]) -> Any:
    """Paracetamol in A-1-1 (the first by position) and A-1-2, each with the lots given as
    (qty, lot, expiry); expired lots are written as journaled restocks (the screen refuses
    to load them, but they expire in place). A nurse is logged in."""
    sim = await booted(db)
    cab = sim.cab
    assign_pocket(cab, "A", 0, 1, "PARA500", 60)
    for pocket, lots in ((FIRST, first), (SECOND, second)):
        for qty, lot, expiry in lots:
            restocked(cab.store, "PARA500", pocket, qty, lot, expiry)
            sim.physical[pocket] = sim.physical.get(pocket, 0) + qty  # what the hand sees
    await sim.run(cab.logout())
    await sim.run(cab.login("n1", "482913"))
    return sim


def withdrawn(db: Path) -> list[tuple[Any, ...]]:
    return journal(db, "SELECT drawer, row, col, lot, qty FROM journal WHERE kind='withdraw' "
                       "ORDER BY seq")


def test_a_withdrawal_opens_the_pocket_whose_lot_expires_first(tmp_path: Path) -> None:
    """The second pocket holds the lot expiring first: the withdrawal opens it, not A-1-1."""
    db = tmp_path / "c.db"

    async def go() -> str:
        sim = await two_pockets(db, [(10, "LATE", "2027-06-30")],
                                [(10, "EARLY", "2027-01-31")])
        try:
            op = await sim.operate(sim.cab.withdraw("PARA500", 2, "P1"))
            return op.pocket.label
        finally:
            await sim.shutdown()

    assert asyncio.run(go()) == "A-1-2"
    assert withdrawn(db) == [("A", 0, 1, "EARLY", 2)]
    assert consistent(db)
    assert journal(db, "SELECT COUNT(*) FROM journal WHERE kind='count_correction'") == [(0,)]


def test_equal_expiries_keep_the_first_pocket_by_position(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def go() -> str:
        sim = await two_pockets(db, [(10, "L1", "2027-01-31")], [(10, "L2", "2027-01-31")])
        try:
            op = await sim.operate(sim.cab.withdraw("PARA500", 2, "P1"))
            return op.pocket.label
        finally:
            await sim.shutdown()

    assert asyncio.run(go()) == "A-1-1"


def test_expired_units_do_not_make_a_pocket_first(tmp_path: Path) -> None:
    """A-1-1's earliest lot has expired: it cannot be given, so what counts is its earliest
    usable lot, later than A-1-2's."""
    db = tmp_path / "c.db"

    async def go() -> str:
        sim = await two_pockets(db, [(5, "OLD", "2026-11-01"), (10, "LATE", "2027-06-30")],
                                [(10, "MID", "2027-02-28")])
        try:
            op = await sim.operate(sim.cab.withdraw("PARA500", 3, "P1"))
            return op.pocket.label
        finally:
            await sim.shutdown()

    assert asyncio.run(go()) == "A-1-2"
    assert withdrawn(db) == [("A", 0, 1, "MID", 3)]


def test_a_pocket_that_cannot_serve_the_whole_quantity_is_passed_over(tmp_path: Path) -> None:
    """One withdrawal, one pocket: the earliest lot is in a pocket holding too few, so the
    pocket that can give them all opens."""
    db = tmp_path / "c.db"

    async def go() -> str:
        sim = await two_pockets(db, [(10, "LATE", "2027-06-30")], [(2, "EARLY", "2027-01-31")])
        try:
            op = await sim.operate(sim.cab.withdraw("PARA500", 3, "P1"))
            return op.pocket.label
        finally:
            await sim.shutdown()

    assert asyncio.run(go()) == "A-1-1"
    assert withdrawn(db) == [("A", 0, 0, "LATE", 3)]


def test_a_waste_takes_from_the_pocket_whose_lot_expires_first(tmp_path: Path) -> None:
    """A waste takes a pocket's lots earliest first, expired included: across pockets, the
    same rule picks the pocket."""
    db = tmp_path / "c.db"

    async def go() -> str:
        sim = await two_pockets(db, [(10, "LATE", "2027-06-30")],
                                [(10, "EARLY", "2027-01-31")])
        try:
            op = await sim.operate(sim.cab.waste("PARA500", 1))
            return op.pocket.label
        finally:
            await sim.shutdown()

    assert asyncio.run(go()) == "A-1-2"
    assert journal(db, "SELECT drawer, col, lot FROM journal WHERE kind='waste'") == [
        ("A", 1, "EARLY")]


def test_a_return_goes_back_into_the_pocket_it_was_taken_from(tmp_path: Path) -> None:
    """Taken from A-1-2 (its lot expiring first), the unused units go back into A-1-2, into
    their own lot: not into A-1-1, the first pocket with room, as a lot it never held."""
    db = tmp_path / "c.db"

    async def go() -> str:
        sim = await two_pockets(db, [(10, "LATE", "2027-06-30")],
                                [(10, "EARLY", "2027-01-31")])
        try:
            await sim.operate(sim.cab.withdraw("PARA500", 2, "P1"))
            op = await sim.operate(sim.cab.return_("PARA500", 1, "P1"))
            return op.pocket.label
        finally:
            await sim.shutdown()

    assert asyncio.run(go()) == "A-1-2"
    assert journal(db, "SELECT drawer, col, lot, expiry FROM journal WHERE kind='return'") == [
        ("A", 1, "EARLY", "2027-01-31")]
    assert consistent(db)
