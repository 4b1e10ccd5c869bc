"""The WARC files as this project writes and reads them: format constants, record locations,
digests, header helpers, and reading one record per gzip member (the scan that readers, the
writer's revisit check and repair share). The package docstring (`kremlin_archive.warc`)
describes the format as a whole.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import io
import logging
import mmap
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warcio.bufferedreaders import BufferedReader, ChunkedDataReader
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecordLoader
from warcio.statusandheaders import (
    StatusAndHeaders,
    StatusAndHeadersParser,
    StatusAndHeadersParserException,
)
from warcio.timeutils import datetime_to_iso_date, iso_date_to_datetime

try:  # advisory locks; POSIX only (without them a live file is merely not protected)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

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
CHUNK = 1 << 16
MAX_RECORD = 512 << 20  # a decompressed record larger than this is treated as damage
NO_BODY_STATUSES = frozenset({204, 304})

OnError = Callable[[str, int, str], None]


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


def field_of(obj: Any, *names: str) -> Any:
    """First present attribute/key of ``obj`` among ``names`` (WarcLocation or a DB row)."""
    for name in names:
        if isinstance(obj, Mapping):
            if obj.get(name) is not None:
                return obj[name]
        elif getattr(obj, name, None) is not None:
            return getattr(obj, name)
    return None


def location_key(location: Any) -> tuple[str, int]:
    if isinstance(location, tuple | list) and len(location) == 2:
        filename, offset = location
    else:
        filename = field_of(location, "filename", "warc_filename")
        offset = field_of(location, "offset", "warc_offset")
    if filename is None or offset is None:
        raise TypeError(f"not a WARC location: {location!r}")
    return str(filename), int(offset)


def safe_path(directory: Path, filename: str) -> Path:
    """``directory/filename``, refusing anything but a plain file name (no traversal)."""
    name = Path(filename)
    if name.is_absolute() or len(name.parts) != 1 or name.name in ("", ".", ".."):
        raise WarcReadError(filename, 0, "WARC file name must be a plain name in the directory")
    return directory / name


def warc_date(moment: datetime) -> str:
    """WARC/1.1 date: UTC with microseconds when there are any. Naive datetimes mean UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return datetime_to_iso_date(moment, use_micros=True)


def parse_warc_date(value: str) -> datetime:
    return iso_date_to_datetime(value, tz_aware=True)


