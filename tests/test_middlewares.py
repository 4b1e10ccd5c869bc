"""middlewares.py: the downloader middlewares built from a crawler (`get_crawler`) with the
project's settings, fed Request objects and responses made of real pages -- no engine, no
network. The run (CrawlRun) is opened by the tests; a stub stands in for the engine where the
refusal brake pauses or stops the crawl."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import gzip
import hashlib
import re

import pytest
from conftest import EngineStub, count_rows, open_run, response_for, shared_page, spider_for
from scrapy.exceptions import (
    DownloadCancelledError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.http import Request, Response
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from kremlin_archive import warc
from kremlin_archive.crawl_run import CrawlRun, current_run
from kremlin_archive.middlewares import (
    BackoffRetryMiddleware,
    ConditionalRequestMiddleware,
    FetchRecorderMiddleware,
    KremlinHostsOnlyMiddleware,
    RefusalBrakeMiddleware,
    exception_text,
    retry_after_seconds,
)
from kremlin_archive.request_meta import Meta
from kremlin_archive.spiders.urls import UrlsSpider

EVENT_URL = "http://en.kremlin.ru/events/president/news/63017"
COPY_URL = "http://en.kremlin.ru/events/president/news/copy/63017"
LISTING_URL = "http://en.kremlin.ru/events/president/news/page/2"
PAGE = "en_news_63017.html"  # "Vladimir Putin arrived in Crimea", 2020-03-18
UTC_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def event_meta(**extra) -> dict:
    """The meta of an event request as EventSpider.event_request makes it (for 63017)."""
    return {Meta.KIND: "event", Meta.EVENT_ID: "en-63017", Meta.SOURCE_URL: COPY_URL, **extra}


@pytest.fixture
def crawler(crawler_for):
    """A `urls` crawl with its run opened (database and WARC folder in tmp_path)."""
    crawler = crawler_for(UrlsSpider)
    open_run(crawler)
    return crawler


def run_of(crawler) -> CrawlRun:
    return current_run(crawler)


def rows(crawler, sql: str, params=()) -> list[dict]:
    return list(run_of(crawler).db.query(sql, params))


def errors(crawler) -> list[dict]:
    """The run's `errors` rows without their id and time."""
    return [
        {k: v for k, v in row.items() if k not in ("id", "at")}
        for row in rows(crawler, "SELECT * FROM errors ORDER BY id")
    ]


# -- KremlinHostsOnlyMiddleware -------------------------------------------------------------


@pytest.fixture(scope="module")
def hosts_only():
    return build_from_crawler(KremlinHostsOnlyMiddleware, get_crawler(UrlsSpider))


@pytest.mark.parametrize(
    "url",
    [
        "http://kremlin.ru/events/president/news/66419",
        "http://en.kremlin.ru/robots.txt",
        "https://www.kremlin.ru/events/president/news/66419",
        "http://www.en.kremlin.ru/events/president/news/63017",
        "http://EN.KREMLIN.RU./events/president/news/63017",
    ],
)
def test_hosts_only_lets_kremlin_requests_through(hosts_only, url):
    assert hosts_only.process_request(Request(url)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org/events/president/news/63017",
        "http://kremlin.ru.example.org/events/president/news/63017",
        "http://notkremlin.ru/events/president/news/63017",
        "http://kremlin.ru@example.org/events/president/news/63017",
        "http://127.0.0.1/events/president/news/63017",
    ],
)
def test_hosts_only_refuses_any_other_host(hosts_only, url):
    with pytest.raises(IgnoreRequest) as refused:
        hosts_only.process_request(Request(url))
    assert str(refused.value) == f"offsite: {url} is not on kremlin.ru: not requested"


def test_hosts_only_refuses_a_redirect_to_another_host(hosts_only):
    request = Request("http://example.org/landing", meta={"redirect_urls": [EVENT_URL]})
    with pytest.raises(IgnoreRequest) as refused:
        hosts_only.process_request(request)
    assert str(refused.value) == (
        f"offsite redirect from {EVENT_URL} to http://example.org/landing: not followed"
    )


# -- FetchRecorderMiddleware ----------------------------------------------------------------


@pytest.fixture
def recorder(crawler):
    return FetchRecorderMiddleware.from_crawler(crawler)


def fetches(crawler) -> list[dict]:
    return rows(crawler, "SELECT * FROM fetches ORDER BY id")


