"""Repair and checks: cut off the partial record a crash leaves at the end of a file, and list
the problems of a file (warcio's checker plus this package's structural scan)."""

from __future__ import annotations

import contextlib
import io
import logging
import mmap
import os
import zlib
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from .records import (
    CHUNK,
    GZIP_MAGIC,
    Damage,
    Damaged,
    WarcFileBusy,
    inflate_member,
    lock_file,
    read_at,
    scan_file,
    warc_files,
)

logger = logging.getLogger(__name__)


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
            record = read_at(buf, found)
        except Damaged:
            end = found + len(GZIP_MAGIC) - 1  # next search: members starting before `found`
            continue
        return record.offset + record.length


def _is_crash_tail(buf, pos: int) -> bool:
    """Whether the bytes from ``pos`` are what a crash leaves: a cut-off gzip member, or data
    that is no gzip at all (e.g. the zeros a power loss can leave). A *complete* gzip member
    that merely fails to parse is not removed: it was written whole, by someone."""
    try:
        inflate_member(buf, pos)
    except Damaged:
        return True
    return False


def _starts_with_partial_warc(buf) -> bool:
    """Whether the file is nothing but the beginning of one cut-off WARC record."""
    try:
        inflate_member(buf, 0)
    except Damaged as exc:
        if not exc.truncated:
            return False
    else:
        return False
    try:
        start = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(bytes(buf[:CHUNK]))
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
        if not lock_file(fh, exclusive=True):
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
        for item in scan_file(path):
            if isinstance(item, Damage):
                problems.append(f"offset {item.offset}: {item.reason}")
            elif first and item.rec_type != "warcinfo":
                problems.append(f"offset {item.offset}: file does not begin with a warcinfo record")
            first = False
    except OSError as exc:
        problems.append(f"cannot read file: {exc}")
    return problems
