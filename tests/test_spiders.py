"""spiders/: the callbacks of `kremlin` and `urls` and what they share (spiders/base.py), called
as Scrapy would call them, with responses made of real pages: en.kremlin.ru listing pages from
../shared/kremlin-html (page 2, page 1198, the by-date page of 18.03.2020), the Atom feed of the
2020 mirror, real event pages and the site's real 404 page. Crawlers come from `get_crawler`
with the project's settings; no engine runs, nothing is fetched."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import inspect

import pytest
from conftest import (
    make_transcript,
    open_run,
    response_for,
    shared_page,
    spider_for,
)
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import DNSLookupError, TCPTimedOutError
from twisted.python.failure import Failure

from kremlin_archive import db as dbmod
from kremlin_archive import parsing, urls
from kremlin_archive.crawl_run import current_run
from kremlin_archive.items import CrawlError, Listed, Observed, Transcript
from kremlin_archive.middlewares import FetchRecorderMiddleware
from kremlin_archive.request_meta import Meta
from kremlin_archive.spiders.base import failure_error
from kremlin_archive.spiders.kremlin import KremlinSpider
from kremlin_archive.spiders.urls import UrlsSpider
from kremlin_archive.timestamps import utc_stamp

EN = "http://en.kremlin.ru/events/president/news"
RU = "http://kremlin.ru/events/president/news"
EVENT_URL = f"{EN}/63017"
COPY_URL = f"{EN}/copy/63017"
FEED_URL = f"{EN}/feed"

# en_list_news_page2.html (page 2 of 1198, 2020-08-19..2020-08-12), in page order.
PAGE2 = "en_list_news_page2.html"
PAGE2_IDS = [
    63911, 63908, 63907, 63904, 63903, 63906, 63905, 63900, 63898, 63897,
    63896, 63894, 63893, 63892, 63887, 63888, 63886, 63885, 63884, 63883,
]  # fmt: skip
# en_list_news_page1198.html, the last page: 2000-01-01 and 1999-12-31, no older page.
PAGE1198_IDS = [
    37353, 37409, 37408, 37407, 37402, 37400, 37398, 37397, 37396, 37387,
    37390, 37385, 37395, 37410, 37383, 37381, 37393,
]  # fmt: skip
# The Atom feed of the mirror: the 20 newest events, 2020-08-27 back to 2020-08-19 (63914).
FEED_IDS = [
    63953, 63951, 63950, 63949, 63945, 63952, 63944, 63940, 63938, 63937,
    63936, 63933, 63934, 63931, 63926, 63927, 63917, 63916, 63920, 63914,
]  # fmt: skip


def run_of(crawler):
    return current_run(crawler)


def kremlin(crawler_for, **arguments) -> KremlinSpider:
    """A `kremlin` spider with these arguments (`-a`) on a fresh crawler."""
    return spider_for(crawler_for(KremlinSpider), **arguments)


def started(spider) -> list:
    """What the spider's `start()` yields."""

    async def collect():
        return [output async for output in spider.start()]

    return asyncio.run(collect())


def event(kremlin_id: int, lang: str = "en", conditional: bool = False) -> tuple:
    return ("event", urls.event_url(lang, kremlin_id), conditional)


def listing(url: str, lang: str = "en", fallback_day=None, tries: int = 0) -> tuple:
    return ("listing", url, lang, fallback_day, tries)


def described(outputs) -> list:
    """Requests as comparable tuples (see `event`, `listing`); items as they are, but for the
    Listed items every listing and the feed yields for the coverage ledger (`listed_of`)."""
    found = []
    for output in outputs:
        if isinstance(output, Listed):
            continue
        if not isinstance(output, Request):
            found.append(output)
            continue
        meta = output.meta
        kind = meta[Meta.KIND]
        if kind == "event":
            found.append(("event", output.url, meta[Meta.CONDITIONAL]))
        elif kind == "listing":
            found.append(
                ("listing", output.url, meta[Meta.LANG], meta[Meta.FALLBACK_DAY],
                 meta[Meta.FALLBACK_TRIES])
            )  # fmt: skip
        else:
            found.append((kind, output.url, meta[Meta.LANG]))
    return found


def listed_of(outputs) -> list[tuple[str, list[int]]]:
    """The Listed items among `outputs`: (lang, ids)."""
    return [(o.lang, [i for i, _ in o.items]) for o in outputs if isinstance(o, Listed)]


