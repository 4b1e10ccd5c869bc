"""Reading the archive in Datasette (issue 16, items 8 and 9): the events table reads as an
index (date, language, title, place, turns, twin) with every other column a click away and the
column descriptions folded; search results mark the words found, lead to the exact turn, rank
readably, and show an event's date in the event's language; no description shows markup.

The archive and the Datasette instance are test_datasette.py's (the demo archive of
bench/screenshot.py: ru-66419 and en-55882 parsed from real pages); the browser side of the
same checks is in test_datasette_browser.py.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import lxml.html
import pytest
import test_datasette as base
from test_datasette import EN_ID, RU_ID, get, get_json

from kremlin_archive import db as dbmod
from kremlin_archive.datasette import serve

# test_datasette.py's archive and Datasette instance (module fixtures: one per module)
archive_path, ds = base.archive_path, base.ds

# What the issue asks the index to show, after the key: date, language, title, place, turns, twin.
INDEX = ["id", "published_at", "lang", "title", "place", "utterance_count", "twin_id"]
MONTHS = {
    "ru": "января февраля марта апреля мая июня июля августа сентября октября ноября декабря",
    "en": "January February March April May June July August September October November December",
}


def page(ds, path: str, **params):
    response = get(ds, path, params=params or None)
    assert response.status_code == 200, response.text[:500]
    return lxml.html.fromstring(response.text)


def header_columns(root) -> list[str]:
    return root.xpath("//table[contains(@class, 'rows-and-columns')]/thead//th/@data-column")


def events_columns() -> list[str]:
    return list(dbmod.TABLES["events"]["columns"])


def described_columns(table: str) -> dict[str, str]:
    return serve.load_metadata()["databases"]["kremlin"]["tables"][table]["columns"]


# -- 8. the events table reads like an index ----------------------------------------------------


def test_events_table_shows_the_index_columns_only(ds):
    root = page(ds, "/kremlin/events")
    assert header_columns(root) == INDEX
    rows = root.xpath("//table[contains(@class, 'rows-and-columns')]/tbody/tr")
    assert len(rows) == 2
    for row in rows:
        key = row.xpath("string(./td[contains(@class, 'col-id')])").strip()
        title = row.xpath("./td[contains(@class, 'col-title')]/a")
        assert [a.get("href") for a in title] == [f"/kremlin/events/{key}"]  # the transcript
    assert not root.xpath(
        "//td[contains(@class, 'col-text') or contains(@class, 'col-paragraphs')]"
    )


@pytest.mark.parametrize("sort", ["_sort", "_sort_desc"])
def test_the_index_sorted_by_a_column_it_does_not_show_shows_it(ds, sort):
    """(Datasette 0.65 answered `?_sort=year` with a 500 when `year` was not among the
    columns asked for.)"""
    for column in ("year", "kremlin_id"):
        response = get(ds, f"/kremlin/events?{sort}={column}")
        assert response.status_code == 200, response.text[:300]
        root = lxml.html.fromstring(response.text)
        assert header_columns(root) == [*INDEX, column]
        data = get_json(ds, f"/kremlin/events.json?{sort}={column}&_shape=objects")
        values = [row[column] for row in data["rows"]]
        assert values == sorted(values, reverse=sort == "_sort_desc") and len(values) == 2
    assert header_columns(page(ds, "/kremlin/events", _sort="title")) == INDEX


def test_every_column_is_a_click_away(ds):
    index = page(ds, "/kremlin/events")
    (link,) = index.xpath("//p[@class='column-choice']/a[@class='all-columns']")
    assert link.text_content() == f"Show all {len(described_columns('events'))} columns"
    everything = page(ds, link.get("href"))
    assert header_columns(everything) == events_columns()
    (back,) = everything.xpath("//p[@class='column-choice']/a[@class='index-columns']")
    assert header_columns(page(ds, back.get("href"))) == INDEX


def test_a_readers_own_choice_of_columns_is_kept(ds):
    chosen = page(ds, "/kremlin/events", _col="text")
    assert header_columns(chosen) == ["id", "text"]
    hidden = page(ds, "/kremlin/events", _nocol="paragraphs")
    assert header_columns(hidden) == [c for c in events_columns() if c != "paragraphs"]


def test_json_and_csv_keep_every_column(ds):
    data = get_json(ds, "/kremlin/events.json")
    assert data["columns"] == events_columns()
    csv_header = get(ds, "/kremlin/events.csv").text.splitlines()[0]
    assert csv_header.split(",") == events_columns()


def test_index_keeps_facets_sort_and_search(ds):
    root = page(ds, "/kremlin/events")
    facets = root.xpath("//div[contains(@class, 'facet-info')]/@data-column")
    assert set(facets) == {"lang", "year", "place", "sections"}
    assert "sorted by published_at descending" in root.xpath("string(//h3)")
    found = page(ds, "/kremlin/events", _search="Токаев")
    assert header_columns(found) == INDEX
    assert found.xpath("string(//td[contains(@class, 'col-id')])").strip() == RU_ID


def test_column_descriptions_are_folded_but_in_each_column_menu(ds):
    root = page(ds, "/kremlin/events")
    described = described_columns("events")
    # Datasette's list of every column before the rows is hidden ...
    assert not root.xpath("//dl[@class='column-descriptions'][not(@hidden)]")
    # ... and the descriptions are one click away: a closed <details>, and the column's menu
    (notes,) = root.xpath("//details[@class='column-notes']")
    assert notes.get("open") is None
    assert notes.xpath("string(./summary)") == f"What the {len(described)} columns hold"
    listed = dict(zip(notes.xpath(".//dt/text()"), notes.xpath(".//dd/text()"), strict=True))
    assert listed == described
    # (Datasette gives the key's column, the row link, no menu description.)
    for th in root.xpath("//thead//th[@data-is-pk='0']"):
        assert th.get("data-column-description") == described[th.get("data-column")]


def test_facet_values_wrap_between_words(ds):
    """Datasette's stylesheet breaks facet values anywhere (`word-break: break-all` on
    ul.tight-bullets li): the archive's own rule comes after it and wraps between words."""
    html = get(ds, "/kremlin/events").text
    rule = re.search(r"\.facet-info ul\.tight-bullets li \{([^}]*)\}", html)
    assert rule and "word-break: normal" in rule.group(1)
    assert html.index(rule.group(0)) > html.index("app.css")


