"""`urls`: fetch the event pages given as source URLs.

    scrapy crawl urls -a urls=http://kremlin.ru/events/president/news/copy/66419,…
    scrapy crawl urls -a urls_file=list.txt      (one URL per line, # comments)

Any form urls.py accepts is fetched as its canonical page (robots.txt forbids `/copy/`, so the
seed's own URL form is fetched as `/events/president/news/<id>`). Invalid entries are reported
(log + `errors` table, stage 'input') and skipped; no request is sent for them.

The run answers for every URL it requests: it is finished only when each one's event was
archived by it (stored new, changed or unchanged, or not modified). Otherwise it ends
'incomplete' (`window_complete`), naming each URL as given, the URL fetched for it and why it
was not archived: not found, another event's page, a redirect elsewhere, a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scrapy import signals

from .. import urls
from ..items import CrawlError, Observed, Transcript
from ..request_meta import Meta
from .base import EventSpider, fetched_note

NO_ANSWER = "no answer was recorded for it"
SHOWN = 10  # pages named in the message of an incomplete fetch


@dataclass
class Asked:
    """An event page the run requested: the entries naming it (as given), the URL fetched
    for it, and why it is not archived (None once it is)."""

    entries: list[str]
    fetched: str
    why_not: str | None = NO_ANSWER


def read_url_list(text: str) -> list[str]:
    """Entries of a URL list: one per line or comma-separated; blank lines and # comments out."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entries.extend(part.strip() for part in line.split(",") if part.strip())
    return entries


def read_url_file(path: str | Path) -> list[str]:
    raw = Path(path).read_bytes()
    entries = []
    for number, line in enumerate(raw.splitlines(), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            # Kept as an entry so that it is refused by name, not silently lost.
            entries.append(f"<line {number} of {path}: not UTF-8: {line[:60]!r}>")
            continue
        entries.extend(read_url_list(text))
    return entries


class UrlsSpider(EventSpider):
    name = "urls"

    def __init__(
        self,
        urls: str = "",
        urls_file: str | None = None,
        source: str = "site",
        *args,
        **kwargs,
    ):
        super().__init__(*args, source=source, **kwargs)
        self.urls = urls
        self.urls_file = urls_file
        self.entries = read_url_list(urls or "")
        if urls_file:
            self.entries.extend(read_url_file(urls_file))
        self._asked: dict[str, Asked] = {}  # event key -> what became of its request
        self._key_of: dict[str, str] = {}  # URL as given and requested -> event key

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        # What each page's answer became once the pipelines were through with it.
        crawler.signals.connect(spider.item_passed, signal=signals.item_scraped)
        crawler.signals.connect(spider.item_stopped, signal=signals.item_dropped)
        crawler.signals.connect(spider.item_stopped, signal=signals.item_error)
        return spider

    async def start(self):
        seen: set[str] = set()
        for entry in self.entries:
            try:
                ref = urls.parse_event_url(entry)
            except ValueError as exc:
                self.logger.warning("refused: %s", exc)
                yield CrawlError(url=entry[:2048], stage="input", reason=str(exc))
                continue
            if ref.url in seen:
                self._asked[ref.key].entries.append(entry)
                continue
            seen.add(ref.url)
            self._window[ref.lang].add(ref.kremlin_id)  # the run answers for each URL given
            self._asked[ref.key] = Asked([entry], ref.url)
            self._key_of[entry] = ref.key
            yield self.event_request(ref, source_url=entry, conditional=True)

    # -- what became of each URL --------------------------------------------------------------

    def parse_event(self, response):
        if response.status == 304:  # not modified: the archived event is current
            self._page_stored(response.meta.get(Meta.EVENT_ID))
        yield from super().parse_event(response)

    def _page_stored(self, key: str | None) -> None:
        if key in self._asked:
            self._asked[key].why_not = None

    def _page_missed(self, key: str | None, why: str) -> None:
        asked = self._asked.get(key)
        if asked is not None and asked.why_not is not None:
            asked.why_not = why

    def item_passed(self, item) -> None:
        """An item the pipelines passed: an event stored, an error recorded, an observation."""
        if isinstance(item, Transcript):
            self._page_stored(item.event_id)
            asked_for = self._key_of.get(item.source_url)
            if asked_for is not None and asked_for != item.event_id:
                # The address answers with another event's page (a redirect).
                self._page_missed(
                    asked_for,
                    f"{self._asked[asked_for].fetched} redirected to {item.final_url or item.url}"
                    f", the page of another event (stored as {item.event_id})",
                )
        elif isinstance(item, CrawlError) and item.event_id:
            self._page_missed(item.event_id, item.reason)
        elif isinstance(item, Observed):
            asked = self._asked.get(item.event_id)
            if asked is not None and asked.why_not == NO_ANSWER:
                self._page_missed(item.event_id, item.answer)

    def item_stopped(self, item, exception=None, failure=None) -> None:
        """An event page parsed but not stored (a pipeline dropped it or failed)."""
        if isinstance(item, Transcript):
            error = exception if exception is not None else getattr(failure, "value", None)
            self._page_missed(item.event_id, f"not stored: {error}")

    def missed_pages(self) -> list[tuple[str, str]]:
        """(the URLs given for it, why it is not archived) for each event page requested and
        not archived by this run, in the order given."""
        gone = []
        for asked in self._asked.values():
            if asked.why_not is None:
                continue
            why = asked.why_not + fetched_note(asked.entries[0], asked.fetched, None, asked.why_not)
            gone.append((", ".join(asked.entries), why))
        return gone

    def window_complete(self) -> str | None:
        """A fetch answers for the URLs it is given: each not archived is named here (the
        run then ends 'incomplete'), as given, with the URL fetched for it and why."""
        gone = self.missed_pages()
        if not gone:
            return None
        shown = "; ".join(f"{given}: {why}" for given, why in gone[:SHOWN])
        if len(gone) > SHOWN:
            shown += f"; … and {len(gone) - SHOWN} more (see the errors table)"
        total = len(self._asked)
        return f"{len(gone)} of the {total} page(s) asked for not archived by this run: {shown}"