def listing_response(url: str, page, *, lang="en", fallback_day=None, tries=0):
    meta = {
        Meta.KIND: "listing", Meta.LANG: lang, Meta.FALLBACK_DAY: fallback_day,
        Meta.FALLBACK_TRIES: tries,
    }  # fmt: skip
    return response_for(url, page, meta=meta)


def store(spider, kremlin_id: int, title: str, published_at: str, lang: str = "en") -> None:
    """An event of the archive (through db.py, as the store pipeline saves it)."""
    run = run_of(spider.crawler)
    if run.db is None:
        open_run(spider.crawler)
    transcript = make_transcript(
        kremlin_id=kremlin_id, lang=lang, url=urls.event_url(lang, kremlin_id), title=title,
        published_at=published_at, tags=[],
    )  # fmt: skip
    dbmod.save_transcript(run.db, transcript)


def listed_titles(page: str, url: str) -> dict[int, tuple[str, str]]:
    """kremlin_id -> (title, published_at) as a real listing page shows them."""
    return {
        item.kremlin_id: (item.title, item.published_at)
        for item in parsing.parse_listing(shared_page(page), url).items
    }


# -- EventSpider (spiders/base.py) -------------------------------------------------------------


@pytest.fixture
def urls_spider(crawler_for) -> UrlsSpider:
    return spider_for(crawler_for(UrlsSpider))


def test_event_request_asks_for_the_canonical_page(urls_spider):
    request = urls_spider.event_request(urls.event_ref("en", 63017), source_url=COPY_URL)
    # dont_filter: a redirect of it must reach its errback (see the tests of redirects below)
    assert (request.url, request.callback, request.errback, request.dont_filter) == (
        EVENT_URL, urls_spider.parse_event, urls_spider.event_failed, True,
    )  # fmt: skip
    assert request.meta == {
        Meta.KIND: "event",
        Meta.EVENT_ID: "en-63017",
        Meta.SOURCE_URL: COPY_URL,
        Meta.CONDITIONAL: False,
        Meta.REF: ("en", 63017, EVENT_URL),
        Meta.VIA: "site",
        "handle_httpstatus_list": [304],
    }
    assert urls_spider.crawler.stats.get_value("kremlin/events/requested") == 1


def test_a_conditional_event_request_may_ask_again_for_a_url(urls_spider):
    request = urls_spider.event_request(urls.event_ref("en", 63017), conditional=True)
    assert (request.dont_filter, request.meta[Meta.CONDITIONAL]) == (True, True)
    assert request.meta[Meta.SOURCE_URL] == EVENT_URL


def answered(spider, request: Request, page, *, status=200, url=None):
    """The response to `request` with `page` as its body, recorded by the fetch recorder
    (which hands the `fetches` row to the request) when the run is open."""
    response = response_for(url or request.url, page, status=status)
    response = response.replace(request=request)
    if run_of(spider.crawler).db is not None:
        FetchRecorderMiddleware.from_crawler(spider.crawler).process_response(request, response)
    return response


def test_parse_event_yields_the_transcript_with_its_provenance(urls_spider):
    run = open_run(urls_spider.crawler)
    request = urls_spider.event_request(urls.event_ref("en", 63017), source_url=COPY_URL)
    [transcript] = urls_spider.parse_event(answered(urls_spider, request, "en_news_63017.html"))
    fetch = request.meta[Meta.FETCH]
    assert isinstance(transcript, Transcript)
    assert (transcript.event_id, transcript.title) == (
        "en-63017",
        "Vladimir Putin arrived in\xa0Crimea",
    )
    provenance = (
        "source_url", "final_url", "status", "fetch_id", "origin", "spider", "run_id",
        "payload_sha256", "warc_filename", "warc_offset", "warc_record_id",
    )  # fmt: skip
    assert {name: getattr(transcript, name) for name in provenance} == {
        "source_url": COPY_URL,
        "final_url": EVENT_URL,
        "status": 200,
        "fetch_id": fetch["id"],
        "origin": "crawl",
        "spider": "urls",
        "run_id": run.run_id,
        "payload_sha256": hashlib.sha256(shared_page("en_news_63017.html")).hexdigest(),
        "warc_filename": fetch["warc_filename"],
        "warc_offset": fetch["warc_offset"],
        "warc_record_id": fetch["warc_record_id"],
    }


