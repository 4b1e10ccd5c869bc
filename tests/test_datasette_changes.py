"""What changed, readable (issue 16, item 10): a page per revision with the difference
paragraph by paragraph (old and new, both fetch times, both WARC records), the list of recent
changes, and an Atom feed of new, edited and removed events.

The archive is test_datasette.py's demo archive (ru-66419, whose first capture lacked its last
turn — made from the same page bytes, so to the archive a re-read, `reparsed` — and en-55882)
after two more visits of the site: en-55882 came back corrected (the real
page with a number changed in one paragraph and another paragraph dropped) and ru-66419
answered 404 — recorded as a crawl records them (`items.fetch_record`, `db.save_transcript`,
`db.note_coverage` with the pipeline's `coverage_state`). The end-to-end test at the bottom
has a crawl through the replay server produce an edit and a removal itself.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import pytest
import test_datasette as base
from conftest import cli_run
from test_datasette import EN_ID, EN_URL, RU_ID, RU_URL, demo, get, get_json

from kremlin_archive import db as dbmod
from kremlin_archive import identity
from kremlin_archive.datasette import diff, serve
from kremlin_archive.items import coverage_state, fetch_record, http_failure_reason
from kremlin_archive.parsing import parse_event
from kremlin_archive.warc.records import WarcLocation

hostile_ds = base.hostile_ds  # test_datasette.py's archive whose page text carries markup

ATOM = "{http://www.w3.org/2005/Atom}"
EDITED_AT = "2026-11-21T09:00:00Z"
REMOVED_AT = "2026-11-22T08:00:00Z"
RECHECKED_AT = "2026-11-23T08:00:00Z"
CORRECTION = (b"over 130 participants", b"over 140 participants (corrected)")
DROPPED = b"As\xc2\xa0always, we had three exciting"  # the start of a paragraph the edit drops


def corrected_page(body: bytes) -> bytes:
    """en-55882 as the press office might correct it: one number changed (with a note) in one
    paragraph of the body, one later paragraph dropped."""
    assert body.count(CORRECTION[0]) == 1
    body = body.replace(*CORRECTION)
    start = body.index(b"<p>" + DROPPED)
    return body[:start] + body[body.index(b"</p>", start) + len(b"</p>") :]


def record_answer(db, event_id: str, url: str, status: int, at: str, offset: int) -> int:
    """A fetch of a stored event that the site answered with `status` and no page, recorded as
    the crawl records it: the fetch row (with its WARC record) and the coverage ledger."""
    body = b"<html><body>Not Found</body></html>"
    location = WarcLocation(
        filename=f"kremlin-20261122080000-{demo.RUN_ID}-00002.warc.gz",
        offset=offset,
        length=812,
        record_id="<urn:uuid:5f1c3a52-1b7e-4d6e-9a0c-2d8f9e4b7a61>",
        payload_digest="sha256:AAAA",
        record_type="response",
        payload_sha256="",
    )
    row = fetch_record(
        run_id=demo.RUN_ID, spider="urls", kind="event", event_id=event_id, requested_url=url,
        url=url, fetched_at=at, status=status, payload=body, warc=location,
    )  # fmt: skip
    fetch_id = dbmod.record_fetch(db, row)
    reason = http_failure_reason(status)
    dbmod.note_coverage(
        db, event_id, coverage_state("fetch", status, reason), at=at, fetch_id=fetch_id,
        run_id=demo.RUN_ID, answer=reason,
    )  # fmt: skip
    return fetch_id


def build_changed_archive(path: Path) -> None:
    """The demo archive, then en-55882 corrected and ru-66419 answering 404."""
    demo.build_demo_archive(path)
    db = dbmod.open_db(path)
    body = corrected_page(demo.EN_PAGE.read_bytes())
    result = demo.store_page(db, body, EN_URL, fetched_at=EDITED_AT, offset=262_144)
    assert result.outcome == "changed"
    record_answer(db, RU_ID, RU_URL, 404, REMOVED_AT, 300_000)
    db.close()


@pytest.fixture(scope="module")
def changed_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("changed") / "kremlin.db"
    build_changed_archive(path)
    return path


@pytest.fixture(scope="module")
def changed(changed_path):
    return serve.build_datasette(changed_path)


def rows(path: Path, sql: str, params=()) -> list[dict]:
    return list(dbmod.connect(path, readonly=True).query(sql, params))


def revision_of(path: Path, event_id: str) -> dict:
    (revision,) = rows(path, "SELECT * FROM revisions WHERE event_id = ?", [event_id])
    return revision


def html(ds, path: str, **params):
    response = get(ds, path, params=params or None)
    assert response.status_code == 200, response.text[:500]
    return lxml.html.fromstring(response.text)


# -- the revision page ----------------------------------------------------------------------------


def test_revision_page_shows_the_edit_paragraph_by_paragraph(changed, changed_path):
    """Old and new side by side: the corrected paragraph with the words removed and added
    marked, the dropped paragraph on the old side only, the rest folded or as context."""
    old = parse_event(demo.EN_PAGE.read_bytes(), EN_URL).paragraphs
    new = parse_event(corrected_page(demo.EN_PAGE.read_bytes()), EN_URL).paragraphs
    revision = revision_of(changed_path, EN_ID)
    assert json.loads(revision["content"])["paragraphs"] == old
    page = html(changed, f"/kremlin/revisions/{revision['id']}")
    (table,) = page.xpath("//table[@class='diff']")

    (edited,) = table.xpath(".//tr[@class='edited']")
    at = next(i for i, p in enumerate(old) if "over 130" in p)
    assert edited.xpath("string(./td[1])") == str(at + 1)
    assert edited.xpath("string(./td[2])") == old[at]
    assert edited.xpath("string(./td[4])") == new[at]
    assert edited.xpath("./td[2]//del/text()") == ["130"]
    assert "".join(edited.xpath("./td[4]//ins/text()")).split() == ["140", "(corrected)"]

    (removed,) = table.xpath(".//tr[@class='removed']")
    dropped = [p for p in old if p not in new and p != old[at]]
    assert [removed.xpath("string(./td[2])")] == dropped
    assert removed.xpath("string(./td[1])") == str(old.index(dropped[0]) + 1)
    assert not table.xpath(".//tr[@class='added']")

    folded = sum(int(r.xpath("string(.)").split()[0]) for r in table.xpath(".//tr[@class='skip']"))
    context = table.xpath(".//tr[@class='same']")
    assert folded + len(context) + 2 == len(old)  # every old paragraph accounted for once
    summary = page.xpath("string(//p[@class='summary'])")
    assert "1 edited, 1 removed, 0 added" in summary


def test_revision_page_names_both_fetches_and_their_warc_records(changed, changed_path):
    revision = revision_of(changed_path, EN_ID)
    old_fetch, new_fetch = (
        rows(changed_path, "SELECT * FROM fetches WHERE id = ?", [fetch_id])[0]
        for fetch_id in (revision["fetch_id"], revision["superseded_by_fetch_id"])
    )
    assert new_fetch["fetched_at"] == EDITED_AT
    page = html(changed, f"/kremlin/revisions/{revision['id']}")
    for css, fetch in (("old", old_fetch), ("new", new_fetch)):
        (box,) = page.xpath(f"//section[@class='version {css}']")
        assert box.xpath("string(.//time[@class='fetched']/@datetime)") == fetch["fetched_at"]
        assert box.xpath(".//a[@class='fetch']/@href") == [f"/kremlin/fetches/{fetch['id']}"]
        warc = box.xpath("string(.//dd[@class='warc'])")
        assert fetch["warc_filename"] in warc and f"offset {fetch['warc_offset']}" in warc
        assert fetch["warc_record_id"] in warc
    # the fetch pages these link to are where the archive shows a WARC record
    fetch_page = html(changed, f"/kremlin/fetches/{old_fetch['id']}")
    assert old_fetch["warc_record_id"] in fetch_page.text_content()


def test_revision_page_of_a_turn_added_later(changed, changed_path):
    """ru-66419: its first capture lacked the last turn; the revision shows those paragraphs as
    added, in the page's language, and says the current version replaced it."""
    revision = revision_of(changed_path, RU_ID)
    old = json.loads(revision["content"])["paragraphs"]
    current = json.loads(
        rows(changed_path, "SELECT paragraphs FROM events WHERE id = ?", [RU_ID])[0]["paragraphs"]
    )
    page = html(changed, f"/kremlin/revisions/{revision['id']}")
    added = [r.xpath("string(./td[4])") for r in page.xpath("//tr[@class='added']")]
    assert added == current[len(old) :] and added
    assert page.xpath("string(//table[@class='diff']/@lang)") == "ru"
    assert page.xpath("string(//section[@class='version new']/h3)") == "After: The current version"
    assert page.xpath("//nav[@class='nav-revisions']/a[1]/@href") == [f"/kremlin/events/{RU_ID}"]


