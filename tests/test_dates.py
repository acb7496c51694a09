"""Days are YYYY-MM-DD everywhere (controller.dates)."""

from __future__ import annotations

from datetime import date

import pytest

from controller.dates import parse_day


def test_the_extended_form_is_read():
    assert parse_day("2027-01-31") == date(2027, 1, 31)
    assert parse_day("2028-02-29") == date(2028, 2, 29)


@pytest.mark.parametrize("text", ["20270131", "2027-W05-1", "2027W051", "2027-031",
                                  "2027-02-30", "2027-1-31", " 2027-01-31", "2027-01-31T00:00",
                                  "２０２７-01-31", "", 20270131, None])
def test_every_other_form_is_refused(text):
    with pytest.raises(ValueError):
        parse_day(text)  # type: ignore[arg-type]
