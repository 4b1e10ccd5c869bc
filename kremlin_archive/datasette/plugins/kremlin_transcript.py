"""Datasette plugin of the archive: the transcript page, the person page, the revision page,
the Atom feed of changes, the events table as an index, and links between records.

Loaded from this folder by `kremlin-archive serve` (Datasette's `plugins_dir`); it acts only on
the database served as `kremlin` (serve.DATABASE_NAME), so other databases in the same process
are untouched.

- `extra_template_vars` gives the event row page (`row-kremlin-events.html`) a `transcript`:
  the event's turns (each linked to its person), tags grouped by kind, twin, fetch, revisions,
  citation — read with `db.event_page` through Datasette's read-only connection; and the
  person row page (`row-kremlin-persons.html`) a `person_page`: the labels and positions the
  person is printed under and their turns, newest first, searchable (`?q=`), paged (`?page=`)
  — read with `db.person_page`.
  The revision row page (`row-kremlin-revisions.html`) gets a `revision_page`: the content an
  edit replaced against the content that replaced it, paragraph by paragraph (`diff.py`), with
  both fetches and their WARC records — read with `db.revision_page`.
- `render_cell` links event keys (`ru-66419`) and titles in query results and views to the
  transcript page (to the turn, when the row has a `seq`), marks the words found in search
  excerpts (`**so**` from snippet()), shows an event's date in the event's language, links
  revisions to their page.
- `asgi_wrapper` also has `/kremlin/events` ask for the index's columns (EVENT_INDEX_COLUMNS)
  unless the address chooses columns itself (`_col`, `_nocol`, `_columns=all`).
- `register_routes` serves the Atom feed of new, edited and removed events at
  `/kremlin/-/changes.atom` (`feed.py`; why not datasette-atom: see there).
- `register_facet_classes` adds the facets of `tables.py`: `array_values`, Datasette's
  JSON-array facet made cheap enough for the whole archive (used for `events.sections`);
  `indexed`, its column facet, which counts the events of a broad search from the facet index
  (`lang`, `year`, `place`), all four facets of such a page in one scan; `key`, which names a
  view's person ids; `lang`, a language counted in one pass (speaker_turns).
- `filters_from_request` wraps Datasette's own search filter: a table search of the events
  matching most of the archive walks the index of the page's order instead of fetching every
  hit (`tables.broad_search`).
- `prepare_connection` lets a read wait briefly instead of failing while a crawl checkpoints.
- `asgi_wrapper` refuses every method but GET/HEAD/OPTIONS with 405: nothing a visitor sends
  can write (Datasette itself opens the file `mode=ro` as well).

Values from the site are handed to the template as plain strings, which Jinja escapes; the only
markup built here is links, `<time>` and `<mark>` around escaped text (Markup.format escapes
every value), and only http(s) addresses from the site ever become links.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from datasette import hookimpl
from datasette.utils import (
    path_with_replaced_args,
    tilde_encode,
    urlsafe_components,
)
from datasette.utils.asgi import Response
from markupsafe import Markup, escape
from sqlite_utils import Database

from kremlin_archive import db as dbmod
from kremlin_archive import urls
from kremlin_archive.datasette import diff, feed, tables
from kremlin_archive.datasette.serve import DATABASE_NAME
from kremlin_archive.wayback import read_capture_url

SECTION_BREAK = re.compile(r"^\s*(\*\s*){3}$")  # `* * *` between parts of a transcript
TAG_KIND_LABELS = {
    "topic": "Topics",
    "person": "Persons",
    "geography": "Geography",
    "section": "Sections",
}
LANG_LABELS = {"ru": "Russian (kremlin.ru)", "en": "English (en.kremlin.ru)"}
READ_BUSY_TIMEOUT_MS = 2000
# Pages read through a memory map (as much of the file as SQLite maps, 2 GiB in Debian's build)
# rather than copied into each connection's small page cache: a query that looks up tens of
# thousands of rows runs faster (the earlier Search everything for Путин at 160,000 events:
# 1.7 s -> 1.3 s), the pages of the 160k bench archive by a few tens of ms.
READ_MMAP_BYTES = 1 << 33
READ_METHODS = ("GET", "HEAD", "OPTIONS")
# Speaker colours cycle through this many CSS classes (spk-0 … spk-5) in order of appearance.
SPEAKER_CLASSES = 6
# The events table reads as an index: these columns (after the key) unless the address asks
# for others (`_col`, `_nocol`) or for all of them (`_columns=all`).
EVENT_INDEX_COLUMNS = ("published_at", "lang", "title", "place", "utterance_count", "twin_id")
ALL_COLUMNS = ("_columns", "all")
COLUMN_CHOICES = ("_col", "_nocol", ALL_COLUMNS[0], "_format")
# Full-text matches in query results are marked `**so**` (snippet() in metadata.yml).
MATCH = re.compile(r"\*\*(.+?)\*\*", re.S)
MONTHS_RU = (
    "января", "февраля", "марта", "апреля", "мая", "июня",
    "июля", "августа", "сентября", "октября", "ноября", "декабря",
)  # fmt: skip
MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
MOSCOW_TIME = {"ru": "московское время", "en": "Moscow time"}
FEED_PATH = f"/{DATABASE_NAME}/-/changes.atom"
FEED_SIZE = 50
FEED_TITLE = "Kremlin archive: new, edited and removed events"
CHANGE_KINDS = ("new", "edited", "reparsed", "removed")  # event_changes.change
# What the feed carries unless asked (`?change=`): what happened on the site, not re-parses.
FEED_CHANGES = ("new", "edited", "removed")


@hookimpl
def register_facet_classes():
    return tables.FACET_CLASSES


@hookimpl(wrapper=True)
def filters_from_request(request, database, table, datasette):
    """Every filter of the page as the other hooks made it; the events' table search turned
    into a filter over the date index when it matches many events (tables.broad_search)."""
    filters = yield
    if database != DATABASE_NAME or table != "events" or "_search" not in request.args:
        return filters
    return [tables.broad_search(found, request, datasette) for found in filters]


@hookimpl
def prepare_connection(conn, database, datasette):
    if database == DATABASE_NAME:
        conn.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA mmap_size = {READ_MMAP_BYTES}")


@hookimpl
def asgi_wrapper(datasette):
    """Only GET, HEAD and OPTIONS reach Datasette: the archive has no write endpoint at all
    (Datasette 0.65 answers a POST to a read-only canned query with a 500, not a refusal)."""

    def wrap(app):
        async def read_only(scope, receive, send):
            if (
                scope["type"] == "http"
                and scope["method"] not in READ_METHODS
                and DATABASE_NAME in datasette.databases
            ):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 405,
                        "headers": [
                            (b"allow", b", ".join(m.encode() for m in READ_METHODS)),
                            (b"content-type", b"text/plain; charset=utf-8"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"The archive is read-only.\n"})
                return
            if scope["type"] == "http" and scope.get("path") == f"/{DATABASE_NAME}/events":
                scope = {**scope, "query_string": index_columns(scope.get("query_string", b""))}
            await app(scope, receive, send)

        return read_only

    return wrap


def index_columns(query_string: bytes) -> bytes:
    """The events table's address with the index's columns asked for (`_col=…`), and the
    column it is sorted by, unless it chooses columns itself: Datasette 0.65 has no setting for
    the columns a table shows (and answers a sort by a column it does not show with a 500)."""
    args = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    if any(key in COLUMN_CHOICES for key, _ in args):
        return query_string
    sorted_by = [v for k, v in args if k in ("_sort", "_sort_desc") and v not in ("id", "rowid")]
    columns = dict.fromkeys([*EVENT_INDEX_COLUMNS, *sorted_by])
    extra = urlencode([("_col", column) for column in columns]).encode()
    return b"&".join(part for part in (query_string, extra) if part)


PERSON_PAGE_SIZE = 50


@hookimpl
def extra_template_vars(template, database, table, view_name, request, datasette):
    if database != DATABASE_NAME or request is None:
        return {}
    common = {
        "feed_href": FEED_PATH,
        "changes_href": datasette.urls.query(DATABASE_NAME, "recent_changes"),
    }
    if view_name == "table" and table == "events":
        return {**common, "column_choice": column_choice(request)}
    if view_name != "row" or table not in ("events", "persons", "revisions"):
        return common
    pks = urlsafe_components(request.url_vars["pks"])
    if len(pks) != 1:
        return common
    if table == "persons":
        return _person_vars(pks[0], request, datasette)
    if table == "revisions":
        return _revision_vars(pks[0], datasette, common)

    async def transcript_vars():
        page = await datasette.get_database(DATABASE_NAME).execute_fn(
            lambda conn: dbmod.event_page(
                Database(conn, recursive_triggers=False, execute_plugins=False), pks[0]
            )
        )
        if page is None:
            return {}
        return {"transcript": transcript_context(page, datasette)}

    return transcript_vars


def column_choice(request) -> dict:
    """What the events table page says of its columns: the index's, all, or the reader's own
    choice, with the addresses that switch between them."""
    args = request.args
    showing = "chosen"
    if not args.getlist("_nocol"):
        if args.get(ALL_COLUMNS[0]) == ALL_COLUMNS[1]:
            showing = "all"
        elif args.getlist("_col") == list(EVENT_INDEX_COLUMNS):
            showing = "index"
    return {
        "showing": showing,
        "all_href": path_with_replaced_args(
            request, {"_col": None, "_nocol": None, "_next": None, ALL_COLUMNS[0]: ALL_COLUMNS[1]}
        ),
        "index_href": path_with_replaced_args(
            request, {"_col": None, "_nocol": None, "_next": None, ALL_COLUMNS[0]: None}
        ),
        "index_columns": ["id", *EVENT_INDEX_COLUMNS],
    }


def _revision_vars(revision_id: str, datasette, common: dict):
    try:
        number = int(revision_id)
    except ValueError:
        return common

    async def revision_vars():
        page = await datasette.get_database(DATABASE_NAME).execute_fn(
            lambda conn: dbmod.revision_page(
                Database(conn, recursive_triggers=False, execute_plugins=False), number
            )
        )
        if page is None:
            return common
        return {**common, "revision_page": revision_context(page, datasette)}

    return revision_vars


def revision_context(page: dict, datasette) -> dict:
    """The revision page: the old and the new version of one event, where each came from, and
    their difference paragraph by paragraph (`diff.paragraphs`)."""
    revision, event = page["revision"], page["event"]
    old = json.loads(revision["content"])
    new = page["newer"]
    lang = event["lang"]
    newer = page["newer_revision"]

    def side(fetch: dict | None, label: str, parser: str | None, origin: str | None) -> dict:
        return {
            "label": label,
            "fetch": fetch,
            "fetch_href": datasette.urls.row(DATABASE_NAME, "fetches", str(fetch["id"]))
            if fetch
            else None,
            "parser_version": parser,
            "origin": origin,
        }

    def revision_href(number: int | None) -> str | None:
        return datasette.urls.row(DATABASE_NAME, "revisions", str(number)) if number else None

    event_href = datasette.urls.row(DATABASE_NAME, "events", tilde_encode(event["id"]))
    return {
        "id": revision["id"],
        "number": revision["revision"],
        "event_id": event["id"],
        "lang": lang,
        "title": event["title"],
        "old_title": old.get("title"),
        "event_href": event_href,
        "published_label": human_time(event["published_at"], lang),
        "recorded_at": revision["recorded_at"],
        "changed_fields": _json_list(revision["changed_fields"]),
        "old": side(
            page["old_fetch"],
            f"Revision {revision['revision']} (kept)",
            revision["parser_version"],
            revision["origin"],
        ),
        "new": side(
            page["new_fetch"],
            f"Revision {newer['revision']} (kept)" if newer else "The current version",
            newer["parser_version"] if newer else event["parser_version"],
            newer["origin"] if newer else event["origin"],
        ),
        "is_current": newer is None,
        "fields": diff.fields(old, new),
        "paragraphs": diff.paragraphs(old.get("paragraphs") or [], new.get("paragraphs") or []),
        "summary": diff.summary(old, new),
        "turns_note": diff.turns_note(old, new),
        "previous_href": revision_href(page["previous"]),
        "next_href": revision_href(page["next"]),
        "all_href": filtered(datasette, "revisions", event_id=event["id"]),
    }


def _person_vars(person_id: str, request, datasette):
    query = (request.args.get("q") or "").strip()
    try:
        page = max(1, int(request.args.get("page") or 1))
    except ValueError:
        page = 1

    async def person_vars():
        data = await datasette.get_database(DATABASE_NAME).execute_fn(
            lambda conn: dbmod.person_page(
                Database(conn, recursive_triggers=False, execute_plugins=False),
                person_id,
                q=query,
                limit=PERSON_PAGE_SIZE,
                offset=(page - 1) * PERSON_PAGE_SIZE,
            )
        )
        if data is None:
            return {}
        return {"person_page": person_context(data, query, page, datasette)}

    return person_vars


def person_context(data: dict, query: str, page: int, datasette) -> dict:
    """The person page: who, under which labels and positions, and their turns newest first."""
    person = data["person"]
    here = datasette.urls.row(DATABASE_NAME, "persons", tilde_encode(person["id"]))

    def page_href(number: int) -> str:
        params = {k: v for k, v in (("q", query), ("page", str(number))) if v and v != "1"}
        return f"{here}?{urlencode(params)}" if params else here

    turns = []
    for turn in data["turns"]:
        event_href = datasette.urls.row(DATABASE_NAME, "events", tilde_encode(turn["event_id"]))
        turns.append(
            {
                **turn,
                "href": f"{event_href}#u{turn['seq']}",
                "day": (turn["published_at"] or "")[:10],
                "paragraphs": [p for p in (turn["text"] or "").split("\n") if p.strip()],
            }
        )
    pages = max(1, -(-data["total"] // PERSON_PAGE_SIZE))
    return {
        "id": person["id"],
        "name": person["name"] or person["id"],
        "names": [
            n
            for n in dict.fromkeys(
                (
                    person["name_en"],
                    person["name_ru"],
                    person["catalog_name_en"],
                    person["catalog_name_ru"],
                )
            )
            if n and n != person["name"]
        ],
        "kind": person["kind"],
        "catalog_url": http_url(person["url"]),
        "description": person["description_en"] or person["description_ru"],
        "turn_count": person["turns"] or 0,
        "events": person["events"] or 0,
        "first": (person["first_turn_at"] or "")[:10],
        "last": (person["last_turn_at"] or "")[:10],
        "labels": data["labels"],
        "positions": data["positions"],
        "evidence": data["evidence"],
        "mentions": data["mentions"],
        "query": query,
        "total": data["total"],
        "turns": turns,
        "page": page,
        "pages": pages,
        "previous_href": page_href(page - 1) if page > 1 else None,
        "next_href": page_href(page + 1) if page < pages else None,
        "turns_href": filtered(datasette, "utterances", person_id=person["id"]),
        "said_href": f"{datasette.urls.database(DATABASE_NAME)}/person_said?"
        + urlencode({"person": person["id"], "words": query}),
    }


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    """Cells of the archive's tables, views and query results that read better as more than
    text: event keys and titles link to the transcript (to the turn, when the row has a `seq`),
    search excerpts have their matches marked, an event's date is in the event's language, a
    revision links to its page, lists of changed fields read as words."""
    if database != DATABASE_NAME or value is None:
        return None
    keys = tuple(row.keys()) if hasattr(row, "keys") else ()
    if column == "excerpt" and isinstance(value, str):
        return excerpt_cell(value, hit_href(row, keys, table, datasette))
    if column == "published_at" and isinstance(value, str):
        return date_cell(value, row_lang(row, keys))
    if column == "title" and isinstance(value, str):
        href = hit_href(row, keys, table, datasette)
        return link(href, value) if href else None
    if column in ("revision_id", "revision_row") and isinstance(value, int):
        href = datasette.urls.row(DATABASE_NAME, "revisions", str(value))
        return link(href, "revision page")
    if column == "changed_fields" and isinstance(value, str):
        return ", ".join(str(f) for f in _json_list(value)) or None
    if column == "fetch_id" and table in (None, *dbmod.VIEWS) and isinstance(value, int):
        href = datasette.urls.row(DATABASE_NAME, "fetches", str(value))
        return link(href, value)
    if column not in ("event_id", "id", "twin_id"):
        return None
    if table is not None and table not in dbmod.VIEWS:
        return None  # real tables link their keys and foreign keys themselves
    if not isinstance(value, str) or not urls.EVENT_KEY.match(value):
        return None
    href = datasette.urls.row(DATABASE_NAME, "events", tilde_encode(value))
    if column == "event_id" and "seq" in keys and isinstance(row["seq"], int):
        href = f"{href}#u{row['seq']}"
    return link(href, value)


def link(href: str, text, css: str = "") -> Markup:
    """`<a href=…>text</a>`, both escaped (as Markup.format would, at a fifth of its cost: a
    page of 500 search hits renders 5,000 cells)."""
    attrs = f' class="{css}"' if css else ""
    return Markup(f'<a{attrs} href="{escape(href)}">{escape(text)}</a>')


def hit_href(row, keys: tuple, table: str | None, datasette) -> str | None:
    """The transcript page of the row's event, at the row's turn (`seq`) if it has one; None
    when the row names no event."""
    if table == "events" and "id" in keys:
        key = row["id"]
    elif "event_id" in keys:
        key = row["event_id"]
    elif (table is None or table in dbmod.VIEWS) and "id" in keys:
        key = row["id"]
    else:
        return None
    if not isinstance(key, str) or not urls.EVENT_KEY.match(key):
        return None
    href = datasette.urls.row(DATABASE_NAME, "events", tilde_encode(key))
    if table != "events" and "seq" in keys and isinstance(row["seq"], int):
        href = f"{href}#u{row['seq']}"
    return href


def excerpt_cell(value: str, href: str | None) -> Markup:
    """A search excerpt with its `**matches**` marked, linked to where it was found."""
    parts = MATCH.split(value)
    text = Markup("").join(
        Markup(f"<mark>{escape(part)}</mark>") if index % 2 else escape(part)
        for index, part in enumerate(parts)
    )
    if href:
        return link(href, text, "hit")
    return text


def date_cell(value: str, lang: str) -> Markup:
    """An event's date in its own language, the stored value kept in `datetime`."""
    label = local_date(value, lang)
    if label == value:
        return escape(value)
    value, lang = escape(value), escape(lang)
    return Markup(f'<time datetime="{value}" title="{value}" lang="{lang}">{escape(label)}</time>')


