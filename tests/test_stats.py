"""`kremlin-archive stats`: what the archive holds, for people (a table) and scripts (--json).

The archive: real en pages of ../shared/kremlin-html stored by a 'crawl' run with a few
errors, then the real legacy record imported with one malformed file (the last run); the
expected numbers are counted independently from the stored transcripts.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest
from click.testing import CliRunner
from conftest import SEED_DIR, load_transcript, shared_page

from kremlin_archive import db as dbmod
from kremlin_archive.cli import main
from kremlin_archive.items import Utterance
from kremlin_archive.legacy_txt import import_txt
from kremlin_archive.parsing import parse_event

PAGES = (6152, 13679, 17108, 22991, 34018, 47105, 55882, 57027, 60707, 62843, 63017)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    home = tmp_path_factory.mktemp("stats")
    path, warc = home / "kremlin.db", home / "warc"
    database = dbmod.open_db(path)
    transcripts = [
        parse_event(shared_page(f"en_news_{n}.html"), f"http://en.kremlin.ru/events/president/news/{n}")
        for n in PAGES
    ]  # fmt: skip
    # a speech: narration, then one speaker -- two turns, but not a conversation
    speech = dataclasses.replace(
        transcripts[-1], kremlin_id=999999, url="http://en.kremlin.ru/events/president/news/999999",
        utterances=[Utterance(1, None, "The President addressed the nation."),
                    Utterance(2, "Vladimir Putin", "Citizens of Russia, friends.")],
    )  # fmt: skip
    transcripts.append(speech)
    crawl = dbmod.start_run(database, run_id="run-1-crawl", spider="kremlin", command="crawl",
                            arguments={})  # fmt: skip
    for t in transcripts:
        dbmod.save_transcript(database, t)
    for stage in ("fetch", "fetch", "parse"):
        dbmod.record_error(database, run_id=crawl, url="http://en.kremlin.ru/x", stage=stage,
                           reason="test")  # fmt: skip
    dbmod.finish_run(database, crawl, status="finished", finish_reason="finished",
                     counts={"requests": 14, "events_new": 12, "errors": 3})  # fmt: skip
    (home / "broken.txt").write_text("", encoding="utf-8")
    import_txt(database, [SEED_DIR / "66419.txt", home / "broken.txt"], run_id="run-2-import")
    transcripts.append(load_transcript(database, "ru-66419"))
    warc.mkdir()
    (warc / "kremlin-1.warc.gz").write_bytes(b"x" * 1000)
    (warc / "kremlin-2.warc.gz").write_bytes(b"x" * 24)
    (warc / "notes.txt").write_text("not a WARC file")
    database.close()
    return {"db": path, "warc": warc, "transcripts": transcripts}


def stats(archive, *args: str):
    result = CliRunner().invoke(
        main, ["stats", "--db", str(archive["db"]), "--warc-dir", str(archive["warc"]), *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def as_json(archive):
    return json.loads(stats(archive, "--json"))


def speakers(t) -> set[str]:
    return {u.speaker for u in t.utterances if u.speaker}


def test_events_by_language_and_year(archive, as_json):
    expected = Counter((t.lang, int(t.published_at[:4])) for t in archive["transcripts"])
    assert {(y["lang"], y["year"]): y["events"] for y in as_json["years"]} == expected


def test_transcripts_are_events_with_two_or_more_speakers(archive, as_json):
    transcripts = [t for t in archive["transcripts"] if len(speakers(t)) >= 2]
    assert transcripts, "the sample must hold transcripts"
    assert any(len(speakers(t)) == 1 for t in archive["transcripts"]), "and a one-speaker event"
    assert sum(y["transcripts"] for y in as_json["years"]) == len(transcripts)
    turns = sum(1 for t in transcripts for u in t.utterances if u.speaker)
    assert sum(y["turns"] for y in as_json["years"]) == turns


def test_tags_by_kind(archive, as_json):
    tags = {
        (t.lang, tag.kind, tag.url or tag.name) for t in archive["transcripts"] for tag in t.tags
    }
    links = Counter(tag.kind for t in archive["transcripts"] for tag in t.tags)
    assert {t["kind"]: t["tags"] for t in as_json["tags"]} == Counter(kind for _, kind, _ in tags)
    assert {t["kind"]: t["links"] for t in as_json["tags"]} == links


def test_last_runs_newest_first_with_status_and_counts(as_json):
    runs = as_json["runs"]
    assert [r["id"] for r in runs] == ["run-2-import", "run-1-crawl"]
    assert [r["status"] for r in runs] == ["finished", "finished"]
    assert (runs[1]["requests"], runs[1]["events_new"], runs[1]["errors"]) == (14, 12, 3)
    assert (runs[0]["command"], runs[0]["events_new"], runs[0]["errors"]) == ("import-txt", 1, 1)


def test_errors_of_the_last_run_by_stage(as_json):
    assert as_json["last_run_errors"] == {"import": 1}


def test_totals(archive, as_json):
    transcripts = archive["transcripts"]
    assert as_json["totals"]["events"] == len(transcripts)
    assert as_json["totals"]["utterances"] == sum(len(t.utterances) for t in transcripts)
    assert as_json["totals"]["errors"] == 4
    assert as_json["totals"]["runs"] == 2


def test_sizes_of_database_and_warc(archive, as_json):
    assert as_json["database"]["bytes"] == archive["db"].stat().st_size > 0
    assert as_json["warc"] == {"dir": str(archive["warc"]), "exists": True, "files": 2,
                               "bytes": 1024}  # fmt: skip


def test_human_table(archive, as_json):
    text = stats(archive)
    assert "Events by year" in text and "Tags by kind" in text and "Last runs" in text
    for year in {y["year"] for y in as_json["years"]}:
        assert any(line.startswith(f"{year} ") for line in text.splitlines()), year
    total = next(line for line in text.splitlines() if line.startswith("total "))
    assert total.split() == [
        "total", str(len(PAGES) + 1), "1", str(len(PAGES) + 2),
        str(sum(y["transcripts"] for y in as_json["years"])),
        f"{sum(y['turns'] for y in as_json['years']):,}",
    ]  # fmt: skip
    assert "Errors of the last run (run-2-import) by stage: import 1" in text
    assert "WARC" in text and "2 file(s), 1.0 KB" in text


def test_missing_archive_is_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["stats", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 2
    assert "none.db" in result.output
    assert not (tmp_path / "none.db").exists()


def test_empty_archive(tmp_path):
    dbmod.open_db(tmp_path / "k.db").close()
    result = CliRunner().invoke(
        main, ["stats", "--db", str(tmp_path / "k.db"), "--warc-dir", str(tmp_path / "w"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["years"] == [] and data["runs"] == [] and data["last_run_errors"] == {}
    assert data["warc"]["exists"] is False
