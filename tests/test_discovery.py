"""discovery.py: id ranges, listing checks on real listing pages of the 2020 capture, and the id
walk of a date window run against what the capture's listings say exists (pure; no crawl)."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest

from kremlin_archive import parsing
from kremlin_archive.discovery import (
    IdWalk,
    ListingCheck,
    format_id_ranges,
    listing_position,
    parse_id_ranges,
)

NEWS = "http://en.kremlin.ru/events/president/news"


# -- id ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("62888-62890", [62888, 62889, 62890]),
        ("5,3, 4", [3, 4, 5]),
        ("1-2 7 2-3", [1, 2, 3, 7]),
        ("100 – 101", [100, 101]),
    ],
)
def test_id_ranges_are_read(text, ids):
    assert parse_id_ranges(text) == ids


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no ids"),
        ("0-5", "start at 1"),
        ("9-3", "backwards"),
        ("abc", "'abc'"),
        ("1-999999999", "more than"),
        ("12x", "'12x'"),
    ],
)
def test_bad_id_ranges_are_refused_by_name(text, message):
    with pytest.raises(ValueError, match=message):
        parse_id_ranges(text)


def test_ids_are_written_as_ranges():
    assert format_id_ranges([5, 1, 2, 3, 9, 10]) == "1-3, 5, 9-10"
    assert format_id_ranges(range(1, 20, 2), limit=3) == "1, 3, 5, … (+7 more ranges)"
    assert format_id_ranges([]) == ""


@pytest.mark.parametrize(
    ("url", "position"),
    [
        (NEWS, ("page", 1, None)),
        (NEWS + "/page/22", ("page", 22, None)),
        (NEWS + "/by-date/18.03.2020", ("by-date", None, dt.date(2020, 3, 18))),
        (NEWS + "/by-date/31.02.2020", ("other", None, None)),
        (NEWS + "/63017", ("other", None, None)),
    ],
)
def test_listing_position(url, position):
    assert listing_position(url) == position


# -- listing checks on real pages ------------------------------------------------------------


@pytest.fixture(scope="module")
def listings(mirror_dir) -> dict[str, parsing.Listing]:
    """The capture's news listing pages 1-45 (2020 back to October 2019) and by-date pages,
    parsed, by URL."""
    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    pages = {NEWS: news.parent / "news.html"}
    pages |= {f"{NEWS}/page/{n}": news / "page" / f"{n}.html" for n in range(2, 46)}
    pages |= {f"{NEWS}/by-date/{p.stem}": p for p in (news / "by-date").glob("*.2020.html")}
    return {url: parsing.parse_listing(path.read_bytes(), url) for url, path in pages.items()}


def items(listing: parsing.Listing) -> list[tuple[int, dt.date]]:
    return [(i.kremlin_id, dt.date.fromisoformat(i.published_at[:10])) for i in listing.items]


def walk(check: ListingCheck, listings, url, *, as_url=None, previous=None):
    """Check `url`'s real content as the answer to `as_url` (a lying listing when they differ)."""
    listing = listings[url]
    return check.check(as_url or url, listing.page, items(listing), previous=previous)


def test_an_honest_walk_passes(listings):
    check = ListingCheck()
    assert walk(check, listings, f"{NEWS}/by-date/31.03.2020") is None
    page = listings[f"{NEWS}/by-date/31.03.2020"].page
    for n in range(page + 1, page + 6):
        assert walk(check, listings, f"{NEWS}/page/{n}", previous=n - 1) is None


def test_every_honest_page_and_by_date_page_of_2020_passes(listings):
    for url, listing in listings.items():
        assert ListingCheck().check(url, listing.page, items(listing)) is None, url


def test_page_n_answering_with_page_1_is_a_lie(listings):
    check = ListingCheck()
    assert walk(check, listings, NEWS) is None
    reason = walk(check, listings, NEWS, as_url=f"{NEWS}/page/2", previous=1)
    assert reason == f"{NEWS}/page/2 answered with the content of page 1"