def row_lang(row, keys: tuple) -> str:
    """The language of a row: its `lang`, else its event key's."""
    if "lang" in keys and row["lang"] in LANG_LABELS:
        return row["lang"]
    for key in ("event_id", "id"):
        if key in keys and isinstance(row[key], str) and urls.EVENT_KEY.match(row[key]):
            return urls.parse_event_key(row[key])[0]
    return "en"


# -- the Atom feed of changes ---------------------------------------------------------------------


@hookimpl
def register_routes(datasette):
    return [(rf"^{re.escape(FEED_PATH)}$", changes_feed)]


async def changes_feed(request, datasette):
    """`/kremlin/-/changes.atom`: the newest FEED_SIZE new, edited and removed events (only
    `?lang=ru|en`, `?change=new|edited|removed|reparsed` when given: re-parses are the
    archive's changes, not the site's, and are left out unless asked for)."""
    if DATABASE_NAME not in datasette.databases:
        return Response.text("No archive is served.\n", status=404)
    lang = request.args.get("lang") or None
    change = request.args.get("change") or None
    if lang not in (None, *LANG_LABELS) or change not in (None, *CHANGE_KINDS):
        return Response.text(
            "lang is ru or en, change is new, edited, removed or reparsed (or leave them out).\n",
            status=400,
        )
    parts = urlsplit(request.url)
    base = f"{parts.scheme}://{parts.netloc}"

    def read(conn):
        db = Database(conn, recursive_triggers=False, execute_plugins=False)
        rows = dbmod.recent_changes(db, limit=FEED_SIZE, lang=lang, change=change or FEED_CHANGES)
        pages = {
            row["revision_id"]: dbmod.revision_page(db, row["revision_id"])
            for row in rows
            if row["revision_id"] is not None
        }
        return rows, pages, dbmod.identity_of(db)

    rows, pages, identity = await datasette.get_database(DATABASE_NAME).execute_fn(read)
    # Entry ids are the archive's, not the address it is served at: a feed served under another
    # host name, or through a proxy, must not show every entry again.
    ids = f"tag:kremlin-archive,2026:{identity['id']}/" if identity else None
    entries = [feed_entry(row, pages.get(row["revision_id"]), base, datasette, ids) for row in rows]
    page_url = base + datasette.urls.query(DATABASE_NAME, "recent_changes")
    query = urlencode({k: v for k, v in (("lang", lang), ("change", change)) if v})
    body = feed.atom(
        entries,
        feed_url=base + FEED_PATH + (f"?{query}" if query else ""),
        page_url=page_url + (f"?{query}" if query else ""),
        title=FEED_TITLE + (f" ({', '.join(filter(None, (lang, change)))})" if query else ""),
        rights=dbmod.ATTRIBUTION,
    )
    return Response(body, content_type="application/atom+xml; charset=utf-8")


