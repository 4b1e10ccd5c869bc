"""`kremlin-archive package` (jobs/package.py, warc/extract.py): a WACZ of the archive's WARC
records, checked with the tools that read WACZ files.

The archives are real crawls through the replay server: the session's month archive (March
2020 in English plus ru-66419) and a copy of it in which two unchanged pages were fetched again,
so that the WARC files hold revisit records. Each package is read back independently of the
code that wrote it: `wacz validate` (py-wacz), zipfile and hashlib, warcio over the WARC
members, and a real pywb 2.10 (in an environment of its own, `make pywb`) that replays the
package over HTTP.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO, RU_66419_PAGE, RU_66419_URL, cli_run, run_cli
from warcio.archiveiterator import ArchiveIterator
from warcio.timeutils import iso_date_to_timestamp

from kremlin_archive.cli import main

WACZ_BIN = Path(sys.executable).parent / "wacz"  # the test environment's py-wacz
REFETCHED_EN = "http://en.kremlin.ru/events/president/news/63017"  # published 2020-03-18


# -- helpers -------------------------------------------------------------------------------


def package(archive: Path, out: Path, *args: str, warc_dir: Path | None = None):
    return run_cli(
        "package", "--db", str(archive / "kremlin.db"),
        "--warc-dir", str(warc_dir or archive / "warc"), "--out", str(out), *args,
    )  # fmt: skip


def packaged(archive: Path, out: Path, *args: str) -> Path:
    result = package(archive, out, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def query(archive: Path, sql: str, params=()) -> list[dict]:
    conn = sqlite3.connect(f"file:{archive / 'kremlin.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def members(wacz: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wacz) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def pages_of(wacz: Path) -> tuple[dict, list[dict]]:
    lines = members(wacz)["pages/pages.jsonl"].decode("utf-8").splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def warc_records(data: bytes) -> list[dict]:
    """Every record of one WARC file (bytes), read with warcio: type, headers, offset and the
    payload as stored."""
    found = []
    iterator = ArchiveIterator(io.BytesIO(data))
    for record in iterator:
        payload = record.raw_stream.read()
        found.append(
            {
                "offset": iterator.get_record_offset(),
                "type": record.rec_type,
                "headers": dict(record.rec_headers.headers),
                "status": record.http_headers.get_statuscode() if record.http_headers else None,
                "payload": payload,
            }
        )
    return found


def packaged_records(wacz: Path) -> dict[str, list[dict]]:
    """archive/ member name (the file name only) -> its records."""
    return {
        name.removeprefix("archive/"): warc_records(data)
        for name, data in members(wacz).items()
        if name.startswith("archive/")
    }


def source_record(archive: Path, filename: str, offset: int) -> dict:
    """The record at `offset` of one of the archive's own WARC files, read with warcio."""
    with open(archive / "warc" / filename, "rb") as fh:
        fh.seek(offset)
        record = next(iter(ArchiveIterator(fh)))
        return {
            "type": record.rec_type,
            "headers": dict(record.rec_headers.headers),
            "payload": record.raw_stream.read(),
        }


def selected_events(archive: Path, lang: str | None, since: str | None, until: str | None):
    where, params = ["1 = 1"], []
    if lang:
        where.append("lang = ?")
        params.append(lang)
    if since:
        where.append("substr(published_at, 1, 10) >= ?")
        params.append(since)
    if until:
        where.append("substr(published_at, 1, 10) <= ?")
        params.append(until)
    return query(archive, f"SELECT * FROM events WHERE {' AND '.join(where)}", params)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def month_wacz(month_archive, tmp_path_factory) -> Path:
    """The whole month archive (both languages) as one WACZ."""
    return packaged(month_archive, tmp_path_factory.mktemp("wacz") / "month.wacz")


