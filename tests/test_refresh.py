"""Incremental refresh, resumable backfill and one run at a time (issue 5), end to end through
the replay server on the real 2020 capture of en.kremlin.ru. Requests are counted in the
server's log; every crawl runs the CLI in a subprocess. No network.

The archive most tests start from is a crawl of `--since 2020-08-15`: listing page 1 (20 events,
2020-08-19..27, exactly the 20 entries of the captured feed) and the top of page 2 (14 events
down to 2020-08-15, two of which the capture lacks: 63907 and 63898 answer 404). So the archive
holds everything the feed and page 1 list: it is fully up to date.
"""

from __future__ import annotations

import collections
import copy
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import lxml.html
import pytest
from conftest import FAST, REPO, content_snapshot, run_cli

from kremlin_archive import db as dbmod
from kremlin_archive import parsing
from kremlin_archive.devtools.replay import ReplayServer
from kremlin_archive.lock import RunLock

pytestmark = pytest.mark.slow

NEWS = "http://en.kremlin.ru/events/president/news"
EVENT = re.compile(r"/events/president/news/(\d+)$")
LISTING = re.compile(r"/events/president/news(/page/\d+|/by-date/[\d.]+)?$")
SLICE = ("--lang", "en", "--since", "2020-08-15")
MISSING_IN_SLICE = {63907, 63898}  # listed on page 2, not in the capture
# The feed's newest entry is 2020-08-27: the default 7-day window is 2020-08-21..27.
WINDOW_7 = ("2020-08-21", "2020-08-27")


# -- helpers -----------------------------------------------------------------------------------


def paths(home: Path) -> tuple[str, ...]:
    return ("--db", str(home / "kremlin.db"), "--warc-dir", str(home / "warc"))


def connect(home: Path):
    return dbmod.connect(home / "kremlin.db")


def clone_archive(src: Path, dst: Path) -> Path:
    """A private copy of an archive (database through SQLite's backup API, WARC folder)."""
    dst.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src / "kremlin.db") as source, sqlite3.connect(dst / "kremlin.db") as to:
        source.backup(to)
    shutil.copytree(src / "warc", dst / "warc")
    return dst


def integrity(home: Path) -> str:
    with sqlite3.connect(home / "kremlin.db") as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def event_ids(log) -> list[int]:
    return [int(m.group(1)) for r in log if (m := EVENT.search(r.url))]


def listing_urls(log) -> list[str]:
    return [r.url for r in log if LISTING.search(r.url)]


def other_urls(log) -> list[str]:
    """Requests that are neither event pages, listings, the feed nor robots.txt."""
    return [
        r.url
        for r in log
        if not (EVENT.search(r.url) or LISTING.search(r.url))
        and not r.url.endswith(("/robots.txt", "/news/feed"))
    ]


def stored_ids(home: Path, where: str = "1 = 1", params=()) -> set[int]:
    database = connect(home)
    return {r[0] for r in database.execute(f"SELECT kremlin_id FROM events WHERE {where}", params)}


def ok(result) -> None:
    assert result.returncode == 0, result.stderr[-4000:]


# -- building "the site after k new events" from real bytes --------------------------------------


def news_file(mirror_dir: Path, page: int) -> Path:
    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    return news.with_suffix(".html") if page == 1 else news / "page" / f"{page}.html"


def reid(data: bytes, old: int, new: int) -> bytes:
    """`data` with every occurrence of the id `old` (as a whole number) replaced by `new`."""
    return re.sub(rb"(?<!\d)%d(?!\d)" % old, b"%d" % new, data)


def listing_items(mirror_dir: Path, page: int) -> list:
    root = lxml.html.fromstring(news_file(mirror_dir, page).read_bytes())
    return root.xpath("//div[contains(@class, 'lister-page')]/div[@data-id]")