def feed_entry(row: dict, page: dict | None, base: str, datasette, ids: str | None) -> dict:
    """One entry of the feed from a row of `db.recent_changes`; its id under the archive's
    tag URI `ids` (or, for an archive without an identity yet, its address)."""
    transcript = base + datasette.urls.row(DATABASE_NAME, "events", tilde_encode(row["event_id"]))
    change = row["change"]
    if change in ("edited", "reparsed") and page is not None:
        link = base + datasette.urls.row(DATABASE_NAME, "revisions", str(row["revision_id"]))
        old = json.loads(page["revision"]["content"])
        new = page["newer"]
        content = feed.edited_content(
            _json_list(row["changed_fields"]),
            diff.paragraphs(old.get("paragraphs") or [], new.get("paragraphs") or []),
            diff.fields(old, new),
            link,
        )
        entry_id = f"{ids}revision/{row['revision_id']}" if ids else link
    elif change == "removed":
        link = transcript
        content = feed.removed_content(row, transcript)
        key = f"{row['event_id']}/removed/{row['fetch_id']}"
        entry_id = f"{ids}{key}" if ids else f"{transcript}#removed-{row['fetch_id']}"
    else:
        link = transcript
        content = feed.new_content(row, human_time(row["published_at"], row["lang"]))
        entry_id = f"{ids}{row['event_id']}/new" if ids else f"{transcript}#new"
    return {
        "id": entry_id,
        "title": feed.entry_title(change, row["title"], row["revision"]),
        "updated": row["at"],
        "link": link,
        "category": change,
        "content_html": content,
    }


