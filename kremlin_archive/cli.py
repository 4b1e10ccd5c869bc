"""`kremlin-archive`: one click group; commands only orchestrate.

Exit codes (suited to cron): 0 done (page errors are recorded in the database, not fatal),
1 failure, interrupted, or incomplete (the listing walk could not get past a failed page),
2 bad usage or no valid URL, 3 stopped because the site refused (blocked),
4 another run holds the database, 5 stopped because no host could be reached (unreachable).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
import sys
from pathlib import Path

import click

from . import urls

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_BLOCKED, EXIT_LOCKED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4, 5

UNREACHABLE_HELP = (
    "kremlin-archive: what to do: behind a proxy, set http_proxy (the crawl asks for http:// "
    "pages); where kremlin.ru does not answer your network (it blocks many outside Russia), "
    "--source wayback reads the Internet Archive's copies instead (--source auto: the site "
    "first); to work offline on a capture, see `kremlin-archive replay --help`."
)

db_option = click.option(
    "--db",
    "db_path",
    default=lambda: os.environ.get("KREMLIN_DB", "data/kremlin.db"),
    show_default="data/kremlin.db",
    type=click.Path(dir_okay=False),
    help="SQLite archive file.",
)


def _warc_dir_beside_db(ctx, param, value):
    """Without --warc-dir (or KREMLIN_WARC_DIR): the folder `warc` beside the database, so
    that `--db X` alone never writes into another archive's folder."""
    if value:
        return value
    db_path = ctx.params.get("db_path") or os.environ.get("KREMLIN_DB", "data/kremlin.db")
    return str(Path(db_path).parent / "warc")


warc_option = click.option(
    "--warc-dir",
    default=lambda: os.environ.get("KREMLIN_WARC_DIR"),
    callback=_warc_dir_beside_db,
    show_default="a folder `warc` beside the database",
    type=click.Path(file_okay=False),
    help="Folder of the WARC files (it belongs to one archive: see ARCHIVE-ID.json in it).",
)


def _keep_log_choice(ctx, param, value):
    if value:
        ctx.meta[f"kremlin_{param.name}"] = value
    return value


def log_options(command):
    """-v / --log-level: how much of the run's log the terminal shows (crawl_log.console_level);
    the run's whole log is in the file anyway. Kept in the click context for run_spider."""
    command = click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
        expose_value=False,
        callback=_keep_log_choice,
        help="The least severe messages shown on standard error (default: WARNING in a "
        "terminal, INFO otherwise; the whole log is in logs/<run id>.log beside the database).",
    )(command)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_keep_log_choice,
        help="Show more of the log: -v for INFO, -vv for DEBUG.",
    )(command)


