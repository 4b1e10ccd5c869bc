"""A dataset release: the archive's records as files researchers can cite (issue 18).

`write_release(db, out)` writes into the folder `out`:

- six tables, each as CSV (RFC 4180: comma, double quotes, CRLF rows; UTF-8 without BOM; a
  header row) and as JSON Lines (one object per row, the same keys in the same order):
  `events` (the export's events columns, `EVENT_COLUMNS`, less `tags`: tags are a table of
  their own), `utterances` (the export's `UTTERANCE_COLUMNS`), and the database's `persons`,
  `tags`, `event_tags` and `fetches` (source/Wayback provenance, WARC location, payload sha256,
  status...) with all their columns. An absent value is an empty CSV cell and a JSON null
  (never ""); list columns (`sections`, `speakers`) are JSON arrays, in CSV as JSON text;
- `datapackage.json`: a Frictionless Data Package (v2) with a table schema per resource
  (types, primary keys, foreign keys), licence and attribution, sources, counts, the coverage
  summary, the archive's identity, the software version and every data file's sha256 and size;
- `README.md`: what is in it, how rows join, how to cite, the licence; it names the sha256 of
  `datapackage.json`, which names every data file's;
- `SHA256SUMS`: every other file, as `sha256sum -c` reads it.

The same archive gives the same bytes: rows in a fixed order (events oldest first as in the
export, their turns in order; the other tables by primary key), JSON written the same way, and
no clock: the release is dated by the archive's newest finished run.

The release is built in a hidden folder beside `out` and moved into place at the end, so a
failure never leaves half a release. `out` must be absent, empty, or a previous release
(nothing else in it); anything else is refused with `NotARelease`.

Parquet is not written: README "A dataset release" says why.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from sqlite_utils import Database

from .. import db as dbmod
from ..items import ABSENT, ACCOUNTED, FAILED, LISTED, NOT_EVENT, REFUSED, STORED
from .export import CONTENT_KEYS, UTTERANCE_COLUMNS, _absent_as_null, provenance
from .export import EVENT_COLUMNS as EXPORT_EVENT_COLUMNS

SOFTWARE = "kremlin-archive"
FORMATS = ("csv", "jsonl")
DATAPACKAGE, README, SHA256SUMS = "datapackage.json", "README.md", "SHA256SUMS"
PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
TABLE_SCHEMA = "https://datapackage.org/profiles/2.0/tableschema.json"
LICENSE_TERMS = "http://kremlin.ru/about/copyrights"
# README "License": the project's wording of whose content it is.
CONTENT_NOTICE = (
    "The archived content is © President of Russia website (kremlin.ru / en.kremlin.ru), "
    "licensed under Creative Commons Attribution 4.0 International (CC BY 4.0, "
    f"{LICENSE_TERMS})."
)
COVERAGE_STATES = (STORED, ABSENT, NOT_EVENT, REFUSED, FAILED, LISTED)

EVENT_COLUMNS = tuple(c for c in EXPORT_EVENT_COLUMNS if c != "tags")

Progress = Callable[[int], None]


class NotARelease(Exception):
    """The output folder holds something that is not a release: it is left as it is."""


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    description: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]


RESOURCE_TABLES = (
    Table(
        "events", "Events",
        "One row per event page and language (`id` = `<lang>-<kremlin_id>`): its content and "
        "the provenance of that content (the fetch it came from, its WARC record, the parser). "
        "`text` is the body, one paragraph per line.",
        EVENT_COLUMNS, ("id",),
    ),
    Table(
        "utterances", "Speaker turns",
        "One row per speaker turn of an event (`event_id` = events.id, `seq` from 1); "
        "`speaker` is the label as printed, `person_id` who it names where certain "
        "(persons.id), with the evidence.",
        UTTERANCE_COLUMNS, dbmod.primary_key("utterances"),
    ),
    Table(
        "persons", "Persons",
        "People speaker turns are linked to: the site's catalog id where there is one, else an "
        "archive id (`a-vladimir-putin`).",
        tuple(dbmod.TABLES["persons"]["columns"]), dbmod.primary_key("persons"),
    ),
    Table(
        "tags", "Tags",
        "Topics, persons, geography and sections the site tags events with (`id` is the tag's "
        "catalog URL where it has one).",
        tuple(dbmod.TABLES["tags"]["columns"]), dbmod.primary_key("tags"),
    ),
    Table(
        "event_tags", "Event tags",
        "Which event carries which tag (`event_id` = events.id, `tag_id` = tags.id), in page "
        "order (`seq`).",
        tuple(dbmod.TABLES["event_tags"]["columns"]), dbmod.primary_key("event_tags"),
    ),
    Table(
        "fetches", "Fetches",
        "Every HTTP exchange of the crawls (also 304s, 404s, refusals and errors): URL, status, "
        "time (UTC), who served it (`source`: site, or wayback with the capture), the payload's "
        "sha256 and where the raw exchange is kept (WARC file, offset, length, record id).",
        tuple(dbmod.TABLES["fetches"]["columns"]), dbmod.primary_key("fetches"),
    ),
)  # fmt: skip
RESOURCES = tuple(t.name for t in RESOURCE_TABLES)

DATETIME_FIELDS = frozenset(
    {"published_at", "updated_at", "fetched_at", "first_seen_at", "last_changed_at",
     "capture_time", "first_turn_at", "last_turn_at"}
)  # fmt: skip
DATE_FIELDS = frozenset({"announce_date"})
ARRAY_FIELDS = frozenset({"sections", "speakers"})
# A turn's text may be an empty string, which CSV cannot tell from no value.
NOT_REQUIRED = frozenset({"text"})

FIELD_DESCRIPTIONS = {
    "id": "Primary key.",
    "lang": "ru (kremlin.ru) or en (en.kremlin.ru).",
    "kremlin_id": "The site's numeric id (one event has the same id in both languages).",
    "url": "Canonical page URL.",
    "published_at": "As published, Moscow time with its offset (ISO 8601).",
    "updated_at": "The page's 'Last updated' time, where shown.",
    "announce_date": "Announcements: the announced day.",
    "twin_url": "The same event in the other language.",
    "twin_id": "events.id of the twin, when the twin is in the release too.",
    "sections": "Publication sections (JSON array).",
    "speakers": "Distinct speaker labels in order of appearance (JSON array).",
    "utterance_count": "Rows of utterances for this event.",
    "text": "The text, paragraphs separated by line breaks.",
    "source_url": "The URL as requested (for an import: the file's URL line).",
    "fetched_at": "UTC, ISO 8601.",
    "status": "HTTP status; empty when no response arrived.",
    "payload_sha256": "sha256 of the response body.",
    "warc_filename": "The WARC file holding the raw exchange (not part of this release).",
    "warc_offset": "Byte offset of the WARC record in its file.",
    "warc_length": "Byte length of the WARC record.",
    "fetch_id": "fetches.id of the fetch the content came from.",
    "run_id": "The crawl run (the archive's runs table, not part of this release).",
    "origin": "crawl | reparse | import:<file name>.",
    "revision_count": "Earlier versions the archive keeps (not part of this release).",
    "license": "Licence of the content.",
    "attribution": "The attribution the licence asks for.",
    "event_id": "events.id.",
    "seq": "Order within the event, from 1.",
    "speaker": "The speaker label exactly as printed, without its colon; empty for narration.",
    "person_id": "persons.id of whom the label names; empty when no one is certain.",
    "person": "The person's name in the event's language.",
    "position": "The position or title printed with the name.",
    "marker": "As printed: (retranslated), (через переводчика).",
    "person_evidence": "How the person was found: label-link, rule, event-tag, ...",
    "tag_id": "tags.id.",
    "source": "site, or wayback (a copy of the Internet Archive).",
    "archive_url": "wayback: the capture fetched.",
    "capture_time": "wayback: when the Internet Archive captured the page (UTC).",
    "original_url": "wayback: the URL it captured.",
}


@dataclass
class ReleaseResult:
    folder: Path
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)  # name -> bytes, every file


# -- rows -------------------------------------------------------------------------------------


def event_row(record: dict[str, Any]) -> dict[str, Any]:
    """One record of `db.iter_event_records` as a row of `events` (`EVENT_COLUMNS`)."""
    event = record["event"]
    values = {
        **{key: event[key] for key in CONTENT_KEYS},
        "sections": json.loads(event["sections"] or "[]"),
        "speakers": json.loads(event["speakers"] or "[]"),
        "utterance_count": len(record["utterances"]),
        "text": event["text"],
        **provenance(record),
    }
    return _absent_as_null({column: values[column] for column in EVENT_COLUMNS})


def utterance_rows(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The turns of one record as rows of `utterances` (`UTTERANCE_COLUMNS`)."""
    event_id = record["event"]["id"]
    for turn in record["utterances"]:
        values = {"event_id": event_id, **turn}
        yield _absent_as_null({column: values[column] for column in UTTERANCE_COLUMNS})


