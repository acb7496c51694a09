"""Calendar days as every Armoire file and command writes them (YYYY-MM-DD only), and as
people type them on a page (:func:`parse_typed_day`: the page's language decides).

Since Python 3.11, ``date.fromisoformat`` also reads the basic form (``20270131``) and week
dates (``2027-W05-1``). An expiry typed as eight digits is more likely a GTIN, a lot or a
column mix-up than a date, and a week date on a box label does not exist; a date that is not
written the way the cabinet shows it back is refused, never guessed.
"""

from __future__ import annotations

import re
from datetime import date, datetime

ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
#: A day written with slashes: day/month/year in French (one or two digits each for the day
#: and the month, four for the year; a two-digit year is refused, never given a century).
SLASHED_DAY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})", re.ASCII)
#: The languages whose readers write the day before the month, always.
DAY_FIRST = frozenset({"fr"})


class AmbiguousDay(ValueError):
    """A day written with slashes on a page whose language does not say which of the day and
    the month comes first: an English reader may be British (03/12 is 3 December) or
    American (12 March). Refused rather than read either way."""


def parse_day(text: str) -> date:
    """The day ``text`` names in the extended form; ``ValueError`` for anything else
    (another ISO form, an impossible day such as 2027-02-30, a non-string)."""
    if not isinstance(text, str) or not ISO_DAY.fullmatch(text):
        raise ValueError(f"not a YYYY-MM-DD date: {text!r}")
    return date.fromisoformat(text)


def parse_typed_day(text: str, lang: str) -> date:
    """The day a person typed on a page in ``lang``: YYYY-MM-DD in every language, and
    DD/MM/YYYY where the language puts the day first. The browser's own date input is not
    used because Chromium shows and reads it in the *browser's* locale, whatever the page's
    language: 03/12 typed on a French page could be stored as 12 March.

    ``AmbiguousDay`` for a slashed day where the language does not settle the order;
    ``ValueError`` for anything else that is not a real day (31/02/2027, 03/12/27…)."""
    if not isinstance(text, str):
        raise ValueError(f"not a date: {text!r}")
    slashed = SLASHED_DAY.fullmatch(text)
    if slashed is None:
        return parse_day(text)
    if lang not in DAY_FIRST:
        raise AmbiguousDay(f"day or month first? {text!r}")
    day, month, year = (int(part) for part in slashed.groups())
    return date(year, month, day)  # ValueError for 31/02, 00/12, 03/13…


def show_day(day: date, lang: str) -> str:
    """``day`` as a person of ``lang`` types it, so that what the page shows back reads as
    what its format says (and :func:`parse_typed_day` reads it again as the same day)."""
    if lang in DAY_FIRST:
        return f"{day.day:02d}/{day.month:02d}/{day.year:04d}"
    return day.isoformat()


def show_time(when: datetime, lang: str, *, seconds: bool = False) -> str:
    """A moment as a person of ``lang`` reads it: its day as :func:`show_day` writes it (the
    day a page's filter is typed in reads the same beside it), then the clock, 24 h."""
    return f"{show_day(when.date(), lang)} {when:%H:%M:%S}" if seconds else (
        f"{show_day(when.date(), lang)} {when:%H:%M}")


def show_iso_day(text: str, lang: str) -> str:
    """A day stored as YYYY-MM-DD (a lot's expiry) as :func:`show_day` writes it; text that
    is not such a day is shown as it is, never hidden."""
    try:
        return show_day(parse_day(text), lang)
    except ValueError:
        return text


__all__ = ["DAY_FIRST", "ISO_DAY", "SLASHED_DAY", "AmbiguousDay", "parse_day",
           "parse_typed_day", "show_day", "show_iso_day", "show_time"]
