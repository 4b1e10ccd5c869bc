"""WARC archive of every HTTP exchange: writing, reading, revisits, crash repair (warcio).

Everything the crawler receives is kept as ISO 28500 WARC records so that the database can be
rebuilt (``reparse``) without touching the network. This module is plain Python on top of warcio;
the Scrapy glue (a middleware that calls :meth:`WarcArchive.write_exchange` for every response
and stores the returned :class:`WarcLocation` in the ``fetches`` table) lives elsewhere.

Format
    WARC/1.1. warcio writes and reads 1.0 and 1.1 the same way and ``warcio check`` verifies
    both identically, so the choice is ours: 1.1 is the current standard (ISO 28500:2017), its
    WARC-Date carries microseconds (two fetches of one URL within a second stay distinct and
    ordered, and ``WARC-Refers-To-Date`` can name the original exactly), and it has its own
    revisit profile URI. The reader accepts 1.0 files too.
    Every record is one gzip member (warcio ``gzip=True``), so a record can be read by seeking
    to its offset, and damage stays local to one record.

Digests
    ``WARC-Block-Digest`` and ``WARC-Payload-Digest`` are SHA-256 in warcio's notation,
    ``sha256:<BASE32>`` (RFC 4648 base32 with padding). :attr:`WarcLocation.payload_sha256` and
    :attr:`Capture.payload_sha256` are the SHA-256 of the *decoded* body as lowercase hex -- the
    value the database keys revisits on. This writer stores decoded bodies (see below), so it is
    the same digest as WARC-Payload-Digest, re-encoded; the two differ only for a body that is
    still content-encoded (a caller that skipped decoding, or a foreign WARC).

Files and rotation
    ``kremlin-<UTC yyyymmddHHMMSS>-<run_id>-<NNNNN>.warc.gz``: the time is when the file was
    started, NNNNN counts the files of one writer from 00001; names therefore sort in
    chronological order and the readers process files in name order. Files are created lazily
    (a run that fetches nothing leaves no file) and each begins with a ``warcinfo`` record
    (software, format, run id, and the attribution "Content: President of Russia website
    (kremlin.ru), CC BY 4.0"); every later record names it in ``WARC-Warcinfo-ID``. A new file
    is started when the next exchange would push the current one beyond ``max_file_size``; an
    exchange is never split, so a file holding a single oversized exchange may exceed the limit.
    The request and response records of one exchange always sit in the same file.

What is stored for one exchange
    A ``response`` record (or a ``revisit``) followed by its ``request`` record, linked both ways
    by ``WARC-Concurrent-To``; both carry ``WARC-Date`` = the fetch time and, when known,
    ``WARC-IP-Address``. Scrapy hands over the body *after* removing the Content-Encoding, but
    its headers may still say ``Content-Encoding: gzip``, ``Transfer-Encoding: chunked`` and the
    compressed ``Content-Length``. The stored HTTP message is made consistent with the stored
    body: Content-Encoding and Transfer-Encoding are dropped, Content-Length is set to the body
    length, and each original value is kept as ``X-Archive-Orig-<Name>`` (the pywb/Wayback
    convention). If the body still *is* gzip/zlib data (a caller that skipped decoding), the
    Content-Encoding header is kept so that the message stays truthful. Header bytes are written
    as received (str values are encoded as Latin-1, the way Scrapy decodes header bytes), not
    percent-encoded as warcio would otherwise do. 3xx/4xx/5xx responses are stored the same way.

Revisits
    When the caller passes ``revisit_of`` (the location of an earlier ``response`` record in this
    directory, normally the database row of the last capture of the URL with the same payload
    SHA-256) and the body is not empty, a ``revisit`` record with the profile
    ``http://netpreserve.org/warc/1.1/revisit/identical-payload-digest`` is written instead of a
    response: HTTP headers only, no body, ``WARC-Refers-To`` (original record id),
    ``WARC-Refers-To-Target-URI`` and ``WARC-Refers-To-Date`` (taken from the original record
    itself, so they are exact), ``WARC-Payload-Digest``. The original is read back and verified
    (record id, type, payload digest) before a revisit is written; if it cannot be found or
    differs, a full ``response`` is written instead -- a payload is never dropped on trust.
    Two non-standard fields, ``Kremlin-Refers-To-Filename`` and ``Kremlin-Refers-To-Offset``,
    let readers jump straight to the original without an index; readers fall back to looking
    the record id (then the payload digest) up in the directory.

Crash behaviour
    Records are written straight into the final ``.warc.gz`` name (no ``.open`` + rename): a
    location handed to the database never changes name, and every reader sees every record that
    was flushed. Each exchange is built in memory, written with one ``write`` and flushed and (by
    default) fsync'ed before its locations are returned, so a location stored in the database
    always points at a complete record. A writer holds an exclusive ``flock`` on its file.
    A killed process (SIGKILL) leaves whole exchanges in practice (one ``write`` each; tested);
    a power loss, a full disk or an interrupted copy can leave a partial gzip member or zeros at
    the end of a file. Readers report that through ``on_error`` and carry on;
    :func:`repair_tail` truncates it, and
    :meth:`WarcArchive.open` runs it on every file in the directory that no live writer holds
    (the removed bytes are kept next to the file as ``<name>.removed-tail-<offset>``). A writer
    never appends to an existing file: each run starts new files.

Reading
    :func:`iter_captures` walks all ``*.warc.gz`` files in name/offset order and yields one
    :class:`Capture` per response/revisit record, revisits resolved to the original payload.
    Damage never escapes the iterator: a truncated last record, a corrupt gzip member, trailing
    garbage, an empty file or a file that is not a WARC are reported via
    ``on_error(filename, offset, reason)``; after a corrupt member the reader resynchronises on
    the next gzip member header (``1f 8b 08``) that decodes to a valid WARC record.
    :func:`read_record` reads one capture at a location; :func:`check_file` lists problems of one
    file (warcio's own digest checker plus the structural checks above).

Why no ``metadata`` record for network failures
    A failure without a response carries no bytes from the site; its URL, time and error belong
    in the database (``fetches``/``errors``). A ``metadata`` record would only duplicate that.
    The one case worth a metadata record would be a *partial* response (connection reset after
    some bytes): those bytes are evidence, but Scrapy discards them, so there is nothing to keep.

Command line (for quick inspection): ``python -m kremlin_archive.archive check|repair|ls PATH...``
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import logging
import mmap
import os
import re
import sys
import threading
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import BufferedReader, ChunkedDataReader
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecordLoader
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParserException
from warcio.timeutils import datetime_to_iso_date, iso_date_to_datetime
from warcio.utils import Digester
from warcio.warcwriter import WARCWriter

try:  # advisory locks; POSIX only (without them a live file is merely not protected)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CONTENT_NOTE",
    "REVISIT_PROFILE",
    "WARC_VERSION",
    "Capture",
    "WarcArchive",
    "WarcError",
    "WarcFileBusy",
    "WarcLocation",
    "WarcReadError",
    "check_file",
    "iter_captures",
    "read_record",
    "repair_directory",
    "repair_tail",
    "warc_files",
]

logger = logging.getLogger(__name__)

WARC_VERSION = "WARC/1.1"
REVISIT_PROFILE = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
CONFORMS_TO = "http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"
CONTENT_NOTE = "Content: President of Russia website (kremlin.ru), CC BY 4.0"
CONTENT_LICENSE = "https://creativecommons.org/licenses/by/4.0/"
WARC_SUFFIX = ".warc.gz"
ORIG_HEADER_PREFIX = "X-Archive-Orig-"
HINT_FILENAME = "Kremlin-Refers-To-Filename"
HINT_OFFSET = "Kremlin-Refers-To-Offset"

GZIP_MAGIC = b"\x1f\x8b\x08"
_CHUNK = 1 << 16
_MAX_RECORD = 512 << 20  # a decompressed record larger than this is treated as damage
_NO_BODY_STATUSES = frozenset({204, 304})

OnError = Callable[[str, int, str], None]


# --------------------------------------------------------------------------------------------
# public data types


@dataclass(frozen=True)
class WarcLocation:
    """Where one record lives: enough to read it back and to key revisits on."""

    filename: str  # relative to the WARC directory
    offset: int  # of the record's gzip member
    length: int  # compressed length of the member
    record_id: str  # "<urn:uuid:...>"
    payload_digest: str  # "sha256:<BASE32>" as in WARC-Payload-Digest
    record_type: str  # "response" | "revisit" | "request"
    payload_sha256: str  # hex SHA-256 of the decoded payload body


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


class WarcError(Exception):
    """Base class of this module's errors."""