@pytest.fixture(scope="module")
def revisit_archive(month_archive, mirror_dir, tmp_path_factory) -> Path:
    """A copy of the month archive where en-63017 and ru-66419 were fetched again, unchanged:
    the WARC files hold a revisit record of each."""
    from kremlin_archive.devtools.replay import ReplayServer

    home = tmp_path_factory.mktemp("revisits") / "archive"
    shutil.copytree(month_archive, home)
    with ReplayServer(mirror_dir) as server:
        server.put_file(RU_66419_URL, RU_66419_PAGE)
        for url in (REFETCHED_EN, RU_66419_URL):
            done = cli_run(server, home, "fetch", url).result
            assert done.returncode == 0, done.stderr[-3000:]
    revisits = query(home, "SELECT * FROM fetches WHERE warc_record_type = 'revisit'")
    assert {r["event_id"] for r in revisits} >= {"en-63017", "ru-66419"}
    return home


@pytest.fixture(scope="module")
def revisit_wacz(revisit_archive, tmp_path_factory) -> Path:
    return packaged(revisit_archive, tmp_path_factory.mktemp("wacz") / "revisits.wacz")


# -- the file: valid, complete, reproducible -------------------------------------------------


@pytest.mark.slow
def test_wacz_validate_accepts_the_package(month_wacz):
    result = subprocess.run(
        [str(WACZ_BIN), "validate", "-f", str(month_wacz)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout


@pytest.mark.slow
def test_the_datapackage_lists_every_member_with_its_hash_and_size(month_wacz):
    files = members(month_wacz)
    datapackage = json.loads(files["datapackage.json"])
    assert datapackage["profile"] == "data-package"
    assert datapackage["wacz_version"] == "1.1.1"
    listed = {r["path"]: r for r in datapackage["resources"]}
    others = set(files) - {"datapackage.json", "datapackage-digest.json"}
    assert set(listed) == others
    assert {"indexes/index.cdx", "pages/pages.jsonl"} <= others
    assert any(name.startswith("archive/") and name.endswith(".warc.gz") for name in others)
    for name in others:
        assert listed[name]["hash"] == "sha256:" + hashlib.sha256(files[name]).hexdigest(), name
        assert listed[name]["bytes"] == len(files[name]), name
    digest = json.loads(files["datapackage-digest.json"])
    assert digest == {
        "path": "datapackage.json",
        "hash": "sha256:" + hashlib.sha256(files["datapackage.json"]).hexdigest(),
    }
    assert "CC BY 4.0" in datapackage["description"]
    with zipfile.ZipFile(month_wacz) as zf:  # WARCs stored, so that readers can seek into them
        for info in zf.infolist():
            if info.filename.endswith(".gz"):
                assert info.compress_type == zipfile.ZIP_STORED, info.filename


@pytest.mark.slow
def test_created_is_the_newest_record_not_the_clock(month_archive, month_wacz):
    datapackage = json.loads(members(month_wacz)["datapackage.json"])
    dates = [r["headers"]["WARC-Date"] for rs in packaged_records(month_wacz).values() for r in rs]
    newest = max(dt.datetime.fromisoformat(d.replace("Z", "+00:00")) for d in dates)
    created = dt.datetime.fromisoformat(datapackage["created"].replace("Z", "+00:00"))
    assert created == newest.replace(microsecond=0)


@pytest.mark.slow
def test_two_runs_give_the_same_bytes(month_archive, month_wacz, tmp_path):
    again = packaged(month_archive, tmp_path / "again.wacz")
    assert again.read_bytes() == month_wacz.read_bytes()


# -- what is inside -------------------------------------------------------------------------


@pytest.mark.slow
def test_pages_hold_one_entry_per_event_with_its_capture(month_archive, month_wacz):
    header, pages = pages_of(month_wacz)
    assert header["format"] == "json-pages-1.0"
    assert header["hasText"] is True
    assert "Internet Archive" in header["description"]
    events = {e["id"]: e for e in query(month_archive, "SELECT * FROM events")}
    assert [p["id"] for p in pages].count("en-63017") == 1
    assert sorted(p["id"] for p in pages) == sorted(events)
    for page in pages:
        event = events[page["id"]]
        fetch = query(month_archive, "SELECT * FROM fetches WHERE id = ?", [event["fetch_id"]])[0]
        record = source_record(month_archive, fetch["warc_filename"], fetch["warc_offset"])
        assert page["url"] == record["headers"]["WARC-Target-URI"]
        assert page["ts"] == record["headers"]["WARC-Date"]
        assert page["title"] == event["title"]
        assert page["text"] == event["text"]
        assert page["lang"] == event["lang"]
        assert page["source"] == "site"
        assert "internet_archive" not in page


@pytest.mark.slow
def test_every_capture_of_the_events_is_packaged_with_its_request(revisit_archive, revisit_wacz):
    fetches = query(
        revisit_archive,
        "SELECT f.* FROM fetches f JOIN events e ON e.id = f.event_id "
        "WHERE f.warc_filename IS NOT NULL",
    )
    records = packaged_records(revisit_wacz)
    by_id = {r["headers"]["WARC-Record-ID"]: (name, r) for name, rs in records.items() for r in rs}
    for fetch in fetches:
        assert fetch["warc_record_id"] in by_id, fetch
        name, record = by_id[fetch["warc_record_id"]]
        assert name == fetch["warc_filename"]
        source = source_record(revisit_archive, fetch["warc_filename"], fetch["warc_offset"])
        assert record["headers"] == source["headers"]
        assert record["payload"] == source["payload"]
    captures = [r for rs in records.values() for r in rs if r["type"] in ("response", "revisit")]
    requests = {
        r["headers"]["WARC-Concurrent-To"]
        for rs in records.values()
        for r in rs
        if r["type"] == "request"
    }
    for capture in captures:
        assert capture["headers"]["WARC-Record-ID"] in requests, capture["headers"]
    revisits = [c for c in captures if c["type"] == "revisit"]
    assert len(revisits) >= 2
    for revisit in revisits:
        _, original = by_id[revisit["headers"]["WARC-Refers-To"]]
        assert original["type"] == "response"
        assert (
            original["headers"]["WARC-Payload-Digest"]
            == (revisit["headers"]["WARC-Payload-Digest"])
        )
    for rs in records.values():  # each file starts with the warcinfo its records name
        assert rs[0]["type"] == "warcinfo"
        names = {r["headers"].get("WARC-Warcinfo-ID") for r in rs[1:]}
        assert names == {rs[0]["headers"]["WARC-Record-ID"]}


@pytest.mark.slow
def test_the_index_lists_every_response_and_revisit(revisit_wacz):
    files = members(revisit_wacz)
    lines = files["indexes/index.cdx"].decode("utf-8").splitlines()
    assert lines == sorted(lines)
    indexed = {}
    for line in lines:
        _urlkey, timestamp, fields = line.split(" ", 2)
        entry = json.loads(fields)
        indexed[(entry["filename"], int(entry["offset"]))] = (timestamp, entry)
    captures = {
        (name, r["offset"]): r
        for name, rs in packaged_records(revisit_wacz).items()
        for r in rs
        if r["type"] in ("response", "revisit")
    }
    assert set(indexed) == set(captures)
    for key, record in captures.items():
        timestamp, entry = indexed[key]
        assert entry["url"] == record["headers"]["WARC-Target-URI"]
        assert timestamp == iso_date_to_timestamp(record["headers"]["WARC-Date"])
        assert (entry["mime"] == "warc/revisit") == (record["type"] == "revisit")


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ("--lang", "en", "--since", "2020-03-10", "--until", "2020-03-20"),
        ("--lang", "ru"),
        ("--since", "2020-03-25"),
        ("--until", "2020-03-05"),
    ],
)
def test_lang_since_until_select_the_events(month_archive, tmp_path, args):
    options = dict(zip(args[::2], args[1::2], strict=True))
    wanted = selected_events(
        month_archive, options.get("--lang"), options.get("--since"), options.get("--until")
    )
    assert wanted, "the month archive should hold events of this selection"
    wacz = packaged(month_archive, tmp_path / "part.wacz", *args)
    _, pages = pages_of(wacz)
    assert sorted(p["id"] for p in pages) == sorted(e["id"] for e in wanted)
    urls = {
        f["url"]
        for e in wanted
        for f in query(month_archive, "SELECT url FROM fetches WHERE event_id = ?", [e["id"]])
    }
    for records in packaged_records(wacz).values():
        for record in records:
            if record["type"] in ("response", "revisit", "request"):
                assert record["headers"]["WARC-Target-URI"] in urls


