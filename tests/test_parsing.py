"""parsing.py on real pages, read in place from ../shared (kremlin-html/, the 2020 mirror).

Expected values come from the pages themselves, cross-checked where possible against an
independent source: the title / date / place columns of kremlin-html/PROVENANCE.md, the
"Publication date" line of each page's status block, the Atom feed.
"""

from __future__ import annotations

import functools
import random
import re

import pytest
from conftest import KREMLIN_HTML, RU_66419_PAGE, shared_page
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kremlin_archive.items import Tag, Transcript
from kremlin_archive.parsing import (
    ParseError,
    is_section_break,
    is_speaker_label,
    parse_event,
    parse_feed,
    parse_listing,
    split_speaker_label,
    text_after_label,
)

EN = "http://en.kremlin.ru/events/president/news/"
RU = "http://kremlin.ru/events/president/news/"
FOOTER = ("Publication date", "Direct link", "Text version", "Published in")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00\+0[34]:00$")

EVENT_PAGES = sorted(p.name for p in KREMLIN_HTML.glob("en_news_*.html"))
PRINT_PAGES = sorted(p.name for p in KREMLIN_HTML.glob("en_print_*.html"))


def page_id(name: str) -> int:
    return int(re.search(r"_(\d+)", name).group(1))


def page_url(name: str) -> str:
    return f"{EN}{page_id(name)}" + ("/print" if name.startswith("en_print_") else "")


@functools.cache
def parsed(name: str) -> Transcript:
    """A page of kremlin-html parsed from the URL it was captured at."""
    return parse_event(shared_page(name), page_url(name))


@functools.cache
def ru_66419() -> Transcript:
    """The reconstructed Russian page (real template, legacy content; see its README), parsed
    from the text-version URL the legacy record names."""
    return parse_event(RU_66419_PAGE.read_bytes(), f"{RU}copy/66419")


def speakers(t: Transcript) -> list[str | None]:
    """Distinct speakers in order of first appearance."""
    return list(dict.fromkeys(u.speaker for u in t.utterances))


