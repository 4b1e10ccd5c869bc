"""All SQL of the project: the database shape as data, and the functions that write and read it.

Nobody else writes SQL. The shape (tables, foreign keys, indexes, FTS, views) is declared in
`TABLES`, `INDEXES`, `FTS` and `VIEWS` and applied by the idempotent `ensure_db_shape(db)`;
later changes of shape go through `MIGRATIONS` (sqlite-utils `Migrations`).

Writes of one event — its row, utterances, tags, revision — happen in one transaction
(`save_transcript`), so a crash never leaves half a record. An event whose content is unchanged
is not written at all: the fetch that saw it is the only trace, as the archive promises
("unchanged refetches add a fetch row only"). A changed event keeps its previous content in
`revisions` before it is overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import re
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Database

from . import persons as personsmod
from . import urls
from .items import (
    ABSENT,
    CONTENT_FIELDS,
    FAILED,
    LISTED,
    NOT_EVENT,
    REFUSED,
    STORED,
    Mention,
    Tag,
    Transcript,
    Utterance,
    coverage_state,
)
from .timestamps import utc_stamp

LICENSE = "CC BY 4.0"
ATTRIBUTION = (
    "Content: President of Russia website (kremlin.ru / en.kremlin.ru), "
    "licensed under Creative Commons Attribution 4.0 International (CC BY 4.0)."
)
BUSY_TIMEOUT_MS = 30_000

# -- shape ------------------------------------------------------------------------------------

# Columns of `events` that hold content (compared to decide new/changed/unchanged) are derived
# from items.CONTENT_FIELDS; the others are provenance of the current content.
TABLES: dict[str, dict[str, Any]] = {
    # The archive's identity (one row), kept in its WARC folder too (identity.py): a database
    # refuses a WARC folder of another archive.
    "identity": {
        "columns": {"id": str, "created_at": str, "warc_dir": str},
        "pk": "id",
    },
    "runs": {
        "columns": {
            "id": str,
            "spider": str,
            "command": str,
            "arguments": str,  # JSON
            "started_at": str,
            "finished_at": str,
            # running | finished | incomplete | blocked | unreachable | failed | interrupted
            "status": str,
            "finish_reason": str,
            "requests": int,
            "responses": int,
            "events_new": int,
            "events_changed": int,
            "events_unchanged": int,
            "errors": int,
            "counts": str,  # JSON: the run's full stats
            "host": str,
            "pid": int,
        },
        "pk": "id",
        "not_null": {"spider", "started_at", "status"},
    },
    "fetches": {
        "columns": {
            "id": int,
            "run_id": str,
            "spider": str,
            "kind": str,  # event | listing | feed | robots | other
            "event_id": str,  # the event this request was for, if any (may not exist: 404s)
            "requested_url": str,  # the URL as the user / listing gave it
            "url": str,  # the URL requested on the wire
            "final_url": str,
            "method": str,
            "status": int,  # HTTP status; NULL when no response arrived
            "error": str,  # transport error when no response arrived
            "fetched_at": str,  # UTC ISO 8601
            "content_type": str,
            "content_length": int,
            "etag": str,
            "last_modified": str,
            "payload_sha256": str,
            "warc_filename": str,
            "warc_offset": int,
            "warc_length": int,
            "warc_record_id": str,
            "warc_record_type": str,  # response | revisit
            "warc_payload_digest": str,
            "source": str,  # site | wayback
            "archive_url": str,  # wayback: the capture fetched (url is that too)
            "capture_time": str,  # wayback: when the archive captured the page (UTC)
            "original_url": str,  # wayback: the URL it captured
        },
        "pk": "id",
        "foreign_keys": [("run_id", "runs", "id")],
        "not_null": {"url", "fetched_at"},
    },
    "events": {
        "columns": {
            "id": str,
            "lang": str,
            "kremlin_id": int,
            "url": str,
            "title": str,
            "lead": str,
            "published_at": str,
            "year": int,
            "place": str,
            "text": str,
            "paragraphs": str,  # JSON list
            "sections": str,  # JSON list
            "updated_at": str,
            "announce_date": str,
            "twin_url": str,
            "twin_id": str,  # set when the twin is in the archive too
            "utterance_count": int,
            "speakers": str,  # JSON list of distinct speakers in order of appearance
            "content_hash": str,
            "parser_version": str,
            "origin": str,  # crawl | reparse | import:<file>
            "source_url": str,
            "fetch_id": int,  # the fetch the current content came from
            "fetched_at": str,
            "first_seen_at": str,
            "last_changed_at": str,
            "revision_count": int,
            "license": str,
            "source": str,  # site | wayback: who served the current content
            "capture_time": str,  # wayback: when the archive captured it (UTC)
            "site_answer": str,  # what the site said when a copy was taken instead
            "links_hash": str,  # of the page's person links (not content: see `mentions`)
        },
        "pk": "id",
        "foreign_keys": [("fetch_id", "fetches", "id"), ("twin_id", "events", "id")],
        "not_null": {"lang", "kremlin_id", "url", "title", "published_at"},
    },
    "persons": {
        "columns": {
            "id": str,  # the site's catalog id ("37"), else an archive id ("a-vladimir-putin")
            "catalog_id": int,
            "kind": str,  # catalog | archive
            "name": str,  # to show: the English name, else the Russian one
            "name_en": str,  # as the site prints it in running text and labels
            "name_ru": str,
            "catalog_name_en": str,  # as the catalog writes it (tags, hover cards): surname first
            "catalog_name_ru": str,
            "description_en": str,  # the latest hover-card description
            "description_ru": str,
            "url": str,  # the catalog page
            "turns": int,  # speaker turns resolved to the person (refreshed at a run's end)
            "turns_en": int,
            "turns_ru": int,
            "events": int,
            "first_turn_at": str,
            "last_turn_at": str,
        },
        "pk": "id",
        "not_null": {"kind"},
    },
    "utterances": {
        "columns": {
            "event_id": str,
            "seq": int,
            "speaker": str,  # the label exactly as printed, minus its colon
            "text": str,
            "person_id": str,  # who the label names (persons.py), None when no one is certain
            "name": str,  # the label's words taken for the person's name
            "position": str,  # the position or title printed with the name
            "marker": str,  # "(retranslated)", "(через переводчика)": as printed
            "person_evidence": str,  # persons.EVIDENCE: label-link, rule, event-tag, …
            "person_note": str,  # what was matched, or why no person
        },
        "pk": ("event_id", "seq"),
        "foreign_keys": [("event_id", "events", "id"), ("person_id", "persons", "id")],
        "not_null": {"event_id", "seq", "text"},
    },
    "mentions": {
        "columns": {
            "event_id": str,
            "seq": int,  # page order
            "person_id": str,
            "text": str,  # the link's visible text
            "card_name": str,
            "card_title": str,
            "turn": int,  # the turn whose label holds the link, if any
        },
        "pk": ("event_id", "seq"),
        "foreign_keys": [("event_id", "events", "id"), ("person_id", "persons", "id")],
        "not_null": {"event_id", "seq", "person_id"},
    },
    "tags": {
        "columns": {"id": str, "lang": str, "kind": str, "name": str, "url": str},
        "pk": "id",
        "not_null": {"kind", "name"},
    },
    "event_tags": {
        "columns": {"event_id": str, "tag_id": str, "seq": int},
        "pk": ("event_id", "tag_id"),
        "foreign_keys": [("event_id", "events", "id"), ("tag_id", "tags", "id")],
    },
    "revisions": {
        "columns": {
            "id": int,
            "event_id": str,
            "revision": int,  # 1 = the first content this archive held
            "recorded_at": str,  # when it was superseded
            "content_hash": str,
            "parser_version": str,
            "origin": str,
            "fetch_id": int,  # the fetch the old content came from
            "superseded_by_fetch_id": int,
            "changed_fields": str,  # JSON list
            "title": str,
            "lead": str,
            "published_at": str,
            "place": str,
            "text": str,
            "content": str,  # JSON of every content field of the old version
        },
        "pk": "id",
        "foreign_keys": [
            ("event_id", "events", "id"),
            ("fetch_id", "fetches", "id"),
            ("superseded_by_fetch_id", "fetches", "id"),
        ],
        "not_null": {"event_id", "revision", "recorded_at", "content"},
    },
    "coverage": {
        "columns": {
            "id": str,  # the event key, ru-66419
            "lang": str,
            "kremlin_id": int,
            "state": str,  # stored | absent | not_event | refused | failed | listed
            "published_day": str,  # Moscow day, from the event or a listing, if known
            "answer": str,  # the last answer: HTTP 404, timeout, not-found-page, …
            "first_seen_at": str,
            "checked_at": str,  # the last time the site (or a capture) was asked
            "fetch_id": int,  # the fetch the state rests on
            "run_id": str,  # the run that last changed the state
            "source": str,  # stored: site | wayback (a copy of the Internet Archive only)
        },
        "pk": "id",
        "foreign_keys": [("fetch_id", "fetches", "id"), ("run_id", "runs", "id")],
        "not_null": {"lang", "kremlin_id", "state", "first_seen_at"},
    },
    "errors": {
        "columns": {
            "id": int,
            "run_id": str,
            "url": str,
            "stage": str,  # input | fetch | parse | validate | store | warc
            "reason": str,
            "status": int,
            "fetch_id": int,
            "at": str,
        },
        "pk": "id",
        "foreign_keys": [("run_id", "runs", "id"), ("fetch_id", "fetches", "id")],
        "not_null": {"stage", "reason", "at"},
    },
}

# Indexes an older archive has that INDEXES has replaced (by a wider one starting the same).
OBSOLETE_INDEXES = (
    "idx_utterances_person_id",
    "idx_utterances_speaker",
    "idx_events_first_seen_at_id",  # now covers the columns event_changes shows
)

INDEXES: list[tuple[str, tuple[str, ...]]] = [
    ("events", ("lang", "published_at")),
    ("events", ("published_at",)),
    ("events", ("kremlin_id",)),
    ("events", ("year",)),
    ("events", ("place",)),
    ("events", ("fetch_id",)),
    ("events", ("twin_id",)),  # the transcript page asks whose twin an event is
    # The events table's facets (lang, year, place, sections) counted from the index, never the
    # rows: a row's sections lie behind its text (overflow pages), 0.4 s per facet at 40k.
    ("events", ("lang", "year", "place", "sections", "id")),
    # every listing page asks which of its events are known (known_event_titles), read from the
    # index: the rows would bring their texts (a no-change refresh grew with the archive)
    ("events", ("lang", "kremlin_id", "title")),
    # the events table's sorts a reader clicks (metadata.yml's sortable_columns: each column
    # one an index starts with, tested); the second also counts the view `transcripts` (its
    # WHERE) from the index alone, the third gives its language facet (SQLite takes the index
    # that orders the groups): at 160,000 events each read every row otherwise (0.7-1.5 s)
    ("events", ("title",)),
    ("events", ("utterance_count", "speakers", "lang")),
    ("events", ("lang", "utterance_count", "speakers")),
    # a label's turns in the table's order, with the facets of the page from the index alone
    ("utterances", ("speaker", "event_id", "seq", "person_id", "person_evidence")),
    # a person's page counts their labels, positions and evidence from the index alone
    ("utterances", ("person_id", "speaker", "position", "person_evidence")),
    # every turn of a person in the table's order (`/kremlin/utterances?person_id=…`, sorted by
    # event): a page without sorting all of them (0.6 s for Putin at 40k), and the facets of a
    # later page (Datasette counts the rows after its cursor) from the index alone
    ("utterances", ("person_id", "event_id", "seq", "speaker", "person_evidence")),
    ("utterances", ("person_evidence",)),
    ("mentions", ("person_id",)),
    ("event_tags", ("tag_id",)),
    ("tags", ("kind", "name")),
    ("fetches", ("url", "id")),
    ("fetches", ("event_id", "id")),
    ("fetches", ("run_id",)),
    ("fetches", ("payload_sha256",)),
    ("fetches", ("warc_filename", "warc_offset")),
    ("fetches", ("kind", "spider")),  # the fetches table's facets, from the index
    ("revisions", ("event_id", "revision")),
    ("errors", ("run_id", "stage")),
    ("errors", ("url",)),
    ("coverage", ("lang", "kremlin_id")),
    # a range of ids in both languages, in id order (the prepared query coverage_of_ids): read
    # from the range's start and stopped at the page's last row, instead of every row of the
    # ledger joined to its event and sorted (0.3 s at 40k records)
    ("coverage", ("kremlin_id", "lang")),
    ("coverage", ("state",)),
    # The newest events and revisions first and the site's 404s, for `event_changes` (the Atom
    # feed reads it on every request; first_seen_at lies behind the text, so a scan would read
    # every row). The events' index covers every column the view takes from them: counting the
    # view (its Datasette page) reads no event row (1.5 s at 160k records when it did).
    ("events", ("first_seen_at", "id", "lang", "published_at", "title", "fetch_id")),
    ("revisions", ("recorded_at", "event_id")),
    ("fetches", ("status",)),
]

# Indexes of some rows only (name: table, columns, which rows).
PARTIAL_INDEXES: dict[str, tuple[str, tuple[str, ...], str]] = {
    # The labelled turns in event order: counted per event (the prepared query most_turns) as
    # one pass over the index, not a sort of every labelled turn (0.1 s less at 160k records).
    "idx_utterances_event_id_labelled": ("utterances", ("event_id",), "speaker IS NOT NULL"),
}

# unicode61 folds case for Cyrillic as well as Latin; remove_diacritics 2 also makes ё match е.
FTS_TOKENIZE = "unicode61 remove_diacritics 2"
FTS: dict[str, tuple[str, ...]] = {
    "events": ("title", "lead", "text"),
    "utterances": ("speaker", "text"),
}

# Answers of the site that say an event page is gone: HTTP 404 or 410, or its 404 page served
# with a 200 (a parse error `not-found-page`). Copies of the Internet Archive say nothing of it.
# Written as the fetches to look at (the status index and the errors), not as a test of every
# event fetch (a read of each, 0.5 s at 160k records).
_GONE = (
    "f.id IN (SELECT id FROM fetches WHERE status IN (404, 410) UNION ALL "
    "SELECT fetch_id FROM errors WHERE reason LIKE 'not-found-page%' AND fetch_id IS NOT NULL)"
)
# What happened to the archive's events, newest first: `new` when an event was first stored,
# `edited` when a refetch brought other content (the revision keeps the old one), `reparsed`
# when the same page read again gave other content (a re-parse, or a refetch of an identical
# payload by a newer parser: the archive changed, not the site), and `removed` when the site,
# asked again for a stored event, answered that it is gone and has not given the page since
# (the archive keeps the last content). A compound SELECT ordered as a
# whole, so that SQLite merges its three parts each in index order: the newest rows cost the
# same however large the archive (the recent changes and the Atom feed read only those).
CHANGES_VIEW = f"""
    SELECT e.first_seen_at AS at, 'new' AS change, e.id AS event_id, e.lang, e.published_at,
           e.title, NULL AS revision_id, NULL AS revision, NULL AS changed_fields,
           NULL AS answer,
           coalesce((SELECT r.fetch_id FROM revisions r
                     WHERE r.event_id = e.id AND r.revision = 1), e.fetch_id) AS fetch_id
    FROM events e
    UNION ALL
    SELECT r.recorded_at,
           CASE WHEN r.fetch_id = r.superseded_by_fetch_id
                  OR old.payload_sha256 = new.payload_sha256 THEN 'reparsed'
                ELSE 'edited' END,
           r.event_id, e.lang, e.published_at, e.title, r.id, r.revision, r.changed_fields, NULL,
           r.superseded_by_fetch_id
    FROM revisions r JOIN events e ON e.id = r.event_id
      LEFT JOIN fetches old ON old.id = r.fetch_id
      LEFT JOIN fetches new ON new.id = r.superseded_by_fetch_id
    UNION ALL
    SELECT f.fetched_at, 'removed', e.id, e.lang, e.published_at, e.title, NULL, NULL, NULL,
           CASE WHEN f.status IN (404, 410) THEN 'HTTP ' || f.status
                ELSE 'the site''s 404 page' END, f.id
    FROM (
      -- the first of the site's "gone" answers since it last gave the page
      SELECT min(f.id) AS id FROM fetches f
      -- `+f.kind`: from the fetches _GONE names, not a walk of the kind index
      WHERE {_GONE} AND +f.kind = 'event' AND coalesce(f.source, 'site') = 'site'
        AND NOT EXISTS (
          SELECT 1 FROM fetches later
          WHERE later.event_id = f.event_id AND later.id > f.id AND later.kind = 'event'
            AND coalesce(later.source, 'site') = 'site' AND later.status IN (200, 304)
            AND later.id NOT IN (SELECT fetch_id FROM errors
                                 WHERE reason LIKE 'not-found-page%' AND fetch_id IS NOT NULL))
      GROUP BY f.event_id
    ) gone
    JOIN fetches f ON f.id = gone.id
    JOIN events e ON e.id = f.event_id
    ORDER BY at DESC, event_id DESC
