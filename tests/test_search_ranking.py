"""Search everything ranks exactly, the quick way or the long way (issue 17, item 4).

The canned query (metadata.yml `search_everything`) ranks the best 200 hits of a search by
bm25, then newest, then event and turn. To stay quick on a word in half the archive it ranks the
best 1,000 event hits and the best 1,000 turn hits of the language asked for, read in FTS5's
rank order, and falls back to ranking every hit when a list was cut at or before the 200th
score. Both ways must give what ranking every hit gives: here a Python ranking of every hit
(bm25 of each, from SQLite) is the reference, on an archive of real pages of the 2020 capture
and a Russian one (a quarter of the English ones stored under Russian keys, so that a language
filter drops hits from the middle of the lists), with the lists as the query has them and cut
to a few hits (the fallback).
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from conftest import RU_66419_PAGE, RU_66419_URL
from datasette.utils import escape_fts

from kremlin_archive import db as dbmod
from kremlin_archive.datasette import serve
from kremlin_archive.parsing import parse_event

PAGES = 480  # every 14th event page of the capture
BEST = "list_size(n) as (select 1000)"  # how many hits each list of best hits holds
QUERIES = ["Putin", "Путин", "economi", "thank you", '"Vladimir Putin"', "Kazakhstan", "oil gas"]


def search_sql(best: int | None = None) -> str:
    sql = serve.load_metadata()["databases"]["kremlin"]["queries"]["search_everything"]["sql"]
    assert sql.count(BEST) == 1
    return sql if best is None else sql.replace(BEST, BEST.replace("1000", str(best)))


@pytest.fixture(scope="module")
def archive(tmp_path_factory, mirror_event_pages):
    path = tmp_path_factory.mktemp("ranking") / "kremlin.db"
    db = dbmod.open_db(path)
    for n, page in enumerate(mirror_event_pages[::14][:PAGES]):
        t = parse_event(
            page.read_bytes(), f"http://en.kremlin.ru/events/president/news/{page.stem}"
        )
        if n % 4 == 0:  # an English page under a Russian key: the language filter's work
            t = dataclasses.replace(t, lang="ru", url=t.url.replace("en.kremlin.ru", "kremlin.ru"))
        dbmod.save_transcript(db, t)
    dbmod.save_transcript(db, parse_event(RU_66419_PAGE.read_bytes(), RU_66419_URL))  # Russian
    db.close()
    conn = dbmod.connect(path, readonly=True).conn
    conn.create_function("escape_fts", 1, escape_fts)  # as Datasette registers it
    yield conn
    conn.close()


def fts_terms(conn, q: str) -> str:
    """The query's FTS5 expression, from its own first CTE."""
    sql = search_sql()
    terms = re.search(r"with terms\(fts\) as \((.*?)\n\),", sql, re.S).group(1)
    return conn.execute(terms, {"q": q}).fetchone()[0]


def reference(conn, q: str, lang: str) -> list[tuple]:
    """Every hit ranked in Python: (hit, event_id, seq) of the best 200."""
    terms = fts_terms(conn, q)
    dated = dict(conn.execute("SELECT id, published_at FROM events"))
    turns = conn.execute(
        "SELECT u.event_id, u.seq, bm25(utterances_fts) FROM utterances_fts"
        " JOIN utterances u ON u.rowid = utterances_fts.rowid WHERE utterances_fts MATCH ?",
        [terms],
    ).fetchall()
    first: dict[str, int] = {}
    for event_id, seq, _ in turns:
        first[event_id] = min(seq, first.get(event_id, seq))
    events = conn.execute(
        "SELECT e.id, bm25(events_fts) FROM events_fts JOIN events e"
        " ON e.rowid = events_fts.rowid WHERE events_fts MATCH ?",
        [terms],
    ).fetchall()
    hits = [("event", key, first.get(key), score) for key, score in events]
    hits += [("turn", key, seq, score) for key, seq, score in turns]
    hits = [h for h in hits if not lang or h[1].startswith(f"{lang}-")]
    # least significant key first (sorts are stable): seq (none first), event, newest, bm25
    hits.sort(key=lambda h: (h[2] is not None, h[2] or 0))
    hits.sort(key=lambda h: h[1])
    hits.sort(key=lambda h: dated[h[1]], reverse=True)
    hits.sort(key=lambda h: h[3])
    return [h[:3] for h in hits[:200]]


def run(conn, sql: str, q: str, lang: str) -> list[dict]:
    cursor = conn.execute(sql, {"q": q, "lang": lang})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def took_the_quick_way(conn, sql: str, q: str, lang: str) -> bool:
    ctes = sql[: sql.index("-- matches nothing when")].rstrip().rstrip(",")
    return bool(
        conn.execute(f"{ctes}\nselect yes from complete", {"q": q, "lang": lang}).fetchone()[0]
    )


@pytest.mark.parametrize("lang", ["", "en", "ru"])
@pytest.mark.parametrize("q", QUERIES)
def test_the_best_hits_are_those_of_ranking_every_hit(archive, q, lang):
    expected = reference(archive, q, lang)
    assert expected or lang, "every search here finds something"
    shown = {}
    for best in (None, 7):  # the query's lists, and lists cut to 7 hits: the long way
        sql = search_sql(best)
        rows = run(archive, sql, q, lang)
        assert [(r["hit"], r["event_id"], r["seq"]) for r in rows] == expected
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        shown[best] = rows
    assert shown[None] == shown[7]  # titles, excerpts, twins: the same rows whichever way


def test_both_ways_are_taken(archive):
    """The lists cut to 7 hits cannot hold the 200th score of a broad search; the query's own
    lists hold it for every search above (none has hundreds of hits tied at the 200th)."""
    assert len(reference(archive, "Putin", "")) == 200
    assert not took_the_quick_way(archive, search_sql(7), "Putin", "")
    for q in QUERIES:
        for lang in ("", "en", "ru"):
            assert took_the_quick_way(archive, search_sql(), q, lang), (q, lang)


def test_tied_scores_are_ranked_newest_first_either_way(archive):
    """Identical turns score alike ("Thank you." in many events): among them the newest comes
    first, on the quick way and on the long one."""
    text, count = archive.execute(
        "SELECT text, count(*) FROM utterances WHERE text LIKE 'Thank you%'"
        " GROUP BY text ORDER BY 2 DESC LIMIT 1"
    ).fetchone()
    assert count > 7, (text, count)
    q = '"' + text.rstrip(".!") + '"'
    expected = reference(archive, q, "")
    scores = [
        s
        for (s,) in archive.execute(
            "SELECT bm25(utterances_fts) FROM utterances_fts WHERE utterances_fts MATCH ?",
            [fts_terms(archive, q)],
        )
    ]
    assert len(scores) - len(set(scores)) >= 7, "the search has tied hits"
    for best, quick in ((None, True), (7, False)):
        sql = search_sql(best)
        assert took_the_quick_way(archive, sql, q, "") is quick
        rows = run(archive, sql, q, "")
        assert [(r["hit"], r["event_id"], r["seq"]) for r in rows] == expected