def provenance_rows() -> dict[str, dict[str, str]]:
    """file -> {published, place, title} from the en table of kremlin-html/PROVENANCE.md."""
    rows = {}
    for line in (KREMLIN_HTML / "PROVENANCE.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0].startswith("en_news_"):
            rows[cells[0]] = {"published": cells[4], "place": cells[5], "title": cells[6]}
    return rows


PROVENANCE = provenance_rows()


def test_provenance_table_covers_every_event_page():
    assert sorted(PROVENANCE) == EVENT_PAGES


# -- every real event page ---------------------------------------------------------------------


@pytest.mark.parametrize("name", EVENT_PAGES + PRINT_PAGES)
def test_page_parses_to_its_canonical_url(name):
    t = parsed(name)
    assert (t.kremlin_id, t.lang, t.url) == (page_id(name), "en", f"{EN}{page_id(name)}")


@pytest.mark.parametrize("name", EVENT_PAGES)
def test_title_matches_provenance(name):
    # PROVENANCE copied each page's <title>: "TITLE • President of Russia", NBSPs included.
    expected = PROVENANCE[name]["title"].removesuffix(" • President of\xa0Russia")
    assert parsed(name).title == expected


@pytest.mark.parametrize("name", EVENT_PAGES)
def test_publication_day_matches_provenance(name):
    t = parsed(name)
    assert ISO.match(t.published_at)
    assert t.published_at[:10] == PROVENANCE[name]["published"]


@pytest.mark.parametrize("name", EVENT_PAGES)
def test_place_matches_provenance(name):
    assert parsed(name).place == (PROVENANCE[name]["place"] or None)


@pytest.mark.parametrize(
    ("name", "published_at"),
    [
        ("en_news_37356.html", "2000-01-02T20:45:00+03:00"),  # winter time, MSK
        ("en_news_26834.html", "2001-11-30T19:30:00+03:00"),  # winter time, MSK
        ("en_news_34018.html", "2005-09-05T20:40:00+04:00"),  # summer time, MSD
        ("en_news_6152.html", "2009-11-29T15:50:00+03:00"),  # winter time
        ("en_news_9269.html", "2010-10-18T13:00:00+04:00"),  # last summer time before 2011
        ("en_news_13679.html", "2011-11-25T17:30:00+04:00"),  # permanent +04, 2011-2014
        ("en_news_17808.html", "2013-04-05T19:00:00+04:00"),
        ("en_news_47105.html", "2014-11-28T15:35:00+03:00"),  # back to +03 in October 2014
        ("en_news_55882.html", "2017-10-19T20:10:00+03:00"),
        ("en_news_63017.html", "2020-03-18T17:40:00+03:00"),
    ],
)
def test_published_at_carries_moscow_offset_of_its_era(name, published_at):
    assert parsed(name).published_at == published_at


@pytest.mark.parametrize("name", EVENT_PAGES)
def test_published_at_agrees_with_status_block(name):
    """The meta block's date + time equals the footer's "Publication date: …, HH:MM"."""
    html = shared_page(name).decode("utf-8", "replace")
    stamp = re.search(r'Publication date:\s*<time datetime="([\d-]+)">[^<]*?(\d\d:\d\d)<', html)
    assert parsed(name).published_at[:16] == f"{stamp.group(1)}T{stamp.group(2)}"


@pytest.mark.parametrize("name", EVENT_PAGES + PRINT_PAGES)
def test_body_has_no_footer_strings(name):
    assert not [p for p in parsed(name).paragraphs if p.startswith(FOOTER)]


@pytest.mark.parametrize("name", EVENT_PAGES)
def test_paragraphs_are_normalised(name):
    for paragraph in parsed(name).paragraphs:
        assert paragraph == paragraph.strip() and paragraph
        assert not re.search(r"[\t\n\r\f\v]| {2}", paragraph)


def test_nbsp_is_kept():
    assert parsed("en_news_63017.html").title == "Vladimir Putin arrived in\xa0Crimea"


def test_body_of_a_short_news_item():
    assert parsed("en_news_63017.html").paragraphs == [
        "The\xa0President will present government awards to\xa0the\xa0builders of\xa0the\xa0"
        "Crimean Bridge and\xa0meet with representatives of\xa0the\xa0public from the\xa0Republic "
        "of\xa0Crimea and\xa0Sevastopol."
    ]


def test_page_without_body_text_has_no_paragraphs():
    # 37356 (2000) is a title-only item: the body container holds only the footer.
    t = parsed("en_news_37356.html")
    assert (t.paragraphs, t.utterances) == ([], [])


def test_slider_and_see_also_are_not_body():
    # 34018 has a photo slider in the body, 60707 a "See also" block (PROVENANCE notes).
    assert not any("See also" in p for p in parsed("en_news_60707.html").paragraphs)
    assert len(parsed("en_news_34018.html").paragraphs) == 2


def test_hover_cards_are_dropped_but_link_text_kept():
    # 63123: <b>Prime Minister <a class="person_tag">Mikhail Mishustin<span class="read__tooltip
    # …">…</span></a>:</b> – the card's "Mishustin Mikhail" text must not leak into the label.
    t = parsed("en_news_63123_invalid_utf8.html")
    assert "Prime Minister Mikhail Mishustin" in speakers(t)
    assert not any("Mishustin Mikhail" in p for p in t.paragraphs)


def test_invalid_utf8_byte_becomes_replacement_character():
    # The page carries "de\xe3lared" (declared); decoding with errors="replace".
    t = parsed("en_news_63123_invalid_utf8.html")
    assert any("have de\ufffdlared a\xa0state" in p for p in t.paragraphs)
    assert t.title == "Meeting with Government members"


# -- lead, place, tags, sections, updated, twin ------------------------------------------------


def test_empty_lead_is_empty_string():
    assert parsed("en_news_63017.html").lead == ""


def test_lead_paragraphs_are_joined_by_newline():
    lead = parsed("en_news_62843.html").lead.split("\n")
    assert lead[0] == (
        "The\xa0first part of\xa0Vladimir Putin's interview to\xa0TASS News Agency has been "
        "published."
    )
    assert len(lead) == 2 and lead[1].startswith("The\xa020 Questions with Vladimir Putin")


def test_tags_by_column_heading():
    assert [t for t in parsed("en_news_60707.html").tags if t.kind != "section"] == [
        Tag("geography", "Saint Petersburg", "http://en.kremlin.ru/catalog/regions/SPE/events"),
        Tag("topic", "Economy and finance", "http://en.kremlin.ru/catalog/keywords/79/events"),
        Tag("topic", "Foreign policy", "http://en.kremlin.ru/catalog/keywords/82/events"),
    ]


def test_person_tags():
    persons = [t for t in parsed("en_news_13679.html").tags if t.kind == "person"]
    assert persons == [
        Tag("person", "Lukashenko Alexander", "http://en.kremlin.ru/catalog/persons/119/events")
    ]


def test_sections_are_names_and_tags():
    t = parsed("en_news_62843.html")
    assert t.sections == ["News", "Transcripts"]
    assert [tag for tag in t.tags if tag.kind == "section"] == [
        Tag("section", "News", "http://en.kremlin.ru/events/president/news"),
        Tag("section", "Transcripts", "http://en.kremlin.ru/events/president/transcripts"),
    ]


def test_single_section():
    assert parsed("en_news_63017.html").sections == ["News"]


def test_updated_at():
    assert parsed("en_news_63017.html").updated_at == "2020-03-18T19:32:00+03:00"


def test_twin_url_is_the_russian_page():
    assert parsed("en_news_63017.html").twin_url == f"{RU}63017"


def test_no_announce_date_on_ordinary_pages():
    assert parsed("en_news_63017.html").announce_date is None


@pytest.mark.parametrize("name", PRINT_PAGES)
def test_print_page_gives_the_same_record(name):
    """/ID/print is the same template (§3); its /print links are canonicalised."""
    assert parsed(name) == parsed(name.replace("en_print_", "en_news_"))


# -- speaker turns -----------------------------------------------------------------------------


def test_speakers_55882_valdai():
    names = speakers(parsed("en_news_55882.html"))
    assert names[:3] == [
        None,
        "Research Director of\xa0the\xa0Foundation for\xa0Development and\xa0Support of\xa0the\xa0"
        "Valdai Discussion Club, moderator Fyodor Lukyanov",
        "Chairman of\xa0the\xa0Board of\xa0the\xa0Foundation for\xa0Development and\xa0Support of"
        "\xa0the\xa0Valdai Discussion Club Andrei Bystritsky",
    ]
    assert {"Fyodor Lukyanov", "President of\xa0Russia Vladimir Putin", "Vladimir Putin"} <= set(
        names
    )


def test_colon_outside_the_bold():
    # <p><b>Fyodor Lukyanov</b>: Thank you.</p> (31 times on 55882, SITE.md §2)
    turns = parsed("en_news_55882.html").utterances
    assert any(u.speaker == "Fyodor Lukyanov" and u.text.startswith("Thank you.\n") for u in turns)


def test_section_break_resets_the_speaker():
    turns = parsed("en_news_55882.html").utterances
    assert turns[1].speaker is None and turns[1].text.split("\n")[0] == "* * *"
    assert not any(u.speaker and is_section_break(u.speaker) for u in turns)


def test_speakers_60707_retranslated_labels():
    names = speakers(parsed("en_news_60707.html"))
    assert names[:3] == [
        None,
        "Sophie Shevardnadze (retranslated)",
        "President of\xa0Russia Vladimir Putin",
    ]
    assert "President of\xa0the\xa0People’s Republic of\xa0China Xi Jinping (retranslated)" in names


def test_speakers_17108_parenthetical_inside_bold():
    # <b>Vladimir Putin (</b><i>responding to remarks by test pilot Magomed Tolboyev)</i>: …
    names = speakers(parsed("en_news_17108.html"))
    assert "Vladimir Putin (responding to\xa0remarks by\xa0test pilot Magomed Tolboyev)" in names
    assert "Writer Eduard Bagirov" in names  # <b>Writer Eduard Bagirov: </b>


def test_split_bold_label_17808():
    # <b>Vladimir </b><b>PUTIN: </b>I think that we should seek …
    turns = parsed("en_news_17808.html").utterances
    turn = next(u for u in turns if u.text.startswith("I\xa0think that we should seek"))
    assert turn.speaker in ("Vladimir PUTIN", "Vladimir\xa0PUTIN")


def test_parenthetical_between_name_and_colon_17808():
    # <b>Jörg Schönenborn</b> (<i>retranslated</i>): Good evening, Mr President,
    first = next(u for u in parsed("en_news_17808.html").utterances if u.speaker)
    assert (first.speaker, first.text.split("\n")[0]) == (
        "Jörg Schönenborn (retranslated)",
        "Good evening, Mr President,",
    )


def test_speakers_57027_interview():
    assert speakers(parsed("en_news_57027.html"))[:3] == [None, "Megyn Kelly", "Vladimir Putin"]


def test_speakers_62843_alternate():
    turns = parsed("en_news_62843.html").utterances
    assert [(u.speaker, u.text) for u in turns[:4]] == [
        ("Andrei Vandenko", "How are you doing?"),
        ("Vladimir Putin", "Honestly?"),
        ("Andrei Vandenko", "Honestly."),
        ("Vladimir Putin", "I\xa0am doing very well."),
    ]


def test_text_without_labels_is_narration():
    # 6152, the draft treaty: 67 paragraphs, no speaker, one "* * *" (a new turn).
    t = parsed("en_news_6152.html")
    assert [(u.seq, u.speaker) for u in t.utterances] == [(1, None), (2, None)]
    assert t.utterances[1].text.startswith("* * *\n")
    assert "\n".join(u.text for u in t.utterances) == "\n".join(t.paragraphs)


@pytest.mark.parametrize("name", EVENT_PAGES)
def test_utterances_reproduce_the_paragraphs(name):
    """Each utterance line is one paragraph; a labelled turn's first line is the paragraph
    without its label (`text_after_label`)."""
    t = parsed(name)
    lines = [line for u in t.utterances for line in u.text.split("\n")]
    assert len(lines) == len(t.paragraphs)
    index = 0
    for turn in t.utterances:
        first = t.paragraphs[index]
        if turn.speaker is None:
            assert turn.text.split("\n")[0] == first
        else:
            assert text_after_label(first, turn.speaker) == turn.text.split("\n")[0]
        index += turn.text.count("\n") + 1
    assert [u.seq for u in t.utterances] == list(range(1, len(t.utterances) + 1))


@pytest.mark.parametrize(
    "label",
    [
        "В.Путин",
        "К.-Ж.Токаев",
        "Г.Греф",
        "Вопрос",
        "Реплика из зала",
        "Vladimir Putin",
        "VLADIMIR PUTIN",
        "President of\xa0Russia Vladimir Putin",
        "Vladimir Putin (retranslated)",
        "Question",
        "Response from the\xa0hall",
        "Call centre operator",
        "Alisa Shmelyova, metrology engineer",
        "Bashar al-Assad",
        "chairman of\xa0Vnesheconombank (VEB) Vladimir Dmitriev",
    ],
)
def test_speaker_labels_seen_on_the_sites(label):
    assert is_speaker_label(label)


@pytest.mark.parametrize(
    "label",
    [
        # bold lines ending in a colon in the 2020 mirror that are headings or data, not people
        "Meeting points",
        "The\xa0message reads",
        "Contact telephone numbers",
        "Entry from 10.00 am to\xa011.00 am",
        "Statements following the\xa0meeting",
        "Email",
        "Note for\xa0the\xa0CIS media",
        # prose before a colon (unbolded paragraphs of the mirror)
        "One more thing",
        "As\xa0for\xa0Buryatia and\xa0Trans-Baikal",
        "Having examined the\xa0proposals of\xa0the\xa0Presidential Council,"
        " Vladimir Putin resolved to\xa0award the\xa02012 prizes",
        "Владимир Путин отметил",
        "* * *",
        "",
    ],
)
def test_headings_and_prose_are_not_speaker_labels(label):
    assert not is_speaker_label(label)


def test_split_speaker_label():
    assert split_speaker_label("К.-Ж.Токаев:\xa0Благодарю Вас") == ("К.-Ж.Токаев", "Благодарю Вас")
    assert split_speaker_label("Agriculture Minister Alexander Tkachev:") == (
        "Agriculture Minister Alexander Tkachev",
        "",
    )
    assert split_speaker_label("The\xa0document reads, in\xa0full:") is None


# -- the reconstructed Russian page ------------------------------------------------------------
# ru_news_66419.html is a reconstruction (real template of the en page 13679, Russian strings,
# content of the legacy record 66419.txt); its tag ids and publication time are illustrative.


def test_ru_66419_identity_from_copy_url():
    t = ru_66419()
    assert (t.kremlin_id, t.lang, t.url) == (66419, "ru", f"{RU}66419")


def test_ru_66419_published_at():
    assert ru_66419().published_at == "2021-08-21T13:10:00+03:00"


def test_ru_66419_place():
    assert ru_66419().place == "Москва, Кремль"


def test_ru_66419_title_and_lead():
    t = ru_66419()
    assert t.title == "Встреча с\xa0Президентом Казахстана Касым-Жомартом Токаевым"
    assert t.lead.startswith("Владимир Путин принял в\xa0Кремле Президента Республики Казахстан")


def test_ru_66419_speakers():
    assert speakers(ru_66419()) == ["В.Путин", "К.-Ж.Токаев"]


def test_ru_66419_label_removed_from_turn_text():
    first, second = ru_66419().utterances
    assert first.text.startswith("Уважаемый Касым-Жомарт Кемелевич, добрый день!")
    assert second.text.startswith("Благодарю Вас, Владимир Владимирович")
    assert second.text.endswith("<…>")


def test_ru_66419_russian_tag_headings():
    assert [(t.kind, t.name) for t in ru_66419().tags] == [
        ("geography", "Казахстан"),
        ("topic", "Внешняя политика"),
        ("person", "Токаев Касым-Жомарт"),
        ("section", "Новости"),
        ("section", "Стенограммы"),
    ]


def test_ru_66419_twin_is_english():
    assert ru_66419().twin_url == f"{EN}66419"


# -- announcements (mirror) --------------------------------------------------------------------


def mirror_event(mirror_dir, kremlin_id: int) -> Transcript:
    path = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news" / f"{kremlin_id}.html"
    return parse_event(path.read_bytes(), f"{EN}{kremlin_id}")


def test_announcement_takes_the_status_time(mirror_dir):
    # 17109: "Announcement, December 14, 2012"; published "December 10, 2012, 16:00".
    t = mirror_event(mirror_dir, 17109)
    assert (t.published_at, t.announce_date) == ("2012-12-10T16:00:00+04:00", "2012-12-14")


def test_announcement_of_several_days_keeps_the_first(mirror_dir):
    t = mirror_event(mirror_dir, 17550)  # "Announcement, April 7 − 8, 2013"
    assert (t.published_at, t.announce_date) == ("2013-02-21T11:00:00+04:00", "2013-04-07")


# -- what is not an event page -----------------------------------------------------------------


def reason(body, url=f"{EN}63017") -> str:
    with pytest.raises(ParseError) as caught:
        parse_event(body, url)
    return caught.value.reason


@pytest.mark.parametrize("body", [b"", b" \n\t "])
def test_empty_body(body):
    assert reason(body) == "empty"


def test_not_bytes():
    assert reason("<html></html>") == "not-bytes"


def test_random_bytes():
    assert reason(random.Random(1).randbytes(40_000)) == "not-html"


@pytest.mark.parametrize("name", ["en_news_63017.html", "en_news_55882.html"])
@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.5, 0.8, 0.95, 0.999])
def test_truncated_page(name, fraction):
    body = shared_page(name)
    assert reason(body[: int(len(body) * fraction)], page_url(name)) == "truncated"


