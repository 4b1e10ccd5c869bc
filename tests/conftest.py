"""Locate the read-only material in ../shared (override with KREMLIN_SHARED) and unpack the
mirror once per test session. Nothing from ../shared is ever copied into the repository."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from kremlin_archive import db as dbmod
from kremlin_archive import warc
from kremlin_archive.items import Tag, Transcript, Utterance

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KREMLIN_SHARED", REPO.parent / "shared")).resolve()
KREMLIN_HTML = SHARED / "kremlin-html"
MIRROR_TAR = SHARED / "mirror" / "en-kremlin-2020.tar.xz"
SEED_DIR = SHARED / "seed-format"


def shared_page(name: str) -> bytes:
    """Bytes of a real page under ../shared/kremlin-html (e.g. 'en_news_63017.html')."""
    return (KREMLIN_HTML / name).read_bytes()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared material not found at {SHARED} (set KREMLIN_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def mirror_dir(tmp_path_factory, shared_dir) -> Path:
    """The mirror unpacked once per test session: <dir>/en.kremlin.ru/events/president/news/…"""
    cached = os.environ.get("KREMLIN_MIRROR_DIR")
    if cached and (Path(cached) / "en.kremlin.ru").is_dir():
        return Path(cached)
    target = tmp_path_factory.mktemp("mirror")
    with tarfile.open(MIRROR_TAR) as tar:
        tar.extractall(target, filter="data")
    return target


@pytest.fixture(scope="session")
def mirror_event_pages(mirror_dir) -> list[Path]:
    """All event pages of the mirror (en.kremlin.ru/events/president/news/<id>.html)."""
    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    pages = sorted(p for p in news.glob("*.html") if p.stem.isdigit())
    assert len(pages) > 6000, f"expected ~6,650 event pages in the mirror, found {len(pages)}"
    return pages


# -- crawling through the replay server --------------------------------------------------------

SEED_URL = "http://kremlin.ru/events/president/news/copy/66419"
RU_66419_URL = "http://kremlin.ru/events/president/news/66419"
RU_66419_PAGE = KREMLIN_HTML / "reconstructed" / "ru_news_66419.html"  # a reconstruction

# Settings for crawls against the local replay server: no politeness delays (it is our own
# process), quick backoff, many requests in flight.
FAST = (
    "DOWNLOAD_DELAY=0",
    "AUTOTHROTTLE_ENABLED=0",
    "CONCURRENT_REQUESTS=16",
    "CONCURRENT_REQUESTS_PER_DOMAIN=8",
    "KREMLIN_RETRY_BACKOFF_BASE=0.05",
    "KREMLIN_RETRY_BACKOFF_MAX=0.5",
    "KREMLIN_BRAKE_PAUSE=0.5",
    "KREMLIN_WAYBACK_DELAY=0",
    "LOG_LEVEL=INFO",
)


CRAWL_COMMANDS = ("crawl", "fetch", "refresh")
_running: list[pytest.Item] = []  # the test being set up, run or torn down


def pytest_runtest_setup(item: pytest.Item) -> None:
    _running[:] = [item]  # before its fixtures: module fixtures that crawl see their first user
    if item.get_closest_marker("browser") is not None or "chromium" in item.fixturenames:
        need_chromium()


# -- the browser tests -------------------------------------------------------------------------
# A test that drives headless Chromium is marked `browser` (or asks for the `chromium` fixture).
# Without a chromium on PATH they are skipped, all under one line of the summary saying how to
# get it -- unless KREMLIN_REQUIRE_BROWSER=1 (.ci/run sets it): then each fails. The check is
# made in pytest_runtest_setup, before any fixture, from one place (a skip raised in a fixture
# would be reported at each test's own line).


def load_screenshot_tool():
    """bench/screenshot.py (the demo archive and the Chromium lookup), loaded as a module."""
    spec = importlib.util.spec_from_file_location(
        "kremlin_screenshot", REPO / "bench" / "screenshot.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


screenshot_tool = load_screenshot_tool()
CHROMIUM_NAMES = screenshot_tool.CHROMIUM_NAMES  # as the Makefile looks
REQUIRE_BROWSER = "KREMLIN_REQUIRE_BROWSER"
GET_CHROMIUM = "sudo make system-deps (or install Debian's chromium)"
BROWSER_HINT = f"chromium not found: the browser tests are skipped; to run them: {GET_CHROMIUM}"


find_chromium = screenshot_tool.find_chromium  # the Chromium on PATH, if any


def need_chromium() -> str:
    """The Chromium on PATH; without one the test is skipped, or fails when the run requires
    the browser (KREMLIN_REQUIRE_BROWSER=1). Every skip comes from the same line, so that
    pytest's summary folds them all into one."""
    found = find_chromium()
    if found:
        return found
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(
            f"chromium not found, and {REQUIRE_BROWSER}=1 requires the browser tests: "
            f"{GET_CHROMIUM}",
            pytrace=False,
        )
    pytest.skip(BROWSER_HINT)


