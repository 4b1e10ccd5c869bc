"""The archive out to files (txt, jsonl, csv), and legacy text files in (`import_txt`).

Exports stream: `db.iter_event_records` hands over one event at a time (inside one read
snapshot), and each is written before the next is read, so memory stays flat however large the
archive. Events come oldest first (`published_at`, then id).

Layouts (the README's "Exports and legacy text" says the same for users):

- **txt** -- one file per event, `<id>.txt` (e.g. `ru-66419.txt`), in the legacy plain-text
  format of `exporting.format_txt` (UTF-8, no trailing newline).
- **jsonl** -- one JSON object per line and event: the content fields (`paragraphs`, `sections`,
  `speakers` as lists), `utterances` (`seq`, `speaker`, `text`), `tags` (`kind`, `name`, `url`)
  and `provenance` (`PROVENANCE_KEYS`: the fetch the content came from, its WARC record, parser
  version, origin, revision count, license and attribution). Absent values are `null`.
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

from . import db as dbmod
from .exporting import format_txt, parse_txt
from .items import Transcript
from .parsing import PARSER_VERSION, ParseError

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
UTTERANCE_COLUMNS = ("event_id", "seq", "speaker", "text")

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


def json_record(record: dict[str, Any]) -> dict[str, Any]:
    """One event as a line of the jsonl export."""
    event = record["event"]
    return {
        **{key: event[key] for key in CONTENT_KEYS},
        "sections": _list(event["sections"]),
        "paragraphs": _list(event["paragraphs"]),
        "speakers": _list(event["speakers"]),
        "utterances": record["utterances"],
        "tags": record["tags"],
        "provenance": provenance(record),
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
            "utterances": record["utterances"],
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
                [event_id, u["seq"], u["speaker"], u["text"]] for u in record["utterances"]
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


# -- legacy text files in ------------------------------------------------------------------------


@dataclass
class ImportResult:
    run_id: str
    files: int = 0
    outcomes: dict[str, int] = field(
        default_factory=lambda: {"new": 0, "changed": 0, "unchanged": 0}
    )
    kept: list[tuple[Path, str]] = field(default_factory=list)  # (file, event id) not imported
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (file, message)

    @property
    def imported(self) -> int:
        return sum(self.outcomes.values())

    def as_counts(self) -> dict[str, int]:
        return {
            "files": self.files,
            "events_new": self.outcomes["new"],
            "events_changed": self.outcomes["changed"],
            "events_unchanged": self.outcomes["unchanged"],
            "events_kept": len(self.kept),
            "errors": len(self.failed),
        }


def txt_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to import: each file as given, and the `*.txt` files under each folder
    (recursively, sorted)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.txt") if p.is_file()))
        else:
            found.append(path)
    return found


def read_txt(path: Path) -> Transcript:
    """Parse one legacy file; `ParseError` names the file and the first wrong line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParseError(
            f"txt-line-{line}", f"{path.name}, line {line}: not UTF-8 text ({exc.reason})"
        ) from None
    transcript = parse_txt(text, path.name)
    from .pipelines import validation_problems  # the crawl's own checks

    problems = validation_problems(transcript)
    if problems:
        raise ParseError("invalid", f"{path.name}: invalid record: {', '.join(problems)}")
    return transcript


def import_txt(
    db: Database,
    files: Iterable[Path],
    *,
    arguments: dict[str, Any] | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
    on_failure: Callable[[Path, str], None] | None = None,
) -> ImportResult:
    """Store legacy text files as events, in one run (spider 'import-txt').

    Each record gets provenance ``origin = "import:<file name>"`` and no fetch; a later crawl of
    the same event supersedes it and keeps it as a revision (`db.save_transcript`). A file whose
    event the archive already holds from the site (crawl or reparse) is not imported: the page
    is the better source (`kept`). A malformed file is recorded in `errors` (stage 'import',
    url = its path, reason naming file and line), passed to `on_failure`, and skipped.
    """
    run_id = run_id or dbmod.new_run_id()
    result = ImportResult(run_id)
    dbmod.start_run(
        db, run_id=run_id, spider="import-txt", command="import-txt", arguments=arguments or {}
    )
    status, reason = "failed", "failed"
    try:
        for path in files:
            result.files += 1
            try:
                transcript = read_txt(path)
            except (OSError, ParseError) as exc:
                message = str(exc) if isinstance(exc, ParseError) else f"{path.name}: {exc}"
                result.failed.append((path, message))
                dbmod.record_error(db, run_id=run_id, url=str(path), stage="import", reason=message)
                if on_failure:
                    on_failure(path, message)
            else:
                origin = dbmod.event_origin(db, transcript.event_id)
                if origin is not None and not origin.startswith("import"):
                    result.kept.append((path, transcript.event_id))
                else:
                    transcript.run_id = run_id
                    transcript.spider = "import-txt"
                    transcript.parser_version = PARSER_VERSION  # its speaker-label rules
                    outcome = dbmod.save_transcript(db, transcript)
                    result.outcomes[outcome.outcome] += 1
            if progress:
                progress(1)
        if result.imported or result.kept:
            status, reason = "finished", "finished"
        else:
            reason = "nothing importable"
    except KeyboardInterrupt:
        status, reason = "interrupted", "shutdown"
        raise
    finally:
        dbmod.finish_run(db, run_id, status=status, finish_reason=reason, counts=result.as_counts())
    return result
