"""Calendar days as every Armoire file, form and command writes them: YYYY-MM-DD only.

Since Python 3.11, ``date.fromisoformat`` also reads the basic form (``20270131``) and week
dates (``2027-W05-1``). An expiry typed as eight digits is more likely a GTIN, a lot or a
column mix-up than a date, and a week date on a box label does not exist; a date that is not
written the way the cabinet shows it back is refused, never guessed.
"""

from __future__ import annotations

import re
from datetime import date

ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def parse_day(text: str) -> date:
    """The day ``text`` names in the extended form; ``ValueError`` for anything else
    (another ISO form, an impossible day such as 2027-02-30, a non-string)."""
    if not isinstance(text, str) or not ISO_DAY.fullmatch(text):
        raise ValueError(f"not a YYYY-MM-DD date: {text!r}")
    return date.fromisoformat(text)


__all__ = ["ISO_DAY", "parse_day"]
