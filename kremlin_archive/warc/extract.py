"""Copying chosen records out of the WARC folder into new WARC files, and indexing them (CDXJ):
what `kremlin-archive package` (a WACZ) is made of.

Records are copied byte for byte: each record of this project's files is one gzip member, so a
member is taken as it lies in its file (offset, compressed length) and appended to a file of
the same name in the output folder. Nothing is re-encoded; WARC-Record-IDs, dates, digests and
the HTTP messages stay exactly as captured. Only offsets change (an output file holds a subset
of its source), so the non-standard ``Kremlin-Refers-To-Offset`` hint of a copied revisit points
into the source file, not the copy; readers fall back to ``WARC-Refers-To`` (the CDXJ index and
pywb/ReplayWeb.page use the URL and the payload digest).

For every capture asked for (a ``response`` or ``revisit`` record) the output holds:

- the record itself;
- its ``request`` record: the writer puts it right after the response, linked both ways by
  ``WARC-Concurrent-To``; it is taken only when that link holds;
- for a revisit, the original ``response`` it refers to (found as `reader` resolves revisits:
  the hint, then ``WARC-Refers-To`` in the folder) and that response's request, so that replay
  can resolve the revisit inside the package;
- the ``warcinfo`` record each copied record names in ``WARC-Warcinfo-ID`` (the first record of
  its file): software, run, archive id, attribution and licence.

Within an output file records keep their source order, so a file reads like its source with
records left out.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .reader import RecordReader
from .records import Damaged, Record, WarcError, WarcReadError, mapped, read_at

# What the index lists (the indexer's default, named here: py-wacz adds "warcinfo" to the
# default of every indexer in a process that imports it, and the index must not depend on that).
INDEXED_RECORDS = ("response", "revisit", "resource", "metadata")


class ExtractError(WarcError):
    """A record asked for cannot be copied whole (missing, damaged, unresolvable revisit)."""


@dataclasses.dataclass(frozen=True)
class CopiedRecord:
    """One record as copied: where it lies in the output file, and what it is."""

    filename: str  # the output file (same name as its source file)
    offset: int  # of its gzip member in the output file
    length: int  # compressed length (as in the source)
    source_offset: int  # of the member in the source file
    record_type: str  # warcinfo | response | revisit | request
    record_id: str
    target_uri: str  # WARC-Target-URI ("" for warcinfo)
    date: str  # WARC-Date as written
    status: int | None  # HTTP status (response, revisit)
    refers_to: str | None  # revisit: WARC-Refers-To


@dataclasses.dataclass
class Extraction:
    """What `copy_records` wrote: the output files (in name order) and every copied record."""

    files: list[Path]
    records: list[CopiedRecord]


def _status(record: Record) -> int | None:
    if record.http_headers is None:
        return None
    try:
        return int(record.http_headers.get_statuscode())
    except (TypeError, ValueError):
        return None


class _Picker:
    """The records to copy, by (source file, offset), gathered through one RecordReader. Only
    what a record is is kept (`CopiedRecord` with the offsets of the source), never its
    payload: memory grows with the number of records, not with their size."""

    def __init__(self, reader: RecordReader):
        self.reader = reader
        self.chosen: dict[tuple[str, int], CopiedRecord] = {}
        self.warcinfo_checked: set[tuple[str, str]] = set()

    def load(self, filename: str, offset: int) -> Record:
        try:
            return self.reader._load(filename, offset)
        except WarcReadError as exc:
            raise ExtractError(str(exc)) from None

    def add(self, filename: str, record: Record) -> None:
        key = (filename, record.offset)
        if key not in self.chosen:
            self.chosen[key] = _described(filename, record)

    def capture(self, filename: str, offset: int) -> None:
        record = self.load(filename, offset)
        if record.rec_type not in ("response", "revisit"):
            raise ExtractError(
                f"{filename}@{offset}: a {record.rec_type} record, not a response or revisit"
            )
        self._with_companions(filename, record)
        if record.rec_type == "revisit":
            try:
                original_file, original = self.reader._resolver.resolve(record)
            except Damaged as exc:
                raise ExtractError(f"{filename}@{offset}: {exc.reason}") from None
            self._with_companions(original_file, original)

    def _with_companions(self, filename: str, record: Record) -> None:
        self.add(filename, record)
        self._request_after(filename, record)
        self._warcinfo_of(filename, record)

    def _request_after(self, filename: str, record: Record) -> None:
        try:
            following = self.reader._load(filename, record.offset + record.length)
        except WarcReadError:
            return  # the end of the file, or no record there: no request to copy
        linked = following.warc_headers.get_header("WARC-Concurrent-To")
        if following.rec_type == "request" and linked == record.record_id:
            self.add(filename, following)

    def _warcinfo_of(self, filename: str, record: Record) -> None:
        wanted = record.warc_headers.get_header("WARC-Warcinfo-ID")
        if not wanted or (filename, wanted) in self.warcinfo_checked:
            return
        self.warcinfo_checked.add((filename, wanted))
        try:
            first = self.reader._load(filename, 0)
        except WarcReadError:
            return
        if first.rec_type == "warcinfo" and first.record_id == wanted:
            self.add(filename, first)


def copy_records(
    warc_dir: str | Path, captures: Iterable[tuple[str, int]], out_dir: str | Path
) -> Extraction:
    """Copy the captures at ``captures`` ((file name, offset) of response or revisit records in
    ``warc_dir``), with their requests, the originals of revisits and the warcinfo records, into
    files of the same names in ``out_dir`` (created). Raises :class:`ExtractError` when a
    capture cannot be read or a revisit's original cannot be found: a package never holds a
    revisit without its original."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[CopiedRecord] = []
    files: list[Path] = []
    with RecordReader(warc_dir) as reader:
        picker = _Picker(reader)
        for filename, offset in captures:
            picker.capture(filename, int(offset))
        by_file: dict[str, list[CopiedRecord]] = {}
        for (filename, _), record in picker.chosen.items():
            by_file.setdefault(filename, []).append(record)
        for filename in sorted(by_file):
            path = out_dir / filename
            position = 0
            buf = reader._buffer(filename)
            with open(path, "wb") as out:
                for record in sorted(by_file[filename], key=lambda r: r.source_offset):
                    start = record.source_offset
                    out.write(buf[start : start + record.length])
                    records.append(dataclasses.replace(record, offset=position))
                    position += record.length
            files.append(path)
    return Extraction(files=files, records=records)


