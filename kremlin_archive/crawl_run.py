"""The run of a crawl (`CrawlRun`, a Scrapy extension): its `runs` row, the database connection
and the WARC writer that every other component of the crawl shares (reached with
`current_run(crawler)`), and the run lock (`lock.RunLock`) that keeps one run at a time on a
database. `run_crawl` runs a spider in this process for the command line.

Opened on `spider_opened`, closed on `spider_closed`, where the run row gets its status
(finished | blocked | interrupted | failed) and its counts from the crawl stats.

Writes go off the event loop (`store_writer.StoreWriter`): one writer thread owns the write
connection and the WARC writer and runs every write of the run in the order it was submitted
-- awaited where the caller needs the answer (`await run.call(fn, ...)`: a fetch's id, an
event's outcome), posted where it does not (`run.post(fn, ...)`: `errors` rows, coverage
notes). `run.db` is the event loop's own connection, for reads: reading it first waits until
every write submitted so far is done, so a read sees the run's writes as if they were made in
place. The queue is drained before the run row is finished; if the writer fails, the run
writes what the writer had left, records why and stops as 'failed'. Without a running event
loop (components driven by hand, in unit tests) or with KREMLIN_WRITER_THREAD off, every write
runs in place, on the one connection.

Nothing that goes wrong stays in the log only: a callback that raises (`spider_error`) or a
pipeline that raises (`item_error`) becomes an `errors` row, a partial WARC record left by a
killed run and repaired on open becomes an `errors` row (stage 'warc'), and `stop()` ends a run
cleanly (e.g. 'blocked') with its reason recorded. The counts add up: every requested event is
new, changed, unchanged, not modified, failed, or -- when the run stopped before answering it --
`events_unfinished`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro

from . import db as dbmod
from .discovery import format_id_ranges
from .items import Transcript, coverage_state, http_failure_reason
from .lock import RunLock
from .request_meta import Meta
from .store_writer import StoreWriter

logger = logging.getLogger(__name__)


def current_run(crawler) -> CrawlRun | None:
    """The run of this crawl (None when the extension is not enabled)."""
    return crawler.get_extension(CrawlRun)


def resolved(coro: Coroutine) -> Any:
    """The result of a coroutine that never waits (every write of the run in place): lets a
    component's one async implementation answer synchronously when there is no writer
    thread."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a write in place had to wait")


STATUS_BY_REASON = {
    "finished": "finished",
    "blocked": "blocked",
    "unreachable": "unreachable",
    "shutdown": "interrupted",
}


