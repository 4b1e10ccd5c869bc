"""`kremlin-archive`: one click group; commands only orchestrate.

Exit codes (suited to cron): 0 done (page errors are recorded in the database, not fatal),
1 failure, 2 bad usage or no valid URL, 3 stopped because the site refused (blocked),
4 another run holds the database.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from . import urls

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_BLOCKED, EXIT_LOCKED = 0, 1, 2, 3, 4

db_option = click.option(
    "--db",
    "db_path",
    default=lambda: os.environ.get("KREMLIN_DB", "data/kremlin.db"),
    show_default="data/kremlin.db",
    type=click.Path(dir_okay=False),
    help="SQLite archive file.",
)
warc_option = click.option(
    "--warc-dir",
    default=lambda: os.environ.get("KREMLIN_WARC_DIR", "data/warc"),
    show_default="data/warc",
    type=click.Path(file_okay=False),
    help="Folder of the WARC files.",
)
settings_option = click.option(
    "-s",
    "--set",
    "overrides",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a Scrapy setting (repeatable), e.g. -s DOWNLOAD_DELAY=5.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kremlin-archive")
def main() -> None:
    """Archive the event pages of kremlin.ru and en.kremlin.ru into SQLite + WARC.

    Example: kremlin-archive crawl --lang en --since 2026-11-01
    """


def _split_overrides(overrides: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.UsageError(f"-s {item!r}: expected NAME=VALUE")
        result[name.strip()] = value
    return result


def run_spider(
    spider: str,
    *,
    db_path: str,
    warc_dir: str,
    overrides: tuple[str, ...],
    command: str,
    **spider_args,
) -> int:
    """Run one spider in this process; return the exit code for its outcome."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "kremlin_archive.settings")
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    from .extensions import ArchiveLocked, RunLock

    settings = get_project_settings()
    settings.set("KREMLIN_DB", db_path, priority="cmdline")
    settings.set("KREMLIN_WARC_DIR", warc_dir, priority="cmdline")
    settings.set("KREMLIN_COMMAND", command, priority="cmdline")
    settings.set("KREMLIN_LOCK_HELD", True, priority="cmdline")
    for name, value in _split_overrides(overrides).items():
        settings.set(name, value, priority="cmdline")
    try:
        lock = RunLock(db_path).acquire()
    except ArchiveLocked as exc:
        click.echo(f"kremlin-archive: {exc}", err=True)
        return EXIT_LOCKED
    try:
        process = CrawlerProcess(settings, install_root_handler=True)
        crawler = process.create_crawler(spider)
        process.crawl(crawler, **{k: v for k, v in spider_args.items() if v is not None})
        process.start()
    finally:
        lock.release()
    stats = crawler.stats.get_stats() if crawler.stats else {}
    reason = stats.get("finish_reason")
    summary = (
        f"run {stats.get('kremlin/run_id', '?')}: {reason or 'no finish reason'}; "
        f"new {stats.get('kremlin/events/new', 0)}, "
        f"changed {stats.get('kremlin/events/changed', 0)}, "
        f"unchanged {stats.get('kremlin/events/unchanged', 0)}, "
        f"errors {stats.get('kremlin/errors', 0)}"
    )
    click.echo(summary, err=True)
    # Monitoring without another tool: every run is a row of the `runs` table.
    click.echo(
        f"kremlin-archive: history: sqlite3 {shlex.quote(db_path)} "
        '"SELECT id, status, started_at, finished_at, events_new, events_changed, errors '
        'FROM runs ORDER BY started_at DESC LIMIT 5"',
        err=True,
    )
    if stats.get("kremlin/blocked") or reason == "blocked":
        click.echo("kremlin-archive: stopped: the site keeps refusing requests (blocked)", err=True)
        return EXIT_BLOCKED
    if reason == "finished":
        return EXIT_OK
    if reason == "shutdown":
        click.echo(
            "kremlin-archive: interrupted; run the same command again to resume "
            "(stored events are not fetched again)",
            err=True,
        )
    return EXIT_FAILURE


