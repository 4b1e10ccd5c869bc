"""What a person sees when a crawl cannot reach the site, and how much of the log the terminal
shows (issue 16, items 1 and 2): middlewares.ReachabilityMiddleware, crawl_log, the CLI's
endings. Unit tests on a crawler from `get_crawler`; end-to-end runs through the replay server,
a closed port, a resolver that resolves nothing, and a pseudo-terminal."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import pty
import re
import select
import socket
import sqlite3
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from conftest import FAST, REPO, EngineStub, cli_run, open_run, run_cli
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.http import Request, Response

from kremlin_archive import crawl_log
from kremlin_archive.items import Transcript
from kremlin_archive.middlewares import (
    ReachabilityMiddleware,
    describe_failure,
    network_failure,
)
from kremlin_archive.spiders.kremlin import KremlinSpider

LISTING = "http://en.kremlin.ru/events/president/news"
RU_LISTING = "http://kremlin.ru/events/president/news"
NO_DNS = "kremlin_archive.devtools.offline.NoDnsResolver"
ONE_DAY = ("crawl", "--lang", "en", "--since", "2020-03-17", "--until", "2020-03-17")


# -- what failed, in words --------------------------------------------------------------------


@pytest.mark.parametrize(
    "exception, kind",
    [
        (CannotResolveHostError("DNS lookup failed: no results for kremlin.ru"), "dns"),
        (DownloadConnectionRefusedError("Connection was refused by other side"), "refused"),
        (DownloadTimeoutError("Getting http://kremlin.ru took longer than 15 s"), "timeout"),
        (DownloadFailedError("[('SSL routines', '', 'wrong version number')]"), "tls"),
        (ResponseDataLossError(), None),  # an answer cut short: the host was reached
        (ValueError("a bug"), None),
    ],
)
def test_network_failures_are_told_apart(exception, kind):
    assert network_failure(exception) == kind


def test_a_refused_connection_through_a_proxy_names_the_proxy():
    text = describe_failure("refused", "kremlin.ru", "", "http://127.0.0.1:9", 15)
    assert "proxy http://127.0.0.1:9" in text and "http_proxy" in text
    text = describe_failure("refused", "kremlin.ru", "", None, 15)
    assert "proxy" not in text and "kremlin.ru" in text
    assert "15 s" in describe_failure("timeout", "kremlin.ru", "", None, 15)
    assert describe_failure("dns", "en.kremlin.ru", "", None, 15).startswith("DNS: ")


# -- the middleware on its own ------------------------------------------------------------------


def in_loop(call, *args):
    """`call(*args)` inside a running asyncio loop, as in a crawl (a stop schedules the close)."""

    async def run():
        return call(*args)

    return asyncio.run(run())


@pytest.fixture
def reach(crawler_for):
    crawler = crawler_for(
        KremlinSpider, KREMLIN_FIRST_CONTACT_TIMEOUT=7, KREMLIN_FIRST_CONTACT_ATTEMPTS=2
    )
    run = open_run(crawler, lang="en")
    crawler.engine = EngineStub(crawler.spider)
    return ReachabilityMiddleware.from_crawler(crawler), run


def test_until_a_host_answers_its_requests_wait_the_first_contact_timeout(reach):
    middleware, _run = reach
    first = Request(LISTING, meta={"download_timeout": 60})
    middleware.process_request(first)
    assert first.meta["download_timeout"] == 7
    middleware.process_response(first, Response(LISTING, status=200, request=first))
    later = Request(LISTING + "/page/2", meta={"download_timeout": 60})
    middleware.process_request(later)
    assert later.meta["download_timeout"] == 60
    # a request sent at first contact and retried after the host answered waits as long as any
    middleware.process_request(first)
    assert first.meta["download_timeout"] == middleware.download_timeout


def test_two_dns_failures_give_the_host_up_and_stop_the_run_as_unreachable(reach):
    middleware, run = reach
    request = Request(LISTING)
    middleware.process_request(request)
    middleware.process_exception(request, CannotResolveHostError("no results"))
    assert not request.meta.get("dont_retry")  # the first failure is retried
    assert run.stopping is None
    in_loop(middleware.process_exception, request, CannotResolveHostError("no results"))
    assert request.meta["dont_retry"] is True
    assert run.stopping == "unreachable"
    assert set(run.crawler.stats.get_value("kremlin/hosts_failed")) == {"en.kremlin.ru"}
    with pytest.raises(IgnoreRequest, match=r"en\.kremlin\.ru cannot be reached"):
        middleware.process_request(Request(LISTING + "/page/2"))
    [error] = run.db.query("SELECT * FROM errors WHERE reason LIKE 'unreachable:%'")
    assert "DNS" in error["reason"]


def test_a_host_that_answered_once_fails_in_the_ordinary_way(reach):
    middleware, run = reach
    request = Request(LISTING)
    middleware.process_request(request)
    middleware.process_response(request, Response(LISTING, status=200, request=request))
    for _ in range(3):
        middleware.process_exception(request, DownloadTimeoutError("took longer"))
    assert not request.meta.get("dont_retry")
    assert run.stopping is None and not run.crawler.stats.get_value("kremlin/hosts_failed")


def test_a_timeout_at_first_contact_is_final_at_once(reach):
    middleware, run = reach
    request = Request(LISTING)
    middleware.process_request(request)
    in_loop(middleware.process_exception, request, DownloadTimeoutError("took longer than 7 s"))
    assert run.stopping == "unreachable"
    assert "timeout" in run.crawler.stats.get_value("kremlin/hosts_failed")["en.kremlin.ru"]


def test_one_host_down_while_the_other_answers_does_not_stop_the_run(reach):
    middleware, run = reach
    ru = Request(RU_LISTING)
    middleware.process_request(ru)
    middleware.process_response(ru, Response(RU_LISTING, status=200, request=ru))
    en = Request(LISTING)
    middleware.process_request(en)
    middleware.process_exception(en, DownloadConnectionRefusedError("refused"))
    middleware.process_exception(en, DownloadConnectionRefusedError("refused"))
    assert run.stopping is None
    assert set(run.crawler.stats.get_value("kremlin/hosts_failed")) == {"en.kremlin.ru"}


def test_refusals_before_any_answer_stop_the_run_as_blocked_but_not_robots_txt(reach):
    middleware, run = reach
    robots = Request("http://en.kremlin.ru/robots.txt")
    for _ in range(3):
        middleware.process_response(robots, Response(robots.url, status=403, request=robots))
    assert run.stopping is None  # a refused robots.txt alone says nothing of the pages
    page = Request(LISTING)
    middleware.process_response(page, Response(LISTING, status=403, request=page))
    assert run.stopping is None
    in_loop(middleware.process_response, page, Response(LISTING, status=403, request=page))
    assert run.stopping == "blocked"
    assert "HTTP 403" in run.crawler.stats.get_value("kremlin/hosts_failed")["en.kremlin.ru"]


def test_with_source_auto_an_unreachable_site_hands_over_to_the_wayback(crawler_for):
    crawler = crawler_for(KremlinSpider)
    run = open_run(crawler, lang="en", source="auto")
    crawler.engine = EngineStub(crawler.spider)
    middleware = ReachabilityMiddleware.from_crawler(crawler)
    request = Request(LISTING)
    middleware.process_request(request)
    middleware.process_exception(request, DownloadTimeoutError("took longer"))
    assert run.stopping is None
    assert "timeout" in crawler.spider.site_unusable


def test_robots_txt_failing_for_the_network_logs_one_line_without_a_traceback(reach, caplog):
    logger = logging.getLogger("scrapy.downloadermiddlewares.robotstxt")
    with caplog.at_level(logging.DEBUG):
        try:
            raise CannotResolveHostError("DNS lookup failed: no results for kremlin.ru")
        except CannotResolveHostError:
            logger.error("Error downloading %s", "robots.txt", exc_info=True)
        try:
            raise ValueError("a bug in a parser")
        except ValueError:
            logger.error("Error parsing %s", "robots.txt", exc_info=True)
    dns, bug = caplog.records[-2:]
    assert dns.levelno == logging.INFO and dns.exc_info is None
    assert bug.levelno == logging.ERROR and bug.exc_info is not None


# -- how much the console shows -------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, expected",
    [
        (dict(log_level="debug", verbose=0, setting=None, tty=True), "DEBUG"),
        (dict(log_level=None, verbose=1, setting=None, tty=True), "INFO"),
        (dict(log_level=None, verbose=2, setting="WARNING", tty=False), "DEBUG"),
        (dict(log_level=None, verbose=0, setting="ERROR", tty=True), "ERROR"),
        (dict(log_level=None, verbose=0, setting=None, tty=True), "WARNING"),
        (dict(log_level=None, verbose=0, setting=None, tty=False), "INFO"),
    ],
)
def test_the_console_level(given, expected):
    assert crawl_log.console_level(**given) == expected


def test_items_are_logged_by_key_never_whole(crawler_for):
    crawler = crawler_for(KremlinSpider)
    spider = open_run(crawler, lang="en") and crawler.spider
    item = Transcript(
        kremlin_id=63017, lang="en", url="http://en.kremlin.ru/events/president/news/63017",
        title="Vladimir Putin arrived in Crimea", published_at="2020-03-18T14:00:00+03:00",
        paragraphs=["A paragraph " * 200],
    )  # fmt: skip
    formatter = crawl_log.ItemLogFormatter()
    response = Response(item.url, request=Request(item.url))
    for made in (
        formatter.scraped(item, response, spider),
        formatter.dropped(item, ValueError("no title"), response, spider),
        formatter.item_error(item, ValueError("no title"), response, spider),
    ):
        text = made["msg"] % made["args"]
        assert "en-63017" in text and "A paragraph" not in text, text
        assert len(text) < 400


def test_the_runs_whole_log_goes_beside_the_database(tmp_path):
    path = crawl_log.log_path(tmp_path / "a" / "kremlin.db", "20261130T000000Z-abc")
    assert path == (tmp_path / "a" / "logs" / "20261130T000000Z-abc.log").resolve()


# -- end to end -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_row(db_path: Path) -> dict:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM runs ORDER BY rowid DESC LIMIT 1").fetchone())
    finally:
        conn.close()


def assert_explained(result, hosts: list[str], what: str, *, exit_code=5, status="unreachable"):
    """One line per host naming what failed, the advice, no traceback, the exit code."""
    err = result.stderr
    assert result.returncode == exit_code, err[-3000:]
    assert "Traceback" not in err
    for host in hosts:
        [line] = [x for x in err.splitlines() if x.startswith(f"kremlin-archive: {host} cannot")]
        assert what in line, line
    assert "kremlin-archive: what to do: " in err
    assert "--source wayback" in err and "http_proxy" in err and "replay" in err


@pytest.mark.slow
def test_no_dns_is_said_per_host_and_ends_unreachable(tmp_path):
    db = tmp_path / "kremlin.db"
    result = run_cli(
        "crawl", "--lang", "both", "--since", "2020-03-17", "--until", "2020-03-17",
        "--db", str(db), "--warc-dir", str(tmp_path / "warc"),
        settings=(*FAST, f"DNS_RESOLVER={NO_DNS}", f"TWISTED_DNS_RESOLVER={NO_DNS}"),
    )  # fmt: skip
    assert_explained(result, ["kremlin.ru", "en.kremlin.ru"], "DNS: the name")
    row = _run_row(db)
    assert (row["status"], row["finish_reason"]) == ("unreachable", "unreachable")
    counts = json.loads(row["counts"])
    assert counts["requests"] <= 4  # robots.txt of each host, tried twice: nothing more
    assert "no results for hostname lookup" not in result.stderr.split("what to do")[-1]


@pytest.mark.slow
def test_a_proxy_that_refuses_is_named(tmp_path):
    proxy = f"http://127.0.0.1:{_free_port()}"
    result = run_cli(*ONE_DAY, "--db", str(tmp_path / "k.db"), proxy=proxy)
    assert_explained(result, ["en.kremlin.ru"], f"connection refused by the proxy {proxy}")
    assert _run_row(tmp_path / "k.db")["status"] == "unreachable"


@pytest.mark.slow
def test_a_site_that_never_answers_is_given_up_after_the_first_contact_timeout(replay, tmp_path):
    replay.fault(re.compile(r"kremlin\.ru/"), "slow", delay=30)
    run = cli_run(replay, tmp_path, *ONE_DAY, settings=["KREMLIN_FIRST_CONTACT_TIMEOUT=1"])
    assert_explained(run.result, ["en.kremlin.ru"], "timeout: no answer")
    assert run.run_row["status"] == "unreachable"
    assert len(run.log) <= 2  # robots.txt and the listing, each once: no retries


@pytest.mark.slow
def test_a_site_that_refuses_every_page_ends_blocked_and_says_so(replay, tmp_path):
    replay.fault(re.compile(r"kremlin\.ru/"), "refuse")
    run = cli_run(replay, tmp_path, *ONE_DAY)
    assert_explained(
        run.result, ["en.kremlin.ru"], "refused: every request was answered HTTP 403",
        exit_code=3, status="blocked",
    )  # fmt: skip
    assert run.run_row["status"] == "blocked"
    pages = [r for r in run.log if not r.url.endswith("/robots.txt")]
    assert [r.status for r in pages] == [403, 403]  # the listing and its one retry


def run_in_pty(command: list[str], env: dict, cols: int = 100, rows: int = 30) -> tuple[int, bytes]:
    """Run `command` with standard input, output and error on a pseudo-terminal of the given
    size (as a person at a terminal would); everything it wrote, and its exit code."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    process = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO, close_fds=True
    )
    os.close(slave)
    out = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            out += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=60)
    os.close(master)
    return process.returncode, bytes(out)


