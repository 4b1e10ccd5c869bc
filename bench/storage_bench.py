"""Section 6 of `make bench`: storage and search on the full archive (section 3).

Database and WARC bytes per event (the database checkpointed first, its size by table from
dbstat), and the time of an FTS5 prefix query against the same search by `LIKE '%word%'` over
title, lead and text (a full scan), each query timed `repeat` times, median. The queries, the
timing and the sizes by table come from bench/search_bench.py.
"""

from __future__ import annotations

import sqlite3
import statistics
from pathlib import Path

import search_bench  # bench/search_bench.py: queries and timing


def storage_and_search(home: Path, repeat: int) -> dict:
    db_path = home / "kremlin.db"
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    utterances = conn.execute("SELECT count(*) FROM utterances").fetchone()[0]
    db_bytes = sum(
        p.stat().st_size for p in home.glob("kremlin.db*") if not p.name.endswith("lock")
    )
    warc_files = sorted((home / "warc").glob("*.warc*"))
    warc_bytes = sum(p.stat().st_size for p in warc_files)
    groups = search_bench.sizes(conn)
    queries = []
    for query in search_bench.QUERIES:
        fts, n_fts = search_bench.timed(
            conn,
            "SELECT rowid FROM events_fts WHERE events_fts MATCH ?",
            [search_bench.phrase(query) + "*"],
            repeat,
        )
        like, n_like = search_bench.timed(
            conn,
            "SELECT rowid FROM events WHERE title LIKE ?1 OR lead LIKE ?1 OR text LIKE ?1",
            [f"%{query}%"],
            repeat,
        )
        queries.append(
            {
                "query": query,
                "fts_ms": fts,
                "fts_hits": n_fts,
                "like_ms": like,
                "like_hits": n_like,
                "ratio": like / fts if fts else None,
            }
        )
    conn.close()
    return {
        "events": events,
        "utterances": utterances,
        "db_bytes": db_bytes,
        "warc_bytes": warc_bytes,
        "warc_files": len(warc_files),
        "db_per_event": db_bytes / events,
        "warc_per_event": warc_bytes / events,
        "groups": groups,
        "queries": queries,
        "median_fts_ms": statistics.median(q["fts_ms"] for q in queries),
        "median_like_ms": statistics.median(q["like_ms"] for q in queries),
        "median_ratio": statistics.median(q["ratio"] for q in queries if q["ratio"]),
        "repeat": repeat,
    }
