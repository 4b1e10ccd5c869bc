"""Completeness you can prove (issue 13), end to end through the replay server on the real 2020
capture: March 2020 en with honest listings, with listings that lie (every page/N answering
with page 1; by-date pages too; listing pages answering 404), an id walk of given ids, honest
endings, the `coverage` command and the ledger rebuilt by `reparse`.

March 2020 has 104 en events in the capture's listings (ids 62,888-63,088); 94 of their pages
are captured, 10 are not (they answer 404)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import assert_sound, cli_run, count_rows, run_cli

from kremlin_archive import db as dbmod
from kremlin_archive import parsing

pytestmark = pytest.mark.slow

NEWS = "http://en.kremlin.ru/events/president/news"
MARCH = ("--lang", "en", "--since", "2020-03-01", "--until", "2020-03-31")
EVENT = re.compile(r"/events/president/news/(\d+)$")
LISTINGS = re.compile(r"/events/president/news(/page/\d+|/by-date/[\d.]+)?$")

# The listing faults of the live site, as the replay server injects them.
LIES = {
    "page/N repeats page 1": [(re.compile(r"/news/page/\d+$"), "alias", {"to": NEWS})],
    "by-date repeats page 1 too": [
        (re.compile(r"/news/page/\d+$"), "alias", {"to": NEWS}),
        (re.compile(r"/news/by-date/[\d.]+$"), "alias", {"to": NEWS}),
    ],
    "listing pages answer 404": [(LISTINGS, 404, {})],
}


@pytest.fixture(scope="module")
def march_listed(mirror_dir) -> dict[int, bool]:
    """The capture's listed en events of March 2020: id -> whether its page is captured."""
    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    listed = {}
    for path in (news / "by-date").glob("*.03.2020.html"):
        listing = parsing.parse_listing(path.read_bytes(), f"{NEWS}/by-date/{path.stem}")
        for item in listing.items:
            if item.published_at.startswith("2020-03"):
                listed[item.kremlin_id] = (news / f"{item.kremlin_id}.html").is_file()
    return listed


def test_the_capture_lists_104_march_events_94_captured(march_listed):
    assert (min(march_listed), max(march_listed), len(march_listed)) == (62888, 63088, 104)
    assert sum(march_listed.values()) == 94


def ledger(db_path: Path, where: str = "1 = 1") -> dict[str, str]:
    database = dbmod.connect(db_path)
    return dict(database.execute(f"SELECT id, state FROM coverage WHERE {where}").fetchall())


def stored_march(db_path: Path) -> set[int]:
    database = dbmod.connect(db_path)
    return {
        r[0]
        for r in database.execute(
            "SELECT kremlin_id FROM events WHERE lang = 'en' AND published_at LIKE '2020-03-%'"
        )
    }


def last_run(db_path: Path) -> dict:
    database = dbmod.connect(db_path)
    return next(database.query("SELECT * FROM runs ORDER BY rowid DESC LIMIT 1"))


def event_requests(log) -> list[int]:
    return [int(m.group(1)) for r in log if (m := EVENT.search(r.url))]


@pytest.fixture(scope="module")
def honest(tmp_path_factory, mirror_dir):
    """March 2020 en through honest listings."""
    from kremlin_archive.devtools.replay import ReplayServer

    home = tmp_path_factory.mktemp("honest")
    with ReplayServer(mirror_dir) as replay:
        run = cli_run(replay, home, "crawl", *MARCH)
    return run


@pytest.fixture(scope="module", params=sorted(LIES))
def lying(request, tmp_path_factory, mirror_dir):
    """March 2020 en through listings that lie, one way per parameter."""
    from kremlin_archive.devtools.replay import ReplayServer

    home = tmp_path_factory.mktemp("lying")
    with ReplayServer(mirror_dir) as replay:
        for pattern, kind, params in LIES[request.param]:
            replay.fault(pattern, kind, **params)
        run = cli_run(replay, home, "crawl", *MARCH)
    return request.param, run


def test_honest_listings_archive_march_and_account_for_every_listed_event(honest, march_listed):
    assert honest.result.returncode == 0, honest.result.stderr[-3000:]
    assert stored_march(honest.db_path) == {i for i, captured in march_listed.items() if captured}
    states = ledger(honest.db_path, "lang = 'en' AND kremlin_id BETWEEN 62888 AND 63088")
    for kremlin_id, captured in march_listed.items():
        assert states[f"en-{kremlin_id}"] == ("stored" if captured else "absent"), kremlin_id
    run = last_run(honest.db_path)
    counts = json.loads(run["counts"])
    assert run["status"] == "finished"
    assert (counts["ids_window"], counts["ids_unaccounted"]) == (104, 0)
    assert counts["listings_untrusted"] is None
    assert_sound(honest.db_path, honest.warc)


