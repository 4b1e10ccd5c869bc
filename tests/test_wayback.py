"""The Wayback Machine as a second source (issue 14): wayback.py (pure), the replay server
answering as web.archive.org (CDX index and raw captures served from the real capture, a
capture time per page, timestamp redirects, a small CDX page so that paging is exercised),
and crawls through it -- the site refusing or unreachable, --source wayback never touching a
kremlin host, provenance that never pretends, reparse, CDX faults survived."""

from __future__ import annotations

import itertools
import json
import re
import urllib.error
import urllib.request

import pytest
from conftest import RU_66419_PAGE, RU_66419_URL, SEED_DIR, SEED_URL, cli_run, run_cli

from kremlin_archive import db as dbmod
from kremlin_archive import parsing, wayback
from kremlin_archive.devtools.replay import ReplayServer, capture_times

NEWS = "http://en.kremlin.ru/events/president/news"
MARCH = ("--lang", "en", "--since", "2020-03-01", "--until", "2020-03-31")
KREMLIN = re.compile(r"^http://(www\.)?(en\.)?kremlin\.ru/")
CAPTURE = re.compile(r"^http://web\.archive\.org/web/(\d{14})id_/(.+)$")


# -- wayback.py --------------------------------------------------------------------------------


def test_id_prefixes_cover_exactly_the_range():
    for lo, hi in [(62888, 63088), (1, 100), (63000, 63000), (9, 11), (62878, 63136)]:
        prefixes = wayback.id_prefixes(lo, hi)
        covered = {
            i for i in range(lo, hi + 1) for p in prefixes if str(i).startswith(p)
        }  # every id of the range starts with one of them
        assert covered == set(range(lo, hi + 1)), (lo, hi)
    assert wayback.id_prefixes(62888, 63088)[:4] == ["62888", "62889", "6289", "629"]
    with pytest.raises(ValueError):
        wayback.id_prefixes(5, 4)


def cdx_body(rows, resume=None) -> bytes:
    data = [list(wayback.CDX_FIELDS), *rows]
    if resume:
        data += [[], [resume]]
    return json.dumps(data).encode()


ROW = ["ru,kremlin,en)/events/president/news/63017", "20200823064150",
       f"{NEWS}/63017", "text/html", "200", "ABC", "1000"]  # fmt: skip


