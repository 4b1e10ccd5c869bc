"""Section 5 of `make bench`: reparse from WARC against parsing alone.

`kremlin-archive reparse` of the full archive's WARC (section 3) into a fresh database against
a parse-only pass (parse_event over the same pages, in the harness process), in `PAIRS`
alternating pairs, back to back: the median of the pairs' ratios of the two rates, and of their
CPU time per page. The parse-only pass alone varied from 543 to 825 pages/s between runs of the
bench on this shared machine, so one pair could land anywhere between them.

The reparse reads and parses in a second process while the first writes (see
kremlin_archive/jobs/reparse.py), so its CPU time (both processes: wait4 counts the reaped
reader) is above its wall time on an idle machine with two cores.

The bound: the reparse's CPU time (both processes) spread perfectly over the machine's cores
is the shortest wall time its work allows; the rate that gives, against the parse-only rate,
is the best ratio this reparse could reach on this machine without doing less work per event.

`profile_reparse`: the same reparse under py-spy (both processes, sampled from outside: cProfile
would see one process, and inflate Python-heavy parts), its samples cut into parts and turned
into CPU milliseconds per event of the unprofiled run.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from pathlib import Path

from common import (
    NEWS,
    SPY_RATE,
    TARGETS,
    Run,
    checked,
    child_env,
    cli,
    count_events,
    event_pages,
    py_spy,
    say,
    shown,
    spy_part,
)

from kremlin_archive import parsing
from kremlin_archive.jobs import reparse as reparse_job


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


PAIRS = 3  # parse-only/reparse pairs: a reparse of the mirror takes 15-30 s


def reparse_args(db: Path, home: Path) -> list[str]:
    """The arguments of a reparse of `home`'s WARC into the database `db`."""
    return ["reparse", "--db", str(db), "--warc-dir", str(home / "warc")]


def one_reparse(work: Path, home: Path, n: int, *, held: bool = False) -> dict:
    """A reparse of `home`'s WARC into a fresh database or, `held`, into a copy of the archive
    the crawl built (every event held: what a reparse after a parser change does): the
    child's wall and CPU time."""
    db = work / f"{'held' if held else 'reparsed'}-{n}.db"
    if held:
        with (
            contextlib.closing(sqlite3.connect(home / "kremlin.db")) as source,
            contextlib.closing(sqlite3.connect(db)) as copy,
        ):
            source.backup(copy)
    argv = cli(*reparse_args(db, home))
    run = Run(argv, env=child_env(None), log=work / f"{db.stem}.log")
    result = checked(run, run.wait(), "reparse")
    match = re.search(r"(\d+) captures, (\d+) events parsed \(new (\d+), changed (\d+), "
                      r"unchanged (\d+)\)", run.output())  # fmt: skip
    counts = [int(x) for x in match.groups()] if match else [0] * 5
    result.update(
        command=shown(argv, work).replace(db.name, "held.db" if held else "reparsed.db"),
        captures=counts[0],
        events_parsed=counts[1],
        outcomes=dict(zip(("new", "changed", "unchanged"), counts[2:], strict=True)),
        events=count_events(db),
        pages_per_s=counts[1] / result["wall_s"],
    )
    for path in work.glob(f"{db.name}*"):
        path.unlink()
    return result