def test_page_cut_after_its_last_paragraph():
    """The nastiest cut: everything up to the footer arrived, so a parser reading only what it
    sees would return a plausible record."""
    body = shared_page("en_news_60707.html")
    cut = body.index(b'<div class="read__bottommeta')
    assert reason(body[:cut], page_url("en_news_60707.html")) == "truncated"


def test_page_the_html_parser_gives_up_on():
    """libxml2 stops at elements nested deeper than 256 and keeps a partial tree; that partial
    tree must not become a record with a body cut short."""
    body = shared_page("en_news_63017.html")
    at = body.index(b"<p>The") + 3
    nested = body[:at] + b"<b>" * 300 + b"Vladimir Putin:" + b"</b>" * 300 + body[at:]
    assert reason(nested) == "malformed"


def test_site_404_page():
    body = shared_page("ru_error404_acts_bank_43577.html")
    assert reason(body, f"{RU}43577") == "not-found-page"


def test_listing_page_is_not_an_event():
    assert reason(shared_page("en_list_news_page2.html")) == "listing-page"


@pytest.mark.parametrize(("name", "code"), [("photos", "photos-tab"), ("videos", "videos-tab")])
def test_media_tabs(name, code):
    assert reason(shared_page(f"en_{name}_55882.html"), f"{EN}55882/{name}") == code