# -- bad input: a clear message, a non-zero exit, nothing half-written --------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--lang", "de"), "--lang"),
        (("--since", "2020-13-01"), "--since"),
        (("--until", "31.03.2020"), "--until"),
        (("--since", "2020-03-31", "--until", "2020-03-01"), "--since 2020-03-31 is after"),
    ],
)
def test_bad_arguments_are_named(tmp_path, args, named):
    out = tmp_path / "x.wacz"
    result = CliRunner().invoke(
        main, ["package", "--db", str(tmp_path / "none.db"), "--out", str(out), *args]
    )
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_out_that_is_not_a_wacz_is_refused(tmp_path):
    result = CliRunner().invoke(
        main, ["package", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "x.zip")]
    )
    assert result.exit_code == 2
    assert ".wacz" in result.output


def test_a_missing_archive_is_named(tmp_path):
    result = CliRunner().invoke(
        main, ["package", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "x.wacz")]
    )
    assert result.exit_code == 2
    assert "no archive at" in result.output


@pytest.mark.slow
def test_an_empty_selection_writes_nothing(month_archive, tmp_path):
    result = package(month_archive, tmp_path / "none.wacz", "--since", "1999-01-01",
                     "--until", "1999-01-31")  # fmt: skip
    assert result.returncode == 1
    assert "no event" in result.stderr
    assert "1999-01-01..1999-01-31" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_failed_package_leaves_the_previous_file_as_it_was(month_archive, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(month_archive, archive)
    out = packaged(archive, tmp_path / "out" / "month.wacz")
    before = out.read_bytes()
    lost = query(archive, "SELECT warc_filename FROM fetches WHERE event_id = 'ru-66419'")[0]
    (archive / "warc" / lost["warc_filename"]).unlink()
    result = package(archive, out)
    assert result.returncode == 1
    assert lost["warc_filename"] in result.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["month.wacz"]


# -- replay in a real pywb -------------------------------------------------------------------


def _pywb_bin() -> Path:
    """The bin folder of a pywb 2.10 environment: KREMLIN_PYWB_BIN, else REPO/.venv-pywb (made
    here as `make pywb` makes it when it is missing)."""
    given = os.environ.get("KREMLIN_PYWB_BIN")
    if given:
        return Path(given)
    venv = REPO / ".venv-pywb"
    stamp = venv / ".installed-stamp"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "pywb==2.10.*"],
            check=True, timeout=900,
        )  # fmt: skip
        stamp.touch()
    return venv / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def pywb(revisit_wacz, tmp_path_factory):
    """A real pywb (`wayback`) on 127.0.0.1 serving collection `c`, made from the revisit
    archive's package by `wb-manager add --unpack-wacz`; yields its base URL."""
    bin_dir = _pywb_bin()
    root = tmp_path_factory.mktemp("pywb")
    for args in (("init", "c"), ("add", "--unpack-wacz", "c", str(revisit_wacz))):
        done = subprocess.run(
            [str(bin_dir / "wb-manager"), *args], cwd=root, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    port = _free_port()
    log = open(root / "wayback.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [str(bin_dir / "wayback"), "-p", str(port), "-b", "127.0.0.1"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not _port_open(port):
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"pywb did not start: {(root / 'wayback.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        deadline = time.monotonic() + 30
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.2)


def replayed(base: str, timestamp: str, url: str) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"{base}/c/{timestamp}id_/{url}")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.slow
@pytest.mark.parametrize("event_id", ["en-63017", "ru-66419"])
def test_pywb_replays_a_page_byte_for_byte(revisit_archive, pywb, event_id):
    fetch = query(
        revisit_archive,
        "SELECT * FROM fetches WHERE event_id = ? AND warc_record_type = 'response' "
        "AND status = 200 ORDER BY id LIMIT 1",
        [event_id],
    )[0]
    record = source_record(revisit_archive, fetch["warc_filename"], fetch["warc_offset"])
    timestamp = iso_date_to_timestamp(record["headers"]["WARC-Date"])
    status, _, body = replayed(pywb, timestamp, record["headers"]["WARC-Target-URI"])
    assert status == 200
    assert body == record["payload"]
    assert len(body) > 1000