def header_bytes(value: str | bytes) -> bytes:
    """Header text as bytes on the wire: Latin-1 round-trips Scrapy's decoded bytes."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raw = value.encode("utf-8")
    return raw.replace(b"\r", b" ").replace(b"\n", b" ")


def header_str(value: str | bytes) -> str:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")
    return value.replace("\r", " ").replace("\n", " ")


def looks_still_encoded(body: bytes, encodings: list[str]) -> bool:
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


def lock_file(fh, *, exclusive: bool) -> bool:
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
            return not lock_file(fh, exclusive=False)
    except OSError:
        return False


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------------------------
# reading: one gzip member = one record


class Damaged(Exception):
    def __init__(self, reason: str, *, truncated: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.truncated = truncated  # the data ran out before the member ended


@dataclass
class Record:
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
class Damage:
    offset: int
    length: int
    reason: str


def inflate_member(buf, pos: int) -> tuple[bytes, int]:
    """Decompress the gzip member at ``pos``; returns (data, end offset)."""
    size = len(buf)
    head = bytes(buf[pos : pos + 3])
    if head != GZIP_MAGIC:
        if size - pos < 3 and GZIP_MAGIC.startswith(head):
            raise Damaged("gzip member cut off at end of file", truncated=True)
        raise Damaged(f"no gzip member here (bytes {head.hex(' ') or 'none'})")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    pieces = []
    total = 0
    i = pos
    while not inflater.eof:
        if i >= size:
            raise Damaged("gzip member cut off at end of file", truncated=True)
        chunk = buf[i : i + CHUNK]
        i += len(chunk)
        try:
            piece = inflater.decompress(chunk)
        except zlib.error as exc:
            raise Damaged(f"corrupt gzip data ({exc})") from None
        total += len(piece)
        if total > MAX_RECORD:
            raise Damaged("gzip member larger than any record this reader accepts")
        pieces.append(piece)
    return b"".join(pieces), i - len(inflater.unused_data)


def check_block_digest(warc_headers: StatusAndHeaders, block: bytes) -> None:
    declared = warc_headers.get_header("WARC-Block-Digest")
    if not declared:
        return
    algo = declared.partition(":")[0].strip().lower()
    try:
        actual = hashlib.new(algo, block).hexdigest()
    except ValueError:
        return
    if digest_to_hex(declared) != actual:
        raise Damaged(f"block digest failed: {declared}")


_LOADER = ArcWarcRecordLoader(verify_http=False, arc2warc=False)


def parse_record(data: bytes, offset: int, length: int) -> Record:
    """Parse one decompressed member as exactly one WARC record, verifying its digests.

    The records this project writes (and most others) take `_parse_plain_record`: warcio's
    own header parsers on the bytes in memory and one hash per digest, with none of warcio's
    stream layers (they were most of the time of reading a file). Anything that path is not
    sure of -- a digest that does not match or is written another way, odd lengths, an error
    -- is parsed again by warcio's record loader (`_parse_record_by_warcio`), so a record is
    accepted, refused and described exactly as warcio does."""
    try:
        record = _parse_plain_record(data, offset, length)
    except Exception:  # whatever it is, warcio's loader gives the verdict and the reason
        record = None
    return record or _parse_record_by_warcio(data, offset, length)


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_BASE32_AS_DIGITS = str.maketrans(_BASE32, "0123456789abcdefghijklmnopqrstuv")


def _is_base32_of(value: str, raw: bytes) -> bool:
    """Whether ``value`` is exactly ``base64.b32encode(raw)`` (as text), without building it
    (`base64.b32encode` is Python code, a good part of the time of reading a record)."""
    chars = -(-len(raw) * 8 // 5)  # significant characters, then "=" up to a multiple of 8
    if len(value) != -(-chars // 8) * 8 or value[chars:] != "=" * (len(value) - chars):
        return False
    digits = value[:chars]
    if not digits or digits.strip(_BASE32):  # only the alphabet (int() would take other digits too)
        return False
    return int(digits.translate(_BASE32_AS_DIGITS), 32) == int.from_bytes(raw, "big") << (
        chars * 5 - len(raw) * 8
    )


def _digest_matches(declared: str, data: bytes | memoryview) -> tuple[bool, Any]:
    """(whether ``declared``, "algo:BASE32" as warcio writes it, is the digest of ``data``,
    the hash object); False for any other notation (warcio then decides)."""
    algo, _, value = declared.partition(":")
    hasher = hashlib.new(algo, data)
    return _is_base32_of(value, hasher.digest()), hasher


def _plain_headers(
    data: bytes, pos: int, limit: int, prefixes: list[str] | None
) -> tuple[StatusAndHeaders, int] | None:
    """`warcio.statusandheaders.StatusAndHeadersParser.parse` over ``data[pos:limit]``
    (``prefixes``: the status lines it verifies, None for none) for the usual block -- UTF-8,
    CRLF line ends, a status line and "Name: value" lines, none of them blank or continued,
    up to an empty line: the same StatusAndHeaders, and where the headers end. None for any
    other block, which warcio's loader then reads (`parse_record`): every record of the
    project's own files has the usual shape."""
    blank = data.find(b"\r\n\r\n", pos, limit)
    if blank < 0:
        return None
    try:
        text = data[pos:blank].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\n" in text.replace("\r\n", "") or "\r\n " in text or "\r\n\t" in text:
        return None
    lines = [line.rstrip() for line in text.split("\r\n")]
    if not all(lines):
        return None
    statusline = lines[0]
    if prefixes is not None:
        protocol_status = StatusAndHeadersParser.split_prefix(statusline, prefixes)
        if not protocol_status:
            return None
    else:
        protocol_status = statusline.split(" ", 1)
    headers = [
        (name.rstrip(" \t"), value.lstrip())
        for name, colon, value in (line.partition(":") for line in lines[1:])
        if colon
    ]
    status = protocol_status[1].strip() if len(protocol_status) > 1 else ""
    parsed = StatusAndHeaders(
        statusline=status, headers=headers, protocol=protocol_status[0], total_len=len(text) + 4
    )
    return parsed, blank + 4


