"""What a run leaves when an event page is not archived (issue 16): `fetch` answers for each URL
it is given (exit 1, naming the URL given, the URL fetched for it and why), and a redirect of an
event page -- to another host, to a page of another section, to another event, to a page
robots.txt forbids, in a loop -- always reaches the event's callback or errback, so that the
`errors` row names the page asked for and where it was sent, never the anonymous "neither stored
nor recorded as failed" count.

The cause of the lost redirects: Scrapy's RedirectMiddleware hands the redirected request back
to the engine as a new request, and ExecutionEngine._schedule_request drops it without calling
its errback when the OffsiteMiddleware's `request_scheduled` handler raises IgnoreRequest (a
request without dont_filter to another host) or the scheduler's dupefilter has seen its URL.
Event requests carry dont_filter (the spiders ask for each id once themselves); the project's
hosts guard refuses a redirect to another host in the downloader, where the IgnoreRequest reaches
the errback.

Unit tests build the components as Scrapy does (`get_crawler`, real pages of ../shared);
the end-to-end tests (`slow`) run `kremlin-archive fetch|crawl` through the replay server on
the 2020 capture of en.kremlin.ru with the replay server's "redirect" fault."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import (
    KREMLIN_HTML,
    assert_sound,
    cli_run,
    make_transcript,
    open_run,
    response_for,
    spider_for,
)
from scrapy import signals
from scrapy.downloadermiddlewares.offsite import OffsiteMiddleware
from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.exceptions import DropItem, IgnoreRequest
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from kremlin_archive import db as dbmod
from kremlin_archive import urls
from kremlin_archive.crawl_run import current_run
from kremlin_archive.items import CrawlError, Observed, coverage_state
from kremlin_archive.middlewares import KremlinHostsOnlyMiddleware
from kremlin_archive.request_meta import Meta
from kremlin_archive.spiders.base import fetched_note
from kremlin_archive.spiders.kremlin import KremlinSpider
from kremlin_archive.spiders.urls import SHOWN, UrlsSpider

NEWS = "http://en.kremlin.ru/events/president/news/"
EVENT_URL = NEWS + "63017"
COPY_URL = NEWS + "copy/63017"
OTHER_URL = NEWS + "63020"
LISTING_URL = NEWS + "page/2"
ELSEWHERE = "http://example.com/events/president/news/63017"
ANONYMOUS = "neither stored nor recorded as failed"


# -- unit: the redirect of an event request ----------------------------------------------------


@pytest.fixture
def crawl_spider(crawler_for) -> KremlinSpider:
    """A `kremlin` spider (crawl --ids): its requests for new events are not conditional."""
    return spider_for(crawler_for(KremlinSpider), lang="en", ids="63017")


def redirect_of(spider, request: Request, location: str, status: int = 302) -> Request:
    """What Scrapy's RedirectMiddleware makes of an answer `status` to `location`."""
    middleware = RedirectMiddleware.from_crawler(spider.crawler)
    response = Response(request.url, status=status, headers={"Location": location}, request=request)
    return middleware.process_response(request, response)


def ignored(request: Request, message: str, fetch: dict | None = None) -> Failure:
    """The failure an IgnoreRequest for `request` hands to its errback."""
    if fetch is not None:
        request.meta[Meta.FETCH] = fetch
    failure = Failure(IgnoreRequest(message))
    failure.request = request
    return failure


def test_a_redirect_to_another_host_is_not_dropped_when_it_is_scheduled(crawl_spider):
    request = crawl_spider.event_request(urls.event_ref("en", 63017))
    offsite = OffsiteMiddleware.from_crawler(crawl_spider.crawler)
    offsite.spider_opened(crawl_spider)
    redirect = redirect_of(crawl_spider, request, ELSEWHERE)
    assert redirect.url == ELSEWHERE
    # Scrapy's offsite filter raises IgnoreRequest from its request_scheduled handler for a
    # request without dont_filter, and the engine then drops it without calling its errback.
    offsite.request_scheduled(redirect, crawl_spider)
    assert redirect.dont_filter  # nor may the scheduler's dupefilter drop it
    # The project's hosts guard refuses it in the downloader, whence the errback gets it.
    hosts = KremlinHostsOnlyMiddleware.from_crawler(crawl_spider.crawler)
    with pytest.raises(IgnoreRequest) as refused:
        hosts.process_request(redirect)
    [error] = crawl_spider.event_failed(
        ignored(redirect, str(refused.value), {"id": 3, "status": 302})
    )
    assert error == CrawlError(
        url=EVENT_URL,
        stage="fetch",
        reason=f"offsite redirect from {EVENT_URL} to {ELSEWHERE}: not followed",
        status=302,
        fetch_id=3,
        event_id="en-63017",
    )
    assert coverage_state(error.stage, error.status, error.reason) == "not_event"