def test_other_tables_fold_their_descriptions_too(ds):
    root = page(ds, "/kremlin/fetches")
    (notes,) = root.xpath("//details[@class='column-notes']")
    assert len(notes.xpath(".//dt")) == len(described_columns("fetches"))
    assert not root.xpath("//dl[@class='column-descriptions'][not(@hidden)]")


# -- 9. search results ---------------------------------------------------------------------------


def result_rows(root) -> list[dict[str, lxml.html.HtmlElement]]:
    table = root.xpath("//table[contains(@class, 'rows-and-columns')]")[0]
    names = [th.text_content().strip() for th in table.xpath("./thead//th")]
    return [dict(zip(names, tr.xpath("./td"), strict=True)) for tr in table.xpath("./tbody/tr")]


@pytest.mark.parametrize("words", ["Токаев", "Putin", "Valdai"])
def test_search_excerpts_mark_the_words_found(ds, words):
    root = page(ds, "/kremlin/search_everything", q=words, lang="")
    rows = result_rows(root)
    assert rows
    for row in rows:
        excerpt = row["excerpt"]
        assert "**" not in excerpt.text_content()
        for mark in excerpt.xpath(".//mark"):
            assert mark.text_content().lower().startswith(words.lower())
    assert any(row["excerpt"].xpath(".//mark") for row in rows)


def test_each_hit_leads_to_the_turn_it_was_found_in(ds):
    """The excerpt and the title of a hit link to the transcript at its turn (`#u<seq>`); an
    event's own hit at the first turn with the words; the turn there holds them."""
    hits = get_json(ds, "/kremlin/search_everything.json?_shape=array&q=Токаев&lang=")
    rows = result_rows(page(ds, "/kremlin/search_everything", q="Токаев", lang=""))
    assert len(rows) == len(hits) and {h["hit"] for h in hits} == {"event", "turn"}
    transcripts: dict[str, lxml.html.HtmlElement] = {}
    for hit, row in zip(hits, rows, strict=True):
        expected = f"/kremlin/events/{hit['event_id']}"
        if hit["seq"] is not None:
            expected += f"#u{hit['seq']}"
        assert row["excerpt"].xpath("./a[@class='hit']/@href") == [expected]
        assert row["title"].xpath("./a/@href") == [expected]
        if hit["seq"] is None:
            continue
        key = hit["event_id"]
        transcripts.setdefault(key, page(ds, f"/kremlin/events/{key}"))
        (turn,) = transcripts[key].xpath(f"//div[@id='u{hit['seq']}']")
        assert "токаев" in turn.text_content().lower()


