"""The legacy plain-text format of the corpus this project grew from (`shared/seed-format/`).

``format_txt(t) -> str`` writes a `Transcript` in that format; ``parse_txt(text, name) ->
Transcript`` reads one back (the legacy import). Layout, line by line, joined with "\\n" and with
no trailing newline::

    (empty line)
    TITLE
    (empty)
    (empty)
    YYYY-MM-DD HH:MM:SS      Moscow local time of `published_at`
    (empty)
    PLACE                    empty line when the page has no place
    (empty)
    LEAD                     one line per lead paragraph; empty line when there is no lead
    (empty)
    BODY                     one line per paragraph, speaker labels as printed ("В.Путин: …")
    (empty)
    (empty)
    (empty)
    URL                      the text-version URL, …/events/president/news/copy/<id>

The export does not repeat the two defects of the legacy files (README there): the omission
mark is written ``<…>``, not ``&lt;…&gt;``, and lines carry no trailing spaces. The import
undoes both, normalises every line as `parsing` normalises a paragraph, and re-derives speaker
turns with `parsing.utterances_from_paragraphs` -- the plain-text half of the page parser's
label detector -- so ``parse_txt(format_txt(t))`` gives back `t`'s title, published_at, place,
lead, paragraphs and utterances. Plain text cannot show bold: an unbolded paragraph that reads
like a label ("Question: …" left unbolded by an editor) opens a turn on import that the page
did not have -- 13 of the 6,656 pages of the 2020 mirror (the sweep test lists them); a label
the page has is never lost.
"""

from __future__ import annotations

import datetime as dt
import re

from kremlin_archive import urls
from kremlin_archive.items import Transcript
from kremlin_archive.parsing import (
    MOSCOW,
    ParseError,
    moscow_iso,
    normalize_text,
    utterances_from_paragraphs,
)

_HEADER_LINES = 8  # empty, title, empty, empty, date, empty, place, empty
_TRAILER_LINES = 4  # empty, empty, empty, URL
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$")


def format_txt(t: Transcript) -> str:
    """`t` in the legacy plain-text layout (see the module docstring)."""
    local = dt.datetime.fromisoformat(t.published_at)
    if local.tzinfo is not None:
        local = local.astimezone(MOSCOW)
    lines = [
        "",
        t.title,
        "",
        "",
        local.strftime("%Y-%m-%d %H:%M:%S"),
        "",
        t.place or "",
        "",
        t.lead,
        "",
        *t.paragraphs,
        "",
        "",
        "",
        urls.copy_url(t.lang, t.kremlin_id),
    ]
    return "\n".join(lines)


def _undo_defects(line: str) -> str:
    # The legacy files escaped the omission mark once too often ("&lt;…&gt;" for "<…>") and
    # kept the markup's trailing spaces; normalising as the page parser does removes the latter.
    return normalize_text(line.replace("&lt;", "<").replace("&gt;", ">"))


def _fail(name: str, number: int, message: str) -> ParseError:
    where = f"{name}, line {number}" if name else f"line {number}"
    return ParseError(f"txt-line-{number}", f"{where}: {message}")


def parse_txt(text: str, name: str = "") -> Transcript:
    """Read one legacy text record back into a `Transcript`.

    `name` (the file name) is used in error messages and as ``origin="import:<name>"``.
    Language and id come from the URL on the last line (`urls.parse_event_url`); the time on
    line 5 is Moscow local time. A file that does not have the layout raises
    ``ParseError(reason="txt-line-<n>")`` naming the first line (1-based) that is wrong.
    """
    if not isinstance(text, str):
        raise ParseError("not-text", f"expected the file's text as str, got {type(text)!r}")
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) < _HEADER_LINES + 2 + _TRAILER_LINES:
        raise _fail(name, len(lines), "the record ends before its URL line")
    for number in (1, 3, 4, 6, 8):
        if lines[number - 1].strip():
            raise _fail(name, number, "expected an empty line")
    title = _undo_defects(lines[1])
    if not title:
        raise _fail(name, 2, "expected the title")
    match = _DATE.match(lines[4].strip())
    try:
        if not match:
            raise ValueError
        when = dt.datetime(*map(int, match.groups()))
    except ValueError:
        raise _fail(name, 5, f"expected 'YYYY-MM-DD HH:MM:SS', got {lines[4]!r}") from None

    url_number = len(lines)
    try:
        event = urls.parse_event_url(lines[-1].strip())
    except ValueError as exc:
        raise _fail(name, url_number, f"expected the record's URL ({exc})") from None
    for number in range(url_number - 3, url_number):
        if lines[number - 1].strip():
            raise _fail(name, number, "expected an empty line before the URL")

    # Lead: the lines from 9 up to the next empty line (one empty line if there is no lead).
    body_end = url_number - _TRAILER_LINES  # index of the first trailer line
    index = _HEADER_LINES
    lead_lines = []
    while index < body_end and lines[index].strip():
        lead_lines.append(_undo_defects(lines[index]))
        index += 1
    if not lead_lines:
        if index >= body_end or lines[index + 1].strip():
            raise _fail(name, index + 2, "expected the empty line after an empty lead")
        index += 1
    index += 1  # the empty line after the lead
    paragraphs = []
    for number in range(index + 1, body_end + 1):
        paragraph = _undo_defects(lines[number - 1])
        if not paragraph:
            raise _fail(name, number, "empty line inside the body")
        paragraphs.append(paragraph)

    return Transcript(
        kremlin_id=event.kremlin_id,
        lang=event.lang,
        url=event.url,
        title=title,
        published_at=moscow_iso(when.date(), when.hour, when.minute, when.second),
        lead="\n".join(lead_lines),
        place=_undo_defects(lines[6]) or None,
        paragraphs=paragraphs,
        utterances=utterances_from_paragraphs(paragraphs),
        source_url=lines[-1].strip(),
        origin=f"import:{name}" if name else "import",
    )
