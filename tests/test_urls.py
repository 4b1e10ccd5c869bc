"""kremlin_archive.urls: every pasted form of an event URL -> (lang, kremlin_id, canonical URL);
everything else -> ValueError naming the URL; the listing/feed/robots builders."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from pathlib import Path
from urllib.parse import urljoin

import pytest
from conftest import KREMLIN_HTML
from hypothesis import given
from hypothesis import strategies as st
from lxml import html

from kremlin_archive.urls import (
    MAX_URL_LENGTH,
    EventURL,
    by_date_url,
    copy_url,
    event_url,
    feed_url,
    is_event_url,
    lang_of_host,
    listing_url,
    parse_event_url,
    robots_url,
)

RU_66419 = ("ru", 66419, "http://kremlin.ru/events/president/news/66419")
EN_63017 = ("en", 63017, "http://en.kremlin.ru/events/president/news/63017")

# --- accepted forms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://kremlin.ru/events/president/news/66419",
        "https://kremlin.ru/events/president/news/66419",
        "http://www.kremlin.ru/events/president/news/66419",
        "https://www.kremlin.ru/events/president/news/66419",
        "kremlin.ru/events/president/news/66419",
        "www.kremlin.ru/events/president/news/66419",
        "HTTP://KREMLIN.RU/events/president/news/66419",
        "http://kremlin.ru./events/president/news/66419",
        "http://kremlin.ru:80/events/president/news/66419",
        "https://kremlin.ru:443/events/president/news/66419",
        # the seed's own form (the text version), which robots.txt forbids fetching
        "http://kremlin.ru/events/president/news/copy/66419",
        "http://kremlin.ru/events/president/transcripts/66419",
        "http://kremlin.ru/events/president/transcripts/copy/66419",
        "http://kremlin.ru/events/president/transcripts/speeches/66419",
        "http://kremlin.ru/events/president/transcripts/statements/66419",
        "http://kremlin.ru/events/president/transcripts/news-conferences/66419",
        "http://kremlin.ru/events/president/transcripts/press-statements/66419",
        "http://kremlin.ru/events/president/transcripts/messages/66419",
        "http://kremlin.ru/events/president/news/66419/print",
        "http://kremlin.ru/events/president/news/66419/photos",
        "http://kremlin.ru/events/president/news/66419/videos",
        "http://kremlin.ru/d/66419",
        "http://kremlin.ru/events/president/news/66419/",
        "http://kremlin.ru/events/president/news/66419/print/",
        "http://kremlin.ru/d/66419/",
        "http://kremlin.ru/events/president/news/66419?utm_source=x&b=2",
        "http://kremlin.ru/events/president/news/66419#comments",
        "http://kremlin.ru/events/president/news/66419/?q=1#top",
        "  http://kremlin.ru/events/president/news/66419\n",
        b"http://kremlin.ru/events/president/news/66419",
    ],
)
def test_every_pasted_form_of_a_ru_event_gives_the_canonical_url(url):
    assert parse_event_url(url) == RU_66419


@pytest.mark.parametrize(
    "url",
    [
        "http://en.kremlin.ru/events/president/news/63017",
        "https://en.kremlin.ru/events/president/news/63017",
        "http://www.en.kremlin.ru/events/president/news/63017",
        "en.kremlin.ru/events/president/news/63017",
        "http://en.kremlin.ru/events/president/news/copy/63017",
        "http://en.kremlin.ru/events/president/transcripts/63017",
        "http://en.kremlin.ru/events/president/transcripts/speeches/63017",
        "http://en.kremlin.ru/events/president/news/63017/print",
        "http://en.kremlin.ru/d/63017",
        "http://en.kremlin.ru/events/president/news/63017/?x=1#y",
        # the file name of a saved page (how the mirror stores it)
        "http://en.kremlin.ru/events/president/news/63017.html",
    ],
)
def test_every_pasted_form_of_an_en_event_gives_the_canonical_url(url):
    assert parse_event_url(url) == EN_63017


def test_result_is_a_named_tuple():
    parsed = parse_event_url("http://kremlin.ru/events/president/news/copy/66419")
    assert isinstance(parsed, EventURL)
    assert parsed.lang == "ru"
    assert parsed.kremlin_id == 66419
    assert parsed.url == "http://kremlin.ru/events/president/news/66419"


@pytest.mark.parametrize("kremlin_id", [1, 4, 11, 6152, 37356, 80518, 999_999_999])
def test_ids_of_every_era_are_accepted(kremlin_id):
    assert parse_event_url(f"http://kremlin.ru/events/president/news/{kremlin_id}").kremlin_id == (
        kremlin_id
    )


def test_leading_zeros_in_the_id_are_dropped():
    assert parse_event_url("http://kremlin.ru/events/president/news/066419") == RU_66419


# --- refused input -------------------------------------------------------------------------

REFUSED = [
    # other hosts
    "http://example.com/events/president/news/66419",
    "http://kremlin.ru.evil.com/events/president/news/66419",
    "http://evilkremlin.ru/events/president/news/66419",
    "http://special.kremlin.ru/events/president/news/66419",
    "http://static.kremlin.ru/events/president/news/66419",
    "http://kremlin.ru@evil.com/events/president/news/66419",
    "http://user:pw@kremlin.ru/events/president/news/66419",
    "http://evil.com#@kremlin.ru/events/president/news/66419",
    "http://kremlin.ru:8080/events/president/news/66419",
    "//kremlin.ru/events/president/news/66419",
    # other schemes
    "file:///etc/passwd",
    "file://kremlin.ru/events/president/news/66419",
    "javascript:alert(1)",
    "javascript://kremlin.ru/events/president/news/66419",
    "ftp://kremlin.ru/events/president/news/66419",
    "data:text/html,<p>kremlin.ru/events/president/news/1</p>",
    # IP addresses
    "http://127.0.0.1/",
    "http://127.0.0.1/events/president/news/66419",
    "http://[::1]/",
    "http://[::1]/events/president/news/66419",
    "http://95.173.136.70/events/president/news/66419",
    # non-event paths of the right host
    "http://kremlin.ru/",
    "http://kremlin.ru",
    "http://kremlin.ru/acts/bank/52490",
    "http://kremlin.ru/events/president/news",
    "http://kremlin.ru/events/president/news/",
    "http://kremlin.ru/events/president/news/page/2",
    "http://en.kremlin.ru/events/president/news/by-date/18.03.2020",
    "http://en.kremlin.ru/events/president/news/feed",
    "http://kremlin.ru/events/president/transcripts",
    "http://kremlin.ru/events/president/transcripts/speeches",
    "http://kremlin.ru/events/president/news/copy",
    "http://kremlin.ru/events/president/news/0",
    "http://kremlin.ru/d/0",
    "http://kremlin.ru/events/president/news/1234567890",
    "http://kremlin.ru/events/president/news/66419abc",
    "http://kremlin.ru/events/president/news/-66419",
    "http://kremlin.ru/events/president/news//66419",
    "http://kremlin.ru/events/president/news/66419/comments",
    "http://kremlin.ru/events/president/trips/66419",
    "http://kremlin.ru/supplement/5012",
    "http://kremlin.ru/catalog/persons/1640/events",
    "http://kremlin.ru/events/administration/66419",
    "http://kremlin.ru/events/president/news/66419/../../../acts/bank/1",
    # garbage
    "66419",
    "kremlin",
    "not a url",
    "http://",
    "http:///events/president/news/66419",
    "http://[::1",
    "http://kremlin.ru:99999/events/president/news/66419",
    "http://kremlin.ru:abc/events/president/news/66419",
]


@pytest.mark.parametrize("url", REFUSED)
def test_anything_else_raises_value_error_naming_the_url(url):
    with pytest.raises(ValueError) as excinfo:
        parse_event_url(url)
    assert url in str(excinfo.value)
    assert not is_event_url(url)


@pytest.mark.parametrize(
    "url",
    [
        # digits of other scripts are not the site's ids (int() would happily read them)
        "http://kremlin.ru/events/president/news/٦٦٤١٩",
        "http://kremlin.ru/events/president/news/６６４１９",
        "http://kremlin.ru/d/６６４１９",
    ],
)
def test_non_ascii_digits_are_refused(url):
    with pytest.raises(ValueError, match=r"not a kremlin\.ru event"):
        parse_event_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://kremlin.ru/events/president/news/66419\x00",
        "http://kremlin.ru/events/pre\tsident/news/66419",
        "http://kremlin.ru/events/president/news/\x7f66419",
    ],
)
def test_control_characters_are_refused_and_shown_escaped(url):
    with pytest.raises(ValueError) as excinfo:
        parse_event_url(url)
    assert repr(url) in str(excinfo.value)


def test_overlong_url_is_refused_naming_a_prefix():
    url = "http://kremlin.ru/events/president/news/66419?" + "a" * MAX_URL_LENGTH
    with pytest.raises(ValueError, match="longer than") as excinfo:
        parse_event_url(url)
    message = str(excinfo.value)
    assert url[:60] in message
    assert len(message) < 300


def test_url_of_exactly_the_maximum_length_is_accepted():
    base = "http://kremlin.ru/events/president/news/66419?"
    url = base + "a" * (MAX_URL_LENGTH - len(base))
    assert parse_event_url(url) == RU_66419


def test_non_utf8_bytes_are_refused_naming_them():
    raw = b"http://kremlin.ru/events/president/news/66419\xff\xfe"
    with pytest.raises(ValueError, match="not UTF-8") as excinfo:
        parse_event_url(raw)
    assert "kremlin.ru/events/president/news/66419" in str(excinfo.value)


@pytest.mark.parametrize("value", ["", "   ", "\n\t", b""])
def test_empty_input_is_refused(value):
    with pytest.raises(ValueError, match="empty"):
        parse_event_url(value)


@pytest.mark.parametrize("value", [None, 66419, 3.5, ["http://kremlin.ru/d/1"], object()])
def test_non_text_input_is_refused(value):
    with pytest.raises(ValueError, match=r"not a kremlin\.ru event URL"):
        parse_event_url(value)


@given(st.text(max_size=300))
def test_arbitrary_text_gives_an_event_url_or_value_error_never_another_exception(text):
    try:
        parsed = parse_event_url(text)
    except ValueError:
        return
    assert parsed.lang in ("ru", "en")
    assert parsed.kremlin_id > 0
    assert parsed.url == event_url(parsed.lang, parsed.kremlin_id)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_an_event_url_or_value_error(data):
    with contextlib.suppress(ValueError):
        parse_event_url(data)


@given(
    lang=st.sampled_from(["ru", "en"]),
    kremlin_id=st.integers(min_value=1, max_value=999_999_999),
    suffix=st.sampled_from(["", "/", "/print", "/photos", "/videos", "?a=1", "#x"]),
)
def test_canonical_and_copy_urls_round_trip(lang, kremlin_id, suffix):
    canonical = event_url(lang, kremlin_id)
    assert parse_event_url(canonical + suffix) == (lang, kremlin_id, canonical)
    assert parse_event_url(copy_url(lang, kremlin_id) + suffix) == (lang, kremlin_id, canonical)


# --- builders ------------------------------------------------------------------------------


def test_event_url():
    assert event_url("ru", 66419) == "http://kremlin.ru/events/president/news/66419"
    assert event_url("en", "63017") == "http://en.kremlin.ru/events/president/news/63017"


def test_copy_url_is_the_seed_form():
    assert copy_url("ru", 66419) == "http://kremlin.ru/events/president/news/copy/66419"
    assert copy_url("en", 63017) == "http://en.kremlin.ru/events/president/news/copy/63017"


def test_listing_url_page_one_is_the_bare_listing():
    assert listing_url("en") == "http://en.kremlin.ru/events/president/news"
    assert listing_url("en", 1) == "http://en.kremlin.ru/events/president/news"
    assert listing_url("ru", 0) == "http://kremlin.ru/events/president/news"


def test_listing_url_later_pages():
    assert listing_url("en", 2) == "http://en.kremlin.ru/events/president/news/page/2"
    assert listing_url("ru", 1198) == "http://kremlin.ru/events/president/news/page/1198"


def test_by_date_url_uses_day_month_year():
    assert (
        by_date_url("en", dt.date(2020, 3, 18))
        == "http://en.kremlin.ru/events/president/news/by-date/18.03.2020"
    )
    assert (
        by_date_url("ru", dt.date(2005, 9, 5))
        == "http://kremlin.ru/events/president/news/by-date/05.09.2005"
    )


def test_feed_and_robots_urls():
    assert feed_url("ru") == "http://kremlin.ru/events/president/news/feed"
    assert feed_url("en") == "http://en.kremlin.ru/events/president/news/feed"
    assert robots_url("ru") == "http://kremlin.ru/robots.txt"
    assert robots_url("en") == "http://en.kremlin.ru/robots.txt"


@pytest.mark.parametrize(
    "build",
    [
        lambda: event_url("de", 1),
        lambda: copy_url("fr", 1),
        lambda: listing_url("de"),
        lambda: by_date_url("xx", dt.date(2020, 1, 1)),
        lambda: feed_url(""),
        lambda: robots_url("RU"),
    ],
)
def test_builders_refuse_an_unknown_language_with_value_error(build):
    with pytest.raises(ValueError, match="unknown language"):
        build()


def test_builders_are_refused_by_the_event_parser():
    """Listing, by-date, feed and robots URLs are not event pages."""
    for lang in ("ru", "en"):
        for url in (
            listing_url(lang),
            listing_url(lang, 5),
            by_date_url(lang, dt.date(2020, 3, 18)),
            feed_url(lang),
            robots_url(lang),
        ):
            assert not is_event_url(url), url


@pytest.mark.parametrize(
    ("url", "lang"),
    [
        ("http://kremlin.ru/events/president/news/66419", "ru"),
        ("https://www.kremlin.ru/acts/bank/52490", "ru"),
        ("http://KREMLIN.RU./", "ru"),
        ("http://en.kremlin.ru/events/president/news/feed", "en"),
        ("http://www.en.kremlin.ru/robots.txt", "en"),
        ("http://example.com/", None),
        ("http://kremlin.ru.evil.com/", None),
        ("http://evilkremlin.ru/", None),
        ("http://special.kremlin.ru/", None),
        ("http://127.0.0.1/", None),
        ("http://[::1]/", None),
        ("http://[::1", None),
        ("file:///etc/passwd", None),
        ("", None),
    ],
)
def test_lang_of_host(url, lang):
    assert lang_of_host(url) == lang


# --- real pages ----------------------------------------------------------------------------

_EVENT_HREF = re.compile(rb'href="([^"]*/events/president/news/[0-9][^"]*)"')
_DATA_ID = re.compile(rb'<div [^>]*class="hentry[^"]*"[^>]*data-id="([0-9]+)"')


def _listing_pages(mirror_dir: Path) -> list[Path]:
    news = mirror_dir / "en.kremlin.ru" / "events" / "president" / "news"
    return [
        news.with_suffix(".html"),
        *sorted((news / "page").glob("*.html")),
        *sorted((news / "by-date").glob("*.html")),
    ]


@pytest.mark.slow
def test_every_event_url_linked_from_the_mirror_listings_parses(mirror_dir):
    """All listing pages of the mirror (page 1, page/N, by-date): every link to an event page
    (article, photos, videos tabs) parses to an en event, and every listed item's data-id is
    among them."""
    pages = _listing_pages(mirror_dir)
    assert len(pages) > 2000
    parsed: dict[bytes, EventURL] = {}
    items = 0
    for path in pages:
        page = path.read_bytes()
        page_url = "http://" + path.relative_to(mirror_dir).with_suffix("").as_posix()
        ids = set()
        for href in set(_EVENT_HREF.findall(page)):
            if href not in parsed:
                parsed[href] = parse_event_url(urljoin(page_url, href.decode("ascii")))
            assert parsed[href].lang == "en", href
            assert parsed[href].url.endswith(f"/{parsed[href].kremlin_id}")
            ids.add(parsed[href].kremlin_id)
        listed = {int(i) for i in _DATA_ID.findall(page)}
        assert listed, path
        assert listed <= ids, path
        items += len(listed)
    assert items > 40_000
    assert len(parsed) > 10_000


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


@pytest.mark.parametrize(
    ("name", "kremlin_id"), [("en_news_63017.html", 63017), ("en_news_55882.html", 55882)]
)
def test_every_self_link_of_a_real_event_page_gives_its_canonical_url(name, kremlin_id):
    """Short link, text-version link, material link and the ru twin all resolve to the page."""
    tree = html.fromstring((KREMLIN_HTML / name).read_bytes())
    links = {
        "short": tree.xpath(f"//a[{_has_class('print_link')}]/@href"),
        "copy": tree.xpath(f"//a[{_has_class('text_version_link')}]/@href"),
        "material": [t.strip() for t in tree.xpath("//*[@id='material_link']/text()")],
        "ru twin": tree.xpath("//link[@rel='alternate'][@hreflang='ru']/@href"),
    }
    for kind, urls in links.items():
        assert urls, kind
        for url in urls:
            parsed = parse_event_url(url)
            assert parsed.kremlin_id == kremlin_id, (kind, url)
            assert parsed.url == event_url(parsed.lang, kremlin_id), (kind, url)
    assert parse_event_url(links["ru twin"][0]).lang == "ru"
    assert parse_event_url(links["short"][0]).lang == "en"


def test_print_page_alternates_resolve_to_the_event():
    tree = html.fromstring((KREMLIN_HTML / "en_print_63017.html").read_bytes())
    (ru_twin,) = tree.xpath("//link[@rel='alternate'][@hreflang='ru']/@href")
    assert ru_twin.endswith("/63017/print")
    assert parse_event_url(ru_twin) == (
        "ru",
        63017,
        "http://kremlin.ru/events/president/news/63017",
    )
