"""Section 2 of `make bench`: the crawl against a bare Scrapy spider.

`kremlin-archive crawl` of a slice vs bench/bare_spider.py on the same URLs (exactly what the
first crawl run requested) through the same replay server, alternating runs (A B B A …, so that
drift of the machine's load cancels), median ratio of pages per second. Pages per second are
counted on the replay server: requests ÷ (last answer − first request), which leaves out process
start-up; wall and CPU time come from wait4.

When the crawl misses its target, one crawl of the slice and one bare run go under cProfile
(`profile_crawl`, `profile_bare`): the reactor loop's time cut into pieces that do not contain
one another (`crawl_buckets`).
"""

from __future__ import annotations

import pstats
import shutil
import statistics
from pathlib import Path

from common import (
    FAST,
    HERE,
    PY,
    Run,
    checked,
    child_env,
    cli,
    count_events,
    cum,
    cum_named,
    own,
    profiled,
    say,
    shown,
    with_settings,
)

from kremlin_archive import parsing
from kremlin_archive.devtools.replay import ReplayServer

# The crawl-vs-bare slice: four months the listing walk covers without a hole (entered at the
# capture's last by-date page). ~330 requests, so that 5 alternating pairs fit the budget.
SLICE = ("--lang", "en", "--since", "2020-05-01", "--until", "2020-08-27")
SHARED_SETTINGS = tuple(s for s in FAST if not s.startswith("KREMLIN_"))


def log_rate(log) -> dict:
    """Requests served and pages per second between the first request and the last answer."""
    if not log:
        return {"requests": 0, "span_s": 0.0, "pages_per_s": 0.0}
    first = min(r.time for r in log)
    last = max(r.time + (r.duration or 0) for r in log)
    span = max(last - first, 1e-6)
    return {"requests": len(log), "span_s": span, "pages_per_s": len(log) / span}


def slice_crawl(home: Path) -> list[str]:
    """The arguments of a crawl of the slice into `home`."""
    return ["crawl", *SLICE, "--db", str(home / "kremlin.db"), "--warc-dir", str(home / "warc")]