@pytest.mark.parametrize("name", ["ru_acts_bank_52490.html", "ru_acts_bank_52489.html"])
def test_acts_pages(name):
    assert reason(shared_page(name), f"{RU}{page_id(name)}") == "acts-page"


def test_home_page_has_no_article():
    assert reason(shared_page("ru_home_2018-03-17.html"), f"{RU}1") == "no-article"


def test_page_of_another_event():
    assert reason(shared_page("en_news_63017.html"), f"{EN}63018") == "id-mismatch"


def test_page_of_the_other_site():
    assert reason(shared_page("en_news_63017.html"), f"{RU}63017") == "lang-mismatch"


@pytest.mark.parametrize("url", ["", "http://example.com/events/president/news/1", None])
def test_bad_url(url):
    assert reason(shared_page("en_news_63017.html"), url) == "bad-url"


def test_page_without_title():
    body = shared_page("en_news_63017.html").replace(b"entry-title", b"entry-xxxxx")
    assert reason(body) == "no-title"


def test_page_without_any_date():
    body = re.sub(rb"<time[^>]*>[^<]*</time>", b"", shared_page("en_news_63017.html"))
    assert reason(body) == "no-date"


MUTATED = ["en_news_63017.html", "en_news_62843.html", "en_news_13679.html"]