"""

VIEWS: dict[str, str] = {
    "transcripts": """
        SELECT e.id, e.lang, e.published_at, e.title, e.place, e.utterance_count,
               e.speakers, e.url
        FROM events e
        WHERE e.utterance_count > 1 AND e.speakers != '[]'
    """,  # no ORDER BY (metadata.yml sorts the page): one would make SQLite run the view
    # whole, every row read, to count it; without, the count reads an index (INDEXES)
    # The event's and the person's columns as subqueries, not joins, and the language from the
    # event's key (`ru-66419`): counting the view or a facet of its turns' own columns reads
    # the speaker index alone, not an event per turn (0.3 s at 40,000 records); the subqueries
    # run for the rows a page shows.
    "speaker_turns": """
        SELECT u.event_id, substr(u.event_id, 1, 2) AS lang,
               (SELECT e.published_at FROM events e WHERE e.id = u.event_id) AS published_at,
               (SELECT e.title FROM events e WHERE e.id = u.event_id) AS title,
               u.seq, u.speaker, u.person_id,
               (SELECT coalesce(CASE substr(u.event_id, 1, 2) WHEN 'ru' THEN p.name_ru
                                ELSE p.name_en END, p.name_en, p.name_ru)
                FROM persons p WHERE p.id = u.person_id) AS person,
               u.position, u.text
        FROM utterances u
        WHERE u.speaker IS NOT NULL
    """,
    "unresolved_speakers": f"""
        SELECT u.speaker, u.person_evidence, u.person_note, count(*) AS turns,
               count(DISTINCT u.event_id) AS events, min(u.event_id) AS event_id
        FROM utterances u
        WHERE u.person_evidence IN ({", ".join(repr(e) for e in personsmod.NOT_RESOLVED)})
        GROUP BY u.speaker, u.person_evidence, u.person_note
        ORDER BY turns DESC, u.speaker
    """,
    "latest_runs": """
        SELECT id, spider, status, started_at, finished_at, requests, responses,
               events_new, events_changed, events_unchanged, errors
        FROM runs ORDER BY started_at DESC
    """,
    "event_changes": CHANGES_VIEW,
}


def connect(path: str | Path, *, readonly: bool = False) -> Database:
    """Open the archive database with the pragmas every connection needs."""
    if readonly:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
        db = Database(conn)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = Database(path)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA foreign_keys = ON")
    return db


def ensure_db_shape(db: Database) -> Database:
    """Create whatever part of the shape is missing; running it again changes nothing."""
    if db.journal_mode != "wal" and not db.memory:
        db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")
    with db.atomic():
        for name, spec in TABLES.items():
            table = db.table(name)
            if not table.exists():
                table.create(
                    spec["columns"],
                    pk=spec["pk"],
                    foreign_keys=spec.get("foreign_keys"),
                    not_null=spec.get("not_null"),
                )
            else:
                have = table.columns_dict  # one PRAGMA table_info (a property: not per column)
                missing = {c: t for c, t in spec["columns"].items() if c not in have}
                for column, col_type in missing.items():
                    table.add_column(column, col_type)
        ensure_indexes(db)
        for index in OBSOLETE_INDEXES:
            db.execute(f"DROP INDEX IF EXISTS [{index}]")
        for view, sql in VIEWS.items():
            # stripped: SQLite keeps a statement without its trailing white space, and
            # sqlite-utils replaces a view whose stored text differs (every open did, 10
            # schema changes each time)
            db.create_view(view, sql.strip(), replace=True)
    for name, columns in FTS.items():
        if not db.table(f"{name}_fts").exists():
            db.table(name).enable_fts(columns, create_triggers=True, tokenize=FTS_TOKENIZE)
    MIGRATIONS.apply(db)
    return db


def ensure_indexes(db: Database) -> None:
    """Create whichever of `INDEXES` and `PARTIAL_INDEXES` is missing (`ensure_db_shape`;
    `bulk_writes` drops them for a while)."""
    for name, columns in INDEXES:
        db.table(name).create_index(columns, if_not_exists=True, find_unique_name=True)
    for index, (table, columns, where) in PARTIAL_INDEXES.items():
        listed = ", ".join(f"[{column}]" for column in columns)
        db.execute(f"CREATE INDEX IF NOT EXISTS [{index}] ON [{table}] ({listed}) WHERE {where}")


# The page cache of a bulk write (KiB): the default 2 MiB holds little of the indexes the
# writes go through; SQLite's cache only spares reads, it changes nothing in what is written.
BULK_CACHE_KIB = 64 * 1024
# The WAL pages a bulk write lets pile up before they are copied into the database file (a
# checkpoint, SQLite's default: 1000 pages, 4 MiB): at the default every batch's COMMIT was
# followed by a checkpoint, and the pages every batch changes (the upper levels of the tables,
# the search index's segments) were copied, and synced, once per batch. The content written
# is the same; the WAL file grows to about this size (64 MiB) before it is reused.
BULK_CHECKPOINT_PAGES = 16384


@contextlib.contextmanager
def bulk_writes(db: Database, *, defer_indexes: bool = False) -> Iterator[None]:
    """Settings for many writes in a row (reparse): a larger page cache, fewer checkpoints
    and, with `defer_indexes` (a database being filled from nothing), the secondary indexes --
    every non-unique index, none of which a constraint rests on -- dropped for the time of the
    writes and created again, from the very same statements, at the end (also after an
    error): building an index over the finished table costs a fraction of keeping it up to
    date row by row. Nothing in the rows depends on them; a process killed in between leaves
    the tables whole without those indexes, and `ensure_indexes` (every `open_db`, the next
    reparse) creates them again."""
    conn = db.conn
    cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
    checkpoint = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    if 0 < checkpoint < BULK_CHECKPOINT_PAGES:  # 0: the caller wants none
        conn.execute(f"PRAGMA wal_autocheckpoint = {BULK_CHECKPOINT_PAGES}")
    deferred: list[tuple[str, str]] = []
    if defer_indexes:
        deferred = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND sql NOT LIKE 'CREATE UNIQUE%' ORDER BY rowid"
        ).fetchall()
        with db.atomic():
            for name, _ in deferred:
                conn.execute(f"DROP INDEX [{name}]")
    try:
        yield
    finally:
        if deferred:
            with db.atomic():
                for _, sql in deferred:
                    conn.execute(sql)
        conn.execute(f"PRAGMA cache_size = {cache_size}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {checkpoint}")


MIGRATIONS = sqlite_utils.Migrations("kremlin_archive")


@MIGRATIONS()
def m001_initial_shape(db: Database) -> None:
    """The shape above is the first version; later changes append migrations here."""


@MIGRATIONS()
def m002_coverage_from_history(db: Database) -> None:
    """The coverage ledger (added to the shape above) filled from the events and fetches an
    archive made before it already holds."""
    rebuild_coverage(db)


@MIGRATIONS()
def m003_persons(db: Database) -> None:
    """Persons (added to the shape above): the turns' new `person_id` becomes a foreign key
    (the table is rebuilt, so its search index is too) and the turns an archive already holds
    are resolved from their labels and tags. Person links (hover cards) are not in an old
    archive: `reparse` reads them from the WARC files, and a refetch brings them too."""
    utterances = db.table("utterances")
    if "person_id" not in {fk.column for fk in utterances.foreign_keys}:
        utterances.transform(add_foreign_keys=[("person_id", "persons", "id")])
        utterances.enable_fts(
            FTS["utterances"], create_triggers=True, tokenize=FTS_TOKENIZE, replace=True
        )
    settle_persons(db)


def identity_of(db: Database) -> dict[str, Any] | None:
    """The archive's identity row (id, created_at, warc_dir), or None before it has one."""
    rows = list(db.query("SELECT * FROM identity ORDER BY created_at LIMIT 1"))
    return rows[0] if rows else None


