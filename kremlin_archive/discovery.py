"""Discovery, pure: which (language, id) pairs a run asks for, found from evidence. Discovery
proposes; it never decides that the archive is complete (the coverage ledger does that).

- `parse_id_ranges` / `format_id_ranges`: `62888-63088,63100` <-> a sorted list of ids.
- `ListingCheck`: the pages of one listing walk, each checked against its own URL and the pages
  read before it. The live site has been reported to answer every `page/N` with page 1 since
  2026 (SITE.md §9): a page that contradicts its URL (another page number; a by-date page whose
  items do not reach its day), runs forward in time, or repeats items of an earlier page other
  than by the shift news causes, is a lying listing.
- `IdWalk`: the id range of a date window, from (id, day) evidence -- the archive's own events,
  listing items and feed entries seen in the run -- and as few probe requests as possible,
  then walked with its edges checked (see the class).

The site's ids are one sequence shared by both languages and every section, mostly
chronological: in the 2020 capture 639 of 8,531 id-adjacent listing pairs run backwards in
date, nearly all by a day or two, and a few items carry a date weeks or months before their
neighbours'. An id that one language has and the other lacks is normal.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_IDS = 1_000_000_000  # ids have at most nine digits (urls.EVENT_KEY)
MAX_RANGE = 200_000  # ids one --ids may name (the whole site is about 80,000)

_RANGE = re.compile(r"^\s*([0-9]{1,9})\s*(?:[-–]\s*([0-9]{1,9})\s*)?$")


def parse_id_ranges(text: str) -> list[int]:
    """`62888-63088,63100 63105` -> the sorted distinct ids; ValueError naming what is wrong."""
    ids: set[int] = set()
    text = re.sub(r"\s*[-–]\s*", "-", text or "")
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts:
        raise ValueError("no ids given (expected e.g. 62888-63088,63100)")
    for part in parts:
        match = _RANGE.match(part)
        if not match:
            raise ValueError(f"{part!r}: expected an id or a range like 62888-63088")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if first < 1 or last < 1:
            raise ValueError(f"{part!r}: ids start at 1")
        if last < first:
            raise ValueError(f"{part!r}: the range runs backwards")
        if last - first + 1 + len(ids) > MAX_RANGE:
            raise ValueError(f"{text[:80]!r}: more than {MAX_RANGE:,} ids")
        ids.update(range(first, last + 1))
    return sorted(ids)


def id_runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted distinct ids as (first, last) runs of consecutive ids."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def format_id_ranges(ids: Iterable[int], *, limit: int | None = None) -> str:
    """`62888-62890, 62900`; with `limit`, at most that many runs and `… (+N more)`."""
    runs = id_runs(ids)
    shown = runs if limit is None else runs[:limit]
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in shown)
    if len(shown) < len(runs):
        text += f", … (+{len(runs) - len(shown)} more ranges)"
    return text


# -- listings ------------------------------------------------------------------------------------


def listing_position(url: str) -> tuple[str, int | None, dt.date | None]:
    """What a listing URL asks for: ("page", N, None) for the news listing (page 1) and page/N,
    ("by-date", None, day) for by-date/DD.MM.YYYY, ("other", None, None) otherwise."""
    path = urlsplit(url).path.rstrip("/")
    if path.endswith("/events/president/news"):
        return "page", 1, None
    if m := re.search(r"/events/president/news/page/([0-9]{1,6})$", path):
        return "page", int(m.group(1)), None
    if m := re.search(r"/events/president/news/by-date/([0-9]{2})\.([0-9]{2})\.([0-9]{4})$", path):
        try:
            return "by-date", None, dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        except ValueError:
            return "other", None, None
    return "other", None, None


@dataclass
class ListingCheck:
    """The pages read by one language's listing walk. `check` returns why a page lies (the
    evidence, for the `errors` row) or None; a page that passes is remembered."""

    pages: dict[int, tuple[int, ...]] = field(default_factory=dict)  # page number -> item ids
    oldest: dict[int, dt.date] = field(default_factory=dict)  # page number -> its oldest day
    lister: dict[int, int] = field(default_factory=dict)  # item id -> the page that listed it

    def check(
        self,
        url: str,
        page: int | None,
        items: list[tuple[int, dt.date]],
        *,
        previous: int | None = None,
    ) -> str | None:
        """`page`: the page number the answer says it is (data-page); `items`: (id, day) in
        page order; `previous`: the number of the page whose "older" link led here."""
        kind, asked_page, asked_day = listing_position(url)
        if kind == "page" and page is not None and asked_page != page:
            return f"{url} answered with the content of page {page}"
        days = [day for _, day in items]
        if kind == "by-date" and days and not min(days) <= asked_day <= max(days):
            return (
                f"{url} lists only {min(days).isoformat()}..{max(days).isoformat()}, "
                f"not {asked_day.isoformat()}"
            )
        for (a, day_a), (b, day_b) in itertools.pairwise(items):
            if day_b > day_a:
                return (
                    f"{url} runs forward in time: {a} ({day_a.isoformat()}) is followed by "
                    f"{b} ({day_b.isoformat()})"
                )
        if (
            previous is not None
            and previous in self.oldest
            and days
            and (max(days) > self.oldest[previous])
        ):
            return (
                f"{url} runs forward in time: it lists {max(days).isoformat()}, newer than "
                f"{self.oldest[previous].isoformat()} on page {previous} before it"
            )
        ids = tuple(i for i, _ in items)
        repeated = [i for i in ids if i in self.lister]
        if repeated and not (page is not None and self.pages.get(page) == ids):
            before = self.pages.get(previous) if previous is not None else None
            k = len(repeated)
            # News arriving during a walk shifts page N by a few items: its last items come
            # back at the top of page N+1 (17 times in the 2020 capture, one item each).
            shift = (
                before is not None
                and k < len(ids)
                and ids[:k] == before[-k:]
                and set(repeated) == set(ids[:k])
            )
            if not shift:
                first = repeated[0]
                return (
                    f"{url} repeats {k} of its {len(ids)} items from page "
                    f"{self.lister[first]} (e.g. {first})"
                )
        if page is not None:
            self.pages[page] = ids
            if days:
                self.oldest[page] = min(days)
            for i in ids:
                self.lister.setdefault(i, page)
        return None


# -- the id range of a date window -----------------------------------------------------------

IDS_PER_DAY = 7.0  # news ids per day: 63,953 on 27 Aug 2020, 78,801 on 17 Dec 2025
BRACKET_GAP = 8  # an end is found once it lies between two known ids this close
MISSES = 12  # probes in a row without an event after which an end is left to the walk
EDGE_EVENTS = 2  # events dated beyond the margin that must be seen beyond each walked end
EDGE_DAYS = 1  # the margin: dates run up to a day or two out of id order
EDGE_STEP = 4  # ids added at an end that is not closed yet, per event still missing
NEWEST_TAIL = 20  # ids walked beyond the newest id known to exist, for an open-ended window
MAX_PROBES = 60
_OFFSETS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584)


def _smoothed(evidence: Mapping[int, dt.date]) -> list[tuple[int, dt.date]]:
    """(id, day) in id order with each day replaced by the median of itself and its two id
    neighbours, so that one item dated weeks before its neighbours moves no bound."""
    pairs = sorted(evidence.items())
    if len(pairs) < 3:
        return pairs
    out = [pairs[0]]
    for k in range(1, len(pairs) - 1):
        trio = sorted(day for _, day in pairs[k - 1 : k + 2])
        out.append((pairs[k][0], trio[1]))
    out.append(pairs[-1])
    return out


@dataclass
class IdWalk:
    """Find and walk the id range of the window `since`..`until` (either may be open).

    The caller asks for `next_ids()`, requests them all (every language of the run), reports
    each id's answer with `observe(id, day)` -- the event's publication day, or None when no
    language had an event there -- and asks again, until `next_ids()` is empty. `lo`..`hi` is
    then the range walked: every id in it was asked (or was known before the run).

    1. **Probes.** `evidence` maps ids to publication days (the archive's events, listing
       items, feed entries: any language). Dates smoothed by a median of three neighbours
       stand in for the raw ones. Until a known id lies inside the window, one id at a time is
       probed where the window should be: interpolated between the nearest known ids dated
       before and after it, or extrapolated at `IDS_PER_DAY` from the nearest known one. Then
       each end is narrowed the same way until two known ids no more than `BRACKET_GAP` apart
       straddle it. A probe that finds no event (a 404: another section's id, or an item this
       language lacks) moves to the next untried id near the target, further each time; after
       `MISSES` such probes in a row an end is left to the walk.
    2. **The walk.** From the known id before the window to the known id after it (the
       newest id known to exist plus `NEWEST_TAIL` when the window is open-ended; id 1 when
       it has no start), every id not yet asked.
    3. **Edges.** Dates run slightly out of id order, so an end is closed only when
       `EDGE_EVENTS` events dated more than `EDGE_DAYS` outside the window lie between it and
       the outermost event inside; until then it moves out by `EDGE_STEP` ids per event
       missing. (On the 2020 capture's listed en items, 2019-2020, this rule misses 11 events
       at 400 day boundaries -- items dated a day or more before ids already past the next
       day -- against 40 when the first two events past the boundary close it.)

    What it cannot see: an event dated inside the window whose id lies among ids of other
    weeks (in the 2020 capture, six items carry a date one to fourteen months before their
    neighbours'). Listings, when they can be trusted, list those."""

    since: dt.date | None
    until: dt.date | None
    evidence: dict[int, dt.date] = field(default_factory=dict)
    newest: int | None = None  # the newest id known to exist (the feed's)
    max_probes: int = MAX_PROBES
    tried: set[int] = field(default_factory=set)  # ids answered (asked in this run or known)
    probes: int = 0
    lo: int | None = None
    hi: int | None = None
    gave_up: str | None = None  # why the walked range rests on a guess, if it does
    misses: dict[str, int] = field(default_factory=lambda: {"low": 0, "high": 0, "in": 0})
    _probing: str | None = None  # what the last probe was for
    _walking: bool = False

    # -- evidence ---------------------------------------------------------------------------

    def observe(self, kremlin_id: int, day: dt.date | None) -> None:
        """The answer for one id: the event's day, or None when no language had an event."""
        self.tried.add(kremlin_id)
        if day is not None:
            self.evidence[kremlin_id] = day
        if self._probing is not None:
            self.misses[self._probing] = 0 if day is not None else self.misses[self._probing] + 1
            self._probing = None

    def known(self, kremlin_id: int, day: dt.date | None) -> None:
        """An id answered before this run (in the archive): evidence, and not to be asked."""
        self.tried.add(kremlin_id)
        if day is not None:
            self.evidence[kremlin_id] = day

    def _in_window(self, day: dt.date) -> bool:
        return (self.since is None or day >= self.since) and (
            self.until is None or day <= self.until
        )

    def _inside(self) -> list[int]:
        return [i for i, day in _smoothed(self.evidence) if self._in_window(day)]

    def _outside(self, end: str, inside: list[int]) -> int | None:
        """The nearest known id dated before (low) / after (high) the window, beyond the
        inside ids."""
        pairs = _smoothed(self.evidence)
        if end == "low":
            limit = min(inside) if inside else MAX_IDS
            before = [i for i, d in pairs if self.since and d < self.since and i < limit]
            return max(before) if before else None
        # with no id inside the window known yet: the first after the last one before it
        limit = max(inside) if inside else self._outside("low", inside) or 0
        after = [i for i, d in pairs if self.until and d > self.until and i > limit]
        return min(after) if after else None

    # -- 1. probes ---------------------------------------------------------------------------

    def _search(self) -> tuple[str, int, int, int] | None:
        """(purpose, target, first, last): what to probe for next, where, and the ids a probe
        may take; None when nothing is left to probe."""
        inside = self._inside()
        low, high = self._outside("low", inside), self._outside("high", inside)
        if not inside:
            if self.misses["in"] >= 4 * MISSES:
                return None
            if low is not None and high is not None and high - low <= self._expected_span():
                return None  # the window lies between two known ids close enough to walk
            estimate = self._estimate(low, high)
            return ("in", *estimate) if estimate else None
        for end, outside in (("low", low), ("high", high)):
            if self.misses[end] >= MISSES:
                continue
            if (end == "low" and self.since is None) or (end == "high" and self.until is None):
                continue
            edge = min(inside) if end == "low" else max(inside)
            boundary = self.since if end == "low" else self.until
            if outside is not None:
                if abs(edge - outside) <= BRACKET_GAP:
                    continue
                span = abs((self.evidence[edge] - self.evidence[outside]).days) or 1
                share = abs((boundary - self.evidence[outside]).days) / span
                step = round(share * abs(edge - outside))
                first, last = sorted((outside, edge))
                target = outside + step if end == "low" else outside - step
                return end, min(last - 1, max(first + 1, target)), first + 1, last - 1
            if end == "high" and self.newest is not None and edge >= self.newest:
                continue
            days = abs((self.evidence[edge] - boundary).days) + 1
            jump = math.ceil(days * IDS_PER_DAY)
            if end == "low":
                return end, max(1, edge - jump), 1, edge - 1
            return end, edge + jump, edge + 1, MAX_IDS
        return None

    def _estimate(self, low: int | None, high: int | None) -> tuple[int, int, int] | None:
        """(target, first, last): where the window's middle day should be, between the known
        ids dated before (`low`) and after (`high`) it, by interpolation or at `IDS_PER_DAY`."""
        first = (low + 1) if low is not None else 1
        last = (high - 1) if high is not None else MAX_IDS
        if self.newest is not None and high is None:
            last = self.newest + NEWEST_TAIL
        if first > last:
            return None
        middle = self._middle_day()
        if low is not None and high is not None:
            span = (self.evidence[high] - self.evidence[low]).days or 1
            share = (middle - self.evidence[low]).days / span
            target = low + round(share * (high - low))
        elif low is not None:
            target = low + math.ceil((middle - self.evidence[low]).days * IDS_PER_DAY)
        elif high is not None:
            target = high - math.ceil((self.evidence[high] - middle).days * IDS_PER_DAY)
        else:
            return None
        return min(last, max(first, target)), first, last

    def _expected_span(self) -> int:
        """How many ids the window should span at `IDS_PER_DAY`, with room for the edges."""
        return 2 * math.ceil(self._days() * IDS_PER_DAY) + 4 * BRACKET_GAP

    def _days(self) -> int:
        """Days in the window (the ids-per-day estimate's span); 1 when it is open-ended."""
        if self.since is not None and self.until is not None:
            return (self.until - self.since).days + 1
        return 1

    def _middle_day(self) -> dt.date:
        if self.since is not None and self.until is not None:
            return self.since + (self.until - self.since) / 2
        return self.since or self.until  # type: ignore[return-value]

    def _next_probe(self) -> int | None:
        while (search := self._search()) is not None:
            if self.probes >= self.max_probes:
                self.gave_up = f"the window's ends not found after {self.probes} probes"
                return None
            purpose, target, first, last = search
            # Next to the target first, then further and further away: a stretch of ids
            # without an event of these languages is crossed in a few probes.
            for offset in _OFFSETS:
                for candidate in (target + offset, target - offset):
                    if first <= candidate <= last and candidate not in self.tried:
                        self.probes += 1
                        self._probing = purpose
                        return candidate
            self.misses[purpose] = 4 * MISSES  # nothing untried near the target
        return None

    # -- 2. and 3. the walk and its edges ------------------------------------------------------

    def _start(self) -> None:
        inside = self._inside()
        low, high = self._outside("low", inside), self._outside("high", inside)
        top = max([*self.evidence, self.newest or 0])
        margin = EDGE_STEP * EDGE_EVENTS
        # Without an id inside the window (the probes found none): where it should be by the
        # ids-per-day estimate; the walk there and its edges look for the rest.
        estimate = None if inside else self._estimate(low, high)
        anchor = estimate[0] if estimate else None
        reach = math.ceil(self._days() * IDS_PER_DAY) + margin
        if self.since is None:
            self.lo = 1
        elif low is not None:
            self.lo = low
        elif inside:
            self.lo = max(1, min(inside) - margin)
        else:
            self.lo = max(1, (anchor or top) - reach)
        if self.until is None or (high is None and self.newest is not None and not anchor):
            self.hi = top + NEWEST_TAIL
        elif high is not None:
            self.hi = high
        elif inside:
            self.hi = max(inside) + margin
        else:
            self.hi = (anchor or self.lo) + reach
        self.hi = max(self.lo, self.hi)
        if not inside and self.gave_up is None:
            self.gave_up = "no event of the window found by the probes"
        self._walking = True

    def _extend(self) -> bool:
        """Move each end that is not closed; True if anything moved."""
        assert self.lo is not None and self.hi is not None
        inside = [i for i in self._inside() if self.lo <= i <= self.hi]
        moved = False
        top = max([*self.evidence, self.newest or 0])
        if inside and self.since is not None and self.lo > 1:
            before = self.since - dt.timedelta(days=EDGE_DAYS)
            beyond = sum(
                1 for i, d in self.evidence.items() if self.lo <= i < min(inside) and d < before
            )
            if beyond < EDGE_EVENTS:
                self.lo = max(1, self.lo - EDGE_STEP * (EDGE_EVENTS - beyond))
                moved = True
        if self.until is None or (inside and max(inside) >= top - NEWEST_TAIL):
            if self.hi < top + NEWEST_TAIL:  # events found above what was known to exist
                self.hi = top + NEWEST_TAIL
                moved = True
        elif inside:
            after = self.until + dt.timedelta(days=EDGE_DAYS)
            beyond = sum(
                1 for i, d in self.evidence.items() if max(inside) < i <= self.hi and d > after
            )
            if beyond < EDGE_EVENTS:
                self.hi += EDGE_STEP * (EDGE_EVENTS - beyond)
                moved = True
        return moved

    def next_ids(self) -> list[int]:
        """The ids to ask next (all of them before calling again); empty when done."""
        if not self._walking:
            probe = self._next_probe()
            if probe is not None:
                return [probe]
            if not self.evidence and self.newest is None:
                self.gave_up = "no evidence to place the window"
                return []
            self._start()
        assert self.lo is not None and self.hi is not None
        while True:
            ids = [i for i in range(self.lo, self.hi + 1) if i not in self.tried]
            if ids or not self._extend():
                return ids
