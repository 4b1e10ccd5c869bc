"""The two clocks of the archive, written one way each.

- The site's times are Moscow local time (`MOSCOW`, zone Europe/Moscow: +03:00 since October
  2014, +04:00 2011-2014, +03/+04 winter/summer before); `moscow_iso` writes one as ISO 8601
  with the offset Moscow had on that day.
- The archive's own times (fetches, runs, errors, revisions) are UTC, to the second, written
  `2026-11-30T02:31:02Z` (`utc_stamp`).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")


def utc_stamp(moment: dt.datetime | None = None) -> str:
    """`moment` (default: now) in UTC as `YYYY-MM-DDTHH:MM:SSZ`; a naive datetime means UTC."""
    if moment is None:
        moment = dt.datetime.now(dt.UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def moscow_iso(day: dt.date, hour: int, minute: int, second: int = 0) -> str:
    """Moscow local time -> ISO 8601 with the offset Moscow had then."""
    return dt.datetime(
        day.year, day.month, day.day, hour, minute, second, tzinfo=MOSCOW
    ).isoformat()


def moscow_today() -> dt.date:
    """Today's date in Moscow (the site's calendar)."""
    return dt.datetime.now(MOSCOW).date()
