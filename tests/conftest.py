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