def test_a_304_answer_yields_nothing_and_counts_as_not_modified(urls_spider):
    request = urls_spider.event_request(urls.event_ref("en", 63017), conditional=True)
    assert list(urls_spider.parse_event(answered(urls_spider, request, b"", status=304))) == []
    assert urls_spider.crawler.stats.get_value("kremlin/events/not_modified") == 1


def test_the_sites_404_page_served_with_200_is_a_parse_error(urls_spider):
    request = urls_spider.event_request(urls.event_ref("ru", 43577))
    request.meta[Meta.FETCH] = {"id": 7, "status": 200}
    response = answered(urls_spider, request, "ru_error404_acts_bank_43577.html")
    assert list(urls_spider.parse_event(response)) == [
        CrawlError(
            url=f"{RU}/43577",
            stage="parse",
            reason="not-found-page: the site's 404 page (Ошибка 404 / PAGE NOT FOUND)",
            status=200,
            fetch_id=7,
            event_id="ru-43577",
        )
    ]
    assert urls_spider.crawler.stats.get_value("kremlin/events/failed") == 1


def test_another_events_page_at_the_url_is_a_parse_error(urls_spider):
    request = urls_spider.event_request(urls.event_ref("en", 63020))
    [error] = urls_spider.parse_event(answered(urls_spider, request, "en_news_63017.html"))
    assert (error.stage, error.reason) == (
        "parse", "id-mismatch: the page is article #event-63017, the URL names 63020",
    )  # fmt: skip


def test_a_redirect_to_another_event_page_is_followed(urls_spider):
    request = urls_spider.event_request(urls.event_ref("en", 63020))
    response = answered(urls_spider, request, "en_news_63017.html", url=EVENT_URL)
    observed, transcript = urls_spider.parse_event(response)
    assert (transcript.event_id, transcript.source_url, transcript.final_url) == (
        "en-63017", f"{EN}/63020", EVENT_URL,
    )  # fmt: skip
    # The address asked for is accounted for: it answers with another event.
    assert observed == Observed("en-63020", "not_event", "redirected to en-63017", None)


def http_failure(request: Request, status: int, retries: int = 0, fetch_id: int = 5) -> Failure:
    """The failure HttpErrorMiddleware hands to an errback for an answer of `status`."""
    request.meta[Meta.FETCH] = {"id": fetch_id, "status": status}
    if retries:
        request.meta["retry_times"] = retries
    response = Response(request.url, status=status, request=request)
    failure = Failure(HttpError(response, "Ignoring non-200 response"))
    failure.request = request
    return failure


def test_event_failed_turns_an_error_status_into_a_crawl_error(urls_spider):
    request = urls_spider.event_request(urls.event_ref("en", 63017), source_url=COPY_URL)
    assert list(urls_spider.event_failed(http_failure(request, 404))) == [
        CrawlError(
            url=COPY_URL,  # the page asked for; the reason names the page fetched for it
            stage="fetch",
            reason=f"not found (HTTP 404) (fetched as {EVENT_URL})",
            status=404,
            fetch_id=5,
            event_id="en-63017",
        )
    ]
    assert urls_spider.crawler.stats.get_value("kremlin/events/failed") == 1


@pytest.mark.parametrize(
    ("status", "retries", "reason"),
    [
        (503, 0, "HTTP 503"),
        (403, 1, "refused by the site (HTTP 403) after 1 retry"),
        (429, 3, "rate-limited by the site (HTTP 429) after 3 retries"),
    ],
)
def test_failure_error_words_an_error_status(status, retries, reason):
    error = failure_error(http_failure(Request(EVENT_URL), status, retries), COPY_URL)
    assert (error.reason, error.status, error.fetch_id) == (reason, status, 5)


def failed(exception: BaseException, meta=None) -> Failure:
    failure = Failure(exception)
    failure.request = Request(EVENT_URL, meta=dict(meta or {}))
    return failure


