"""A synthetic archive the size of the whole site (issue 17, items 4-5), built once and cached.

    .venv/bin/python bench/synthetic.py [--events 160000] [--rebuild] [--cache DIR]

What it is. kremlin.ru has about 80,000 event ids per language; an archive of both is ~160,000
records. The only real pages we have are the 6,656 English event pages of the 2020 capture (and
one reconstructed Russian page), so the big archive is made of those pages under new ids:

* ids 1..80,000 in both languages, dated from 2000-01-01 to 2026-11 in id order (about eight
  events a day, as the site publishes), the same id naming the English and the Russian page of
  one event (the site's rule: they are twins);
* the newest ids (the *top block*) are the capture's newest real pages: real id + D, dated
  real date + S days (S a whole number of weeks, so that the capture's last day 2020-08-27
  becomes 2026-11-26); the replay server serves them, and the capture's feed and listing pages
  shifted the same way (`top_overlay`), so that a refresh through the replay server finds an
  archive that already holds everything (a no-change refresh, as in section 4);
* every other id n takes a page of the capture (all of them in turn, in a fixed shuffled
  order) with its own id replaced by n everywhere it occurs (canonical URL, article@id, the
  share links, data-href, /d/ and /copy/ links) and every date on it moved by the same number
  of days (ISO dates, English dates, by-date links), so its published_at is n's day at the
  page's own time;
* the Russian page of an id is the English page re-labelled: hosts swapped (en.kremlin.ru <->
  kremlin.ru, hreflang ru <-> en), and the Latin letters of its text (not of its markup) spelt
  in Cyrillic letter by letter (Vladimir Putin -> Владимир Путин). That gives Russian records
  the byte size of Russian text (two UTF-8 bytes a letter), Cyrillic words for the FTS index
  (unicode61 folds them as it folds Russian) and Russian labels for the person resolver. It is
  not Russian: the words are transliterated English (the vocabulary has the size and the word
  frequencies of English, Russian has more word forms), and the person resolver's rules that
  know Russian initials (В.Путин) see full names instead.

Each page goes the way a crawl takes it: `parsing.parse_event` of the re-keyed HTML, a
`response` + `request` pair written by `kremlin_archive.warc.WarcWriter` (one gzip member per
record, as in a crawl; fsync off for the build, which changes no byte), the `fetches` row by
`db.record_fetch` (with the replay server's ETag, as section 4's archive has), the record by
`db.save_transcript` with the run's person index, and `db.settle_persons` at the end of each run
-- so sizes, indexes, FTS and the coverage ledger are what a crawl would leave. Parsing and WARC
writing run in two worker processes, storing in this one (the crawl does all of it on one
thread); each worker writes its own WARC files, so a run has two where a crawl has one.

Built newest first (as an archive started now and backfilled): the snapshots at 10,000 and
40,000 records are the newest 5,000 and 20,000 ids, each a finished run with its own WARC files,
copied aside once the run is settled (`kremlin-<N>.db`); the WARC folder of a snapshot is its
runs' files. The build is cached under data/bench-cache/scale-<key>-<records>/ (or
$KREMLIN_BENCH_CACHE), the key a hash of what decides its content: FORMAT and the plan's
constants (bump FORMAT when the way records are made changes), the parser version, the database's
tables (not its indexes and views, which `db.open_db` brings up to date and the bench applies to
each snapshot before measuring) and the capture's file list -- so editing unrelated code does not
force a rebuild of ~65 CPU-minutes; --rebuild (bench/run.py --rebuild-scale) makes it again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from kremlin_archive import db as dbmod  # noqa: E402
from kremlin_archive import identity, urls  # noqa: E402
from kremlin_archive.items import fetch_record  # noqa: E402
from kremlin_archive.parsing import PARSER_VERSION, ParseError, parse_event  # noqa: E402
from kremlin_archive.timestamps import utc_stamp  # noqa: E402

IDS = 80_000  # ids per language on the whole site, about
SCALES = (10_000, 40_000, 160_000)  # records (both languages) of the snapshots
TOP = 120  # the capture's newest pages that keep their place at the top (feed, listings, rechecks)
FIRST_DAY = dt.date(2000, 1, 1)
CAPTURE_LAST_DAY = dt.date(2020, 8, 27)
SHIFT_DAYS = ((dt.date(2026, 11, 26) - CAPTURE_LAST_DAY).days // 7) * 7
CHUNK = 100
WORKERS = 2  # page workers (parse + WARC), beside the storing process
DEPTH = 2  # chunks queued ahead per worker
FORMAT = 1  # bump when the way records are made changes: the cached build is then made again
UA = "kremlin-archive/0.1 (+https://github.com/; research archive)"

# -- re-keying pages -----------------------------------------------------------------------------

_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip
# What moves when a page is re-keyed: its event ids (in URLs, article@id, listing items) and its
# dates (ISO, English, by-date links), found in one pass.
_MOVABLE = re.compile(
    rb"(?P<id>(?:/news/(?:copy/)?|event-|/d/|data-id=\")(?P<n>\d+)(?!\d))"
    rb"|(?P<iso>(?<!\d)(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?!\d))"
    rb"|(?P<en>\b(?P<month>"
    + "|".join(_MONTHS).encode()
    + rb") (?P<day>\d{1,2}), (?P<year>\d{4})\b)"
    rb"|(?P<bd>by-date/(?P<bd_d>\d{2})\.(?P<bd_m>\d{2})\.(?P<bd_y>\d{4}))"
)
_ISO = re.compile(rb"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_HOST = re.compile(rb"(?<![\w.-])(en\.)?kremlin\.ru")
_HREFLANG = re.compile(rb'(hreflang|lang|inLanguage" content)="(ru|en)"')


class Template:
    """A page cut at every id and date it holds, so that a copy under another id and date is a
    join (the sources are re-keyed ~12 times each; scanning once keeps the build fast)."""

    def __init__(self, data: bytes):
        self.parts: list[bytes] = []
        self.holes: list[tuple] = []  # (kind, prefix, value) after each part
        at = 0
        for m in _MOVABLE.finditer(data):
            hole = self._hole(m)
            if hole is None:
                continue
            self.parts.append(data[at : m.start()])
            self.holes.append(hole)
            at = m.end()
        self.parts.append(data[at:])

    @staticmethod
    def _hole(m: re.Match) -> tuple | None:
        try:
            if m["id"]:
                return ("id", m[0][: -len(m["n"])], int(m["n"]))
            if m["iso"]:
                return ("iso", b"", dt.date(int(m["y"]), int(m["m"]), int(m["d"])))
            if m["en"]:
                month = _MONTHS.index(m["month"].decode()) + 1
                return ("en", b"", dt.date(int(m["year"]), month, int(m["day"])))
            return ("bd", b"", dt.date(int(m["bd_y"]), int(m["bd_m"]), int(m["bd_d"])))
        except ValueError:  # not a date after all (2020-13-45)
            return None

    def render(self, ids: dict[int, int], days: int) -> bytes:
        out = [self.parts[0]]
        delta = dt.timedelta(days=days)
        for (kind, prefix, value), part in zip(self.holes, self.parts[1:], strict=True):
            if kind == "id":
                out.append(prefix + str(ids.get(value, value)).encode())
            else:
                try:
                    day = value + delta
                except OverflowError:
                    day = value
                if kind == "iso":
                    out.append(day.isoformat().encode())
                elif kind == "en":
                    out.append(f"{_MONTHS[day.month - 1]} {day.day}, {day.year}".encode())
                else:
                    out.append(day.strftime("by-date/%d.%m.%Y").encode())
            out.append(part)
        return b"".join(out)


def rekey(data: bytes, ids: dict[int, int], days: int) -> bytes:
    """The page (or feed, or listing) with the event ids of `ids` renamed and every date moved
    by `days` days."""
    return Template(data).render(ids, days)


_LATIN = "abcdefghijklmnopqrstuvwxyz"
_CYRILLIC = ["а", "б", "ц", "д", "е", "ф", "г", "х", "и", "й", "к", "л", "м", "н", "о", "п", "к",
             "р", "с", "т", "у", "в", "в", "кс", "ы", "з"]  # fmt: skip
_SPELL = {ord(a): c for a, c in zip(_LATIN, _CYRILLIC, strict=True)}
_SPELL |= {ord(a.upper()): c.upper() for a, c in zip(_LATIN, _CYRILLIC, strict=True)}
_SEGMENTS = re.compile(
    r"(<script\b.*?</script>|<style\b.*?</style>|<!--.*?-->|<[^>]*>)", re.S | re.I
)
_WORDS = re.compile(r"&#?\w+;|[A-Za-z]+")


def cyrillic(text: str) -> str:
    """Latin letters spelt in Cyrillic, HTML entities left alone."""
    return _WORDS.sub(lambda m: m[0] if m[0][0] == "&" else m[0].translate(_SPELL), text)


def relabel(page: bytes) -> bytes:
    """The English page as if kremlin.ru served it: hosts and language marks swapped."""

    def host(m: re.Match) -> bytes:
        return b"kremlin.ru" if m[1] else b"en.kremlin.ru"

    def lang(m: re.Match) -> bytes:
        return m[1] + b'="' + (b"en" if m[2] == b"ru" else b"ru") + b'"'

    return _HREFLANG.sub(lang, _HOST.sub(host, page))


def russian(page: bytes) -> bytes:
    """The English page re-labelled as the Russian one, its text in Cyrillic letters (see the
    module docstring)."""
    text = relabel(page).decode("utf-8", "surrogateescape")
    parts = _SEGMENTS.split(text)
    body_at = next((i for i, p in enumerate(parts) if p.lower().startswith("<body")), 0)
    for i in range(body_at + 1, len(parts), 1):
        if i % 2 == 0 and parts[i]:
            parts[i] = cyrillic(parts[i])
    return "".join(parts).encode("utf-8", "surrogateescape")


# -- the plan --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One record to make: `lang`, its id, the capture page it is made of, the days to move."""

    lang: str
    kremlin_id: int
    source: int
    days: int
    segment: int  # the run (and WARC files) it belongs to: index into SCALES


