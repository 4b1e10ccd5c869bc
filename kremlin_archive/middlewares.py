"""Downloader middlewares: record every exchange, ask conditionally, retry politely, brake.

Order (see settings.DOWNLOADER_MIDDLEWARES; responses travel from high numbers to low):
610 FetchRecorderMiddleware — every response as received (3xx/4xx/5xx and each retry attempt
    too, before redirect/retry consume it) goes to WARC and a `fetches` row; transport errors
    get a `fetches` row with `error`.
570 ConditionalRequestMiddleware — If-None-Match / If-Modified-Since from the previous fetch.
560 RefusalBrakeMiddleware — after KREMLIN_BRAKE_REFUSALS consecutive 403/429 answers: pause
    once for KREMLIN_BRAKE_PAUSE seconds, and if the site still refuses, stop the run as
    'blocked'. A refusal is never taken for "no events".
550 BackoffRetryMiddleware — Scrapy's retry, but waiting (exponential backoff, Retry-After
    honoured) before the retry is sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import gzip
import hashlib
import logging
import zlib
from urllib.parse import urlsplit

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.utils.response import response_status_message

from . import db as dbmod
from .extensions import ArchiveRun

logger = logging.getLogger(__name__)


def _archive(crawler) -> ArchiveRun | None:
    return crawler.get_extension(ArchiveRun)


def request_kind(url: str, meta: dict) -> str:
    if meta.get("kremlin_kind"):
        return meta["kremlin_kind"]
    path = urlsplit(url).path
    if path == "/robots.txt":
        return "robots"
    return "other"


def decoded_body(headers: dict[str, str], body: bytes) -> bytes:
    """The entity body without Content-Encoding (what the parser sees), or the raw bytes if
    they cannot be decoded."""
    encoding = headers.get("content-encoding", "").lower().strip()
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error):
        return body
    return body


def _header_pairs(headers) -> list[tuple[str, str]]:
    pairs = []
    for name, values in headers.items():
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        for value in values:
            pairs.append((key, value.decode("latin-1") if isinstance(value, bytes) else str(value)))
    return pairs


class FetchRecorderMiddleware:
    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_response(self, request, response):
        run = _archive(self.crawler)
        if run is None or run.db is None:
            return response
        fetched_at = dt.datetime.now(dt.UTC)
        response_headers = _header_pairs(response.headers)
        lower = {k.lower(): v for k, v in response_headers}
        payload = decoded_body(lower, response.body)
        sha = hashlib.sha256(payload).hexdigest()
        row = {
            "run_id": run.run_id,
            "spider": self.crawler.spider.name if self.crawler.spider else None,
            "kind": request_kind(request.url, request.meta),
            "event_id": request.meta.get("kremlin_event_id"),
            "requested_url": request.meta.get("kremlin_source_url", request.url),
            "url": request.url,
            "final_url": response.url,
            "method": request.method,
            "status": response.status,
            "fetched_at": fetched_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "content_type": lower.get("content-type"),
            "content_length": len(payload),
            "etag": lower.get("etag"),
            "last_modified": lower.get("last-modified"),
            "payload_sha256": sha if response.status != 304 else None,
        }
        if run.warc is not None:
            try:
                row.update(
                    self._write_warc(
                        run, request, response, response_headers, payload, sha, fetched_at
                    )
                )
            except Exception as exc:  # the fetch row must exist even if WARC writing failed
                logger.exception("WARC write failed for %s", request.url)
                run.record_error(url=request.url, stage="warc", reason=repr(exc))
        fetch_id = dbmod.record_fetch(run.db, row)
        self.crawler.stats.inc_value("kremlin/fetches")
        request.meta["kremlin_fetch"] = {**row, "id": fetch_id}
        return response

    def _write_warc(self, run, request, response, response_headers, payload, sha, fetched_at):
        revisit_of = None
        if response.status == 200 and payload:
            revisit_of = dbmod.last_capture_of_payload(run.db, request.url, sha)
        location, _request_location = run.warc.write_exchange(
            url=request.url,
            method=request.method,
            request_headers=_header_pairs(request.headers),
            status=response.status,
            reason=response_status_message(response.status).partition(" ")[2],
            response_headers=response_headers,
            body=payload,
            fetched_at=fetched_at,
            remote_ip=str(response.ip_address) if response.ip_address else None,
            revisit_of=revisit_of,
        )
        return {
            "warc_filename": location.filename,
            "warc_offset": location.offset,
            "warc_length": location.length,
            "warc_record_id": location.record_id,
            "warc_record_type": location.record_type,
            "warc_payload_digest": location.payload_digest,
        }

    def process_exception(self, request, exception):
        run = _archive(self.crawler)
        if run is None or run.db is None:
            return None
        row = {
            "run_id": run.run_id,
            "spider": self.crawler.spider.name if self.crawler.spider else None,
            "kind": request_kind(request.url, request.meta),
            "event_id": request.meta.get("kremlin_event_id"),
            "requested_url": request.meta.get("kremlin_source_url", request.url),
            "url": request.url,
            "method": request.method,
            "error": f"{type(exception).__name__}: {exception}"[:500],
            "fetched_at": dbmod.utc_now(),
        }
        fetch_id = dbmod.record_fetch(run.db, row)
        self.crawler.stats.inc_value("kremlin/fetches")
        request.meta["kremlin_fetch"] = {**row, "id": fetch_id}
        return None


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
        if not (self.enabled and request.meta.get("kremlin_conditional")):
            return None
        run = _archive(self.crawler)
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


class RefusalBrakeMiddleware:
    REFUSALS = (403, 429)

    def __init__(self, crawler):
        self.crawler = crawler
        self.limit = crawler.settings.getint("KREMLIN_BRAKE_REFUSALS")
        self.pause = crawler.settings.getfloat("KREMLIN_BRAKE_PAUSE")
        self.consecutive = 0
        self.paused_once = False
        self.blocked = False

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def process_response(self, request, response):
        if response.status not in self.REFUSALS:
            if response.status < 400:
                self.consecutive = 0
                self.paused_once = False
            return response
        self.consecutive += 1
        self.crawler.stats.inc_value("kremlin/refusals")
        if self.limit <= 0 or self.consecutive < self.limit or self.blocked:
            return response
        if not self.paused_once and self.pause > 0:
            self.paused_once = True
            self.consecutive = 0
            logger.warning(
                "%d consecutive refusals (last %s for %s): pausing the crawl for %.0f s",
                self.limit, response.status, request.url, self.pause,
            )  # fmt: skip
            engine = self.crawler.engine
            engine.pause()
            try:
                await asyncio.sleep(self.pause)
            finally:
                engine.unpause()
            return response
        self.blocked = True
        self.crawler.stats.set_value("kremlin/blocked", True)
        logger.error(
            "the site keeps refusing (%d consecutive %s answers): stopping the run as blocked",
            self.limit, response.status,
        )  # fmt: skip
        await self.crawler.engine.close_spider_async(reason="blocked")
        return response


class BackoffRetryMiddleware(RetryMiddleware):
    """RetryMiddleware that waits before retrying: base * 2**attempt seconds, or what
    Retry-After asks for (capped at KREMLIN_RETRY_BACKOFF_MAX), without holding other requests."""

    def __init__(self, settings):
        super().__init__(settings)
        self.backoff_base = settings.getfloat("KREMLIN_RETRY_BACKOFF_BASE")
        self.backoff_max = settings.getfloat("KREMLIN_RETRY_BACKOFF_MAX")

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
            await asyncio.sleep(delay)
        return retry

    async def process_exception(self, request, exception):
        if not isinstance(exception, self.exceptions_to_retry) or request.meta.get("dont_retry"):
            return None
        retry = self._retry(request, exception)
        if retry is None:
            return None
        delay = self.delay_for(request)
        if delay > 0:
            await asyncio.sleep(delay)
        return retry


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
