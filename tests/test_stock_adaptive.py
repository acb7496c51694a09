"""The adaptive min/max rule of benchmarks/stock_adaptive.py: its smoothing, its replay, and
that it never sees the future (the benchmark's figures in docs/stock.md rest on it)."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from adaptive_levels import AdaptiveLevels, simulate_varying, smooth

from controller.stock.generator import WardSpec, generate_ward
from controller.stock.simulate import simulate_policy


def _ward(n=60, days=120, seed=3):
    matrix, _ = generate_ward(WardSpec(n_items=n, days=days, seed=seed))
    return matrix.demand


def test_smoothing_by_hand():
    y = np.array([[4.0, 0.0, 2.0]])
    s = smooth(y, (0.5,))
    # Nothing known before period 0; then the running mean while 1/n > α, then SES.
    assert s.level[:, 0, 0].tolist() == [0.0, 4.0, 2.0, 2.0]
    # Errors: period 1: |0 - 4| = 4 (first error, weight 1); period 2: |2 - 2| = 0,
    # weight max(0.5, 1/2): 4 + 0.5 (0 - 4) = 2.
    assert s.spread[:, 0, 0].tolist() == pytest.approx([0.0, 0.0, 5.0, 2.5])


def test_levels_by_hand():
    y = np.array([[4.0, 0.0, 2.0]])
    s = smooth(y, (0.5,))
    rule = AdaptiveLevels(s, np.array([[0]]), np.array([[2.0]]), np.array([[3.0]]), horizon=2)
    mins, maxs = rule(3)
    # level 2, spread 2.5: min = ceil(2·2 + 2·2.5·√2) = ceil(11.07) = 12; max = 12 + 6.
    assert mins[0, 0] == math.ceil(4 + 5 * math.sqrt(2))
    assert maxs[0, 0] == mins[0, 0] + 6
    # q scales the mean term: k = 0, q = 3.2 → ceil(3.2 · 2 · 2) = 13.
    scaled = AdaptiveLevels(s, np.array([[0]]), np.array([[0.0]]), np.array([[3.0]]),
                            horizon=2, scale=np.array([[3.2]]))
    assert scaled(3)[0][0, 0] == 13


@pytest.mark.parametrize(("lead_time", "review"), [(1, 1), (0, 1), (2, 3)])
def test_constant_levels_replay_like_simulate_policy(lead_time, review):
    y = _ward()
    rng = np.random.default_rng(0)
    mins = rng.integers(0, 30, size=(y.shape[0], 3)).astype(np.float64)
    maxs = mins + rng.integers(1, 40, size=mins.shape)
    ref = simulate_policy(y, mins, maxs, lead_time=lead_time, review=review)
    got = simulate_varying(y, lambda t: (mins, maxs), lead_time=lead_time, review=review)
    for name in ("orders", "demand", "served", "stockout_periods", "avg_stock"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)
    assert ref.end is not None and got.end is not None
    np.testing.assert_array_equal(got.end.on_hand, ref.end.on_hand)
    np.testing.assert_array_equal(got.end.pipeline, ref.end.pipeline)


def test_carrying_on_from_a_state_equals_one_replay():
    y = _ward()
    s = smooth(y, (0.1, 0.3))
    n = y.shape[0]
    idx = np.arange(n)[:, None] % 2
    k = np.full((n, 1), 2.0)
    c = np.full((n, 1), 3.0)
    whole = simulate_varying(y, AdaptiveLevels(s, idx, k, c, horizon=2), lead_time=1, review=1)
    first = simulate_varying(y[:, :50], AdaptiveLevels(s, idx, k, c, horizon=2), lead_time=1,
                             review=1)
    rest = simulate_varying(y[:, 50:], AdaptiveLevels(s, idx, k, c, horizon=2, offset=50),
                            lead_time=1, review=1, start=first.end)
    np.testing.assert_array_equal(first.orders + rest.orders, whole.orders)
    np.testing.assert_array_equal(first.served + rest.served, whole.served)
    np.testing.assert_allclose(first.avg_stock * 50 + rest.avg_stock * 70,
                               whole.avg_stock * 120)


def test_a_level_shift_moves_the_levels():
    y = np.concatenate([np.full((1, 100), 2.0), np.full((1, 100), 10.0)], axis=1)
    s = smooth(y, (0.2,))
    rule = AdaptiveLevels(s, np.array([[0]]), np.array([[1.0]]), np.array([[2.0]]), horizon=2)
    before, _ = rule(100)
    after, _ = rule(200)
    assert before[0, 0] == 4  # a flat series: no spread, min = 2 × 2
    assert 19 <= after[0, 0] <= 25  # tracks the new level 10 (+ a little spread)


def test_weekly_factors_deseasonalise_and_reseasonalise():
    weekly = np.array([1.2, 1.2, 1.0, 1.0, 1.0, 0.8, 0.8])
    t = np.arange(80)
    y = (10.0 * weekly[t % 7])[None, :]
    s = smooth(y, (0.3,), weekly)
    # Deseasonalised, the series is flat at 10: no spread at all.
    assert s.level[-1, 0, 0] == pytest.approx(10.0)
    assert s.spread[-1, 0, 0] == pytest.approx(0.0)
    one = np.array([[0]])
    rule = AdaptiveLevels(s, one, np.array([[1.0]]), np.array([[1.0]]), horizon=2,
                          weekly=weekly)
    # Column 70 protects periods 70 and 71 (factors 1.2, 1.2): min 24; column 75 (local 70
    # with offset 5) protects 75 and 76 (0.8, 0.8): min 16.
    assert rule(70)[0][0, 0] == 24
    assert AdaptiveLevels(s, one, np.array([[1.0]]), np.array([[1.0]]), horizon=2,
                          offset=5, weekly=weekly)(70)[0][0, 0] == 16


def test_never_uses_future_demand():
    y = _ward()
    cut = 70
    future = y.copy()
    future[:, cut:] = np.random.default_rng(1).poisson(30.0, size=future[:, cut:].shape)
    a, b = smooth(y, (0.05, 0.2)), smooth(future, (0.05, 0.2))
    # Columns up to cut use periods < cut only: unchanged; the next one does see period cut.
    np.testing.assert_array_equal(a.level[:cut + 1], b.level[:cut + 1])
    np.testing.assert_array_equal(a.spread[:cut + 1], b.spread[:cut + 1])
    assert not np.array_equal(a.level[cut + 1], b.level[cut + 1])
    # And the replay of the periods before cut is the same whatever comes after.
    n = y.shape[0]
    args = (np.zeros((1, 4), dtype=np.intp) + np.array([[0, 1, 0, 1]]),
            np.array([[0.0, 1.0, 2.0, 3.0]]), np.array([[1.0, 2.0, 5.0, 9.0]]))
    ra = simulate_varying(y[:, :cut], AdaptiveLevels(a, *args, horizon=2), lead_time=1,
                          review=1)
    rb = simulate_varying(future[:, :cut], AdaptiveLevels(b, *args, horizon=2), lead_time=1,
                          review=1)
    assert ra.orders.shape == (n, 4)
    for name in ("orders", "served", "avg_stock"):
        np.testing.assert_array_equal(getattr(ra, name), getattr(rb, name), err_msg=name)
    assert ra.end is not None and rb.end is not None
    np.testing.assert_array_equal(ra.end.on_hand, rb.end.on_hand)


def test_bad_shapes_are_refused():
    y = _ward(n=5, days=10)
    with pytest.raises(ValueError):
        simulate_varying(y, lambda t: (np.zeros((4, 1)), np.ones((4, 1))), lead_time=1,
                         review=1)
    with pytest.raises(ValueError):
        simulate_varying(y, lambda t: (np.zeros((5, 1)), np.ones((5, 1))), lead_time=-1,
                         review=1)