def test_transcript_page_links_each_revision_to_its_page(changed, changed_path):
    revision = revision_of(changed_path, EN_ID)
    page = html(changed, f"/kremlin/events/{EN_ID}")
    links = page.xpath("//ul[@class='revisions']/li/a/@href")
    assert set(links) == {f"/kremlin/revisions/{revision['id']}"}


def test_an_unknown_revision_is_a_404(changed):
    assert get(changed, "/kremlin/revisions/999").status_code == 404


# -- recent changes -------------------------------------------------------------------------------


def test_recent_changes_lists_new_edited_and_removed_events(changed, changed_path):
    found = get_json(changed, "/kremlin/recent_changes.json?_shape=array")
    assert [(r["change"], r["event_id"]) for r in found] == [
        ("removed", RU_ID),  # 2026-11-22
        ("edited", EN_ID),  # 2026-11-21: other bytes from the site
        ("new", EN_ID),  # 2026-11-20T10:00:09Z
        ("reparsed", RU_ID),  # 2026-11-20T10:00:05Z: the same bytes read into more turns
        ("new", RU_ID),  # 2026-11-19
    ]
    assert [r["at"] for r in found] == sorted((r["at"] for r in found), reverse=True)
    removed = found[0]
    assert (removed["at"], removed["answer"]) == (REMOVED_AT, "HTTP 404")
    edit = found[1]
    assert edit["revision_id"] == revision_of(changed_path, EN_ID)["id"]
    assert json.loads(edit["changed_fields"]) == ["paragraphs", "utterances"]