# -- shaping the page ---------------------------------------------------------------------------


def transcript_context(page: dict, datasette) -> dict:
    """The template's view of one event: plain strings and lists, nothing pre-rendered."""
    event = page["event"]
    speakers: dict[str, int] = {}  # one colour per person (or per label, without a person)
    labels: dict[str, None] = {}
    turns = []
    for u in page["utterances"]:
        speaker = u["speaker"]
        who = u["person_id"] or speaker
        if speaker:
            labels.setdefault(speaker, None)
        if who and who not in speakers:
            speakers[who] = len(speakers) % SPEAKER_CLASSES
        paragraphs = [p for p in (u["text"] or "").split("\n") if p.strip()]
        if speaker:
            css = f"spk-{speakers[who]}"
        elif all(SECTION_BREAK.match(p) for p in paragraphs):
            css = "section-break"
        else:
            css = "narration"
        person = None
        if speaker and u["person_id"]:
            person = {
                "name": u["person_local"] or u["person"] or u["person_id"],
                "href": datasette.urls.row(DATABASE_NAME, "persons", tilde_encode(u["person_id"])),
                "why": u["person_note"],
            }
        turns.append(
            {
                "seq": u["seq"],
                "speaker": speaker,
                "css": css,
                "paragraphs": paragraphs,
                "person": person,
                "unresolved": bool(speaker)
                and not u["person_id"]
                and u["person_evidence"] != "role",
                "why": u["person_note"],
            }
        )
    paragraphs = [] if turns else _json_list(event["paragraphs"])
    twin = page["twin"]
    revisions = [
        {
            **r,
            "changed_fields": _json_list(r["changed_fields"]),
            "href": datasette.urls.row(DATABASE_NAME, "revisions", str(r["id"])),
        }
        for r in page["revisions"]
    ]
    fetch = page["fetch"]
    return {
        "id": event["id"],
        "lang": event["lang"],
        "lang_label": LANG_LABELS.get(event["lang"], event["lang"]),
        "title": event["title"],
        "lead": event["lead"] or "",
        "published_at": event["published_at"],
        "published_label": human_time(event["published_at"], event["lang"]),
        "updated_at": event["updated_at"],
        "place": event["place"],
        "url": http_url(event["url"]),
        "url_text": event["url"],
        "sections": _json_list(event["sections"]),
        "turns": turns,
        "speakers": list(labels),
        "paragraphs": paragraphs,
        "twin": {
            "id": twin["id"],
            "title": twin["title"],
            "lang_label": LANG_LABELS.get(twin["lang"], twin["lang"]),
            "href": datasette.urls.row(DATABASE_NAME, "events", tilde_encode(twin["id"])),
        }
        if twin
        else None,
        "twin_url": http_url(event["twin_url"]),
        "tag_groups": tag_groups(page["tags"], datasette),
        "fetch": fetch,
        "fetch_href": datasette.urls.row(DATABASE_NAME, "fetches", str(fetch["id"]))
        if fetch
        else None,
        "run_href": datasette.urls.row(DATABASE_NAME, "runs", tilde_encode(fetch["run_id"]))
        if fetch and fetch["run_id"]
        else None,
        "fetches_href": filtered(datasette, "fetches", event_id=event["id"]),
        "fetch_count": page["fetch_count"],
        "parser_version": event["parser_version"],
        "origin": event["origin"],
        "fetched_at": event["fetched_at"],
        "first_seen_at": event["first_seen_at"],
        "last_changed_at": event["last_changed_at"],
        "revisions": revisions,
        "revisions_href": filtered(datasette, "revisions", event_id=event["id"]),
        "archived_copy": wayback_copy(fetch, event),
        "license": event["license"] or dbmod.LICENSE,
        "attribution": dbmod.ATTRIBUTION,
        "citation": citation(event, fetch),
    }


