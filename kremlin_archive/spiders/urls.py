"""`urls`: fetch the event pages given as source URLs.

    scrapy crawl urls -a urls=http://kremlin.ru/events/president/news/copy/66419,…
    scrapy crawl urls -a urls_file=list.txt      (one URL per line, # comments)

Any form urls.py accepts is fetched as its canonical page (robots.txt forbids `/copy/`, so the
seed's own URL form is fetched as `/events/president/news/<id>`). Invalid entries are reported
(log + `errors` table, stage 'input') and skipped; no request is sent for them.
"""

from __future__ import annotations

from pathlib import Path

from .. import urls
from ..items import CrawlError
from .base import EventSpider


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
                continue
            seen.add(ref.url)
            self._window[ref.lang].add(ref.kremlin_id)  # the run answers for each URL given
            yield self.event_request(ref, source_url=entry, conditional=True)
