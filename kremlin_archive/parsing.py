"""Pure parsers for kremlin.ru / en.kremlin.ru: response bytes + URL in, data out.

No Scrapy, no I/O, no clock: the same functions serve a live crawl, a re-parse from WARC, the
legacy text import (`legacy_txt.parse_txt` shares the speaker-label logic below) and the tests.
Page structure and the evidence for every rule are in `shared/docs/SITE.md` (cited as §n).

Public API
----------
``parse_event(body, url) -> Transcript``
    An event page (`/events/president/news/<id>`, its `/print` twin, a `/copy/<id>` URL as the
    name of the record). Raises `ParseError` -- and nothing else -- for anything that is not a
    complete event page; `.reason` is a short machine code (see `ParseError`).
``parse_listing(body, url) -> Listing``
    A news listing page (`page/N`, `by-date/DD.MM.YYYY`, the first page) or a fragment of its
    items; reason ``not-listing`` for anything else.
``parse_feed(body, url) -> list[FeedEntry]``
    The Atom feed, read with a parser that neither expands entities nor touches the network;
    reason ``not-feed`` for anything else.
``split_speaker_label(paragraph) -> (speaker, rest) | None``, ``is_section_break(text)``,
``assemble_utterances(...)``, ``utterances_from_paragraphs(...)``, ``text_after_label(...)``,
``is_role_label(label)``, ``normalize_text(text)``
    The text-level rules, shared with the legacy plain-text import (and `persons.py`).

Contracts of `parse_event`
--------------------------
* `kremlin_id`, `lang` and `url` (canonical) come from `urls.parse_event_url(url)`; the page must
  agree: `article#event-<id>` and `div.read@data-href` (or, without it, the share block's
  `#material_link`) are cross-checked (reason ``id-mismatch`` / ``lang-mismatch``).
* Bytes are decoded as UTF-8 with ``errors="replace"`` (en page 63123 carries an invalid byte,
  §7); the page must end with ``</html>``, otherwise it was cut short (reason ``truncated``) and
  a partial body is never returned as if it were the whole page.
* Text is normalised as DESIGN.md says: entities decoded, NBSP (U+00A0) kept inside the text,
  runs of ASCII whitespace (the site leaves raw line breaks inside ``<p>``) become one space,
  every paragraph is stripped, empty paragraphs are dropped. Hover cards (``.read__tooltip``,
  any ``.masha-ignore`` descendant) are dropped, the link text they hang on is kept (§2).
  One repair: two adjacent bold runs with no space between a lower-case and an upper-case letter
  (``<b>Vladimir</b><b>Putin</b>``, an editor artefact that browsers render glued) are joined
  with a space -- 31 joins on 10 pages of the 2020 mirror, all in speaker labels.
* `published_at` is ISO 8601 with the offset Moscow had on that date (zoneinfo Europe/Moscow:
  +03/+04 before 2011, +04 from March 2011 to October 2014, +03 since). It is
  ``time.read__published@datetime`` + ``div.read__time``; announcements (§2: no such time, a
  ``div.announce_date`` instead) take the publication time of the status block and set
  `announce_date` to the announced (first) day.
* `paragraphs` are the body only: direct ``p`` children of ``.read__internal_content`` plus
  ``blockquote p``; the footer, tags, "See also", slider and media blocks nested in the same
  container (§2) are excluded. ``<br>`` inside a paragraph is a space.
* Speed: the document is parsed once (libxml2); the article is reached by walking the template's
  known blocks, not by XPath per field (an lxml XPath call costs ~15 µs before it does any
  work). Per paragraph, the common shapes (no markup; ``<b>Label:</b> text`` with a label
  already judged) take a short path, and `is_speaker_label` is asked once per label text for
  the whole process (`_LABELS`), as are a day's ISO date and Moscow offset (`_iso_day_of`,
  `_moscow_offset`); tags, mentions and turns are built without a frozen dataclass's ``__init__``.
  `bench/parse_speed.py` measures the median cost against a bare ``lxml.html.fromstring`` of
  the same bytes.

Speaker turns (`utterances`)
----------------------------
A paragraph opens a turn when it begins with a speaker label: text in bold up to the first
colon, where only whitespace and a parenthetical (``(<i>retranslated</i>)``) may be outside the
bold, and the text before the colon passes `is_speaker_label` (a name or title ending in a
capitalised word, initials + surname such as ``К.-Ж.Токаев``, or a role such as
``Question``/``Реплика``; no pronouns or verbs, no sentence break). This covers every variant of
§2: colon inside or outside the bold, ``<b>Name: </b>``, full titles, split bold, capitals, a
parenthetical before the colon, hover cards inside the label.

* `speaker` is the label as printed minus its colon, whitespace-collapsed: titles, capitals and
  parentheticals are kept (``President of Russia Vladimir Putin``,
  ``Vladimir Putin (retranslated)``). The parser does not decide who is who; grouping
  ``VLADIMIR PUTIN`` with ``President of Russia Vladimir Putin`` is `persons.py`'s job.
* One `Utterance` per label: its `text` is the turn's paragraphs joined by ``"\\n"``, one line
  per paragraph, the label (and the whitespace after its colon) removed from the first. A label
  standing alone in its paragraph ("Minister Alexander Tkachev:" with the speech in the next
  paragraph) gives an empty first line, so lines and paragraphs always correspond 1:1.
* Paragraphs without a label continue the current turn; narration before the first label is a
  turn with speaker None; a section break (``<p><b>* * *</b></p>``) starts a new speaker-None
  turn. A bold line ending in a colon that is not a speaker label (``Meeting points:``) is a
  heading and simply continues the current turn. `seq` counts turns from 1.
* Labels that only bold marks (10 turns on 7 pages of the mirror): a bold name with no colon,
  when the page uses the same label with a colon elsewhere (``<b>Megyn Kelly</b> With this?``)
  or when a full stop closes it and it is a personal name (``<b>Kseniya Slutskaya. </b>Good
  afternoon``); a one-word label in bold followed by the turn's text (``<b>Alina:</b> Good
  afternoon``). The text after such a label starts as speech does (a capital, a quotation
  mark). Plain text has no bold: `utterances_from_paragraphs` takes only the first kind.
* A paragraph in bold from start to end whose text goes on after its colon is a heading, not a
  label (``<b>Speech at the plenary session Physical Education and Sports: New Development
  Targets …</b>``, en 58770).
* Invariant (checked over the whole mirror by the sweep test): the utterance lines, in order, are
  the paragraphs; a labelled turn's first line is ``text_after_label(paragraph, speaker)``.
* `mentions`: the person links (hover cards, §2) of the lead and the body, with the catalog id,
  the link text, the card's name and description, and the turn whose label holds the link.
  Who a turn's speaker is, is not the parser's business: `persons.py` decides from these.

Tags and sections
-----------------
``.read__tags`` columns map by their ``h3`` (Topics/Темы -> "topic", Persons/Лица -> "person",
Geography/География -> "geography"; an unknown heading falls back to the catalog path of the
link). "Published in sections" links give `Transcript.sections` (names) *and* ``Tag(kind=
"section")``. Tag URLs are absolute.

The Atom feed's timestamps are kept verbatim; they are labelled ``+04:00`` even in 2020 when
Moscow was at +03:00 (§5), so they are not to be trusted: the page's own time is authoritative.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import threading
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from lxml import etree

from kremlin_archive import urls
from kremlin_archive.items import Mention, Tag, Transcript, Utterance
from kremlin_archive.timestamps import moscow_iso

PARSER_VERSION = "1.1.0"  # 1.1: labels only bold marks, bold headings, person links


class ParseError(Exception):
    """The input is not what the parser was asked to read.

    `reason` is a short machine code for stats and the `errors` table: ``bad-url``, ``empty``,
    ``not-bytes``, ``not-html``, ``truncated``, ``malformed``, ``not-found-page``,
    ``listing-page``, ``photos-tab``, ``videos-tab``, ``acts-page``, ``no-article``,
    ``no-title``, ``no-date``, ``id-mismatch``, ``lang-mismatch``, ``not-listing``,
    ``not-feed``; the legacy text import uses ``txt-line-<n>`` (n = 1-based line number) and
    ``not-text``. The message says what was wrong in words.
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message or reason


@dataclass(frozen=True)
class ListingItem:
    """One entry of a listing page. `url` is the canonical event URL (`urls.event_url`); an
    entry that links elsewhere (a document on `/acts/news`) keeps its own absolute link."""

    kremlin_id: int
    url: str
    title: str
    published_at: str  # ISO 8601 with Moscow's offset; just the date if the entry shows no time
    place: str | None = None


@dataclass(frozen=True)
class Listing:
    """A listing page. The site's labels are inverted (§4): the "Previous" button
    (``a.more-next[rel=next]``) leads to OLDER items, "Next" (``a.more-prev``) to NEWER ones."""

    items: list[ListingItem]
    older_url: str | None
    newer_url: str | None
    page: int | None
    pages: int | None


@dataclass(frozen=True)
class FeedEntry:
    """One Atom entry. `published` / `updated` are verbatim: the feed labels Moscow local time
    with +04:00 even in 2020 (§5) -- use the page's time, not these."""

    kremlin_id: int | None
    url: str
    title: str
    published: str
    updated: str | None
    summary: str


