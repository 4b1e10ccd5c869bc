"""Rebuild events, utterances and tags from the WARC files with the current parser, no network.

The SQLite file is an index over the WARC files: `reparse` walks every capture in file/offset
(= chronological) order and

- makes sure every exchange has its `fetches` row (a fresh database gets them rebuilt from the
  records: URL, status, time, headers, digest, WARC location);
- for an event the database does not hold yet, parses every capture of it in order, so its
  revision history is rebuilt too;
- for an event it does hold, parses only its latest capture: on a database built by a crawl
  with the same parser that changes nothing; after a parser change, `db.save_transcript` keeps
  the previous content as a revision (with its parser version) and records what changed;
- resolves every speaker turn to its person again (`db.settle_persons(rebuild=True)`; into
  a database filled from nothing, where every turn was just resolved as it was stored, only
  what rests on the whole archive: `rebuild=False`);
- rebuilds the coverage ledger: every event answer (stored; 404 or the site's 404 page:
  absent; another kind of page: not an event; 403/429: refused; other errors: failed) and
  every event a captured listing page or feed names (listed).

A damaged record (truncated file, corrupt member) is reported in `errors` (stage 'warc') and
skipped; everything readable is rebuilt.

The WARC files are read once, in order (`warc.iter_captures`); then the latest captures of the
events the database holds (the last with status 200 of each, noted on the way) are read back
through one `warc.RecordReader` (files kept open, one index of revisit originals) and parsed.
The fetch rows of a WARC file are read in one query, not one per capture.

Reading and parsing -- everything that needs no database: WARC records, `parse_event`, listing
pages and feeds, content hashes, the `fetches` row of each capture, and the latest captures of
the events the database holds -- run in a second (forked) process when there is more than one
core (`use_worker`; KREMLIN_REPARSE_WORKER=0 keeps them in this one), beside the writes. It
hands the captures over in WARC order, then the latest captures in the order the writer noted
them (the writer checks each is the one it noted), so the database is written exactly as
inline, and without their bodies (nothing the writer does needs them once the page is parsed
and its fetch row made; they were most of the bytes sent). A reparse of the archive a crawl
built -- every event held, after a parser change -- was all in the writer before (one core:
25 s for the 6,656 pages of the 2020 capture, 16 s now).

Writes go in batches: one transaction per `BATCH_CAPTURES` captures or `BATCH_SECONDS`
seconds, whichever comes first (a commit per event cost more than the event's rows). The
full-text indexes are filled once per batch, right before its COMMIT, instead of row by row
by their triggers (`db.DeferredSearchIndex`: FTS5 writes a segment at every savepoint, i.e.
per event, which was half of the time of storing one); the triggers are set aside and put
back inside the batch's transaction, so every committed state has them and an index that
matches the tables, and the finished index holds exactly what the triggers would have put
there. Atomicity: each event's rows are written
inside one savepoint (`save_transcript`), so no event is ever half stored; a kill or an
unexpected error takes back the whole uncommitted batch and keeps the batches committed before
it; a reparse run again finishes the work. A damaged record or a page the parser refuses is
recorded inside the batch and does not disturb the rest of it.
"""

from __future__ import annotations

import enum
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlite_utils import Database

from .. import db as dbmod
from .. import parsing, urls, warc, wayback
from ..discovery import listing_position
from ..items import coverage_state, fetch_record, http_failure_reason
from ..timestamps import utc_stamp

EVENT_STATUSES = (200,)
BATCH_CAPTURES = 500  # captures per transaction ...
BATCH_SECONDS = 5.0  # ... or seconds, whichever comes first


