"""Replay a saved capture of kremlin.ru / en.kremlin.ru as an HTTP forward proxy on 127.0.0.1.

Crawlers keep their real URLs (`http://en.kremlin.ru/events/president/news/63017`) and only set
`http_proxy`; every answer comes from the capture, nothing is ever forwarded to the network. Tests
use the same server to add or change pages and to inject the faults the live site produces
(5xx, 403/429 with Retry-After, slow, truncated and reset responses, redirects, oversized bodies).

What is served
    A capture is a directory laid out as `<host>/<path>.html` (the mirror in
    `shared/mirror/`, unpacked), or that mirror's tar archive (`.tar.xz`, `.tar.gz`, `.tar.bz2`
    or plain `.tar`) read directly: it is decompressed once into an anonymous temporary file and
    indexed, which takes about 2.5 s for the 8,881-file mirror and is then shared by every server
    in the process. A URL `http://<host>/<path>` is answered from

        <host>/robots.txt         for /robots.txt          text/plain; charset=utf-8
        <host>/<path>/feed.xml    for /<path>/feed         application/atom+xml; charset=utf-8
        <host>/<path>.html        for anything else        text/html; charset=utf-8
                                  (listing page 1, /events/president/news, is news.html)

    The query string is ignored, a trailing slash is dropped, the host is matched without port
    and case. Anything else — pages not captured, other hosts, IP addresses, paths with `.`/`..`
    segments (also percent-encoded), symlinks leading out of the capture — is a 404 with a small
    HTML body. Requests may use the absolute form a client sends to a proxy
    (`GET http://en.kremlin.ru/robots.txt`) or the origin form (`GET /robots.txt` + `Host:`); an
    origin-form request addressed to the server itself (a browser pointed at
    http://127.0.0.1:8399/events/president/news) is answered from the capture's only host. HEAD is
    supported; CONNECT and every other method get 405 (only plain http is replayed).

By hand
    kremlin-archive replay ../shared/mirror/en-kremlin-2020.tar.xz --port 8399
    http_proxy=http://127.0.0.1:8399 kremlin-archive crawl …
    curl -x http://127.0.0.1:8399 http://en.kremlin.ru/events/president/news/63017

    Options: --host (loopback only unless --allow-remote), --port (0 = any free port), --log FILE
    (one JSON line per request), --etags (ETag / If-None-Match), --last-modified DATE
    (Last-Modified / If-Modified-Since), --quiet (no access log on stderr). Ctrl-C stops.

In tests
    with ReplayServer(mirror_dir, etags=True) as replay:
        replay.put_file("http://kremlin.ru/events/president/news/66419", ru_page)
        replay.fault(re.compile(r"/news/\\d+$"), 503, times=2)     # two 503s, then the pages
        replay.fault("http://en.kremlin.ru/events/president/news/63017", "slow", delay=0.2)
        ... crawl with http_proxy=replay.proxy_url ...
        assert replay.count(lambda r: r.status == 503) == 2

    Fault kinds (`fault(url_or_regex, kind, *, times=None, after=0, **params)`; a `str` starting
    with http:// or https:// matches that URL exactly (query and trailing slash ignored), any
    other `str` or an `re.Pattern` is searched in the full request URL; the fault skips the first
    `after` matching requests, is used `times` times (None: forever), then the page is served):

        500, 502, 503, any 3xx-5xx     that status; retry_after=None, body=None
        429, 403                       that status with Retry-After; retry_after=1, body=None
        "refuse"                       403 without Retry-After for every matching URL — with
                                       `times`, a run of that many consecutive refusals; body=None
        "slow"                         wait `delay` seconds (default 1.0), then answer normally;
                                       other requests are not held up, stop() cuts the wait short
        "reset"                        headers (full Content-Length) + the first `sent` body bytes
                                       (default half), pause `pause` s (0.05), then a TCP reset
        "short"                        Content-Length of the whole body, only `sent` bytes
                                       (default half), then the connection is closed
        "invalid-utf8"                 the page with one byte at offset `at` (default: a letter of
                                       a paragraph in the middle of the page) replaced by 0xFF
        "shell404"                     200 (or `status`) with the site's 404 page shell read from
                                       `path` at serving time (or `body` bytes)
        "redirect"                     302 (or `status`) to `location`
        "huge"                         200 with a generated body of `size` bytes; with
                                       content_length=False no Content-Length (read to close)
        "alias"                        the page of the URL `to` instead (a lying listing: every
                                       page/N answering with page 1, as the live site since
                                       2026, SITE.md §9)
        "body"                         200 (or `status`) with `body` bytes as they are, e.g. a
                                       malformed CDX answer

    Every request is logged (`.log`, `.requests_for()`, `.count()`, and the JSON-lines file):
    method, URL, status, body bytes sent, fault kind, request headers of interest, time.
"""

from __future__ import annotations

