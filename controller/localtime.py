"""The ward's calendar: which day it is where the cabinet stands.

The journal stamps every row in UTC, so that its order and its hash chain never depend on a
clock change. Days, though, are the ward's: a lot labelled "EXP 2026-12-03" may be given
until midnight *local* time, a register "from 2026-12-01" starts at the ward's midnight, and
a day of withdrawals is the ward's day. Taken as UTC days, a Paris cabinet would hand out
a lot for an hour (two in summer) after it expired, and book the withdrawals of 00:00–01:00
on the day before.

Zones are IANA names (``Europe/Paris``), read with :mod:`zoneinfo`, so summer time is
followed. The ``tzdata`` package backs :mod:`zoneinfo` where the system has no zone files.
"""

from __future__ import annotations

import contextlib
import functools
import os
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Where the controller records the zone it runs with, so that tools reading the database
#: later (a backup, ``armoire journal register``) cut days where the cabinet did.
META_KEY = "timezone"

#: UTC as a named zone (``datetime.UTC`` has no IANA key to print or record).
UTC_ZONE = ZoneInfo("UTC")

_LOCALTIME = Path("/etc/localtime")
_TIMEZONE_FILE = Path("/etc/timezone")


#: Files of the zone database that are not a place's zone: ``localtime`` is a link to this
#: machine's own zone (recorded in a database, it would make a pharmacy PC cut days in
#: *its* zone), ``posixrules`` New York's rules, ``Factory`` a placeholder.
NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NOT_PLACES


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` for a name that is not one: a typo, a path,
    an offset such as ``+01:00`` (which would not follow summer time), or a file of the
    zone database that is not a place's zone (``localtime``, ``right/Europe/Paris``, whose
    leap seconds put its clock 27 s off, ``posixrules``)."""
    if not isinstance(name, str) or name not in _known_zones():
        raise ValueError(f"not a time zone name: {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone: {name!r}") from None


def system_zone_name(localtime: Path = _LOCALTIME, timezone_file: Path = _TIMEZONE_FILE,
                     environ: dict[str, str] | None = None) -> str | None:
    """The zone the operating system is set to (``timedatectl set-timezone`` on the Pi):
    ``TZ`` if set to a zone name, else the zone ``/etc/localtime`` links to, else
    ``/etc/timezone``; None when none names a known zone (the caller says what it uses
    then, never silently)."""
    env = os.environ if environ is None else environ
    candidates: list[str] = []
    tz_env = env.get("TZ", "").removeprefix(":")
    if tz_env:
        candidates.append(tz_env)
    try:
        target = os.readlink(localtime)
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        candidates.append(target.rsplit("zoneinfo/", 1)[1])
    with contextlib.suppress(OSError, UnicodeDecodeError):
        candidates.append(timezone_file.read_text(encoding="utf-8").strip())
    for name in candidates:
        try:
            zone(name)
        except ValueError:
            continue
        return name
    return None


def local_day(ts: str | datetime, where: tzinfo) -> date:
    """The ward's day of a journal time (UTC ISO text, as the store writes it) or of an
    aware datetime. ``ValueError`` for text that is not an ISO time with its offset."""
    when = datetime.fromisoformat(ts) if isinstance(ts, str) else ts
    if when.tzinfo is None:
        raise ValueError(f"time without its offset: {ts!r}")
    try:
        return when.astimezone(where).date()
    except OverflowError:  # 9999-12-31T23:30Z east of UTC: no such day
        raise ValueError(f"time out of the calendar in this zone: {ts!r}") from None


def day_start(day: date, where: tzinfo) -> str:
    """The journal time (UTC, the store's text format) at which the ward's ``day`` begins.

    Journal times compare as text, so a day's rows are ``day_start(d) <= ts <
    day_start(d + 1)``. Where clocks jump forward at midnight, local midnight does not
    exist; read with ``fold=0`` it takes the offset before the jump (PEP 495), which lands
    on the day's first real instant, never in the day before."""
    start = datetime.combine(day, time(0), tzinfo=where)
    try:
        return start.astimezone(UTC).isoformat(timespec="milliseconds")
    except OverflowError:  # the first or last day of the calendar, east or west of UTC
        return "" if day.year == 1 else "\uffff"


def day_after(day: date, where: tzinfo) -> str:
    """The first journal time past the ward's ``day``, for "up to and including" filters."""
    if day == date.max:
        return "\uffff"
    return day_start(day + timedelta(days=1), where)


def local_moment(ts: str, where: tzinfo) -> datetime | None:
    """A journal time (UTC ISO text) on the ward's clock; None for text that is not a time
    with its offset, or past the calendar's end in this zone."""
    try:
        when = datetime.fromisoformat(ts)
        if when.tzinfo is None:
            return None
        return when.astimezone(where)
    except (TypeError, ValueError, OverflowError):
        return None


def local_text(ts: str, where: tzinfo, *, seconds: bool = False) -> str:
    """A journal time as the ward's clock showed it (``2026-12-03 11:07``), for files and
    printouts; text that is not a time is shown as it is, never hidden."""
    when = local_moment(ts, where)
    if when is None:
        return str(ts)
    return when.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


__all__ = ["META_KEY", "UTC_ZONE", "day_after", "day_start", "local_day", "local_moment",
           "local_text", "system_zone_name", "zone"]