def mutate(body: bytes, data) -> bytes:
    if not body:
        return body
    operation = data.draw(st.sampled_from(["flip", "delete", "truncate", "drop-tag", "insert"]))
    at = data.draw(st.integers(0, len(body) - 1))
    if operation == "flip":
        return body[:at] + bytes([body[at] ^ data.draw(st.integers(1, 255))]) + body[at + 1 :]
    if operation == "delete":
        return body[:at] + body[at + data.draw(st.integers(1, 5000)) :]
    if operation == "truncate":
        return body[:at]
    if operation == "insert":
        return body[:at] + data.draw(st.binary(min_size=1, max_size=64)) + body[at:]
    tags = [m.start() for m in re.finditer(rb"<[a-z/]", body)]
    if not tags:
        return body
    start = tags[at % len(tags)]
    end = body.find(b">", start)
    return body[:start] + body[end + 1 :] if end > 0 else body[:start]


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(name=st.sampled_from(MUTATED), steps=st.integers(1, 4), data=st.data())
def test_mutated_pages_give_a_record_or_parse_error(name, steps, data):
    body = shared_page(name)
    for _ in range(steps):
        body = mutate(body, data)
    try:
        result = parse_event(body, page_url(name))
    except ParseError as exc:
        assert exc.reason
    else:
        assert isinstance(result, Transcript) and result.title and ISO.match(result.published_at)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["listing", "feed"]), steps=st.integers(1, 3), data=st.data())
