"""kremlin_archive.warc: WARC writing (request/response pairs, revisits, rotation, consistent
headers) checked with warcio's own reader and CLI; reading that survives crashes and damage;
repair of a cut-off tail. Payloads are real pages from ../shared/kremlin-html."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import KREMLIN_HTML
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from kremlin_archive.warc import (
    CONTENT_NOTE,
    REVISIT_PROFILE,
    RecordReader,
    WarcError,
    WarcFileBusy,
    WarcLocation,
    WarcReadError,
    WarcWriter,
    check_file,
    consistent_response_headers,
    digest_to_hex,
    iter_captures,
    read_record,
    repair_tail,
    warc_files,
)

WARCIO = [sys.executable, "-m", "warcio.cli"]
RUN_ID = "20240301T120000Z-0a1b2c3d"
T0 = dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
EVENT = "http://en.kremlin.ru/events/president/news/{}"
UA = "Mozilla/5.0 (compatible; kremlin-archive/0.1)"
HTML = [("Content-Type", "text/html; charset=UTF-8"), ("Server", "nginx")]


def page(name: str) -> bytes:
    return (KREMLIN_HTML / name).read_bytes()


def exchange(warc: WarcWriter, url: str, body: bytes, *, status: int = 200, headers=None, **kw):
    kw.setdefault("fetched_at", T0)
    return warc.write_exchange(
        url=url,
        request_headers=[("User-Agent", UA), ("Accept", "text/html")],
        status=status,
        reason="",
        response_headers=HTML if headers is None else headers,
        body=body,
        remote_ip="95.173.136.70",
        **kw,
    )


def records_at(path: Path, offset: int):
    """warcio's view of the record at `offset` (the file opened and seeked, as a replay would)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        iterator = ArchiveIterator(fh)
        record = next(iterator)
        body = record.content_stream().read()
        return record, body, iterator.get_record_length()


def warcio_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*WARCIO, *args], capture_output=True, text=True, timeout=60)


def collect(directory: Path):
    errors: list[tuple[str, int, str]] = []
    captures = list(iter_captures(directory, on_error=lambda f, o, r: errors.append((f, o, r))))
    return captures, errors


@pytest.fixture
def sample(tmp_path):
    """One file with the four kinds of answers the crawler meets."""
    directory = tmp_path / "warc"
    news = page("en_news_63017.html")
    with WarcWriter(directory, run_id=RUN_ID) as warc:
        written = {
            "200": (news, exchange(warc, EVENT.format(63017), news)),
            "404": (
                b"<html><body>Not found</body></html>",
                exchange(
                    warc, EVENT.format(99999999), b"<html><body>Not found</body></html>", status=404
                ),
            ),
            "301": (
                b"",
                exchange(
                    warc,
                    "http://kremlin.ru/events/president/news/63017/",
                    b"",
                    status=301,
                    headers=[
                        ("Location", "http://kremlin.ru/events/president/news/63017"),
                        ("Content-Length", "0"),
                    ],
                ),
            ),
            "503": (
                b"Service Unavailable",
                exchange(
                    warc,
                    EVENT.format(63123),
                    b"Service Unavailable",
                    status=503,
                    headers=[("Retry-After", "120"), ("Content-Type", "text/plain")],
                ),
            ),
        }
    return directory, written


# ---------------------------------------------------------------------------------------------
# writing, checked with warcio


def test_every_returned_location_is_a_warcio_readable_record(sample):
    directory, written = sample
    for status, (body, (response, request)) in written.items():
        path = directory / response.filename
        record, content, length = records_at(path, response.offset)
        headers = record.rec_headers
        assert record.rec_type == response.record_type == "response"
        assert headers.get_header("WARC-Record-ID") == response.record_id
        assert headers.get_header("WARC-Payload-Digest") == response.payload_digest
        assert response.payload_digest.startswith("sha256:")
        assert digest_to_hex(response.payload_digest) == response.payload_sha256
        assert response.payload_sha256 == hashlib.sha256(body).hexdigest()
        assert length == response.length
        assert headers.get_header("WARC-Date") == "2024-03-01T12:00:00.123456Z"
        assert headers.get_header("WARC-IP-Address") == "95.173.136.70"
        assert headers.get_header("WARC-Concurrent-To") == request.record_id
        assert record.http_headers.get_statuscode() == status
        assert content == body

        req, req_body, req_length = records_at(path, request.offset)
        assert req.rec_type == request.record_type == "request"
        assert req_length == request.length
        assert req.rec_headers.get_header("WARC-Record-ID") == request.record_id
        assert req.rec_headers.get_header("WARC-Concurrent-To") == response.record_id
        assert req.rec_headers.get_header("WARC-Target-URI") == headers.get_header(
            "WARC-Target-URI"
        )
        assert req.http_headers.protocol == "GET"
        assert req.http_headers.get_header("User-Agent") == UA
        assert req.http_headers.get_header("Host") in ("en.kremlin.ru", "kremlin.ru")
        assert req_body == b""

    redirect = written["301"][1][0]
    record, _, _ = records_at(directory / redirect.filename, redirect.offset)
    assert record.http_headers.statusline == "301 Moved Permanently"
    assert record.http_headers.get_header("Location").endswith("/news/63017")