def _http_headers(
    rec_type: str | None, uri: str, data: bytes, start: int, end: int
) -> tuple[StatusAndHeaders | None, int] | None:
    """`ArcWarcRecordLoader.load_http_headers` (verify_http=False) for the block
    ``data[start:end]`` (not empty): the HTTP headers, if any, and where the payload starts;
    None when the headers are not of the usual shape (`_plain_headers`)."""
    if rec_type not in _LOADER.HTTP_RECORDS or not uri.startswith(_LOADER.HTTP_SCHEMES):
        return None, start
    return _plain_headers(data, start, end, None)


def _parse_plain_record(data: bytes, offset: int, length: int) -> Record | None:
    """`parse_record` for a well-formed record whose digests are in warcio's notation and
    match; None for anything else."""
    head_end = data.find(b"\r\n\r\n")
    if not data.startswith(b"WARC/") or head_end < 0:
        return None
    plain = _plain_headers(data, 0, len(data), _LOADER.WARC_TYPES)
    if plain is None or plain[1] != head_end + 4:
        return None
    rec_headers, block_start = plain
    fields: dict[str, str] = {}  # get_header: the first of each name, any case
    for name, value in rec_headers.headers:
        fields.setdefault(name.lower(), value)
    rec_type = fields.get("warc-type")
    uri = fields.get("warc-target-uri")
    if uri is not None and (uri.startswith("<") or " " in uri):  # warcio rewrites it
        return None
    declared = int(fields["content-length"])
    block_end = block_start + declared
    if declared <= 0 or len(data) < block_end or data[block_end:].strip(b"\r\n"):
        return None
    http = _http_headers(rec_type, uri, data, block_start, block_end)
    if http is None:
        return None
    http_headers, payload_start = http
    payload = data[payload_start:block_end]
    payload_sha256 = ""
    if rec_type == "revisit":  # warcio does not verify revisits; their block is ours
        check_block_digest(rec_headers, data[block_start:block_end])
    else:
        block_digest = fields.get("warc-block-digest")
        payload_digest = fields.get("warc-payload-digest")
        if "warc-segment-number" in fields:
            payload_digest = None
        if block_digest and not _digest_matches(block_digest, data[block_start:block_end])[0]:
            return None
        if payload_digest:
            matches, hasher = _digest_matches(payload_digest, payload)
            if not matches:
                return None
            if hasher.name == "sha256":
                payload_sha256 = hasher.hexdigest()
        payload_sha256 = payload_sha256 or hashlib.sha256(payload).hexdigest()
    return Record(
        offset=offset,
        length=length,
        rec_type=rec_type or "",
        warc_headers=rec_headers,
        http_headers=http_headers,
        payload=payload if rec_type != "revisit" else b"",
        payload_sha256=payload_sha256,
    )


def _parse_record_by_warcio(data: bytes, offset: int, length: int) -> Record:
    """`parse_record` by warcio's record loader and its digest-verifying streams."""
    if not data.startswith(b"WARC/"):
        raise Damaged("gzip member does not hold a WARC record")
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        raise Damaged("WARC header block is not terminated")
    loader = ArcWarcRecordLoader(verify_http=False, arc2warc=False)
    try:
        record = loader.parse_record_stream(
            BufferedReader(io.BytesIO(data)), known_format="warc", check_digests=True
        )
        declared = int(record.rec_headers.get_header("Content-Length"))
        block_start = head_end + 4
        if declared < 0 or len(data) < block_start + declared:
            raise Damaged("record shorter than its Content-Length")
        if data[block_start + declared :].strip(b"\r\n"):
            raise Damaged("data after the record inside its gzip member")
        payload = record.raw_stream.read()
    except Damaged:
        raise
    except (
        ArchiveLoadFailed,
        StatusAndHeadersParserException,
        EOFError,
        ValueError,
        TypeError,
    ) as exc:
        raise Damaged(f"unparsable WARC record ({exc})") from None
    checker = record.digest_checker
    if checker is not None and checker.passed is False:
        raise Damaged("; ".join(checker.problems) or "digest failed")
    if record.rec_type == "revisit":  # warcio does not verify revisits; their block is ours
        check_block_digest(record.rec_headers, data[block_start : block_start + declared])
    return Record(
        offset=offset,
        length=length,
        rec_type=record.rec_type or "",
        warc_headers=record.rec_headers,
        http_headers=record.http_headers,
        payload=payload if record.rec_type != "revisit" else b"",
        payload_sha256=hashlib.sha256(payload).hexdigest() if record.rec_type != "revisit" else "",
    )