def test_recent_changes_page_links_revisions_events_and_the_feed(changed, changed_path):
    page = html(changed, "/kremlin/recent_changes")
    revision = revision_of(changed_path, EN_ID)
    assert f"/kremlin/revisions/{revision['id']}" in page.xpath(
        "//td[@class='col-revision_id']/a/@href"
    )
    assert page.xpath("//td[@class='col-event_id']/a/@href")[0] == f"/kremlin/events/{RU_ID}"
    fields = {t.strip() for t in page.xpath("//td[@class='col-changed_fields']/text()")}
    assert fields - {""} == {"paragraphs, utterances"}  # JSON lists read as words
    assert page.xpath("//link[@type='application/atom+xml']/@href") == ["/kremlin/-/changes.atom"]
    assert "/kremlin/-/changes.atom" in page.xpath("//p[@class='feed-link']/a/@href")


def test_recent_changes_filters_by_language_and_change(changed):
    only = get_json(changed, "/kremlin/recent_changes.json?_shape=array&lang=en&change=")
    assert {r["event_id"] for r in only} == {EN_ID}
    edits = get_json(changed, "/kremlin/recent_changes.json?_shape=array&lang=&change=edited")
    assert [(r["change"], r["event_id"]) for r in edits] == [("edited", EN_ID)]


def test_a_page_the_site_gives_again_is_no_longer_removed(tmp_path):
    path = tmp_path / "kremlin.db"
    build_changed_archive(path)
    db = dbmod.open_db(path)
    result = demo.store_page(
        db, demo.RU_PAGE.read_bytes(), RU_URL, fetched_at=RECHECKED_AT, offset=400_000
    )
    assert result.outcome == "unchanged"  # a fetch row only
    db.close()
    changes = get_json(serve.build_datasette(path), "/kremlin/recent_changes.json?_shape=array")
    assert "removed" not in {r["change"] for r in changes}


