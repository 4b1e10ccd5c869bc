"""Small single-purpose item pipelines, in spaced order (settings.ITEM_PIPELINES):

200 ValidatePipeline  — required fields present and well-formed (`items.validation_problems`);
                        problems counted in stats as `kremlin/field/<name>/missing|invalid`; an
                        invalid record is dropped and recorded in `errors` (stage 'validate'),
                        never stored half-right.
800 StorePipeline     — upsert through db.py (one transaction per event, on the run's writer:
                        the item waits for it off the event loop) and `errors` rows for
                        CrawlError items (an event's CrawlError is counted as failed where it is
                        made, in spiders/base.py: listing and input errors are not events).
900 CoveragePipeline  — the coverage ledger: what errors, redirects and listings say of each
                        (language, id).

Records arrive with their provenance set (`Transcript.set_provenance`, in the spider).
"""

from __future__ import annotations

from scrapy.exceptions import DropItem

from . import db as dbmod
from .crawl_run import CrawlRun, current_run, resolved
from .items import CrawlError, Listed, Observed, Transcript, coverage_state, validation_problems

# Optional fields whose absence is counted (not an error): a place is absent on calls and
# statements, a lead on about half the pages.
COUNTED_OPTIONAL_FIELDS = ("lead", "place", "paragraphs", "tags", "utterances")


def _threaded(run) -> bool:
    """Whether the run writes on its writer thread (then a pipeline answers with a coroutine
    that awaits the write); a stand-in for the run in tests may not have one."""
    return getattr(run, "threaded", False)


async def _write(run, fn, *args, **kwargs):
    """`fn(db, ...)` on the run's writer, or in place on `run.db` when it writes in place."""
    if not _threaded(run):
        return fn(run.db, *args, **kwargs)
    return await run.call(fn, *args, **kwargs)


class _RunPipeline:
    def __init__(self, crawler):
        self.crawler = crawler
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    @property
    def run(self) -> CrawlRun:
        run = current_run(self.crawler)
        if run is None:
            raise RuntimeError("the CrawlRun extension is not enabled")
        return run


class ValidatePipeline(_RunPipeline):
    def process_item(self, item):
        if not isinstance(item, Transcript):
            return item
        for name in COUNTED_OPTIONAL_FIELDS:
            if not getattr(item, name):
                self.stats.inc_value(f"kremlin/field/{name}/missing")
        problems = validation_problems(item)
        if not problems:
            return item
        for problem in problems:
            self.stats.inc_value(f"kremlin/field/{problem}")
        self.stats.inc_value("kremlin/events/failed")
        reason = "invalid record: " + ", ".join(problems)
        self.run.record_error(
            url=item.url or item.source_url, stage="validate", reason=reason, fetch_id=item.fetch_id
        )
        raise DropItem(reason)


class StorePipeline(_RunPipeline):
    def process_item(self, item):
        run = self.run
        if not isinstance(item, Transcript):
            return self._record(run, item)
        coro = self._store(run, item)
        return coro if _threaded(run) else resolved(coro)

    def _record(self, run, item):
        if isinstance(item, CrawlError):
            run.record_error(
                url=item.url,
                stage=item.stage,
                reason=item.reason,
                status=item.status,
                fetch_id=item.fetch_id,
            )
        return item

    async def _store(self, run, item: Transcript):
        try:
            result = await _write(run, dbmod.save_transcript, item, index=run.person_index)
        except Exception as exc:  # the transaction rolled back: nothing half-written
            self.stats.inc_value("kremlin/events/failed")
            run.record_error(url=item.url, stage="store", reason=repr(exc), fetch_id=item.fetch_id)
            raise DropItem(f"could not store {item.event_id}: {exc!r}") from exc
        self.stats.inc_value(f"kremlin/events/{result.outcome}")
        if item.source == "wayback":
            self.stats.inc_value("kremlin/events/from_wayback")
        return item


class CoveragePipeline(_RunPipeline):
    """What each answer says about its event in the coverage ledger (`db.note_coverage`):
    an event's error (absent, not an event, refused, failed: `items.coverage_state`), an
    address that answers with another event, and the events listings and the feed name.
    Stored events are noted by `db.save_transcript` itself, in the event's transaction."""

    def process_item(self, item):
        run = self.run
        if isinstance(item, CrawlError) and item.event_id:
            state = coverage_state(item.stage, item.status, item.reason, item.source)
            self.stats.inc_value(f"kremlin/coverage/{state}")
            run.post(
                dbmod.note_coverage, item.event_id, state, fetch_id=item.fetch_id,
                run_id=run.run_id, answer=item.reason[:200],
            )  # fmt: skip
        elif isinstance(item, Observed):
            self.stats.inc_value(f"kremlin/coverage/{item.state}")
            run.post(
                dbmod.note_coverage, item.event_id, item.state, fetch_id=item.fetch_id,
                run_id=run.run_id, answer=item.answer,
            )  # fmt: skip
        elif isinstance(item, Listed):
            coro = self._listed(run, item)
            return coro if _threaded(run) else resolved(coro)
        return item

    async def _listed(self, run, item: Listed):
        new = await _write(
            run, dbmod.note_listed, item.lang, item.items, fetch_id=item.fetch_id, run_id=run.run_id
        )
        self.stats.inc_value("kremlin/coverage/listed", new)
        return item
