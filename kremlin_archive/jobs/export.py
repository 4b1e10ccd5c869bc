"""The archive out to files: txt (the legacy format), jsonl, csv.

Exports stream: `db.iter_event_records` hands over one event at a time (inside one read
snapshot), and each is written before the next is read, so memory stays flat however large the
archive. Events come oldest first (`published_at`, then id).

Layouts (the README's "Exports and legacy text" says the same for users):

- **txt** -- one file per event, `<id>.txt` (e.g. `ru-66419.txt`), in the legacy plain-text
  format of `legacy_txt.format_txt` (UTF-8, no trailing newline).
- **jsonl** -- one JSON object per line and event: the content fields (`paragraphs`, `sections`,
  `speakers` as lists), `utterances` (`seq`, `speaker` -- the label as printed --, `text`, and
  who it is: `person_id`, `person` (the name in the event's language), `position`, `marker`,
  `person_evidence`), `tags` (`kind`, `name`, `url`)
  and `provenance` (`PROVENANCE_KEYS`: the fetch the content came from, its WARC record, parser
  version, origin, revision count, license and attribution). Absent values are `null`, never
  `""` (the database keeps an absent lead as an empty string, as the parser gives it).
- **csv** -- two files, RFC 4180 (comma, double quotes, CRLF), UTF-8 without BOM, a header row:
  `events.csv` (`EVENT_COLUMNS`: one row per event; `text` is the body with one paragraph per
  line; the list columns `sections`, `tags` and `speakers` hold JSON arrays, because tag names
  may contain any separator and a tag has a kind and a URL too; the provenance columns as in
  jsonl) and `utterances.csv` (`UTTERANCE_COLUMNS`, one row per speaker turn, joined on
  `event_id` = `events.id`). An empty cell means no value.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlite_utils import Database

from .. import db as dbmod
from ..items import Transcript
from ..legacy_txt import format_txt

FORMATS = ("txt", "jsonl", "csv")

# What every exported event says about where its content came from.
PROVENANCE_KEYS = (
    "source_url",  # the URL as requested / as given (for an import: the file's URL line)
    "final_url",  # after redirects
    "fetched_at",  # UTC, ISO 8601; empty for an import
    "status",  # HTTP status of that fetch
    "etag",
    "last_modified",
    "payload_sha256",  # sha256 of the response body
    "warc_filename",  # the WARC record holding the raw response, under the WARC folder
    "warc_offset",
    "warc_length",
    "warc_record_id",
    "fetch_id",  # fetches.id in the database
    "run_id",  # the run that made that fetch
    "parser_version",
    "origin",  # crawl | reparse | import:<file name>
    "content_hash",
    "first_seen_at",
    "last_changed_at",
    "revision_count",  # earlier versions kept in the revisions table
    "license",
    "attribution",
)
CONTENT_KEYS = (
    "id", "lang", "kremlin_id", "url", "published_at", "title", "lead", "place", "updated_at",
    "announce_date", "twin_url", "twin_id",
)  # fmt: skip
EVENT_COLUMNS = (
    *CONTENT_KEYS, "sections", "tags", "speakers", "utterance_count", "text", *PROVENANCE_KEYS
)  # fmt: skip
UTTERANCE_COLUMNS = ("event_id", "seq", "speaker", "text", *dbmod.TURN_PERSON_KEYS)

Progress = Callable[[int], None]


@dataclass
class ExportResult:
    events: int = 0
    files: list[Path] = field(default_factory=list)  # what was written (not for txt: many)


def _list(value: str | None) -> list[Any]:
    return json.loads(value) if value else []


def provenance(record: dict[str, Any]) -> dict[str, Any]:
    """The `provenance` of one record of `db.iter_event_records`."""
    event, fetch = record["event"], record["fetch"] or {}
    return {
        "source_url": event["source_url"],
        "final_url": fetch.get("final_url"),
        "fetched_at": event["fetched_at"],
        "status": fetch.get("status"),
        "etag": fetch.get("etag"),
        "last_modified": fetch.get("last_modified"),
        "payload_sha256": fetch.get("payload_sha256"),
        "warc_filename": fetch.get("warc_filename"),
        "warc_offset": fetch.get("warc_offset"),
        "warc_length": fetch.get("warc_length"),
        "warc_record_id": fetch.get("warc_record_id"),
        "fetch_id": event["fetch_id"],
        "run_id": fetch.get("run_id"),
        "parser_version": event["parser_version"],
        "origin": event["origin"],
        "content_hash": event["content_hash"],
        "first_seen_at": event["first_seen_at"],
        "last_changed_at": event["last_changed_at"],
        "revision_count": event["revision_count"] or 0,
        "license": event["license"] or dbmod.LICENSE,
        "attribution": dbmod.ATTRIBUTION,
    }


def _absent_as_null(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with every empty string (how the database keeps an absent lead) as None."""
    return {key: None if value == "" else value for key, value in values.items()}