def test_the_sites_404_page_counts_as_removed(tmp_path):
    """A 200 carrying the site's 404 page (the parser's `not-found-page`) is a removal too;
    a second 404 after it does not make a second one."""
    path = tmp_path / "kremlin.db"
    demo.build_demo_archive(path)
    db = dbmod.open_db(path)
    fetch_id = record_answer(db, EN_ID, EN_URL, 200, REMOVED_AT, 500_000)
    dbmod.record_error(
        db, run_id=demo.RUN_ID, url=EN_URL, stage="parse", fetch_id=fetch_id,
        reason="not-found-page: the site's 404 page (Ошибка 404 / PAGE NOT FOUND)",
    )  # fmt: skip
    record_answer(db, EN_ID, EN_URL, 404, RECHECKED_AT, 510_000)
    db.close()
    changes = get_json(serve.build_datasette(path), "/kremlin/recent_changes.json?_shape=array")
    removed = [r for r in changes if r["change"] == "removed"]
    assert [(r["event_id"], r["at"], r["answer"]) for r in removed] == [
        (EN_ID, REMOVED_AT, "the site's 404 page")
    ]


# -- the Atom feed --------------------------------------------------------------------------------


def feed_of(ds, query: str = "") -> ET.Element:
    response = get(ds, f"/kremlin/-/changes.atom{query}")
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("application/atom+xml")
    return ET.fromstring(response.content)


def entries(feed: ET.Element) -> list[dict]:
    return [
        {
            "id": e.findtext(f"{ATOM}id"),
            "title": e.findtext(f"{ATOM}title"),
            "updated": e.findtext(f"{ATOM}updated"),
            "link": e.find(f"{ATOM}link").get("href"),
            "category": e.find(f"{ATOM}category").get("term"),
            "content": e.findtext(f"{ATOM}content"),
            "content_type": e.find(f"{ATOM}content").get("type"),
        }
        for e in feed.findall(f"{ATOM}entry")
    ]


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")


def test_feed_has_new_edited_and_removed_events_newest_first(changed):
    feed = feed_of(changed)
    assert feed.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author/" + ATOM + "name", "rights"):
        assert feed.findtext(ATOM + name), name
    assert RFC3339.match(feed.findtext(f"{ATOM}updated"))
    self_link = [
        link.get("href") for link in feed.findall(f"{ATOM}link") if link.get("rel") == "self"
    ]
    assert self_link == ["http://localhost/kremlin/-/changes.atom"]
    found = entries(feed)
    recent = get_json(changed, "/kremlin/recent_changes.json?_shape=array")
    assert [(e["category"], e["updated"]) for e in found] == [
        (r["change"], r["at"]) for r in recent if r["change"] != "reparsed"
    ]
    assert len({e["id"] for e in found}) == len(found)
    for entry in found:
        assert RFC3339.match(entry["updated"])
        assert entry["content_type"] == "html"
        link = urlsplit(entry["link"])
        assert (link.scheme, link.netloc) == ("http", "localhost")  # absolute
        assert get(changed, link.path).status_code == 200  # and it leads somewhere


def test_feed_entry_of_an_edit_quotes_what_changed(changed, changed_path):
    link = f"http://localhost/kremlin/revisions/{revision_of(changed_path, EN_ID)['id']}"
    (edit,) = [e for e in entries(feed_of(changed)) if e["link"] == link]
    assert edit["category"] == "edited" and edit["updated"] == EDITED_AT
    content = lxml.html.fromstring(f"<div>{edit['content']}</div>")
    removed, added = content.xpath("//del/text()"), content.xpath("//ins/text()")
    assert "130" in removed and "140" in added
    assert any(t.startswith(DROPPED.decode()) for t in removed)  # the dropped paragraph
    assert content.xpath("//a/@href")[-1] == link


def test_feed_entry_of_a_removal_says_what_the_site_answered(changed):
    (gone,) = [e for e in entries(feed_of(changed)) if e["category"] == "removed"]
    assert gone["updated"] == REMOVED_AT
    assert gone["link"] == f"http://localhost/kremlin/events/{RU_ID}"
    assert "HTTP 404" in gone["content"] and gone["title"].startswith("Removed from the site: ")


