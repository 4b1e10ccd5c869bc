"""What every measure of `make bench` (bench/run.py) shares: where things are, the targets, how
a child process is run and measured, how its command is shown in BENCHMARKS.md, the machine
description, the mirror, and reading py-spy samples.

Importing this module puts the repository, bench/ and tests/ on sys.path (tests/conftest.py
holds the settings for replayed crawls), so the other bench modules import it first.

Child processes run with the repository as their working directory; `Run` measures each with
wait4 (wall time, CPU time, its own peak RSS). Everything runs on the real 2020 capture of
en.kremlin.ru (../shared/mirror, or $KREMLIN_SHARED; $KREMLIN_MIRROR_DIR may name an unpacked
copy) through the project's replay server on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shlex
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("KREMLIN_SHARED", REPO.parent / "shared")).resolve()
MIRROR_TAR = SHARED / "mirror" / "en-kremlin-2020.tar.xz"
for extra in (REPO, HERE, REPO / "tests"):
    sys.path.insert(0, str(extra))

from conftest import FAST  # noqa: E402  (tests/conftest.py: settings for replayed crawls)

PY = sys.executable
NEWS = "http://en.kremlin.ru/events/president/news"
LISTING = re.compile(r"/events/president/news(/page/\d+|/by-date/[\d.]+)?$")

TARGETS = {
    "parse_lxml": 1.25,  # parse_event / fromstring, median page, at most (issue 17; was 1.5)
    "parse_lxml_long": 2.0,  # the same on the pages of 100 KiB and more (issue 17)
    "reparse_parse": 0.8,  # reparse pages/s / parse-only pages/s, at least (issue 17)
    "trafilatura": 10.0,  # trafilatura / parse_event, at least
    "crawl_bare": 0.8,  # crawl pages/s / bare pages/s, at least
    "rss_mb": 300.0,  # peak RSS of the full crawl, at most
    "rss_growth": 1.2,  # peak after the first 1,000 pages / RSS at 1,000 pages, at most
    "persons_share": 0.10,  # persons' cost per event / the crawl's CPU per request, at most
}
BUDGET_S = 15 * 60

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - T0:6.1f}s] {message}", flush=True)


# -- running things ------------------------------------------------------------------------------


class Run:
    """A child process measured with wait4: wall time, CPU time and its own peak RSS."""

    def __init__(self, argv: list[str], *, env: dict | None = None, log: Path, cwd=REPO):
        self.argv = argv
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 - closed in wait()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self._out, stderr=subprocess.STDOUT
        )
        self.pid = self.proc.pid

    def wait(self) -> dict:
        _, status, usage = os.wait4(self.pid, 0)
        wall = time.monotonic() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._out.close()
        return {
            "returncode": self.proc.returncode,
            "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "maxrss_mb": usage.ru_maxrss / 1024,
        }

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def child_env(proxy: str | None) -> dict:
    env = {**os.environ, "no_proxy": ""}
    env.pop("https_proxy", None)
    env.pop("HTTPS_PROXY", None)
    if proxy:
        env["http_proxy"] = proxy
    return env


def cli(*args: str) -> list[str]:
    return [PY, "-m", "kremlin_archive.cli", *args]


def profiled(prof: Path, *args: str) -> list[str]:
    """`python -m cProfile -o PROF ARGS`: ARGS is a script or `-m module` and its arguments."""
    return [PY, "-m", "cProfile", "-o", str(prof), *args]


def with_settings(argv: list[str], settings=FAST) -> list[str]:
    for setting in settings:
        argv += ["-s", setting]
    return argv


def shown(argv: list[str], work: Path, proxy: str | None = None) -> str:
    """The command as a reader can retype it (paths relative to the repo or $WORK)."""
    text = " ".join(shlex.quote(a) for a in argv)
    text = text.replace(PY, ".venv/bin/python").replace(str(work), "$WORK")
    mirror = os.environ.get("KREMLIN_MIRROR_DIR")  # a mirror unpacked outside $WORK
    if mirror:
        text = text.replace(str(Path(mirror)), "$KREMLIN_MIRROR_DIR")
    text = text.replace(str(REPO) + "/", "")
    return (f"http_proxy={proxy} " if proxy else "") + text


def checked(run: Run, result: dict, what: str) -> dict:
    if result["returncode"] != 0:
        tail = run.output()[-3000:]
        raise SystemExit(f"bench: {what} failed (exit {result['returncode']}):\n{tail}")
    return result


def count_events(db_path: Path) -> int:
    conn = sqlite3.connect(db_path)
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    return events


# -- machine ---------------------------------------------------------------------------------------


def machine() -> dict:
    import lxml.etree
    import scrapy
    import trafilatura
    import twisted

    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "ram_gb": mem_kb / 1024 / 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "scrapy": scrapy.__version__,
        "twisted": twisted.__version__,
        "lxml": ".".join(map(str, lxml.etree.LXML_VERSION)),
        "libxml2": ".".join(map(str, lxml.etree.LIBXML_VERSION)),
        "sqlite": sqlite3.sqlite_version,
        "trafilatura": trafilatura.__version__,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": os.getloadavg(),
    }


# -- the mirror ------------------------------------------------------------------------------------


def mirror_dir(work: Path) -> Path:
    cached = os.environ.get("KREMLIN_MIRROR_DIR")
    if cached and (Path(cached) / "en.kremlin.ru").is_dir():
        return Path(cached)
    if not MIRROR_TAR.is_file():
        raise SystemExit(f"bench: mirror not found at {MIRROR_TAR} (set KREMLIN_SHARED)")
    target = work / "mirror"
    with tarfile.open(MIRROR_TAR) as tar:
        tar.extractall(target, filter="data")
    return target


def news_dir(mirror: Path) -> Path:
    return mirror / "en.kremlin.ru" / "events" / "president" / "news"


def event_pages(mirror: Path) -> list[Path]:
    news = news_dir(mirror)
    return sorted((p for p in news.glob("*.html") if p.stem.isdigit()), key=lambda p: int(p.stem))


# -- sampling with py-spy -------------------------------------------------------------------------

SPY_RATE = 250  # samples per second


def py_spy() -> str:
    """The py-spy of the bench's environment (pyproject.toml `[bench]` extra)."""
    spy = Path(os.path.normpath(Path(PY).parent / "py-spy"))  # not resolve(): a venv's link
    if not spy.exists():
        raise SystemExit(f"py-spy is missing ({spy}): pip install -e '.[bench]'")
    return str(spy)


def spy_part(
    frames: list[str], parts: list[tuple[str, str]], rest: str, outer: tuple[str, ...] = ()
) -> str:
    """The label of the first of `parts` (label, marker) whose marker is in a frame of a py-spy
    stack, searched from its innermost frame out; else `rest` if a frame is the project's own
    (not one of the `outer` frames, which hold the whole run); else ""."""
    for frame in reversed(frames):
        for label, marker in parts:
            if marker in frame:
                return label
    for frame in reversed(frames):
        if "kremlin_archive/" in frame and not any(o in frame for o in outer):
            return rest
    return ""
