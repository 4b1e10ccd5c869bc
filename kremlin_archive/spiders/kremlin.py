"""`kremlin`: walk the news listings of kremlin.ru and/or en.kremlin.ru and follow every event.

    scrapy crawl kremlin -a lang=en -a since=2020-03-01 -a until=2020-03-31
    scrapy crawl kremlin -a mode=refresh -a recheck_days=7 -a missing_days=7

Full mode (default) walks newest to oldest, entering at `by-date/DD.MM.YYYY` for `until` (the
site's stable entry point: `page/N` shifts as news arrives) and stopping after the first
listing page that reaches items older than `since`. Events already in the archive are not
fetched again unless `-a refetch=1` — so an interrupted backfill (Ctrl-C, SIGTERM, even
SIGKILL) resumes where it stopped: the archive itself is the frontier. The next run re-reads
the listing pages (one request per 20 events; they cannot be skipped safely, because `page/N`
shifts as news arrives and only a listing says which events exist) and fetches only the events
that are not stored yet. Listed events that answered 404 are asked for again by a full crawl.

A listing page that cannot be fetched (the capture is partial; the live site has gaps) is
recorded and the walk re-enters through the by-date page of the oldest day seen so far, going
back a day at a time, so that one hole does not end a backfill.

Refresh mode reads the Atom feed first, then listing pages from the newest, and stops after
the first listing page that lists nothing new or changed (one page of overlap). "New" is an
event not in the archive; "changed" one whose listed title differs from the stored title. It
also re-checks the events published in the last `recheck_days` days to catch edits, with
conditional requests (If-None-Match / If-Modified-Since) where the previous fetch had an ETag or
Last-Modified; a 304 or an identical payload adds a fetch row (and a WARC record) and nothing else.

* The recheck window ends at the site's newest publication date, not at the wall clock: the
  newest entry of the feed (or, when the feed cannot be read, the newest event of this language
  in the archive), never later than today in Moscow. On the live site that is today; on a
  replayed capture (the 2020 mirror) it is the capture's last day, so the window still holds
  the capture's last N days instead of nothing. The window is the N calendar days ending on
  that date (N = 0: no rechecks).
* Refresh does not backfill: an event not in the archive is new only if it is dated no earlier
  than `recheck_days` days before the archive's newest publication day at the start of the run
  (on an empty archive: before the feed's newest day), so late listings are caught while the
  older events that page 2 shifts into view stay for `crawl --since` (which is resumable).
* An event whose latest fetch answered 404 less than `missing_days` days ago (our own UTC clock:
  it is about when we asked) is "known missing": refresh neither asks for it again nor counts it
  as new, so a listed page that the site (or a capture) lacks does not cost a request per run
  nor keep the walk going. After `missing_days` it is tried again once.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import scrapy

from .. import db as dbmod
from .. import parsing, urls
from ..items import CrawlError
from ..request_meta import Meta
from .base import EventSpider, failure_error, parse_day, parse_flag, parse_langs

MOSCOW = zoneinfo.ZoneInfo("Europe/Moscow")
LISTING_FALLBACK_DAYS = 14


class KremlinSpider(EventSpider):
    name = "kremlin"

    def __init__(
        self,
        lang: str = "both",
        since: str | None = None,
        until: str | None = None,
        mode: str = "full",
        recheck_days: str | int = 7,
        missing_days: str | int = 7,
        refetch: str | bool = False,
        *args,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.lang = lang
        self.langs = parse_langs(lang)
        self.since = since
        self.until = until
        self.since_day = parse_day(since, "since")
        self.until_day = parse_day(until, "until")
        if self.since_day and self.until_day and self.since_day > self.until_day:
            raise ValueError(f"-a since={since} is after -a until={until}")
        if mode not in ("full", "refresh"):
            raise ValueError(f"-a mode={mode!r}: expected full or refresh")
        self.mode = mode
        try:
            self.recheck_days = int(recheck_days)
        except ValueError:
            raise ValueError(f"-a recheck_days={recheck_days!r}: expected a number") from None
        try:
            self.missing_days = int(missing_days)
        except ValueError:
            raise ValueError(f"-a missing_days={missing_days!r}: expected a number") from None
        self.refetch = parse_flag(refetch)
        # Ids considered / requested in this run (each event is requested at most once per run).
        self._seen: dict[str, set[int]] = {lang: set() for lang in self.langs}
        self._requested: dict[str, set[int]] = {lang: set() for lang in self.langs}
        self._known: dict[str, dict[int, str]] = {}
        self._missing: dict[str, set[int]] = {}
        self._floor: dict[str, dt.date | None] = {}
        self._visited_pages: set[tuple[str, int]] = set()

    # -- archive state (read through db.py) -------------------------------------------------

    def known(self, lang: str) -> dict[int, str]:
        """Events of `lang` already in the archive: kremlin_id -> title."""
        if lang not in self._known:
            run = self.run
            self._known[lang] = dbmod.known_event_titles(run.db, lang) if run and run.db else {}
        return self._known[lang]

    def known_missing(self, lang: str) -> set[int]:
        """Events of `lang` whose latest fetch answered 404 within `missing_days` (refresh only)."""
        if lang not in self._missing:
            run = self.run
            if self.mode != "refresh" or self.missing_days <= 0 or not (run and run.db):
                self._missing[lang] = set()
            else:
                cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=self.missing_days)
                self._missing[lang] = dbmod.recently_missing_events(
                    run.db, lang, cutoff.isoformat(timespec="seconds").replace("+00:00", "Z")
                )
        return self._missing[lang]

    # -- start -------------------------------------------------------------------------------

    async def start(self):
        for lang in self.langs:
            if self.mode == "refresh":
                # The feed first: its newest entry anchors the recheck window, and the rechecks
                # and listing page 1 follow from parse_feed (or feed_failed).
                yield scrapy.Request(
                    urls.feed_url(lang),
                    callback=self.parse_feed,
                    errback=self.feed_failed,
                    meta={Meta.KIND: "feed", Meta.LANG: lang},
                )
            elif self.until_day:
                yield self.listing_request(lang, urls.by_date_url(lang, self.until_day))
            else:
                yield self.listing_request(lang, urls.listing_url(lang, 1))

    def listing_request(self, lang: str, url: str, *, fallback_day: dt.date | None = None, tries=0):
        return scrapy.Request(
            url,
            callback=self.parse_listing,
            errback=self.listing_failed,
            meta={
                Meta.KIND: "listing",
                Meta.LANG: lang,
                Meta.FALLBACK_DAY: fallback_day,
                Meta.FALLBACK_TRIES: tries,
            },
        )

    def recheck_anchor(self, lang: str, feed_day: dt.date | None) -> dt.date | None:
        """The last day of the recheck window: the feed's newest day, else the archive's newest
        publication day of `lang`; never after today in Moscow (see the module docstring)."""
        anchor = feed_day
        run = self.run
        if anchor is None and run and run.db:
            newest = dbmod.newest_published_day(run.db, lang)
            anchor = dt.date.fromisoformat(newest) if newest else None
        if anchor is None:
            return None
        return min(anchor, dt.datetime.now(MOSCOW).date())

    def recheck_requests(self, lang: str, anchor: dt.date | None):
        """Events published in the `recheck_days` days ending on `anchor`, re-requested
        (conditionally) to catch edits."""
        run = self.run
        if not run or not run.db or self.recheck_days <= 0 or anchor is None:
            return
        since = (anchor - dt.timedelta(days=self.recheck_days - 1)).isoformat()
        self.crawler.stats.set_value(f"kremlin/recheck/{lang}/since", since)
        self.crawler.stats.set_value(f"kremlin/recheck/{lang}/until", anchor.isoformat())
        self.logger.info("refresh %s: rechecking events published %s..%s", lang, since, anchor)
        for kremlin_id, _url in dbmod.events_published_since(run.db, lang, since):
            if kremlin_id in self._requested[lang]:
                continue
            self._requested[lang].add(kremlin_id)
            self.crawler.stats.inc_value("kremlin/events/rechecked")
            yield self.event_request(urls.event_ref(lang, kremlin_id), conditional=True)

    def after_feed(self, lang: str, feed_day: dt.date | None):
        """Refresh, once the feed is read (or failed): the walk's floor, rechecks, then
        listing page 1."""
        run = self.run
        newest = dbmod.newest_published_day(run.db, lang) if run and run.db else None
        base = dt.date.fromisoformat(newest) if newest else feed_day
        floor = base - dt.timedelta(days=max(self.recheck_days, 0)) if base else None
        self._floor[lang] = floor
        self.crawler.stats.set_value(f"kremlin/refresh/{lang}/floor", str(floor))
        yield from self.recheck_requests(lang, self.recheck_anchor(lang, feed_day))
        yield self.listing_request(lang, urls.listing_url(lang, 1))

    # -- feed and listings -----------------------------------------------------------------

    def parse_feed(self, response):
        lang = response.meta[Meta.LANG]
        try:
            entries = parsing.parse_feed(response.body, response.url)
        except parsing.ParseError as exc:
            yield self.parse_failure(response, exc)
            yield from self.after_feed(lang, None)
            return
        # The feed's date part is Moscow local time (only its offset label is wrong, SITE.md §5).
        days = [d for d in (parsing_day(e.published) for e in entries) if d]
        yield from self.after_feed(lang, max(days) if days else None)
        for entry in entries:
            if entry.kremlin_id is None:
                continue
            day = parsing_day(entry.published)
            _wanted, request = self.consider(lang, entry.kremlin_id, entry.title, day)
            if request is not None:
                yield request

    def feed_failed(self, failure):
        """The feed could not be fetched: record it and go on with the listings."""
        yield failure_error(failure, failure.request.url)
        yield from self.after_feed(failure.request.meta[Meta.LANG], None)

    def parse_listing(self, response):
        lang = response.meta[Meta.LANG]
        try:
            listing = parsing.parse_listing(response.body, response.url)
        except parsing.ParseError as exc:
            yield self.parse_failure(response, exc)
            yield from self.walk_around(response.request, response.url)
            return
        fallback_day = response.meta.get(Meta.FALLBACK_DAY)
        tries = response.meta.get(Meta.FALLBACK_TRIES, 0)
        if listing.page is not None:
            if tries and (lang, listing.page) in self._visited_pages and fallback_day:
                # The by-date page led back to a page already read: go back one more day.
                yield self.listing_request(
                    lang,
                    urls.by_date_url(lang, fallback_day),
                    fallback_day=fallback_day - dt.timedelta(days=1),
                    tries=tries + 1,
                )
                return
            self._visited_pages.add((lang, listing.page))
        fresh = 0
        reached_since = False
        oldest: dt.date | None = None
        for item in listing.items:
            day = dt.date.fromisoformat(item.published_at[:10])
            oldest = day if oldest is None else min(oldest, day)
            if self.until_day and day > self.until_day:
                continue
            if self.since_day and day < self.since_day:
                reached_since = True
                continue
            self.crawler.stats.inc_value("kremlin/events/listed")
            wanted, request = self.consider(lang, item.kremlin_id, item.title, day)
            # New or changed counts even if the feed already asked for it: a page full of
            # the feed's new events must not end the walk.
            fresh += wanted
            if request is not None:
                yield request
        if reached_since or not listing.items:
            return
        if self.mode == "refresh" and fresh == 0:
            self.logger.info("refresh: %s lists nothing new, stopping the walk", response.url)
            return
        if listing.older_url:
            yield self.listing_request(lang, listing.older_url, fallback_day=oldest)

    def consider(self, lang: str, kremlin_id: int, title: str | None, day: dt.date | None):
        """(wanted, request) for a listed event published on `day`. Wanted: not in the archive
        (in refresh mode: not known missing either, and not older than the walk's floor), its
        listed title differs from the stored one (refresh), or -a refetch=1. The request is
        None when the event is not wanted or was requested already in this run."""
        known = self.known(lang)
        skipped = "skipped_known"
        if kremlin_id in known:
            retitled = self.mode == "refresh" and bool(title) and title.strip() != known[kremlin_id]
            wanted = self.refetch or retitled
        elif self.mode == "refresh" and kremlin_id in self.known_missing(lang):
            wanted, skipped = self.refetch, "skipped_missing"
        elif self.mode == "refresh" and day and (floor := self._floor.get(lang)) and day < floor:
            wanted, skipped = self.refetch, "before_floor"
        else:
            wanted = True
        first_sight = kremlin_id not in self._seen[lang]
        self._seen[lang].add(kremlin_id)
        if not wanted:
            if first_sight and kremlin_id not in self._requested[lang]:
                self.crawler.stats.inc_value(f"kremlin/events/{skipped}")
            return False, None
        if kremlin_id in self._requested[lang]:
            return True, None
        self._requested[lang].add(kremlin_id)
        return True, self.event_request(
            urls.event_ref(lang, kremlin_id), conditional=kremlin_id in known
        )

    def listing_failed(self, failure):
        request = failure.request
        yield failure_error(failure, request.url)
        status = getattr(getattr(failure.value, "response", None), "status", None)
        if status in (403, 429):
            # A refusal is never "the end of the archive": the brake middleware stops the run
            # as 'blocked' (SITE.md §8); walking around it would hammer a site that refuses.
            return
        yield from self.walk_around(request, request.url)

    def walk_around(self, request, url: str):
        """A listing page that is missing (404), failed after its retries, or does not parse:
        re-enter through the by-date page of the oldest day seen, a day further back each time.
        If that is impossible the walk ends early, and the run says so ('incomplete')."""
        lang = request.meta[Meta.LANG]
        day = request.meta.get(Meta.FALLBACK_DAY)
        tries = request.meta.get(Meta.FALLBACK_TRIES, 0)
        if self.since_day and day is not None and day < self.since_day:
            return  # the hole lies before the range asked for
        if day is None or tries >= LISTING_FALLBACK_DAYS:
            self.logger.error("the listing walk ends early at %s (no way around it)", url)
            self.crawler.stats.set_value("kremlin/walk_incomplete", url)
            return
        self.crawler.stats.inc_value("kremlin/listing/fallbacks")
        yield self.listing_request(
            lang,
            urls.by_date_url(lang, day),
            fallback_day=day - dt.timedelta(days=1),
            tries=tries + 1,
        )

    def parse_failure(self, response, exc: parsing.ParseError) -> CrawlError:
        return CrawlError(
            url=response.url,
            stage="parse",
            reason=str(exc),
            status=response.status,
            fetch_id=response.meta.get(Meta.FETCH, {}).get("id"),
        )


def parsing_day(stamp: str | None) -> dt.date | None:
    """The date part of an ISO 8601 stamp (Moscow local date on this site), or None."""
    try:
        return dt.date.fromisoformat((stamp or "")[:10])
    except ValueError:
        return None
