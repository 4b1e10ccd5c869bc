"""Section 5 of `make bench`: reparse from WARC against parsing alone.

`kremlin-archive reparse` of the full archive's WARC (section 3) into a fresh database, right
after a parse-only pass (parse_event over the same pages, in the harness process), back to back:
the ratio of the two rates and of their CPU time per page. One run each, not five (a reparse
takes about a minute on a quiet machine and several on a busy one).

The reparse reads and parses in a second process while the first writes (see
kremlin_archive/jobs/reparse.py), so its CPU time (both processes: wait4 counts the reaped
reader) is above its wall time on an idle machine with two cores.

`profile_reparse`: a reparse of the WARC of one slice crawl of section 2 under cProfile, its
time cut into store, parse, WARC reading and fetch-row lookup and insert. It runs with
KREMLIN_REPARSE_WORKER=0 (reading and parsing in the same process), so that one profile sees
every part.
"""

from __future__ import annotations

import contextlib
import pstats
import re
import time
from pathlib import Path

from common import (
    NEWS,
    Run,
    checked,
    child_env,
    cli,
    count_events,
    cum,
    cum_named,
    event_pages,
    profiled,
    say,
    shown,
)

from kremlin_archive import parsing


def parse_only_pass(pages: list[Path]) -> dict:
    """parse_event over every page once, in this process: wall and CPU seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    parsed = 0
    for page in pages:
        body = page.read_bytes()
        with contextlib.suppress(parsing.ParseError):
            parsing.parse_event(body, f"{NEWS}/{page.stem}")
            parsed += 1
    seconds = time.perf_counter() - started
    return {
        "pages": parsed,
        "seconds": seconds,
        "cpu_s": time.process_time() - cpu,
        "pages_per_s": parsed / seconds,
    }


def reparse_args(db: Path, home: Path) -> list[str]:
    """The arguments of a reparse of `home`'s WARC into the database `db`."""
    return ["reparse", "--db", str(db), "--warc-dir", str(home / "warc")]


def reparse_rate(mirror: Path, work: Path, home: Path) -> dict:
    """One reparse of the full archive's WARC into a fresh database, right after a parse-only
    pass over the same pages (five reparses would not fit the budget)."""
    pages = event_pages(mirror)
    parse_only = parse_only_pass(pages)
    say(f"reparse: parse-only pass {parse_only['pages_per_s']:.0f} pages/s")
    fresh = work / "reparsed.db"
    argv = cli(*reparse_args(fresh, home))
    run = Run(argv, env=child_env(None), log=work / "reparse.log")
    result = checked(run, run.wait(), "reparse")
    match = re.search(r"(\d+) captures, (\d+) events parsed", run.output())
    captures, parsed = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    events = count_events(fresh)
    rate = parsed / result["wall_s"]
    return {
        "command": shown(argv, work),
        "captures": captures,
        "events_parsed": parsed,
        "events": events,
        "wall_s": result["wall_s"],
        "cpu_s": result["cpu_s"],
        "pages_per_s": rate,
        "parse_only": parse_only,
        "parse_only_pages_per_s": parse_only["pages_per_s"],
        "ratio": rate / parse_only["pages_per_s"],
        "cpu_ratio": (parse_only["cpu_s"] / parse_only["pages"]) / (result["cpu_s"] / parsed),
        "extra_ms_per_event": (1 / rate - 1 / parse_only["pages_per_s"]) * 1e3,
    }


def profile_reparse(work: Path, home: Path) -> dict:
    """cProfile of a reparse of the full archive's WARC into a fresh database (shares)."""
    from kremlin_archive import db
    from kremlin_archive.jobs import reparse

    prof = work / "reparse.prof"
    fresh = work / "reparse-profiled.db"
    argv = profiled(prof, "-m", "kremlin_archive.cli", *reparse_args(fresh, home))
    env = {**child_env(None), "KREMLIN_REPARSE_WORKER": "0"}  # one process: one profile
    run = Run(argv, env=env, log=work / "reparse-profile.log")
    checked(run, run.wait(), "profiled reparse")
    stats = pstats.Stats(str(prof))
    total = cum(stats, reparse.reparse)
    store = cum(stats, db.save_transcript)
    parse = cum(stats, parsing.parse_event)
    read = cum_named(stats, "iter_captures", "kremlin_archive/warc/reader.py")
    lookup = cum(stats, db.fetches_of_warc_file)
    record = cum(stats, db.record_fetch)
    rows = [
        ("store: db.save_transcript", store),
        ("parse: parsing.parse_event", parse),
        ("read WARC: warc.iter_captures", read),
        ("fetch row lookup: db.fetches_of_warc_file", lookup),
        ("fetch row insert: db.record_fetch", record),
    ]
    rows.append(("the rest", total - sum(x for _, x in rows)))
    sql_calls = sum(
        v[1] for (_f, _l, name), v in stats.stats.items() if name.startswith("<method 'execute")
    )
    return {"command": shown(argv, work), "total_s": total, "rows": rows, "sql_calls": sql_calls}