class CrawlRun:
    def __init__(self, crawler):
        settings = crawler.settings
        if not settings.get("KREMLIN_DB"):
            raise NotConfigured("KREMLIN_DB is not set")
        self.crawler = crawler
        self.db_path = settings.get("KREMLIN_DB")
        self.warc_dir = settings.get("KREMLIN_WARC_DIR")
        self.warc_enabled = settings.getbool("KREMLIN_WARC_ENABLED") and bool(self.warc_dir)
        self.run_id = settings.get("KREMLIN_RUN_ID") or dbmod.new_run_id()
        self.command = settings.get("KREMLIN_COMMAND") or "scrapy crawl"
        self.lock: RunLock | None = None
        if settings.getbool("KREMLIN_LOCK") and not settings.getbool("KREMLIN_LOCK_HELD"):
            # Taken here, before anything is opened, so a second run fails before it fetches.
            self.lock = RunLock(self.db_path).acquire()
        self._db = None
        self._person_index = None
        self.warc = None
        self.writer: StoreWriter | None = None
        self.writer_thread = settings.getbool("KREMLIN_WRITER_THREAD", True)
        self.writer_capacity = settings.getint("KREMLIN_WRITER_QUEUE", 64)
        self.writer_failure: BaseException | None = None
        self._loop_thread: threading.Thread | None = None
        self._closing_run = False
        self.stopping: str | None = None  # the reason, once stop() was called
        # url -> retry Request not sent yet (middlewares.BackoffRetryMiddleware keeps it)
        self.retries_pending: dict[str, Any] = {}
        self._stopped = asyncio.Event()
        self._closing = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.spider_error, signal=signals.spider_error)
        crawler.signals.connect(self.item_error, signal=signals.item_error)
        crawler.signals.connect(self.request_dropped, signal=signals.request_dropped)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    @property
    def person_index(self):
        """The archive's names of persons (db.py), grown by every event the run stores. Read
        when the run first stores an event, not when it opens: its cost grows with the archive
        (every link and page-resolved position), and a refresh that finds nothing new never
        needs it."""
        if self._person_index is None:
            self._person_index = dbmod.person_index(self._db)
        return self._person_index

    # -- lifecycle ------------------------------------------------------------------------

    def spider_opened(self, spider) -> None:
        self._db = dbmod.open_db(self.db_path)
        dbmod.mark_stale_runs(self._db)
        arguments = getattr(spider, "given_arguments", None)
        if arguments is None:  # a spider of another project: its plain public attributes
            arguments = {
                k: v
                for k, v in vars(spider).items()
                if not k.startswith("_") and isinstance(v, str | int | float | bool | None)
            }
            arguments.pop("name", None)
        dbmod.start_run(
            self._db,
            run_id=self.run_id,
            spider=spider.name,
            command=self.command,
            arguments=arguments,
        )
        if self.warc_enabled:
            from .warc import WarcWriter

            identity = dbmod.identity_of(self._db)
            self.warc = WarcWriter(
                self.warc_dir,
                run_id=self.run_id,
                max_file_size=self.crawler.settings.getint("KREMLIN_WARC_MAX_SIZE"),
                # every WARC file names the archive it belongs to (identity.py)
                warcinfo={"kremlin-archive-id": identity["id"]} if identity else None,
            )
            self.warc.open()
            for name, removed in sorted(self.warc.repaired.items()):
                # A run killed while writing left half a record: cut off (bytes kept aside).
                self.crawler.stats.inc_value("kremlin/warc/repaired_bytes", removed)
                self.record_error(
                    url=None,
                    stage="warc",
                    reason=f"repaired {name}: removed {removed} bytes of a partial record at "
                    f"its end (left by an interrupted run; kept as {name}.removed-tail-*)",
                )
        self.start_writer()
        self.crawler.stats.set_value("kremlin/run_id", self.run_id)
        logger.info("run %s: database %s, WARC %s", self.run_id, self.db_path, self.warc_dir)

    def start_writer(self) -> None:
        """The writer thread, when an event loop runs to hand its answers to."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if not self.writer_thread:
            return
        self._loop_thread = threading.current_thread()
        warc = self.warc
        self.writer = StoreWriter(
            lambda: dbmod.connect(self.db_path),
            loop=loop,
            fallback_db=lambda: self._db,
            on_failure=self.writer_failed,
            capacity=self.writer_capacity,
            close=warc.close if warc is not None else None,
        ).start()

    def stop_writer(self) -> None:
        """Write everything queued, close the writer's connection and WARC file, end it."""
        writer = self.writer
        if writer is None:
            return
        writer.close()  # (reports a failure, if it failed)
        self.writer = None

    def writer_failed(self, exc: BaseException) -> None:
        """The writer stopped on an error (what it had left, and every write after, is written
        in place): record why, and stop the run as failed."""
        self.writer_failure = exc
        reason = f"the writer failed: {exc!r}; the run stops"[:500]
        self.crawler.stats.set_value("kremlin/writer_failed", reason)
        if self.stopping or self._closing_run:
            self.record_error(url=None, stage="store", reason=reason)
        else:
            self.stop("failed", reason, stage="store")

    # -- writes and reads -----------------------------------------------------------------

    @property
    def db(self):
        """The run's connection for reads on the event loop (and for every write when there is
        no writer thread). Reading waits for the writes submitted before."""
        writer = self.writer
        if writer is not None and threading.current_thread() is self._loop_thread:
            writer.drain()
        return self._db

    @property
    def opened(self) -> bool:
        """Whether the run has its database (between spider_opened and spider_closed); unlike
        `db`, asking does not wait for the writer."""
        return self._db is not None

    @property
    def threaded(self) -> bool:
        """Whether writes run on the writer thread (components then answer with coroutines)."""
        return self.writer is not None

    async def call(self, fn, *args, **kwargs) -> Any:
        """`fn(db, *args, **kwargs)`, a write (or a read that must follow the writes before
        it), in order with every other write of the run; its result."""
        writer = self.writer
        if writer is None:
            return fn(self._db, *args, **kwargs)
        return await writer.call(fn, *args, **kwargs)

    def post(self, fn, *args, **kwargs) -> None:
        """`fn(db, *args, **kwargs)`, a write nobody waits for, in order with the others."""
        writer = self.writer
        if writer is not None:
            writer.post(fn, *args, **kwargs)
        elif self._db is not None:
            fn(self._db, *args, **kwargs)

    def spider_closed(self, spider, reason) -> None:
        self._closing_run = True
        try:
            self.stop_writer()
            if self.warc is not None:
                self.warc.close()
            if self._db is not None:
                self.record_unsent_retries(reason)
                counts = self.counts()
                if counts["events_unfinished"] and reason == "finished":
                    # A finished run answers every request it made; if not, say so.
                    self.record_error(
                        url=None,
                        stage="fetch",
                        reason=f"{counts['events_unfinished']} requested event page(s) were "
                        "neither stored nor recorded as failed (dropped by the scheduler?)",
                    )
                    counts = self.counts()
                status = STATUS_BY_REASON.get(reason, "failed")
                if self.writer_failure is not None:
                    status = "failed"
                counts |= self.window_counts(spider)
                counts["persons"] = self.settle_persons(counts)
                if status == "finished" and (counts["ids_unaccounted"] or counts["window_short"]):
                    # Not every id of the window is stored or known absent: say so.
                    status = "incomplete"
                dbmod.finish_run(
                    self._db, self.run_id, status=status, finish_reason=reason, counts=counts
                )
                logger.info("run %s %s: %s", self.run_id, status, json.dumps(counts))
                self._db.close()
        finally:
            if self.lock is not None:
                self.lock.release()

    def settle_persons(self, counts: dict[str, Any]) -> dict[str, int] | None:
        """Re-resolve what depends on the whole archive once the run has stored all it will
        (`db.settle_persons`); a failure is recorded, never lets the run end unrecorded."""
        if not (counts["events_new"] or counts["events_changed"] or counts["events_unchanged"]):
            return None
        try:
            return dbmod.settle_persons(self._db)
        except Exception as exc:  # the settle rolled back; the turns keep their persons
            logger.exception("run %s: persons not settled", self.run_id)
            self.record_error(url=None, stage="store", reason=f"persons not settled: {exc!r}")
            return None

    # -- shared services ------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        stats = self.crawler.stats.get_stats()
        counts: dict[str, Any] = {
            "requests": stats.get("downloader/request_count", 0),
            "responses": stats.get("downloader/response_count", 0),
            "events_listed": stats.get("kremlin/events/listed", 0),
            "events_requested": stats.get("kremlin/events/requested", 0),
            "events_new": stats.get("kremlin/events/new", 0),
            "events_changed": stats.get("kremlin/events/changed", 0),
            "events_unchanged": stats.get("kremlin/events/unchanged", 0),
            "events_not_modified": stats.get("kremlin/events/not_modified", 0),
            "events_failed": stats.get("kremlin/events/failed", 0),
            "events_from_wayback": stats.get("kremlin/events/from_wayback", 0),
            "errors": stats.get("kremlin/errors", 0),
            "fetches": stats.get("kremlin/fetches", 0),
        }
        answered = sum(
            counts[f"events_{outcome}"]
            for outcome in ("new", "changed", "unchanged", "not_modified", "failed")
        )
        # Requested but never answered: the run stopped (blocked, killed, Ctrl-C) first.
        counts["events_unfinished"] = max(0, counts["events_requested"] - answered)
        for key, value in stats.items():
            if key.startswith(
                (
                    "kremlin/errors/",
                    "kremlin/field/",
                    "kremlin/idwalk/",
                    "kremlin/wayback/",
                    "downloader/response_status_count/",
                )
            ):
                counts[key.removeprefix("kremlin/").removeprefix("downloader/")] = value
        return counts

    def window_counts(self, spider) -> dict[str, Any]:
        """The run's window against the coverage ledger: how many (language, id) pairs it
        answers for, how many the ledger does not account for (by state, and as ranges), and
        why the window itself falls short, if it does. Also in the stats, for the CLI."""
        gaps = spider.coverage_gaps() if hasattr(spider, "coverage_gaps") else {}
        short = spider.window_complete() if hasattr(spider, "window_complete") else None
        window = spider.window_size() if hasattr(spider, "window_size") else 0
        unaccounted = sum(len(ids) for states in gaps.values() for ids in states.values())
        counts: dict[str, Any] = {
            "ids_window": window,
            "ids_unaccounted": unaccounted,
            "window_short": short,
            "gaps": {
                lang: {state: format_id_ranges(ids, limit=20) for state, ids in states.items()}
                for lang, states in gaps.items()
            },
            "listings_untrusted": self.crawler.stats.get_value("kremlin/listings/untrusted"),
        }
        for key in ("ids_window", "ids_unaccounted", "window_short", "gaps"):
            self.crawler.stats.set_value(f"kremlin/{key}", counts[key])
        return counts

    def stop(
        self, reason: str, message: str, *, url=None, status=None, fetch_id=None, stage="fetch"
    ) -> None:
        """End the crawl cleanly as `reason` (e.g. 'blocked' -> runs.status 'blocked', exit
        code 3), once; `message` goes into `errors` (stage 'fetch') and the log.

        The close is scheduled, not awaited: the caller is typically a downloader middleware
        handling a response, and closing waits for every request in progress -- that one
        included. Retries stop and backoff waits end early (`wait`)."""
        if self.stopping:
            return
        self.stopping = reason
        self._stopped.set()
        self.crawler.stats.set_value(f"kremlin/{reason}", True)
        self.record_error(
            url=url,
            stage=stage,
            reason=f"{reason}: {message}",
            status=status,
            fetch_id=fetch_id,
            quiet=True,
        )
        logger.error("stopping the run (%s): %s", reason, message)
        engine = self.crawler.engine
        if engine is not None and engine.spider is not None:
            self._closing = deferred_from_coro(engine.close_spider_async(reason=reason))

    async def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False if the run started stopping meanwhile (or had)."""
        if self.stopping:
            return False
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    def record_unsent_retries(self, reason: str) -> None:
        """Retries the run stopped before sending (the scheduler drops them on close): each
        request's last answer becomes an `errors` row, and an event counts as failed."""
        pending, self.retries_pending = self.retries_pending, {}
        for url, retry in pending.items():
            meta = retry.meta
            fetch = meta.get(Meta.FETCH, {})
            status = fetch.get("status")
            last = http_failure_reason(status) if status else fetch.get("error") or "no answer"
            if meta.get(Meta.KIND) == "event":
                self.crawler.stats.inc_value("kremlin/events/failed")
            message = f"{last}; not retried: the run stopped ({reason}) first"
            self.record_error(
                url=meta.get(Meta.SOURCE_URL, url),
                stage="fetch",
                reason=message,
                status=status,
                fetch_id=fetch.get("id"),
            )
            if meta.get(Meta.EVENT_ID):
                state = coverage_state("fetch", status, last)
                self.post(
                    dbmod.note_coverage, meta[Meta.EVENT_ID], state, fetch_id=fetch.get("id"),
                    run_id=self.run_id, answer=message[:200],
                )  # fmt: skip

    def spider_error(self, failure, response, spider) -> None:
        """A callback raised instead of yielding a CrawlError: record the page anyway."""
        meta = getattr(response, "meta", None) or {}
        if meta.get(Meta.KIND) == "event":
            self.crawler.stats.inc_value("kremlin/events/failed")
        self.note_failed(meta.get(Meta.EVENT_ID), failure, meta.get(Meta.FETCH, {}).get("id"))
        self.record_error(
            url=meta.get(Meta.SOURCE_URL) or getattr(response, "url", None),
            stage="parse",
            reason=f"unexpected {failure.type.__name__}: {failure.getErrorMessage()}"[:500],
            status=getattr(response, "status", None),
            fetch_id=meta.get(Meta.FETCH, {}).get("id"),
        )

    def item_error(self, item, response, spider, failure) -> None:
        """A pipeline raised (other than DropItem): record the item's URL and why."""
        if isinstance(item, Transcript):
            self.crawler.stats.inc_value("kremlin/events/failed")
            self.note_failed(item.event_id, failure, item.fetch_id)
        self.record_error(
            url=getattr(item, "url", None) or getattr(item, "source_url", None),
            stage="store",
            reason=f"unexpected {failure.type.__name__}: {failure.getErrorMessage()}"[:500],
            fetch_id=getattr(item, "fetch_id", None),
        )

    def request_dropped(self, request, spider) -> None:
        """The scheduler refused a request (a dupefilter): neither its callback nor its errback
        will run. Event requests carry dont_filter (spiders/base.py), so this should not happen
        to one; if it does, the page is recorded by name, not left to the anonymous count of
        unanswered requests at the end."""
        meta = request.meta
        if meta.get(Meta.KIND) != "event":
            return
        self.crawler.stats.inc_value("kremlin/events/failed")
        redirects = meta.get("redirect_urls") or []
        what = f"the redirect to {request.url}" if redirects else f"the request of {request.url}"
        reason = f"dropped by the scheduler: {what} was never sent"
        fetch = meta.get(Meta.FETCH, {})
        self.record_error(
            url=meta.get(Meta.SOURCE_URL, request.url),
            stage="fetch",
            reason=reason,
            status=fetch.get("status") if redirects else None,
            fetch_id=fetch.get("id") if redirects else None,
        )
        if meta.get(Meta.EVENT_ID) and self._db is not None:
            self.post(
                dbmod.note_coverage, meta[Meta.EVENT_ID], "failed", fetch_id=fetch.get("id"),
                run_id=self.run_id, answer=reason[:200],
            )  # fmt: skip

    def note_failed(self, event_id: str | None, failure, fetch_id: int | None) -> None:
        """A bug lost an event's answer: the ledger says failed (ask again)."""
        if event_id and self._db is not None:
            answer = f"unexpected {failure.type.__name__}: {failure.getErrorMessage()}"[:200]
            self.post(
                dbmod.note_coverage, event_id, "failed", fetch_id=fetch_id, run_id=self.run_id,
                answer=answer,
            )  # fmt: skip

    def record_error(
        self, *, url, stage, reason, status=None, fetch_id=None, quiet: bool = False
    ) -> None:
        stats = self.crawler.stats
        stats.inc_value("kremlin/errors")
        stats.inc_value(f"kremlin/errors/{stage}")
        # Once the run is stopping, its cause has been said (stop): what follows from it is
        # recorded without repeating it on the console.
        level = logging.INFO if quiet or self.stopping else logging.WARNING
        logger.log(level, "%s error for %s: %s", stage, url, reason)
        if self._db is not None:
            self.post(
                dbmod.record_error,
                run_id=self.run_id,
                url=url,
                stage=stage,
                reason=reason,
                status=status,
                fetch_id=fetch_id,
            )


