"""Section 8 of `make bench`: the whole site, measured (issue 17, items 4-5).

On the synthetic archive of bench/synthetic.py (the capture's pages under new ids, both
languages, built once and cached) at 10,000, 40,000 and 160,000 records, each snapshot a
finished archive with its WARC files:

* size: the database file (checkpointed) and its WARC files, per record;
* FTS: realistic searches (English words, Cyrillic-spelt ones, a phrase, prefixes) on events and
  on speaker turns, as a reader's search runs them (the best 20 by bm25 with a snippet, and the
  count), each timed `repeat` times after one warm-up: p50/p95 over all timings;
* Datasette: the pages a reader opens -- the events table (newest first, with its facets), the
  turns table (all turns, the main speaker's as his person page links them), a transcript (row
  page), table searches, Search everything, a person page, recent changes -- through
  Datasette's in-process client (`build_datasette`: the project's metadata, templates and
  plugin), the database file read once first (a server's page cache), each URL once to warm
  up then `repeat` times: p50/p95 per kind of page;
* refresh with nothing new: `kremlin-archive refresh --lang en` on a copy of the snapshot,
  through the replay server serving the synthetic site's top (bench/synthetic.py
  `top_overlay`), under cProfile, five times in a row (the median run is kept); its local
  work is the time inside db.py entered from outside it (opening and checking the database,
  what the spider reads at the start, the run's rows, what the run does at its end) -- the
  network is not in it;
* `coverage` (the whole ledger) and `export --format jsonl` (everything), as commands;
* `reparse` of the snapshot's WARC into a fresh database (10k only by default: it parses
  ~100 pages per CPU-second, so 40k take ~7 minutes of a quiet machine, 160k ~30);
* `import-txt` of 300 legacy text files (exported from the snapshot, renamed to new ids) into a
  copy of the snapshot: files per second.

The plots (matplotlib, Agg) go to bench/plots/*.png next to BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import pstats
import re
import shutil
import sqlite3
import statistics
import time
from pathlib import Path

import synthetic
from common import REPO, Run, checked, child_env, cli, profiled, say, shown, with_settings
from refresh_bench import classify

from kremlin_archive import db as dbmod
from kremlin_archive.devtools.replay import ReplayServer

PLOTS = REPO / "bench" / "plots"
DB_PY = "kremlin_archive/db.py"

TARGETS = {
    "datasette_p95_ms": 500.0,  # every page a reader opens, at 160k
    "refresh_local_s": 5.0,  # a no-change refresh's local work, at 160k
    "refresh_growth": 1.2,  # its growth from 10k to 160k, at most
}

# Searches: English words, their Cyrillic spelling (the Russian records, bench/synthetic.py),
# a phrase and prefixes, as a reader types them.
EVENT_QUERIES = [
    "Tokayev",
    "coronavirus",
    '"Eurasian Economic Union"',
    "sanction*",
    "economi*",
    "Путин",
    "Токаыев",
    "санцтион*",
]
TURN_QUERIES = ["oil", "Путин", "economi*", '"thank you"']

SEARCH_SQL = {
    "events": (
        "SELECT e.id, e.title, snippet(events_fts, 2, '<b>', '</b>', '…', 12) "
        "FROM events_fts JOIN events e ON e.rowid = events_fts.rowid "
        "WHERE events_fts MATCH ? ORDER BY rank LIMIT 20"
    ),
    "utterances": (
        "SELECT u.event_id, u.seq, snippet(utterances_fts, 1, '<b>', '</b>', '…', 12) "
        "FROM utterances_fts JOIN utterances u ON u.rowid = utterances_fts.rowid "
        "WHERE utterances_fts MATCH ? ORDER BY rank LIMIT 20"
    ),
}
COUNT_SQL = "SELECT count(*) FROM {t}_fts WHERE {t}_fts MATCH ?"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# -- size and search -------------------------------------------------------------------------------


def sizes(db_path: Path, warc_paths: list[Path]) -> dict:
    conn = sqlite3.connect(db_path)
    counts = {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("events", "utterances", "fetches", "persons", "coverage")
    }
    by_lang = dict(conn.execute("SELECT lang, count(*) FROM events GROUP BY lang").fetchall())
    days = conn.execute("SELECT min(published_at), max(published_at) FROM events").fetchone()
    conn.close()
    db_bytes = db_path.stat().st_size
    warc_bytes = sum(p.stat().st_size for p in warc_paths)
    return {
        **counts,
        "by_lang": by_lang,
        "first": days[0],
        "last": days[1],
        "db_bytes": db_bytes,
        "warc_bytes": warc_bytes,
        "warc_files": len(warc_paths),
        "db_per_event": db_bytes / counts["events"],
        "warc_per_event": warc_bytes / counts["events"],
    }


def fts(db_path: Path, repeat: int) -> dict:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    out: dict = {"queries": []}
    for table, queries in (("events", EVENT_QUERIES), ("utterances", TURN_QUERIES)):
        times: list[float] = []
        for q in queries:
            count = conn.execute(COUNT_SQL.format(t=table), [q]).fetchone()[0]  # warm-up
            conn.execute(SEARCH_SQL[table], [q]).fetchall()
            mine = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                conn.execute(SEARCH_SQL[table], [q]).fetchall()
                conn.execute(COUNT_SQL.format(t=table), [q]).fetchone()
                mine.append((time.perf_counter() - t0) * 1e3)
            times += mine
            out["queries"].append(
                {"table": table, "query": q, "hits": count, "median_ms": statistics.median(mine)}
            )
        out[table] = {"p50_ms": pct(times, 0.5), "p95_ms": pct(times, 0.95), "n": len(times)}
    conn.close()
    return out


# -- Datasette -------------------------------------------------------------------------------------


def datasette_urls(db_path: Path) -> dict[str, list[str]]:
    """The pages a reader opens, by kind, with ids and words taken from the archive."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    newest = [r[0] for r in conn.execute(
        "SELECT id FROM events ORDER BY published_at DESC LIMIT 3")]  # fmt: skip
    n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    spread = [r[0] for r in conn.execute(
        "SELECT id FROM events WHERE rowid % ? = 0 ORDER BY utterance_count DESC LIMIT 3",
        [max(n // 50, 1)])]  # fmt: skip
    people = [r[0] for r in conn.execute(  # ids that need no URL encoding
        "SELECT id FROM persons WHERE id NOT GLOB '*[^0-9a-z-]*' ORDER BY turns DESC LIMIT 3"
    )]  # fmt: skip
    conn.close()
    return {
        "events table": [
            "/kremlin/events",
            "/kremlin/events?lang=ru",
            "/kremlin/events?year=2015",
            "/kremlin/events?_sort_desc=utterance_count",  # a column header's sort
        ],
        "turns table": [
            "/kremlin/utterances",
            f"/kremlin/utterances?person_id={people[0]}",  # the main speaker's, as the person
            "/kremlin/utterances?_sort_desc=event_id",  # page links them
        ],
        "transcript (row)": [f"/kremlin/events/{i}" for i in newest[:2] + spread],
        "table search": [
            "/kremlin/events?_search=Tokayev",
            "/kremlin/events?_search=%D0%9F%D1%83%D1%82%D0%B8%D0%BD",  # Путин
            "/kremlin/events?_search=%D0%9F%D1%83%D1%82%D0%B8%D0%BD&_sort=title",
            "/kremlin/utterances?_search=oil",
        ],
        "search everything": [
            "/kremlin/search_everything?q=coronavirus&lang=",
            "/kremlin/search_everything?q=sanction&lang=en",
            "/kremlin/search_everything?q=economi&lang=en",  # economic, economy, economies
            # Путин in Russian: a word in half the archive, the reader's most likely search
            "/kremlin/search_everything?q=%D0%9F%D1%83%D1%82%D0%B8%D0%BD&lang=ru",
        ],
        "person": [f"/kremlin/persons/{p}" for p in people],
        "recent changes": ["/kremlin/recent_changes"],
        # the rest a reader can open from the database's page: the page itself, the views,
        # the prepared queries with the forms' empty fields (everything), the fetches
        "views, queries, database page": [
            "/kremlin",
            "/kremlin/transcripts",
            "/kremlin/speaker_turns",
            "/kremlin/event_changes",
            "/kremlin/fetches",
            "/kremlin/most_turns?since=&until=&lang=",
            f"/kremlin/person_said?person={people[0]}&words=",
            "/kremlin/events_between?since=2015-01-01&until=2015-12-31&lang=",
            "/kremlin/coverage_of_ids?lang=en&first=1&last=80000",
        ],
    }


def datasette_pages(db_path: Path, repeat: int) -> dict:
    from kremlin_archive.datasette.serve import build_datasette

    urls = datasette_urls(db_path)
    # read the file once, as a server that has been serving the archive has it in the OS page
    # cache: otherwise what ran before decides (a 3 GB file pushed out of the cache by other
    # work made a first search of the 160k archive hit Datasette's 3 s limit in one run)
    started = time.perf_counter()
    with open(db_path, "rb") as f:
        while f.read(1 << 24):
            pass
    preread_s = time.perf_counter() - started

    async def run() -> dict:
        ds = build_datasette(db_path)
        await ds.invoke_startup()
        out: dict = {"kinds": {}, "statuses": {}, "preread_s": preread_s}
        for kind, paths in urls.items():
            times: list[float] = []
            slowest = (0.0, "")
            medians: dict[str, float] = {}
            for path in paths:
                response = await ds.client.get(path)  # warm-up
                out["statuses"][path] = response.status_code
                mine = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    response = await ds.client.get(path)
                    ms = (time.perf_counter() - t0) * 1e3
                    mine.append(ms)
                    slowest = max(slowest, (ms, path))
                times += mine
                medians[path] = statistics.median(mine)
            out["kinds"][kind] = {
                "p50_ms": pct(times, 0.5),
                "p95_ms": pct(times, 0.95),
                "n": len(times),
                "urls": paths,
                "slowest": slowest[1],
                "slowest_ms": slowest[0],
                "page_p50_ms": medians,
            }
        # where a kind misses the target, the SQL of its slowest page (Datasette's trace)
        missed = [k for k, v in out["kinds"].items() if v["p95_ms"] > TARGETS["datasette_p95_ms"]]
        if missed:
            traced = build_datasette(db_path, settings={"trace_debug": True})
            await traced.invoke_startup()
            for kind in missed:
                path = out["kinds"][kind]["slowest"]
                base, _, query = path.partition("?")
                # the HTML page's trace is appended to it; where Datasette's tracer cannot
                # finish an HTML answer in process, the JSON of the same page carries it
                for url in (path, base + ".json" + ("?" + query if query else "")):
                    glue = "&" if "?" in url else "?"
                    try:
                        response = await traced.client.get(url + glue + "_trace=1")
                    except AssertionError:
                        continue
                    out["kinds"][kind]["trace"] = slowest_sql(response.text, db_path)
                    out["kinds"][kind]["traced"] = url
                    break
        return out

    return asyncio.run(run())


def slowest_sql(page: str, db_path: Path, top: int = 3) -> list[dict]:
    """The slowest SQL statements of a page traced with ?_trace=1, with their query plans."""
    import html

    try:
        info = json.loads(page).get("_trace") or {}  # a JSON page
    except ValueError:
        start, end = page.rfind("<pre>"), page.rfind("</pre>")
        if start < 0 or end < start:
            return []
        try:
            info = json.loads(html.unescape(page[start + 5 : end]))
        except ValueError:
            return []
    traces = [t for t in info.get("traces", []) if t.get("database") == "kremlin"]
    traces = sorted(traces, key=lambda t: -t.get("duration_ms", 0))[:top]
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    conn.create_function("escape_fts", 1, lambda q: q)  # Datasette's, for the plans
    out = []
    for t in traces:
        sql, params = t.get("sql", ""), t.get("params") or []
        try:
            plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        except sqlite3.Error as exc:
            plan = [f"(no plan: {exc})"]
        out.append({"ms": t.get("duration_ms"), "sql": " ".join(sql.split())[:400], "plan": plan})
    conn.close()
    return out


# -- commands ------------------------------------------------------------------------------------


def warc_folder(home: Path, names: list[str], target: Path) -> Path:
    """A WARC folder holding a snapshot's files (symbolic links) and the archive's identity."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = target / name
        if not link.exists():
            link.symlink_to(home / "warc" / name)
    shutil.copy(home / "warc" / "ARCHIVE-ID.json", target / "ARCHIVE-ID.json")
    return target


def db_local_work(prof: Path) -> dict:
    """Seconds inside db.py entered from outside it, by db.py function (cumulative)."""
    stats = pstats.Stats(str(prof))
    rows: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, _tt, _ct, callers) in stats.stats.items():
        if not filename.endswith(DB_PY) or name == "<module>":  # importing it is not work
            continue
        outside = sum(
            v[3]
            for caller, v in callers.items()
            if not caller[0].endswith(DB_PY) and caller[0] != "~"
        )
        if outside:
            rows[name] = rows.get(name, 0.0) + outside
    top = sorted(rows.items(), key=lambda kv: -kv[1])
    sql = sum(
        v[3]
        for (f, _l, n), v in stats.stats.items()
        if f == "~" and n.startswith("<method 'execute") and "sqlite3" in n
    )
    return {"local_s": sum(rows.values()), "top": top[:8], "sql_s": sql}


def refresh_local(
    mirror: Path, home: Path, snap: dict, work: Path, overlay: dict[str, bytes], runs: int = 5
) -> dict:
    """A no-change `refresh --lang en` on a copy of the snapshot, under cProfile, `runs` times
    one after the other (each finds nothing new): the run of the median local work, with every
    run's. One run of some 40-50 ms of local work varies between runs by more than the growth
    the target allows (three runs at 160k: 0.040, 0.052 and 0.069 s; `open_db` alone, the
    same at every size, takes ~20 ms the first time in a process and ~4 ms after), so five."""
    where = work / f"refresh-{snap['records_planned']}"
    where.mkdir(parents=True, exist_ok=True)
    db_path = where / "kremlin.db"
    shutil.copyfile(home / snap["db"], db_path)
    # Written to disk before the run: the run's first checkpoint would otherwise flush the
    # whole fresh copy (3 GB at 160k, 0.6 s inside open_db), a cost of the bench's copy that
    # no archive in use has.
    with db_path.open("rb+") as copy:
        os.fsync(copy.fileno())
    warc = warc_folder(home, snap["warc_files"], where / "warc")
    done = []
    for attempt in range(runs):
        prof = where / f"refresh-{attempt}.prof"
        argv = with_settings(
            profiled(prof, "-m", "kremlin_archive.cli", "refresh", "--lang", "en", "--db",
                     str(db_path), "--warc-dir", str(warc))
        )  # fmt: skip
        with ReplayServer(mirror, etags=True) as server:
            for url, body in overlay.items():
                server.put(url, body)
            server.clear_log()
            run = Run(argv, env=child_env(server.proxy_url), log=where / f"refresh-{attempt}.log")
            result = checked(run, run.wait(), "refresh (scale)")
            log = server.log
        summary = re.search(r"new (\d+), changed (\d+), unchanged (\d+)", run.output())
        done.append({
            **db_local_work(prof),
            "wall_s": result["wall_s"],
            "cpu_s": result["cpu_s"],
            "requests": len(log),
            "kinds": classify(log),
            "summary": summary.group(0) if summary else None,
            "command": shown(argv, work, "$REPLAY"),
            "db": db_path,
            "warc": warc,
        })  # fmt: skip
    median = sorted(done, key=lambda r: r["local_s"])[len(done) // 2]
    return {**median, "local_s_runs": [r["local_s"] for r in done]}


def timed_cli(args: list[str], work: Path, name: str) -> dict:
    argv = cli(*args)
    run = Run(argv, env=child_env(None), log=work / f"{name}.log")
    result = checked(run, run.wait(), name)
    return {**result, "command": shown(argv, work), "output": run.output()[-2000:]}


def import_txt(db_path: Path, work: Path, files: int = 300) -> dict:
    """`import-txt` of `files` legacy text files into the archive at `db_path` (a copy)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM events WHERE rowid % 97 = 0 LIMIT ?", [files])]  # fmt: skip
    top = conn.execute("SELECT max(kremlin_id) FROM events").fetchone()[0]
    conn.close()
    out_dir = work / "txt-export"
    shutil.rmtree(out_dir, ignore_errors=True)
    args = ["export", "--format", "txt", "--out", str(out_dir), "--db", str(db_path)]
    for i in ids:
        args += ["--id", i]
    timed_cli(args, work, "export-txt")
    src = sorted(out_dir.rglob("*.txt"))
    legacy = work / "legacy"
    shutil.rmtree(legacy, ignore_errors=True)
    legacy.mkdir()
    # new ids beyond the archive's: imported as new events, as a legacy corpus would be
    for n, path in enumerate(src):
        text = path.read_text(encoding="utf-8")
        new = top + 1000 + n
        text = re.sub(r"/news/copy/\d+\s*$", f"/news/copy/{new}", text)
        (legacy / f"{new}.txt").write_text(text, encoding="utf-8")
    result = timed_cli(["import-txt", "--db", str(db_path), str(legacy)], work, "import-txt")
    return {
        "files": len(src),
        "wall_s": result["wall_s"],
        "files_per_s": len(src) / result["wall_s"],
        "cpu_s": result["cpu_s"],
        "files_per_cpu_s": len(src) / result["cpu_s"],
        "command": result["command"].replace(str(legacy), "$WORK/legacy"),
        "tail": result["output"][-300:],
    }


# -- the section ---------------------------------------------------------------------------------


def scale_measures(
    mirror: Path,
    work: Path,
    *,
    repeat: int = 5,
    rebuild: bool = False,
    reparse_upto: int = 10_000,
    events: int = synthetic.SCALES[-1],
    manifest: dict | None = None,
    only: set[int] | None = None,
) -> dict:
    """Every measure on every snapshot of the build (made when missing), or on those of
    `manifest` (an unfinished build: `synthetic.partial_manifest`) whose size is in `only`."""
    t0 = time.monotonic()
    if manifest is None:
        manifest = synthetic.ensure(mirror, events, rebuild=rebuild, say=say)
    built_now = manifest.get("built_at") and time.monotonic() - t0 > 60
    home = synthetic.scale_dir(mirror, events)
    overlay = synthetic.top_overlay(mirror)
    work = work / "scale"
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"manifest": manifest, "built_now": bool(built_now), "scales": []}
    baseline = timed_cli(["--help"], work, "cli-start")
    results["cli_start_s"] = baseline["wall_s"]
    for snap in manifest["snapshots"]:
        n = snap["records_planned"]
        if only and n not in only:
            continue
        db_path = home / snap["db"]
        warcs = [home / "warc" / name for name in snap["warc_files"]]
        # indexes and views as the code has them now (they are not in the cache key)
        dbmod.open_db(db_path).close()
        say(f"scale {n:,}: sizes, FTS, Datasette")
        row: dict = {"records": n, "snapshot": snap}
        row["size"] = sizes(db_path, warcs)
        row["fts"] = fts(db_path, repeat)
        row["datasette"] = datasette_pages(db_path, repeat)
        say(f"scale {n:,}: refresh with nothing new")
        row["refresh"] = ref = refresh_local(mirror, home, snap, work, overlay)
        say(
            f"scale {n:,}: refresh local {ref['local_s']:.2f} s, wall {ref['wall_s']:.1f} s, "
            f"{ref['requests']} requests"
        )
        say(f"scale {n:,}: coverage, export")
        cov = timed_cli(["coverage", "--db", str(db_path), "--json"], work, f"coverage-{n}")
        row["coverage"] = {
            "wall_s": cov["wall_s"],
            "cpu_s": cov["cpu_s"],
            "command": cov["command"],
        }
        out = work / f"export-{n}.jsonl"
        exp = timed_cli(
            ["export", "--format", "jsonl", "--db", str(db_path), "--out", str(out)],
            work,
            f"export-{n}",
        )
        lines = sum(1 for _ in out.open("rb"))
        row["export"] = {
            "wall_s": exp["wall_s"],
            "events": lines,
            "events_per_s": lines / exp["wall_s"],
            "cpu_s": exp["cpu_s"],
            "events_per_cpu_s": lines / exp["cpu_s"],
            "bytes": out.stat().st_size,
            "command": exp["command"],
        }
        out.unlink()
        if n <= reparse_upto:
            say(f"scale {n:,}: reparse")
            fresh = work / f"reparse-{n}" / "kremlin.db"
            fresh.parent.mkdir(parents=True, exist_ok=True)
            rep = timed_cli(
                ["reparse", "--db", str(fresh), "--warc-dir", str(ref["warc"])],
                work,
                f"reparse-{n}",
            )
            conn = sqlite3.connect(fresh)
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            conn.close()
            row["reparse"] = {
                "wall_s": rep["wall_s"],
                "cpu_s": rep["cpu_s"],
                "events": stored,
                "pages_per_s": stored / rep["wall_s"],
                "command": rep["command"],
            }
            shutil.rmtree(fresh.parent, ignore_errors=True)
        say(f"scale {n:,}: import-txt")
        row["import"] = import_txt(ref["db"], work)
        shutil.rmtree(ref["db"].parent, ignore_errors=True)
        ref["db"] = ref["warc"] = None
        results["scales"].append(row)
    results["plots"] = plots(results)
    results["seconds"] = time.monotonic() - t0
    return results


# -- plots -----------------------------------------------------------------------------------------


def plots(results: dict) -> list[str]:
    """Small PNGs of how each cost grows, in bench/plots/ (paths relative to the repository)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    rows = results["scales"]
    xs = [r["records"] / 1000 for r in rows]
    made = []

    def figure(
        name: str,
        title: str,
        ylabel: str,
        series: dict,
        target: float | None = None,
        logy: bool = False,
    ):
        fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=100)
        for label, (x, y) in series.items():
            ax.plot(x, y, marker="o", label=label)
        if target is not None:
            ax.axhline(target, color="grey", linestyle="--", linewidth=1, label="target")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("records (thousands)", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.minorticks_off()
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}" for x in xs])
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
        fig.tight_layout()
        path = PLOTS / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        made.append(str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path))

    figure(
        "scale-size",
        "Archive size",
        "GB",
        {
            "database": (xs, [r["size"]["db_bytes"] / 1e9 for r in rows]),
            "WARC": (xs, [r["size"]["warc_bytes"] / 1e9 for r in rows]),
        },
    )
    figure(
        "scale-fts",
        "FTS search (best 20 + count), p95",
        "ms",
        {
            "events": (xs, [r["fts"]["events"]["p95_ms"] for r in rows]),
            "speaker turns": (xs, [r["fts"]["utterances"]["p95_ms"] for r in rows]),
        },
    )
    kinds = list(rows[0]["datasette"]["kinds"])
    figure(
        "scale-datasette",
        "Datasette pages, p95",
        "ms",
        {k: (xs, [r["datasette"]["kinds"][k]["p95_ms"] for r in rows]) for k in kinds},
        TARGETS["datasette_p95_ms"],
    )
    figure(
        "scale-refresh",
        "No-change refresh: local work",
        "s",
        {
            "local DB work": (xs, [r["refresh"]["local_s"] for r in rows]),
            "whole run (wall)": (xs, [r["refresh"]["wall_s"] for r in rows]),
        },
        TARGETS["refresh_local_s"],
    )
    figure(
        "scale-commands",
        "Commands, wall time",
        "s",
        {
            "coverage": (xs, [r["coverage"]["wall_s"] for r in rows]),
            "export jsonl": (xs, [r["export"]["wall_s"] for r in rows]),
            **{
                "reparse": (
                    [x for x, r in zip(xs, rows, strict=True) if "reparse" in r],
                    [r["reparse"]["wall_s"] for r in rows if "reparse" in r],
                )
            },
        },
    )
    figure(
        "scale-rates",
        "Throughput per CPU-second (log scale)",
        "per CPU-second",
        {
            "export (records)": (
                xs,
                [r["export"].get("events_per_cpu_s", r["export"]["events_per_s"]) for r in rows],
            ),
            "import-txt (files)": (
                xs,
                [r["import"].get("files_per_cpu_s", r["import"]["files_per_s"]) for r in rows],
            ),
            "reparse (pages)": (
                [x for x, r in zip(xs, rows, strict=True) if "reparse" in r],
                [r["reparse"]["events"] / r["reparse"]["cpu_s"] for r in rows if "reparse" in r],
            ),
        },
        logy=True,
    )
    return made


def combine(paths: list[Path]) -> dict:
    """Results of several runs (e.g. small sizes while the build went on, then the largest)
    as one: every size once (the later run wins), the plots drawn again."""
    parts = [json.loads(p.read_text()) for p in paths]
    by_size: dict[int, dict] = {}
    for part in parts:  # a later run's measures win; what it did not measure is kept
        for row in part["scales"]:
            by_size[row["records"]] = {**by_size.get(row["records"], {}), **row}
    results = {**parts[-1], "scales": [by_size[n] for n in sorted(by_size)]}
    results["seconds"] = sum(part["seconds"] for part in parts)
    results["plots"] = plots(results)
    return results


def main() -> int:
    """Section 8 by hand, also on an unfinished build:

    scale_bench.py [--partial] [--snapshot-now] [--only 10000,40000] [--json R.json]
    scale_bench.py --combine R1.json R2.json [--out BENCHMARKS.md]
    """
    import argparse
    import datetime as dt
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=os.environ.get("KREMLIN_MIRROR_DIR"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--events", type=int, default=synthetic.SCALES[-1])
    parser.add_argument(
        "--partial", action="store_true", help="the snapshots of a build still running"
    )
    parser.add_argument(
        "--snapshot-now", action="store_true", help="first snapshot what the running build holds"
    )
    parser.add_argument("--only", help="sizes to measure, e.g. 10000,40000")
    parser.add_argument("--reparse-upto", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--combine", type=Path, nargs="+", help="results to put together")
    parser.add_argument("--out", type=Path, help="splice section 8 into this BENCHMARKS.md")
    parser.add_argument("--note", action="append", default=[], help="a paragraph for section 8")
    args = parser.parse_args()
    if args.combine:
        results = combine(args.combine)
        results["notes"] = [*results.get("notes", []), *args.note]
    else:
        mirror = Path(args.mirror)
        manifest = None
        only = {int(x) for x in args.only.split(",")} if args.only else None
        if args.snapshot_now:
            snap = synthetic.snapshot_now(mirror, args.events, say=say)
            only = (only or set()) | {snap["records_planned"]}
        if args.partial or args.snapshot_now:
            manifest = synthetic.partial_manifest(mirror, args.events)
        work = Path(tempfile.mkdtemp(prefix="kremlin-scale-"))
        try:
            results = scale_measures(
                mirror, work, repeat=args.repeat, rebuild=args.rebuild, events=args.events,
                manifest=manifest, only=only, reparse_upto=args.reparse_upto,
            )  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results["measured_at"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        results["load"] = os.getloadavg()
    text = json.dumps(results, indent=1, default=str)
    if args.json:
        args.json.write_text(text)
    if args.out:
        from report import splice_scale

        old = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        args.out.write_text(splice_scale(old, {"scale": results, "repeat": args.repeat}))
    if not (args.json or args.out):
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