def set_identity(db: Database, archive_id: str, warc_dir: str, created_at: str) -> None:
    """Give the archive its identity (once: an archive never changes its id)."""
    with db.atomic():
        if identity_of(db) is None:
            db.execute(
                "INSERT INTO identity (id, created_at, warc_dir) VALUES (?, ?, ?)",
                [archive_id, created_at, warc_dir],
            )
        else:
            db.execute("UPDATE identity SET warc_dir = ? WHERE id = ?", [warc_dir, archive_id])


def knows_warc_file(db: Database, filename: str) -> bool:
    """Whether a fetch of this archive was written to the WARC file of this name."""
    return bool(
        db.execute("SELECT 1 FROM fetches WHERE warc_filename = ? LIMIT 1", [filename]).fetchone()
    )


def open_db(path: str | Path) -> Database:
    return ensure_db_shape(connect(path))


class DeferredSearchIndex:
    """The full-text indexes (`FTS`) of a bulk write filled once per transaction instead of
    row by row by their triggers (reparse): FTS5 writes its pending terms out at every
    savepoint, and `save_transcript` makes one per event, so through the triggers each event
    became an index segment of its own, to be merged again (half of the time of storing it).

    `begin()`, right after BEGIN, sets the triggers aside inside the transaction: rows
    inserted from then on are noted, and a row indexed before is taken out of the index when
    it is updated or deleted (its new values are noted). `flush()`, right before COMMIT,
    indexes the noted rows (one statement per table) and puts the triggers back as they were.
    It is all part of the transaction: a committed database always has its triggers and an
    index that matches its tables; a rollback, or a kill, takes the whole of it back."""

    def __init__(self, db: Database):
        self.db = db
        self.triggers: list[tuple[str, str]] = []  # (name, sql) as they were
        self.tables: list[str] = []

    def begin(self) -> None:
        conn = self.db.conn
        if not conn.in_transaction:
            raise RuntimeError("DeferredSearchIndex.begin() belongs inside a transaction")
        wanted = {f"{table}_{suffix}": table for table in FTS for suffix in ("ai", "ad", "au")}
        marks = ", ".join("?" for _ in wanted)
        found = conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({marks})",
            list(wanted),
        ).fetchall()
        names = {name for name, _ in found}
        # a table whose three triggers are not all there is left as it is
        self.tables = [t for t in FTS if all(f"{t}_{s}" in names for s in ("ai", "ad", "au"))]
        self.triggers = [(name, sql) for name, sql in found if wanted[name] in self.tables]
        for name, _ in self.triggers:
            conn.execute(f"DROP TRIGGER [{name}]")
        for table in self.tables:
            fts, pending = f"{table}_fts", f"kremlin_fts_pending_{table}"
            columns = ", ".join(f"[{c}]" for c in FTS[table])
            old = ", ".join(f"old.[{c}]" for c in FTS[table])
            forget = (
                f"INSERT INTO [{fts}] ([{fts}], rowid, {columns}) SELECT 'delete', old.rowid, "
                f"{old} WHERE old.rowid NOT IN (SELECT id FROM [{pending}]); "
                f"DELETE FROM [{pending}] WHERE id = old.rowid;"
            )
            note = f"INSERT OR IGNORE INTO [{pending}] (id) VALUES (new.rowid);"
            conn.execute(f"CREATE TEMP TABLE [{pending}] (id INTEGER PRIMARY KEY)")
            for suffix, event, body in (
                ("ai", "INSERT", note),
                ("ad", "DELETE", forget),
                ("au", "UPDATE", forget + " " + note),
            ):
                conn.execute(
                    f"CREATE TEMP TRIGGER [{pending}_{suffix}] AFTER {event} ON main.[{table}] "
                    f"BEGIN {body} END"
                )

    def flush(self) -> None:
        conn = self.db.conn
        for table in self.tables:
            fts, pending = f"{table}_fts", f"kremlin_fts_pending_{table}"
            columns = ", ".join(f"[{c}]" for c in FTS[table])
            conn.execute(
                f"INSERT INTO [{fts}] (rowid, {columns}) SELECT rowid, {columns} FROM [{table}] "
                f"WHERE rowid IN (SELECT id FROM [{pending}]) ORDER BY rowid"
            )
            for suffix in ("ai", "ad", "au"):
                conn.execute(f"DROP TRIGGER temp.[{pending}_{suffix}]")
            conn.execute(f"DROP TABLE temp.[{pending}]")
        for _, sql in self.triggers:
            conn.execute(sql)
        self.tables, self.triggers = [], []


# -- helpers ----------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# The fields of the dataclasses a transcript holds lists of: all str, int or None (immutable),
# so a dict of them is what `asdict` makes, without its recursive copy (most of the time of
# `content_of`).
_FIELDS = {cls: tuple(f.name for f in fields(cls)) for cls in (Utterance, Tag, Mention)}


def _plain_item(v: Any) -> Any:
    names = _FIELDS.get(type(v))
    if names is not None:
        return {name: getattr(v, name) for name in names}
    return asdict(v) if is_dataclass(v) else v


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain_item(v) for v in value]
    return value


def content_of(t: Transcript) -> dict[str, Any]:
    """The event's content as plain data, in a stable form (what revisions compare). A tag
    listed twice counts once, as `event_tags` stores it: otherwise the stored content could
    never equal a refetch and every refetch would be a "change"."""
    content = {name: _plain(getattr(t, name)) for name in CONTENT_FIELDS}
    seen: set[str] = set()
    tags = []
    for tag, plain in zip(t.tags, content["tags"], strict=True):
        key = tag_id(t.lang, tag)
        if key not in seen:
            seen.add(key)
            tags.append(plain)
    content["tags"] = tags
    return content


# The write path runs once per event and per fetch: plain SQL statements built once per shape,
# rather than sqlite-utils' table methods, which inspect the schema on every call (they took
# more than half of the time of a save).
@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], conflict: str = "") -> str:
    names = ", ".join(f"[{c}]" for c in columns)
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO [{table}] ({names}) VALUES ({marks})"
    if conflict == "ignore":
        sql += " ON CONFLICT DO NOTHING"
    elif conflict:
        pk = tuple(conflict.split(","))
        updates = ", ".join(f"[{c}] = excluded.[{c}]" for c in columns if c not in pk)
        sql += f" ON CONFLICT({conflict}) DO UPDATE SET {updates}"
    return sql


def _insert(db: Database, table: str, row: dict[str, Any], conflict: str = "") -> int:
    """Insert (or upsert on the `conflict` key, 'ignore' to skip duplicates) one row; returns
    its rowid. Call inside `db.atomic()`."""
    cursor = db.conn.execute(_insert_sql(table, tuple(row), conflict), list(row.values()))
    return cursor.lastrowid


@contextlib.contextmanager
def _atomic(db: Database) -> Iterator[None]:
    """`db.atomic()` for the writes made once per row (an event, a fetch, a ledger entry):
    inside a transaction, a savepoint of one fixed name rather than sqlite-utils' random one,
    whose SAVEPOINT and RELEASE statements are compiled anew every time (two thirds of the
    cost of a savepoint; a reparse makes two per capture). SQLite nests savepoints of the same
    name: RELEASE and ROLLBACK TO take the innermost, so nesting works as with distinct names.
    Outside a transaction it is `db.atomic()` (BEGIN ... COMMIT)."""
    conn = db.conn
    if not conn.in_transaction:
        with db.atomic():
            yield
        return
    conn.execute("SAVEPOINT kremlin_row")
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # an error may have ended the transaction already
            conn.execute("ROLLBACK TO SAVEPOINT kremlin_row")
            conn.execute("RELEASE SAVEPOINT kremlin_row")
        raise
    conn.execute("RELEASE SAVEPOINT kremlin_row")


def _rows(db: Database, sql: str, params: Iterable = ()) -> list[dict[str, Any]]:
    cursor = db.conn.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(_json(content).encode("utf-8")).hexdigest()


def prepare_content(t: Transcript) -> tuple[dict[str, Any], str]:
    """`content_of(t)` and its `content_hash`: what `save_transcript` compares."""
    content = content_of(t)
    return content, content_hash(content)


def tag_id(lang: str, tag: Tag) -> str:
    """Tags are identified by their catalog URL; tags without one (imports) by lang/kind/name."""
    return tag.url or f"{lang}:{tag.kind}:{tag.name}"


def _speakers(utterances: Iterable[Utterance]) -> list[str]:
    seen: dict[str, None] = {}
    for u in utterances:
        if u.speaker:
            seen.setdefault(u.speaker, None)
    return list(seen)


def _event_row(t: Transcript, content: dict[str, Any] | None, digest: str) -> dict[str, Any]:
    return {
        "id": t.event_id,
        "lang": t.lang,
        "kremlin_id": t.kremlin_id,
        "url": t.url,
        "title": t.title,
        "lead": t.lead,
        "published_at": t.published_at,
        "year": int(t.published_at[:4]),
        "place": t.place,
        "text": t.text,
        "paragraphs": _json(t.paragraphs),
        "sections": _json(t.sections),
        "updated_at": t.updated_at,
        "announce_date": t.announce_date,
        "twin_url": t.twin_url,
        "utterance_count": len(t.utterances),
        "speakers": _json(_speakers(t.utterances)),
        "content_hash": digest,
        "parser_version": t.parser_version,
        "origin": t.origin or "crawl",
        "source_url": t.source_url,
        "fetch_id": t.fetch_id,
        "fetched_at": t.fetched_at,
        "license": LICENSE,
        "source": t.source or ("site" if t.fetch_id else None),
        "capture_time": t.capture_time,
        "site_answer": t.site_answer,
        "links_hash": links_hash(t),
    }


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaveResult:
    event_id: str
    outcome: str  # new | changed | unchanged
    revision: int | None = None
    changed_fields: tuple[str, ...] = ()


def save_transcript(
    db: Database,
    t: Transcript,
    *,
    now: str | None = None,
    index: personsmod.Index | None = None,
    digest: str | None = None,
) -> SaveResult:
    """Upsert one event with its utterances, tags and person links, in one transaction.

    - new: inserted;
    - unchanged (same content hash, and not an import being superseded by a crawl): nothing
      is written -- unless the page's person links changed (they are evidence, not content:
      the links and the turns' persons are updated, no revision);
    - changed: the previous content goes into `revisions` with the list of changed fields,
      then the event, its utterances and tags are replaced and `last_changed_at` set.

    Every labelled turn is resolved to a person (`persons.resolve_event`) with `index`, the
    archive's names (`person_index`; a long-running writer keeps one and passes it to every
    save; without one it is read from the database). `settle_persons` redoes what depends on
    the archive once a run has stored all it will.

    `digest`: `content_hash(content_of(t))`, where the caller has it already (reparse computes
    it in its reading process); the content itself is then built only if it is compared with
    a stored one (sending it from process to process cost more than building it again).
    """
    now = now or utc_stamp()
    content: dict[str, Any] | None = None
    if digest is None:
        content, digest = prepare_content(t)
    event_id = t.event_id
    with _atomic(db):
        old = _get_event(db, event_id)
        if old is not None:
            old_origin = old["origin"] or ""
            superseding_import = old_origin.startswith("import") and not (
                t.origin or "crawl"
            ).startswith("import")
            if old["content_hash"] == digest and not superseding_import:
                _note_stored(db, t, now, unchanged=True)
                if old["links_hash"] != links_hash(t):
                    _relink_people(db, t, index)
                return SaveResult(event_id, "unchanged")
            if content is None:
                content = content_of(t)
            old_content = json.loads(_old_content_json(db, old))
            changed = tuple(f for f in CONTENT_FIELDS if old_content.get(f) != content[f])
            if superseding_import:
                changed = (*changed, "origin")
            revision = _record_revision(db, old, old_content, changed, t.fetch_id, now)
            row = _event_row(t, content, digest)
            row.update(
                first_seen_at=old["first_seen_at"],
                last_changed_at=now,
                revision_count=revision,
                twin_id=old["twin_id"],
            )
            _insert(db, "events", row, conflict="id")
            _replace_children(db, t, index)
            _link_twin(db, t)
            _note_stored(db, t, now)
            return SaveResult(event_id, "changed", revision, changed)
        row = _event_row(t, content, digest)
        row.update(first_seen_at=now, last_changed_at=None, revision_count=0)
        _insert(db, "events", row)
        _replace_children(db, t, index)
        _link_twin(db, t)
        _note_stored(db, t, now)
        return SaveResult(event_id, "new")


