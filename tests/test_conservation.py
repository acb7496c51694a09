"""Conservation under random operations and power cuts (hypothesis).

Per pocket: restocked + returned − withdrawn − wasted − removed ± count corrections = on hand,
at every step, whatever the person does (takes more than asked, miscounts) and wherever the
power goes: while a drawer is open after the intent, or in the middle of the outcome's
transaction. Nothing committed is lost: every journal row present before a cut is present,
unchanged, after it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

from helpers import PINS, SPEC, START, config
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from controller.errors import ArmoireError
from controller.journal import projection_mismatches, verify
from sim.harness import SimCabinet


class PowerCut(BaseException):
    """Raised from inside a transaction: the process dies there."""


ops = st.one_of(
    st.tuples(st.just("restock"), st.integers(1, 25), st.sampled_from(["L1", "L2", "L3"])),
    st.tuples(st.just("withdraw"), st.integers(1, 8), st.integers(0, 10)),
    st.tuples(st.just("return"), st.integers(1, 3), st.just(0)),
    st.tuples(st.just("waste"), st.integers(1, 3), st.just(0)),
    st.tuples(st.just("count"), st.integers(0, 40), st.just(0)),
    st.tuples(st.just("cut_open"), st.integers(1, 5), st.just(0)),
    st.tuples(st.just("cut_commit"), st.integers(1, 5), st.integers(1, 3)),
)
EXPIRY = {"L1": "2027-01-31", "L2": "2027-03-31", "L3": "2026-12-31"}


def check(db: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(db)
    try:
        assert verify(conn).ok
        assert projection_mismatches(conn) == []
        return [(int(s), str(h)) for s, h in conn.execute("SELECT seq, hash FROM journal")]
    finally:
        conn.close()


def dies_on_call(append, n: int):
    """store.append that cuts the power on its n-th call (inside the outcome's transaction)."""
    calls = [0]

    def dying_append(*a, **k):
        calls[0] += 1
        if calls[0] == n:
            raise PowerCut
        return append(*a, **k)

    return dying_append


async def scenario(plan, db: Path) -> list[str]:
    """Play the plan; returns the kinds that were carried out (not refused)."""
    sim = SimCabinet(config(), db, start=START)
    await sim.boot(SPEC)
    committed = check(db)
    done: list[str] = []

    async def login() -> None:
        if sim.cab.session.state == "locked":
            await sim.run(sim.cab.login("ph1", PINS["ph1"]))

    for kind, n, m in plan:
        await login()
        cab = sim.cab
        try:
            if kind == "restock":
                await sim.operate(cab.restock("PARA500", "PARA500", n, lot=m, expiry=EXPIRY[m]))
            elif kind == "withdraw":
                await sim.operate(cab.withdraw("PARA500", n, "P1"), take=m if m <= n + 2 else None)
            elif kind == "return":
                await sim.operate(cab.return_("PARA500", n, "P1"))
            elif kind == "waste":
                await sim.operate(cab.waste("PARA500", n))
            elif kind == "count":
                op = await sim.open_for(cab.count("A", 0, 0))
                await sim.finish(op, n)
            elif kind == "cut_open":
                op = await sim.open_for(cab.withdraw("PARA500", n, "P1"))
                await sim.act(op)
                sim.power_loss()
            elif kind == "cut_commit":
                op = await sim.open_for(cab.withdraw("PARA500", n, "P1"))
                await sim.act(op)
                store = sim.store
                assert store is not None
                real_append = store.append
                store.append = dies_on_call(real_append, m)  # type: ignore[method-assign]
                try:
                    await sim.run(cab.confirm_count(0))
                except PowerCut:
                    pass
                finally:
                    store.append = real_append  # type: ignore[method-assign]
                sim.power_loss()
            done.append(kind)
        except ArmoireError:
            pass  # refused (no stock, over capacity…): must have changed nothing
        if sim.cabinet is None:
            await sim.boot()
        now = check(db)
        assert now[:len(committed)] == committed, "a committed journal row changed or vanished"
        committed = now
    await sim.shutdown()
    return done


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=10))
def test_conservation_under_random_operations_and_power_cuts(plan):
    with tempfile.TemporaryDirectory() as tmp:
        for kind in asyncio.run(scenario(plan, Path(tmp) / "c.db")):
            event(f"carried out: {kind}")


def test_every_operation_kind_is_carried_out(tmp_path):
    """The random test above is only as good as its operations: each one really runs."""
    plan = [("restock", 20, "L1"), ("withdraw", 3, 4), ("return", 1, 0), ("waste", 1, 0),
            ("count", 12, 0), ("restock", 10, "L2"), ("cut_open", 2, 0),
            ("cut_commit", 2, 2), ("withdraw", 1, 1)]
    done = asyncio.run(scenario(plan, tmp_path / "c.db"))
    assert done == [k for k, _, _ in plan]
    conn = sqlite3.connect(tmp_path / "c.db")
    kinds = {k for (k,) in conn.execute("SELECT DISTINCT kind FROM journal")}
    assert {"restock", "withdraw", "return", "waste", "count", "count_correction",
            "discrepancy"} <= kinds


def test_a_cut_during_the_outcome_leaves_a_discrepancy_not_a_guess(tmp_path):
    plan = [("restock", 20, "L1"), ("cut_commit", 3, 1)]
    asyncio.run(scenario(plan, tmp_path / "c.db"))
    conn = sqlite3.connect(tmp_path / "c.db")
    kinds = [k for (k,) in conn.execute("SELECT kind FROM journal ORDER BY seq")]
    assert "withdraw" not in kinds  # the outcome's transaction never committed
    assert kinds[-1] == "alarm_raised" and "discrepancy" in kinds
    assert conn.execute("SELECT SUM(on_hand) FROM stock").fetchone()[0] == 20
