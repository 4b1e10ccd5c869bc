"""Persons in the archive (db.py): resolved in the event's transaction, links kept as evidence,
re-linked when only the links change, settled against the whole archive, rebuilt by
`kremlin-archive persons`, and brought into an archive made before persons existed.

Pages: en 63123 (two speaker labels with person links, shared/kremlin-html) and the
reconstructed ru-66419 (В.Путин, К.-Ж.Токаев with the tag Токаев Касым-Жомарт)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import sqlite_utils
from conftest import KREMLIN_HTML, run_cli, shared_page

from kremlin_archive import db as dbmod
from kremlin_archive import persons
from kremlin_archive.parsing import parse_event

EN_63123 = "http://en.kremlin.ru/events/president/news/63123"
RU_66419 = "http://kremlin.ru/events/president/news/66419"


def en_63123():
    return parse_event(shared_page("en_news_63123_invalid_utf8.html"), EN_63123)


def ru_66419():
    return parse_event(
        (KREMLIN_HTML / "reconstructed" / "ru_news_66419.html").read_bytes(), RU_66419
    )


@pytest.fixture
def db(tmp_path):
    return dbmod.open_db(tmp_path / "kremlin.db")


def people(db, event_id: str) -> dict[int, tuple]:
    return {
        row["seq"]: (row["speaker"], row["person_id"], row["person_evidence"])
        for row in db.query(
            "SELECT * FROM utterances WHERE event_id = ? AND speaker IS NOT NULL", [event_id]
        )
    }


def test_a_saved_event_has_its_turns_resolved_and_its_links_kept(db):
    t = en_63123()
    labelled = [m for m in t.mentions if m.turn is not None]
    assert len(labelled) == 4  # the page has four speaker labels with a person link
    dbmod.save_transcript(db, t)
    turns = people(db, t.event_id)
    for m in labelled:
        assert turns[m.turn][1:] == (str(m.catalog_id), persons.LABEL_LINK)
    assert {v[1] for v in turns.values() if v[0] == "Vladimir Putin"} == {persons.PUTIN}
    stored = list(db.query("SELECT * FROM mentions WHERE event_id = ? ORDER BY seq", [t.event_id]))
    assert [(int(m["person_id"]), m["text"], m["turn"]) for m in stored] == [
        (m.catalog_id, m.text, m.turn) for m in t.mentions
    ]
    for m in labelled:
        row = db.table("persons").get(str(m.catalog_id))
        assert (row["kind"], row["catalog_id"], row["catalog_name_en"]) == (
            "catalog", m.catalog_id, m.card_name
        )  # fmt: skip


def test_initials_resolve_against_the_russian_tags(db):
    dbmod.save_transcript(db, ru_66419())
    dbmod.settle_persons(db)
    assert people(db, "ru-66419") == {
        1: ("В.Путин", persons.PUTIN, persons.RULE),
        2: ("К.-Ж.Токаев", "1640", persons.EVENT_TAG),
    }
    putin = db.table("persons").get(persons.PUTIN)
    assert (putin["name_ru"], putin["turns_ru"], putin["name"]) == ("Владимир Путин", 1,
                                                                    "Vladimir Putin")  # fmt: skip
    tokayev = db.table("persons").get("1640")
    assert (tokayev["catalog_name_ru"], tokayev["turns"], tokayev["url"]) == (
        "Токаев Касым-Жомарт", 1, "http://kremlin.ru/catalog/persons/1640/events"
    )  # fmt: skip


def test_same_content_with_other_links_relinks_without_a_revision(db):
    t = en_63123()
    dbmod.save_transcript(db, t)
    turn = next(m.turn for m in t.mentions if m.turn is not None)
    before = people(db, t.event_id)[turn]
    unlinked = replace(t, mentions=[m for m in t.mentions if m.turn != turn])
    result = dbmod.save_transcript(db, unlinked)
    assert result.outcome == "unchanged"
    row = db.table("events").get(t.event_id)
    assert (row["revision_count"], row["links_hash"]) == (0, dbmod.links_hash(unlinked))
    after = people(db, t.event_id)[turn]
    assert before[2] == persons.LABEL_LINK and after[2] != persons.LABEL_LINK
    assert db.execute("SELECT count(*) FROM mentions WHERE turn = ?", [turn]).fetchone()[0] == 0
    # the same links again: nothing to write
    assert dbmod.save_transcript(db, unlinked).outcome == "unchanged"


def test_settle_resolves_what_was_never_resolved_and_changes_nothing_else(db):
    for t in (en_63123(), ru_66419()):
        dbmod.save_transcript(db, t)
    dbmod.settle_persons(db)
    snapshot = list(db.query("SELECT * FROM utterances ORDER BY event_id, seq"))
    assert dbmod.settle_persons(db)["turns_changed"] == 0
    db.execute(
        "UPDATE utterances SET person_id = NULL, name = NULL, position = NULL, marker = NULL, "
        "person_evidence = NULL, person_note = NULL"
    )
    assert dbmod.person_counts(db)["pending"] > 0
    settled = dbmod.settle_persons(db)
    assert settled["events"] == 2 and settled["turns_changed"] > 0
    assert list(db.query("SELECT * FROM utterances ORDER BY event_id, seq")) == snapshot
    assert dbmod.settle_persons(db, rebuild=True)["turns_changed"] == 0


def test_settle_reads_the_archive_a_chunk_at_a_time_with_the_same_result(db, monkeypatch):
    for t in (en_63123(), ru_66419()):
        dbmod.save_transcript(db, t)
    dbmod.settle_persons(db, rebuild=True)
    snapshot = list(db.query("SELECT * FROM utterances ORDER BY event_id, seq"))
    db.execute("UPDATE utterances SET person_id = NULL, person_evidence = NULL, person_note = NULL")
    monkeypatch.setattr(dbmod, "SETTLE_CHUNK", 1)  # every event a chunk of its own
    settled = dbmod.settle_persons(db)
    assert settled["events"] == 2 and settled["turns_changed"] > 0
    assert list(db.query("SELECT * FROM utterances ORDER BY event_id, seq")) == snapshot


def test_turns_are_searchable_after_their_persons_change(db):
    dbmod.save_transcript(db, ru_66419())
    db.execute("UPDATE utterances SET person_id = NULL, person_evidence = NULL")
    dbmod.settle_persons(db)
    found = db.execute(
        "SELECT count(*) FROM utterances_fts WHERE utterances_fts MATCH 'Благодарю'"
    ).fetchone()[0]
    assert found == 1


def _without_persons(path) -> None:
    """Make the archive at `path` look like one written before persons: no persons, mentions,
    person columns or migration m003."""
    old = sqlite_utils.Database(path)
    for (index,) in old.execute(  # every index on a person column, and the partial ones (none
        # existed then; sqlite-utils refuses to drop columns beside them)
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'utterances' "
        "AND (sql LIKE '%person_id%' OR sql LIKE '%person_evidence%' OR sql LIKE '% WHERE %')"
    ).fetchall():
        old.execute(f"DROP INDEX [{index}]")
    old["utterances"].disable_fts()
    old["utterances"].transform(
        drop={"person_id", "name", "position", "marker", "person_evidence", "person_note"},
        drop_foreign_keys=["person_id"],
    )
    old["utterances"].enable_fts(("speaker", "text"), create_triggers=True,
                                 tokenize=dbmod.FTS_TOKENIZE)  # fmt: skip
    old.execute("DROP TABLE mentions")
    old.execute("DROP TABLE persons")
    old.execute("DELETE FROM _sqlite_migrations WHERE name = 'm003_persons'")
    old.conn.commit()
    old.close()


def test_an_archive_from_before_persons_is_brought_up_to_date(tmp_path):
    path = tmp_path / "old.db"
    db = dbmod.open_db(path)
    dbmod.save_transcript(db, ru_66419())
    db.close()
    _without_persons(path)
    assert "person_id" not in sqlite_utils.Database(path)["utterances"].columns_dict

    db = dbmod.open_db(path)
    assert ("person_id", "persons") in {
        (fk.column, fk.other_table) for fk in db["utterances"].foreign_keys
    }
    assert people(db, "ru-66419")[1] == ("В.Путин", persons.PUTIN, persons.RULE)
    assert people(db, "ru-66419")[2][1] == "1640"
    # the search index was rebuilt with the table
    assert (
        db.execute(
            "SELECT count(*) FROM utterances_fts WHERE utterances_fts MATCH 'Токаев'"
        ).fetchone()[0]
        == 1
    )
    # and the indexes of some turns only, which the rebuild of the table had to carry over
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert set(dbmod.PARTIAL_INDEXES) <= indexes


def test_persons_command_settles_and_reports(tmp_path):
    path = tmp_path / "kremlin.db"
    db = dbmod.open_db(path)
    for t in (en_63123(), ru_66419()):
        dbmod.save_transcript(db, t)
    db.execute("UPDATE utterances SET person_id = NULL, person_evidence = NULL")
    db.close()
    result = run_cli("persons", "--db", str(path))
    assert result.returncode == 0, result.stderr
    assert "Speaker turns:" in result.stdout and "resolved to one of" in result.stdout
    assert "Turns by the evidence that names their person" in result.stdout
    result = run_cli("persons", "--db", str(path), "--rebuild", "--json")
    data = json.loads(result.stdout)
    assert data["pending"] == 0 and data["resolved"] == data["labelled_turns"] - data["roles"]
    assert data["by_evidence"][persons.LABEL_LINK] == 4
    stats = run_cli("stats", "--db", str(path), "--warc-dir", str(tmp_path / "warc"))
    assert "Speaker turns:" in stats.stdout and "persons" in stats.stdout


def test_persons_command_refuses_a_missing_archive(tmp_path):
    result = run_cli("persons", "--db", str(tmp_path / "nothing.db"))
    assert result.returncode == 2 and "no such archive" in result.stderr
    assert not (tmp_path / "nothing.db").exists()


def test_a_persons_page_lists_turns_newest_first_either_way(db):
    """person_page walks the events newest first for the archive's main speaker and sorts the
    turns of everyone else; both give the order of (published_at desc, event, seq), page by
    page."""
    from conftest import make_transcript

    from kremlin_archive.items import Utterance

    days = ["2021-08-21", "2019-03-02", "2021-08-21", "2020-01-15", "2018-07-30", "2022-02-01"]
    for n, day in enumerate(days, 1):
        turns = [Utterance(1, "В.Путин", f"Реплика {n}."), Utterance(2, "В.Путин", "Вторая.")]
        if n == 4:
            turns.append(Utterance(3, "К.-Ж.Токаев", "Благодарю."))
        dbmod.save_transcript(db, make_transcript(
            kremlin_id=n, url=f"http://kremlin.ru/events/president/news/{n}",
            published_at=f"{day}T12:00:00+03:00", utterances=turns,
        ))  # fmt: skip
    dbmod.settle_persons(db)
    rows = db.execute(
        "SELECT u.person_id, u.event_id, u.seq FROM utterances u JOIN events e ON e.id = u.event_id"
        " ORDER BY e.published_at DESC, u.event_id, u.seq"
    ).fetchall()
    by_person: dict[str, list] = {}
    for person_id, event_id, seq in rows:
        by_person.setdefault(person_id, []).append((event_id, seq))
    putin = by_person["a-vladimir-putin"]
    assert len(putin) == 12 and len(by_person) == 2
    for person_id, expected in by_person.items():
        for offset in (0, 3, 10):
            page = dbmod.person_page(db, person_id, limit=3, offset=offset)
            assert page["total"] == len(expected)
            got = [(t["event_id"], t["seq"]) for t in page["turns"]]
            assert got == expected[offset : offset + 3], (person_id, offset)