def _get_event(db: Database, event_id: str) -> dict[str, Any] | None:
    rows = _rows(db, "SELECT * FROM events WHERE id = ?", [event_id])
    return rows[0] if rows else None


def _old_content_json(db: Database, old: dict[str, Any]) -> str:
    """Rebuild the stored content of an event row in `content_of` form."""
    utterances = [
        {"seq": r["seq"], "speaker": r["speaker"], "text": r["text"]}
        for r in _rows(
            db,
            "SELECT seq, speaker, text FROM utterances WHERE event_id = ? ORDER BY seq",
            [old["id"]],
        )
    ]
    tags = [
        {"kind": r["kind"], "name": r["name"], "url": r["url"]}
        for r in _rows(
            db,
            "SELECT t.kind, t.name, t.url FROM event_tags et JOIN tags t ON t.id = et.tag_id "
            "WHERE et.event_id = ? ORDER BY et.seq",
            [old["id"]],
        )
    ]
    content = {
        "url": old["url"],
        "title": old["title"],
        "lead": old["lead"],
        "published_at": old["published_at"],
        "place": old["place"],
        "paragraphs": json.loads(old["paragraphs"] or "[]"),
        "utterances": utterances,
        "tags": tags,
        "sections": json.loads(old["sections"] or "[]"),
        "updated_at": old["updated_at"],
        "twin_url": old["twin_url"],
        "announce_date": old["announce_date"],
    }
    return _json({name: content[name] for name in CONTENT_FIELDS})


def _record_revision(
    db: Database,
    old: dict[str, Any],
    old_content: dict[str, Any],
    changed: tuple[str, ...],
    new_fetch_id: int | None,
    now: str,
) -> int:
    revision = (old["revision_count"] or 0) + 1
    _insert(
        db,
        "revisions",
        {
            "event_id": old["id"],
            "revision": revision,
            "recorded_at": now,
            "content_hash": old["content_hash"],
            "parser_version": old["parser_version"],
            "origin": old["origin"],
            "fetch_id": old["fetch_id"],
            "superseded_by_fetch_id": new_fetch_id,
            "changed_fields": _json(list(changed)),
            "title": old["title"],
            "lead": old["lead"],
            "published_at": old["published_at"],
            "place": old["place"],
            "text": old["text"],
            "content": _json(old_content),
        },
    )
    return revision


_PERSON_COLUMNS = ("person_id", "name", "position", "marker", "person_evidence", "person_note")


def _person_values(found: personsmod.Resolution | None) -> tuple:
    if found is None:
        return (None,) * len(_PERSON_COLUMNS)
    return (found.person_id, found.name, found.position, found.marker, found.evidence, found.note)


# Set a turn's person columns where they differ (an update re-indexes the turn for search).
_SET_PERSON = ", ".join(f"{c} = ?" for c in _PERSON_COLUMNS)
_PERSON_DIFFERS = "(" + " OR ".join(f"{c} IS NOT ?" for c in _PERSON_COLUMNS) + ")"


def _replace_children(db: Database, t: Transcript, index: personsmod.Index | None) -> None:
    event_id = t.event_id
    conn = db.conn
    found = _resolve_people(db, t, index)
    conn.execute("DELETE FROM utterances WHERE event_id = ?", [event_id])
    conn.execute("DELETE FROM event_tags WHERE event_id = ?", [event_id])
    conn.executemany(
        _insert_sql("utterances", ("event_id", "seq", "speaker", "text", *_PERSON_COLUMNS)),
        [
            (event_id, u.seq, u.speaker, u.text, *_person_values(found.get(u.seq)))
            for u in t.utterances
        ],
    )
    # Tags, then the event's links to them: two statements for all its tags, not two per tag
    # (the tags' upserts and the links touch different tables, so the order between the two
    # kinds of rows changes nothing).
    tids = [tag_id(t.lang, tag) for tag in t.tags]
    conn.executemany(
        _insert_sql("tags", ("id", "lang", "kind", "name", "url"), conflict="id"),
        [(tid, t.lang, tag.kind, tag.name, tag.url) for tid, tag in zip(tids, t.tags, strict=True)],
    )
    conn.executemany(
        _insert_sql("event_tags", ("event_id", "tag_id", "seq"), conflict="ignore"),
        [(event_id, tid, seq) for seq, tid in enumerate(tids)],
    )


def _link_twin(db: Database, t: Transcript) -> None:
    """Point ru-N and en-N at each other once both are in the archive."""
    twin = urls.event_key(urls.other_lang(t.lang), t.kremlin_id)
    if db.conn.execute("SELECT 1 FROM events WHERE id = ?", [twin]).fetchone() is None:
        return
    sql = "UPDATE events SET twin_id = ? WHERE id = ? AND twin_id IS NOT ?"
    db.conn.execute(sql, [twin, t.event_id, twin])
    db.conn.execute(sql, [t.event_id, twin, t.event_id])


def iter_event_ids(
    db: Database,
    *,
    lang: str | None = None,
    since: str | None = None,
    until: str | None = None,
    ids: Iterable[str] | None = None,
) -> Iterator[str]:
    """Event ids matching the filters, oldest first (streams; nothing is held in memory)."""
    where, params = _event_filter(lang, since, until, ids)
    sql = f"SELECT e.id FROM events e WHERE {where} ORDER BY e.published_at, e.id"
    for row in db.execute(sql, params):
        yield row[0]


def event_title(db: Database, lang: str, kremlin_id: int) -> str | None:
    """The stored title of event `kremlin_id` of `lang`, or None when the archive lacks it (one
    probe of the events' (lang, kremlin_id, title) index)."""
    row = db.execute(
        "SELECT title FROM events WHERE lang = ? AND kremlin_id = ?", [lang, kremlin_id]
    ).fetchone()
    return row[0] if row else None


def events_published_since(db: Database, lang: str, since: str) -> list[tuple[int, str]]:
    """(kremlin_id, url) of events published on or after `since` (YYYY-MM-DD)."""
    return [
        (r[0], r[1])
        for r in db.execute(
            # `published_at >= day` is `its day >= day` (ISO strings), and a range of the index
            "SELECT kremlin_id, url FROM events WHERE lang = ? AND published_at >= ? "
            "ORDER BY published_at DESC",
            [lang, since],
        )
    ]


# -- fetches, runs, errors --------------------------------------------------------------------


def record_fetch(db: Database, fetch: dict[str, Any]) -> int:
    """Insert one HTTP exchange (or transport failure); returns its id."""
    row = {k: v for k, v in fetch.items() if k in TABLES["fetches"]["columns"] and k != "id"}
    with _atomic(db):
        return _insert(db, "fetches", row)


def last_fetch_validators(db: Database, url: str) -> dict[str, Any] | None:
    """ETag / Last-Modified / payload digest and WARC location of the last 200 fetch of `url`."""
    rows = list(
        db.query(
            "SELECT id, etag, last_modified, payload_sha256, fetched_at, warc_filename, "
            "warc_offset, warc_length, warc_record_id, warc_payload_digest, url "
            # `+status`: the (url, id) index, never the one on status -- without ANALYZE SQLite
            # took that and read every 200 fetch of the archive for each call (bench section 8)
            "FROM fetches WHERE url = ? AND +status = 200 ORDER BY id DESC LIMIT 1",
            [url],
        )
    )
    return rows[0] if rows else None


def last_capture_of_payload(db: Database, url: str, payload_sha256: str) -> dict[str, Any] | None:
    """The last `response` record of `url` holding this payload: what a revisit refers to."""
    rows = list(
        db.query(
            "SELECT id, url, fetched_at, warc_filename, warc_offset, warc_length, "
            "warc_record_id, warc_payload_digest, payload_sha256 FROM fetches "
            "WHERE url = ? AND payload_sha256 = ? AND warc_record_type = 'response' "
            "ORDER BY id DESC LIMIT 1",
            [url, payload_sha256],
        )
    )
    return rows[0] if rows else None


def fetch_by_warc(db: Database, filename: str, offset: int) -> dict[str, Any] | None:
    rows = list(
        db.query(
            "SELECT * FROM fetches WHERE warc_filename = ? AND warc_offset = ?",
            [filename, offset],
        )
    )
    return rows[0] if rows else None


def fetches_of_warc_file(db: Database, filename: str) -> dict[int, dict[str, Any]]:
    """The fetch rows whose record is in the WARC file `filename`, by offset (`fetch_by_warc`
    for a whole file in one query: reparse reads files record by record)."""
    found: dict[int, dict[str, Any]] = {}
    sql = "SELECT * FROM fetches WHERE warc_filename = ? ORDER BY warc_offset, id"
    for row in _rows(db, sql, [filename]):
        found.setdefault(row["warc_offset"], row)
    return found


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def start_run(db: Database, *, run_id: str, spider: str, command: str, arguments: dict) -> str:
    db.table("runs").insert(
        {
            "id": run_id,
            "spider": spider,
            "command": command,
            "arguments": _json(arguments),
            "started_at": utc_stamp(),
            "status": "running",
            "host": socket.gethostname(),
            "pid": os.getpid(),
        },
        pk="id",
    )
    return run_id


def finish_run(
    db: Database, run_id: str, *, status: str, finish_reason: str, counts: dict[str, Any]
) -> None:
    db.table("runs").update(
        run_id,
        {
            "finished_at": utc_stamp(),
            "status": status,
            "finish_reason": finish_reason,
            "requests": counts.get("requests", 0),
            "responses": counts.get("responses", 0),
            "events_new": counts.get("events_new", 0),
            "events_changed": counts.get("events_changed", 0),
            "events_unchanged": counts.get("events_unchanged", 0),
            "errors": counts.get("errors", 0),
            "counts": _json(counts),
        },
    )


def mark_stale_runs(db: Database) -> int:
    """Runs still 'running' whose process is gone (killed) become 'interrupted'."""
    stale = 0
    for row in list(db.query("SELECT id, host, pid FROM runs WHERE status = 'running'")):
        if row["host"] == socket.gethostname() and row["pid"] and _pid_alive(row["pid"]):
            continue
        db.table("runs").update(row["id"], {"status": "interrupted", "finish_reason": "killed"})
        stale += 1
    return stale


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the coverage ledger -----------------------------------------------------------------------

# A new observation replaces the state unless the state says more: stored > absent, not_event
# (the site's answer) > refused, failed (ask again) > listed. A stored event that later answers
# 404 stays stored (the content is kept); `answer` and `checked_at` say what was seen last.
COVERAGE_RANK = {STORED: 5, ABSENT: 4, NOT_EVENT: 4, REFUSED: 2, FAILED: 2, LISTED: 1}


def _note(
    db: Database,
    event_id: str,
    state: str,
    *,
    at: str,
    fetch_id: int | None = None,
    run_id: str | None = None,
    answer: str | None = None,
    day: str | None = None,
) -> None:
    """Record one observation of `event_id` in the ledger (inside the caller's transaction)."""
    lang, kremlin_id = urls.parse_event_key(event_id)
    old = db.conn.execute("SELECT state FROM coverage WHERE id = ?", [event_id]).fetchone()
    if old is None:
        row = {
            "id": event_id, "lang": lang, "kremlin_id": kremlin_id, "state": state,
            "published_day": day, "answer": answer, "first_seen_at": at,
            "checked_at": None if state == LISTED else at, "fetch_id": fetch_id,
            "run_id": run_id,
        }  # fmt: skip
        _insert(db, "coverage", row)
        return
    if state == LISTED:  # no answer from the site: only the day it is listed under
        db.conn.execute(
            "UPDATE coverage SET published_day = coalesce(published_day, ?) WHERE id = ?",
            [day, event_id],
        )
        return
    keep = COVERAGE_RANK[old[0]] > COVERAGE_RANK[state]
    db.conn.execute(
        "UPDATE coverage SET state = ?, fetch_id = ?, run_id = ?, answer = ?, checked_at = ?, "
        "published_day = coalesce(?, published_day) WHERE id = ?",
        [
            old[0] if keep else state,
            fetch_id if not keep else _coverage_fetch(db, event_id),
            run_id, answer, at, day, event_id,
        ],
    )  # fmt: skip