@pytest.fixture
def chromium() -> str:
    """The Chromium binary for a browser test (checked in pytest_runtest_setup)."""
    return need_chromium()


def assert_marked_slow(what: str) -> None:
    """A crawl belongs to the `slow` tier: the quick tier (`make test-fast`) must stay quick.
    Fails the test (or the fixture) that starts one without the mark."""
    if _running and _running[0].get_closest_marker("slow") is None:
        pytest.fail(f"{_running[0].nodeid} runs {what} but is not marked slow", pytrace=False)


def run_cli(*args: str, proxy: str | None = None, settings=FAST, timeout: float = 600, env=None):
    """Run `kremlin-archive ARGS -s …` in a subprocess (each crawl gets a fresh reactor)."""
    import sys

    if args and args[0] in CRAWL_COMMANDS:
        assert_marked_slow(f"a crawl (kremlin-archive {args[0]})")
    full_env = {**os.environ, **(env or {})}
    full_env.pop("https_proxy", None)
    full_env["no_proxy"] = ""
    if proxy:
        full_env["http_proxy"] = proxy
    else:
        full_env.pop("http_proxy", None)
    command = [sys.executable, "-m", "kremlin_archive.cli", *args]
    if settings and args and args[0] in ("crawl", "fetch", "refresh"):
        for setting in settings:
            command += ["-s", setting]
    return subprocess.run(
        command, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def replay(mirror_dir):
    """The replay server on the mirror, with the reconstructed ru page of 66419 added: what
    crawls go through (so a test that uses it is `slow`)."""
    from kremlin_archive.devtools.replay import ReplayServer

    assert_marked_slow("the replay server (a crawl)")
    with ReplayServer(mirror_dir) as server:
        server.put_file(RU_66419_URL, RU_66419_PAGE)
        yield server


@pytest.fixture(scope="session")
def month_archive(tmp_path_factory, mirror_dir) -> Path:
    """A replayed month, crawled once per session and shared read-only: March 2020 in English
    (`crawl --lang en --since 2020-03-01 --until 2020-03-31`: 94 events) through the replay
    server, then the reconstructed ru-66419 fetched, so both languages are held. `<dir>/kremlin.db`
    and `<dir>/warc/`; a test that changes anything works on a copy (`shutil.copytree`)."""
    from kremlin_archive.devtools.replay import ReplayServer

    assert_marked_slow("the replay server (a crawl)")
    home = tmp_path_factory.mktemp("month-archive")
    with ReplayServer(mirror_dir) as server:
        server.put_file(RU_66419_URL, RU_66419_PAGE)
        for args in (
            ("crawl", "--lang", "en", "--since", "2020-03-01", "--until", "2020-03-31"),
            ("fetch", RU_66419_URL),
        ):
            done = cli_run(server, home, *args).result
            assert done.returncode == 0, done.stderr[-3000:]
    return home


# -- helpers shared by the test modules ------------------------------------------------------


def make_transcript(**changes) -> Transcript:
    """A small real-looking Russian event (66419) with two speakers and two tags."""
    data = dict(
        kremlin_id=66419,
        lang="ru",
        url="http://kremlin.ru/events/president/news/66419",
        title="Встреча с Президентом Казахстана Касым-Жомартом Токаевым",
        published_at="2021-08-21T13:10:00+03:00",
        lead="Владимир Путин принял в Кремле Президента Республики Казахстан.",
        place="Москва, Кремль",
        paragraphs=["В.Путин: Добрый день!", "Очень рад Вас видеть.", "К.-Ж.Токаев: Благодарю."],
        utterances=[
            Utterance(1, "В.Путин", "Добрый день!\nОчень рад Вас видеть."),
            Utterance(2, "К.-Ж.Токаев", "Благодарю."),
        ],
        tags=[
            Tag("geography", "Казахстан", "http://kremlin.ru/catalog/countries/KZ/events"),
            Tag("section", "Новости", "http://kremlin.ru/events/president/news"),
        ],
        sections=["Новости"],
        parser_version="test",
    )
    data.update(changes)
    return Transcript(**data)


def count_rows(db, table: str, where: str = "1 = 1", params=()) -> int:
    """Rows of `table` matching `where`."""
    return db.execute(f"SELECT count(*) FROM [{table}] WHERE {where}", list(params)).fetchone()[0]


def get_run(db, run_id: str) -> dict | None:
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    return rows[0] if rows else None


def load_transcript(db, event_id: str) -> Transcript | None:
    """The stored event as a Transcript (content and the provenance the row keeps), read as the
    exports read it."""
    from kremlin_archive.jobs.export import record_transcript

    records = list(dbmod.iter_event_records(db, ids=[event_id]))
    return record_transcript(records[0]) if records else None


CONTENT_COLUMNS = (
    "id", "lang", "kremlin_id", "url", "title", "lead", "published_at", "place", "text",
    "paragraphs", "sections", "updated_at", "announce_date", "twin_url", "twin_id",
    "utterance_count", "speakers", "content_hash",
)  # fmt: skip


def content_snapshot(db) -> dict[str, list[tuple]]:
    """Every content row (events' content columns, utterances, tags, links), for comparing two
    states of an archive."""
    return {
        "events": [
            tuple(r)
            for r in db.execute(f"SELECT {', '.join(CONTENT_COLUMNS)} FROM events ORDER BY id")
        ],
        "utterances": [
            tuple(r)
            for r in db.execute("SELECT event_id, seq, speaker, text FROM utterances ORDER BY 1, 2")
        ],
        "tags": [
            tuple(r) for r in db.execute("SELECT id, lang, kind, name, url FROM tags ORDER BY id")
        ],
        "event_tags": [
            tuple(r)
            for r in db.execute("SELECT event_id, tag_id, seq FROM event_tags ORDER BY 1, 2")
        ],
    }


@dataclass
class CliRun:
    result: subprocess.CompletedProcess
    db_path: Path
    warc: Path
    log: list  # the replay server's log of this run's requests

    @property
    def db(self):
        return dbmod.connect(self.db_path)

    def rows(self, sql: str, params=()) -> list[dict]:
        return list(self.db.query(sql, params))

    @property
    def run_row(self) -> dict:
        return self.rows("SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1")[0]


def cli_run(replay, home: Path, *args: str, settings=()) -> CliRun:
    """`kremlin-archive ARGS` into `home` (kremlin.db, warc/) through `replay`, with FAST
    settings plus `settings`; what it printed, where it wrote, and what it asked the server."""
    before = len(replay.log)
    result = run_cli(
        *args, "--db", str(home / "kremlin.db"), "--warc-dir", str(home / "warc"),
        proxy=replay.proxy_url, settings=(*FAST, *settings),
    )  # fmt: skip
    return CliRun(result, home / "kremlin.db", home / "warc", replay.log[before:])


def assert_sound(db_path: Path, warc_dir: Path) -> None:
    """What must hold after anything at all: SQLite integrity, foreign keys, FTS in sync, no
    event without its utterances, every WARC location in `fetches` readable with the recorded
    digest, and for every run that ended, counts that add up."""
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    for fts in ("events_fts", "utterances_fts"):
        conn.execute(f"INSERT INTO {fts}({fts}) VALUES('integrity-check')")
    half = conn.execute(
        "SELECT e.id, e.utterance_count, count(u.seq) FROM events e "
        "LEFT JOIN utterances u ON u.event_id = e.id GROUP BY e.id "
        "HAVING e.utterance_count != count(u.seq)"
    ).fetchall()
    assert half == [], f"events whose utterances are not all there: {half}"
    conn.close()
    database = dbmod.connect(db_path)
    for fetch in database.query("SELECT * FROM fetches WHERE warc_filename IS NOT NULL"):
        capture = warc.read_record(warc_dir, fetch)
        assert capture.status == fetch["status"], fetch
        if fetch["status"] != 304:
            assert capture.payload_sha256 == fetch["payload_sha256"], fetch
    for run in database.query("SELECT * FROM runs WHERE counts IS NOT NULL"):
        counts = json.loads(run["counts"])
        answered = sum(
            counts[f"events_{k}"]
            for k in ("new", "changed", "unchanged", "not_modified", "failed", "unfinished")
        )
        assert counts["events_requested"] == answered, counts
        if run["status"] == "finished":
            assert counts["events_unfinished"] == 0, counts
        assert run["errors"] == count_rows(database, "errors", "run_id = ?", [run["id"]])
        assert run["requests"] == count_rows(database, "fetches", "run_id = ?", [run["id"]])


# -- Scrapy components in unit tests -----------------------------------------------------------
# Crawlers built as Scrapy's own tests build them (scrapy.utils.test.get_crawler), with the
# project's settings: the run (CrawlRun) exists, middlewares and pipelines are built with
# `from_crawler`, and callbacks get responses made of real pages. No engine runs: signals the
# run needs are sent (or its methods called) by the tests, and a stub stands in for the engine.


def _unit_settings(tmp_path: Path) -> dict:
    """The project's settings (kremlin_archive.settings) for a crawler without an engine: the
    database and WARC folder under `tmp_path`, waits of milliseconds, no progress bar. The
    reactor is left to get_crawler (it matches what the test process has installed)."""
    from kremlin_archive import settings as project

    values = {k: v for k, v in vars(project).items() if k.isupper() and k != "TWISTED_REACTOR"}
    values.update(
        KREMLIN_DB=str(tmp_path / "kremlin.db"),
        KREMLIN_WARC_DIR=str(tmp_path / "warc"),
        KREMLIN_BRAKE_PAUSE=0.01,
        KREMLIN_RETRY_BACKOFF_BASE=0.001,
        KREMLIN_RETRY_BACKOFF_MAX=0.01,
        KREMLIN_PROGRESS=False,
    )
    return values


@pytest.fixture
def crawler_for(tmp_path):
    """`crawler_for(SpiderClass, **settings)`: a crawler from `get_crawler` with the project's
    settings (database and WARC folder in `tmp_path`) and `settings` on top. Whatever a run
    left open (database, WARC file, lock) is closed at teardown."""
    from scrapy.utils.test import get_crawler

    from kremlin_archive.crawl_run import current_run

    made = []

    def make(spidercls, **settings):
        crawler = get_crawler(spidercls, {**_unit_settings(tmp_path), **settings})
        made.append(crawler)
        return crawler

    yield make
    for crawler in made:
        run = current_run(crawler)
        if run is None:
            continue
        if run.warc is not None:
            run.warc.close()
        if run.db is not None:
            run.db.close()
        if run.lock is not None:
            run.lock.release()


def spider_for(crawler, **arguments):
    """The crawler's spider made with these spider arguments (`-a`), as `crawl()` makes it."""
    crawler.spider = crawler._create_spider(**arguments)
    return crawler.spider


def open_run(crawler, **arguments):
    """The spider made (see spider_for) and the crawl's run opened as on `spider_opened`:
    its `runs` row written, database and WARC writer ready. Returns the run."""
    from kremlin_archive.crawl_run import current_run

    spider = crawler.spider or spider_for(crawler, **arguments)
    run = current_run(crawler)
    run.spider_opened(spider)
    return run


def response_for(url: str, page, *, meta=None, status: int = 200, headers=None, flags=None):
    """A Scrapy response for `url` (its request carrying `meta`) whose body is `page`: bytes,
    a path (e.g. in the mirror), or a file name under ../shared/kremlin-html. An `.xml` path
    gives an XmlResponse (the Atom feed), anything else an HtmlResponse; utf-8 either way."""
    from scrapy.http import HtmlResponse, Request, XmlResponse

    if isinstance(page, bytes):
        body, cls = page, HtmlResponse
    else:
        path = page if isinstance(page, Path) else KREMLIN_HTML / page
        body = path.read_bytes()
        cls = XmlResponse if path.suffix == ".xml" else HtmlResponse
    request = Request(url, meta=dict(meta or {}))
    return cls(
        url, status=status, headers=headers, body=body, encoding="utf-8", request=request,
        flags=flags,
    )  # fmt: skip


class EngineStub:
    """What the run and the refusal brake use of Scrapy's engine, recorded in `calls`:
    pause(), unpause() and close_spider_async(reason=…)."""

    def __init__(self, spider=None):
        self.spider = spider
        self.calls: list = []

    def pause(self) -> None:
        self.calls.append("pause")

    def unpause(self) -> None:
        self.calls.append("unpause")

    async def close_spider_async(self, *, reason: str) -> None:
        self.calls.append(("close", reason))
