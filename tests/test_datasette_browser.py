"""Issue 16, items 8–10, in a real browser: `kremlin-archive serve` on the changed archive of
test_datasette_changes.py, read by headless Chromium. Each page's DOM is taken after its scripts
ran (`--dump-dom`) and checked; a screenshot of each is saved (bench/screenshot.py's
`screenshot`) — into $KREMLIN_SCREENSHOT_DIR when set, to be looked at.

Marked `browser` (tests/conftest.py: skipped without Chromium unless the run requires it;
the `chromium` fixture is its binary) and `slow`: each test starts servers and a browser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, urlencode

import lxml.html
import pytest
from test_datasette import EN_ID, RU_ID, demo
from test_datasette_changes import ATOM, build_changed_archive
from test_datasette_reading import INDEX, expected_date

from kremlin_archive import db as dbmod

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "kremlin.db"
    build_changed_archive(path)
    return path


@pytest.fixture(scope="module")
def served(archive):
    """`kremlin-archive serve` on the archive; its address."""
    port = demo.free_port()
    cli = Path(sys.executable).with_name("kremlin-archive")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "kremlin_archive.cli"]
    server = subprocess.Popen(
        [*command, "serve", "--db", str(archive), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        demo.wait_for(f"{base}/kremlin", server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def dump_dom(chromium: str, url: str) -> lxml.html.HtmlElement:
    """The page as Chromium has it once its scripts ran."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                f"--window-size={demo.WINDOW[0]},{demo.WINDOW[1]}",
                "--virtual-time-budget=3000", "--dump-dom", url,
            ],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
    return lxml.html.fromstring(done.stdout.decode("utf-8"))


def screenshot(archive: Path, page: str, name: str, tmp_path: Path) -> Path:
    """A PNG of `page` as a reader's window shows it (bench/screenshot.py serves and shoots)."""
    folder = Path(os.environ.get("KREMLIN_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    png = demo.screenshot(archive, folder / f"{name}.png", page)
    assert demo.png_size(png) == demo.WINDOW
    assert png.stat().st_size > 40_000  # a page of text, not a blank or an error page
    return png


def page_path(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params, quote_via=quote)}" if params else path


# -- 8 --------------------------------------------------------------------------------------------


def test_events_index_in_the_browser(chromium, served, archive, tmp_path):
    root = dump_dom(chromium, f"{served}/kremlin/events")
    assert root.xpath("//table[contains(@class, 'rows-and-columns')]//th/@data-column") == INDEX
    # table.js ran: every column has its menu (the descriptions are in it)
    assert len(root.xpath("//th//svg[contains(@class, 'dropdown-menu-icon')]")) == len(INDEX)
    assert root.xpath("//details[@class='column-notes'][not(@open)]")
    assert not root.xpath("//dl[@class='column-descriptions'][not(@hidden)]")
    dates = root.xpath("//td[contains(@class, 'col-published_at')]/time")
    assert {d.get("lang") for d in dates} == {"ru", "en"}
    screenshot(archive, "/kremlin/events", "events-index", tmp_path)


# -- 9 --------------------------------------------------------------------------------------------


def test_search_results_in_the_browser(chromium, served, archive, tmp_path):
    page = page_path("/kremlin/search_everything", q="Токаев", lang="")
    root = dump_dom(chromium, served + page)
    cells = root.xpath("//td[contains(@class, 'col-excerpt')]")
    assert cells and "**" not in "".join(c.text_content() for c in cells)
    assert all(m.text_content().lower().startswith("токаев") for m in root.xpath("//mark"))
    hrefs = root.xpath("//td[contains(@class, 'col-excerpt')]/a[@class='hit']/@href")
    assert len(hrefs) == len(cells) and all(
        h.startswith(f"/kremlin/events/{RU_ID}#u") for h in hrefs
    )
    for time in root.xpath("//td[contains(@class, 'col-published_at')]/time"):
        assert time.get("lang") == "ru"
        assert time.text_content() == expected_date(time.get("datetime"), "ru")
    ranks = [td.text_content().strip() for td in root.xpath("//td[contains(@class, 'col-rank')]")]
    assert ranks == [str(n) for n in range(1, len(cells) + 1)]
    # the hit's address opens the transcript at that turn
    turn = dump_dom(chromium, served + hrefs[0])
    assert turn.xpath(f"//div[@id='{hrefs[0].split('#')[1]}']")
    screenshot(archive, page, "search-results", tmp_path)


# -- 10 -------------------------------------------------------------------------------------------


def test_revision_page_in_the_browser(chromium, served, archive, tmp_path):
    (revision,) = dbmod.connect(archive, readonly=True).query(
        "SELECT id FROM revisions WHERE event_id = ?", [EN_ID]
    )
    page = f"/kremlin/revisions/{revision['id']}"
    root = dump_dom(chromium, served + page)
    (edited,) = root.xpath("//table[@class='diff']//tr[@class='edited']")
    assert edited.xpath("./td[2]//del/text()") == ["130"]
    assert len(root.xpath("//table[@class='diff']//tr[@class='removed']")) == 1
    fetched = root.xpath("//section[contains(@class, 'version')]//time[@class='fetched']/@datetime")
    assert len(fetched) == 2 and fetched[0] < fetched[1]
    assert len(root.xpath("//section[contains(@class, 'version')]//a[@class='fetch']")) == 2
    screenshot(archive, page, "revision", tmp_path)


def test_recent_changes_and_feed_in_the_browser(chromium, served, archive, tmp_path):
    root = dump_dom(chromium, f"{served}/kremlin/recent_changes")
    changes = [td.text_content().strip() for td in root.xpath("//td[@class='col-change']")]
    assert sorted(changes) == ["edited", "new", "new", "removed", "reparsed"]
    (feed_link,) = root.xpath("//link[@type='application/atom+xml']/@href")
    with urllib.request.urlopen(served + feed_link, timeout=30) as response:
        assert response.headers["content-type"].startswith("application/atom+xml")
        feed = ET.fromstring(response.read())
    terms = [c.get("term") for c in feed.iter(f"{ATOM}category")]
    assert sorted(terms) == sorted(c for c in changes if c != "reparsed")  # the site's changes
    links = [e.find(f"{ATOM}link").get("href") for e in feed.findall(f"{ATOM}entry")]
    assert all(link.startswith(served) for link in links)
    screenshot(archive, "/kremlin/recent_changes", "recent-changes", tmp_path)