def render_listing(mirror_dir: Path, page: int, items: list) -> bytes:
    """Captured listing page `page` with its items replaced by `items` (day headers dropped)."""
    root = lxml.html.fromstring(news_file(mirror_dir, page).read_bytes())
    lister = root.xpath("//div[contains(@class, 'lister-page')]")[0]
    for child in lister.xpath("./div[@data-id] | ./h2[contains(@class, 'events__title')]"):
        lister.remove(child)
    for item in items:
        lister.append(copy.deepcopy(item))
    return lxml.html.tostring(root, doctype="<!doctype html>", encoding="utf-8")


def publish_new_events(replay: ReplayServer, mirror_dir: Path, k: int, *, missing=()) -> list[int]:
    """Make the replayed site look as if k events were published after the capture: new event
    pages (real pages of the capture under new ids 64001…, dated 2020-08-27), the feed with k
    new entries on top (still 20 entries), and the listing pages shifted by k as the live site
    shifts them. Ids in `missing` are listed but their pages are not served (404). Returns the
    new ids."""
    feed_path = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news" / "feed.xml"
    feed = feed_path.read_bytes()
    entries = re.findall(rb"<entry>.*?</entry>", feed, re.S)
    old_items = [item for page in (1, 2, 3, 4) for item in listing_items(mirror_dir, page)]
    templates = [int(item.get("data-id")) for item in old_items]
    new_ids, new_items, new_entries = [], [], []
    for i in range(k):
        # the capture's three newest events (2020-08-27) lend their pages: new events are
        # dated no earlier than what the archive holds, as they would be on the live site
        template = templates[i % 3]
        new_id = 64001 + i
        new_ids.append(new_id)
        if new_id not in missing:
            page = news_file(mirror_dir, 1).parent / "news" / f"{template}.html"
            replay.put(f"{NEWS}/{new_id}", reid(page.read_bytes(), template, new_id))
        item_html = lxml.html.tostring(old_items[i % 3], encoding="unicode")
        new_items.append(
            lxml.html.fragment_fromstring(reid(item_html.encode(), template, new_id).decode())
        )
        entry = next(e for e in entries if b"/news/%d<" % template in e)
        new_entries.append(reid(entry, template, new_id))
    start, end = feed.index(entries[0]), feed.index(entries[-1]) + len(entries[-1])
    kept = (new_entries + entries)[: len(entries)]
    replay.put(f"{NEWS}/feed", feed[:start] + b"".join(kept) + feed[end:])
    sequence = new_items + old_items
    for page in range(1, 5):
        chunk = sequence[(page - 1) * 20 : page * 20]
        url = NEWS if page == 1 else f"{NEWS}/page/{page}"
        replay.put(url, render_listing(mirror_dir, page, chunk))
    return new_ids


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_archive(tmp_path_factory, mirror_dir) -> Path:
    """The slice 2020-08-15..27 crawled once (replayed with ETags)."""
    home = tmp_path_factory.mktemp("base")
    with ReplayServer(mirror_dir, etags=True) as replay:
        ok(run_cli("crawl", *SLICE, *paths(home), proxy=replay.proxy_url))
    return home


@pytest.fixture
def archive(base_archive, tmp_path) -> Path:
    return clone_archive(base_archive, tmp_path / "archive")


@pytest.fixture
def site(mirror_dir):
    """The capture replayed with ETags (If-None-Match answered with 304)."""
    with ReplayServer(mirror_dir, etags=True) as server:
        yield server


# -- the starting point ------------------------------------------------------------------------


def test_base_archive_is_up_to_date_with_feed_and_first_page(base_archive, mirror_dir):
    feed = parsing.parse_feed(
        (news_file(mirror_dir, 1).parent / "news" / "feed.xml").read_bytes(), f"{NEWS}/feed"
    )
    first = parsing.parse_listing(news_file(mirror_dir, 1).read_bytes(), NEWS)
    stored = stored_ids(base_archive, "lang = 'en'")
    assert {e.kremlin_id for e in feed} <= stored
    assert {i.kremlin_id for i in first.items} <= stored
    assert len(stored) == 32
    missing = {
        int(r[0].rsplit("-", 1)[1])
        for r in connect(base_archive).execute(
            "SELECT event_id FROM fetches WHERE kind = 'event' AND status = 404"
        )
    }
    assert missing == MISSING_IN_SLICE


