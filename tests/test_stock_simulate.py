"""The replay's accounting on tiny cases computed by hand (see the module's rules)."""

from itertools import pairwise

import numpy as np
import pytest

from controller.stock.simulate import simulate_policy

DEMAND = np.array([[3, 0, 5, 2, 0, 4]], dtype=np.float64)


def test_daily_review_lead_time_one():
    # min 2, max 6, starts full at 6.
    # t0: 6-3=3 | t1: 3 | t2: serve 3, lose 2 -> 0, position 0 <= 2: order 6 (due t4)
    # t3: lose 2; position 0+6 > 2 | t4: +6 -> 6 | t5: 6-4=2, position 2 <= 2: order 4.
    r = simulate_policy(DEMAND, np.array([2.0]), np.array([6.0]), lead_time=1, review=1)
    assert r.orders[0] == 2
    assert r.demand[0] == 14
    assert r.served[0] == 10
    assert r.lost[0] == 4
    assert r.stockout_periods[0] == 2
    assert r.fill_rate[0] == pytest.approx(10 / 14)
    assert r.avg_stock[0] == pytest.approx((3 + 3 + 0 + 0 + 6 + 2) / 6)


def test_review_every_two_periods():
    # Reviews at the ends of t1, t3, t5. t3: position 0 -> order 6, due t5.
    # Stock: 3, 3, 0, 0, 0, then t5: 0+6-4 = 2 -> order 4.
    r = simulate_policy(DEMAND, np.array([2.0]), np.array([6.0]), lead_time=1, review=2)
    assert r.orders[0] == 2
    assert r.served[0] == 10
    assert r.stockout_periods[0] == 2
    assert r.avg_stock[0] == pytest.approx((3 + 3 + 0 + 0 + 0 + 2) / 6)


def test_lead_time_zero_refills_before_the_next_period():
    # t0: 3 | t1: 3 | t2: serve 3 lose 2 -> order 6 | t3: 6-2 = 4 | t4: 4 | t5: 0 -> order 6.
    r = simulate_policy(DEMAND, np.array([2.0]), np.array([6.0]), lead_time=0, review=1)
    assert r.orders[0] == 2
    assert r.served[0] == 12
    assert r.stockout_periods[0] == 1
    assert r.avg_stock[0] == pytest.approx((3 + 3 + 0 + 4 + 4 + 0) / 6)


def test_candidates_are_replayed_side_by_side():
    mins = np.array([[2.0, 5.0]])
    maxs = np.array([[6.0, 14.0]])
    r = simulate_policy(DEMAND, mins, maxs, lead_time=1, review=1, keep_path=True)
    assert r.orders.shape == (1, 2)
    assert r.fill_rate[0, 1] == 1.0  # 14 units on hand covers everything
    assert r.stock_path is not None and r.stock_path.shape == (2, 6)
    assert r.stock_path[0].tolist() == [3, 3, 0, 0, 6, 2]


def test_no_demand_is_a_full_fill_rate():
    r = simulate_policy(np.zeros((1, 4)), np.array([0.0]), np.array([1.0]),
                        lead_time=1, review=1)
    assert r.fill_rate[0] == 1.0
    assert r.orders[0] == 0


def test_item_paths_are_each_pocket_s_line_and_add_up_to_the_total():
    demand = np.vstack([DEMAND, DEMAND[:, ::-1]])
    mins = np.array([[2.0, 5.0], [1.0, 3.0]])
    maxs = np.array([[6.0, 14.0], [4.0, 9.0]])
    r = simulate_policy(demand, mins, maxs, lead_time=1, review=1, keep_path=True,
                        keep_item_paths=True)
    assert r.item_paths is not None and r.item_paths.shape == (2, 2, 6)
    assert r.item_paths[0, 0].tolist() == [3, 3, 0, 0, 6, 2]  # as the one-item replay above
    assert r.stock_path is not None
    assert np.array_equal(r.item_paths.sum(axis=0), r.stock_path)
    assert np.allclose(r.item_paths.mean(axis=2), r.avg_stock)


@pytest.mark.parametrize(("lead_time", "review"), [(0, 1), (1, 1), (2, 3), (3, 2)])
def test_a_replay_cut_into_stretches_and_carried_on_is_the_same_replay(lead_time, review):
    # The state carries stock, deliveries due and the review calendar: cutting the replay
    # anywhere (even mid review interval, or with an order on its way) changes nothing.
    rng = np.random.default_rng(3)
    y = rng.poisson(rng.uniform(0.1, 5.0, (40, 1)), (40, 90)).astype(np.float64)
    mins = np.floor(rng.uniform(0, 10, 40))
    maxs = mins + np.floor(rng.uniform(1, 10, 40))
    whole = simulate_policy(y, mins, maxs, lead_time=lead_time, review=review)
    state, orders, served, stock = None, 0.0, 0.0, 0.0
    cuts = [0, 13, 40, 41, 77, 90]
    for a, b in pairwise(cuts):
        r = simulate_policy(y[:, a:b], mins, maxs, lead_time=lead_time, review=review,
                            start=state)
        state = r.end
        orders, served, stock = orders + r.orders, served + r.served, stock + r.avg_stock * (b - a)
    assert state is not None and state.period == 90
    np.testing.assert_allclose(orders, whole.orders)
    np.testing.assert_allclose(served, whole.served)
    np.testing.assert_allclose(stock / 90, whole.avg_stock)


def test_carrying_on_keeps_the_stock_when_the_levels_change():
    # Full at max 6, demand 3: 3 on hand. New levels min 1, max 20: 3 > 1, no order, and
    # the pocket is not refilled to 20 for free. Then 2 taken -> 1 <= 1: order 19.
    first = simulate_policy(np.array([[3.0]]), np.array([2.0]), np.array([6.0]),
                            lead_time=1, review=1)
    assert first.end is not None and first.end.on_hand[0] == 3
    nxt = simulate_policy(np.array([[0.0, 2.0]]), np.array([1.0]), np.array([20.0]),
                          lead_time=1, review=1, start=first.end)
    assert nxt.avg_stock[0] == pytest.approx((3 + 1) / 2)
    assert nxt.orders[0] == 1
    assert nxt.end is not None and nxt.end.pipeline.sum() == 19


def test_a_state_for_another_lead_time_is_refused():
    first = simulate_policy(DEMAND, np.array([2.0]), np.array([6.0]), lead_time=1, review=1)
    with pytest.raises(ValueError):
        simulate_policy(DEMAND, np.array([2.0]), np.array([6.0]), lead_time=2, review=1,
                        start=first.end)
