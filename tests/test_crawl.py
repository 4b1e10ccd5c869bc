"""End-to-end crawls through the replay server (the real 2020 capture of en.kremlin.ru, plus the
reconstructed Russian page of 66419) into a real SQLite file and WARC folder. No network."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from conftest import SEED_DIR, SEED_URL, content_snapshot, count_rows, load_transcript, run_cli

from kremlin_archive import db as dbmod
from kremlin_archive import parsing
from kremlin_archive.legacy_txt import format_txt

pytestmark = pytest.mark.slow

MARCH = ("--lang", "en", "--since", "2020-03-01", "--until", "2020-03-31")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def listed_in_march(mirror_dir) -> set[int]:
    """Independent expectation: every event that any captured listing or by-date page lists
    with a date in March 2020."""
    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    pages = [news.with_suffix(".html"), *news.glob("page/*.html"), *news.glob("by-date/*.html")]
    ids = set()
    for page in pages:
        listing = parsing.parse_listing(
            page.read_bytes(), "http://en.kremlin.ru/events/president/news"
        )
        ids |= {i.kremlin_id for i in listing.items if i.published_at.startswith("2020-03")}
    return ids


def seed_text() -> str:
    """The legacy record after the two normalisations its README names."""
    text = (SEED_DIR / "66419.txt").read_text(encoding="utf-8").replace("&lt;…&gt;", "<…>")
    return "\n".join(line.rstrip(" ") for line in text.split("\n"))


@pytest.fixture(scope="module")
def march(tmp_path_factory, mirror_dir):
    """One crawl of March 2020 and one fetch of the seed URL into the same archive, then both
    repeated; the state after each step is kept for the tests below."""
    from conftest import RU_66419_PAGE, RU_66419_URL

    from kremlin_archive.devtools.replay import ReplayServer

    home = tmp_path_factory.mktemp("march")
    db_path, warc = str(home / "kremlin.db"), str(home / "warc")
    paths = ("--db", db_path, "--warc-dir", warc)
    state = {"db": db_path, "warc": warc}
    with ReplayServer(mirror_dir) as replay:
        replay.put_file(RU_66419_URL, RU_66419_PAGE)
        state["crawl1"] = run_cli("crawl", *MARCH, *paths, proxy=replay.proxy_url)
        state["fetch1"] = run_cli("fetch", SEED_URL, *paths, proxy=replay.proxy_url)
        database = dbmod.connect(db_path)
        state["snapshot1"] = content_snapshot(database)
        state["fetches1"] = database.table("fetches").count
        state["requests1"] = len(replay.log)
        state["crawl2"] = run_cli("crawl", *MARCH, *paths, proxy=replay.proxy_url)
        state["fetch2"] = run_cli("fetch", SEED_URL, *paths, proxy=replay.proxy_url)
        state["snapshot2"] = content_snapshot(database)
        state["log"] = replay.log
    return state


def _db(state):
    return dbmod.connect(state["db"])


def test_crawl_and_fetch_exit_zero(march):
    for step in ("crawl1", "fetch1", "crawl2", "fetch2"):
        result = march[step]
        assert result.returncode == 0, f"{step}: {result.stderr[-3000:]}"


def test_crawl_stores_every_listed_event(march, mirror_dir):
    database = _db(march)
    expected = listed_in_march(mirror_dir)
    assert len(expected) > 90
    stored = {r[0] for r in database.execute("SELECT kremlin_id FROM events WHERE lang = 'en'")}
    missing = {
        int(r[0].rsplit("/", 1)[1])
        for r in database.execute("SELECT url FROM errors WHERE stage = 'fetch' AND status = 404")
    }
    assert stored | missing == expected
    assert stored.isdisjoint(missing)
    # every stored one is on disk, every missing one is not: the capture decides, not the crawler
    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    assert all((news / f"{i}.html").exists() for i in stored)
    assert not any((news / f"{i}.html").exists() for i in missing)
    assert all(
        row["published_at"].startswith("2020-03")
        for row in database.query("SELECT published_at FROM events WHERE lang = 'en'")
    )


def test_missing_page_is_a_404_fetch_and_an_error(march):
    database = _db(march)
    rows = list(
        database.query(
            "SELECT e.url, e.reason, f.status, f.kind FROM errors e "
            "JOIN fetches f ON f.id = e.fetch_id WHERE e.stage = 'fetch'"
        )
    )
    assert rows, "the capture lacks some listed pages; they must be recorded"
    assert all(r["status"] == 404 and r["kind"] == "event" for r in rows)
    assert all("404" in r["reason"] for r in rows)


def test_every_event_points_at_a_200_fetch_with_digest_and_utc_time(march):
    database = _db(march)
    rows = list(
        database.query(
            "SELECT e.id, f.status, f.payload_sha256, f.fetched_at, f.url, e.url AS event_url "
            "FROM events e LEFT JOIN fetches f ON f.id = e.fetch_id"
        )
    )
    assert rows
    for row in rows:
        assert row["status"] == 200, row
        assert re.fullmatch(r"[0-9a-f]{64}", row["payload_sha256"]), row
        assert ISO_UTC.match(row["fetched_at"]), row
        assert row["url"] == row["event_url"]


def test_run_counts_add_up(march):
    database = _db(march)
    runs = list(database.query("SELECT * FROM runs ORDER BY started_at"))
    assert [r["status"] for r in runs] == ["finished"] * 4
    first = runs[0]
    counts = json.loads(first["counts"])
    stored = database.execute("SELECT count(*) FROM events WHERE lang = 'en'").fetchone()[0]
    assert first["events_new"] == stored
    assert counts["events_requested"] == counts["events_listed"]
    assert counts["events_requested"] == (
        counts["events_new"] + counts["events_changed"] + counts["events_unchanged"]
        + counts["events_failed"]
    )  # fmt: skip
    assert first["errors"] == count_rows(database, "errors", "run_id = ?", [first["id"]])
    assert first["requests"] == count_rows(database, "fetches", "run_id = ?", [first["id"]])


def test_seed_url_is_fetched_as_its_canonical_page(march):
    database = _db(march)
    fetches = database.query("SELECT * FROM fetches WHERE event_id = 'ru-66419' ORDER BY id")
    fetch = next(iter(fetches))
    assert fetch["url"] == "http://kremlin.ru/events/president/news/66419"
    assert fetch["requested_url"] == SEED_URL
    assert not any("/copy/" in r.url for r in march["log"]), "robots.txt forbids /copy/"


def test_seed_event_stored_with_utterances_and_tags(march):
    """ru-66419 comes from the reconstructed page (real template + legacy text)."""
    database = _db(march)
    event = database.table("events").get("ru-66419")
    assert event["published_at"] == "2021-08-21T13:10:00+03:00"
    assert event["place"] == "Москва, Кремль"
    speakers = [r[0] for r in database.execute(
        "SELECT speaker FROM utterances WHERE event_id = 'ru-66419' ORDER BY seq")]  # fmt: skip
    assert speakers == ["В.Путин", "К.-Ж.Токаев"]
    kinds = {r[0] for r in database.execute(
        "SELECT t.kind FROM event_tags et JOIN tags t ON t.id = et.tag_id "
        "WHERE et.event_id = 'ru-66419'")}  # fmt: skip
    assert {"topic", "person", "geography", "section"} <= kinds


def test_a_crawl_resolves_every_labelled_turn_to_a_person(march):
    """Each turn is resolved as it is stored; the run settles what rests on the whole archive
    at its end and says so in its counts."""
    database = _db(march)
    assert (
        count_rows(database, "utterances", "speaker IS NOT NULL AND person_evidence IS NULL") == 0
    )
    first = next(database.query("SELECT counts FROM runs ORDER BY started_at"))
    assert json.loads(first["counts"])["persons"]["labels"] > 0
    speakers = dict(database.execute(
        "SELECT speaker, person_id FROM utterances WHERE event_id = 'ru-66419' "
        "AND speaker IS NOT NULL"
    ).fetchall())  # fmt: skip
    assert speakers == {"В.Путин": "a-vladimir-putin", "К.-Ж.Токаев": "1640"}
    counts = dbmod.person_counts(database)
    assert counts["resolved"] >= 0.97 * (counts["labelled_turns"] - counts["roles"])
    putin = database.table("persons").get("a-vladimir-putin")
    assert putin["turns_ru"] == 1 and putin["turns_en"] > 100


def test_seed_event_exports_as_the_legacy_text(march):
    database = _db(march)
    assert format_txt(load_transcript(database, "ru-66419")) == seed_text()


def test_rerun_changes_no_content_and_adds_fetches(march):
    assert march["snapshot1"] == march["snapshot2"]
    database = _db(march)
    assert database.table("fetches").count > march["fetches1"]
    assert database.table("revisions").count == 0
    duplicates = database.execute(
        "SELECT count(*) FROM "
        "(SELECT event_id, seq FROM utterances GROUP BY 1, 2 HAVING count(*) > 1)"
    ).fetchone()[0]
    assert duplicates == 0
    second_runs = [r[0] for r in database.execute("SELECT id FROM runs ORDER BY started_at")][2:]
    for run_id in second_runs:
        assert count_rows(database, "fetches", "run_id = ?", [run_id]) > 0


@pytest.mark.parametrize(
    "bad",
    ["file:///etc/passwd", "http://127.0.0.1/", "http://example.com/x", "garbage ~~ not a url"],
)
def test_fetch_refuses_bad_input_without_requests(bad, tmp_path, replay):
    result = run_cli("fetch", bad, "--db", str(tmp_path / "k.db"), proxy=replay.proxy_url)
    assert result.returncode == 2
    assert bad in result.stderr
    assert "refused" in result.stderr
    assert replay.log == []
    assert not (tmp_path / "k.db").exists()


def test_fetch_mixed_input_fetches_the_valid_and_records_the_rest(tmp_path, replay):
    db_path = tmp_path / "k.db"
    result = run_cli(
        "fetch", "http://example.com/x", SEED_URL, "--db", str(db_path), "--warc-dir",
        str(tmp_path / "warc"), proxy=replay.proxy_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    database = dbmod.connect(db_path)
    assert database.table("events").get("ru-66419")
    errors = list(database.query("SELECT url, stage FROM errors"))
    assert errors == [{"url": "http://example.com/x", "stage": "input"}]
    assert not any("example.com" in r.url for r in replay.log)


def test_datasette_opens_the_archive_and_finds_a_seed_phrase(march):
    from datasette.app import Datasette

    async def search():
        ds = Datasette([march["db"]])
        name = ds.get_database().name
        response = await ds.client.get(
            f"/{name}/utterances.json",
            params={"_search": "сопредельные регионы", "_shape": "objects"},
        )
        return response

    response = asyncio.run(search())
    assert response.status_code == 200
    rows = response.json()["rows"]
    assert [r["event_id"] for r in rows] == ["ru-66419"]
    assert "70 процентов" in rows[0]["text"]


def test_second_crawl_is_cheap(march):
    """The second crawl skips stored events: it asks for listings and the missing pages only."""
    log = march["log"][march["requests1"] :]
    event_requests = [r for r in log if re.search(r"/news/\d+$", r.url)]
    database = _db(march)
    missing = database.execute(
        "SELECT count(DISTINCT url) FROM errors WHERE stage = 'fetch' AND status = 404"
    ).fetchone()[0]
    # the missing (404) pages are tried again, plus ru-66419 which `fetch` always asks for
    assert len(event_requests) == missing + 1


def test_crawl_dates_are_checked(tmp_path):
    result = run_cli("crawl", "--since", "2020-13-01", "--db", str(tmp_path / "k.db"))
    assert result.returncode == 2
    assert "2020-13-01" in result.stderr
    assert not (tmp_path / "k.db").exists()


def test_failed_listing_page_is_walked_around(tmp_path, replay, mirror_dir):
    """A listing page that keeps failing (HTTP 500 after every retry) is not the end of the
    archive: the walk re-enters through the by-date page of the oldest day seen."""
    replay.fault("http://en.kremlin.ru/events/president/news/page/22", 500)
    db_path = tmp_path / "k.db"
    result = run_cli(
        "crawl", *MARCH, "--db", str(db_path), "--warc-dir", str(tmp_path / "warc"),
        proxy=replay.proxy_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    database = dbmod.connect(db_path)
    assert database.execute("SELECT status FROM runs").fetchone()[0] == "finished"
    stored = {r[0] for r in database.execute("SELECT kremlin_id FROM events")}
    missing = {
        int(r[0].rsplit("/", 1)[1])
        for r in database.execute(
            "SELECT e.url FROM errors e JOIN fetches f ON f.id = e.fetch_id "
            "WHERE e.stage = 'fetch' AND e.status = 404 AND f.kind = 'event'"
        )
    }
    assert stored | missing == listed_in_march(mirror_dir)
    errors = list(database.query("SELECT url, reason FROM errors WHERE status = 500"))
    assert [e["url"] for e in errors] == ["http://en.kremlin.ru/events/president/news/page/22"]
    assert any("by-date" in r.url for r in replay.log[1:])


def test_listing_walk_that_cannot_go_on_is_incomplete_with_listings_only(tmp_path, replay):
    """The entry page itself fails and ids may not be walked: nothing to walk around it from.
    The run must not pass for a finished crawl of an empty month."""
    replay.fault("http://en.kremlin.ru/events/president/news/by-date/31.03.2020", 500)
    db_path = tmp_path / "k.db"
    result = run_cli(
        "crawl", *MARCH, "--discover", "listings", "--db", str(db_path), proxy=replay.proxy_url
    )
    assert result.returncode == 1
    assert "incomplete" in result.stderr
    database = dbmod.connect(db_path)
    assert database.execute("SELECT status FROM runs").fetchone()[0] == "incomplete"
    assert database.table("events").count == 0
    assert count_rows(database, "errors", "status = 500") == 1


def test_listing_walk_that_cannot_go_on_falls_back_to_walking_ids(tmp_path, replay):
    """The same failure by default: the month is found by id (the feed, probes) and archived."""
    replay.fault("http://en.kremlin.ru/events/president/news/by-date/31.03.2020", 500)
    db_path = tmp_path / "k.db"
    result = run_cli("crawl", *MARCH, "--db", str(db_path), proxy=replay.proxy_url)
    assert result.returncode == 0, result.stderr[-3000:]
    database = dbmod.connect(db_path)
    assert database.execute("SELECT status FROM runs").fetchone()[0] == "finished"
    march = count_rows(database, "events", "published_at LIKE '2020-03-%'")
    assert march == 94
