"""The archive as a web archive: one WACZ file (Web Archive Collection Zipped, spec 1.1.1) of
the WARC records of a selection of events, for ReplayWeb.page, pywb and any WACZ reader.

What the file holds (the README's "A web archive: WACZ" says the same for users):

- ``archive/<name>.warc.gz`` -- for every WARC file of the archive that holds a record of the
  selection, a file of the same name with just those records, copied byte for byte
  (`warc.extract.copy_records`): every capture of each selected event (responses and revisits,
  whatever their status, each with its request record), the original response of every
  revisit (and its request), and the warcinfo record of the file.
- ``indexes/index.cdx`` -- the CDXJ index of those files (py-wacz's indexer, `cdxj_lines`),
  sorted; uncompressed, the form pywb's ``wb-manager add --unpack-wacz`` reads too.
- ``pages/pages.jsonl`` -- a header line, then one entry per event, oldest first: ``url`` and
  ``ts`` are the WARC-Target-URI and WARC-Date of the capture the event's text came from,
  ``title`` and ``text`` (for full-text search) the archived content, and ``id``, ``lang``,
  ``published_at``, ``event_url`` (the canonical page), ``source``. A copy fetched from the
  Internet Archive stays one: its ``url`` is the web.archive.org address that was fetched and
  ``ts`` when; ``internet_archive`` names the original URL and the Internet Archive's capture
  time. It never poses as a visit to kremlin.ru.
- ``datapackage.json`` (Frictionless Data Package: every other member with its sha256 and size,
  the selection, the licence of the content) and ``datapackage-digest.json`` (its sha256).

Reproducible: the same archive and selection give the same bytes. ``created`` is the WARC-Date
of the newest record in the package (no wall clock); zip members have that time, fixed
attributes and a fixed order; JSON is written with sorted lists and fixed separators. The file
appears whole or not at all (written as ``<out>.part``, renamed at the end).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from .. import db as dbmod
from .. import identity
from ..warc.extract import ExtractError, cdxj_lines, copy_records, verify_copies

WACZ_VERSION = "1.1.1"
PAGES_FORMAT = "json-pages-1.0"
LANGS = ("ru", "en", "both")
INDEX_MEMBER = "indexes/index.cdx"
PAGES_MEMBER = "pages/pages.jsonl"
CONTENT_LICENSE = {
    "name": "CC-BY-4.0",
    "path": "https://creativecommons.org/licenses/by/4.0/",
    "title": "Creative Commons Attribution 4.0 International",
}
COPY_NOTE = (
    "A page whose entry has `internet_archive` is a copy fetched from the Internet Archive's "
    "Wayback Machine, not a visit to kremlin.ru: its `url` is the web.archive.org address "
    "that was fetched and `ts` when it was fetched; `internet_archive.original_url` and "
    "`internet_archive.captured_at` say what the Internet Archive captured, and when."
)


class PackageError(Exception):
    """Nothing sound to package: bad arguments, an empty selection, a WARC folder of another
    archive, records that cannot be read. The message names the problem."""


@dataclass
class PackageResult:
    path: Path
    events: int  # pages (events with a capture)
    captures: int  # response/revisit records of the selected events
    records: int  # every WARC record copied (with requests, originals, warcinfo)
    created: str
    size: int  # of the .wacz
    members: dict[str, int] = field(default_factory=dict)  # member -> bytes (uncompressed)
    without_capture: list[str] = field(default_factory=list)  # selected, no WARC record


def check_selection(lang: str, since: str | None, until: str | None) -> None:
    """Raise PackageError naming what is wrong with a selection."""
    if lang not in LANGS:
        raise PackageError(f"unknown language {lang!r}: expected one of {', '.join(LANGS)}")
    for name, value in (("since", since), ("until", until)):
        if value is None:
            continue
        try:
            if len(value) != 10:
                raise ValueError
            dt.date.fromisoformat(value)
        except ValueError:
            raise PackageError(f"--{name} {value!r}: expected a date as YYYY-MM-DD") from None
    if since and until and since > until:
        raise PackageError(f"--since {since} is after --until {until}: no day is selected")


def describe_selection(lang: str, since: str | None, until: str | None) -> str:
    """E.g. "en, published 2020-03-01..2020-03-31", "ru and en, all dates"."""
    langs = {"both": "ru and en"}.get(lang, lang)
    if since and until:
        return f"{langs}, published {since}..{until}"
    if since or until:
        return f"{langs}, published " + (f"from {since}" if since else f"until {until}")
    return f"{langs}, all dates"


def _check_identity(db: Database, warc_dir: Path) -> str | None:
    """The archive id, after checking (read-only) that the WARC folder belongs to it."""
    mine = dbmod.identity_of(db)
    try:
        theirs = identity.read_folder(warc_dir)
    except identity.IdentityMismatch as exc:
        raise PackageError(str(exc)) from None
    if mine and theirs and mine["id"] != theirs["archive_id"]:
        raise PackageError(
            f"the WARC folder {warc_dir} belongs to another archive ({theirs['archive_id']}), "
            f"not to this database ({mine['id']}): give the archive's own --warc-dir"
        )
    return (mine or {}).get("id") or (theirs or {}).get("archive_id")


def package_wacz(
    db: Database,
    warc_dir: str | Path,
    out: str | Path,
    *,
    lang: str = "both",
    since: str | None = None,
    until: str | None = None,
) -> PackageResult:
    """Write the WACZ of the selected events (``lang`` ru|en|both, Moscow days of publication
    ``since``..``until``) to ``out``. Raises PackageError (nothing is left behind then)."""
    check_selection(lang, since, until)
    out, warc_dir = Path(out), Path(warc_dir)
    if not warc_dir.is_dir():
        raise PackageError(f"no WARC folder at {warc_dir} (see --warc-dir)")
    filters = {"lang": lang, "since": since, "until": until}
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    with (
        dbmod.read_snapshot(db),
        tempfile.TemporaryDirectory(prefix=".package-", dir=out.parent) as work,
    ):
        archive_id = _check_identity(db, warc_dir)
        events = list(dbmod.iter_package_events(db, **filters))
        if not events:
            raise PackageError(
                f"no event of the archive is selected ({describe_selection(lang, since, until)})"
            )
        captures = [c for c in dbmod.package_captures(db, **filters)
                    if c["warc_record_type"] in ("response", "revisit")]  # fmt: skip
        if not captures:
            raise PackageError(
                f"none of the {len(events)} selected event(s) has a WARC record (imported "
                "from text files only?): nothing to replay"
            )
        folder = Path(work)
        try:
            extraction = copy_records(
                warc_dir, [(c["warc_filename"], c["warc_offset"]) for c in captures],
                folder / "archive",
            )  # fmt: skip
            verify_copies(extraction)
            index = cdxj_lines(extraction.files)
        except ExtractError as exc:
            raise PackageError(f"a WARC record cannot be packaged: {exc}") from None
        copied = {(r.filename, r.source_offset): r for r in extraction.records}
        pages, without = _page_captures(events, captures, copied)
        if not pages:
            raise PackageError("none of the selected events has a capture with a WARC record")
        created = _created(extraction.records)
        (folder / "index.cdx").write_text("".join(f"{line}\n" for line in index), "utf-8")
        with open(folder / "pages.jsonl", "w", encoding="utf-8", newline="\n") as stream:
            _write_pages(stream, db, filters, pages, created)
        members = [
            *((f"archive/{p.name}", p) for p in extraction.files),
            (INDEX_MEMBER, folder / "index.cdx"),
            (PAGES_MEMBER, folder / "pages.jsonl"),
        ]
        resources = [_resource(name, path) for name, path in members]
        datapackage = _json_bytes(
            _datapackage(resources, created, archive_id, lang, since, until, len(pages),
                         len(captures), len(extraction.records))
        )  # fmt: skip
        datapackage_hash = "sha256:" + hashlib.sha256(datapackage).hexdigest()
        digest = _json_bytes({"path": "datapackage.json", "hash": datapackage_hash})
        try:
            _write_zip(part, created, datapackage, digest, members)
            os.replace(part, out)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    sizes = {r["path"]: r["bytes"] for r in resources}
    sizes |= {"datapackage.json": len(datapackage), "datapackage-digest.json": len(digest)}
    return PackageResult(
        path=out,
        events=len(pages),
        captures=len(captures),
        records=len(extraction.records),
        created=created,
        size=out.stat().st_size,
        members=sizes,
        without_capture=without,
    )


def _page_captures(
    events: list[dict], captures: list[dict], copied: dict
) -> tuple[dict[str, tuple[dict, Any]], list[str]]:
    """event id -> (its capture row, the copied record) of the capture its content came from
    (`events.fetch_id`), else of its newest 200 capture; and the events without any."""
    by_event: dict[str, list[dict]] = {}
    for capture in captures:
        by_event.setdefault(capture["event_id"], []).append(capture)
    pages, without = {}, []
    for event in events:
        mine = by_event.get(event["id"], [])
        chosen = next((c for c in mine if c["id"] == event["fetch_id"]), None)
        if chosen is None:
            ok = [c for c in mine if c["status"] == 200]
            chosen = max(ok, key=lambda c: (c["fetched_at"], c["id"])) if ok else None
        if chosen is None:
            without.append(event["id"])
            continue
        pages[event["id"]] = (chosen, copied[(chosen["warc_filename"], chosen["warc_offset"])])
    return pages, without


def _created(records: list) -> str:
    """The WARC-Date of the newest record, to the second (RFC 3339, UTC)."""
    newest = max(r.date for r in records if r.date)
    moment = dt.datetime.fromisoformat(newest.replace("Z", "+00:00"))
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_pages(stream, db: Database, filters: dict, pages: dict, created: str) -> None:
    header = {
        "format": PAGES_FORMAT,
        "id": "pages",
        "title": "Event pages of kremlin.ru / en.kremlin.ru",
        "description": "One entry per archived event: `url` and `ts` are the target URI and "
        "WARC-Date of the capture the event's text came from; `title` and `text` are the "
        "archived text. " + COPY_NOTE,
        "hasText": True,
    }
    stream.write(json.dumps(header, ensure_ascii=False) + "\n")
    for event in dbmod.iter_package_events(db, **filters, with_text=True):
        if event["id"] not in pages:
            continue
        capture, record = pages[event["id"]]
        entry = {
            "id": event["id"],
            "url": record.target_uri,
            "ts": record.date,
            "title": event["title"],
            "text": event["text"] or "",
            "lang": event["lang"],
            "published_at": event["published_at"],
            "event_url": event["url"],
            "source": capture["source"] or "site",
        }
        if capture["source"] == "wayback":
            entry["internet_archive"] = {
                "original_url": capture["original_url"],
                "captured_at": capture["capture_time"],
            }
        stream.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _resource(member: str, path: Path) -> dict[str, Any]:
    return {
        "name": member.rsplit("/", 1)[-1].lower(),
        "path": member,
        "hash": _sha256_file(path),
        "bytes": path.stat().st_size,
    }


def _software() -> str:
    names = ("kremlin-archive", "cdxj-indexer")
    versions = []
    for name in names:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(name)
    return ", ".join(versions)


def _datapackage(
    resources: list[dict],
    created: str,
    archive_id: str | None,
    lang: str,
    since: str | None,
    until: str | None,
    pages: int,
    captures: int,
    records: int,
) -> dict[str, Any]:
    selection = describe_selection(lang, since, until)
    description = (
        f"Event pages of the President of Russia website ({selection}) as archived by "
        f"kremlin-archive: {pages} event(s), every capture of each ({captures} responses and "
        f"revisits) with its request, and the original response of every revisit; {records} "
        "WARC records in all, copied byte for byte from the archive's WARC files (an `archive/` "
        "file holds the records of the archive's WARC file of the same name).\n\n"
        f"{COPY_NOTE}\n\n`created` is the WARC-Date of the newest record in this file, so "
        f"that the same archive packages to the same bytes.\n\n{dbmod.ATTRIBUTION}"
    )
    return {
        "profile": "data-package",
        "wacz_version": WACZ_VERSION,
        "title": f"kremlin.ru events: {selection}",
        "description": description,
        "created": created,
        "software": _software(),
        "licenses": [CONTENT_LICENSE],
        "kremlin": {
            "archive_id": archive_id,
            "selection": {"lang": lang, "since": since, "until": until},
            "pages": pages,
            "captures": captures,
            "records": records,
        },
        "resources": resources,
    }


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _zip_info(name: str, created: str, size: int) -> zipfile.ZipInfo:
    moment = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
    info = zipfile.ZipInfo(name, date_time=moment.timetuple()[:6])
    # already compressed (WARC, .gz) is stored, so readers can seek into it; the rest deflated
    info.compress_type = zipfile.ZIP_STORED if name.endswith(".gz") else zipfile.ZIP_DEFLATED
    info.create_system = 3  # unix
    info.external_attr = 0o100644 << 16
    info.file_size = size  # decides zip64 before writing, the same way every time
    return info


def _write_zip(
    part: Path, created: str, datapackage: bytes, digest: bytes, members: list[tuple[str, Path]]
) -> None:
    with zipfile.ZipFile(part, "w", allowZip64=True) as wacz:
        for name, data in (("datapackage.json", datapackage),
                           ("datapackage-digest.json", digest)):  # fmt: skip
            with wacz.open(_zip_info(name, created, len(data)), "w") as stream:
                stream.write(data)
        for name, path in members:
            with (
                open(path, "rb") as source,
                wacz.open(_zip_info(name, created, path.stat().st_size), "w") as stream,
            ):
                shutil.copyfileobj(source, stream, 1 << 20)
