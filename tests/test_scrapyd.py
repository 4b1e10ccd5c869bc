"""The project deployed to a real scrapyd and run there (issue 5): an egg built from this working
tree with scrapyd-client's own builder (`scrapyd-deploy --build-egg`), uploaded with
addversion.json, scheduled with schedule.json (spider arguments + `setting=KREMLIN_DB=...`),
crawling the replayed capture through `http_proxy`. scrapyd runs on 127.0.0.1 on a free port with
its eggs, logs and queues in a temporary folder. No network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from kremlin_archive.devtools.replay import ReplayServer

pytestmark = pytest.mark.slow

requests = pytest.importorskip("requests")  # scrapyd-client depends on it

PROJECT = "kremlin_archive"
SINCE, UNTIL = "2020-08-20", "2020-08-27"
# Listed on the captured by-date/27.08.2020 page with dates 20-27 August 2020 (all captured).
EXPECTED_EVENTS = 19
EVENT_PAGE = re.compile(r"/events/president/news/\d+$")
FAST_SETTINGS = (
    "DOWNLOAD_DELAY=0",
    "AUTOTHROTTLE_ENABLED=0",
    "CONCURRENT_REQUESTS_PER_DOMAIN=8",
    "KREMLIN_RETRY_BACKOFF_BASE=0.05",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # talk to scrapyd directly, whatever proxy the environment names
    return s


@pytest.fixture(scope="module")
def egg(tmp_path_factory) -> Path:
    """The egg scrapyd-deploy builds from a copy of this working tree (the build writes
    build/ and *.egg-info in the project folder: not in the shared tree)."""
    src = tmp_path_factory.mktemp("egg-src")
    shutil.copytree(
        REPO / "kremlin_archive",
        src / "kremlin_archive",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("scrapy.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    out = src / "kremlin_archive.egg"
    build = subprocess.run(
        [sys.executable, "-m", "scrapyd_client.deploy", "--build-egg", str(out)],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0 and out.is_file(), build.stderr[-3000:]
    return out


class Scrapyd:
    """scrapyd in a subprocess, configured by a scrapyd.conf in its own working folder."""

    def __init__(self, home: Path, proxy: str):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        (home / "scrapyd.conf").write_text(
            "[scrapyd]\n"
            "bind_address = 127.0.0.1\n"
            f"http_port = {self.port}\n"
            f"eggs_dir = {home / 'eggs'}\n"
            f"logs_dir = {home / 'logs'}\n"
            f"dbs_dir = {home / 'dbs'}\n"
            "items_dir =\n"
            "jobs_dir =\n"
            "poll_interval = 0.2\n"
            "max_proc = 2\n"
        )
        env = {**os.environ, "http_proxy": proxy, "no_proxy": ""}
        env.pop("https_proxy", None)
        env.pop("SCRAPY_SETTINGS_MODULE", None)  # the egg's entry point must name it
        self.output = home / "scrapyd.out"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scrapyd"],
                cwd=home,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.http = session()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"scrapyd exited with {self.proc.returncode}")
            try:
                if self.get("daemonstatus.json")["status"] == "ok":
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"scrapyd did not answer on {self.url} within {timeout} s")

    def get(self, endpoint: str, **params):
        response = self.http.get(self.url + endpoint, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, endpoint: str, data, files=None):
        response = self.http.post(self.url + endpoint, data=data, files=files, timeout=120)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.http.close()

    def diagnostics(self) -> str:
        parts = [f"--- scrapyd output ({self.output}) ---", self.output.read_text(errors="replace")]
        for log in sorted((self.home / "logs").rglob("*.log")):
            parts += [f"--- {log} ---", log.read_text(errors="replace")[-6000:]]
        return "\n".join(parts)


@pytest.fixture(scope="module")
def scrapyd(tmp_path_factory, mirror_dir, egg):
    """scrapyd whose jobs crawl through a replay server of the capture (`.replay`), with the
    project deployed as version r1."""
    home = tmp_path_factory.mktemp("scrapyd")
    with ReplayServer(mirror_dir) as replay:
        server = Scrapyd(home, replay.proxy_url)
        server.replay = replay
        try:
            try:
                server.wait_ready()
                with open(egg, "rb") as f:
                    server.added = server.post(
                        "addversion.json",
                        {"project": PROJECT, "version": "r1"},
                        files={"egg": ("project.egg", f)},
                    )
            except BaseException:
                print(server.diagnostics())
                raise
            yield server
        finally:
            server.stop()


def wait_finished(server: Scrapyd, jobid: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = server.get("listjobs.json", project=PROJECT)
        for job in jobs["finished"]:
            if job["id"] == jobid:
                return job
        time.sleep(0.3)
    raise TimeoutError(f"job {jobid} not finished within {timeout} s: {jobs}")


def schedule(server: Scrapyd, home: Path, **spider_args: str) -> str:
    """Schedule the kremlin spider on the archive in `home` (absolute paths: scrapyd runs
    jobs in its own folder); returns the job id."""
    settings = [
        f"KREMLIN_DB={home / 'kremlin.db'}",
        f"KREMLIN_WARC_DIR={home / 'warc'}",
        *FAST_SETTINGS,
    ]
    scheduled = server.post(
        "schedule.json",
        [
            ("project", PROJECT),
            ("spider", "kremlin"),
            *spider_args.items(),
            *(("setting", s) for s in settings),
        ],
    )
    assert scheduled["status"] == "ok", scheduled
    return scheduled["jobid"]


def job_log(server: Scrapyd, jobid: str) -> str:
    return (server.home / "logs" / PROJECT / "kremlin" / f"{jobid}.log").read_text()


def test_deploy_to_scrapyd_schedule_and_archive(scrapyd, tmp_path):
    data = tmp_path / "data"
    db_path, warc_dir = data / "kremlin.db", data / "warc"
    try:
        assert scrapyd.added["status"] == "ok", scrapyd.added
        assert scrapyd.added["spiders"] >= 2
        spiders = scrapyd.get("listspiders.json", project=PROJECT)
        assert {"kremlin", "urls"} <= set(spiders["spiders"]), spiders

        jobid = schedule(scrapyd, data, lang="en", since=SINCE, until=UNTIL)
        wait_finished(scrapyd, jobid)
        log = job_log(scrapyd, jobid)
        assert "Spider closed (finished)" in log, log[-4000:]

        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            runs = conn.execute("SELECT status, command, arguments FROM runs").fetchall()
            events = conn.execute(
                "SELECT substr(published_at, 1, 10) FROM events WHERE lang = 'en'"
            ).fetchall()
        assert [(status, command) for status, command, _ in runs] == [("finished", "scrapy crawl")]
        assert json.loads(runs[0][2])["since"] == SINCE
        assert len(events) == EXPECTED_EVENTS
        assert all(SINCE <= day <= UNTIL for (day,) in events)
        assert list(warc_dir.glob("*.warc.gz")), "the raw responses are kept"
        # the crawl went through the replay server, entering at the by-date page of `until`
        assert scrapyd.replay.count("/by-date/27.08.2020") == 1
    except BaseException:
        print(scrapyd.diagnostics())
        raise


def test_cancelled_job_is_interrupted_and_the_next_job_resumes(scrapyd, tmp_path):
    """cancel.json sends SIGINT: the run ends as 'interrupted'; scheduling again completes it
    without fetching the stored events again."""
    data = tmp_path / "data"
    args = {"lang": "en", "since": "2020-08-01", "until": UNTIL}
    scrapyd.replay.clear_log()
    scrapyd.replay.fault(EVENT_PAGE, "slow", delay=0.3)
    try:
        jobid = schedule(scrapyd, data, **args)
        deadline = time.monotonic() + 120
        while scrapyd.replay.count(EVENT_PAGE) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scrapyd.post("cancel.json", {"project": PROJECT, "job": jobid})["prevstate"] == (
            "running"
        )
        wait_finished(scrapyd, jobid)
        scrapyd.replay.clear_faults()
        with sqlite3.connect(data / "kremlin.db") as conn:
            run = conn.execute("SELECT status, finish_reason FROM runs").fetchall()
            stored = {r[0] for r in conn.execute("SELECT url FROM events")}
        assert run == [("interrupted", "shutdown")]
        assert stored, "some events were stored before the cancel"

        scrapyd.replay.clear_log()
        again = schedule(scrapyd, data, **args)
        wait_finished(scrapyd, again)
        assert "Spider closed (finished)" in job_log(scrapyd, again)
        with sqlite3.connect(data / "kremlin.db") as conn:
            runs = conn.execute("SELECT status FROM runs ORDER BY rowid").fetchall()
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert runs == [("interrupted",), ("finished",)]
        refetched = {r.url for r in scrapyd.replay.log} & stored
        assert refetched == set(), "stored events are not fetched again"
    except BaseException:
        print(scrapyd.diagnostics())
        raise
    finally:
        scrapyd.replay.clear_faults()