class WarcReadError(WarcError):
    """A record could not be read at the given location."""

    def __init__(self, filename: str, offset: int, reason: str):
        super().__init__(f"{filename}@{offset}: {reason}")
        self.filename = filename
        self.offset = offset
        self.reason = reason


class WarcFileBusy(WarcError):
    """The file is held by a live writer (flock); it must not be repaired now."""


# --------------------------------------------------------------------------------------------
# small helpers


def sha256_digest(data: bytes) -> tuple[str, str]:
    """(hex, "sha256:<BASE32>") of ``data``; the second is warcio's digest notation."""
    raw = hashlib.sha256(data).digest()
    return raw.hex(), "sha256:" + base64.b32encode(raw).decode("ascii")


def digest_to_hex(digest: str | None) -> str | None:
    """Hex value of a WARC digest ("algo:value", value base32, base16 or base64), else None."""
    if not digest or ":" not in digest:
        return None
    algo, _, value = digest.partition(":")
    try:
        size = hashlib.new(algo.strip().lower()).digest_size
    except ValueError:
        return None
    value = value.strip()
    decoders = (
        lambda v: base64.b32decode(v.upper()),
        lambda v: bytes.fromhex(v),
        lambda v: base64.b64decode(v, altchars=b"-_" if ("-" in v or "_" in v) else None),
    )
    for decode in decoders:
        try:
            raw = decode(value)
        except (binascii.Error, ValueError):
            continue
        if len(raw) == size:
            return raw.hex()
    return None


def _field(obj: Any, *names: str) -> Any:
    """First present attribute/key of ``obj`` among ``names`` (WarcLocation or a DB row)."""
    for name in names:
        if isinstance(obj, Mapping):
            if obj.get(name) is not None:
                return obj[name]
        elif getattr(obj, name, None) is not None:
            return getattr(obj, name)
    return None


def _location_key(location: Any) -> tuple[str, int]:
    if isinstance(location, tuple | list) and len(location) == 2:
        filename, offset = location
    else:
        filename = _field(location, "filename", "warc_filename")
        offset = _field(location, "offset", "warc_offset")
    if filename is None or offset is None:
        raise TypeError(f"not a WARC location: {location!r}")
    return str(filename), int(offset)


def _safe_path(directory: Path, filename: str) -> Path:
    """``directory/filename``, refusing anything but a plain file name (no traversal)."""
    name = Path(filename)
    if name.is_absolute() or len(name.parts) != 1 or name.name in ("", ".", ".."):
        raise WarcReadError(filename, 0, "WARC file name must be a plain name in the directory")
    return directory / name


def _warc_date(moment: datetime) -> str:
    """WARC/1.1 date: UTC with microseconds when there are any. Naive datetimes mean UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return datetime_to_iso_date(moment, use_micros=True)


def _parse_warc_date(value: str) -> datetime:
    return iso_date_to_datetime(value, tz_aware=True)


def _header_bytes(value: str | bytes) -> bytes:
    """Header text as bytes on the wire: Latin-1 round-trips Scrapy's decoded bytes."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raw = value.encode("utf-8")
    return raw.replace(b"\r", b" ").replace(b"\n", b" ")