# --------------------------------------------------------------------------------------------
# Text normalisation and speaker labels (shared with legacy_txt.parse_txt)
# --------------------------------------------------------------------------------------------

_ASCII_WS = re.compile(r"[ \t\n\r\f\v]+")


def normalize_text(text: str) -> str:
    """Collapse runs of ASCII whitespace to one space and strip the ends (NBSP inside is kept)."""
    # Substring tests and str.replace run at C speed, the regex engine a character at a time:
    # the site's raw line breaks are single newlines between words (three paragraphs in four on
    # long pages), which a replace turns into the one space the regex would have made; only a
    # run (two spaces, a newline beside a space) or a rarer control character needs the regex.
    text = text.replace("\n", " ")  # the same string when it has no newline
    if "  " in text or "\t" in text or "\r" in text or "\f" in text or "\v" in text:
        text = _ASCII_WS.sub(" ", text)
    return text.strip()


_SECTION_BREAK = re.compile(r"^\*(?:\s*\*)*$")


def is_section_break(text: str) -> bool:
    """``* * *`` (any spacing, any number of asterisks): the site's section break (§2)."""
    return bool(_SECTION_BREAK.match(text))


# A label longer than this is a sentence in bold, not a speaker (the longest real one in the
# mirror, a full ministerial title, is 159 characters).
_MAX_LABEL = 250
_MAX_LABEL_WORDS = 40
_TRAILING_NOTE = re.compile(r"\s*\([^()]*\)?\s*$")  # "(retranslated)", also left unclosed
_SENTENCE_BREAK = re.compile(r"[a-zа-яё]{2}[.!?]\s|[?!;]")
_INITIALS_NAME = re.compile(r"(?:^|\s)(?:[A-ZА-ЯЁ]\.\s?-?\s?)+[A-ZА-ЯЁ][\w’'-]+$")
_NAME_PARTICLE = re.compile(r"^(?:al|el|ad|as|ash|at|bin|ibn|abu|de|da|di|du|van|von|le|la)-\w")
_WORD_EDGE = "\"'«»“”„‘’()[],.:"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that make a clause, not a name or a title ("We discussed this with President Xi").
_CLAUSE_WORDS = _words(
    "me my we us our you your he him his she her it its they them their this that these those "
    "there here what which who whom whose am is are was were be been being will would shall "
    "should can could might must has have had do does did not said says say reads let if when "
    "because also "
    "я мы вы ты он она оно они это этот эта эти что как был была было были будет есть если "
    "когда вот не"
)
# Capitalised pronouns anywhere, and words that open a sentence rather than a title.
_PRONOUNS = _words(
    "I We You He She They It This That These Those There Here What Let If When Your Our My "
    "Я Мы Вы Ты Он Она Они Это Что Как Вот Если Когда Ваш Наш Мой"
)
_OPENERS = _words(
    "As About For Now And But Or So Hence Finally Following Having In On At Last Next Another "
    "Then Also After Before During While Since Because However Thus Therefore Yet "
    "И А Но Или В На По Также Теперь Итак Кроме После Для Об О"
)
# Lower-case past-tense verbs ("Vladimir Putin resolved to award …:"); the allowed ones occur
# in real titles ("honoured archivist of Russia").
_PAST_TENSE = re.compile(r"^[a-z]{2,}ed$")
_PAST_TENSE_TITLES = _words("honoured retired united acting")
_CLAUSE_OR_PRONOUN = _CLAUSE_WORDS | _PRONOUNS
# First words of lines that carry data, not a speaker ("Contact telephone numbers: +7 …").
_NOT_SPEAKERS = _words(
    "note notes contact contacts tel telephone telephones phone phones fax email e-mail address "
    "website deadline venue date time agenda accreditation attention source subject reference "
    "programme program schedule text примечание контакты контакт телефон телефоны факс адрес "
    "сайт справка внимание дата время место тема повестка аккредитация источник текст"
)
# Labels that name a role, not a person: by their first word ("Question:", "Response from the
# hall:", "Реплика:") or, for a few, by their last ("Call centre operator:", "Голос из зала:").
_ROLES = _words(
    "question questions remark remarks reply response answer comment comments voice voices "
    "audience operator presenter moderator host speaker interpreter translator participant "
    "participants volunteer volunteers journalist correspondent reporter "
    "вопрос реплика реплики ответ комментарий голос голоса ведущий ведущая модератор "
    "оператор участник участница участники журналист корреспондент переводчик"
)
_LAST_WORD_ROLES = _words(
    "operator presenter moderator interpreter translator correspondent reporter "
    "ведущий ведущая модератор оператор переводчик корреспондент зала"
)


def is_role_label(label: str) -> bool:
    """Whether a speaker label names a role, not a person: by its first word (``Question``,
    ``Response from the hall``, ``Реплика``) or its last (``Call centre operator``)."""
    words = [w.strip(_WORD_EDGE) for w in _TRAILING_NOTE.sub("", normalize_text(label)).split()]
    words = [w for w in words if w]
    return bool(words) and (words[0].lower() in _ROLES or words[-1].lower() in _LAST_WORD_ROLES)


def _name_like(word: str) -> bool:
    word = word.strip(_WORD_EDGE)
    return bool(word) and (word[0].isupper() or bool(_NAME_PARTICLE.match(word)))


def _ends_with_name(words: Sequence[str], names: int = 1) -> bool:
    """At least two words, the last `names` of them capitalised (or ``al-Assad``-like)."""
    return len(words) >= max(2, names) and all(_name_like(w) for w in words[-names:])


def is_speaker_label(label: str) -> bool:
    """Whether `label` (the text before a paragraph's first colon) names a speaker.

    Accepted: initials + surname (``В.Путин``, ``К.-Ж.Токаев``); a name or a title ending in a
    capitalised word (``President of Russia Vladimir Putin``), or a short name followed by
    ``, description`` (``Alisa Shmelyova, metrology engineer``); a role (``Question``,
    ``Response from the hall``, ``Call centre operator``, ``Реплика``). A trailing
    parenthetical (``(retranslated)``) is ignored for the test. Refused: headings and prose --
    a lower-case last word (``Meeting points``), a pronoun, verb or sentence opener (``The
    message reads``, ``As for Buryatia``), a sentence break, a single plain word (``Email``),
    data lines (``Contact Telephone Numbers``), anything longer than a title can be.
    """
    label = normalize_text(label)
    if not label or len(label) > _MAX_LABEL:
        return False
    # Each regex below needs a character that most labels lack ("(", ".", "!?;", "ed"): the
    # substring test first, at C speed, the regex only when it can match.
    core = label
    if "(" in core:
        for _ in range(3):  # "(retranslated) (continued)" at most
            stripped = _TRAILING_NOTE.sub("", core)
            if stripped == core:
                break
            core = stripped
    words = core.split()
    if not words or len(words) > _MAX_LABEL_WORDS:
        return False
    dotted = "." in core
    if (dotted or "?" in core or "!" in core or ";" in core) and _SENTENCE_BREAK.search(core):
        return False
    bare = [w.strip(_WORD_EDGE) for w in words]
    first = bare[0]
    if not first or first.lower() in _NOT_SPEAKERS or first in _OPENERS:
        return False
    if not _CLAUSE_OR_PRONOUN.isdisjoint(bare) or any(
        w.endswith("ed") and _PAST_TENSE.match(w) and w not in _PAST_TENSE_TITLES for w in bare
    ):
        return False
    if not first[0].isupper():
        # A title typed in lower case ("chairman of Vnesheconombank (VEB) Vladimir Dmitriev")
        # only counts when a full name follows.
        return _ends_with_name(words, names=2)
    if dotted and _INITIALS_NAME.search(core):
        return True
    if first.lower() in _ROLES or bare[-1].lower() in _LAST_WORD_ROLES:
        return True
    if _ends_with_name(words):
        return True
    head = core.split(",", 1)[0].split()
    return "," in core and _ends_with_name(head, names=2)


def split_speaker_label(paragraph: str) -> tuple[str, str] | None:
    """``"В.Путин: Добрый день"`` -> ``("В.Путин", "Добрый день")``; None if the paragraph does
    not open with a speaker label. The label runs to the first colon; `rest` is stripped and may
    be empty (a label standing alone). This is the plain-text half of the detector: on a page
    the label must also be in bold (`parse_event`); the legacy text import has only this."""
    colon = paragraph.find(":")
    if colon <= 0 or colon > _MAX_LABEL:
        return None
    label = normalize_text(paragraph[:colon])
    if not is_speaker_label(label):
        return None
    return label, paragraph[colon + 1 :].strip()


def assemble_utterances(lines: Iterable[tuple[str | None, str, bool]]) -> list[Utterance]:
    """Group paragraphs into turns. Each input is ``(speaker, line, is_break)``: `speaker` is
    the label's speaker when the paragraph opens with one (else None), `line` the paragraph
    with its label removed, `is_break` marks ``* * *``. A label or a break opens a new turn
    (a break's turn has speaker None); anything else continues the current turn."""
    turns: list[Utterance] = []
    speaker: str | None = None
    buffer: list[str] | None = None
    for label, line, is_break in lines:
        if buffer is None or label is not None or is_break:
            if buffer is not None:
                turns.append(Utterance(len(turns) + 1, speaker, "\n".join(buffer)))
            speaker = label
            buffer = [line]
        else:
            buffer.append(line)
    if buffer is not None:
        turns.append(Utterance(len(turns) + 1, speaker, "\n".join(buffer)))
    return turns