def test_search_ranks_readably(ds):
    hits = get_json(ds, "/kremlin/search_everything.json?_shape=objects&q=Путин&lang=")
    assert "score" not in hits["columns"]
    ranks = [row["rank"] for row in hits["rows"]]
    assert ranks == list(range(1, len(ranks) + 1))
    root = page(ds, "/kremlin/search_everything", q="Путин", lang="")
    cells = [row["rank"].text_content().strip() for row in result_rows(root)]
    assert cells == [str(r) for r in ranks]
    assert not re.search(r"-\d+\.\d+", root.xpath("string(//table)"))  # no raw bm25


def test_search_finds_what_it_found_before(ds):
    """The ranking and excerpts are now made for the shown hits only; the hits themselves are
    those of every matching event and turn."""
    hits = get_json(ds, "/kremlin/search_everything.json?_shape=array&q=Путин&lang=")
    turns = get_json(ds, "/kremlin/utterances.json?_shape=array&_size=max&_search=Путин")
    events = get_json(ds, "/kremlin/events.json?_shape=array&_search=Путин")
    assert {(h["event_id"], h["seq"]) for h in hits if h["hit"] == "turn"} == {
        (t["event_id"], t["seq"]) for t in turns
    }
    assert {h["event_id"] for h in hits if h["hit"] == "event"} == {e["id"] for e in events}


def test_speaker_said_marks_the_words_too(ds):
    root = page(ds, "/kremlin/speaker_said", speaker="Токаев", words="Афганистан")
    rows = result_rows(root)
    assert rows
    for row in rows:
        assert [m.text_content() for m in row["excerpt"].xpath(".//mark")]
        assert "**" not in row["excerpt"].text_content()
        assert (
            row["excerpt"]
            .xpath("./a[@class='hit']/@href")[0]
            .startswith(f"/kremlin/events/{RU_ID}#u")
        )


def expected_date(value: str, lang: str) -> str:
    moment = dt.datetime.fromisoformat(value)
    return f"{moment.day} {MONTHS[lang].split()[moment.month - 1]} {moment.year}, {moment:%H:%M}"


@pytest.mark.parametrize(
    ("words", "key", "lang"), [("Токаев", RU_ID, "ru"), ("Valdai", EN_ID, "en")]
)
def test_search_shows_dates_in_the_records_language(ds, words, key, lang):
    hits = get_json(ds, f"/kremlin/search_everything.json?_shape=array&q={words}&lang=")
    root = page(ds, "/kremlin/search_everything", q=words, lang="")
    for hit, row in zip(hits, result_rows(root), strict=True):
        assert hit["event_id"] == key
        (time,) = row["published_at"].xpath("./time")
        assert time.get("datetime") == hit["published_at"]
        assert time.get("lang") == lang
        assert time.text_content() == expected_date(hit["published_at"], lang)


def test_events_index_shows_dates_in_the_records_language(ds):
    rows = get_json(ds, "/kremlin/events.json?_shape=array")
    root = page(ds, "/kremlin/events")
    cells = root.xpath("//td[contains(@class, 'col-published_at')]/time")
    assert [(c.get("lang"), c.text_content()) for c in cells] == [
        (r["lang"], expected_date(r["published_at"], r["lang"])) for r in rows
    ]


def test_no_description_shows_markdown(ds):
    """Datasette prints descriptions as text: backticks would show as they are."""
    metadata = serve.load_metadata()
    database = metadata["databases"]["kremlin"]
    texts = [metadata.get("description_html", ""), database.get("description", "")]
    for spec in [*database["tables"].values(), *database["queries"].values()]:
        texts += [spec.get("description", ""), spec.get("title", "")]
        texts += list(spec.get("columns", {}).values())
    assert not [t for t in texts if "`" in t]
    for name in database["queries"]:
        root = page(ds, f"/kremlin/{name}")
        assert "`" not in root.xpath("string(//div[@class='metadata-description'])"), name


def test_query_pages_are_titled_by_their_title_not_their_sql(ds):
    root = page(ds, "/kremlin/search_everything")
    assert root.xpath("string(//title)") == "Search everything · Kremlin archive"


def test_hits_link_only_inside_the_archive(ds):
    root = page(ds, "/kremlin/search_everything", q="Putin", lang="")
    for href in root.xpath("//table//a/@href"):
        assert not urlsplit(href).netloc and href.startswith("/kremlin/")