def _coverage_fetch(db: Database, event_id: str) -> int | None:
    row = db.conn.execute("SELECT fetch_id FROM coverage WHERE id = ?", [event_id]).fetchone()
    return row[0] if row else None


def _note_stored(db: Database, t: Transcript, now: str, *, unchanged: bool = False) -> None:
    """The ledger says `stored` for an event just saved, and whether from the site or only a
    Wayback copy. An unchanged refetch writes nothing once it does (its fetch row says when
    the event was confirmed) -- unless the site confirms what only a copy held."""
    if unchanged:
        row = db.conn.execute(
            "SELECT source FROM coverage WHERE id = ? AND state = ?", [t.event_id, STORED]
        ).fetchone()
        # ... unless the site now confirms what only a copy of the Internet Archive held.
        if row and not (row[0] == "wayback" and t.source == "site"):
            return
    answer = f"HTTP {t.status}" if t.status else (t.origin or "stored")
    if t.source == "wayback":
        answer = f"copy captured by the Internet Archive on {t.capture_time}"
        if t.site_answer:
            answer = f"site: {t.site_answer}; {answer}"
    _note(
        db, t.event_id, STORED, at=t.fetched_at or now, fetch_id=t.fetch_id, run_id=t.run_id,
        answer=answer, day=t.published_at[:10],
    )  # fmt: skip
    db.conn.execute("UPDATE coverage SET source = ? WHERE id = ?", [t.source or "site", t.event_id])


def note_coverage(
    db: Database,
    event_id: str,
    state: str,
    *,
    at: str | None = None,
    fetch_id: int | None = None,
    run_id: str | None = None,
    answer: str | None = None,
    day: str | None = None,
) -> None:
    """Record what a fetch said about one event (`items.COVERAGE_STATES`): see
    `COVERAGE_RANK` for which observation wins."""
    if state not in COVERAGE_RANK:
        raise ValueError(f"unknown coverage state {state!r}")
    with _atomic(db):
        _note(
            db, event_id, state, at=at or utc_stamp(), fetch_id=fetch_id, run_id=run_id,
            answer=answer, day=day,
        )  # fmt: skip


def note_listed(
    db: Database,
    lang: str,
    items: Iterable[tuple[int, str]],
    *,
    at: str | None = None,
    fetch_id: int | None = None,
    run_id: str | None = None,
) -> int:
    """Events named by a listing page or the feed: `listed` where the ledger knows nothing
    yet, the day filled in where it has none. Returns how many were new to the ledger."""
    at = at or utc_stamp()
    new = 0
    with _atomic(db):
        for kremlin_id, day in items:
            key = urls.event_key(lang, kremlin_id)
            new += db.conn.execute("SELECT 1 FROM coverage WHERE id = ?", [key]).fetchone() is None
            _note(db, key, LISTED, at=at, fetch_id=fetch_id, run_id=run_id, day=day)
    return new


def wayback_only(db: Database, lang: str, first: int, last: int) -> list[int]:
    """Ids of `lang` in first..last stored from a copy of the Internet Archive only (the site
    was not asked, or did not give them): the ones to ask the site for again later."""
    return [
        r[0]
        for r in db.execute(
            "SELECT kremlin_id FROM coverage WHERE lang = ? AND kremlin_id BETWEEN ? AND ? "
            "AND state = 'stored' AND source = 'wayback' ORDER BY kremlin_id",
            [lang, first, last],
        )
    ]


def coverage_of(db: Database, lang: str, first: int, last: int) -> dict[int, str]:
    """kremlin_id -> state of the ledger's entries of `lang` with ids in first..last."""
    return dict(
        db.execute(
            "SELECT kremlin_id, state FROM coverage WHERE lang = ? AND kremlin_id BETWEEN ? AND ?",
            [lang, first, last],
        ).fetchall()
    )


def id_days(db: Database) -> dict[int, str]:
    """kremlin_id -> publication day (YYYY-MM-DD) of every event the archive holds or the
    ledger has a day for, any language: the evidence id discovery works from."""
    days: dict[int, str] = {}
    for kremlin_id, day in db.execute(
        "SELECT kremlin_id, published_day FROM coverage WHERE published_day IS NOT NULL "
        "UNION ALL SELECT kremlin_id, substr(published_at, 1, 10) FROM events"
    ):
        days.setdefault(kremlin_id, day)
    return days


def coverage_bounds(db: Database, lang: str | None = None) -> tuple[int, int] | None:
    """The smallest and largest id the ledger has an entry for (of `lang`), or None."""
    where, params = ("WHERE lang = ?", [lang]) if lang and lang != "both" else ("", [])
    row = db.execute(
        f"SELECT min(kremlin_id), max(kremlin_id) FROM coverage {where}", params
    ).fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


def coverage_counts(
    db: Database, *, lang: str | None = None, first: int | None = None, last: int | None = None
) -> dict[str, dict[str, int]]:
    """lang -> state -> entries of the ledger, optionally for ids first..last."""
    where, params = ["1 = 1"], []
    if lang and lang != "both":
        where.append("lang = ?")
        params.append(lang)
    if first is not None and last is not None:
        where.append("kremlin_id BETWEEN ? AND ?")
        params += [first, last]
    counts: dict[str, dict[str, int]] = {}
    for row_lang, state, n in db.execute(
        f"SELECT lang, state, count(*) FROM coverage WHERE {' AND '.join(where)} "
        "GROUP BY lang, state ORDER BY lang, state",
        params,
    ):
        counts.setdefault(row_lang, {})[state] = n
    return counts


def id_range_of_days(db: Database, since: str | None, until: str | None) -> tuple[int, int] | None:
    """The smallest and largest id the archive knows to be published in since..until (events
    of either language and listed entries), or None."""
    row = db.execute(
        "SELECT min(kremlin_id), max(kremlin_id) FROM ("
        "  SELECT kremlin_id, published_day AS day FROM coverage WHERE published_day IS NOT NULL"
        "  UNION ALL SELECT kremlin_id, substr(published_at, 1, 10) AS day FROM events"
        ") WHERE day >= coalesce(?, day) AND day <= coalesce(?, day)",
        [since, until],
    ).fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


def rebuild_coverage(db: Database) -> int:
    """Fill the ledger from what the database already records -- events (stored) and the
    fetches of event pages with their errors -- for an archive made before the ledger
    existed. Entries already present are left as they are. Returns the entries added."""
    before = db.execute("SELECT count(*) FROM coverage").fetchone()[0]
    with db.atomic():
        for event_id, published_at, fetched_at, fetch_id, origin in db.execute(
            "SELECT id, published_at, fetched_at, fetch_id, origin FROM events "
            "WHERE id NOT IN (SELECT id FROM coverage)"
        ).fetchall():
            _note(
                db, event_id, STORED, at=fetched_at or utc_stamp(), fetch_id=fetch_id,
                answer="HTTP 200" if fetch_id else origin, day=published_at[:10],
            )  # fmt: skip
        for fetch in _rows(
            db,
            "SELECT f.id, f.event_id, f.status, f.error, f.fetched_at, f.run_id, "
            "(SELECT e.stage || ' ' || e.reason FROM errors e WHERE e.fetch_id = f.id "
            " ORDER BY e.id DESC LIMIT 1) AS failure FROM fetches f "
            "WHERE f.kind = 'event' AND f.event_id IS NOT NULL ORDER BY f.id",
        ):
            if not urls.EVENT_KEY.match(fetch["event_id"] or ""):
                continue
            stored = db.conn.execute(
                "SELECT 1 FROM events WHERE id = ?", [fetch["event_id"]]
            ).fetchone()
            if stored:
                continue
            stage, _, reason = (fetch["failure"] or "").partition(" ")
            answer = reason or fetch["error"] or f"HTTP {fetch['status']}"
            state = coverage_state(stage, fetch["status"], reason or fetch["error"] or "")
            _note(
                db, fetch["event_id"], state, at=fetch["fetched_at"], fetch_id=fetch["id"],
                run_id=fetch["run_id"], answer=answer[:200],
            )  # fmt: skip
    return db.execute("SELECT count(*) FROM coverage").fetchone()[0] - before


def record_error(
    db: Database,
    *,
    run_id: str | None,
    url: str | None,
    stage: str,
    reason: str,
    status: int | None = None,
    fetch_id: int | None = None,
) -> int:
    row = {
        "run_id": run_id,
        "url": url,
        "stage": stage,
        "reason": reason,
        "status": status,
        "fetch_id": fetch_id,
        "at": utc_stamp(),
    }
    with _atomic(db):
        return _insert(db, "errors", row)


# -- persons (who said it: persons.py decides, this stores) ------------------------------------


def links_hash(t: Transcript) -> str:
    """Digest of the page's person links: an unchanged page whose links changed is re-linked."""
    return content_hash({"mentions": [_plain_item(m) for m in t.mentions]})


def _person_tags(lang: str, tags: Iterable[Tag]) -> list[tuple[int, str]]:
    found = []
    for tag in tags:
        catalog_id = personsmod.catalog_id_of(tag.url) if tag.kind == "person" else None
        if catalog_id is not None:
            found.append((catalog_id, tag.name))
    return found


def person_index(db: Database) -> personsmod.Index:
    """The archive's names of catalog persons (`persons.Index`): person tags, the links and
    hover cards of every page, and the positions printed in labels the page itself resolved."""
    index = personsmod.Index()
    for url, name in db.execute("SELECT url, name FROM tags WHERE kind = 'person'"):
        catalog_id = personsmod.catalog_id_of(url)
        if catalog_id is not None:
            index.add(catalog_id, name)
    index.add_event(
        (),
        (
            Mention(int(person_id), text, card_name, card_title)
            for person_id, text, card_name, card_title in db.execute(
                "SELECT DISTINCT person_id, text, card_name, card_title FROM mentions"
            )
            if person_id.isdigit()
        ),
    )
    marks = ", ".join("?" for _ in personsmod.PAGE_STAGE)
    for person_id, position in db.execute(
        "SELECT DISTINCT person_id, position FROM utterances WHERE position IS NOT NULL "
        f"AND person_evidence IN ({marks})",
        personsmod.PAGE_STAGE,
    ):
        if person_id and person_id.isdigit():
            index.add_position(int(person_id), position)
    return index


def _resolve_people(
    db: Database, t: Transcript, index: personsmod.Index | None
) -> dict[int, personsmod.Resolution]:
    """Resolve an event's turns, store its person links and make sure every person it names
    has a `persons` row (names filled in; counts wait for `settle_persons`)."""
    if index is None:
        index = person_index(db)
    tags = _person_tags(t.lang, t.tags)
    index.add_event(tags, t.mentions)
    found = personsmod.resolve_event(
        t.lang, t.published_at, [(u.seq, u.speaker) for u in t.utterances], tags, t.mentions,
        index,
    )  # fmt: skip
    for r in found.values():
        if r.evidence in personsmod.PAGE_STAGE and r.catalog_id is not None:
            index.add_position(r.catalog_id, r.position)
    rows: dict[str, dict[str, Any]] = {}
    for catalog_id, name in tags:
        rows.setdefault(str(catalog_id), _person_row(catalog_id, t.lang))["catalog_name"] = name
    for m in t.mentions:
        row = rows.setdefault(str(m.catalog_id), _person_row(m.catalog_id, t.lang))
        row["catalog_name"] = row["catalog_name"] or m.card_name
        row["description"] = row["description"] or m.card_title
    for r in found.values():
        if r.person_id is not None and r.person_id not in rows:
            row = rows[r.person_id] = _person_row(r.catalog_id, t.lang, r.person_id)
            row["name"] = personsmod.builtin_name(r.person_id, t.lang) or (
                r.name if r.catalog_id is None else None
            )
    _upsert_persons(db, t.lang, rows.values())
    conn = db.conn
    conn.execute("DELETE FROM mentions WHERE event_id = ?", [t.event_id])
    conn.executemany(
        _insert_sql("mentions", ("event_id", "seq", "person_id", "text", "card_name",
                                 "card_title", "turn")),
        [
            (t.event_id, seq, str(m.catalog_id), m.text, m.card_name, m.card_title, m.turn)
            for seq, m in enumerate(t.mentions, start=1)
        ],
    )  # fmt: skip
    return found


