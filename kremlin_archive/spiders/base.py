"""What every spider of the project shares: requesting an event page, turning its response
into a Transcript through parsing.py, and turning failures into CrawlError items.

Spiders only discover and request. Field extraction lives in parsing.py; recording lives in
the middlewares (fetches, WARC) and pipelines (events, errors).

Every requested event ends as exactly one of: a Transcript (new / changed / unchanged), a 304
(not modified) or a CrawlError counted as `kremlin/events/failed` here -- so the run's counts
add up. A response that is not a complete event page of the requested id (a 404 shell served
with 200, a cut-off body, an error page) is a parse error and never replaces a stored event.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections import defaultdict

import scrapy
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import DNSLookupError, TCPTimedOutError, TimeoutError
from twisted.web.client import ResponseFailed

from .. import db as dbmod
from .. import parsing, urls
from ..crawl_run import CrawlRun, current_run
from ..discovery import id_runs
from ..items import ACCOUNTED, NOT_EVENT, CrawlError, Observed, http_failure_reason
from ..request_meta import Meta

ALLOWED_DOMAINS = ["kremlin.ru", "en.kremlin.ru"]


def parse_day(value: str | None, name: str) -> dt.date | None:
    """A YYYY-MM-DD spider argument, or a clear error naming it."""
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"-a {name}={value!r}: expected a date as YYYY-MM-DD") from None


def parse_langs(value: str | None) -> list[str]:
    value = (value or "both").strip().lower()
    if value == "both":
        return ["ru", "en"]
    if value in urls.HOSTS:
        return [value]
    raise ValueError(f"-a lang={value!r}: expected ru, en or both")


def parse_flag(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class EventSpider(scrapy.Spider):
    allowed_domains = ALLOWED_DOMAINS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The run's window: the (language, id) pairs it answers for (`coverage_gaps`).
        self._window: dict[str, set[int]] = defaultdict(set)

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        # What the run records as its arguments: the spider's parameters as given (-a
        # NAME=VALUE) or defaulted -- not what the spider made of them (a whole URL list read
        # from a file, parsed dates).
        parameters = inspect.signature(cls.__init__).parameters.values()
        spider.given_arguments = {
            p.name: kwargs.get(p.name, p.default)
            for p in parameters
            if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"
        } | dict(kwargs)
        return spider

    @property
    def run(self) -> CrawlRun | None:
        return current_run(self.crawler)

    def event_request(
        self, ref: urls.EventURL, *, source_url: str | None = None, conditional: bool = False
    ) -> scrapy.Request:
        self.crawler.stats.inc_value("kremlin/events/requested")
        return scrapy.Request(
            ref.url,
            callback=self.parse_event,
            errback=self.event_failed,
            dont_filter=conditional,
            meta={
                Meta.KIND: "event",
                Meta.EVENT_ID: ref.key,
                Meta.SOURCE_URL: source_url or ref.url,
                Meta.CONDITIONAL: conditional,
                Meta.REF: tuple(ref),
                # A 304 answers a conditional request: nothing changed, nothing to parse.
                "handle_httpstatus_list": [304],
            },
        )

    def parse_event(self, response):
        fetch = {
            "final_url": response.url,
            "status": response.status,
            **response.meta.get(Meta.FETCH, {}),
        }
        ref = urls.EventURL(*response.meta[Meta.REF])
        if response.status == 304:
            self.crawler.stats.inc_value("kremlin/events/not_modified")
            self.event_answered(ref, None)
            return
        # A redirect to another event page is followed; anything else keeps the requested id.
        url = response.url if urls.is_event_url(response.url) else ref.url
        try:
            transcript = parsing.parse_event(response.body, url)
        except parsing.ParseError as exc:
            self.crawler.stats.inc_value("kremlin/events/failed")
            self.event_answered(ref, None)
            yield CrawlError(
                url=response.url,
                stage="parse",
                reason=f"{exc.reason}: {exc.message}",
                status=response.status,
                fetch_id=fetch.get("id"),
                event_id=ref.key,
            )
            return
        self.event_answered(ref, dt.date.fromisoformat(transcript.published_at[:10]))
        if transcript.event_id != ref.key:  # the id is another event's address
            yield Observed(
                ref.key, NOT_EVENT, f"redirected to {transcript.event_id}", fetch.get("id")
            )
        run = self.run
        yield transcript.set_provenance(
            fetch,
            source_url=response.meta.get(Meta.SOURCE_URL, ref.url),
            origin="crawl",
            spider=self.name,
            run_id=run.run_id if run else None,
        )

    def event_failed(self, failure):
        request = failure.request
        self.crawler.stats.inc_value("kremlin/events/failed")
        if Meta.REF in request.meta:
            self.event_answered(urls.EventURL(*request.meta[Meta.REF]), None)
        yield failure_error(failure, request.meta.get(Meta.SOURCE_URL, request.url))

    def event_answered(self, ref: urls.EventURL, day: dt.date | None) -> None:
        """Hook: an event request of this run has its answer (`day`: the event's, or None)."""

    # -- the end: is every id of the window accounted for? -------------------------------------

    def coverage_gaps(self) -> dict[str, dict[str, list[int]]]:
        """lang -> state ('unknown' for no ledger entry) -> the ids of the run's window that
        the coverage ledger does not account for (stored, absent, not an event)."""
        run = self.run
        gaps: dict[str, dict[str, list[int]]] = {}
        if not run or not run.db:
            return gaps
        for lang, ids in sorted(self._window.items()):
            for first, last in id_runs(ids):
                states = dbmod.coverage_of(run.db, lang, first, last)
                for kremlin_id in range(first, last + 1):
                    state = states.get(kremlin_id)
                    if state not in ACCOUNTED:
                        gaps.setdefault(lang, {}).setdefault(state or "unknown", []).append(
                            kremlin_id
                        )
        return gaps

    def window_size(self) -> int:
        """(language, id) pairs in the run's window."""
        return sum(len(ids) for ids in self._window.values())

    def window_complete(self) -> str | None:
        """Why the window falls short of what was asked for whatever the ledger says (e.g.
        listings that lie), or None."""
        return None


def failure_error(failure, url: str) -> CrawlError:
    """A CrawlError describing why a request produced no usable response. The reason starts
    with a short word (not found, refused, rate-limited, HTTP <n>, timeout, truncated, too
    large, offsite, not requested, …) and says what happened in words."""
    request = failure.request
    fetch = request.meta.get(Meta.FETCH, {})
    fetch_id = fetch.get("id")
    message = failure.getErrorMessage()
    if failure.check(HttpError):
        response = failure.value.response
        status = response.status
        fetch_id = response.meta.get(Meta.FETCH, {}).get("id", fetch_id)
        reason = http_failure_reason(status)
        retries = response.meta.get("retry_times", 0)
        if retries:
            reason += f" after {retries} {'retry' if retries == 1 else 'retries'}"
        return CrawlError(
            url=url,
            stage="fetch",
            reason=reason,
            status=status,
            fetch_id=fetch_id,
            event_id=request.meta.get(Meta.EVENT_ID),
        )
    status = None
    if failure.check(DownloadTimeoutError, TimeoutError, TCPTimedOutError):
        reason = f"timeout: {message}"
    elif failure.check(ResponseDataLossError, ResponseFailed):
        reason = (
            "truncated: the connection ended before the whole body arrived (less than its "
            "Content-Length); nothing parsed"
        )
    elif failure.check(DownloadCancelledError):
        reason = f"too large: the body exceeds DOWNLOAD_MAXSIZE; download cancelled. {message}"
    elif failure.check(IgnoreRequest):
        # Offsite (middlewares.KremlinHostsOnlyMiddleware), robots.txt, …: nothing was sent.
        reason = message if message.startswith("offsite") else f"not requested: {message}"
        if request.meta.get("redirect_urls"):
            status = fetch.get("status")  # the redirect answer is the fetch in the meta
    elif failure.check(DNSLookupError, CannotResolveHostError):
        # Twisted's message (and Scrapy's, which wraps it) already says so.
        prefix = "DNS lookup failed: "
        reason = message if message.startswith(prefix) else prefix + message
    else:
        reason = f"{failure.type.__name__}: {message}"
    return CrawlError(
        url=url,
        stage="fetch",
        reason=reason.strip()[:500],
        status=status,
        fetch_id=fetch_id,
        event_id=request.meta.get(Meta.EVENT_ID),
    )