@pytest.mark.slow
@pytest.mark.parametrize("event_id", ["en-63017", "ru-66419"])
def test_pywb_resolves_a_revisit_to_its_original(revisit_archive, pywb, event_id):
    fetch = query(
        revisit_archive,
        "SELECT * FROM fetches WHERE event_id = ? AND warc_record_type = 'revisit' "
        "ORDER BY id DESC LIMIT 1",
        [event_id],
    )[0]
    revisit = source_record(revisit_archive, fetch["warc_filename"], fetch["warc_offset"])
    assert revisit["type"] == "revisit" and revisit["payload"] == b""
    original = query(
        revisit_archive, "SELECT * FROM fetches WHERE warc_record_id = ?",
        [revisit["headers"]["WARC-Refers-To"]],
    )[0]  # fmt: skip
    original_record = source_record(
        revisit_archive, original["warc_filename"], original["warc_offset"]
    )
    revisit_ts = iso_date_to_timestamp(revisit["headers"]["WARC-Date"])
    assert revisit_ts != iso_date_to_timestamp(original_record["headers"]["WARC-Date"])
    status, headers, body = replayed(pywb, revisit_ts, revisit["headers"]["WARC-Target-URI"])
    assert status == 200
    assert body == original_record["payload"]
    replayed_at = email.utils.parsedate_to_datetime(headers["Memento-Datetime"])
    assert replayed_at.strftime("%Y%m%d%H%M%S") == revisit_ts  # the revisit, not the original


