"""pipelines.py: ValidatePipeline and StorePipeline built `from_crawler` (a crawler from
`get_crawler` with the project's settings, its run opened on a database in tmp_path), fed
records parsed from real pages by the spider's own callback. Mutated pages through the same
pipelines: test_fuzz_pipeline.py."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from conftest import count_rows, open_run, response_for
from scrapy.exceptions import DropItem
from scrapy.pipelines import ItemPipelineManager

from kremlin_archive import urls
from kremlin_archive.crawl_run import current_run
from kremlin_archive.items import CrawlError, Tag
from kremlin_archive.middlewares import FetchRecorderMiddleware
from kremlin_archive.pipelines import StorePipeline, ValidatePipeline
from kremlin_archive.spiders.urls import UrlsSpider

EVENT_URL = "http://en.kremlin.ru/events/president/news/63017"


@pytest.fixture
def crawler(crawler_for):
    """A `urls` crawl with its run opened."""
    crawler = crawler_for(UrlsSpider)
    open_run(crawler)
    return crawler


@pytest.fixture
def run(crawler):
    return current_run(crawler)


@pytest.fixture
def transcript(crawler):
    """63017 ("Vladimir Putin arrived in Crimea": no lead, no place) as the spider yields it
    from a real answer recorded by the fetch recorder."""
    spider = crawler.spider
    request = spider.event_request(urls.event_ref("en", 63017))
    response = response_for(EVENT_URL, "en_news_63017.html").replace(request=request)
    FetchRecorderMiddleware.from_crawler(crawler).process_response(request, response)
    [item] = spider.parse_event(response)
    return item


def field_stats(crawler) -> dict:
    return {k: v for k, v in crawler.stats.get_stats().items() if k.startswith("kremlin/field/")}


def errors(run) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k not in ("id", "at")}
        for row in run.db.query("SELECT * FROM errors ORDER BY id")
    ]


# -- ValidatePipeline -----------------------------------------------------------------------------


def test_validate_passes_a_valid_record_on(crawler, transcript, run):
    assert ValidatePipeline.from_crawler(crawler).process_item(transcript) is transcript
    assert errors(run) == []


def test_validate_counts_the_optional_fields_a_record_lacks(crawler, transcript):
    ValidatePipeline.from_crawler(crawler).process_item(transcript)
    assert field_stats(crawler) == {
        "kremlin/field/lead/missing": 1,
        "kremlin/field/place/missing": 1,
    }


def test_validate_drops_an_invalid_record_and_records_why(crawler, transcript, run):
    broken = dataclasses.replace(transcript, title="", published_at="2020-03-18T17:40:00")
    with pytest.raises(DropItem) as dropped:
        ValidatePipeline.from_crawler(crawler).process_item(broken)
    assert str(dropped.value) == "invalid record: title/missing, published_at/invalid"
    assert errors(run) == [
        {
            "run_id": run.run_id,
            "url": EVENT_URL,
            "stage": "validate",
            "reason": "invalid record: title/missing, published_at/invalid",
            "status": None,
            "fetch_id": transcript.fetch_id,
        }
    ]
    assert field_stats(crawler) == {
        "kremlin/field/lead/missing": 1,
        "kremlin/field/place/missing": 1,
        "kremlin/field/title/missing": 1,
        "kremlin/field/published_at/invalid": 1,
    }
    assert crawler.stats.get_value("kremlin/events/failed") == 1


def test_validate_leaves_crawl_errors_alone(crawler):
    item = CrawlError(url=EVENT_URL, stage="fetch", reason="not found (HTTP 404)", status=404)
    assert ValidatePipeline.from_crawler(crawler).process_item(item) is item
    assert field_stats(crawler) == {}


# -- StorePipeline ------------------------------------------------------------------------------


def test_store_saves_a_new_event(crawler, transcript, run):
    assert StorePipeline.from_crawler(crawler).process_item(transcript) is transcript
    row = run.db.table("events").get("en-63017")
    assert {k: row[k] for k in ("title", "published_at", "fetch_id", "source_url", "origin")} == {
        "title": "Vladimir Putin arrived in\xa0Crimea",
        "published_at": "2020-03-18T17:40:00+03:00",
        "fetch_id": transcript.fetch_id,
        "source_url": EVENT_URL,
        "origin": "crawl",
    }
    assert crawler.stats.get_value("kremlin/events/new") == 1


def test_store_counts_a_second_identical_record_as_unchanged(crawler, transcript, run):
    store = StorePipeline.from_crawler(crawler)
    store.process_item(transcript)
    store.process_item(transcript)
    stats = crawler.stats
    assert (stats.get_value("kremlin/events/new"), stats.get_value("kremlin/events/unchanged")) == (
        1, 1,
    )  # fmt: skip
    assert count_rows(run.db, "revisions") == 0


def test_store_keeps_the_previous_content_of_a_changed_event(crawler, transcript, run):
    store = StorePipeline.from_crawler(crawler)
    store.process_item(transcript)
    edited = dataclasses.replace(transcript, title="Vladimir Putin arrived in Sevastopol")
    store.process_item(edited)
    assert crawler.stats.get_value("kremlin/events/changed") == 1
    [revision] = run.db.query("SELECT title, changed_fields FROM revisions")
    assert revision == {
        "title": "Vladimir Putin arrived in\xa0Crimea",
        "changed_fields": '["title"]',
    }


def test_store_records_a_crawl_error(crawler, transcript, run):
    item = CrawlError(
        url=EVENT_URL, stage="fetch", reason="not found (HTTP 404)", status=404,
        fetch_id=transcript.fetch_id,
    )  # fmt: skip
    assert StorePipeline.from_crawler(crawler).process_item(item) is item
    assert errors(run) == [
        {
            "run_id": run.run_id,
            "url": EVENT_URL,
            "stage": "fetch",
            "reason": "not found (HTTP 404)",
            "status": 404,
            "fetch_id": transcript.fetch_id,
        }
    ]
    assert crawler.stats.get_value("kremlin/events/failed") is None  # counted where it is made


def test_store_failing_drops_the_record_and_leaves_nothing_half_written(crawler, transcript, run):
    broken = dataclasses.replace(transcript, tags=[*transcript.tags, Tag("topic", None)])
    with pytest.raises(DropItem) as dropped:
        StorePipeline.from_crawler(crawler).process_item(broken)
    reason = "IntegrityError('NOT NULL constraint failed: tags.name')"
    assert str(dropped.value) == f"could not store en-63017: {reason}"
    assert [count_rows(run.db, t) for t in ("events", "utterances", "event_tags")] == [0, 0, 0]
    assert [(e["stage"], e["reason"], e["fetch_id"]) for e in errors(run)] == [
        ("store", reason, transcript.fetch_id)
    ]
    assert crawler.stats.get_value("kremlin/events/failed") == 1


def test_the_pipelines_need_the_run(crawler_for, transcript):
    crawler = crawler_for(UrlsSpider, KREMLIN_DB="")
    with pytest.raises(RuntimeError, match="the CrawlRun extension is not enabled"):
        StorePipeline.from_crawler(crawler).process_item(transcript)


# -- in the project's order ---------------------------------------------------------------------


def through_pipelines(crawler, item):
    """`item` through the project's ITEM_PIPELINES, in their order, as the scraper sends it."""
    manager = ItemPipelineManager.from_crawler(crawler)
    return asyncio.run(manager.process_item_async(item))


def test_the_project_pipelines_store_a_parsed_page(crawler, transcript, run):
    assert through_pipelines(crawler, transcript) is transcript
    assert count_rows(run.db, "events", "id = ?", ["en-63017"]) == 1


def test_the_project_pipelines_never_store_an_invalid_record(crawler, transcript, run):
    with pytest.raises(DropItem):
        through_pipelines(crawler, dataclasses.replace(transcript, published_at="18.03.2020"))
    assert count_rows(run.db, "events") == 0
    assert [e["stage"] for e in errors(run)] == ["validate"]