def _described(filename: str, record: Record) -> CopiedRecord:
    """What `record` (of the source file `filename`) is; `offset` is set when it is copied."""
    headers = record.warc_headers
    return CopiedRecord(
        filename=filename,
        offset=-1,
        length=record.length,
        source_offset=record.offset,
        record_type=record.rec_type,
        record_id=record.record_id,
        target_uri=record.uri,
        date=record.date,
        status=_status(record),
        refers_to=headers.get_header("WARC-Refers-To"),
    )


def verify_copies(extraction: Extraction) -> None:
    """Read every copied record back from its output file: each must be where the extraction
    says, whole, with its digests. Raises :class:`ExtractError`."""
    by_file: dict[str, list[CopiedRecord]] = {}
    for record in extraction.records:
        by_file.setdefault(record.filename, []).append(record)
    for path in extraction.files:
        with mapped(path) as data:
            for record in by_file.get(path.name, []):
                try:
                    copy = read_at(data, record.offset)
                except Damaged as exc:
                    raise ExtractError(
                        f"{path.name}@{record.offset}: copy unreadable: {exc.reason}"
                    ) from None
                if copy.record_id != record.record_id or copy.length != record.length:
                    raise ExtractError(f"{path.name}@{record.offset}: not the record copied there")


class _Text(io.StringIO):
    """A text buffer the indexer may close without losing what it wrote."""

    def close(self) -> None:  # the indexer closes its output when done
        pass


def cdxj_lines(paths: Iterable[str | Path]) -> list[str]:
    """The CDXJ index of the WARC files ``paths``, sorted, one line per response, revisit,
    resource and metadata record (`filename` = the file's name), made by the indexer py-wacz
    (``wacz create``) uses, with its options: requests merged into their responses where
    they carry a body (POST), record digests, the referrer."""
    with warnings.catch_warnings():  # pyamf, imported by the indexer, warns about pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        from cdxj_indexer.main import CDXJIndexer

    output = _Text()
    indexer: Any = CDXJIndexer(
        output,
        [str(p) for p in paths],
        sort=True,
        post_append=True,
        digest_records=True,
        fields="referrer",
        records=",".join(INDEXED_RECORDS),
    )
    indexer.process_all()
    return [line for line in output.getvalue().splitlines() if line.strip()]
