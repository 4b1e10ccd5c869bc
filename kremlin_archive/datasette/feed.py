"""The Atom feed of the archive's changes (RFC 4287): new, edited and removed events.

Pure: `atom(entries, …)` turns the newest rows of `db.recent_changes` (with, for an edit, what
`diff` says changed) into the feed's bytes. Links are absolute (a feed reader has no page to
resolve them against), made from the address the feed was asked at. Text from the site goes
into the XML as text — escaped by ElementTree — and into the HTML of an entry's content only
through `markupsafe.escape`.

Why not datasette-atom (Datasette's own Atom plugin): it renders the rows of an SQL query, so
an entry could carry neither an absolute link (SQL does not know the host a reader used) nor the
paragraph-by-paragraph difference of an edit (computed in Python, `diff.py`); and its version
0.9 answers 500 when the query returns no rows, which an archive with nothing new would do.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

from markupsafe import Markup, escape

ATOM = "http://www.w3.org/2005/Atom"
CHANGE_TITLES = {
    "new": "New",
    "edited": "Edited",
    "reparsed": "Read again by a newer parser",
    "removed": "Removed from the site",
}
# Paragraphs of an edit quoted in its entry; the revision page has them all.
QUOTED_PARAGRAPHS = 6


def atom(
    entries: list[dict[str, Any]],
    *,
    feed_url: str,
    page_url: str,
    title: str,
    rights: str,
    updated: str | None = None,
) -> bytes:
    """The feed: `entries` are dicts with `id`, `title`, `updated` (ISO 8601 UTC), `link`,
    `category` and `content_html` (already escaped HTML); newest first."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", feed_url)
    _text(feed, "title", title)
    newest = max((e["updated"] for e in entries), default=None)
    _text(feed, "updated", _rfc3339(newest or updated or _now()))
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", type="application/atom+xml", href=feed_url)
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=page_url)
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(author, "name", "Kremlin archive")
    _text(feed, "rights", rights)
    _text(feed, "generator", "kremlin-archive")
    for entry in entries:
        node = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(node, "id", entry["id"])
        _text(node, "title", entry["title"])
        _text(node, "updated", _rfc3339(entry["updated"]))
        ET.SubElement(
            node, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=entry["link"]
        )
        ET.SubElement(node, f"{{{ATOM}}}category", term=entry["category"])
        content = ET.SubElement(node, f"{{{ATOM}}}content", type="html")
        content.text = str(entry["content_html"])
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _text(parent: ET.Element, name: str, value: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}{name}").text = value


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339(value: str) -> str:
    """A stored time (`2026-11-20T10:00:05Z`, or with an offset) as Atom wants it: with its
    zone. A time without one is taken as UTC, as the archive stores them."""
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def entry_title(change: str, title: str, revision: int | None = None) -> str:
    label = CHANGE_TITLES.get(change, change)
    if change in ("edited", "reparsed") and revision:
        return f"{label} (revision {revision} kept): {title}"
    return f"{label}: {title}"


def new_content(row: dict[str, Any], date: str) -> Markup:
    """An entry for an event first stored: its date, place and lead."""
    facts = " · ".join(str(escape(x)) for x in (date, row.get("place")) if x)
    html = Markup("<p>{}</p>").format(Markup(facts))
    if row.get("lead"):
        html += Markup("<p>{}</p>").format(row["lead"])
    return html


def removed_content(row: dict[str, Any], transcript_url: str) -> Markup:
    """An entry for an event the site no longer gives: what it answered, and where the
    archive's copy is."""
    return Markup(
        "<p>Asked again on {at}, the site answered: {answer}. The archive keeps the last content "
        'it fetched: <a href="{href}">{title}</a>.</p>'
    ).format(
        at=row["at"], answer=row.get("answer") or "gone", href=transcript_url, title=row["title"]
    )


def edited_content(
    changed_fields: list[str],
    items: list[dict[str, Any]],
    fields: list[dict[str, Any]],
    revision_url: str,
) -> Markup:
    """An entry for an edit: the fields that changed, the other fields old and new, and the
    first changed paragraphs with what was removed and added marked."""
    html = Markup("<p>Changed: {}.</p>").format(", ".join(changed_fields) or "nothing recorded")
    for change in fields:
        if "old" in change:
            html += Markup("<p>{}: <del>{}</del> → <ins>{}</ins></p>").format(
                change["field"], change["old"] or "—", change["new"] or "—"
            )
        else:
            html += Markup("<p>{}: {}{}</p>").format(
                change["field"],
                Markup("").join(Markup("<del>{}</del> ").format(x) for x in change["removed"]),
                Markup("").join(Markup("<ins>{}</ins> ").format(x) for x in change["added"]),
            )
    shown = [item for item in items if item["kind"] in ("edited", "removed", "added")]
    for item in shown[:QUOTED_PARAGRAPHS]:
        html += _paragraph(item)
    if len(shown) > QUOTED_PARAGRAPHS:
        html += Markup(
            '<p>… and {} more paragraphs: <a href="{}">the whole difference</a>.</p>'
        ).format(len(shown) - QUOTED_PARAGRAPHS, revision_url)
    else:
        html += Markup('<p><a href="{}">The revision, old and new side by side</a>.</p>').format(
            revision_url
        )
    return html


def _paragraph(item: dict[str, Any]) -> Markup:
    if item["kind"] == "removed":
        return Markup("<p>Paragraph {} removed: <del>{}</del></p>").format(
            item["old_no"], item["text"]
        )
    if item["kind"] == "added":
        return Markup("<p>Paragraph {} added: <ins>{}</ins></p>").format(
            item["new_no"], item["text"]
        )
    runs = Markup("").join(
        Markup("<{0}>{1}</{0}>").format(kind, text) if kind != "same" else escape(text)
        for kind, text in _merged(item["old"], item["new"])
    )
    return Markup("<p>Paragraph {} edited: {}</p>").format(item["new_no"], runs)


def _merged(old: list[tuple[str, str]], new: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One reading of an edited paragraph: the common text once, each change as the removed
    words then the added ones (the two run lists share their `same` runs, in order)."""
    out: list[tuple[str, str]] = []
    i = j = 0
    while i < len(old) or j < len(new):
        if i < len(old) and old[i][0] == "del":
            out.append(old[i])
            i += 1
        elif j < len(new) and new[j][0] == "ins":
            out.append(new[j])
            j += 1
        else:  # both at a `same` run: the same text on both sides
            out.append(old[i] if i < len(old) else new[j])
            i, j = i + 1, j + 1
    return out
