"""The one schema: every source (live crawl, WARC re-parse, legacy text import) yields these.

`Transcript` is a plain dataclass so that it works as a Scrapy item (itemadapter supports
dataclasses), in tests without an engine, and in `db.py` via `dataclasses.asdict`.

Content fields are filled by `parsing.parse_event` (with the parser's version); provenance
fields by `Transcript.set_provenance` from the fetch that produced the record (crawl or
re-parse) or by the legacy import. `CONTENT_FIELDS` lists what counts as the event's content: a
change in any of them is a new revision. `validation_problems` is what every record must pass
before it is stored, whatever its source.

`fetch_record` builds a row of the `fetches` table -- one HTTP exchange or transport failure --
from what the crawl's recorder or the re-parse of a WARC record knows about it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from . import urls

LANGS = ("ru", "en")

# Tag kinds. Geography covers both countries (/catalog/countries/XX) and Russian regions
# (/catalog/regions/XXX); sections are the "Published in sections" links.
TAG_KINDS = ("topic", "person", "geography", "section")

REQUIRED_FIELDS = ("kremlin_id", "lang", "url", "title", "published_at")


@dataclass(frozen=True)
class Utterance:
    """One paragraph-run of one speaker. `speaker` is None for narration before the first label."""

    seq: int
    speaker: str | None
    text: str


@dataclass(frozen=True)
class Tag:
    kind: str
    name: str
    url: str | None = None


@dataclass(frozen=True)
class Mention:
    """A link to a person's catalog page inside the text (a hover card, SITE.md §2).

    `catalog_id` is the site's person id (`/catalog/persons/<id>/…`); `text` the link's visible
    text (``Sergei Chemezov``, or one part of a name split over two links); `card_name` and
    `card_title` the hover card's name (surname first, as the catalog writes it) and
    description, when the card is there; `turn` the `seq` of the speaker turn whose label holds
    the link, None for a link in the lead or in running text."""

    catalog_id: int
    text: str
    card_name: str | None = None
    card_title: str | None = None
    turn: int | None = None


@dataclass
class Transcript:
    # -- content (parsing.py) -------------------------------------------------------------
    kremlin_id: int
    lang: str
    url: str  # canonical page URL, http://kremlin.ru/events/president/news/<id>
    title: str
    published_at: str  # ISO 8601 with Moscow's offset on that date
    lead: str = ""
    place: str | None = None
    paragraphs: list[str] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    updated_at: str | None = None  # "Last updated at" where the page shows it
    twin_url: str | None = None  # the same event on the other language site
    announce_date: str | None = None  # announcements: the announced day (YYYY-MM-DD)
    # Links to persons in the lead and body, in page order. Not content (CONTENT_FIELDS): what
    # the page says is its text; the links are evidence of who is who (persons.py).
    mentions: list[Mention] = field(default_factory=list)

    # -- provenance (crawl / reparse / import) -------------------------------------------
    source_url: str | None = None  # as requested / as given by the user
    final_url: str | None = None  # after redirects
    fetched_at: str | None = None  # UTC, ISO 8601
    status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    payload_sha256: str | None = None
    spider: str | None = None
    run_id: str | None = None
    parser_version: str | None = None
    fetch_id: int | None = None
    origin: str | None = None  # "crawl", "reparse", "import:<file name>"
    warc_filename: str | None = None
    warc_offset: int | None = None
    warc_length: int | None = None
    warc_record_id: str | None = None
    source: str | None = None  # site | wayback: who served the content
    capture_time: str | None = None  # wayback: when the archive captured the page (UTC)
    archive_url: str | None = None  # wayback: the capture fetched
    original_url: str | None = None  # wayback: the URL the archive captured
    site_answer: str | None = None  # auto: what the site said when the copy was taken instead

    @property
    def event_id(self) -> str:
        """Primary key in the database: `ru-66419`."""
        return urls.event_key(self.lang, self.kremlin_id)

    @property
    def text(self) -> str:
        """The body as one string, a paragraph per line."""
        return "\n".join(self.paragraphs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        # An exported turn carries who said it too (person_id, person, …): derived, not content.
        turn_keys = {f.name for f in fields(Utterance)}
        kwargs["utterances"] = [
            u if isinstance(u, Utterance) else Utterance(**{k: u[k] for k in turn_keys if k in u})
            for u in kwargs.get("utterances", [])
        ]
        kwargs["tags"] = [t if isinstance(t, Tag) else Tag(**t) for t in kwargs.get("tags", [])]
        kwargs["mentions"] = [
            m if isinstance(m, Mention) else Mention(**m) for m in kwargs.get("mentions", [])
        ]
        return cls(**kwargs)

    def set_provenance(
        self,
        fetch: Mapping[str, Any],
        *,
        source_url: str,
        origin: str,
        spider: str | None,
        run_id: str | None,
    ) -> Transcript:
        """Where this record's content came from: the fetch (a `fetches` row, with its `id`
        once recorded), the URL as asked for, the origin (crawl | reparse), the spider and run.
        Returns the record."""
        self.source_url = source_url
        for name in _FETCH_PROVENANCE:
            setattr(self, name, fetch.get(name))
        self.fetch_id = fetch.get("id")
        self.origin = origin
        self.spider = spider
        self.run_id = run_id
        return self


CONTENT_FIELDS = (
    "url",
    "title",
    "lead",
    "published_at",
    "place",
    "paragraphs",
    "utterances",
    "tags",
    "sections",
    "updated_at",
    "twin_url",
    "announce_date",
)

# Provenance a record takes from the fetch its content came from (a `fetch_record` row).
_FETCH_PROVENANCE = (
    "final_url", "fetched_at", "status", "etag", "last_modified", "payload_sha256",
    "warc_filename", "warc_offset", "warc_length", "warc_record_id", "source", "capture_time",
    "archive_url", "original_url",
)  # fmt: skip


def validation_problems(t: Transcript) -> list[str]:
    """What is wrong with a record, as `<field>/<problem>` strings (empty when valid)."""
    problems = [f"{name}/missing" for name in REQUIRED_FIELDS if not getattr(t, name)]
    if t.lang and t.lang not in LANGS:
        problems.append("lang/invalid")
    if t.published_at:
        try:
            parsed = dt.datetime.fromisoformat(t.published_at)
        except ValueError:
            problems.append("published_at/invalid")
        else:
            if parsed.tzinfo is None:
                problems.append("published_at/invalid")
    if t.kremlin_id is not None and (not isinstance(t.kremlin_id, int) or t.kremlin_id <= 0):
        problems.append("kremlin_id/invalid")
    seqs = [u.seq for u in t.utterances]
    if seqs != sorted(set(seqs)):
        problems.append("utterances/invalid")
    if any(not u.text for u in t.utterances):
        problems.append("utterances/invalid")
    return problems


def fetch_record(
    *,
    run_id: str | None,
    spider: str | None,
    kind: str,
    event_id: str | None,
    requested_url: str,
    url: str,
    fetched_at: str,
    method: str = "GET",
    final_url: str | None = None,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    payload: bytes | None = None,
    error: str | None = None,
    warc: Any = None,
    source: str = "site",
    capture: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A row of `fetches`: one exchange (`status`, the response `headers` with lower-case
    names, the decoded `payload`) or one failure (`error`, no status), and where its WARC
    record is (`warc`: a `warc.WarcLocation`). A 304 has no payload digest. `source` says who
    answered: the site, or the Wayback Machine; for a capture (`capture`: its timestamp and
    original URL, read from `url`) the archive URL, the capture time (its Memento-Datetime
    header, else the timestamp) and the original URL are kept too."""
    headers = headers or {}
    row: dict[str, Any] = {
        "source": source,
        "run_id": run_id,
        "spider": spider,
        "kind": kind,
        "event_id": event_id,
        "requested_url": requested_url,
        "url": url,
        "method": method,
        "fetched_at": fetched_at,
    }
    if status is not None:
        row.update(
            final_url=final_url or url,
            status=status,
            content_type=headers.get("content-type"),
            content_length=len(payload or b""),
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            payload_sha256=hashlib.sha256(payload or b"").hexdigest() if status != 304 else None,
        )
    if error:
        row["error"] = error
    if capture:
        timestamp, original = capture
        row.update(
            archive_url=url,
            original_url=original,
            # A timestamp asked for is a capture's only when the capture answers (not the
            # archive's redirect to the nearest one).
            capture_time=_memento_time(headers.get("memento-datetime"))
            or (_timestamp_time(timestamp) if status and 200 <= status < 300 else None),
        )
    if warc is not None:
        row.update(
            warc_filename=warc.filename,
            warc_offset=warc.offset,
            warc_length=warc.length,
            warc_record_id=warc.record_id,
            warc_record_type=warc.record_type,
            warc_payload_digest=warc.payload_digest,
        )
    return row


