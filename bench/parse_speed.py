"""Median cost of `parsing.parse_event` relative to a bare `lxml.html.fromstring` of the same
bytes, over every event page of the mirror (the issue asks for a ratio of at most 1.5).

    .venv/bin/python bench/parse_speed.py [MIRROR_DIR] [--repeat N]

MIRROR_DIR is an unpacked mirror (the directory holding en.kremlin.ru/); without it the tarball
in ../shared/mirror is unpacked to a temporary directory first. Each page is timed `--repeat`
times (default 3) for both functions and the minimum kept, which filters scheduler noise; the
ratio is computed per page and its median printed, with the medians of both absolute times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import lxml.html

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kremlin_archive.parsing import ParseError, parse_event  # noqa: E402

MIRROR_TAR = REPO.parent / "shared" / "mirror" / "en-kremlin-2020.tar.xz"


def best_of(repeat: int, func, *args) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func(*args)
        best = min(best, time.perf_counter() - start)
    return best


def time_pages(pages: list[Path], repeat: int) -> tuple[list[float], list[float], list[float]]:
    """Per parseable page: (parse_event / fromstring ratio, parse_event s, fromstring s), each
    time the fastest of `repeat`. Also used by bench/run.py (`make bench`)."""
    ratios, ours, bare = [], [], []
    for page in pages:
        body = page.read_bytes()
        url = f"http://en.kremlin.ru/events/president/news/{page.stem}"
        try:
            parse_event(body, url)
        except ParseError:
            continue
        cost = best_of(repeat, parse_event, body, url)
        base = best_of(repeat, lxml.html.fromstring, body)
        ratios.append(cost / base)
        ours.append(cost)
        bare.append(base)
    return ratios, ours, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mirror", nargs="?", type=Path, help="unpacked mirror directory")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        mirror = args.mirror
        if mirror is None:
            with tarfile.open(MIRROR_TAR) as tar:
                tar.extractall(scratch, filter="data")
            mirror = Path(scratch)
        news = mirror / "en.kremlin.ru" / "events" / "president" / "news"
        pages = sorted(p for p in news.glob("*.html") if p.stem.isdigit())
        ratios, ours, bare = time_pages(pages, args.repeat)
    print(f"pages timed:                 {len(ratios)}")
    print(f"median parse_event:          {statistics.median(ours) * 1e3:.3f} ms")
    print(f"median lxml.html.fromstring: {statistics.median(bare) * 1e3:.3f} ms")
    print(f"median ratio:                {statistics.median(ratios):.3f}")
    print(f"90th percentile ratio:       {statistics.quantiles(ratios, n=10)[-1]:.3f}")


if __name__ == "__main__":
    main()