def read_at(buf, pos: int) -> Record:
    data, end = inflate_member(buf, pos)
    return parse_record(data, pos, end - pos)


def resync(buf, start: int) -> Record | None:
    """The first readable record whose gzip member starts at or after ``start``."""
    while True:
        found = buf.find(GZIP_MAGIC, start)
        if found < 0:
            return None
        try:
            return read_at(buf, found)
        except Damaged:
            start = found + 1


def scan_buffer(buf) -> Iterator[Record | Damage]:
    """Every record of a file, and one Damage per unreadable stretch."""
    size = len(buf)
    if size == 0:
        yield Damage(0, 0, "empty file")
        return
    pos = 0
    while pos < size:
        try:
            record = read_at(buf, pos)
        except Damaged as exc:
            error = exc
        else:
            yield record
            pos = record.offset + record.length
            continue
        following = resync(buf, pos + 1)
        if following is None:
            yield Damage(pos, size - pos, tail_reason(buf, pos, error))
            return
        skipped = following.offset - pos
        yield Damage(
            pos,
            skipped,
            f"damaged record: {error.reason}; skipped {skipped} bytes "
            f"to the next readable record at offset {following.offset}",
        )
        yield following
        pos = following.offset + following.length


def tail_reason(buf, pos: int, error: Damaged) -> str:
    rest = len(buf) - pos
    if pos == 0 and bytes(buf[:3]) != GZIP_MAGIC:
        kind = "an uncompressed WARC" if bytes(buf[:5]) == b"WARC/" else "not a WARC file"
        return f"{kind}: not gzip-compressed WARC records ({error.reason})"
    if error.truncated:
        return f"incomplete record at end of file ({rest} bytes; writer crashed or still writing)"
    return f"unreadable data at end of file ({rest} bytes): {error.reason}"


@contextlib.contextmanager
def mapped(path: Path) -> Iterator[Any]:
    """The file's bytes (mmap; b"" when empty)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            yield mm


def scan_file(path: Path) -> Iterator[Record | Damage]:
    with mapped(path) as buf:
        yield from scan_buffer(buf)


def load_record(directory: Path, filename: str, offset: int) -> Record:
    """The record whose gzip member starts at ``offset`` of ``directory/filename``."""
    path = safe_path(Path(directory), filename)
    try:
        with mapped(path) as buf:
            if offset < 0 or offset >= len(buf):
                raise WarcReadError(filename, offset, "offset outside the file")
            return read_at(buf, offset)
    except Damaged as exc:
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


def decompress(data: bytes, coding: str) -> bytes | None:
    """One Content-Encoding undone, or None if the data is not (wholly) encoded that way."""
    try:
        if coding in ("gzip", "x-gzip"):
            try:
                return gzip.decompress(data)  # every member, and the whole of each
            except (OSError, EOFError):
                return zlib.decompress(data)  # zlib data labelled gzip, as some servers send
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
    except Exception:  # zlib.error, EOFError, brotli.error: not encoded after all, or cut off
        return None
    return None


def decode_content(data: bytes, content_encoding: str | None) -> bytes:
    """`data` with its Content-Encoding (a comma-separated list, applied in order) undone: what
    a parser reads. Where a coding does not decode, the data is returned as it was before it."""
    codings = [
        c.strip().lower()
        for c in (content_encoding or "").split(",")
        if c.strip() and c.strip().lower() != "identity"
    ]
    for coding in reversed(codings):
        decoded = decompress(data, coding)
        if decoded is None:
            break
        data = decoded
    return data


def decode_body(payload: bytes, http_headers: StatusAndHeaders | None) -> bytes:
    """Undo Transfer-/Content-Encoding left in a stored payload (foreign or still-encoded
    records; this package's writer normally stores decoded bodies). Undecodable data is
    returned as stored."""
    if http_headers is None:
        return payload
    transfer = (http_headers.get_header("transfer-encoding") or "").strip().lower()
    if transfer == "chunked":
        payload = ChunkedDataReader(io.BytesIO(payload)).read()  # falls back to the raw bytes
    return decode_content(payload, http_headers.get_header("content-encoding"))