@dataclass
class CrawlError:
    """Something that could not be fetched, parsed or stored; the store pipeline records it
    (and, for an event, what it says about the event in the coverage ledger)."""

    url: str | None
    stage: str  # input | fetch | parse | validate | store | discovery
    reason: str
    status: int | None = None
    fetch_id: int | None = None
    event_id: str | None = None  # the event asked for (ru-66419), when it was one
    source: str = "site"  # who answered: site | wayback


@dataclass
class Listed:
    """Events a listing page or the feed names: (kremlin_id, publication day) in one language.
    They enter the coverage ledger as `listed` until they are fetched."""

    lang: str
    items: list[tuple[int, str]]  # (kremlin_id, YYYY-MM-DD)
    url: str
    fetch_id: int | None = None


@dataclass
class Observed:
    """What a fetch says of an event that is neither stored nor an error: e.g. its address
    answers with another event's page (`not_event`). The store pipeline notes it in the
    coverage ledger."""

    event_id: str
    state: str
    answer: str
    fetch_id: int | None = None


# -- the coverage ledger: what the archive knows of each (language, id) ----------------------

STORED, ABSENT, NOT_EVENT, REFUSED, FAILED, LISTED = (
    "stored", "absent", "not_event", "refused", "failed", "listed"
)  # fmt: skip
COVERAGE_STATES = (STORED, ABSENT, NOT_EVENT, REFUSED, FAILED, LISTED)
# Known answers: the id is accounted for. Refused, failed and listed are not (yet).
ACCOUNTED = frozenset({STORED, ABSENT, NOT_EVENT})
# Parse errors that mean "the site has no event page there" or "not an event page".
_ABSENT_REASONS = ("not-found-page",)
_NOT_EVENT_REASONS = (
    "acts-page", "listing-page", "photos-tab", "videos-tab", "id-mismatch", "lang-mismatch",
    "offsite",
)  # fmt: skip


