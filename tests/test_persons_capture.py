"""Who said it, measured on the whole 2020 capture (6,656 en.kremlin.ru event pages) and the
reconstructed ru-66419, stored the way a crawl stores them (`db.save_transcript` with one
growing index, then `db.settle_persons` at the end).

- every turn whose label carries a person link is resolved to that id;
- the labelled turns that name someone (roles such as Question and Remark aside) are resolved
  to a person: the share is printed, with the largest labels left without one;
- 200 turns drawn at random and checked by reading their pages (tests/data/
  persons_sample_200.tsv) get the person the reader found;
- "Vladimir Putin", "President of Russia Vladimir Putin" and ru-66419's "В.Путин" are one person;
- the result does not depend on the order in which the events were stored.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import KREMLIN_HTML

from kremlin_archive import db as dbmod
from kremlin_archive import persons
from kremlin_archive.parsing import parse_event

pytestmark = pytest.mark.slow

EN = "http://en.kremlin.ru/events/president/news/"
RU_66419 = "http://kremlin.ru/events/president/news/66419"
SAMPLE = Path(__file__).parent / "data" / "persons_sample_200.tsv"


def build(path: Path, pages: list[Path], *, with_ru: bool = True):
    """An archive of `pages` (in that order), as a crawl would store them."""
    db = dbmod.open_db(path)
    index = dbmod.person_index(db)
    transcripts = [parse_event(p.read_bytes(), f"{EN}{p.stem}") for p in pages]
    if with_ru:
        ru = (KREMLIN_HTML / "reconstructed" / "ru_news_66419.html").read_bytes()
        transcripts.append(parse_event(ru, RU_66419))
    for t in transcripts:
        dbmod.save_transcript(db, t, index=index)
    dbmod.settle_persons(db)
    return db


@pytest.fixture(scope="module")
def capture(tmp_path_factory, mirror_event_pages):
    return build(tmp_path_factory.mktemp("persons") / "capture.db", mirror_event_pages)


def turns(db, where: str = "1", params=()) -> list[dict]:
    return list(
        db.query(f"SELECT * FROM utterances WHERE speaker IS NOT NULL AND ({where})", params)
    )


def test_a_link_in_the_label_resolves_the_turn_to_its_id(capture):
    linked = list(
        capture.query(
            "SELECT m.person_id AS linked, u.person_id, u.person_evidence FROM mentions m "
            "JOIN utterances u ON u.event_id = m.event_id AND u.seq = m.turn"
        )
    )
    print(f"\nturns whose label carries a person link: {len(linked)}")
    assert len(linked) > 400
    assert [row for row in linked if row["person_id"] != row["linked"]] == []
    assert {row["person_evidence"] for row in linked} == {persons.LABEL_LINK}


def test_labelled_turns_are_resolved_to_persons(capture):
    counts = dbmod.person_counts(capture)
    named = counts["labelled_turns"] - counts["roles"]
    share = counts["resolved"] / named
    print(
        f"\nlabelled turns {counts['labelled_turns']:,}, roles {counts['roles']:,}, naming "
        f"someone {named:,}: resolved {counts['resolved']:,} ({share:.2%}) to "
        f"{counts['persons']:,} persons; not resolved {counts['unresolved']:,}"
    )
    print("by evidence:", counts["by_evidence"])
    print("largest labels without a person:")
    for row in counts["top_unresolved"]:
        print(f"  {row['turns']:>3}  {row['evidence']:<20} {row['speaker']}")
    assert counts["pending"] == 0
    assert share >= 0.97
    # Nothing is left without a reason: every labelled turn has its evidence and a note.
    assert turns(capture, "person_evidence IS NULL OR person_note IS NULL") == []


def test_turns_left_without_a_person_are_counted_and_explained(capture):
    view = list(capture.query("SELECT * FROM unresolved_speakers"))
    counts = dbmod.person_counts(capture)
    assert sum(row["turns"] for row in view) == counts["unresolved"] > 0
    ambiguous = [row for row in view if row["person_evidence"] == persons.ARCHIVE_AMBIGUOUS]
    assert ambiguous and all("several persons fit" in row["person_note"] for row in ambiguous)


def test_two_hundred_turns_checked_by_reading_their_pages(capture):
    lines = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line[:1] != "#"]
    sample = list(csv.DictReader(lines, delimiter="\t"))
    assert len(sample) == 200
    wrong = []
    for row in sample:
        turn = capture.execute(
            "SELECT speaker, person_id FROM utterances WHERE event_id = ? AND seq = ?",
            [row["event_id"], int(row["seq"])],
        ).fetchone()
        assert turn is not None and turn[0] == row["label"], row
        if turn[1] != row["expected_person_id"]:
            wrong.append(
                (row["event_id"], row["seq"], row["label"], turn[1], row["expected_person_id"])
            )
    print(f"\n200 turns read by hand: {200 - len(wrong)} right; wrong: {wrong}")
    assert len(wrong) <= 2  # ≥ 99 %


def test_vladimir_putin_is_one_person_in_both_languages(capture):
    found = {
        (row["event_id"][:2], row["speaker"]): row["person_id"]
        for row in capture.query(
            "SELECT DISTINCT event_id, speaker, person_id FROM utterances WHERE speaker IN "
            "('Vladimir Putin', 'President of\xa0Russia Vladimir Putin', 'В.Путин')"
        )
    }
    assert set(found.values()) == {persons.PUTIN}
    assert {key for key in found} >= {
        ("en", "Vladimir Putin"),
        ("en", "President of\xa0Russia Vladimir Putin"),
        ("ru", "В.Путин"),
    }
    putin = next(capture.query("SELECT * FROM persons WHERE id = ?", [persons.PUTIN]))
    assert (putin["name_en"], putin["name_ru"]) == ("Vladimir Putin", "Владимир Путин")
    assert putin["turns"] == putin["turns_en"] + putin["turns_ru"] > 6000
    assert putin["turns_ru"] > 0


def test_one_person_is_one_row_with_catalog_names(capture):
    """Mikhail Mishustin (catalog 294): "Prime Minister Mikhail Mishustin" and "Mikhail
    Mishustin" are one person, named as the site prints and as the catalog writes him."""
    labels = {
        row["speaker"]: row["person_id"]
        for row in capture.query(
            "SELECT DISTINCT speaker, person_id FROM utterances WHERE speaker LIKE '%Mishustin'"
        )
    }
    assert set(labels.values()) == {"294"} and len(labels) >= 2
    row = next(capture.query("SELECT * FROM persons WHERE id = '294'"))
    assert (row["catalog_id"], row["catalog_name_en"], row["name_en"]) == (
        294, "Mishustin Mikhail", "Mikhail Mishustin"
    )  # fmt: skip
    assert row["url"] == "http://en.kremlin.ru/catalog/persons/294/events"


