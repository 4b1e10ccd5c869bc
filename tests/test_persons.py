"""persons.py on labels as the site prints them (every label below is copied from a page of the
2020 mirror or the reconstructed ru-66419; the tags and links are the ones those pages carry).

The whole-capture measurements (share resolved, label links, the 200 turns read by hand) are in
test_persons_capture.py."""

from __future__ import annotations

import datetime as dt

import pytest

from kremlin_archive import persons
from kremlin_archive.items import Mention
from kremlin_archive.persons import (
    AMBIGUOUS,
    ARCHIVE,
    ARCHIVE_AMBIGUOUS,
    ARCHIVE_UNCONFIRMED,
    EVENT_TAG,
    LABEL_LINK,
    NAME,
    PAGE_LINK,
    PUTIN,
    ROLE,
    RULE,
    UNRESOLVED,
    Index,
    read_label,
    resolve_event,
    resolve_turn,
)

DAY_2020 = dt.date(2020, 3, 18)
DAY_2010 = dt.date(2010, 6, 1)  # Dmitry Medvedev's presidency


def resolve(label: str, day: dt.date | None = DAY_2020, lang: str = "en", **evidence):
    return resolve_turn(label, lang, day, **evidence)


# -- labels taken apart -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "core", "marker"),
    [
        ("Vladimir Putin (retranslated)", "Vladimir Putin", "(retranslated)"),
        ("В.Путин (через переводчика)", "В.Путин", "(через переводчика)"),
        ("Н.Назарбаев (в переводе)", "Н.Назарбаев", "(в переводе)"),
        ("Question (retranslated)", "Question", "(retranslated)"),
        ("President of\xa0Russia Vladimir Putin", "President of Russia Vladimir Putin", None),
        ("(retranslated)", "(retranslated)", None),  # nothing but a note: not a marker
    ],
)
def test_read_label_separates_the_interpretation_marker(label, core, marker):
    read = read_label(label)
    assert (read.core, read.marker, read.printed) == (core, marker, label)


# -- the presidents -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "lang", "position"),
    [
        ("Vladimir Putin", "en", None),
        ("President of\xa0Russia Vladimir Putin", "en", "President of Russia"),
        ("Russian President Vladimir Putin", "en", "Russian President"),
        ("VLADIMIR PUTIN", "en", None),
        ("Vladimir PUTIN", "en", None),
        ("Vlaidmir Putin", "en", None),  # misspelt on en 17790
        ("V.Putin", "en", None),
        ("В.Путин", "ru", None),
        ("Президент России В.Путин", "ru", "Президент России"),
    ],
)
def test_vladimir_putin_is_one_person_whatever_the_label(label, lang, position):
    found = resolve(label, lang=lang)
    assert (found.person_id, found.evidence, found.position) == (PUTIN, RULE, position)


def test_the_interpretation_marker_is_kept_apart_from_the_name():
    found = resolve("Vladimir Putin (speaking German)")
    assert (found.person_id, found.name, found.marker) == (PUTIN, "Vladimir Putin",
                                                          "(speaking German)")  # fmt: skip


@pytest.mark.parametrize(
    "label",
    [
        "Dmitry Medvedev",
        "Prime Minister Dmitry Medvedev",
        "Д.Медведев",
        "President OF RUSSIA DMITRY MEDVEDEV",
    ],
)
def test_dmitry_medvedev_is_catalog_person_37(label):
    found = resolve(label, lang="ru" if label.startswith("Д") else "en")
    assert (found.person_id, found.catalog_id, found.evidence) == ("37", 37, RULE)


@pytest.mark.parametrize("label", ["Alexander Medvedev", "Andrei Medvedev", "А.Медведев"])
def test_another_medvedev_is_not_the_president(label):
    assert resolve(label).person_id != "37"


def test_a_caller_named_dmitry_is_not_dmitry_medvedev():
    assert resolve("Dmitry, Moscow").person_id != "37"  # a Direct Line caller (en 17976)


@pytest.mark.parametrize(
    ("label", "day", "person"),
    [
        ("President of Russia", DAY_2020, PUTIN),
        ("Президент", DAY_2010, "37"),
        ("Президент России", dt.date(2012, 5, 7), PUTIN),
        ("The President", dt.date(2008, 5, 6), PUTIN),
    ],
)
def test_a_bare_presidential_title_is_the_president_of_the_day(label, day, person):
    found = resolve(label, day=day, lang="ru" if label[0] > "Z" else "en")
    assert (found.person_id, found.evidence) == (person, RULE)
    assert day.isoformat() in found.note


# -- the page's evidence ------------------------------------------------------------------------


