"""Section 1 of `make bench` from the harness's side: parse speed and agreement.

The measuring is done by bench/parse_bench.py (parse_event vs lxml.html.fromstring via
bench/parse_speed.py, on every event page; vs trafilatura.extract on a sample, with token-F1
agreement), run here in a subprocess whose JSON is read back (`parse_vs_alternatives`). By
default it runs alongside the memory run of section 3, which yields no speed figures; both of
its ratios are paired per page.

`profile_parse`: when parse_event misses its target, a cProfile of it over 500 pages in the
harness process, the top functions by own time.
"""

from __future__ import annotations

import contextlib
import cProfile
import json
import pstats
from pathlib import Path

from common import HERE, NEWS, PY, Run, checked, child_env, shown

from kremlin_archive import parsing


def parse_vs_alternatives(mirror: Path, work: Path, repeat: int, sample: int) -> dict:
    """bench/parse_bench.py over the mirror in a subprocess: its JSON, and the command."""
    parse_json = work / "parse.json"
    argv = [
        PY,
        str(HERE / "parse_bench.py"),
        str(mirror),
        "--repeat",
        str(repeat),
        "--sample",
        str(sample),
        "--json",
        str(parse_json),
    ]
    run = Run(argv, env=child_env(None), log=work / "parse.log")
    checked(run, run.wait(), "parse bench")
    result = json.loads(parse_json.read_text())
    result["command"] = shown(argv, work)
    return result


def profile_parse(pages: list[Path]) -> list[tuple[str, float, float]]:
    """cProfile of parse_event over 500 pages: the top functions by own time."""
    profiler = cProfile.Profile()
    chosen = pages[:: max(1, len(pages) // 500)]
    profiler.enable()
    for page in chosen:
        with contextlib.suppress(parsing.ParseError):
            parsing.parse_event(page.read_bytes(), f"{NEWS}/{page.stem}")
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(tt for (_f, _l, _n), (_a, _b, tt, _ct, _c) in stats.stats.items())
    rows = sorted(
        (
            (f"{Path(f).name}:{fn}", tt, ct)
            for (f, _l, fn), (_a, _b, tt, ct, _c) in stats.stats.items()
        ),
        key=lambda r: -r[1],
    )[:8]
    return [(name, tt / total, ct / total) for name, tt, ct in rows]
