"""Section 7 of `make bench`: what resolving speakers to persons costs a crawl.

Every event page of the capture is stored as a crawl stores it -- `db.save_transcript` with the
run's one growing index, then `db.settle_persons` at the end -- in this process, with the time
spent in `db._resolve_people` (resolve the event's turns, store its person links, make sure its
persons have rows) measured apart. That time, plus building the index at the start and the settle
at the end, divided by the events, is the cost of persons per event; set against the crawl's own
CPU time per request and wall time per page (section 2), it is how much persons slow a crawl
(target: at most 10 %). The resolution outcome on the whole capture is reported with it.
"""

from __future__ import annotations

import time
from pathlib import Path

from kremlin_archive import db as dbmod
from kremlin_archive.parsing import parse_event

EN = "http://en.kremlin.ru/events/president/news/"


def persons_cost(pages: list[Path], work: Path) -> dict:
    transcripts = [parse_event(p.read_bytes(), f"{EN}{p.stem}") for p in pages]
    path = work / "persons-bench.db"
    db = dbmod.open_db(path)
    spent = [0.0]
    resolve = dbmod._resolve_people

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return resolve(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    dbmod._resolve_people = timed
    try:
        started = time.perf_counter()
        index = dbmod.person_index(db)
        index_s = time.perf_counter() - started
        started = time.perf_counter()
        for t in transcripts:
            dbmod.save_transcript(db, t, index=index)
        store_s = time.perf_counter() - started
        started = time.perf_counter()
        settled = dbmod.settle_persons(db)
        settle_s = time.perf_counter() - started
    finally:
        dbmod._resolve_people = resolve
    counts = dbmod.person_counts(db)
    db.close()
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    events = len(transcripts)
    persons_s = spent[0] + index_s + settle_s
    return {
        "events": events,
        "store_s": store_s,
        "resolve_s": spent[0],
        "index_s": index_s,
        "settle_s": settle_s,
        "settled": settled,
        "persons_ms_per_event": persons_s / events * 1e3,
        "share_of_store": spent[0] / store_s,
        "counts": counts,
    }


def slowdown(cost: dict, crawl: dict) -> dict:
    """The cost per event against the crawl of section 2: share of its CPU per request and of
    its wall time per page (the crawl asks for a few listing pages besides the events, so both
    are per request: the share is an upper bound per event page)."""
    per_event_ms = cost["persons_ms_per_event"]
    wall_ms = 1e3 / crawl["crawl_pages_per_s"]
    return {
        "cpu_share": per_event_ms / crawl["crawl_cpu_ms_per_request"],
        "wall_share": per_event_ms / wall_ms,
        "crawl_cpu_ms_per_request": crawl["crawl_cpu_ms_per_request"],
        "crawl_wall_ms_per_page": wall_ms,
    }