def test_read_cdx_rows_and_resume_key():
    rows, resume = wayback.read_cdx(cdx_body([ROW], resume="key%20here"))
    assert resume == "key%20here"
    assert [(r.timestamp, r.original, r.event.key) for r in rows] == [
        ("20200823064150", f"{NEWS}/63017", "en-63017")
    ]
    assert wayback.read_cdx(b"") == ([], None)
    assert wayback.read_cdx(cdx_body([])) == ([], None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[["urlkey","timestamp"', "not JSON"),
        (b'{"rows": []}', "not a JSON array of rows"),
        (b'[["a","b"],["1","2"]]', "does not name the fields"),
        (cdx_body([ROW[:3]]), "does not match the fields"),
        (cdx_body([[*ROW[:1], "2020", *ROW[2:]]]), "no 14-digit timestamp"),
    ],
)
def test_read_cdx_refuses_what_it_cannot_read(body, message):
    with pytest.raises(wayback.CdxError, match=message):
        wayback.read_cdx(body)


def test_capture_urls_read_back():
    url = wayback.capture_url(wayback.DEFAULT_URL, f"{NEWS}/63017", "20200823064150")
    assert url == f"http://web.archive.org/web/20200823064150id_/{NEWS}/63017"
    assert wayback.read_capture_url(url) == ("20200823064150", f"{NEWS}/63017")
    squeezed = "http://web.archive.org/web/2020id_/http:/en.kremlin.ru/events/president/news/1"
    assert wayback.read_capture_url(squeezed) == (
        "2020",
        "http://en.kremlin.ru/events/president/news/1",
    )
    assert wayback.read_capture_url(f"{NEWS}/63017") is None


def test_the_best_capture_of_an_event():
    def row(original, timestamp="20200101000000"):
        return wayback.CdxRow(timestamp, original, "200", "text/html", "")

    rows = [
        row(f"{NEWS}/63017/photos", "20210101000000"),
        row(f"{NEWS}/copy/63017", "20210101000000"),
        row(f"{NEWS}/63017/print", "20210101000000"),
        row(f"{NEWS}/63017", "20200101000000"),
        row(f"{NEWS}/63017", "20200601000000"),
        row("http://en.kremlin.ru/events/president/transcripts/63018", "20200101000000"),
        row("http://en.kremlin.ru/about", "20200101000000"),
    ]
    best = wayback.best_capture(rows)
    assert set(best) == {"en-63017", "en-63018"}
    assert (best["en-63017"].original, best["en-63017"].timestamp) == (
        f"{NEWS}/63017",
        "20200601000000",
    )


# -- the replay server as web.archive.org -------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def opener(server: ReplayServer):
    proxy = urllib.request.ProxyHandler({"http": server.proxy_url})
    return urllib.request.build_opener(proxy, _NoRedirect)


@pytest.fixture
def archive_org(mirror_dir):
    with ReplayServer(mirror_dir, wayback=True, wayback_page_size=7) as server:
        yield server


def test_cdx_pages_with_resume_keys(archive_org):
    get = opener(archive_org)
    prefix = "en.kremlin.ru/events/president/news/629"
    seen, resume, pages = [], None, 0
    while True:
        url = wayback.cdx_query_url(wayback.DEFAULT_URL, prefix, limit=100, resume_key=resume)
        rows, resume = wayback.read_cdx(get.open(url).read())
        pages += 1
        assert len(rows) <= 7
        seen += [r.original for r in rows]
        if resume is None:
            break
    assert pages > 1 and len(seen) == len(set(seen))
    expected = {
        f"{NEWS}/{p.stem}"
        for p in (archive_org.mirror.root / "en.kremlin.ru/events/president/news").glob("629*.html")
    }
    assert set(seen) == expected


def test_a_raw_capture_redirects_to_the_nearest_timestamp(archive_org):
    get = opener(archive_org)
    original = f"{NEWS}/63017"
    times = capture_times("en.kremlin.ru", "/events/president/news/63017")
    with pytest.raises(urllib.error.HTTPError) as redirect:
        get.open(wayback.capture_url(wayback.DEFAULT_URL, original))
    assert redirect.value.code == 302
    location = redirect.value.headers["Location"]
    assert location == wayback.capture_url(wayback.DEFAULT_URL, original, times[-1])
    answer = get.open(location)
    body = answer.read()
    assert (
        body
        == (archive_org.mirror.root / "en.kremlin.ru/events/president/news/63017.html").read_bytes()
    )
    assert answer.headers["Memento-Datetime"]
    assert f'<{original}>; rel="original"' in answer.headers["Link"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        get.open(wayback.capture_url(wayback.DEFAULT_URL, f"{NEWS}/63002", times[0]))
    assert missing.value.code == 404  # listed, never captured


# -- crawls through it ------------------------------------------------------------------------


def captured_march(mirror_dir) -> set[int]:
    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    listed = set()
    for path in (news / "by-date").glob("*.03.2020.html"):
        for item in parsing.parse_listing(path.read_bytes(), f"{NEWS}/by-date/{path.stem}").items:
            if (
                item.published_at.startswith("2020-03")
                and (news / f"{item.kremlin_id}.html").is_file()
            ):
                listed.add(item.kremlin_id)
    return listed


def march_stored(db_path) -> dict[int, str]:
    database = dbmod.connect(db_path)
    return dict(
        database.execute(
            "SELECT kremlin_id, source FROM events "
            "WHERE lang = 'en' AND published_at LIKE '2020-03-%'"
        ).fetchall()
    )


def last_run(db_path) -> dict:
    return next(dbmod.connect(db_path).query("SELECT * FROM runs ORDER BY rowid DESC LIMIT 1"))


@pytest.fixture(scope="module")
def refused(tmp_path_factory, mirror_dir):
    """March 2020 en with --source auto while every kremlin host refuses (403)."""
    home = tmp_path_factory.mktemp("refused")
    with ReplayServer(mirror_dir, wayback=True, wayback_page_size=50) as server:
        server.fault(KREMLIN, "refuse")
        run = cli_run(server, home, "crawl", *MARCH, "--source", "auto")
    return run


@pytest.mark.slow
def test_auto_with_the_site_refusing_archives_march_from_the_wayback(refused, mirror_dir):
    assert refused.result.returncode == 0, refused.result.stderr[-3000:]
    stored = march_stored(refused.db_path)
    assert set(stored) == captured_march(mirror_dir) and len(stored) == 94
    assert set(stored.values()) == {"wayback"}
    run = last_run(refused.db_path)
    counts = json.loads(run["counts"])
    assert run["status"] == "finished"
    assert counts["events_from_wayback"] == counts["events_new"] >= 94
    assert "the site was not used after" in refused.result.stderr
    [unusable] = refused.rows("SELECT * FROM errors WHERE reason LIKE 'site unusable:%'")
    # refused before any page came: handed over after the listing and its one retry
    assert "refused: every request was answered HTTP 403" in unusable["reason"]
    coverage = run_cli("coverage", "--db", str(refused.db_path), "--lang", "en", "--since",
                       "2020-03-01", "--until", "2020-03-31", "--json")  # fmt: skip
    report = json.loads(coverage.stdout)["langs"]["en"]
    assert report["wayback_only"]["count"] == 94
    assert report["counts"]["stored"] == 94


@pytest.mark.slow
def test_every_fetch_says_who_answered_and_never_poses_as_the_site(refused):
    for fetch in refused.rows("SELECT * FROM fetches"):
        captured = CAPTURE.match(fetch["url"])
        if KREMLIN.match(fetch["url"]):
            assert fetch["source"] == "site"
        else:
            assert fetch["source"] == "wayback", fetch
            assert fetch["url"].startswith("http://web.archive.org/")
        if captured and fetch["status"] == 200:
            assert fetch["archive_url"] == fetch["url"]
            assert fetch["original_url"] == captured.group(2)
            stamp = captured.group(1)
            assert fetch["capture_time"] == (
                f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:{stamp[12:]}Z"
            )
    for event in refused.rows("SELECT e.*, f.url AS fetch_url, f.capture_time AS fetch_capture "
                              "FROM events e JOIN fetches f ON f.id = e.fetch_id"):  # fmt: skip
        assert event["source"] == "wayback" and CAPTURE.match(event["fetch_url"])
        assert event["capture_time"] == event["fetch_capture"]
        assert event["url"].startswith(NEWS)  # the event is named by the site's address


@pytest.mark.slow
def test_the_warc_holds_the_exchange_with_the_archive(refused):
    from kremlin_archive import warc

    fetch = refused.rows(
        "SELECT * FROM fetches WHERE source = 'wayback' AND status = 200 AND kind = 'event' LIMIT 1"
    )[0]
    capture = warc.read_record(refused.warc, fetch)
    assert capture.url == fetch["archive_url"]  # the request as it was made
    assert capture.header("Memento-Datetime")  # the capture time, from the archive's answer
    assert f'<{fetch["original_url"]}>; rel="original"' in capture.header("Link")


@pytest.mark.slow
def test_reparse_rebuilds_the_wayback_rows_and_their_provenance(refused, tmp_path):
    fresh = tmp_path / "rebuilt.db"
    result = run_cli("reparse", "--db", str(fresh), "--warc-dir", str(refused.warc))
    assert result.returncode == 0, result.stderr[-2000:]
    columns = "id, source, capture_time, content_hash"
    query = f"SELECT {columns} FROM events ORDER BY id"
    assert list(dbmod.connect(fresh).query(query)) == refused.rows(query)
    fetch_columns = (
        "warc_filename, warc_offset, source, archive_url, capture_time, original_url, status"
    )
    query = f"SELECT {fetch_columns} FROM fetches WHERE warc_filename IS NOT NULL ORDER BY 1, 2"
    assert list(dbmod.connect(fresh).query(query)) == refused.rows(query)
    ledger = "SELECT id, state, source FROM coverage ORDER BY id"
    assert list(dbmod.connect(fresh).query(ledger)) == refused.rows(ledger)


@pytest.mark.slow
def test_source_wayback_never_asks_a_kremlin_host(tmp_path, mirror_dir):
    with ReplayServer(mirror_dir, wayback=True, wayback_page_size=20) as server:
        run = cli_run(server, tmp_path, "crawl", *MARCH, "--source", "wayback")
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    assert [r.url for r in run.log if KREMLIN.match(r.url)] == []
    assert set(march_stored(run.db_path)) == captured_march(mirror_dir)
    # the index was read page by page (20 rows a page)
    assert any("resumeKey=" in r.url for r in run.log)


@pytest.mark.slow
def test_fetch_of_the_legacy_record_with_the_site_unreachable(tmp_path, mirror_dir):
    """`fetch --source auto` of the legacy corpus's URL while every kremlin connection is cut:
    ru-66419 comes from its capture, and its txt export still equals the legacy record (with
    the two documented normalisations)."""
    with ReplayServer(mirror_dir, wayback=True) as server:
        server.put_file(RU_66419_URL, RU_66419_PAGE)
        server.fault(KREMLIN, "reset", sent=0)
        run = cli_run(server, tmp_path, "fetch", SEED_URL, "--source", "auto")
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    [event] = run.rows("SELECT * FROM events")
    assert (event["id"], event["source"]) == ("ru-66419", "wayback")
    assert event["site_answer"].startswith("truncated:")
    out = tmp_path / "txt"
    assert (
        run_cli("export", "--db", str(run.db_path), "--format", "txt", "--out", str(out)).returncode
        == 0
    )
    legacy = (SEED_DIR / "66419.txt").read_text(encoding="utf-8")
    normalised = "\n".join(
        line.replace("&lt;", "<").replace("&gt;", ">").rstrip() for line in legacy.split("\n")
    )
    assert (out / "ru-66419.txt").read_text(encoding="utf-8") == normalised


@pytest.mark.slow
def test_a_page_the_site_removed_is_stored_from_its_capture_with_that_said(tmp_path, mirror_dir):
    with ReplayServer(mirror_dir, wayback=True) as server:
        server.fault(f"{NEWS}/63017", 404)
        run = cli_run(
            server, tmp_path, "fetch", f"{NEWS}/63017", f"{NEWS}/63020", "--source", "auto"
        )
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    events = {e["id"]: e for e in run.rows("SELECT * FROM events")}
    assert (events["en-63017"]["source"], events["en-63017"]["site_answer"]) == (
        "wayback",
        "not found (HTTP 404)",
    )
    assert (events["en-63020"]["source"], events["en-63020"]["site_answer"]) == ("site", None)
    [ledger] = run.rows("SELECT * FROM coverage WHERE id = 'en-63017'")
    assert (ledger["state"], ledger["source"]) == ("stored", "wayback")
    assert ledger["answer"].startswith(
        "site: not found (HTTP 404); copy captured by the Internet Archive on "
    )


@pytest.mark.slow
def test_the_site_later_supersedes_a_changed_copy_and_confirms_an_identical_one(
    tmp_path, mirror_dir
):
    with ReplayServer(mirror_dir, wayback=True) as server:
        first = cli_run(
            server, tmp_path, "crawl", "--lang", "en", "--ids", "63017,63020", "--source", "wayback"
        )
        assert first.result.returncode == 0, first.result.stderr[-3000:]
        page = (mirror_dir / "en.kremlin.ru/events/president/news/63017.html").read_bytes()
        edited = page.replace(b"</h1>", b" (updated)</h1>", 1)
        server.put(f"{NEWS}/63017", edited)  # the site has edited 63017 since the capture
        second = cli_run(
            server, tmp_path, "crawl", "--lang", "en", "--ids", "63017,63020", "--refetch"
        )
    assert second.result.returncode == 0, second.result.stderr[-3000:]
    events = {e["id"]: e for e in second.rows("SELECT * FROM events")}
    assert events["en-63017"]["source"] == "site" and events["en-63017"]["title"].endswith(
        "(updated)"
    )
    [revision] = second.rows("SELECT * FROM revisions WHERE event_id = 'en-63017'")
    assert "title" in json.loads(revision["changed_fields"])
    assert events["en-63020"]["source"] == "wayback"  # the same content: only a fetch row
    assert (
        second.rows("SELECT count(*) AS n FROM revisions WHERE event_id = 'en-63020'")[0]["n"] == 0
    )
    site_fetch = second.rows(
        "SELECT * FROM fetches WHERE url = ? AND source = 'site'", [f"{NEWS}/63020"]
    )
    assert site_fetch and site_fetch[-1]["status"] == 200
    ledger = dict((r["id"], r["source"]) for r in second.rows("SELECT * FROM coverage"))
    assert ledger == {"en-63017": "site", "en-63020": "site"}  # no longer a copy only


@pytest.mark.slow
def test_index_faults_are_recorded_and_survived(tmp_path, mirror_dir):
    """The CDX index answering 429 (Retry-After), 503 twice, and a cut-off JSON once: each is
    in the fetches and errors tables, and the run still archives every captured event."""
    with ReplayServer(mirror_dir, wayback=True, wayback_page_size=50) as server:
        cdx = re.compile(r"^http://web\.archive\.org/cdx/")
        server.fault(cdx, 429, times=1, retry_after=1)
        server.fault(cdx, 503, times=2)
        server.fault(cdx, "body", times=1, body=b'[["urlkey","timestamp","original"')
        run = cli_run(
            server, tmp_path, "crawl", "--lang", "en", "--ids", "63000-63099", "--source", "wayback"
        )
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    statuses = [
        f["status"] for f in run.rows("SELECT status FROM fetches WHERE kind = 'cdx' ORDER BY id")
    ]
    assert statuses[:4] == [429, 503, 503, 200] or {429, 503} <= set(statuses)
    [malformed] = run.rows("SELECT * FROM errors WHERE stage = 'discovery'")
    assert (
        malformed["reason"].startswith("malformed index answer for ")
        and "not JSON" in malformed["reason"]
    )
    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    captured = {int(p.stem) for p in news.glob("630??.html")}
    stored = {r["kremlin_id"] for r in run.rows("SELECT kremlin_id FROM events")}
    assert stored == captured
    assert last_run(run.db_path)["status"] == "finished"


@pytest.mark.slow
def test_the_wayback_has_its_own_budget(tmp_path, mirror_dir):
    """One request at a time to the archive, KREMLIN_WAYBACK_DELAY apart (here 0.2 s)."""
    with ReplayServer(mirror_dir, wayback=True) as server:
        run = cli_run(server, tmp_path, "crawl", "--lang", "en", "--ids", "63017-63021", "--source",
                      "wayback", settings=["KREMLIN_WAYBACK_DELAY=0.2"])  # fmt: skip
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    times = sorted(r.time for r in run.log if r.url.startswith("http://web.archive.org/"))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 6 and min(gaps) >= 0.1  # randomised between 0.5x and 1.5x the delay