def _person_row(catalog_id: int | None, lang: str, person_id: str | None = None) -> dict:
    return {
        "id": person_id or str(catalog_id),
        "catalog_id": catalog_id,
        "kind": "catalog" if catalog_id is not None else "archive",
        "name": None,
        "catalog_name": None,
        "description": None,
        "url": urls.catalog_person_url(lang, catalog_id) if catalog_id is not None else None,
    }


def _upsert_persons(db: Database, lang: str, rows: Iterable[dict[str, Any]]) -> None:
    """New persons are inserted; a known one only gains the names it lacked."""
    sql = (
        f"INSERT INTO persons (id, catalog_id, kind, name, name_{lang}, catalog_name_{lang}, "
        f"description_{lang}, url) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
        "name = coalesce(name, excluded.name), "
        f"name_{lang} = coalesce(name_{lang}, excluded.name_{lang}), "
        f"catalog_name_{lang} = coalesce(catalog_name_{lang}, excluded.catalog_name_{lang}), "
        f"description_{lang} = coalesce(description_{lang}, excluded.description_{lang}), "
        "url = coalesce(url, excluded.url)"
    )
    db.conn.executemany(
        sql,
        [
            (r["id"], r["catalog_id"], r["kind"], r["name"] or r["catalog_name"], r["name"],
             r["catalog_name"], r["description"], r["url"])
            for r in rows
        ],
    )  # fmt: skip


def _relink_people(db: Database, t: Transcript, index: personsmod.Index | None) -> None:
    """An unchanged event whose person links changed: new links, turns resolved again."""
    found = _resolve_people(db, t, index)
    _update_turns(db, t.event_id, found)
    db.conn.execute("UPDATE events SET links_hash = ? WHERE id = ?", [links_hash(t), t.event_id])


_UPDATE_TURN = (
    f"UPDATE utterances SET {_SET_PERSON} WHERE event_id = ? AND seq = ? AND {_PERSON_DIFFERS}"
)


def _update_turns(db: Database, event_id: str, found: dict[int, personsmod.Resolution]) -> int:
    """Write resolutions into stored turns; only rows that change are touched (an update
    re-indexes the turn's text for search). Returns how many changed."""
    rows = []
    for seq, r in found.items():
        values = _person_values(r)
        rows.append((*values, event_id, seq, *values))
    cursor = db.conn.executemany(_UPDATE_TURN, rows)
    return max(cursor.rowcount, 0)  # the sum over the rows (-1 for none: nothing changed)


SETTLE_CHUNK = 500  # events whose labels, tags and links `settle_persons` reads at a time


def _stored_people(
    db: Database, event_ids: list[str]
) -> Iterator[tuple[str, str, str | None, list, list, list]]:
    """(event id, lang, published_at, person tags, person links, labelled turns) of each
    stored event of `event_ids`, in their order, as `persons.resolve_event` takes them: four
    queries per `SETTLE_CHUNK` events rather than four per event. Resolving writes none of
    what is read here (only turns' person columns and `persons`)."""
    for first in range(0, len(event_ids), SETTLE_CHUNK):
        chunk = event_ids[first : first + SETTLE_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        tags: dict[str, list[Tag]] = {}
        # CROSS JOIN: the events' links to tags first, then each tag by its key (a plain
        # JOIN let SQLite start from every person tag and probe each event for it: 60x slower)
        for event_id, kind, name, url in db.execute(
            "SELECT et.event_id, t.kind, t.name, t.url FROM event_tags et "
            f"CROSS JOIN tags t ON t.id = et.tag_id WHERE et.event_id IN ({marks}) "
            "AND t.kind = 'person' ORDER BY et.event_id, et.seq",
            chunk,
        ):
            tags.setdefault(event_id, []).append(Tag(kind, name, url))
        mentions: dict[str, list[Mention]] = {}
        for event_id, pid, text, card_name, card_title, turn in db.execute(
            "SELECT event_id, person_id, text, card_name, card_title, turn FROM mentions "
            f"WHERE event_id IN ({marks}) ORDER BY event_id, seq",
            chunk,
        ):
            if pid.isdigit():
                mention = Mention(int(pid), text, card_name, card_title, turn)
                mentions.setdefault(event_id, []).append(mention)
        speakers: dict[str, list[tuple[int, str]]] = {}
        for event_id, seq, speaker in db.execute(
            f"SELECT event_id, seq, speaker FROM utterances WHERE event_id IN ({marks}) "
            "AND speaker IS NOT NULL ORDER BY event_id, seq",
            chunk,
        ):
            speakers.setdefault(event_id, []).append((seq, speaker))
        events = {
            event_id: (lang, published_at)
            for event_id, lang, published_at in db.execute(
                f"SELECT id, lang, published_at FROM events WHERE id IN ({marks})", chunk
            )
        }
        for event_id in chunk:
            if event_id in events:
                lang, published_at = events[event_id]
                yield (
                    event_id, lang, published_at, _person_tags(lang, tags.get(event_id, ())),
                    mentions.get(event_id, []), speakers.get(event_id, []),
                )  # fmt: skip


def _resolve_stored_event(
    db: Database,
    stored: tuple[str, str, str | None, list, list, list],
    index: personsmod.Index,
) -> int:
    """Resolve the turns of a stored event again from what the archive holds of it
    (`_stored_people`)."""
    event_id, lang, published_at, tags, mentions, speakers = stored
    found = personsmod.resolve_event(lang, published_at, speakers, tags, mentions, index)
    rows = {}
    for r in found.values():
        if r.person_id is not None:
            row = rows[r.person_id] = _person_row(r.catalog_id, lang, r.person_id)
            row["name"] = personsmod.builtin_name(r.person_id, lang) or (
                r.name if r.catalog_id is None else None
            )
    _upsert_persons(db, lang, rows.values())
    return _update_turns(db, event_id, found)


def settle_persons(db: Database, *, rebuild: bool = False) -> dict[str, int]:
    """Bring every turn's person up to date with the whole archive, in one transaction:

    1. turns never resolved (an archive written before persons existed) -- or, with
       `rebuild`, every event -- are resolved from the stored labels, tags and links;
    2. turns whose person rests on the archive's index (`persons.ARCHIVE_STAGE`) are
       resolved again against the index as it now stands, label by label, so that the
       result does not depend on the order in which events were stored;
    3. the persons' names, descriptions and turn counts are refreshed.

    Returns ``{"events": events resolved in step 1, "labels": labels looked up in step 2,
    "turns_changed": turns whose person changed}``.
    """
    counts = {"events": 0, "labels": 0, "turns_changed": 0}
    with db.atomic():
        index = person_index(db)
        if rebuild:
            pending = [r[0] for r in db.execute("SELECT id FROM events ORDER BY id")]
        else:
            pending = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT event_id FROM utterances WHERE speaker IS NOT NULL "
                    "AND person_evidence IS NULL ORDER BY event_id"
                )
            ]
        for stored in _stored_people(db, pending):
            counts["turns_changed"] += _resolve_stored_event(db, stored, index)
        counts["events"] = len(pending)
        if pending:
            # With the positions the page stage has just found. An index equal to the one
            # before is kept, with the answers it holds (`persons.Index.memo`: the labels
            # below are those just resolved): its names come from tags and links, which the
            # step above does not write, so they are read in the same order too.
            again = person_index(db)
            if again != index:
                index = again
        marks = ", ".join("?" for _ in personsmod.ARCHIVE_STAGE)
        labels = [
            r[0]
            for r in db.execute(
                f"SELECT DISTINCT speaker FROM utterances WHERE person_evidence IN ({marks}) "
                "ORDER BY speaker",
                personsmod.ARCHIVE_STAGE,
            )
        ]
        for label in labels:
            found = personsmod.resolve_label_by_index(label, index)
            if found.person_id is not None:
                for lang in _langs_of_label(db, label):
                    row = _person_row(found.catalog_id, lang, found.person_id)
                    if found.catalog_id is None:
                        row["name"] = found.name
                    _upsert_persons(db, lang, [row])
            values = _person_values(found)
            counts["turns_changed"] += db.conn.execute(
                f"UPDATE utterances SET {_SET_PERSON} WHERE speaker = ? "
                f"AND person_evidence IN ({marks}) AND {_PERSON_DIFFERS}",
                [*values, label, *personsmod.ARCHIVE_STAGE, *values],
            ).rowcount
        counts["labels"] = len(labels)
        _refresh_persons(db)
    return counts


def _langs_of_label(db: Database, label: str) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "SELECT DISTINCT e.lang FROM utterances u JOIN events e ON e.id = u.event_id "
            "WHERE u.speaker = ?",
            [label],
        )
    ]


def _refresh_persons(db: Database) -> None:
    """Names, descriptions and counts of every person from what the archive now holds, the
    same whatever order it was stored in; people the catalog does not list who no longer
    speak (a later page named them otherwise) are removed.

    A person's name in a language is the one the site prints most in links (two words or
    more), else in the labels of their turns, else the catalog's; ties go to the first in
    alphabetical order. The presidents have the names of their rule."""
    people = {r["id"]: r for r in _rows(db, "SELECT * FROM persons")}

    def counts_row() -> dict[str, Any]:
        return {"turns": 0, "turns_en": 0, "turns_ru": 0, "events": 0, "first_turn_at": None,
                "last_turn_at": None}  # fmt: skip

    fresh: dict[str, dict[str, Any]] = {pid: counts_row() for pid in people}
    for pid, lang, turns, events, first, last in db.execute(
        "SELECT u.person_id, e.lang, count(*), count(DISTINCT u.event_id), min(e.published_at), "
        "max(e.published_at) FROM utterances u JOIN events e ON e.id = u.event_id "
        "WHERE u.person_id IS NOT NULL GROUP BY u.person_id, e.lang"
    ):
        row = fresh.setdefault(pid, counts_row())
        row["turns"] += turns
        row[f"turns_{lang}"] = turns
        row["events"] += events
        row["first_turn_at"] = min(x for x in (row["first_turn_at"], first) if x)
        row["last_turn_at"] = max(x for x in (row["last_turn_at"], last) if x)
    for url, lang, name in db.execute("SELECT url, lang, name FROM tags WHERE kind = 'person'"):
        catalog_id = personsmod.catalog_id_of(url)
        if catalog_id is not None and str(catalog_id) in fresh:
            fresh[str(catalog_id)][f"catalog_name_{lang}"] = name
    linked: dict[tuple[str, str], dict[str, int]] = {}
    for pid, lang, text, card_name, card_title in db.execute(
        "SELECT m.person_id, e.lang, m.text, m.card_name, m.card_title FROM mentions m "
        "JOIN events e ON e.id = m.event_id ORDER BY e.published_at, m.event_id, m.seq"
    ):
        row = fresh.get(pid)
        if row is None:
            continue
        if len(text.split()) >= 2:
            texts = linked.setdefault((pid, lang), {})
            texts[text] = texts.get(text, 0) + 1
        if card_name:
            row.setdefault(f"catalog_name_{lang}", card_name)
        if card_title:
            row[f"description_{lang}"] = card_title  # the newest event's card wins
    labelled: dict[tuple[str, str], dict[str, int]] = {}
    for pid, lang, name, turns in db.execute(
        "SELECT u.person_id, e.lang, u.name, count(*) FROM utterances u "
        "JOIN events e ON e.id = u.event_id WHERE u.person_id IS NOT NULL AND u.name IS NOT NULL "
        "GROUP BY 1, 2, 3"
    ):
        labelled.setdefault((pid, lang), {})[name] = turns

    def most_printed(names: dict[str, int] | None) -> str | None:
        return min(names, key=lambda n: (-names[n], n)) if names else None

    for pid, row in fresh.items():
        old = people.get(pid)
        if old is None:
            continue
        if old["kind"] == "archive" and not row["turns"]:
            db.conn.execute("DELETE FROM persons WHERE id = ?", [pid])
            continue
        for lang in LANGS_OF_PERSONS:
            row[f"name_{lang}"] = (
                personsmod.builtin_name(pid, lang)
                or most_printed(linked.get((pid, lang)))
                or most_printed(labelled.get((pid, lang)))
                or row.get(f"catalog_name_{lang}")
                or old[f"catalog_name_{lang}"]
            )
        names = [row[f"name_{lang}"] for lang in LANGS_OF_PERSONS]
        row["name"] = next((n for n in names if n), None) or pid
        changes = {k: v for k, v in row.items() if old.get(k) != v and k in old}
        if changes:
            assignments = ", ".join(f"[{k}] = ?" for k in changes)
            db.conn.execute(
                f"UPDATE persons SET {assignments} WHERE id = ?", [*changes.values(), pid]
            )