def test_recorder_writes_a_fetch_row_for_an_answer(crawler, recorder):
    response = response_for(
        EVENT_URL, PAGE, meta=event_meta(), headers={"Content-Type": "text/html; charset=utf-8"}
    )
    assert recorder.process_response(response.request, response) is response
    [row] = fetches(crawler)
    assert UTC_STAMP.match(row.pop("fetched_at"))
    location = {k: row.pop(k) for k in list(row) if k.startswith("warc_")}
    assert location["warc_record_type"] == "response"
    assert row == {
        "id": 1,
        "run_id": run_of(crawler).run_id,
        "spider": "urls",
        "kind": "event",
        "event_id": "en-63017",
        "requested_url": COPY_URL,
        "url": EVENT_URL,
        "final_url": EVENT_URL,
        "method": "GET",
        "status": 200,
        "error": None,
        "content_type": "text/html; charset=utf-8",
        "content_length": len(shared_page(PAGE)),
        "etag": None,
        "last_modified": None,
        "payload_sha256": hashlib.sha256(shared_page(PAGE)).hexdigest(),
        "source": "site",
        "archive_url": None,
        "capture_time": None,
        "original_url": None,
    }


def test_recorder_row_points_at_the_warc_record_of_the_answer(crawler, recorder, tmp_path):
    response = response_for(EVENT_URL, PAGE, meta=event_meta())
    recorder.process_response(response.request, response)
    run_of(crawler).warc.close()
    [row] = fetches(crawler)
    capture = warc.read_record(tmp_path / "warc", row)
    assert (capture.url, capture.status, capture.body, capture.record_type) == (
        EVENT_URL, 200, shared_page(PAGE), "response",
    )  # fmt: skip


def test_recorder_hands_the_fetch_row_to_the_request(crawler, recorder):
    response = response_for(EVENT_URL, PAGE, meta=event_meta())
    recorder.process_response(response.request, response)
    [row] = fetches(crawler)
    handed = response.request.meta[Meta.FETCH]
    assert {k: row[k] for k in handed} == handed
    assert handed["id"] == row["id"]
    assert crawler.stats.get_value("kremlin/fetches") == 1


def test_recorder_digests_the_decoded_body_of_a_gzip_answer(crawler, recorder):
    # The recorder (610) sees answers before HttpCompressionMiddleware (590) decodes them.
    page = shared_page(PAGE)
    response = response_for(
        EVENT_URL, gzip.compress(page), meta=event_meta(), headers={"Content-Encoding": "gzip"}
    )
    recorder.process_response(response.request, response)
    [row] = fetches(crawler)
    assert (row["payload_sha256"], row["content_length"]) == (
        hashlib.sha256(page).hexdigest(), len(page),
    )  # fmt: skip


def test_recorder_tells_the_kind_from_the_url_when_the_request_does_not(crawler, recorder):
    url = "http://en.kremlin.ru/robots.txt"
    response = response_for(url, b"", status=404)
    recorder.process_response(response.request, response)
    [row] = fetches(crawler)
    assert {k: row[k] for k in ("kind", "event_id", "requested_url", "url", "status")} == {
        "kind": "robots", "event_id": None, "requested_url": url, "url": url, "status": 404,
    }  # fmt: skip


