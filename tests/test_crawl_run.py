"""crawl_run.py: the run of a crawl as a Scrapy extension, built by `get_crawler` with the
project's settings (database and WARC folder in tmp_path). No engine runs: the tests call
`spider_opened` / `spider_closed` themselves, send the error signals through the crawler's
signal manager, and stand a stub in for the engine where the run closes the spider."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import os
import re
import socket

import pytest
from conftest import (
    EngineStub,
    make_transcript,
    open_run,
    response_for,
    shared_page,
    spider_for,
)
from scrapy import signals
from scrapy.http import Request
from twisted.python.failure import Failure

from kremlin_archive import db as dbmod
from kremlin_archive.crawl_run import CrawlRun, current_run
from kremlin_archive.items import CrawlError
from kremlin_archive.lock import DatabaseLocked, RunLock
from kremlin_archive.request_meta import Meta
from kremlin_archive.spiders.kremlin import KremlinSpider
from kremlin_archive.spiders.urls import UrlsSpider
from kremlin_archive.warc import WarcWriter

EVENT_URL = "http://en.kremlin.ru/events/president/news/63017"
COPY_URL = "http://en.kremlin.ru/events/president/news/copy/63017"
LISTING_URL = "http://en.kremlin.ru/events/president/news/page/2"
RUN_ID = "20200318T144000Z-unittest"
UTC_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MARCH = {"lang": "en", "since": "2020-03-01", "until": "2020-03-31"}


@pytest.fixture
def crawler(crawler_for):
    """A `kremlin` crawl of March 2020 (en) with a fixed run id; its run not opened yet."""
    crawler = crawler_for(KremlinSpider, KREMLIN_RUN_ID=RUN_ID)
    spider_for(crawler, **MARCH)
    return crawler


@pytest.fixture
def run(crawler) -> CrawlRun:
    return open_run(crawler)


def read(run: CrawlRun, sql: str, params=()) -> list[dict]:
    """Rows of the run's database, read on a connection of their own (the run's own is closed
    once the run is)."""
    database = dbmod.connect(run.db_path)
    try:
        return list(database.query(sql, params))
    finally:
        database.close()


def run_row(run: CrawlRun) -> dict:
    [row] = read(run, "SELECT * FROM runs WHERE id = ?", [run.run_id])
    return row


def errors(run: CrawlRun) -> list[dict]:
    """The run's `errors` rows without their id and time."""
    return [
        {k: v for k, v in row.items() if k not in ("id", "at")}
        for row in read(run, "SELECT * FROM errors ORDER BY id")
    ]


def error(url, stage, reason, status=None, fetch_id=None) -> dict:
    return {
        "run_id": RUN_ID, "url": url, "stage": stage, "reason": reason, "status": status,
        "fetch_id": fetch_id,
    }  # fmt: skip


def record_fetch(run: CrawlRun, url: str = EVENT_URL, status: int | None = 200) -> int:
    """A `fetches` row of this run (an error row may point at it)."""
    return dbmod.record_fetch(
        run.db, {"run_id": run.run_id, "url": url, "status": status, "fetched_at": "t"}
    )


def set_stats(crawler, **values) -> None:
    """Crawl stats by their key with '/' written as '__' (kremlin__events__new=1)."""
    for key, value in values.items():
        crawler.stats.set_value(key.replace("__", "/"), value)


def close(run: CrawlRun, reason: str = "finished") -> dict:
    """The run's row once the spider closed for `reason`."""
    run.spider_closed(run.crawler.spider, reason)
    return run_row(run)


# -- the extension ----------------------------------------------------------------------------


def test_no_run_without_a_database(crawler_for):
    assert current_run(crawler_for(KremlinSpider, KREMLIN_DB="")) is None


def test_the_run_opens_nothing_before_the_spider_opens(crawler, tmp_path):
    run = current_run(crawler)
    assert (run.db, run.warc) == (None, None)
    assert not (tmp_path / "kremlin.db").exists()


# -- spider_opened ----------------------------------------------------------------------------


