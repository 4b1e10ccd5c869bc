"""Downloader middlewares: record every exchange, ask conditionally, retry politely, brake.

Order (see settings.DOWNLOADER_MIDDLEWARES; responses travel from high numbers to low):
40  KremlinHostsOnlyMiddleware — no request ever leaves for a host other than kremlin.ru /
    en.kremlin.ru: above all no redirect to another host is followed (IgnoreRequest; the
    event's errback records it).
610 FetchRecorderMiddleware — every response as received (3xx/4xx/5xx and each retry attempt
    too, before redirect/retry consume it) goes to WARC and a `fetches` row; transport errors
    get a `fetches` row with `error`.
570 ConditionalRequestMiddleware — If-None-Match / If-Modified-Since from the previous fetch.
560 RefusalBrakeMiddleware — after KREMLIN_BRAKE_REFUSALS consecutive 403/429 answers: pause
    once for KREMLIN_BRAKE_PAUSE seconds, and if the site still refuses (as many consecutive
    refusals of requests sent after the pause), stop the run as 'blocked'. A refusal is never
    taken for "no events".
550 BackoffRetryMiddleware — Scrapy's retry, but waiting (exponential backoff, Retry-After
    honoured) before the retry is sent; no retries once the run is stopping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.response import response_status_message

from . import db as dbmod
from . import urls, wayback
from .crawl_run import current_run, resolved
from .items import fetch_record
from .request_meta import Meta
from .timestamps import utc_stamp
from .warc import decode_content

logger = logging.getLogger(__name__)


def _header_pairs(headers) -> list[tuple[str, str]]:
    pairs = []
    for name, values in headers.items():
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        for value in values:
            pairs.append((key, value.decode("latin-1") if isinstance(value, bytes) else str(value)))
    return pairs


class FetchRecorderMiddleware:
    """Every response as received goes to WARC and a `fetches` row, every transport failure
    to a `fetches` row, before the response (or failure) travels on with the row in
    `request.meta[Meta.FETCH]` (its id included). The revisit lookup, the WARC record and the
    row are one job of the run's writer (`record_exchange`), so they follow every earlier
    write of the run and the row names the record written just before it; the response waits
    for the job (off the event loop when the run has a writer thread)."""

    def __init__(self, crawler):
        self.crawler = crawler
        base = crawler.settings.get("KREMLIN_WAYBACK_URL")
        self.wayback = wayback.wayback_host(base) if base else None

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_response(self, request, response):
        run = current_run(self.crawler)
        if run is None or not run.opened:
            return response
        coro = self._process_response(run, request, response)
        return coro if run.threaded else resolved(coro)

    async def _process_response(self, run, request, response):
        partial = {"partial", "dataloss"} & set(response.flags)
        # Only with DOWNLOAD_FAIL_ON_DATALOSS=False: the body may be cut short. The parser
        # refuses a page without its end; the fetch says why.
        error = (
            f"incomplete body ({', '.join(sorted(partial))}): the connection closed early"
            if partial
            else None
        )
        row, fetch_id, warc_error = await run.call(
            record_exchange,
            run.warc,
            fields=self.request_fields(run, request),
            fetched_at=dt.datetime.now(dt.UTC),
            method=request.method,
            request_headers=_header_pairs(request.headers),
            status=response.status,
            final_url=response.url,
            response_headers=_header_pairs(response.headers),
            body=response.body,
            remote_ip=str(response.ip_address) if response.ip_address else None,
            error=error,
        )
        if warc_error is not None:  # the fetch row exists even though the WARC write failed
            run.record_error(url=request.url, stage="warc", reason=repr(warc_error))
        self._recorded(request, row, fetch_id)
        return response

    def request_fields(self, run, request) -> dict:
        """The `fetches` columns that describe the request (the same for answers and failures):
        also whether the Wayback Machine answered, and for a capture what it is a copy of."""
        from_wayback = self.wayback is not None and _host(request.url) == self.wayback
        return {
            "source": "wayback" if from_wayback else "site",
            "capture": wayback.read_capture_url(request.url) if from_wayback else None,
            "run_id": run.run_id,
            "spider": self.crawler.spider.name if self.crawler.spider else None,
            "kind": request.meta.get(Meta.KIND) or urls.kind_of_url(request.url),
            "event_id": request.meta.get(Meta.EVENT_ID),
            "requested_url": request.meta.get(Meta.SOURCE_URL, request.url),
            "url": request.url,
            "method": request.method,
        }

    def _recorded(self, request, row: dict, fetch_id: int) -> None:
        self.crawler.stats.inc_value("kremlin/fetches")
        request.meta[Meta.FETCH] = {**row, "id": fetch_id}

    def process_exception(self, request, exception):
        run = current_run(self.crawler)
        if run is None or not run.opened:
            return None
        if isinstance(exception, IgnoreRequest):
            return None  # nothing was sent (offsite, robots.txt): the errback records why
        row = fetch_record(
            **self.request_fields(run, request),
            fetched_at=utc_stamp(),
            error=f"{type(exception).__name__}: {exception_text(exception)}"[:500],
        )
        coro = self._record_failure(run, request, row)
        return coro if run.threaded else resolved(coro)

    async def _record_failure(self, run, request, row: dict) -> None:
        fetch_id = await run.call(dbmod.record_fetch, row)
        self._recorded(request, row, fetch_id)
        return None


def record_exchange(
    db,
    warc,
    *,
    fields: dict,
    fetched_at: dt.datetime,
    method: str,
    request_headers: list[tuple[str, str]],
    status: int,
    final_url: str,
    response_headers: list[tuple[str, str]],
    body: bytes,
    remote_ip: str | None,
    error: str | None,
) -> tuple[dict, int, Exception | None]:
    """One exchange into the archive, on the run's writer: its WARC record (a revisit when the
    last response record of the URL holds the same payload), then its `fetches` row naming
    that record. Returns (row, fetch id, the WARC write's exception or None): a WARC failure
    leaves the row without a location, never without a row."""
    url = fields["url"]
    lower = {k.lower(): v for k, v in response_headers}
    payload = decode_content(body, lower.get("content-encoding"))
    location = None
    warc_error = None
    if warc is not None:
        try:
            revisit_of = None
            if status == 200 and payload:
                sha = hashlib.sha256(payload).hexdigest()
                revisit_of = dbmod.last_capture_of_payload(db, url, sha)
            location, _request_location = warc.write_exchange(
                url=url,
                method=method,
                request_headers=request_headers,
                status=status,
                reason=response_status_message(status).partition(" ")[2],
                response_headers=response_headers,
                body=payload,
                fetched_at=fetched_at,
                remote_ip=remote_ip,
                revisit_of=revisit_of,
            )
        except Exception as exc:  # the fetch row must exist even if WARC writing failed
            logger.exception("WARC write failed for %s", url)
            warc_error = exc
    row = fetch_record(
        **fields,
        fetched_at=utc_stamp(fetched_at),
        final_url=final_url,
        status=status,
        headers=lower,
        payload=payload,
        error=error,
        warc=location,
    )
    return row, dbmod.record_fetch(db, row), warc_error


class ConditionalRequestMiddleware:
    """Adds validators of the last 200 fetch of the same URL to requests that ask for it
    (`meta['kremlin_conditional']`). kremlin.ru sent neither ETag nor Last-Modified in 2020,
    so this usually adds nothing; an identical payload is still recognised by its digest."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.enabled = crawler.settings.getbool("KREMLIN_CONDITIONAL_REQUESTS")

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_request(self, request):
        if not (self.enabled and request.meta.get(Meta.CONDITIONAL)):
            return None
        run = current_run(self.crawler)
        if run is None or run.db is None:
            return None
        previous = dbmod.last_fetch_validators(run.db, request.url)
        if not previous:
            return None
        if previous.get("etag") and b"If-None-Match" not in request.headers:
            request.headers[b"If-None-Match"] = previous["etag"]
        if previous.get("last_modified") and b"If-Modified-Since" not in request.headers:
            request.headers[b"If-Modified-Since"] = previous["last_modified"]
        return None


@dataclass
class _Brake:
    """The state of the brake for one source (the site, or the Wayback Machine)."""

    consecutive: int = 0
    paused_once: bool = False
    round: int = 0  # incremented by each pause
    blocked: bool = False
    failures: int = 0  # consecutive transport failures (the site only)


class RefusalBrakeMiddleware:
    """403/429 answers are refusals (SITE.md §8), never "no events". After `limit` consecutive
    refusals the crawl pauses once for `pause` seconds (the engine takes no new requests and
    requests reaching this middleware wait; only those already queued in the downloader go
    out); answers to requests sent before the pause ended do not count afterwards (they say
    nothing about whether it helped). If `limit` more refusals follow, the run stops as
    'blocked' (CrawlRun.stop: an `errors` row, runs.status 'blocked', exit code 3). Any
    answer below 400 re-arms the brake.

    A listing or feed page refused on its last attempt (every retry, with backoff, spent) also
    stops the run as 'blocked': the walk cannot go on past it, and ending the run as
    'finished' would pass the refusal off as the end of the archive.

    The site and the Wayback Machine (`KREMLIN_WAYBACK_URL`) each have a brake of their own.
    With -a source=auto the site's brake does not stop the run: the site is marked unusable
    (the spider's `site_refuses`) and the rest of the run reads the Internet Archive; so do
    `limit` transport failures in a row (no DNS, connection refused, timeouts)."""

    REFUSALS = (403, 429)

    def __init__(self, crawler):
        self.crawler = crawler
        self.limit = crawler.settings.getint("KREMLIN_BRAKE_REFUSALS")
        self.pause = crawler.settings.getfloat("KREMLIN_BRAKE_PAUSE")
        self.brakes = {"site": _Brake(), "wayback": _Brake()}
        self.paused_until = 0.0  # time.monotonic()
        settings = crawler.settings
        self.retry_enabled = settings.getbool("RETRY_ENABLED")
        self.retry_times = settings.getint("RETRY_TIMES")
        self.retry_codes = {int(c) for c in settings.getlist("RETRY_HTTP_CODES")}
        base = settings.get("KREMLIN_WAYBACK_URL")
        self.wayback = wayback.wayback_host(base) if base else None

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    # The brake of the site, as earlier versions had one: kept as attributes for callers.
    @property
    def consecutive(self) -> int:
        return self.brakes["site"].consecutive

    @property
    def round(self) -> int:
        return self.brakes["site"].round

    @property
    def blocked(self) -> bool:
        return self.brakes["site"].blocked

    def source_of(self, request) -> str:
        return "wayback" if self.wayback and _host(request.url) == self.wayback else "site"

    async def process_request(self, request):
        wait = self.paused_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        request.meta[Meta.BRAKE_ROUND] = self.brakes[self.source_of(request)].round
        return None

    async def process_response(self, request, response):
        source = self.source_of(request)
        brake = self.brakes[source]
        refused = response.status in self.REFUSALS
        if refused:
            self.crawler.stats.inc_value("kremlin/refusals")
        brake.failures = 0
        run = current_run(self.crawler)
        if brake.blocked or (run is not None and run.stopping):
            request.meta["dont_retry"] = True  # stopping: no more requests to this source
            return response
        walk = request.meta.get(Meta.KIND) in ("listing", "feed", "cdx")
        if refused and walk and self.last_attempt(request, response.status):
            what = "the index query" if source == "wayback" else "the listing"
            return self._block(
                run, request, response, source,
                f"{what} {request.url} was refused (HTTP {response.status}) on every attempt; "
                "the walk cannot go on", ", so the run stopped: rerun later to resume",
            )  # fmt: skip
        if request.meta.get(Meta.BRAKE_ROUND, brake.round) != brake.round:
            return response  # sent before the last pause
        if not refused:
            if response.status < 400:
                brake.consecutive = 0
                brake.paused_once = False
            return response
        brake.consecutive += 1
        if self.limit <= 0 or brake.consecutive < self.limit:
            return response
        if not brake.paused_once and self.pause > 0:
            brake.paused_once = True
            brake.consecutive = 0
            brake.round += 1
            self.crawler.stats.inc_value("kremlin/brake/pauses")
            logger.warning(
                "%d consecutive refusals (last %s for %s): pausing the crawl for %.1f s",
                self.limit, response.status, request.url, self.pause,
            )  # fmt: skip
            self.paused_until = time.monotonic() + self.pause
            engine = self.crawler.engine
            engine.pause()
            try:
                await asyncio.sleep(self.pause)
            finally:
                engine.unpause()
            return response
        after = f" after a {self.pause:.1f} s pause" if brake.paused_once else ""
        who = "the Internet Archive" if source == "wayback" else "the site"
        message = (
            f"{who} refused {brake.consecutive} consecutive requests{after} (last: HTTP "
            f"{response.status} for {request.url})"
        )
        return self._block(
            run, request, response, source, message, "; the run stopped: rerun later to resume"
        )

    def process_exception(self, request, exception):
        """Transport failures in a row make the site unusable for a run that may read the
        Internet Archive instead (-a source=auto); they say nothing for any other run."""
        if self.source_of(request) != "site" or isinstance(exception, IgnoreRequest):
            return None
        spider = self.crawler.spider
        if getattr(spider, "source", "site") != "auto" or getattr(spider, "site_unusable", None):
            return None
        brake = self.brakes["site"]
        brake.failures += 1
        if self.limit > 0 and brake.failures >= self.limit:
            spider.site_refuses(
                f"{brake.failures} requests in a row failed ({type(exception).__name__}: "
                f"{exception_text(exception)})"[:300],
                url=request.url,
            )
        return None

    def last_attempt(self, request, status: int) -> bool:
        """Whether the retry middleware will give up on this answer (no retry follows)."""
        if request.meta.get("dont_retry") or not self.retry_enabled:
            return True
        if status not in self.retry_codes:
            return True
        limit = request.meta.get("max_retry_times", self.retry_times)
        return request.meta.get("retry_times", 0) >= limit

    def _block(self, run, request, response, source: str, message: str, stopped: str):
        self.brakes[source].blocked = True
        request.meta["dont_retry"] = True
        spider = self.crawler.spider
        if source == "site" and getattr(spider, "source", "site") == "auto":
            # Not the end of the run: the rest of it reads the Internet Archive.
            spider.site_refuses(message, url=request.url, status=response.status)
            return response
        message += stopped
        if run is not None:
            run.stop(
                "blocked",
                message,
                url=request.url,
                status=response.status,
                fetch_id=request.meta.get(Meta.FETCH, {}).get("id"),
            )
        else:
            self.crawler.stats.set_value("kremlin/blocked", True)
            logger.error("stopping the run (blocked): %s", message)
            # Not awaited: closing waits for every request in progress, this one included.
            self._closing = deferred_from_coro(
                self.crawler.engine.close_spider_async(reason="blocked")
            )
        return response


class BackoffRetryMiddleware(RetryMiddleware):
    """RetryMiddleware that waits before retrying: base * 2**attempt seconds, or what
    Retry-After asks for (capped at KREMLIN_RETRY_BACKOFF_MAX), without holding other requests."""

    def __init__(self, settings):
        super().__init__(settings)
        self.backoff_base = settings.getfloat("KREMLIN_RETRY_BACKOFF_BASE")
        self.backoff_max = settings.getfloat("KREMLIN_RETRY_BACKOFF_MAX")
        self.crawler = None  # set by RetryMiddleware.from_crawler

    async def _wait(self, delay: float) -> bool:
        """Wait before a retry; False if the run is stopping (then there is no retry)."""
        run = current_run(self.crawler) if self.crawler is not None else None
        if run is None:
            if delay > 0:
                await asyncio.sleep(delay)
            return True
        return await run.wait(delay)

    def delay_for(self, request, response=None) -> float:
        attempt = request.meta.get("retry_times", 0)
        delay = self.backoff_base * (2**attempt)
        if response is not None:
            retry_after = retry_after_seconds(response.headers.get(b"Retry-After"))
            if retry_after is not None:
                delay = max(delay, retry_after)
        return min(delay, self.backoff_max)

    async def process_response(self, request, response):
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        retry = self._retry(request, response_status_message(response.status))
        if retry is None:
            return response
        delay = self.delay_for(request, response)
        if delay > 0:
            logger.info("retrying %s in %.1f s (HTTP %s)", request.url, delay, response.status)
        if not await self._wait(delay):
            return response
        return self._pending(retry)

    async def process_exception(self, request, exception):
        if not isinstance(exception, self.exceptions_to_retry) or request.meta.get("dont_retry"):
            return None
        retry = self._retry(request, exception)
        if retry is None:
            return None
        if not await self._wait(self.delay_for(request)):
            return None
        return self._pending(retry)

    def _pending(self, retry):
        """Note the retry until it is sent: if the run stops first, CrawlRun records it."""
        run = current_run(self.crawler) if self.crawler is not None else None
        if run is not None:
            run.retries_pending[retry.url] = retry
        return retry

    def process_request(self, request):
        if request.meta.get("retry_times"):
            run = current_run(self.crawler) if self.crawler is not None else None
            if run is not None:
                run.retries_pending.pop(request.url, None)
        return None


class KremlinHostsOnlyMiddleware:
    """No request leaves for a host other than kremlin.ru / en.kremlin.ru (and their www.),
    and the Wayback Machine (`KREMLIN_WAYBACK_URL`) when the run may use it (-a source=wayback
    or auto). With -a source=wayback no request goes to a kremlin host at all; with auto, none
    once the site has been found unusable (the spider's `site_unusable`).

    Scrapy's own offsite filter lets a request with `dont_filter=True` through, and event
    requests carry it (conditional refetches, retries): without this a 302 to another host
    would be followed and its page parsed under the event's id. The IgnoreRequest reaches the
    request's errback, which records it (stage 'fetch', reason 'offsite …'); the redirect
    answer itself is in `fetches` and the WARC."""

    def __init__(self, crawler=None):
        self.crawler = crawler
        base = crawler.settings.get("KREMLIN_WAYBACK_URL") if crawler else None
        self.wayback = wayback.wayback_host(base) if base else None

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_request(self, request):
        spider = self.crawler.spider if self.crawler is not None else None
        source = getattr(spider, "source", "site")
        if urls.lang_of_host(request.url) is not None:
            if source == "wayback":
                raise IgnoreRequest(
                    f"not requested: {request.url} is on kremlin.ru and the run reads only "
                    "the Internet Archive (--source wayback)"
                )
            unusable = getattr(spider, "site_unusable", None)
            if unusable:
                raise IgnoreRequest(f"not requested: the site is not used any more ({unusable})")
            return None
        if source != "site" and self.wayback and _host(request.url) == self.wayback:
            return None
        origin = (request.meta.get("redirect_urls") or [None])[0]
        if origin:
            raise IgnoreRequest(f"offsite redirect from {origin} to {request.url}: not followed")
        raise IgnoreRequest(f"offsite: {request.url} is not on kremlin.ru: not requested")


# Scrapy raises some of these without a message.
_EXCEPTION_NOTES = {
    "ResponseDataLossError": "the connection closed before the whole body (Content-Length) arrived",
    "DownloadCancelledError": "the body is larger than DOWNLOAD_MAXSIZE",
}


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def exception_text(exception: BaseException) -> str:
    """What went wrong, in words, even for exceptions raised without a message."""
    return str(exception) or _EXCEPTION_NOTES.get(type(exception).__name__, "(no message)")


def retry_after_seconds(value: bytes | str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


# -- first contact: is a host reachable at all? ----------------------------------------------

# How a request failed before any answer, by the exception's class (Scrapy 2.19 names, with the
# Twisted ones it may still let through); TLS is told by the message.
_NETWORK_FAILURES = {
    "CannotResolveHostError": "dns",
    "DNSLookupError": "dns",
    "DownloadConnectionRefusedError": "refused",
    "ConnectionRefusedError": "refused",
    "DownloadTimeoutError": "timeout",
    "TimeoutError": "timeout",
    "TCPTimedOutError": "timeout",
    "NoRouteError": "network",
    "ConnectError": "network",
    "ConnectingCancelledError": "network",
}


def network_failure(exception: BaseException) -> str | None:
    """'dns', 'refused', 'timeout', 'tls' or 'network' for a failure to reach a host at all;
    None for anything else (an answer cut short, a bug)."""
    text = exception_text(exception)
    if any(word in text for word in ("SSL", "TLS", "certificate", "handshake")):
        return "tls"
    for cls in type(exception).__mro__:
        if cls.__name__ in _NETWORK_FAILURES:
            return _NETWORK_FAILURES[cls.__name__]
    return None


def describe_failure(kind: str, host: str, detail: str, proxy: str | None, timeout: float) -> str:
    """What failed, in a user's words."""
    via = f" through the proxy {proxy}" if proxy else ""
    if kind == "dns":
        return f"DNS: the name {host} does not resolve (no network, or no DNS server answers)"
    if kind == "refused":
        if proxy:
            return f"connection refused by the proxy {proxy} (http_proxy): is it running?"
        return f"connection refused by {host}: the host answers no one on this port, or not you"
    if kind == "timeout":
        return (
            f"timeout: no answer{via} within {timeout:g} s (the site drops connections from "
            f"many networks outside Russia; -s KREMLIN_FIRST_CONTACT_TIMEOUT=60 waits longer)"
        )
    if kind == "tls":
        return f"TLS: the secure connection{via} failed ({detail})"
    if kind == "refusals":
        return f"refused: every request was answered {detail} before any page came (blocked)"
    return f"network: {detail}{via}"


@dataclass
class _Contact:
    answered: bool = False  # any answer other than a refusal, this run
    failures: int = 0  # network failures before the first answer
    refusals: int = 0  # 403/429 before the first answer (robots.txt aside)
    failed: str | None = None  # what failed, once the host is given up
    kind: str | None = None


class ReachabilityMiddleware:
    """A host that never answers is said so within seconds, not after minutes of retries.

    Until a host has answered once in this run, its requests wait at most
    KREMLIN_FIRST_CONTACT_TIMEOUT seconds, and a network failure (DNS, connection refused,
    timeout, TLS) is final after KREMLIN_FIRST_CONTACT_ATTEMPTS tries (a timeout after one: it
    has waited already), as are as many refusals (403/429) of pages. Then the host is given
    up: one warning names it and what failed, its later requests are not sent (their errbacks
    record them), and when no host of the run is left, the run stops as 'unreachable' (runs
    status and exit code 5) -- or 'blocked' (exit code 3) when every host refused. With
    -a source=auto a site that cannot be reached is not the end: the rest of the run reads the
    Internet Archive. Once a host has answered, its failures are ordinary ones (retried, then
    recorded)."""

    REFUSALS = (403, 429)

    def __init__(self, crawler):
        self.crawler = crawler
        settings = crawler.settings
        self.timeout = settings.getfloat("KREMLIN_FIRST_CONTACT_TIMEOUT")
        self.attempts = max(1, settings.getint("KREMLIN_FIRST_CONTACT_ATTEMPTS"))
        self.download_timeout = settings.getfloat("DOWNLOAD_TIMEOUT")
        self.hosts: dict[str, _Contact] = {}
        robots = logging.getLogger("scrapy.downloadermiddlewares.robotstxt")
        if _quiet_network_failures not in robots.filters:  # once per process, not per crawl
            robots.addFilter(_quiet_network_failures)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_request(self, request):
        host = _host(request.url)
        contact = self.hosts.setdefault(host, _Contact())
        if contact.failed:
            raise IgnoreRequest(f"{host} cannot be reached ({contact.failed})")
        if not contact.answered and self.timeout > 0:
            request.meta[Meta.FIRST_CONTACT] = True
            request.meta["download_timeout"] = min(
                self.timeout, request.meta.get("download_timeout") or self.timeout
            )
        elif request.meta.pop(Meta.FIRST_CONTACT, None):
            request.meta["download_timeout"] = self.download_timeout
        return None

    def process_response(self, request, response):
        contact = self.hosts.setdefault(_host(request.url), _Contact())
        if contact.answered or contact.failed:
            return response
        if response.status not in self.REFUSALS:
            contact.answered = True
            return response
        if urlsplit(request.url).path == "/robots.txt":
            return response  # a refused robots.txt alone says nothing of the pages
        contact.refusals += 1
        if contact.refusals >= self.attempts:
            request.meta["dont_retry"] = True
            self._give_up(request, "refusals", f"HTTP {response.status}", status=response.status)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, IgnoreRequest):
            return None
        contact = self.hosts.setdefault(_host(request.url), _Contact())
        kind = network_failure(exception)
        if contact.answered or contact.failed or kind is None:
            return None
        contact.failures += 1
        if kind == "timeout" or contact.failures >= self.attempts:
            request.meta["dont_retry"] = True
            self._give_up(request, kind, exception_text(exception))
        return None

    def _give_up(self, request, kind: str, detail: str, status: int | None = None) -> None:
        host = _host(request.url)
        contact = self.hosts[host]
        proxy = request.meta.get("proxy")
        contact.kind = kind
        contact.failed = describe_failure(kind, host, detail, proxy, self.timeout)
        stats = self.crawler.stats
        failed = dict(stats.get_value("kremlin/hosts_failed") or {})
        failed[host] = contact.failed
        stats.set_value("kremlin/hosts_failed", failed)
        if any(c.answered or not c.failed for c in self.hosts.values()):
            # another host answers, or has not been tried to the end yet: the run goes on
            logger.warning("%s cannot be reached: %s", host, contact.failed)
            return
        logger.info("%s cannot be reached: %s", host, contact.failed)
        spider = self.crawler.spider
        if (
            getattr(spider, "source", "site") == "auto"
            and not getattr(spider, "site_unusable", None)
            and all(urls.lang_of_host(f"http://{h}/") for h in self.hosts)
        ):
            spider.site_refuses(f"{host}: {contact.failed}", url=request.url, status=status)
            return
        reason = (
            "blocked" if all(c.kind == "refusals" for c in self.hosts.values()) else ("unreachable")
        )
        message = "; ".join(f"{h}: {c.failed}" for h, c in sorted(self.hosts.items()))
        run = current_run(self.crawler)
        if run is not None:
            run.stop(reason, f"no host answered ({message})", url=request.url, status=status)
        else:
            stats.set_value(f"kremlin/{reason}", True)
            logger.error("stopping the run (%s): %s", reason, message)
            self._closing = deferred_from_coro(
                self.crawler.engine.close_spider_async(reason=reason)
            )


def _quiet_network_failures(record: logging.LogRecord) -> bool:
    """robots.txt that could not be fetched for a network failure: one line, no traceback
    (ReachabilityMiddleware says what failed); other errors keep theirs."""
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None and network_failure(exc) is not None:
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True
