"""Where a run's log goes: all of it to a file beside the database (`logs/<run id>.log`), and to
the terminal only what a person watching needs -- the progress bar, warnings and the summary.

Scrapy logs every request and, by default, the whole repr of every item; in a terminal that
buried the bar (157 KB for 26 events). The console's level is chosen by `console_level`; the
file always takes everything from DEBUG up, with items named by their key (`ItemLogFormatter`),
so a year's crawl gives a log of a few MB rather than a copy of the archive.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from scrapy import logformatter

FORMAT = "%(asctime)s [%(name)s] %(levelname)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def console_level(*, log_level: str | None, verbose: int, setting: str | None, tty: bool) -> str:
    """The console's level: --log-level, else -v (INFO) / -vv (DEBUG), else a LOG_LEVEL given
    with -s or KREMLIN_LOG_LEVEL, else WARNING in a terminal (the bar shows progress) and INFO
    when the output goes to a file or a pipe (cron mail, CI logs)."""
    if log_level:
        return log_level.upper()
    if verbose:
        return "DEBUG" if verbose > 1 else "INFO"
    if setting:
        return setting.upper()
    return "WARNING" if tty else "INFO"


def log_path(db_path: str | os.PathLike, run_id: str) -> Path:
    """The run's full log: `logs/<run id>.log` in the database's folder."""
    return Path(db_path).resolve().parent / "logs" / f"{run_id}.log"


class RunLogging:
    """Handlers on the root logger for one run: the console (standard error) at `level`, and
    the file at DEBUG. Use as a context manager; on exit the handlers are removed and closed."""

    def __init__(self, level: str, file: Path | None):
        self.level = level
        self.file = file
        self.handlers: list[logging.Handler] = []
        self._root_level = logging.NOTSET

    def __enter__(self) -> RunLogging:
        formatter = logging.Formatter(FORMAT, DATE_FORMAT)
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(self.level)
        console.setFormatter(formatter)
        self.handlers.append(console)
        if self.file is not None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(self.file, encoding="utf-8")
            handler.setLevel(logging.DEBUG)
            handler.setFormatter(formatter)
            self.handlers.append(handler)
        root = logging.getLogger()
        self._root_level = root.level
        root.setLevel(logging.DEBUG)
        for handler in self.handlers:
            root.addHandler(handler)
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(self._root_level)


class ItemLogFormatter(logformatter.LogFormatter):
    """Scrapy's messages, but an item is named by its key and URL, never printed whole."""

    def scraped(self, item, response, spider):
        result = super().scraped(item, response, spider)
        result["msg"] = "Scraped %(item)s from %(src)s"
        result["args"] = {**result["args"], "item": _item_name(item)}
        return result

    def dropped(self, item, exception, response, spider):
        result = super().dropped(item, exception, response, spider)
        result["msg"] = "Dropped %(item)s: %(exception)s"
        result["args"] = {**result["args"], "item": _item_name(item)}
        return result

    def item_error(self, item, exception, response, spider):
        result = super().item_error(item, exception, response, spider)
        result["args"] = {**result["args"], "item": _item_name(item)}
        return result


def _item_name(item) -> str:
    key = getattr(item, "key", None) or getattr(item, "event_id", None)
    url = getattr(item, "url", None) or getattr(item, "source_url", None)
    name = type(item).__name__
    return " ".join(str(part) for part in (name, key, url) if part)