def test_scrapys_offsite_filter_would_drop_a_redirect_without_dont_filter(crawl_spider):
    """The behaviour of Scrapy 2.19 the fix rests on: were it to change, so could the fix."""
    request = crawl_spider.event_request(urls.event_ref("en", 63017)).replace(dont_filter=False)
    offsite = OffsiteMiddleware.from_crawler(crawl_spider.crawler)
    offsite.spider_opened(crawl_spider)
    with pytest.raises(IgnoreRequest):
        offsite.request_scheduled(redirect_of(crawl_spider, request, ELSEWHERE), crawl_spider)


def test_a_redirect_to_a_listing_page_is_a_parse_error_of_the_page_asked_for(crawl_spider):
    request = crawl_spider.event_request(urls.event_ref("en", 63017))
    redirect = redirect_of(crawl_spider, request, LISTING_URL)
    response = response_for(LISTING_URL, "en_list_news_page2.html").replace(request=redirect)
    [error] = crawl_spider.parse_event(response)
    assert (error.url, error.stage, error.status, error.event_id) == (
        EVENT_URL, "parse", 200, "en-63017",
    )  # fmt: skip
    assert error.reason.startswith("listing-page: ")
    assert error.reason.endswith(f" (redirected to {LISTING_URL})")
    assert coverage_state(error.stage, error.status, error.reason) == "not_event"


def test_a_failed_redirect_names_the_url_given_fetched_and_redirected_to(crawler_for):
    spider = spider_for(crawler_for(UrlsSpider))
    request = spider.event_request(urls.event_ref("en", 63017), source_url=COPY_URL)
    target = "http://en.kremlin.ru/catalog/persons"
    redirect = redirect_of(spider, request, target)
    redirect.meta[Meta.FETCH] = {"id": 4, "status": 404}
    failure = Failure(HttpError(Response(target, status=404, request=redirect), "Ignoring"))
    failure.request = redirect
    [error] = spider.event_failed(failure)
    assert (error.url, error.status, error.fetch_id) == (COPY_URL, 404, 4)
    assert error.reason == f"not found (HTTP 404) (fetched as {EVENT_URL}, redirected to {target})"


def test_a_redirect_to_a_page_robots_txt_forbids_names_it(crawl_spider):
    request = crawl_spider.event_request(urls.event_ref("en", 63017))
    redirect = redirect_of(crawl_spider, request, COPY_URL)
    failure = ignored(redirect, "Forbidden by robots.txt", {"id": 6, "status": 302})
    [error] = crawl_spider.event_failed(failure)
    assert (error.url, error.status, error.fetch_id) == (EVENT_URL, 302, 6)
    assert error.reason == f"not requested: Forbidden by robots.txt (redirected to {COPY_URL})"


def test_a_redirect_loop_is_named_with_its_length(crawl_spider):
    request = crawl_spider.event_request(urls.event_ref("en", 63017))
    limit = crawl_spider.crawler.settings.getint("REDIRECT_MAX_TIMES")
    for _ in range(limit):
        request = redirect_of(crawl_spider, request, EVENT_URL)
    with pytest.raises(IgnoreRequest) as gave_up:
        redirect_of(crawl_spider, request, EVENT_URL)
    [error] = crawl_spider.event_failed(
        ignored(request, str(gave_up.value), {"id": 8, "status": 302})
    )
    assert (error.url, error.status) == (EVENT_URL, 302)
    assert error.reason == f"too many redirects: {limit}, the last to {EVENT_URL}; not followed"
    assert coverage_state(error.stage, error.status, error.reason) == "failed"


