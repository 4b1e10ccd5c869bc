"""Small things a new user meets in the first minutes (issue 16, item 6): errors in the
command line's own words, and `serve` on a port that is taken."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner
from conftest import REPO

from kremlin_archive import db as dbmod
from kremlin_archive.cli import EXIT_BLOCKED, EXIT_FAILURE, main


@pytest.mark.parametrize(
    "args",
    [
        ["crawl", "--since", "garbage"],
        ["crawl", "--since", "2020-02-30"],
        ["crawl", "--until", "31.03.2020"],
        ["coverage", "--since", "garbage"],
        ["export", "--format", "jsonl", "--since", "garbage"],
    ],
)
def test_a_bad_day_is_named_in_the_command_lines_words(args, tmp_path):
    result = CliRunner().invoke(main, [*args, "--db", str(tmp_path / "k.db")])
    assert result.exit_code == 2, result.output
    option = next(a for a in args if a.startswith("--") and a != "--format")
    assert f"Invalid value for {option}:" in result.output
    assert "expected a date as YYYY-MM-DD" in result.output
    assert "-a " not in result.output  # no Scrapy spider-argument syntax


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(db_path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kremlin_archive.cli", "serve", "--db", str(db_path),
         "--port", str(port)],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def test_serve_on_a_busy_port_says_so_and_never_claims_to_serve(tmp_path):
    db_path = tmp_path / "k.db"
    dbmod.open_db(db_path).close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        process = _serve(db_path, port)
        _, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_FAILURE != EXIT_BLOCKED, err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert "serving" not in err


def test_serve_on_any_free_port_says_which_and_answers_there(tmp_path):
    db_path = tmp_path / "k.db"
    dbmod.open_db(db_path).close()
    process = _serve(db_path, 0)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while "serving" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
        assert "serving" in line, line
        url = line.rsplit(" at ", 1)[1].strip()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
        assert not url.startswith("http://127.0.0.1:0/")
        for _ in range(100):
            try:
                with opener.open(url, timeout=5) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"nothing answered at {url}")
    finally:
        process.terminate()
        process.wait(timeout=30)
