"""Classification on constructed series."""

import numpy as np
import pytest

from controller.stock.classify import abc_classes, classify, xyz_classes


def test_abc_by_cumulative_value_share():
    values = np.array([100, 50, 30, 10, 5, 5], dtype=np.float64)
    # Share of value ranked before each item: 0, .5, .75, .9, .95, .975.
    assert abc_classes(values) == ["A", "A", "A", "B", "C", "C"]


def test_abc_items_without_value_are_c():
    assert abc_classes(np.array([0.0, 3.0])) == ["C", "A"]
    assert abc_classes(np.zeros(2)) == ["C", "C"]


def test_xyz_by_coefficient_of_variation():
    y = np.array([[2, 2, 2, 2], [1, 0, 1, 0], [4, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float64)
    assert xyz_classes(y, "week") == ["X", "Y", "Z", "Z"]


def test_xyz_buckets_days_into_weeks():
    # Weekdays only: variable day to day, identical week to week -> X.
    week = [3, 3, 3, 3, 3, 0, 0]
    y = np.array([week * 4], dtype=np.float64)
    assert xyz_classes(y, "day") == ["X"]


def test_patterns_movement_and_value():
    y = np.array([
        [2] * 12,  # smooth, fast
        [1, 9] * 6,  # erratic, fast
        [5, 0, 0, 0] * 3,  # intermittent, slow (quiet for 3 periods, its usual gap is 4)
        [1, 0, 0, 9, 0, 0] * 2,  # lumpy, slow
        [3] * 4 + [0] * 8,  # intermittent (ADI 3); asleep: quiet for 8 > 2 x 3 periods
        [0] * 12,  # never taken
    ], dtype=np.float64)
    got = classify(y, np.ones(6), "week")
    assert [c.pattern for c in got] == ["smooth", "erratic", "intermittent", "lumpy",
                                        "intermittent", "none"]
    assert [c.movement for c in got] == ["fast", "fast", "slow", "slow", "sleeping",
                                         "sleeping"]
    # Value: unit cost changes the ABC rank, not the pattern.
    costly = classify(y, np.array([1, 1, 1, 100, 1, 1.0]), "week")
    assert costly[3].abc == "A"


def test_a_stop_flag_ends_the_classification_within_a_chunk_of_items(mocker):
    """The service stopping while thousands of items are classified: the classification
    ends at its next chunk (Stopped), not after the last item; unset, it changes nothing."""
    import threading

    from controller.stock import classify as module
    from controller.tasks import Stopped

    rng = np.random.default_rng(7)
    y = rng.poisson(1.0, size=(3 * module.STOP_EVERY_ITEMS, 30)).astype(float)
    costs = np.ones(len(y))
    stop = threading.Event()
    assert classify(y, costs, "day", stop=stop) == classify(y, costs, "day")
    made = []
    real = module.Classes

    def first_sets_the_flag(*args):
        made.append(args)
        stop.set()  # the stop arrives while the first item is classified
        return real(*args)

    mocker.patch.object(module, "Classes", side_effect=first_sets_the_flag)
    with pytest.raises(Stopped):
        classify(y, costs, "day", stop=stop)
    assert len(made) == module.STOP_EVERY_ITEMS