@pytest.mark.parametrize(
    ("exception", "reason"),
    [
        (
            DownloadTimeoutError(f"Getting {EVENT_URL} took longer than 60.0 seconds."),
            f"timeout: Getting {EVENT_URL} took longer than 60.0 seconds.",
        ),
        (TCPTimedOutError(), "timeout: TCP connection timed out."),
        (
            ResponseDataLossError(),
            "truncated: the connection ended before the whole body arrived (less than its "
            "Content-Length); nothing parsed",
        ),
        (
            DownloadCancelledError(
                "Cancelling download of …: actual size (22000000) larger than "
                "download max size (20971520)."
            ),
            "too large: the body exceeds DOWNLOAD_MAXSIZE; download cancelled. Cancelling "
            "download of …: actual size (22000000) larger than download max size (20971520).",
        ),
        (
            IgnoreRequest("offsite: http://example.org/ is not on kremlin.ru: not requested"),
            "offsite: http://example.org/ is not on kremlin.ru: not requested",
        ),
        (IgnoreRequest("Forbidden by robots.txt"), "not requested: Forbidden by robots.txt"),
        (
            DownloadConnectionRefusedError("Connection was refused by other side: 111."),
            "DownloadConnectionRefusedError: Connection was refused by other side: 111.",
        ),
    ],
)
def test_failure_error_words_what_went_wrong(exception, reason):
    assert failure_error(failed(exception, {Meta.FETCH: {"id": 9}}), COPY_URL) == CrawlError(
        url=COPY_URL, stage="fetch", reason=reason, status=None, fetch_id=9
    )


def test_an_offsite_redirect_keeps_the_redirect_answer(urls_spider):
    meta = {"redirect_urls": [EVENT_URL], Meta.FETCH: {"id": 3, "status": 302}}
    reason = f"offsite redirect from {EVENT_URL} to http://example.org/: not followed"
    error = failure_error(failed(IgnoreRequest(reason), meta), COPY_URL)
    assert (error.reason, error.status, error.fetch_id) == (reason, 302, 3)


@pytest.mark.parametrize(
    "exception",
    [
        DNSLookupError("Couldn't find the hostname 'kremlin.ru'"),
        CannotResolveHostError(str(DNSLookupError("Couldn't find the hostname 'kremlin.ru'"))),
    ],
)
def test_failure_error_says_dns_lookup_failed_once(exception):
    reason = failure_error(failed(exception), COPY_URL).reason
    assert reason == "DNS lookup failed: Couldn't find the hostname 'kremlin.ru'."


# -- KremlinSpider: arguments and start ----------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"lang": "de"}, "-a lang='de': expected ru, en or both"),
        ({"since": "18.03.2020"}, "-a since='18.03.2020': expected a date as YYYY-MM-DD"),
        ({"since": "2020-04-01", "until": "2020-03-01"},
         "-a since=2020-04-01 is after -a until=2020-03-01"),
        ({"mode": "backfill"}, "-a mode='backfill': expected full or refresh"),
        ({"recheck_days": "a week"}, "-a recheck_days='a week': expected a number"),
        ({"missing_days": "x"}, "-a missing_days='x': expected a number"),
    ],
)  # fmt: skip
def test_spider_arguments_are_checked(crawler_for, arguments, message):
    with pytest.raises(ValueError) as refused:
        kremlin(crawler_for, **arguments)
    assert str(refused.value) == message


def test_start_enters_each_language_at_its_newest_listing_page(crawler_for):
    spider = kremlin(crawler_for)
    requests = started(spider)
    assert described(requests) == [listing(RU, "ru"), listing(EN, "en")]
    assert {(r.callback, r.errback) for r in requests} == {
        (spider.parse_listing, spider.listing_failed)
    }


def test_start_enters_at_the_by_date_page_of_until(crawler_for):
    spider = kremlin(crawler_for, lang="en", until="2020-03-18")
    assert described(started(spider)) == [listing(f"{EN}/by-date/18.03.2020")]


def test_refresh_starts_with_the_feed(crawler_for):
    spider = kremlin(crawler_for, lang="en", mode="refresh")
    [request] = started(spider)
    assert described([request]) == [("feed", FEED_URL, "en")]
    assert (request.callback, request.errback) == (spider.parse_feed, spider.feed_failed)


# -- KremlinSpider: listings ------------------------------------------------------------------


def test_a_listing_page_asks_for_its_events_then_the_older_page(crawler_for):
    spider = kremlin(crawler_for, lang="en")
    outputs = described(spider.parse_listing(listing_response(f"{EN}/page/2", PAGE2)))
    assert outputs == [
        *(event(i) for i in PAGE2_IDS),
        listing(f"{EN}/page/3", fallback_day=dt.date(2020, 8, 12)),
    ]
    stats = spider.crawler.stats
    assert (
        stats.get_value("kremlin/events/listed"),
        stats.get_value("kremlin/events/requested"),
    ) == (20, 20)