def test_mutated_listings_and_feeds_give_a_result_or_parse_error(kind, steps, data, mirror_dir):
    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    body = (
        shared_page("en_list_news_page2.html")
        if kind == "listing"
        else (news / "feed.xml").read_bytes()
    )
    for _ in range(steps):
        body = mutate(body, data)
    try:
        if kind == "listing":
            parse_listing(body, f"{EN}page/2")
        else:
            parse_feed(body, f"{EN}feed")
    except ParseError as exc:
        assert exc.reason


# -- listing pages -----------------------------------------------------------------------------

LISTING = EN.removesuffix("/")


def listing(name: str, url: str):
    return parse_listing(shared_page(name), url)


def test_listing_page_2():
    page = listing("en_list_news_page2.html", f"{LISTING}/page/2")
    assert (page.page, page.pages, len(page.items)) == (2, 1198, 20)
    assert page.items[0].kremlin_id == 63911
    assert page.items[0].url == f"{EN}63911"
    assert page.items[0].published_at == "2020-08-19T09:00:00+03:00"


def test_listing_labels_are_inverted():
    """a.more-next ("Previous") is the OLDER page, a.more-prev ("Next") the NEWER one (§4)."""
    page = listing("en_list_news_page2.html", f"{LISTING}/page/2")
    assert (page.older_url, page.newer_url) == (f"{LISTING}/page/3", LISTING)


def test_last_listing_page_has_no_older_page():
    page = listing("en_list_news_page1198.html", f"{LISTING}/page/1198")
    assert (page.older_url, page.newer_url) == (None, f"{LISTING}/page/1197")
    assert len(page.items) == 17
    assert page.items[-1].published_at.startswith("1999-12-31")


def test_listing_item_place():
    items = listing("en_list_news_page1198.html", f"{LISTING}/page/1198").items
    assert items[0].place == "Chechen Republic"
    assert items[1].place is None


def test_by_date_page_is_a_normal_page():
    page = listing("en_list_news_bydate_18.03.2020.html", f"{LISTING}/by-date/18.03.2020")
    assert page.page == 22
    assert (page.older_url, page.newer_url) == (f"{LISTING}/page/23", f"{LISTING}/page/21")
    assert 63017 in {i.kremlin_id for i in page.items}


def test_listing_times_use_the_offset_of_their_day():
    items = listing("en_list_news_bydate_05.09.2005.html", f"{LISTING}/by-date/05.09.2005").items
    assert {i.published_at[-6:] for i in items} == {"+04:00"}


def test_listing_urls_stay_on_the_requested_host():
    page = listing(
        "en_list_news_page2.html", "http://www.en.kremlin.ru/events/president/news/page/2"
    )
    assert page.older_url == "http://www.en.kremlin.ru/events/president/news/page/3"


