"""kremlin_archive.devtools.replay: the capture replayed through a forward proxy on 127.0.0.1, page
overrides, fault injection, conditional requests and the request log. Clients are urllib (with a
ProxyHandler, as a crawler uses http_proxy) and http.client (for raw request targets)."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import KREMLIN_HTML, MIRROR_TAR, REPO

from kremlin_archive.cli import main
from kremlin_archive.devtools.replay import ReplayServer

EN = "http://en.kremlin.ru"
EVENT = f"{EN}/events/president/news/63017"
OTHER_EVENT = f"{EN}/events/president/news/63123"
FEED = f"{EN}/events/president/news/feed"
ROBOTS = f"{EN}/robots.txt"
LISTING = f"{EN}/events/president/news"
MISSING = f"{EN}/events/president/news/99999999"
RU_66419 = "http://kremlin.ru/events/president/news/66419"
SHELL_404 = KREMLIN_HTML / "ru_error404_acts_bank_43577.html"
HTML = "text/html; charset=utf-8"


# --- helpers -------------------------------------------------------------------------------


def fetch(server: ReplayServer, url: str, headers=None, method="GET"):
    """(status, headers, body) of `url` fetched through the proxy with urllib."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": server.proxy_url}))
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def connect(server: ReplayServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)


def raw(server: ReplayServer, target: str, headers=None, method="GET"):
    """(status, response, body) for a request target sent as is (absolute or origin form)."""
    conn = connect(server)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response, response.read()
    finally:
        conn.close()


def captured(mirror_dir: Path, name: str) -> bytes:
    return (mirror_dir / "en.kremlin.ru" / name).read_bytes()


@pytest.fixture
def replay(mirror_dir):
    with ReplayServer(mirror_dir) as server:
        yield server


@pytest.fixture(scope="module")
def tar_replay():
    with ReplayServer(MIRROR_TAR) as server:
        yield server


# --- serving the capture -------------------------------------------------------------------


def test_event_page_is_served_byte_for_byte(replay, mirror_dir):
    status, headers, body = fetch(replay, EVENT)
    assert status == 200
    assert body == captured(mirror_dir, "events/president/news/63017.html")
    assert headers["Content-Type"] == HTML
    assert headers["Content-Length"] == str(len(body))


def test_event_page_through_http_client_in_absolute_form(replay, mirror_dir):
    status, response, body = raw(replay, EVENT)
    assert status == 200
    assert body == captured(mirror_dir, "events/president/news/63017.html")
    assert response.getheader("Content-Length") == str(len(body))


def test_origin_form_with_a_host_header(replay, mirror_dir):
    status, _, body = raw(replay, "/events/president/news/63017", {"Host": "en.kremlin.ru"})
    assert status == 200
    assert body == captured(mirror_dir, "events/president/news/63017.html")


def test_origin_form_addressed_to_the_server_itself_uses_the_capture_host(replay, mirror_dir):
    """A browser pointed at http://127.0.0.1:PORT/events/president/news sees the listing."""
    status, _, body = raw(replay, "/events/president/news")
    assert status == 200
    assert body == captured(mirror_dir, "events/president/news.html")


def test_feed_is_served_as_atom(replay, mirror_dir):
    status, headers, body = fetch(replay, FEED)
    assert status == 200
    assert headers["Content-Type"].startswith("application/atom+xml")
    assert body == captured(mirror_dir, "events/president/news/feed.xml")
    assert b"<feed" in body


def test_robots_txt_is_plain_text(replay, mirror_dir):
    status, headers, body = fetch(replay, ROBOTS)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert body == captured(mirror_dir, "robots.txt")
    assert b"Disallow: /events/president/news/copy" in body


def test_listing_page_one_and_page_two(replay, mirror_dir):
    status, _, body = fetch(replay, LISTING)
    assert (status, body) == (200, captured(mirror_dir, "events/president/news.html"))
    status, _, body = fetch(replay, f"{LISTING}/page/2")
    assert (status, body) == (200, captured(mirror_dir, "events/president/news/page/2.html"))