def run_crawl(
    spider: str,
    settings: dict[str, Any],
    spider_args: dict[str, Any],
    *,
    log_level: str | None = None,
    log_file=None,
) -> dict:
    """Run one of the project's spiders in this process with the project's settings overridden
    by `settings` (command-line priority); returns the crawl's stats when it has ended. The
    caller holds the database's run lock (`KREMLIN_LOCK_HELD`). The log goes to standard error
    at `log_level` (default the LOG_LEVEL setting) and, whole, to `log_file` (`crawl_log`)."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "kremlin_archive.settings")
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    from .crawl_log import RunLogging

    project = get_project_settings()
    for name, value in settings.items():
        project.set(name, value, priority="cmdline")
    if "DOWNLOAD_SLOTS" not in settings:  # the Wayback's budget follows its setting
        delay = project.getfloat("KREMLIN_WAYBACK_DELAY")
        project.set(
            "DOWNLOAD_SLOTS", {"wayback": {"concurrency": 1, "delay": delay}}, priority="cmdline"
        )
    # The handlers are the run's own (RunLogging), not Scrapy's root handler.
    project.set("LOG_INSTALL_ROOT_HANDLER", False, priority="cmdline")
    with RunLogging(log_level or project.get("LOG_LEVEL"), log_file):
        process = CrawlerProcess(project)
        crawler = process.create_crawler(spider)
        process.crawl(crawler, **spider_args)
        process.start()
    return crawler.stats.get_stats() if crawler.stats else {}