# -- copies from the Internet Archive stay copies ------------------------------------------


@pytest.mark.slow
def test_an_internet_archive_copy_is_packaged_as_one(mirror_dir, tmp_path):
    from kremlin_archive.devtools.replay import ReplayServer

    home = tmp_path / "archive"
    with ReplayServer(mirror_dir, wayback=True) as server:
        args = ("crawl", "--lang", "en", "--ids", "63017,63020", "--source", "wayback")
        done = cli_run(server, home, *args).result
        assert done.returncode == 0, done.stderr[-3000:]
    wacz = packaged(home, tmp_path / "copies.wacz")
    events = {e["id"]: e for e in query(home, "SELECT * FROM events")}
    assert set(events) == {"en-63017", "en-63020"}
    _, pages = pages_of(wacz)
    assert sorted(p["id"] for p in pages) == sorted(events)
    for page in pages:
        event = events[page["id"]]
        fetch = query(home, "SELECT * FROM fetches WHERE id = ?", [event["fetch_id"]])[0]
        record = source_record(home, fetch["warc_filename"], fetch["warc_offset"])
        assert page["source"] == "wayback"
        assert page["url"] == record["headers"]["WARC-Target-URI"] == fetch["url"]
        assert page["url"].startswith("http://web.archive.org/web/")
        assert page["ts"] == record["headers"]["WARC-Date"]
        assert page["internet_archive"] == {
            "original_url": event["url"],
            "captured_at": event["capture_time"],
        }
    packaged_uris = {
        r["headers"]["WARC-Target-URI"]
        for rs in packaged_records(wacz).values()
        for r in rs
        if r["type"] in ("response", "revisit")
    }
    assert not any("kremlin.ru/" in uri.split("/web/")[0] for uri in packaged_uris)
    fetched = query(
        home, "SELECT url FROM fetches WHERE event_id IS NOT NULL AND warc_filename IS NOT NULL"
    )
    assert {f["url"] for f in fetched} == packaged_uris