@pytest.mark.parametrize(
    ("asked", "fetched", "final", "reason", "note"),
    [
        (EVENT_URL, EVENT_URL, EVENT_URL, "HTTP 503", ""),
        (COPY_URL, EVENT_URL, EVENT_URL, "HTTP 503", f" (fetched as {EVENT_URL})"),
        (EVENT_URL, EVENT_URL, LISTING_URL, "x", f" (redirected to {LISTING_URL})"),
        (
            COPY_URL, EVENT_URL, LISTING_URL, "x",
            f" (fetched as {EVENT_URL}, redirected to {LISTING_URL})",
        ),
        # what the reason names already is not repeated
        (COPY_URL, EVENT_URL, ELSEWHERE, f"offsite redirect from {EVENT_URL} to {ELSEWHERE}", ""),
    ],
)  # fmt: skip
def test_fetched_note(asked, fetched, final, reason, note):
    assert fetched_note(asked, fetched, final, reason) == note


# -- unit: what a fetch answers for ------------------------------------------------------------


def started(spider) -> list:
    async def collect():
        return [output async for output in spider.start()]

    return asyncio.run(collect())


def fetch_spider(crawler_for, *entries: str) -> UrlsSpider:
    """A `urls` spider for `entries`, started (its requests made)."""
    spider = spider_for(crawler_for(UrlsSpider), urls=",".join(entries))
    started(spider)
    return spider


def passed(spider, item) -> None:
    """`item` through the pipelines, as the engine signals it."""
    spider.crawler.signals.send_catch_log(
        signal=signals.item_scraped, item=item, response=None, spider=spider
    )


def stored(kremlin_id: int, source_url: str, final_url: str | None = None):
    url = NEWS + str(kremlin_id)
    return make_transcript(
        kremlin_id=kremlin_id, lang="en", url=url, source_url=source_url,
        final_url=final_url or url,
    )  # fmt: skip


def test_a_fetch_whose_pages_are_all_stored_is_complete(crawler_for):
    spider = fetch_spider(crawler_for, COPY_URL, OTHER_URL)
    passed(spider, stored(63017, COPY_URL))
    passed(spider, stored(63020, OTHER_URL))
    assert spider.window_complete() is None


def test_a_page_not_modified_is_archived(crawler_for):
    spider = fetch_spider(crawler_for, COPY_URL)
    request = spider.event_request(urls.event_ref("en", 63017), source_url=COPY_URL)
    response = response_for(EVENT_URL, b"", status=304).replace(request=request)
    assert list(spider.parse_event(response)) == []
    assert spider.window_complete() is None


def test_a_fetch_names_each_page_not_archived_with_the_url_fetched_and_why(crawler_for):
    spider = fetch_spider(crawler_for, COPY_URL, OTHER_URL)
    passed(spider, stored(63020, OTHER_URL))
    reason = f"not found (HTTP 404) (fetched as {EVENT_URL})"
    passed(spider, CrawlError(COPY_URL, "fetch", reason, 404, 2, "en-63017"))
    assert spider.missed_pages() == [(COPY_URL, reason)]
    assert spider.window_complete() == (
        f"1 of the 2 page(s) asked for not archived by this run: {COPY_URL}: {reason}"
    )


def test_an_address_that_answers_with_another_event_is_not_archived(crawler_for):
    spider = fetch_spider(crawler_for, COPY_URL)
    passed(spider, Observed("en-63017", "not_event", "redirected to en-63020", 3))
    passed(spider, stored(63020, COPY_URL, final_url=OTHER_URL))
    [(given, why)] = spider.missed_pages()
    assert given == COPY_URL
    assert why == (
        f"{EVENT_URL} redirected to {OTHER_URL}, the page of another event (stored as en-63020)"
    )


def test_a_page_a_pipeline_dropped_is_not_archived(crawler_for):
    spider = fetch_spider(crawler_for, EVENT_URL)
    spider.crawler.signals.send_catch_log(
        signal=signals.item_dropped, item=stored(63017, EVENT_URL), response=None,
        exception=DropItem("invalid: no title"), spider=spider,
    )  # fmt: skip
    assert spider.missed_pages() == [(EVENT_URL, "not stored: invalid: no title")]


def test_a_page_without_an_answer_is_named_with_the_url_fetched(crawler_for):
    spider = fetch_spider(crawler_for, COPY_URL, EVENT_URL)  # one page, given twice
    assert spider.missed_pages() == [
        (f"{COPY_URL}, {EVENT_URL}", f"no answer was recorded for it (fetched as {EVENT_URL})")
    ]