def test_honest_listings_cost_no_more_than_before(honest):
    """robots.txt, the by-date entry page, 6 listing pages, 104 events: 111 requests, as
    before the checks and the ledger."""
    assert len(honest.log) == 111
    assert len(event_requests(honest.log)) == 104


def test_lying_listings_end_with_the_same_archive(lying, honest, march_listed):
    name, run = lying
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    assert stored_march(run.db_path) == stored_march(honest.db_path), name
    states = ledger(run.db_path, "lang = 'en'")
    for kremlin_id, captured in march_listed.items():
        assert states[f"en-{kremlin_id}"] == ("stored" if captured else "absent"), kremlin_id
    # ... and every id of the range walked is accounted for, the id of other sections too.
    summary = last_run(run.db_path)
    counts = json.loads(summary["counts"])
    lo, hi = map(int, counts["idwalk/range"].split("-"))
    assert lo <= 62888 and hi >= 63088
    walked = ledger(run.db_path, f"lang = 'en' AND kremlin_id BETWEEN {lo} AND {hi}")
    assert len(walked) == hi - lo + 1
    assert set(walked.values()) <= {"stored", "absent"}
    assert summary["status"] == "finished"
    assert_sound(run.db_path, run.warc)


def test_lying_listings_are_named_as_such(lying):
    name, run = lying
    errors = run.rows("SELECT * FROM errors WHERE stage = 'discovery'")
    assert len(errors) == 1, errors
    reason = errors[0]["reason"]
    if name == "listing pages answer 404":
        assert reason == f"the listing walk could not get past {NEWS}/by-date/31.03.2020"
    elif name == "by-date repeats page 1 too":
        assert reason.startswith(f"lying listing: {NEWS}/by-date/31.03.2020 lists only 2020-08-")
    else:
        assert re.match(
            rf"lying listing: {NEWS}/page/\d+ answered with the content of page 1$", reason
        )
    counts = json.loads(last_run(run.db_path)["counts"])
    assert counts["listings_untrusted"] == reason
    assert f"listings not trusted: {reason}; ids " in run.result.stderr


def test_an_id_walk_costs_its_window_plus_its_probes(lying):
    """No id asked twice; event requests at most 1.1 x the ids of the walked window plus the
    probes (measured: the walk of March spans 259 ids, 62,878-63,136, for a window whose
    events span 201)."""
    name, run = lying
    asked = event_requests(run.log)
    assert len(asked) == len(set(asked)), "an id asked twice"
    counts = json.loads(last_run(run.db_path)["counts"])
    lo, hi = map(int, counts["idwalk/range"].split("-"))
    probes = counts["idwalk/probes"]
    assert len(asked) <= 1.1 * (hi - lo + 1) + probes, (name, len(asked), lo, hi, probes)
    assert hi - lo + 1 <= 1.35 * (63088 - 62888 + 1)
    print(
        f"{name}: {len(run.log)} requests, {len(asked)} event pages, ids {lo}-{hi}, {probes} probes"
    )


def test_ids_walk_exactly_the_ids_given(tmp_path, mirror_dir):
    """`crawl --ids`: the ledger equals, id by id, what the capture holds for the range."""
    from kremlin_archive.devtools.replay import ReplayServer

    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    with ReplayServer(mirror_dir) as replay:
        run = cli_run(replay, tmp_path, "crawl", "--lang", "en", "--ids", "62888-63088")
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    expected = {
        f"en-{i}": "stored" if (news / f"{i}.html").is_file() else "absent"
        for i in range(62888, 63089)
    }
    assert ledger(run.db_path) == expected
    assert sorted(event_requests(run.log)) == list(range(62888, 63089))
    assert len(run.log) == 1 + 201  # robots.txt and each id once: no listing, no feed
    summary = last_run(run.db_path)
    assert summary["status"] == "finished"
    assert json.loads(summary["arguments"])["ids"] == "62888-63088"

    # Run again: every id is accounted for, nothing is asked.
    replay_log_before = len(run.log)
    with ReplayServer(mirror_dir) as replay:
        again = cli_run(replay, tmp_path, "crawl", "--lang", "en", "--ids", "62888-63088")
    assert again.result.returncode == 0
    assert event_requests(again.log) == [] and replay_log_before == 202


