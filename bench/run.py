"""`make bench`: measured speed, memory and refresh cost, side by side with the alternatives
(issue 9). Rewrites BENCHMARKS.md (atomically, at the end) with every number, the command that
produced it and the machine it ran on.

    .venv/bin/python bench/run.py [--out BENCHMARKS.md] [--pairs 5] [--repeat 5] [--sample 500]
                                  [--serial] [--keep DIR] [--quick]

Everything runs on the real 2020 capture of en.kremlin.ru (../shared/mirror, or $KREMLIN_SHARED;
$KREMLIN_MIRROR_DIR may name an unpacked copy) through the project's replay server on
127.0.0.1 — nothing contacts kremlin.ru, nothing from ../shared is written into the repository.

This file is the driver: it runs the measures in order, times each phase and writes the report.
Each measure is its own module (their docstrings say how they measure):

1. parse      bench/parse_harness.py runs bench/parse_bench.py (parse_event vs lxml, vs
              trafilatura with token-F1 agreement) in a subprocess.
2. crawl      bench/crawl_bench.py: `kremlin-archive crawl` of a slice vs bench/bare_spider.py on
              the same URLs, alternating runs, median ratio of pages per second.
3. memory     bench/memory_bench.py: `kremlin-archive fetch --urls-file` of every event page of
              the mirror with its RSS sampled, and how far the listing walk reaches. By default
              it runs while (1) runs in another process: it yields only memory and request
              counts, no speed (--serial: one by one).
4. refresh    bench/refresh_bench.py: requests of a no-change refresh and of one after 10 new
              events, against the full fetch's request count.
5. reparse    bench/reparse_bench.py: `kremlin-archive reparse` of the full archive's WARC into a
              fresh database vs a parse-only pass over the same pages, back to back; the
              bound its CPU time per event sets on two cores; the same reparse under py-spy.
6. storage    bench/storage_bench.py: database and WARC bytes per event; FTS vs LIKE query times
              (queries and timing from bench/search_bench.py).
7. persons    bench/persons_bench.py: the cost of resolving speakers to persons while storing
              every event page, against the crawl's time per request (2).
8. scale      bench/scale_bench.py: the whole site -- a synthetic archive of ~160,000 records
              (bench/synthetic.py: the capture's pages under new ids, both languages; built
              once and cached under data/bench-cache/) measured at 10k, 40k and 160k records:
              sizes, FTS, Datasette pages, a no-change refresh's local work, coverage, export,
              reparse, import-txt; plots in bench/plots/. --rebuild-scale builds it again,
              --no-scale skips it, --only-scale runs it alone and rewrites only its section
              (and its summary rows) of the existing --out file.

Shared plumbing (paths, targets, measured child processes, cProfile reading) is in
bench/common.py; BENCHMARKS.md is written by bench/report.py.

A missed speed target gets a cProfile of the run in question, summarised in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import (
    BUDGET_S,
    REPO,
    T0,
    TARGETS,
    event_pages,
    machine,
    mirror_dir,
    say,
)
from crawl_bench import crawl_vs_bare, profile_bare, profile_crawl
from memory_bench import full_fetch, listing_walk_reach
from parse_harness import parse_vs_alternatives, profile_parse
from persons_bench import persons_cost, slowdown
from refresh_bench import refresh_cost
from reparse_bench import profile_reparse, reparse_rate
from report import report, splice_scale
from scale_bench import scale_measures
from storage_bench import storage_and_search

from kremlin_archive.devtools.replay import ReplayServer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--pairs", type=int, default=5, help="crawl/bare pairs (>= 5)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per page / query")
    parser.add_argument("--sample", type=int, default=500, help="pages for trafilatura")
    parser.add_argument("--serial", action="store_true", help="no overlap of parse and memory")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    parser.add_argument(
        "--rebuild-scale", action="store_true", help="build the synthetic archive (8) again"
    )
    parser.add_argument("--no-scale", action="store_true", help="skip section 8")
    parser.add_argument(
        "--only-scale",
        action="store_true",
        help="run section 8 alone; rewrite only its part of the existing --out file",
    )
    parser.add_argument(
        "--scale-reparse-upto",
        type=int,
        default=10_000,
        help="reparse the synthetic archives up to this many records (8; reparse runs at ~100 "
        "pages per CPU-second: 40k records take ~7 min)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        help="measure nothing: write the report of a run's saved results (the file each run "
        "saves in the temporary folder before its report)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test of the harness (1 pair, 50 pages, 1,500 URLs); writes "
        "BENCHMARKS.quick.md in the temporary folder unless --out is given",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.repeat, args.sample = 1, 1, 50
        if args.out == REPO / "BENCHMARKS.md":
            args.out = Path(tempfile.gettempdir()) / "BENCHMARKS.quick.md"
    return args


class Phases(list[tuple[str, float]]):
    """The timeline of the run: (name, seconds) of each phase, in order."""

    @contextlib.contextmanager
    def timed(self, name: str):
        mark = time.monotonic()
        yield
        self.append((name, time.monotonic() - mark))


def parse_memory_and_walk(
    args, mirror: Path, work: Path, home: Path, server: ReplayServer, results: dict, phases
) -> None:
    """1 (a subprocess) and the listing-walk check run while 3 fetches the whole mirror into
    `home` through `server`: neither the memory run nor the walk check yields a speed figure,
    and the parse ratios are paired per page. One by one with --serial."""
    memory: dict = {}

    def memory_run() -> None:
        try:
            memory["result"] = full_fetch(
                server, mirror, work, home, limit=1500 if args.quick else None
            )
        except BaseException as exc:  # reported by the main thread
            memory["error"] = exc

    def parse_run() -> None:
        results["parse"] = parse_vs_alternatives(mirror, work, args.repeat, args.sample)
        p, t = results["parse"]["lxml"], results["parse"]["trafilatura"]
        say(
            f"parse: {p['median_ratio']:.2f}x lxml; trafilatura "
            f"{t['median_of_runs']:.1f}x slower, F1 median {t['f1_median']:.3f}"
        )

    def walk_run() -> None:
        say("listing walk reach (crawl --since 1999-01-01 --discover listings)")
        results["walk"] = w = listing_walk_reach(mirror, work)
        say(f"listing walk: {w['events']} events, oldest {w['oldest']}")

    if args.serial:
        with phases.timed("1 parse"):
            say("parse: parse_event vs lxml (all pages), vs trafilatura (sample)")
            parse_run()
        with phases.timed("3 memory"):
            say("memory: fetching every event page of the mirror, sampling RSS")
            memory_run()
        with phases.timed("3 listing-walk check"):
            walk_run()
    else:
        with phases.timed("1 parse, 3 memory and the listing-walk check, side by side"):
            say("parse: parse_event vs lxml (all pages), vs trafilatura (sample)")
            say("memory: fetching every event page of the mirror, sampling RSS (alongside)")
            # the walk check starts when either of the two is done
            done = threading.Event()
            failures: list[BaseException] = []

            def then_signal(func):
                def wrapped() -> None:
                    try:
                        func()
                    except BaseException as exc:  # SystemExit from checked() included
                        failures.append(exc)
                    finally:
                        done.set()

                return wrapped

            fetcher = threading.Thread(target=then_signal(memory_run), daemon=True)
            parser_ = threading.Thread(target=then_signal(parse_run), daemon=True)
            fetcher.start()
            parser_.start()
            done.wait()
            walk_run()
            fetcher.join()
            parser_.join()
            if failures:
                raise failures[0]
    if "error" in memory:
        raise memory["error"]
    results["memory"] = mem = memory["result"]
    say(
        f"memory: {mem['requests']:,} requests, {mem['events']:,} events, peak RSS "
        f"{mem['peak_rss_mb']:.0f} MB, growth {mem['growth']:.2f}x"
    )


def measure(args, work: Path, results: dict, phases: Phases) -> None:
    """Every measure, in order, into `results`; the work files under `work`."""
    with phases.timed("unpack the mirror"):
        mirror = mirror_dir(work)
        pages = event_pages(mirror)
    say(f"mirror: {len(pages):,} event pages in {mirror}")

    # The archive of the full fetch (3) is what 6, 5 and 4 work on; 4 needs its server (ETags).
    home = work / "full"
    archive_server = ReplayServer(mirror, etags=True).start()
    try:
        parse_memory_and_walk(args, mirror, work, home, archive_server, results, phases)

        with phases.timed("6 storage and search"):
            say("storage and search")
            results["storage"] = storage_and_search(home, args.repeat)

        with phases.timed("2 crawl vs bare"):
            say("crawl vs bare spider")
            results["crawl"] = crawl_vs_bare(mirror, work, args.pairs)
            say(f"crawl vs bare: median ratio {results['crawl']['ratio']:.2f}")

        with phases.timed("5 reparse"):
            say("reparse from WARC")
            results["reparse"] = rep = reparse_rate(mirror, work, home)
            say(f"reparse: {rep['pages_per_s']:.0f} pages/s, {rep['ratio']:.2f}x parse-only")
            say("profile: the same reparse under py-spy")
            results["reparse_profile"] = profile_reparse(work, home, rep)

        with phases.timed("4 refresh"):
            say("refresh: no change, then 10 new events")
            results["refresh"] = refresh_cost(archive_server, mirror, work, home)
    finally:
        archive_server.stop()

    with phases.timed("7 persons"):
        say("persons: storing every event page with and apart from resolving its speakers")
        results["persons"] = cost = persons_cost(pages[:1500] if args.quick else pages, work)
        cost.update(slowdown(cost, results["crawl"]))
        say(
            f"persons: {cost['persons_ms_per_event']:.2f} ms per event = "
            f"{cost['cpu_share']:.1%} of the crawl's CPU per request"
        )

    if not (args.no_scale or args.quick):
        import synthetic

        if synthetic.load(mirror) is None and not args.rebuild_scale:
            # building it takes ~35 min of two quiet cores: never inside the 15-minute budget
            results["scale_skipped"] = (
                f"the synthetic archive is not built (no {synthetic.scale_dir(mirror, 160_000)}"
                "/manifest.json): build and measure it with `.venv/bin/python bench/run.py "
                "--only-scale` (about 35 minutes on two quiet cores, then cached)"
            )
            say("section 8 skipped: " + results["scale_skipped"])
        else:
            with phases.timed("8 the whole site (synthetic archive)"):
                say("the whole site: the synthetic archive at 10k, 40k, 160k records")
                results["scale"] = scale(args, mirror, work)
    if results["crawl"]["ratio"] < TARGETS["crawl_bare"]:
        with phases.timed("2 profile of a crawl"):
            say("crawl target missed: profiling one crawl of the slice")
            results["crawl_profile"] = profile_crawl(mirror, work)
            results["bare_profile"] = profile_bare(mirror, work)
    if results["parse"]["lxml"]["median_ratio"] > TARGETS["parse_lxml"]:
        with phases.timed("1 profile of parse_event"):
            say("parse target missed: profiling parse_event")
            results["parse_profile"] = profile_parse(pages)


def scale(args, mirror: Path, work: Path) -> dict:
    return scale_measures(
        mirror,
        work,
        repeat=args.repeat,
        rebuild=args.rebuild_scale,
        reparse_upto=args.scale_reparse_upto,
    )


def only_scale(args, results: dict) -> int:
    """Section 8 alone, spliced into the existing report (its section and summary rows)."""
    work = Path(tempfile.mkdtemp(prefix="kremlin-bench-"))
    try:
        mirror = mirror_dir(work)
        results["scale"] = scale(args, mirror, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["scale"]["notes"] = [
        f"Section 8 was measured on its own (`{results['command']}`) on "
        f"{results['machine']['date']}, in {results['scale']['seconds'] / 60:.1f} min; load "
        f"average {results['machine']['load_start'][0]:.1f} at its start."
    ]
    old = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
    write_atomically(args.out, splice_scale(old, results))
    say(f"wrote section 8 into {args.out}")
    return 0


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        write_atomically(args.out, report(json.loads(args.from_json.read_text())))
        say(f"wrote {args.out} from {args.from_json}")
        return 0
    shown_args = [a for a in (argv if argv is not None else sys.argv[1:])]
    results: dict = {
        "command": " ".join([".venv/bin/python bench/run.py", *map(shlex.quote, shown_args)]),
        "serial": args.serial,
    }
    phases = Phases()
    results["machine"] = machine()
    say(
        f"machine: {results['machine']['nproc']} cores, {results['machine']['cpu']}, "
        f"load {results['machine']['load_start'][0]:.1f}"
    )
    if args.only_scale:
        return only_scale(args, results)
    work = Path(tempfile.mkdtemp(prefix="kremlin-bench-"))
    try:
        measure(args, work, results, phases)
    finally:
        if args.keep:
            shutil.copytree(
                work, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("mirror")
            )
            (args.keep / "results.json").write_text(json.dumps(results, indent=1, default=str))
        shutil.rmtree(work, ignore_errors=True)

    results["phases"] = list(phases)
    results["load_end"] = os.getloadavg()
    results["total_s"] = time.monotonic() - T0
    # the measurements first, so that a fault of the report never costs a run (`--from-json`)
    saved = Path(tempfile.gettempdir()) / "kremlin-bench-results.json"
    saved.write_text(json.dumps(results, indent=1, default=str))
    say(f"results saved to {saved}")
    write_atomically(args.out, report(results))
    say(f"wrote {args.out} (total {results['total_s'] / 60:.1f} min)")
    if results["total_s"] > BUDGET_S:
        say("warning: over the 15-minute budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
