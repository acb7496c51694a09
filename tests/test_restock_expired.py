"""The pick list and the restock agree when expired units are still in the pocket.

The pick list says how many to bring from the pocket's usable units (expired ones go back to
the pharmacy); restock counts every unit in the pocket against its capacity. A technician
who brought the pick list's quantity was refused OVER_CAPACITY ("it has 14"), with nothing
saying that the 14 were expired units to remove first. The refusal now says so, with its own
code, and once they are removed (journaled, lot by lot) the quantity fits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from helpers import booted, journal, restocked

from controller import replenishment
from controller.errors import ArmoireError

POCKET = ("A", 1, 2)  # HYDROX25, capacity 30


async def with_expired(db: Path) -> Any:
    """Hydroxyzine's pocket with 6 expired units and 2 usable ones; a technician at the
    cabinet."""
    sim = await booted(db)
    restocked(sim.cab.store, "HYDROX25", POCKET, 6, "OLD", "2026-11-01")
    restocked(sim.cab.store, "HYDROX25", POCKET, 2, "NEW", "2027-03-31")
    sim.physical[POCKET] = sim.physical.get(POCKET, 0) + 8  # what the simulated hand sees
    await sim.run(sim.cab.logout())
    await sim.run(sim.cab.login("t1", "551234"))
    return sim


def test_the_pick_list_counts_the_expired_units_apart(tmp_path: Path) -> None:
    async def go() -> dict[str, Any]:
        sim = await with_expired(tmp_path / "c.db")
        try:
            return next(x for x in replenishment.pick_list(sim.cab) if x["pocket"] == "A-2-3")
        finally:
            await sim.shutdown()

    line = asyncio.run(go())
    # 8 + 28 > 30: the 28 fit only once the 6 expired units are out.
    assert (line["usable"], line["expired"], line["bring"]) == (2, 6, 28)


def test_restocking_the_pick_list_s_quantity_names_the_expired_units(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def go() -> list[ArmoireError]:
        sim = await with_expired(db)
        errors = []
        try:
            for pocket in (POCKET, None):  # the pocket's page, or the drug's first with room
                with pytest.raises(ArmoireError) as err:
                    await sim.run(sim.cab.restock("HYDROX25", "HYDROX25", 28, lot="L9",
                                                  expiry="2027-09-30", pocket=pocket))
                errors.append(err.value)
        finally:
            await sim.shutdown()
        return errors

    for err in asyncio.run(go()):
        assert err.code == "REMOVE_EXPIRED_FIRST"
        assert "A-2-3" in err.message_en and "6 expired" in err.message_en
        assert "A-2-3" in err.message_fr and "6 unité(s) périmée(s)" in err.message_fr
    assert journal(db, "SELECT COUNT(*) FROM journal WHERE kind='intent'") == [(0,)]


def test_more_than_fits_even_without_the_expired_units_is_over_capacity(tmp_path: Path
                                                                        ) -> None:
    async def go() -> ArmoireError:
        sim = await with_expired(tmp_path / "c.db")
        try:
            with pytest.raises(ArmoireError) as err:
                await sim.run(sim.cab.restock("HYDROX25", "HYDROX25", 29, lot="L9",
                                              expiry="2027-09-30", pocket=POCKET))
        finally:
            await sim.shutdown()
        return err.value

    assert asyncio.run(go()).code == "OVER_CAPACITY"


def test_once_the_expired_units_are_removed_the_pick_list_s_quantity_fits(tmp_path: Path
                                                                          ) -> None:
    db = tmp_path / "c.db"

    async def go() -> int:
        sim = await with_expired(db)
        cab = sim.cab
        try:
            await sim.operate(cab.remove_expired(*POCKET))
            [line] = [x for x in replenishment.pick_list(cab) if x["pocket"] == "A-2-3"]
            assert (line["expired"], line["bring"]) == (0, 28)
            await sim.operate(cab.restock("HYDROX25", "HYDROX25", 28, lot="L9",
                                          expiry="2027-09-30", pocket=POCKET))
            return cab.store.on_hand(*POCKET)
        finally:
            await sim.shutdown()

    assert asyncio.run(go()) == 30
    assert journal(db, "SELECT lot, qty FROM journal WHERE kind='remove'") == [("OLD", 6)]
