"""`kremlin`: archive the events of kremlin.ru and/or en.kremlin.ru of a window of days (or of
ids), found through the news listings when they can be trusted and by walking ids when not.

    scrapy crawl kremlin -a lang=en -a since=2020-03-01 -a until=2020-03-31
    scrapy crawl kremlin -a lang=en -a ids=62888-63088,63100
    scrapy crawl kremlin -a lang=en -a since=2020-03-01 -a until=2020-03-31 -a discover=ids
    scrapy crawl kremlin -a mode=refresh -a recheck_days=7 -a missing_days=7

Discovery (`-a discover=auto`, the default) walks the listings newest to oldest, entering at
`by-date/DD.MM.YYYY` for `until` (the site's stable entry point: `page/N` shifts as news
arrives) and stopping after the first listing page that reaches items older than `since`.
Every page is checked (`discovery.ListingCheck`): a page that answers for another page number,
a by-date page whose items do not reach its day, items that run forward in time or repeat an
earlier page's beyond the shift news causes -- a lying listing, as the live site has been
reported to give since 2026 (SITE.md §9). A lie is recorded (`errors`, stage 'discovery', the
evidence in the reason), listings are not trusted for the rest of the run, and the window is
walked by id instead (`discovery.IdWalk`: its id range from the archive's own (id, day)
pairs, the listing items and feed entries seen, and probes). A listing walk that cannot get
past a missing page (see below) falls back to the id walk the same way. `-a discover=ids`
walks ids from the start; `-a discover=listings` never does (a lie then leaves the run
incomplete); `-a ids=…` walks exactly those ids.

Events already in the archive are not fetched again unless `-a refetch=1` -- so an
interrupted backfill (Ctrl-C, SIGTERM, even SIGKILL) resumes where it stopped: the archive
itself is the frontier. An id walk also skips ids the coverage ledger already accounts for
(stored, absent, not an event). Listed events that answered 404 are asked for again by a
listing walk.

A listing page that cannot be fetched (the capture is partial; the live site has gaps) is
recorded and the walk re-enters through the by-date page of the oldest day seen so far, going
back a day at a time, so that one hole does not end a backfill.

**The window and honest endings.** A run's window is the set of (language, id) it answers
for: the listed events of its days (listing walk), the id range walked, or the ids given. At
the end every one of them must be accounted for in the coverage ledger -- stored, absent (404
or the site's 404 page) or not an event page; otherwise the run is `incomplete` and says how
many ids are not (`coverage_gaps`).

Refresh mode reads the Atom feed first, then listing pages from the newest, and stops after
the first listing page that lists nothing new or changed (one page of overlap). "New" is an
event not in the archive; "changed" one whose listed title differs from the stored title. It
also re-checks the events published in the last `recheck_days` days to catch edits, with
conditional requests (If-None-Match / If-Modified-Since) where the previous fetch had an ETag or
Last-Modified; a 304 or an identical payload adds a fetch row (and a WARC record) and nothing else.
When its listings lie, a refresh walks the ids from the walk's floor (below) to beyond the
feed's newest.

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

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider

from .. import db as dbmod
from .. import discovery, parsing, urls, wayback
from ..items import ACCOUNTED, CrawlError, Listed
from ..request_meta import Meta
from ..timestamps import moscow_today, utc_stamp
from .base import EventSpider, failure_error, parse_day, parse_flag, parse_langs

LISTING_FALLBACK_DAYS = 14
DISCOVERY = ("auto", "listings", "ids")


class KnownEvents:
    """The archive's events of one language as the spider asks about them: `id in known`,
    `known[id]` (the stored title). Each id is looked up once (`lookup`, None for no archive)
    and remembered, so the run sees the archive as it was at its first question about an id."""

    def __init__(self, lookup):
        self._lookup = lookup
        self._titles: dict[int, str | None] = {}

    def get(self, kremlin_id: int) -> str | None:
        if kremlin_id not in self._titles:
            found = self._lookup(kremlin_id) if self._lookup is not None else None
            self._titles[kremlin_id] = found
        return self._titles[kremlin_id]

    def __contains__(self, kremlin_id: int) -> bool:
        return self.get(kremlin_id) is not None

    def __getitem__(self, kremlin_id: int) -> str:
        title = self.get(kremlin_id)
        if title is None:
            raise KeyError(kremlin_id)
        return title


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
        discover: str = "auto",
        ids: str | None = None,
        source: str = "site",
        *args,
        **kwargs,
    ):
        super().__init__(*args, source=source, **kwargs)
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
        if discover not in DISCOVERY:
            raise ValueError(f"-a discover={discover!r}: expected auto, listings or ids")
        self.discover = discover
        self.ids = ids
        self.id_list: list[int] | None = None
        if ids not in (None, ""):
            if since or until or mode == "refresh":
                raise ValueError("-a ids=… names the window itself: no since, until or refresh")
            try:
                self.id_list = discovery.parse_id_ranges(str(ids))
            except ValueError as exc:
                raise ValueError(f"-a ids: {exc}") from None
        # Ids considered / requested in this run (each event is requested at most once per run).
        self._seen: dict[str, set[int]] = {lang: set() for lang in self.langs}
        self._requested: dict[str, set[int]] = {lang: set() for lang in self.langs}
        self._known: dict[str, KnownEvents] = {}
        self._missing: dict[str, set[int]] = {}
        self._floor: dict[str, dt.date | None] = {}
        self._visited_pages: set[tuple[str, int]] = set()
        # Discovery: the listing checks, why listings are not trusted (if so), the evidence
        # this run saw, the id walk and the answers it waits for.
        self._checks = {lang: discovery.ListingCheck() for lang in self.langs}
        self.untrusted: str | None = None
        self._days: dict[int, dt.date] = {}
        self._newest: int | None = None
        self._feeds_pending: set[str] = set()
        self._feeds_read: set[str] = set()
        self.walk: discovery.IdWalk | None = None
        self._answers: dict[int, dict[str, dt.date | None]] = {}
        self._asked: dict[int, set[str]] = {}
        self._batch: list[int] = []  # ids waiting for the Wayback's index
        self._explicit: list[int] | None = None  # -a ids=… waiting for the index
        # The Wayback's index: (lang, prefix) queries read, in flight, given up; what it holds.
        self._cdx_done: set[tuple[str, str]] = set()
        self._cdx_pending: set[tuple[str, str]] = set()
        self._cdx_failed: set[str] = set()
        self._cdx_index: dict[str, dict[int, wayback.CdxRow]] = {lang: {} for lang in self.langs}
        self._not_captured: dict[str, set[int]] = {lang: set() for lang in self.langs}

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.idle, signal=signals.spider_idle)
        return spider

    # -- archive state (read through db.py) -------------------------------------------------

    def known(self, lang: str) -> KnownEvents:
        """Events of `lang` already in the archive: kremlin_id -> title, looked up id by id as
        listings and walks name them (loading every title up front cost a no-change refresh
        time in proportion to the archive)."""
        if lang not in self._known:
            run = self.run
            db = run.db if run and run.db else None
            self._known[lang] = KnownEvents(
                (lambda kid: dbmod.event_title(db, lang, kid)) if db is not None else None
            )
        return self._known[lang]

    def known_missing(self, lang: str) -> set[int]:
        """Events of `lang` whose latest fetch answered 404 within `missing_days` (refresh only)."""
        if lang not in self._missing:
            run = self.run
            if self.mode != "refresh" or self.missing_days <= 0 or not (run and run.db):
                self._missing[lang] = set()
            else:
                cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=self.missing_days)
                self._missing[lang] = dbmod.recently_missing_events(run.db, lang, utc_stamp(cutoff))
        return self._missing[lang]

    # -- start -------------------------------------------------------------------------------

    async def start(self):
        if self.id_list is not None:
            self.logger.info("walking %d given ids", len(self.id_list))
            if self.via() == "wayback":  # the index first: which of them it holds (idle)
                self._explicit = list(self.id_list)
                for request in self.cdx_requests(self.id_list):
                    yield request
                return
            for request in self.id_requests(self.id_list):
                yield request
            return
        for lang in self.langs:
            if self.mode == "refresh" or self.discover == "ids" or self.via() == "wayback":
                # The feed first: in refresh its newest entry anchors the recheck window (the
                # rechecks and listing page 1 follow from parse_feed or feed_failed); for an id
                # walk it says which ids exist at the top.
                yield self.feed_request(lang)
            elif self.until_day:
                yield self.listing_request(lang, urls.by_date_url(lang, self.until_day))
            else:
                yield self.listing_request(lang, urls.listing_url(lang, 1))

    def feed_request(self, lang: str) -> scrapy.Request:
        """The feed of `lang`: from the site, or its newest capture in the Wayback."""
        self._feeds_pending.add(lang)
        self._feeds_read.add(lang)
        meta = {Meta.KIND: "feed", Meta.LANG: lang}
        url = urls.feed_url(lang)
        if self.via() == "wayback":
            meta |= self.wayback_meta(url)
            url = wayback.capture_url(self.wayback_base, url)
        return scrapy.Request(
            url, callback=self.parse_feed, errback=self.feed_failed, meta=meta, dont_filter=True
        )

    def listing_request(
        self,
        lang: str,
        url: str,
        *,
        fallback_day: dt.date | None = None,
        tries=0,
        previous: int | None = None,
    ):
        return scrapy.Request(
            url,
            callback=self.parse_listing,
            errback=self.listing_failed,
            meta={
                Meta.KIND: "listing",
                Meta.LANG: lang,
                Meta.FALLBACK_DAY: fallback_day,
                Meta.FALLBACK_TRIES: tries,
                Meta.PREVIOUS_PAGE: previous,
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
        return min(anchor, moscow_today())

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
        """Once the feed is read (or failed). Refresh: the walk's floor, rechecks, then
        listing page 1. An id walk starts when every feed is in (`idle`)."""
        self._feeds_pending.discard(lang)
        if self.mode != "refresh":
            return
        run = self.run
        newest = dbmod.newest_published_day(run.db, lang) if run and run.db else None
        base = dt.date.fromisoformat(newest) if newest else feed_day
        floor = base - dt.timedelta(days=max(self.recheck_days, 0)) if base else None
        self._floor[lang] = floor
        self.crawler.stats.set_value(f"kremlin/refresh/{lang}/floor", str(floor))
        yield from self.recheck_requests(lang, self.recheck_anchor(lang, feed_day))
        if self.via() == "site":  # the archive's captures of listings are too sparse to walk
            yield self.listing_request(lang, urls.listing_url(lang, 1))

    # -- feed and listings -----------------------------------------------------------------

    def parse_feed(self, response):
        lang = response.meta[Meta.LANG]
        try:
            entries = parsing.parse_feed(
                response.body, response.meta.get(Meta.ORIGINAL) or response.url
            )
        except parsing.ParseError as exc:
            yield self.parse_failure(response, exc)
            yield from self.after_feed(lang, None)
            return
        # The feed's date part is Moscow local time (only its offset label is wrong, SITE.md §5).
        listed = [
            (e.kremlin_id, day)
            for e in entries
            if e.kremlin_id is not None and (day := parsing_day(e.published))
        ]
        yield from self.seen_listed(lang, listed, response)
        if listed:
            self._newest = max(self._newest or 0, max(i for i, _ in listed))
        days = [day for _, day in listed]
        yield from self.after_feed(lang, max(days) if days else None)
        if self.mode != "refresh":
            return
        for entry in entries:
            if entry.kremlin_id is None:
                continue
            day = parsing_day(entry.published)
            wanted, request = self.consider(lang, entry.kremlin_id, entry.title, day)
            if wanted:
                self._window[lang].add(entry.kremlin_id)
            if request is not None:
                yield request

    def feed_failed(self, failure):
        """The feed could not be fetched: record it and go on with the listings."""
        yield failure_error(failure, failure.request.url)
        yield from self.after_feed(failure.request.meta[Meta.LANG], None)

    def seen_listed(self, lang: str, listed: list[tuple[int, dt.date]], response):
        """Events a listing or the feed names: evidence of (id, day) for an id walk, and
        `listed` entries of the coverage ledger."""
        for kremlin_id, day in listed:
            self._days.setdefault(kremlin_id, day)
        if listed:
            yield Listed(
                lang=lang,
                items=[(i, day.isoformat()) for i, day in listed],
                url=response.url,
                fetch_id=response.meta.get(Meta.FETCH, {}).get("id"),
            )

    def parse_listing(self, response):
        lang = response.meta[Meta.LANG]
        try:
            listing = parsing.parse_listing(response.body, response.url)
        except parsing.ParseError as exc:
            yield self.parse_failure(response, exc)
            yield from self.walk_around(response.request, response.url)
            return
        items = [(i.kremlin_id, dt.date.fromisoformat(i.published_at[:10])) for i in listing.items]
        yield from self.seen_listed(lang, items, response)
        if self.untrusted is not None:
            return  # a page requested before the lie was found: evidence only
        lie = self._checks[lang].check(
            response.url, listing.page, items, previous=response.meta.get(Meta.PREVIOUS_PAGE)
        )
        if lie is not None:
            yield self.distrust(f"lying listing: {lie}", response)
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
            if wanted or self.mode == "full":
                self._window[lang].add(item.kremlin_id)
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
            yield self.listing_request(
                lang, listing.older_url, fallback_day=oldest, previous=listing.page
            )

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
        error = failure_error(failure, request.url)
        yield error
        status = getattr(getattr(failure.value, "response", None), "status", None)
        if self.source == "auto" and (self.site_unusable or status in (403, 429)):
            # The site refuses: the window is walked by id, in the Internet Archive.
            yield self.distrust(
                f"the listing walk could not get past {request.url} ({error.reason})", None,
                url=request.url,
            )  # fmt: skip
            return
        if status in (403, 429):
            # A refusal is never "the end of the archive": the brake middleware stops the run
            # as 'blocked' (SITE.md §8); walking around it would hammer a site that refuses.
            return
        yield from self.walk_around(request, request.url)

    def walk_around(self, request, url: str):
        """A listing page that is missing (404), failed after its retries, or does not parse:
        re-enter through the by-date page of the oldest day seen, a day further back each time.
        If that is impossible the listings cannot be followed: the window is walked by id
        (unless -a discover=listings: then the run ends 'incomplete')."""
        if self.untrusted is not None:
            return
        lang = request.meta[Meta.LANG]
        day = request.meta.get(Meta.FALLBACK_DAY)
        tries = request.meta.get(Meta.FALLBACK_TRIES, 0)
        if self.since_day and day is not None and day < self.since_day:
            return  # the hole lies before the range asked for
        if day is None or tries >= LISTING_FALLBACK_DAYS:
            self.logger.error("the listing walk ends early at %s (no way around it)", url)
            self.crawler.stats.set_value("kremlin/walk_incomplete", url)
            yield self.distrust(f"the listing walk could not get past {url}", None, url=url)
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

    # -- when listings cannot be trusted: the id walk ------------------------------------------

    def distrust(self, reason: str, response, *, url: str | None = None) -> CrawlError:
        """Listings are not trusted for the rest of the run; the error row says why."""
        if self.untrusted is None:
            self.untrusted = reason
            self.crawler.stats.set_value("kremlin/listings/untrusted", reason)
            walking = self.discover != "listings"
            self.logger.warning(
                "listings are not trusted: %s; %s", reason,
                "the window is walked by id" if walking else "the run cannot be complete",
            )  # fmt: skip
        return CrawlError(
            url=response.url if response is not None else url,
            stage="discovery",
            reason=reason[:500],
            status=response.status if response is not None else None,
            fetch_id=response.meta.get(Meta.FETCH, {}).get("id") if response is not None else None,
        )

    def in_window(self, day: dt.date | None) -> bool:
        if day is None:
            return False
        return (self.since_day is None or day >= self.since_day) and (
            self.until_day is None or day <= self.until_day
        )

    def wants_id_walk(self) -> bool:
        if self.id_list is not None or self.discover == "listings":
            return False
        return self.discover == "ids" or self.source == "wayback" or self.untrusted is not None

    def idle(self, spider) -> None:
        """The engine has nothing left to do: the next step of an id walk, if any."""
        run = self.run
        if run is not None and run.stopping:
            return
        if self._explicit is not None and not self._cdx_pending:
            requests = list(self.id_requests(self._explicit))
            self._explicit = None
            if requests:
                for request in requests:
                    self.crawler.engine.crawl(request)
                raise DontCloseSpider
        if not self.wants_id_walk() or self._feeds_pending or self._cdx_pending:
            return
        if not self._feeds_read:  # the feed says which ids exist at the top: evidence first
            requests = [self.feed_request(lang) for lang in self.langs]
        else:
            requests = self.walk_step()
        if requests:
            for request in requests:
                self.crawler.engine.crawl(request)
            raise DontCloseSpider

    def evidence(self) -> dict[int, dt.date]:
        """(id, day) the walk starts from: the archive's events and ledger, and this run's."""
        run = self.run
        days = {}
        if run and run.db:
            days = {i: dt.date.fromisoformat(d) for i, d in dbmod.id_days(run.db).items()}
        return days | self._days

    def make_walk(self) -> discovery.IdWalk:
        since, until = self.since_day, self.until_day
        if self.mode == "refresh":  # from the floor of the walk to beyond the feed's newest
            floors = [f for f in self._floor.values() if f is not None]
            since, until = (min(floors) if floors else None), None
        walk = discovery.IdWalk(since, until, self.evidence(), newest=self._newest)
        self.logger.info(
            "id walk of %s..%s from %d known ids (newest known %s)",
            since or "the first id", until or "the newest", len(walk.evidence), self._newest,
        )  # fmt: skip
        return walk

    def walk_step(self) -> list[scrapy.Request]:
        """Report the answers of the last batch to the walk; the requests of the next one."""
        if self.walk is None:
            self.walk = self.make_walk()
        walk = self.walk
        for kremlin_id in list(self._asked):
            answers = self._answers.pop(kremlin_id, {})
            self._asked.pop(kremlin_id)
            days = [d for d in answers.values() if d is not None]
            walk.observe(kremlin_id, min(days) if days else self._days.get(kremlin_id))
        while True:
            ids, self._batch = self._batch or walk.next_ids(), []
            if not ids:
                self.walk_done()
                return []
            if self.via() == "wayback":  # the index first: which of these ids it holds
                queries = list(self.cdx_requests(ids))
                if queries:
                    self._batch = ids
                    return queries
            requests = list(self.id_requests(ids, walk=walk))
            if requests:
                return requests

    def walk_done(self) -> None:
        walk = self.walk
        stats = self.crawler.stats
        if walk is None or walk.lo is None or walk.hi is None:
            reason = walk.gave_up if walk else "no id walk"
            stats.set_value("kremlin/idwalk/gave_up", reason)
            self.logger.error("no id range to walk: %s", reason)
            return
        for lang in self.langs:
            # Ids walked in the Internet Archive that it holds no copy of are not claimed.
            walked = set(range(walk.lo, walk.hi + 1)) - self._not_captured[lang]
            self._window[lang].update(walked)
        stats.set_value("kremlin/idwalk/range", f"{walk.lo}-{walk.hi}")
        stats.set_value("kremlin/idwalk/probes", walk.probes)
        if walk.gave_up:
            stats.set_value("kremlin/idwalk/gave_up", walk.gave_up)
        self.logger.info(
            "id walk done: ids %d-%d (%d probes)%s", walk.lo, walk.hi, walk.probes,
            f"; {walk.gave_up}" if walk.gave_up else "",
        )  # fmt: skip

    def id_requests(self, ids, *, walk: discovery.IdWalk | None = None):
        """Requests for `ids` in every language of the run, but for (language, id) pairs the
        ledger already accounts for (unless -a refetch=1) or this run asked already. With a
        walk, ids needing no request are reported to it at once."""
        run = self.run
        ids = list(ids)
        accounted: dict[str, dict[int, str]] = {lang: {} for lang in self.langs}
        if run and run.db and ids and not self.refetch:
            for lang in self.langs:
                accounted[lang] = dbmod.coverage_of(run.db, lang, min(ids), max(ids))
        explicit = walk is None
        via = self.via()
        for kremlin_id in ids:
            asked = set()
            for lang in self.langs:
                capture = None
                if via == "wayback":
                    capture = self._cdx_index[lang].get(kremlin_id)
                    if capture is None:  # no copy in the Internet Archive: not claimed
                        self._not_captured[lang].add(kremlin_id)
                        continue
                if explicit:
                    self._window[lang].add(kremlin_id)
                if accounted[lang].get(kremlin_id) in ACCOUNTED:
                    continue
                if kremlin_id in self._requested[lang]:
                    continue
                self._requested[lang].add(kremlin_id)
                asked.add(lang)
                self.crawler.stats.inc_value("kremlin/idwalk/requested")
                yield self.event_request(
                    urls.event_ref(lang, kremlin_id),
                    conditional=kremlin_id in self.known(lang),
                    original=capture.original if capture else None,
                    captured=capture.timestamp if capture else None,
                )
            if walk is not None:
                if asked:
                    self._asked[kremlin_id] = asked
                else:
                    walk.known(
                        kremlin_id, self._days.get(kremlin_id) or walk.evidence.get(kremlin_id)
                    )

    def event_answered(self, ref: urls.EventURL, day: dt.date | None) -> None:
        """An event request of this run has its answer (`day`: the event's, or None)."""
        if day is not None:
            self._days.setdefault(ref.kremlin_id, day)
        if ref.kremlin_id in self._asked:
            self._answers.setdefault(ref.kremlin_id, {})[ref.lang] = day

    # -- the Internet Archive's index ---------------------------------------------------------

    def cdx_requests(self, ids):
        """CDX index queries for the id prefixes of `ids` not read yet, in every language."""
        ids = sorted(ids)
        # Blocks of a hundred ids at least: a probe's neighbours are asked for next.
        first, last = ids[0] - ids[0] % 100, ids[-1] + 99 - ids[-1] % 100
        for lang in self.langs:
            host = urls.HOSTS[lang]
            for prefix in wayback.id_prefixes(max(first, 1), last):
                for path in wayback.EVENT_PATHS:
                    key = (lang, f"{host}/{path}{prefix}")
                    if key in self._cdx_done or key in self._cdx_pending:
                        continue
                    self._cdx_pending.add(key)
                    yield self.cdx_request(lang, key[1])

    def cdx_request(self, lang: str, prefix: str, resume: str | None = None, tries: int = 0):
        url = wayback.cdx_query_url(
            self.wayback_base,
            prefix,
            limit=self.crawler.settings.getint("KREMLIN_WAYBACK_CDX_LIMIT"),
            resume_key=resume,
        )
        meta = {Meta.KIND: "cdx", Meta.LANG: lang, Meta.CDX: (lang, prefix, tries)}
        meta |= self.wayback_meta(prefix)
        return scrapy.Request(
            url, callback=self.parse_cdx, errback=self.cdx_failed, meta=meta, dont_filter=True
        )

    def parse_cdx(self, response):
        lang, prefix, tries = response.meta[Meta.CDX]
        try:
            rows, resume = wayback.read_cdx(response.body)
        except wayback.CdxError as exc:
            yield CrawlError(
                url=response.url, stage="discovery", source="wayback", status=response.status,
                reason=f"malformed index answer for {prefix}: {exc}"[:500],
                fetch_id=response.meta.get(Meta.FETCH, {}).get("id"),
            )  # fmt: skip
            if tries < 1:  # once more: a cut-off answer is likely to be whole the next time
                yield self.cdx_request(lang, prefix, tries=tries + 1)
            else:
                self.cdx_given_up(lang, prefix)
            return
        self.crawler.stats.inc_value("kremlin/wayback/index_rows", len(rows))
        index = self._cdx_index[lang]
        for key, row in wayback.best_capture(rows).items():
            ref = urls.parse_event_key(key)
            if ref[0] != lang:
                continue
            current = index.get(ref[1])
            if current is None or wayback.best_capture([current, row])[key] is row:
                index[ref[1]] = row
        if resume:
            self.crawler.stats.inc_value("kremlin/wayback/index_pages")
            yield self.cdx_request(lang, prefix, resume)
            return
        self._cdx_pending.discard((lang, prefix))
        self._cdx_done.add((lang, prefix))

    def cdx_failed(self, failure):
        lang, prefix, _ = failure.request.meta[Meta.CDX]
        error = failure_error(failure, failure.request.url)
        error.stage, error.source = "discovery", "wayback"
        error.reason = f"index query for {prefix} failed: {error.reason}"[:500]
        yield error
        self.cdx_given_up(lang, prefix)

    def cdx_given_up(self, lang: str, prefix: str) -> None:
        self._cdx_pending.discard((lang, prefix))
        self._cdx_done.add((lang, prefix))
        self._cdx_failed.add(prefix)

    def window_complete(self) -> str | None:
        """Why the window itself is not the whole of what was asked (the run then cannot be
        complete whatever the ledger says), or None."""
        if self._cdx_failed:
            failed = ", ".join(sorted(self._cdx_failed)[:5])
            return f"the Internet Archive's index could not be read for {failed}"
        if self.untrusted is not None and not self.wants_id_walk():
            return f"listings are not trusted ({self.untrusted}) and ids are not walked"
        walk = self.walk
        if self.wants_id_walk() and (walk is None or walk.lo is None):
            return "the id walk found no range to walk" + (
                f" ({walk.gave_up})" if walk and walk.gave_up else ""
            )
        return None


def parsing_day(stamp: str | None) -> dt.date | None:
    """The date part of an ISO 8601 stamp (Moscow local date on this site), or None."""
    try:
        return dt.date.fromisoformat((stamp or "")[:10])
    except ValueError:
        return None
