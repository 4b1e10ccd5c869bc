"""Section 2 of `make bench`: the crawl against a bare Scrapy spider.

`kremlin-archive crawl` of a slice vs bench/bare_spider.py on the same URLs (exactly what the
first crawl run requested) through the same replay server, alternating runs (A B B A …, so that
drift of the machine's load cancels), median ratio of pages per second. Pages per second are
counted on the replay server: requests ÷ (last answer − first request), which leaves out process
start-up; wall and CPU time come from wait4.

When the crawl misses its target, one crawl of the slice and one bare run go under py-spy
(`profile_crawl`, `profile_bare`), which samples every thread and keeps the samples that hold
the GIL: the event loop's and the writer thread's Python time, each cut into parts that do not
contain one another (`gil_profile`).
"""

from __future__ import annotations

import re
import shutil
import statistics
from pathlib import Path

from common import (
    FAST,
    HERE,
    PY,
    SPY_RATE,
    Run,
    checked,
    child_env,
    cli,
    count_events,
    py_spy,
    say,
    shown,
    spy_part,
    with_settings,
)

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


# py-spy samples every thread of the process from outside; `--gil` keeps only the samples where
# a thread holds the GIL, i.e. runs Python code. The writer thread and the event loop share one
# GIL, so their GIL seconds add up to what the process can do at most per second; cProfile sees
# one thread only and counts a wait for the GIL as time of whatever function waits.
def spied(raw: Path, argv: list[str]) -> list[str]:
    return [py_spy(), "record", "--threads", "--gil", "--rate", str(SPY_RATE), "--format", "raw",
            "--output", str(raw), "--", *argv]  # fmt: skip


def spy_samples(raw: Path):
    """(thread, frames root first, samples) of each distinct stack of a raw py-spy record."""
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        # "thread (0x7f…): MainThread" -> "MainThread" (empty before Python names the thread)
        thread = frames[0].partition(":")[2].strip() or "MainThread"
        yield thread, [re.sub(r":\d+\)$", ")", f) for f in frames[1:]], int(count)


# Where the event loop's and the writer's GIL time goes: the first rule matching a stack,
# searched from its innermost frame out (so parse_event inside the spider's callback counts as
# parsing, the rest of the callback as the project's code).
LOOP_PARTS = [
    ("parse: parsing.parse_event", "parse_event (kremlin_archive/parsing.py)"),
    ("parse: parsing.parse_listing", "parse_listing (kremlin_archive/parsing.py)"),
    ("logging (to stderr)", "logging/__init__.py"),
]
WRITER_PARTS = [
    ("persons: db._resolve_people, db.settle_persons", "_resolve_people (kremlin_archive/db.py)"),
    ("persons: db._resolve_people, db.settle_persons", "settle_persons (kremlin_archive/db.py)"),
    ("store: db.save_transcript", "save_transcript (kremlin_archive/db.py)"),
    ("WARC: write_exchange (records, gzip, write, fsync)", "write_exchange (kremlin_archive/"),
    ("fetches row: db.record_fetch", "record_fetch (kremlin_archive/db.py)"),
    ("revisit lookup: db.last_capture_of_payload", "last_capture_of_payload (kremlin_archive/"),
]
# the project's frames that hold the whole run, not work of their own
_OUTER = ("kremlin_archive/cli.py", "run_crawl (kremlin_archive/crawl_run.py)")


def _part(frames: list[str], parts: list[tuple[str, str]], rest: str) -> str:
    return spy_part(frames, parts, rest, _OUTER)


def gil_profile(raw: Path) -> dict:
    """GIL seconds by thread and part: start-up and shutdown (outside the reactor loop), the
    event loop's work, the writer's."""
    loop: dict[str, float] = {}
    writer: dict[str, float] = {}
    outside = 0.0
    for thread, frames, count in spy_samples(raw):
        seconds = count / SPY_RATE
        if thread == "kremlin-writer":
            label = _part(frames, WRITER_PARTS, "rest of the writer's jobs")
            writer[label or "the writer's queue"] = (
                writer.get(label or "the writer's queue", 0) + seconds
            )
        elif not any("run_forever" in f for f in frames):
            outside += seconds  # imports, opening the archive, closing it
        else:
            label = _part(frames, LOOP_PARTS, "the project's other code (middlewares, spider "
                          "callbacks, pipelines, the writer's hand-off)")  # fmt: skip
            label = label or "Scrapy/Twisted/asyncio machinery"
            loop[label] = loop.get(label, 0) + seconds
    return {"loop": loop, "writer": writer, "outside_s": outside}


def profile_crawl(mirror: Path, work: Path) -> dict:
    """One crawl of the slice under py-spy: GIL time of the event loop and the writer thread."""
    home = work / "profile"
    raw = work / "crawl.spy"
    argv = with_settings(cli(*slice_crawl(home)))
    with ReplayServer(mirror) as server:
        run = Run(spied(raw, argv), env=child_env(server.proxy_url), log=work / "profile.log")
        result = checked(run, run.wait(), "profiled crawl")
        requests = len(server.log)
    shutil.rmtree(home, ignore_errors=True)
    return {
        "command": shown(spied(Path("$WORK/crawl.spy"), argv), work, "$REPLAY"),
        "requests": requests,
        "wall_s": result["wall_s"],
        **gil_profile(raw),
    }


def profile_bare(mirror: Path, work: Path) -> dict:
    """The bare spider under the same sampler."""
    raw = work / "bare.spy"
    argv = with_settings(
        [PY, str(HERE / "bare_spider.py"), "--urls-file", str(work / "slice-urls.txt")],
        SHARED_SETTINGS,
    )
    with ReplayServer(mirror) as server:
        run = Run(spied(raw, argv), env=child_env(server.proxy_url), log=work / "bare-profile.log")
        checked(run, run.wait(), "profiled bare spider")
        requests = len(server.log)
    return {"command": shown(spied(Path("$WORK/bare.spy"), argv), work, "$REPLAY"),
            "requests": requests, **gil_profile(raw)}  # fmt: skip