def test_by_date_page(replay, mirror_dir):
    status, _, body = fetch(replay, f"{LISTING}/by-date/18.03.2020")
    assert status == 200
    assert body == captured(mirror_dir, "events/president/news/by-date/18.03.2020.html")


@pytest.mark.parametrize(
    "url",
    [
        f"{EVENT}?utm_source=feed&x=1",
        f"{EVENT}/",
        f"{EVENT}/?a=b",
        "http://EN.Kremlin.RU./events/president/news/63017",
    ],
)
def test_query_trailing_slash_and_host_case_do_not_matter(replay, mirror_dir, url):
    status, _, body = raw(replay, url)
    assert status == 200
    assert body == captured(mirror_dir, "events/president/news/63017.html")


def test_page_not_in_the_capture_is_404_with_a_small_html_body(replay):
    status, headers, body = fetch(replay, MISSING)
    assert status == 404
    assert headers["Content-Type"] == HTML
    assert b"404" in body
    assert len(body) < 1000


def test_the_saved_file_name_itself_is_not_a_url(replay):
    assert fetch(replay, f"{EVENT}.html")[0] == 404


def test_head_gives_the_headers_without_a_body(replay, mirror_dir):
    status, response, body = raw(replay, EVENT, method="HEAD")
    assert status == 200
    assert body == b""
    size = len(captured(mirror_dir, "events/president/news/63017.html"))
    assert response.getheader("Content-Length") == str(size)


def test_one_connection_serves_several_requests(replay):
    conn = connect(replay)
    try:
        for url in (EVENT, ROBOTS, MISSING, FEED):
            conn.request("GET", url)
            response = conn.getresponse()
            response.read()
            assert response.status in (200, 404)
    finally:
        conn.close()
    assert replay.count() == 4


@pytest.fixture
def no_dns(monkeypatch):
    """Record every name resolution in the process (server threads included)."""
    looked_up: list[str] = []
    real = socket.getaddrinfo

    def recording(host, *args, **kwargs):
        looked_up.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return looked_up


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "http://example.com/events/president/news/63017",
        "http://kremlin.ru.evil.com/events/president/news/63017",
        "http://evilkremlin.ru/events/president/news/63017",
        "http://kremlin.ru/events/president/news/63017",  # host not in this capture
        "http://127.0.0.1/events/president/news/63017",
        "http://[::1]/events/president/news/63017",
        "http://10.0.0.1:8080/robots.txt",
    ],
)
def test_other_hosts_are_404_and_never_looked_up(replay, no_dns, url):
    status, _, body = raw(replay, url)
    assert status == 404
    assert len(body) < 1000  # the small 404 page, not a page of the capture
    assert set(no_dns) <= {"127.0.0.1"}


def test_non_http_scheme_in_the_request_target_is_404(replay):
    assert raw(replay, "ftp://en.kremlin.ru/robots.txt")[0] == 404
    assert raw(replay, "file:///etc/passwd")[0] == 404


