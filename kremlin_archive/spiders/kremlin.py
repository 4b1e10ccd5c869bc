"""`kremlin`: walk the news listings of kremlin.ru and/or en.kremlin.ru and follow every event.

    scrapy crawl kremlin -a lang=en -a since=2020-03-01 -a until=2020-03-31
    scrapy crawl kremlin -a mode=refresh -a recheck_days=7

Full mode (default) walks newest to oldest, entering at `by-date/DD.MM.YYYY` for `until` (the
site's stable entry point: `page/N` shifts as news arrives) and stopping after the first
listing page that reaches items older than `since`. Events already in the archive are not
fetched again unless `-a refetch=1` — so an interrupted backfill resumes where it stopped: the
next run re-reads listing pages (one request per 20 events) and fetches only what is missing.

A listing page that cannot be fetched (the capture is partial; the live site has gaps) is
recorded and the walk re-enters through the by-date page of the oldest day seen so far, going
back a day at a time, so that one hole does not end a backfill.

Refresh mode reads the Atom feed, then listing pages from the newest, and stops after the first
listing page that yields nothing new or changed (one page of overlap); it also re-checks the
events published in the last `recheck_days` days (conditional requests where the previous
fetch had validators) to catch edits.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import scrapy

from .. import db as dbmod
from .. import parsing, urls
from ..items import CrawlError
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
        self.refetch = parse_flag(refetch)
        self._seen: dict[str, set[int]] = {lang: set() for lang in self.langs}
        self._known: dict[str, dict[int, str]] = {}
        self._visited_pages: set[tuple[str, int]] = set()

    # -- archive state (read through db.py) -------------------------------------------------

    def known(self, lang: str) -> dict[int, str]:
        """Events of `lang` already in the archive: kremlin_id -> title."""
        if lang not in self._known:
            archive = self.archive
            self._known[lang] = (
                dbmod.known_event_titles(archive.db, lang) if archive and archive.db else {}
            )
        return self._known[lang]

    # -- start -------------------------------------------------------------------------------

    async def start(self):
        for lang in self.langs:
            if self.mode == "refresh":
                yield scrapy.Request(
                    urls.feed_url(lang),
                    callback=self.parse_feed,
                    errback=self.listing_failed,
                    meta={"kremlin_kind": "feed", "kremlin_lang": lang},
                )
                for request in self.recheck_requests(lang):
                    yield request
                yield self.listing_request(lang, urls.listing_url(lang, 1))
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
                "kremlin_kind": "listing",
                "kremlin_lang": lang,
                "kremlin_fallback_day": fallback_day,
                "kremlin_fallback_tries": tries,
            },
        )

    def recheck_requests(self, lang: str):
        """Events published in the recheck window, re-requested to catch edits."""
        archive = self.archive
        if not archive or not archive.db or self.recheck_days <= 0:
            return
        today = dt.datetime.now(MOSCOW).date()
        since = (today - dt.timedelta(days=self.recheck_days)).isoformat()
        for kremlin_id, _url in dbmod.events_published_since(archive.db, lang, since):
            self._seen[lang].add(kremlin_id)
            self.crawler.stats.inc_value("kremlin/events/rechecked")
            yield self.event_request(
                urls.EventURL(lang, kremlin_id, urls.event_url(lang, kremlin_id)), conditional=True
            )

    # -- feed and listings -----------------------------------------------------------------

    def parse_feed(self, response):
        lang = response.meta["kremlin_lang"]
        try:
            entries = parsing.parse_feed(response.body, response.url)
        except parsing.ParseError as exc:
            yield self.parse_failure(response, exc)
            return
        for entry in entries:
            if entry.kremlin_id is None:
                continue
            request = self.maybe_request(lang, entry.kremlin_id, entry.title)
            if request is not None:
                yield request

    def parse_listing(self, response):
        lang = response.meta["kremlin_lang"]
        try:
            listing = parsing.parse_listing(response.body, response.url)
        except parsing.ParseError as exc:
            yield self.parse_failure(response, exc)
            return
        fallback_day = response.meta.get("kremlin_fallback_day")
        tries = response.meta.get("kremlin_fallback_tries", 0)
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
            request = self.maybe_request(lang, item.kremlin_id, item.title)
            if request is not None:
                fresh += 1
                yield request
        if reached_since or not listing.items:
            return
        if self.mode == "refresh" and fresh == 0:
            self.logger.info("refresh: %s yielded nothing new, stopping the walk", response.url)
            return
        if listing.older_url:
            yield self.listing_request(lang, listing.older_url, fallback_day=oldest)

    def maybe_request(self, lang: str, kremlin_id: int, title: str | None):
        """A request for an event unless it was requested already in this run, or (without
        refetch) it is in the archive — in refresh mode, unless its listed title changed."""
        if kremlin_id in self._seen[lang]:
            return None
        self._seen[lang].add(kremlin_id)
        known = self.known(lang)
        retitled = self.mode == "refresh" and title and title.strip() != known.get(kremlin_id)
        if kremlin_id in known and not self.refetch and not retitled:
            self.crawler.stats.inc_value("kremlin/events/skipped_known")
            return None
        ref = urls.EventURL(lang, kremlin_id, urls.event_url(lang, kremlin_id))
        return self.event_request(ref, conditional=kremlin_id in known)

    def listing_failed(self, failure):
        request = failure.request
        lang = request.meta["kremlin_lang"]
        yield failure_error(failure, request.url)
        day = request.meta.get("kremlin_fallback_day")
        tries = request.meta.get("kremlin_fallback_tries", 0)
        status = getattr(getattr(failure.value, "response", None), "status", None)
        # Re-enter through the by-date page only for holes (404), never after a refusal.
        if status != 404 or day is None or tries >= LISTING_FALLBACK_DAYS:
            return
        if self.since_day and day < self.since_day:
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
            reason=f"{exc.reason}: {exc}",
            status=response.status,
            fetch_id=response.meta.get("kremlin_fetch", {}).get("id"),
        )