def _check_day(value: str | None, name: str) -> None:
    from .spiders.base import parse_day

    try:
        parse_day(value, name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{name}") from None


@main.command()
@click.option("--lang", type=click.Choice(["ru", "en", "both"]), default="both", show_default=True)
@click.option("--since", metavar="YYYY-MM-DD", help="Stop once listed events are older than this.")
@click.option("--until", metavar="YYYY-MM-DD", help="Enter the listings at this day (by-date).")
@click.option("--refetch", is_flag=True, help="Fetch events that are already in the archive too.")
@db_option
@warc_option
@settings_option
def crawl(lang, since, until, refetch, db_path, warc_dir, overrides):
    """Walk the news listings newest to oldest and archive every listed event.

    Events already in the archive are skipped (so an interrupted backfill resumes where it
    stopped) unless --refetch is given.

    Example: kremlin-archive crawl --lang en --since 2020-03-01 --until 2020-03-31
    """
    _check_day(since, "since")
    _check_day(until, "until")
    if since and until and since > until:
        raise click.BadParameter(f"--since {since} is after --until {until}")
    sys.exit(
        run_spider(
            "kremlin",
            db_path=db_path,
            warc_dir=warc_dir,
            overrides=overrides,
            command="crawl",
            lang=lang,
            since=since,
            until=until,
            refetch="1" if refetch else None,
        )
    )


@main.command()
@click.option("--lang", type=click.Choice(["ru", "en", "both"]), default="both", show_default=True)
@click.option(
    "--recheck-days",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    help="Re-fetch events published in the N days up to the newest publication date the "
    "feed shows (not the wall clock), conditionally, to catch edits; 0: none.",
)
@click.option(
    "--missing-days",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    help="Do not ask again for a listed event that answered 404 within the last N days.",
)
@db_option
@warc_option
@settings_option
def refresh(lang, recheck_days, missing_days, db_path, warc_dir, overrides):
    """Fetch only what is new or changed: the feed, listings from the newest until a page lists
    nothing new (one page of overlap), and the events published in the last N days
    (conditional requests; a 304 or an identical page only adds a fetch row).

    Example (cron): kremlin-archive refresh --lang both --recheck-days 7
    """
    sys.exit(
        run_spider(
            "kremlin",
            db_path=db_path,
            warc_dir=warc_dir,
            overrides=overrides,
            command="refresh",
            lang=lang,
            mode="refresh",
            recheck_days=str(recheck_days),
            missing_days=str(missing_days),
        )
    )


@main.command()
@click.argument("source_urls", nargs=-1, metavar="URL...")
@click.option(
    "--urls-file",
    type=click.Path(exists=True, dir_okay=False),
    help="A file with one URL per line (# comments allowed).",
)
@db_option
@warc_option
@settings_option
def fetch(source_urls, urls_file, db_path, warc_dir, overrides):
    """Fetch event pages given by URL, in any form the site uses (…/news/ID, /copy/ID,
    /ID/print, /d/ID, transcripts/…). Invalid URLs are refused by name and never requested.

    Example: kremlin-archive fetch http://kremlin.ru/events/president/news/copy/66419
    """
    from .spiders.urls import read_url_file

    entries = list(source_urls) + (read_url_file(urls_file) if urls_file else [])
    if not entries:
        raise click.UsageError("give at least one URL or --urls-file")
    valid = []
    for entry in entries:
        try:
            valid.append(urls.parse_event_url(entry))
        except ValueError as exc:
            click.echo(f"kremlin-archive: refused: {exc}", err=True)
    if not valid:
        click.echo(
            "kremlin-archive: no valid kremlin.ru event URL given; nothing fetched", err=True
        )
        sys.exit(EXIT_USAGE)
    sys.exit(
        run_spider(
            "urls",
            db_path=db_path,
            warc_dir=warc_dir,
            overrides=overrides,
            command="fetch",
            urls=",".join(source_urls),
            urls_file=str(Path(urls_file).resolve()) if urls_file else None,
        )
    )


@main.command()
@db_option
@warc_option
def reparse(db_path, warc_dir):
    """Rebuild events, utterances and tags from the WARC files with the current parser, without
    the network. Unchanged events are left alone; changed ones keep their old version as a
    revision. Damaged WARC records are reported (errors table) and skipped.

    Example: kremlin-archive reparse --db data/kremlin.db --warc-dir data/warc
    """
    from . import db as dbmod
    from .extensions import ArchiveLocked, RunLock
    from .reparse import reparse as run_reparse

    if not Path(warc_dir).is_dir():
        raise click.BadParameter(f"no such folder: {warc_dir}", param_hint="--warc-dir")
    try:
        lock = RunLock(db_path).acquire()
    except ArchiveLocked as exc:
        click.echo(f"kremlin-archive: {exc}", err=True)
        sys.exit(EXIT_LOCKED)
    try:
        database = dbmod.open_db(db_path)
        result = run_reparse(database, warc_dir)
    finally:
        lock.release()
    counts = result.as_counts()
    click.echo(
        f"reparse {result.run_id}: {counts['captures']} captures, "
        f"{counts['events_parsed']} events parsed (new {counts['events_new']}, "
        f"changed {counts['events_changed']}, unchanged {counts['events_unchanged']}), "
        f"{result.parse_errors} parse errors",
        err=True,
    )
    if result.damaged:
        click.echo(
            f"warning: {len(result.damaged)} damaged WARC record(s) skipped "
            "(see the errors table, stage 'warc')",
            err=True,
        )
    sys.exit(EXIT_OK)


@main.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8399, show_default=True, type=int)
@click.option("--log", "log_path", type=click.Path(dir_okay=False), help="JSON-lines request log.")
@click.option("--etags", is_flag=True, help="Send ETags and answer If-None-Match with 304.")
def replay(source, host, port, log_path, etags):
    """Serve an offline capture (a folder, or the mirror's .tar.xz) as an HTTP proxy on
    loopback, so a crawl can run without the network.

    Example: kremlin-archive replay ../shared/mirror/en-kremlin-2020.tar.xz --port 8399
    then: http_proxy=http://127.0.0.1:8399 kremlin-archive crawl --lang en -s DOWNLOAD_DELAY=0
    """
    from . import replay as replay_mod

    argv = [str(source), "--host", host, "--port", str(port)]
    if log_path:
        argv += ["--log", log_path]
    if etags:
        argv.append("--etags")
    sys.exit(replay_mod.main(argv) or 0)


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--immutable",
    is_flag=True,
    help="Serve a snapshot no crawl writes to (e.g. on read-only media); allows download.",
)
def serve(db_path, host, port, immutable):
    """Browse, search and cite the archive in Datasette, read-only, at /kremlin: events
    (newest first), transcript pages (/kremlin/events/ru-66419), full-text search, facets and
    prepared queries. A crawl may keep writing to the same file meanwhile.

    Example: kremlin-archive serve --db data/kremlin.db --port 8001
    """
    from . import serve as serve_mod

    try:
        note = None if immutable else serve_mod.prepare_database(db_path)
    except FileNotFoundError as exc:
        click.echo(f"kremlin-archive: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if note:
        click.echo(f"kremlin-archive: {note}", err=True)
    ds = serve_mod.build_datasette(db_path, immutable=immutable)
    click.echo(f"kremlin-archive: serving {db_path} at http://{host}:{port}/kremlin", err=True)
    serve_mod.run_server(ds, host=host, port=port)


if __name__ == "__main__":
    main()
