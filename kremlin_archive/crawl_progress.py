"""The crawl's progress bar: a Scrapy extension (settings.EXTENSIONS) that moves a bar from the
crawl's signals -- only in a terminal: Scrapy's LogStats already writes periodic lines otherwise.
The bar and the periodic lines of the other commands are in `progress`."""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from .progress import _isatty, enabled


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in (
        sys.stdout,
        sys.stderr,
    )


class CrawlProgress:
    """A bar of responses received, with events stored and errors so far, for a crawl run in
    a terminal. Off (NotConfigured) when standard error is not a terminal or
    `KREMLIN_PROGRESS` is 0 / `-s KREMLIN_PROGRESS=0`. While the bar is up, log records go
    through tqdm so they do not tear it."""

    def __init__(self, crawler, stream: IO[str]):
        self.crawler = crawler
        self.stream = stream
        self.bar = None
        self._redirect = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.response_received, signal=signals.response_received)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        if not (enabled() and crawler.settings.getbool("KREMLIN_PROGRESS", True)):
            raise NotConfigured  # no message: Scrapy would log one warning per run for it
        if not _isatty(sys.stderr):
            raise NotConfigured  # standard error is not a terminal (cron, a pipe, a file)
        return cls(crawler, sys.stderr)

    def spider_opened(self, spider) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        console = [h for h in logging.root.handlers if _is_console(h)]
        self._redirect = logging_redirect_tqdm()
        self._redirect.__enter__()
        if console:
            # tqdm's handler takes the console's place but not its level: keep it, or every
            # DEBUG line of the crawl would print above the bar.
            for handler in logging.root.handlers:
                if type(handler).__name__ == "_TqdmLoggingHandler":
                    handler.setLevel(console[0].level)
        desc = self.crawler.settings.get("KREMLIN_COMMAND") or spider.name
        # At most one redraw a second: the bar is a few hundred bytes a minute in a terminal.
        self.bar = tqdm(
            desc=desc, unit=" pages", file=self.stream, dynamic_ncols=True, mininterval=1.0
        )

    def _postfix(self) -> dict[str, Any]:
        stats = self.crawler.stats
        stored = sum(
            stats.get_value(f"kremlin/events/{outcome}", 0)
            for outcome in ("new", "changed", "unchanged")
        )
        return {"events": stored, "errors": stats.get_value("kremlin/errors", 0)}

    def response_received(self, response, request, spider) -> None:
        if self.bar is not None:
            self.bar.set_postfix(self._postfix(), refresh=False)
            self.bar.update(1)

    def item_scraped(self, item, response, spider) -> None:
        if self.bar is not None:
            self.bar.set_postfix(self._postfix(), refresh=False)

    def spider_closed(self, spider, reason) -> None:
        if self.bar is not None:
            self.bar.set_postfix(self._postfix(), refresh=True)
            self.bar.close()
            self.bar = None
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