import bz2
import contextlib
import datetime as dt
import email.utils
import gzip
import hashlib
import html
import ipaddress
import json
import lzma
import os
import re
import shutil
import signal
import socket
import socketserver
import struct
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

DEFAULT_PORT = 8399
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/atom+xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
# Request headers worth keeping in the log (conditional requests, politeness, compression).
LOGGED_HEADERS = (
    "User-Agent",
    "If-None-Match",
    "If-Modified-Since",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Referer",
    "Cache-Control",
)
FAULT_KINDS = (
    "refuse", "slow", "reset", "short", "invalid-utf8", "shell404", "redirect", "huge", "alias",
    "body",
)  # fmt: skip
_FAULT_PARAMS: dict[str, set[str]] = {
    "status": {"retry_after", "body"},
    "refuse": {"body"},
    "slow": {"delay"},
    "reset": {"sent", "pause"},
    "short": {"sent"},
    "invalid-utf8": {"at"},
    "shell404": {"path", "body", "status"},
    "redirect": {"location", "status"},
    "huge": {"size", "content_length"},
    "alias": {"to"},
    "body": {"body", "status", "content_type"},
}
_HOST = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_IP_LIKE = re.compile(r"^[0-9.]+$")
_CHUNK = 64 * 1024


# --- capture storage --------------------------------------------------------------------------


class Mirror:
    """Read-only store of captured responses: `read("en.kremlin.ru/robots.txt") -> bytes|None`."""

    def read(self, key: str) -> bytes | None:
        return None

    def hosts(self) -> set[str]:
        return set()

    def names(self) -> list[str]:
        """Every file name of the capture (`<host>/<path>`)."""
        return []

    def __len__(self) -> int:
        return 0


class DirectoryMirror(Mirror):
    """A directory `<root>/<host>/<path>.html`; files are read at request time (no start-up scan).

    Pointed at a host directory itself (`…/en.kremlin.ru`), it serves that one host."""

    def __init__(self, root: Path):
        root = Path(root).resolve()
        self._only_host = None
        if _valid_host(root.name) and not any(_valid_host(p.name) for p in _subdirs(root)):
            self._only_host = root.name
            root = root.parent
        self.root = root

    def read(self, key: str) -> bytes | None:
        if self._only_host and not key.startswith(self._only_host + "/"):
            return None
        path = os.path.realpath(os.path.join(self.root, key))
        # A symlink inside the capture must not lead out of it.
        if not path.startswith(str(self.root) + os.sep) or not os.path.isfile(path):
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def hosts(self) -> set[str]:
        if self._only_host:
            return {self._only_host}
        return {p.name for p in _subdirs(self.root) if _valid_host(p.name)}

    def names(self) -> list[str]:
        names = []
        for host in sorted(self.hosts()):
            top = self.root / host
            for folder, _, files in os.walk(top):
                for name in files:
                    names.append(os.path.relpath(os.path.join(folder, name), self.root))
        return names

    def __len__(self) -> int:
        top = self.root / self._only_host if self._only_host else self.root
        return sum(len(files) for _, _, files in os.walk(top))


class TarMirror(Mirror):
    """A tar archive (plain, xz, gzip or bzip2), decompressed once into an anonymous temporary
    file and indexed by member name; reads are `os.pread` calls, safe from many threads."""

    def __init__(self, path: Path):
        started = time.monotonic()
        self.path = Path(path)
        self._index: dict[str, tuple[int, int]] = {}
        opener = _decompressor(self.path)
        if opener is None:
            self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 - kept for pread
        else:
            self._file = tempfile.TemporaryFile(prefix="kremlin-replay-", suffix=".tar")  # noqa: SIM115
            with opener(self.path) as src:
                shutil.copyfileobj(src, self._file, 1 << 20)
            self._file.flush()
        self._file.seek(0)
        with tarfile.open(fileobj=self._file, mode="r:") as tar:
            for member in tar:
                name = _member_key(member.name)
                if member.isreg() and name:
                    self._index[name] = (member.offset_data, member.size)
        self._fd = self._file.fileno()
        self.load_seconds = time.monotonic() - started

    def read(self, key: str) -> bytes | None:
        entry = self._index.get(key)
        if entry is None:
            return None
        offset, size = entry
        chunks, done = [], 0
        while done < size:
            chunk = os.pread(self._fd, size - done, offset + done)
            if not chunk:
                break
            chunks.append(chunk)
            done += len(chunk)
        return b"".join(chunks)

    def hosts(self) -> set[str]:
        return {name.split("/", 1)[0] for name in self._index}

    def names(self) -> list[str]:
        return list(self._index)

    def __len__(self) -> int:
        return len(self._index)


_TAR_CACHE: dict[tuple[str, int, int], TarMirror] = {}
_TAR_CACHE_LOCK = threading.Lock()


