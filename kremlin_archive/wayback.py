"""The Internet Archive's Wayback Machine as a second source, pure: the URLs of its CDX index and
of raw captures, and reading their answers. No I/O; the spiders request, `parsing` parses.

- CDX queries (`cdx_query_url`): a prefix of an event path of one host (`en.kremlin.ru/events/
  president/news/629` covers the ids 62,900-62,999, and 6,290-6,299), JSON output, only 200
  captures, collapsed per URL, paged with resume keys. `read_cdx` reads an answer into rows and
  the key that resumes it, and refuses anything else by name (`CdxError`).
- `id_prefixes(lo, hi)`: the fewest such prefixes that cover an id range.
- `capture_url(base, original, timestamp)`: the raw capture, `/web/<timestamp>id_/<original>`
  (the page as captured, without the archive's rewriting). A timestamp that is not a capture's
  is redirected by the archive to the nearest capture; `NEWEST` asks for the newest.
- `read_capture_url(url)`: (timestamp, original URL) of a raw capture URL, so that a record
  says what it is a copy of (`items.fetch_record` reads the capture time it was sent).

Facts and API notes: SITE.md §9, and the Wayback CDX server's README.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from . import urls

DEFAULT_URL = "http://web.archive.org"
CDX_FIELDS = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length")
# Event paths the index is asked about, per host: the news path holds every event; the
# transcripts sub-lists are another address of some of them.
EVENT_PATHS = ("events/president/news/", "events/president/transcripts/")
_TIMESTAMP = re.compile(r"^[0-9]{14}$")
_CAPTURE = re.compile(r"^/web/([0-9]{1,14})(?:id_|[a-z]{2}_)?/(.+)$")
NEWEST = "99991231235959"  # later than any capture: the archive redirects to the newest


class CdxError(ValueError):
    """An answer of the CDX index that is not what the query asked for."""


@dataclass(frozen=True)
class CdxRow:
    timestamp: str  # yyyyMMddhhmmss, UTC
    original: str  # the URL as captured
    statuscode: str
    mimetype: str
    digest: str

    @property
    def event(self) -> urls.EventURL | None:
        """The event the captured URL names, or None (not an event page address)."""
        try:
            return urls.parse_event_url(self.original)
        except ValueError:
            return None


def wayback_host(base: str) -> str:
    """The host name of a Wayback endpoint (`KREMLIN_WAYBACK_URL`)."""
    host = (urlsplit(base).hostname or "").lower()
    if not host:
        raise ValueError(f"not a Wayback endpoint URL: {base!r}")
    return host


def cdx_query_url(
    base: str,
    prefix: str,
    *,
    limit: int = 1000,
    resume_key: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> str:
    """The CDX query for every URL beginning with `prefix` (host and path, no scheme), one
    row per URL (its first 200 capture in the range), JSON, `limit` rows a page."""
    params = [
        ("url", prefix),
        ("matchType", "prefix"),
        ("output", "json"),
        ("fl", ",".join(CDX_FIELDS)),
        ("filter", "statuscode:200"),
        ("collapse", "urlkey"),
        ("limit", str(limit)),
        ("showResumeKey", "true"),
    ]
    if since:
        params.append(("from", since.strftime("%Y%m%d")))
    if until:
        params.append(("to", until.strftime("%Y%m%d")))
    if resume_key:
        params.append(("resumeKey", resume_key))
    return f"{base.rstrip('/')}/cdx/search/cdx?{urlencode(params)}"


def read_cdx(body: bytes) -> tuple[list[CdxRow], str | None]:
    """The rows of a JSON CDX answer and its resume key (None on the last page). The first row
    names the fields; the resume key, when there is one, follows an empty row."""
    try:
        data = json.loads(body.decode("utf-8") if body.strip() else "[]")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CdxError(f"not JSON ({exc})") from None
    if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
        raise CdxError("not a JSON array of rows")
    if not data:
        return [], None
    header = data[0]
    missing = [f for f in ("timestamp", "original", "statuscode") if f not in header]
    if missing:
        raise CdxError(f"the first row does not name the fields {missing}: {header!r}"[:300])
    resume = None
    rows = data[1:]
    if len(rows) >= 2 and rows[-2] == [] and len(rows[-1]) == 1:
        resume = str(rows[-1][0])
        rows = rows[:-2]
    out = []
    for row in rows:
        if len(row) != len(header) or not all(isinstance(v, str) for v in row):
            raise CdxError(f"a row does not match the fields: {row!r}"[:300])
        values = dict(zip(header, row, strict=True))
        if not _TIMESTAMP.match(values["timestamp"]):
            raise CdxError(f"a row has no 14-digit timestamp: {row!r}"[:300])
        out.append(
            CdxRow(
                timestamp=values["timestamp"],
                original=values["original"],
                statuscode=values["statuscode"],
                mimetype=values.get("mimetype", ""),
                digest=values.get("digest", ""),
            )
        )
    return out, resume


def id_prefixes(lo: int, hi: int) -> list[str]:
    """The fewest decimal prefixes whose ids (of the same number of digits) cover lo..hi:
    62888-63088 -> 62888, 62889, 6289, 629, 6300 … 6307, 63080 … 63088."""
    if lo < 1 or hi < lo:
        raise ValueError(f"not an id range: {lo}-{hi}")
    out: list[str] = []
    n = lo
    while n <= hi:
        step = 1
        # the largest block 10^k that starts at n and stays within hi
        while n % (step * 10) == 0 and n + step * 10 - 1 <= hi:
            step *= 10
        digits = len(str(step)) - 1
        out.append(str(n)[: len(str(n)) - digits] if digits else str(n))
        n += step
    # A prefix also stands for shorter and longer ids (629 for 6,290-6,299 and 629,000+):
    # the caller keeps the ids of its range.
    return list(dict.fromkeys(out))


def capture_url(base: str, original: str, timestamp: str = NEWEST) -> str:
    """The raw capture of `original` nearest `timestamp`."""
    return f"{base.rstrip('/')}/web/{timestamp}id_/{original}"


def read_capture_url(url: str) -> tuple[str, str] | None:
    """(timestamp, original URL) of a Wayback capture URL, or None for any other URL."""
    parts = urlsplit(url)
    match = _CAPTURE.match(parts.path + (f"?{parts.query}" if parts.query else ""))
    if not match:
        return None
    original = match.group(2)
    if original.startswith(("http:/", "https:/")) and not original.startswith(
        ("http://", "https://")
    ):
        original = original.replace(":/", "://", 1)  # some clients squeeze the double slash
    return match.group(1), original


def viewer_url(base: str, original: str, timestamp: str) -> str:
    """The capture as the archive shows it to a reader (with its banner), for links."""
    return f"{base.rstrip('/')}/web/{timestamp}/{original}"


def best_capture(rows: Iterable[CdxRow]) -> dict[str, CdxRow]:
    """Per event key, the captured address to fetch: the canonical page first, then a
    transcripts address, then the print version (the same template); photos and videos tabs
    and the text version (`/copy/`, another page) are not event pages the parser reads."""

    def rank(row: CdxRow) -> int:
        path = urlsplit(row.original).path.rstrip("/")
        if "/copy/" in path or path.endswith(("/photos", "/videos")):
            return 9
        if path.endswith("/print"):
            return 2
        if "/transcripts/" in path:
            return 1
        return 0

    best: dict[str, CdxRow] = {}
    for row in rows:
        ref = row.event
        if ref is None or rank(row) == 9:
            continue
        current = best.get(ref.key)
        better = current is None or rank(row) < rank(current)
        newer = current is not None and rank(row) == rank(current)
        if better or (newer and row.timestamp > current.timestamp):
            best[ref.key] = row
    return best


def quote_original(url: str) -> str:
    """`url` as it may stand after /web/<timestamp>id_/ (spaces and the like escaped)."""
    return quote(url, safe=":/?&=%#;,+@~!$*'()[]")
