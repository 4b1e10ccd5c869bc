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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from . import db as dbmod
from . import urls
from .items import Transcript, validation_problems
from .parsing import PARSER_VERSION, ParseError, normalize_text, utterances_from_paragraphs
from .timestamps import MOSCOW, moscow_iso

Progress = Callable[[int], None]

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
        parser_version=PARSER_VERSION,  # its speaker-label rules are the page parser's
    )


# -- reading files and importing them ------------------------------------------------------


@dataclass
class ImportResult:
    run_id: str
    files: int = 0
    outcomes: dict[str, int] = field(
        default_factory=lambda: {"new": 0, "changed": 0, "unchanged": 0}
    )
    kept: list[tuple[Path, str]] = field(default_factory=list)  # (file, event id) not imported
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (file, message)

    @property
    def imported(self) -> int:
        return sum(self.outcomes.values())

    def as_counts(self) -> dict[str, int]:
        return {
            "files": self.files,
            "events_new": self.outcomes["new"],
            "events_changed": self.outcomes["changed"],
            "events_unchanged": self.outcomes["unchanged"],
            "events_kept": len(self.kept),
            "errors": len(self.failed),
        }


def txt_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to import: each file as given, and the `*.txt` files under each folder
    (recursively, sorted)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.txt") if p.is_file()))
        else:
            found.append(path)
    return found


def read_txt(path: Path) -> Transcript:
    """Parse one legacy file; `ParseError` names the file and the first wrong line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParseError(
            f"txt-line-{line}", f"{path.name}, line {line}: not UTF-8 text ({exc.reason})"
        ) from None
    transcript = parse_txt(text, path.name)
    problems = validation_problems(transcript)
    if problems:
        raise ParseError("invalid", f"{path.name}: invalid record: {', '.join(problems)}")
    return transcript


def import_txt(
    db: Database,
    files: Iterable[Path],
    *,
    arguments: dict[str, Any] | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
    on_failure: Callable[[Path, str], None] | None = None,
) -> ImportResult:
    """Store legacy text files as events, in one run (spider 'import-txt').

    Each record gets provenance ``origin = "import:<file name>"`` and no fetch; a later crawl of
    the same event supersedes it and keeps it as a revision (`db.save_transcript`). A file whose
    event the archive already holds from the site (crawl or reparse) is not imported: the page
    is the better source (`kept`). A malformed file is recorded in `errors` (stage 'import',
    url = its path, reason naming file and line), passed to `on_failure`, and skipped.
    """
    run_id = run_id or dbmod.new_run_id()
    result = ImportResult(run_id)
    dbmod.start_run(
        db, run_id=run_id, spider="import-txt", command="import-txt", arguments=arguments or {}
    )
    status, reason = "failed", "failed"
    index = dbmod.person_index(db)
    try:
        for path in files:
            result.files += 1
            try:
                transcript = read_txt(path)
            except (OSError, ParseError) as exc:
                message = str(exc) if isinstance(exc, ParseError) else f"{path.name}: {exc}"
                result.failed.append((path, message))
                dbmod.record_error(db, run_id=run_id, url=str(path), stage="import", reason=message)
                if on_failure:
                    on_failure(path, message)
            else:
                origin = dbmod.event_origin(db, transcript.event_id)
                if origin is not None and not origin.startswith("import"):
                    result.kept.append((path, transcript.event_id))
                else:
                    transcript.run_id = run_id
                    transcript.spider = "import-txt"
                    outcome = dbmod.save_transcript(db, transcript, index=index)
                    result.outcomes[outcome.outcome] += 1
            if progress:
                progress(1)
        if result.imported or result.kept:
            status, reason = "finished", "finished"
            dbmod.settle_persons(db)
        else:
            reason = "nothing importable"
    except KeyboardInterrupt:
        status, reason = "interrupted", "shutdown"
        raise
    finally:
        dbmod.finish_run(db, run_id, status=status, finish_reason=reason, counts=result.as_counts())
    return result