def _header_str(value: str | bytes) -> str:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")
    return value.replace("\r", " ").replace("\n", " ")


def _looks_still_encoded(body: bytes, encodings: list[str]) -> bool:
    """Whether ``body`` is still gzip/zlib data although the caller should have decoded it."""
    tokens = [t.strip().lower() for value in encodings for t in value.split(",") if t.strip()]
    if not tokens or len(body) < 2:
        return False
    last = tokens[-1]
    if last in ("gzip", "x-gzip"):
        return body[:2] == b"\x1f\x8b"
    if last == "deflate":
        return (body[0] & 0x0F) == 8 and ((body[0] << 8) | body[1]) % 31 == 0
    return False


def consistent_response_headers(
    headers: Iterable[tuple[str | bytes, str | bytes]],
    body: bytes,
    *,
    status: int,
    method: str = "GET",
) -> list[tuple[str, str | bytes]]:
    """Response headers made consistent with ``body`` as stored (see module docstring).

    Drops Content-Encoding (unless the body is still encoded) and Transfer-Encoding, sets
    Content-Length to ``len(body)`` and keeps each changed original as ``X-Archive-Orig-*``.
    Responses that have no body by definition (HEAD, 1xx, 204, 304) keep their Content-Length.
    """
    pairs = [(_header_str(name), value) for name, value in headers]
    encodings = [_header_str(value) for name, value in pairs if name.lower() == "content-encoding"]
    keep_encoding = _looks_still_encoded(body, encodings)
    bodiless = not body and (
        method.upper() == "HEAD" or 100 <= status < 200 or status in _NO_BODY_STATUSES
    )
    length = str(len(body))
    out: list[tuple[str, str | bytes]] = []
    originals: list[tuple[str, str | bytes]] = []
    length_done = bodiless
    for name, value in pairs:
        lname = name.lower()
        if lname == "transfer-encoding" or (lname == "content-encoding" and not keep_encoding):
            originals.append((ORIG_HEADER_PREFIX + name, value))
        elif lname == "content-length" and not bodiless:
            if _header_str(value).strip() != length:
                originals.append((ORIG_HEADER_PREFIX + name, value))
            if not length_done:
                out.append((name, length))
                length_done = True
        else:
            out.append((name, value))
    if not length_done:
        out.append(("Content-Length", length))
    return out + originals


class _RawHTTPHeaders(StatusAndHeaders):
    """StatusAndHeaders whose serialised form is fixed bytes (as received), not warcio's
    ASCII/percent-encoded rendering."""

    def __init__(self, first_line: str, headers: list[tuple[str, str | bytes]]):
        protocol, _, statusline = first_line.partition(" ")
        super().__init__(statusline, [(n, _header_str(v)) for n, v in headers], protocol=protocol)
        lines = [_header_bytes(first_line)]
        lines += [_header_bytes(n) + b": " + _header_bytes(v) for n, v in headers]
        self._raw = b"\r\n".join(lines) + b"\r\n\r\n"
        self.headers_buff = self._raw

    def compute_headers_buffer(self, header_filter=None):
        self.headers_buff = self._raw


class _Sha256WARCWriter(WARCWriter):
    """warcio's writer with SHA-256 block and payload digests."""

    @staticmethod
    def _create_digester():
        return Digester("sha256")