def test_russian_listing_item():
    # A real fragment of kremlin.ru/acts/news (2026): Russian date, a document, not an event.
    page = listing("ru_list_acts_news_fragment_2026-08-19.html", "http://kremlin.ru/acts/news")
    (item,) = page.items
    assert (item.kremlin_id, item.published_at) == (80518, "2026-08-12T16:30:00+03:00")
    assert item.title == "Указ о награждении государственными наградами"
    assert item.url == "http://kremlin.ru/acts/news/80518"


def test_first_listing_page_of_the_mirror(mirror_dir):
    body = (mirror_dir / "en.kremlin.ru" / "events" / "president" / "news.html").read_bytes()
    page = parse_listing(body, LISTING)
    assert (page.page, page.newer_url, page.older_url) == (1, None, f"{LISTING}/page/2")
    assert page.items[0].kremlin_id == 63953


@pytest.mark.parametrize(
    "body", [shared_page("en_news_63017.html"), b"<html><body><p>x</p></body></html>", b"\x00\xff"]
)
def test_not_a_listing(body):
    with pytest.raises(ParseError) as caught:
        parse_listing(body, LISTING)
    assert caught.value.reason == "not-listing"


# -- the Atom feed -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feed(mirror_dir):
    path = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news" / "feed.xml"
    return parse_feed(path.read_bytes(), f"{LISTING}/feed")


def test_feed_entries(feed):
    assert len(feed) == 20  # <entry> elements in the captured feed
    assert all(isinstance(e.kremlin_id, int) and e.url == f"{EN}{e.kremlin_id}" for e in feed)


def test_feed_first_entry(feed):
    entry = feed[0]
    assert (entry.kremlin_id, entry.title) == (
        63953,
        "Launching motor traffic on\xa0completed sections of\xa0Taurida motorway",
    )
    assert entry.summary.startswith("During his working trip to\xa0the\xa0Republic of\xa0Crimea")
    assert "<" not in entry.summary


def test_feed_timestamps_are_verbatim_and_the_page_is_authoritative(feed, mirror_dir):
    """The feed labels Moscow local time +04:00 in 2020 (§5); the page says +03:00."""
    entry = feed[0]
    assert (entry.published, entry.updated) == (
        "2020-08-27T15:20:00+04:00",
        "2020-08-27T20:09:44+04:00",
    )
    assert mirror_event(mirror_dir, 63953).published_at == "2020-08-27T15:20:00+03:00"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b"<feed xmlns='http://www.w3.org/2005/Atom'><entry>",
        b"<?xml version='1.0'?><rss version='2.0'><channel/></rss>",
        shared_page("en_news_63017.html"),
    ],
)
def test_not_a_feed(body):
    with pytest.raises(ParseError) as caught:
        parse_feed(body, f"{LISTING}/feed")
    assert caught.value.reason in ("not-feed", "empty")


def test_feed_entities_are_not_expanded():
    body = (
        b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>'
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&xxe;</title>'
        b'<link href="http://en.kremlin.ru/events/president/news/1"/>'
        b"<published>2020-01-01T00:00:00+04:00</published></entry></feed>"
    )
    try:
        entries = parse_feed(body, f"{LISTING}/feed")
    except ParseError as exc:
        assert exc.reason == "not-feed"
    else:
        assert entries[0].title in ("", "&xxe;")  # left unexpanded


# -- labels only bold marks, and a bold heading with a colon (parser 1.1) ------------------------


def turns_of(t: Transcript) -> list[tuple[str | None, str]]:
    return [(u.speaker, u.text.split("\n")[0]) for u in t.utterances]


def test_a_bold_name_without_a_colon_used_as_a_label_elsewhere_opens_a_turn():
    """en 57027 (the Megyn Kelly interview): three paragraphs open with <b>Megyn Kelly</b> and
    no colon -- one glued to its text ("Megyn KellyVladimir Putin could …")."""
    t = parsed("en_news_57027.html")
    kelly = [line for speaker, line in turns_of(t) if speaker == "Megyn Kelly"]
    assert "With this?" in kelly and "I\xa0do." in kelly
    assert any(line.startswith("Vladimir Putin could not order") for line in kelly)
    assert "Megyn KellyVladimir Putin could not order" in "\n".join(t.paragraphs)  # as printed


