"""Every URL form a user may paste for an event page -> (lang, kremlin_id, canonical URL),
plus builders for the listing, by-date, feed and robots URLs the spiders request.

Canonical event URLs use plain http (the live site answers http reliably, https often times
out) and the bare host: `http://kremlin.ru/events/president/news/66419`,
`http://en.kremlin.ru/events/president/news/66419`.

Anything that is not an event page of kremlin.ru / en.kremlin.ru raises `ValueError` naming
the URL: other hosts, IP literals, `file:` / `javascript:` schemes, non-event paths, overlong or
non-text input. No request is ever made for a refused URL.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple
from urllib.parse import urlsplit

HOSTS = {"ru": "kremlin.ru", "en": "en.kremlin.ru"}
# Host names accepted as input -> language. `www.` prefixes are the same site.
_HOST_LANG = {
    "kremlin.ru": "ru",
    "www.kremlin.ru": "ru",
    "en.kremlin.ru": "en",
    "www.en.kremlin.ru": "en",
}
MAX_URL_LENGTH = 2048

_TRANSCRIPT_SUBLISTS = "speeches|statements|news-conferences|press-statements|messages"
# C0 controls and DEL: never part of a URL anyone means (a regex, not a per-character loop:
# every response's URL is checked).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Path forms of one event page. The id is the only group captured.
_EVENT_PATH = re.compile(
    r"^/(?:"
    r"events/president/(?:news|transcripts(?:/(?:" + _TRANSCRIPT_SUBLISTS + r"))?)"
    r"/(?:copy/)?(?P<id>\d{1,9})(?:/(?:print|photos|videos))?(?:\.html)?"
    r"|d/(?P<short>\d{1,9})"
    r")/?$",
    re.ASCII,  # ASCII: `\d` would also take Arabic-Indic or fullwidth digits
)


# The archive's key of an event: language and site id, `ru-66419` (events.id, fetches.event_id,
# the export's --id). Ids are positive and at most nine digits, as in event URLs.
EVENT_KEY = re.compile(r"^(ru|en)-([1-9][0-9]{0,8})$", re.ASCII)


class EventURL(NamedTuple):
    lang: str
    kremlin_id: int
    url: str

    @property
    def key(self) -> str:
        """The event's key in the archive, `ru-66419`."""
        return event_key(self.lang, self.kremlin_id)


def event_key(lang: str, kremlin_id: int) -> str:
    """The archive's key of the event `kremlin_id` in `lang`: `ru-66419`."""
    if lang not in HOSTS:
        raise ValueError(f"unknown language {lang!r} (expected one of {', '.join(HOSTS)})")
    return f"{lang}-{int(kremlin_id)}"


def parse_event_key(key: object) -> tuple[str, int]:
    """(lang, kremlin_id) of an event key such as `ru-66419`; ValueError naming it otherwise."""
    match = EVENT_KEY.match(key) if isinstance(key, str) else None
    if not match:
        raise ValueError(f"{key!r}: expected an event id like ru-66419 or en-63017")
    return match.group(1), int(match.group(2))


def other_lang(lang: str) -> str:
    """The language of the twin site: ru <-> en."""
    return "en" if lang == "ru" else "ru"


def event_url(lang: str, kremlin_id: int) -> str:
    """Canonical URL of an event page."""
    return f"{site_root(lang)}/events/president/news/{int(kremlin_id)}"


def catalog_person_url(lang: str, catalog_id: int) -> str:
    """A person's page in the site's catalog (the events they took part in)."""
    return f"{site_root(lang)}/catalog/persons/{int(catalog_id)}/events"


def parse_event_url(url: object) -> EventURL:
    """Resolve any accepted form of an event URL; raise ValueError naming the URL otherwise."""
    if isinstance(url, bytes):
        try:
            url = url.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"not a kremlin.ru event URL (not UTF-8): {url[:80]!r}") from None
    if not isinstance(url, str):
        raise ValueError(f"not a kremlin.ru event URL: {url!r}")
    raw = url
    url = url.strip()
    if not url:
        raise ValueError("not a kremlin.ru event URL: empty string")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(
            f"not a kremlin.ru event URL (longer than {MAX_URL_LENGTH}): {url[:80]!r}…"
        )
    if _CONTROL.search(url):
        raise ValueError(f"not a kremlin.ru event URL (control characters): {raw!r}")
    if "://" not in url and re.match(r"^(?:www\.|en\.)?kremlin\.ru/", url, re.IGNORECASE):
        url = "http://" + url  # pasted without a scheme
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"not a kremlin.ru event URL (malformed): {raw!r}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(
            f"not a kremlin.ru event URL (scheme {parts.scheme or 'missing'!r}): {raw!r}"
        )
    if parts.username or parts.password:
        raise ValueError(f"not a kremlin.ru event URL (credentials in URL): {raw!r}")
    if port not in (None, 80, 443):
        raise ValueError(f"not a kremlin.ru event URL (port {port}): {raw!r}")
    host = (parts.hostname or "").rstrip(".").lower()
    lang = _HOST_LANG.get(host)
    if lang is None:
        raise ValueError(f"not a kremlin.ru event URL (host {host or 'missing'!r}): {raw!r}")
    match = _EVENT_PATH.match(parts.path)
    if not match:
        raise ValueError(f"not a kremlin.ru event page (path {parts.path!r}): {raw!r}")
    kremlin_id = int(match.group("id") or match.group("short"))
    if kremlin_id <= 0:
        raise ValueError(f"not a kremlin.ru event page (id 0): {raw!r}")
    return event_ref(lang, kremlin_id)


def event_ref(lang: str, kremlin_id: int) -> EventURL:
    """The (lang, id, canonical URL) of an event known by its id."""
    return EventURL(lang, int(kremlin_id), event_url(lang, kremlin_id))


def is_event_url(url: str) -> bool:
    try:
        parse_event_url(url)
    except ValueError:
        return False
    return True


def site_root(lang: str) -> str:
    if lang not in HOSTS:
        raise ValueError(f"unknown language {lang!r} (expected one of {', '.join(HOSTS)})")
    return f"http://{HOSTS[lang]}"


def listing_url(lang: str, page: int = 1) -> str:
    """News listing page N (page 1 is the newest)."""
    base = f"{site_root(lang)}/events/president/news"
    return base if page <= 1 else f"{base}/page/{int(page)}"


def by_date_url(lang: str, day: dt.date) -> str:
    """The listing page holding `day` (the site's stable entry point into the archive)."""
    return f"{site_root(lang)}/events/president/news/by-date/{day:%d.%m.%Y}"


def feed_url(lang: str) -> str:
    return f"{site_root(lang)}/events/president/news/feed"


def robots_url(lang: str) -> str:
    return f"{site_root(lang)}/robots.txt"


def copy_url(lang: str, kremlin_id: int) -> str:
    """The text-version URL (the form the legacy corpus records; robots.txt forbids fetching it)."""
    return f"{site_root(lang)}/events/president/news/copy/{int(kremlin_id)}"


def kind_of_url(url: str) -> str:
    """What a URL of the site is, for `fetches.kind` when the request does not say: `event`
    (an event page in any accepted form), `robots` (robots.txt) or `other`."""
    if is_event_url(url):
        return "event"
    try:
        path = urlsplit(url).path
    except ValueError:
        return "other"
    return "robots" if path == "/robots.txt" else "other"


def lang_of_host(url: str) -> str | None:
    """'ru' / 'en' for a kremlin.ru URL, None for any other host."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    return _HOST_LANG.get(host)