def test_warcio_index_and_check_accept_the_files(sample):
    directory, written = sample
    files = warc_files(directory)
    assert [p.name for p in files] == [written["200"][1][0].filename]
    for path in files:
        checked = warcio_cli("check", "-v", str(path))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "fail" not in checked.stdout
        assert checked.stdout.count("digest pass") == 9  # warcinfo + 4 x (response, request)
        assert check_file(path) == []

        index = warcio_cli("index", "-f", "offset,length,warc-type,warc-record-id", str(path))
        assert index.returncode == 0, index.stderr
        rows = [json.loads(line) for line in index.stdout.splitlines()]
        assert rows[0]["warc-type"] == "warcinfo"
        by_id = {row["warc-record-id"]: row for row in rows}
        for _, (response, request) in written.values():
            for loc in (response, request):
                row = by_id[loc.record_id]
                assert (int(row["offset"]), int(row["length"])) == (loc.offset, loc.length)
                assert row["warc-type"] == loc.record_type
        # records tile the file: each starts where the previous ended
        ends = [int(r["offset"]) + int(r["length"]) for r in rows]
        assert [int(r["offset"]) for r in rows[1:]] == ends[:-1]
        assert ends[-1] == path.stat().st_size


def test_file_name_and_warcinfo(sample):
    directory, written = sample
    response = written["200"][1][0]
    assert re.fullmatch(rf"kremlin-\d{{14}}-{RUN_ID}-00001\.warc\.gz", response.filename)
    with open(directory / response.filename, "rb") as fh:
        record = next(iter(ArchiveIterator(fh)))
        assert record.rec_type == "warcinfo"
        assert record.rec_headers.protocol == "WARC/1.1"
        assert record.rec_headers.get_header("WARC-Filename") == response.filename
        info = record.content_stream().read().decode()
        warcinfo_id = record.rec_headers.get_header("WARC-Record-ID")
    assert f"description: {CONTENT_NOTE}" in info
    assert "software: kremlin-archive" in info
    assert f"isPartOf: {RUN_ID}" in info
    assert "format: WARC File Format 1.1" in info
    loaded, _, _ = records_at(directory / response.filename, response.offset)
    assert loaded.rec_headers.get_header("WARC-Warcinfo-ID") == warcinfo_id


def test_iter_captures_reads_everything_back(sample):
    directory, written = sample
    captures, errors = collect(directory)
    assert errors == []
    assert [c.status for c in captures] == [200, 404, 301, 503]
    for capture, (body, (response, _)) in zip(captures, written.values(), strict=True):
        assert capture.body == body
        assert capture.location == response
        assert capture.record_type == "response"
        assert capture.record_id == response.record_id
        assert capture.payload_sha256 == response.payload_sha256
        assert capture.fetched_at == T0
        assert capture.ip_address == "95.173.136.70"
        assert read_record(directory, response) == capture
        assert read_record(directory, (response.filename, response.offset)) == capture
    assert captures[2].header("location") == "http://kremlin.ru/events/president/news/63017"
    assert captures[3].header("Retry-After") == "120"
    assert captures[3].reason == "Service Unavailable"


def test_write_requires_open_and_close_is_idempotent(tmp_path):
    warc = WarcWriter(tmp_path, run_id=RUN_ID)
    with pytest.raises(WarcError):
        exchange(warc, EVENT.format(1), b"x")
    warc.open()
    assert warc_files(tmp_path) == []  # files are created with the first exchange
    exchange(warc, EVENT.format(1), b"x")
    warc.close()
    warc.close()
    assert len(warc_files(tmp_path)) == 1