@pytest.mark.parametrize(
    ("feed_query", "changes_query"),
    [("?lang=en", "lang=en&change="), ("?change=removed", "lang=&change=removed")],
)
def test_feed_can_be_narrowed(changed, feed_query, changes_query):
    found = entries(feed_of(changed, feed_query))
    recent = get_json(changed, f"/kremlin/recent_changes.json?_shape=array&{changes_query}")
    assert found and [(e["category"], e["updated"]) for e in found] == [
        (r["change"], r["at"]) for r in recent
    ]


def test_feed_leaves_out_re_parses_unless_asked(changed, changed_path):
    """A revision whose old and new content came from the same bytes is the archive's change
    (a parser), not the site's: a subscriber gets it only with ?change=reparsed."""
    assert "reparsed" not in {e["category"] for e in entries(feed_of(changed))}
    (entry,) = entries(feed_of(changed, "?change=reparsed"))
    revision = revision_of(changed_path, RU_ID)
    assert entry["link"] == f"http://localhost/kremlin/revisions/{revision['id']}"
    assert entry["title"].startswith("Read again by a newer parser")


def test_a_refetch_of_the_same_bytes_that_reads_otherwise_is_reparsed(tmp_path):
    """The re-parse of a stored fetch (same fetch) is `reparsed`; other bytes are `edited`."""
    path = tmp_path / "kremlin.db"
    demo.build_demo_archive(path)
    db = dbmod.open_db(path)
    (event,) = db.query("SELECT fetch_id FROM events WHERE id = ?", [EN_ID])
    again = parse_event(demo.EN_PAGE.read_bytes(), EN_URL)
    again.place = "Sochi, Krasnodar Territory"  # as a newer parser might read it
    again.fetch_id, again.origin, again.parser_version = event["fetch_id"], "reparse", "9.9"
    assert dbmod.save_transcript(db, again).outcome == "changed"
    db.close()
    changes = get_json(serve.build_datasette(path), "/kremlin/recent_changes.json?_shape=array")
    assert [r["change"] for r in changes if r["event_id"] == EN_ID] == ["reparsed", "new"]


def test_feed_refuses_unknown_filters(changed):
    assert get(changed, "/kremlin/-/changes.atom?lang=de").status_code == 400
    assert get(changed, "/kremlin/-/changes.atom?change=all").status_code == 400


def test_feed_of_an_empty_archive_is_a_valid_empty_feed(tmp_path):
    path = tmp_path / "kremlin.db"
    dbmod.open_db(path).close()
    feed = feed_of(serve.build_datasette(path))
    assert feed.findall(f"{ATOM}entry") == [] and RFC3339.match(feed.findtext(f"{ATOM}updated"))


def test_feed_escapes_the_sites_text(hostile_ds):
    """A title and lead with markup stay text: in the XML (escaped by ElementTree) and in the
    HTML of an entry's content (escaped before it goes in)."""
    (entry,) = entries(feed_of(hostile_ds))
    assert base.SCRIPT in entry["title"]  # an Atom title is text: shown, never run
    assert base.SCRIPT not in entry["content"] and base.ESCAPED_SCRIPT in entry["content"]


def test_feed_is_linked_from_the_archive(changed):
    assert "/kremlin/-/changes.atom" in get(changed, "/").text
    assert 'href="/kremlin/recent_changes"' in get(changed, "/").text


# -- the difference itself (diff.py, pure) --------------------------------------------------------


def test_paragraphs_of_an_unchanged_text_fold_away():
    assert diff.paragraphs(["a", "b", "c"], ["a", "b", "c"]) == [{"kind": "skip", "count": 3}]


def test_a_paragraph_inserted_between_two_is_added_not_edited():
    items = diff.paragraphs(["one two", "three four"], ["one two", "new words here", "three four"])
    assert [i["kind"] for i in items] == ["same", "added", "same"]
    assert items[1] == {"kind": "added", "new_no": 2, "text": "new words here"}


def test_an_edit_marks_the_words_removed_and_added():
    old, new = diff.inline("over 130 participants.", "over 140 participants (corrected).")
    assert "".join(t for _, t in old) == "over 130 participants."
    assert "".join(t for _, t in new) == "over 140 participants (corrected)."
    assert [t for k, t in old if k == "del"] == ["130"]
    assert [t for k, t in new if k == "ins"] == ["140", " (corrected)"]


