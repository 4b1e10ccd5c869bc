"""Absent values in the exports: `null` in jsonl (as the README says), an empty cell in csv,
an empty line in txt. Not `""` in jsonl: the database keeps an absent lead as an empty string
(the parser gives one), and jsonl once wrote it as such.

The archive holds two real pages of the 2020 capture of en.kremlin.ru, parsed and stored as a
crawl stores them: 62949 (Meeting with State Duma party faction leaders: no lead, twelve
speakers) and 62948 (Press statements following Russian-Turkish talks: a lead). Quick: no crawl.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from kremlin_archive import db as dbmod
from kremlin_archive import parsing
from kremlin_archive.items import Transcript
from kremlin_archive.jobs.export import export_events

NO_LEAD, WITH_LEAD = "en-62949", "en-62948"
FETCHED_AT = "2020-08-20T12:00:00Z"


def _stored(database, mirror_dir: Path, kremlin_id: int) -> Transcript:
    url = f"http://en.kremlin.ru/events/president/news/{kremlin_id}"
    page = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news" / f"{kremlin_id}.html"
    t = parsing.parse_event(page.read_bytes(), url)
    t.source_url, t.fetched_at = url, FETCHED_AT
    t.parser_version, t.origin = parsing.PARSER_VERSION, "crawl"
    dbmod.save_transcript(database, t, now=FETCHED_AT)
    return t


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mirror_dir) -> dict:
    home = tmp_path_factory.mktemp("export-absent")
    database = dbmod.open_db(home / "kremlin.db")
    parsed = {t.event_id: t for t in (_stored(database, mirror_dir, n) for n in (62949, 62948))}
    for fmt, out in (("jsonl", home / "out.jsonl"), ("csv", home / "csv"), ("txt", home / "txt")):
        export_events(database, fmt, out)
    with open(home / "out.jsonl", encoding="utf-8") as stream:
        jsonl = {r["id"]: r for r in map(json.loads, stream)}
    csv.field_size_limit(sys.maxsize)
    with open(home / "csv" / "events.csv", encoding="utf-8", newline="") as stream:
        rows = {r["id"]: r for r in csv.DictReader(stream)}
    stored_leads = dict(database.execute("SELECT id, lead FROM events").fetchall())
    database.close()
    return {"parsed": parsed, "jsonl": jsonl, "csv": rows, "home": home, "leads": stored_leads}


def _empty_strings(value, path: str = "") -> list[str]:
    """Where `value` (a jsonl record) holds "" as the value of a field."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _empty_strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for n, v in enumerate(value) for p in _empty_strings(v, f"{path}[{n}]")]
    return [path] if value == "" else []


def test_the_page_has_no_lead_and_the_database_keeps_an_empty_string(exported):
    assert exported["parsed"][NO_LEAD].lead == ""
    assert exported["leads"][NO_LEAD] == ""
    assert exported["parsed"][WITH_LEAD].lead


def test_jsonl_writes_an_absent_lead_as_null(exported):
    record = exported["jsonl"][NO_LEAD]
    assert "lead" in record and record["lead"] is None
    assert exported["jsonl"][WITH_LEAD]["lead"] == exported["parsed"][WITH_LEAD].lead


def test_jsonl_has_no_empty_string_anywhere(exported):
    for event_id, record in exported["jsonl"].items():
        assert _empty_strings(record) == [], event_id
    # Other absent values were null already: no place on one page, no fetch row at all.
    record = exported["jsonl"][NO_LEAD]
    assert record["announce_date"] is None and record["provenance"]["warc_filename"] is None


def test_jsonl_record_reads_back_as_the_stored_event(exported):
    """A reader rebuilding the event from jsonl takes null for an absent lead."""
    for event_id, record in exported["jsonl"].items():
        rebuilt = Transcript.from_dict({**record, "lead": record["lead"] or ""})
        assert dbmod.content_of(rebuilt) == dbmod.content_of(exported["parsed"][event_id])


def test_csv_and_txt_write_an_absent_lead_as_nothing(exported):
    assert exported["csv"][NO_LEAD]["lead"] == ""
    assert exported["csv"][WITH_LEAD]["lead"] == exported["parsed"][WITH_LEAD].lead
    lines = (exported["home"] / "txt" / f"{NO_LEAD}.txt").read_text(encoding="utf-8").split("\n")
    # empty, title, empty, empty, date, empty, place, empty, lead (empty), empty, body
    assert lines[6] == exported["parsed"][NO_LEAD].place and lines[7:10] == ["", "", ""]