def test_a_failed_event_leaves_the_run_incomplete_with_the_command_to_resume(tmp_path, mirror_dir):
    from kremlin_archive.devtools.replay import ReplayServer

    with ReplayServer(mirror_dir) as replay:
        replay.fault(f"{NEWS}/63017", 503)  # every attempt
        run = cli_run(replay, tmp_path, "crawl", "--lang", "en", "--ids", "63015-63020")
    assert run.result.returncode == 1
    summary = last_run(run.db_path)
    counts = json.loads(summary["counts"])
    assert summary["status"] == "incomplete"
    assert (counts["ids_window"], counts["ids_unaccounted"]) == (6, 1)
    assert counts["gaps"] == {"en": {"failed": "63017"}}
    stderr = run.result.stderr
    assert (
        "incomplete: 1 of the 6 (language, id) pairs of its window are not stored or known "
        "absent (en failed 63017)" in stderr
    )
    assert "Resume with: kremlin-archive crawl --lang en --ids 63015-63020" in stderr
    assert ledger(run.db_path)["en-63017"] == "failed"

    # The same command later, with the site answering: only 63017 is asked, and it completes.
    with ReplayServer(mirror_dir) as replay:
        resumed = cli_run(replay, tmp_path, "crawl", "--lang", "en", "--ids", "63015-63020")
    assert resumed.result.returncode == 0, resumed.result.stderr[-2000:]
    assert event_requests(resumed.log) == [63017]
    assert ledger(resumed.db_path)["en-63017"] == "stored"
    assert last_run(resumed.db_path)["status"] == "finished"


def test_listings_only_never_walk_ids_and_say_the_run_is_incomplete(tmp_path, mirror_dir):
    from kremlin_archive.devtools.replay import ReplayServer

    with ReplayServer(mirror_dir) as replay:
        replay.fault(re.compile(r"/news/page/\d+$"), "alias", to=NEWS)
        run = cli_run(replay, tmp_path, "crawl", *MARCH, "--discover", "listings")
    assert run.result.returncode == 1
    summary = last_run(run.db_path)
    assert summary["status"] == "incomplete"
    assert "listings are not trusted" in json.loads(summary["counts"])["window_short"]
    assert "incomplete: listings are not trusted" in run.result.stderr


def test_discover_ids_walks_the_window_from_the_feed(tmp_path, mirror_dir, march_listed):
    """With --discover ids no listing is read: the feed and the probes place March."""
    from kremlin_archive.devtools.replay import ReplayServer

    with ReplayServer(mirror_dir) as replay:
        run = cli_run(replay, tmp_path, "crawl", *MARCH, "--discover", "ids")
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    assert not [r for r in run.log if LISTINGS.search(r.url)]
    assert stored_march(run.db_path) == {i for i, captured in march_listed.items() if captured}
    assert last_run(run.db_path)["status"] == "finished"


def test_coverage_command_prints_totals_and_unknown_ranges(honest):
    """After the honest listing walk: the 104 listed events are accounted for; the other 97
    ids of the range (other sections, ru-only items) were never asked: unknown."""
    result = run_cli("coverage", "--db", str(honest.db_path), "--lang", "en", "--since",
                     "2020-03-01", "--until", "2020-03-31")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Coverage of the ids the archive knows of 2020-03-01..2020-03-31: ids 62888-63088" in out
    table = dict(re.findall(r"^(stored|absent|unknown|total)\s+(\d+)$", out, re.M))
    assert table == {"stored": "94", "absent": "10", "unknown": "97", "total": "201"}
    assert "en: 97 id(s) not accounted for:" in out
    assert re.search(r"^  unknown: 62889, 62893-62914, ", out, re.M)
    data = json.loads(
        run_cli(
            "coverage",
            "--db",
            str(honest.db_path),
            "--lang",
            "en",
            "--ids",
            "62888-62892",
            "--json",
        ).stdout
    )
    assert data["langs"]["en"]["counts"]["stored"] + data["langs"]["en"]["counts"]["unknown"] == 5


def test_stats_show_the_ledger(honest):
    data = json.loads(run_cli("stats", "--db", str(honest.db_path), "--json").stdout)
    assert data["coverage"]["en"]["stored"] == count_rows(
        dbmod.connect(honest.db_path), "events", "lang = 'en'"
    )


def test_reparse_rebuilds_the_ledger(lying, tmp_path):
    """From the WARC files alone: the same state for every id the crawl's ledger holds."""
    _, run = lying
    fresh = tmp_path / "rebuilt.db"
    result = run_cli("reparse", "--db", str(fresh), "--warc-dir", str(run.warc))
    assert result.returncode == 0, result.stderr[-2000:]
    assert ledger(fresh) == ledger(run.db_path)


def test_an_archive_made_before_the_ledger_gets_one(honest, tmp_path):
    """The migration fills the ledger of an older archive from its events and fetches."""
    copy = tmp_path / "old.db"
    with sqlite3.connect(honest.db_path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as conn:
        conn.execute("DROP TABLE coverage")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm002_coverage_from_history'")
    assert ledger_after_open(copy) == {
        k: v for k, v in ledger(honest.db_path).items() if v != "listed"
    }


def ledger_after_open(path: Path) -> dict[str, str]:
    dbmod.open_db(path).conn.close()
    return ledger(path)