def test_an_opened_run_writes_its_running_row(run):
    row = run_row(run)
    assert UTC_STAMP.match(row.pop("started_at"))
    arguments = json.loads(row.pop("arguments"))
    assert row == {
        "id": RUN_ID,
        "spider": "kremlin",
        "command": "scrapy crawl",
        "finished_at": None,
        "status": "running",
        "finish_reason": None,
        "requests": None,
        "responses": None,
        "events_new": None,
        "events_changed": None,
        "events_unchanged": None,
        "errors": None,
        "counts": None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    given = {"lang": "en", "since": "2020-03-01", "until": "2020-03-31", "mode": "full"}
    assert {k: arguments[k] for k in given} == given


def test_the_run_records_the_spider_arguments_not_what_the_spider_made_of_them(
    crawler_for, tmp_path
):
    url_file = tmp_path / "urls.txt"
    url_file.write_text(f"{EVENT_URL}\n{COPY_URL}\n")
    run = open_run(crawler_for(UrlsSpider), urls_file=str(url_file))
    arguments = json.loads(run_row(run)["arguments"])
    assert arguments["urls_file"] == str(url_file)
    assert set(arguments) <= {"urls", "urls_file", "source"}


def test_the_command_that_started_the_run_is_kept(crawler_for):
    crawler = crawler_for(KremlinSpider, KREMLIN_COMMAND="kremlin-archive crawl --lang en")
    run = open_run(crawler, lang="en")
    assert run_row(run)["command"] == "kremlin-archive crawl --lang en"


def test_an_opened_run_puts_its_id_in_the_stats(run, crawler):
    assert crawler.stats.get_value("kremlin/run_id") == RUN_ID


def test_opening_marks_a_killed_run_interrupted(crawler, tmp_path):
    database = dbmod.open_db(tmp_path / "kremlin.db")
    dbmod.start_run(database, run_id="killed", spider="kremlin", command="crawl", arguments={})
    database.table("runs").update("killed", {"pid": 2**22 + 12345})  # no such process
    database.close()
    run = open_run(crawler)
    [killed] = read(run, "SELECT * FROM runs WHERE id = 'killed'")
    assert (killed["status"], killed["finish_reason"]) == ("interrupted", "killed")


def test_opening_opens_the_warc_writer_in_the_warc_folder(run, tmp_path):
    assert (run.warc.directory, run.warc.run_id) == (tmp_path / "warc", RUN_ID)


def test_warc_can_be_switched_off(crawler_for):
    run = open_run(crawler_for(KremlinSpider, KREMLIN_WARC_ENABLED=False), lang="en")
    assert run.warc is None


def crash_a_warc_file(directory) -> tuple[str, int]:
    """A WARC file left by a killed run: one complete exchange, then the first 500 bytes of a
    record that was being written. Returns (file name, bytes of the partial record)."""
    page = shared_page("en_news_63017.html")
    with WarcWriter(directory, run_id="killed") as writer:
        location, _ = writer.write_exchange(
            url=EVENT_URL, status=200, body=page, fetched_at=dt.datetime.now(dt.UTC)
        )
    partial = gzip.compress(b"WARC/1.1\r\nWARC-Type: response\r\n" + page)[:500]
    with open(directory / location.filename, "ab") as fh:
        fh.write(partial)
    return location.filename, len(partial)


def test_opening_repairs_a_warc_file_left_by_a_killed_run_and_says_so(crawler, tmp_path):
    name, removed = crash_a_warc_file(tmp_path / "warc")
    run = open_run(crawler)
    assert errors(run) == [
        error(
            None,
            "warc",
            f"repaired {name}: removed {removed} bytes of a partial record at its end (left by "
            f"an interrupted run; kept as {name}.removed-tail-*)",
        )
    ]
    assert crawler.stats.get_value("kremlin/warc/repaired_bytes") == removed


# -- spider_closed ----------------------------------------------------------------------------


def test_a_closed_run_is_finished_with_its_counts(run, crawler):
    set_stats(
        crawler,
        downloader__request_count=4,
        downloader__response_count=4,
        downloader__response_status_count__200=3,
        downloader__response_status_count__404=1,
        kremlin__events__listed=3,
        kremlin__events__requested=3,
        kremlin__events__new=1,
        kremlin__events__changed=1,
        kremlin__events__failed=1,
        kremlin__errors=1,
        kremlin__errors__fetch=1,
        kremlin__fetches=4,
        kremlin__field__place__missing=2,
    )
    row = close(run)
    assert UTC_STAMP.match(row.pop("finished_at"))
    counts = json.loads(row.pop("counts"))
    assert {k: row[k] for k in ("status", "finish_reason", "requests", "responses")} == {
        "status": "finished", "finish_reason": "finished", "requests": 4, "responses": 4,
    }  # fmt: skip
    assert {k: row[k] for k in ("events_new", "events_changed", "events_unchanged", "errors")} == {
        "events_new": 1, "events_changed": 1, "events_unchanged": 0, "errors": 1,
    }  # fmt: skip
    assert counts == {
        "requests": 4,
        "responses": 4,
        "events_listed": 3,
        "events_requested": 3,
        "events_new": 1,
        "events_changed": 1,
        "events_unchanged": 0,
        "events_not_modified": 0,
        "events_failed": 1,
        "events_from_wayback": 0,
        "events_unfinished": 0,
        "errors": 1,
        "fetches": 4,
        "errors/fetch": 1,
        "field/place/missing": 2,
        "response_status_count/200": 3,
        "response_status_count/404": 1,
        # the window (none: the stats above were set by hand, no event was asked for)
        "ids_window": 0,
        "ids_unaccounted": 0,
        "window_short": None,
        "gaps": {},
        "listings_untrusted": None,
        # the run stored events: persons settled (an empty archive: nothing to resolve)
        "persons": {"events": 0, "labels": 0, "turns_changed": 0},
    }


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("finished", "finished"),
        ("blocked", "blocked"),
        ("shutdown", "interrupted"),
        ("closespider_timeout", "failed"),
        ("cancelled", "failed"),
    ],
)
def test_the_close_reason_gives_the_run_its_status(run, reason, status):
    row = close(run, reason)
    assert (row["status"], row["finish_reason"]) == (status, reason)