def test_recorder_says_when_a_body_was_cut_short(crawler, recorder):
    page = shared_page(PAGE)
    response = response_for(
        EVENT_URL, page[: len(page) // 2], meta=event_meta(), flags=["dataloss"]
    )
    recorder.process_response(response.request, response)
    [row] = fetches(crawler)
    assert row["error"] == "incomplete body (dataloss): the connection closed early"


def test_recorder_writes_a_revisit_for_an_identical_payload(crawler, recorder):
    for _ in range(2):
        response = response_for(EVENT_URL, PAGE, meta=event_meta())
        recorder.process_response(response.request, response)
    first, second = fetches(crawler)
    assert (first["warc_record_type"], second["warc_record_type"]) == ("response", "revisit")
    assert second["payload_sha256"] == first["payload_sha256"]


def test_recorder_keeps_the_fetch_row_when_the_warc_write_fails(crawler, recorder):
    run_of(crawler).warc.close()  # writing now raises WarcError
    response = response_for(EVENT_URL, PAGE, meta=event_meta())
    recorder.process_response(response.request, response)
    [row] = fetches(crawler)
    assert (row["status"], row["warc_filename"], row["warc_offset"]) == (200, None, None)
    assert errors(crawler) == [
        {
            "run_id": run_of(crawler).run_id,
            "url": EVENT_URL,
            "stage": "warc",
            "reason": "WarcError('WarcWriter is not open')",
            "status": None,
            "fetch_id": None,
        }
    ]


def test_recorder_records_a_transport_error(crawler, recorder):
    request = Request(EVENT_URL, meta=event_meta())
    exception = DownloadTimeoutError(
        "Getting http://en.kremlin.ru/… took longer than 60.0 seconds."
    )
    assert recorder.process_exception(request, exception) is None
    [row] = fetches(crawler)
    assert UTC_STAMP.match(row.pop("fetched_at"))
    assert {k: v for k, v in row.items() if v is not None} == {
        "id": 1,
        "run_id": run_of(crawler).run_id,
        "spider": "urls",
        "kind": "event",
        "event_id": "en-63017",
        "requested_url": COPY_URL,
        "url": EVENT_URL,
        "method": "GET",
        "error": "DownloadTimeoutError: Getting http://en.kremlin.ru/… took longer than 60.0 "
        "seconds.",
        "source": "site",
    }
    assert request.meta[Meta.FETCH]["id"] == 1


def test_recorder_names_an_exception_raised_without_a_message(crawler, recorder):
    recorder.process_exception(Request(EVENT_URL, meta=event_meta()), ResponseDataLossError())
    [row] = fetches(crawler)
    assert row["error"] == (
        "ResponseDataLossError: the connection closed before the whole body (Content-Length) "
        "arrived"
    )


def test_recorder_records_nothing_for_a_request_never_sent(crawler, recorder):
    request = Request("http://example.org/", meta=event_meta())
    assert recorder.process_exception(request, IgnoreRequest("offsite: …")) is None
    assert fetches(crawler) == []
    assert Meta.FETCH not in request.meta


def test_recorder_passes_answers_through_without_a_run(crawler_for):
    crawler = crawler_for(UrlsSpider, KREMLIN_DB="")  # CrawlRun: NotConfigured
    recorder = FetchRecorderMiddleware.from_crawler(crawler)
    response = response_for(EVENT_URL, PAGE, meta=event_meta())
    assert recorder.process_response(response.request, response) is response
    assert Meta.FETCH not in response.request.meta


def test_recorder_passes_answers_through_before_the_run_is_opened(crawler_for, tmp_path):
    crawler = crawler_for(UrlsSpider)
    recorder = FetchRecorderMiddleware.from_crawler(crawler)
    response = response_for(EVENT_URL, PAGE, meta=event_meta())
    assert recorder.process_response(response.request, response) is response
    assert not (tmp_path / "kremlin.db").exists()


# -- ConditionalRequestMiddleware ----------------------------------------------------------


def record_answer(crawler, url: str, **headers) -> None:
    """A 200 answer for `url` with these headers, through the fetch recorder."""
    response = response_for(url, PAGE, meta=event_meta(), headers=headers)
    FetchRecorderMiddleware.from_crawler(crawler).process_response(response.request, response)


def validators(request: Request) -> dict:
    return {
        name: request.headers.get(name)
        for name in (b"If-None-Match", b"If-Modified-Since")
        if name in request.headers
    }


LAST_MODIFIED = "Wed, 18 Mar 2020 14:40:00 GMT"


def test_conditional_request_carries_the_validators_of_the_last_answer(crawler):
    record_answer(crawler, EVENT_URL, ETag='"63017-1"', **{"Last-Modified": LAST_MODIFIED})
    request = Request(EVENT_URL, meta=event_meta(**{Meta.CONDITIONAL: True}))
    assert ConditionalRequestMiddleware.from_crawler(crawler).process_request(request) is None
    assert validators(request) == {
        b"If-None-Match": b'"63017-1"',
        b"If-Modified-Since": LAST_MODIFIED.encode(),
    }


def test_conditional_request_takes_the_latest_200_answer(crawler):
    record_answer(crawler, EVENT_URL, ETag='"63017-1"')
    record_answer(crawler, EVENT_URL, ETag='"63017-2"')
    request = Request(EVENT_URL, meta=event_meta(**{Meta.CONDITIONAL: True}))
    ConditionalRequestMiddleware.from_crawler(crawler).process_request(request)
    assert validators(request) == {b"If-None-Match": b'"63017-2"'}


def test_conditional_request_only_when_the_request_asks(crawler):
    record_answer(crawler, EVENT_URL, ETag='"63017-1"')
    request = Request(EVENT_URL, meta=event_meta())
    ConditionalRequestMiddleware.from_crawler(crawler).process_request(request)
    assert validators(request) == {}


def test_conditional_requests_can_be_switched_off(crawler_for):
    crawler = crawler_for(UrlsSpider, KREMLIN_CONDITIONAL_REQUESTS=False)
    open_run(crawler)
    record_answer(crawler, EVENT_URL, ETag='"63017-1"')
    request = Request(EVENT_URL, meta=event_meta(**{Meta.CONDITIONAL: True}))
    ConditionalRequestMiddleware.from_crawler(crawler).process_request(request)
    assert validators(request) == {}


def test_conditional_request_adds_nothing_when_the_site_sent_no_validators(crawler):
    record_answer(crawler, EVENT_URL)  # kremlin.ru sent neither ETag nor Last-Modified in 2020
    request = Request(EVENT_URL, meta=event_meta(**{Meta.CONDITIONAL: True}))
    ConditionalRequestMiddleware.from_crawler(crawler).process_request(request)
    assert validators(request) == {}


def test_conditional_request_keeps_a_validator_already_set(crawler):
    record_answer(crawler, EVENT_URL, ETag='"63017-1"')
    request = Request(
        EVENT_URL,
        headers={"If-None-Match": '"mine"'},
        meta=event_meta(**{Meta.CONDITIONAL: True}),
    )
    ConditionalRequestMiddleware.from_crawler(crawler).process_request(request)
    assert validators(request) == {b"If-None-Match": b'"mine"'}


# -- RefusalBrakeMiddleware -----------------------------------------------------------------


@pytest.fixture
def braked(crawler_for):
    """A `urls` crawl whose brake pauses after 2 consecutive refusals (for 10 ms), with its
    run opened and an engine stub."""
    crawler = crawler_for(UrlsSpider, KREMLIN_BRAKE_REFUSALS=2)
    open_run(crawler)
    crawler.engine = EngineStub(crawler.spider)
    return crawler


def brake_of(crawler) -> RefusalBrakeMiddleware:
    return RefusalBrakeMiddleware.from_crawler(crawler)


async def send(brake, url: str = EVENT_URL, meta=None) -> Request:
    """A request as the brake sees it on its way out."""
    request = Request(url, meta=dict(meta or {}))
    await brake.process_request(request)
    return request


async def answer(brake, request: Request, status: int, recorder=None):
    """The answer `status` to `request` through the brake (and first the recorder, as in the
    middleware chain, when given)."""
    response = Response(request.url, status=status, request=request)
    if recorder is not None:
        recorder.process_response(request, response)
    result = await brake.process_response(request, response)
    await asyncio.sleep(0)  # let a close scheduled by the run reach the engine stub
    return result


async def refusals(brake, statuses, meta=None, recorder=None) -> list[Request]:
    sent = []
    for status in statuses:
        request = await send(brake, EVENT_URL, meta)
        await answer(brake, request, status, recorder)
        sent.append(request)
    return sent


def test_brake_stamps_each_request_with_the_current_pause_round(braked):
    brake = brake_of(braked)
    before = asyncio.run(send(brake))
    asyncio.run(refusals(brake, [403, 403]))
    after = asyncio.run(send(brake))
    assert (before.meta[Meta.BRAKE_ROUND], after.meta[Meta.BRAKE_ROUND]) == (0, 1)


def test_brake_counts_every_refusal(braked):
    asyncio.run(refusals(brake_of(braked), [403, 200, 429, 404]))
    assert braked.stats.get_value("kremlin/refusals") == 2


def test_brake_pauses_the_crawl_once_after_consecutive_refusals(braked):
    asyncio.run(refusals(brake_of(braked), [403, 429]))
    assert braked.engine.calls == ["pause", "unpause"]
    assert braked.stats.get_value("kremlin/brake/pauses") == 1
    assert run_of(braked).stopping is None
    assert errors(braked) == []


def test_brake_stops_the_run_as_blocked_when_refusals_go_on_after_the_pause(braked):
    brake = brake_of(braked)
    recorder = FetchRecorderMiddleware.from_crawler(braked)
    asyncio.run(refusals(brake, [403, 403, 403, 429], meta=event_meta(), recorder=recorder))
    assert run_of(braked).stopping == "blocked"
    assert braked.engine.calls == ["pause", "unpause", ("close", "blocked")]
    assert errors(braked) == [
        {
            "run_id": run_of(braked).run_id,
            "url": EVENT_URL,
            "stage": "fetch",
            "reason": "blocked: the site refused 2 consecutive requests after a 0.0 s pause "
            f"(last: HTTP 429 for {EVENT_URL}); the run stopped: rerun later to resume",
            "status": 429,
            "fetch_id": 4,
        }
    ]


def test_brake_stops_retries_of_the_answer_that_blocked_the_run(braked):
    *_, last = asyncio.run(refusals(brake_of(braked), [403, 403, 403, 403]))
    assert last.meta["dont_retry"] is True


def test_brake_ignores_answers_to_requests_sent_before_the_pause(braked):
    brake = brake_of(braked)

    async def scenario():
        early = [await send(brake) for _ in range(5)]
        for request in early:  # two pause the crawl; three arrive after the pause
            await answer(brake, request, 403)

    asyncio.run(scenario())
    assert braked.engine.calls == ["pause", "unpause"]
    assert run_of(braked).stopping is None


def test_brake_is_rearmed_by_an_answer_below_400(braked):
    asyncio.run(refusals(brake_of(braked), [403, 200, 403, 304, 403]))
    assert braked.engine.calls == []


def test_brake_an_answer_of_404_neither_counts_nor_rearms(braked):
    asyncio.run(refusals(brake_of(braked), [403, 404, 403]))
    assert braked.engine.calls == ["pause", "unpause"]


def test_brake_rearmed_after_the_pause_pauses_again(braked):
    asyncio.run(refusals(brake_of(braked), [403, 403, 200, 403, 403]))
    assert braked.engine.calls == ["pause", "unpause", "pause", "unpause"]
    assert run_of(braked).stopping is None


def test_brake_without_a_pause_stops_at_the_limit(crawler_for):
    crawler = crawler_for(UrlsSpider, KREMLIN_BRAKE_REFUSALS=2, KREMLIN_BRAKE_PAUSE=0)
    open_run(crawler)
    crawler.engine = EngineStub(crawler.spider)
    asyncio.run(refusals(brake_of(crawler), [429, 403]))
    assert crawler.engine.calls == [("close", "blocked")]
    assert [e["reason"] for e in errors(crawler)] == [
        f"blocked: the site refused 2 consecutive requests (last: HTTP 403 for {EVENT_URL}); "
        "the run stopped: rerun later to resume"
    ]


def test_brake_with_a_limit_of_zero_never_brakes(crawler_for):
    crawler = crawler_for(UrlsSpider, KREMLIN_BRAKE_REFUSALS=0)
    open_run(crawler)
    crawler.engine = EngineStub(crawler.spider)
    asyncio.run(refusals(brake_of(crawler), [403] * 6))
    assert crawler.engine.calls == []
    assert run_of(crawler).stopping is None


def listing_meta(retry_times: int) -> dict:
    return {Meta.KIND: "listing", Meta.LANG: "en", "retry_times": retry_times}


def test_brake_stops_the_run_when_a_listing_is_refused_on_its_last_attempt(braked):
    # RETRY_TIMES is 3: the fourth attempt (retry_times 3) is the last.
    asyncio.run(refusals(brake_of(braked), [403], meta=listing_meta(3)))
    assert braked.engine.calls == [("close", "blocked")]
    assert [e["reason"] for e in errors(braked)] == [
        f"blocked: the listing {EVENT_URL} was refused (HTTP 403) on every attempt; the walk "
        "cannot go on, so the run stopped: rerun later to resume"
    ]


def test_brake_lets_a_refused_listing_be_retried(braked):
    [request] = asyncio.run(refusals(brake_of(braked), [403], meta=listing_meta(1)))
    assert braked.engine.calls == []
    assert "dont_retry" not in request.meta


def stopped(crawler, then):
    """`then()` awaited once the run was stopped (as 'blocked', with an engine stub)."""
    crawler.engine = EngineStub(crawler.spider)

    async def scenario():
        run_of(crawler).stop("blocked", "refused")
        return await then()

    return asyncio.run(scenario())


def test_brake_marks_answers_not_to_be_retried_once_the_run_is_stopping(crawler):
    [request] = stopped(crawler, lambda: refusals(brake_of(crawler), [503]))
    assert request.meta["dont_retry"] is True


def test_brake_without_a_run_closes_the_spider_itself(crawler_for):
    crawler = crawler_for(
        UrlsSpider, KREMLIN_DB="", KREMLIN_BRAKE_REFUSALS=1, KREMLIN_BRAKE_PAUSE=0
    )
    crawler.engine = EngineStub()
    brake = brake_of(crawler)
    asyncio.run(refusals(brake, [403]))
    assert crawler.engine.calls == [("close", "blocked")]
    assert crawler.stats.get_value("kremlin/blocked") is True


# -- BackoffRetryMiddleware -----------------------------------------------------------------


def retry_of(crawler) -> BackoffRetryMiddleware:
    return BackoffRetryMiddleware.from_crawler(crawler)


@pytest.fixture(scope="module")
def slow_backoff():
    """Backoff as configured for the live site: 5 s doubled per attempt, at most 300 s."""
    settings = {"KREMLIN_RETRY_BACKOFF_BASE": 5, "KREMLIN_RETRY_BACKOFF_MAX": 300}
    return retry_of(get_crawler(UrlsSpider, settings))


@pytest.fixture
def retrying(crawler_for):
    """A `urls` crawl whose retries wait a millisecond or so; its run is not opened (retries
    need no database)."""
    crawler = crawler_for(UrlsSpider)
    spider_for(crawler)
    return crawler


def test_backoff_doubles_with_each_attempt(slow_backoff):
    delays = [slow_backoff.delay_for(Request(EVENT_URL, meta={"retry_times": n})) for n in range(4)]
    assert delays == [5, 10, 20, 40]


@pytest.mark.parametrize(("retry_after", "delay"), [("120", 120), ("1", 5), ("3600", 300)])
def test_backoff_honours_retry_after_up_to_the_maximum(slow_backoff, retry_after, delay):
    request = Request(EVENT_URL)
    response = Response(EVENT_URL, status=429, headers={"Retry-After": retry_after})
    assert slow_backoff.delay_for(request, response) == delay


def test_backoff_is_capped_at_the_maximum(slow_backoff):
    assert slow_backoff.delay_for(Request(EVENT_URL, meta={"retry_times": 10})) == 300


def test_backoff_retries_a_server_error(retrying):
    request = Request(EVENT_URL, meta=event_meta())
    response = Response(EVENT_URL, status=503, request=request)
    retry = asyncio.run(retry_of(retrying).process_response(request, response))
    assert isinstance(retry, Request)
    assert (retry.url, retry.meta["retry_times"], retry.dont_filter) == (EVENT_URL, 1, True)
    assert run_of(retrying).retries_pending == {EVENT_URL: retry}
    assert retrying.stats.get_value("retry/count") == 1


@pytest.mark.parametrize("status", [200, 304, 404])
def test_backoff_returns_other_answers(retrying, status):
    request = Request(EVENT_URL, meta=event_meta())
    response = Response(EVENT_URL, status=status, request=request)
    assert asyncio.run(retry_of(retrying).process_response(request, response)) is response


def test_backoff_respects_dont_retry(retrying):
    request = Request(EVENT_URL, meta=event_meta(dont_retry=True))
    response = Response(EVENT_URL, status=503, request=request)
    assert asyncio.run(retry_of(retrying).process_response(request, response)) is response


def test_backoff_gives_up_after_the_retries(retrying):
    request = Request(EVENT_URL, meta=event_meta(retry_times=3))
    response = Response(EVENT_URL, status=503, request=request)
    assert asyncio.run(retry_of(retrying).process_response(request, response)) is response
    assert retrying.stats.get_value("retry/max_reached") == 1
    assert run_of(retrying).retries_pending == {}


def test_backoff_does_not_retry_once_the_run_is_stopping(retrying):
    request = Request(EVENT_URL, meta=event_meta())
    response = Response(EVENT_URL, status=503, request=request)
    middleware = retry_of(retrying)
    assert stopped(retrying, lambda: middleware.process_response(request, response)) is response
    assert run_of(retrying).retries_pending == {}


def test_backoff_wait_ends_when_the_run_stops(crawler_for):
    crawler = crawler_for(UrlsSpider, KREMLIN_RETRY_BACKOFF_BASE=60, KREMLIN_RETRY_BACKOFF_MAX=60)
    spider_for(crawler)
    run = run_of(crawler)
    crawler.engine = EngineStub(crawler.spider)
    request = Request(EVENT_URL, meta=event_meta())
    response = Response(EVENT_URL, status=503, request=request)

    async def scenario():
        waiting = asyncio.ensure_future(retry_of(crawler).process_response(request, response))
        await asyncio.sleep(0)
        run.stop("blocked", "refused")
        return await asyncio.wait_for(waiting, timeout=10)

    assert asyncio.run(scenario()) is response


def test_backoff_retries_a_transport_error(retrying):
    request = Request(EVENT_URL, meta=event_meta())
    exception = DownloadTimeoutError("took longer than 60.0 seconds")
    retry = asyncio.run(retry_of(retrying).process_exception(request, exception))
    assert (retry.url, retry.meta["retry_times"]) == (EVENT_URL, 1)
    assert run_of(retrying).retries_pending == {EVENT_URL: retry}


def test_backoff_leaves_other_exceptions_alone(retrying):
    request = Request(EVENT_URL, meta=event_meta())
    assert asyncio.run(retry_of(retrying).process_exception(request, ValueError("x"))) is None


def test_backoff_forgets_a_retry_once_it_is_sent(retrying):
    middleware = retry_of(retrying)
    request = Request(EVENT_URL, meta=event_meta())
    response = Response(EVENT_URL, status=503, request=request)
    retry = asyncio.run(middleware.process_response(request, response))
    assert middleware.process_request(retry) is None
    assert run_of(retrying).retries_pending == {}


# -- helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"120", 120.0),
        ("0", 0.0),
        (b" 30 ", 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: no wait
        (None, None),
        (b"", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_retry_after_seconds(value, seconds):
    assert retry_after_seconds(value) == seconds


def test_retry_after_seconds_from_a_date_to_come():
    when = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    seconds = retry_after_seconds(email.utils.format_datetime(when, usegmt=True))
    assert 7000 < seconds <= 7200


@pytest.mark.parametrize(
    ("exception", "text"),
    [
        (ValueError("boom"), "boom"),
        (
            ResponseDataLossError(),
            "the connection closed before the whole body (Content-Length) arrived",
        ),
        (DownloadCancelledError(), "the body is larger than DOWNLOAD_MAXSIZE"),
        (ConnectionResetError(), "(no message)"),
    ],
)
def test_exception_text(exception, text):
    assert exception_text(exception) == text


def test_fetch_rows_count_once_per_exchange(crawler, recorder):
    """Answers and transport errors alike: one row each, none for a request never sent."""
    response = response_for(EVENT_URL, PAGE, meta=event_meta())
    recorder.process_response(response.request, response)
    recorder.process_exception(Request(LISTING_URL), DownloadTimeoutError("late"))
    recorder.process_exception(Request("http://example.org/"), IgnoreRequest("offsite"))
    assert count_rows(run_of(crawler).db, "fetches") == 2
    assert crawler.stats.get_value("kremlin/fetches") == 2


# -- the hosts guard and the Wayback ---------------------------------------------------------


def guard_for(crawler_for, source: str):
    crawler = crawler_for(UrlsSpider)
    spider_for(crawler, source=source)
    return KremlinHostsOnlyMiddleware.from_crawler(crawler)


WAYBACK_CAPTURE = "http://web.archive.org/web/20200823064150id_/" + EVENT_URL


def test_the_guard_keeps_a_site_run_off_the_wayback(crawler_for):
    guard = guard_for(crawler_for, "site")
    assert guard.process_request(Request(EVENT_URL)) is None
    with pytest.raises(IgnoreRequest, match="offsite"):
        guard.process_request(Request(WAYBACK_CAPTURE))


def test_the_guard_keeps_a_wayback_run_off_the_site(crawler_for):
    guard = guard_for(crawler_for, "wayback")
    assert guard.process_request(Request(WAYBACK_CAPTURE)) is None
    with pytest.raises(IgnoreRequest, match="reads only the Internet Archive"):
        guard.process_request(Request(EVENT_URL))


def test_the_guard_keeps_an_auto_run_off_a_site_found_unusable(crawler_for):
    guard = guard_for(crawler_for, "auto")
    assert guard.process_request(Request(EVENT_URL)) is None
    assert guard.process_request(Request(WAYBACK_CAPTURE)) is None
    guard.crawler.spider.site_unusable = "the site refused 10 requests"
    with pytest.raises(IgnoreRequest, match="the site is not used any more"):
        guard.process_request(Request(EVENT_URL))
    assert guard.process_request(Request(WAYBACK_CAPTURE)) is None