def test_fields_other_than_the_body():
    old = {"title": "Old", "place": None, "tags": [{"kind": "topic", "name": "A"}], "sections": []}
    new = {
        "title": "New",
        "place": "Sochi",
        "tags": [{"kind": "topic", "name": "B"}],
        "sections": [],
    }
    assert diff.fields(old, new) == [
        {"field": "title", "old": "Old", "new": "New"},
        {"field": "place", "old": None, "new": "Sochi"},
        {"field": "tags", "removed": ["topic: A"], "added": ["topic: B"]},
    ]


# -- end to end: a crawl makes the edit and the removal -------------------------------------------

NEWS = "http://en.kremlin.ru/events/president/news"


@pytest.mark.slow
def test_a_crawl_that_sees_an_edit_and_a_removal(replay, mirror_dir, tmp_path):
    """`kremlin-archive fetch` of two pages through the replay server; the site then corrects
    one and removes the other; the same fetch again. Datasette shows the edit on its revision
    page with both WARC records (files the crawl wrote), and the feed has the edit and the
    removal."""
    edited_id, removed_id = 63940, 63893
    urls = [f"{NEWS}/{edited_id}", f"{NEWS}/{removed_id}"]
    first = cli_run(replay, tmp_path, "fetch", *urls)
    assert first.result.returncode == 0, first.result.stderr[-3000:]
    page = (mirror_dir / "en.kremlin.ru/events/president/news" / f"{edited_id}.html").read_bytes()
    start = page.index(b"read__internal_content")
    end = page.index(b"</p>", start)
    replay.put(urls[0], page[:end] + b" (Corrected.)" + page[end:])
    replay.remove(urls[1])
    second = cli_run(replay, tmp_path, "fetch", *urls)
    # (whether a fetch that meets a 404 ends finished or incomplete is the fetch command's
    # business: either way the site's answer is on record)
    assert second.result.returncode in (0, 1), second.result.stderr[-3000:]
    answers = second.rows(
        "SELECT status FROM fetches WHERE event_id = ? ORDER BY id", [f"en-{removed_id}"]
    )
    assert [a["status"] for a in answers] == [200, 404]

    ds = serve.build_datasette(second.db_path)
    changes = get_json(ds, "/kremlin/recent_changes.json?_shape=array")
    assert {(r["change"], r["event_id"]) for r in changes} == {
        ("new", f"en-{edited_id}"), ("new", f"en-{removed_id}"),
        ("edited", f"en-{edited_id}"), ("removed", f"en-{removed_id}"),
    }  # fmt: skip
    (edit,) = [r for r in changes if r["change"] == "edited"]
    revision = html(ds, f"/kremlin/revisions/{edit['revision_id']}")
    (row,) = revision.xpath("//tr[@class='edited']")
    assert "(Corrected.)" in "".join(row.xpath("./td[4]//ins/text()"))
    for box in revision.xpath("//section[contains(@class, 'version')]"):
        filename = box.xpath("string(.//dd[@class='warc']/code[1])")
        assert (second.warc / filename).is_file(), filename
    feed = entries(feed_of(ds))
    assert {e["category"] for e in feed} == {"new", "edited", "removed"}


def test_feed_entry_ids_are_the_archives_not_the_address_it_is_served_at(changed_path, tmp_path):
    """Served under another host name or through a proxy, the same change keeps its id (a feed
    reader would show every entry again otherwise): ids are tag URIs under the archive's
    identity, and one change has one id."""
    path = tmp_path / "kremlin.db"
    shutil.copy(changed_path, path)
    archive_id = identity.bind(str(path), str(tmp_path / "warc"))
    found = entries(feed_of(serve.build_datasette(path)))
    assert found
    prefix = f"tag:kremlin-archive,2026:{archive_id}/"
    assert all(e["id"].startswith(prefix) and "localhost" not in e["id"] for e in found)
    assert len({e["id"] for e in found}) == len(found)
    by_change = {e["category"]: e["id"].removeprefix(prefix) for e in found}
    assert by_change["removed"].startswith(f"{RU_ID}/removed/")
    assert by_change["edited"].startswith("revision/")