@pytest.mark.slow
def test_a_month_in_a_terminal_prints_under_5_kb_and_the_whole_log_is_in_its_file(replay, tmp_path):
    db = tmp_path / "kremlin.db"
    settings = [s for s in FAST if not s.startswith("LOG_LEVEL")]
    command = [
        sys.executable, "-m", "kremlin_archive.cli", "crawl", "--lang", "en",
        "--since", "2020-03-01", "--until", "2020-03-31", "--db", str(db),
    ]  # fmt: skip
    for setting in settings:
        command += ["-s", setting]
    env = {**os.environ, "http_proxy": replay.proxy_url, "no_proxy": ""}
    env.pop("KREMLIN_LOG_LEVEL", None)
    code, out = run_in_pty(command, env)
    text = out.decode("utf-8", "replace")
    assert code == 0, text[-3000:]
    assert len(out) < 5 * 1024, f"{len(out)} bytes in the terminal:\n{text[-3000:]}"
    assert "pages" in text  # the progress bar
    assert "run " in text and ": finished; new 94" in text  # the summary
    assert " DEBUG: " not in text and " INFO: " not in text and "Traceback" not in text
    # the whole log, named by the run's id, beside the database
    run_id = _run_row(db)["id"]
    log = (tmp_path / "logs" / f"{run_id}.log").read_text(encoding="utf-8")
    assert f"logs/{run_id}.log" in text
    assert log.count(" DEBUG: Crawled (200)") >= 100
    assert "Scraped Transcript en-63017" in log
    assert "'paragraphs'" not in log  # items by their key, never whole

    # -v shows INFO in the terminal; the Scrapy deprecation warnings are gone at their source
    code, out = run_in_pty([*command, "--refetch", "-v"], env)
    text = out.decode("utf-8", "replace")
    assert code == 0, text[-3000:]
    assert " INFO: " in text and " DEBUG: " not in text
    for noise in ("Deprecat", "Remote control", "RANDOMIZE_DOWNLOAD_DELAY"):
        assert noise not in text, noise
