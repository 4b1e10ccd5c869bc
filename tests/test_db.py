"""db.py: shape applied idempotently, upserts, revisions, FTS kept in sync, runs and errors."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import content_snapshot, count_rows, get_run, load_transcript, make_transcript
from sqlite_utils import Database

from kremlin_archive import db as dbmod
from kremlin_archive.items import Mention, Tag, Utterance


@pytest.fixture
def db() -> Database:
    return dbmod.ensure_db_shape(Database(memory=True))


def test_shape_is_idempotent(db):
    before = {t: db.table(t).schema for t in db.table_names()}
    dbmod.ensure_db_shape(db)
    after = {t: db.table(t).schema for t in db.table_names()}
    assert before == after
    assert set(dbmod.TABLES) <= set(db.table_names())
    assert {"events_fts", "utterances_fts"} <= set(db.table_names())
    assert set(dbmod.VIEWS) <= set(db.view_names())


def test_shape_declares_foreign_keys(db):
    fks = {(fk.column, fk.other_table) for fk in db.table("utterances").foreign_keys}
    assert ("event_id", "events") in fks
    fks = {(fk.column, fk.other_table) for fk in db.table("event_tags").foreign_keys}
    assert fks == {("event_id", "events"), ("tag_id", "tags")}


def test_file_database_uses_wal(tmp_path):
    path = tmp_path / "a.db"
    database = dbmod.open_db(path)
    assert database.journal_mode == "wal"
    assert database.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_new_event_row(db):
    result = dbmod.save_transcript(db, make_transcript(), now="2026-01-01T00:00:00Z")
    assert result.outcome == "new"
    row = db.table("events").get("ru-66419")
    assert row["kremlin_id"] == 66419
    assert row["year"] == 2021
    assert row["text"] == "В.Путин: Добрый день!\nОчень рад Вас видеть.\nК.-Ж.Токаев: Благодарю."
    assert json.loads(row["speakers"]) == ["В.Путин", "К.-Ж.Токаев"]
    assert row["utterance_count"] == 2
    assert row["first_seen_at"] == "2026-01-01T00:00:00Z"
    assert row["license"] == "CC BY 4.0"
    assert list(db.query("SELECT seq, speaker FROM utterances ORDER BY seq")) == [
        {"seq": 1, "speaker": "В.Путин"},
        {"seq": 2, "speaker": "К.-Ж.Токаев"},
    ]
    assert db.table("tags").count == 2


def test_unchanged_save_writes_nothing(db):
    dbmod.save_transcript(db, make_transcript())
    snapshot = content_snapshot(db)
    total_changes = db.conn.total_changes
    result = dbmod.save_transcript(db, make_transcript(fetch_id=None, source_url="other"))
    assert result.outcome == "unchanged"
    assert db.conn.total_changes == total_changes
    assert content_snapshot(db) == snapshot


def test_changed_save_keeps_revision(db):
    dbmod.save_transcript(db, make_transcript())
    edited = make_transcript(
        title="Новый заголовок",
        utterances=[Utterance(1, "В.Путин", "Добрый день!")],
        paragraphs=["В.Путин: Добрый день!"],
    )
    result = dbmod.save_transcript(db, edited, now="2026-02-02T00:00:00Z")
    assert result.outcome == "changed"
    assert result.revision == 1
    assert set(result.changed_fields) == {"title", "utterances", "paragraphs"}
    revision = db.table("revisions").get(1)
    assert revision["event_id"] == "ru-66419"
    assert revision["title"] == "Встреча с Президентом Казахстана Касым-Жомартом Токаевым"
    assert json.loads(revision["changed_fields"]) == ["title", "paragraphs", "utterances"]
    old = json.loads(revision["content"])
    assert [u["speaker"] for u in old["utterances"]] == ["В.Путин", "К.-Ж.Токаев"]
    row = db.table("events").get("ru-66419")
    assert row["title"] == "Новый заголовок"
    assert row["last_changed_at"] == "2026-02-02T00:00:00Z"
    assert row["revision_count"] == 1
    assert db.table("utterances").count == 1


def test_load_transcript_round_trips_content(db):
    original = make_transcript()
    dbmod.save_transcript(db, original)
    loaded = load_transcript(db, "ru-66419")
    assert dbmod.content_of(loaded) == dbmod.content_of(original)


def test_import_is_superseded_by_crawl_and_kept(db):
    dbmod.save_transcript(db, make_transcript(origin="import:66419.txt"))
    result = dbmod.save_transcript(db, make_transcript(origin="crawl"))
    assert result.outcome == "changed"
    assert "origin" in result.changed_fields
    assert db.table("revisions").get(1)["origin"] == "import:66419.txt"
    assert db.table("events").get("ru-66419")["origin"] == "crawl"


def test_twins_are_linked_when_both_exist(db):
    dbmod.save_transcript(db, make_transcript())
    assert db.table("events").get("ru-66419")["twin_id"] is None
    dbmod.save_transcript(
        db,
        make_transcript(lang="en", url="http://en.kremlin.ru/events/president/news/66419", tags=[]),
    )
    assert db.table("events").get("ru-66419")["twin_id"] == "en-66419"
    assert db.table("events").get("en-66419")["twin_id"] == "ru-66419"


def test_fts_follows_updates(db):
    dbmod.save_transcript(db, make_transcript())

    def search(table, term):
        sql = f"SELECT count(*) FROM {table}_fts WHERE {table}_fts MATCH ?"
        return db.execute(sql, [term]).fetchone()[0]

    assert search("utterances", "благодарю") == 1
    assert search("utterances", "БЛАГОДАРЮ") == 1  # Cyrillic case folding
    assert search("events", "казахстана") == 1
    dbmod.save_transcript(
        db,
        make_transcript(
            utterances=[Utterance(1, "В.Путин", "Спасибо.")], paragraphs=["В.Путин: Спасибо."]
        ),
    )
    assert search("utterances", "благодарю") == 0
    assert search("utterances", "спасибо") == 1


def test_failed_save_leaves_nothing_half_written(db):
    dbmod.save_transcript(db, make_transcript())
    broken = make_transcript(
        title="Другое", utterances=[Utterance(1, "A", "x"), Utterance(1, "B", "duplicate seq")]
    )
    with pytest.raises(sqlite3.IntegrityError):
        dbmod.save_transcript(db, broken)
    assert db.table("events").get("ru-66419")["title"].startswith("Встреча")
    assert db.table("utterances").count == 2
    assert db.table("revisions").count == 0


def test_runs_and_errors(db):
    run_id = dbmod.new_run_id()
    dbmod.start_run(db, run_id=run_id, spider="kremlin", command="crawl", arguments={"lang": "en"})
    fetch_id = dbmod.record_fetch(
        db,
        {"run_id": run_id, "url": "http://en.kremlin.ru/x", "status": 404, "fetched_at": "t"},
    )
    dbmod.record_error(db, run_id=run_id, url="http://en.kremlin.ru/x", stage="fetch",
                       reason="not found (HTTP 404)", status=404, fetch_id=fetch_id)  # fmt: skip
    dbmod.finish_run(db, run_id, status="finished", finish_reason="finished",
                     counts={"requests": 1, "errors": 1})  # fmt: skip
    run = get_run(db, run_id)
    assert run["status"] == "finished"
    assert run["errors"] == 1
    assert json.loads(run["arguments"]) == {"lang": "en"}
    assert count_rows(db, "errors", "stage = ?", ["fetch"]) == 1


def test_stale_running_run_is_marked_interrupted(db):
    dbmod.start_run(db, run_id="r1", spider="kremlin", command="crawl", arguments={})
    db.table("runs").update("r1", {"pid": 2**22 + 12345})  # no such process
    assert dbmod.mark_stale_runs(db) == 1
    assert get_run(db, "r1")["status"] == "interrupted"


def test_a_tag_listed_twice_is_not_reported_as_a_changed_field(db):
    tag = Tag("topic", "Внешняя политика", "http://kremlin.ru/catalog/keywords/82/events")
    assert dbmod.save_transcript(db, make_transcript(tags=[tag, tag])).outcome == "new"
    assert db.table("event_tags").count == 1
    assert dbmod.save_transcript(db, make_transcript(tags=[tag, tag])).outcome == "unchanged"
    edited = dbmod.save_transcript(db, make_transcript(tags=[tag, tag], title="Другое"))
    assert edited.changed_fields == ("title",)


def test_the_queries_of_every_fetch_and_page_use_their_index(tmp_path):
    """Found on the 40k synthetic archive (BENCHMARKS.md section 8): without ANALYZE, SQLite
    planned the last 200 fetch of a URL on the index of `status` (every 200 fetch read, per
    call), and the transcript page's twin lookup had no index at all."""
    database = dbmod.open_db(tmp_path / "k.db")
    for status in (200, 200, 404):  # as ANALYZE-less as a real archive: no statistics
        database.execute(
            "INSERT INTO fetches (url, status, fetched_at) VALUES (?, ?, ?)",
            ["http://en.kremlin.ru/events/president/news/1", status, "2026-01-01T00:00:00Z"],
        )
    traced: list[str] = []
    database.conn.set_trace_callback(traced.append)  # the statement as run, values bound
    assert dbmod.last_fetch_validators(database, "http://en.kremlin.ru/events/president/news/1")
    database.conn.set_trace_callback(None)
    [query] = [q for q in traced if "FROM fetches WHERE url" in q]
    plan = " ".join(row[3] for row in database.execute("EXPLAIN QUERY PLAN " + query))
    assert "USING INDEX idx_fetches_url_id" in plan, plan
    plan = " ".join(
        row[3] for row in database.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM events WHERE twin_id = ?", ["en-1"]
        )
    )  # fmt: skip
    assert "idx_events_twin_id" in plan, plan