def coverage_state(stage: str, status: int | None, reason: str, source: str = "site") -> str:
    """The ledger state an error of an event page stands for: `absent` (404, or the site's
    404 page), `not_event` (another kind of page, another id, a redirect elsewhere),
    `refused` (403/429), else `failed` (5xx, timeouts, cut-off or broken pages: ask again).
    An HTTP error of the Wayback Machine says nothing of the site: `failed`."""
    if source == "wayback" and not reason.startswith(_ABSENT_REASONS + _NOT_EVENT_REASONS):
        return FAILED
    if status == 404 or reason.startswith(_ABSENT_REASONS):
        return ABSENT
    if reason.startswith(_NOT_EVENT_REASONS):
        return NOT_EVENT
    if status in (403, 429):
        return REFUSED
    return FAILED


def http_failure_reason(status: int) -> str:
    """How an error status is worded in `errors.reason` (a refusal is never "not found")."""
    return {
        404: "not found (HTTP 404)",
        403: "refused by the site (HTTP 403)",
        429: "rate-limited by the site (HTTP 429)",
    }.get(status, f"HTTP {status}")


def _timestamp_time(timestamp: str) -> str | None:
    """`20200327153000` -> `2020-03-27T15:30:00Z`; None for a partial timestamp."""
    if len(timestamp) != 14 or not timestamp.isdigit():
        return None
    moment = dt.datetime.strptime(timestamp, "%Y%m%d%H%M%S")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _memento_time(value: str | None) -> str | None:
    """A `Memento-Datetime` header (an HTTP date) as `YYYY-MM-DDTHH:MM:SSZ`, or None."""
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