LANGS_OF_PERSONS = ("en", "ru")


def person_counts(db: Database) -> dict[str, Any]:
    """How speaker turns are resolved, for `stats` and the closing line of a run: turns with
    a label, by evidence; persons; the largest labels left without a person."""
    by_evidence = dict(
        db.execute(
            "SELECT coalesce(person_evidence, 'pending'), count(*) FROM utterances "
            "WHERE speaker IS NOT NULL GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    )
    labelled = sum(by_evidence.values())
    roles = by_evidence.get(personsmod.ROLE, 0)
    unresolved = sum(by_evidence.get(e, 0) for e in personsmod.NOT_RESOLVED)
    pending = by_evidence.get("pending", 0)
    resolved = labelled - roles - unresolved - pending
    marks = ", ".join("?" for _ in personsmod.NOT_RESOLVED)
    top = [
        {"speaker": speaker, "evidence": evidence, "turns": turns}
        for speaker, evidence, turns in db.execute(
            "SELECT speaker, person_evidence, count(*) FROM utterances "
            f"WHERE person_evidence IN ({marks}) GROUP BY speaker, person_evidence "
            "ORDER BY 3 DESC, 1 LIMIT 10",
            personsmod.NOT_RESOLVED,
        )
    ]
    return {
        "labelled_turns": labelled,
        "resolved": resolved,
        "roles": roles,
        "unresolved": unresolved,
        "pending": pending,
        "by_evidence": by_evidence,
        "persons": db.execute("SELECT count(*) FROM persons WHERE turns > 0").fetchone()[0],
        "top_unresolved": top,
    }


def fts_words(words: str) -> str | None:
    """Words typed in a search box -> an FTS5 query: every word a prefix (``Афганистан*``),
    a ``"quoted phrase"`` kept together; None for nothing to search."""
    terms = []
    for phrase, word in re.findall(r'"([^"]*)"|(\S+)', words or ""):
        text = (phrase or word).replace('"', '""').strip()
        if text:
            terms.append(f'"{text}"' if phrase else f'"{text}"*')
    return " ".join(terms) or None


def person_page(
    db: Database, person_id: str, *, q: str | None = None, limit: int = 50, offset: int = 0
) -> dict[str, Any] | None:
    """What a person's page shows, or None if there is no such person: the `persons` row; their
    `turns`, newest first (`limit` from `offset`; only those containing the words `q` when
    given), with `total`; the `labels` they are printed under and the `positions` printed with
    their name, most frequent first; the `evidence` their turns rest on."""
    rows = _rows(db, "SELECT * FROM persons WHERE id = ?", [person_id])
    if not rows:
        return None
    match = fts_words(q or "")
    where = "u.person_id = ?"
    params: list[Any] = [person_id]
    if match:
        where += " AND u.rowid IN (SELECT rowid FROM utterances_fts WHERE utterances_fts MATCH ?)"
        params.append("{text} : (" + match + ")")
    total = db.execute(f"SELECT count(*) FROM utterances u WHERE {where}", params).fetchone()[0]
    # Newest first, two ways. Sorting all the person's turns costs their number; walking the
    # events newest first (their published_at index) and taking the person's turns of each
    # costs about `limit + offset` turns' share of the archive's events. The main speaker's
    # page (160,000 turns in an archive of the whole site) walks; everyone else's sorts.
    events = db.execute("SELECT max(rowid) FROM events").fetchone()[0] or 0
    walk = not match and (limit + offset) * events < total * total
    turns = _rows(
        db,
        "SELECT u.event_id, e.lang, e.published_at, e.title, u.seq, u.speaker, u.position, "
        "u.marker, u.person_evidence, u.person_note, u.text FROM "
        + (
            # CROSS JOIN keeps events outside (SQLite's planner would scan the turns)
            "events e CROSS JOIN utterances u ON u.event_id = e.id WHERE +u.person_id = ? "
            if walk
            else f"utterances u JOIN events e ON e.id = u.event_id WHERE {where} "
        )
        + "ORDER BY e.published_at DESC, u.event_id, u.seq LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )

    def counted(column: str) -> list[tuple[str, int]]:
        return db.execute(
            f"SELECT {column}, count(*) FROM utterances WHERE person_id = ? AND {column} "
            "IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20",
            [person_id],
        ).fetchall()

    return {
        "person": rows[0],
        "turns": turns,
        "total": total,
        "labels": counted("speaker"),
        "positions": counted("position"),
        "evidence": counted("person_evidence"),
        "mentions": db.execute(
            "SELECT count(*) FROM mentions WHERE person_id = ?", [person_id]
        ).fetchone()[0],
    }


# -- reading for the Datasette transcript page (the plugin calls it through Datasette's read-only
# connections) -------------------------------------------------------------------------------


def index_ordered_columns(conn, table: str) -> set[str]:
    """The columns of `table` that give rows in order without a sort: those an index starts
    with, and an INTEGER PRIMARY KEY (the rowid, the table's own order). What a page of a large
    table may be sorted by (metadata.yml's sortable_columns), and when the events table's search
    can walk the page's order (the Datasette plugin)."""
    leading = {
        name for (name,) in conn.execute(
            "SELECT ii.name FROM pragma_index_list(?) il, pragma_index_info(il.name) ii"
            " WHERE ii.seqno = 0", [table],
        )
    }  # fmt: skip
    for _, name, kind, _, _, pk in conn.execute(f"PRAGMA table_info([{table}])"):
        if pk == 1 and kind.upper() == "INTEGER":
            leading.add(name)
    return leading


def event_search_hits(conn, search: str, *, raw: bool = False) -> int | None:
    """How many events the events table's full-text search (Datasette's `?_search=`) finds,
    counted in the search index alone; None when FTS5 cannot read the words (Datasette's own
    query then says why). `conn` is Datasette's: it has `escape_fts`, unless `raw`."""
    match = ":search" if raw else "escape_fts(:search)"
    try:
        row = conn.execute(
            f"SELECT count(*) FROM events_fts WHERE events_fts MATCH {match}", {"search": search}
        ).fetchone()
    except sqlite3.Error:
        return None
    return row[0]


def person_names(conn, ids: list[str]) -> dict[str, str]:
    """The name to show (`persons.name`) of each of the person ids that has one; Datasette's
    label for a person id where it has no foreign key to find it by (a view's column)."""
    marks = ", ".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, name FROM persons WHERE id IN ({marks})", ids)
    return {pid: name for pid, name in rows if name}


def event_page(db: Database, event_id: str) -> dict[str, Any] | None:
    """Everything the transcript page of one event shows, or None if there is no such event.

    `event` is the row; `utterances` its turns in order; `tags` in page order; `twin` the
    other language's row (id, lang, title) when archived; `fetch` the fetch the current
    content came from; `fetch_count` how many fetches concern the event; `revisions` its
    earlier versions, oldest first (without their text).
    """
    event = _get_event(db, event_id)
    if event is None:
        return None
    twin = list(db.query("SELECT id, lang, title FROM events WHERE id = ?", [event["twin_id"]]))
    fetch = list(db.query("SELECT * FROM fetches WHERE id = ?", [event["fetch_id"]]))
    return {
        "event": event,
        "utterances": list(
            db.query(
                "SELECT u.seq, u.speaker, u.text, u.person_id, p.name AS person, "
                f"p.name_{'ru' if event['lang'] == 'ru' else 'en'} AS person_local, u.position, "
                "u.marker, u.person_evidence, u.person_note FROM utterances u "
                "LEFT JOIN persons p ON p.id = u.person_id WHERE u.event_id = ? ORDER BY u.seq",
                [event_id],
            )
        ),
        "tags": list(
            db.query(
                "SELECT t.id, t.kind, t.name, t.url FROM event_tags et "
                "JOIN tags t ON t.id = et.tag_id WHERE et.event_id = ? ORDER BY et.seq",
                [event_id],
            )
        ),
        "twin": twin[0] if twin else None,
        "fetch": fetch[0] if fetch else None,
        "fetch_count": db.execute(
            "SELECT count(*) FROM fetches WHERE event_id = ?", [event_id]
        ).fetchone()[0],
        "revisions": list(
            db.query(
                "SELECT id, revision, recorded_at, changed_fields, origin, parser_version, "
                "fetch_id, superseded_by_fetch_id FROM revisions WHERE event_id = ? "
                "ORDER BY revision",
                [event_id],
            )
        ),
    }


def revision_page(db: Database, revision_id: int) -> dict[str, Any] | None:
    """What the page of one revision shows, or None if there is no such revision.

    `revision` is the row (the old content, as JSON, in `content`); `event` the event's
    row; `newer` the content that replaced it, in `content_of` form: the next revision's, or the
    event's current content; `newer_revision` that next revision's row (None when the current
    content replaced it); `old_fetch` and `new_fetch` the fetches the two came from; `previous`
    and `next` the ids of the event's neighbouring revisions.
    """
    rows = _rows(db, "SELECT * FROM revisions WHERE id = ?", [revision_id])
    if not rows:
        return None
    revision = rows[0]
    event = _get_event(db, revision["event_id"])
    if event is None:
        return None

    def neighbour(number: int) -> dict[str, Any] | None:
        found = _rows(
            db,
            "SELECT * FROM revisions WHERE event_id = ? AND revision = ?",
            [revision["event_id"], number],
        )
        return found[0] if found else None

    def fetch(fetch_id: int | None) -> dict[str, Any] | None:
        found = _rows(db, "SELECT * FROM fetches WHERE id = ?", [fetch_id])
        return found[0] if found else None

    before, after = neighbour(revision["revision"] - 1), neighbour(revision["revision"] + 1)
    newer = json.loads(after["content"] if after else _old_content_json(db, event))
    return {
        "revision": revision,
        "event": event,
        "newer": newer,
        "newer_revision": after,
        "old_fetch": fetch(revision["fetch_id"]),
        "new_fetch": fetch(revision["superseded_by_fetch_id"]),
        "previous": before["id"] if before else None,
        "next": after["id"] if after else None,
    }


def recent_changes(
    db: Database,
    *,
    limit: int = 50,
    lang: str | None = None,
    change: str | Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """The newest rows of `event_changes` (new, edited, reparsed and removed events), newest
    first, with each event's `lead`, `place` and `url`; only `lang` (ru, en) and `change` (one
    kind, or several) when given."""
    where, params = ["1 = 1"], []
    if lang:
        where.append("c.lang = ?")
        params.append(lang)
    if change:
        kinds = [change] if isinstance(change, str) else list(change)
        where.append(f"c.change IN ({', '.join('?' for _ in kinds)})")
        params.extend(kinds)
    # The view is ordered newest first: limited before the join, only those rows are read.
    return _rows(
        db,
        f"SELECT c.*, e.lead, e.place, e.url FROM (SELECT * FROM event_changes c "
        f"WHERE {' AND '.join(where)} LIMIT ?) c JOIN events e ON e.id = c.event_id "
        "ORDER BY c.at DESC, c.event_id DESC",
        [*params, limit],
    )


# -- incremental refresh (the kremlin spider's refresh mode reads these) ---------------------


def newest_published_day(db: Database, lang: str) -> str | None:
    """The newest publication day (YYYY-MM-DD, Moscow local date) of `lang` in the archive."""
    # the day of the greatest published_at (the same, as a prefix keeps the order): one probe
    # of the (lang, published_at) index, where max(substr(...)) read every event of `lang`
    row = db.execute(
        "SELECT substr(max(published_at), 1, 10) FROM events WHERE lang = ?", [lang]
    ).fetchone()
    return row[0] if row else None


def recently_missing_events(db: Database, lang: str, since: str) -> set[int]:
    """kremlin_ids of `lang` that are not in `events` and whose latest event fetch answered
    404 at or after `since` (UTC ISO 8601, as in `fetches.fetched_at`)."""
    rows = db.execute(
        "SELECT f.event_id FROM fetches f JOIN ("
        "  SELECT event_id, max(id) AS id FROM fetches"
        "  WHERE kind = 'event' AND event_id LIKE ? AND status IS NOT NULL GROUP BY event_id"
        ") latest ON latest.id = f.id "
        "WHERE f.status = 404 AND f.fetched_at >= ? "
        "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = f.event_id)",
        [f"{lang}-%", since],
    )
    return {urls.parse_event_key(r[0])[1] for r in rows}


# -- exports and statistics (the `export`, `import-txt` and `stats` commands read these; exports
# stream: one event in memory at a time) ------------------------------------------------------

# Columns of the fetch an event's current content came from that exports carry as provenance.
EXPORT_FETCH_COLUMNS = (
    "final_url", "status", "etag", "last_modified", "payload_sha256", "run_id",
    "warc_filename", "warc_offset", "warc_length", "warc_record_id",
)  # fmt: skip


@contextlib.contextmanager
def read_snapshot(db: Database) -> Iterator[Database]:
    """A read transaction: everything read inside sees one state of the archive, even while a
    crawl keeps committing (WAL). Nothing is written; the transaction is rolled back."""
    if db.conn.in_transaction:
        yield db
        return
    db.execute("BEGIN")
    try:
        yield db
    finally:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")


def _event_filter(
    lang: str | None, since: str | None, until: str | None, ids: Iterable[str] | None
) -> tuple[str, list[Any]]:
    """WHERE clause over `events e` with the filters of `iter_event_ids`."""
    where, params = ["1 = 1"], []
    if lang and lang != "both":
        where.append("e.lang = ?")
        params.append(lang)
    if since:
        where.append("substr(e.published_at, 1, 10) >= ?")
        params.append(since)
    if until:
        where.append("substr(e.published_at, 1, 10) <= ?")
        params.append(until)
    if ids is not None:
        ids = list(ids)
        where.append(f"e.id IN ({', '.join('?' for _ in ids)})")
        params.extend(ids)
    return " AND ".join(where), params


def count_events(
    db: Database,
    *,
    lang: str | None = None,
    since: str | None = None,
    until: str | None = None,
    ids: Iterable[str] | None = None,
) -> int:
    """How many events `iter_event_records` with the same filters yields."""
    where, params = _event_filter(lang, since, until, ids)
    return db.execute(f"SELECT count(*) FROM events e WHERE {where}", params).fetchone()[0]


def missing_event_ids(db: Database, ids: Iterable[str]) -> list[str]:
    """The ids of `ids` that are not in the archive, in the order given."""
    return [
        event_id
        for event_id in ids
        if db.execute("SELECT 1 FROM events WHERE id = ?", [event_id]).fetchone() is None
    ]


def event_origin(db: Database, event_id: str) -> str | None:
    """`events.origin` of an archived event (crawl | reparse | import:<file>), None if absent."""
    row = db.execute("SELECT origin FROM events WHERE id = ?", [event_id]).fetchone()
    return None if row is None else (row[0] or "crawl")


# -- the web archive package (`package`: a WACZ of the selected events' WARC records) ---------

PACKAGE_EVENT_COLUMNS = (
    "id", "lang", "kremlin_id", "url", "title", "published_at", "fetch_id", "source",
    "capture_time",
)  # fmt: skip
PACKAGE_CAPTURE_COLUMNS = (
    "id", "event_id", "url", "status", "fetched_at", "warc_filename", "warc_offset",
    "warc_length", "warc_record_id", "warc_record_type", "source", "archive_url",
    "capture_time", "original_url",
)  # fmt: skip


def iter_package_events(
    db: Database,
    *,
    lang: str | None = None,
    since: str | None = None,
    until: str | None = None,
    with_text: bool = False,
) -> Iterator[dict[str, Any]]:
    """The events of a package selection (the filters of `iter_event_records`), oldest first
    (`published_at`, then id): `PACKAGE_EVENT_COLUMNS`, and `text` with `with_text`.
    Streamed; use inside `read_snapshot`."""
    where, params = _event_filter(lang, since, until, None)
    columns = [*PACKAGE_EVENT_COLUMNS, *(["text"] if with_text else [])]
    cursor = db.execute(
        f"SELECT {', '.join(f'e.{c}' for c in columns)} FROM events e WHERE {where} "
        "ORDER BY e.published_at, e.id",
        params,
    )
    for values in cursor:
        yield dict(zip(columns, values, strict=True))


def package_captures(
    db: Database,
    *,
    lang: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[dict[str, Any]]:
    """Every fetch of the selected events that left a WARC record (responses and revisits,
    whatever their status), `PACKAGE_CAPTURE_COLUMNS`, in WARC order (file, offset)."""
    where, params = _event_filter(lang, since, until, None)
    return _rows(
        db,
        f"SELECT {', '.join(f'f.{c}' for c in PACKAGE_CAPTURE_COLUMNS)} FROM fetches f "
        f"JOIN events e ON e.id = f.event_id WHERE f.warc_filename IS NOT NULL AND {where} "
        "ORDER BY f.warc_filename, f.warc_offset, f.id",
        params,
    )


# Who a turn's speaker is, as exports carry it.
TURN_PERSON_KEYS = ("person_id", "person", "position", "marker", "person_evidence")


def iter_event_records(
    db: Database,
    *,
    lang: str | None = None,
    since: str | None = None,
    until: str | None = None,
    ids: Iterable[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every matching event, oldest first (as `iter_event_ids`), one at a time, as
    ``{"event": <events row>, "fetch": <EXPORT_FETCH_COLUMNS of its fetch, or None>,
    "utterances": [{seq, speaker, text, person_id, person, position, marker, person_evidence}],
    "tags": [{kind, name, url}]}`` (`person`: the person's name in the event's language).

    One streaming query walks `events` (joined with the fetch its content came from); an
    event's utterances and tags are read when it is reached. Memory does not grow with the
    archive. Use inside `read_snapshot` for one consistent state.
    """
    where, params = _event_filter(lang, since, until, ids)
    fetch_columns = ", ".join(f"f.{c} AS [fetch.{c}]" for c in EXPORT_FETCH_COLUMNS)
    cursor = db.execute(
        f"SELECT e.*, f.id AS [fetch.id], {fetch_columns} FROM events e "
        f"LEFT JOIN fetches f ON f.id = e.fetch_id WHERE {where} ORDER BY e.published_at, e.id",
        params,
    )
    names = [d[0] for d in cursor.description]
    for values in cursor:
        event, fetch = {}, {}
        for name, value in zip(names, values, strict=True):
            if name.startswith("fetch."):
                fetch[name.removeprefix("fetch.")] = value
            else:
                event[name] = value
        yield {
            "event": event,
            "fetch": fetch if fetch.pop("id") is not None else None,
            "utterances": [
                dict(zip(("seq", "speaker", "text", *TURN_PERSON_KEYS), r, strict=True))
                for r in db.execute(
                    "SELECT u.seq, u.speaker, u.text, u.person_id, coalesce(CASE ? WHEN 'ru' "
                    "THEN p.name_ru ELSE p.name_en END, p.name), u.position, u.marker, "
                    "u.person_evidence FROM utterances u LEFT JOIN persons p ON p.id = u.person_id "
                    "WHERE u.event_id = ? ORDER BY u.seq",
                    [event["lang"], event["id"]],
                )
            ],
            "tags": [
                {"kind": r[0], "name": r[1], "url": r[2]}
                for r in db.execute(
                    "SELECT t.kind, t.name, t.url FROM event_tags et "
                    "JOIN tags t ON t.id = et.tag_id WHERE et.event_id = ? ORDER BY et.seq",
                    [event["id"]],
                )
            ],
        }


# -- the dataset release (`release` reads these besides `iter_event_records`) ---------------------


def primary_key(table: str) -> tuple[str, ...]:
    """The primary key columns of `table` (a table of `TABLES`)."""
    pk = TABLES[table]["pk"]
    return tuple(pk) if isinstance(pk, tuple | list) else (pk,)


def iter_table_rows(db: Database, table: str) -> Iterator[dict[str, Any]]:
    """Every row of `table` (a table of `TABLES`), its columns in declared order, ordered by
    its primary key; streamed (a release writes persons, tags, event_tags, fetches so)."""
    columns = list(TABLES[table]["columns"])
    order = ", ".join(f"[{c}]" for c in primary_key(table))
    cursor = db.execute(
        f"SELECT {', '.join(f'[{c}]' for c in columns)} FROM [{table}] ORDER BY {order}"
    )
    for values in cursor:
        yield dict(zip(columns, values, strict=True))


def count_rows(db: Database, table: str) -> int:
    """How many rows `table` (a table of `TABLES`) holds."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    return db.execute(f"SELECT count(*) FROM [{table}]").fetchone()[0]


def events_by_lang(db: Database) -> dict[str, int]:
    """lang -> events held."""
    return dict(db.execute("SELECT lang, count(*) FROM events GROUP BY lang ORDER BY lang"))


def fetch_sources(db: Database) -> dict[str, int]:
    """site | wayback -> fetches made of it (a fetch without a source is the site's)."""
    return dict(
        db.execute("SELECT coalesce(source, 'site'), count(*) FROM fetches GROUP BY 1 ORDER BY 1")
    )


def parser_versions(db: Database) -> list[str]:
    """The parser versions the current content of the events was read with, sorted."""
    return [
        r[0]
        for r in db.execute(
            "SELECT DISTINCT parser_version FROM events WHERE parser_version IS NOT NULL ORDER BY 1"
        )
    ]


def newest_finished_run(db: Database) -> dict[str, Any] | None:
    """The run that finished last with status `finished` (id, finished_at), or None: what
    dates a release of the archive, so that the same archive gives the same release."""
    rows = _rows(
        db,
        "SELECT id, finished_at FROM runs WHERE status = 'finished' AND finished_at IS NOT NULL "
        "ORDER BY finished_at DESC, id DESC LIMIT 1",
    )
    return rows[0] if rows else None


def stats_summary(db: Database, *, last_runs: int = 10) -> dict[str, Any]:
    """What the archive holds, for `kremlin-archive stats`.

    `years`: per (lang, year) the events, the transcripts among them (events with two or more
    distinct speakers) and their turns (utterances with a speaker); `tags`: per kind the
    distinct tags and their links to events; `runs`: the last runs, newest first;
    `last_run_errors`: errors of the newest run by stage; `totals`: row counts.
    """
    transcript = "json_array_length(coalesce(e.speakers, '[]')) >= 2"
    years: dict[tuple[str, int], dict[str, Any]] = {}
    for lang, year, events, transcripts in db.execute(
        f"SELECT e.lang, e.year, count(*), sum({transcript}) FROM events e "
        "GROUP BY e.lang, e.year ORDER BY e.year, e.lang"
    ):
        years[(lang, year)] = {
            "lang": lang, "year": year, "events": events, "transcripts": transcripts, "turns": 0
        }  # fmt: skip
    for lang, year, turns in db.execute(
        "SELECT e.lang, e.year, count(*) FROM utterances u JOIN events e ON e.id = u.event_id "
        f"WHERE u.speaker IS NOT NULL AND {transcript} GROUP BY e.lang, e.year"
    ):
        years[(lang, year)]["turns"] = turns
    tags = [
        {"kind": kind, "tags": count, "links": links}
        for kind, count, links in db.execute(
            "SELECT t.kind, count(DISTINCT t.id), count(et.event_id) FROM tags t "
            "LEFT JOIN event_tags et ON et.tag_id = t.id GROUP BY t.kind ORDER BY t.kind"
        )
    ]
    runs = list(
        db.query(
            "SELECT id, command, spider, status, finish_reason, started_at, finished_at, "
            "requests, responses, events_new, events_changed, events_unchanged, errors "
            "FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?",
            [last_runs],
        )
    )
    last_run_errors = (
        dict(
            db.execute(
                "SELECT stage, count(*) FROM errors WHERE run_id = ? GROUP BY stage ORDER BY stage",
                [runs[0]["id"]],
            ).fetchall()
        )
        if runs
        else {}
    )
    totals = {
        table: db.execute(f"SELECT count(*) FROM [{table}]").fetchone()[0]
        for table in (
            "events",
            "utterances",
            "tags",
            "fetches",
            "revisions",
            "runs",
            "errors",
            "coverage",
            "persons",
        )
    }
    return {
        "totals": totals,
        "years": list(years.values()),
        "tags": tags,
        "coverage": coverage_counts(db),
        "persons": person_counts(db),
        "runs": runs,
        "last_run_errors": last_run_errors,
    }
