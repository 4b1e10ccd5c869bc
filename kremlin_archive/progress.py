"""Progress of long work (crawl, refresh, reparse, export, import) on standard error.

In a terminal: a tqdm bar with counts and rate. Otherwise (cron, systemd, scrapyd, a pipe): a
plain line every `interval` seconds (default 60, like Scrapy's own LogStats), so a log shows the
work advancing without the bar's carriage returns. `KREMLIN_PROGRESS=0` switches both off.

`Progress` serves the commands that run in this process (`reparse`, `export`, `import-txt`);
`CrawlProgress` is the Scrapy extension (settings.EXTENSIONS) that moves a bar from the crawl's
signals -- only in a terminal: Scrapy's LogStats already writes the periodic lines otherwise.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO

DEFAULT_INTERVAL = 60.0


def enabled() -> bool:
    return os.environ.get("KREMLIN_PROGRESS", "1").strip().lower() not in ("0", "off", "no")


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """Count units of work: ``with Progress("export", total=n, unit="event") as p: p.update()``.

    `bar` forces the choice (True: tqdm bar, False: periodic lines); by default a bar when
    `stream` (standard error) is a terminal.
    """

    def __init__(
        self,
        desc: str,
        *,
        total: int | None = None,
        unit: str = "it",
        stream: IO[str] | None = None,
        bar: bool | None = None,
        interval: float = DEFAULT_INTERVAL,
    ):
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.interval = interval
        self.started = self._last = time.monotonic()
        self._bar = None
        self._on = enabled()
        if self._on and (bar if bar is not None else _isatty(self.stream)):
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit=f" {unit}s", file=self.stream, dynamic_ncols=True
            )

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._on:
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        """The periodic line: `export: 1,200/6,650 events (18%), 410/s, 13s left`."""
        elapsed = max((now or time.monotonic()) - self.started, 1e-9)
        rate = self.count / elapsed
        done = f"{self.count:,}"
        if self.total:
            done += f"/{self.total:,} {self.unit}s ({100 * self.count / self.total:.0f}%)"
        else:
            done += f" {self.unit}s"
        text = f"{self.desc}: {done}, {rate:,.1f}/s, {_duration(elapsed)} elapsed"
        if self.total and rate > 0 and self.count < self.total:
            text += f", {_duration((self.total - self.count) / rate)} left"
        return text

    def write(self, message: str) -> None:
        """A line on the stream that does not tear the bar."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