def test_a_finished_run_whose_window_is_not_accounted_for_is_incomplete(run, crawler):
    """Three ids of the window: one stored, one absent (404), one failed (503) -- the last
    keeps the run from being finished, and the counts say which."""
    spider = crawler.spider
    for kremlin_id in (63016, 63017, 63018):
        spider._window["en"].add(kremlin_id)
    dbmod.save_transcript(
        run.db,
        make_transcript(
            kremlin_id=63017,
            lang="en",
            url="http://en.kremlin.ru/events/president/news/63017",
            status=200,
        ),
    )
    dbmod.note_coverage(run.db, "en-63016", "absent", answer="not found (HTTP 404)")
    dbmod.note_coverage(run.db, "en-63018", "failed", answer="HTTP 503 after 3 retries")
    row = close(run)
    counts = json.loads(row["counts"])
    assert row["status"] == "incomplete"
    assert (counts["ids_window"], counts["ids_unaccounted"]) == (3, 1)
    assert counts["gaps"] == {"en": {"failed": "63018"}}


def test_a_window_the_listings_could_not_give_is_incomplete(run, crawler):
    spider = crawler.spider
    spider.discover = "listings"
    spider.untrusted = f"the listing walk could not get past {LISTING_URL}"
    row = close(run)
    assert row["status"] == "incomplete"
    assert json.loads(row["counts"])["window_short"].startswith("listings are not trusted")


def test_counts_add_up_with_the_events_a_stopped_run_never_answered(run, crawler):
    set_stats(
        crawler,
        kremlin__events__requested=6,
        kremlin__events__new=1,
        kremlin__events__changed=1,
        kremlin__events__unchanged=1,
        kremlin__events__not_modified=1,
        kremlin__events__failed=1,
    )
    counts = json.loads(close(run, "shutdown")["counts"])
    assert counts["events_unfinished"] == 1
    assert errors(run) == []


def test_a_finished_run_with_unanswered_events_says_so(run, crawler):
    set_stats(crawler, kremlin__events__requested=3, kremlin__events__new=1)
    row = close(run)
    assert errors(run) == [
        error(
            None,
            "fetch",
            "2 requested event page(s) were neither stored nor recorded as failed (dropped by "
            "the scheduler?)",
        )
    ]
    counts = json.loads(row["counts"])
    assert (row["errors"], counts["errors/fetch"], counts["events_unfinished"]) == (1, 1, 2)


def test_closing_records_unsent_retries_so_that_counts_add_up(run, crawler):
    set_stats(crawler, kremlin__events__requested=1)
    fetch_id = record_fetch(run, status=503)
    run.retries_pending[EVENT_URL] = Request(
        EVENT_URL,
        meta={
            Meta.KIND: "event",
            Meta.SOURCE_URL: COPY_URL,
            Meta.FETCH: {"id": fetch_id, "status": 503},
            "retry_times": 1,
        },
    )
    row = close(run, "blocked")
    counts = json.loads(row["counts"])
    assert (counts["events_failed"], counts["events_unfinished"], row["errors"]) == (1, 0, 1)


def test_closing_closes_the_database_and_releases_the_lock(run, tmp_path):
    close(run)
    with RunLock(tmp_path / "kremlin.db"):
        pass  # free again
    with pytest.raises(Exception, match="closed database"):
        run.db.execute("SELECT 1")


