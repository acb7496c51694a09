"""Each forecaster on a series small enough to check by hand (α = β = 0.1)."""

import numpy as np
import pytest

from controller.stock.forecast import (
    active_periods,
    adida,
    bootstrap_level,
    croston,
    imapa,
    lead_time_sums,
    sba,
    ses,
    tsb,
)


def row(*values: float) -> np.ndarray:
    return np.array([values], dtype=np.float64)


def test_croston_updates_size_and_interval_on_demand_periods():
    # First demand 4 at t=2 -> size 4, interval 3; then 2 after a gap of 2:
    # size 4 + 0.1(2 - 4) = 3.8, interval 3 + 0.1(2 - 3) = 2.9.
    assert croston(row(0, 0, 4, 0, 2))[0] == pytest.approx(3.8 / 2.9)


def test_sba_is_croston_deflated_by_one_minus_half_alpha():
    assert sba(row(0, 0, 4, 0, 2))[0] == pytest.approx(3.8 / 2.9 * 0.95)


def test_croston_of_an_item_never_taken_is_zero():
    assert croston(row(0, 0, 0))[0] == 0.0


def test_tsb_decays_probability_every_active_period():
    # Active from t=1 (3 periods, 2 with demand): p0 = 2/3, z0 = 3.
    # t=1 demand 2: p = 0.7, z = 2.9; t=2 none: p = 0.63; t=3 demand 4: p = 0.667, z = 3.01.
    assert tsb(row(0, 2, 0, 4))[0] == pytest.approx(0.667 * 3.01)


def test_tsb_notices_an_item_going_to_sleep():
    awake = tsb(row(*([3.0] * 20)))[0]
    asleep = tsb(row(*([3.0] * 10 + [0.0] * 10)))[0]
    assert awake == pytest.approx(3.0)
    # p0 = 10/20; ten demand periods lift it, ten empty ones decay it by 0.9 each.
    lifted = 1 - 0.5 * 0.9**10
    assert asleep == pytest.approx(3.0 * lifted * 0.9**10)
    assert asleep < 0.4 * awake


def test_ses_starts_from_the_mean():
    # mean 3.5 -> 3.25 -> 3.125 -> 3.1125 -> 3.20125 -> 3.381125 -> 3.6430125
    assert ses(row(1, 2, 3, 4, 5, 6))[0] == pytest.approx(3.6430125)


def test_adida_buckets_from_the_most_recent_period():
    # Level 2: buckets 3, 7, 11; SES from 7: 6.6, 6.64, 7.076; per period 3.538.
    assert adida(row(1, 2, 3, 4, 5, 6), 2)[0] == pytest.approx(3.538)
    # Level 4: one bucket (3+4+5+6), the oldest two periods dropped.
    assert adida(row(1, 2, 3, 4, 5, 6), 4)[0] == pytest.approx(4.5)


def test_imapa_averages_adida_over_levels():
    y = row(0, 2, 0, 0, 4, 0, 1, 0)  # 8 periods -> levels 1 and 2
    expected = (adida(y, 1)[0] + adida(y, 2)[0]) / 2
    assert imapa(y)[0] == pytest.approx(expected)


def test_bootstrap_level_ignores_periods_before_the_first_withdrawal():
    assert active_periods(row(0, 0, 2, 0, 4))[0] == 3
    assert bootstrap_level(row(0, 0, 2, 0, 4))[0] == pytest.approx(2.0)


def test_lead_time_sums_are_rolling_windows_marked_before_first_use():
    assert lead_time_sums(row(0, 1, 2, 3), 2).tolist() == [[-1.0, 3.0, 5.0]]
    # History shorter than the horizon: one sample, scaled up.
    assert lead_time_sums(row(1, 2), 4).tolist() == [[6.0]]


def test_forecasters_are_vectorised_over_items():
    y = np.array([[0, 0, 4, 0, 2], [1, 1, 1, 1, 1]], dtype=np.float64)
    out = croston(y)
    assert out[0] == pytest.approx(3.8 / 2.9)
    assert out[1] == pytest.approx(1.0)


def test_forecast_all_matches_each_method():
    from controller.stock.forecast import METHODS, forecast_all

    y = np.array([[0, 3, 0, 0, 5, 1, 0, 2], [1, 0, 0, 0, 0, 0, 0, 4]], dtype=np.float64)
    names = ["sba", "tsb", "croston", "imapa", "bootstrap"]
    got = forecast_all(y, names)
    for j, name in enumerate(names):
        assert got[:, j] == pytest.approx(METHODS[name](y))
