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
- resolves every speaker turn to its person again (`db.settle_persons(rebuild=True)`);
- rebuilds the coverage ledger: every event answer (stored; 404 or the site's 404 page:
  absent; another kind of page: not an event; 403/429: refused; other errors: failed) and
  every event a captured listing page or feed names (listed).

A damaged record (truncated file, corrupt member) is reported in `errors` (stage 'warc') and
skipped; everything readable is rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlite_utils import Database

from .. import db as dbmod
from .. import parsing, urls, warc, wayback
from ..discovery import listing_position
from ..items import coverage_state, fetch_record, http_failure_reason
from ..timestamps import utc_stamp

EVENT_STATUSES = (200,)


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


def reparse(
    db: Database,
    warc_dir: str | Path,
    *,
    run_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReparseResult:
    """Rebuild the content tables of `db` from the WARC files in `warc_dir` (see module doc)."""
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

    def save(capture: warc.Capture, fetch: dict) -> None:
        ref = _event_ref(capture.url)
        try:
            transcript = parsing.parse_event(capture.body, ref.url if ref else capture.url)
        except parsing.ParseError as exc:
            result.parse_errors += 1
            dbmod.record_error(
                db,
                run_id=run_id,
                url=capture.url,
                stage="parse",
                reason=str(exc),
                status=capture.status,
                fetch_id=fetch["id"],
            )
            if ref is not None:
                state = coverage_state("parse", capture.status, str(exc), fetch["source"] or "site")
                note(ref.key, state, fetch, str(exc))
            return
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
        outcome = dbmod.save_transcript(db, transcript, index=index)
        result.events_parsed += 1
        result.outcomes[outcome.outcome] += 1

    def listed(capture: warc.Capture, fetch: dict) -> None:
        """A listing page or the feed: the events it names enter the ledger as listed."""
        copy = wayback.read_capture_url(capture.url)
        url = copy[1] if copy else capture.url
        lang = urls.lang_of_host(url)
        if lang is None or capture.status != 200:
            return
        try:
            if url.rstrip("/").endswith("/feed"):
                entries = parsing.parse_feed(capture.body, url)
                items = [(e.kremlin_id, e.published[:10]) for e in entries if e.kremlin_id]
            elif listing_position(url)[0] != "other":
                listing = parsing.parse_listing(capture.body, url)
                items = [(i.kremlin_id, i.published_at[:10]) for i in listing.items]
            else:
                return
        except parsing.ParseError:
            return  # the crawl recorded why; nothing to list
        dbmod.note_listed(db, lang, items, at=fetch["fetched_at"], fetch_id=fetch["id"])

    for capture in warc.iter_captures(warc_dir, on_error=on_error):
        result.captures += 1
        if progress:
            progress(1)
        loc = capture.location
        ref = _event_ref(capture.url)
        fetch = dbmod.fetch_by_warc(db, loc.filename, loc.offset)
        if fetch is None:
            fetch = _fetch_row(capture, ref, run_id)
            fetch["id"] = dbmod.record_fetch(db, fetch)
            result.fetches_added += 1
        if ref is None:
            listed(capture, fetch)
            continue
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
            continue
        event_id = ref.key
        if event_id in existing:
            latest[event_id] = (loc, fetch)
        else:
            save(capture, fetch)
    for loc, fetch in latest.values():
        try:
            capture = warc.read_record(warc_dir, loc)
        except warc.WarcError as exc:
            on_error(loc.filename, loc.offset, str(exc))
            continue
        save(capture, fetch)
    # Every turn's person again, from the rebuilt labels, tags and links (and the resolver of
    # this version): reparse rebuilds persons too.
    result.persons = dbmod.settle_persons(db, rebuild=True)
    dbmod.finish_run(
        db, run_id, status="finished", finish_reason="finished", counts=result.as_counts()
    )
    return result