def test_naive_fetch_time_is_utc_and_header_bytes_are_kept(tmp_path):
    # Scrapy decodes header bytes as Latin-1; the raw bytes go to the file, not %-escapes
    raw_disposition = 'attachment; filename="Указ.pdf"'.encode()
    headers = [
        ("Content-Type", "text/plain"),
        ("Content-Disposition", raw_disposition.decode("latin-1")),
    ]
    with WarcWriter(tmp_path, run_id=RUN_ID) as warc:
        response, _ = exchange(
            warc, EVENT.format(2), b"text", headers=headers, fetched_at=dt.datetime(2024, 3, 1, 12)
        )
    record, _, _ = records_at(tmp_path / response.filename, response.offset)
    assert record.rec_headers.get_header("WARC-Date") == "2024-03-01T12:00:00Z"
    data = gzip.decompress((tmp_path / response.filename).read_bytes())
    assert b"Content-Disposition: " + raw_disposition + b"\r\n" in data
    assert check_file(tmp_path / response.filename) == []


# ---------------------------------------------------------------------------------------------
# Content-Encoding that Scrapy already removed


def test_decoded_gzip_body_is_stored_with_consistent_headers(tmp_path):
    body = page("en_news_62843.html")
    original = [
        ("Content-Type", "text/html; charset=UTF-8"),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip.compress(body)))),
        ("Transfer-Encoding", "chunked"),
        ("Vary", "Accept-Encoding"),
    ]
    with WarcWriter(tmp_path, run_id=RUN_ID) as warc:
        response, _ = exchange(warc, EVENT.format(62843), body, headers=original)
    path = tmp_path / response.filename
    record, content, _ = records_at(path, response.offset)
    http = record.http_headers
    assert http.get_header("Content-Encoding") is None
    assert http.get_header("Transfer-Encoding") is None
    assert http.get_header("Content-Length") == str(len(body))
    assert http.get_header("X-Archive-Orig-Content-Encoding") == "gzip"
    assert http.get_header("X-Archive-Orig-Transfer-Encoding") == "chunked"
    assert http.get_header("X-Archive-Orig-Content-Length") == original[2][1]
    assert http.get_header("Vary") == "Accept-Encoding"
    assert content == body  # warcio's payload reader sees the decoded body, no decoding error
    assert warcio_cli("check", str(path)).returncode == 0
    assert check_file(path) == []
    (capture,), errors = collect(tmp_path)
    assert errors == [] and capture.body == body
    assert capture.payload_sha256 == hashlib.sha256(body).hexdigest() == response.payload_sha256


def test_header_adjustment_rules():
    body = b"<p>x</p>"
    same = consistent_response_headers([("Content-Length", "8")], body, status=200)
    assert same == [("Content-Length", "8")]  # nothing to record when it already agrees
    added = consistent_response_headers([("Content-Type", "text/html")], body, status=200)
    assert ("Content-Length", "8") in added
    still_gzip = gzip.compress(body)
    kept = consistent_response_headers(
        [("Content-Encoding", "gzip"), ("Content-Length", "3")], still_gzip, status=200
    )
    assert ("Content-Encoding", "gzip") in kept  # the body *is* gzip: keep the header true
    assert ("Content-Length", str(len(still_gzip))) in kept
    not_modified = consistent_response_headers([("Content-Length", "27251")], b"", status=304)
    assert not_modified == [("Content-Length", "27251")]
    head = consistent_response_headers([("Content-Length", "9")], b"", status=200, method="HEAD")
    assert head == [("Content-Length", "9")]


def test_still_encoded_body_reads_back_decoded(tmp_path):
    body = page("en_news_9269.html")
    encoded = gzip.compress(body)
    with WarcWriter(tmp_path, run_id=RUN_ID) as warc:
        exchange(warc, EVENT.format(9269), encoded, headers=[("Content-Encoding", "gzip")])
    (capture,), errors = collect(tmp_path)
    assert errors == []
    assert capture.body == body
    assert capture.header("Content-Encoding") == "gzip"
    # payload_sha256 is always of the decoded body; WARC-Payload-Digest covers the stored bytes
    assert capture.payload_sha256 == hashlib.sha256(body).hexdigest()
    assert digest_to_hex(capture.location.payload_digest) == hashlib.sha256(encoded).hexdigest()
    assert warcio_cli("check", str(warc_files(tmp_path)[0])).returncode == 0


# ---------------------------------------------------------------------------------------------
# revisits


