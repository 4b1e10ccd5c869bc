"""serve.py and kremlin_archive/datasette/: the archive in Datasette — stable /kremlin URLs,
metadata, search in Russian and English, facets, canned queries, the transcript page, escaping
of page text, read-only serving while a crawl writes, and a screenshot through Chromium.

The archive is built from real pages parsed with parse_event (bench/screenshot.py's
`build_demo_archive`): ru-66419 from ../shared's *reconstructed* Russian page (a real
en.kremlin.ru template with the legacy record's Russian text poured in — no real Russian event
page was available) and en-55882, a real en.kremlin.ru page; the fetch rows are made up.
Datasette's own test client is used (`ds.client`), driven by asyncio.run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner
from conftest import KREMLIN_HTML, make_transcript, screenshot_tool, shared_page

from kremlin_archive import db as dbmod
from kremlin_archive.cli import main
from kremlin_archive.datasette import serve, tables
from kremlin_archive.parsing import Utterance, parse_event

RU_ID, EN_ID = "ru-66419", "en-55882"
RU_URL = "http://kremlin.ru/events/president/news/66419"
EN_URL = "http://en.kremlin.ru/events/president/news/55882"
SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"


demo = screenshot_tool  # bench/screenshot.py: the demo archive


def get(ds, path: str, **kwargs):
    return asyncio.run(ds.client.get(path, **kwargs))


def get_json(ds, path: str):
    response = get(ds, path)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def ids(rows: list[dict], key: str = "id") -> list[str]:
    return [row[key] for row in rows]


@pytest.fixture(scope="module")
def archive_path(tmp_path_factory) -> Path:
    """The demo archive: ru-66419 (one revision) and en-55882, under a file name that is not
    `kremlin.db`, to show the URL name does not depend on it."""
    path = tmp_path_factory.mktemp("archive") / "my-copy.sqlite"
    demo.build_demo_archive(path)
    return path


@pytest.fixture(scope="module")
def ds(archive_path):
    return serve.build_datasette(archive_path)


@pytest.fixture(scope="module")
def ru_66419():
    """parse_event on the reconstructed Russian page (see the module docstring)."""
    return parse_event((KREMLIN_HTML / "reconstructed" / "ru_news_66419.html").read_bytes(), RU_URL)


# -- serving --------------------------------------------------------------------------------------


def test_database_is_served_as_kremlin_whatever_the_file_name(ds):
    databases = get_json(ds, "/-/databases.json")
    assert [d["name"] for d in databases] == ["kremlin"]
    assert get(ds, "/kremlin/events/ru-66419").status_code == 200


def test_json_api_lists_events_newest_first(ds):
    rows = get_json(ds, "/kremlin/events.json?_shape=array")
    assert ids(rows) == [RU_ID, EN_ID]  # 2021-08-21, then 2017-10-19
    assert rows[0]["license"] == "CC BY 4.0"


def test_serve_refuses_a_missing_archive(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "nothing.db")])
    assert result.exit_code == 2
    assert "no archive at" in result.output


def test_serve_adds_shape_an_older_archive_lacks(tmp_path):
    path = tmp_path / "kremlin.db"
    dbmod.open_db(path).execute("DROP VIEW transcripts")
    assert serve.missing_shape(path) == ["transcripts"]
    assert "transcripts" in serve.prepare_database(path)
    assert serve.missing_shape(path) == []


def test_nothing_a_visitor_does_writes(ds, archive_path):
    metadata = serve.load_metadata()
    assert not any(q.get("write") for q in metadata["databases"]["kremlin"]["queries"].values())
    before = sqlite3.connect(archive_path).execute("SELECT count(*) FROM events").fetchone()[0]
    for sql in ("DELETE FROM events", "UPDATE events SET title = 'x'", "DROP TABLE events"):
        response = get(ds, "/kremlin.json", params={"sql": sql})
        assert response.json()["ok"] is False
    for path in ("/kremlin/search_everything", "/kremlin/events", "/-/logout", "/-/messages"):
        response = asyncio.run(ds.client.post(path, data={"q": "x"}))
        assert response.status_code == 405, path
    assert get(ds, "/kremlin.db").status_code == 403  # no download of a file being written
    after = sqlite3.connect(archive_path).execute("SELECT count(*) FROM events").fetchone()[0]
    assert after == before == 2


def test_reads_while_a_crawl_writes(tmp_path, ru_66419):
    """WAL: Datasette reads between and during the writes of another connection."""
    path = tmp_path / "kremlin.db"
    demo.build_demo_archive(path)
    ds = serve.build_datasette(path)
    assert len(get_json(ds, "/kremlin/events.json?_shape=array")) == 2

    crawl = dbmod.open_db(path)
    twin = replace(ru_66419, kremlin_id=66420, url=RU_URL.replace("66419", "66420"))
    with crawl.atomic():  # a write transaction left open while Datasette reads
        dbmod.save_transcript(crawl, twin)
        during = get(ds, "/kremlin/events.json?_shape=array")
        assert during.status_code == 200
        assert len(during.json()) == 2  # the uncommitted event is not visible yet
    after = get_json(ds, "/kremlin/events.json?_shape=array&_sort_desc=kremlin_id")
    assert ids(after)[0] == "ru-66420"
    hits = get_json(ds, "/kremlin/events.json?_shape=array&_search=Токаев")
    assert set(ids(hits)) == {RU_ID, "ru-66420"}
    # the pages reach the file itself (read through a memory map): the same after a checkpoint
    crawl.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert get_json(ds, "/kremlin/events.json?_shape=array&_sort_desc=kremlin_id") == after
    crawl.close()


def test_the_archive_is_read_through_a_memory_map(ds):
    """Every connection Datasette opens to the archive waits for a writer's lock and reads the
    file through a memory map (plugin `prepare_connection`)."""

    def pragmas(conn):
        return [
            conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("busy_timeout", "mmap_size")
        ]

    busy, mapped = asyncio.run(ds.get_database("kremlin").execute_fn(pragmas))
    assert busy >= 1000
    assert mapped > 0  # as much as SQLite maps (its build's maximum: 2 GiB in Debian's)


# -- metadata -------------------------------------------------------------------------------------


def test_metadata_describes_every_table_view_and_column():
    tables = serve.load_metadata()["databases"]["kremlin"]["tables"]
    for name, spec in dbmod.TABLES.items():
        assert tables[name]["description"], name
        assert set(tables[name]["columns"]) == set(spec["columns"]), name
    for name in dbmod.VIEWS:
        assert tables[name]["description"], name


def test_license_and_attribution_are_on_the_pages(ds):
    for path in ("/", "/kremlin", "/kremlin/events", "/kremlin/events/ru-66419"):
        html = get(ds, path).text
        assert "https://creativecommons.org/licenses/by/4.0/" in html, path
        assert "http://kremlin.ru/about/copyrights" in html, path
        assert "CC BY 4.0" in html, path


@pytest.mark.parametrize(
    "table, column", [("events", "published_at"), ("fetches", "id"), ("runs", "started_at")]
)
def test_default_sorts_are_newest_first(ds, table, column):
    data = get_json(ds, f"/kremlin/{table}.json?_shape=objects")
    assert data["human_description_en"] == f"sorted by {column} descending"
    values = [row[column] for row in data["rows"]]
    assert values == sorted(values, reverse=True) and values


def test_foreign_keys_show_labels(ds):
    rows = get_json(ds, "/kremlin/event_tags.json?_shape=array&_labels=on&event_id=ru-66419")
    assert rows[0]["event_id"]["label"].endswith("Касым-Жомартом Токаевым")
    names = {row["tag_id"]["label"] for row in rows}
    assert "Казахстан" in names
    fetch = get_json(ds, "/kremlin/fetches.json?_shape=array&_labels=on")[0]
    assert fetch["run_id"]["label"] == "urls"


# -- search ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["Токаев", "токаев", "ТОКАЕВ"])
def test_event_search_is_case_insensitive_in_cyrillic(ds, query):
    rows = get_json(ds, f"/kremlin/events.json?_shape=array&_search={query}")
    assert ids(rows) == [RU_ID]


def test_event_search_finds_a_phrase_of_the_text(ds):
    rows = get_json(ds, '/kremlin/events.json?_shape=array&_search="сто раз услышать"')
    assert ids(rows) == [RU_ID]
    rows = get_json(ds, '/kremlin/events.json?_shape=array&_search="услышать сто раз"')
    assert rows == []


def test_event_search_in_english(ds):
    rows = get_json(ds, "/kremlin/events.json?_shape=array&_search=Valdai")
    assert ids(rows) == [EN_ID]


def test_russian_word_endings_are_found_by_prefix(ds):
    """The text says `в Афганистане` only: a whole-word search for `Афганистан` misses it, a
    prefix query (raw mode on the table, the default in "search everything") finds it."""
    assert get_json(ds, "/kremlin/events.json?_shape=array&_search=Афганистан") == []
    raw = get_json(ds, "/kremlin/events.json?_shape=array&_searchmode=raw&_search=Афганистан*")
    assert ids(raw) == [RU_ID]
    rows = get_json(ds, "/kremlin/search_everything.json?_shape=array&q=Афганистан&lang=")
    assert {row["event_id"] for row in rows} == {RU_ID}


def test_utterance_search_matches_speaker_and_text(ds):
    rows = get_json(ds, "/kremlin/utterances.json?_shape=array&_search=ТОКАЕВ")
    assert rows and {row["event_id"] for row in rows} == {RU_ID}
    assert any("Токаев" in (row["speaker"] or "") for row in rows)


def test_tokayev_finds_the_meeting_through_the_english_twin(ds, tmp_path, ru_66419):
    """The Russian page spells Токаев only; `Tokayev` needs en-66419 in the archive (no real
    English page of 66419 is in ../shared: this twin is made from the parsed Russian record
    with an English title) and leads to ru-66419 through twin_id."""
    assert get_json(ds, "/kremlin/events.json?_shape=array&_search=Tokayev") == []
    path = tmp_path / "kremlin.db"
    shutil.copy(ds.databases["kremlin"].path, path)
    db = dbmod.open_db(path)
    en_twin = replace(
        ru_66419,
        lang="en",
        url="http://en.kremlin.ru/events/president/news/66419",
        title="Meeting with President of Kazakhstan Kassym-Jomart Tokayev",
        twin_url=RU_URL,
    )
    dbmod.save_transcript(db, en_twin)
    db.close()
    with_twin = serve.build_datasette(path)
    rows = get_json(with_twin, "/kremlin/search_everything.json?_shape=array&q=Tokayev&lang=")
    assert {(row["event_id"], row["twin_id"]) for row in rows} == {("en-66419", RU_ID)}
    page = get(with_twin, "/kremlin/events/ru-66419").text
    assert 'href="/kremlin/events/en-66419"' in page


# -- facets ---------------------------------------------------------------------------------------


def facet_values(data: dict, name: str) -> dict:
    facets = data["facet_results"] if "facet_results" in data else data["facets"]
    return {r["value"]: r["count"] for r in facets[name]["results"]}


def test_event_facets_come_back(ds):
    data = get_json(ds, "/kremlin/events.json")
    assert facet_values(data, "lang") == {"ru": 1, "en": 1}
    assert facet_values(data, "year") == {2021: 1, 2017: 1}
    assert "Москва, Кремль" in facet_values(data, "place")
    assert facet_values(data, "sections")  # a JSON-array facet


def test_the_sections_facet_counts_each_event_once_per_section(tmp_path):
    """The array facet (the plugin's, read from the facet index) against a count of the rows:
    events with one, two and a repeated section, filtered and unfiltered, and the toggle."""
    path = tmp_path / "kremlin.db"
    db = dbmod.open_db(path)
    cases = [
        ("en-1", ["News"]), ("en-2", ["News", "Transcripts"]), ("en-3", ["News", "News"]),
        ("ru-4", ["Новости", "Стенограммы"]), ("ru-5", ["Новости"]), ("en-6", []),
    ]  # fmt: skip
    for n, (event_id, sections) in enumerate(cases, 1):
        lang = event_id[:2]
        host = "en.kremlin.ru" if lang == "en" else "kremlin.ru"
        url = f"http://{host}/events/president/news/{n}"
        t = make_transcript(lang=lang, kremlin_id=n, url=url, sections=sections)
        assert t.event_id == event_id
        dbmod.save_transcript(db, t)
    db.close()
    ds = serve.build_datasette(path)
    for query, rows in (
        ("", cases),
        ("?lang=en", [c for c in cases if c[0].startswith("en")]),
        ("?_search=Казахстана", cases),
    ):
        expected: dict[str, int] = {}
        for _, sections in rows:
            for value in set(sections):
                expected[value] = expected.get(value, 0) + 1
        data = get_json(ds, "/kremlin/events.json" + query)
        assert facet_values(data, "sections") == expected, query
    data = get_json(ds, "/kremlin/events.json?sections__arraycontains=Transcripts&_shape=objects")
    assert ids(data["rows"]) == ["en-2"]
    chosen = [r for r in data["facet_results"]["sections"]["results"] if r["selected"]]
    assert [r["value"] for r in chosen] == ["Transcripts"]
    assert "sections__arraycontains" not in chosen[0]["toggle_url"]


def test_broad_pages_read_the_indexes_and_answer_the_same(tmp_path, monkeypatch):
    """Past an eighth of the events a page of the events table counts all its facets in one scan
    of the facet index (INDEXED BY), and a table search ordered by an indexed column walks
    that index (`+rowid`) instead of fetching every hit: the same rows, order, pages, counts
    and facets (values, order, links, truncation) as Datasette's own SQL and as a count of the
    rows, filtered, searched and both; below it, or sorted by a column no index starts with,
    Datasette's own SQL runs."""

    path = tmp_path / "kremlin.db"
    db = dbmod.open_db(path)
    cases = [  # (lang, year, place, sections)
        ("en", 2019, "Moscow", ["News"]), ("en", 2020, "Sochi", ["News", "Transcripts"]),
        ("en", 2020, "", ["News"]), ("ru", 2019, "Москва", ["Новости"]),
        ("ru", 2020, "Сочи", ["Новости", "Стенограммы"]), ("ru", 2020, "Москва", []),
        ("ru", 2020, "Сочи", ["Новости", "Стенограммы"]), ("en", 2020, None, ["News", "News"]),
    ]  # fmt: skip
    for n, (lang, year, place, sections) in enumerate(cases, 1):
        host = "en.kremlin.ru" if lang == "en" else "kremlin.ru"
        t = make_transcript(
            lang=lang, kremlin_id=n, url=f"http://{host}/events/president/news/{n}",
            published_at=f"{year}-03-0{n}T12:00:00+03:00", place=place, sections=sections,
            **({"title": f"Заседание Совета {n}"} if n in (1, 4) else {}),  # not found
        )  # fmt: skip
        dbmod.save_transcript(db, t)
    db.close()
    conn = sqlite3.connect(path)
    assert conn.execute("select count(*) from events where place is null").fetchone() == (1,)
    # served as it is, without the index of titles (an archive this version has not opened):
    # a sort by title has no index to walk
    conn.execute("drop index idx_events_title")
    conn.commit()
    conn.close()
    search = "?_search=Казахстана"
    queries = [
        "", "?lang=ru", search, f"{search}&year=2020", f"{search}&_facet_size=1",
        f"{search}&_sort=title", f"{search}&_sort=published_at", f"{search}&_size=2",
    ]  # fmt: skip
    assert sqlite3.connect(path).execute(
        "select count(*) from events_fts where events_fts match '\"Казахстана\"'"
    ).fetchone() == (6,)
    names = ("lang", "year", "place", "sections")

    def pages(ds) -> dict:
        out = {}
        for q in queries:
            data, url = [], "/kremlin/events.json" + q
            while url:  # every page of it
                page = get_json(ds, url)
                data.append({
                    "rows": page["rows"], "count": page["filtered_table_rows_count"],
                    "facets": page["facet_results"], "timed_out": page.get("facets_timed_out"),
                })  # fmt: skip
                url = page["next_url"] and page["next_url"].replace("http://localhost", "")
            out[q] = data
        return out

    def traced(ds) -> list[str]:
        seen: list[str] = []
        database = ds.get_database("kremlin")
        execute = database.execute

        async def recording(sql, *args, **kwargs):
            seen.append(sql)
            return await execute(sql, *args, **kwargs)

        database.execute = recording
        return seen

    plain_ds = serve.build_datasette(path)
    plain_sql = traced(plain_ds)
    plain = pages(plain_ds)
    assert not any("indexed by" in sql or "+rowid" in sql for sql in plain_sql)  # 6 rows
    monkeypatch.setattr(tables, "BROAD_MATCH_MIN", 0)  # an eighth of 8 events: 1
    broad_ds = serve.build_datasette(path)
    broad_sql = traced(broad_ds)
    broad = pages(broad_ds)
    assert broad == plain
    assert len(plain[f"{search}&_size=2"]) == 3  # six hits: every page of them came
    one_each = plain[f"{search}&_facet_size=1"][0]["facets"].values()
    assert {len(f["results"]) for f in one_each} == {1}
    assert {f["name"] for f in one_each if f["truncated"]} == {"lang", "place", "sections"}
    # every page's four facets from one query through the index
    grouped = [sql for sql in broad_sql if "with groups as materialized" in sql]
    assert len(grouped) == sum(len(p) for p in broad.values())
    assert all(f"indexed by {tables.EVENT_FACET_INDEX}" in sql for sql in grouped)
    # the searches walk the index, except the one sorted by title (no index starts with it here)
    walked = [sql for sql in broad_sql if sql.startswith("select id,") and "+rowid in" in sql]
    fetched = [sql for sql in broad_sql if sql.startswith("select id,") and " rowid in" in sql]
    assert len(walked) == sum(len(broad[q]) for q in queries if "_search" in q) - 1
    assert len(fetched) == 1 and "order by title" in fetched[0]
    conn = sqlite3.connect(path)
    for q in queries:
        where = "1"
        if "lang=ru" in q:
            where += " and lang = 'ru'"
        if "year=2020" in q:
            where += " and year = 2020"
        if "_search" in q:
            where += (
                " and rowid in (select rowid from events_fts where events_fts match"
                " '\"Казахстана\"')"
            )
        for name in names[:2]:
            counts = dict(
                conn.execute(f"select {name}, count(*) from events where {where} group by 1")
            )
            if "_facet_size" not in q:
                assert facet_values(broad[q][0], name) == counts, q
        assert (
            broad[q][0]["count"]
            == conn.execute(f"select count(*) from events where {where}").fetchone()[0]
        )
    conn.close()


def test_every_sortable_column_of_a_large_table_leads_an_index(tmp_path, ds):
    """A reader's sort reads an index, never every row of a table the size of the site (a sort
    by title read 3 GB at 160,000 events): the big tables name their sortable columns
    (metadata.yml), each one an index of a fresh archive starts with, and Datasette refuses
    a sort by any other column."""
    path = tmp_path / "kremlin.db"
    dbmod.open_db(path).close()
    conn = sqlite3.connect(path)
    tables = serve.load_metadata()["databases"]["kremlin"]["tables"]
    for table in ("events", "utterances", "fetches"):
        leading = dbmod.index_ordered_columns(conn, table)
        assert "text" not in leading and "error" not in leading  # no index starts with them
        sortable = tables[table]["sortable_columns"]
        assert set(sortable) <= leading, (table, set(sortable) - leading)
        assert (tables[table].get("sort") or tables[table]["sort_desc"]) in sortable
    conn.close()
    assert get(ds, "/kremlin/events.json?_sort_desc=utterance_count").status_code == 200
    refused = get(ds, "/kremlin/events.json?_sort=text")
    # (Datasette 0.65 answers with a 500, saying why)
    assert refused.status_code >= 400 and "Cannot sort table by text" in refused.text


def test_the_transcripts_view_lists_them_newest_first_and_counts_from_an_index(tmp_path):
    """The view has no ORDER BY (one made SQLite run it whole to count it); the page sorts
    it, and its count and its language facet read indexes, not the rows."""
    path = tmp_path / "kremlin.db"
    db = dbmod.open_db(path)
    for n, (turns, year) in enumerate([(3, 2019), (1, 2021), (4, 2020), (2, 2018)], 1):
        t = make_transcript(
            kremlin_id=n, url=f"http://kremlin.ru/events/president/news/{n}",
            published_at=f"{year}-03-0{n}T12:00:00+03:00",
            utterances=[Utterance(i, "В.Путин", f"Реплика {i}.") for i in range(1, turns + 1)],
        )  # fmt: skip
        dbmod.save_transcript(db, t)
    plans = {
        what: " ".join(row[3] for row in db.execute(f"explain query plan {sql}"))
        for what, sql in [
            ("count", "select count(*) from transcripts"),
            ("facet", "select lang, count(*) from (select * from transcripts) group by lang"),
        ]
    }  # fmt: skip
    db.close()
    data = get_json(serve.build_datasette(path), "/kremlin/transcripts.json?_shape=objects")
    dates = [row["published_at"][:4] for row in data["rows"]]
    assert dates == ["2020", "2019", "2018"]  # two or more turns, newest first
    assert "COVERING INDEX idx_events_utterance_count_speakers_lang" in plans["count"], plans
    assert "COVERING INDEX idx_events_lang_utterance_count_speakers" in plans["facet"], plans


def test_speaker_and_tag_facets_come_back(ds):
    speakers = facet_values(get_json(ds, "/kremlin/utterances.json"), "speaker")
    assert speakers["В.Путин"] >= 1
    tags = get_json(ds, "/kremlin/event_tags.json")["facet_results"]["tag_id"]["results"]
    assert "Казахстан" in {r["label"] for r in tags}


# -- canned queries -------------------------------------------------------------------------------

CANNED = {
    "search_everything": ({"q": "Токаев", "lang": ""}, "event_id", RU_ID),
    "speaker_said": ({"speaker": "Токаев", "words": "Афганистан"}, "event_id", RU_ID),
    "person_said": ({"person": "1640", "words": "Афганистан"}, "event_id", RU_ID),
    "events_between": ({"since": "2021-08-21", "until": "2021-08-21", "lang": "ru"}, "id", RU_ID),
    "most_turns": ({"since": "2017-01-01", "until": "2017-12-31", "lang": "en"}, "id", EN_ID),
    "changed_since": ({"since": "2026-11-20"}, "event_id", RU_ID),
    "recent_changes": ({"lang": "ru", "change": "new"}, "event_id", RU_ID),
    "coverage_of_ids": ({"lang": "ru", "first": "66000", "last": "67000"}, "event_id", RU_ID),
}


def test_every_canned_query_is_tested():
    assert set(CANNED) == set(serve.load_metadata()["databases"]["kremlin"]["queries"])


@pytest.mark.parametrize("name", sorted(CANNED))
def test_canned_query_runs_with_parameters(ds, name):
    params, key, expected = CANNED[name]
    response = get(ds, f"/kremlin/{name}.json", params={**params, "_shape": "objects"})
    data = response.json()
    assert response.status_code == 200 and data["ok"], data.get("error")
    assert expected in {row[key] for row in data["rows"]}
    html = get(ds, f"/kremlin/{name}", params=params).text
    assert "query-error" not in html
    assert f'href="/kremlin/events/{expected}' in html  # event keys link to the transcript


def test_speaker_said_finds_the_speakers_turns_only(ds):
    rows = get_json(ds, "/kremlin/speaker_said.json?_shape=array&speaker=путин&words=")
    assert rows and all(row["speaker"] == "В.Путин" for row in rows)
    rows = get_json(ds, "/kremlin/speaker_said.json?_shape=array&speaker=Putin&words=Valdai")
    assert {row["event_id"] for row in rows} == {EN_ID}


def test_person_said_finds_a_person_however_the_label_prints_them(ds):
    """By person, not by label: "Путин" (a name of the person a-vladimir-putin) finds the
    Russian page's "В.Путин" and the English page's "Vladimir Putin" turns; a label's own
    words that are not the person's name find nothing."""
    rows = get_json(ds, "/kremlin/person_said.json?_shape=array&person=Путин&words=")
    assert {(row["event_id"], row["label"]) for row in rows} >= {
        (RU_ID, "В.Путин"),
        (EN_ID, "Vladimir Putin"),
    }
    assert {row["person_id"] for row in rows} == {"a-vladimir-putin"}
    said = "/kremlin/person_said.json?_shape=array&person="
    rows = get_json(ds, f"{said}a-vladimir-putin&words=Valdai")
    assert rows and {row["event_id"] for row in rows} == {EN_ID}
    assert get_json(ds, f"{said}President&words=") == []


def canned_sql(name: str) -> str:
    return serve.load_metadata()["databases"]["kremlin"]["queries"][name]["sql"]


def reader(path: Path) -> sqlite3.Connection:
    """A connection that runs the prepared queries as Datasette does (its escape_fts)."""
    from datasette.utils import escape_fts

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.create_function("escape_fts", 1, escape_fts)
    return conn


def test_person_said_walks_or_sorts_to_the_same_turns(archive_path):
    """Everything a person said (no words) has two ways: all their turns sorted (a person of
    few turns), or the events walked newest first until 500 turns are found (5,000 turns or
    more, chosen by persons.turns). Both give the same rows in the same order; with words,
    neither runs."""
    sql = canned_sql("person_said")
    assert sql.count(">= 5000") == 1
    walk = sql.replace(">= 5000", ">= 0")  # every person walked
    conn = reader(archive_path)
    people = [r[0] for r in conn.execute("SELECT id FROM persons WHERE turns > 0")]
    assert len(people) >= 2
    for person in [*people, "Путин", "Putin", "", "nobody"]:
        for words in ("", "Valdai"):
            params = {"person": person, "words": words}
            assert conn.execute(walk, params).fetchall() == conn.execute(sql, params).fetchall()
    said = conn.execute(walk, {"person": "a-vladimir-putin", "words": ""}).fetchall()
    assert {row[0] for row in said} == {RU_ID, EN_ID}
    order = [(r[1], r[0], r[3]) for r in said]  # newest first, each event's turns in order
    assert order == sorted(sorted(order, key=lambda k: k[1:]), key=lambda k: k[0], reverse=True)


def test_range_and_ranking_queries_read_indexes_not_every_row(archive_path):
    """coverage_of_ids walks the ledger's (kremlin_id, lang) index from the range's start
    (Datasette stops at its last row shown) instead of sorting every row joined to its event;
    most_turns counts the labelled turns per event from their own index, in its order."""
    conn = reader(archive_path)

    def plan(name: str, **params) -> str:
        rows = conn.execute("EXPLAIN QUERY PLAN " + canned_sql(name), params)
        return " | ".join(row[3] for row in rows)

    for lang in ("", "en"):
        shown = plan("coverage_of_ids", lang=lang, first="1", last="80000")
        assert "idx_coverage_kremlin_id_lang" in shown and "TEMP B-TREE" not in shown, shown
    for lang in ("", "ru"):
        shown = plan("most_turns", since="", until="", lang=lang)
        assert "SCAN utterances USING INDEX idx_utterances_event_id_labelled |" in shown, shown


def test_speaker_turns_facets_count_as_grouping_the_rows_would(ds, archive_path):
    """The speaker_turns view's facets: the person by id, named from persons (a view has no
    foreign keys for Datasette to name them with), and the language counted per language in
    one pass: the same values and counts as grouping the view's rows, most first, and the
    links filter the page."""
    conn = reader(archive_path)
    for query, where in (("", ""), ("?lang=ru", " WHERE lang = 'ru'")):
        data = get_json(ds, f"/kremlin/speaker_turns.json{query}")
        facets = data["facet_results"]  # a facet that timed out is not there
        assert set(facets) == {"person_id", "lang"}
        for column in ("person_id", "lang"):
            expected = conn.execute(
                f"SELECT {column}, count(*) FROM speaker_turns{where} GROUP BY 1 "
                f"HAVING {column} IS NOT NULL ORDER BY 2 DESC, 1"
            ).fetchall()
            got = [(e["value"], e["count"]) for e in facets[column]["results"]]
            assert got == expected and facets[column]["type"] == "column", (column, got)
        names = dict(conn.execute("SELECT id, name FROM persons"))
        labels = {e["value"]: e["label"] for e in facets["person_id"]["results"]}
        assert labels and labels == {key: names[key] for key in labels}
        [ru] = [e for e in facets["lang"]["results"] if e["value"] == "ru"]
        assert ru["selected"] == bool(query)
    assert labels["a-vladimir-putin"] == "Vladimir Putin"
    page = get(ds, "/kremlin/speaker_turns").text
    assert "Vladimir Putin" in page and "lang=ru" in page


def test_canned_queries_with_empty_parameters_return_nothing_without_error(ds):
    for name, (params, _key, _expected) in CANNED.items():
        response = get(ds, f"/kremlin/{name}.json", params=dict.fromkeys(params, ""))
        assert response.json()["ok"], (name, response.json().get("error"))


def test_changed_since_names_the_changed_fields(ds):
    rows = get_json(ds, "/kremlin/changed_since.json?_shape=array&since=2026-11-01")
    assert [(r["event_id"], r["revision"]) for r in rows] == [(RU_ID, 1)]
    assert set(json.loads(rows[0]["changed_fields"])) >= {"paragraphs", "utterances"}


# -- the transcript page --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ru_page(ds):
    response = get(ds, "/kremlin/events/ru-66419")
    assert response.status_code == 200
    return lxml.html.fromstring(response.text)


def test_transcript_page_shows_the_turns_in_order(ru_page, ru_66419):
    turns = [
        (
            int(div.get("id")[1:]),
            div.xpath("string(./div[@class='who']/span[@class='name'])") or None,
            "\n".join(p.text_content() for p in div.xpath("./div[@class='said']/p")),
        )
        for div in ru_page.xpath("//section[@class='dialogue']/div")
    ]
    assert turns == [(u.seq, u.speaker, u.text) for u in ru_66419.utterances]
    speakers = [speaker for _, speaker, _ in turns if speaker]
    assert speakers[:2] == ["В.Путин", "К.-Ж.Токаев"]


def test_transcript_page_header(ru_page, ru_66419):
    assert ru_page.xpath("string(//article//h1)") == ru_66419.title
    assert ru_page.xpath("string(//time/@datetime)") == "2021-08-21T13:10:00+03:00"
    assert "21 августа 2021, 13:10" in ru_page.xpath("string(//time)")  # in the page's language
    assert ru_page.xpath("string(//span[@class='place'])") == "Москва, Кремль"
    assert ru_page.xpath("string(//p[@class='lead'])") == ru_66419.lead
    assert ru_page.xpath("//a[@class='source']/@href") == [RU_URL]


def test_transcript_page_links_the_twin_url_when_the_twin_is_not_archived(ru_page, ru_66419):
    assert ru_66419.twin_url
    assert ru_page.xpath("//a[@class='twin']/@href") == [ru_66419.twin_url]


def test_transcript_page_groups_tags_by_kind_with_catalog_links(ru_page, ru_66419):
    box = ru_page.xpath("//section[contains(@class, 'tags')]")[0]
    kinds = {t.kind for t in ru_66419.tags}
    labels = [("topic", "Topics"), ("person", "Persons"), ("geography", "Geography")]
    labels.append(("section", "Sections"))
    assert [h.text_content() for h in box.xpath("./h3")] == [
        name for k, name in labels if k in kinds
    ]
    hrefs = box.xpath(".//a/@href")
    for tag in ru_66419.tags:
        assert tag.url in hrefs


def test_transcript_page_provenance(ru_page):
    box = ru_page.xpath("//section[contains(@class, 'provenance')]")[0]
    facts = {dt.text_content(): dt.getnext().text_content() for dt in box.xpath(".//dt")}
    assert facts["Fetched"] == "2026-11-20T10:00:05Z (UTC)"
    assert facts["HTTP status"] == "200"
    assert facts["WARC file"] == f"kremlin-20261120100000-{demo.RUN_ID}-00001.warc.gz"
    assert facts["WARC record"].startswith("<urn:uuid:")
    assert facts["Offset"].startswith("88310")
    assert facts["Parser"] and facts["Parser"] != "—"
    assert facts["Origin"] == "crawl"
    assert facts["All fetches"] == "2 fetches of this page"
    revisions = [li.text_content() for li in box.xpath(".//ul[@class='revisions']/li")]
    assert len(revisions) == 1
    assert "2026-11-20T10:00:05Z" in revisions[0] and "utterances" in revisions[0]
    license_line = ru_page.xpath("string(//p[@class='license-line'])")
    assert "President of Russia website" in license_line and "CC BY 4.0" in license_line


def test_plain_news_page_shows_its_paragraphs(ds):
    page = lxml.html.fromstring(get(ds, "/kremlin/events/en-55882").text)
    assert page.xpath("string(//article//h1)").startswith("Meeting of")
    assert "19 October 2017, 20:10" in page.xpath("string(//time)")
    assert page.xpath("//section[@class='dialogue']/div") or page.xpath(
        "//section[@class='body-text']/p"
    )


def test_turns_in_query_results_link_to_the_turn(ds):
    html = get(ds, "/kremlin/speaker_said", params={"speaker": "Токаев", "words": ""}).text
    assert 'href="/kremlin/events/ru-66419#u' in html


# -- the person page -------------------------------------------------------------------------------


def person_turns(html: str) -> list[tuple[str, str]]:
    page = lxml.html.fromstring(html)
    return [
        (div.get("lang"), div.xpath("string(.//span[@class='label'])"))
        for div in page.xpath("//div[@class='said-turn']")
    ]


def test_person_page_has_their_turns_in_both_languages_newest_first(ds):
    response = get(ds, "/kremlin/persons/a-vladimir-putin")
    assert response.status_code == 200
    page = lxml.html.fromstring(response.text)
    assert page.xpath("string(//article[@class='person-page']/h1)") == "Vladimir Putin"
    turns = person_turns(response.text)
    langs = [lang for lang, _ in turns]
    # ru-66419 (2021) before en-55882 (2017): newest first, whatever the label
    assert langs[0] == "ru" and set(langs) == {"ru", "en"} and langs == sorted(langs, reverse=True)
    assert {label for _, label in turns} >= {"В.Путин", "Vladimir Putin"}
    assert "Printed as:" in response.text and "Владимир Путин" in response.text


def test_person_page_searches_what_they_said(ds):
    response = get(ds, "/kremlin/persons/a-vladimir-putin", params={"q": "Valdai"})
    turns = person_turns(response.text)
    assert turns and {lang for lang, _ in turns} == {"en"}
    assert "with “Valdai”" in response.text
    nothing = get(ds, "/kremlin/persons/a-vladimir-putin", params={"q": "zzzzunfindable"})
    assert person_turns(nothing.text) == [] and "No turns with these words" in nothing.text


def test_person_page_of_a_catalog_person_links_the_catalog(ds):
    response = get(ds, "/kremlin/persons/1640")
    page = lxml.html.fromstring(response.text)
    assert page.xpath("//a[text()='catalog page on the site']/@href") == [
        "http://kremlin.ru/catalog/persons/1640/events"
    ]
    assert [label for _, label in person_turns(response.text)] == ["К.-Ж.Токаев"]


def test_transcript_turns_link_their_person(ru_page):
    links = {
        div.xpath("string(./div[@class='who']/span[@class='name'])"): div.xpath(
            "./div[@class='who']/a[contains(@class, 'person')]/@href"
        )
        for div in ru_page.xpath("//section[@class='dialogue']/div[contains(@class, 'spk-')]")
    }
    assert links == {
        "В.Путин": ["/kremlin/persons/a-vladimir-putin"],
        "К.-Ж.Токаев": ["/kremlin/persons/1640"],
    }


def test_utterances_facet_by_person(ds):
    """One facet value per person, shown by name: В.Путин and Vladimir Putin counted together."""
    data = get_json(ds, "/kremlin/utterances.json?_size=0")
    labels = {r["value"]: r["label"] for r in data["facet_results"]["person_id"]["results"]}
    counts = facet_values(data, "person_id")
    assert labels["a-vladimir-putin"] == "Vladimir Putin"
    putin_turns = get_json(
        ds, "/kremlin/utterances.json?_shape=array&_size=max&person_id=a-vladimir-putin"
    )
    assert counts["a-vladimir-putin"] == len(putin_turns)
    assert {row["speaker"] for row in putin_turns} >= {"В.Путин", "Vladimir Putin"}


# -- escaping -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_ds(tmp_path_factory):
    """en-55882 whose title (in the page's bytes, HTML-escaped as a site would serve it) reads
    `Valdai <script>alert(1)</script> Club` once parsed."""
    body = shared_page("en_news_55882.html")
    assert body.count(b"Valdai International Discussion Club") >= 2
    body = body.replace(
        b"Valdai International Discussion Club",
        b"Valdai &lt;script&gt;alert(1)&lt;/script&gt; Club",
    )
    transcript = parse_event(body, EN_URL)
    assert SCRIPT in transcript.title
    path = tmp_path_factory.mktemp("hostile") / "kremlin.db"
    db = dbmod.open_db(path)
    demo.start_run(db)
    demo.store_page(
        db, body, EN_URL, fetched_at="2026-11-20T10:00:00Z", offset=0, transcript=transcript
    )
    db.close()
    return serve.build_datasette(path)


@pytest.mark.parametrize(
    "path",
    [
        "/kremlin/events/en-55882",
        "/kremlin/events",
        "/kremlin/events?_search=Valdai",
        "/kremlin/utterances",  # the event's title is the label of event_id
        "/kremlin/transcripts",
        "/kremlin/search_everything?q=Valdai&lang=",
        "/kremlin/events_between?since=2017-01-01&until=2017-12-31&lang=",
        "/kremlin/most_turns?since=&until=&lang=",
        "/kremlin/persons/a-vladimir-putin",  # the person page lists the events' titles
        "/kremlin/persons/a-vladimir-putin?q=Valdai",
    ],
)
def test_page_text_is_escaped_in_every_view(hostile_ds, path):
    response = get(hostile_ds, path)
    assert response.status_code == 200
    assert SCRIPT not in response.text
    assert ESCAPED_SCRIPT in response.text


def test_json_carries_the_title_as_data(hostile_ds):
    rows = get_json(hostile_ds, "/kremlin/events.json?_shape=array")
    assert SCRIPT in rows[0]["title"]


# -- screenshot -----------------------------------------------------------------------------------


@pytest.mark.browser
def test_screenshot_of_the_transcript_page(archive_path, tmp_path):
    """Headless Chromium renders the page served by `kremlin-archive serve`. Skipped without
    chromium; CI installs it and requires it (KREMLIN_REQUIRE_BROWSER=1, tests/conftest.py)."""
    png = demo.screenshot(archive_path, tmp_path / "ru-66419.png")
    assert demo.png_size(png) == demo.WINDOW
    assert png.stat().st_size > 50_000  # a page of text, not a blank or error page
