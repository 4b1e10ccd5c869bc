"""The one schema: every source (live crawl, WARC re-parse, legacy text import) yields these.

`Transcript` is a plain dataclass so that it works as a Scrapy item (itemadapter supports
dataclasses), in tests without an engine, and in `db.py` via `dataclasses.asdict`.

Content fields are filled by `parsing.parse_event`; provenance fields are filled by the crawl
(or the re-parse / import) that produced the record. `CONTENT_FIELDS` lists what counts as the
event's content: a change in any of them is a new revision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

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

    @property
    def event_id(self) -> str:
        """Primary key in the database: `ru-66419`."""
        return f"{self.lang}-{self.kremlin_id}"

    @property
    def text(self) -> str:
        """The body as one string, a paragraph per line."""
        return "\n".join(self.paragraphs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["utterances"] = [
            u if isinstance(u, Utterance) else Utterance(**u) for u in kwargs.get("utterances", [])
        ]
        kwargs["tags"] = [t if isinstance(t, Tag) else Tag(**t) for t in kwargs.get("tags", [])]
        return cls(**kwargs)


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

PROVENANCE_FIELDS = tuple(
    f.name
    for f in fields(Transcript)
    if f.name not in CONTENT_FIELDS and f.name not in ("kremlin_id", "lang")
)


@dataclass
class CrawlError:
    """Something that could not be fetched, parsed or stored; the store pipeline records it."""

    url: str | None
    stage: str  # input | fetch | parse | validate | store
    reason: str
    status: int | None = None
    fetch_id: int | None = None


def http_failure_reason(status: int) -> str:
    """How an error status is worded in `errors.reason` (a refusal is never "not found")."""
    return {
        404: "not found (HTTP 404)",
        403: "refused by the site (HTTP 403)",
        429: "rate-limited by the site (HTTP 429)",
    }.get(status, f"HTTP {status}")