class _Batches:
    """One write transaction per batch of captures (see the module doc), the full-text
    indexes filled once at its end (`db.DeferredSearchIndex`)."""

    def __init__(self, db: Database, size: int, seconds: float):
        self.conn = db.conn
        self.search = dbmod.DeferredSearchIndex(db)
        self.size, self.seconds = size, seconds
        self.count, self.started = 0, 0.0

    def begin(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self.search.begin()
            self.count, self.started = 0, time.monotonic()

    def done(self) -> None:
        """One capture handled: commit when the batch is full or old enough."""
        self.count += 1
        if self.count >= self.size or time.monotonic() - self.started >= self.seconds:
            self.commit()

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.search.flush()
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


class _KnownFetches:
    """The `fetches` rows of the WARC file being read, by offset: one query per file (none
    for a database that had no fetches when the reparse began: it only has those the reparse
    adds, one per capture, each looked up once)."""

    def __init__(self, db: Database, *, fresh: bool = False):
        self.db = db
        self.fresh = fresh
        self.filename: str | None = None
        self.rows: dict[int, dict] = {}

    def get(self, filename: str, offset: int) -> dict | None:
        if self.fresh:
            return None
        if filename != self.filename:
            self.filename = filename
            self.rows = dbmod.fetches_of_warc_file(self.db, filename)
        return self.rows.get(offset)


@dataclass
class ReparseResult:
    run_id: str
    captures: int = 0
    fetches_added: int = 0
    events_parsed: int = 0
    outcomes: dict[str, int] = field(
        default_factory=lambda: {"new": 0, "changed": 0, "unchanged": 0}
    )
    parse_errors: int = 0
    damaged: list[tuple[str, int, str]] = field(default_factory=list)
    persons: dict[str, int] = field(default_factory=dict)  # db.settle_persons

    def as_counts(self) -> dict[str, int]:
        return {
            "captures": self.captures,
            "fetches_added": self.fetches_added,
            "events_parsed": self.events_parsed,
            "events_new": self.outcomes["new"],
            "events_changed": self.outcomes["changed"],
            "events_unchanged": self.outcomes["unchanged"],
            "errors": self.parse_errors + len(self.damaged),
            "warc_damaged": len(self.damaged),
            "persons": self.persons,
        }


def _fetch_row(capture: warc.Capture, ref: urls.EventURL | None, run_id: str) -> dict:
    """The `fetches` row of a capture the database does not know (a database rebuilt from
    the WARC files alone). An exchange with a Wayback Machine -- a raw capture
    (`/web/<timestamp>id_/<original>`) or an index query (`/cdx/`) -- says so."""
    copy = wayback.read_capture_url(capture.url)
    from_wayback = copy is not None or "/cdx/search/cdx" in capture.url
    kind = "event" if ref else urls.kind_of_url(capture.url)
    if copy is not None and not ref:
        kind = "feed" if copy[1].rstrip("/").endswith("/feed") else "other"
    return fetch_record(
        source="wayback" if from_wayback else "site",
        capture=copy,
        run_id=run_id,
        spider="reparse",
        kind="cdx" if "/cdx/search/cdx" in capture.url else kind,
        event_id=ref.key if ref else None,
        requested_url=capture.url,
        url=capture.url,
        fetched_at=utc_stamp(capture.fetched_at),
        final_url=capture.url,
        status=capture.status,
        headers={name.lower(): value for name, value in reversed(capture.headers)},
        payload=capture.body,
        warc=capture.location,
    )


def _event_ref(url: str) -> urls.EventURL | None:
    """The event a capture is of: its own URL, or the original of a Wayback copy."""
    copy = wayback.read_capture_url(url)
    try:
        return urls.parse_event_url(copy[1] if copy else url)
    except ValueError:
        return None


# -- reading and parsing: what needs no database (in a worker process when there are cores) --


@dataclass
class Parsed:
    transcript: parsing.Transcript
    digest: str  # db.content_hash(db.content_of(transcript)); the content itself is not sent


class Seen(NamedTuple):
    """What the writer uses of a capture whose body it does not need: a `warc.Capture`
    without its body still cost the writer more to unpickle than this (its date, headers)."""

    url: str
    status: int
    location: warc.WarcLocation


# What the reader hands the writer, in WARC order: ("damaged", filename, offset, reason) and
# ("capture", capture, ref, parsed, fetch); then ("latest", key, location, capture, ref,
# parsed) for the last capture of each event the database holds (capture None and `parsed`
# the reason when the record cannot be read back). `capture` is a `Seen` or, when UNPARSED,
# the `warc.Capture` itself (`_sent`); `parsed` is a `Parsed` or a ParseError's reason (an
# event page to store), `UNPARSED` (an event page the writer parses itself), a (lang, items)
# pair (a listing page or the feed) or None; `fetch` is the capture's `fetches` row should the
# database not have it (`_fetch_row`). Everything the writer needs of a capture is in `parsed`
# and `fetch`, its URL, status and WARC location: a body is most of the bytes a worker would
# send.
Item = tuple


class _Handed(enum.Enum):
    UNPARSED = "unparsed"  # an enum member stays itself through pickling (`is` holds)


UNPARSED = _Handed.UNPARSED


def _listed_items(capture: warc.Capture) -> tuple[str, list[tuple[int, str]]] | None:
    """A listing page or the feed: (lang, the (kremlin_id, day) pairs it names)."""
    copy = wayback.read_capture_url(capture.url)
    url = copy[1] if copy else capture.url
    lang = urls.lang_of_host(url)
    if lang is None or capture.status != 200:
        return None
    try:
        if url.rstrip("/").endswith("/feed"):
            entries = parsing.parse_feed(capture.body, url)
            items = [(e.kremlin_id, e.published[:10]) for e in entries if e.kremlin_id]
        elif listing_position(url)[0] != "other":
            listing = parsing.parse_listing(capture.body, url)
            items = [(i.kremlin_id, i.published_at[:10]) for i in listing.items]
        else:
            return None
    except parsing.ParseError:
        return None  # the crawl recorded why; nothing to list
    return lang, items


def _parse(capture: warc.Capture, ref: urls.EventURL | None) -> Parsed | str:
    """The page parsed, with its content hash, or the parser's reason to refuse it."""
    try:
        transcript = parsing.parse_event(capture.body, ref.url if ref else capture.url)
    except parsing.ParseError as exc:
        return str(exc)
    return Parsed(transcript, dbmod.content_hash(dbmod.content_of(transcript)))


def _sent(capture: warc.Capture, parsed: Any) -> warc.Capture | Seen:
    """What the writer gets of a capture: all of it when it is to parse the page itself
    (UNPARSED), else no body (it needs nothing more once the page is parsed)."""
    if parsed is UNPARSED:
        return capture
    return Seen(capture.url, capture.status, capture.location)


def _handed_parsed(capture: Any, ref: urls.EventURL | None, parsed: Any) -> Any:
    """`parsed` as the reading process sent it, the page parsed here if it was handed over."""
    return _parse(capture, ref) if parsed is UNPARSED else parsed


def _read(
    warc_dir: str | Path,
    existing: set[str],
    run_id: str,
    hand_over: Callable[[], bool] = lambda: False,
) -> Iterator[Item]:
    """Every capture of the folder in order, with what can be read from it alone: the events
    the database does not hold parsed (those it holds wait for their latest capture), and
    its `fetches` row as a reparse of run `run_id` would record it.

    An event page is left for the writer to parse (`UNPARSED`, the capture with its body)
    when `hand_over()` says so at that moment: the reading process asks it when the writer
    has taken everything sent and waits for more (see `_read_into`)."""
    damaged: list[Item] = []
    latest: dict[str, warc.WarcLocation] = {}  # event the database holds -> its last capture

    def on_error(filename: str, offset: int, reason: str) -> None:
        damaged.append(("damaged", filename, offset, reason))

    def parse_or_hand(capture: warc.Capture, ref: urls.EventURL) -> Any:
        return UNPARSED if hand_over() else _parse(capture, ref)  # UNPARSED: for the writer

    for capture in warc.iter_captures(warc_dir, on_error=on_error):
        yield from damaged
        damaged.clear()
        ref = _event_ref(capture.url)
        parsed: Any = None
        if ref is None:
            parsed = _listed_items(capture)
        elif capture.status in EVENT_STATUSES and ref.key in existing:
            latest[ref.key] = capture.location  # as the writer's `take` keeps it, same order
        elif capture.status in EVENT_STATUSES:
            parsed = parse_or_hand(capture, ref)
        yield ("capture", _sent(capture, parsed), ref, parsed, _fetch_row(capture, ref, run_id))
    yield from damaged
    if not latest:
        return
    with warc.RecordReader(warc_dir) as records:
        for key, loc in latest.items():
            try:
                capture = records.read(loc)
            except warc.WarcError as exc:
                yield ("latest", key, loc, None, None, str(exc))
                continue
            ref = _event_ref(capture.url)
            parsed = parse_or_hand(capture, ref)
            yield ("latest", key, loc, _sent(capture, parsed), ref, parsed)


CHUNK = 16  # items per message from the reading process
AHEAD = 64  # messages the reading process may have ready before the writer takes them


def _read_into(conn: Any, warc_dir: str | Path, existing: set[str], run_id: str) -> None:
    """The reading process: `_read` sent down `conn` in chunks; ("end",) or ("raise", exc).

    A thread sends them, up to `AHEAD` chunks behind, so that reading and parsing go on
    while the writer is busy with a commit (the pipe alone holds a few items: the two sides
    waited for each other a third of the time).

    Parsing is most of the reading side's work, more than the writer's per capture: when
    the writer has taken every chunk but the one being sent (it waits for this process), the
    next event page is handed over unparsed and the writer parses it, so that both processes
    stay busy. Parsing is pure, so who parses a page changes nothing in what is stored."""
    ready: queue.Queue = queue.Queue(maxsize=AHEAD)
    broken = threading.Event()  # the writer is gone: stop reading

    def send() -> None:
        while (chunk := ready.get()) is not None:
            if broken.is_set():
                continue
            try:
                conn.send(chunk)
            except Exception:
                broken.set()

    sender = threading.Thread(target=send, name="reparse-sender", daemon=True)
    sender.start()
    try:
        chunk: list[Item] = []
        for item in _read(warc_dir, existing, run_id, hand_over=lambda: ready.empty()):
            if broken.is_set():
                return
            chunk.append(item)
            if len(chunk) >= CHUNK:
                ready.put(chunk)
                chunk = []
        chunk.append(("end",))
        ready.put(chunk)
    except BaseException as exc:  # handed to the writer, which raises it
        ready.put([("raise", exc)])
    finally:
        ready.put(None)
        sender.join()
        conn.close()


def _read_elsewhere(warc_dir: str | Path, existing: set[str], run_id: str) -> Iterator[Item]:
    """`_read` in a forked process, so that reading and parsing run beside the writes."""
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(
        target=_read_into,
        args=(sending, warc_dir, existing, run_id),
        name="reparse-reader",
        daemon=True,
    )
    process.start()
    sending.close()
    try:
        while True:
            try:
                chunk = receiving.recv()
            except EOFError:
                raise RuntimeError("the reparse reading process ended without a word") from None
            for item in chunk:
                if item[0] == "end":
                    return
                if item[0] == "raise":
                    raise item[1]
                yield item
    finally:
        receiving.close()
        if process.is_alive():
            process.terminate()
        process.join()


def _filled_from_nothing(db: Database, existing: set[str]) -> bool:
    """Whether the database has neither events nor fetches (see `reparse`)."""
    return not existing and dbmod.count_rows(db, "fetches") == 0


def cores() -> int:
    """The cores this process may run on."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return usable or 1


def use_worker() -> bool:
    """Read and parse in a second process: with more than one core, where fork exists, unless
    KREMLIN_REPARSE_WORKER=0."""
    if os.environ.get("KREMLIN_REPARSE_WORKER", "").strip().lower() in ("0", "no", "off"):
        return False
    return cores() > 1 and "fork" in multiprocessing.get_all_start_methods()


# -- writing ----------------------------------------------------------------------------------


def reparse(
    db: Database,
    warc_dir: str | Path,
    *,
    run_id: str | None = None,
    progress: Callable[[int], None] | None = None,
    worker: bool | None = None,
) -> ReparseResult:
    """Rebuild the content tables of `db` from the WARC files in `warc_dir` (see module doc).
    `worker`: read and parse in a second process (default: `use_worker()`)."""
    run_id = run_id or dbmod.new_run_id()
    result = ReparseResult(run_id)
    dbmod.start_run(
        db,
        run_id=run_id,
        spider="reparse",
        command="reparse",
        arguments={"warc_dir": str(warc_dir)},
    )
    existing = set(dbmod.iter_event_ids(db))
    # A database with no events and no fetches is filled from nothing: its secondary indexes
    # are built once at the end (`db.bulk_writes`), and no capture can have a fetch row yet.
    fresh = _filled_from_nothing(db, existing)
    index = dbmod.person_index(db)
    site_answers: dict[str, str] = {}  # event key -> the site's last error answer
    latest: dict[str, tuple[warc.WarcLocation, dict]] = {}

    def on_error(filename: str, offset: int, reason: str) -> None:
        result.damaged.append((filename, offset, reason))
        dbmod.record_error(
            db, run_id=run_id, url=f"{filename}#{offset}", stage="warc", reason=reason
        )

    def note(event_id: str, state: str, fetch: dict, answer: str) -> None:
        dbmod.note_coverage(
            db, event_id, state, at=fetch["fetched_at"], fetch_id=fetch["id"], run_id=run_id,
            answer=answer[:200],
        )  # fmt: skip

    def save(
        capture: warc.Capture | Seen,
        ref: urls.EventURL | None,
        fetch: dict,
        parsed: Parsed | str,
    ) -> None:
        if isinstance(parsed, str):  # the parser's reason to refuse the page
            result.parse_errors += 1
            dbmod.record_error(
                db,
                run_id=run_id,
                url=capture.url,
                stage="parse",
                reason=parsed,
                status=capture.status,
                fetch_id=fetch["id"],
            )
            if ref is not None:
                state = coverage_state("parse", capture.status, parsed, fetch["source"] or "site")
                note(ref.key, state, fetch, parsed)
            return
        transcript = parsed.transcript
        transcript.set_provenance(
            fetch,
            source_url=fetch["requested_url"] or capture.url,
            origin="reparse",
            spider="reparse",
            run_id=run_id,
        )
        if transcript.source == "wayback" and ref is not None:
            # what the site had answered just before, when its answer is in the files
            transcript.site_answer = site_answers.get(ref.key)
        outcome = dbmod.save_transcript(db, transcript, index=index, digest=parsed.digest)
        result.events_parsed += 1
        result.outcomes[outcome.outcome] += 1

    def take(
        capture: warc.Capture | Seen, ref: urls.EventURL | None, parsed: Any, new_fetch: dict
    ) -> None:
        result.captures += 1
        loc = capture.location
        fetch = known.get(loc.filename, loc.offset)
        if fetch is None:
            fetch = new_fetch
            fetch["id"] = dbmod.record_fetch(db, fetch)
            result.fetches_added += 1
        if ref is None:
            if parsed is not None:  # a listing page or the feed: its events are listed
                lang, items = parsed
                dbmod.note_listed(db, lang, items, at=fetch["fetched_at"], fetch_id=fetch["id"])
            return
        source = fetch["source"] or "site"
        if source == "site":
            site_answers.pop(ref.key, None)
        if capture.status not in EVENT_STATUSES:
            if capture.status >= 400:  # 3xx: the answer came at the address redirected to
                reason = http_failure_reason(capture.status)
                note(
                    ref.key, coverage_state("fetch", capture.status, reason, source), fetch, reason
                )
                if source == "site":
                    site_answers[ref.key] = reason
            return
        if ref.key in existing:
            latest[ref.key] = (loc, fetch)
        else:
            save(capture, ref, fetch, parsed)

    def write(reading: Iterator[Item]) -> None:
        """Every item read, then the latest captures of the events the database holds, in
        batches; a failure takes back the batch it happened in."""
        try:
            for item in reading:
                batches.begin()
                if item[0] == "damaged":
                    on_error(*item[1:])
                elif item[0] == "latest":
                    _, key, loc, capture, ref, parsed = item
                    at, fetch = latest.pop(key)
                    if at != loc:
                        raise RuntimeError(f"reparse: {key}'s latest capture is {at}, not {loc}")
                    if capture is None:  # the record could not be read back
                        on_error(loc.filename, loc.offset, parsed)
                    else:
                        save(capture, ref, fetch, _handed_parsed(capture, ref, parsed))
                else:
                    _, capture, ref, parsed, fetch = item
                    take(capture, ref, _handed_parsed(capture, ref, parsed), fetch)
                    if progress:
                        progress(1)
                batches.done()
            if latest:
                raise RuntimeError(f"reparse: {len(latest)} events' latest captures not read")
            batches.commit()
        except BaseException:
            batches.rollback()
            raise

    if not Path(warc_dir).is_dir():
        raise FileNotFoundError(f"WARC directory not found: {warc_dir}")
    if not fresh:
        dbmod.ensure_indexes(db)  # after a fresh reparse that was killed
    known = _KnownFetches(db, fresh=fresh)
    batches = _Batches(db, BATCH_CAPTURES, BATCH_SECONDS)
    reading = (_read_elsewhere if (use_worker() if worker is None else worker) else _read)(
        warc_dir, existing, run_id
    )
    try:
        with dbmod.bulk_writes(db, defer_indexes=fresh):
            write(reading)
    finally:
        close = getattr(reading, "close", None)
        if close:
            close()
    # Every turn's person again, from the rebuilt labels, tags and links (and the resolver of
    # this version): reparse rebuilds persons too. Into a database filled from nothing every
    # event was just stored, its turns resolved by this resolver as they were written, so only
    # what rests on the whole archive is settled (as at the end of a crawl); resolving every
    # event again cost a tenth of such a reparse, all of it after the reading process is done.
    result.persons = dbmod.settle_persons(db, rebuild=not fresh)
    dbmod.finish_run(
        db, run_id, status="finished", finish_reason="finished", counts=result.as_counts()
    )
    return result