def open_mirror(source: str | Path | None) -> Mirror:
    """The capture at `source`: None (empty), a directory, or a tar archive. A tar archive is
    unpacked once per process and shared (keyed by path, size and mtime)."""
    if source is None:
        return Mirror()
    path = Path(source).expanduser()
    if path.is_dir():
        return DirectoryMirror(path)
    if not path.is_file():
        raise FileNotFoundError(f"capture not found: {path}")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _TAR_CACHE_LOCK:
        if key not in _TAR_CACHE:
            if _decompressor(path) is None and not tarfile.is_tarfile(path):
                raise ValueError(f"not a directory or a tar archive: {path}")
            _TAR_CACHE[key] = TarMirror(path)
        return _TAR_CACHE[key]


def _decompressor(path: Path) -> Callable[[Path], IO[bytes]] | None:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open
    if magic.startswith(b"BZh"):
        return bz2.open
    return None


def _member_key(name: str) -> str | None:
    """Normalised tar member name, or None for names that could point outside the capture."""
    if name.startswith("/") or "\\" in name:
        return None
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _subdirs(root: Path) -> Iterator[Path]:
    try:
        return (p for p in root.iterdir() if p.is_dir())
    except OSError:
        return iter(())


def _valid_host(host: str) -> bool:
    """A DNS name with at least one dot (as every captured site has); no IP literals."""
    return "." in host and bool(_HOST.match(host)) and not _IP_LIKE.match(host)


# --- URL -> capture key ------------------------------------------------------------------------


def normalize(host: str, raw_path: str) -> tuple[str, str] | None:
    """(host, path) as looked up: host lower-case without port or trailing dot, path
    percent-decoded without query or trailing slash. None if the host is not a DNS name or the
    path has empty, `.` or `..` segments, backslashes or NUL — nothing that could leave the
    capture directory."""
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal
        return None
    host = host.rsplit(":", 1)[0] if ":" in host else host
    host = host.rstrip(".")
    if not _valid_host(host):
        return None
    path = unquote(raw_path.split("?", 1)[0].split("#", 1)[0], errors="replace")
    if not path.startswith("/"):
        return None
    segments = path[1:].split("/")
    if segments[-1] == "" and len(segments) > 1:
        segments.pop()  # trailing slash
    if segments == [""]:
        return host, "/"
    for segment in segments:
        if segment in ("", ".", "..") or "\\" in segment or "\x00" in segment:
            return None
    return host, "/" + "/".join(segments)


def mirror_key(host: str, path: str) -> str:
    """File name in the capture for a normalised (host, path)."""
    if path == "/":
        return f"{host}/index.html"
    if path == "/robots.txt":
        return f"{host}/robots.txt"
    if path.endswith("/feed"):
        return f"{host}{path}.xml"
    return f"{host}{path}.html"


def _content_type_for(name: str) -> str:
    return CONTENT_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")


def _is_absolute_url(pattern: object) -> bool:
    return isinstance(pattern, str) and pattern.lower().startswith(("http://", "https://"))


