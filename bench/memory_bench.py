"""Section 3 of `make bench`: memory over the whole mirror, and how far the listing walk reaches.

`kremlin-archive fetch --urls-file` of every event page of the mirror (the listing walk cannot
reach them all, see BENCHMARKS.md) against a replay server with ETags; VmRSS and VmHWM of the
fetch process sampled from /proc/<pid>/status every 0.2 s against the number of requests served
(`RssSampler`), and the process's own VmHWM printed at exit by a wrapper (`VMHWM_WRAPPER`).
By default it runs while section 1 runs in another process: it yields only memory and request
counts, no speed (`--serial`: one by one). The archive it leaves is what sections 4, 5 and 6
work on.

`listing_walk_reach`: `crawl --since 1999-01-01` of the capture, counted once (not timed), to
say where the walk stops and why every event URL is fetched instead.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from common import (
    FAST,
    LISTING,
    NEWS,
    PY,
    Run,
    checked,
    child_env,
    cli,
    count_events,
    event_pages,
    news_dir,
    shown,
    with_settings,
)

from kremlin_archive.devtools.replay import ReplayServer


class RssSampler(threading.Thread):
    """VmRSS and VmHWM of `pid` every `interval` s, with the number of requests the server
    has answered so far."""

    def __init__(self, pid: int, server: ReplayServer, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.server, self.interval = pid, server, interval
        # (s since start, requests, VmRSS MB, VmHWM MB)
        self.samples: list[tuple[float, int, float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        status = Path(f"/proc/{self.pid}/status")
        while not self.stop.is_set():
            try:
                text = status.read_text()
            except OSError:
                break
            rss = re.search(r"VmRSS:\s+(\d+) kB", text)
            hwm = re.search(r"VmHWM:\s+(\d+) kB", text)
            if rss is None or hwm is None:  # a zombie: exited, not yet reaped
                break
            requests = len(self.server._log)  # a length read, no copy
            self.samples.append(
                (
                    time.monotonic() - started,
                    requests,
                    int(rss.group(1)) / 1024,
                    int(hwm.group(1)) / 1024,
                )
            )
            self.stop.wait(self.interval)


# `kremlin-archive ARGS`, printing the process's own VmHWM when it exits. wait4's ru_maxrss is
# no use here: Linux carries the parent's high-water mark across fork+exec into the child's.
VMHWM_WRAPPER = (
    "import atexit, runpy, sys; "
    "atexit.register(lambda: sys.stderr.write('bench: VmHWM ' + next(l.split(':')[1].strip() "
    "for l in open('/proc/self/status') if l.startswith('VmHWM')) + '\\n')); "
    "sys.argv = ['kremlin-archive', *sys.argv[1:]]; "
    "runpy.run_module('kremlin_archive.cli', run_name='__main__', alter_sys=True)"
)


def full_fetch(server: ReplayServer, mirror: Path, work: Path, home: Path, limit=None) -> dict:
    pages = event_pages(mirror)
    if limit:
        pages = pages[-limit:]
    urls_file = work / "all-event-urls.txt"
    urls_file.write_text("".join(f"{NEWS}/{p.stem}\n" for p in pages))
    args = [
        "fetch",
        "--urls-file",
        str(urls_file),
        "--db",
        str(home / "kremlin.db"),
        "--warc-dir",
        str(home / "warc"),
    ]
    argv = with_settings([PY, "-c", VMHWM_WRAPPER, *args])
    server.clear_log()
    run = Run(argv, env=child_env(server.proxy_url), log=work / "full-fetch.log")
    sampler = RssSampler(run.pid, server)
    sampler.start()
    result = run.wait()
    sampler.stop.set()
    sampler.join()
    checked(run, result, "full fetch")
    log = server.log
    samples = sampler.samples
    said = re.search(r"bench: VmHWM (\d+) kB", run.output())
    peak = int(said.group(1)) / 1024 if said else max((s[3] for s in samples), default=0.0)
    at_1000 = next((s for s in samples if s[1] >= 1000), None)
    peak_after = None
    if at_1000:
        later = max(s[2] for s in samples if s[0] >= at_1000[0])
        # the high-water mark rose after 1,000 requests: the peak is later than that sample
        peak_after = max(later, peak) if peak > at_1000[3] else later
    milestones = []
    for mark in (100, 500, 1000, 2000, 3000, 4000, 5000, 6000):
        sample = next((s for s in samples if s[1] >= mark), None)
        if sample:
            milestones.append((mark, sample[2], sample[3], sample[0]))
    if samples:
        milestones.append((samples[-1][1], samples[-1][2], samples[-1][3], samples[-1][0]))
    peak_sample = next((s for s in samples if s[3] >= peak), None)
    events = count_events(home / "kremlin.db")
    statuses: dict[str, int] = {}
    for r in log:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    return {
        "command": shown(cli(*args), work, "$REPLAY") + " " + " ".join(f"-s {x}" for x in FAST),
        "urls": len(pages),
        "requests": len(log),
        "statuses": statuses,
        "events": events,
        "wall_s": result["wall_s"],
        "peak_rss_mb": peak,
        "peak_from": "VmHWM at exit" if said else "sampled VmHWM",
        "ru_maxrss_mb": result["maxrss_mb"],
        "sampled_peak_mb": max((s[2] for s in samples), default=0.0),
        "peak_at_requests": peak_sample[1] if peak_sample else None,
        "samples": len(samples),
        "interval_s": sampler.interval,
        "rss_at_1000_mb": at_1000[2] if at_1000 else None,
        "peak_after_1000_mb": peak_after,
        "final_rss_mb": samples[-1][2] if samples else None,
        "growth": peak_after / at_1000[2] if at_1000 and peak_after else None,
        "milestones": milestones,
        "series": samples,
    }


def listing_walk_reach(mirror: Path, work: Path) -> dict:
    """How far `crawl --since 1999-01-01 --discover listings` gets in the capture: counted once
    (not timed)."""
    home = work / "walk"
    argv = with_settings(
        cli(
            "crawl",
            "--lang",
            "en",
            "--since",
            "1999-01-01",
            # the reach of the listings alone: with `auto` the run would go on to walk every id
            # since 1999 that the listings could not vouch for (some 60,000 requests)
            "--discover",
            "listings",
            "--db",
            str(home / "kremlin.db"),
            "--warc-dir",
            str(home / "warc"),
        )
    )
    with ReplayServer(mirror) as server:
        run = Run(argv, env=child_env(server.proxy_url), log=work / "walk.log")
        result = run.wait()
        if result["returncode"] not in (0, 1):  # 1: the walk ended 'incomplete'
            checked(run, result, "listing walk")
        log = server.log
    said = re.search(r"kremlin-archive: (incomplete: .*)", run.output())
    conn = sqlite3.connect(home / "kremlin.db")
    events, oldest = conn.execute("SELECT count(*), min(published_at) FROM events").fetchone()
    conn.close()
    last_listing = [r.url for r in log if LISTING.search(r.url)][-1:]
    shutil.rmtree(home, ignore_errors=True)
    news = news_dir(mirror)
    by_date = [p.stem for p in (news / "by-date").glob("*.html")]
    return {
        "returncode": result["returncode"],
        # the resume command it names, with paths as a reader can retype them
        "message": said.group(1).strip().replace(str(work), "$WORK") if said else None,
        "listing_pages": len(list((news / "page").glob("*.html"))) + 1,
        "by_date_pages": len(by_date),
        "by_date_2006_2015": sum(2006 <= int(day[-4:]) <= 2015 for day in by_date),
        "command": shown(argv, work, "$REPLAY"),
        "requests": len(log),
        "events": events,
        "oldest": oldest,
        "last_listing": last_listing[0] if last_listing else None,
    }