def test_a_run_that_never_opened_releases_its_lock_on_closing(crawler, tmp_path):
    run = current_run(crawler)
    run.spider_closed(crawler.spider, "finished")
    with RunLock(tmp_path / "kremlin.db"):
        pass
    assert not (tmp_path / "kremlin.db").exists()


def test_the_lock_is_released_even_when_closing_fails(run, tmp_path):
    run.db.close()  # finishing the run row now raises
    with pytest.raises(Exception, match="closed database"):
        run.spider_closed(run.crawler.spider, "finished")
    with RunLock(tmp_path / "kremlin.db"):
        pass


# -- the lock -----------------------------------------------------------------------------------


def test_a_second_run_on_the_same_database_is_refused(crawler, crawler_for, tmp_path):
    with pytest.raises(DatabaseLocked) as refused:
        crawler_for(KremlinSpider)
    assert str(refused.value) == (
        f"another run is using this database (pid {os.getpid()}); lock file "
        f"{tmp_path / 'kremlin.db.lock'}"
    )


def test_a_run_whose_caller_holds_the_lock_takes_none(crawler_for, tmp_path):
    with RunLock(tmp_path / "kremlin.db"):
        crawler = crawler_for(KremlinSpider, KREMLIN_LOCK_HELD=True)
        assert current_run(crawler).lock is None


def test_the_lock_can_be_switched_off(crawler, crawler_for):
    assert current_run(crawler_for(KremlinSpider, KREMLIN_LOCK=False)).lock is None


# -- record_error --------------------------------------------------------------------------------


def test_record_error_writes_a_row_and_counts_it(run, crawler):
    fetch_id = record_fetch(run)
    run.record_error(
        url=EVENT_URL, stage="parse", reason="not-found-page: …", status=200, fetch_id=fetch_id
    )
    assert errors(run) == [error(EVENT_URL, "parse", "not-found-page: …", 200, fetch_id)]
    assert (
        crawler.stats.get_value("kremlin/errors"),
        crawler.stats.get_value("kremlin/errors/parse"),
    ) == (1, 1)


def test_record_error_before_the_run_is_opened_only_counts(crawler, tmp_path):
    current_run(crawler).record_error(url=None, stage="input", reason="not an event page")
    assert crawler.stats.get_value("kremlin/errors/input") == 1
    assert not (tmp_path / "kremlin.db").exists()


# -- stop() and wait() -------------------------------------------------------------------------


def stop(run: CrawlRun, *reasons: str, engine_spider=True) -> EngineStub:
    """stop(reason, …) called for each reason on a running crawl (an engine stub that has the
    spider open, or not); the stub after any close it was asked for."""
    engine = EngineStub(run.crawler.spider if engine_spider else None)
    run.crawler.engine = engine

    async def scenario():
        for reason in reasons:
            run.stop(reason, f"the site refused 10 consecutive requests ({reason})", status=403)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    return engine


def test_stop_records_why_and_closes_the_spider(run, crawler):
    engine = stop(run, "blocked")
    assert run.stopping == "blocked"
    assert engine.calls == [("close", "blocked")]
    assert errors(run) == [
        error(None, "fetch", "blocked: the site refused 10 consecutive requests (blocked)", 403)
    ]
    assert crawler.stats.get_value("kremlin/blocked") is True


def test_stop_happens_once(run):
    engine = stop(run, "blocked", "shutdown")
    assert (run.stopping, engine.calls, len(errors(run))) == ("blocked", [("close", "blocked")], 1)


def test_stop_after_the_spider_closed_only_records(run):
    engine = stop(run, "blocked", engine_spider=False)
    assert (engine.calls, len(errors(run))) == ([], 1)


def test_wait_sleeps_while_the_run_goes_on(run):
    assert asyncio.run(run.wait(0.001)) is True


def test_wait_returns_at_once_when_the_run_is_stopping(run):
    stop(run, "blocked")
    assert asyncio.run(asyncio.wait_for(run.wait(60), timeout=10)) is False


def test_wait_ends_early_when_the_run_stops(run):
    run.crawler.engine = EngineStub(run.crawler.spider)

    async def scenario():
        waiting = asyncio.ensure_future(run.wait(60))
        await asyncio.sleep(0)
        run.stop("blocked", "refused")
        return await asyncio.wait_for(waiting, timeout=10)

    assert asyncio.run(scenario()) is False


# -- errors that would otherwise stay in the log -----------------------------------------------