# -- refresh -----------------------------------------------------------------------------------


def test_refresh_of_an_up_to_date_archive(archive, site):
    """robots.txt + feed + one listing page + the recheck window (all 304), nothing else."""
    database = connect(archive)
    before = content_snapshot(database)
    fetches_before = database.table("fetches").count
    window = stored_ids(archive, "substr(published_at, 1, 10) BETWEEN ? AND ?", WINDOW_7)
    assert len(window) == 16

    result = run_cli("refresh", "--lang", "en", *paths(archive), proxy=site.proxy_url)
    ok(result)

    log = site.log
    print(f"up-to-date refresh: {len(log)} requests", collections.Counter(r.status for r in log))
    assert sorted(event_ids(log)) == sorted(window), "exactly the window, each once"
    assert listing_urls(log) == [NEWS]
    assert site.count(f"{NEWS}/feed") == 1
    assert site.count("/robots.txt") == 1
    assert other_urls(log) == []
    assert len(log) == 1 + 1 + 1 + len(window)
    # conditional requests: every recheck carried the stored ETag and got a 304
    rechecks = [r for r in log if EVENT.search(r.url)]
    assert all(r.headers.get("If-None-Match") for r in rechecks)
    assert all(r.status == 304 for r in rechecks)
    # a 304 adds a fetch row and changes nothing else
    assert content_snapshot(database) == before
    assert database.table("revisions").count == 0
    assert database.table("fetches").count == fetches_before + len(log)
    run = next(database.query("SELECT * FROM runs ORDER BY rowid DESC LIMIT 1"))
    assert (run["command"], run["status"]) == ("refresh", "finished")
    assert (run["events_new"], run["events_changed"], run["errors"]) == (0, 0, 0)


def test_recheck_window_follows_the_site_not_the_wall_clock(archive, site):
    """The clock says 2026; the window still ends at the feed's newest day (2020-08-27)."""
    ok(run_cli("refresh", "--lang", "en", "--recheck-days", "1", *paths(archive),
               proxy=site.proxy_url))  # fmt: skip
    assert sorted(event_ids(site.log)) == sorted(
        stored_ids(archive, "substr(published_at, 1, 10) = '2020-08-27'")
    )
    assert len(event_ids(site.log)) == 3


@pytest.mark.parametrize("k", [3, 25])
def test_refresh_fetches_exactly_the_new_events(archive, site, mirror_dir, k):
    new_ids = publish_new_events(site, mirror_dir, k)
    ok(run_cli("refresh", "--lang", "en", "--recheck-days", "0", *paths(archive),
               proxy=site.proxy_url))  # fmt: skip
    log = site.log
    print(f"k={k}: {len(event_ids(log))} event pages, {len(listing_urls(log))} listing pages")
    assert sorted(event_ids(log)) == new_ids, "each new event once, nothing else"
    assert len(listing_urls(log)) <= math.ceil(k / 20) + 2
    assert other_urls(log) == []
    assert new_ids and set(new_ids) <= stored_ids(archive)
    database = connect(archive)
    run = next(database.query("SELECT * FROM runs ORDER BY rowid DESC LIMIT 1"))
    assert run["events_new"] == k