def test_by_date_answering_with_page_1_is_a_lie(listings):
    reason = walk(ListingCheck(), listings, NEWS, as_url=f"{NEWS}/by-date/31.03.2020")
    assert reason.startswith(f"{NEWS}/by-date/31.03.2020 lists only 2020-08-")
    assert reason.endswith("not 2020-03-31")


def test_a_page_repeating_an_earlier_page_under_its_own_number_is_a_lie(listings):
    """A subtler liar: page 23 comes back with page 21's items (its own number, and days
    that would pass a by-date check)."""
    check = ListingCheck()
    assert walk(check, listings, f"{NEWS}/page/21") is None
    assert walk(check, listings, f"{NEWS}/page/22", previous=21) is None
    page21 = listings[f"{NEWS}/page/21"]
    reason = check.check(f"{NEWS}/page/23", 23, items(page21), previous=22)
    assert reason is not None and "runs forward in time" in reason


def test_an_item_shifted_by_news_is_not_a_lie(listings):
    check = ListingCheck()
    assert walk(check, listings, f"{NEWS}/page/21") is None
    page21, page22 = items(listings[f"{NEWS}/page/21"]), items(listings[f"{NEWS}/page/22"])
    # One item shifted from page 21 to the top of page 22 by news arriving: honest.
    assert check.check(f"{NEWS}/page/22", 22, [page21[-1], *page22[:-1]], previous=21) is None


def test_repeated_items_beyond_the_shift_of_news_are_a_lie():
    """Items of one day, so that only the repeat gives the page away: an item of page 5 that
    is not its last comes back on page 6."""
    day = dt.date(2020, 3, 17)
    check = ListingCheck()
    assert check.check(f"{NEWS}/page/5", 5, [(10, day), (9, day), (8, day)]) is None
    reason = check.check(f"{NEWS}/page/6", 6, [(9, day), (7, day), (6, day)], previous=5)
    assert reason == f"{NEWS}/page/6 repeats 1 of its 3 items from page 5 (e.g. 9)"
    # Page 5 read again as it was (a by-date page leading back to it) is no lie.
    assert check.check(f"{NEWS}/by-date/17.03.2020", 5, [(10, day), (9, day), (8, day)]) is None


def test_a_page_whose_items_run_forward_in_time_is_a_lie(listings):
    page = items(listings[f"{NEWS}/page/22"])
    reason = ListingCheck().check(f"{NEWS}/page/22", 22, list(reversed(page)))
    assert reason is not None and "runs forward in time" in reason


# -- the id walk, against what the capture lists -----------------------------------------------


@pytest.fixture(scope="module")
def listed(listings) -> dict[int, dt.date]:
    """id -> day of every en news item the capture lists from October 2019 to August 2020:
    what an id answers on the site (any other id: no event)."""
    return {i: day for listing in listings.values() for i, day in items(listing)}


def run_walk(walk: IdWalk, exists: dict[int, dt.date]) -> list[int]:
    asked = []
    while ids := walk.next_ids():
        assert not set(ids) & set(asked), "an id asked twice"
        asked += ids
        for i in ids:
            walk.observe(i, exists.get(i))
    return asked


def feed_of(listed: dict[int, dt.date]) -> dict[int, dt.date]:
    return {i: listed[i] for i in sorted(listed)[-19:]}  # the feed: the newest 19 entries


@pytest.mark.parametrize("month", [(2020, 1), (2020, 3), (2020, 5), (2020, 7), (2020, 8)])
def test_a_month_is_found_from_the_feed_alone(listed, month):
    year, number = month
    since = dt.date(year, number, 1)
    until = dt.date(year, number, calendar.monthrange(year, number)[1])
    feed = feed_of(listed)
    walk = IdWalk(since, until, dict(feed), newest=max(feed))
    asked = run_walk(walk, listed)
    window = {i for i, day in listed.items() if since <= day <= until}
    assert window <= set(range(walk.lo, walk.hi + 1)), sorted(window - set(asked))[:10]
    assert set(range(walk.lo, walk.hi + 1)) <= set(asked) | set(feed)
    span = max(window) - min(window) + 1
    outside = [i for i in asked if not walk.lo <= i <= walk.hi]
    # The cost, measured here and in the README: the walked range is at most twice the
    # window's own id span (July and August border on 65 ids without an en item), and few
    # probes fall outside it.
    assert walk.hi - walk.lo + 1 <= 2 * span
    assert len(outside) <= 12
    assert walk.gave_up is None