@pytest.mark.parametrize(
    ("kremlin_id", "speaker", "line"),
    [
        (56699, "Vladimir Putin", "Yes. Is there a\xa0task group"),  # <b>Vladimir Putin.</b> Yes.
        (60583, "Vladimir Putin", "But control is a\xa0must."),
        (56712, "Kseniya Slutskaya", "Good afternoon, Mr President."),  # <b>… Slutskaya. </b>Good
        (56952, "Sebastian Kurz", "Thank you very much for\xa0your question."),  # </b>. Thank
    ],
)
def test_a_bold_name_closed_by_a_full_stop_opens_a_turn(mirror_dir, kremlin_id, speaker, line):
    t = mirror_event(mirror_dir, kremlin_id)
    assert any(s == speaker and text.startswith(line) for s, text in turns_of(t))


def test_a_one_word_label_in_bold_opens_a_turn(mirror_dir):
    """en 51716: a schoolgirl, <b>Alina:</b> Good afternoon, Mr President."""
    t = mirror_event(mirror_dir, 51716)
    alina = [line for speaker, line in turns_of(t) if speaker == "Alina"]
    assert len(alina) == 2 and alina[0] == "Good afternoon, Mr President."
    assert alina[1].startswith("My\xa0name is Alina, and\xa0I\xa0am in\xa0first grade.")


def test_bold_words_going_on_in_lower_case_are_not_a_label(mirror_dir):
    """en 62366: <b>Remark </b><i>from the audience.</i> is a stage note, not a turn."""
    t = mirror_event(mirror_dir, 62366)
    assert "Remark" not in {u.speaker for u in t.utterances if u.text.startswith("from")}
    assert not any(u.speaker == "Remark" and u.text.startswith("from") for u in t.utterances)


def test_a_bold_heading_with_a_colon_is_not_a_speaker(mirror_dir):
    """en 58770: <p><b>Speech at the plenary session Physical Education and Sports: New
    Development Targets at the 7th International Forum …</b></p> is a heading."""
    t = mirror_event(mirror_dir, 58770)
    assert not any((u.speaker or "").startswith("Speech at") for u in t.utterances)
    assert any(line.startswith("Speech at\xa0the\xa0plenary session") for u in t.utterances
               for line in u.text.split("\n"))  # fmt: skip


HEADING = (
    "<p><b>Speeches at the opening of the Imperial Capitals: St Petersburg – Vienna. Masterpieces "
    "of Museum Collections exhibition</b></p>"
)


def test_the_imperial_capitals_heading_inserted_before_the_first_label_is_not_a_speaker():
    """The heading of a held-back 2017 page (issue 15), put into a real transcript page of the
    capture (en 55882) before its first label: the turns are those of the page, the heading
    one more line of the narration before them."""
    body = shared_page("en_news_55882.html")
    at = body.index(b"<p><b>Research Director of")
    with_heading = body[:at] + HEADING.encode() + body[at:]
    before = parse_event(body, f"{EN}55882")
    after = parse_event(with_heading, f"{EN}55882")
    assert [u.speaker for u in after.utterances] == [u.speaker for u in before.utterances]
    heading_text = HEADING.removeprefix("<p><b>").removesuffix("</b></p>")
    assert heading_text in after.paragraphs
    assert after.utterances[1].text.split("\n")[-1] == heading_text
    # the same words with their text after the colon in plain type would be a label
    plain = HEADING.replace(": St Petersburg", ":</b> St Petersburg").replace("</b></p>", "</p>")
    labelled = parse_event(body[:at] + plain.encode() + body[at:], f"{EN}55882")
    assert "Speeches at the opening of the Imperial Capitals" in {
        u.speaker for u in labelled.utterances
    }


@pytest.mark.parametrize(
    "url",
    [
        f"{EN}62366",
        f"{RU}66419",
        f"{EN}1",
        f"{RU}999999999",
        f"{EN}62366/",
        f"{EN}62366/print",
        f"{EN}0",
        f"{EN}0123",
        f"{EN}1234567890",
        f"{EN}١٢",
        f"{EN}²",
        "https://en.kremlin.ru/events/president/news/62366",
        "http://www.kremlin.ru/events/president/news/66419",
        " http://kremlin.ru/events/president/news/66419",
        "http://example.org/events/president/news/66419",
        "http://kremlin.ru/d/66419",
        "66419",
        "",
    ],
)
def test_the_canonical_url_shortcut_names_the_event_as_parse_event_url_does(url):
    """parse_event answers the canonical URL without urls.parse_event_url (a measurable share
    of a short page's parse); for every URL the answer, or the refusal, is the same."""
    from kremlin_archive import parsing, urls

    def named(resolve):
        try:
            return resolve(url)
        except ValueError as exc:
            return f"ValueError: {exc}"

    assert named(parsing._event_ref) == named(urls.parse_event_url)
