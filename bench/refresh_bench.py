"""Section 4 of `make bench`: what a refresh costs in requests.

Two `kremlin-archive refresh` runs on the archive of the full fetch (section 3), against the
same replay server with ETags: one with no change, one after 10 new events (the simulation of
tests/test_refresh.py `publish_new_events`). The requests the server answered are counted by
kind, to set against the full fetch's request count.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from common import LISTING, Run, checked, child_env, cli, say, shown, with_settings

from kremlin_archive.devtools.replay import ReplayServer

EVENT = re.compile(r"/events/president/news/(\d+)$")


def classify(log) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in log:
        if r.url.endswith("/robots.txt"):
            kind = "robots.txt"
        elif r.url.endswith("/news/feed"):
            kind = "feed"
        elif LISTING.search(r.url):
            kind = "listing"
        elif EVENT.search(r.url):
            kind = f"event {r.status}"
        else:
            kind = "other"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def refresh_cost(server: ReplayServer, mirror: Path, work: Path, home: Path) -> dict:
    from test_refresh import publish_new_events  # tests/test_refresh.py: "k new events"

    out = {}
    for label, new in (("no change", 0), ("10 new events", 10)):
        new_ids = publish_new_events(server, mirror, new) if new else []
        argv = with_settings(
            cli(
                "refresh",
                "--lang",
                "en",
                "--db",
                str(home / "kremlin.db"),
                "--warc-dir",
                str(home / "warc"),
            )
        )
        server.clear_log()
        run = Run(argv, env=child_env(server.proxy_url), log=work / f"refresh-{new}.log")
        result = checked(run, run.wait(), f"refresh ({label})")
        log = server.log
        summary = re.search(r"finished; new (\d+), changed (\d+), unchanged (\d+)", run.output())
        stored = set()
        if new_ids:
            conn = sqlite3.connect(home / "kremlin.db")
            marks = ",".join("?" * len(new_ids))
            stored = {
                r[0]
                for r in conn.execute(
                    f"SELECT kremlin_id FROM events WHERE lang = 'en' AND kremlin_id IN ({marks})",
                    new_ids,
                )
            }
            conn.close()
        out[label] = {
            "command": shown(argv, work, "$REPLAY"),
            "requests": len(log),
            "kinds": classify(log),
            "new": int(summary.group(1)) if summary else None,
            "new_ids_stored": len(stored),
            "wall_s": result["wall_s"],
        }
        say(f"refresh ({label}): {len(log)} requests {classify(log)}")
    return out