def test_known_missing_event_is_not_asked_for_again(archive, site, mirror_dir):
    """A listed event that answered 404 is not retried by refresh for --missing-days, and does
    not count as new (the walk stops at page 1)."""
    new_ids = publish_new_events(site, mirror_dir, 2, missing={64002})
    refresh = ("refresh", "--lang", "en", "--recheck-days", "0", *paths(archive))
    ok(run_cli(*refresh, proxy=site.proxy_url))
    assert sorted(event_ids(site.log)) == new_ids
    assert 64002 not in stored_ids(archive)

    site.clear_log()
    ok(run_cli(*refresh, proxy=site.proxy_url))
    assert event_ids(site.log) == []
    assert listing_urls(site.log) == [NEWS]

    site.clear_log()
    ok(run_cli(*refresh, "--missing-days", "0", proxy=site.proxy_url))
    assert event_ids(site.log) == [64002], "with --missing-days 0 it is asked for again"


def _edited(mirror_dir: Path, kremlin_id: int) -> bytes:
    page = (news_file(mirror_dir, 1).parent / "news" / f"{kremlin_id}.html").read_bytes()
    # the first body paragraph gets a correction, as the press office does
    body = page.index(b"read__internal_content")
    end = page.index(b"</p>", body)
    return page[:end] + b" (Corrected.)" + page[end:]


def test_edit_inside_the_window_becomes_a_revision_outside_waits(archive, site, mirror_dir):
    inside, outside = 63940, 63893  # published 2020-08-25 and 2020-08-15
    database = connect(archive)
    assert next(database.query("SELECT published_at FROM events WHERE id = 'en-63940'"))[
        "published_at"
    ].startswith("2020-08-25")
    for kremlin_id in (inside, outside):
        edited = _edited(mirror_dir, kremlin_id)
        assert b"(Corrected.)" in edited
        site.put(f"{NEWS}/{kremlin_id}", edited)

    ok(run_cli("refresh", "--lang", "en", *paths(archive), proxy=site.proxy_url))
    assert inside in event_ids(site.log)
    assert outside not in event_ids(site.log)
    revisions = [r["event_id"] for r in database.query("SELECT event_id FROM revisions")]
    assert revisions == ["en-63940"]
    assert "(Corrected.)" in database.table("events").get("en-63940")["text"]
    assert "(Corrected.)" not in database.table("events").get("en-63893")["text"]

    site.clear_log()
    ok(run_cli("refresh", "--lang", "en", "--recheck-days", "400", *paths(archive),
               proxy=site.proxy_url))  # fmt: skip
    assert outside in event_ids(site.log)
    revisions = sorted(r["event_id"] for r in database.query("SELECT event_id FROM revisions"))
    assert revisions == ["en-63893", "en-63940"]
    assert "(Corrected.)" in database.table("events").get("en-63893")["text"]
    # every stored event of the slice was rechecked once; only the two edits changed anything
    assert sorted(event_ids(site.log)) == sorted(stored_ids(archive))
    run = next(database.query("SELECT * FROM runs ORDER BY rowid DESC LIMIT 1"))
    assert (run["events_new"], run["events_changed"]) == (0, 1)


def test_identical_payload_without_validators_changes_nothing(archive, site):
    """A server that ignores validators (kremlin.ru sent neither ETag nor Last-Modified in
    2020) sends the page whole; an identical payload adds a fetch row (a WARC revisit) and
    nothing else."""
    site.etags = False
    database = connect(archive)
    before = content_snapshot(database)
    ok(run_cli("refresh", "--lang", "en", *paths(archive), proxy=site.proxy_url))
    rechecks = [r for r in site.log if EVENT.search(r.url)]
    assert len(rechecks) == 16 and all(r.status == 200 for r in rechecks)
    assert content_snapshot(database) == before
    assert database.table("revisions").count == 0
    run_id = next(database.query("SELECT id FROM runs ORDER BY rowid DESC LIMIT 1"))["id"]
    types = collections.Counter(
        r[0]
        for r in database.execute(
            "SELECT warc_record_type FROM fetches WHERE run_id = ? AND kind = 'event'", [run_id]
        )
    )
    assert types == {"revisit": 16}


# -- interrupted backfills ---------------------------------------------------------------------