source_option = click.option(
    "--source",
    type=click.Choice(["site", "wayback", "auto"]),
    default="site",
    show_default=True,
    help="Who is asked: the site; the Internet Archive's Wayback Machine only (never the "
    "site); or the site first and the Wayback for what the site refuses, fails on or lacks.",
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
    from . import crawl_log
    from . import db as dbmod
    from .crawl_run import run_crawl

    run_id = dbmod.new_run_id()
    settings = {
        "KREMLIN_DB": db_path,
        "KREMLIN_WARC_DIR": warc_dir,
        "KREMLIN_COMMAND": command,
        "KREMLIN_LOCK_HELD": True,
        "KREMLIN_RUN_ID": run_id,
        **_split_overrides(overrides),
    }
    meta = click.get_current_context().meta
    level = crawl_log.console_level(
        log_level=meta.get("kremlin_log_level"),
        verbose=meta.get("kremlin_verbose", 0),
        setting=settings.get("LOG_LEVEL") or os.environ.get("KREMLIN_LOG_LEVEL"),
        tty=_isatty(sys.stderr),
    )
    log_file = crawl_log.log_path(db_path, run_id)
    with _holding_lock(db_path):
        _bind(db_path, warc_dir)
        stats = run_crawl(
            spider,
            settings,
            {k: v for k, v in spider_args.items() if v is not None},
            log_level=level,
            log_file=log_file,
        )
    reason = stats.get("finish_reason")
    summary = (
        f"run {stats.get('kremlin/run_id', '?')}: {reason or 'no finish reason'}; "
        f"new {stats.get('kremlin/events/new', 0)}, "
        f"changed {stats.get('kremlin/events/changed', 0)}, "
        f"unchanged {stats.get('kremlin/events/unchanged', 0)}, "
        f"errors {stats.get('kremlin/errors', 0)}"
    )
    copies = stats.get("kremlin/events/from_wayback", 0)
    if copies:
        summary += f"; {copies} from copies in the Internet Archive"
    if stats.get("kremlin/site_unusable"):
        click.echo(
            f"kremlin-archive: the site was not used after: {stats['kremlin/site_unusable']}; "
            "the rest came from the Internet Archive",
            err=True,
        )
    click.echo(summary, err=True)
    click.echo(f"kremlin-archive: the run's whole log: {_shown_path(log_file)}", err=True)
    # Monitoring without another tool: every run is a row of the `runs` table.
    click.echo(
        f"kremlin-archive: history: sqlite3 {shlex.quote(db_path)} "
        '"SELECT id, status, started_at, finished_at, events_new, events_changed, errors '
        'FROM runs ORDER BY started_at DESC LIMIT 5"',
        err=True,
    )
    if stats.get("kremlin/listings/untrusted") and reason not in ("unreachable", "blocked"):
        click.echo(
            f"kremlin-archive: listings not trusted: {stats['kremlin/listings/untrusted']}"
            + (f"; ids {stats['kremlin/idwalk/range']} walked instead"
               if stats.get("kremlin/idwalk/range") else ""),
            err=True,
        )  # fmt: skip
    for host, failure in sorted((stats.get("kremlin/hosts_failed") or {}).items()):
        click.echo(f"kremlin-archive: {host} cannot be reached: {failure}", err=True)
    if reason in ("unreachable", "blocked") and stats.get("kremlin/hosts_failed"):
        click.echo(UNREACHABLE_HELP, err=True)
    if reason == "unreachable":
        click.echo("kremlin-archive: stopped: no host of the run could be reached", err=True)
        return EXIT_UNREACHABLE
    if stats.get("kremlin/blocked") or reason == "blocked":
        click.echo("kremlin-archive: stopped: the site keeps refusing requests (blocked)", err=True)
        return EXIT_BLOCKED
    if reason == "finished" and (
        stats.get("kremlin/ids_unaccounted") or stats.get("kremlin/window_short")
    ):
        click.echo(_incomplete_message(stats), err=True)
        return EXIT_FAILURE
    if reason == "finished":
        return EXIT_OK
    if reason == "shutdown":
        click.echo(
            "kremlin-archive: interrupted; run the same command again to resume "
            "(stored events are not fetched again)",
            err=True,
        )
    return EXIT_FAILURE


def _bind(db_path: str, warc_dir: str, *, adopt: bool = False) -> str:
    """The archive's identity; a WARC folder of another archive ends the command (exit 2)."""
    from .identity import IdentityMismatch, bind

    try:
        return bind(db_path, warc_dir, adopt=adopt)
    except IdentityMismatch as exc:
        click.echo(f"kremlin-archive: refused: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _isatty(stream) -> bool:
    from .progress import _isatty as isatty

    return isatty(stream)


def _shown_path(path: Path) -> str:
    """A path as short as it can be said: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _incomplete_message(stats: dict) -> str:
    """Why a run that ran to its end is not complete, and the command that resumes it."""
    parts = []
    if stats.get("kremlin/window_short"):
        parts.append(stats["kremlin/window_short"])
    missing = stats.get("kremlin/ids_unaccounted") or 0
    if missing:
        total = stats.get("kremlin/ids_window") or 0
        detail = "; ".join(
            f"{lang} {state} {ranges}"
            for lang, states in (stats.get("kremlin/gaps") or {}).items()
            for state, ranges in states.items()
        )
        parts.append(
            f"{missing:,} of the {total:,} (language, id) pairs of its window are not stored "
            f"or known absent ({detail})"
        )
    resume = shlex.join(["kremlin-archive", *sys.argv[1:]])
    return f"kremlin-archive: incomplete: {'; '.join(parts)}. Resume with: {resume}"


@contextlib.contextmanager
def _holding_lock(db_path: str):
    """Hold the database's run lock for the block; another run holding it ends the command
    with exit code 4 before anything is opened."""
    from .lock import DatabaseLocked, RunLock

    try:
        lock = RunLock(db_path).acquire()
    except DatabaseLocked as exc:
        click.echo(f"kremlin-archive: {exc}", err=True)
        sys.exit(EXIT_LOCKED)
    try:
        yield
    finally:
        lock.release()


def _check_day(value: str | None, name: str) -> None:
    if value in (None, ""):
        return
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected a date as YYYY-MM-DD", param_hint=f"--{name}"
        ) from None


@main.command()
@click.option("--lang", type=click.Choice(["ru", "en", "both"]), default="both", show_default=True)
@click.option("--since", metavar="YYYY-MM-DD", help="Stop once listed events are older than this.")
@click.option("--until", metavar="YYYY-MM-DD", help="Enter the listings at this day (by-date).")
@click.option(
    "--ids",
    metavar="RANGES",
    help="Walk these ids instead of a window of days, e.g. 62888-63088,63100.",
)
@click.option(
    "--discover",
    type=click.Choice(["auto", "listings", "ids"]),
    default="auto",
    show_default=True,
    help="How the window's events are found: the listings, checked, falling back to walking "
    "ids when they lie (auto); listings only; or ids only.",
)
@click.option("--refetch", is_flag=True, help="Fetch events that are already in the archive too.")
@source_option
@db_option
@warc_option
@settings_option
@log_options
def crawl(lang, since, until, ids, discover, refetch, source, db_path, warc_dir, overrides):
    """Archive every event of a window of days (or of ids) and account for each id of it.

    The news listings are walked newest to oldest and checked page by page; when they lie
    (the live site answers every page with page 1 since 2026) or cannot be followed, the
    window's id range is found from the archive, the feed and a few probes, and walked.
    The run ends 'finished' only when every id of its window is stored or known absent
    (404); otherwise 'incomplete' (exit code 1) with the ids it lacks. Events and ids already
    accounted for are skipped (so an interrupted backfill resumes where it stopped) unless
    --refetch is given.

    Example: kremlin-archive crawl --lang en --since 2020-03-01 --until 2020-03-31

    Example: kremlin-archive crawl --lang both --ids 62888-63088
    """
    _check_day(since, "since")
    _check_day(until, "until")
    if since and until and since > until:
        raise click.BadParameter(f"--since {since} is after --until {until}")
    if ids is not None:
        from .discovery import parse_id_ranges

        if since or until:
            raise click.UsageError("--ids names the window itself: no --since/--until with it")
        try:
            parse_id_ranges(ids)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ids") from None
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
            ids=ids,
            discover=discover if discover != "auto" else None,
            refetch="1" if refetch else None,
            source=source if source != "site" else None,
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
@source_option
@db_option
@warc_option
@settings_option
@log_options
def refresh(lang, recheck_days, missing_days, source, db_path, warc_dir, overrides):
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
            source=source if source != "site" else None,
        )
    )


@main.command()
@click.argument("source_urls", nargs=-1, metavar="URL...")
@click.option(
    "--urls-file",
    type=click.Path(exists=True, dir_okay=False),
    help="A file with one URL per line (# comments allowed).",
)
@source_option
@db_option
@warc_option
@settings_option
@log_options
def fetch(source_urls, urls_file, source, db_path, warc_dir, overrides):
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
            source=source if source != "site" else None,
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
    from .jobs.reparse import reparse as run_reparse
    from .progress import Progress

    if not Path(warc_dir).is_dir():
        raise click.BadParameter(f"no such folder: {warc_dir}", param_hint="--warc-dir")
    with _holding_lock(db_path), Progress("reparse", unit="capture") as progress:
        _bind(db_path, warc_dir, adopt=True)
        result = run_reparse(dbmod.open_db(db_path), warc_dir, progress=progress.update)
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
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8399, show_default=True, type=int, help="0: any free port.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), help="JSON-lines request log.")
@click.option("--etags", is_flag=True, help="Send ETags and answer If-None-Match with 304.")
@click.option(
    "--last-modified",
    metavar="DATE",
    help="Send Last-Modified (HTTP or ISO date) and answer If-Modified-Since with 304.",
)
@click.option("--allow-remote", is_flag=True, help="Permit a --host that is not loopback.")
@click.option("--quiet", is_flag=True, help="No access log on standard error.")
@click.option(
    "--wayback",
    is_flag=True,
    help="Answer as web.archive.org too: its CDX index and raw captures, from the same capture.",
)
def replay(source, host, port, log_path, etags, last_modified, allow_remote, quiet, wayback):
    """Serve an offline capture (a folder, or the mirror's .tar.xz) as an HTTP proxy on
    loopback, so a crawl can run without the network. Ctrl-C stops it.

    Example: kremlin-archive replay ../shared/mirror/en-kremlin-2020.tar.xz --port 8399
    then: http_proxy=http://127.0.0.1:8399 kremlin-archive crawl --lang en -s DOWNLOAD_DELAY=0
    """
    from .devtools.replay import ReplayServer, serve

    try:
        server = ReplayServer(
            source,
            host=host,
            port=port,
            log_path=log_path,
            etags=etags,
            last_modified=last_modified,
            allow_remote=allow_remote,
            verbose=not quiet,
            wayback=wayback,
        ).start()
    except (OSError, ValueError) as exc:
        click.echo(f"kremlin-archive: replay: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    example_host = server.default_host or "en.kremlin.ru"
    # Serving from here on: a Ctrl-C that comes before `serve` has taken over (the banner is
    # what a caller waits for) stops the server too, rather than leaving its thread running.
    try:
        click.echo(
            f"Replaying {source} ({len(server.mirror)} files, ready in "
            f"{server.startup_seconds:.1f} s) at {server.proxy_url}\n"
            f"  http_proxy={server.proxy_url} kremlin-archive crawl …\n"
            f"  curl -x {server.proxy_url} http://{example_host}/robots.txt\n"
            "Ctrl-C to stop."
        )
        serve(server)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    sys.exit(EXIT_OK)


@main.group()
def warc():
    """Inspect and mend the WARC files: check, repair, ls.

    Example: kremlin-archive warc check data/warc
    """


def _warc_paths(paths: tuple[str, ...]) -> list[Path]:
    """The files given, and the *.warc.gz files of each folder given, in name order."""
    from .warc import warc_files

    found: list[Path] = []
    for item in map(Path, paths):
        found.extend(warc_files(item) if item.is_dir() else [item])
    return found


@warc.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def warc_check(paths):
    """List the problems of WARC files (or of every *.warc.gz in a folder): warcio's own digest
    checks and this project's structural checks. Exit code 1 if any file has a problem.

    Example: kremlin-archive warc check data/warc
    """
    from .warc import check_file

    status = EXIT_OK
    for path in _warc_paths(paths):
        problems = check_file(path)
        click.echo(f"{path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            click.echo(f"  {problem}")
        if problems:
            status = EXIT_FAILURE
    sys.exit(status)


@warc.command("repair")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def warc_repair(paths):
    """Cut off the incomplete record a crash left at the end of a file; the removed bytes are
    kept beside it as <file>.removed-tail-<offset>. A file a live writer holds is left alone.

    Example: kremlin-archive warc repair data/warc
    """
    from .warc import WarcFileBusy, repair_tail

    status = EXIT_OK
    for path in _warc_paths(paths):
        try:
            click.echo(f"{path}: {repair_tail(path, keep_removed=True)} bytes removed")
        except WarcFileBusy as exc:
            click.echo(f"{path}: not repaired: {exc}", err=True)
            status = EXIT_FAILURE
    sys.exit(status)


@warc.command("ls")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
def warc_ls(folders):
    """One JSON line per capture (response or revisit) of the WARC files of each folder: file,
    offset, record type, HTTP status, URL, date, payload sha256 and size. Damaged records are
    named on standard error (exit code 1).

    Example: kremlin-archive warc ls data/warc | head
    """
    import json

    from .warc import iter_captures

    status = EXIT_OK

    def report(filename: str, offset: int, reason: str) -> None:
        nonlocal status
        status = EXIT_FAILURE
        click.echo(f"ERROR {filename}@{offset}: {reason}", err=True)

    for folder in folders:
        for capture in iter_captures(folder, on_error=report):
            row = {
                "file": capture.location.filename,
                "offset": capture.location.offset,
                "type": capture.record_type,
                "status": capture.status,
                "url": capture.url,
                "date": capture.fetched_at.isoformat(),
                "sha256": capture.payload_sha256,
                "bytes": len(capture.body),
            }
            click.echo(json.dumps(row, ensure_ascii=False))
    sys.exit(status)


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
    from .datasette import serve as serve_mod

    try:
        note = None if immutable else serve_mod.prepare_database(db_path)
    except FileNotFoundError as exc:
        click.echo(f"kremlin-archive: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if note:
        click.echo(f"kremlin-archive: {note}", err=True)
    ds = serve_mod.build_datasette(db_path, immutable=immutable)
    try:
        sock = serve_mod.listen(host, port)
    except OSError as exc:
        click.echo(
            f"kremlin-archive: cannot listen on {host}:{port} ({exc.strerror or exc}): "
            "another server has it? Choose another --port (0: any free one)",
            err=True,
        )
        sys.exit(EXIT_FAILURE)
    port = sock.getsockname()[1]
    click.echo(f"kremlin-archive: serving {db_path} at http://{host}:{port}/kremlin", err=True)
    serve_mod.run_server(ds, sock)


# -- export, import-txt, stats ------------------------------------------------------------------


def _check_event_ids(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    bad = [value for value in values if not urls.EVENT_KEY.match(value)]
    if bad:
        raise click.BadParameter(
            f"{', '.join(map(repr, bad))}: expected an event id like ru-66419 or en-63017"
        )
    return values


def _open_readonly(db_path: str):
    """The database opened read-only; a missing file is a usage error (exit 2)."""
    from . import db as dbmod

    if not Path(db_path).is_file():
        click.echo(f"kremlin-archive: no archive at {db_path} (see --db)", err=True)
        sys.exit(EXIT_USAGE)
    return dbmod.connect(db_path, readonly=True)


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["txt", "jsonl", "csv"]),
    required=True,
    help="txt: one file per event in the legacy format; jsonl: one event per line; "
    "csv: events.csv + utterances.csv.",
)
@click.option("--lang", type=click.Choice(["ru", "en", "both"]), default="both", show_default=True)
@click.option("--since", metavar="YYYY-MM-DD", help="Only events published on or after this day.")
@click.option("--until", metavar="YYYY-MM-DD", help="Only events published on or before this day.")
@click.option(
    "--id",
    "event_ids",
    multiple=True,
    metavar="ID",
    callback=_check_event_ids,
    help="Only this event, e.g. ru-66419 (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(),
    help="Folder for txt and csv (required); file for jsonl (default: standard output).",
)
@db_option
def export(fmt, lang, since, until, event_ids, out, db_path):
    """Export events with their speaker turns, tags and provenance (source URL, fetch time,
    HTTP status, WARC record, parser version, origin, revisions, license and attribution) for R,
    pandas and corpus tools. Days are Moscow dates of publication. Streams: memory stays flat
    however large the archive; progress and messages go to standard error. Layouts: README,
    "Exports and legacy text".

    Example: kremlin-archive export --format jsonl --lang en --since 2020-03-01 --out march.jsonl

    Example: kremlin-archive export --format txt --id ru-66419 --out legacy/
    """
    from . import db as dbmod
    from .jobs.export import export_events
    from .progress import Progress

    _check_day(since, "since")
    _check_day(until, "until")
    if since and until and since > until:
        raise click.BadParameter(f"--since {since} is after --until {until}")
    out = None if out == "-" and fmt == "jsonl" else out  # "-": standard output, as without
    if fmt in ("txt", "csv") and not out:
        raise click.UsageError(f"--format {fmt} writes several files: give --out FOLDER")
    if out and fmt == "jsonl" and Path(out).is_dir():
        raise click.BadParameter(f"{out} is a folder; jsonl goes to a file", param_hint="--out")
    if out and fmt != "jsonl" and Path(out).exists() and not Path(out).is_dir():
        raise click.BadParameter(f"{out} is a file; {fmt} goes to a folder", param_hint="--out")
    database = _open_readonly(db_path)
    ids = list(dict.fromkeys(event_ids)) or None
    filters = {"lang": lang, "since": since, "until": until, "ids": ids}
    with dbmod.read_snapshot(database):
        missing = dbmod.missing_event_ids(database, ids) if ids else []
        for event_id in missing:
            click.echo(f"kremlin-archive: warning: {event_id} is not in the archive", err=True)
        total = dbmod.count_events(database, **filters)
        # A bar on the terminal that also shows the jsonl would be torn by it.
        bar = False if out is None and sys.stdout.isatty() else None
        try:
            with Progress("export", total=total, unit="event", bar=bar) as progress:
                result = export_events(
                    database, fmt, Path(out) if out else sys.stdout, **filters,
                    progress=progress.update,
                )  # fmt: skip
        except BrokenPipeError:  # `export … | head`: the reader stopped; no traceback
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            click.echo("kremlin-archive: standard output closed; export incomplete", err=True)
            sys.exit(EXIT_FAILURE)
    where = out or "standard output"
    click.echo(f"kremlin-archive: exported {result.events} event(s) as {fmt} to {where}", err=True)
    if ids and len(missing) == len(ids):
        sys.exit(EXIT_FAILURE)
    sys.exit(EXIT_OK)


@main.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(),
    help="Folder of the release: new, empty, or a previous release (it is replaced).",
)
@db_option
def release(out, db_path):
    """Write a dataset release researchers can cite: events, speaker turns, persons, tags and
    fetch provenance as CSV and JSON Lines, a Frictionless datapackage.json (schemas, keys,
    licence and attribution, counts, coverage, sha256 of every file), README.md and SHA256SUMS.
    The same archive gives byte-identical files. The release is built beside --out and moved
    into place at the end; a folder holding anything else is refused. README, "A dataset
    release".

    Example: kremlin-archive release --out release/
    """
    from . import db as dbmod
    from .jobs.release import NotARelease, write_release
    from .progress import Progress

    database = _open_readonly(db_path)
    try:
        with Progress("release", total=dbmod.count_events(database), unit="event") as progress:
            result = write_release(database, Path(out), progress=progress.update)
    except NotARelease as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    rows = ", ".join(f"{n:,} {name}" for name, n in result.rows.items())
    size = sum(result.files.values())
    click.echo(
        f"kremlin-archive: released {rows} to {out} ({len(result.files)} files, {_size(size)}); "
        f"check it: frictionless validate {Path(out) / 'datapackage.json'}",
        err=True,
    )
    sys.exit(EXIT_OK)


@main.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE.wacz",
    help="The WACZ file to write (replaced if it exists; written whole or not at all).",
)
@click.option("--lang", type=click.Choice(["ru", "en", "both"]), default="both", show_default=True)
@click.option("--since", metavar="YYYY-MM-DD", help="Only events published on or after this day.")
@click.option("--until", metavar="YYYY-MM-DD", help="Only events published on or before this day.")
@db_option
@warc_option
def package(out, lang, since, until, db_path, warc_dir):
    """Package the WARC records of the selected events as a web archive (WACZ 1.1.1) that
    ReplayWeb.page and pywb replay: every capture of each event with its request, the
    original of every revisit, a CDXJ index, pages/pages.jsonl (one entry per event with its
    title and text for search; Internet Archive copies say so) and datapackage.json with the
    sha256 of every member. Days are Moscow dates of publication. The same archive gives a
    byte-identical file. README, "A web archive: WACZ".

    Example: kremlin-archive package --lang en --since 2020-03-01 --until 2020-03-31 --out m.wacz
    """
    from .jobs.package import PackageError, check_selection, package_wacz

    try:
        check_selection(lang, since, until)
    except PackageError as exc:
        raise click.UsageError(str(exc)) from None
    if not out.endswith(".wacz"):
        raise click.BadParameter(f"{out}: a WACZ file name ends with .wacz", param_hint="--out")
    database = _open_readonly(db_path)
    try:
        result = package_wacz(database, warc_dir, Path(out), lang=lang, since=since, until=until)
    except PackageError as exc:
        click.echo(f"kremlin-archive: package: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(
        f"kremlin-archive: packaged {result.events:,} event(s) ({result.captures:,} captures, "
        f"{result.records:,} WARC records) into {out} ({_size(result.size)}); "
        f"created {result.created}",
        err=True,
    )
    if result.without_capture:
        click.echo(
            f"kremlin-archive: {len(result.without_capture):,} selected event(s) have no WARC "
            f"record (imported from text files) and are not in the package: "
            f"{', '.join(result.without_capture[:10])}"
            + (" …" if len(result.without_capture) > 10 else ""),
            err=True,
        )
    sys.exit(EXIT_OK)


@main.command("import-txt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True), metavar="PATH...")
@db_option
def import_txt(paths, db_path):
    """Import legacy plain-text records (the corpus this project grew from; one record per
    file, a folder is searched for *.txt) as events with origin 'import:<file name>' and no
    fetch. A later crawl or fetch of the same event supersedes the import and keeps it as a
    revision; an event already archived from the site is left as it is. Malformed files are
    reported by name and line (standard error and the errors table, stage 'import') and
    skipped. Exit code 0 when something was imported (a warning line says if some files
    failed), 2 when nothing importable was given.

    Example: kremlin-archive import-txt ../shared/seed-format/66419.txt legacy-corpus/
    """
    from . import db as dbmod
    from .legacy_txt import import_txt as run_import
    from .legacy_txt import txt_files
    from .progress import Progress

    files = txt_files(paths)
    if not files:
        click.echo(f"kremlin-archive: no .txt files in {', '.join(paths)}", err=True)
        sys.exit(EXIT_USAGE)
    with _holding_lock(db_path), Progress("import-txt", total=len(files), unit="file") as progress:
        result = run_import(
            dbmod.open_db(db_path),
            files,
            arguments={"paths": list(paths)},
            progress=progress.update,
            on_failure=lambda path, message: progress.write(
                f"kremlin-archive: skipped {path}: {message}"
            ),
        )
    counts = result.as_counts()
    click.echo(
        f"import-txt {result.run_id}: {counts['files']} file(s): new {counts['events_new']}, "
        f"changed {counts['events_changed']}, unchanged {counts['events_unchanged']}, "
        f"kept as archived from the site {counts['events_kept']}, failed {counts['errors']}",
        err=True,
    )
    if not result.imported and not result.kept:
        click.echo(f"kremlin-archive: nothing importable among {len(files)} file(s)", err=True)
        sys.exit(EXIT_USAGE)
    if result.failed:
        click.echo(
            f"warning: {len(result.failed)} of {len(files)} file(s) could not be imported "
            "(named above; errors table, stage 'import')",
            err=True,
        )
    sys.exit(EXIT_OK)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def _table(title: str, headers: list[str], rows: list[list]) -> list[str]:
    """A titled table, columns padded to their width, numbers right-aligned."""
    cells = [["-" if v is None else f"{v:,}" if isinstance(v, int) else str(v) for v in row]
             for row in rows]  # fmt: skip
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    right = [all(isinstance(row[i], int | None) for row in rows) for i in range(len(headers))]

    def line(values: list[str]) -> str:
        padded = (
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        )
        return "  ".join(padded).rstrip()

    return [title, line(headers), *([line(r) for r in cells] or ["(none)"]), ""]


def _stats_text(data: dict) -> str:
    database, warc = data["database"], data["warc"]
    warc_text = f"{warc['files']:,} file(s), {_size(warc['bytes'])}" if warc["exists"] else "none"
    lines = [
        f"Archive {database['path']}: {_size(database['bytes'])} "
        f"(WAL {_size(database['wal_bytes'])}); WARC {warc['dir']}: {warc_text}",
        "",
    ]
    langs = sorted({y["lang"] for y in data["years"]})
    by_year: dict[int, dict] = {}
    for y in data["years"]:
        row = by_year.setdefault(y["year"], {"transcripts": 0, "turns": 0})
        row[y["lang"]] = y["events"]
        row["transcripts"] += y["transcripts"]
        row["turns"] += y["turns"]
    rows = []
    for year, r in sorted(by_year.items()):
        counts = [r.get(lang, 0) for lang in langs]
        rows.append([str(year), *counts, sum(counts), r["transcripts"], r["turns"]])
    if rows:
        rows.append(["total", *(sum(column) for column in list(zip(*rows, strict=True))[1:])])
    lines += _table(
        "Events by year (transcripts: events with 2+ speakers; turns: their speaker turns)",
        ["year", *langs, "events", "transcripts", "turns"],
        rows,
    )
    lines += _table(
        "Tags by kind", ["kind", "tags", "links"], [list(t.values()) for t in data["tags"]]
    )
    coverage = data["coverage"]
    states = [s for s in COVERAGE_ORDER if any(s in c for c in coverage.values())]
    lines += _table(
        "Coverage ledger: what is known of each (language, id) met",
        ["lang", *states, "total"],
        [[lang, *(c.get(s, 0) for s in states), sum(c.values())] for lang, c in coverage.items()],
    )
    lines += _persons_text(data["persons"])
    lines += ["Totals: " + ", ".join(f"{n:,} {name}" for name, n in data["totals"].items()), ""]
    columns = ["started_at", "command", "status", "requests", "events_new", "events_changed",
               "events_unchanged", "errors"]  # fmt: skip
    lines += _table(
        "Last runs (newest first)",
        [c.removeprefix("events_") for c in columns],
        [[run[c] for c in columns] for run in data["runs"]],
    )
    if data["runs"]:
        errors = data["last_run_errors"]
        detail = ", ".join(f"{stage} {n:,}" for stage, n in errors.items()) or "none"
        lines.append(f"Errors of the last run ({data['runs'][0]['id']}) by stage: {detail}")
    return "\n".join(lines).rstrip()


COVERAGE_ORDER = ("stored", "absent", "not_event", "refused", "failed", "listed", "unknown")


def _persons_text(counts: dict) -> list[str]:
    """Who said it: how labelled turns are resolved to persons, and the largest labels left
    without one."""
    labelled = counts["labelled_turns"]
    named = labelled - counts["roles"]
    share = f"{100 * counts['resolved'] / named:.1f} %" if named else "-"
    lines = [
        f"Speaker turns: {labelled:,} labelled, {counts['roles']:,} of them roles (Question, "
        f"Remark, …); of the {named:,} that name someone {counts['resolved']:,} ({share}) are "
        f"resolved to one of {counts['persons']:,} persons, {counts['unresolved']:,} are not"
        + (f", {counts['pending']:,} wait to be resolved" if counts["pending"] else "")
        + ".",
        "",
    ]
    lines += _table(
        "Turns by the evidence that names their person",
        ["evidence", "turns"],
        [[evidence, n] for evidence, n in counts["by_evidence"].items()],
    )
    lines += _table(
        "Largest labels without a person (view unresolved_speakers in Datasette lists all)",
        ["label", "why", "turns"],
        [[r["speaker"], r["evidence"], r["turns"]] for r in counts["top_unresolved"]],
    )
    return lines


@main.command()
@click.option("--lang", type=click.Choice(["ru", "en", "both"]), default="both", show_default=True)
@click.option("--ids", metavar="RANGES", help="The ids to account for, e.g. 62888-63088.")
@click.option("--since", metavar="YYYY-MM-DD", help="The ids the archive knows of from this day.")
@click.option("--until", metavar="YYYY-MM-DD", help="… up to this day (Moscow days, inclusive).")
@click.option("--limit", default=40, show_default=True, help="Ranges of ids shown per state.")
@click.option(
    "--wayback-only",
    "wayback_ids",
    is_flag=True,
    help="Print only the ids stored from Internet Archive copies alone, as ranges for --ids: "
    "the ones to ask the site for again.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@db_option
def coverage(lang, ids, since, until, limit, wayback_ids, as_json, db_path):
    """How complete the archive is: for every id of a window, what the coverage ledger knows
    -- stored, absent (404 or the site's 404 page), not an event page, refused, failed,
    listed but not fetched -- and which ids are unknown, as ranges.

    Events stored from copies of the Internet Archive alone (the site refused, failed, or was
    not asked) are counted apart; --wayback-only prints just their ids, to retry the site.

    The window is --ids, or the ids from the smallest to the largest the archive knows to be
    published --since..--until (its events and the listings it has read), or without either
    every id from the ledger's smallest to its largest. Accounted for: stored, absent, not an
    event; anything else a crawl of the window would ask for again.

    Example: kremlin-archive coverage --lang en --since 2020-03-01 --until 2020-03-31
    """
    import json

    from . import db as dbmod
    from .discovery import format_id_ranges, parse_id_ranges
    from .items import ACCOUNTED

    _check_day(since, "since")
    _check_day(until, "until")
    if ids and (since or until):
        raise click.UsageError("give either --ids or --since/--until")
    database = _open_readonly(db_path)
    langs = ["ru", "en"] if lang == "both" else [lang]
    with dbmod.read_snapshot(database):
        if ids:
            try:
                wanted = parse_id_ranges(ids)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--ids") from None
            bounds = (wanted[0], wanted[-1])
            window = f"ids {format_id_ranges(wanted, limit=5)}"
        elif since or until:
            bounds = dbmod.id_range_of_days(database, since, until)
            window = f"the ids the archive knows of {since or '…'}..{until or '…'}"
            wanted = None
        else:
            bounds = dbmod.coverage_bounds(database, lang)
            window = "every id from the ledger's first to its last"
            wanted = None
        report: dict = {"window": window, "first": None, "last": None, "langs": {}}
        if bounds is not None:
            first, last = bounds
            report |= {"first": first, "last": last}
            id_set = set(wanted) if wanted is not None else None
            for one in langs:
                states = dbmod.coverage_of(database, one, first, last)
                by_state: dict[str, list[int]] = {}
                for kremlin_id in range(first, last + 1):
                    if id_set is not None and kremlin_id not in id_set:
                        continue
                    by_state.setdefault(states.get(kremlin_id, "unknown"), []).append(kremlin_id)
                copies = dbmod.wayback_only(database, one, first, last)
                if id_set is not None:
                    copies = [i for i in copies if i in id_set]
                report["langs"][one] = {
                    "counts": {s: len(by_state.get(s, [])) for s in COVERAGE_ORDER},
                    "wayback_only": {
                        "count": len(copies),
                        "ids": format_id_ranges(copies, limit=None if wayback_ids else limit),
                    },
                    "not_accounted": {
                        s: format_id_ranges(ids_, limit=limit)
                        for s, ids_ in by_state.items()
                        if s not in ACCOUNTED
                    },
                }
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        sys.exit(EXIT_OK)
    if wayback_ids:  # e.g. kremlin-archive crawl --refetch --ids "$(… --wayback-only)"
        ranges = [r["wayback_only"]["ids"] for r in report["langs"].values()]
        click.echo(",".join(r for r in ranges if r).replace(" ", ""))
        sys.exit(EXIT_OK)
    if bounds is None:
        click.echo(f"kremlin-archive: the archive knows no id of {window}", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(f"Coverage of {window}: ids {report['first']}-{report['last']}")
    click.echo("")
    rows = [
        [state, *(report["langs"][one]["counts"][state] for one in langs)]
        for state in COVERAGE_ORDER
    ]
    rows.append(["total", *(sum(report["langs"][one]["counts"].values()) for one in langs)])
    click.echo("\n".join(_table("What is known of each id", ["state", *langs], rows)))
    for one in langs:
        copies = report["langs"][one]["wayback_only"]
        if copies["count"]:
            click.echo(
                f"{one}: {copies['count']:,} stored from Internet Archive copies only (ask the "
                f"site again later: --wayback-only): {copies['ids']}"
            )
        gaps = report["langs"][one]["not_accounted"]
        if not gaps:
            click.echo(f"{one}: every id is accounted for (stored, absent or not an event page)")
            continue
        missing = sum(report["langs"][one]["counts"][s] for s in gaps)
        click.echo(f"{one}: {missing:,} id(s) not accounted for:")
        for state, ranges in gaps.items():
            click.echo(f"  {state}: {ranges}")
    sys.exit(EXIT_OK)


@main.command()
@db_option
@click.option(
    "--rebuild", is_flag=True, help="Resolve every turn again, not only what is out of date."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def persons(db_path, rebuild, as_json):
    """Resolve speaker turns to persons and say how it stands: turns never resolved (an archive
    from before persons), and turns whose person rests on the whole archive, are brought up to
    date (every crawl, reparse and import does this at its end); --rebuild redoes every turn.
    Prints how many labelled turns name a person, by evidence, and the largest labels left
    without one (ambiguous, a likely namesake, no name in the label).

    Example: kremlin-archive persons --db data/kremlin.db
    """
    import json

    from . import db as dbmod

    if not Path(db_path).is_file():
        raise click.BadParameter(f"no such archive: {db_path}", param_hint="--db")
    with _holding_lock(db_path):
        database = dbmod.open_db(db_path)
        settled = dbmod.settle_persons(database, rebuild=rebuild)
        counts = dbmod.person_counts(database)
    if as_json:
        click.echo(json.dumps({"settled": settled, **counts}, ensure_ascii=False, indent=2))
    else:
        click.echo(
            f"Resolved again: {settled['events']:,} event(s), {settled['labels']:,} label(s) "
            f"looked up in the archive; {settled['turns_changed']:,} turn(s) changed.\n"
        )
        click.echo("\n".join(_persons_text(counts)).rstrip())
    sys.exit(EXIT_OK)


@main.command()
@db_option
@warc_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def stats(db_path, warc_dir, as_json):
    """Summarise the archive: events by language and year, transcripts (events with two or
    more speakers) and their turns, tags by kind, the last runs with their status and counts,
    the errors of the last run by stage, and the sizes of the database and the WARC files.

    Example: kremlin-archive stats --db data/kremlin.db --warc-dir data/warc --json
    """
    import json

    from . import db as dbmod

    database = _open_readonly(db_path)
    with dbmod.read_snapshot(database):
        data = dbmod.stats_summary(database)
    wal = Path(f"{db_path}-wal")
    warc_files = (
        [p for p in Path(warc_dir).rglob("*") if p.is_file() and ".warc" in p.name]
        if Path(warc_dir).is_dir()
        else []
    )
    data["database"] = {
        "path": db_path,
        "bytes": Path(db_path).stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
    }
    data["warc"] = {
        "dir": warc_dir,
        "exists": Path(warc_dir).is_dir(),
        "files": len(warc_files),
        "bytes": sum(p.stat().st_size for p in warc_files),
    }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        click.echo(_stats_text(data))
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