def wayback_copy(fetch: dict | None, event: dict) -> dict | None:
    """What the page says of content that came from the Internet Archive, not the site: when
    the copy was captured, a link to it as the archive shows it, and what the site had said."""
    if not fetch or fetch.get("source") != "wayback":
        return None
    captured = fetch.get("capture_time") or ""
    read = read_capture_url(fetch.get("archive_url") or fetch.get("url") or "")
    timestamp, original = read if read else ("", fetch.get("original_url") or "")
    base = (fetch.get("archive_url") or "").split("/web/", 1)[0]
    return {
        "captured": captured,
        "captured_label": captured.replace("T", " ").replace("Z", " UTC"),
        "href": http_url(f"{base}/web/{timestamp}/{original}") if base and timestamp else None,
        "original": original,
        "site_answer": event.get("site_answer"),
    }


def tag_groups(tags: list[dict], datasette) -> list[dict]:
    """Tags grouped by kind in a fixed order (topics, persons, geography, sections, others)."""
    groups: dict[str, list[dict]] = {}
    for tag in tags:
        groups.setdefault(tag["kind"], []).append(
            {
                "name": tag["name"],
                "url": http_url(tag["url"]),
                "archive_href": filtered(datasette, "event_tags", tag_id=tag["id"]),
            }
        )
    order = [*TAG_KIND_LABELS, *sorted(k for k in groups if k not in TAG_KIND_LABELS)]
    return [
        {"kind": kind, "label": TAG_KIND_LABELS.get(kind, kind), "tags": groups[kind]}
        for kind in order
        if kind in groups
    ]