def _url_key(url: str) -> tuple[str, str]:
    """Normalised (host, path) of an absolute http(s) URL given to put/remove/fault."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an absolute http URL: {url!r}")
    key = normalize(parts.netloc.rsplit("@", 1)[-1], parts.path or "/")
    if key is None:
        raise ValueError(f"not a URL the replay server can serve: {url!r}")
    return key


# --- pages, faults, log ------------------------------------------------------------------------


@dataclass
class Page:
    """An answer added with `put` (or read from the capture). `captured`: when the replayed
    Wayback says it captured a page added with `put` (the time it was added)."""

    body: bytes
    status: int = 200
    content_type: str = CONTENT_TYPES[".html"]
    headers: dict[str, str] = field(default_factory=dict)
    last_modified: str | None = None
    captured: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S"))


_REMOVED = Page(b"", status=404)


@dataclass
class Fault:
    """One injected fault; `served` counts how often it was applied."""

    pattern: str | re.Pattern[str]
    kind: str
    times: int | None = None
    after: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    seen: int = 0
    served: int = 0
    _key: tuple[str, str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if _is_absolute_url(self.pattern):
            self._key = _url_key(self.pattern)  # a bad URL fails now, not by never matching
        else:
            re.compile(self.pattern)

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind.isdigit() else None

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.served >= self.times

    def matches(self, url: str, key: tuple[str, str] | None) -> bool:
        if self._key is not None:
            return key == self._key
        return re.search(self.pattern, url) is not None


@dataclass
class LoggedRequest:
    """One request as the server saw and answered it.

    `status` is None when the connection was dropped before any answer; `bytes` counts the body
    bytes sent. An entry is in the log before the answer leaves the server, so a client that
    has its response can count on finding it (`duration` is filled in once the answer is done).
    """

    method: str
    url: str
    status: int | None
    bytes: int
    headers: dict[str, str]
    time: float
    duration: float
    fault: str | None = None
    client: str = ""

    def to_json(self) -> str:
        record = asdict(self)
        record["at"] = dt.datetime.fromtimestamp(self.time, dt.UTC).isoformat(
            timespec="milliseconds"
        )
        return json.dumps(record, ensure_ascii=False)


def http_date(value: dt.datetime | float | str) -> str:
    """An HTTP-date from a datetime (naive = UTC), a POSIX timestamp or an HTTP/ISO date string."""
    if isinstance(value, str):
        try:
            value = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            value = dt.datetime.fromisoformat(value)
    if isinstance(value, int | float):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return email.utils.format_datetime(value.astimezone(dt.UTC), usegmt=True)


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _not_modified_since(header: str, last_modified: str) -> bool:
    try:
        since = email.utils.parsedate_to_datetime(header)
        modified = email.utils.parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None or modified.tzinfo is None:
        return False
    return modified <= since


def _small_html(status: int, message: str) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    title = html.escape(f"{status} {phrase}".strip())
    return (
        f'<!doctype html><html><head><meta charset="utf-8"/><title>{title}</title></head>'
        f"<body><h1>{title}</h1><p>{html.escape(message)}</p></body></html>\n"
    ).encode()


def _break_utf8(body: bytes, at: int | None) -> bytes:
    """`body` with one byte replaced by 0xFF, which is never valid UTF-8."""
    if not body:
        return b"\xff"
    if at is None:
        start = body.find(b"<p>", len(body) // 2)
        letter = re.compile(rb"[A-Za-z]").search(body, start + 3 if start >= 0 else len(body) // 2)
        at = letter.start() if letter else len(body) // 2
    at = max(0, min(int(at), len(body) - 1))
    return body[:at] + b"\xff" + body[at + 1 :]


def _filler(size: int) -> Iterator[bytes]:
    head = b"<!doctype html><html><body>\n"
    line = b"<p>" + b"x" * 250 + b"</p>\n"
    block = head + line * (_CHUNK // len(line))
    left = size
    while left > 0:
        piece = block[:left]
        block = line * (_CHUNK // len(line))
        left -= len(piece)
        yield piece


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- the server --------------------------------------------------------------------------------


class _Aborted(Exception):
    """The connection was dropped on purpose (or by the client); nothing more to send."""


class ReplayServer:
    """Forward proxy answering from a capture; see the module docstring.

    `source`: capture directory, tar archive or None (only pages added with `put`).
    `etags`: send ETag (quoted sha256 prefix of the body) and honour If-None-Match.
    `last_modified`: send this Last-Modified on every captured page and honour If-Modified-Since
    (pages added with `put(..., last_modified=…)` carry their own).
    `default_host`: host for origin-form requests addressed to the server itself (default: the
    capture's only host). `allow_remote`: permit a non-loopback `host`. `verbose`: access log on
    stderr.
    """

    def __init__(
        self,
        source: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: str | Path | None = None,
        etags: bool = False,
        last_modified: dt.datetime | float | str | None = None,
        default_host: str | None = None,
        allow_remote: bool = False,
        verbose: bool = False,
        wayback: str | bool | None = None,
        wayback_page_size: int = 1000,
    ):
        if not allow_remote and not _is_loopback(host):
            raise ValueError(
                f"refusing to listen on non-loopback address {host!r}; "
                "pass allow_remote=True (--allow-remote) if that is really meant"
            )
        if source is not None and not Path(source).expanduser().exists():
            raise FileNotFoundError(f"capture not found: {source}")
        self.source = source
        self.host = host.strip("[]")
        self.port = port
        self.log_path = Path(log_path) if log_path else None
        self.etags = etags
        self.last_modified = http_date(last_modified) if last_modified is not None else None
        self.default_host = default_host
        self.verbose = verbose
        # Answer as the Wayback Machine too (`wayback`: its host name; True: web.archive.org).
        self.wayback = (WAYBACK_HOST if wayback is True else wayback) or None
        self.wayback_page_size = int(wayback_page_size)
        self._captures: dict[tuple[str, str], list[str]] | None = None
        self.mirror: Mirror = Mirror()
        self.startup_seconds: float | None = None
        self._lock = threading.RLock()
        self._pages: dict[tuple[str, str], Page] = {}
        self._faults: list[Fault] = []
        self._log: list[LoggedRequest] = []
        self._log_file: IO[str] | None = None
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> ReplayServer:
        if self._httpd is not None:
            raise RuntimeError("replay server already started")
        started = time.monotonic()
        self.mirror = open_mirror(self.source)
        if self.default_host is None:
            hosts = self.mirror.hosts()
            self.default_host = next(iter(hosts)) if len(hosts) == 1 else None
        if self.log_path:
            self._log_file = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},  # how soon stop() is noticed
            name=f"replay-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop serving; waiting "slow" answers and open connections are cut short."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def proxy_url(self) -> str:
        """`http://127.0.0.1:PORT` — the value for `http_proxy`."""
        if self._httpd is None:
            raise RuntimeError("replay server not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # pages

    def put(
        self,
        url: str,
        body: bytes,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        last_modified: dt.datetime | float | str | None = None,
    ) -> None:
        """Serve `body` for `url` (query ignored) instead of the capture, or in addition to it."""
        key = _url_key(url)
        if content_type is None:
            content_type = _content_type_for(mirror_key(*key))
        headers = {k: v for k, v in (headers or {}).items() if k.lower() != "content-length"}
        page = Page(
            bytes(body),
            status=status,
            content_type=content_type,
            headers=headers,
            last_modified=http_date(last_modified) if last_modified is not None else None,
        )
        with self._lock:
            self._pages[key] = page

    def put_file(self, url: str, path: str | Path, **kwargs: Any) -> None:
        """`put(url, <bytes of path>)`, the file read now."""
        self.put(url, Path(path).read_bytes(), **kwargs)

    def remove(self, url: str) -> None:
        """Answer 404 for `url` even if the capture holds it."""
        with self._lock:
            self._pages[_url_key(url)] = _REMOVED

    def restore(self, url: str) -> None:
        """Undo `put`/`remove` for `url`: serve it from the capture again."""
        with self._lock:
            self._pages.pop(_url_key(url), None)

    # faults

    def fault(
        self,
        url_or_regex: str | re.Pattern[str],
        kind: str | int,
        *,
        times: int | None = None,
        after: int = 0,
        **params: Any,
    ) -> Fault:
        """Inject a fault for matching requests; see the module docstring for kinds and params.
        Faults are tried in the order they were added; the first live match applies."""
        kind = str(kind)
        if kind.isdigit():
            if not 300 <= int(kind) <= 599:
                raise ValueError(f"fault status must be 3xx-5xx, got {kind}")
            allowed = _FAULT_PARAMS["status"]
            if int(kind) in (403, 429):
                params.setdefault("retry_after", 1)
        elif kind in FAULT_KINDS:
            allowed = _FAULT_PARAMS[kind]
        else:
            raise ValueError(f"unknown fault kind {kind!r} (status code or one of {FAULT_KINDS})")
        unknown = set(params) - allowed
        if unknown:
            raise TypeError(f"fault {kind!r} takes {sorted(allowed)}, not {sorted(unknown)}")
        if kind == "shell404" and "path" not in params and "body" not in params:
            raise TypeError("fault 'shell404' needs path= (the site's 404 page) or body=")
        if kind == "shell404" and "path" in params and not Path(params["path"]).is_file():
            raise FileNotFoundError(f"404 page shell not found: {params['path']}")
        if kind == "redirect" and "location" not in params:
            raise TypeError("fault 'redirect' needs location=")
        if kind == "huge" and "size" not in params:
            raise TypeError("fault 'huge' needs size=")
        if kind == "body" and "body" not in params:
            raise TypeError("fault 'body' needs body= (the bytes to answer with)")
        if kind == "alias" and "to" not in params:
            raise TypeError("fault 'alias' needs to= (the URL whose page is served instead)")
        fault = Fault(url_or_regex, kind, times=times, after=after, params=params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, url: str, key: tuple[str, str] | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(url, key):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                fault.served += 1
                return fault
        return None

    # log

    @property
    def log(self) -> list[LoggedRequest]:
        """A snapshot of every request served so far, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def requests_for(self, pattern: str | re.Pattern[str]) -> list[LoggedRequest]:
        """Logged requests whose URL contains `pattern` (a str) or matches it (a regex)."""
        if isinstance(pattern, re.Pattern):
            return [r for r in self.log if pattern.search(r.url)]
        return [r for r in self.log if pattern in r.url]

    def count(
        self, what: str | re.Pattern[str] | Callable[[LoggedRequest], bool] | None = None
    ) -> int:
        """How many logged requests: all, those whose URL contains/matches `what`, or those for
        which `what(entry)` is true."""
        if what is None:
            return len(self.log)
        if callable(what) and not isinstance(what, re.Pattern):
            return sum(1 for r in self.log if what(r))
        return len(self.requests_for(what))

    def _publish(self, h: _Handler, entry: LoggedRequest) -> None:
        """Put `entry` into the log (once), just before its answer is sent."""
        if not h.published:
            h.published = True
            with self._lock:
                self._log.append(entry)

    def _finish(self, h: _Handler, entry: LoggedRequest) -> None:
        entry.duration = round(time.time() - entry.time, 6)
        self._publish(h, entry)
        with self._lock:
            if self._log_file is not None:
                self._log_file.write(entry.to_json() + "\n")
                self._log_file.flush()
        if self.verbose:
            fault = f" [{entry.fault}]" if entry.fault else ""
            print(
                f"{entry.method} {entry.url} -> {entry.status} {entry.bytes} B{fault}",
                file=sys.stderr,
                flush=True,
            )

    # request handling (called from the handler threads)

    def _target(self, handler: _Handler) -> tuple[str, tuple[str, str] | None]:
        """The request's full URL (for the log and fault regexes) and its normalised key."""
        target = handler.path
        if target.startswith("/"):
            host = handler.headers.get("Host", "")
            if self._addressed_to_self(host) and self.default_host:
                host = self.default_host
            url = f"http://{host}{target}"
            return url, normalize(host, target) if host else None
        try:
            parts = urlsplit(target)
        except ValueError:
            return target, None
        if parts.scheme.lower() != "http" or not parts.netloc:
            return target, None
        netloc = parts.netloc.rsplit("@", 1)[-1]
        raw_path = parts.path or "/"
        return target, normalize(netloc, raw_path)

    def _addressed_to_self(self, host: str) -> bool:
        """True for a Host header naming this server (or missing): a browser, not a proxy
        client, is asking."""
        if host.startswith("["):
            name = host[1:].partition("]")[0]
        else:
            name = host.rpartition(":")[0] if ":" in host else host
        return not name or _is_loopback(name) or name == self.host

    def _resolve(self, key: tuple[str, str] | None) -> Page | None:
        if key is None:
            return None
        with self._lock:
            page = self._pages.get(key)
        if page is not None:
            return None if page is _REMOVED else page
        name = mirror_key(*key)
        body = self.mirror.read(name)
        if body is None:
            return None
        return Page(body, content_type=_content_type_for(name), last_modified=self.last_modified)

    def handle(self, h: _Handler, *, head: bool) -> None:
        url, key = self._target(h)
        fault = self._take_fault(url, key)
        entry = self._entry(h, url, fault)
        try:
            self._answer(h, key, url, fault, head, entry)
        except (_Aborted, ConnectionError, TimeoutError):
            h.close_connection = True
        finally:
            self._finish(h, entry)

    def _entry(self, h: _Handler, url: str, fault: Fault | None) -> LoggedRequest:
        h.published = False
        return LoggedRequest(
            method=h.command,
            url=url,
            status=None,
            bytes=0,
            headers={name: h.headers[name] for name in LOGGED_HEADERS if name in h.headers},
            time=time.time(),
            duration=0.0,
            fault=fault.kind if fault else None,
            client=h.client_address[0],
        )

    def _answer(
        self,
        h: _Handler,
        key: tuple[str, str] | None,
        url: str,
        fault: Fault | None,
        head: bool,
        entry: LoggedRequest,
    ) -> None:
        kind = fault.kind if fault else None
        params = fault.params if fault else {}
        if kind == "slow":
            if self._stopping.wait(float(params.get("delay", 1.0))):
                raise _Aborted  # stop() was called: drop the connection unanswered
            kind = None
        if fault is not None and fault.status is not None:
            status = fault.status
            headers = {}
            if params.get("retry_after") is not None:
                headers["Retry-After"] = str(params["retry_after"])
            body = params.get("body") or _small_html(status, f"injected fault for {url}")
            return self._send(h, entry, status, headers, body, head)
        if kind == "refuse":
            body = params.get("body") or _small_html(403, "Access denied")
            return self._send(h, entry, 403, {}, body, head)
        if kind == "redirect":
            status = int(params.get("status", 302))
            location = str(params["location"])
            body = _small_html(status, f"Moved to {location}")
            return self._send(h, entry, status, {"Location": location}, body, head)
        if kind == "shell404":
            body = params["body"] if "body" in params else Path(params["path"]).read_bytes()
            return self._send(h, entry, int(params.get("status", 200)), {}, body, head)
        if kind == "huge":
            size, content_length = int(params["size"]), params.get("content_length", True)
            return self._send_huge(h, entry, size, content_length, head)

        if kind == "body":
            content_type = str(params.get("content_type", "text/plain; charset=utf-8"))
            status = int(params.get("status", 200))
            return self._send(
                h, entry, status, {"Content-Type": content_type}, params["body"], head
            )
        if self.wayback and (urlsplit(url).hostname or "").lower() == self.wayback:
            return self._answer_wayback(h, url, entry, head)
        if kind == "alias":  # another URL's page, as a listing that lies serves page 1
            key, kind = _url_key(str(params["to"])), None
        page = self._resolve(key)
        if page is None:
            page = Page(_small_html(404, f"Not in the capture: {url}"), status=404)
        headers = {"Content-Type": page.content_type, **page.headers}
        body = page.body
        if kind == "invalid-utf8":
            body = _break_utf8(body, params.get("at"))
        elif kind is None and page.status == 200:
            if self.etags:
                headers.setdefault("ETag", _etag(body))
            if page.last_modified:
                headers.setdefault("Last-Modified", page.last_modified)
            if self._not_modified(h, headers):
                return self._send(h, entry, 304, headers, b"", head, content_length=False)
        if kind in ("reset", "short"):
            sent = int(params.get("sent", len(body) // 2))
            pause = float(params.get("pause", 0.05))
            return self._send(
                h, entry, page.status, headers, body, head, sent=sent, ending=kind, pause=pause
            )
        return self._send(h, entry, page.status, headers, body, head)

    def _not_modified(self, h: _Handler, headers: dict[str, str]) -> bool:
        if_none_match = h.headers.get("If-None-Match")
        if if_none_match is not None:
            return "ETag" in headers and _etag_matches(if_none_match, headers["ETag"])
        since = h.headers.get("If-Modified-Since")
        if since and "Last-Modified" in headers:
            return _not_modified_since(since, headers["Last-Modified"])
        return False

    def _send(
        self,
        h: _Handler,
        entry: LoggedRequest,
        status: int,
        headers: dict[str, str],
        body: bytes,
        head: bool,
        *,
        content_length: bool = True,
        sent: int | None = None,
        ending: str | None = None,
        pause: float = 0.0,
    ) -> None:
        """Answer with `body`; with `ending` ("reset" / "short") send only `sent` bytes of it
        under the full Content-Length and drop the connection (RST / FIN)."""
        part = body if ending is None else body[: max(0, min(sent or 0, len(body)))]
        if head:
            part = b""
        entry.status, entry.bytes = status, len(part)
        self._publish(h, entry)
        headers = {"Content-Type": "text/html; charset=utf-8", **headers}
        if status == 304:
            del headers["Content-Type"]
        h.send_response(status)
        for name, value in headers.items():
            h.send_header(name, value)
        if content_length:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            h.wfile.write(part)
        except OSError:
            entry.bytes = 0  # how much the client got is unknown; say none
            raise
        if ending is not None:
            if ending == "reset" and pause:
                self._stopping.wait(pause)  # let the client read what was sent
            h.drop_connection(reset=ending == "reset")
            raise _Aborted

    def _send_huge(
        self, h: _Handler, entry: LoggedRequest, size: int, content_length: bool, head: bool
    ) -> None:
        """A generated 200 body of `size` bytes, streamed; stops when the client gives up."""
        entry.status, entry.bytes = 200, 0 if head else size
        self._publish(h, entry)
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        if content_length:
            h.send_header("Content-Length", str(size))
        else:
            h.send_header("Connection", "close")  # the body ends when the connection does
            h.close_connection = True
        h.end_headers()
        if head:
            return
        done = 0
        try:
            for chunk in _filler(size):
                if self._stopping.is_set():
                    raise _Aborted
                h.wfile.write(chunk)
                done += len(chunk)
        finally:
            entry.bytes = done

    # -- the Wayback Machine -------------------------------------------------------------------

    def captures(self) -> dict[tuple[str, str], list[str]]:
        """(host, path) -> the timestamps of its captures, oldest first: every page of the
        capture and every page `put` on the kremlin hosts (see `capture_times`)."""
        with self._lock:
            if self._captures is None:
                keys: set[tuple[str, str]] = set()
                for name in self.mirror.names():
                    host, _, rest = name.partition("/")
                    if not host.endswith("kremlin.ru") or not rest.endswith((".html", "feed.xml")):
                        continue
                    path = "/" + rest.removesuffix(".html").removesuffix(".xml")
                    keys.add(
                        (
                            host,
                            "/events/president/news" if path == "/events/president/news" else path,
                        )
                    )
                self._captures = {key: capture_times(*key) for key in keys}
            extra = {
                key: [page.captured]
                for key, page in self._pages.items()
                if page is not _REMOVED and key[0].endswith("kremlin.ru") and page.status == 200
            }
            removed = {key for key, page in self._pages.items() if page is _REMOVED}
        captures = {k: v for k, v in self._captures.items() if k not in removed}
        return captures | extra

    def _answer_wayback(self, h: _Handler, url: str, entry: LoggedRequest, head: bool) -> None:
        parts = urlsplit(url)
        if parts.path == "/cdx/search/cdx":
            body = self._cdx(dict(parse_qsl(parts.query)))
            return self._send(h, entry, 200, {"Content-Type": "text/plain"}, body, head)
        match = re.match(r"^/web/([0-9]{1,14})id_/(.+)$", parts.path)
        if not match:
            body = _small_html(404, f"Not a replayed Wayback address: {url}")
            return self._send(h, entry, 404, {}, body, head)
        wanted, original = match.groups()
        original = re.sub(r"^(https?):/(?!/)", r"\1://", original)
        key = _original_key(original)
        times = self.captures().get(key) if key else None
        if not times:
            body = _small_html(404, "Wayback Machine doesn't have that page archived.")
            return self._send(h, entry, 404, {}, body, head)
        if wanted not in times:  # the archive redirects to the nearest capture
            nearest = min(
                times, key=lambda ts: abs(int(ts.ljust(14, "0")) - int(wanted.ljust(14, "0")))
            )
            location = f"http://{self.wayback}/web/{nearest}id_/{original}"
            return self._send(
                h, entry, 302, {"Location": location}, _small_html(302, location), head
            )
        page = self._resolve(key)
        if page is None:
            body = _small_html(404, "Wayback Machine doesn't have that page archived.")
            return self._send(h, entry, 404, {}, body, head)
        moment = dt.datetime.strptime(wanted, "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
        headers = {
            "Content-Type": page.content_type,
            "Memento-Datetime": http_date(moment),
            "Link": f'<{original}>; rel="original", '
            f'<http://{self.wayback}/web/{wanted}/{original}>; rel="memento"',
            "X-Archive-Orig-content-type": page.content_type,
        }
        return self._send(h, entry, page.status, headers, page.body, head)

    def _cdx(self, query: dict[str, str]) -> bytes:
        """A CDX index answer (JSON) for a prefix query, collapsed per URL, paged with resume
        keys after `wayback_page_size` rows."""
        prefix = re.sub(r"^https?://", "", query.get("url", "")).removeprefix("www.")
        limit = min(int(query.get("limit") or self.wayback_page_size), self.wayback_page_size)
        since, until = query.get("from", ""), query.get("to", "")
        rows = []
        for (host, path), times in self.captures().items():
            address = f"{host}{path}"
            if not address.startswith(prefix):
                continue
            chosen = [ts for ts in times if ts[: len(since)] >= since and ts[: len(until)] <= until]
            if not chosen:
                continue
            original = f"http://{host}{path}"
            rows.append([_urlkey(host, path), chosen[0], original, "text/html", "200",
                         _digest(original), "1000"])  # fmt: skip
        rows.sort()
        resume = query.get("resumeKey")
        if resume:
            rows = [r for r in rows if f"{r[0]} {r[1]}" > unquote(resume).replace("+", " ")]
        page, rest = rows[:limit], rows[limit:]
        out: list[list[str]] = [list(_CDX_FIELDS), *page]
        if rest and query.get("showResumeKey") == "true":
            out += [[], [quote(f"{page[-1][0]} {page[-1][1]}")]]
        return json.dumps(out).encode()

    def refuse_method(self, h: _Handler) -> None:
        """405 for CONNECT (no tunnelling: only plain http is replayed) and any other method."""
        entry = self._entry(h, h.path, None)
        body = _small_html(405, f"{h.command} is not supported: this server only replays http")
        h.close_connection = True
        try:
            self._send(h, entry, 405, {"Allow": "GET, HEAD", "Connection": "close"}, body, False)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._finish(h, entry)


WAYBACK_HOST = "web.archive.org"
_CDX_FIELDS = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length")


def capture_times(host: str, path: str) -> list[str]:
    """The replayed Wayback's capture timestamps of a page: one in the days after the capture
    was made (20-27 August 2020), and for one page in five a second one a month later, so that
    asking for the newest capture is redirected to it. Derived from the address: stable."""
    digest = hashlib.sha256(f"{host}{path}".encode()).digest()
    first = dt.datetime(2020, 8, 20, tzinfo=dt.UTC) + dt.timedelta(
        seconds=int.from_bytes(digest[:4], "big") % (8 * 86400)
    )
    times = [first]
    if digest[4] % 5 == 0:
        times.append(first + dt.timedelta(days=30, seconds=digest[5] * 60))
    return [t.strftime("%Y%m%d%H%M%S") for t in times]


def _original_key(original: str) -> tuple[str, str] | None:
    parts = urlsplit(original)
    host = (parts.hostname or "").removeprefix("www.")
    return normalize(host, parts.path or "/") if host else None


def _urlkey(host: str, path: str) -> str:
    """The SURT form the CDX index sorts by: `ru,kremlin,en)/events/…`."""
    return ",".join(reversed(host.split("."))) + ")" + path.lower()


def _digest(original: str) -> str:
    import base64

    return base64.b32encode(hashlib.sha1(original.encode()).digest()).decode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kremlin-archive-replay"
    timeout = 60  # an idle keep-alive connection is closed after a minute
    server: _HTTPServer
    published = False  # whether the current request's log entry is in the log yet

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self.server.replay.handle(self, head=False)

    def do_HEAD(self) -> None:
        self.server.replay.handle(self, head=True)

    def _refuse(self) -> None:
        self.server.replay.refuse_method(self)

    do_CONNECT = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = _refuse

    def drop_connection(self, *, reset: bool) -> None:
        """Close the TCP connection now: with a RST (SO_LINGER 0) or an orderly FIN."""
        self.close_connection = True
        sock = self.connection
        try:
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        # rfile holds a reference to the socket; only the last close really closes it.
        self.rfile.close()
        sock.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the replay log records every request


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog of 5 drops the SYNs of a crawler opening 16
    # connections at once, and each dropped SYN costs the client a one-second retransmit.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], replay: ReplayServer):
        self.replay = replay
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn); a loopback proxy needs no DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | OSError):
            return  # a client that went away, or a connection cut by stop()
        super().handle_error(request, client_address)


# --- command line ------------------------------------------------------------------------------


def serve(server: ReplayServer) -> None:
    """Run `server` until Ctrl-C (or SIGTERM), then stop it."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        if server._httpd is None:
            server.start()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