BACKFILL = ("crawl", "--lang", "en", "--since", "2020-07-20")
# Two requests at a time and a little latency per event page, so that kills land mid-crawl.
PACED = (*FAST, "CONCURRENT_REQUESTS_PER_DOMAIN=2")


def _cli_command(*args: str, settings=PACED) -> list[str]:
    command = [sys.executable, "-m", "kremlin_archive.cli", *args]
    for setting in settings:
        command += ["-s", setting]
    return command


def _popen(args, proxy: str, settings=PACED) -> subprocess.Popen:
    env = {**os.environ, "http_proxy": proxy, "no_proxy": ""}
    env.pop("https_proxy", None)
    return subprocess.Popen(
        _cli_command(*args, settings=settings),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_requests(replay: ReplayServer, n: int, proc: subprocess.Popen, timeout=60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = len(replay.log)
        if count >= n:
            return count
        if proc.poll() is not None:
            pytest.fail(f"the crawl ended before {n} requests:\n{proc.stderr.read()[-3000:]}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"no {n} requests within {timeout} s")


@pytest.fixture(scope="module")
def backfill_baseline(tmp_path_factory, mirror_dir):
    """An uninterrupted backfill: its content and how often it asked for each URL."""
    home = tmp_path_factory.mktemp("baseline")
    with ReplayServer(mirror_dir) as replay:
        replay.fault(EVENT, "slow", delay=0.03)
        ok(run_cli(*BACKFILL, *paths(home), proxy=replay.proxy_url, settings=PACED))
        counts = collections.Counter(r.url for r in replay.log)
    snapshot = content_snapshot(connect(home))
    assert len(snapshot["events"]) > 80
    return {"snapshot": snapshot, "counts": counts, "total": sum(counts.values())}


@pytest.mark.parametrize("point", ["early", "middle", "late"])
def test_sigkill_then_resume_matches_an_uninterrupted_crawl(
    point, backfill_baseline, mirror_dir, tmp_path
):
    total = backfill_baseline["total"]
    kill_after = {"early": 4, "middle": total // 2, "late": total - 8}[point]
    home = tmp_path / "archive"
    with ReplayServer(mirror_dir) as replay:
        replay.fault(EVENT, "slow", delay=0.03)
        proc = _popen((*BACKFILL, *paths(home)), replay.proxy_url)
        seen = _wait_for_requests(replay, kill_after, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert integrity(home) == "ok"
        database = connect(home)
        stored_at_kill = database.table("events").count
        assert [r["status"] for r in database.query("SELECT status FROM runs")] == ["running"]

        ok(run_cli(*BACKFILL, *paths(home), proxy=replay.proxy_url, settings=PACED))
        counts = collections.Counter(r.url for r in replay.log)
    print(f"{point}: killed after {seen} requests with {stored_at_kill} events stored; "
          f"{sum(counts.values())} requests in all vs {total} uninterrupted")  # fmt: skip
    assert integrity(home) == "ok"
    assert content_snapshot(database) == backfill_baseline["snapshot"]
    baseline = backfill_baseline["counts"]
    assert set(counts) <= set(baseline)
    too_many = {url: n for url, n in counts.items() if n > baseline[url] + 1}
    assert too_many == {}, "each page at most once more than in the uninterrupted run"
    runs = list(database.query("SELECT status, finish_reason FROM runs ORDER BY rowid"))
    assert runs == [
        {"status": "interrupted", "finish_reason": "killed"},
        {"status": "finished", "finish_reason": "finished"},
    ]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_or_ctrl_c_marks_the_run_interrupted_and_resumes(
    signum, backfill_baseline, mirror_dir, tmp_path
):
    home = tmp_path / "archive"
    with ReplayServer(mirror_dir) as replay:
        replay.fault(EVENT, "slow", delay=0.03)
        proc = _popen((*BACKFILL, *paths(home)), replay.proxy_url)
        _wait_for_requests(replay, backfill_baseline["total"] // 3, proc)
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err[-3000:]
        assert "interrupted" in err
        assert integrity(home) == "ok"
        database = connect(home)
        run = next(database.query("SELECT * FROM runs"))
        assert (run["status"], run["finish_reason"]) == ("interrupted", "shutdown")
        assert run["finished_at"]
        ok(run_cli(*BACKFILL, *paths(home), proxy=replay.proxy_url, settings=PACED))
    assert content_snapshot(database) == backfill_baseline["snapshot"]


# -- one run at a time -------------------------------------------------------------------------


def test_a_run_is_refused_while_another_holds_the_database(archive, site):
    database = connect(archive)
    runs_before = database.table("runs").count
    with RunLock(archive / "kremlin.db"):
        result = run_cli("refresh", "--lang", "en", *paths(archive), proxy=site.proxy_url)
        assert result.returncode == 4
        assert "another run is using this database" in result.stderr
        # `scrapy crawl` (and so scrapyd) is refused by the CrawlRun extension
        env = {**os.environ, "http_proxy": site.proxy_url}
        scrapy = subprocess.run(
            [sys.executable, "-m", "scrapy", "crawl", "kremlin", "-a", "lang=en",
             "-a", "mode=refresh", "-s", f"KREMLIN_DB={archive / 'kremlin.db'}",
             "-s", f"KREMLIN_WARC_DIR={archive / 'warc'}"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert scrapy.returncode != 0
        assert "another run is using this database" in scrapy.stderr
    assert site.log == []
    assert database.table("runs").count == runs_before
    assert integrity(archive) == "ok"


def test_two_runs_started_together(mirror_dir, tmp_path):
    home = tmp_path / "archive"
    with ReplayServer(mirror_dir) as replay:
        # a crawl of several seconds, so that both runs are alive at the same time
        replay.fault(EVENT, "slow", delay=0.1)
        procs = [_popen((*BACKFILL, *paths(home)), replay.proxy_url) for _ in range(2)]
        results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _out, _err in results)
    assert codes == [0, 4], [err[-2000:] for _c, _o, err in results]
    refused = next(err for code, _out, err in results if code == 4)
    assert "another run is using this database" in refused
    assert "lock file" in refused
    assert integrity(home) == "ok"
    database = connect(home)
    assert [r["status"] for r in database.query("SELECT status FROM runs")] == ["finished"]
    assert database.table("events").count > 80


def test_refresh_under_lying_listings_stores_the_new_events_by_walking_ids(
    archive, site, mirror_dir
):
    """25 new events, and every page/N answering with page 1 (as the live site since 2026):
    the feed's and page 1's new events are stored all the same, the lie is recorded, and the
    ids from the archive's newest day to beyond the feed's newest are walked instead of
    trusting page 2 -- so the five events only page 2 lists are stored too."""
    new_ids = publish_new_events(site, mirror_dir, 25)
    site.fault(re.compile(r"/news/page/\d+$"), "alias", to=NEWS)
    result = run_cli("refresh", "--lang", "en", "--recheck-days", "0", *paths(archive),
                     proxy=site.proxy_url)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(new_ids) <= stored_ids(archive)
    database = connect(archive)
    [error] = database.query("SELECT * FROM errors WHERE stage = 'discovery'")
    assert error["reason"] == f"lying listing: {NEWS}/page/2 answered with the content of page 1"
    run = next(database.query("SELECT * FROM runs ORDER BY rowid DESC LIMIT 1"))
    counts = json.loads(run["counts"])
    assert counts["listings_untrusted"] == error["reason"]
    lo, hi = map(int, counts["idwalk/range"].split("-"))
    assert lo <= min(new_ids) and hi >= max(new_ids) + 20
    assert "listings not trusted: lying listing" in result.stderr
    assert run["status"] == "finished"
    asked = event_ids(site.log)
    assert len(asked) == len(set(asked)), "an id asked twice"
