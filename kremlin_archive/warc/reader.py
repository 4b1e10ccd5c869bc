"""Reading: every capture of a folder in order, one capture at a location, and the resolution
of revisit records to the payload of their original."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .records import (
    HINT_FILENAME,
    HINT_OFFSET,
    Damage,
    Damaged,
    OnError,
    Record,
    WarcLocation,
    WarcReadError,
    decode_body,
    digest_to_hex,
    is_being_written,
    load_record,
    location_key,
    mapped,
    parse_warc_date,
    read_at,
    safe_path,
    scan_file,
    warc_files,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capture:
    """One HTTP response as archived; for a revisit, ``body`` is the original's payload."""

    url: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]  # HTTP headers as stored (X-Archive-Orig-* included)
    body: bytes  # payload with any remaining Content-/Transfer-Encoding removed
    fetched_at: datetime  # WARC-Date, timezone-aware UTC
    record_id: str
    payload_sha256: str
    record_type: str  # "response" | "revisit"
    location: WarcLocation
    refers_to: str | None = None  # revisit: record id of the original response
    ip_address: str | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """First value of an HTTP header (case-insensitive)."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return default


class _Resolver:
    """Finds the original response of a revisit within one directory (the "small index")."""

    def __init__(self, directory: Path, load: Any = None):
        self.directory = directory
        self._load_record = load or (lambda name, offset: load_record(directory, name, offset))
        self.by_id: dict[str, tuple[str, int]] = {}
        self.by_payload: dict[str, tuple[str, int]] = {}
        self._full_index = False
        self._cache: OrderedDict[tuple[str, int], Record] = OrderedDict()

    def remember(self, filename: str, record: Record) -> None:
        if record.rec_type == "response":
            self.by_id[record.record_id] = (filename, record.offset)
            self.by_payload[record.payload_sha256] = (filename, record.offset)
            self._cache[(filename, record.offset)] = record
            self._trim()

    def _trim(self) -> None:
        while len(self._cache) > 16:
            self._cache.popitem(last=False)

    def _load(self, filename: str, offset: int) -> Record | None:
        key = (filename, offset)
        record = self._cache.get(key)
        if record is None:
            try:
                record = self._load_record(filename, offset)
            except (WarcReadError, OSError):
                return None
            self._cache[key] = record
            self._trim()
        else:
            self._cache.move_to_end(key)
        return record

    def _build_full_index(self) -> None:
        self._full_index = True
        for path in warc_files(self.directory):
            with contextlib.suppress(OSError):
                for item in scan_file(path):
                    if isinstance(item, Record) and item.rec_type == "response":
                        self.by_id.setdefault(item.record_id, (path.name, item.offset))
                        self.by_payload.setdefault(item.payload_sha256, (path.name, item.offset))

    def resolve(self, revisit: Record) -> tuple[str, Record]:
        """(filename, original record) or Damaged."""
        headers = revisit.warc_headers
        refers_to = headers.get_header("WARC-Refers-To")
        wanted_hex = digest_to_hex(revisit.payload_digest)
        algo = revisit.payload_digest.partition(":")[0].strip().lower() or "sha256"

        def payload_hex(record: Record) -> str | None:
            if algo == "sha256":
                return record.payload_sha256
            try:
                return hashlib.new(algo, record.payload).hexdigest()
            except ValueError:  # an algorithm hashlib does not know: cannot verify
                return None

        def candidates() -> Iterator[tuple[str, int]]:
            hint_name = headers.get_header(HINT_FILENAME)
            hint_offset = headers.get_header(HINT_OFFSET)
            if hint_name and hint_offset and hint_offset.isdigit():
                yield hint_name, int(hint_offset)
            for full in (False, True):
                if full:  # last resort: index every record of the directory (once)
                    if self._full_index:
                        return
                    self._build_full_index()
                if refers_to:
                    found = self.by_id.get(refers_to)
                elif algo == "sha256":  # no WARC-Refers-To: match on the payload digest
                    found = self.by_payload.get(wanted_hex or "")
                else:
                    found = None
                if found:
                    yield found

        for filename, offset in candidates():
            original = self._load(filename, offset)
            if original is None or original.rec_type != "response":
                continue
            if refers_to and original.record_id != refers_to:
                continue
            actual = payload_hex(original)
            if wanted_hex and actual and actual != wanted_hex:
                raise Damaged(
                    f"revisit original {original.record_id} has another payload than "
                    f"{revisit.payload_digest}"
                )
            return filename, original
        what = refers_to or revisit.payload_digest or "(no reference)"
        raise Damaged(f"original record of revisit not found: {what}")


def _capture(filename: str, record: Record, resolver: _Resolver) -> Capture:
    http = record.http_headers
    if http is None:
        raise Damaged(f"{record.rec_type} record without HTTP headers")
    try:
        status = int(http.get_statuscode())
    except ValueError:
        raise Damaged(f"bad HTTP status line: {http.statusline!r}") from None
    reason = http.statusline.partition(" ")[2]
    refers_to = None
    if record.rec_type == "revisit":
        _, original = resolver.resolve(record)
        refers_to = original.record_id
        payload, payload_headers, stored_hex = (
            original.payload,
            original.http_headers,
            original.payload_sha256,
        )
    else:
        payload, payload_headers, stored_hex = record.payload, http, record.payload_sha256
    body = decode_body(payload, payload_headers)
    payload_hex = stored_hex if body is payload else hashlib.sha256(body).hexdigest()
    try:
        fetched_at = parse_warc_date(record.date)
    except Exception:  # warcio raises assorted errors on bad dates
        raise Damaged(f"bad WARC-Date: {record.date!r}") from None
    location = WarcLocation(
        filename=filename,
        offset=record.offset,
        length=record.length,
        record_id=record.record_id,
        payload_digest=record.payload_digest,
        record_type=record.rec_type,
        payload_sha256=payload_hex,
    )
    return Capture(
        url=record.uri,
        status=status,
        reason=reason,
        headers=tuple(http.headers),
        body=body,
        fetched_at=fetched_at,
        record_id=record.record_id,
        payload_sha256=payload_hex,
        record_type=record.rec_type,
        location=location,
        refers_to=refers_to,
        ip_address=record.warc_headers.get_header("WARC-IP-Address"),
    )


def _log_error(filename: str, offset: int, reason: str) -> None:
    logger.warning("WARC %s@%d: %s", filename, offset, reason)


def iter_captures(
    directory: str | os.PathLike, *, on_error: OnError | None = None
) -> Iterator[Capture]:
    """Every response and revisit of every ``*.warc.gz`` in ``directory``, in file-name and
    offset order, revisits resolved to the original payload.

    Nothing in the files makes this raise: each damaged stretch, unresolvable revisit, empty or
    foreign file is reported as ``on_error(filename, offset, reason)`` (default: a log warning)
    and reading continues with the next readable record or file. Errors raised by ``on_error``
    itself propagate, and a missing directory raises FileNotFoundError (on first iteration).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"WARC directory not found: {directory}")
    report = on_error or _log_error
    resolver = _Resolver(directory)
    for path in warc_files(directory):
        name = path.name
        try:
            for item in scan_file(path):
                if isinstance(item, Damage):
                    reason = item.reason
                    if "incomplete record" in reason and is_being_written(path):
                        reason = f"record being written by a live writer ({item.length} bytes)"
                    report(name, item.offset, reason)
                    continue
                if item.rec_type not in ("response", "revisit"):
                    continue
                resolver.remember(name, item)
                try:
                    capture = _capture(name, item, resolver)
                except Damaged as exc:
                    report(name, item.offset, exc.reason)
                    continue
                yield capture
        except OSError as exc:
            report(name, 0, f"cannot read file: {exc}")