def _new_utterance(seq: int, speaker: str | None, text: str) -> Utterance:
    """`Utterance(seq, speaker, text)` without the frozen dataclass's ``__init__`` (a call that
    looks up and calls ``object.__setattr__`` per field), and a long transcript makes hundreds:
    its fields set by ``object.__setattr__`` bound once. Not through ``__dict__``, which would
    make each instance build a dict of its own (Python 3.11 keeps the attributes of an instance
    whose ``__dict__`` is never asked for in place, a quarter cheaper). The instance is the
    same (fields, equality, hash, repr, pickling)."""
    utterance = _new(Utterance)
    _set(utterance, "seq", seq)
    _set(utterance, "speaker", speaker)
    _set(utterance, "text", text)
    return utterance


def _new_tag(kind: str, name: str, url: str | None) -> Tag:
    """`Tag(kind, name, url)`, built as `_new_utterance` builds an `Utterance`."""
    tag = _new(Tag)
    _set(tag, "kind", kind)
    _set(tag, "name", name)
    _set(tag, "url", url)
    return tag


def _new_mention(
    catalog_id: int, text: str, card_name: str | None, card_title: str | None, turn: int | None
) -> Mention:
    """`Mention(catalog_id, text, card_name, card_title, turn)`, built as `_new_utterance`
    builds an `Utterance`."""
    mention = _new(Mention)
    _set(mention, "catalog_id", catalog_id)
    _set(mention, "text", text)
    _set(mention, "card_name", card_name)
    _set(mention, "card_title", card_title)
    _set(mention, "turn", turn)
    return mention


def _plain_dataclass(cls: type, names: tuple[str, ...]) -> bool:
    """Whether `cls` is a dataclass of exactly these fields, in this order, that keeps them in
    its instances' ``__dict__`` and does nothing after ``__init__``: what the builders above
    assume. Should items.py change, its ``__init__`` is used instead."""
    return (
        tuple(f.name for f in dataclasses.fields(cls)) == names
        and not hasattr(cls, "__slots__")
        and not hasattr(cls, "__post_init__")
    )


_new = object.__new__
_set = object.__setattr__
_utterance = (
    _new_utterance if _plain_dataclass(Utterance, ("seq", "speaker", "text")) else Utterance
)
_tag = _new_tag if _plain_dataclass(Tag, ("kind", "name", "url")) else Tag
_mention_of = (
    _new_mention
    if _plain_dataclass(Mention, ("catalog_id", "text", "card_name", "card_title", "turn"))
    else Mention
)


def utterances_from_paragraphs(paragraphs: Iterable[str]) -> list[Utterance]:
    """Speaker turns from plain-text paragraphs: labels by `split_speaker_label`, and, as on a
    page, a label the text uses with a colon elsewhere standing without one at the start of a
    paragraph (`label_without_colon`)."""
    lines = []
    for paragraph in paragraphs:
        if is_section_break(paragraph):
            lines.append((None, paragraph, True))
            continue
        split = split_speaker_label(paragraph)
        lines.append((split[0], split[1], False) if split else (None, paragraph, False))
    labels = sorted({line[0] for line in lines if line[0]}, key=len, reverse=True)
    for index, (label, text, is_break) in enumerate(lines):
        if label is None and not is_break:
            found = label_without_colon(text, labels)
            if found:
                lines[index] = (found[0], found[1], False)
    return assemble_utterances(lines)


def label_without_colon(paragraph: str, labels: Sequence[str]) -> tuple[str, str] | None:
    """``"Megyn Kelly With this?"`` -> ``("Megyn Kelly", "With this?")`` when ``Megyn Kelly``
    is one of `labels` (longest first): the paragraph opens with the label, then a full stop,
    a space or a capital (``Megyn KellyVladimir Putin could …``, glued on the page), and
    goes on with text that does not start in lower case. None otherwise."""
    for label in labels:
        if len(paragraph) <= len(label) or not paragraph.startswith(label):
            continue
        after = paragraph[len(label)]
        if not (after.isspace() or after == "." or after.isupper()):
            continue
        rest = paragraph[len(label) :]
        rest = (rest[1:] if rest.startswith(".") else rest).strip()
        if _opens_speech(rest):
            return label, rest
    return None


def text_after_label(paragraph: str, speaker: str) -> str | None:
    """The paragraph without the label `speaker` it opens with (what a turn's first line is),
    None if it does not open with it: ``label: text`` (`split_speaker_label`, or a one-word
    label, which only bold marks on a page) or a label without a colon
    (`label_without_colon`)."""
    split = split_speaker_label(paragraph)
    if split is not None:
        return split[1] if split[0] == speaker else None
    head, colon, rest = paragraph.partition(":")
    if colon and normalize_text(head) == speaker:
        return rest.strip()
    found = label_without_colon(paragraph, [speaker])
    return found[1] if found else None


def _opens_speech(rest: str) -> bool:
    """Text after a label without a colon starts as speech does: a capital or a quotation
    mark. Not a lower-case word that goes on with the bold words ("<b>Remark </b><i>from the
    audience.</i>"), not a bracketed note ("Margarita Simonyan [editor-in-chief …], please.")."""
    return bool(rest) and (rest[0].isupper() or rest[0] in '«“„"')


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------


def _numbered(text: str) -> dict[str, int]:
    return {word: number for number, word in enumerate(text.split(), start=1)}


_EN_MONTHS = _numbered(
    "january february march april may june july august september october november december"
)
_RU_MONTHS = _numbered(
    "января февраля марта апреля мая июня июля августа сентября октября ноября декабря"
)
_ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
_CLOCK = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)")
# "March 18, 2020", "April 7 − 8, 2013", "April 30 − May 1, 2013" (the first day is kept).
_EN_DATE = re.compile(
    r"\b([A-Z][a-z]+)\s+(\d{1,2})(?:\s*[-–−]\s*(?:[A-Z][a-z]+\s+)?\d{1,2})?,?\s+(\d{4})\b"
)
_RU_DATE = re.compile(r"(\d{1,2})(?:\s*[-–−]\s*\d{1,2})?\s+([а-яё]+)\s+(\d{4})", re.IGNORECASE)


def _iso_day(value: str | None) -> dt.date | None:
    """``datetime="2020-03-18"`` -> date (None if absent or not a date)."""
    return None if value is None else _iso_day_of(value)