def test_a_listing_page_asks_only_for_the_days_asked_for(crawler_for):
    spider = kremlin(crawler_for, lang="en", since="2020-08-15", until="2020-08-17")
    outputs = described(spider.parse_listing(listing_response(f"{EN}/page/2", PAGE2)))
    # Reaching items older than `since` ends the walk: no older page.
    assert outputs == [event(i) for i in (63898, 63897, 63896, 63894, 63893, 63892)]


def test_the_oldest_listing_page_ends_the_walk(crawler_for):
    spider = kremlin(crawler_for, lang="en")
    response = listing_response(f"{EN}/page/1198", "en_list_news_page1198.html")
    assert described(spider.parse_listing(response)) == [event(i) for i in PAGE1198_IDS]


def test_events_in_the_archive_are_not_asked_for_again(crawler_for):
    spider = kremlin(crawler_for, lang="en")
    titles = listed_titles(PAGE2, f"{EN}/page/2")
    for kremlin_id in (63911, 63908):
        store(spider, kremlin_id, *titles[kremlin_id])
    outputs = described(spider.parse_listing(listing_response(f"{EN}/page/2", PAGE2)))
    assert [o[1] for o in outputs if o[0] == "event"] == [
        urls.event_url("en", i) for i in PAGE2_IDS[2:]
    ]
    assert spider.crawler.stats.get_value("kremlin/events/skipped_known") == 2


def test_refetch_asks_again_for_events_in_the_archive_conditionally(crawler_for):
    spider = kremlin(crawler_for, lang="en", refetch="1")
    store(spider, 63911, *listed_titles(PAGE2, f"{EN}/page/2")[63911])
    outputs = described(spider.parse_listing(listing_response(f"{EN}/page/2", PAGE2)))
    assert outputs[:2] == [event(63911, conditional=True), event(63908)]


def test_an_event_listed_twice_is_asked_for_once(crawler_for):
    spider = kremlin(crawler_for, lang="en")
    list(spider.parse_listing(listing_response(f"{EN}/page/2", PAGE2)))
    again = described(spider.parse_listing(listing_response(f"{EN}/page/2", PAGE2)))
    assert [o for o in again if o[0] == "event"] == []
    assert spider.crawler.stats.get_value("kremlin/events/requested") == 20


def test_a_by_date_page_that_leads_back_to_a_page_read_goes_back_a_day(crawler_for):
    spider = kremlin(crawler_for, lang="en")
    page22 = "en_list_news_bydate_18.03.2020.html"  # page 22 of 1198
    list(spider.parse_listing(listing_response(f"{EN}/page/22", page22)))
    reentry = listing_response(
        f"{EN}/by-date/18.03.2020", page22, fallback_day=dt.date(2020, 3, 17), tries=1
    )
    assert described(spider.parse_listing(reentry)) == [
        listing(f"{EN}/by-date/17.03.2020", fallback_day=dt.date(2020, 3, 16), tries=2)
    ]


def test_a_page_that_is_no_listing_is_walked_around(crawler_for):
    spider = kremlin(crawler_for, lang="en")
    response = listing_response(
        f"{EN}/page/3", "en_news_63017.html", fallback_day=dt.date(2020, 8, 12)
    )
    assert described(spider.parse_listing(response)) == [
        CrawlError(
            url=f"{EN}/page/3",
            stage="parse",
            reason="not-listing: an event page, not a listing",
            status=200,
            fetch_id=None,
        ),
        listing(f"{EN}/by-date/12.08.2020", fallback_day=dt.date(2020, 8, 11), tries=1),
    ]
    assert spider.crawler.stats.get_value("kremlin/listing/fallbacks") == 1


def listing_failure(url: str, status: int, fallback_day=None, tries=0) -> Failure:
    request = listing_response(url, b"", fallback_day=fallback_day, tries=tries).request
    return http_failure(request, status)