def test_the_reader_pages_at_scale_are_served_by_indexes(tmp_path):
    """What made the pages of a 40,000-event archive slow (BENCHMARKS.md section 8), planned on
    an archive without statistics: the events facets read rows (a row's sections lie behind its
    text); a person's or a label's turns in the table's order sorted all of them; a refresh read
    every title of a language. And an old archive's narrower indexes are dropped on open."""
    path = tmp_path / "k.db"
    old = Database(path)
    old["utterances"].create(
        {"event_id": str, "seq": int, "person_id": str}, pk=("event_id", "seq")
    )
    old["utterances"].create_index(["person_id"])  # what an archive of last week has
    old.close()
    database = dbmod.open_db(path)
    names = {r[0] for r in database.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert not names & set(dbmod.OBSOLETE_INDEXES)

    def plan(sql: str, *params) -> str:
        return " ".join(row[3] for row in database.execute("EXPLAIN QUERY PLAN " + sql, params))

    columns = ", ".join(dbmod.TABLES["events"]["columns"])  # as Datasette asks for facets
    for facet in ("year", "place", "sections"):
        shown = plan(
            f"SELECT {facet}, count(*) FROM (SELECT {columns} FROM events WHERE lang = ?) "
            f"GROUP BY {facet}",
            "ru",
        )
        assert "USING COVERING INDEX" in shown, (facet, shown)
    traced: list[str] = []
    database.conn.set_trace_callback(traced.append)
    dbmod.event_title(database, "en", 1)
    dbmod.newest_published_day(database, "en")
    database.conn.set_trace_callback(None)
    for query in traced:
        if "FROM events" in query:
            assert "USING COVERING INDEX" in plan(query), query
    for column in ("person_id", "speaker"):
        shown = plan(
            f"SELECT * FROM utterances WHERE {column} = ? ORDER BY event_id, seq LIMIT 51", "x"
        )
        assert "TEMP B-TREE" not in shown, (column, shown)
        shown = plan(
            f"SELECT person_evidence, count(*) FROM utterances WHERE {column} = ? "
            "AND event_id > ? GROUP BY 1",
            "x",
            "en-1",
        )
        assert "USING COVERING INDEX" in shown, (column, shown)


def test_the_views_are_counted_from_indexes(tmp_path):
    """Counting event_changes (its Datasette page) reads no event row and no fetch that cannot
    be a gone answer: the events' part comes from a covering index, the removed part starts from
    the status index and the errors (1.5 s at 160,000 records when it read them); counting
    speaker_turns reads the speaker index alone."""
    database = dbmod.open_db(tmp_path / "k.db")
    shown = " | ".join(
        row[3] for row in database.execute("EXPLAIN QUERY PLAN SELECT count(*) FROM event_changes")
    )
    assert "SCAN e USING COVERING INDEX idx_events_first_seen_at_id_" in shown, shown
    assert "USING COVERING INDEX idx_fetches_status" in shown, shown
    assert "idx_fetches_kind_spider" not in shown, shown
    shown = " | ".join(
        row[3] for row in database.execute("EXPLAIN QUERY PLAN SELECT count(*) FROM speaker_turns")
    )  # the speaker index alone: no event, no person read per turn
    assert shown.startswith("SEARCH u USING COVERING INDEX") and "|" not in shown, shown


def test_content_of_turns_tags_and_links_as_asdict_would():
    """`content_of` and `links_hash` build the dicts of turns, tags and links by hand: the
    same keys, in the same order, and values as `dataclasses.asdict`."""
    from dataclasses import asdict

    items = [
        Utterance(1, None, "Текст"), Utterance(2, "В.Путин", "x"), Tag("person", "Путин", None),
        Tag("topic", "a", "http://kremlin.ru/catalog/keywords/1"),
        Mention(1640, "Токаев", "Токаев Касым-Жомарт", "Президент", 2), Mention(5, "x"),
    ]  # fmt: skip
    for item in items:
        plain = dbmod._plain_item(item)
        assert plain == asdict(item) and list(plain) == list(asdict(item))
    assert dbmod._plain_item("a paragraph") == "a paragraph"


def test_opening_an_archive_again_changes_nothing_in_its_schema(tmp_path):
    """ensure_db_shape on an archive of the current shape writes nothing: the schema version
    (which every CREATE, DROP or ALTER raises) and sqlite_master stay as they were."""
    path = tmp_path / "kremlin.db"
    dbmod.open_db(path).close()

    def shape() -> tuple:
        conn = sqlite3.connect(path)
        try:
            version = conn.execute("PRAGMA schema_version").fetchone()[0]
            return version, conn.execute("SELECT * FROM sqlite_master ORDER BY rowid").fetchall()
        finally:
            conn.close()

    before = shape()
    dbmod.open_db(path).close()
    dbmod.open_db(path).close()
    assert shape() == before


def test_a_row_write_that_fails_inside_a_batch_takes_back_only_itself(tmp_path):
    """`db._atomic`: savepoints of one name, nested (an error row inside a failed one), are
    taken back innermost first, as sqlite-utils' savepoints of distinct names were."""
    db = dbmod.open_db(tmp_path / "kremlin.db")
    db.conn.execute("BEGIN")
    dbmod.record_error(db, run_id=None, url="a", stage="parse", reason="kept")
    with pytest.raises(RuntimeError), dbmod._atomic(db):
        dbmod.record_error(db, run_id=None, url="b", stage="parse", reason="taken back")
        raise RuntimeError("midway")
    dbmod.record_error(db, run_id=None, url="c", stage="parse", reason="kept")
    db.conn.execute("COMMIT")
    assert [r[0] for r in db.execute("SELECT url FROM errors ORDER BY rowid")] == ["a", "c"]
    dbmod.record_error(db, run_id=None, url="d", stage="parse", reason="its own transaction")
    assert not db.conn.in_transaction
    assert db.execute("SELECT count(*) FROM errors").fetchone()[0] == 3