def _software_version(software: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist, label in ((software, software), ("warcio", "warcio")):
        try:
            parts.append(f"{label}/{version(dist)}")
        except PackageNotFoundError:
            parts.append(label)
    return " ".join(parts)


_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _lock(fh, *, exclusive: bool) -> bool:
    """Non-blocking flock; True when acquired (or when locks are unavailable)."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fh.fileno(), (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def is_being_written(path: str | os.PathLike) -> bool:
    """Whether a live writer holds ``path`` (its exclusive flock)."""
    try:
        with open(path, "rb") as fh:
            return not _lock(fh, exclusive=False)
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------------------------
# writing


@dataclass
class _Ref:
    """What a revisit needs to know about its original."""

    filename: str
    offset: int
    record_id: str
    uri: str
    date: str
    payload_sha256: str


class WarcArchive:
    """Writes exchanges into size-rotated WARC files of one run (see the module docstring).

    >>> with WarcArchive("data/warc", run_id="20240101T000000Z-ab12cd34") as warc:  # doctest: +SKIP
    ...     response_loc, request_loc = warc.write_exchange(url=..., status=200, ...)
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        run_id: str,
        max_file_size: int = 1_000_000_000,
        software: str = "kremlin-archive",
        fsync: bool = True,
        repair_on_open: bool = True,
        warcinfo: Mapping[str, str] | None = None,
    ):
        self.directory = Path(directory)
        self.run_id = run_id
        self.max_file_size = int(max_file_size) if max_file_size else 1_000_000_000
        self.software = software
        self.fsync = fsync
        self.repair_on_open = repair_on_open
        self.extra_warcinfo = dict(warcinfo or {})
        self.files: list[str] = []  # names of the files this writer started, in order
        self.repaired: dict[str, int] = {}  # file name -> bytes removed by open()
        self._run_tag = _RUN_ID_UNSAFE.sub("_", run_id).strip("._")[:80] or "run"
        self._lock = threading.Lock()
        self._is_open = False
        self._fh = None
        self._filename: str | None = None
        self._size = 0
        self._records_in_file = 0
        self._warcinfo_id = ""
        self._seq = 0
        self._refs: OrderedDict[tuple[str, int], _Ref] = OrderedDict()

    # lifecycle ------------------------------------------------------------------------------

    def open(self) -> WarcArchive:
        """Create the directory and repair crash tails of files no live writer holds.
        The first file is created with the first exchange."""
        with self._lock:
            if self._is_open:
                return self
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.repair_on_open:
                self.repaired = repair_directory(self.directory, keep_removed=True)
            self._is_open = True
        return self

    def close(self) -> None:
        """Flush, fsync and release the current file. Safe to call twice."""
        with self._lock:
            self._close_file()
            self._is_open = False

    def __enter__(self) -> WarcArchive:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def current_filename(self) -> str | None:
        return self._filename

    def __repr__(self) -> str:
        return (
            f"WarcArchive({str(self.directory)!r}, run_id={self.run_id!r}, file={self._filename!r})"
        )

    # files ----------------------------------------------------------------------------------

    def _new_file(self) -> None:
        self._close_file()
        while True:
            self._seq += 1
            stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            name = f"kremlin-{stamp}-{self._run_tag}-{self._seq:05d}{WARC_SUFFIX}"
            try:
                fh = open(self.directory / name, "xb")  # noqa: SIM115 -- lives until rotation
            except FileExistsError:
                continue
            break
        if not _lock(fh, exclusive=True):  # pragma: no cover -- a fresh file nobody knows yet
            fh.close()
            raise WarcFileBusy(name)
        writer = _Sha256WARCWriter(io.BytesIO(), gzip=True, warc_version=WARC_VERSION)
        info = {
            "software": _software_version(self.software),
            "format": "WARC File Format 1.1",
            "conformsTo": CONFORMS_TO,
            "isPartOf": self.run_id,
            "description": CONTENT_NOTE,
            "license": CONTENT_LICENSE,
        }
        info.update({k: _header_str(str(v)) for k, v in self.extra_warcinfo.items()})
        record = writer.create_warcinfo_record(name, info)
        writer.write_record(record)
        data = writer.out.getvalue()
        try:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            fh.close()
            raise
        _fsync_dir(self.directory)
        self._fh = fh
        self._filename = name
        self._size = len(data)
        self._records_in_file = 0
        self._warcinfo_id = record.rec_headers.get_header("WARC-Record-ID")
        self.files.append(name)
        logger.info("WARC file started: %s", self.directory / name)

    def _close_file(self) -> None:
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fh.close()  # closing releases the flock
        logger.info("WARC file closed: %s (%d bytes)", self._filename, self._size)
        self._filename = None

    # writing --------------------------------------------------------------------------------

    def write_exchange(
        self,
        *,
        url: str,
        method: str = "GET",
        request_headers: Iterable[tuple[str | bytes, str | bytes]] = (),
        status: int,
        reason: str = "",
        response_headers: Iterable[tuple[str | bytes, str | bytes]] = (),
        body: bytes = b"",
        fetched_at: datetime,
        remote_ip: str | None = None,
        revisit_of: Any = None,
        revisit_uri: str | None = None,
        revisit_date: str | None = None,
        protocol: str = "HTTP/1.1",
        request_body: bytes = b"",
    ) -> tuple[WarcLocation, WarcLocation]:
        """Write one exchange; returns (response-or-revisit location, request location).

        ``body`` is the decoded body as Scrapy hands it over. ``revisit_of`` is a WarcLocation,
        a (filename, offset) pair or a mapping with ``warc_filename``/``warc_offset`` (and
        optionally ``warc_record_id``, ``payload_sha256``) naming an earlier response with the
        same payload; a revisit is written only if that record verifies. ``revisit_uri`` and
        ``revisit_date`` are accepted for callers that know them, but the values are always
        taken from the original record (a mismatch is logged).
        """
        body = bytes(body)
        request_body = bytes(request_body)
        method = (method or "GET").upper()
        status = int(status)
        if not protocol.upper().startswith("HTTP/1."):
            protocol = "HTTP/1.1"  # h2 etc.: stored in HTTP/1.1 message syntax
        reason = reason or _status_phrase(status)
        date = _warc_date(fetched_at)
        stored_hex, payload_digest = sha256_digest(body)
        response_id = _new_record_id()
        request_id = _new_record_id()

        stored_headers = consistent_response_headers(
            response_headers, body, status=status, method=method
        )
        response_http = _RawHTTPHeaders(f"{protocol} {status} {reason}".rstrip(), stored_headers)
        decoded_hex = stored_hex  # differs only for a body that is still content-encoded
        if response_http.get_header("Content-Encoding"):
            decoded_hex = hashlib.sha256(_decode_body(body, response_http)).hexdigest()

        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        req_pairs = [(_header_str(n), v) for n, v in request_headers]
        if parts.netloc and not any(n.lower() == "host" for n, _ in req_pairs):
            req_pairs.insert(0, ("Host", parts.netloc))
        request_http = _RawHTTPHeaders(f"{method} {target} {protocol}", req_pairs)

        with self._lock:
            if not self._is_open:
                raise WarcError("WarcArchive is not open")
            ref = self._revisit_target(
                revisit_of, body, stored_hex, decoded_hex, revisit_uri, revisit_date
            )
            if self._fh is None:
                self._new_file()

            def build() -> tuple[bytes, list[tuple[int, int, str]]]:
                return self._build_exchange(
                    url=url,
                    date=date,
                    remote_ip=remote_ip,
                    response_id=response_id,
                    request_id=request_id,
                    response_http=response_http,
                    request_http=request_http,
                    body=body,
                    request_body=request_body,
                    payload_digest=payload_digest,
                    ref=ref,
                )

            data, marks = build()
            if self._records_in_file and self._size + len(data) > self.max_file_size:
                self._new_file()
                data, marks = build()  # again, for the new file's WARC-Warcinfo-ID
            start = self._size
            try:
                self._fh.write(data)
                self._fh.flush()
                if self.fsync:
                    os.fsync(self._fh.fileno())
            except BaseException:
                with contextlib.suppress(Exception):  # leave no partial member behind
                    self._fh.truncate(start)
                    self._fh.flush()
                raise
            self._size += len(data)
            self._records_in_file += 2
            filename = self._filename

        (r_off, r_len, r_digest), (q_off, q_len, q_digest) = marks
        response_loc = WarcLocation(
            filename=filename,
            offset=start + r_off,
            length=r_len,
            record_id=response_id,
            payload_digest=r_digest,
            record_type="revisit" if ref else "response",
            payload_sha256=decoded_hex,
        )
        request_loc = WarcLocation(
            filename=filename,
            offset=start + q_off,
            length=q_len,
            record_id=request_id,
            payload_digest=q_digest,
            record_type="request",
            payload_sha256=hashlib.sha256(request_body).hexdigest(),
        )
        return response_loc, request_loc

    def _build_exchange(
        self,
        *,
        url,
        date,
        remote_ip,
        response_id,
        request_id,
        response_http,
        request_http,
        body,
        request_body,
        payload_digest,
        ref: _Ref | None,
    ) -> tuple[bytes, list[tuple[int, int, str]]]:
        writer = _Sha256WARCWriter(io.BytesIO(), gzip=True, warc_version=WARC_VERSION)

        def warc_fields(record_type: str, record_id: str, concurrent_to: str) -> dict[str, str]:
            # conventional order; warcio keeps the position of fields given here
            fields = {
                "WARC-Type": record_type,
                "WARC-Record-ID": record_id,
                "WARC-Date": date,
                "WARC-Target-URI": url,
            }
            if remote_ip:
                fields["WARC-IP-Address"] = str(remote_ip)
            fields["WARC-Concurrent-To"] = concurrent_to
            fields["WARC-Warcinfo-ID"] = self._warcinfo_id
            return fields

        response_warc = warc_fields("revisit" if ref else "response", response_id, request_id)
        if ref is None:
            response = writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(body),
                length=len(body),
                http_headers=response_http,
                warc_headers_dict=response_warc,
            )
        else:
            response_warc["WARC-Refers-To"] = ref.record_id
            response = writer.create_revisit_record(
                url,
                payload_digest,
                ref.uri,
                ref.date,
                http_headers=response_http,
                warc_headers_dict=response_warc,
            )
            response.rec_headers.add_header(HINT_FILENAME, ref.filename)
            response.rec_headers.add_header(HINT_OFFSET, str(ref.offset))
        request = writer.create_warc_record(
            url,
            "request",
            payload=io.BytesIO(request_body),
            length=len(request_body),
            http_headers=request_http,
            warc_headers_dict=warc_fields("request", request_id, response_id),
        )
        marks = []
        for record in (response, request):
            before = writer.out.tell()
            writer.write_record(record)
            marks.append(
                (
                    before,
                    writer.out.tell() - before,
                    record.rec_headers.get_header("WARC-Payload-Digest") or "",
                )
            )
        return writer.out.getvalue(), marks

    def _revisit_target(
        self,
        revisit_of: Any,
        body: bytes,
        stored_hex: str,
        decoded_hex: str,
        revisit_uri: str | None,
        revisit_date: str | None,
    ) -> _Ref | None:
        """The verified original for a revisit, or None (then a full response is written)."""
        if revisit_of is None or not body:
            return None
        try:
            filename, offset = _location_key(revisit_of)
        except (TypeError, ValueError):
            logger.warning("revisit_of is not a WARC location: %r; writing a response", revisit_of)
            return None
        declared = _field(revisit_of, "payload_sha256")
        if declared and str(declared).lower() != decoded_hex:
            logger.info("revisit_of %s@%d: other payload; writing a response", filename, offset)
            return None
        ref = self._refs.get((filename, offset))
        if ref is None:
            try:
                record = _load_record(self.directory, filename, offset)
            except (WarcReadError, OSError) as exc:
                logger.warning("revisit target unreadable (%s); writing a response", exc)
                return None
            if record.rec_type != "response" or record.http_headers is None:
                logger.warning(
                    "revisit target %s@%d is a %s record; writing a response",
                    filename,
                    offset,
                    record.rec_type,
                )
                return None
            ref = _Ref(
                filename, offset, record.record_id, record.uri, record.date, record.payload_sha256
            )
            self._refs[(filename, offset)] = ref
            while len(self._refs) > 4096:
                self._refs.popitem(last=False)
        wanted_id = _field(revisit_of, "record_id", "warc_record_id")
        if wanted_id and wanted_id != ref.record_id:
            logger.warning(
                "revisit target %s@%d holds %s, not %s; writing a response",
                filename,
                offset,
                ref.record_id,
                wanted_id,
            )
            return None
        if ref.payload_sha256 != stored_hex:  # identical *stored* payload, as the profile says
            logger.info("revisit target %s@%d: other payload; writing a response", filename, offset)
            return None
        if (revisit_uri and revisit_uri != ref.uri) or (revisit_date and revisit_date != ref.date):
            logger.warning(
                "revisit_uri/revisit_date (%s, %s) differ from the original record (%s, %s); "
                "using the record's values",
                revisit_uri,
                revisit_date,
                ref.uri,
                ref.date,
            )
        return ref


