"""Days are YYYY-MM-DD everywhere (controller.dates)."""

from __future__ import annotations

from datetime import date

import pytest

from controller.dates import AmbiguousDay, parse_day, parse_typed_day, show_day


def test_the_extended_form_is_read():
    assert parse_day("2027-01-31") == date(2027, 1, 31)
    assert parse_day("2028-02-29") == date(2028, 2, 29)


@pytest.mark.parametrize("text", ["20270131", "2027-W05-1", "2027W051", "2027-031",
                                  "2027-02-30", "2027-1-31", " 2027-01-31", "2027-01-31T00:00",
                                  "２０２７-01-31", "", 20270131, None])
def test_every_other_form_is_refused(text):
    with pytest.raises(ValueError):
        parse_day(text)  # type: ignore[arg-type]


# -- days people type on a page (controller.dates.parse_typed_day) ----------------------------
# A French reader writes the day first (03/12/2027 is 3 December); an English reader may be
# British or American, so a slashed day on an English page is refused, never guessed.
@pytest.mark.parametrize(("text", "day"), [("03/12/2027", date(2027, 12, 3)),
                                           ("3/12/2027", date(2027, 12, 3)),
                                           ("29/02/2028", date(2028, 2, 29)),
                                           ("2027-12-03", date(2027, 12, 3))])
def test_a_french_page_reads_the_day_first_and_iso(text, day):
    assert parse_typed_day(text, "fr") == day


def test_an_english_page_reads_iso():
    assert parse_typed_day("2027-12-03", "en") == date(2027, 12, 3)


@pytest.mark.parametrize("text", ["03/12/2027", "12/03/2027", "25/12/2027", "12/25/2027"])
def test_a_slashed_day_on_an_english_page_is_ambiguous(text):
    with pytest.raises(AmbiguousDay):
        parse_typed_day(text, "en")


@pytest.mark.parametrize("text", ["31/02/2027", "29/02/2027", "00/12/2027", "03/13/2027",
                                  "2027-02-31", "03/12/27", "03-12-2027", "03.12.2027",
                                  "2027/12/03", "03/12/2027x", "123/12/2027", "hier", "",
                                  "２７/12/2027", "20271203"])
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_impossible_or_other_forms_are_refused_in_both_languages(text, lang):
    with pytest.raises(ValueError) as refused:
        parse_typed_day(text, lang)
    if lang == "fr":  # never told "ambiguous" where the language says which comes first
        assert not isinstance(refused.value, AmbiguousDay)


def test_a_day_is_shown_back_as_the_page_reads_it():
    assert show_day(date(2027, 12, 3), "fr") == "03/12/2027"
    assert show_day(date(2027, 12, 3), "en") == "2027-12-03"
    assert show_day(date(999, 1, 2), "fr") == "02/01/0999"
    for lang in ("fr", "en"):
        assert parse_typed_day(show_day(date(2028, 2, 29), lang), lang) == date(2028, 2, 29)