def test_a_link_in_the_label_decides():
    """en 17162: <b>CEO of Rostekhnologii State Corporation <a href=…/catalog/persons/39/…>
    Sergei Chemezov<span class="read__tooltip …">Chemezov Sergei …</span></a>: </b>"""
    link = Mention(39, "Sergei Chemezov", "Chemezov Sergei", "CEO of Rostec State Corporation", 5)
    found = resolve(
        "CEO of Rostekhnologii State Corporation Sergei Chemezov",
        label_links=[link],
        mentions=[link],
    )
    assert (found.person_id, found.evidence) == ("39", LABEL_LINK)
    assert (found.name, found.position) == (
        "Sergei Chemezov",
        "CEO of Rostekhnologii State Corporation",
    )
    assert "39" in found.note and "Chemezov Sergei" in found.note


def test_a_label_link_beats_every_rule():
    """The link is the site's own statement: it wins even over a name rule."""
    link = Mention(37, "Dmitry Medvedev", None, None, 2)
    assert resolve("Prime Minister Dmitry Medvedev", label_links=[link]).evidence == LABEL_LINK


def test_the_events_person_tags_name_the_speaker():
    found = resolve("Prime Minister Mikhail Mishustin", tags=[(294, "Mishustin Mikhail")])
    assert (found.person_id, found.evidence, found.position) == ("294", EVENT_TAG, "Prime Minister")


def test_initials_and_surname_against_a_russian_tag():
    """ru-66419 (reconstructed): <b>К.-Ж.Токаев:</b>, tag Лица: Токаев Касым-Жомарт."""
    found = resolve("К.-Ж.Токаев", lang="ru", tags=[(1640, "Токаев Касым-Жомарт")])
    assert (found.person_id, found.evidence, found.name) == ("1640", EVENT_TAG, "К.-Ж.Токаев")


def test_wrong_initials_do_not_match():
    assert resolve("А.Токаев", lang="ru", tags=[(1640, "Токаев Касым-Жомарт")]).person_id != "1640"


def test_a_name_after_a_comma():
    found = resolve("Alisa Shmelyova, metrology engineer", tags=[(900, "Shmelyova Alisa")])
    assert (found.person_id, found.position) == ("900", "metrology engineer")


def test_the_same_name_linked_elsewhere_on_the_page():
    body_link = Mention(330, "Andrei Belousov", "Belousov Andrei", "Presidential Aide", None)
    found = resolve("Presidential Aide Andrei Belousov", mentions=[body_link])
    assert (found.person_id, found.evidence) == ("330", PAGE_LINK)


def test_two_tagged_people_of_one_surname_are_ambiguous():
    found = resolve("Mr Ivanov", tags=[(81, "Ivanov Sergei"), (1234, "Ivanov Viktor")])
    assert (found.person_id, found.evidence) == (None, AMBIGUOUS)
    assert "81" in found.note and "1234" in found.note


def test_the_full_name_settles_between_two_of_one_surname():
    found = resolve("Sergei Ivanov", tags=[(81, "Ivanov Sergei"), (1234, "Ivanov Viktor")])
    assert found.person_id == "81"


def test_another_given_name_before_a_tagged_surname_is_someone_else():
    found = resolve("Viktor Ivanov", tags=[(81, "Ivanov Sergei")])
    assert found.person_id != "81"


def test_roles_are_not_persons():
    for label in ("Question", "Question (retranslated)", "Remark", "Response from the hall",
                  "Реплика", "Call centre operator"):  # fmt: skip
        found = resolve(label)
        assert (found.person_id, found.evidence) == (None, ROLE), label


# -- the archive's evidence ---------------------------------------------------------------------


@pytest.fixture
def index() -> Index:
    """Names and positions as the mirror's tags and hover cards give them."""
    built = Index()
    built.add_event(
        [(309, "Peskov Dmitry"), (81, "Ivanov Sergei"), (418, "Morozov Sergei"),
         (575, "Morozov Sergei")],
        [
            Mention(309, "Dmitry Peskov", "Peskov Dmitry",
                    "Deputy Chief of Staff of the Presidential Executive Office – Presidential "
                    "Press Secretary"),
            Mention(81, "Sergei Ivanov", "Ivanov Sergei",
                    "Chief of Staff of the Presidential Executive Office"),
        ],
    )  # fmt: skip
    return built


def test_a_full_name_one_catalog_person_bears(index):
    found = resolve("Dmitry Peskov", index=index)
    assert (found.person_id, found.evidence) == ("309", ARCHIVE)


def test_a_surname_alone_is_not_enough_in_the_archive(index):
    assert resolve("Peskov", index=index).evidence != ARCHIVE


def test_the_position_printed_tells_namesakes_apart(index):
    """en 17802: two catalog persons are Sergei Morozov; the hover card of 418 reads Governor
    of Ulyanovsk Region, 575 has none."""
    index.add_position(418, "Governor of Ulyanovsk Region")
    found = resolve("Governor of\xa0Ulyanovsk Region Sergei Morozov", index=index)
    assert (found.person_id, found.evidence) == ("418", ARCHIVE)
    assert "418" in found.note and "575" in found.note
    # one word in common is not enough, and the bare name stays ambiguous
    assert resolve("Governor Sergei Morozov", index=index).person_id is None
    assert resolve("Sergei Morozov", index=index).evidence == ARCHIVE_AMBIGUOUS


