"""Writing: every exchange of a run as a response (or revisit) + request pair, in size-rotated
files that each begin with a warcinfo record (see the package docstring for the format)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.utils import Digester
from warcio.warcwriter import WARCWriter

from .records import (
    CONFORMS_TO,
    CONTENT_LICENSE,
    CONTENT_NOTE,
    HINT_FILENAME,
    HINT_OFFSET,
    NO_BODY_STATUSES,
    ORIG_HEADER_PREFIX,
    WARC_SUFFIX,
    WARC_VERSION,
    WarcError,
    WarcFileBusy,
    WarcLocation,
    WarcReadError,
    decode_body,
    field_of,
    fsync_dir,
    header_bytes,
    header_str,
    load_record,
    location_key,
    lock_file,
    looks_still_encoded,
    sha256_digest,
    warc_date,
)
from .repair import repair_directory

logger = logging.getLogger(__name__)


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
    pairs = [(header_str(name), value) for name, value in headers]
    encodings = [header_str(value) for name, value in pairs if name.lower() == "content-encoding"]
    keep_encoding = looks_still_encoded(body, encodings)
    bodiless = not body and (
        method.upper() == "HEAD" or 100 <= status < 200 or status in NO_BODY_STATUSES
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
            if header_str(value).strip() != length:
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
        super().__init__(statusline, [(n, header_str(v)) for n, v in headers], protocol=protocol)
        lines = [header_bytes(first_line)]
        lines += [header_bytes(n) + b": " + header_bytes(v) for n, v in headers]
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


class WarcWriter:
    """Writes exchanges into size-rotated WARC files of one run (see the module docstring).

    >>> with WarcWriter("data/warc", run_id="20240101T000000Z-ab12cd34") as warc:  # doctest: +SKIP
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

    def open(self) -> WarcWriter:
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

    def __enter__(self) -> WarcWriter:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def current_filename(self) -> str | None:
        return self._filename

    def __repr__(self) -> str:
        return (
            f"WarcWriter({str(self.directory)!r}, run_id={self.run_id!r}, file={self._filename!r})"
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
        if not lock_file(fh, exclusive=True):  # pragma: no cover -- a fresh file nobody knows yet
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
        info.update({k: header_str(str(v)) for k, v in self.extra_warcinfo.items()})
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
        fsync_dir(self.directory)
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
        date = warc_date(fetched_at)
        stored_hex, payload_digest = sha256_digest(body)
        response_id = _new_record_id()
        request_id = _new_record_id()

        stored_headers = consistent_response_headers(
            response_headers, body, status=status, method=method
        )
        response_http = _RawHTTPHeaders(f"{protocol} {status} {reason}".rstrip(), stored_headers)
        decoded_hex = stored_hex  # differs only for a body that is still content-encoded
        if response_http.get_header("Content-Encoding"):
            decoded_hex = hashlib.sha256(decode_body(body, response_http)).hexdigest()

        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        req_pairs = [(header_str(n), v) for n, v in request_headers]
        if parts.netloc and not any(n.lower() == "host" for n, _ in req_pairs):
            req_pairs.insert(0, ("Host", parts.netloc))
        request_http = _RawHTTPHeaders(f"{method} {target} {protocol}", req_pairs)

        with self._lock:
            if not self._is_open:
                raise WarcError("WarcWriter is not open")
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
            filename, offset = location_key(revisit_of)
        except (TypeError, ValueError):
            logger.warning("revisit_of is not a WARC location: %r; writing a response", revisit_of)
            return None
        declared = field_of(revisit_of, "payload_sha256")
        if declared and str(declared).lower() != decoded_hex:
            logger.info("revisit_of %s@%d: other payload; writing a response", filename, offset)
            return None
        ref = self._refs.get((filename, offset))
        if ref is None:
            try:
                record = load_record(self.directory, filename, offset)
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
        wanted_id = field_of(revisit_of, "record_id", "warc_record_id")
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
