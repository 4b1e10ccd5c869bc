"""Parse speed and body-text agreement over the mirror's event pages (issue 9, part 1).

    .venv/bin/python bench/parse_bench.py MIRROR_DIR [--repeat 5] [--sample 500] [--json OUT]

1. `parsing.parse_event` vs a bare `lxml.html.fromstring` of the same bytes, on every event page
   of the mirror — bench/parse_speed.py's `time_pages`: each page timed `--repeat` times per
   function, fastest kept, ratio per page, median over pages.
2. `parse_event` vs `trafilatura.extract` on a fixed random sample of `--sample` pages (the
   whole mirror would take ~12 min: trafilatura needs ~0.1 s a page here). Each page is timed
   once per function, the order alternating from page to page; the sample is cut into five
   interleaved runs (page i goes to run i mod 5) whose median ratios are reported with the
   median of the five.
3. Agreement: token F1 of trafilatura's text against our paragraphs joined (tokens: lower-case
   `\\w+`, multiset overlap), per page; and where they differ: every line only one side has,
   put in a category (title/breadcrumb, lead, "See also", site footer/menus, status line,
   other), counted, with examples.

MIRROR_DIR is an unpacked mirror (holding en.kremlin.ru/). bench/run.py (`make bench`) runs this
as a subprocess and reads the JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from parse_speed import time_pages  # noqa: E402

from kremlin_archive.parsing import ParseError, parse_event  # noqa: E402

SAMPLE_SEED = 2020
RUNS = 5
_TOKEN = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")  # NBSP included: we keep it, trafilatura turns it into a space
# Site chrome trafilatura falls back to on pages with little body text (menus, footer).
_CHROME = (
    "president's",
    "website",
    "sections",
    "resources",
    "legal",
    "and technical",
    "information",
    "all content on this site is licensed under",
    "presidential executive office",
)
_STATUS = re.compile(
    r"^(announcement|news|transcript|speech|statement)?,?\s*"
    r"(january|february|march|april|may|june|july|august|september|october|november|december)"
    r"\s+\d",
    re.I,
)


def event_pages(mirror: Path) -> list[Path]:
    news = mirror / "en.kremlin.ru" / "events" / "president" / "news"
    return sorted(p for p in news.glob("*.html") if p.stem.isdigit())


def event_url(page: Path) -> str:
    return f"http://en.kremlin.ru/events/president/news/{page.stem}"


def norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


_INVISIBLE = re.compile(r"[\s\u00ad\u200b\u200c\u200d\ufeff]+")


def squash(text: str) -> str:
    """For "is this line in that text": no whitespace, soft hyphens or zero-width characters
    (trafilatura drops some of them, and some spaces between tags)."""
    return _INVISIBLE.sub("", text)


def tokens(text: str) -> collections.Counter:
    return collections.Counter(_TOKEN.findall(text.lower()))


def token_f1(candidate: str, reference: str) -> float:
    """F1 of the token multiset of `candidate` against `reference` (1.0 if both are empty)."""
    cand, ref = tokens(candidate), tokens(reference)
    if not cand or not ref:
        return 1.0 if cand == ref else 0.0
    overlap = sum((cand & ref).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(cand.values()), overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def categorise(line: str, transcript) -> str:
    """Which part of the page a line trafilatura kept (and our body lacks) comes from."""
    low = line.lower()
    body = squash(" ".join(transcript.paragraphs))
    if body and body in squash(line):
        return "the whole article block as one line (title, date, place, caption, body, footer)"
    title, lead = norm(transcript.title), norm(transcript.lead or "")
    if line in title or title in line or low.startswith("events "):
        return "title / breadcrumb"
    if lead and (line in lead or lead in line):
        return "lead (we keep it in `lead`, not in `paragraphs`)"
    if low.startswith("see also"):
        return "'See also' block"
    if low in _CHROME or low.startswith(_CHROME[-2:]):
        return "site menus / footer (licence line)"
    if _STATUS.match(line):
        return "status line (kind, date)"
    return "other (mostly photo captions)"


def compare(text: str, transcript) -> dict:
    """Lines only trafilatura has (with category) and paragraphs only we have."""
    ours = squash(" ".join(transcript.paragraphs))
    theirs_lines = [norm(line) for line in text.split("\n") if norm(line)]
    theirs = squash(" ".join(theirs_lines))
    only_theirs = []
    see_also = False
    for line in theirs_lines:
        if squash(line) in ours:
            continue
        category = categorise(line, transcript)
        if category == "'See also' block":
            see_also = True
        elif see_also and category.startswith("other") and len(line) < 200:
            category = "'See also' block"  # the items listed under it
        only_theirs.append((category, line))
    only_ours = [norm(p) for p in transcript.paragraphs if squash(p) and squash(p) not in theirs]
    return {"only_theirs": only_theirs, "only_ours": only_ours}


def trafilatura_vs_ours(pages: list[Path], sample: int) -> dict:
    import trafilatura

    rng = random.Random(SAMPLE_SEED)
    chosen = sorted(rng.sample(pages, min(sample, len(pages))), key=lambda p: int(p.stem))
    rows = []
    for i, page in enumerate(chosen):
        body, url = page.read_bytes(), event_url(page)
        try:
            parse_event(body, url)  # warm-up; also skips what we refuse to parse
        except ParseError:
            continue
        if i % 2:
            start = time.perf_counter()
            text = trafilatura.extract(body) or ""
            t_theirs = time.perf_counter() - start
            start = time.perf_counter()
            transcript = parse_event(body, url)
            t_ours = time.perf_counter() - start
        else:
            start = time.perf_counter()
            transcript = parse_event(body, url)
            t_ours = time.perf_counter() - start
            start = time.perf_counter()
            text = trafilatura.extract(body) or ""
            t_theirs = time.perf_counter() - start
        ours_text = "\n".join(transcript.paragraphs)
        diff = compare(text, transcript)
        rows.append(
            {
                "id": int(page.stem),
                "run": i % RUNS,
                "t_ours": t_ours,
                "t_theirs": t_theirs,
                "f1": token_f1(text, ours_text),
                "f1_with_title_lead": token_f1(
                    text, "\n".join([transcript.title, transcript.lead or "", ours_text])
                ),
                "ours_empty": not ours_text.strip(),
                "ours_tokens": sum(tokens(ours_text).values()),
                "theirs_tokens": sum(tokens(text).values()),
                **diff,
            }
        )
    runs = []
    for run in range(RUNS):
        ratios = [r["t_theirs"] / r["t_ours"] for r in rows if r["run"] == run]
        runs.append(statistics.median(ratios))
    f1 = [r["f1"] for r in rows]
    with_body = [r["f1"] for r in rows if not r["ours_empty"]]
    categories: collections.Counter = collections.Counter()
    category_pages: collections.Counter = collections.Counter()
    category_examples: dict[str, list] = collections.defaultdict(list)
    for r in rows:
        seen = set()
        for category, line in r["only_theirs"]:
            categories[category] += 1
            seen.add(category)
            if len(category_examples[category]) < 3 and line[:120] not in [
                e[1] for e in category_examples[category]
            ]:
                category_examples[category].append((r["id"], line[:120]))
        for category in seen:
            category_pages[category] += 1
    only_ours_pages = [r for r in rows if r["only_ours"]]
    worst = sorted((r for r in rows if not r["ours_empty"]), key=lambda r: r["f1"])[:3]
    return {
        "pages": len(rows),
        "sample": sample,
        "seed": SAMPLE_SEED,
        "median_ours_ms": statistics.median(r["t_ours"] for r in rows) * 1e3,
        "median_theirs_ms": statistics.median(r["t_theirs"] for r in rows) * 1e3,
        "median_ratio": statistics.median(r["t_theirs"] / r["t_ours"] for r in rows),
        "run_ratios": runs,
        "median_of_runs": statistics.median(runs),
        "f1_median": statistics.median(f1),
        "f1_quantiles": quantiles(f1),
        "f1_bins": bins(f1),
        "f1_with_body_median": statistics.median(with_body) if with_body else None,
        "f1_with_body_mean": statistics.fmean(with_body) if with_body else None,
        "f1_with_title_lead_median": statistics.median(r["f1_with_title_lead"] for r in rows),
        "ours_empty": sum(r["ours_empty"] for r in rows),
        "ours_empty_ids": [r["id"] for r in rows if r["ours_empty"]][:10],
        "tokens_ours": sum(r["ours_tokens"] for r in rows),
        "tokens_theirs": sum(r["theirs_tokens"] for r in rows),
        "only_theirs_lines": dict(categories.most_common()),
        "only_theirs_pages": dict(category_pages.most_common()),
        "only_theirs_examples": {k: v for k, v in category_examples.items()},
        "only_ours_pages": len(only_ours_pages),
        "only_ours_lines": sum(len(r["only_ours"]) for r in rows),
        "only_ours_examples": [(r["id"], r["only_ours"][0][:160]) for r in only_ours_pages[:3]],
        "worst": [
            {
                "id": r["id"],
                "f1": r["f1"],
                "only_theirs": [(c, line[:120]) for c, line in r["only_theirs"][:4]],
                "only_ours": [p[:120] for p in r["only_ours"][:2]],
            }
            for r in worst
        ],
    }


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"min": ordered[0], "p10": at(0.10), "p25": at(0.25), "p50": at(0.5), "p75": at(0.75)}


def bins(values: list[float]) -> dict[str, int]:
    edges = [
        (1.0, "1.00"),
        (0.99, "0.99–1.00"),
        (0.95, "0.95–0.99"),
        (0.9, "0.90–0.95"),
        (0.5, "0.50–0.90"),
        (0.0, "0.00–0.50"),
    ]
    counts = dict.fromkeys((label for _, label in edges), 0)
    for value in values:
        for edge, label in edges:
            if value >= edge:
                counts[label] += 1
                break
    return counts


SIZE_BUCKETS = ((0, 40), (40, 60), (60, 100), (100, 10_000))  # KiB


def by_size(pages: list[Path], ratios, ours, bare) -> list[dict]:
    """Ratios by page size: long transcripts cost parse_event more than they cost libxml2."""
    rows = []
    for low, high in SIZE_BUCKETS:
        chosen = [i for i, page in enumerate(pages) if low <= page.stat().st_size / 1024 < high]
        if chosen:
            rows.append(
                {
                    "kib": (low, high),
                    "pages": len(chosen),
                    "median_ratio": statistics.median(ratios[i] for i in chosen),
                    "total_ratio": sum(ours[i] for i in chosen) / sum(bare[i] for i in chosen),
                    "median_ours_ms": statistics.median(ours[i] for i in chosen) * 1e3,
                }
            )
    return rows


def profile_long_pages(pages: list[Path], count: int = 20) -> dict:
    """cProfile of parse_event on the `count` largest pages: own-time shares of the top
    functions, and the paragraphs they hold."""
    import cProfile
    import pstats

    largest = sorted(pages, key=lambda p: p.stat().st_size)[-count:]
    bodies = [(p.read_bytes(), event_url(p)) for p in largest]
    paragraphs = sum(len(parse_event(b, u).paragraphs) for b, u in bodies)
    profiler = cProfile.Profile()
    profiler.enable()
    for body, url in bodies:
        parse_event(body, url)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())
    top = sorted(
        (
            (name if f == "~" else f"{Path(f).name}:{name}", v[2] / total)
            for (f, _l, name), v in stats.stats.items()
        ),
        key=lambda r: -r[1],
    )[:8]
    return {"pages": count, "paragraphs": paragraphs, "total_s": total, "top": top}


def parse_vs_lxml(pages: list[Path], repeat: int) -> dict:
    started = time.perf_counter()
    ratios, ours, bare = time_pages(pages, repeat)
    aligned = len(ratios) == len(pages)  # time_pages skips pages parse_event refuses
    return {
        "by_size": by_size(pages, ratios, ours, bare) if aligned else [],
        "long_pages_profile": profile_long_pages(pages),
        "pages": len(pages),
        "timed": len(ratios),
        "repeat": repeat,
        "median_ratio": statistics.median(ratios),
        "p90_ratio": statistics.quantiles(ratios, n=10)[-1],
        "median_ours_ms": statistics.median(ours) * 1e3,
        "median_lxml_ms": statistics.median(bare) * 1e3,
        "sum_ours_s": sum(ours),
        "sum_lxml_s": sum(bare),
        "aggregate_ratio": sum(ours) / sum(bare),
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mirror", type=Path, help="unpacked mirror directory")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--skip-lxml", action="store_true", help="only the trafilatura part")
    args = parser.parse_args(argv)
    pages = event_pages(args.mirror)
    result = {}
    if not args.skip_lxml:
        result["lxml"] = parse_vs_lxml(pages, args.repeat)
        r = result["lxml"]
        print(
            f"parse_event vs lxml.html.fromstring: median ratio {r['median_ratio']:.3f} over "
            f"{r['timed']} pages ({r['seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    started = time.perf_counter()
    result["trafilatura"] = t = trafilatura_vs_ours(pages, args.sample)
    t["seconds"] = time.perf_counter() - started
    print(
        f"trafilatura vs parse_event: {t['median_of_runs']:.1f}x slower; F1 median "
        f"{t['f1_median']:.3f} over {t['pages']} pages ({t['seconds']:.0f} s)",
        file=sys.stderr,
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    else:
        print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