def test_a_missing_listing_page_is_walked_around(crawler_for):
    spider = kremlin(crawler_for, lang="en")
    failure = listing_failure(f"{EN}/page/3", 404, fallback_day=dt.date(2020, 8, 12))
    assert described(spider.listing_failed(failure)) == [
        CrawlError(
            url=f"{EN}/page/3", stage="fetch", reason="not found (HTTP 404)", status=404,
            fetch_id=5,
        ),
        listing(f"{EN}/by-date/12.08.2020", fallback_day=dt.date(2020, 8, 11), tries=1),
    ]  # fmt: skip


@pytest.mark.parametrize("status", [403, 429])
def test_a_refused_listing_page_is_not_walked_around(crawler_for, status):
    spider = kremlin(crawler_for, lang="en")
    failure = listing_failure(f"{EN}/page/3", status, fallback_day=dt.date(2020, 8, 12))
    [error] = spider.listing_failed(failure)
    assert (error.stage, error.status) == ("fetch", status)
    assert spider.crawler.stats.get_value("kremlin/walk_incomplete") is None


def test_the_first_listing_page_failing_ends_trust_in_the_listings(crawler_for):
    spider = kremlin(crawler_for, lang="en")
    error, distrust = spider.listing_failed(listing_failure(EN, 404))
    assert error.reason == "not found (HTTP 404)"
    assert spider.crawler.stats.get_value("kremlin/walk_incomplete") == EN
    assert (distrust.stage, distrust.reason, distrust.url) == (
        "discovery", f"the listing walk could not get past {EN}", EN,
    )  # fmt: skip
    assert spider.untrusted == distrust.reason and spider.wants_id_walk()


def test_the_walk_gives_up_after_two_weeks_of_missing_days(crawler_for):
    spider = kremlin(crawler_for, lang="en")
    url = f"{EN}/by-date/29.07.2020"
    failure = listing_failure(url, 404, fallback_day=dt.date(2020, 7, 28), tries=14)
    outputs = list(spider.listing_failed(failure))
    assert [(type(o), o.stage) for o in outputs] == [
        (CrawlError, "fetch"),
        (CrawlError, "discovery"),
    ]
    assert spider.crawler.stats.get_value("kremlin/walk_incomplete") == url


def test_with_listings_only_a_walk_that_cannot_go_on_leaves_the_window_short(crawler_for):
    spider = kremlin(crawler_for, lang="en", discover="listings")
    list(spider.listing_failed(listing_failure(EN, 404)))
    assert not spider.wants_id_walk()
    assert spider.window_complete().startswith("listings are not trusted")


def test_a_hole_before_the_days_asked_for_is_not_walked_around(crawler_for):
    spider = kremlin(crawler_for, lang="en", since="2020-08-15")
    failure = listing_failure(f"{EN}/page/3", 404, fallback_day=dt.date(2020, 8, 14))
    assert [type(o) for o in spider.listing_failed(failure)] == [CrawlError]
    assert spider.crawler.stats.get_value("kremlin/walk_incomplete") is None


# -- KremlinSpider: refresh ----------------------------------------------------------------------


def test_refresh_ends_the_walk_at_a_page_that_lists_nothing_new(crawler_for):
    spider = kremlin(crawler_for, lang="en", mode="refresh")
    for kremlin_id, (title, published_at) in listed_titles(PAGE2, f"{EN}/page/2").items():
        store(spider, kremlin_id, title, published_at)
    outputs = list(spider.parse_listing(listing_response(f"{EN}/page/2", PAGE2)))
    assert described(outputs) == []
    assert listed_of(outputs) == [("en", PAGE2_IDS)]  # the ledger hears of them all the same


def test_refresh_asks_again_for_a_retitled_event(crawler_for):
    spider = kremlin(crawler_for, lang="en", mode="refresh")
    titles = listed_titles(PAGE2, f"{EN}/page/2")
    for kremlin_id, (title, published_at) in titles.items():
        store(spider, kremlin_id, title, published_at)
    store(spider, 63904, "Meeting with Rosneft CEO", titles[63904][1])  # edited since
    outputs = described(spider.parse_listing(listing_response(f"{EN}/page/2", PAGE2)))
    assert outputs == [
        event(63904, conditional=True),
        listing(f"{EN}/page/3", fallback_day=dt.date(2020, 8, 12)),
    ]