class RecordReader:
    """Captures at many locations of one folder (`read`), for a caller that reads a list of
    them: files stay mapped between reads (the last few) and revisits are resolved through one
    index of originals, instead of opening a file and building an index per record as
    `read_record` does. Use as a context manager (closes the files)."""

    MAX_OPEN = 8

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._files: OrderedDict[str, tuple[contextlib.ExitStack, Any]] = OrderedDict()
        self._resolver = _Resolver(self.directory, load=self._load)

    def _buffer(self, filename: str) -> Any:
        entry = self._files.get(filename)
        if entry is not None:
            self._files.move_to_end(filename)
            return entry[1]
        path = safe_path(self.directory, filename)
        stack = contextlib.ExitStack()
        try:
            buf = stack.enter_context(mapped(path))
        except FileNotFoundError:
            raise WarcReadError(filename, 0, "no such WARC file") from None
        self._files[filename] = (stack, buf)
        while len(self._files) > self.MAX_OPEN:
            self._files.popitem(last=False)[1][0].close()
        return buf

    def _load(self, filename: str, offset: int) -> Record:
        buf = self._buffer(filename)
        if offset < 0 or offset >= len(buf):
            raise WarcReadError(filename, offset, "offset outside the file")
        try:
            return read_at(buf, offset)
        except Damaged as exc:
            raise WarcReadError(filename, offset, exc.reason) from None

    def read(self, location: Any) -> Capture:
        """The capture at ``location`` (as for `read_record`). Raises :class:`WarcReadError`."""
        filename, offset = location_key(location)
        record = self._load(filename, offset)
        if record.rec_type not in ("response", "revisit"):
            raise WarcReadError(filename, offset, f"a {record.rec_type} record, not a capture")
        self._resolver.remember(filename, record)
        try:
            return _capture(filename, record, self._resolver)
        except Damaged as exc:
            raise WarcReadError(filename, offset, exc.reason) from None

    def close(self) -> None:
        while self._files:
            self._files.popitem()[1][0].close()

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_record(directory: str | os.PathLike, location: Any) -> Capture:
    """The capture at ``location`` (a WarcLocation, a (filename, offset) pair or a DB row with
    ``warc_filename``/``warc_offset``) of a response or revisit record; a revisit's body is
    resolved through ``WARC-Refers-To`` within ``directory``. Raises :class:`WarcReadError`."""
    directory = Path(directory)
    filename, offset = location_key(location)
    record = load_record(directory, filename, offset)
    if record.rec_type not in ("response", "revisit"):
        raise WarcReadError(filename, offset, f"a {record.rec_type} record, not a capture")
    try:
        return _capture(filename, record, _Resolver(directory))
    except Damaged as exc:
        raise WarcReadError(filename, offset, exc.reason) from None