def crawl_vs_bare(mirror: Path, work: Path, pairs: int) -> dict:
    runs = []
    urls_file = work / "slice-urls.txt"
    commands = {}
    with ReplayServer(mirror) as server:
        env = child_env(server.proxy_url)
        # A B B A A B ...: both orders equally often, so drift of the machine's load cancels.
        order = []
        for i in range(pairs):
            order += ["crawl", "bare"] if i % 2 == 0 else ["bare", "crawl"]
        for n, kind in enumerate(order):
            home = work / f"slice-{n}"
            server.clear_log()
            if kind == "crawl":
                argv = with_settings(cli(*slice_crawl(home)))
            else:
                argv = with_settings(
                    [PY, str(HERE / "bare_spider.py"), "--urls-file", str(urls_file)],
                    SHARED_SETTINGS,
                )
            commands.setdefault(kind, shown(argv, work, "$REPLAY"))
            run = Run(argv, env=env, log=work / f"slice-{n}-{kind}.log")
            result = checked(run, run.wait(), f"{kind} run {n}")
            log = server.log
            result.update(log_rate(log), kind=kind, pair=n // 2)
            if kind == "crawl" and not urls_file.exists():
                # The bare spider gets exactly what the crawl asked for (it fetches robots.txt
                # itself, as the crawl does).
                urls = [r.url for r in log if not r.url.endswith("/robots.txt")]
                urls_file.write_text("\n".join(urls) + "\n")
            if kind == "crawl":
                result["events"] = count_events(home / "kremlin.db")
            runs.append(result)
            if n:  # the first crawl's archive is kept for the reparse profile
                shutil.rmtree(home, ignore_errors=True)
            say(
                f"crawl vs bare: {kind:5} run {n + 1}/{len(order)}: {result['requests']} "
                f"requests, {result['pages_per_s']:.1f} pages/s, {result['wall_s']:.1f} s wall"
            )
    by_pair = []
    for p in range(pairs):
        c = next(r for r in runs if r["pair"] == p and r["kind"] == "crawl")
        b = next(r for r in runs if r["pair"] == p and r["kind"] == "bare")
        by_pair.append(
            {
                "rate": c["pages_per_s"] / b["pages_per_s"],
                "wall": b["wall_s"] / c["wall_s"],
                "cpu": b["cpu_s"] / c["cpu_s"],
            }
        )
    crawls = [r for r in runs if r["kind"] == "crawl"]
    bares = [r for r in runs if r["kind"] == "bare"]

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    return {
        "pairs": pairs,
        "runs": runs,
        "by_pair": by_pair,
        "ratio": statistics.median(p["rate"] for p in by_pair),
        "ratio_wall": statistics.median(p["wall"] for p in by_pair),
        "ratio_cpu": statistics.median(p["cpu"] for p in by_pair),
        "requests_crawl": crawls[0]["requests"],
        "requests_bare": bares[0]["requests"],
        "events": crawls[0]["events"],
        "crawl_pages_per_s": med(crawls, "pages_per_s"),
        "bare_pages_per_s": med(bares, "pages_per_s"),
        "crawl_cpu_ms_per_request": statistics.median(
            r["cpu_s"] / r["requests"] * 1e3 for r in crawls
        ),
        "bare_cpu_ms_per_request": statistics.median(
            r["cpu_s"] / r["requests"] * 1e3 for r in bares
        ),
        "commands": commands,
    }


# -- profiles, when the target is missed -----------------------------------------------------------


def reactor_loop_s(stats: pstats.Stats) -> float:
    """Cumulative seconds of asyncio's run_forever: the reactor thread's whole loop."""
    return cum_named(stats, "run_forever", "asyncio/base_events.py")


def epoll_idle_s(stats: pstats.Stats) -> float:
    """Own seconds waiting in epoll: the loop's idle time."""
    return own(stats, lambda name: "of 'select.epoll' objects" in name and "poll" in name)


def crawl_buckets(stats: pstats.Stats) -> tuple[float, list[tuple[str, float]]]:
    """The reactor loop's time and, inside it, what the project adds to a bare fetch, in
    pieces that do not contain one another."""
    from kremlin_archive import db, middlewares, pipelines, spiders, warc
    from kremlin_archive.spiders import base, kremlin

    del spiders
    loop = reactor_loop_s(stats)
    # (the recorder's coroutines: what the event loop still does of recording an exchange; the
    # WARC record, the fetches row and the store run on the writer thread, which cProfile does
    # not see -- they count 0 here)
    recorder = sum(
        cum(stats, getattr(middlewares.FetchRecorderMiddleware, name))
        for name in ("process_response", "_process_response", "process_exception")
        if hasattr(middlewares.FetchRecorderMiddleware, name)
    )
    warc = cum(stats, warc.WarcWriter.write_exchange)
    fetch_row = cum(stats, db.record_fetch)
    revisit = cum(stats, db.last_capture_of_payload)
    store = cum(stats, db.save_transcript)
    persons = cum(stats, db._resolve_people) + cum(stats, db.settle_persons)
    pipes = sum(
        cum(stats, cls.process_item)
        for cls in (pipelines.ValidatePipeline, pipelines.StorePipeline)
    )
    parse = cum(stats, parsing.parse_event)
    listing = cum(stats, parsing.parse_listing)
    callbacks = cum(stats, base.EventSpider.parse_event) + cum(
        stats, kremlin.KremlinSpider.parse_listing
    )
    logging_s = cum_named(stats, "callHandlers", "logging/__init__.py")
    idle = epoll_idle_s(stats)
    rows = [
        ("store: db.save_transcript (events, utterances, tags, FTS triggers)", store - persons),
        ("persons: db._resolve_people (resolve turns, store links), db.settle_persons", persons),
        ("WARC: write_exchange (build records, gzip, write, fsync)", warc),
        ("fetches row: db.record_fetch", fetch_row),
        ("revisit lookup: db.last_capture_of_payload", revisit),
        (
            "rest of FetchRecorderMiddleware (sha256, headers, decode)",
            max(recorder - warc - fetch_row - revisit, 0.0),
        ),
        ("parse: parsing.parse_event", parse),
        ("parse: parsing.parse_listing", listing),
        ("rest of the spider callbacks", max(callbacks - parse - listing, 0.0)),
        ("rest of the pipelines (validate, error rows)", max(pipes - store, 0.0)),
        ("logging (to stderr)", logging_s),
        ("waiting in epoll (idle)", idle),
    ]
    rows.append(
        (
            "the rest: Scrapy/Twisted/asyncio machinery (the bare spider runs it too), other "
            "middlewares, scheduling",
            loop - sum(x for _, x in rows),
        )
    )
    return loop, rows


def profile_crawl(mirror: Path, work: Path) -> dict:
    """One crawl of the slice under cProfile: where the reactor thread's time goes."""
    home = work / "profile"
    prof = work / "crawl.prof"
    argv = with_settings(profiled(prof, "-m", "kremlin_archive.cli", *slice_crawl(home)))
    with ReplayServer(mirror) as server:
        run = Run(argv, env=child_env(server.proxy_url), log=work / "profile.log")
        result = checked(run, run.wait(), "profiled crawl")
        requests = len(server.log)
    stats = pstats.Stats(str(prof))
    loop, rows = crawl_buckets(stats)
    sql_names = {
        "<method 'execute' of 'sqlite3.Connection' objects>",
        "<method 'execute' of 'sqlite3.Cursor' objects>",
        "<method 'executemany' of 'sqlite3.Connection' objects>",
        "<method 'fetchall' of 'sqlite3.Cursor' objects>",
        "<method 'fetchone' of 'sqlite3.Cursor' objects>",
        "<method 'commit' of 'sqlite3.Connection' objects>",
    }
    shutil.rmtree(home, ignore_errors=True)
    return {
        "command": shown(argv, work, "$REPLAY"),
        "requests": requests,
        "wall_s": result["wall_s"],
        "reactor_s": loop,
        "buckets": rows,
        "fsync_s": own(stats, lambda name: "fsync" in name),
        "compress_s": own(stats, lambda name: "of 'zlib.Compress' objects" in name),
        "sqlite_s": own(stats, lambda name: name in sql_names),
        "sqlite_calls": sum(v[1] for (_f, _l, name), v in stats.stats.items() if name in sql_names),
    }


def profile_bare(mirror: Path, work: Path) -> dict:
    """The bare spider under the same profiler: its reactor loop per request."""
    prof = work / "bare.prof"
    argv = with_settings(
        profiled(prof, str(HERE / "bare_spider.py"), "--urls-file", str(work / "slice-urls.txt")),
        SHARED_SETTINGS,
    )
    with ReplayServer(mirror) as server:
        run = Run(argv, env=child_env(server.proxy_url), log=work / "bare-profile.log")
        checked(run, run.wait(), "profiled bare spider")
        requests = len(server.log)
    stats = pstats.Stats(str(prof))
    return {
        "command": shown(argv, work, "$REPLAY"),
        "requests": requests,
        "reactor_s": reactor_loop_s(stats),
        "idle_s": epoll_idle_s(stats),
    }