def test_march_2020_from_the_feed_costs_little_more_than_its_span(listed):
    since, until = dt.date(2020, 3, 1), dt.date(2020, 3, 31)
    feed = feed_of(listed)
    walk = IdWalk(since, until, dict(feed), newest=max(feed))
    asked = run_walk(walk, listed)
    window = {i for i, day in listed.items() if since <= day <= until}
    assert (min(window), max(window), len(window)) == (62888, 63088, 104)
    assert window <= set(range(walk.lo, walk.hi + 1))
    assert len(asked) <= 1.35 * (63088 - 62888 + 1)
    assert walk.probes <= 40


def test_known_neighbours_save_the_probes(listed):
    """With February and April in the archive the bounds are known: no probe at all."""
    since, until = dt.date(2020, 3, 1), dt.date(2020, 3, 31)
    archive = {i: d for i, d in listed.items() if d.month in (2, 4) and d.year == 2020}
    walk = IdWalk(since, until)
    for kremlin_id, day in archive.items():
        walk.known(kremlin_id, day)
    asked = run_walk(walk, listed)
    window = {i for i, day in listed.items() if since <= day <= until}
    assert walk.probes == 0
    assert window <= set(asked)
    assert len(asked) <= 1.25 * (max(window) - min(window) + 1)


def test_an_open_window_ends_beyond_the_newest_id(listed):
    feed = feed_of(listed)
    walk = IdWalk(dt.date(2020, 8, 20), None, dict(feed), newest=max(feed))
    run_walk(walk, listed)
    assert walk.hi >= max(listed) + 20
    assert {i for i, d in listed.items() if d >= dt.date(2020, 8, 20)} <= set(
        range(walk.lo, walk.hi + 1)
    )


def test_a_window_without_events_is_walked_where_it_should_be(listed):
    """No en item in the capture's listings on 14 June 2020 (a Sunday): the walk covers the ids
    between the last event before and the first after it, and says the probes found none."""
    day = dt.date(2020, 6, 14)
    assert day not in set(listed.values())
    feed = feed_of(listed)
    walk = IdWalk(day, day, dict(feed), newest=max(feed))
    run_walk(walk, listed)
    before = max(i for i, d in listed.items() if d < day)
    after = min(i for i, d in listed.items() if d > day)
    assert walk.lo <= before and walk.hi >= after
    assert walk.gave_up == "no event of the window found by the probes"


def test_without_evidence_nothing_is_walked():
    walk = IdWalk(dt.date(2020, 3, 1), dt.date(2020, 3, 31))
    assert walk.next_ids() == []
    assert walk.gave_up == "no evidence to place the window"


def test_an_outlier_date_moves_no_bound():
    """One item dated a month before its neighbours (as 62929, dated 31 March among the ids of
    3 March) does not end the window early."""
    evidence = {i: dt.date(2020, 3, 3) for i in range(62925, 62935)}
    evidence[62929] = dt.date(2020, 3, 31)
    evidence |= {i: dt.date(2020, 4, 1) for i in range(63092, 63095)}
    exists = dict(evidence)
    exists |= {
        i: dt.date(2020, 3, 4) + dt.timedelta(days=(i - 62935) // 6) for i in range(62935, 63092)
    }
    walk = IdWalk(dt.date(2020, 3, 20), dt.date(2020, 3, 31), evidence)
    run_walk(walk, exists)
    assert walk.lo > 62929  # the outlier at 62929 did not pull the start down
    assert {i for i, d in exists.items() if d >= dt.date(2020, 3, 20) and i > 62934} <= set(
        range(walk.lo, walk.hi + 1)
    )