def test_revisit_for_an_identical_payload(tmp_path):
    body = page("en_news_55882.html")
    url = EVENT.format(55882)
    later = T0 + dt.timedelta(days=3)
    with WarcWriter(tmp_path, run_id=RUN_ID) as warc:
        original, _ = exchange(warc, url, body)
        path = tmp_path / original.filename
        size_after_first = path.stat().st_size
        first_growth = size_after_first - original.offset
        db_row = {  # what the database hands back for the earlier capture
            "warc_filename": original.filename,
            "warc_offset": original.offset,
            "warc_record_id": original.record_id,
            "payload_sha256": original.payload_sha256,
            "fetched_at": "2024-03-01T12:00:00Z",
        }
        revisit, request = exchange(warc, url, body, fetched_at=later, revisit_of=db_row)
        revisit_growth = path.stat().st_size - size_after_first
    print(
        f"\nbody {len(body)} B; first capture +{first_growth} B; identical capture "
        f"+{revisit_growth} B ({revisit_growth / len(body):.1%} of the body, "
        f"{revisit_growth / first_growth:.1%} of the first capture)"
    )
    assert revisit_growth < 0.10 * len(body)
    assert revisit_growth < 0.25 * first_growth

    assert revisit.record_type == "revisit"
    assert revisit.payload_sha256 == original.payload_sha256
    assert revisit.payload_digest == original.payload_digest
    record, content, _ = records_at(path, revisit.offset)
    headers = record.rec_headers
    assert record.rec_type == "revisit"
    assert headers.get_header("WARC-Profile") == REVISIT_PROFILE
    assert headers.get_header("WARC-Refers-To") == original.record_id
    assert headers.get_header("WARC-Refers-To-Target-URI") == url
    assert headers.get_header("WARC-Refers-To-Date") == "2024-03-01T12:00:00.123456Z"
    assert headers.get_header("WARC-Payload-Digest") == original.payload_digest
    assert headers.get_header("WARC-Date") == "2024-03-04T12:00:00.123456Z"
    assert headers.get_header("WARC-Concurrent-To") == request.record_id
    assert record.http_headers.get_statuscode() == "200"
    assert content == b""  # HTTP headers only
    assert int(headers.get_header("Content-Length")) < 300
    assert warcio_cli("check", str(path)).returncode == 0
    assert check_file(path) == []

    captures, errors = collect(tmp_path)
    assert errors == []
    assert [c.record_type for c in captures] == ["response", "revisit"]
    assert captures[1].body == body
    assert captures[1].refers_to == original.record_id
    assert captures[1].fetched_at == later
    assert captures[1].location == revisit
    assert read_record(tmp_path, revisit).body == body


def test_revisit_is_not_written_on_a_wrong_reference(tmp_path):
    news, other = page("en_news_53077.html"), page("en_news_57027.html")
    with WarcWriter(tmp_path, run_id=RUN_ID) as warc:
        first, _ = exchange(warc, EVENT.format(53077), news)
        # the caller claims the same payload, but the stored record holds other bytes
        wrong, _ = exchange(
            warc, EVENT.format(57027), other, revisit_of={**first.__dict__, "payload_sha256": None}
        )
        missing, _ = exchange(
            warc, EVENT.format(53077), news, revisit_of=("kremlin-nope.warc.gz", 0)
        )
        request_loc = exchange(warc, EVENT.format(1), b"a")[1]
        not_response, _ = exchange(warc, EVENT.format(1), b"a", revisit_of=request_loc)
        empty, _ = exchange(warc, EVENT.format(2), b"", revisit_of=first)
    assert [loc.record_type for loc in (wrong, missing, not_response, empty)] == ["response"] * 4
    captures, errors = collect(tmp_path)
    assert errors == []
    assert captures[1].body == other and captures[2].body == news


def test_revisits_across_files_and_runs(tmp_path):
    body = page("en_news_60707.html")
    url = EVENT.format(60707)
    with WarcWriter(tmp_path, run_id="run-1") as warc:
        original, _ = exchange(warc, url, body)
    with WarcWriter(tmp_path, run_id="run-2") as warc:
        revisit, _ = exchange(warc, url, body, revisit_of=original)
    assert revisit.record_type == "revisit"
    assert revisit.filename != original.filename
    captures, errors = collect(tmp_path)
    assert errors == []
    assert [c.body == body for c in captures] == [True, True]
    assert read_record(tmp_path, revisit).body == body
    # the reader finds the original by its record id even without the location hint
    path = tmp_path / revisit.filename
    data = gzip.decompress(path.read_bytes())
    assert b"Kremlin-Refers-To-Filename" in data


# ---------------------------------------------------------------------------------------------
# rotation


