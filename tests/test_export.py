"""`kremlin-archive export` (export.py): txt, jsonl and csv exports of a real archive.

The archive is made by a real crawl of March 2020 through the replay server (the 2020 capture
of en.kremlin.ru) plus a fetch of the legacy record's URL (ru-66419, a reconstructed page), as
in test_crawl.py. The exports are read back the way a researcher would (json, csv) and compared
with the database field by field. The last test exports an archive of the whole mirror in a
child process and measures its memory. Progress output (tqdm bar in a terminal, lines
otherwise) is checked here too, for export and for a crawl.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import pty
import select
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlite_utils
from conftest import (
    FAST,
    REPO,
    SEED_DIR,
    SEED_URL,
    content_snapshot,
    count_rows,
    load_transcript,
    run_cli,
)

from kremlin_archive import db as dbmod
from kremlin_archive import parsing, warc
from kremlin_archive.items import Transcript
from kremlin_archive.jobs.export import EVENT_COLUMNS, PROVENANCE_KEYS, UTTERANCE_COLUMNS
from kremlin_archive.legacy_txt import parse_txt
from kremlin_archive.progress import Progress

MARCH = ("--lang", "en", "--since", "2020-03-01", "--until", "2020-03-31")


def seed_text() -> str:
    """The legacy record after the two normalisations its README names."""
    text = (SEED_DIR / "66419.txt").read_text(encoding="utf-8").replace("&lt;…&gt;", "<…>")
    return "\n".join(line.rstrip(" ") for line in text.split("\n"))


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def read_csv(path: Path) -> list[dict]:
    # Python's csv module refuses cells over 128 KiB by default; some transcripts are longer.
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def march(tmp_path_factory, mirror_dir):
    """March 2020 crawled and ru-66419 fetched through the replay server, then exported."""
    from conftest import RU_66419_PAGE, RU_66419_URL

    from kremlin_archive.devtools.replay import ReplayServer

    home = tmp_path_factory.mktemp("export")
    db_path, warc_dir = home / "kremlin.db", home / "warc"
    paths = ("--db", str(db_path), "--warc-dir", str(warc_dir))
    state = {"db": db_path, "warc": warc_dir, "home": home}
    with ReplayServer(mirror_dir) as replay:
        replay.put_file(RU_66419_URL, RU_66419_PAGE)
        state["crawl"] = run_cli("crawl", *MARCH, *paths, proxy=replay.proxy_url)
        state["fetch"] = run_cli("fetch", SEED_URL, *paths, proxy=replay.proxy_url)
    database = ("--db", str(db_path))
    state["jsonl"] = run_cli("export", "--format", "jsonl", *MARCH, "--out",
                             str(home / "march.jsonl"), *database)  # fmt: skip
    state["csv"] = run_cli("export", "--format", "csv", *MARCH, "--out", str(home / "csv"),
                           *database)  # fmt: skip
    state["txt"] = run_cli("export", "--format", "txt", "--out", str(home / "txt"), *database)
    state["stdout"] = run_cli("export", "--format", "jsonl", *database)
    return state


def _db(state):
    return dbmod.connect(state["db"])


def march_ids(state) -> list[str]:
    return list(dbmod.iter_event_ids(_db(state), lang="en", since="2020-03-01", until="2020-03-31"))


@pytest.mark.slow
def test_crawl_and_exports_exit_zero(march):
    for step in ("crawl", "fetch", "jsonl", "csv", "txt", "stdout"):
        result = march[step]
        assert result.returncode == 0, f"{step}: {result.stderr[-3000:]}"


# -- txt ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_txt_export_of_the_crawled_66419_reproduces_the_legacy_file(march):
    assert (march["home"] / "txt" / "ru-66419.txt").read_text(encoding="utf-8") == seed_text()


@pytest.mark.slow
def test_txt_export_writes_one_file_per_event(march):
    names = sorted(p.name for p in (march["home"] / "txt").iterdir())
    assert names == sorted(f"{event_id}.txt" for event_id in dbmod.iter_event_ids(_db(march)))


@pytest.mark.slow
def test_txt_files_read_back_as_their_events(march):
    database = _db(march)
    for path in sorted((march["home"] / "txt").glob("en-*.txt"))[:40]:
        back = parse_txt(path.read_text(encoding="utf-8"), path.name)
        stored = load_transcript(database, path.stem)
        assert (back.title, back.published_at, back.place, back.paragraphs) == (
            stored.title, stored.published_at, stored.place, stored.paragraphs
        )  # fmt: skip


# -- jsonl ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_jsonl_holds_the_month_in_order(march):
    exported = [r["id"] for r in read_jsonl(march["home"] / "march.jsonl")]
    assert len(exported) > 90
    assert exported == march_ids(march)


def jsonl_transcript(record: dict) -> Transcript:
    """What a reader rebuilds from one jsonl line (an absent lead is null there)."""
    return Transcript.from_dict({**record, **record["provenance"], "lead": record["lead"] or ""})


@pytest.mark.slow
def test_jsonl_content_equals_the_database(march):
    database = _db(march)
    for record in read_jsonl(march["home"] / "march.jsonl"):
        stored = load_transcript(database, record["id"])
        assert dbmod.content_of(jsonl_transcript(record)) == dbmod.content_of(stored)
        assert record["kremlin_id"] == stored.kremlin_id and record["lang"] == stored.lang


@pytest.mark.slow
def test_jsonl_provenance_equals_the_database(march):
    database = _db(march)
    for record in read_jsonl(march["home"] / "march.jsonl"):
        row = database.table("events").get(record["id"])
        fetch = database.table("fetches").get(row["fetch_id"])
        p = record["provenance"]
        assert list(p) == list(PROVENANCE_KEYS)
        assert p["source_url"] == row["source_url"] == fetch["requested_url"]
        assert p["fetched_at"] == row["fetched_at"] == fetch["fetched_at"]
        assert p["status"] == fetch["status"] == 200
        assert p["final_url"] == fetch["final_url"]
        assert p["payload_sha256"] == fetch["payload_sha256"]
        for key in ("warc_filename", "warc_offset", "warc_length", "warc_record_id", "run_id"):
            assert p[key] == fetch[key], key
        assert p["fetch_id"] == row["fetch_id"]
        for key in ("parser_version", "origin", "content_hash", "first_seen_at",
                    "last_changed_at", "revision_count"):  # fmt: skip
            assert p[key] == row[key], key
        assert p["license"] == "CC BY 4.0"
        assert p["attribution"] == dbmod.ATTRIBUTION


@pytest.mark.slow
def test_jsonl_warc_location_holds_the_page(march):
    """The provenance is usable: the named WARC record is the event's page."""
    records = read_jsonl(march["home"] / "march.jsonl")
    for record in records[:: max(1, len(records) // 10)]:
        p = record["provenance"]
        capture = warc.read_record(march["warc"], (p["warc_filename"], p["warc_offset"]))
        assert capture.url == record["url"]
        assert capture.payload_sha256 == p["payload_sha256"]
        assert parsing.parse_event(capture.body, capture.url).title == record["title"]


@pytest.mark.slow
def test_jsonl_without_out_goes_to_stdout_and_messages_to_stderr(march):
    result = march["stdout"]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == list(dbmod.iter_event_ids(_db(march)))
    assert "kremlin-archive:" not in result.stdout
    assert f"exported {len(records)} event(s) as jsonl to standard output" in result.stderr


@pytest.mark.slow
def test_out_dash_is_stdout(march):
    result = run_cli("export", "--format", "jsonl", "--lang", "ru", "--out", "-", "--db",
                     str(march["db"]))  # fmt: skip
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["ru-66419"]
    assert not (REPO / "-").exists()


@pytest.mark.slow
def test_reader_that_stops_early_gets_no_traceback(march):
    """`export … | head -1`: the pipe closes under the writer; it stops quietly (exit 1)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kremlin_archive.cli", "export", "--format", "jsonl", "--db",
         str(march["db"])],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    json.loads(process.stdout.readline())
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == 1, stderr
    assert "Traceback" not in stderr
    assert "standard output closed; export incomplete" in stderr


# -- csv ------------------------------------------------------------------------------------------


def csv_transcript(row: dict, utterances: list[dict]) -> Transcript:
    """What a reader rebuilds from events.csv and utterances.csv (empty cell = no value)."""
    return Transcript.from_dict(
        {
            "kremlin_id": int(row["kremlin_id"]),
            "lang": row["lang"],
            "url": row["url"],
            "title": row["title"],
            "lead": row["lead"],
            "published_at": row["published_at"],
            "place": row["place"] or None,
            "paragraphs": row["text"].split("\n") if row["text"] else [],
            "utterances": [
                {"seq": int(u["seq"]), "speaker": u["speaker"] or None, "text": u["text"]}
                for u in utterances
            ],
            "tags": json.loads(row["tags"]),
            "sections": json.loads(row["sections"]),
            "updated_at": row["updated_at"] or None,
            "twin_url": row["twin_url"] or None,
            "announce_date": row["announce_date"] or None,
        }
    )


@pytest.fixture(scope="module")
def march_csv(march):
    events = read_csv(march["home"] / "csv" / "events.csv")
    turns: dict[str, list[dict]] = {}
    for row in read_csv(march["home"] / "csv" / "utterances.csv"):
        turns.setdefault(row["event_id"], []).append(row)
    return events, turns


@pytest.mark.slow
def test_csv_has_a_header_row_and_the_month_in_order(march, march_csv):
    events, _ = march_csv
    with open(march["home"] / "csv" / "events.csv", encoding="utf-8", newline="") as stream:
        assert next(csv.reader(stream)) == list(EVENT_COLUMNS)
    with open(march["home"] / "csv" / "utterances.csv", encoding="utf-8", newline="") as stream:
        assert next(csv.reader(stream)) == list(UTTERANCE_COLUMNS)
    assert [r["id"] for r in events] == march_ids(march)
    assert not (march["home"] / "csv" / "events.csv").read_bytes().startswith(b"\xef\xbb\xbf")


@pytest.mark.slow
def test_csv_content_equals_the_database(march, march_csv):
    database = _db(march)
    events, turns = march_csv
    for row in events:
        stored = load_transcript(database, row["id"])
        rebuilt = csv_transcript(row, turns.get(row["id"], []))
        assert dbmod.content_of(rebuilt) == dbmod.content_of(stored)
        assert int(row["utterance_count"]) == len(stored.utterances)
        assert json.loads(row["speakers"]) == list(
            dict.fromkeys(u.speaker for u in stored.utterances if u.speaker)
        )


@pytest.mark.slow
def test_csv_utterances_are_the_utterances_table(march, march_csv):
    _, turns = march_csv
    exported = [
        (event_id, int(u["seq"]), u["speaker"] or None, u["text"])
        for event_id, rows in turns.items()
        for u in rows
    ]
    stored = [
        tuple(r)
        for r in _db(march).execute(
            "SELECT u.event_id, u.seq, u.speaker, u.text FROM utterances u "
            "JOIN events e ON e.id = u.event_id WHERE e.lang = 'en' ORDER BY e.published_at, "
            "e.id, u.seq"
        )
    ]
    assert exported == stored
    assert any("\n" in text for *_, text in exported), "multi-paragraph turns survive in a cell"


@pytest.mark.slow
def test_exports_say_who_said_each_turn(march, march_csv):
    """jsonl and csv carry, for every turn, its person's id and name, its position and marker,
    as the database holds them (and `person` is the name in the event's language)."""
    stored = {
        (r[0], r[1]): r[2:]
        for r in _db(march).execute(
            "SELECT u.event_id, u.seq, u.person_id, coalesce(p.name_en, p.name), u.position, "
            "u.marker, u.person_evidence FROM utterances u "
            "LEFT JOIN persons p ON p.id = u.person_id"
        )
    }
    keys = ("person_id", "person", "position", "marker", "person_evidence")
    turns = 0
    for record in read_jsonl(march["home"] / "march.jsonl"):
        for u in record["utterances"]:
            assert tuple(u[k] for k in keys) == stored[(record["id"], u["seq"])]
            turns += 1
    _, csv_turns = march_csv
    for event_id, rows in csv_turns.items():
        for u in rows:
            assert tuple(u[k] or None for k in keys) == stored[(event_id, int(u["seq"]))]
    assert turns > 500  # the month's turns, narration included
    assert {v[0] for v in stored.values()} >= {"a-vladimir-putin"}


@pytest.mark.slow
def test_csv_provenance_equals_the_database(march, march_csv):
    database = _db(march)
    events, _ = march_csv
    for row in events:
        event = database.table("events").get(row["id"])
        fetch = database.table("fetches").get(event["fetch_id"])
        expected = {
            "source_url": event["source_url"], "final_url": fetch["final_url"],
            "fetched_at": event["fetched_at"], "status": fetch["status"], "etag": fetch["etag"],
            "last_modified": fetch["last_modified"], "payload_sha256": fetch["payload_sha256"],
            "warc_filename": fetch["warc_filename"], "warc_offset": fetch["warc_offset"],
            "warc_length": fetch["warc_length"], "warc_record_id": fetch["warc_record_id"],
            "fetch_id": event["fetch_id"], "run_id": fetch["run_id"],
            "parser_version": event["parser_version"], "origin": event["origin"],
            "content_hash": event["content_hash"], "first_seen_at": event["first_seen_at"],
            "last_changed_at": event["last_changed_at"],
            "revision_count": event["revision_count"], "license": "CC BY 4.0",
            "attribution": dbmod.ATTRIBUTION,
        }  # fmt: skip
        assert set(expected) == set(PROVENANCE_KEYS)
        assert {k: row[k] for k in PROVENANCE_KEYS} == {
            k: "" if v is None else str(v) for k, v in expected.items()
        }


# -- filters and refusals -------------------------------------------------------------------------


@pytest.mark.slow
def test_lang_filter(march):
    result = run_cli("export", "--format", "jsonl", "--lang", "ru", "--db", str(march["db"]))
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["ru-66419"]


@pytest.mark.slow
def test_id_filter_exports_exactly_those_events(march, tmp_path):
    first = march_ids(march)[0]
    result = run_cli("export", "--format", "csv", "--id", "ru-66419", "--id", first,
                     "--out", str(tmp_path), "--db", str(march["db"]))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert [r["id"] for r in read_csv(tmp_path / "events.csv")] == [first, "ru-66419"]


@pytest.mark.slow
def test_date_filter_is_inclusive_on_moscow_days(march):
    result = run_cli("export", "--format", "jsonl", "--since", "2020-03-18", "--until",
                     "2020-03-18", "--db", str(march["db"]))  # fmt: skip
    days = {json.loads(line)["published_at"][:10] for line in result.stdout.splitlines()}
    assert days == {"2020-03-18"}


@pytest.mark.parametrize("bad", ["66419", "ru66419", "de-1", "ru-", "ru-0", "en-12x"])
def test_invalid_id_is_exit_2_naming_it(bad, tmp_path):
    result = run_cli("export", "--format", "jsonl", "--id", "ru-66419", "--id", bad,
                     "--db", str(tmp_path / "k.db"))  # fmt: skip
    assert result.returncode == 2
    assert repr(bad) in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_unknown_id_is_a_warning_and_exit_1_when_nothing_matches(march):
    result = run_cli("export", "--format", "jsonl", "--id", "en-1", "--db", str(march["db"]))
    assert result.returncode == 1
    assert "en-1 is not in the archive" in result.stderr
    result = run_cli("export", "--format", "jsonl", "--id", "en-1", "--id", "ru-66419",
                     "--db", str(march["db"]))  # fmt: skip
    assert result.returncode == 0
    assert "en-1 is not in the archive" in result.stderr
    assert len(result.stdout.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["txt", "csv"])
def test_txt_and_csv_need_an_out_folder(fmt, march):
    result = run_cli("export", "--format", fmt, "--db", str(march["db"]))
    assert result.returncode == 2
    assert "--out" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_out_of_the_wrong_kind_is_exit_2(fmt, march, tmp_path):
    out = tmp_path / "folder" if fmt == "jsonl" else tmp_path / "file.csv"
    out.mkdir() if fmt == "jsonl" else out.write_text("")
    result = run_cli("export", "--format", fmt, "--out", str(out), "--db", str(march["db"]))
    assert result.returncode == 2
    assert str(out) in result.stderr


def test_missing_archive_is_exit_2(tmp_path):
    result = run_cli("export", "--format", "jsonl", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2
    assert "none.db" in result.stderr
    assert not (tmp_path / "none.db").exists()


@pytest.mark.slow
def test_bad_date_is_exit_2(march):
    result = run_cli("export", "--format", "jsonl", "--since", "2020-02-30", "--db",
                     str(march["db"]))  # fmt: skip
    assert result.returncode == 2
    assert "2020-02-30" in result.stderr


# -- progress -------------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal():
    stream = FakeTerminal()
    with Progress("export", total=3, unit="event", stream=stream) as progress:
        for _ in range(3):
            progress.update()
    assert "export: 100%" in stream.getvalue()
    assert "3/3" in stream.getvalue()


def test_progress_writes_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    with Progress("export", total=4, unit="event", stream=stream, interval=0) as progress:
        for _ in range(4):
            progress.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("export: 2/4 events (50%), ")
    assert "\r" not in stream.getvalue()


def test_progress_lines_are_periodic():
    stream = io.StringIO()
    with Progress("import-txt", unit="file", stream=stream, interval=3600) as progress:
        for _ in range(1000):
            progress.update()
    assert stream.getvalue() == ""


def test_progress_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("KREMLIN_PROGRESS", "0")
    stream = FakeTerminal()
    with Progress("export", total=2, stream=stream, interval=0) as progress:
        progress.update(2)
    assert stream.getvalue() == ""


@pytest.mark.slow
def test_export_shows_no_bar_when_stderr_is_not_a_terminal(march):
    assert "\r" not in march["jsonl"].stderr
    assert "events/s" not in march["jsonl"].stderr


@pytest.mark.slow
def test_crawl_shows_no_bar_when_stderr_is_not_a_terminal(march):
    assert "pages/s" not in march["crawl"].stderr


def run_with_terminal_stderr(args: list[str], env: dict | None = None) -> tuple[int, str, str]:
    """Run the CLI with standard error on a pseudo-terminal (120 columns); standard output
    stays a pipe. Returns (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    full_env = {**os.environ, **(env or {})}
    full_env.pop("KREMLIN_PROGRESS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "kremlin_archive.cli", *args],
        cwd=REPO, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    shown = bytearray()
    stdout_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stdout_chunks.append(process.stdout.read()))
    reader.start()
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            shown += data
        elif process.poll() is not None:
            break
    process.wait(timeout=120)
    reader.join()
    os.close(master)
    return process.returncode, b"".join(stdout_chunks).decode(), shown.decode(errors="replace")


@pytest.mark.slow
def test_export_draws_a_bar_on_a_terminal_and_keeps_stdout_clean(march):
    code, stdout, shown = run_with_terminal_stderr(
        ["export", "--format", "jsonl", *MARCH, "--db", str(march["db"])]
    )
    assert code == 0, shown[-2000:]
    count = len(march_ids(march))
    assert "export: 100%" in shown and f"{count}/{count}" in shown
    assert "events/s" in shown
    assert len([json.loads(line) for line in stdout.splitlines()]) == count


@pytest.mark.slow
def test_reparse_draws_a_bar_on_a_terminal(march, tmp_path):
    import shutil

    shutil.copytree(march["warc"], tmp_path / "warc")
    database = dbmod.connect(march["db"])
    database.conn.backup(target := sqlite_utils.Database(tmp_path / "k.db").conn)
    target.close()
    code, _, shown = run_with_terminal_stderr(
        ["reparse", "--db", str(tmp_path / "k.db"), "--warc-dir", str(tmp_path / "warc")]
    )
    assert code == 0, shown[-2000:]
    captures = count_rows(database, "fetches", "warc_filename IS NOT NULL")
    frames = shown.replace("\r\n", "\n").split("\r")
    assert any(f"reparse: {captures} captures" in f for f in frames), shown[-2000:]


@pytest.mark.slow
def test_crawl_draws_a_bar_on_a_terminal(tmp_path, replay):
    settings = [arg for setting in FAST for arg in ("-s", setting)]
    code, _, shown = run_with_terminal_stderr(
        ["fetch", SEED_URL, "--db", str(tmp_path / "k.db"), "--warc-dir", str(tmp_path / "w"),
         *settings],
        env={"http_proxy": replay.proxy_url, "no_proxy": ""},
    )  # fmt: skip
    assert code == 0, shown[-2000:]
    frames = shown.replace("\r\n", "\n").split("\r")
    assert any("fetch: 2 pages" in f and "events=1" in f for f in frames), shown[-2000:]


# -- memory: the whole mirror ----------------------------------------------------------------------

RSS_LIMIT_MB = 250
RSS_GROWTH_LIMIT = 1.3


FETCHED_AT = "2020-08-20T12:00:00Z"


def _parse_page(page: Path) -> Transcript:
    url = f"http://en.kremlin.ru/events/president/news/{page.stem}"
    t = parsing.parse_event(page.read_bytes(), url)
    t.source_url, t.final_url, t.status, t.fetched_at = url, url, 200, FETCHED_AT
    t.parser_version, t.origin = parsing.PARSER_VERSION, "crawl"
    return t


def _rows(t: Transcript) -> dict[str, list[dict]]:
    """The rows `db.save_transcript` writes for a new event, built with its own helpers (the
    fixture checks they agree), so that the whole mirror can be inserted in bulk."""
    content = dbmod.content_of(t)
    event = dbmod._event_row(t, content, dbmod.content_hash(content))
    event.update(first_seen_at=FETCHED_AT, last_changed_at=None, revision_count=0)
    tags = [{"id": dbmod.tag_id(t.lang, g), "lang": t.lang, "kind": g.kind, "name": g.name,
             "url": g.url} for g in t.tags]  # fmt: skip
    return {
        "events": [event],
        "utterances": [
            {"event_id": t.event_id, "seq": u.seq, "speaker": u.speaker, "text": u.text}
            for u in t.utterances
        ],
        "tags": tags,
        "event_tags": [
            {"event_id": t.event_id, "tag_id": g["id"], "seq": n} for n, g in enumerate(tags)
        ],
    }


def _parse_rows(pages: list[Path]) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {"events": [], "utterances": [], "tags": [], "event_tags": []}
    for page in pages:
        for table, table_rows in _rows(_parse_page(page)).items():
            rows[table].extend(table_rows)
    return rows


def _insert(database, rows: dict[str, list[dict]]) -> None:
    with database.atomic():
        database.table("tags").insert_all(rows["tags"], pk="id", ignore=True)
        for table in ("events", "utterances", "event_tags"):
            database.table(table).insert_all(rows[table], batch_size=500)


@pytest.fixture(scope="module")
def mirror_archive(tmp_path_factory, mirror_event_pages) -> Path:
    """Every event page of the mirror in one archive. save_transcript (~13 ms an event) would
    take longer than the whole test may, so two processes parse and the rows it would write
    are inserted in bulk; the first pages are stored both ways to show the rows agree."""
    sample = [_parse_page(page) for page in mirror_event_pages[:30]]
    saved, bulk = dbmod.ensure_db_shape(sqlite_utils.Database(memory=True)), None
    for t in sample:
        dbmod.save_transcript(saved, t, now=FETCHED_AT)
    bulk = dbmod.ensure_db_shape(sqlite_utils.Database(memory=True))
    for t in sample:
        _insert(bulk, _rows(t))
    assert content_snapshot(bulk) == content_snapshot(saved)

    path = tmp_path_factory.mktemp("mirror-archive") / "kremlin.db"
    database = dbmod.open_db(path)
    chunks = [mirror_event_pages[n : n + 200] for n in range(0, len(mirror_event_pages), 200)]
    with ProcessPoolExecutor(2) as pool:
        for rows in pool.map(_parse_rows, chunks):
            _insert(database, rows)
    assert count_rows(database, "events") == len(mirror_event_pages)
    database.close()
    return path


# The child reports its own peak: VmHWM, the high-water mark of the memory it maps since its
# exec. (wait4's ru_maxrss would not do: Linux carries the pre-exec image over, and a child
# forked from pytest starts at pytest's size.)
PEAK_PROBE = """
import atexit, os, sys
def report():
    with open(os.environ["PEAK_FILE"], "w") as out, open("/proc/self/status") as status:
        out.write(next(line for line in status if line.startswith("VmHWM:")))
atexit.register(report)
from kremlin_archive.cli import main
main(prog_name="kremlin-archive")
"""


def measure_export(args: list[str], peak_file: Path) -> dict:
    """Run `kremlin-archive export ARGS` as a child: its peak RSS (VmHWM, reported by the child
    at exit) and the largest VmRSS seen by sampling /proc/<pid>/status every 5 ms."""
    with tempfile.TemporaryFile("w+") as stderr, open(os.devnull, "w") as devnull:
        process = subprocess.Popen(
            [sys.executable, "-c", PEAK_PROBE, "export", *args],
            cwd=REPO,
            stdout=devnull,
            stderr=stderr,
            env={**os.environ, "PEAK_FILE": str(peak_file)},
        )
        samples: list[int] = []
        status_file = Path(f"/proc/{process.pid}/status")
        started = time.monotonic()
        while process.poll() is None:
            with contextlib.suppress(OSError, StopIteration, ValueError):
                line = next(
                    x for x in status_file.read_text().splitlines() if x.startswith("VmRSS:")
                )
                samples.append(int(line.split()[1]))
            time.sleep(0.005)
        seconds = time.monotonic() - started
        stderr.seek(0)
        message = stderr.read()
    assert process.returncode == 0, message[-2000:]
    return {
        "peak_mb": int(peak_file.read_text().split()[1]) / 1024,
        "sampled_mb": max(samples, default=0) / 1024,
        "seconds": seconds,
        "stderr": message,
    }


@pytest.mark.slow
def test_export_of_the_whole_mirror_runs_in_flat_memory(mirror_archive, tmp_path):
    database = dbmod.connect(mirror_archive)
    total = count_rows(database, "events")
    # the day on which the first 1,000 events (oldest first) are complete
    day = database.execute(
        "SELECT substr(published_at, 1, 10) FROM events ORDER BY published_at, id "
        "LIMIT 1 OFFSET 999"
    ).fetchone()[0]
    small = dbmod.count_events(database, until=day)
    database.close()
    jobs = {}
    for fmt in ("jsonl", "csv", "txt"):
        for size, extra in (("all", []), ("small", ["--until", day])):
            out = tmp_path / f"{fmt}-{size}" / ("export.jsonl" if fmt == "jsonl" else "")
            jobs[fmt, size] = [
                "--format", fmt, *extra, "--out", str(out), "--db", str(mirror_archive)
            ]  # fmt: skip
    peak_files = [tmp_path / f"peak-{fmt}-{size}" for fmt, size in jobs]
    with ThreadPoolExecutor(2) as pool:
        measured = pool.map(measure_export, jobs.values(), peak_files)
        results = dict(zip(jobs, measured, strict=True))

    report = [f"export memory ({total:,} events vs {small:,}; peak RSS = the child's VmHWM):"]
    for (fmt, size), r in results.items():
        events = total if size == "all" else small
        report.append(
            f"  {fmt:5} {events:6,} events: peak {r['peak_mb']:6.1f} MB "
            f"(sampled VmRSS max {r['sampled_mb']:6.1f} MB), {r['seconds']:5.1f} s"
        )
    print("\n".join(report))
    for (_, size), r in results.items():
        events = total if size == "all" else small
        assert f"exported {events} event(s)" in r["stderr"]
        assert r["peak_mb"] < RSS_LIMIT_MB, "\n".join(report)
    for fmt in ("jsonl", "csv", "txt"):
        ratio = results[fmt, "all"]["peak_mb"] / results[fmt, "small"]["peak_mb"]
        assert ratio < RSS_GROWTH_LIMIT, f"{fmt}: {ratio:.2f}\n" + "\n".join(report)
    # and the exports are complete
    assert len(read_jsonl(tmp_path / "jsonl-all" / "export.jsonl")) == total
    assert len(read_csv(tmp_path / "csv-all" / "events.csv")) == total
    assert len(list((tmp_path / "txt-all").glob("*.txt"))) == total