def test_two_catalog_persons_of_one_name_are_ambiguous(index):
    found = resolve("Sergei Morozov", index=index)
    assert (found.person_id, found.evidence) == (None, ARCHIVE_AMBIGUOUS)


@pytest.mark.parametrize(
    "label",
    [
        "ALROSA CEO Sergei Ivanov",  # en 57692: the son, not the Chief of Staff
        "Director of\xa0the\xa0Young Professionals direction at\xa0the\xa0Agency for\xa0Strategic "
        "Initiatives Dmitry Peskov",  # en 56970: not the press secretary
    ],
)
def test_a_namesake_in_another_position_is_not_taken_for_the_catalog_person(index, label):
    found = resolve(label, index=index)
    assert (found.person_id, found.evidence) == (None, ARCHIVE_UNCONFIRMED)


def test_a_position_the_archive_knows_confirms_the_name(index):
    found = resolve("Presidential Press Secretary Dmitry Peskov", index=index)
    assert (found.person_id, found.evidence) == ("309", ARCHIVE)


def test_the_index_answers_again_once_it_learns_more():
    """`Index.memo` keeps what the index said of a label only while the index stays the same:
    a new name, or a new position of a namesake, is taken into account at once."""
    index = Index()
    assert resolve("Maxim Oreshkin", index=index).evidence == NAME
    assert resolve("Maxim Oreshkin", index=index).evidence == NAME  # the memo's answer
    index.add(1042, "Oreshkin Maxim")
    found = resolve("Maxim Oreshkin", index=index)
    assert (found.person_id, found.evidence) == ("1042", ARCHIVE)
    index.add(1043, "Oreshkin Maxim")
    label = "Minister of Economic Development Maxim Oreshkin"
    assert resolve(label, index=index).evidence == ARCHIVE_AMBIGUOUS
    index.add_position(1043, "Minister of Economic Development")
    found = resolve(label, index=index)
    assert (found.person_id, found.evidence) == ("1043", ARCHIVE)
    index.add_position(1043, "Minister of Economic Development")  # nothing new: kept
    assert index.memo


# -- people the catalog does not list ------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "person_id", "position"),
    [
        ("Andrei Vandenko", "a-andrei-vandenko", None),
        ("Panel moderator, NBC host Megyn Kelly", "a-megyn-kelly", "Panel moderator, NBC host"),
        ("Federal Chancellor of\xa0the\xa0Republic of\xa0Austria Sebastian\xa0Kurz (retranslated)",
         "a-sebastian-kurz", "Federal Chancellor of the Republic of Austria"),
        ("Emir of\xa0Qatar Tamim bin Hamad Al Thani (retranslated)",
         "a-tamim-bin-hamad-al-thani", "Emir of Qatar"),
        ("CEO of\xa0Royal Dutch Shell Ben van Beurden", "a-ben-van-beurden",
         "CEO of Royal Dutch Shell"),
        ("Губернатор Тульской области А.Дюмин", "a-а-дюмин", "Губернатор Тульской области"),
        ("Valeriya Korableva, reporter at\xa0Channel One", "a-valeriya-korableva",
         "reporter at Channel One"),
    ],
)  # fmt: skip
def test_a_person_the_catalog_does_not_list_is_known_by_the_name_printed(
    label, person_id, position
):
    found = resolve(label, index=Index())
    assert (found.person_id, found.evidence, found.position) == (person_id, NAME, position)


@pytest.mark.parametrize(
    "label",
    ["Alina", "Metropolitan Korniliy", "Executive Chairmanof\xa0the\xa0World Economic Forum"],
)
def test_no_name_no_person(label):
    found = resolve(label, index=Index())
    assert (found.person_id, found.evidence) == (None, UNRESOLVED)


# -- an event ---------------------------------------------------------------------------------


def test_resolve_event_resolves_every_labelled_turn_and_skips_narration():
    found = resolve_event(
        "ru",
        "2021-08-21T13:10:00+03:00",
        [(1, None), (2, "В.Путин"), (3, "К.-Ж.Токаев"), (4, "В.Путин")],
        [(1640, "Токаев Касым-Жомарт")],
        [],
        None,
    )
    assert {seq: r.person_id for seq, r in found.items()} == {2: PUTIN, 3: "1640", 4: PUTIN}


def test_resolution_is_deterministic():
    args = ("en", "2020-03-18T12:00:00+03:00", [(1, "Sergei Ivanov"), (2, "Mr Ivanov")],
            [(81, "Ivanov Sergei"), (1234, "Ivanov Viktor")], [], None)  # fmt: skip
    assert resolve_event(*args) == resolve_event(*args)


def test_named_id_is_stable_and_folds_case_and_yo():
    assert persons.named_id("Megyn\xa0Kelly") == persons.named_id("MEGYN KELLY") == "a-megyn-kelly"
    assert persons.named_id("Пётр Толстой") == persons.named_id("Петр Толстой")