def test_rotation_by_size(tmp_path):
    names = [
        "en_news_13679.html",
        "en_news_17108.html",
        "en_news_17808.html",
        "en_news_22991.html",
        "en_news_26834.html",
        "en_news_27935.html",
        "en_news_34018.html",
        "en_news_35639.html",
    ]
    bodies = [page(n) for n in names]
    limit = 40_000
    with WarcWriter(tmp_path, run_id=RUN_ID, max_file_size=limit) as warc:
        locations = [exchange(warc, EVENT.format(i), b)[0] for i, b in enumerate(bodies)]
        assert warc.files == sorted(warc.files)
    files = warc_files(tmp_path)
    assert len(files) >= 3
    assert [p.name for p in files] == warc.files
    assert [p.name.rsplit("-", 1)[1] for p in files][:3] == [
        "00001.warc.gz",
        "00002.warc.gz",
        "00003.warc.gz",
    ]
    for path in files:
        with open(path, "rb") as fh:
            kinds = [r.rec_type for r in ArchiveIterator(fh)]
        assert kinds[0] == "warcinfo" and kinds.count("warcinfo") == 1
        assert kinds[1:] == ["response", "request"] * ((len(kinds) - 1) // 2)
        if len(kinds) > 3:  # a file with one exchange may exceed the limit; others may not
            assert path.stat().st_size <= limit
        assert warcio_cli("check", str(path)).returncode == 0
        assert check_file(path) == []
    captures, errors = collect(tmp_path)
    assert errors == []
    assert [c.body for c in captures] == bodies
    assert [c.location for c in captures] == locations


def test_single_exchange_larger_than_the_limit(tmp_path):
    body = page("en_news_55882.html")
    with WarcWriter(tmp_path, run_id=RUN_ID, max_file_size=1000) as warc:
        a, _ = exchange(warc, EVENT.format(1), body)
        b, _ = exchange(warc, EVENT.format(2), body)
    assert a.filename != b.filename
    assert len(warc_files(tmp_path)) == 2
    assert [c.body for c in collect(tmp_path)[0]] == [body, body]


# ---------------------------------------------------------------------------------------------
# damage: crashes, corruption, foreign files


def write_three(directory: Path, run_id: str, names: list[str]):
    with WarcWriter(directory, run_id=run_id, repair_on_open=False) as warc:
        return [(page(n), exchange(warc, EVENT.format(i), page(n))[0]) for i, n in enumerate(names)]


def test_damaged_files_are_reported_and_skipped(tmp_path):
    directory = tmp_path / "warc"
    a = write_three(
        directory, "a", ["en_news_13679.html", "en_news_17108.html", "en_news_6152.html"]
    )
    b = write_three(
        directory, "b", ["en_news_22991.html", "en_news_26834.html", "en_news_9269.html"]
    )
    c = write_three(
        directory, "c", ["en_news_35639.html", "en_news_47105.html", "en_news_27935.html"]
    )

    # a: cut in the middle of the last response record (as after SIGKILL)
    a_path = directory / a[2][1].filename
    cut = a[2][1].offset + a[2][1].length // 2
    a_path.write_bytes(a_path.read_bytes()[:cut])
    # b: one byte flipped inside the middle response record
    b_path = directory / b[1][1].filename
    data = bytearray(b_path.read_bytes())
    data[b[1][1].offset + b[1][1].length // 2] ^= 0xFF
    b_path.write_bytes(bytes(data))
    # c: garbage appended
    c_path = directory / c[0][1].filename
    c_size = c_path.stat().st_size
    with open(c_path, "ab") as fh:
        fh.write(b"\x00" * 100 + b"garbage \x1f\x8b\x08 more garbage" * 10)
    # an empty file, a file that is no WARC at all, a gzip that holds no WARC
    (directory / "kremlin-00000000000000-empty-00001.warc.gz").write_bytes(b"")
    (directory / "kremlin-00000000000001-html-00001.warc.gz").write_bytes(page("en_news_6152.html"))
    (directory / "kremlin-00000000000002-gzhtml-00001.warc.gz").write_bytes(
        gzip.compress(page("en_news_6152.html"))
    )
    (directory / "notes.txt").write_text("not looked at")

    captures, errors = collect(directory)
    expected = [a[0], a[1], b[0], b[2], c[0], c[1], c[2]]
    assert [cap.body for cap in captures] == [body for body, _ in expected]
    assert [cap.location for cap in captures] == [loc for _, loc in expected]

    by_file = {f: (o, r) for f, o, r in errors}
    assert len(errors) == 6, errors
    assert by_file[a_path.name][0] == a[2][1].offset
    assert "incomplete record at end of file" in by_file[a_path.name][1]
    assert by_file[b_path.name][0] == b[1][1].offset
    assert "damaged record" in by_file[b_path.name][1]
    assert by_file[c_path.name][0] == c_size
    assert "end of file" in by_file[c_path.name][1]
    assert by_file["kremlin-00000000000000-empty-00001.warc.gz"] == (0, "empty file")
    assert by_file["kremlin-00000000000001-html-00001.warc.gz"][0] == 0
    assert "not a WARC file" in by_file["kremlin-00000000000001-html-00001.warc.gz"][1]
    gz_html = by_file["kremlin-00000000000002-gzhtml-00001.warc.gz"]
    assert "does not hold a WARC record" in gz_html[1]

    # the checks agree
    for path in (a_path, b_path, c_path):
        assert check_file(path), path
    assert check_file(directory / "kremlin-00000000000000-empty-00001.warc.gz")
    with pytest.raises(WarcReadError):
        read_record(directory, b[1][1])
    assert read_record(directory, b[2][1]).body == b[2][0]


def test_default_on_error_logs(tmp_path, caplog):
    (tmp_path / "x.warc.gz").write_bytes(b"")
    assert list(iter_captures(tmp_path)) == []
    assert "empty file" in caplog.text
    with pytest.raises(FileNotFoundError):
        list(iter_captures(tmp_path / "missing"))


def test_foreign_records_and_revisits_without_location_hint(tmp_path):
    """A WARC/1.0, SHA-1 file written by warcio itself: a chunked gzip response as it came over
    the wire, and revisits that name their original only by record id or by payload digest."""
    body = page("en_news_47105.html")
    url = EVENT.format(47105)
    with WarcWriter(tmp_path, run_id=RUN_ID) as warc:
        original, _ = exchange(warc, url, body)
    foreign = tmp_path / "other-tool.warc.gz"
    plain = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
    with open(foreign, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        encoded = gzip.compress(body)
        wire = b"%x\r\n%s\r\n0\r\n\r\n" % (len(encoded), encoded)
        wire_headers = StatusAndHeaders(
            "200 OK",
            [("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")],
            protocol="HTTP/1.1",
        )
        writer.write_record(
            writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(wire),
                length=len(wire),
                http_headers=wire_headers,
            )
        )
        date = "2024-03-01T12:00:00Z"
        by_id = writer.create_revisit_record(url, original.payload_digest, url, date, plain)
        by_id.rec_headers.add_header("WARC-Refers-To", original.record_id)
        by_digest = writer.create_revisit_record(url, original.payload_digest, url, date, plain)
        sha1 = "sha1:" + base64.b32encode(hashlib.sha1(body).digest()).decode()
        by_id_sha1 = writer.create_revisit_record(url, sha1, url, date, plain)
        by_id_sha1.rec_headers.add_header("WARC-Refers-To", original.record_id)
        orphan = writer.create_revisit_record(url, "sha1:" + "A" * 32, url, date, plain)
        for record in (by_id, by_digest, by_id_sha1, orphan):
            writer.write_record(record)

    captures, errors = collect(tmp_path)
    assert [c.body == body for c in captures] == [True] * 5
    assert [c.record_type for c in captures] == ["response", "response"] + ["revisit"] * 3
    assert all(c.payload_sha256 == original.payload_sha256 for c in captures)
    assert len(errors) == 1 and "original record of revisit not found" in errors[0][2]
    # read_record has no index from a scan: it finds the original by indexing the directory
    for capture in captures[1:]:
        assert read_record(tmp_path, capture.location).body == body
    with RecordReader(tmp_path) as reader:  # one index of originals for every read
        assert [reader.read(c.location) for c in captures] == captures
    assert check_file(foreign) == ["offset 0: file does not begin with a warcinfo record"]


def test_read_record_rejects_bad_locations(sample):
    directory, written = sample
    response, request = written["200"][1]
    with pytest.raises(WarcReadError):
        read_record(directory, ("../" + response.filename, response.offset))
    with pytest.raises(WarcReadError):
        read_record(directory, (response.filename, response.offset + 1))
    with pytest.raises(WarcReadError):
        read_record(directory, request)  # a request is not a capture
    with pytest.raises(WarcReadError):
        read_record(directory, ("kremlin-missing.warc.gz", 0))
    row = {"warc_filename": response.filename, "warc_offset": response.offset}
    assert read_record(directory, row).status == 200


def test_record_reader_reads_like_read_record(sample):
    """RecordReader (files kept open, one resolver for many reads) gives what read_record
    gives, in any order, and refuses the same bad locations."""
    directory, written = sample
    captures, _ = collect(directory)
    with RecordReader(directory) as reader:
        for capture in reversed(captures):
            assert reader.read(capture.location) == capture
            assert reader.read(capture.location) == read_record(directory, capture.location)
        response, request = written["200"][1]
        for bad in (
            ("../" + response.filename, response.offset),
            (response.filename, response.offset + 1),
            (response.filename, 10**9),
            request,
            ("kremlin-missing.warc.gz", 0),
        ):
            with pytest.raises(WarcReadError):
                reader.read(bad)
        assert reader.read(captures[0].location) == captures[0]  # still usable after errors


def members(path):
    """(decompressed record, offset, length) of every gzip member of a WARC file."""
    from kremlin_archive.warc import records

    with records.mapped(path) as buf:
        pos = 0
        while pos < len(buf):
            data, end = records.inflate_member(buf, pos)
            yield data, pos, end - pos
            pos = end


def test_the_short_path_reads_every_record_as_warcio_does(sample):
    """parse_record reads the records of the usual shape itself (`_parse_plain_record`) and
    leaves any other to warcio's loader: on every record the project writes -- responses of
    each status, requests, a revisit, warcinfo -- the short path is taken and gives warcio's
    very Record; a record it does not take (a continued header line) is warcio's too."""
    from kremlin_archive.warc import records

    directory, written = sample
    url = EVENT.format(63017)
    with WarcWriter(directory, run_id=RUN_ID) as warc:
        original = written["200"][1][0]
        exchange(warc, url, page("en_news_63017.html"), revisit_of={
            "warc_filename": original.filename, "warc_offset": original.offset,
            "warc_record_id": original.record_id, "payload_sha256": original.payload_sha256,
            "fetched_at": "2024-03-01T12:00:00Z",
        })  # fmt: skip
    kinds = []
    for path in warc_files(directory):
        for data, offset, length in members(path):
            short = records._parse_plain_record(data, offset, length)
            assert short is not None
            assert short == records._parse_record_by_warcio(data, offset, length)
            assert records.parse_record(data, offset, length) == short
            kinds.append(short.rec_type)
    assert {"warcinfo", "request", "response", "revisit"} <= set(kinds)

    data, offset, length = next(
        m for m in members(warc_files(directory)[0]) if b"WARC-Type: response" in m[0]
    )
    folded = data.replace(b"WARC-Type: response\r\n", b"WARC-Type: response\r\nX-Note: a\r\n b\r\n")
    assert records._parse_plain_record(folded, offset, length) is None
    by_warcio = records._parse_record_by_warcio(folded, offset, length)
    assert by_warcio.warc_headers.get_header("X-Note") == "a b"
    assert records.parse_record(folded, offset, length) == by_warcio


# ---------------------------------------------------------------------------------------------
# repair


def test_repair_tail(tmp_path):
    written = write_three(
        tmp_path, RUN_ID, ["en_news_13679.html", "en_news_17108.html", "en_news_6152.html"]
    )
    path = tmp_path / written[0][1].filename
    clean = path.read_bytes()
    assert repair_tail(path) == 0
    assert path.read_bytes() == clean

    # a crash in the middle of the last exchange's response record
    last = written[2][1]
    path.write_bytes(clean[: last.offset + 100])
    assert repair_tail(path, keep_removed=True) == 100
    assert path.stat().st_size == last.offset
    assert (tmp_path / f"{path.name}.removed-tail-{last.offset}").read_bytes() == clean[
        last.offset : last.offset + 100
    ]
    assert check_file(path) == []
    assert warcio_cli("check", str(path)).returncode == 0
    assert [c.body for c in collect(tmp_path)[0]] == [written[0][0], written[1][0]]

    # garbage after the last record; then a repaired file is left alone
    path.write_bytes(clean + b"\x00" * 4096)
    assert repair_tail(path) == 4096
    assert path.read_bytes() == clean
    assert repair_tail(path) == 0

    # a crash while writing the very first record leaves nothing worth keeping
    path.write_bytes(clean[:200])
    assert repair_tail(path) == 200
    assert path.stat().st_size == 0
    # what is not a WARC is never touched, nor is a complete gzip member we cannot parse
    foreign = tmp_path / "foreign.warc.gz"
    foreign.write_bytes(page("en_news_6152.html"))
    assert repair_tail(foreign) == 0
    assert foreign.read_bytes() == page("en_news_6152.html")
    whole_member = clean + gzip.compress(b"WARC/1.0\r\nnot quite a record\r\n\r\n")
    path.write_bytes(whole_member)
    assert repair_tail(path) == 0
    assert path.read_bytes() == whole_member


def test_a_new_writer_repairs_crashed_files_but_not_live_ones(tmp_path):
    body = page("en_news_17808.html")
    crashed = WarcWriter(tmp_path, run_id="crashed")
    crashed.open()
    loc, _ = exchange(crashed, EVENT.format(1), body)
    crashed._fh.write(gzip.compress(b"WARC/1.1\r\nWARC-Type: response\r\n" + body)[:500])
    crashed._fh.flush()
    crashed._fh.close()  # the process died: lock released, partial record left behind
    crashed._fh = None
    crashed_path = tmp_path / loc.filename

    live = WarcWriter(tmp_path, run_id="live", repair_on_open=False).open()
    exchange(live, EVENT.format(2), body)
    live_path = tmp_path / live.current_filename
    with pytest.raises(WarcFileBusy):
        repair_tail(live_path)
    with open(live_path, "ab") as fh:  # someone else's half-written record, as seen mid-write
        fh.write(b"\x1f\x8b\x08\x00")
    _, errors = collect(tmp_path)
    assert {(f, r.split(" (")[0]) for f, _, r in errors} == {
        (crashed_path.name, "incomplete record at end of file"),
        (live_path.name, "record being written by a live writer"),
    }

    with WarcWriter(tmp_path, run_id="next") as warc:
        assert warc.repaired == {crashed_path.name: 500}
        exchange(warc, EVENT.format(3), body)
        assert warc.current_filename not in (crashed_path.name, live_path.name)
    assert check_file(crashed_path) == []
    assert live_path.stat().st_size > 0 and check_file(live_path)  # untouched while live
    live.close()


KILLED_WRITER = """
import datetime as dt, sys
from pathlib import Path
from kremlin_archive.warc import WarcWriter
bodies = [p.read_bytes() for p in sorted(Path(sys.argv[2]).glob("en_news_*.html"))]
warc = WarcWriter(sys.argv[1], run_id="killed", max_file_size=300_000).open()
for i in range(100_000):
    warc.write_exchange(url=f"http://en.kremlin.ru/events/president/news/{i}", status=200,
                        body=bodies[i % len(bodies)], fetched_at=dt.datetime.now(dt.UTC))
"""


def test_a_killed_writer_leaves_readable_files(tmp_path):
    directory = tmp_path / "warc"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(directory), str(KREMLIN_HTML)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        deadline = time.monotonic() + 30
        while sum(p.stat().st_size for p in warc_files(directory)) < 600_000:
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    bodies = {page(p.name) for p in KREMLIN_HTML.glob("en_news_*.html")}
    captures, errors = collect(directory)
    assert len(captures) >= 10
    assert all(c.body in bodies for c in captures)
    assert len(errors) <= 1  # at most the record being written at the moment of the kill
    with WarcWriter(directory, run_id="after"):
        pass
    assert all(check_file(p) == [] for p in warc_files(directory))
    assert len(collect(directory)[0]) == len(captures)


# ---------------------------------------------------------------------------------------------
# the command line


def test_warc_commands(sample):
    from click.testing import CliRunner

    from kremlin_archive.cli import main

    directory, _ = sample
    runner = CliRunner()
    checked = runner.invoke(main, ["warc", "check", str(directory)])
    assert checked.exit_code == 0, checked.output
    assert ": OK" in checked.output
    listed = runner.invoke(main, ["warc", "ls", str(directory)])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [r["status"] for r in rows] == [200, 404, 301, 503]
    repaired = runner.invoke(main, ["warc", "repair", str(directory)])
    assert repaired.exit_code == 0, repaired.output
    assert all(line.endswith(": 0 bytes removed") for line in repaired.output.splitlines())


def test_warc_check_fails_on_a_damaged_file(sample, tmp_path):
    from click.testing import CliRunner

    from kremlin_archive.cli import main

    directory, _ = sample
    damaged = tmp_path / "damaged.warc.gz"
    data = warc_files(directory)[0].read_bytes()
    damaged.write_bytes(data[: len(data) - 40])
    result = CliRunner().invoke(main, ["warc", "check", str(damaged)])
    assert result.exit_code == 1
    assert "problem(s)" in result.output


def test_location_is_a_plain_value():
    loc = WarcLocation("f.warc.gz", 1, 2, "<urn:uuid:x>", "sha256:AA", "response", "00")
    assert loc == WarcLocation(**loc.__dict__) and hash(loc)
    assert os.sep not in loc.filename