def test_positions_and_markers_are_columns_of_their_own(capture):
    rows = turns(capture, "speaker = ?", ["Vladimir Putin (retranslated)"]) or turns(
        capture, "marker = '(retranslated)'"
    )
    assert rows and all(row["marker"] == "(retranslated)" for row in rows)
    golikova = turns(capture, "speaker = ?", ["Deputy Prime Minister Tatyana Golikova"])
    assert golikova and {(r["person_id"], r["position"]) for r in golikova} == {
        ("78", "Deputy Prime Minister")
    }


def test_the_result_does_not_depend_on_the_order_events_are_stored(tmp_path, mirror_event_pages):
    pages = mirror_event_pages[::4]  # a quarter of the capture, spread over its years
    forward = build(tmp_path / "forward.db", pages, with_ru=False)
    backward = build(tmp_path / "backward.db", pages[::-1], with_ru=False)
    sql = (
        "SELECT event_id, seq, person_id, position, marker, person_evidence, person_note "
        "FROM utterances WHERE speaker IS NOT NULL ORDER BY event_id, seq"
    )
    assert list(forward.execute(sql)) == list(backward.execute(sql))
    people = "SELECT id, name, name_en, catalog_name_en, turns FROM persons ORDER BY id"
    assert list(forward.execute(people)) == list(backward.execute(people))