def test_a_fetch_names_the_first_pages_not_archived_and_counts_the_rest(crawler_for):
    entries = [NEWS + str(63000 + n) for n in range(SHOWN + 2)]
    spider = fetch_spider(crawler_for, *entries)
    message = spider.window_complete()
    assert message.startswith(f"{SHOWN + 2} of the {SHOWN + 2} page(s) asked for not archived")
    assert all(url in message for url in entries[:SHOWN])
    assert entries[SHOWN] not in message
    assert message.endswith("; … and 2 more (see the errors table)")


# -- unit: a request the scheduler drops --------------------------------------------------------


def test_an_event_request_the_scheduler_drops_is_recorded_by_name(crawler_for):
    crawler = crawler_for(KremlinSpider)
    spider = spider_for(crawler, lang="en", ids="63017")
    run = open_run(crawler)
    request = spider.event_request(urls.event_ref("en", 63017))
    crawler.signals.send_catch_log(signal=signals.request_dropped, request=request, spider=spider)
    crawler.signals.send_catch_log(  # not an event: not the run's to record
        signal=signals.request_dropped, request=Request(LISTING_URL), spider=spider
    )
    run.spider_closed(spider, "finished")
    database = dbmod.connect(run.db_path)
    errors = list(database.query("SELECT url, stage, reason FROM errors"))
    coverage = list(database.query("SELECT id, state FROM coverage"))
    database.close()
    assert errors == [
        {
            "url": EVENT_URL,
            "stage": "fetch",
            "reason": f"dropped by the scheduler: the request of {EVENT_URL} was never sent",
        }
    ]
    assert coverage == [{"id": "en-63017", "state": "failed"}]
    assert current_run(crawler).crawler.stats.get_value("kremlin/events/failed") == 1


# -- end to end: `kremlin-archive fetch` --------------------------------------------------------

CONTROLS = (NEWS + "63020", NEWS + "63021")
SHELL404 = KREMLIN_HTML / "ru_error404_acts_bank_43577.html"


def errors_of(run, url=None) -> list[dict]:
    if url is None:
        return run.rows("SELECT * FROM errors ORDER BY id")
    return run.rows("SELECT * FROM errors WHERE url = ? ORDER BY id", [url])


def coverage_of(run, event_id: str) -> dict:
    [row] = run.rows("SELECT * FROM coverage WHERE id = ?", [event_id])
    return row


def assert_nothing_anonymous(run) -> None:
    """Every error names its page (a run-level error may name none, but not an event's)."""
    assert [e for e in errors_of(run) if ANONYMOUS in e["reason"]] == []
    assert json.loads(run.run_row["counts"])["events_unfinished"] == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "params", "stage", "status", "reason", "ledger"),
    [
        (404, {}, "fetch", 404, "not found (HTTP 404) (fetched as {fetched})", "absent"),
        ("shell404", {"path": str(SHELL404)}, "parse", 200, "not-found-page: ", "absent"),
        (503, {}, "fetch", 503, "HTTP 503 after 3 retries (fetched as {fetched})", "failed"),
        (
            "redirect", {"location": ELSEWHERE}, "fetch", 302,
            "offsite redirect from {fetched} to " + ELSEWHERE + ": not followed", "not_event",
        ),
    ],
)  # fmt: skip
def test_fetch_of_a_page_not_archived_exits_1_naming_the_url_given_and_fetched(
    fault, params, stage, status, reason, ledger, replay, tmp_path, mirror_dir
):
    replay.fault(EVENT_URL, fault, **params)
    run = cli_run(replay, tmp_path, "fetch", COPY_URL, *CONTROLS)
    stderr = run.result.stderr
    assert run.result.returncode == 1, stderr[-3000:]
    assert run.run_row["status"] == "incomplete"
    # the request went to the canonical page (robots.txt forbids /copy/)
    assert not any("/copy/" in r.url for r in run.log)
    [error] = errors_of(run, COPY_URL)  # the URL as given
    assert (error["stage"], error["status"]) == (stage, status)
    assert error["reason"].startswith(reason.format(fetched=EVENT_URL))
    assert EVENT_URL in error["reason"]  # and the URL fetched for it
    assert f"1 of the 3 page(s) asked for not archived by this run: {COPY_URL}: " in stderr
    assert f"{COPY_URL}: {error['reason']}" in stderr
    assert "Resume with: kremlin-archive fetch " in stderr
    assert coverage_of(run, "en-63017")["state"] == ledger
    assert {r["id"] for r in run.rows("SELECT id FROM events")} == {"en-63020", "en-63021"}
    assert_nothing_anonymous(run)
    assert_sound(run.db_path, run.warc)