def reparse_rate(mirror: Path, work: Path, home: Path, pairs: int = PAIRS) -> dict:
    """Reparses of the full archive's WARC into a fresh database and parse-only passes over the
    same pages, in alternating pairs (P R, R P, P R …: drift of the machine's speed cancels);
    the median of the pairs' ratios. Then one reparse into a copy of the crawl's own archive
    (`held`), its rate set against the median pair's parse-only rate."""
    pages = event_pages(mirror)
    by_pair = []
    for i in range(pairs):
        both: dict[str, dict] = {}
        for kind in ("parse", "reparse") if i % 2 == 0 else ("reparse", "parse"):
            both[kind] = parse_only_pass(pages) if kind == "parse" else one_reparse(work, home, i)
            say(f"reparse: pair {i + 1}/{pairs}, {kind}: {both[kind]['pages_per_s']:.0f} pages/s")
        p, r = both["parse"], both["reparse"]
        by_pair.append(
            {
                "parse": p,
                "reparse": r,
                "ratio": r["pages_per_s"] / p["pages_per_s"],
                "cpu_ratio": (p["cpu_s"] / p["pages"]) / (r["cpu_s"] / r["events_parsed"]),
            }
        )
    mid = sorted(by_pair, key=lambda x: x["ratio"])[len(by_pair) // 2]  # the median pair
    held = one_reparse(work, home, 0, held=True)
    say(f"reparse: into the crawl's own archive: {held['pages_per_s']:.0f} pages/s")
    r, p = mid["reparse"], mid["parse"]
    cores = reparse_job.cores()
    cpu_ms = r["cpu_s"] * 1e3 / r["events_parsed"]  # per event, both processes
    bound_rate = cores * 1e3 / cpu_ms  # that CPU time spread over every core
    target_rate = TARGETS["reparse_parse"] * p["pages_per_s"]
    return {
        "command": r["command"],
        "pairs": by_pair,
        "held": held,
        "held_ratio": held["pages_per_s"] / mid["parse"]["pages_per_s"],
        "captures": r["captures"],
        "events_parsed": r["events_parsed"],
        "events": r["events"],
        "wall_s": r["wall_s"],
        "cpu_s": r["cpu_s"],
        "pages_per_s": r["pages_per_s"],
        "parse_only": p,
        "parse_only_pages_per_s": p["pages_per_s"],
        "ratio": mid["ratio"],
        "cpu_ratio": mid["cpu_ratio"],
        "extra_ms_per_event": (1 / r["pages_per_s"] - 1 / p["pages_per_s"]) * 1e3,
        "cores": cores,
        "cpu_ms_per_event": cpu_ms,
        "parse_only_cpu_ms": p["cpu_s"] * 1e3 / p["pages"],
        "bound_pages_per_s": bound_rate,
        "bound_ratio": bound_rate / p["pages_per_s"],
        # the CPU per event at which that bound would meet the target
        "target_cpu_ms": cores * 1e3 / target_rate,
    }


# Where a reparse's time goes, in each of its two processes: the first of these markers found
# in a sampled stack, searched from its innermost frame out (so parse_event inside the writer's
# `_parse` counts as parsing, a commit's full-text fill as the full-text index).
PROFILE_PARTS = [
    ("parse: parsing.parse_event", "parse_event (kremlin_archive/parsing.py"),
    ("content hash: db.content_of, db.content_hash", "content_hash (kremlin_archive/db.py"),
    ("content hash: db.content_of, db.content_hash", "content_of (kremlin_archive/db.py"),
    ("read WARC: warc.iter_captures (inflate, headers, digest check)", "iter_captures ("),
    ("read WARC: warc.iter_captures (inflate, headers, digest check)", "RecordReader.read ("),
    ("fetches row made: _fetch_row", "_fetch_row (kremlin_archive/jobs/reparse.py"),
    ("hand-over between the processes: pickle and pipe", "multiprocessing/connection.py"),
    ("full-text index: db.DeferredSearchIndex.flush", "DeferredSearchIndex.flush ("),
    ("persons, once at the end: db.settle_persons", "settle_persons (kremlin_archive/db.py"),
    ("store: db.save_transcript", "save_transcript (kremlin_archive/db.py"),
    ("fetches row insert: db.record_fetch", "record_fetch (kremlin_archive/db.py"),
    ("commits", "_Batches.commit ("),
    ("indexes built at the end: db.bulk_writes", "bulk_writes (kremlin_archive/db.py"),
]
_REPARSE_FRAME = "reparse (kremlin_archive/jobs/reparse.py"


def reparse_spy_parts(raw: Path) -> dict:
    """Samples of a `py-spy record --subprocesses --format raw` of a reparse, by process
    (writer: the command's own; reader: the forked one) and part."""
    by: dict[str, dict[str, int]] = {"writer": {}, "reader": {}}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        # a forked child's stacks start with its parent's "process …" frame, then its own
        proc = "reader" if len(frames) > 1 and frames[1].startswith("process ") else "writer"
        if not any(_REPARSE_FRAME in f for f in frames):
            label = "start-up and shutdown (imports, opening the archive)"
        else:
            label = spy_part(frames, PROFILE_PARTS, "the rest (the loop, coverage, listings)")
            label = label or "the rest (the loop, coverage, listings)"
        by[proc][label] = by[proc].get(label, 0) + int(count)
    return by


def profile_reparse(work: Path, home: Path, rate: dict) -> dict:
    """py-spy over the same reparse as `reparse_rate` (the full archive's WARC into a fresh
    database), both processes: the share of each part, and the CPU milliseconds per event that
    share is of the unprofiled run's CPU time (`rate`)."""
    raw = work / "reparse.spy"
    fresh = work / "reparse-profiled.db"
    for path in work.glob(f"{fresh.name}*"):
        path.unlink()  # into a fresh database, as the runs it stands for
    argv = [py_spy(), "record", "--subprocesses", "--rate", str(SPY_RATE), "--format", "raw",
            "--output", str(raw), "--", *cli(*reparse_args(fresh, home))]  # fmt: skip
    run = Run(argv, env=child_env(None), log=work / "reparse-profile.log")
    checked(run, run.wait(), "profiled reparse")
    by = reparse_spy_parts(raw)
    total = sum(sum(parts.values()) for parts in by.values())
    ms_per_sample = rate["cpu_s"] * 1e3 / rate["events_parsed"] / total if total else 0.0
    rows = [
        (proc, label, n / total, n * ms_per_sample)
        for proc, parts in by.items()
        for label, n in sorted(parts.items(), key=lambda kv: -kv[1])
    ]
    return {
        "command": shown(argv, work).replace(str(raw), "$WORK/reparse.spy"),
        "samples": total,
        "rows": rows,
        "by_process": {proc: sum(parts.values()) / total for proc, parts in by.items()},
    }