def csv_cell(value: Any) -> Any:
    """A row's value as its CSV cell: no value is empty, a list JSON text."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


class _TableWriter:
    """One table into `<name>.csv` and `<name>.jsonl` at once."""

    def __init__(self, folder: Path, table: Table):
        self.table, self.rows = table, 0
        self._csv_file: IO[str] = open(  # noqa: SIM115 - closed in close()
            folder / f"{table.name}.csv", "w", encoding="utf-8", newline=""
        )
        self._jsonl: IO[str] = open(  # noqa: SIM115
            folder / f"{table.name}.jsonl", "w", encoding="utf-8", newline="\n"
        )
        self._csv = csv.writer(self._csv_file)  # excel dialect: RFC 4180, CRLF
        self._csv.writerow(table.columns)

    def write(self, row: dict[str, Any]) -> None:
        self._csv.writerow([csv_cell(row[c]) for c in self.table.columns])
        self._jsonl.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.rows += 1

    def close(self) -> None:
        self._csv_file.close()
        self._jsonl.close()


def _write_tables(db: Database, folder: Path, progress: Progress | None) -> dict[str, int]:
    writers = {t.name: _TableWriter(folder, t) for t in RESOURCE_TABLES}
    try:
        for record in dbmod.iter_event_records(db):
            writers["events"].write(event_row(record))
            for row in utterance_rows(record):
                writers["utterances"].write(row)
            if progress:
                progress(1)
        for name in ("persons", "tags", "event_tags", "fetches"):
            for row in dbmod.iter_table_rows(db, name):
                writers[name].write(_absent_as_null(row))
    finally:
        for writer in writers.values():
            writer.close()
    return {name: writer.rows for name, writer in writers.items()}


# -- the data package -------------------------------------------------------------------------


def _column_type(table: str, column: str) -> str:
    if column in DATETIME_FIELDS:
        return "datetime"
    if column in DATE_FIELDS:
        return "date"
    if column in ARRAY_FIELDS:
        return "array"
    for name in (table, "events", "fetches"):
        python_type = dbmod.TABLES[name]["columns"].get(column)
        if python_type is not None:
            return "integer" if python_type is int else "string"
    return "string"  # utterances.person, events.attribution


def table_schema(table: Table) -> dict[str, Any]:
    """The Frictionless table schema of one resource: fields with types and constraints, the
    primary key, and the foreign keys to the other resources (from the database's shape)."""
    not_null = dbmod.TABLES[table.name].get("not_null", set()) - NOT_REQUIRED
    fields = []
    for column in table.columns:
        spec: dict[str, Any] = {"name": column, "type": _column_type(table.name, column)}
        if column in FIELD_DESCRIPTIONS:
            spec["description"] = FIELD_DESCRIPTIONS[column]
        constraints: dict[str, Any] = {}
        if column in table.primary_key or column in not_null:
            constraints["required"] = True
        if column == "lang":
            constraints["enum"] = ["en", "ru"]
        if constraints:
            spec["constraints"] = constraints
        fields.append(spec)
    foreign_keys = [
        {"fields": [column], "reference": {"resource": target, "fields": [target_column]}}
        for column, target, target_column in dbmod.TABLES[table.name].get("foreign_keys", [])
        if target in RESOURCES and column in table.columns
    ]
    schema: dict[str, Any] = {
        "$schema": TABLE_SCHEMA,
        "fields": fields,
        "missingValues": [""],
        "primaryKey": list(table.primary_key),
    }
    if foreign_keys:
        schema["foreignKeys"] = foreign_keys
    return schema


def _jsonl_schema(schema: dict[str, Any], rows: dict[str, int]) -> dict[str, Any]:
    """The schema of a JSON Lines resource: its foreign keys point to the JSON Lines twins
    (to the CSV of a table without rows: an empty JSON Lines file is no resource)."""
    schema = json.loads(json.dumps(schema))
    for key in schema.get("foreignKeys", []):
        if rows[key["reference"]["resource"]]:
            key["reference"]["resource"] += "-jsonl"
    return schema


def file_digest(path: Path) -> tuple[str, int]:
    """sha256 (hex) and size in bytes of a file."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _resources(folder: Path, rows: dict[str, int]) -> list[dict[str, Any]]:
    resources = []
    for fmt in FORMATS:
        for table in RESOURCE_TABLES:
            if fmt == "jsonl" and not rows[table.name]:
                continue  # Frictionless reads no table (not even its keys) from an empty file
            path = f"{table.name}.{fmt}"
            sha256, size = file_digest(folder / path)
            schema = table_schema(table)
            resource: dict[str, Any] = {
                "name": table.name if fmt == "csv" else f"{table.name}-jsonl",
                "type": "table",
                "path": path,
                "scheme": "file",
                "format": fmt,
                "mediatype": "text/csv" if fmt == "csv" else "application/jsonl",
                "encoding": "utf-8",
                "title": table.title if fmt == "csv" else f"{table.title} (JSON Lines)",
                "description": table.description,
                "bytes": size,
                "hash": f"sha256:{sha256}",
                "rows": rows[table.name],
                "schema": schema if fmt == "csv" else _jsonl_schema(schema, rows),
            }
            if fmt == "csv":
                resource["dialect"] = {
                    "$schema": "https://datapackage.org/profiles/2.0/tabledialect.json",
                    "delimiter": ",",
                    "lineTerminator": "\r\n",
                    "quoteChar": '"',
                    "doubleQuote": True,
                    "header": True,
                }
            resources.append(resource)
    return resources


def coverage_summary(db: Database) -> dict[str, Any]:
    """Per language, what the coverage ledger knows of the ids from its smallest to its
    largest of that language (as `kremlin-archive coverage --lang <lang>` reports)."""
    langs: dict[str, Any] = {}
    for lang, counts in sorted(dbmod.coverage_counts(db).items()):
        bounds = dbmod.coverage_bounds(db, lang)
        if bounds is None:  # pragma: no cover - counts imply bounds
            continue
        first, last = bounds
        states = {state: counts.get(state, 0) for state in COVERAGE_STATES}
        states |= {s: n for s, n in sorted(counts.items()) if s not in states}
        known = sum(states.values())
        langs[lang] = {
            "first_id": first,
            "last_id": last,
            "states": {**states, "unknown": (last - first + 1) - known},
            "accounted_for": sum(n for s, n in states.items() if s in ACCOUNTED),
            "wayback_only": len(dbmod.wayback_only(db, lang, first, last)),
        }
    return {
        "description": (
            "What the archive's coverage ledger knows of every id from the smallest to the "
            "largest it met, per language: stored, absent (the site answered 404 or its 404 "
            "page), not_event, refused, failed, listed (seen in a listing, not fetched), unknown "
            "(never met). Accounted for: stored, absent, not_event. wayback_only: stored from "
            "Internet Archive copies alone."
        ),
        "langs": langs,
    }


def software_version() -> str:
    return metadata.version(SOFTWARE)


def release_created(db: Database) -> str | None:
    """When the release's content was last settled: the newest finished run's end, else the
    archive's creation (never the clock, so that the same archive gives the same release)."""
    run = dbmod.newest_finished_run(db)
    if run:
        return run["finished_at"]
    identity = dbmod.identity_of(db)
    return identity["created_at"] if identity else None


def _package(db: Database, folder: Path, rows: dict[str, int]) -> dict[str, Any]:
    identity = dbmod.identity_of(db) or {}
    run = dbmod.newest_finished_run(db)
    sources = [
        {"title": "President of Russia website (Russian)", "path": "http://kremlin.ru/"},
        {"title": "President of Russia website (English)", "path": "http://en.kremlin.ru/"},
    ]
    by_source = dbmod.fetch_sources(db)
    if by_source.get("wayback"):
        sources.append(
            {
                "title": "Internet Archive Wayback Machine (copies of kremlin.ru pages)",
                "path": "https://web.archive.org/",
            }
        )
    package: dict[str, Any] = {
        "$schema": PROFILE,
        "name": _package_name(identity.get("id")),
        "title": "Events of the President of Russia website (kremlin.ru, en.kremlin.ru)",
        "description": (
            "News, speeches and transcripts of the President of Russia website as archived by "
            "kremlin-archive: events with their speaker turns, the persons they are linked to, "
            "tags, and the provenance of every HTTP exchange. Each table is given twice, as CSV "
            "and as JSON Lines (resources named <table> and <table>-jsonl)."
        ),
        "keywords": ["kremlin.ru", "President of Russia", "transcripts", "speeches", "web archive"],
        "licenses": [
            {
                "name": "CC-BY-4.0",
                "path": "https://creativecommons.org/licenses/by/4.0/",
                "title": "Creative Commons Attribution 4.0 International",
            }
        ],
        "attribution": dbmod.ATTRIBUTION,
        "copyright": CONTENT_NOTICE,
        "contributors": [
            {
                "title": "President of Russia website (kremlin.ru / en.kremlin.ru)",
                "path": LICENSE_TERMS,
                "roles": ["creator"],
            },
            {"title": "kremlin-archive contributors", "roles": ["contributor"]},
        ],
        "sources": sources,
        "archive": {
            "id": identity.get("id"),
            "created_at": identity.get("created_at"),
            "newest_finished_run": run["id"] if run else None,
        },
        "software": {
            "name": SOFTWARE,
            "version": software_version(),
            "license": "Apache-2.0",
            "parser_versions": dbmod.parser_versions(db),
        },
        "counts": {
            "rows": dict(rows),
            "events_by_lang": dbmod.events_by_lang(db),
            "fetches_by_source": by_source,
        },
        "coverage": coverage_summary(db),
        "resources": _resources(folder, rows),
    }
    created = release_created(db)
    if created:  # an archive without runs or identity (an old import) has no date to give
        package = {**dict(list(package.items())[:3]), "created": created, **package}
    return package


def _package_name(archive_id: str | None) -> str:
    name = (archive_id or SOFTWARE).lower()
    return name if all(c.isalnum() or c in "-_." for c in name) else SOFTWARE


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


# -- README -----------------------------------------------------------------------------------


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


def readme_text(package: dict[str, Any], package_sha256: str) -> str:
    """The release's README.md, from its datapackage.json (and that file's sha256)."""
    archive, software = package["archive"], package["software"]
    counts = package["counts"]
    lines = [
        f"# {package['title']}",
        "",
        "A dataset release made by `kremlin-archive release` "
        f"(kremlin-archive {software['version']}).",
        "",
        f"- Archive: `{archive['id']}` (created {archive['created_at']})",
        f"- Content as of: {package['created']} (the archive's newest finished run)",
        f"- `datapackage.json` sha256: `{package_sha256}`",
        "",
        "## Licence and attribution",
        "",
        CONTENT_NOTICE,
        "",
        "When you use the data, attribute it so:",
        "",
        f"> {package['attribution']}",
        "",
        "The software that made this release, kremlin-archive, is licensed under the Apache "
        "License 2.0; the licence of the data is the content's, above.",
        "",
        "## How to cite",
        "",
        "Cite the source of the content, this release and the software, for example:",
        "",
        "> President of Russia website (kremlin.ru / en.kremlin.ru), CC BY 4.0. Dataset release "
        f"of the archive `{archive['id']}`, content as of {package['created']}, made with "
        f"kremlin-archive {software['version']} (kremlin-archive contributors); "
        f"datapackage.json sha256 {package_sha256}.",
        "",
        "The sha256 of `datapackage.json` pins every file: it lists each data file's sha256 and "
        "size. The software has no DOI yet; its `CITATION.cff` says how to cite it.",
        "",
        "## Files",
        "",
        "Each table comes twice, with the same rows in the same order: CSV (RFC 4180: comma, "
        "double quotes, CRLF rows, UTF-8 without BOM, a header row) and JSON Lines (one object "
        "per line, keys as the CSV header).",
        "",
        "| table | rows | CSV | JSON Lines | what |",
        "|---|---:|---:|---:|---|",
    ]
    by_path = {r["path"]: r for r in package["resources"]}
    empty = {"bytes": 0}
    for resource in package["resources"]:
        if resource["format"] != "csv":
            continue
        name = resource["name"]
        jsonl = by_path.get(f"{name}.jsonl", empty)
        first_sentence = resource["description"].split(". ")[0].rstrip(".")
        lines.append(
            f"| `{name}` | {resource['rows']:,} | {_size(resource['bytes'])} | "
            f"{_size(jsonl['bytes'])} | {first_sentence} |"
        )
    lines += [
        "",
        "Also: `datapackage.json` (the Frictionless Data Package: every field's type and "
        "meaning, primary and foreign keys, licence, sources, counts, the coverage summary, "
        "each data file's sha256 and size), this README and `SHA256SUMS` (every file). The "
        "JSON Lines file of a table without rows is empty and is no resource of the package "
        "(Frictionless reads no table from an empty file); its CSV has the header.",
        "",
        "An absent value is an empty CSV cell and `null` in JSON Lines. `sections` and "
        "`speakers` are JSON arrays (in CSV, JSON text in the cell). Times are ISO 8601: "
        "`published_at` in Moscow time with its offset, fetch times in UTC.",
        "",
        "## How rows join",
        "",
        "- `utterances.event_id` → `events.id`; `utterances.person_id` → `persons.id` (empty "
        "when no person is certain; `speaker` keeps the label as printed).",
        "- `event_tags.event_id` → `events.id`, `event_tags.tag_id` → `tags.id`.",
        "- `events.fetch_id` → `fetches.id`: the HTTP exchange the current content came from "
        "(empty for imported records); `events.twin_id` → `events.id`: the same event in the "
        "other language.",
        "- `fetches.warc_filename`, `warc_offset`, `warc_length` locate the raw exchange in the "
        "archive's WARC files (not part of this release); `payload_sha256` checks it.",
        "",
        "```python",
        "import pandas as pd",
        'events = pd.read_csv("events.csv")',
        'turns = pd.read_csv("utterances.csv").merge(events, left_on="event_id", right_on="id")',
        "```",
        "",
        "## Counts",
        "",
    ]
    for lang, n in counts["events_by_lang"].items():
        lines.append(f"- events ({lang}): {n:,}")
    for source, n in counts["fetches_by_source"].items():
        lines.append(f"- fetches from the {source}: {n:,}")
    coverage = package["coverage"]["langs"]
    if coverage:
        langs = list(coverage)
        states = list(next(iter(coverage.values()))["states"])
        lines += [
            "",
            "Coverage: what the archive knows of each id from the smallest to the largest it "
            "met, per language (`kremlin-archive coverage`):",
            "",
            "| state | " + " | ".join(langs) + " |",
            "|---|" + "---:|" * len(langs),
        ]
        for state in states:
            cells = " | ".join(f"{coverage[lang]['states'].get(state, 0):,}" for lang in langs)
            lines.append(f"| {state} | {cells} |")
        ids = " | ".join(
            f"{coverage[lang]['first_id']}–{coverage[lang]['last_id']}" for lang in langs
        )
        lines.append(f"| ids | {ids} |")
    lines += [
        "",
        "## Checking the files",
        "",
        "```sh",
        "sha256sum -c SHA256SUMS             # every file as released",
        "frictionless validate datapackage.json   # types, keys, foreign keys, sizes, hashes",
        "```",
        "",
        "Parquet is not included: CSV and JSON Lines are read everywhere without a 55 MB "
        "library (pyarrow), and their bytes do not depend on a writer's version. To make Parquet: "
        "`pandas.read_json('events.jsonl', lines=True).to_parquet('events.parquet')`, or in "
        "DuckDB `duckdb.read_json('events.jsonl').write_parquet('events.parquet')`.",
        "",
    ]
    return "\n".join(lines)


# -- the folder -------------------------------------------------------------------------------


def release_files() -> tuple[str, ...]:
    """The names of every file a release holds."""
    data = tuple(f"{t.name}.{fmt}" for fmt in FORMATS for t in RESOURCE_TABLES)
    return (*data, DATAPACKAGE, README, SHA256SUMS)


def check_target(out: Path) -> None:
    """Refuse (NotARelease) an `out` that is a file, or a folder holding anything but a
    previous release of kremlin-archive."""
    if not out.exists():
        return
    if not out.is_dir():
        raise NotARelease(f"{out} is a file, not a folder")
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    package = out / DATAPACKAGE
    try:
        data = json.loads(package.read_text(encoding="utf-8"))
        ours = data.get("software", {}).get("name") == SOFTWARE
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise NotARelease(
            f"{out} is not empty and is not a release of kremlin-archive (no {DATAPACKAGE} of "
            "one): give a new or empty folder"
        )
    known = set(release_files()) | {r.get("path") for r in data.get("resources", [])}
    strangers = [name for name in names if name not in known or (out / name).is_dir()]
    if strangers:
        raise NotARelease(
            f"{out} holds a release and other files ({', '.join(strangers[:5])}"
            f"{', ...' if len(strangers) > 5 else ''}), which a new release would delete: "
            "move them, or give a new or empty folder"
        )


def _move_into_place(built: Path, out: Path) -> None:
    if not out.exists():
        os.replace(built, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rmdir(old)
    os.replace(out, old)
    try:
        os.replace(built, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old)


def write_release(db: Database, out: Path, *, progress: Progress | None = None) -> ReleaseResult:
    """Write a release of the archive in `db` to the folder `out` (see the module's doc).
    Raises NotARelease, before anything is written, for an `out` it must not replace."""
    out = Path(os.path.abspath(out))  # "." or "rel/" too: a folder with a name and a parent
    check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        with dbmod.read_snapshot(db):
            rows = _write_tables(db, built, progress)
            package = _package(db, built, rows)
        (built / DATAPACKAGE).write_text(_dump(package), encoding="utf-8", newline="\n")
        package_sha256, _ = file_digest(built / DATAPACKAGE)
        (built / README).write_text(
            readme_text(package, package_sha256), encoding="utf-8", newline="\n"
        )
        files = _digests(built, [n for n in release_files() if n != SHA256SUMS])
        (built / SHA256SUMS).write_text(
            "".join(f"{sha256}  {name}\n" for name, (sha256, _) in files.items()),
            encoding="utf-8",
            newline="\n",
        )
        os.chmod(built, 0o755)  # mkdtemp's folder is private; a release is to share
        sizes = {name: size for name, (_, size) in files.items()}
        sizes[SHA256SUMS] = (built / SHA256SUMS).stat().st_size
        _move_into_place(built, out)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return ReleaseResult(folder=out, rows=rows, files=sizes)


def _digests(folder: Path, names: Iterable[str]) -> dict[str, tuple[str, int]]:
    return {name: file_digest(folder / name) for name in sorted(names)}
