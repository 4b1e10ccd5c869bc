"""WARC is the evidence and the database a rebuildable index over it (issue 4): every fetch has
its record, unchanged refetches are revisits, `reparse` rebuilds the same content, edits become
revisions, and damaged WARC files are reported and skipped."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RU_66419_PAGE, RU_66419_URL, SEED_URL, content_snapshot, count_rows, run_cli
from warcio.archiveiterator import ArchiveIterator

from kremlin_archive import db as dbmod

pytestmark = pytest.mark.slow

WEEK = ("--lang", "en", "--since", "2020-03-16", "--until", "2020-03-20")
OLD_SENTENCE = (
    "Надо сказать, что наши сопредельные регионы дают 70 процентов данного товарооборота."
)
NEW_SENTENCE = (
    "Надо сказать, что наши сопредельные регионы дают 75 процентов данного товарооборота."
)


def warc_files(folder) -> list[Path]:
    return sorted(Path(folder).glob("*.warc.gz"))


def folder_size(folder) -> int:
    return sum(p.stat().st_size for p in warc_files(folder))


@pytest.fixture(scope="module")
def archive(tmp_path_factory, mirror_dir):
    """Crawl a week + fetch the seed; then refetch everything with the seed's text edited."""
    from kremlin_archive.devtools.replay import ReplayServer

    home = tmp_path_factory.mktemp("warc-archive")
    state = {"db": str(home / "kremlin.db"), "warc": str(home / "warc"), "home": home}
    paths = ("--db", state["db"], "--warc-dir", state["warc"])
    with ReplayServer(mirror_dir) as replay:
        replay.put_file(RU_66419_URL, RU_66419_PAGE)
        for step, args in (("crawl1", ("crawl", *WEEK)), ("fetch1", ("fetch", SEED_URL))):
            state[step] = run_cli(*args, *paths, proxy=replay.proxy_url)
        state["size1"] = folder_size(state["warc"])
        state["files1"] = warc_files(state["warc"])
        state["snapshot1"] = content_snapshot(dbmod.connect(state["db"]))
        edited = RU_66419_PAGE.read_bytes().replace(
            OLD_SENTENCE.encode("utf-8"), NEW_SENTENCE.encode("utf-8")
        )
        assert edited != RU_66419_PAGE.read_bytes()
        replay.put(RU_66419_URL, edited)
        state["crawl2"] = run_cli("crawl", *WEEK, "--refetch", *paths, proxy=replay.proxy_url)
        state["fetch2"] = run_cli("fetch", SEED_URL, *paths, proxy=replay.proxy_url)
    for step in ("crawl1", "fetch1", "crawl2", "fetch2"):
        assert state[step].returncode == 0, f"{step}: {state[step].stderr[-3000:]}"
    return state


def test_every_fetch_has_its_record_at_the_recorded_offset(archive):
    database = dbmod.connect(archive["db"])
    rows = list(database.query("SELECT * FROM fetches WHERE status IS NOT NULL"))
    assert len(rows) > 40
    for row in rows:
        path = Path(archive["warc"]) / row["warc_filename"]
        with open(path, "rb") as fh:
            fh.seek(row["warc_offset"])
            record = next(iter(ArchiveIterator(fh)))
        assert record.rec_type == row["warc_record_type"]
        assert record.rec_headers.get_header("WARC-Record-ID") == row["warc_record_id"]
        assert record.rec_headers.get_header("WARC-Target-URI") == row["url"]
        assert record.rec_headers.get_header("WARC-Payload-Digest") == row["warc_payload_digest"]
        assert record.http_headers.get_statuscode() == str(row["status"])


def test_record_count_matches_fetch_rows(archive):
    database = dbmod.connect(archive["db"])
    records = 0
    for path in warc_files(archive["warc"]):
        with open(path, "rb") as fh:
            records += sum(1 for r in ArchiveIterator(fh) if r.rec_type in ("response", "revisit"))
    assert records == count_rows(database, "fetches", "status IS NOT NULL")