def test_refresh_does_not_ask_again_for_an_event_that_was_missing_lately(crawler_for):
    spider = kremlin(crawler_for, lang="en", mode="refresh", missing_days="7")
    run = open_run(spider.crawler)
    dbmod.record_fetch(
        run.db,
        {
            "run_id": run.run_id, "kind": "event", "event_id": "en-63907",
            "url": urls.event_url("en", 63907), "status": 404, "fetched_at": utc_stamp(),
        },
    )  # fmt: skip
    outputs = described(spider.parse_listing(listing_response(f"{EN}/page/2", PAGE2)))
    assert event(63907) not in outputs
    assert len([o for o in outputs if o[0] == "event"]) == 19
    assert spider.crawler.stats.get_value("kremlin/events/skipped_missing") == 1


@pytest.fixture
def feed(mirror_dir):
    return mirror_dir / "en.kremlin.ru" / "events" / "president" / "news" / "feed.xml"


def feed_response(page):
    return response_for(FEED_URL, page, meta={Meta.KIND: "feed", Meta.LANG: "en"})


def test_refresh_reads_the_feed_then_the_newest_listing_page(crawler_for, feed):
    spider = kremlin(crawler_for, lang="en", mode="refresh")
    outputs = described(spider.parse_feed(feed_response(feed)))
    # Empty archive: the walk's floor is the feed's newest day (2020-08-27) less 7 days, so
    # the feed's oldest entry (63914, 2020-08-19) is left for `crawl --since`.
    assert outputs == [listing(EN), *(event(i) for i in FEED_IDS[:-1])]
    stats = spider.crawler.stats
    assert stats.get_value("kremlin/refresh/en/floor") == "2020-08-20"
    assert stats.get_value("kremlin/events/before_floor") == 1


def test_refresh_rechecks_the_archives_latest_events_first(crawler_for, feed):
    spider = kremlin(crawler_for, lang="en", mode="refresh", recheck_days="3")
    store(
        spider, 63940, "Meeting with Federal Bailiff Service Director", "2020-08-25T14:30:00+03:00"
    )
    store(spider, 63926, "Meeting with permanent members", "2020-08-21T14:55:00+03:00")
    outputs = described(spider.parse_feed(feed_response(feed)))
    # Rechecks: the 3 days ending on the feed's newest day (2020-08-25..27).
    assert outputs[:2] == [event(63940, conditional=True), listing(EN)]
    assert spider.crawler.stats.get_value("kremlin/events/rechecked") == 1
    assert spider.crawler.stats.get_value("kremlin/recheck/en/since") == "2020-08-25"


def test_a_feed_that_does_not_parse_is_recorded_and_the_listing_read(crawler_for):
    spider = kremlin(crawler_for, lang="en", mode="refresh")
    outputs = described(spider.parse_feed(feed_response("en_news_63017.html")))
    [error, *requests] = outputs
    assert (error.url, error.stage, error.status) == (FEED_URL, "parse", 200)
    assert error.reason.startswith("not-feed: not well-formed XML")
    assert requests == [listing(EN)]


def test_a_feed_that_cannot_be_fetched_is_recorded_and_the_listing_read(crawler_for):
    spider = kremlin(crawler_for, lang="en", mode="refresh")
    request = Request(FEED_URL, meta={Meta.KIND: "feed", Meta.LANG: "en"})
    outputs = described(spider.feed_failed(http_failure(request, 503)))
    assert outputs == [
        CrawlError(url=FEED_URL, stage="fetch", reason="HTTP 503", status=503, fetch_id=5),
        listing(EN),
    ]


# -- UrlsSpider ----------------------------------------------------------------------------------


def test_urls_asks_for_each_valid_entry_once_and_reports_the_others(crawler_for):
    entries = ",".join(
        [
            f"{RU}/copy/66419",
            "http://example.org/events/president/news/1",
            "kremlin.ru/events/president/news/66419",  # the same event again
            "en.kremlin.ru/events/president/news/63017/print",
        ]
    )
    spider = spider_for(crawler_for(UrlsSpider), urls=entries)
    outputs = started(spider)
    assert described(outputs) == [
        event(66419, "ru", conditional=True),
        CrawlError(
            url="http://example.org/events/president/news/1",
            stage="input",
            reason="not a kremlin.ru event URL (host 'example.org'): "
            "'http://example.org/events/president/news/1'",
        ),
        event(63017, "en", conditional=True),
    ]
    assert [o.meta[Meta.SOURCE_URL] for o in outputs if isinstance(o, Request)] == [
        f"{RU}/copy/66419", "en.kremlin.ru/events/president/news/63017/print",
    ]  # fmt: skip