def news_dir(mirror: Path) -> Path:
    return mirror / "en.kremlin.ru" / "events" / "president" / "news"


def capture_ids(mirror: Path) -> list[int]:
    return sorted(int(p.stem) for p in news_dir(mirror).glob("*.html") if p.stem.isdigit())


def published_days(mirror: Path, ids: list[int]) -> dict[int, dt.date]:
    """Each capture page's own day (the datetime of its time.read__published, else the first
    ISO date on it)."""
    days = {}
    pattern = re.compile(rb'class="read__published" datetime="(\d{4}-\d{2}-\d{2})"')
    for kid in ids:
        data = (news_dir(mirror) / f"{kid}.html").read_bytes()
        m = pattern.search(data) or _ISO.search(data)
        if m:
            days[kid] = dt.date.fromisoformat(m[1].decode() if m.lastindex == 1 else m[0].decode())
    return days


def top_block(ids: list[int]) -> dict[int, int]:
    """The capture's newest TOP ids -> their ids at the top of the synthetic site."""
    offset = IDS - ids[-1]
    return {kid: kid + offset for kid in ids[-TOP:]}


def plan(mirror: Path, events: int) -> tuple[list[Spec], dict]:
    """Every record to build, newest first, both languages per id; and what the plan is."""
    ids = capture_ids(mirror)
    days = published_days(mirror, ids)
    ids = [kid for kid in ids if kid in days]
    top = top_block(ids)
    top_first_new = min(top.values())
    top_oldest = min(days[kid] for kid in top) + dt.timedelta(days=SHIFT_DAYS)
    pool = [kid for kid in ids if kid not in top]
    random.Random(2020).shuffle(pool)
    span = (top_oldest - FIRST_DAY).days - 1
    ranked: list[tuple[int, int, int]] = []  # (new id, source, days)
    for src, new in sorted(top.items(), key=lambda kv: -kv[1]):
        ranked.append((new, src, SHIFT_DAYS))
    for n in range(top_first_new - 1, 0, -1):
        src = pool[n % len(pool)]
        day = FIRST_DAY + dt.timedelta(days=(n - 1) * span // (top_first_new - 1))
        ranked.append((n, src, (day - days[src]).days))
    scales = [s for s in SCALES if s < events] + [events]
    specs: list[Spec] = []
    for new, src, move in ranked:
        for lang in ("en", "ru"):
            if len(specs) >= events:
                break
            segment = next(i for i, s in enumerate(scales) if len(specs) < s)
            specs.append(Spec(lang, new, src, move, segment))
    info = {
        "ids": IDS,
        "top": TOP,
        "top_ids": [min(top.values()), max(top.values())],
        "id_offset_top": IDS - ids[-1],
        "shift_days_top": SHIFT_DAYS,
        "capture_pages": len(ids),
        "scales": scales,
        "first_day": FIRST_DAY.isoformat(),
    }
    return specs, info


def top_overlay(mirror: Path) -> dict[str, bytes]:
    """What the replay server must serve for the synthetic site's top: the capture's feed and
    first listing pages and its TOP newest event pages, ids and dates moved as in the archive
    (URL -> body; `ReplayServer.put` each)."""
    ids = capture_ids(mirror)
    top = top_block(ids)
    news = news_dir(mirror)
    base = "http://en.kremlin.ru/events/president/news"
    out = {f"{base}/feed": rekey((news / "feed.xml").read_bytes(), top, SHIFT_DAYS)}
    out[base] = rekey((news.parent / "news.html").read_bytes(), top, SHIFT_DAYS)
    for page in (2, 3):
        path = news / "page" / f"{page}.html"
        if path.is_file():
            out[f"{base}/page/{page}"] = rekey(path.read_bytes(), top, SHIFT_DAYS)
    for src, new in top.items():
        out[f"{base}/{new}"] = rekey((news / f"{src}.html").read_bytes(), top, SHIFT_DAYS)
    return out


# -- the worker: pages, parsing, WARC ------------------------------------------------------------


class _Maker:
    """In the second process: re-keyed pages, parsed, written to WARC."""

    def __init__(self, mirror: Path, warc_dir: Path, archive_id: str, run_ids: list[str]):
        from kremlin_archive.devtools.replay import _etag

        self.mirror = mirror
        self.warc_dir = warc_dir
        self.archive_id = archive_id
        self.run_ids = run_ids
        self.etag = _etag
        self.pages: dict[tuple[str, int], Template] = {}
        self.writer = None
        self.segment = -1
        self.fallbacks = 0  # Russian pages whose Cyrillic spelling did not parse: relabelled only

    def source(self, lang: str, src: int) -> Template:
        key = (lang, src)
        if key not in self.pages:
            en = (news_dir(self.mirror) / f"{src}.html").read_bytes()
            self.pages[key] = Template(en if lang == "en" else russian(en))
        return self.pages[key]

    def writer_for(self, segment: int):
        from kremlin_archive.warc import WarcWriter

        if segment != self.segment:
            if self.writer is not None:
                self.writer.close()
            self.writer = WarcWriter(
                self.warc_dir,
                run_id=self.run_ids[segment],
                fsync=False,
                warcinfo={"kremlin-archive-id": self.archive_id},
            ).open()
            self.segment = segment
        return self.writer

    def make(self, spec: Spec):
        top = top_block_cache(self.mirror)
        ids = top if spec.kremlin_id in top.values() and spec.days == SHIFT_DAYS else {}
        ids = ids or {spec.source: spec.kremlin_id}
        url = urls.event_url(spec.lang, spec.kremlin_id)
        body = self.source(spec.lang, spec.source).render(ids, spec.days)
        try:
            transcript = parse_event(body, url)
        except ParseError:
            if spec.lang != "ru":
                return None
            en = (news_dir(self.mirror) / f"{spec.source}.html").read_bytes()
            body = rekey(relabel(en), ids, spec.days)
            try:
                transcript = parse_event(body, url)
            except ParseError:
                return None
            self.fallbacks += 1
        now = dt.datetime.now(dt.UTC)
        headers = [
            ("Server", "nginx"),
            ("Content-Type", "text/html; charset=utf-8"),
            ("ETag", self.etag(body)),
            ("Content-Length", str(len(body))),
        ]
        request_headers = [
            ("User-Agent", UA),
            ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ("Accept-Language", "en"),
            ("Accept-Encoding", "gzip, deflate"),
        ]
        location, _request = self.writer_for(spec.segment).write_exchange(
            url=url,
            request_headers=request_headers,
            status=200,
            reason="OK",
            response_headers=headers,
            body=body,
            fetched_at=now,
            remote_ip="127.0.0.1",
        )
        row = fetch_record(
            run_id=self.run_ids[spec.segment],
            spider="kremlin",
            kind="event",
            event_id=f"{spec.lang}-{spec.kremlin_id}",
            requested_url=url,
            url=url,
            fetched_at=utc_stamp(now),
            final_url=url,
            status=200,
            headers={k.lower(): v for k, v in headers},
            payload=body,
            warc=location,
        )
        return transcript, row

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


_TOP: dict[str, dict[int, int]] = {}


def top_block_cache(mirror: Path) -> dict[int, int]:
    if str(mirror) not in _TOP:
        _TOP[str(mirror)] = top_block(capture_ids(mirror))
    return _TOP[str(mirror)]


def _worker(mirror, warc_dir, archive_id, run_ids, inbox, outbox) -> None:
    maker = _Maker(Path(mirror), Path(warc_dir), archive_id, run_ids)
    try:
        while True:
            chunk = inbox.get()
            if chunk is None:
                break
            outbox.put([maker.make(spec) for spec in chunk])
        maker.close()
        outbox.put(("done", maker.fallbacks))
    except BaseException as exc:  # reported by the parent
        outbox.put(("error", repr(exc)))
        raise


# -- the build -----------------------------------------------------------------------------------


def cache_root() -> Path:
    return Path(os.environ.get("KREMLIN_BENCH_CACHE", REPO / "data" / "bench-cache"))


def _stable(value: object) -> object:
    """JSON for what json cannot write: sets in order (their repr changes with the hash seed)."""
    return sorted(value) if isinstance(value, set | frozenset) else repr(value)


def cache_key(mirror: Path) -> str:
    """What decides the archive's content: the way it is made (FORMAT and the plan's
    constants), the parser's version, the database's tables, FTS and migrations, and the
    capture's pages (names and sizes). Not its indexes and views: `db.open_db` brings those up
    to date on any archive (`ensure_db_shape`), and the bench opens every snapshot with it
    before measuring, so adding an index does not cost a rebuild of ~65 CPU-minutes."""
    h = hashlib.sha256()
    h.update(repr((FORMAT, IDS, SCALES, TOP, FIRST_DAY, SHIFT_DAYS)).encode())
    h.update(PARSER_VERSION.encode())
    shape = [dbmod.TABLES, dbmod.FTS, dbmod.FTS_TOKENIZE]
    h.update(json.dumps(shape, default=_stable, sort_keys=True).encode())
    h.update(repr([m for m in dir(dbmod) if re.match(r"m\d{3}_", m)]).encode())
    news = news_dir(mirror)
    for p in sorted(news.glob("*.html")):
        h.update(f"{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def scale_dir(mirror: Path, events: int) -> Path:
    return cache_root() / f"scale-{cache_key(mirror)}-{events}"


def load(mirror: Path, events: int = SCALES[-1]) -> dict | None:
    """The manifest of a finished build, or None."""
    manifest = scale_dir(mirror, events) / "manifest.json"
    return json.loads(manifest.read_text()) if manifest.is_file() else None


def build(mirror: Path, events: int = SCALES[-1], *, say=print) -> dict:
    """Build the synthetic archive (see the module docstring); returns its manifest."""
    home = scale_dir(mirror, events)
    if home.is_symlink():
        home.unlink()
    elif home.exists():
        shutil.rmtree(home)
    warc_dir = home / "warc"
    db_path = home / "kremlin.db"
    warc_dir.mkdir(parents=True)
    specs, info = plan(mirror, events)
    scales = info["scales"]
    archive_id = identity.bind(str(db_path), str(warc_dir))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_ids = [f"{stamp}-synth{i}" for i in range(len(scales))]
    ctx = mp.get_context("fork")
    inboxes = [ctx.Queue(maxsize=DEPTH + 1) for _ in range(WORKERS)]
    outboxes = [ctx.Queue(maxsize=DEPTH + 1) for _ in range(WORKERS)]
    workers = [
        ctx.Process(
            target=_worker,
            args=(str(mirror), str(warc_dir), archive_id, run_ids, inboxes[i], outboxes[i]),
            daemon=True,
        )
        for i in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    chunks = [specs[i : i + CHUNK] for i in range(0, len(specs), CHUNK)]
    # a chunk never straddles two runs
    chunks = [
        [s for s in chunk if s.segment == seg]
        for chunk in chunks
        for seg in sorted({s.segment for s in chunk})
    ]
    db = dbmod.open_db(db_path)
    index = dbmod.person_index(db)
    started = time.monotonic()
    manifest: dict = {
        "key": cache_key(mirror),
        "plan": info,
        "snapshots": [],
        "archive_id": archive_id,
    }
    # chunk j goes to worker j % WORKERS, DEPTH chunks ahead of the one being stored
    ahead = DEPTH * WORKERS
    for j, chunk in enumerate(chunks[:ahead]):
        inboxes[j % WORKERS].put(chunk)
    stored = skipped = 0
    segment = -1
    warc_files: list[set[str]] = [set() for _ in scales]
    seg_started = started

    def finish_segment(seg: int) -> None:
        settle_at = time.monotonic()
        settled = dbmod.settle_persons(db)
        dbmod.finish_run(
            db, run_ids[seg], status="finished", finish_reason="finished",
            counts={"events_new": stored, "responses": stored},
        )  # fmt: skip
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        snap = home / f"kremlin-{scales[seg]}.db"
        shutil.copyfile(db_path, snap)
        manifest["snapshots"].append(
            {
                "events": db.execute("SELECT count(*) FROM events").fetchone()[0],
                "records_planned": scales[seg],
                "db": snap.name,
                "warc_files": sorted({f for s in range(seg + 1) for f in warc_files[s]}),
                "run_id": run_ids[seg],
                "store_s": time.monotonic() - seg_started,
                "settle_s": time.monotonic() - settle_at,
                "settled": settled,
            }
        )
        say(f"synthetic: {stored:,} records stored, snapshot {snap.name} "
            f"({time.monotonic() - started:.0f} s)")  # fmt: skip

    for j, chunk in enumerate(chunks):
        results = outboxes[j % WORKERS].get()
        if isinstance(results, tuple):
            raise SystemExit(f"synthetic: a page worker failed: {results[1]}")
        if j + ahead < len(chunks):
            inboxes[j % WORKERS].put(chunks[j + ahead])
        seg = chunk[0].segment
        if seg != segment:
            if segment >= 0:
                finish_segment(segment)
            segment, seg_started = seg, time.monotonic()
            dbmod.start_run(
                db, run_id=run_ids[seg], spider="kremlin", command="bench/synthetic.py",
                arguments={"synthetic": True, "records": scales[seg]},
            )  # fmt: skip
        # one transaction per chunk (each save is a savepoint in it): the content is the same
        # as with one transaction per event, the build faster
        with db.atomic():
            for made in results:
                if made is None:
                    skipped += 1
                    continue
                transcript, row = made
                fetch_id = dbmod.record_fetch(db, row)
                transcript.set_provenance(
                    {**row, "id": fetch_id}, source_url=row["url"], origin="crawl",
                    spider="kremlin", run_id=run_ids[seg],
                )  # fmt: skip
                dbmod.save_transcript(db, transcript, index=index)
                stored += 1
                if row.get("warc_filename"):
                    warc_files[seg].add(row["warc_filename"])
        if stored // 10_000 != (stored - len(results)) // 10_000:
            say(f"synthetic: {stored:,} records ({time.monotonic() - started:.0f} s)")
    for inbox in inboxes:
        inbox.put(None)
    finish_segment(segment)
    done = [outbox.get() for outbox in outboxes]
    for worker in workers:
        worker.join(timeout=60)
    db.close()
    manifest.update(
        stored=stored,
        skipped=skipped,
        ru_fallbacks=sum(d[1] for d in done if d[0] == "done"),
        build_s=time.monotonic() - started,
        built_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        parser_version=PARSER_VERSION,
    )
    (home / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def snapshot_of(db_path: Path) -> dict:
    """What a snapshot holds, read from the database itself: its records and WARC files."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    files = [r[0] for r in conn.execute(
        "SELECT DISTINCT warc_filename FROM fetches WHERE warc_filename IS NOT NULL")]  # fmt: skip
    conn.close()
    return {"events": events, "records_planned": events, "db": db_path.name, "warc_files": files}


def snapshot_now(mirror: Path, events: int = SCALES[-1], *, say=print) -> dict:
    """A finished archive of what a build still running has stored so far (SQLite's backup
    of the committed state, its running run finished and its persons settled, as a run's end
    does): for when the whole build cannot be waited for. Returns its snapshot entry."""
    home = scale_dir(mirror, events)
    source = sqlite3.connect(f"file:{home / 'kremlin.db'}?mode=ro", uri=True)
    partial = home / "kremlin-partial.db"
    partial.unlink(missing_ok=True)
    target = sqlite3.connect(partial)
    source.backup(target)
    source.close()
    target.close()
    db = dbmod.connect(partial)
    for row in list(db.query("SELECT id FROM runs WHERE status = 'running'")):
        dbmod.finish_run(db, row["id"], status="finished", finish_reason="finished", counts={})
    settled = dbmod.settle_persons(db)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    snap = snapshot_of(partial)
    final = home / f"kremlin-{snap['events']}.db"
    partial.rename(final)
    for extra in home.glob("kremlin-partial.db-*"):
        extra.unlink()
    say(f"synthetic: snapshot of the running build: {snap['events']:,} records ({final.name})")
    return {**snapshot_of(final), "settled": settled, "partial": True}


def partial_manifest(mirror: Path, events: int = SCALES[-1]) -> dict:
    """The manifest of an unfinished build, from the snapshots on disk."""
    home = scale_dir(mirror, events)
    snaps = sorted(
        (p for p in home.glob("kremlin-*.db") if p.stem.split("-")[1].isdigit()),
        key=lambda p: int(p.stem.split("-")[1]),
    )
    identity_file = json.loads((home / "warc" / "ARCHIVE-ID.json").read_text())
    return {
        "key": cache_key(mirror),
        "plan": plan(mirror, events)[1],
        "snapshots": [snapshot_of(p) for p in snaps],
        "archive_id": identity_file.get("archive_id"),
        "stored": max((snapshot_of(p)["events"] for p in snaps), default=0),
        "partial": True,
        "build_s": None,
        "built_at": None,
    }


def ensure(mirror: Path, events: int = SCALES[-1], *, rebuild: bool = False, say=print) -> dict:
    """The cached build, made when missing (or when `rebuild`)."""
    manifest = None if rebuild else load(mirror, events)
    if manifest is None:
        say(f"synthetic: building {events:,} records in {scale_dir(mirror, events)}")
        manifest = build(mirror, events, say=say)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=os.environ.get("KREMLIN_MIRROR_DIR"))
    parser.add_argument("--events", type=int, default=SCALES[-1])
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    if args.mirror is None:
        raise SystemExit("synthetic: give --mirror or KREMLIN_MIRROR_DIR (the unpacked capture)")
    manifest = ensure(Path(args.mirror), args.events, rebuild=args.rebuild)
    print(json.dumps({k: v for k, v in manifest.items() if k != "snapshots"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