def _new_record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# --------------------------------------------------------------------------------------------
# reading: one gzip member = one record


class _Damaged(Exception):
    def __init__(self, reason: str, *, truncated: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.truncated = truncated  # the data ran out before the member ended


@dataclass
class _Record:
    offset: int
    length: int
    rec_type: str
    warc_headers: StatusAndHeaders
    http_headers: StatusAndHeaders | None
    payload: bytes  # block after the HTTP headers (empty for a revisit)
    payload_sha256: str  # of the payload as stored (what WARC-Payload-Digest covers)

    @property
    def record_id(self) -> str:
        return self.warc_headers.get_header("WARC-Record-ID") or ""

    @property
    def uri(self) -> str:
        return self.warc_headers.get_header("WARC-Target-URI") or ""

    @property
    def date(self) -> str:
        return self.warc_headers.get_header("WARC-Date") or ""

    @property
    def payload_digest(self) -> str:
        return self.warc_headers.get_header("WARC-Payload-Digest") or ""


@dataclass
class _Damage:
    offset: int
    length: int
    reason: str


def _inflate_member(buf, pos: int) -> tuple[bytes, int]:
    """Decompress the gzip member at ``pos``; returns (data, end offset)."""
    size = len(buf)
    head = bytes(buf[pos : pos + 3])
    if head != GZIP_MAGIC:
        if size - pos < 3 and GZIP_MAGIC.startswith(head):
            raise _Damaged("gzip member cut off at end of file", truncated=True)
        raise _Damaged(f"no gzip member here (bytes {head.hex(' ') or 'none'})")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    pieces = []
    total = 0
    i = pos
    while not inflater.eof:
        if i >= size:
            raise _Damaged("gzip member cut off at end of file", truncated=True)
        chunk = buf[i : i + _CHUNK]
        i += len(chunk)
        try:
            piece = inflater.decompress(chunk)
        except zlib.error as exc:
            raise _Damaged(f"corrupt gzip data ({exc})") from None
        total += len(piece)
        if total > _MAX_RECORD:
            raise _Damaged("gzip member larger than any record this reader accepts")
        pieces.append(piece)
    return b"".join(pieces), i - len(inflater.unused_data)


def _check_block_digest(warc_headers: StatusAndHeaders, block: bytes) -> None:
    declared = warc_headers.get_header("WARC-Block-Digest")
    if not declared:
        return
    algo = declared.partition(":")[0].strip().lower()
    try:
        actual = hashlib.new(algo, block).hexdigest()
    except ValueError:
        return
    if digest_to_hex(declared) != actual:
        raise _Damaged(f"block digest failed: {declared}")


def _parse_record(data: bytes, offset: int, length: int) -> _Record:
    """Parse one decompressed member as exactly one WARC record, verifying its digests."""
    if not data.startswith(b"WARC/"):
        raise _Damaged("gzip member does not hold a WARC record")
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        raise _Damaged("WARC header block is not terminated")
    loader = ArcWarcRecordLoader(verify_http=False, arc2warc=False)
    try:
        record = loader.parse_record_stream(
            BufferedReader(io.BytesIO(data)), known_format="warc", check_digests=True
        )
        declared = int(record.rec_headers.get_header("Content-Length"))
        block_start = head_end + 4
        if declared < 0 or len(data) < block_start + declared:
            raise _Damaged("record shorter than its Content-Length")
        if data[block_start + declared :].strip(b"\r\n"):
            raise _Damaged("data after the record inside its gzip member")
        payload = record.raw_stream.read()
    except _Damaged:
        raise
    except (
        ArchiveLoadFailed,
        StatusAndHeadersParserException,
        EOFError,
        ValueError,
        TypeError,
    ) as exc:
        raise _Damaged(f"unparsable WARC record ({exc})") from None
    checker = record.digest_checker
    if checker is not None and checker.passed is False:
        raise _Damaged("; ".join(checker.problems) or "digest failed")
    if record.rec_type == "revisit":  # warcio does not verify revisits; their block is ours
        _check_block_digest(record.rec_headers, data[block_start : block_start + declared])
    return _Record(
        offset=offset,
        length=length,
        rec_type=record.rec_type or "",
        warc_headers=record.rec_headers,
        http_headers=record.http_headers,
        payload=payload if record.rec_type != "revisit" else b"",
        payload_sha256=hashlib.sha256(payload).hexdigest() if record.rec_type != "revisit" else "",
    )


def _read_at(buf, pos: int) -> _Record:
    data, end = _inflate_member(buf, pos)
    return _parse_record(data, pos, end - pos)


def _resync(buf, start: int) -> _Record | None:
    """The first readable record whose gzip member starts at or after ``start``."""
    while True:
        found = buf.find(GZIP_MAGIC, start)
        if found < 0:
            return None
        try:
            return _read_at(buf, found)
        except _Damaged:
            start = found + 1


def _scan_buffer(buf) -> Iterator[_Record | _Damage]:
    """Every record of a file, and one _Damage per unreadable stretch."""
    size = len(buf)
    if size == 0:
        yield _Damage(0, 0, "empty file")
        return
    pos = 0
    while pos < size:
        try:
            record = _read_at(buf, pos)
        except _Damaged as exc:
            error = exc
        else:
            yield record
            pos = record.offset + record.length
            continue
        following = _resync(buf, pos + 1)
        if following is None:
            yield _Damage(pos, size - pos, _tail_reason(buf, pos, error))
            return
        skipped = following.offset - pos
        yield _Damage(
            pos,
            skipped,
            f"damaged record: {error.reason}; skipped {skipped} bytes "
            f"to the next readable record at offset {following.offset}",
        )
        yield following
        pos = following.offset + following.length


def _tail_reason(buf, pos: int, error: _Damaged) -> str:
    rest = len(buf) - pos
    if pos == 0 and bytes(buf[:3]) != GZIP_MAGIC:
        kind = "an uncompressed WARC" if bytes(buf[:5]) == b"WARC/" else "not a WARC file"
        return f"{kind}: not gzip-compressed WARC records ({error.reason})"
    if error.truncated:
        return f"incomplete record at end of file ({rest} bytes; writer crashed or still writing)"
    return f"unreadable data at end of file ({rest} bytes): {error.reason}"


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[Any]:
    """The file's bytes (mmap; b"" when empty)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            yield mm


def _scan_file(path: Path) -> Iterator[_Record | _Damage]:
    with _mapped(path) as buf:
        yield from _scan_buffer(buf)


def _load_record(directory: Path, filename: str, offset: int) -> _Record:
    """The record whose gzip member starts at ``offset`` of ``directory/filename``."""
    path = _safe_path(Path(directory), filename)
    try:
        with _mapped(path) as buf:
            if offset < 0 or offset >= len(buf):
                raise WarcReadError(filename, offset, "offset outside the file")
            return _read_at(buf, offset)
    except _Damaged as exc:
        raise WarcReadError(filename, offset, exc.reason) from None
    except FileNotFoundError:
        raise WarcReadError(filename, offset, "no such WARC file") from None


def warc_files(directory: str | os.PathLike) -> list[Path]:
    """The ``*.warc.gz`` files of ``directory`` in name (= chronological) order."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(WARC_SUFFIX) and p.is_file())


# --------------------------------------------------------------------------------------------
# captures and revisit resolution


def _decompress(data: bytes, coding: str) -> bytes | None:
    """One Content-Encoding undone, or None if the data is not encoded that way."""
    try:
        if coding in ("gzip", "x-gzip"):
            return zlib.decompressobj(zlib.MAX_WBITS | 32).decompress(data)  # gzip or zlib
        if coding == "deflate":
            try:
                return zlib.decompress(data)
            except zlib.error:
                return zlib.decompress(data, -zlib.MAX_WBITS)  # raw deflate, as some servers send
        if coding == "br":
            import brotli

            return brotli.decompress(data)
    except ImportError:
        return None
    except Exception:  # zlib.error, brotli.error: not encoded after all
        return None
    return None


def _decode_body(payload: bytes, http_headers: StatusAndHeaders | None) -> bytes:
    """Undo Transfer-/Content-Encoding left in a stored payload (foreign or still-encoded
    records; this module's writer normally stores decoded bodies). Undecodable data is
    returned as stored."""
    if http_headers is None:
        return payload
    transfer = (http_headers.get_header("transfer-encoding") or "").strip().lower()
    if transfer == "chunked":
        payload = ChunkedDataReader(io.BytesIO(payload)).read()  # falls back to the raw bytes
    codings = [
        c.strip().lower()
        for c in (http_headers.get_header("content-encoding") or "").split(",")
        if c.strip() and c.strip().lower() != "identity"
    ]
    for coding in reversed(codings):
        decoded = _decompress(payload, coding)
        if decoded is None:
            break
        payload = decoded
    return payload


class _Resolver:
    """Finds the original response of a revisit within one directory (the "small index")."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.by_id: dict[str, tuple[str, int]] = {}
        self.by_payload: dict[str, tuple[str, int]] = {}
        self._full_index = False
        self._cache: OrderedDict[tuple[str, int], _Record] = OrderedDict()

    def remember(self, filename: str, record: _Record) -> None:
        if record.rec_type == "response":
            self.by_id[record.record_id] = (filename, record.offset)
            self.by_payload[record.payload_sha256] = (filename, record.offset)
            self._cache[(filename, record.offset)] = record
            self._trim()

    def _trim(self) -> None:
        while len(self._cache) > 16:
            self._cache.popitem(last=False)

    def _load(self, filename: str, offset: int) -> _Record | None:
        key = (filename, offset)
        record = self._cache.get(key)
        if record is None:
            try:
                record = _load_record(self.directory, filename, offset)
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
                for item in _scan_file(path):
                    if isinstance(item, _Record) and item.rec_type == "response":
                        self.by_id.setdefault(item.record_id, (path.name, item.offset))
                        self.by_payload.setdefault(item.payload_sha256, (path.name, item.offset))

    def resolve(self, revisit: _Record) -> tuple[str, _Record]:
        """(filename, original record) or _Damaged."""
        headers = revisit.warc_headers
        refers_to = headers.get_header("WARC-Refers-To")
        wanted_hex = digest_to_hex(revisit.payload_digest)
        algo = revisit.payload_digest.partition(":")[0].strip().lower() or "sha256"

        def payload_hex(record: _Record) -> str | None:
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
                raise _Damaged(
                    f"revisit original {original.record_id} has another payload than "
                    f"{revisit.payload_digest}"
                )
            return filename, original
        what = refers_to or revisit.payload_digest or "(no reference)"
        raise _Damaged(f"original record of revisit not found: {what}")


def _capture(filename: str, record: _Record, resolver: _Resolver) -> Capture:
    http = record.http_headers
    if http is None:
        raise _Damaged(f"{record.rec_type} record without HTTP headers")
    try:
        status = int(http.get_statuscode())
    except ValueError:
        raise _Damaged(f"bad HTTP status line: {http.statusline!r}") from None
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
    body = _decode_body(payload, payload_headers)
    payload_hex = stored_hex if body is payload else hashlib.sha256(body).hexdigest()
    try:
        fetched_at = _parse_warc_date(record.date)
    except Exception:  # warcio raises assorted errors on bad dates
        raise _Damaged(f"bad WARC-Date: {record.date!r}") from None
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
            for item in _scan_file(path):
                if isinstance(item, _Damage):
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
                except _Damaged as exc:
                    report(name, item.offset, exc.reason)
                    continue
                yield capture
        except OSError as exc:
            report(name, 0, f"cannot read file: {exc}")


def read_record(directory: str | os.PathLike, location: Any) -> Capture:
    """The capture at ``location`` (a WarcLocation, a (filename, offset) pair or a DB row with
    ``warc_filename``/``warc_offset``) of a response or revisit record; a revisit's body is
    resolved through ``WARC-Refers-To`` within ``directory``. Raises :class:`WarcReadError`."""
    directory = Path(directory)
    filename, offset = _location_key(location)
    record = _load_record(directory, filename, offset)
    if record.rec_type not in ("response", "revisit"):
        raise WarcReadError(filename, offset, f"a {record.rec_type} record, not a capture")
    try:
        return _capture(filename, record, _Resolver(directory))
    except _Damaged as exc:
        raise WarcReadError(filename, offset, exc.reason) from None


# --------------------------------------------------------------------------------------------
# repair and checks


def _end_of_last_record(buf) -> int | None:
    """End offset of the last complete, valid record (searching backwards), else None."""
    end = len(buf)
    while True:
        found = buf.rfind(GZIP_MAGIC, 0, end)
        if found < 0:
            return None
        try:
            record = _read_at(buf, found)
        except _Damaged:
            end = found + len(GZIP_MAGIC) - 1  # next search: members starting before `found`
            continue
        return record.offset + record.length


def _is_crash_tail(buf, pos: int) -> bool:
    """Whether the bytes from ``pos`` are what a crash leaves: a cut-off gzip member, or data
    that is no gzip at all (e.g. the zeros a power loss can leave). A *complete* gzip member
    that merely fails to parse is not removed: it was written whole, by someone."""
    try:
        _inflate_member(buf, pos)
    except _Damaged:
        return True
    return False


def _starts_with_partial_warc(buf) -> bool:
    """Whether the file is nothing but the beginning of one cut-off WARC record."""
    try:
        _inflate_member(buf, 0)
    except _Damaged as exc:
        if not exc.truncated:
            return False
    else:
        return False
    try:
        start = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(bytes(buf[:_CHUNK]))
    except zlib.error:
        return False
    return start[:5] == b"WARC/"[: len(start[:5])]


def repair_tail(path: str | os.PathLike, *, keep_removed: bool = False) -> int:
    """Truncate ``path`` after its last complete record; returns the number of bytes removed.

    A clean file is left untouched (0). A file with no complete record is emptied only if it
    begins with a cut-off WARC record (a crash while writing the first record); anything else
    that is not a WARC file is left alone (0). With ``keep_removed`` the removed bytes are saved
    as ``<name>.removed-tail-<offset>`` next to the file. Raises :class:`WarcFileBusy` if a live
    writer holds the file. Damage in the middle of a file is not touched (readers skip it).
    """
    path = Path(path)
    with open(path, "r+b") as fh:
        if not _lock(fh, exclusive=True):
            raise WarcFileBusy(f"{path} is being written by a live writer")
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            end = _end_of_last_record(buf)
            if end is None:
                end = 0 if _starts_with_partial_warc(buf) else size
            elif end < size and not _is_crash_tail(buf, end):
                logger.warning(
                    "WARC %s: unreadable complete gzip member at %d left alone", path, end
                )
                end = size
            tail = bytes(buf[end:]) if keep_removed and end < size else b""
        if end >= size:
            return 0
        if tail:
            side = path.with_name(f"{path.name}.removed-tail-{end}")
            side.write_bytes(tail)
        fh.truncate(end)
        fh.flush()
        os.fsync(fh.fileno())
    logger.warning("WARC %s: removed %d bytes after offset %d", path, size - end, end)
    return size - end


def repair_directory(directory: str | os.PathLike, *, keep_removed: bool = True) -> dict[str, int]:
    """:func:`repair_tail` on every ``*.warc.gz`` no live writer holds; {name: bytes removed}."""
    removed: dict[str, int] = {}
    for path in warc_files(directory):
        try:
            count = repair_tail(path, keep_removed=keep_removed)
        except WarcFileBusy:
            continue
        except OSError as exc:
            logger.warning("WARC %s: cannot repair: %s", path, exc)
            continue
        if count:
            removed[path.name] = count
    return removed


def check_file(path: str | os.PathLike) -> list[str]:
    """Problems of one WARC file, empty when it is sound.

    Runs warcio's own checker logic (``ArchiveIterator(check_digests=True)``, every record read
    to the end, digest problems collected, warcio's stderr warnings captured), then this module's
    structural scan, which also catches what warcio lets pass silently: truncated or corrupt
    gzip members, trailing garbage, records not one-per-member, revisit block digests, and a
    file that does not begin with a warcinfo record.
    """
    path = Path(path)
    problems: list[str] = []
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            with open(path, "rb") as fh:
                iterator = ArchiveIterator(fh, check_digests=True)
                for record in iterator:
                    stream = record.content_stream()
                    while stream.read(1 << 20):
                        pass
                    checker = record.digest_checker
                    if checker is not None and checker.passed is False:
                        offset = iterator.get_record_offset()
                        record_id = record.rec_headers.get_header("WARC-Record-ID")
                        for problem in checker.problems:
                            problems.append(f"warcio: offset {offset} {record_id}: {problem}")
        except Exception as exc:  # any failure of warcio is a finding
            first_line = (str(exc).strip().splitlines() or [""])[0]
            problems.append(f"warcio: {type(exc).__name__}: {first_line}")
    for line in stderr.getvalue().splitlines():
        if line.strip():
            problems.append(f"warcio: {line.strip()}")
    first = True
    try:
        for item in _scan_file(path):
            if isinstance(item, _Damage):
                problems.append(f"offset {item.offset}: {item.reason}")
            elif first and item.rec_type != "warcinfo":
                problems.append(f"offset {item.offset}: file does not begin with a warcinfo record")
            first = False
    except OSError as exc:
        problems.append(f"cannot read file: {exc}")
    return problems


# --------------------------------------------------------------------------------------------
# command line


def _expand(paths: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        out.extend(warc_files(p) if p.is_dir() else [p])
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kremlin_archive.archive")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, help_text in (
        ("check", "list problems of WARC files (or of every *.warc.gz in a directory)"),
        ("repair", "truncate incomplete records at the end of files"),
        ("ls", "one JSON line per capture of a directory"),
    ):
        sub.add_parser(name, help=help_text).add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    status = 0
    if args.cmd == "check":
        for path in _expand(args.paths):
            problems = check_file(path)
            print(f"{path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
            for problem in problems:
                print(f"  {problem}")
            status |= bool(problems)
    elif args.cmd == "repair":
        for path in _expand(args.paths):
            print(f"{path}: {repair_tail(path, keep_removed=True)} bytes removed")
    else:
        for directory in args.paths:

            def report(filename: str, offset: int, reason: str) -> None:
                nonlocal status
                status = 1
                print(f"ERROR {filename}@{offset}: {reason}", file=sys.stderr)

            for cap in iter_captures(directory, on_error=report):
                row = {
                    "file": cap.location.filename,
                    "offset": cap.location.offset,
                    "type": cap.record_type,
                    "status": cap.status,
                    "url": cap.url,
                    "date": cap.fetched_at.isoformat(),
                    "sha256": cap.payload_sha256,
                    "bytes": len(cap.body),
                }
                print(json.dumps(row, ensure_ascii=False))
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