def json_record(record: dict[str, Any]) -> dict[str, Any]:
    """One event as a line of the jsonl export. An absent value is null, not "": the fields
    with a value of their own (content, each turn, each tag, provenance), not list items."""
    event = record["event"]
    return {
        **_absent_as_null({key: event[key] for key in CONTENT_KEYS}),
        "sections": _list(event["sections"]),
        "paragraphs": _list(event["paragraphs"]),
        "speakers": _list(event["speakers"]),
        "utterances": [_absent_as_null(u) for u in record["utterances"]],
        "tags": [_absent_as_null(t) for t in record["tags"]],
        "provenance": _absent_as_null(provenance(record)),
    }


def csv_event_row(record: dict[str, Any]) -> list[Any]:
    """One event as a row of events.csv (`EVENT_COLUMNS`)."""
    event = record["event"]
    values = {
        **{key: event[key] for key in CONTENT_KEYS},
        "sections": event["sections"] or "[]",
        "tags": json.dumps(record["tags"], ensure_ascii=False),
        "speakers": event["speakers"] or "[]",
        "utterance_count": len(record["utterances"]),
        "text": event["text"] or "",
        **provenance(record),
    }
    return [values[column] for column in EVENT_COLUMNS]


def record_transcript(record: dict[str, Any]) -> Transcript:
    """The record's content as a `Transcript` (what `format_txt` writes)."""
    event = record["event"]
    return Transcript.from_dict(
        {
            **{key: event[key] for key in CONTENT_KEYS if key not in ("id", "twin_id")},
            "lead": event["lead"] or "",
            "paragraphs": _list(event["paragraphs"]),
            "sections": _list(event["sections"]),
            "utterances": [
                {key: u[key] for key in ("seq", "speaker", "text")} for u in record["utterances"]
            ],
            "tags": record["tags"],
            "source_url": event["source_url"],
            "fetched_at": event["fetched_at"],
            "parser_version": event["parser_version"],
            "fetch_id": event["fetch_id"],
            "origin": event["origin"],
        }
    )


def _records(db: Database, filters: dict[str, Any], progress: Progress | None) -> Iterator[dict]:
    for record in dbmod.iter_event_records(db, **filters):
        yield record
        if progress:
            progress(1)


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def export_events(
    db: Database,
    fmt: str,
    out: Path | IO[str],
    *,
    lang: str | None = None,
    since: str | None = None,
    until: str | None = None,
    ids: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the matching events in `fmt` to `out`: a folder for txt and csv (created if
    needed), a file path or an open text stream for jsonl. Files appear complete or not at
    all (written as `<name>.part`, renamed at the end); txt files are written one by one."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    filters = {"lang": lang, "since": since, "until": until, "ids": ids}
    with dbmod.read_snapshot(db):
        return _export(db, fmt, out, filters, progress)


def _export(
    db: Database, fmt: str, out: Path | IO[str], filters: dict, progress: Progress | None
) -> ExportResult:
    records = _records(db, filters, progress)
    if fmt == "jsonl" and not isinstance(out, Path):
        return _write_jsonl(records, out)
    out = Path(out)  # type: ignore[arg-type]
    if fmt == "jsonl":
        out.parent.mkdir(parents=True, exist_ok=True)
        targets = [out]
    else:
        out.mkdir(parents=True, exist_ok=True)
        targets = [out / "events.csv", out / "utterances.csv"] if fmt == "csv" else []
    if fmt == "txt":
        return _write_txt(records, out)
    try:
        if fmt == "jsonl":
            with open(_part(out), "w", encoding="utf-8", newline="\n") as stream:
                result = _write_jsonl(records, stream)
        else:
            result = _write_csv(records, *map(_part, targets))
    except BaseException:
        for target in targets:
            _part(target).unlink(missing_ok=True)
        raise
    for target in targets:
        os.replace(_part(target), target)
    result.files = targets
    return result


def _write_jsonl(records: Iterable[dict], stream: IO[str]) -> ExportResult:
    result = ExportResult()
    for record in records:
        stream.write(json.dumps(json_record(record), ensure_ascii=False) + "\n")
        result.events += 1
    stream.flush()
    return result


def _write_csv(records: Iterable[dict], events_path: Path, utterances_path: Path) -> ExportResult:
    result = ExportResult()
    with (
        open(events_path, "w", encoding="utf-8", newline="") as events_file,
        open(utterances_path, "w", encoding="utf-8", newline="") as utterances_file,
    ):
        events, utterances = csv.writer(events_file), csv.writer(utterances_file)
        events.writerow(EVENT_COLUMNS)
        utterances.writerow(UTTERANCE_COLUMNS)
        for record in records:
            events.writerow(csv_event_row(record))
            event_id = record["event"]["id"]
            utterances.writerows(
                [event_id, *(u[key] for key in UTTERANCE_COLUMNS[1:])] for u in record["utterances"]
            )
            result.events += 1
    return result


def _write_txt(records: Iterable[dict], folder: Path) -> ExportResult:
    result = ExportResult()
    for record in records:
        path = folder / f"{record['event']['id']}.txt"
        path.write_text(format_txt(record_transcript(record)), encoding="utf-8", newline="")
        result.events += 1
    return result