def event_response(run: CrawlRun, fetch_id: int):
    meta = {
        Meta.KIND: "event",
        Meta.EVENT_ID: "en-63017",
        Meta.SOURCE_URL: COPY_URL,
        Meta.FETCH: {"id": fetch_id, "status": 200},
    }
    return response_for(EVENT_URL, "en_news_63017.html", meta=meta)


def test_a_callback_that_raises_becomes_a_parse_error(run, crawler):
    fetch_id = record_fetch(run)
    crawler.signals.send_catch_log(
        signals.spider_error,
        failure=Failure(ValueError("boom")),
        response=event_response(run, fetch_id),
        spider=crawler.spider,
    )
    assert errors(run) == [error(COPY_URL, "parse", "unexpected ValueError: boom", 200, fetch_id)]
    assert crawler.stats.get_value("kremlin/events/failed") == 1


def test_a_listing_callback_that_raises_is_no_failed_event(run, crawler):
    meta = {Meta.KIND: "listing", Meta.LANG: "en"}
    response = response_for(LISTING_URL, "en_list_news_page2.html", meta=meta)
    crawler.signals.send_catch_log(
        signals.spider_error,
        failure=Failure(KeyError("kremlin_ref")),
        response=response,
        spider=crawler.spider,
    )
    assert errors(run) == [error(LISTING_URL, "parse", "unexpected KeyError: 'kremlin_ref'", 200)]
    assert crawler.stats.get_value("kremlin/events/failed") is None


def test_a_pipeline_that_raises_becomes_a_store_error(run, crawler):
    fetch_id = record_fetch(run, "http://kremlin.ru/events/president/news/66419")
    item = make_transcript(fetch_id=fetch_id)
    crawler.signals.send_catch_log(
        signals.item_error,
        item=item,
        response=None,
        spider=crawler.spider,
        failure=Failure(OSError("disk full")),
    )
    assert errors(run) == [
        error(item.url, "store", "unexpected OSError: disk full", None, fetch_id)
    ]
    assert crawler.stats.get_value("kremlin/events/failed") == 1


def test_a_pipeline_error_on_a_crawl_error_is_no_failed_event(run, crawler):
    item = CrawlError(url=LISTING_URL, stage="fetch", reason="not found (HTTP 404)", status=404)
    crawler.signals.send_catch_log(
        signals.item_error,
        item=item,
        response=None,
        spider=crawler.spider,
        failure=Failure(OSError("disk full")),
    )
    assert errors(run) == [error(LISTING_URL, "store", "unexpected OSError: disk full")]
    assert crawler.stats.get_value("kremlin/events/failed") is None


# -- retries the run stopped before sending ----------------------------------------------------


def pending(run: CrawlRun, url: str, kind: str, fetch: dict, source_url: str | None = None):
    meta = {Meta.KIND: kind, Meta.FETCH: fetch, "retry_times": 1}
    if source_url:
        meta[Meta.SOURCE_URL] = source_url
    run.retries_pending[url] = Request(url, meta=meta)


def test_an_unsent_retry_of_an_event_becomes_its_failure(run, crawler):
    fetch_id = record_fetch(run, status=503)
    pending(run, EVENT_URL, "event", {"id": fetch_id, "status": 503}, source_url=COPY_URL)
    run.record_unsent_retries("blocked")
    assert errors(run) == [
        error(
            COPY_URL,
            "fetch",
            "HTTP 503; not retried: the run stopped (blocked) first",
            503,
            fetch_id,
        )
    ]
    assert crawler.stats.get_value("kremlin/events/failed") == 1
    assert run.retries_pending == {}


def test_an_unsent_retry_after_a_transport_error_says_what_failed(run):
    fetch_id = record_fetch(run, status=None)
    fetch = {"id": fetch_id, "error": "DownloadTimeoutError: took longer than 60.0 seconds."}
    pending(run, EVENT_URL, "event", fetch)
    run.record_unsent_retries("shutdown")
    assert [e["reason"] for e in errors(run)] == [
        "DownloadTimeoutError: took longer than 60.0 seconds.; not retried: the run stopped "
        "(shutdown) first"
    ]


def test_an_unsent_retry_of_a_listing_is_no_failed_event(run, crawler):
    fetch_id = record_fetch(run, LISTING_URL, status=403)
    pending(run, LISTING_URL, "listing", {"id": fetch_id, "status": 403})
    run.record_unsent_retries("blocked")
    assert errors(run) == [
        error(
            LISTING_URL,
            "fetch",
            "refused by the site (HTTP 403); not retried: the run stopped (blocked) first",
            403,
            fetch_id,
        )
    ]
    assert crawler.stats.get_value("kremlin/events/failed") is None