def filtered(datasette, table: str, **where: str) -> str:
    """Address of a table page filtered by column values (`?event_id=ru-66419`)."""
    return f"{datasette.urls.table(DATABASE_NAME, table)}?{urlencode(where)}"


def citation(event: dict, fetch: dict | None = None) -> str:
    """A plain-text reference to the page, with the license the site requires to be named; a
    copy from the Internet Archive is cited as such, never as a visit to the site."""
    day = (event["published_at"] or "")[:10]
    fetched = (event["fetched_at"] or "")[:10]
    site = "kremlin.ru" if event["lang"] == "ru" else "en.kremlin.ru"
    accessed = f", accessed {fetched}" if fetched else ""
    copy = wayback_copy(fetch, event)
    if copy:
        where = copy["href"] or copy["original"]
        accessed = f", copy captured by the Internet Archive on {copy['captured'][:10]}: {where}"
    return (
        f"President of Russia website ({site}), “{event['title']}”, {day}, "
        f"{event['url']}{accessed}. CC BY 4.0."
    )


def local_date(value: str | None, lang: str = "en") -> str:
    """`2021-08-21T13:10:00+03:00` → `21 августа 2021, 13:10` (ru) or `21 August 2021, 13:10`
    (en): the date in the event's language, its time if it has one; the value itself if it is
    not a date."""
    if not value:
        return ""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    months = MONTHS_RU if lang == "ru" else MONTHS_EN
    text = f"{moment.day} {months[moment.month - 1]} {moment.year}"
    if len(value) > 10 and (moment.hour, moment.minute) != (0, 0):
        text += f", {moment:%H:%M}"
    return text


def human_time(value: str | None, lang: str = "en") -> str:
    """`2021-08-21T13:10:00+03:00` → `21 August 2021, 13:10 (Moscow time, UTC+03:00)`, in the
    event's language (`21 августа 2021, 13:10 (московское время, UTC+03:00)`)."""
    text = local_date(value, lang)
    if not value or text == value:
        return text
    offset = dt.datetime.fromisoformat(value).strftime("%z")
    if offset:
        zone = MOSCOW_TIME.get(lang, MOSCOW_TIME["en"])
        text += f" ({zone}, UTC{offset[:3]}:{offset[3:]})"
    return text


def http_url(value: str | None) -> str | None:
    """The value if it is an http(s) address (only those become links), else None."""
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return value
    return None


def _json_list(value: str | None) -> list:
    try:
        data = json.loads(value or "[]")
    except ValueError:
        return []
    return data if isinstance(data, list) else []
