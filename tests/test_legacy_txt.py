"""legacy_txt.py: the legacy plain-text format, against the real legacy record 66419.txt.

The page of 66419 is a reconstruction (kremlin-html/reconstructed/README.md): the real page
template with the legacy record's content poured in -- so the export of its parse must give the
record back, after the two normalisations seed-format/README.md names.
"""

from __future__ import annotations

import functools

import pytest
from conftest import RU_66419_PAGE, SEED_DIR, shared_page

from kremlin_archive.items import Transcript, Utterance
from kremlin_archive.legacy_txt import format_txt, parse_txt
from kremlin_archive.parsing import ParseError, parse_event

SEED = SEED_DIR / "66419.txt"
ROUND_TRIP_FIELDS = ("title", "published_at", "place", "lead", "paragraphs", "utterances")


def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


def normalised_seed() -> str:
    """The legacy record without its two defects: &lt;…&gt; for <…>, trailing spaces."""
    text = seed_text().replace("&lt;…&gt;", "<…>")
    return "\n".join(line.rstrip(" ") for line in text.split("\n"))


@functools.cache
def page_66419() -> Transcript:
    return parse_event(RU_66419_PAGE.read_bytes(), "http://kremlin.ru/events/president/news/66419")


@functools.cache
def en(kremlin_id: int) -> Transcript:
    return parse_event(
        shared_page(f"en_news_{kremlin_id}.html"),
        f"http://en.kremlin.ru/events/president/news/{kremlin_id}",
    )


def test_the_seed_has_both_defects():
    """Guard: the comparison below would be vacuous if the normalisations changed nothing."""
    assert seed_text() != normalised_seed()


def test_export_of_the_page_equals_the_legacy_record():
    assert format_txt(page_66419()) == normalised_seed()


def test_export_has_no_trailing_newline():
    assert not format_txt(page_66419()).endswith("\n")


def test_export_ends_with_the_copy_url():
    assert format_txt(en(63017)).split("\n")[-4:] == [
        "",
        "",
        "",
        "http://en.kremlin.ru/events/president/news/copy/63017",
    ]


def test_export_time_is_moscow_local():
    # 34018 was published 2005-09-05 20:40 Moscow summer time (+04:00).
    assert format_txt(en(34018)).split("\n")[4] == "2005-09-05 20:40:00"


def test_export_leaves_missing_place_and_lead_empty():
    lines = format_txt(en(63017)).split("\n")  # no place, no lead
    assert lines[6] == "" and lines[8] == ""
    assert lines[10].startswith("The\xa0President will present government awards")


def test_export_writes_one_line_per_lead_paragraph():
    t = en(62843)
    lines = format_txt(t).split("\n")
    assert lines[8:10] == t.lead.split("\n") and lines[10] == ""


# -- import ------------------------------------------------------------------------------------


@functools.cache
def imported() -> Transcript:
    return parse_txt(seed_text(), "66419.txt")


def test_import_identity_from_the_url_line():
    t = imported()
    assert (t.kremlin_id, t.lang, t.url) == (
        66419,
        "ru",
        "http://kremlin.ru/events/president/news/66419",
    )


def test_import_keeps_where_it_came_from():
    t = imported()
    assert (t.origin, t.source_url) == (
        "import:66419.txt",
        "http://kremlin.ru/events/president/news/copy/66419",
    )


def test_import_published_at_in_moscow_time():
    assert imported().published_at == "2021-08-21T13:10:00+03:00"


def test_import_title_place_lead():
    t = imported()
    assert t.title == "Встреча с\xa0Президентом Казахстана Касым-Жомартом Токаевым"
    assert t.place == "Москва, Кремль"
    assert t.lead == (
        "Владимир Путин принял в\xa0Кремле Президента Республики Казахстан Касым-Жомарта Токаева."
    )


def test_import_undoes_the_escaped_omission_mark():
    assert imported().paragraphs[-1] == "<…>"


def test_import_strips_trailing_spaces():
    assert not [p for p in imported().paragraphs if p != p.rstrip()]


def test_import_derives_speaker_turns():
    t = imported()
    assert [(u.seq, u.speaker) for u in t.utterances] == [(1, "В.Путин"), (2, "К.-Ж.Токаев")]
    assert t.utterances[1].text.startswith("Благодарю Вас, Владимир Владимирович")


def test_import_equals_the_parse_of_the_page():
    """The legacy record and the page it was taken from give the same content."""
    for field in ROUND_TRIP_FIELDS:
        assert getattr(imported(), field) == getattr(page_66419(), field), field


# -- round trip --------------------------------------------------------------------------------


@pytest.mark.parametrize("kremlin_id", [63017, 62843, 57027, 60707, 53077, 17108, 34018, 9269])
def test_round_trip_of_real_pages(kremlin_id):
    t = en(kremlin_id)
    back = parse_txt(format_txt(t))
    assert {f: getattr(back, f) for f in ROUND_TRIP_FIELDS} == {
        f: getattr(t, f) for f in ROUND_TRIP_FIELDS
    }
    assert (back.kremlin_id, back.lang, back.url) == (t.kremlin_id, t.lang, t.url)


def test_round_trip_where_plain_text_reads_like_a_label():
    """Plain text cannot see bold. 55882 quotes "The United Kingdom: “Secession …”" in an
    unbolded paragraph: the page keeps it inside Putin's turn, the import opens a turn there --
    and that is the only difference (13 of the mirror's 6,656 pages have such a paragraph)."""
    t = en(55882)
    back = parse_txt(format_txt(t))
    assert back.paragraphs == t.paragraphs
    assert len(back.utterances) == len(t.utterances) + 1
    extra = next(u for u in back.utterances if u.speaker == "The\xa0United Kingdom")
    assert extra.text.startswith("“Secession, or\xa0the\xa0declaration of\xa0independence")


def test_round_trip_without_body():
    t = en(37356)  # a title-only item
    back = parse_txt(format_txt(t))
    assert (back.paragraphs, back.utterances, back.place) == ([], [], "Moscow")


def test_round_trip_keeps_a_label_standing_alone():
    t = Transcript(
        kremlin_id=1,
        lang="en",
        url="http://en.kremlin.ru/events/president/news/1",
        title="T",
        published_at="2017-05-01T10:00:00+03:00",
        paragraphs=["Agriculture Minister Alexander Tkachev:", "Mr President,"],
    )
    assert parse_txt(format_txt(t)).utterances == [
        Utterance(1, "Agriculture Minister Alexander Tkachev", "\nMr President,")
    ]


# -- malformed files ---------------------------------------------------------------------------


def broken(line_number: int, replacement: str) -> str:
    lines = seed_text().split("\n")
    lines[line_number - 1] = replacement
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (broken(1, "junk"), 1),
        (broken(2, ""), 2),
        (broken(5, "21.08.2021 13:10"), 5),
        (broken(5, "2021-02-30 13:10:00"), 5),
        (broken(29, "http://example.com/x"), 29),
        (broken(28, "not empty"), 28),
        (broken(15, ""), 15),
        ("\n".join(seed_text().split("\n")[:6]), 6),
        ("", 1),
    ],
)
def test_malformed_file_names_the_line(text, line):
    with pytest.raises(ParseError) as caught:
        parse_txt(text, "66419.txt")
    assert caught.value.reason == f"txt-line-{line}"
    assert f"line {line}" in str(caught.value)