def test_urls_reports_a_line_of_a_file_that_is_not_utf8(crawler_for, tmp_path):
    listing_file = tmp_path / "urls.txt"
    listing_file.write_bytes(f"# seeds\n{EN}/63017\n".encode() + b"http://kremlin.ru/\xff\n")
    spider = spider_for(crawler_for(UrlsSpider), urls_file=str(listing_file))
    [request, error] = started(spider)
    assert request.url == EVENT_URL
    assert (error.stage, error.url) == (
        "input", f"<line 3 of {listing_file}: not UTF-8: b'http://kremlin.ru/\\xff'>",
    )  # fmt: skip


# -- the Wayback as a second source ------------------------------------------------------------


def test_in_auto_mode_a_site_failure_asks_for_the_newest_capture(crawler_for):
    spider = spider_for(crawler_for(UrlsSpider), source="auto")
    request = spider.event_request(urls.event_ref("en", 63017), source_url=COPY_URL)
    [fallback] = spider.event_failed(http_failure(request, 404))
    assert fallback.url == "http://web.archive.org/web/99991231235959id_/" + EVENT_URL
    assert fallback.meta[Meta.VIA] == "wayback"
    assert fallback.meta["download_slot"] == "wayback"
    assert fallback.meta[Meta.SITE_ERROR].reason == "not found (HTTP 404)"
    # one event: requested once, not failed (yet)
    stats = spider.crawler.stats
    assert (
        stats.get_value("kremlin/events/requested"),
        stats.get_value("kremlin/events/failed"),
    ) == (1, None)


def test_without_a_copy_the_sites_answer_is_what_is_known(crawler_for):
    spider = spider_for(crawler_for(UrlsSpider), source="auto")
    request = spider.event_request(urls.event_ref("en", 63017), source_url=COPY_URL)
    [fallback] = spider.event_failed(http_failure(request, 404))
    [error] = spider.event_failed(http_failure(fallback, 404))
    assert (
        error.reason
        == "not found (HTTP 404); no copy in the Internet Archive (not found (HTTP 404))"
    )
    assert (error.event_id, error.source, error.status) == ("en-63017", "site", 404)
    assert spider.crawler.stats.get_value("kremlin/events/failed") == 1


def test_a_copy_standing_in_for_the_site_says_what_the_site_answered(crawler_for):
    spider = spider_for(crawler_for(UrlsSpider), source="auto")
    request = spider.event_request(urls.event_ref("en", 63017), source_url=COPY_URL)
    [fallback] = spider.event_failed(http_failure(request, 403, retries=3))
    capture = "http://web.archive.org/web/20200823064150id_/" + EVENT_URL
    response = response_for(capture, "en_news_63017.html").replace(request=fallback)
    [transcript] = spider.parse_event(response)
    assert (transcript.event_id, transcript.source) == ("en-63017", "wayback")
    assert transcript.site_answer == "refused by the site (HTTP 403) after 3 retries"
    assert transcript.url == EVENT_URL  # the event is named by the site's address


def test_a_wayback_error_never_says_the_site_lacks_the_page(crawler_for):
    spider = spider_for(crawler_for(UrlsSpider), source="wayback")
    request = spider.event_request(urls.event_ref("en", 63017))
    [error] = spider.event_failed(http_failure(request, 404))
    assert error.source == "wayback"
    from kremlin_archive.items import coverage_state

    assert coverage_state(error.stage, error.status, error.reason, error.source) == "failed"


@pytest.mark.parametrize("spider_class", [KremlinSpider, UrlsSpider])
def test_no_generator_callback_returns_a_value(spider_class):
    """Scrapy would drop a generator callback's `return value`; the project turns off its check
    per response (WARN_ON_GENERATOR_RETURN_VALUE, settings.py), so it is made here, once, over
    every callback and errback of the spiders: their methods that are generator functions."""
    from scrapy.utils.misc import is_generator_with_return_value

    generators = [
        name
        for name in dir(spider_class)
        if inspect.isgeneratorfunction(getattr(spider_class, name, None))
    ]
    assert "parse_event" in generators  # the check sees the callbacks
    returning = [n for n in generators if is_generator_with_return_value(getattr(spider_class, n))]
    assert returning == []
