"""Screenshot of the transcript page as a reader sees it (issue 7).

Builds a small demo archive from two pages in ../shared — the *reconstructed* Russian page of
event 66419 (a real en.kremlin.ru template with the legacy record's Russian text poured in:
no real Russian event page was available) and the real en.kremlin.ru page 55882 — with
plausible (made-up) fetch rows for the provenance box, starts `kremlin-archive serve` on a free
loopback port, and has headless Chromium save a PNG of /kremlin/events/ru-66419.

    .venv/bin/python bench/screenshot.py [--out transcript.png] [--page /kremlin/events/en-55882]

Needs Debian's `chromium` (apt-get install -y chromium). tests/test_datasette.py uses the same
functions, so the archive shown here is the one the tests check.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KREMLIN_SHARED", REPO.parent / "shared")).resolve()
KREMLIN_HTML = SHARED / "kremlin-html"
RU_PAGE = KREMLIN_HTML / "reconstructed" / "ru_news_66419.html"
EN_PAGE = KREMLIN_HTML / "en_news_55882.html"
RU_URL = "http://kremlin.ru/events/president/news/66419"
EN_URL = "http://en.kremlin.ru/events/president/news/55882"
RUN_ID = "20261120T100000Z-5e7a91c2"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1280, 1800)


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _fetch_row(body: bytes, url: str, fetched_at: str, offset: int) -> dict:
    """A plausible `fetches` row for a page the archive got with 200 (the WARC is made up)."""
    digest = hashlib.sha256(body).hexdigest()
    return {
        "run_id": RUN_ID,
        "spider": "urls",
        "kind": "event",
        "event_id": ("ru-" if "//kremlin.ru" in url else "en-") + url.rsplit("/", 1)[1],
        "requested_url": url,
        "url": url,
        "final_url": url,
        "method": "GET",
        "status": 200,
        "fetched_at": fetched_at,
        "content_type": "text/html; charset=utf-8",
        "content_length": len(body),
        "payload_sha256": digest,
        "warc_filename": f"kremlin-20261120100000-{RUN_ID}-00001.warc.gz",
        "warc_offset": offset,
        "warc_length": len(body) // 4 + 1024,
        "warc_record_id": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url + fetched_at)}>",
        "warc_record_type": "response",
    }


def store_page(db, body: bytes, url: str, *, fetched_at: str, offset: int, transcript=None):
    """Parse `body` (unless a transcript is given), record its fetch, save it; the result."""
    from kremlin_archive import db as dbmod
    from kremlin_archive.parsing import PARSER_VERSION, parse_event

    t = transcript if transcript is not None else parse_event(body, url)
    fetch_id = dbmod.record_fetch(db, _fetch_row(body, url, fetched_at, offset))
    t.source_url, t.final_url, t.fetched_at, t.status = url, url, fetched_at, 200
    t.fetch_id, t.run_id, t.spider, t.origin = fetch_id, RUN_ID, "urls", "crawl"
    t.parser_version = t.parser_version or PARSER_VERSION
    t.payload_sha256 = hashlib.sha256(body).hexdigest()
    return dbmod.save_transcript(db, t, now=fetched_at)


def start_run(db) -> str:
    """The run the demo fetches belong to."""
    from kremlin_archive import db as dbmod

    return dbmod.start_run(
        db, run_id=RUN_ID, spider="urls", command="fetch", arguments={"urls": [RU_URL, EN_URL]}
    )


def build_demo_archive(path: Path) -> None:
    """ru-66419 (reconstructed page; first captured before its last turn was published, so
    it has one revision) and en-55882, fetched by one run, in a new archive at `path`."""
    from kremlin_archive import db as dbmod
    from kremlin_archive.parsing import parse_event

    db = dbmod.open_db(path)
    start_run(db)
    ru_body = RU_PAGE.read_bytes()
    ru = parse_event(ru_body, RU_URL)
    # The earlier capture: the same page while the transcript still lacked its last turn.
    last = ru.utterances[-1]
    partial = replace(
        ru,
        utterances=ru.utterances[:-1],
        paragraphs=ru.paragraphs[: -(last.text.count("\n") + 1)],
    )
    store_page(
        db, ru_body, RU_URL, fetched_at="2026-11-19T08:00:00Z", offset=1_024, transcript=partial
    )
    store_page(db, ru_body, RU_URL, fetched_at="2026-11-20T10:00:05Z", offset=88_310)
    store_page(db, EN_PAGE.read_bytes(), EN_URL, fetched_at="2026-11-20T10:00:09Z", offset=131_072)
    dbmod.settle_persons(db)  # as a run does at its end
    dbmod.finish_run(
        db,
        RUN_ID,
        status="finished",
        finish_reason="finished",
        counts={"requests": 3, "responses": 3, "events_new": 2, "events_changed": 1},
    )
    db.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, server: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"kremlin-archive serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()[:24]
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    return struct.unpack(">II", data[16:24])


def screenshot(db_path: Path, png: Path, page: str = "/kremlin/events/ru-66419") -> Path:
    """Serve `db_path` with `kremlin-archive serve` and save a PNG of `page`; returns `png`."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium not found: apt-get install -y chromium")
    port = free_port()
    cli = Path(sys.executable).with_name("kremlin-archive")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "kremlin_archive.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "serve.log", "w+b")  # noqa: SIM115 (closed below)
        server = subprocess.Popen(
            [*command, "serve", "--db", str(db_path), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}{page}"
            try:
                wait_for(url, server)
            except (RuntimeError, TimeoutError) as exc:
                log.seek(0)
                output = log.read().decode(errors="replace")
                raise RuntimeError(f"{exc}; its output:\n{output}") from exc
            subprocess.run(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--hide-scrollbars",
                    f"--user-data-dir={Path(tmp) / 'profile'}",
                    f"--screenshot={png}",
                    f"--window-size={WINDOW[0]},{WINDOW[1]}",
                    url,
                ],
                check=True,
                timeout=120,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("transcript.png"))
    parser.add_argument("--page", default="/kremlin/events/ru-66419")
    parser.add_argument("--db", type=Path, help="serve this archive instead of the demo one")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db_path = args.db
        if db_path is None:
            db_path = Path(tmp) / "kremlin.db"
            build_demo_archive(db_path)
        png = screenshot(db_path, args.out.resolve(), args.page)
    print(f"{png}: {'x'.join(map(str, png_size(png)))} px, {png.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
