"""Locate the read-only material in ../shared (override with KREMLIN_SHARED) and unpack the
mirror once per test session. Nothing from ../shared is ever copied into the repository."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

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
    "LOG_LEVEL=INFO",
)


def run_cli(*args: str, proxy: str | None = None, settings=FAST, timeout: float = 600, env=None):
    """Run `kremlin-archive ARGS -s …` in a subprocess (each crawl gets a fresh reactor)."""
    import subprocess
    import sys

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
    """The replay server on the mirror, with the reconstructed ru page of 66419 added."""
    from kremlin_archive.devtools.replay import ReplayServer

    with ReplayServer(mirror_dir) as server:
        server.put_file(RU_66419_URL, RU_66419_PAGE)
        yield server