# A page names its day two or three times (date, status, update), and a crawl each day for its
# dozens of events: the answer is kept per attribute value.
@functools.lru_cache(maxsize=4096)
def _iso_day_of(value: str) -> dt.date | None:
    value = value.strip()[:10]
    if len(value) != 10 or not _ISO_DATE.match(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _display_day(text: str) -> dt.date | None:
    """First date in "March 18, 2020" / "Announcement, April 7 − 8, 2013" / "18 марта 2020
    года" / "7–8 апреля 2013 года"."""
    for pattern, order in ((_EN_DATE, "mdy"), (_RU_DATE, "dmy")):
        for match in pattern.finditer(text):
            a, b, year = match.groups()
            month_name, day = (a, b) if order == "mdy" else (b, a)
            month = (_EN_MONTHS if order == "mdy" else _RU_MONTHS).get(month_name.lower())
            if month is None:
                continue
            try:
                return dt.date(int(year), month, int(day))
            except ValueError:
                continue
    return None


def _clock(text: str | None) -> tuple[int, int] | None:
    """The last HH:MM in `text` ("17:40", "March 18, 2020, 17:40")."""
    if text and (len(text) == 5 or text[-6:-5] == " ") and text[-3] == ":" and text[-5:].isascii():
        # div.read__time holds just "17:40", a status or update time "March 20, 2015, 17:59":
        # read without the regex when it ends in two ASCII digit pairs after a space or
        # nothing (exactly what the regex would find last: no match can span the space).
        hour, minute = text[-5:-3], text[-2:]
        if hour.isdigit() and minute.isdigit():
            hour, minute = int(hour), int(minute)
            return (hour, minute) if hour < 24 and minute < 60 else None
    found = _CLOCK.findall(text or "")
    if not found:
        return None
    hour, minute = int(found[-1][0]), int(found[-1][1])
    return (hour, minute) if hour < 24 and minute < 60 else None


def _moscow_iso(day: dt.date, hour: int, minute: int) -> str:
    """`timestamps.moscow_iso(day, hour, minute)`, the offset looked up once per day: a
    datetime in a ZoneInfo zone costs some microseconds to build and format, and every page
    writes one or two. On the rare day whose offset changes (a clock change, none since 2014)
    the full computation runs."""
    offset = _moscow_offset(day)
    if not offset:
        return moscow_iso(day, hour, minute)
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00{offset}"


@functools.lru_cache(maxsize=4096)
def _moscow_offset(day: dt.date) -> str:
    """Moscow's offset all that `day` as isoformat writes it ("+03:00"), from its first and
    last minute; "" when they differ."""
    first, last = moscow_iso(day, 0, 0), moscow_iso(day, 23, 59)
    # "YYYY-MM-DDTHH:MM:SS" is 19 characters; the offset follows.
    return first[19:] if first[19:] == last[19:] else ""


def _stamp(day: dt.date | None, clock: tuple[int, int] | None) -> str | None:
    if day is None:
        return None
    return _moscow_iso(day, *clock) if clock else day.isoformat()


# --------------------------------------------------------------------------------------------
# HTML helpers
# --------------------------------------------------------------------------------------------


_PARSERS = threading.local()


def _html_parser() -> etree.HTMLParser:
    """libxml2's HTML parser: no network, ids not indexed (not needed), comments dropped. One
    per thread, so that its error log, read right after a parse, belongs to that parse (a new
    parser per document would cost a fresh libxml2 context, ~25 µs)."""
    parser = getattr(_PARSERS, "html", None)
    if parser is None:
        parser = _PARSERS.html = etree.HTMLParser(
            encoding="utf-8", no_network=True, collect_ids=False, remove_comments=True
        )
    return parser


_BOLD_TAGS = frozenset({"b", "strong"})
_SILENT_TAGS = frozenset({"script", "style", "noscript", "template"})
# Blocks inside the body container that are not body text (§2): hover cards, the footer,
# "See also", the photo slider.
_NOT_TEXT = frozenset({"masha-ignore", "hidden-copy", "read__cut", "slider"})


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


def _has(element, token: str) -> bool:
    """Whether `element` has the class `token` (the substring test first: it is C-speed)."""
    classes = element.get("class")
    return classes is not None and token in classes and token in classes.split()


def _first(xpath: etree.XPath, element):
    if element is None:
        return None
    found = xpath(element)
    return found[0] if found else None


# The happy path walks body > div.read > div.read__scroll > article#event-<id> (§2) and then
# the few children of known blocks: an XPath evaluation has a fixed cost of some 15 µs in lxml,
# more than walking a block. This XPath is the fallback for markup nested differently.
_X_ANY_ARTICLE = etree.XPath("//article[starts-with(@id, 'event-')]")
_X_READ = etree.XPath(f"/html/body/div[{_has_class('read')}]")

# Only consulted to name what a page without an event article is.
_X_ERROR_PAGE = etree.XPath(
    f"/html/body[{_has_class('error_page')}] | //div[{_has_class('error_code')}]"
)
_X_ACTS = etree.XPath(
    f"//div[{_has_class('reader_act_body')}] | //div[{_has_class('read__top__pravo')}]"
)
_X_PHOTOSET = etree.XPath(f"//div[{_has_class('photoset')}]")
_X_VIDEO_TOP = etree.XPath(f"//div[{_has_class('read__top_media')}]")
_X_LISTER = etree.XPath(f"//div[{_has_class('lister-page')}]")
_X_LIST_ITEMS = etree.XPath(f"//div[{_has_class('hentry')}][@data-id]")


def _child(element, tag: str, token: str):
    """The first child `tag` of `element` with class `token`, or None."""
    if element is not None:
        # The template's blocks have a few children each: testing their tags here is cheaper
        # than setting up lxml's tag matcher (`iterchildren(tag)`, ~1 µs a call).
        for child in element:
            if child.tag == tag and _has(child, token):
                return child
    return None


def _article(root) -> tuple:
    """(article#event-<id>, the div.read around it) where the template puts them, else (the
    article anywhere in the document or None, None)."""
    body = root[-1] if len(root) and root[-1].tag == "body" else None
    read = _child(body, "div", "read")
    scroll = _child(read, "div", "read__scroll")
    if scroll is not None:
        for article in scroll:  # one child: no tag matcher (see `_child`)
            if article.tag == "article" and (article.get("id") or "").startswith("event-"):
                return article, read
    return _first(_X_ANY_ARTICLE, root), None


def _runs(element, bold_owner=None, out=None, links=None) -> list:
    """The visible text of `element` as runs ``(text, bold_owner)``, where `bold_owner` is the
    outermost ``b``/``strong`` around the run (None if not bold). Hover cards (``.masha-ignore``,
    ``.read__tooltip``) are skipped but the text after them is kept; ``<br>`` is a space. With
    a `links` list, person links (``a.person_tag``) are appended to it as ``(index of their
    first run, element)``."""
    if out is None:
        out = []
    text = element.text  # each .text/.tail decodes the node's text anew: read it once
    if text:
        out.append((text, bold_owner))
    for child in element:
        tag = child.tag
        if type(tag) is str:  # comments and processing instructions have no text of their own
            cls = child.get("class")
            if cls and ("masha-ignore" in cls or "read__tooltip" in cls):
                pass
            elif tag == "br":
                out.append((" ", bold_owner))
            elif tag not in _SILENT_TAGS:
                if links is not None and tag == "a" and cls and "person_tag" in cls:
                    links.append((len(out), child))
                owner = child if bold_owner is None and tag in _BOLD_TAGS else bold_owner
                if len(child):
                    _runs(child, owner, out, links)
                else:  # a leaf (most are): its text, without a call
                    text = child.text
                    if text:
                        out.append((text, owner))
        tail = child.tail
        if tail:
            out.append((tail, bold_owner))
    return out


def _join_runs(runs: Sequence[tuple[str, object]]) -> str:
    """Normalised text of runs, with the one repair described in the module docstring: adjacent
    bold runs from different ``<b>`` elements glued lower|Upper get a space."""
    parts: list[str] = []
    last_text, last_owner = "", None
    for text, owner in runs:
        if (
            owner is not None
            and last_owner is not None
            and owner is not last_owner
            and last_text[-1:].islower()
            and text[:1].isupper()
            and text[1:2].isalpha()
        ):
            parts.append(" ")
        parts.append(text)
        last_text, last_owner = text, owner
    return normalize_text("".join(parts))


def _text(element) -> str:
    if element is None:
        return ""
    if not len(element):  # no markup inside: the common case for titles, times, places
        return normalize_text(element.text or "")
    return _join_runs(_runs(element))


def _bold_label_zone(runs: Sequence[tuple[str, object]]) -> int:
    """Where the label of a paragraph that opens with a label-shaped bold zone ends: from the
    first visible character to the first colon everything is bold, except whitespace and
    parentheticals (``<b>Vladimir Putin</b> (<i>retranslated</i>): …``, ``<b>Vladimir Putin
    (</b>…): …``). Returns the offset of that colon in the runs' raw text, -1 if there is none."""
    offset = 0
    started = False
    depth = 0
    for text, owner in runs:
        colon = text.find(":")
        head = text if colon < 0 else text[:colon]
        if offset + len(head) > _MAX_LABEL:
            return -1
        if head and not head.isspace():
            if "(" in head or ")" in head:
                # A parenthetical: character by character (few paragraphs have one).
                for char in head:
                    if char.isspace():
                        continue
                    if not started:
                        if owner is None:
                            return -1
                        started = True
                    if char == "(":
                        depth += 1
                    elif char == ")":
                        depth = max(0, depth - 1)
                    elif owner is None and depth == 0:
                        return -1
            else:
                if not started:
                    if owner is None:
                        return -1
                    started = True
                if owner is None and depth == 0:
                    return -1
        offset += len(head)
        if colon >= 0:
            return offset if started else -1
    return -1


def _bold_lead(runs: Sequence[tuple[str, object]]) -> tuple[str, str, bool, int] | None:
    """A paragraph that opens with bold text followed by plain text and no colon:
    ``<b>Vladimir Putin.</b> Yes.``, ``<b>Sebastian Kurz</b>. Thank you``, ``<b>Megyn
    Kelly</b> With this?`` -> ``(bold text, the rest, whether a full stop closed the bold text,
    raw offset where the bold text ends)``. None for any other paragraph."""
    bold: list[tuple[str, object]] = []
    offset = 0
    rest_at = None
    for index, (text, owner) in enumerate(runs):
        if owner is None and not text.isspace():
            if not bold:
                return None
            rest_at = index
            break
        bold.append((text, owner))
        offset += len(text)
    if rest_at is None:
        return None
    core = _join_runs(bold)
    rest = normalize_text("".join(text for text, _ in runs[rest_at:]))
    dotted = core.endswith(".")
    if dotted:
        core = core[:-1].rstrip()
    elif rest.startswith("."):
        dotted = True
        rest = rest[1:].lstrip()
    if not core or ":" in core or not _opens_speech(rest):
        return None
    return core, rest, dotted, offset


def _personal_name(text: str) -> bool:
    """Two to four capitalised words of letters (``Kseniya Slutskaya``): a name, which a bold
    lead closed by a full stop may be without a colon. Dates and places with numbers
    (``May 8. Alexander Garden``) are not."""
    words = text.split()
    return (
        2 <= len(words) <= 4
        and all(w[0].isupper() and w.replace("-", "").replace("’", "").isalpha() for w in words)
        and is_speaker_label(text)
    )


def _single_name(label: str) -> bool:
    """A label of one capitalised word (``Alina``), which only a page, in bold and followed by
    the turn's text, can carry: not a heading or data word (``Email``)."""
    word = label.strip()
    return (
        bool(word)
        and " " not in word
        and word[0].isupper()
        and word.replace("-", "").isalpha()
        and word.lower() not in _NOT_SPEAKERS
        and word not in _OPENERS
        and word not in _PRONOUNS
    )


# One body paragraph as `parse_event` reads it, a plain tuple (built at C speed, which a
# class instance is not): ``(text, line, bare, links, label_end)``. `line` is ``(speaker, text
# without the label, is_break)`` for `assemble_utterances`; `bare` a label candidate without a
# colon (`_bold_lead`), which only the whole page can confirm; `links` the person links with
# the raw offset of their text; `label_end` the raw offset where the label ends.
_Para = tuple[str, tuple[str | None, str, bool], tuple[str, str, bool, int] | None, list, int]


def _split_label(text: str, known: dict[str, tuple[str, bool]]) -> tuple[str, str] | None:
    """`split_speaker_label`, with `is_speaker_label` answered once per label (`_LABELS`: a
    transcript repeats its few labels hundreds of times): `known` maps the raw text before the
    colon to (label, verdict)."""
    colon = text.find(":")
    if colon <= 0 or colon > _MAX_LABEL:
        return None
    raw = text[:colon]
    seen = known.get(raw)
    if seen is None:
        label = normalize_text(raw)
        seen = known[raw] = (label, is_speaker_label(label))
    return (seen[0], text[colon + 1 :].strip()) if seen[1] else None


def _all_bold(runs: Sequence[tuple[str, object]]) -> bool:
    """Whether every run is bold or whitespace; a label's turn fails on its last run."""
    text, owner = runs[-1]
    if owner is None and not text.isspace():
        return False
    return all(owner is not None or text.isspace() for text, owner in runs)


# The text before a paragraph's first colon -> (label, whether it names a speaker), for
# `_split_label`: `is_speaker_label` is a pure function of the text, and costs more than all the
# rest of a paragraph's reading; a transcript repeats its few labels hundreds of times, and the
# site its speakers ("Vladimir Putin", "Dmitry Peskov", "Question") over thousands of pages.
# Shared by all parses (a dict is safe to share between threads: the worst a race can do is
# compute a verdict twice); emptied when it grows past `_LABELS_MAX` entries.
_LABELS: dict[str, tuple[str, bool]] = {}
_LABELS_MAX = 1 << 14


def _body(elements: Iterable) -> tuple[list[str], list[Utterance], list[Mention]]:
    """The body paragraphs that have text, their speaker turns and their person links.

    One pass over the paragraphs keeps, per paragraph, only its text and its line (the text
    without its label); the turns are the runs between the paragraphs that open one (the first,
    a label, a break: `assemble_utterances`'s rule), kept as start index and speaker. What few
    paragraphs need more -- a bold lead without a colon, which only the whole page can confirm
    as a label, and person links -- are set aside and settled at the end (`_settle`). Most
    paragraphs have no markup at all, and are read here (`normalize_text` inline: a function
    call per paragraph is measurable on long pages); the others by `_paragraph`."""
    known = _LABELS
    if len(known) > _LABELS_MAX:
        known.clear()
    texts: list[str] = []
    lines: list[str] = []
    # The turns: where each starts (paragraph index) and its speaker; two lists, not a list of
    # pairs, which would be as many more objects for the garbage collector to walk.
    starts: list[int] = []
    speakers: list[str | None] = []
    extras: list[tuple[int, tuple[str, str, bool, int] | None, list, int]] = []
    for element in elements:
        # `_is_text_block`, inline; most paragraphs have no attribute at all, which `keys()`
        # tells faster than `get` (that first turns its argument into a name to look up).
        classes = element.get("class") if element.keys() else None
        if classes is not None and not _NOT_TEXT.isdisjoint(classes.split()):
            continue
        children = len(element)
        if not children:  # no markup (most paragraphs)
            text = element.text
            if not text:
                continue
            text = text.replace("\n", " ")
            if "  " in text or "\t" in text or "\r" in text or "\f" in text or "\v" in text:
                text = _ASCII_WS.sub(" ", text)
            text = text.strip()
            if text:
                if not texts or (text[0] == "*" and is_section_break(text)):
                    starts.append(len(texts))
                    speakers.append(None)
                texts.append(text)
                lines.append(text)
            continue
        head = element.text
        if children == 1 and (head is None or head.isspace()):
            # A turn of a label the page has shown to be a speaker's (most paragraphs with
            # markup on a long transcript): read without `_paragraph`'s runs and tuples.
            labelled = _labelled(head, element[0], known)
            if labelled is not None:
                text, speaker, line = labelled
                starts.append(len(texts))
                speakers.append(speaker)
                texts.append(text)
                lines.append(line)
                continue
        part = _paragraph(element, known)
        if part is None:
            continue
        text, (speaker, line, is_break), bare, links, label_end = part
        index = len(texts)
        if speaker is not None or is_break or not index:
            starts.append(index)
            speakers.append(speaker)
        if bare is not None or links:
            extras.append((index, bare, links, label_end))
        texts.append(text)
        lines.append(line)
    mentions: list[Mention] = []
    if extras:
        starts, speakers = _settle(extras, starts, speakers, lines, mentions)
    utterances = []
    starts.append(len(lines))
    for seq, speaker in enumerate(speakers, start=1):
        index, end = starts[seq - 1], starts[seq]
        text = lines[index] if end == index + 1 else "\n".join(lines[index:end])
        utterances.append(_utterance(seq, speaker, text))
    return texts, utterances, mentions


def _labelled(
    head: str | None, child, known: dict[str, tuple[str, bool]]
) -> tuple[str, str, str] | None:
    """`_bold_paragraph`'s answer for the paragraphs of most transcripts, ``<p><b>Label:</b>
    text</p>`` and ``<p><b>Label</b>: text</p>`` (only whitespace before one ``b``/``strong``
    without markup or class, text after it), when the label is one the page has already shown
    to be a speaker's (`known`); None otherwise, and `_paragraph` reads the paragraph in full.
    ``(text, speaker, line)``: the same text, label and line, without building the runs (the
    paragraph has no links, so its label end is not needed)."""
    tag = child.tag
    if (tag != "b" and tag != "strong") or len(child):
        return None
    if child.keys() and child.get("class") is not None:  # `keys()` first: see `_body`
        return None
    bold = child.text
    tail = child.tail
    if not bold or not tail:
        return None
    offset = len(head) if head else 0
    colon = bold.find(":")
    if colon >= 0:  # <b>Label:</b> text -- a heading if only whitespace follows
        if not colon or tail.isspace() or offset + colon > _MAX_LABEL or bold[:colon].isspace():
            return None
    else:  # <b>Label</b>: text -- only whitespace between the bold text and the colon
        colon = tail.find(":")
        if colon < 0 or bold.isspace() or (colon and not tail[:colon].isspace()):
            return None
        if offset + len(bold) + colon > _MAX_LABEL:
            return None
    text = normalize_text((head + bold + tail) if head else (bold + tail))
    at = text.find(":")
    seen = known.get(text[:at]) if 0 < at <= _MAX_LABEL else None
    if seen is None or not seen[1]:
        return None
    return text, seen[0], text[at + 1 :].strip()


def _settle(
    extras: Sequence[tuple[int, tuple[str, str, bool, int] | None, list, int]],
    starts: list[int],
    speakers: list[str | None],
    lines: list[str],
    mentions: list[Mention],
) -> tuple[list[int], list[str | None]]:
    """For `_body`: the bold leads without a colon that open a turn (the page uses the same
    words as a label elsewhere, or a full stop closes them and they are a personal name,
    `_personal_name`), and the person links of the body, each with the turn whose label holds
    it. Returns the turns (starts, speakers) with those leads; `lines` and `mentions` are
    updated."""
    opens = dict(zip(starts, speakers, strict=True))  # paragraph index -> speaker
    labels = None  # the page's labels, gathered at the first bold lead (most pages have none)
    links_at = []
    for index, bare, links, label_end in extras:
        if bare is not None:
            if labels is None:
                labels = {speaker for speaker in speakers if speaker}
            core, rest, dotted, end = bare
            if core in labels or (dotted and _personal_name(core)):
                opens[index] = core
                lines[index] = rest
                label_end = end
        if links:
            links_at.append((index, links, label_end))
    if len(opens) != len(starts):
        starts = sorted(opens)
    speakers = [opens[index] for index in starts]
    for index, links, label_end in links_at:
        seq = bisect_right(starts, index)  # the turn the paragraph belongs to
        labelled = opens.get(index) is not None
        for offset, anchor in links:
            mention = _mention(anchor, seq if labelled and offset < label_end else None)
            if mention is not None:
                mentions.append(mention)
    return starts, speakers


def _paragraph(element, known: dict[str, tuple[str, bool]]) -> _Para | None:
    """A body paragraph with markup; None if it is empty. `known`: see `_split_label`."""
    head = element.text
    if head and not head.isspace():
        opens_bold = False  # text first: neither a label zone nor a bold lead
    elif len(element) == 1:
        child = element[0]
        tag = child.tag
        if (tag == "b" or tag == "strong") and not len(child) and child.get("class") is None:
            return _bold_paragraph(head, child, known)
        opens_bold = True
    else:
        opens_bold = True
    links: list = []
    runs = _runs(element, links=links)
    text = _join_runs(runs)
    if not text:
        return None
    if links:
        offsets, at = [], 0
        for text_run, _ in runs:
            offsets.append(at)
            at += len(text_run)
        offsets.append(at)
        links = [(offsets[index], anchor) for index, anchor in links]
    if text[0] == "*" and is_section_break(text):
        return text, (None, text, True), None, links, -1
    if not opens_bold:
        return text, (None, text, False), None, links, -1
    colon = _bold_label_zone(runs)
    if colon >= 0:
        split = _label_split(text, known)
        # A paragraph in bold from start to end whose text goes on after the colon is a
        # heading ("Speeches at the opening of the Imperial Capitals: St Petersburg – …").
        if split and not (split[1] and _all_bold(runs)):
            return text, (split[0], split[1], False), None, links, colon
        return text, (None, text, False), None, links, -1
    return text, (None, text, False), _bold_lead(runs), links, -1


def _label_split(text: str, known: dict[str, tuple[str, bool]]) -> tuple[str, str] | None:
    """A paragraph whose bold start holds a colon: (label, rest) when the part before the colon
    is a speaker label, or a single name followed by text ("Alina: …"); else None."""
    split = _split_label(text, known)
    if split is None:
        label, _, rest = text.partition(":")
        label, rest = normalize_text(label), rest.strip()
        if rest and _single_name(label):
            split = (label, rest)
    return split


def _bold_paragraph(head: str | None, child, known: dict[str, tuple[str, bool]]) -> _Para | None:
    """`_paragraph` for the most common paragraph with markup, ``<p><b>Label:</b> text</p>``:
    only whitespace before one ``b``/``strong`` without markup or class of its own. The same
    rules, written out for these (at most) three runs: one bold run leaves `_join_runs` nothing
    to repair, and a colon inside the bold text ends the label zone there."""
    bold = child.text or ""
    tail = child.tail or ""
    text = normalize_text((head or "") + bold + tail)
    if not text:
        return None
    if text[0] == "*" and is_section_break(text):
        return text, (None, text, True), None, (), -1
    runs = [(head, None)] if head else []
    if bold:
        runs.append((bold, child))
    if tail:
        runs.append((tail, None))
    colon = bold.find(":")
    if colon >= 0:
        offset = len(head) if head else 0
        label = bold[:colon]
        if offset + colon > _MAX_LABEL or not label or label.isspace():
            colon = -1
        else:
            colon += offset
    else:
        colon = _bold_label_zone(runs)
    if colon >= 0:
        split = _label_split(text, known)
        # All bold (a heading) when nothing but whitespace follows the bold text.
        if split and not (split[1] and (not tail or tail.isspace())):
            return text, (split[0], split[1], False), None, (), colon
        return text, (None, text, False), None, (), -1
    return text, (None, text, False), _bold_lead(runs), (), -1


_PERSON_HREF = re.compile(r"/catalog/persons/(\d+)(?:[/?#]|$)")


def _mention(anchor, turn: int | None) -> Mention | None:
    """A person link -> `Mention` (catalog id from its href, visible text, hover card)."""
    found = _PERSON_HREF.search(anchor.get("href") or "")
    text = _text(anchor)
    if not found or not text:
        return None
    card_name = card_title = None
    for span in anchor.iter("span"):
        cls = span.get("class") or ""
        if card_name is None and "tooltip_title" in cls:
            card_name = normalize_text("".join(span.itertext())) or None
        elif card_title is None and "tooltip_description" in cls:
            card_title = normalize_text("".join(span.itertext())) or None
    return _mention_of(int(found.group(1)), text, card_name, card_title, turn)


def _lead_mentions(lead) -> list[Mention]:
    if lead is None or not len(lead):  # a lead without markup has no links
        return []
    found = (_mention(a, None) for a in lead.iter("a") if "person_tag" in (a.get("class") or ""))
    return [m for m in found if m is not None]


def _absolute(base: str, href: str | None) -> str | None:
    href = (href or "").strip()
    if not href:
        return None
    if href.startswith(("http://", "https://")) and " " not in href:
        return href  # already absolute (most links on the site are)
    try:
        return urljoin(base, href)
    except ValueError:
        return None


def _body_bytes(body: object) -> bytes:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ParseError("not-bytes", f"expected the response body as bytes, got {type(body)!r}")
    raw = bytes(body)
    if not raw or raw.isspace():
        raise ParseError("empty", "the response body is empty")
    return raw


_HTML_START = re.compile(rb"<html[\s>]", re.IGNORECASE)
_HTML_END = re.compile(rb"</html\s*>", re.IGNORECASE)


def _parse_html(data: bytes):
    """(root, error log) of one libxml2 parse."""
    parser = _html_parser()
    try:
        root = etree.fromstring(data, parser)
    except (etree.LxmlError, ValueError) as exc:
        raise ParseError("not-html", f"unparsable HTML ({exc})") from None
    return root, parser.error_log


def _html_root(data: bytes, *, whole_page: bool):
    """Parse HTML bytes as UTF-8. A `whole_page` must open with <html> and end with </html>: a
    body cut short in transit must not pass for a shorter page; fragments are welcome too."""
    if whole_page and not _HTML_START.search(data, 0, 8192):
        raise ParseError("not-html", "no <html> element at the start of the body")
    if whole_page:
        # The literal end tag first (a search at C speed); the regex for other spellings.
        tail = max(0, len(data) - 2048)
        if data.find(b"</html>", tail) < 0 and not _HTML_END.search(data, tail):
            raise ParseError("truncated", "the page does not end with </html>: it was cut short")
    root, errors = _parse_html(data)
    if not errors:  # the usual case: nothing to look at below
        if root is None or root.tag != "html":
            raise ParseError("not-html", "no HTML document in the body")
        return root
    if any(error.type_name == "ERR_INVALID_ENCODING" for error in errors):
        # libxml2 validates UTF-8 as it parses (cheaper than a Python decode of every page)
        # but replaces byte by byte; redo the rare bad page with Python's errors="replace"
        # (en page 63123 carries one invalid byte, §7).
        root, errors = _parse_html(data.decode("utf-8", errors="replace").encode("utf-8"))
    if root is None or root.tag != "html":
        raise ParseError("not-html", "no HTML document in the body")
    # libxml2 recovers from bad markup, but gives up on a document past a resource limit
    # (elements nested deeper than 256) and keeps only the tree built so far: that tree is
    # not the page.
    fatal = errors.filter_from_fatals()
    if fatal:
        raise ParseError("malformed", f"the HTML parser gave up: {fatal[0].message}")
    return root


# --------------------------------------------------------------------------------------------
# Event pages
# --------------------------------------------------------------------------------------------


def _is_text_block(element) -> bool:
    classes = element.get("class")
    return classes is None or _NOT_TEXT.isdisjoint(classes.split())


class _Page:
    """The blocks of an event page's article (§2), found by walking known children."""

    def __init__(self, article) -> None:
        self.title = self.lead = self.published = self.clock = self.place = None
        self.announce = self.body = self.bottommeta = None
        self.paragraphs: Iterable = []
        for content in article:
            if content.tag == "div" and _has(content, "read__content"):
                break
        else:
            return
        # Each element's class is read once (an lxml attribute read is not cheap) and its
        # tokens tested as `_has` does.
        for block in content:
            classes = block.get("class")
            if classes is None:
                continue
            names = classes.split()
            if "read__top" in names:
                self._top(block)
            elif "announce_date" in names:
                self.announce = block
            elif self.body is None and "read__internal_content" in names:
                self.body = block
                self._body(block)

    def _top(self, top) -> None:
        for element in top.iter("h1", "div", "time"):
            classes = element.get("class")
            # Every class token tested below contains "read__" or is "entry-title": other
            # elements (the wrappers) are passed over without splitting or reading the tag.
            if classes is None or ("read__" not in classes and "entry-title" not in classes):
                continue
            names = classes.split()
            tag = element.tag
            if tag == "h1":
                if self.title is None and "entry-title" in names:
                    self.title = element
            elif tag == "time":
                if self.published is None and "read__published" in names:
                    self.published = element
            elif self.lead is None and "read__lead" in names:
                self.lead = element
            elif self.clock is None and "read__time" in names:
                self.clock = element
            elif self.place is None and "read__place" in names:
                self.place = element

    def _body(self, body) -> None:
        # Body text = direct <p> children and <blockquote> paragraphs; the footer
        # (.read__bottommeta: tags, status, links) is nested in the same container (§2).
        if next(body.iterchildren("blockquote"), None) is None:
            # No quotation (most pages): lxml picks the <p>s and the divs in C, which saves
            # reading the tag of every child (hundreds on a long transcript).
            # The <p>s are read one by one as `_body` goes (it tests their class): a list of
            # them all would keep hundreds of element proxies alive at once, which the cyclic
            # garbage collector then walks.
            self.paragraphs = body.iterchildren("p")
            # The footer is the container's last child (on every page of the mirror), and so
            # the last div of its class, found without a pass over the children.
            last = body[-1] if len(body) else None
            if last is not None and last.tag == "div" and _has(last, "read__bottommeta"):
                self.bottommeta = last
                return
            for div in body.iterchildren("div"):
                if _has(div, "read__bottommeta"):
                    self.bottommeta = div
            return
        paragraphs = self.paragraphs
        for child in body:
            tag = child.tag
            if tag == "p":
                classes = child.get("class")  # _is_text_block, inline: one test per paragraph
                if classes is None or _NOT_TEXT.isdisjoint(classes.split()):
                    paragraphs.append(child)
            elif tag == "blockquote":
                if _is_text_block(child):
                    self.paragraphs.extend(p for p in child.iter("p") if _is_text_block(p))
            elif tag == "div" and _has(child, "read__bottommeta"):
                self.bottommeta = child


def _classify_non_event(root, read) -> ParseError:
    """Name what a page without an event article is (only ever runs on the failure path)."""
    href = (read.get("data-href") or "") if read is not None else ""
    path = urlsplit(href).path.rstrip("/") if href else ""
    if _X_ERROR_PAGE(root):
        return ParseError("not-found-page", "the site's 404 page (Ошибка 404 / PAGE NOT FOUND)")
    if _X_ACTS(root) or "/acts/" in path:
        return ParseError("acts-page", "a document-bank (acts) page, not an event page")
    if path.endswith("/photos") or _X_PHOTOSET(root):
        return ParseError("photos-tab", "the Photos tab of an event, not its text")
    if path.endswith("/videos") or _X_VIDEO_TOP(root):
        return ParseError("videos-tab", "the Video tab of an event, not its text")
    if _X_LISTER(root) or _X_LIST_ITEMS(root):
        return ParseError("listing-page", "a listing page, not an event page")
    return ParseError("no-article", "no article#event-<id> in the page")


def _material_link(read) -> str | None:
    for block in read:
        if block.tag == "div" and _has(block, "read__tabs"):
            for span in block.iter("span"):
                if span.get("id") == "material_link":
                    return span.text
    return None


def _check_identity(expected: urls.EventURL, article, read) -> None:
    """The page must be the event the URL names (§1: id in article@id, data-href, material
    link). The print twin's data-href ends in /print; parse_event_url canonicalises it."""
    article_id = (article.get("id") or "")[len("event-") :]
    if not article_id.isdigit() or int(article_id) != expected.kremlin_id:
        raise ParseError(
            "id-mismatch",
            f"the page is article #{article.get('id')}, the URL names {expected.kremlin_id}",
        )
    if read is None:
        return
    # data-href names the page; the share block's #material_link is the fallback (§2).
    for candidate in (read.get("data-href") or _material_link(read),):
        candidate = (candidate or "").strip()
        if not candidate or candidate in (expected.url, expected.url + "/print"):
            continue  # the usual case needs no full URL parse
        try:
            named = urls.parse_event_url(candidate)
        except ValueError:
            continue  # not an event URL form; nothing to compare
        if named.kremlin_id != expected.kremlin_id:
            raise ParseError(
                "id-mismatch", f"the page links itself as {named.url}, the URL is {expected.url}"
            )
        if named.lang != expected.lang:
            raise ParseError(
                "lang-mismatch", f"the page is on the {named.lang} site, the URL on {expected.lang}"
            )


def _status_blocks(bottommeta) -> tuple[list, object]:
    """(tag columns, status block) of the footer."""
    columns, status = [], None
    if bottommeta is not None:
        for div in bottommeta.iter("div"):
            classes = div.get("class")  # read once, tested as `_has` does
            if classes is None or "read__" not in classes:  # not split for the wrappers
                continue
            names = classes.split()
            if "read__tagscol" in names:
                columns.append(div)
            elif status is None and "read__status" in names:
                status = div
    return columns, status


def _published(page: _Page, status) -> tuple[str, str | None]:
    """(published_at, announce_date) -- see the module docstring."""
    announce_date = None
    if page.announce is not None:
        day = _display_day(_text(page.announce))
        announce_date = day.isoformat() if day else None
    if page.published is not None:
        day = _iso_day(page.published.get("datetime")) or _display_day(_text(page.published))
        clock = _clock(_text(page.clock)) if page.clock is not None else None
        if day is not None and clock is not None:
            return _moscow_iso(day, *clock), announce_date
    # Announcements (and any page whose meta block lacks the time): the status block's
    # "Publication date: <time datetime=…>December 10, 2012, 16:00</time>" (§2).
    status_time = next(status.iter("time"), None) if status is not None else None
    if status_time is not None:
        text = _text(status_time)
        day = _iso_day(status_time.get("datetime")) or _display_day(text)
        clock = _clock(text)
        if day is not None and clock is not None:
            return _moscow_iso(day, *clock), announce_date
    raise ParseError("no-date", "no publication date and time on the page")


def _lead(lead) -> str:
    if lead is None:
        return ""
    if not len(lead):  # just text (most leads): no paragraphs to look for
        return _text(lead)
    paragraphs = list(lead.iter("p"))
    if not paragraphs:
        return _text(lead)
    return "\n".join(t for t in (_text(p) for p in paragraphs) if t)


_TAG_KINDS = {
    "topics": "topic",
    "темы": "topic",
    "persons": "person",
    "лица": "person",
    "geography": "geography",
    "география": "geography",
}
_CATALOG_KINDS = (
    ("/catalog/keywords/", "topic"),
    ("/catalog/persons/", "person"),
    ("/catalog/countries/", "geography"),
    ("/catalog/regions/", "geography"),
)


def _tags(columns: Sequence, status, base: str) -> tuple[list[Tag], list[str]]:
    found: dict[tuple[str, str, str | None], None] = {}  # ordered, without repeats
    for column in columns:
        heading = next(column.iter("h3"), None)
        kind = _TAG_KINDS.get(_text(heading).lower()) if heading is not None else None
        for link in column.iter("a"):
            if link.get("rel") != "tag":
                continue  # the "5 more" toggle
            # Keyword anchors carry an <i></i> icon and a trailing space (§2).
            name = normalize_text("".join(link.itertext()))
            url = _absolute(base, link.get("href"))
            link_kind = kind or next((k for part, k in _CATALOG_KINDS if url and part in url), None)
            if name and url and link_kind:
                found[link_kind, name, url] = None
    sections: list[str] = []
    if status is not None:
        # "Published in sections: <a>News</a>, <a>Transcripts</a>": the status paragraph whose
        # links have no class (the direct link and the text-version link do; the date has none).
        for paragraph in status.iter("p"):
            # A paragraph has a few elements: their tags are read here, in one loop, rather
            # than by a tag matcher (see `_child`) and a generator per paragraph.
            links = []
            for element in paragraph.iter():
                if element.tag == "a":
                    if element.get("class"):
                        links = ()  # the direct link or the text-version link
                        break
                    links.append(element)
            for link in links:
                name = _text(link)
                if name and name not in sections:
                    sections.append(name)
                    found["section", name, _absolute(base, link.get("href"))] = None
    return [_tag(kind, name, url) for kind, name, url in found], sections


def _updated(read) -> str | None:
    """The "Last updated at <time>" stamp, the last block of div.read (§2)."""
    if read is None or not len(read):
        return None
    block = read[-1]
    if not _has(block, "read__updated"):
        block = next((b for b in read if _has(b, "read__updated")), None)
        if block is None:
            return None
    for time in block.iter():  # the block and its <time>: no tag matcher (see `_child`)
        if time.tag == "time":
            break
    else:
        return None
    text = _text(time)
    return _stamp(_iso_day(time.get("datetime")) or _display_day(text), _clock(text))


def _twin(root, expected: urls.EventURL) -> str | None:
    """The other language's page: <link rel="alternate" hreflang=… href=…> in the head (§1)."""
    head = root[0] if len(root) and root[0].tag == "head" else None
    if head is None:
        return None
    for link in head.iterchildren("link"):
        hreflang = link.get("hreflang")
        if hreflang is None or link.get("rel") != "alternate":
            continue
        hreflang = hreflang.strip().lower()
        if hreflang not in urls.HOSTS or hreflang == expected.lang:
            continue
        href = _absolute(expected.url, link.get("href"))
        if not href:
            continue
        twin = urls.event_url(hreflang, expected.kremlin_id)
        if href in (twin, twin + "/print"):
            return twin  # the print twin links .../print
        try:
            return urls.parse_event_url(href).url
        except ValueError:
            return href
    return None


def _event_ref(url: object) -> urls.EventURL:
    """`urls.parse_event_url`, which checks every form a URL may take, answered at once for the
    canonical URL a crawl passes (exactly what `urls.event_url` builds for the id it ends with):
    on a short page the full check is a measurable share of the parse."""
    if isinstance(url, str):
        cut = url.rfind("/") + 1
        tail = url[cut:]
        if 0 < len(tail) <= 9 and tail.isascii() and tail.isdigit() and tail[0] != "0":
            # `urls.event_url(lang, id)` is the language's prefix and the id's digits.
            lang = _CANONICAL_PREFIXES.get(url[:cut])
            if lang is not None:
                return urls.EventURL(lang, int(tail), url)
    return urls.parse_event_url(url)


_CANONICAL_PREFIXES = {urls.event_url(lang, 1)[:-1]: lang for lang in urls.HOSTS}


def parse_event(body: bytes, url: str) -> Transcript:
    """Parse an event page into a `Transcript` (content fields only; provenance is the crawl's).

    `url` names the record: any form `urls.parse_event_url` accepts (canonical, `/print`,
    `/copy/<id>`, `/d/<id>`). Raises `ParseError` (and nothing else) when the body is not a
    complete event page of that id -- see the module docstring for the rules.
    """
    try:
        expected = _event_ref(url)
    except ValueError as exc:
        raise ParseError("bad-url", str(exc)) from None
    root = _html_root(_body_bytes(body), whole_page=True)
    article, read = _article(root)
    if read is None:  # the article is not where the template puts it
        read = article.getparent().getparent() if article is not None else _first(_X_READ, root)
        if article is None:
            raise _classify_non_event(root, read)
        if read is not None and not _has(read, "read"):
            read = None
    _check_identity(expected, article, read)

    page = _Page(article)
    title = _text(page.title)
    if not title:
        raise ParseError("no-title", "no h1.entry-title")
    columns, status = _status_blocks(page.bottommeta)
    published_at, announce_date = _published(page, status)

    paragraphs, utterances, mentions = _body(page.paragraphs)

    tags, sections = _tags(columns, status, expected.url)
    return Transcript(
        kremlin_id=expected.kremlin_id,
        lang=expected.lang,
        url=expected.url,
        title=title,
        published_at=published_at,
        lead=_lead(page.lead),
        place=_text(page.place) or None,
        paragraphs=paragraphs,
        utterances=utterances,
        tags=tags,
        sections=sections,
        updated_at=_updated(read),
        twin_url=_twin(root, expected),
        announce_date=announce_date,
        mentions=_lead_mentions(page.lead) + mentions,
        parser_version=PARSER_VERSION,
    )


# --------------------------------------------------------------------------------------------
# Listing pages
# --------------------------------------------------------------------------------------------

_X_ITEM_LINK = etree.XPath(".//h3//a[@href] | .//a[@rel='bookmark'][@href]")
_X_ITEM_TITLE = etree.XPath(f".//span[{_has_class('entry-title')}]")
_X_ITEM_TIME = etree.XPath(".//time")
_X_ITEM_PLACE = etree.XPath(f".//*[{_has_class('hentry__location')}]")
_X_OLDER = etree.XPath(f"//a[{_has_class('more-next')}]")
# Items with the day headers between them, in page order (§4: h2.events__title > time).
_X_DAYS_AND_ITEMS = etree.XPath(
    f"//h2[{_has_class('events__title')}]//time[@datetime]"
    f" | //div[{_has_class('hentry')}][@data-id]"
)
_X_NEWER = etree.XPath(f"//a[{_has_class('more-prev')}]")


def _int_attr(element, name: str) -> int | None:
    value = (element.get(name) or "").strip() if element is not None else ""
    return int(value) if value.isdigit() else None


def _listing_item(element, lang: str, base: str, day: dt.date | None) -> ListingItem | None:
    """One entry; `day` is the day header above it, the date of an entry that shows none."""
    kremlin_id = _int_attr(element, "data-id")
    if kremlin_id is None or kremlin_id <= 0:
        return None
    link = _first(_X_ITEM_LINK, element)
    href = _absolute(base, link.get("href")) if link is not None else None
    url = urls.event_url(lang, kremlin_id)
    if href and "/events/" not in urlsplit(href).path:
        url = href  # not an event page (a document on /acts/news): keep its own link
    title_el = _first(_X_ITEM_TITLE, element)
    title = _text(title_el) if title_el is not None else ""
    time = _first(_X_ITEM_TIME, element)
    published = None
    if time is not None:
        text = _text(time)
        published = _stamp(_iso_day(time.get("datetime")) or _display_day(text), _clock(text))
    published = published or _stamp(day, None)
    if published is None:
        return None  # an entry without any date cannot be placed in the archive's timeline
    place_el = _first(_X_ITEM_PLACE, element)
    place = (_text(place_el) or None) if place_el is not None else None
    return ListingItem(kremlin_id, url, title, published, place)


def _page_url(lister, page: int, base: str) -> str | None:
    """The URL of listing page `page` from the site's own pagination attributes (§4):
    page 1 is ``data-base-url``, others ``data-url-template`` with PAGE replaced."""
    if lister is None:
        return None
    if page == 1 and lister.get("data-base-url"):
        return _absolute(base, lister.get("data-base-url"))
    template = lister.get("data-url-template") or ""
    return _absolute(base, template.replace("PAGE", str(page))) if "PAGE" in template else None


def _same_host(url: str | None, base: str) -> str | None:
    if not url:
        return None
    target, origin = urlsplit(url), urlsplit(base)
    return target._replace(scheme=origin.scheme, netloc=origin.netloc).geturl()


def parse_listing(body: bytes, url: str) -> Listing:
    """Parse a listing page (`…/news`, `…/news/page/N`, `…/news/by-date/DD.MM.YYYY`) or a
    fragment of listing items.

    Items keep page order (newest first); `published_at` is the entry's own date and time (the
    day header above it when the entry shows none, as a bare date); entries without any date
    are left out. `older_url` / `newer_url` are absolute on the host of `url`, built from the
    page's pagination attributes when it has them (else the button's link); None where the page
    has no such button. Raises ParseError("not-listing") for anything without listing items or
    a ``div.lister-page``.
    """
    lang = urls.lang_of_host(url) if isinstance(url, str) else None
    if lang is None:
        raise ParseError("bad-url", f"not a kremlin.ru URL: {url!r}")
    root = _html_root(_body_bytes(body), whole_page=False)
    if _X_ANY_ARTICLE(root):
        raise ParseError("not-listing", "an event page, not a listing")
    lister = _first(_X_LISTER, root)
    items: list[ListingItem] = []
    day = None
    for element in _X_DAYS_AND_ITEMS(root):
        if element.tag == "time":
            day = _iso_day(element.get("datetime"))
        elif (item := _listing_item(element, lang, url, day)) is not None:
            items.append(item)
    if lister is None and not items:
        raise ParseError("not-listing", "no div.lister-page and no listing items")
    page, pages = _int_attr(lister, "data-page"), _int_attr(lister, "data-pages")

    def neighbour(xpath: etree.XPath, offset: int) -> str | None:
        button = _first(xpath, root)
        if button is None:
            return None
        if page is not None and page + offset >= 1:
            built = _page_url(lister, page + offset, url)
            if built:
                return _same_host(built, url)
        return _same_host(_absolute(url, button.get("href")), url)

    return Listing(items, neighbour(_X_OLDER, 1), neighbour(_X_NEWER, -1), page, pages)


# --------------------------------------------------------------------------------------------
# Atom feed
# --------------------------------------------------------------------------------------------

_ATOM = "{http://www.w3.org/2005/Atom}"


def _xml_parser() -> etree.XMLParser:
    """No network, no entity expansion (billion laughs, XXE), no DTD, bounded tree size."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _child_text(element, name: str) -> str | None:
    child = element.find(_ATOM + name)
    return child.text.strip() if child is not None and child.text else None


def _summary_text(element) -> str:
    summary = element.find(_ATOM + "summary")
    if summary is None or not summary.text:
        return ""
    if (summary.get("type") or "text") not in ("html", "xhtml"):
        return normalize_text(summary.text)
    try:
        fragment = etree.fromstring(
            ("<html><body>" + summary.text + "</body></html>").encode("utf-8"), _html_parser()
        )
    except (etree.LxmlError, ValueError):
        return normalize_text(summary.text)
    if fragment is None:
        return ""
    paragraphs = fragment.findall(".//p")
    texts = [_text(p) for p in paragraphs] if paragraphs else [_text(fragment)]
    return "\n".join(t for t in texts if t)


def parse_feed(body: bytes, url: str) -> list[FeedEntry]:
    """Parse the site's Atom feed into entries (feed order).

    Timestamps are returned verbatim (see `FeedEntry`). `summary` is the summary's text,
    paragraphs joined by "\\n", images dropped. Entries without a link or without any timestamp
    are skipped. Anything that is not an Atom feed raises ParseError("not-feed").
    """
    if not isinstance(url, str):
        raise ParseError("bad-url", f"expected the feed's URL as str, got {url!r}")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ParseError("not-bytes", f"expected the feed as bytes, got {type(body)!r}")
    if not bytes(body).strip():
        raise ParseError("empty", "the response body is empty")
    try:
        root = etree.fromstring(bytes(body), _xml_parser())
    except (etree.LxmlError, ValueError) as exc:
        raise ParseError("not-feed", f"not well-formed XML ({exc})") from None
    if root is None or root.tag != _ATOM + "feed":
        raise ParseError("not-feed", "the document is not an Atom <feed>")
    entries = []
    for entry in root.iterfind(_ATOM + "entry"):
        link = None
        for candidate in entry.iterfind(_ATOM + "link"):
            if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
                link = candidate.get("href")
                break
        link = _absolute(url, link or _child_text(entry, "id"))
        published = _child_text(entry, "published") or _child_text(entry, "updated")
        if not link or not published:
            continue
        try:
            kremlin_id: int | None = urls.parse_event_url(link).kremlin_id
        except ValueError:
            kremlin_id = None
        title_el = entry.find(_ATOM + "title")
        entries.append(
            FeedEntry(
                kremlin_id=kremlin_id,
                url=link,
                title=normalize_text("".join(title_el.itertext())) if title_el is not None else "",
                published=published,
                updated=_child_text(entry, "updated"),
                summary=_summary_text(entry),
            )
        )
    return entries