@pytest.mark.slow
def test_fetch_of_an_address_that_redirects_to_another_event_exits_1(replay, tmp_path):
    replay.fault(EVENT_URL, "redirect", location=OTHER_URL)
    run = cli_run(replay, tmp_path, "fetch", COPY_URL)
    stderr = run.result.stderr
    assert run.result.returncode == 1, stderr[-3000:]
    assert run.run_row["status"] == "incomplete"
    assert (
        f"1 of the 1 page(s) asked for not archived by this run: {COPY_URL}: {EVENT_URL} "
        f"redirected to {OTHER_URL}, the page of another event (stored as en-63020)"
    ) in stderr
    assert {r["id"] for r in run.rows("SELECT id FROM events")} == {"en-63020"}
    assert coverage_of(run, "en-63017")["state"] == "not_event"
    assert_nothing_anonymous(run)


@pytest.mark.slow
def test_fetch_of_pages_all_archived_exits_0(replay, tmp_path):
    run = cli_run(replay, tmp_path, "fetch", COPY_URL, *CONTROLS)
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    assert run.run_row["status"] == "finished"
    assert "not archived" not in run.result.stderr
    assert errors_of(run) == []


# -- end to end: a redirect during a crawl ------------------------------------------------------

DAYS = ("--lang", "en", "--since", "2020-03-17", "--until", "2020-03-18")
BY_DATE = NEWS + "by-date/18.03.2020"  # walked by the crawl of DAYS before 63017 is asked for


@pytest.mark.slow
@pytest.mark.parametrize(
    ("location", "stage", "status", "reason", "ledger"),
    [
        (ELSEWHERE, "fetch", 302, f"offsite redirect from {EVENT_URL} to {ELSEWHERE}: not followed",
         "not_event"),
        (BY_DATE, "parse", 200, "listing-page: ", "not_event"),
        (COPY_URL, "fetch", 302, "not requested: Forbidden by robots.txt", "failed"),
        (EVENT_URL, "fetch", 302, "too many redirects: ", "failed"),
    ],
    ids=["another-host", "a-listing-page-walked", "robots-forbids", "a-loop"],
)  # fmt: skip
def test_a_redirect_during_a_crawl_names_the_page_and_where_it_was_sent(
    location, stage, status, reason, ledger, replay, tmp_path
):
    replay.fault(EVENT_URL, "redirect", location=location)
    run = cli_run(replay, tmp_path, "crawl", *DAYS)
    [error] = errors_of(run, EVENT_URL)
    assert (error["stage"], error["status"]) == (stage, status)
    assert error["reason"].startswith(reason)
    assert location in error["reason"]
    assert coverage_of(run, "en-63017")["state"] == ledger
    assert_nothing_anonymous(run)
    assert {r.url.split("/")[2] for r in run.log} == {"en.kremlin.ru"}, "a request left the site"
    assert not any("/copy/" in r.url for r in run.log)
    finished = ledger == "not_event"  # accounted for: the crawl's window is complete
    assert run.result.returncode == (0 if finished else 1), run.result.stderr[-3000:]
    assert run.run_row["status"] == ("finished" if finished else "incomplete")
    assert_sound(run.db_path, run.warc)


@pytest.mark.slow
def test_a_redirect_to_an_event_the_crawl_asked_for_already(replay, tmp_path):
    replay.fault(EVENT_URL, "redirect", location=OTHER_URL)
    run = cli_run(replay, tmp_path, "crawl", *DAYS)
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    assert errors_of(run, EVENT_URL) == []
    assert coverage_of(run, "en-63017")["answer"] == "redirected to en-63020"
    assert coverage_of(run, "en-63017")["state"] == "not_event"
    assert_nothing_anonymous(run)