@pytest.mark.parametrize("method", ["CONNECT", "POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_and_tunnels_are_refused_with_405(replay, method):
    with socket.create_connection(("127.0.0.1", replay.port), timeout=5) as sock:
        target = "en.kremlin.ru:443" if method == "CONNECT" else EVENT
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: en.kremlin.ru\r\n\r\n".encode())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert b"Allow: GET, HEAD" in answer
    assert replay.log[-1].status == 405


# --- path traversal ------------------------------------------------------------------------

SECRET = b"<p>SECRET OUTSIDE THE CAPTURE</p>"


@pytest.fixture
def small_capture(tmp_path):
    """A capture with one page, secrets beside and above it, and a symlink leading out."""
    root = tmp_path / "capture"
    page = root / "en.kremlin.ru" / "events" / "president" / "news" / "1.html"
    page.parent.mkdir(parents=True)
    page.write_bytes(b"<p>page one</p>")
    (tmp_path / "secret.html").write_bytes(SECRET)
    (root / "secret.html").write_bytes(SECRET)
    (root / "en.kremlin.ru" / "leak.html").symlink_to(tmp_path / "secret.html")
    return root


TRAVERSALS = [
    f"{EN}/../secret",
    f"{EN}/../../secret",
    f"{EN}/%2e%2e/secret",
    f"{EN}/%2E%2E/%2e%2e/secret",
    f"{EN}/..%2fsecret",
    f"{EN}/..%2F..%2Fsecret",
    f"{EN}/events/..%2f..%2f..%2f..%2fsecret",
    f"{EN}/events/%252e%252e/%252e%252e/%252e%252e/%252e%252e/secret",
    f"{EN}/%2fsecret",
    f"{EN}//secret",
    f"{EN}/..\\secret",
    f"{EN}/%5c..%5csecret",
    f"{EN}/%00/../secret",
    f"{EN}/leak",
    "http://../secret",
    "http://en.kremlin.ru%2f..%2f../secret",
    "http://secret.html/",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_in_absolute_form_does_not_leave_the_capture(small_capture, target):
    with ReplayServer(small_capture) as server:
        assert raw(server, f"{EN}/events/president/news/1")[0] == 200
        status, _, body = raw(server, target, {"Host": "en.kremlin.ru"})
    assert status == 404
    assert SECRET not in body


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("/../secret", "en.kremlin.ru"),
        ("/%2e%2e/secret", "en.kremlin.ru"),
        ("/..%2f..%2fsecret", "en.kremlin.ru"),
        ("/secret", ".."),
        ("/secret", "en.kremlin.ru/.."),
        ("/../../secret", "127.0.0.1"),
        ("//secret", "en.kremlin.ru"),
    ],
)
def test_traversal_in_origin_form_does_not_leave_the_capture(small_capture, target, host):
    with ReplayServer(small_capture) as server:
        status, _, body = raw(server, target, {"Host": host})
    assert status == 404
    assert SECRET not in body


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tar_members_with_unsafe_names_are_never_served(tmp_path):
    archive = tmp_path / "capture.tar.gz"
    archive.write_bytes(
        _tar_gz(
            {
                "./en.kremlin.ru/robots.txt": b"User-agent: *\n",
                "../en.kremlin.ru/events/president/news/1.html": SECRET,
                "/en.kremlin.ru/events/president/news/2.html": SECRET,
                "en.kremlin.ru/../en.kremlin.ru/events/president/news/3.html": SECRET,
            }
        )
    )
    with ReplayServer(archive) as server:
        assert raw(server, ROBOTS)[2] == b"User-agent: *\n"
        for n in (1, 2, 3):
            assert raw(server, f"{EN}/events/president/news/{n}")[0] == 404
    assert gzip.decompress(archive.read_bytes())  # really a gzip archive


# --- overrides -----------------------------------------------------------------------------


def test_put_file_adds_a_page_of_another_host(replay):
    """The Russian page is a reconstruction (shared/kremlin-html/reconstructed/README.md)."""
    page = KREMLIN_HTML / "reconstructed" / "ru_news_66419.html"
    assert fetch(replay, RU_66419)[0] == 404
    replay.put_file(RU_66419, page)
    status, headers, body = fetch(replay, RU_66419)
    assert (status, body) == (200, page.read_bytes())
    assert headers["Content-Type"] == HTML
    assert fetch(replay, f"{RU_66419}?from=feed")[2] == page.read_bytes()


def test_put_replaces_a_captured_page_until_restored(replay, mirror_dir):
    replay.put(EVENT, b"<p>changed text</p>")
    assert fetch(replay, EVENT)[2] == b"<p>changed text</p>"
    replay.restore(EVENT)
    assert fetch(replay, EVENT)[2] == captured(mirror_dir, "events/president/news/63017.html")


def test_put_with_status_headers_and_content_type(replay):
    replay.put(
        f"{EN}/events/president/news/1",
        b"gone",
        status=410,
        headers={"X-Test": "yes", "Content-Length": "999"},
        content_type="text/plain",
    )
    status, headers, body = fetch(replay, f"{EN}/events/president/news/1")
    assert (status, body) == (410, b"gone")
    assert headers["X-Test"] == "yes"
    assert headers["Content-Type"] == "text/plain"
    assert headers["Content-Length"] == "4"


def test_put_guesses_the_content_type_from_the_url(replay):
    replay.put("http://kremlin.ru/events/president/news/feed", b"<feed/>")
    replay.put("http://kremlin.ru/robots.txt", b"User-agent: *\n")
    assert fetch(replay, "http://kremlin.ru/events/president/news/feed")[1][
        "Content-Type"
    ].startswith("application/atom+xml")
    assert fetch(replay, "http://kremlin.ru/robots.txt")[1]["Content-Type"].startswith("text/plain")


def test_remove_makes_a_captured_page_404(replay):
    replay.remove(EVENT)
    assert fetch(replay, EVENT)[0] == 404
    assert fetch(replay, OTHER_EVENT)[0] == 200


@pytest.mark.parametrize("url", ["/events/president/news/1", "kremlin.ru/x", f"{EN}/../x", ""])
def test_put_wants_an_absolute_http_url(replay, url):
    with pytest.raises(ValueError):
        replay.put(url, b"x")


def test_a_server_without_a_capture_serves_only_what_is_put():
    with ReplayServer() as server:
        assert fetch(server, EVENT)[0] == 404
        server.put(EVENT, b"<p>only this</p>")
        assert fetch(server, EVENT)[2] == b"<p>only this</p>"


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_then_success_after_times(replay, mirror_dir, status):
    replay.fault(EVENT, status, times=2)
    assert fetch(replay, EVENT)[0] == status
    assert fetch(replay, EVENT)[0] == status
    ok, _, body = fetch(replay, EVENT)
    assert (ok, body) == (200, captured(mirror_dir, "events/president/news/63017.html"))
    assert [r.status for r in replay.log] == [status, status, 200]
    assert [r.fault for r in replay.log] == [str(status), str(status), None]


@pytest.mark.parametrize("status", [429, 403])
def test_429_and_403_carry_retry_after(replay, status):
    replay.fault(EVENT, status, times=1, retry_after=7)
    code, headers, _ = fetch(replay, EVENT)
    assert (code, headers["Retry-After"]) == (status, "7")
    assert fetch(replay, EVENT)[0] == 200


def test_retry_after_defaults_to_one_second(replay):
    replay.fault(EVENT, 429, times=1)
    assert fetch(replay, EVENT)[1]["Retry-After"] == "1"


def test_refuse_answers_a_run_of_403s_to_every_matching_url(replay):
    replay.fault(re.compile(r"/events/president/news/\d+$"), "refuse", times=3)
    urls = [EVENT, OTHER_EVENT, MISSING, EVENT, OTHER_EVENT]
    assert fetch(replay, ROBOTS)[0] == 200  # not matching: untouched
    answers = [fetch(replay, url) for url in urls]
    assert [status for status, _, _ in answers] == [403, 403, 403, 200, 200]
    assert all("Retry-After" not in headers for _, headers, _ in answers)


def test_after_lets_the_first_matching_requests_through(replay):
    """The live site starts refusing after a while."""
    replay.fault("/events/president/news/", "refuse", after=2)
    statuses = [fetch(replay, url)[0] for url in (EVENT, OTHER_EVENT, EVENT, FEED)]
    assert statuses == [200, 200, 403, 403]


def test_exact_url_fault_ignores_the_query_but_not_other_urls(replay):
    replay.fault(EVENT, 503)
    assert fetch(replay, f"{EVENT}?x=1")[0] == 503
    assert fetch(replay, f"{EVENT}/")[0] == 503
    assert fetch(replay, f"{EN}/events/president/news/630170")[0] == 404
    assert fetch(replay, OTHER_EVENT)[0] == 200


def test_faults_can_be_cleared(replay):
    replay.fault(EVENT, 500)
    assert fetch(replay, EVENT)[0] == 500
    replay.clear_faults()
    assert fetch(replay, EVENT)[0] == 200


def test_slow_delays_its_url_without_holding_up_others(replay):
    replay.fault(EVENT, "slow", delay=0.4)
    results = {}

    def slow_fetch():
        started = time.monotonic()
        results["status"] = fetch(replay, EVENT)[0]
        results["took"] = time.monotonic() - started

    thread = threading.Thread(target=slow_fetch)
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert fetch(replay, ROBOTS)[0] == 200
    assert time.monotonic() - started < 0.3
    thread.join(5)
    assert results["status"] == 200
    assert results["took"] >= 0.4


def test_stop_cuts_a_slow_answer_short(mirror_dir):
    server = ReplayServer(mirror_dir).start()
    server.fault(EVENT, "slow", delay=30)
    errors = []

    def slow_fetch():
        try:
            raw(server, EVENT)
        except (OSError, http.client.HTTPException) as error:
            errors.append(error)

    thread = threading.Thread(target=slow_fetch)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    thread.join(5)
    assert not thread.is_alive()
    assert errors, "the client should see the connection dropped"
    assert server.log[-1].fault == "slow"
    assert server.log[-1].status is None


def test_reset_sends_part_of_the_body_then_resets(replay):
    replay.fault(EVENT, "reset", times=1, sent=1000)
    conn = connect(replay)
    try:
        conn.request("GET", EVENT)
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises(ConnectionResetError):
            response.read()
    finally:
        conn.close()
    assert replay.log[-1].fault == "reset"
    assert replay.log[-1].bytes == 1000
    assert fetch(replay, EVENT)[0] == 200  # exhausted


def test_reset_through_urllib_raises(replay):
    replay.fault(EVENT, "reset")
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        fetch(replay, EVENT)


def test_short_body_under_a_longer_content_length(replay, mirror_dir):
    page = captured(mirror_dir, "events/president/news/63017.html")
    replay.fault(EVENT, "short", times=1, sent=5000)
    conn = connect(replay)
    try:
        conn.request("GET", EVENT)
        response = conn.getresponse()
        assert response.getheader("Content-Length") == str(len(page))
        with pytest.raises(http.client.IncompleteRead) as excinfo:
            response.read()
    finally:
        conn.close()
    assert excinfo.value.partial == page[:5000]
    assert excinfo.value.expected == len(page) - 5000


def test_short_defaults_to_half_the_body(replay, mirror_dir):
    page = captured(mirror_dir, "robots.txt")
    replay.fault(ROBOTS, "short")
    with pytest.raises(http.client.IncompleteRead) as excinfo:
        fetch(replay, ROBOTS)
    assert excinfo.value.partial == page[: len(page) // 2]


def test_invalid_utf8_flips_one_byte(replay, mirror_dir):
    page = captured(mirror_dir, "events/president/news/63017.html")
    page.decode("utf-8")
    replay.fault(EVENT, "invalid-utf8", times=1)
    status, headers, body = fetch(replay, EVENT)
    assert status == 200
    assert headers["Content-Type"] == HTML
    assert len(body) == len(page)
    assert sum(a != b for a, b in zip(body, page, strict=True)) == 1
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    assert fetch(replay, EVENT)[2] == page


def test_invalid_utf8_at_a_given_offset(replay, mirror_dir):
    replay.fault(ROBOTS, "invalid-utf8", at=0)
    assert fetch(replay, ROBOTS)[2][:1] == b"\xff"


def test_shell404_answers_200_with_the_site_404_page(replay):
    replay.fault(EVENT, "shell404", path=SHELL_404)
    status, _, body = fetch(replay, EVENT)
    assert status == 200
    assert body == SHELL_404.read_bytes()


def test_shell404_needs_the_page(replay, tmp_path):
    with pytest.raises(TypeError, match="path="):
        replay.fault(EVENT, "shell404")
    with pytest.raises(FileNotFoundError):
        replay.fault(EVENT, "shell404", path=tmp_path / "missing.html")


def test_redirect_to_another_host(replay):
    replay.fault(EVENT, "redirect", location="http://example.com/elsewhere")
    status, response, _ = raw(replay, EVENT)
    assert status == 302
    assert response.getheader("Location") == "http://example.com/elsewhere"


def test_huge_body_with_content_length(replay):
    size = 3 * 1024 * 1024  # e.g. above a DOWNLOAD_MAXSIZE of 1 MiB
    replay.fault(EVENT, "huge", size=size)
    status, headers, body = fetch(replay, EVENT)
    assert status == 200
    assert headers["Content-Length"] == str(size)
    assert len(body) == size
    assert body.startswith(b"<!doctype html>")


def test_huge_body_without_content_length_ends_with_the_connection(replay):
    replay.fault(EVENT, "huge", size=300_000, content_length=False)
    status, response, body = raw(replay, EVENT)
    assert status == 200
    assert response.getheader("Content-Length") is None
    assert len(body) == 300_000


def test_a_client_giving_up_on_a_huge_body_does_not_hurt_the_server(replay):
    replay.fault(EVENT, "huge", size=200 * 1024 * 1024, times=1)
    conn = connect(replay)
    conn.request("GET", EVENT)
    response = conn.getresponse()
    response.read(100_000)
    conn.close()
    assert fetch(replay, ROBOTS)[0] == 200
    deadline = time.monotonic() + 5
    while replay.log[0].duration == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert replay.log[0].bytes < 200 * 1024 * 1024


@pytest.mark.parametrize(
    ("kind", "params", "error"),
    [
        ("teapot", {}, ValueError),
        (200, {}, ValueError),
        ("slow", {"seconds": 1}, TypeError),
        (503, {"delay": 1}, TypeError),
        ("redirect", {}, TypeError),
        ("huge", {}, TypeError),
    ],
)
def test_unknown_fault_kinds_and_params_are_refused(replay, kind, params, error):
    with pytest.raises(error):
        replay.fault(EVENT, kind, **params)


def test_every_fault_served_is_logged_with_its_kind(replay):
    kinds = [503, 429, "refuse", "invalid-utf8", "redirect"]
    for kind in kinds:
        params = {"location": "http://example.com/"} if kind == "redirect" else {}
        replay.fault(EVENT, kind, times=1, **params)
    for _ in kinds:
        raw(replay, EVENT)
    raw(replay, EVENT)
    assert [r.fault for r in replay.log] == [
        "503",
        "429",
        "refuse",
        "invalid-utf8",
        "redirect",
        None,
    ]
    assert [r.status for r in replay.log] == [503, 429, 403, 200, 302, 200]


# --- conditional requests ------------------------------------------------------------------


@pytest.fixture
def etag_replay(mirror_dir):
    with ReplayServer(mirror_dir, etags=True) as server:
        yield server


def test_etag_is_the_quoted_sha256_prefix_of_the_body(etag_replay):
    _, headers, body = fetch(etag_replay, EVENT)
    assert headers["ETag"] == '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


@pytest.mark.parametrize("form", ["{}", "W/{}", '"other", {}', "*"])
def test_if_none_match_gives_304_without_a_body(etag_replay, form):
    etag = fetch(etag_replay, EVENT)[1]["ETag"]
    status, response, body = raw(etag_replay, EVENT, {"If-None-Match": form.format(etag)})
    assert status == 304
    assert body == b""
    assert response.getheader("ETag") == etag
    assert etag_replay.log[-1].headers["If-None-Match"] == form.format(etag)


def test_a_changed_page_gets_a_new_etag_and_a_full_answer(etag_replay):
    etag = fetch(etag_replay, EVENT)[1]["ETag"]
    etag_replay.put(EVENT, b"<p>edited</p>")
    status, headers, body = fetch(etag_replay, EVENT, {"If-None-Match": etag})
    assert (status, body) == (200, b"<p>edited</p>")
    assert headers["ETag"] != etag


def test_no_etags_unless_asked(replay):
    _, headers, _ = fetch(replay, EVENT)
    assert "ETag" not in headers
    assert "Last-Modified" not in headers  # as the site in 2020
    assert fetch(replay, EVENT, {"If-None-Match": "*"})[0] == 200


def test_last_modified_and_if_modified_since(mirror_dir):
    with ReplayServer(mirror_dir, last_modified="2020-08-27T12:00:00+00:00") as server:
        _, headers, _ = fetch(server, EVENT)
        assert headers["Last-Modified"] == "Thu, 27 Aug 2020 12:00:00 GMT"
        later, earlier = "Fri, 28 Aug 2020 00:00:00 GMT", "Wed, 26 Aug 2020 00:00:00 GMT"
        assert fetch(server, EVENT, {"If-Modified-Since": headers["Last-Modified"]})[0] == 304
        assert fetch(server, EVENT, {"If-Modified-Since": later})[0] == 304
        assert fetch(server, EVENT, {"If-Modified-Since": earlier})[0] == 200
        assert fetch(server, EVENT, {"If-Modified-Since": "garbage"})[0] == 200


def test_if_none_match_wins_over_if_modified_since(mirror_dir):
    with ReplayServer(mirror_dir, etags=True, last_modified=0) as server:
        headers = {"If-None-Match": '"stale"', "If-Modified-Since": "Fri, 28 Aug 2020 00:00:00 GMT"}
        assert fetch(server, EVENT, headers)[0] == 200


def test_last_modified_of_one_page(replay):
    replay.put(RU_66419, b"<p>x</p>", last_modified="Sat, 21 Aug 2021 10:40:00 GMT")
    assert fetch(replay, RU_66419)[1]["Last-Modified"] == "Sat, 21 Aug 2021 10:40:00 GMT"
    since = {"If-Modified-Since": "Sat, 21 Aug 2021 10:40:00 GMT"}
    assert fetch(replay, RU_66419, since)[0] == 304
    assert "Last-Modified" not in fetch(replay, EVENT)[1]


# --- the log -------------------------------------------------------------------------------


def test_log_counts_and_filters(replay):
    fetch(replay, EVENT, {"User-Agent": "kremlin-archive-test/1"})
    fetch(replay, OTHER_EVENT)
    fetch(replay, MISSING)
    fetch(replay, ROBOTS)
    assert replay.count() == 4
    assert replay.count("/events/president/news/") == 3
    assert replay.count(re.compile(r"/news/\d+$")) == 3
    assert replay.count(lambda r: r.status == 404) == 1
    (entry,) = replay.requests_for("63017")
    assert (entry.method, entry.url, entry.status) == ("GET", EVENT, 200)
    assert entry.headers["User-Agent"] == "kremlin-archive-test/1"
    assert entry.bytes > 10_000
    assert entry.client == "127.0.0.1"
    assert [r.url for r in replay.requests_for(re.compile("robots"))] == [ROBOTS]
    replay.clear_log()
    assert replay.count() == 0


def test_the_log_entry_exists_as_soon_as_the_client_has_its_answer(replay):
    for n in range(30):
        fetch(replay, f"{EVENT}?n={n}")
        assert replay.count() == n + 1


def test_json_lines_log_file(mirror_dir, tmp_path):
    log_path = tmp_path / "replay.jsonl"
    with ReplayServer(mirror_dir, log_path=log_path) as server:
        server.fault(OTHER_EVENT, 503, times=1)
        fetch(server, EVENT)
        fetch(server, OTHER_EVENT)
    lines = [json.loads(line) for line in log_path.read_text("utf-8").splitlines()]
    assert [(r["url"], r["status"], r["fault"]) for r in lines] == [
        (EVENT, 200, None),
        (OTHER_EVENT, 503, "503"),
    ]
    assert {"method", "bytes", "headers", "time", "at", "duration"} <= set(lines[0])


# --- binding, lifecycle, start-up ------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_a_non_loopback_address_is_refused(mirror_dir, host):
    with pytest.raises(ValueError, match="non-loopback"):
        ReplayServer(mirror_dir, host=host)


def test_proxy_url_names_the_loopback_port(replay):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", replay.proxy_url)
    assert replay.proxy_url.endswith(f":{replay.port}")


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback(mirror_dir):
    with ReplayServer(mirror_dir, host="::1") as server:
        assert re.fullmatch(r"http://\[::1\]:\d+", server.proxy_url)
        conn = http.client.HTTPConnection("::1", server.port, timeout=10)
        conn.request("GET", ROBOTS)
        assert conn.getresponse().status == 200
        conn.close()


def test_many_clients_at_once(replay, mirror_dir):
    """A crawler opens many connections together; none waits on a full listen backlog."""
    page = captured(mirror_dir, "events/president/news/63017.html")
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(fetch(replay, EVENT)[2] == page))
        for _ in range(40)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [True] * 40
    assert time.monotonic() - started < 0.9  # a dropped SYN would cost a 1 s retransmit
    assert replay.count() == 40


def test_proxy_url_needs_a_started_server(mirror_dir):
    with pytest.raises(RuntimeError):
        _ = ReplayServer(mirror_dir).proxy_url


def test_a_missing_capture_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        ReplayServer(tmp_path / "nope.tar.xz")


def test_a_directory_capture_starts_at_once(mirror_dir):
    with ReplayServer(mirror_dir) as server:
        assert server.startup_seconds < 0.5


def test_the_tar_xz_is_served_directly(tar_replay, mirror_dir):
    print(f"replay start-up from {MIRROR_TAR.name}: {tar_replay.startup_seconds:.2f} s")
    assert tar_replay.startup_seconds < 15
    assert len(tar_replay.mirror) == 8881  # 6,656 events + 2,223 listings + feed + robots
    for url, name in [
        (EVENT, "events/president/news/63017.html"),
        (FEED, "events/president/news/feed.xml"),
        (ROBOTS, "robots.txt"),
        (LISTING, "events/president/news.html"),
        (f"{LISTING}/page/2", "events/president/news/page/2.html"),
        (f"{LISTING}/by-date/05.09.2005", "events/president/news/by-date/05.09.2005.html"),
    ]:
        status, _, body = fetch(tar_replay, url)
        assert (status, body) == (200, captured(mirror_dir, name)), url
    assert fetch(tar_replay, MISSING)[0] == 404


def test_a_second_server_on_the_same_tar_reuses_the_unpacked_copy(tar_replay):
    with ReplayServer(MIRROR_TAR) as second:
        assert second.mirror is tar_replay.mirror
        assert second.startup_seconds < 0.5
        assert fetch(second, ROBOTS)[0] == 200


def test_the_invalid_utf8_page_is_served_as_captured(tar_replay, mirror_dir):
    body = fetch(tar_replay, OTHER_EVENT)[2]
    assert body == captured(mirror_dir, "events/president/news/63123.html")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")


# --- command line --------------------------------------------------------------------------


def test_command_line_serves_until_interrupted(mirror_dir, tmp_path):
    log_path = tmp_path / "cli.jsonl"
    command = [sys.executable, "-m", "kremlin_archive.cli", "replay", str(mirror_dir)]
    command += ["--port", "0"]
    process = subprocess.Popen(
        [*command, "--log", str(log_path), "--etags", "--quiet"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal: a test run started in the background of a shell script
        # ignores SIGINT, and a child inherits that (found when `make test &` failed here)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first_line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first_line)
        assert match, first_line
        conn = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
        conn.request("GET", ROBOTS)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("ETag")
        response.read()
        conn.close()
    finally:
        # what the server's signals are (inherited from this process: a blocked or ignored
        # SIGINT would keep it serving), for the message if it does not stop
        with open(f"/proc/{process.pid}/status") as status:
            signals = [line.strip() for line in status if line.startswith(("SigBlk", "SigIgn"))]
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=10)  # the pipes drained while it stops
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
            pytest.fail(f"replay did not stop on SIGINT ({signals}): {err[-3000:]}")
    assert process.returncode == 0, err
    assert json.loads(log_path.read_text().splitlines()[0])["url"] == ROBOTS


@pytest.mark.parametrize(
    "args",
    [["--host", "0.0.0.0"], ["--port", "0", "--host", "203.0.113.5"]],
)
def test_command_line_refuses_a_non_loopback_host(mirror_dir, args):
    result = CliRunner().invoke(main, ["replay", str(mirror_dir), *args])
    assert result.exit_code == 2
    assert "non-loopback" in result.output


def test_command_line_reports_a_missing_capture(tmp_path):
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "missing.tar.xz"), "--port", "0"])
    assert result.exit_code == 2
    assert "does not exist" in result.output
