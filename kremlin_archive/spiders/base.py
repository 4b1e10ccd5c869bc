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
from .. import parsing, urls, wayback
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


SOURCES = ("site", "wayback", "auto")


def parse_source(value: str | None) -> str:
    value = (value or "site").strip().lower()
    if value not in SOURCES:
        raise ValueError(f"-a source={value!r}: expected site, wayback or auto")
    return value


def parse_flag(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class EventSpider(scrapy.Spider):
    allowed_domains = ALLOWED_DOMAINS

    def __init__(self, *args, source: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # The run's window: the (language, id) pairs it answers for (`coverage_gaps`).
        self._window: dict[str, set[int]] = defaultdict(set)
        # Who is asked: the site, the Internet Archive's Wayback Machine, or the site first and
        # the Wayback for what it does not give (auto).
        self.source = parse_source(source)
        self.site_unusable: str | None = None  # auto: why the site is not asked any more

    @property
    def wayback_base(self) -> str:
        return self.crawler.settings.get("KREMLIN_WAYBACK_URL") or wayback.DEFAULT_URL

    def via(self) -> str:
        """Who a new request asks: the Wayback in wayback mode, and in auto mode once the site
        is unusable; else the site."""
        if self.source == "wayback" or (self.source == "auto" and self.site_unusable):
            return "wayback"
        return "site"

    def site_refuses(self, reason: str, *, url: str | None = None, status=None) -> None:
        """Auto: the site refuses, blocks or cannot be reached; the rest of the run reads the
        Internet Archive (recorded once, in `errors` and the stats)."""
        if self.site_unusable or self.source != "auto":
            return
        self.site_unusable = reason
        self.crawler.stats.set_value("kremlin/site_unusable", reason)
        self.logger.warning(
            "the site is not used any more: %s; reading the Internet Archive", reason
        )
        run = self.run
        if run is not None:
            run.record_error(
                url=url,
                stage="fetch",
                reason=f"site unusable: {reason}; the rest of the run reads the Internet Archive",
                status=status,
            )

    def wayback_meta(self, original: str, captured: str | None = None) -> dict:
        """Meta of a request to the Wayback: its own download slot and budget (settings
        DOWNLOAD_SLOTS), and no robots.txt of the archive (its API is for programs)."""
        meta = {
            Meta.VIA: "wayback",
            Meta.ORIGINAL: original,
            "download_slot": "wayback",
            "dont_obey_robotstxt": True,
        }
        if captured:
            meta[Meta.CAPTURED] = captured
        return meta

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
        self,
        ref: urls.EventURL,
        *,
        source_url: str | None = None,
        conditional: bool = False,
        via: str | None = None,
        original: str | None = None,
        captured: str | None = None,
        timestamp: str = wayback.NEWEST,
        site_error: CrawlError | None = None,
    ) -> scrapy.Request:
        """The request for an event page: from the site, or (`via` 'wayback') its capture
        nearest `timestamp` -- the newest by default -- of `original` (the canonical URL by
        default); `captured` is a timestamp the index lists a 200 capture at, to fall back on.
        A Wayback request that stands in for a failed site request (`site_error`) is the
        same event: it is not counted again."""
        via = via or self.via()
        if site_error is None:
            self.crawler.stats.inc_value("kremlin/events/requested")
        meta = {
            Meta.KIND: "event",
            Meta.EVENT_ID: ref.key,
            Meta.SOURCE_URL: source_url or ref.url,
            Meta.CONDITIONAL: conditional,
            Meta.REF: tuple(ref),
            # A 304 answers a conditional request: nothing changed, nothing to parse.
            "handle_httpstatus_list": [304],
        }
        if via == "site":
            # dont_filter: the spiders ask for each (language, id) once themselves, and a
            # redirect of an event must reach its callback or errback. Scrapy hands the
            # redirected request back to the engine as a new one, and the engine drops it
            # without calling the errback when the offsite filter's `request_scheduled`
            # handler raises IgnoreRequest (another host) or the dupefilter has seen its URL
            # (ExecutionEngine._schedule_request); the hosts guard of the downloader
            # (middlewares.KremlinHostsOnlyMiddleware) refuses it instead, to the errback.
            return scrapy.Request(
                ref.url,
                callback=self.parse_event,
                errback=self.event_failed,
                dont_filter=True,
                meta={**meta, Meta.VIA: "site"},
            )
        original = original or ref.url
        meta |= self.wayback_meta(original, captured)
        if site_error is not None:
            meta[Meta.SITE_ERROR] = site_error
        return scrapy.Request(
            wayback.capture_url(self.wayback_base, original, timestamp),
            callback=self.parse_event,
            errback=self.event_failed,
            dont_filter=True,
            meta=meta,
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
            reason = f"{exc.reason}: {exc.message}"
            asked = response.url
            if response.meta.get(Meta.VIA, "site") == "site":
                # The page asked for, and what was fetched for it (a redirect's target).
                asked = response.meta.get(Meta.SOURCE_URL, ref.url)
                reason += fetched_note(asked, *fetched_urls(response), reason)
            yield CrawlError(
                url=asked,
                stage="parse",
                reason=reason,
                status=response.status,
                fetch_id=fetch.get("id"),
                event_id=ref.key,
            )
            return
        self.event_answered(ref, dt.date.fromisoformat(transcript.published_at[:10]))
        site_error = response.meta.get(Meta.SITE_ERROR)
        if site_error is not None and site_error.reason == _SAME_EVENT:
            site_error = None
        if site_error is not None:  # a copy stands in for what the site would not give
            self.crawler.stats.inc_value("kremlin/events/from_wayback_instead")
        if transcript.event_id != ref.key:  # the id is another event's address
            yield Observed(
                ref.key, NOT_EVENT, f"redirected to {transcript.event_id}", fetch.get("id")
            )
        run = self.run
        transcript.set_provenance(
            {"source": response.meta.get(Meta.VIA, "site"), **fetch},
            source_url=response.meta.get(Meta.SOURCE_URL, ref.url),
            origin="crawl",
            spider=self.name,
            run_id=run.run_id if run else None,
        )
        if site_error is not None:
            transcript.site_answer = site_error.reason
        yield transcript

    def event_failed(self, failure):
        request = failure.request
        meta = request.meta
        error = failure_error(failure, meta.get(Meta.SOURCE_URL, request.url))
        ref = urls.EventURL(*meta[Meta.REF]) if Meta.REF in meta else None
        if ref is not None and meta.get(Meta.VIA, "site") == "site" and self.source == "auto":
            # The site refused, failed or answered 404: its newest capture stands in (and the
            # site's answer stays on record with it); only if there is none is this a failure.
            yield self.event_request(ref, source_url=meta.get(Meta.SOURCE_URL), via="wayback",
                                     site_error=error)  # fmt: skip
            return
        if meta.get(Meta.VIA) == "wayback":
            error.source = "wayback"
            captured = meta.get(Meta.CAPTURED)
            asked = wayback.read_capture_url(request.url)
            if ref is not None and captured and asked and asked[0] != captured:
                # The newest capture is no good (an error the archive captured): the one the
                # index lists as a 200.
                yield self.event_request(
                    ref, source_url=meta.get(Meta.SOURCE_URL), via="wayback",
                    original=meta.get(Meta.ORIGINAL), timestamp=captured,
                    site_error=meta.get(Meta.SITE_ERROR) or _same_event(error),
                )  # fmt: skip
                return
            site_error = meta.get(Meta.SITE_ERROR)
            if isinstance(site_error, CrawlError) and site_error.reason != _SAME_EVENT:
                # No copy either: the site's answer is what is known of the event.
                site_error.reason = f"{site_error.reason}; no copy in the Internet Archive " \
                    f"({error.reason})"  # fmt: skip
                error = site_error
        else:
            # The error names the page asked for; its reason, the URL fetched if that is
            # another (a /copy/ address) and where a redirect led.
            note = fetched_note(error.url, *fetched_urls(request), error.reason)
            error.reason = (error.reason + note)[:500]
        self.crawler.stats.inc_value("kremlin/events/failed")
        if ref is not None:
            self.event_answered(ref, None)
        yield error

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


_SAME_EVENT = "(the same event)"


def _same_event(error: CrawlError) -> CrawlError:
    """A marker: a second Wayback request for an event already counted, not a site failure."""
    return CrawlError(url=error.url, stage=error.stage, reason=_SAME_EVENT)


def fetched_note(asked: str, fetched: str, final: str | None = None, reason: str = "") -> str:
    """What an error's reason adds so that, with the URL asked for (the error's `url`), it
    names the URL fetched when that is another (a /copy/ address is fetched as its canonical
    page: robots.txt forbids /copy/) and where a redirect led (`final`): ' (fetched as B)',
    ' (redirected to C)', ' (fetched as B, redirected to C)'. A URL the reason already names
    is not repeated."""
    notes = []
    if fetched != asked and fetched not in reason:
        notes.append(f"fetched as {fetched}")
    if final and final != fetched and final not in reason:
        notes.append(f"redirected to {final}")
    return f" ({', '.join(notes)})" if notes else ""


def fetched_urls(request) -> tuple[str, str]:
    """(the URL first requested, the URL the request ended at after redirects)."""
    redirects = request.meta.get("redirect_urls") or []
    return (redirects[0] if redirects else request.url), request.url


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
        if message == "max redirections reached":  # Scrapy's RedirectMiddleware gave up
            hops = len(request.meta.get("redirect_urls") or [])
            reason = f"too many redirects: {hops}, the last to {request.url}; not followed"
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
