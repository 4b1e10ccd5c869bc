"""WARC files of every HTTP exchange: writing, reading, revisits, crash repair (warcio).

Everything the crawler receives is kept as ISO 28500 WARC records so that the database can be
rebuilt (``reparse``) without touching the network. This package is plain Python on top of warcio;
the Scrapy glue (a middleware that calls :meth:`WarcWriter.write_exchange` for every response
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
    :meth:`WarcWriter.open` runs it on every file in the directory that no live writer holds
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

Modules
    ``records`` (format constants, locations, digests, one record per gzip member),
    ``writer`` (:class:`WarcWriter`), ``reader`` (:func:`iter_captures`, :func:`read_record`,
    revisit resolution), ``repair`` (:func:`repair_tail`, :func:`check_file`).

Command line (for quick inspection): ``kremlin-archive warc check|repair|ls PATH...``
"""

from .reader import Capture, RecordReader, iter_captures, read_record
from .records import (
    CONTENT_NOTE,
    REVISIT_PROFILE,
    WARC_VERSION,
    WarcError,
    WarcFileBusy,
    WarcLocation,
    WarcReadError,
    decode_content,
    digest_to_hex,
    warc_files,
)
from .repair import check_file, repair_directory, repair_tail
from .writer import WarcWriter, consistent_response_headers

__all__ = [
    "CONTENT_NOTE",
    "REVISIT_PROFILE",
    "WARC_VERSION",
    "Capture",
    "RecordReader",
    "WarcError",
    "WarcFileBusy",
    "WarcLocation",
    "WarcReadError",
    "WarcWriter",
    "check_file",
    "consistent_response_headers",
    "decode_content",
    "digest_to_hex",
    "iter_captures",
    "read_record",
    "repair_directory",
    "repair_tail",
    "warc_files",
]