def test_warcio_index_and_check_accept_every_file(archive):
    warcio = [sys.executable, "-m", "warcio.cli"]
    for path in warc_files(archive["warc"]):
        index = subprocess.run([*warcio, "index", str(path)], capture_output=True, text=True)
        assert index.returncode == 0, index.stderr
        assert index.stdout.count("\n") >= 2
        check = subprocess.run([*warcio, "check", "-v", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_second_crawl_writes_revisits_not_bodies(archive):
    database = dbmod.connect(archive["db"])
    runs = [r[0] for r in database.execute("SELECT id FROM runs ORDER BY started_at")]
    second = runs[2]
    kinds = dict(
        database.execute(
            "SELECT warc_record_type, count(*) FROM fetches WHERE run_id = ? AND status = 200 "
            "AND kind = 'event' GROUP BY 1",
            [second],
        ).fetchall()
    )
    assert kinds.get("revisit", 0) > 20
    assert kinds.get("response", 0) == 0, "every event page of the week was unchanged"
    first_bytes = archive["size1"]
    second_bytes = sum(
        p.stat().st_size for p in warc_files(archive["warc"]) if p not in archive["files1"]
    )
    event_bodies = database.execute(
        "SELECT sum(content_length) FROM fetches WHERE run_id = ? AND kind = 'event'", [second]
    ).fetchone()[0]
    # the second crawl's files hold listing pages and headers, not the event pages again
    assert second_bytes < first_bytes * 0.35, (second_bytes, first_bytes)
    assert second_bytes < event_bodies * 0.1


def test_changed_page_becomes_a_revision(archive):
    database = dbmod.connect(archive["db"])
    revisions = list(database.query("SELECT * FROM revisions WHERE event_id = 'ru-66419'"))
    assert len(revisions) == 1
    revision = revisions[0]
    assert OLD_SENTENCE in revision["text"]
    assert set(json.loads(revision["changed_fields"])) == {"paragraphs", "utterances"}
    event = database.table("events").get("ru-66419")
    assert NEW_SENTENCE in event["text"]
    assert event["revision_count"] == 1
    assert event["last_changed_at"]
    assert revision["fetch_id"] != event["fetch_id"]
    assert revision["superseded_by_fetch_id"] == event["fetch_id"]


def test_unchanged_refetch_adds_a_fetch_row_only(archive):
    database = dbmod.connect(archive["db"])
    assert database.table("revisions").count == 1
    en = [r for r in content_snapshot(database)["events"] if r[1] == "en"]
    assert en == [r for r in archive["snapshot1"]["events"] if r[1] == "en"]


def test_reparse_into_fresh_database_gives_identical_content(archive, tmp_path):
    fresh = tmp_path / "fresh.db"
    result = run_cli("reparse", "--db", str(fresh), "--warc-dir", archive["warc"])
    assert result.returncode == 0, result.stderr
    crawled = content_snapshot(dbmod.connect(archive["db"]))
    rebuilt = content_snapshot(dbmod.connect(fresh))
    assert rebuilt == crawled
    # who said it too: the same persons, links and evidence as the crawl left
    for sql in (
        "SELECT event_id, seq, person_id, name, position, marker, person_evidence, person_note "
        "FROM utterances ORDER BY event_id, seq",
        "SELECT * FROM mentions ORDER BY event_id, seq",
        "SELECT * FROM persons ORDER BY id",
    ):
        assert list(dbmod.connect(fresh).execute(sql)) == list(
            dbmod.connect(archive["db"]).execute(sql)
        ), sql
    rebuilt_db = dbmod.connect(fresh)
    # the history was rebuilt too: the seed's old text is a revision again
    assert OLD_SENTENCE in rebuilt_db.table("revisions").get(1)["text"]
    assert count_rows(rebuilt_db, "fetches") == count_rows(
        dbmod.connect(archive["db"]), "fetches", "status IS NOT NULL"
    )


def test_reparse_of_crawled_database_changes_nothing(archive, tmp_path):
    copy = tmp_path / "copy.db"
    source = dbmod.connect(archive["db"])
    source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(archive["db"], copy)
    before = content_snapshot(dbmod.connect(copy))
    revisions = count_rows(dbmod.connect(copy), "revisions")
    result = run_cli("reparse", "--db", str(copy), "--warc-dir", archive["warc"])
    assert result.returncode == 0, result.stderr
    after_db = dbmod.connect(copy)
    assert content_snapshot(after_db) == before
    assert count_rows(after_db, "revisions") == revisions


def test_reparse_after_parser_change_records_what_changed(archive, tmp_path, monkeypatch):
    from kremlin_archive import parsing
    from kremlin_archive.jobs.reparse import reparse

    copy = tmp_path / "copy.db"
    dbmod.connect(archive["db"]).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(archive["db"], copy)
    original = parsing.parse_event

    def shouting_parser(body, url):
        transcript = original(body, url)
        transcript.title = transcript.title.upper()
        return transcript

    version_before = parsing.PARSER_VERSION
    monkeypatch.setattr(parsing, "parse_event", shouting_parser)
    monkeypatch.setattr(parsing, "PARSER_VERSION", "test-upper")
    database = dbmod.connect(copy)
    last_revision = database.execute("SELECT max(id) FROM revisions").fetchone()[0]
    result = reparse(database, archive["warc"])
    events = count_rows(database, "events")
    assert result.outcomes["changed"] == events
    rows = list(database.query("SELECT * FROM revisions WHERE id > ?", [last_revision]))
    assert len(rows) == events
    for row in rows:
        assert json.loads(row["changed_fields"]) == ["title"]
        assert row["parser_version"] == version_before
        current = database.table("events").get(row["event_id"])
        assert current["title"] == row["title"].upper() != row["title"]
        assert current["parser_version"] == "test-upper"


def test_damaged_warc_is_reported_and_the_rest_rebuilt(archive, tmp_path):
    damaged = tmp_path / "warc"
    shutil.copytree(archive["warc"], damaged)
    files = warc_files(damaged)
    # cut the last file in the middle of its last record, and corrupt a byte in the first
    last = files[-1]
    data = last.read_bytes()
    last.write_bytes(data[: len(data) - 200])
    first = files[0]
    blob = bytearray(first.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    first.write_bytes(bytes(blob))
    fresh = tmp_path / "fresh.db"
    result = run_cli("reparse", "--db", str(fresh), "--warc-dir", str(damaged))
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "damaged" in result.stderr
    database = dbmod.connect(fresh)
    errors = list(database.query("SELECT * FROM errors WHERE stage = 'warc'"))
    assert len(errors) >= 2
    crawled = dbmod.connect(archive["db"])
    rebuilt_events = count_rows(database, "events")
    assert 0 < rebuilt_events <= count_rows(crawled, "events")
    assert rebuilt_events >= count_rows(crawled, "events") - 2


def test_seed_history_is_readable_in_datasette(archive):
    from datasette.app import Datasette

    async def get():
        ds = Datasette([archive["db"]])
        name = ds.get_database().name
        return await ds.client.get(
            f"/{name}/revisions.json", params={"event_id": "ru-66419", "_shape": "objects"}
        )

    response = asyncio.run(get())
    assert response.status_code == 200
    rows = response.json()["rows"]
    assert len(rows) == 1
    assert OLD_SENTENCE in rows[0]["text"]


# -- reparse reads the files once and writes in batches (issue 17, item 3) -------------------


def full_snapshot(database) -> dict:
    """Content, persons, the ledger and the revisions: what a reparse rebuilds."""
    snapshot = content_snapshot(database)
    for name, sql in {
        "persons": "SELECT * FROM persons ORDER BY id",
        "turns": "SELECT event_id, seq, person_id, person_evidence FROM utterances ORDER BY 1, 2",
        "mentions": "SELECT * FROM mentions ORDER BY event_id, seq",
        "coverage": "SELECT id, state, answer, fetch_id, source FROM coverage ORDER BY id",
        "revisions": "SELECT event_id, revision, content_hash, changed_fields, fetch_id, "
        "superseded_by_fetch_id FROM revisions ORDER BY event_id, revision",
        "fetches": "SELECT url, status, warc_filename, warc_offset, source, kind, event_id "
        "FROM fetches ORDER BY id",
    }.items():
        snapshot[name] = [tuple(r) for r in database.execute(sql)]
    return snapshot


def no_half_events(database) -> int:
    """Every stored event has all its turns, tags and its ledger entry; the search indexes
    agree with the tables. Returns the number of events."""
    events = database.execute("SELECT id, utterance_count FROM events").fetchall()
    for event_id, turns in events:
        stored = database.execute(
            "SELECT count(*) FROM utterances WHERE event_id = ?", [event_id]
        ).fetchone()[0]
        assert stored == turns, event_id
        state = database.execute("SELECT state FROM coverage WHERE id = ?", [event_id]).fetchone()
        assert state == ("stored",), event_id
    orphans = database.execute(
        "SELECT count(*) FROM utterances WHERE event_id NOT IN (SELECT id FROM events)"
    ).fetchone()[0]
    assert orphans == 0
    for fts in ("events_fts", "utterances_fts"):
        database.execute(f"INSERT INTO {fts}({fts}) VALUES('integrity-check')")
    return len(events)


@pytest.mark.parametrize("worker", [False, True], ids=["inline", "worker"])
def test_reparse_with_small_batches_and_a_worker_gives_the_same_archive(
    archive, tmp_path, monkeypatch, worker
):
    """Batches of 3 captures, reading and parsing inline or in a second process: the same
    archive as one reparse with the defaults (and as the crawl's content)."""
    from kremlin_archive.jobs import reparse as job

    reference = dbmod.open_db(tmp_path / "reference.db")
    job.reparse(reference, archive["warc"], worker=False)
    monkeypatch.setattr(job, "BATCH_CAPTURES", 3)
    database = dbmod.open_db(tmp_path / "batched.db")
    result = job.reparse(database, archive["warc"], worker=worker)
    assert result.captures == count_rows(database, "fetches")
    assert full_snapshot(database) == full_snapshot(reference)
    assert content_snapshot(database) == content_snapshot(dbmod.connect(archive["db"]))
    no_half_events(database)


@pytest.mark.parametrize("worker", [False, True], ids=["inline", "worker"])
def test_a_damaged_record_inside_a_batch_is_recorded_and_the_others_stored(
    archive, tmp_path, worker
):
    """One corrupt event record in the middle of a file: reported (errors, stage 'warc') and
    skipped; every other capture of its batch is stored."""
    from kremlin_archive.jobs.reparse import reparse

    damaged = tmp_path / "warc"
    shutil.copytree(archive["warc"], damaged)
    crawled = dbmod.connect(archive["db"])
    victim = crawled.execute(
        "SELECT event_id, warc_filename, warc_offset, warc_length FROM fetches "
        "WHERE kind = 'event' AND warc_record_type = 'response' AND payload_sha256 NOT IN "
        "(SELECT payload_sha256 FROM fetches WHERE warc_record_type = 'revisit') "
        "ORDER BY id LIMIT 1 OFFSET 5"
    ).fetchone()
    event_id, filename, offset, length = victim
    blob = bytearray((damaged / filename).read_bytes())
    blob[offset + length // 2] ^= 0xFF
    (damaged / filename).write_bytes(bytes(blob))
    database = dbmod.open_db(tmp_path / "fresh.db")
    result = reparse(database, damaged, worker=worker)
    assert [(f, o) for f, o, _ in result.damaged] == [(filename, offset)]
    errors = list(database.query("SELECT url, reason FROM errors WHERE stage = 'warc'"))
    assert [e["url"] for e in errors] == [f"{filename}#{offset}"]
    # only the damaged capture is missing: the event comes from its other captures, if any
    crawled_events = {r[0] for r in crawled.execute("SELECT id FROM events")}
    rebuilt_events = {r[0] for r in database.execute("SELECT id FROM events")}
    assert crawled_events - rebuilt_events <= {event_id}
    assert (
        count_rows(database, "fetches") == count_rows(crawled, "fetches", "status IS NOT NULL") - 1
    )
    no_half_events(database)


KILLER = """
import os, signal, sys
from kremlin_archive import db as dbmod
from kremlin_archive.jobs import reparse as job

job.BATCH_CAPTURES = int(sys.argv[3])
job.BATCH_SECONDS = 3600.0
calls = 0
replace_children = dbmod._replace_children

def dying(*args, **kwargs):  # the events row of the event is written, its turns not yet
    global calls
    calls += 1
    if calls == int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)
    return replace_children(*args, **kwargs)

dbmod._replace_children = dying
job.reparse(dbmod.open_db(sys.argv[1]), sys.argv[2], worker=False)
"""


def test_a_kill_mid_batch_leaves_whole_batches_and_no_half_event(archive, tmp_path):
    """Killed (SIGKILL) while writing the 12th event, batches of 5 captures: the database
    holds the batches committed before, each event whole, and the search indexes agree; a
    reparse run again completes the archive as if nothing had happened."""
    from kremlin_archive.jobs.reparse import reparse

    fresh = tmp_path / "killed.db"
    dbmod.open_db(fresh)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(fresh), archive["warc"], "5", "12"],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr
    database = dbmod.connect(fresh)
    stored = no_half_events(database)
    assert 0 < stored < 12
    assert count_rows(database, "fetches") % 5 == 0  # whole batches only
    reparse(database, archive["warc"])
    reference = dbmod.open_db(tmp_path / "reference.db")
    reparse(reference, archive["warc"])
    assert content_snapshot(database) == content_snapshot(reference)
    no_half_events(database)
    # the secondary indexes the killed run had set aside until its end are back
    assert indexes(database) == indexes(reference) == indexes(dbmod.open_db(tmp_path / "new.db"))


def search_index(database) -> dict:
    """What the full-text indexes hold, by row key rather than rowid (a crawl and a reparse
    may number rows differently): every (term, row, column, offset) of each index, and the
    triggers that keep them."""
    keys = {"events": "t.id", "utterances": "t.event_id || '#' || t.seq"}
    held: dict = {}
    for table, key in keys.items():
        fts = f"{table}_fts"
        database.execute(f"INSERT INTO {fts}({fts}, rank) VALUES('integrity-check', 1)")
        database.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab_{table} USING fts5vocab(main, {fts}, "
            "instance)"
        )
        held[fts] = sorted(
            database.execute(
                f"SELECT v.term, {key}, v.col, v.offset FROM temp.vocab_{table} v "
                f"JOIN {table} t ON t.rowid = v.doc"
            ).fetchall()
        )
    held["triggers"] = sorted(
        database.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    )
    return held


SEARCHES = ("Путин", "товарооборота", "75 процентов", "regions", "coronavirus", "Russia*")


def search_answers(database) -> dict:
    answers = {}
    for words in SEARCHES:
        query = " ".join(
            f'"{w.rstrip("*")}"' + ("*" if w.endswith("*") else "") for w in words.split()
        )
        answers[words] = (
            sorted(
                r[0]
                for r in database.execute(
                    "SELECT e.id FROM events_fts f JOIN events e ON e.rowid = f.rowid "
                    "WHERE events_fts MATCH ?",
                    [query],
                )
            ),
            sorted(
                tuple(r)
                for r in database.execute(
                    "SELECT u.event_id, u.seq FROM utterances_fts f "
                    "JOIN utterances u ON u.rowid = f.rowid WHERE utterances_fts MATCH ?",
                    [query],
                )
            ),
        )
    return answers


@pytest.mark.parametrize("batch", [None, 3], ids=["default-batches", "batches-of-3"])
def test_reparsed_search_index_is_the_crawled_one(archive, tmp_path, monkeypatch, batch):
    """Reparse fills the full-text indexes once per batch (not row by row through the
    triggers): the rebuilt database answers every search as the crawled one does, its
    indexes hold the very same terms at the same places, and its triggers are back as they
    were -- with batches small enough that the edited event is indexed, then replaced, in
    different batches too."""
    from kremlin_archive.jobs import reparse as job

    if batch:
        monkeypatch.setattr(job, "BATCH_CAPTURES", batch)
    database = dbmod.open_db(tmp_path / "fresh.db")
    job.reparse(database, archive["warc"], worker=False)
    crawled = dbmod.connect(archive["db"])
    answers = search_answers(database)
    assert answers == search_answers(crawled)
    assert answers["товарооборота"][0] == ["ru-66419"]
    assert answers["75 процентов"][0] == ["ru-66419"]  # the edited text, not the revision's
    assert all(events for events, _ in answers.values())
    assert search_index(database) == search_index(crawled)
    # the triggers work on: an edit after the reparse is found by its new words
    database.execute("UPDATE events SET title = 'Zyxwvut' WHERE id = 'ru-66419'")
    found = database.execute(
        "SELECT e.id FROM events_fts f JOIN events e ON e.rowid = f.rowid "
        "WHERE events_fts MATCH 'Zyxwvut'"
    ).fetchall()
    assert found == [("ru-66419",)]


def indexes(database) -> list[tuple]:
    return sorted(
        database.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index'")
    )


# Columns that say when or by which run a row was written, not what it holds.
STAMPS = {"run_id", "first_seen_at", "last_changed_at", "recorded_at", "at"}


def every_row(database) -> dict:
    """Every row of every table but `runs` (stamps left out, each table in primary-key
    order), the shape (tables, indexes, triggers, views) and the full-text indexes."""
    rows: dict = {"shape": indexes(database)}
    rows["shape"] += sorted(database.execute("SELECT type, name, sql FROM sqlite_master"))
    for table in dbmod.TABLES:
        if table == "runs":
            continue
        columns = [c for c in dbmod.TABLES[table]["columns"] if c not in STAMPS]
        if table == "coverage":
            columns.append("first_seen_at")  # the time of the fetch, not of the writing
        order = ", ".join(dbmod.primary_key(table))
        rows[table] = database.execute(
            f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"
        ).fetchall()
    rows["search"] = search_index(database)
    return rows


@pytest.mark.parametrize("worker", [False, True], ids=["inline", "worker"])
def test_a_new_database_takes_the_fast_path_to_the_same_archive(
    archive, tmp_path, monkeypatch, worker
):
    """Into a database with nothing in it, reparse builds the secondary indexes once at the
    end and looks up no fetch rows, and the writer parses pages when it waits for the reading
    process: the very archive the general path builds -- with every page handed over to the
    writer here."""
    from kremlin_archive.jobs import reparse as job

    general = dbmod.open_db(tmp_path / "general.db")
    with monkeypatch.context() as patch:
        patch.setattr(job, "_filled_from_nothing", lambda db, existing: False)
        job.reparse(general, archive["warc"], worker=False)
    read = job._read
    monkeypatch.setattr(job, "_read", lambda *args, **_: read(*args, hand_over=lambda: True))
    fast = dbmod.open_db(tmp_path / "fast.db")
    job.reparse(fast, archive["warc"], worker=worker)
    assert every_row(fast) == every_row(general)
    assert every_row(fast)["persons"] and every_row(fast)["revisions"]
    no_half_events(fast)
    assert list(fast.execute("PRAGMA integrity_check")) == [("ok",)]


def crawled_copy(archive, path: Path):
    """The archive the crawl built, copied (to reparse it as it is)."""
    dbmod.connect(archive["db"]).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(archive["db"], path)
    return dbmod.connect(path)


@pytest.mark.parametrize("handed", [False, True], ids=["reading-process", "handed-to-writer"])
def test_the_latest_captures_of_held_events_are_parsed_beside_the_writes(
    archive, tmp_path, monkeypatch, handed
):
    """A reparse of the archive a crawl built, after a parser change: the latest capture of
    every event it holds is parsed in the reading process (or by the writer, when handed
    over), and the archive is the very one an inline reparse makes."""
    import os

    from kremlin_archive import parsing
    from kremlin_archive.jobs import reparse as job

    original = parsing.parse_event
    parsers = tmp_path / "parsers"  # the process id of every parse, one per line

    def shouting_parser(body, url):
        with parsers.open("a") as out:
            out.write(f"{os.getpid()}\n")
        transcript = original(body, url)
        transcript.title = transcript.title.upper()
        return transcript

    monkeypatch.setattr(parsing, "parse_event", shouting_parser)
    monkeypatch.setattr(parsing, "PARSER_VERSION", "test-upper")
    inline = crawled_copy(archive, tmp_path / "inline.db")
    job.reparse(inline, archive["warc"], worker=False)
    parsers.unlink()
    read = job._read
    monkeypatch.setattr(job, "_read", lambda *args, **_: read(*args, hand_over=lambda: handed))
    database = crawled_copy(archive, tmp_path / "worker.db")
    result = job.reparse(database, archive["warc"], worker=True)
    events = count_rows(database, "events")
    assert result.outcomes["changed"] == result.events_parsed == events
    assert every_row(database) == every_row(inline)
    no_half_events(database)
    pids = parsers.read_text().split()
    assert len(pids) == events
    if handed:
        assert set(pids) == {str(os.getpid())}
    else:
        assert str(os.getpid()) not in pids and len(set(pids)) == 1


@pytest.mark.parametrize("worker", [False, True], ids=["inline", "worker"])
def test_a_latest_capture_that_cannot_be_read_back_is_recorded(
    archive, tmp_path, monkeypatch, worker
):
    """Read once in order, then again at its location: a latest capture that is no longer
    readable then (the file changed in between) is an error of stage 'warc'; the other
    events are reparsed."""
    from kremlin_archive import warc
    from kremlin_archive.jobs.reparse import reparse

    database = crawled_copy(archive, tmp_path / "copy.db")
    victim = database.execute(
        "SELECT warc_filename, warc_offset FROM fetches WHERE event_id = 'ru-66419' "
        "AND status = 200 ORDER BY id DESC LIMIT 1"
    ).fetchone()
    real_read = warc.RecordReader.read

    def read(self, loc):
        if (loc.filename, loc.offset) == tuple(victim):
            raise warc.WarcError("gone since the first pass")
        return real_read(self, loc)

    monkeypatch.setattr(warc.RecordReader, "read", read)
    result = reparse(database, archive["warc"], worker=worker)
    assert [(f, o) for f, o, _ in result.damaged] == [tuple(victim)]
    assert result.events_parsed == count_rows(database, "events") - 1
    errors = list(database.query("SELECT url, reason FROM errors WHERE stage = 'warc'"))
    assert errors == [{"url": f"{victim[0]}#{victim[1]}", "reason": "gone since the first pass"}]
