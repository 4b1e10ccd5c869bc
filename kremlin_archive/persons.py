"""Who said it: a speaker label, with the evidence of its page and of the archive -> a person.

Pure: labels, tags, links and dates in, `Resolution`s out; no SQL, no I/O. `db.py` feeds it
and stores what it says (DESIGN.md "Persons").

A printed label (``President of Russia Vladimir Putin (retranslated)``, ``В.Путин``,
``Alisa Shmelyova, metrology engineer``) is kept as it is; resolution adds who it names, the
position or title printed with the name, and the interpretation marker (the trailing
parentheticals: ``(retranslated)``, ``(через переводчика)``, ``(в переводе)``).

Persons are identified by the site's catalog id (``/catalog/persons/<id>``, the same in both
languages) written as a string (``"37"``), else by an archive id ``a-<name>``
(`named_id`): Vladimir Putin, whom the catalog does not list, is ``a-vladimir-putin``.

The evidence, strongest first; the first that speaks decides, and it is recorded with a note
that says what was matched (`Resolution.evidence`, `Resolution.note`):

``label-link``
    the label carries a link to a catalog person (its hover card);
``role``
    the label names a role, not a person (``Question``, ``Remark``, ``Реплика``): no person;
``rule``
    a stated rule: the presidents by name (Vladimir Putin, and Dmitry Medvedev, catalog
    person 37, in any form: ``В.Путин``, ``VLADIMIR PUTIN``, ``Д.Медведев``), and a label that
    is a bare presidential title (``President of Russia``, ``Президент``) for the president of
    the day (`president_on`);
``event-tag``
    the event's person tags (``Mishustin Mikhail``);
``page-link``
    the same name linked to a catalog person elsewhere on the page;
``archive``
    the name (two words at least: a full name, or initials and surname) given to exactly one
    catalog person by the tags and links of the archive's other events (`Index`);
``name``
    no catalog person bears the name: an archive person keyed on the name as printed
    (``a-megyn-kelly``). The same name is the same archive person, in every event.
``ambiguous`` / ``archive-ambiguous``
    several persons fit equally well (on the page / in the archive): no person, never a
    guess; the note lists them;
``archive`` also settles between catalog persons of one name when the position printed with
    it shares two words or more with the positions the archive knows for one of them only
    (``Governor of Ulyanovsk Region Sergei Morozov``);
``archive-unconfirmed``
    one catalog person bears the name, but the label prints a position that shares no word
    with any the archive knows them to have held (hover-card descriptions, positions printed
    in labels resolved on their own pages): a namesake is likely (``ALROSA CEO Sergei
    Ivanov`` is not the Sergei Ivanov who was Chief of Staff), so no person;
``unresolved``
    nothing to go on (a title without a name: ``Governor of the Tula Region``).

Matching is on words: a name matches a person when all its words (case and ``ё`` folded) are
words of one of the person's names and its initials stand for the others (``С.Лавров`` ->
``Лавров Сергей``); it is found as the label's last words (``Prime Minister Mikhail
Mishustin``) or the words before its first comma. The person whose name matches the most
words wins; a tie is ambiguity. On the page a surname alone is enough; in the archive two words
are needed.

`ARCHIVE_STAGE` lists the outcomes that depend on the archive's index: `db.settle_persons`
re-resolves them when the archive has grown, so the result does not depend on the order in
which events were stored.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from typing import NamedTuple

from .items import Mention
from .parsing import is_role_label, normalize_text

LABEL_LINK = "label-link"
ROLE = "role"
RULE = "rule"
EVENT_TAG = "event-tag"
PAGE_LINK = "page-link"
ARCHIVE = "archive"
NAME = "name"
AMBIGUOUS = "ambiguous"
ARCHIVE_AMBIGUOUS = "archive-ambiguous"
ARCHIVE_UNCONFIRMED = "archive-unconfirmed"
UNRESOLVED = "unresolved"

EVIDENCE = (
    LABEL_LINK, ROLE, RULE, EVENT_TAG, PAGE_LINK, ARCHIVE, NAME, AMBIGUOUS, ARCHIVE_AMBIGUOUS,
    ARCHIVE_UNCONFIRMED, UNRESOLVED,
)  # fmt: skip
# Outcomes decided by the page alone (and the rules), whatever else the archive holds.
PAGE_STAGE = (LABEL_LINK, RULE, EVENT_TAG, PAGE_LINK)
# Outcomes decided by the archive's index rather than by the page alone.
ARCHIVE_STAGE = (ARCHIVE, NAME, ARCHIVE_AMBIGUOUS, ARCHIVE_UNCONFIRMED, UNRESOLVED)
# Outcomes that leave a labelled turn without a person although it names one (counted).
NOT_RESOLVED = (AMBIGUOUS, ARCHIVE_AMBIGUOUS, ARCHIVE_UNCONFIRMED, UNRESOLVED)


@dataclass(frozen=True)
class Resolution:
    """What a label says and who it is. `person_id` is None for roles and for labels that
    could not be resolved; `name` is the words taken for the name, `position` the rest of the
    label (NBSP as a space), `marker` the trailing parentheticals as printed."""

    person_id: str | None
    evidence: str
    note: str
    name: str | None = None
    position: str | None = None
    marker: str | None = None
    catalog_id: int | None = None


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# -- labels -----------------------------------------------------------------------------------

_TRAILING_PARENS = re.compile(r"(?:\s*\([^()]*\)?)+\s*$")
_INITIALS = re.compile(r"^((?:[A-ZА-ЯЁ]\.\s?-?\s?)+)(.*)$")
_EDGE = "\"'«»“”„‘’()[],.:;"


@dataclass(frozen=True)
class _Part:
    """A word of a name, folded (``путин``), or an initial (``к-ж`` for ``К.-Ж.``); `word`
    is the index of the printed word it comes from."""

    text: str
    initial: bool
    word: int


def _fold(word: str) -> str:
    return word.lower().replace("ё", "е").replace("’", "'").strip(_EDGE)


def _parts(words: Sequence[str]) -> list[_Part]:
    parts: list[_Part] = []
    for index, word in enumerate(words):
        found = _INITIALS.match(word)
        if found and (found.group(2)[:1].isalpha() or not found.group(2)):
            for initial in re.findall(r"[A-ZА-ЯЁ]\.(?:\s?-\s?[A-ZА-ЯЁ]\.)*", found.group(1)):
                letters = re.findall(r"[A-ZА-ЯЁ]", initial)
                parts.append(_Part("-".join(_fold(x) for x in letters), True, index))
            word = found.group(2)
        folded = _fold(word)
        if folded:
            parts.append(_Part(folded, False, index))
    return parts


@functools.lru_cache(maxsize=1 << 16)  # the same few thousand names, page after page
def _name_words(name: str) -> tuple[str, ...]:
    """A catalog name or a link's text -> its folded words (initials are not names)."""
    return tuple(p.text for p in _parts(normalize_text(name.replace("\xa0", " ")).split()))


@dataclass(frozen=True)
class Label:
    """A printed label taken apart: `core` without its trailing parentheticals (`marker`),
    `words` the core's printed words (NBSP as a space)."""

    printed: str
    core: str
    marker: str | None
    words: tuple[str, ...]


def read_label(label: str) -> Label:
    text = normalize_text(label.replace("\xa0", " "))
    found = _TRAILING_PARENS.search(text)
    marker = None
    if found and found.start() > 0:
        marker = text[found.start() :].strip() or None
        text = text[: found.start()].strip()
    return Label(label, text, marker, tuple(text.split()))


def _position(label: Label, start: int, end: int) -> str | None:
    """The label's words outside the name (printed words `start`..`end`-1)."""
    before = " ".join(label.words[:start]).strip(" ,")
    after = " ".join(label.words[end:]).strip(" ,")
    return ", ".join(x for x in (before, after) if x) or None


# -- who is who -------------------------------------------------------------------------------

PUTIN = "a-vladimir-putin"
MEDVEDEV_CATALOG_ID = 37


@dataclass(frozen=True)
class RulePerson:
    person_id: str
    catalog_id: int | None
    names: Mapping[str, str]  # lang -> name as the site writes it
    forms: tuple[tuple[str, ...], ...]  # folded name words, any language
    note: str


RULE_PERSONS = (
    RulePerson(
        PUTIN,
        None,
        {"en": "Vladimir Putin", "ru": "Владимир Путин"},
        (
            ("vladimir", "vladimirovich", "putin"),
            ("владимир", "владимирович", "путин"),
        ),
        "rule: Vladimir Putin by name (the site's catalog does not list him)",
    ),
    RulePerson(
        str(MEDVEDEV_CATALOG_ID),
        MEDVEDEV_CATALOG_ID,
        {"en": "Dmitry Medvedev", "ru": "Дмитрий Медведев"},
        (
            ("dmitry", "anatolyevich", "medvedev"),
            ("дмитрий", "анатольевич", "медведев"),
        ),
        "rule: Dmitry Medvedev by name (the site's catalog person 37)",
    ),
)
# (first day, person) -- the president from that day on (inaugurations, Moscow days).
PRESIDENTS = (
    (dt.date(1999, 12, 31), RULE_PERSONS[0]),
    (dt.date(2008, 5, 7), RULE_PERSONS[1]),
    (dt.date(2012, 5, 7), RULE_PERSONS[0]),
)
PRESIDENT_TITLES = frozenset(
    {
        "president",
        "the president",
        "president of russia",
        "president of the russian federation",
        "russian president",
        "президент",
        "президент россии",
        "президент российской федерации",
    }
)


def builtin_name(person_id: str, lang: str) -> str | None:
    """The name a rule gives a person (the presidents), None for anyone else."""
    for person in RULE_PERSONS:
        if person.person_id == person_id:
            return person.names.get(lang)
    return None


def president_on(day: dt.date) -> RulePerson | None:
    """The president of Russia on a Moscow day (None before 31 December 1999)."""
    current = None
    for first, person in PRESIDENTS:
        if day >= first:
            current = person
    return current


def named_id(name: str) -> str:
    """The archive's id of a person the catalog does not list: ``a-`` + the name's words."""
    words = re.findall(r"\w+", normalize_text(name.replace("\xa0", " ")).lower().replace("ё", "е"))
    return "a-" + "-".join(words)


class _Candidate(NamedTuple):
    """A name a person goes by: `words` folded, `surname` the word a match must contain
    (the first of a catalog name, ``Lavrov Sergei``; the last of a link's text)."""

    key: str  # person id
    catalog_id: int | None
    shown: str  # as written
    words: tuple[str, ...]
    surname: str


def _candidate(key: str, catalog_id: int | None, shown: str, surname_first: bool):
    words = _name_words(shown)
    if not words:
        return None
    return _Candidate(key, catalog_id, shown, words, words[0] if surname_first else words[-1])


def _fits(name: Sequence[_Part], form: Sequence[str], surname: str) -> bool:
    """Whether every word of `name` is a word of `form`, the surname among them, and its
    initials stand, in order, for the form's other words in order -- the given name, then the
    patronymic (``К.-Ж.`` for ``Касым-Жомарт``; ``А.`` is not Dmitry Anatolyevich)."""
    if not any(not p.initial and p.text == surname for p in name):
        return False
    pool = list(form)
    for part in name:
        if part.initial:
            continue
        if part.text not in pool:
            return False
        pool.remove(part.text)
    initials = [p.text for p in name if p.initial]
    if len(initials) > len(pool):
        return False
    for initial, word in zip(initials, pool, strict=False):
        if "-".join(x[:1] for x in word.split("-")) != initial and not (
            "-" not in initial and word[:1] == initial
        ):
            return False
    return True


def _spans(label: Label, parts: Sequence[_Part]) -> Iterable[tuple[int, int, list[_Part]]]:
    """Where a name may stand in a label: the last words, or the words before the first
    comma -> ``(first printed word, end printed word, parts)``, longest first."""
    ends = [len(label.words)]
    comma = next((i for i, w in enumerate(label.words) if w.endswith(",")), None)
    if comma is not None and comma + 1 < len(label.words):
        ends.append(comma + 1)
    for end in ends:
        for start in range(end):
            span = [p for p in parts if start <= p.word < end]
            if span:
                yield start, end, span


@dataclass(frozen=True)
class _Match:
    key: str  # person id
    score: int  # parts matched
    start: int
    end: int
    catalog_id: int | None
    shown: str  # the form that matched, as written


def _given_name_before(label: Label, start: int) -> bool:
    """Whether the word before a surname standing alone looks like a given name of someone
    else (``Alexander Medvedev`` is not Dmitry Medvedev): capitalised, not a title word."""
    if start == 0:
        return False
    word = label.words[start - 1]
    bare = word.strip(_EDGE)
    return (
        bool(bare)
        and bare[0].isupper()
        and not word.endswith(",")
        and _fold(bare) not in _TITLE_WORDS
    )


def _misspelt(word: str, name: str) -> bool:
    """``vlaidmir`` for ``vladimir``: same first letter, at most two letters off."""
    return (
        word[:1] == name[:1]
        and word != name
        and abs(len(word) - len(name)) <= 2
        and SequenceMatcher(None, word, name).ratio() >= 0.8
    )


def _best(
    label: Label,
    parts: Sequence[_Part],
    candidates: Iterable[_Candidate | None],
    min_score: int = 1,
) -> list[_Match]:
    """The best match per candidate person, then the persons with the best score."""
    best: dict[str, _Match] = {}
    candidates = [c for c in candidates if c is not None]
    for start, end, span in _spans(label, parts):
        score = len(span)
        alone = score == 1 and _given_name_before(label, start)
        if score < min_score and not alone:
            continue
        # the span's words: a candidate whose surname is not among them cannot fit (the
        # first test of `_fits`, made here once per span rather than per candidate)
        named = {p.text for p in span if not p.initial}
        for c in candidates:
            if c.surname not in named:
                continue
            if c.key in best and best[c.key].score >= score:
                continue
            if not _fits(span, c.words, c.surname):
                continue
            if alone:
                # Someone else's given name before the surname -- unless it is this
                # person's, misspelt ("Vlaidmir Putin"): then it counts as matched.
                given = _fold(label.words[start - 1])
                if not any(_misspelt(given, w) for w in c.words if w != c.surname):
                    continue
                if min_score > 2:
                    continue
                best[c.key] = _Match(c.key, 2, start - 1, end, c.catalog_id, c.shown)
                continue
            best[c.key] = _Match(c.key, score, start, end, c.catalog_id, c.shown)
    if not best:
        return []
    top = max(m.score for m in best.values())
    return sorted((m for m in best.values() if m.score == top), key=lambda m: m.key)


@dataclass
class Index:
    """The names the archive gives catalog persons: person tags (``Lavrov Sergei``), hover
    cards and the text of links (two words or more: ``Sergei Lavrov``), both languages."""

    forms: dict[int, dict[tuple[str, ...], _Candidate]] = field(default_factory=dict)
    by_word: dict[str, set[int]] = field(default_factory=dict)
    # The words of the positions the archive has seen a person hold: hover-card descriptions
    # and the positions printed in labels resolved by the page's own evidence.
    positions: dict[int, set[str]] = field(default_factory=dict)
    # What `resolve_by_index` said of a printed label, while the index stays as it was: the
    # same labels come back event after event, and `db.settle_persons` resolves every turn
    # of the archive against one index. Emptied by every change above (`add`, `add_position`)
    # and when it holds `MEMO_LABELS` labels.
    memo: dict[str, Resolution] = field(default_factory=dict, repr=False, compare=False)

    MEMO_LABELS = 1 << 14

    def add_position(self, catalog_id: int, position: str | None) -> None:
        words = _position_words(position)
        if words:
            known = self.positions.setdefault(catalog_id, set())
            if not words <= known:
                known.update(words)
                self.memo.clear()

    def add(self, catalog_id: int, name: str | None, *, surname_first: bool = True) -> None:
        """A name of a catalog person: as the catalog writes it (surname first, the
        default), or as running text prints it (`surname_first=False`)."""
        if not name:
            return
        found = _candidate(
            str(catalog_id), catalog_id, normalize_text(name.replace("\xa0", " ")), surname_first
        )
        if found is None:
            return
        known = self.forms.setdefault(catalog_id, {})
        if found.words in known:
            return
        known[found.words] = found
        for word in found.words:
            self.by_word.setdefault(word, set()).add(catalog_id)
        self.memo.clear()

    def add_event(self, tags: Iterable[tuple[int, str]], mentions: Iterable[Mention]) -> None:
        for catalog_id, name in tags:
            self.add(catalog_id, name)
        for mention in mentions:
            self.add(mention.catalog_id, mention.card_name)
            self.add_position(mention.catalog_id, mention.card_title)
            if len(mention.text.split()) >= 2:
                self.add(mention.catalog_id, mention.text, surname_first=False)

    def candidates(self, parts: Sequence[_Part]) -> list[_Candidate]:
        ids: set[int] = set()
        for part in parts:
            if not part.initial:
                ids |= self.by_word.get(part.text, set())
        return [c for cid in sorted(ids) for c in self.forms[cid].values()]

    def contradicts(self, catalog_id: int, position: str | None) -> bool:
        """Whether a printed position shares no word with any position the archive knows the
        person to have held (``ALROSA CEO`` for the Sergei Ivanov who was Chief of Staff)."""
        known = self.positions.get(catalog_id)
        words = _position_words(position)
        return bool(known) and bool(words) and not (words & known)


_POSITION_STOPWORDS = _word_set("of the and for at in on to a an и в по при")


def _position_words(position: str | None) -> set[str]:
    words = {_fold(w) for w in (position or "").replace("\xa0", " ").split()}
    return words - _POSITION_STOPWORDS - {""}


def _page_candidates(
    tags: Iterable[tuple[int, str]], mentions: Iterable[Mention]
) -> tuple[list, list]:
    tag_candidates = [_candidate(str(c), c, n, True) for c, n in tags]
    link_candidates = []
    for m in mentions:
        link_candidates.append(_candidate(str(m.catalog_id), m.catalog_id, m.text, False))
        if m.card_name:
            link_candidates.append(_candidate(str(m.catalog_id), m.catalog_id, m.card_name, True))
    return tag_candidates, link_candidates


def _resolved(label: Label, match: _Match, evidence: str, note: str) -> Resolution:
    name = " ".join(label.words[match.start : match.end]).rstrip(",")
    position = _position(label, match.start, match.end)
    return Resolution(match.key, evidence, note, name, position, label.marker, match.catalog_id)


def _ambiguous(label: Label, matches: Sequence[_Match], evidence: str, where: str) -> Resolution:
    listed = "; ".join(f"{m.key} {m.shown}" for m in matches)
    note = f"{where}: several persons fit: {listed}"
    return Resolution(None, evidence, note, marker=label.marker)


def _rule_candidates() -> list[_Candidate]:
    return [
        _Candidate(p.person_id, p.catalog_id, p.names["en"], form, form[-1])
        for p in RULE_PERSONS
        for form in p.forms
    ]


_RULES = _rule_candidates()
_RULE_NOTES = {p.person_id: p.note for p in RULE_PERSONS}

# Words that are a title, not a name, when guessing where an unknown name starts.
_TITLE_WORDS = _word_set(
    """president vice-president minister prime deputy governor chairman chairwoman chair ceo
    head director director-general ambassador mayor aide secretary speaker general chief
    commissioner representative envoy adviser advisor senator member rector chancellor king
    queen prince princess emir premier patriarch metropolitan archbishop bishop mufti founder
    owner editor editor-in-chief anchor host correspondent coach captain commander colonel
    major lieutenant sergeant admiral marshal pilot cosmonaut astronaut teacher student pupil
    doctor professor academician executive officer manager partner board council committee
    ministry federation region republic territory company corporation bank university school
    channel agency group fund service holder winner champion veteran worker employee leader
    deputies governors ministers heads forum centre center institute academy sciences
    organisation organization society union association party congress assembly parliament
    government office department bureau foundation museum theatre club team newspaper
    magazine television tv radio media news plant factory shop station emirates states
    kingdom islands physician surgeon nurse engineer technician operator worker driver mr
    mrs ms dr sir madam господин госпожа
    директор президент министр председатель губернатор
    заместитель глава руководитель посол мэр помощник секретарь ректор член депутат сенатор
    патриарх митрополит командующий начальник"""
)


_CONNECTORS = _word_set("of the for and at in on to")
_PARTICLES = _word_set("de da di du del der den dos das van von ter le la al el bin ibn")


def _name_run(label: Label, end: int) -> tuple[int, int] | None:
    """The name that ends at printed word `end` by its shape, see `_unknown_name`."""
    words = [w.strip(_EDGE) for w in label.words[:end]]
    start = end
    while start > 0:
        word = words[start - 1]
        lower = word.lower()
        if not word or lower in _TITLE_WORDS or label.words[start - 1][:1] in "([":
            break
        if (
            len(word) > 1
            and word.isupper()
            and not re.fullmatch(r"[IVX]+", word)
            and not all(w.isupper() for w in words[start:end])
        ):
            break  # an acronym names a body (FATF, OPEC), unless the name is in capitals too
        if (
            not word[0].isupper()
            and lower not in _PARTICLES
            and lower.split("-")[0] not in (_PARTICLES)
        ):
            break
        start -= 1
    while start < end and words[start].lower() in _PARTICLES:
        start += 1  # a name does not start with "van"
    names = [i for i in range(start, end) if words[i].lower() not in _PARTICLES]
    if len(names) < 2:
        return None
    before = label.words[start - 1] if start > 0 else ""
    after_of = before.strip(_EDGE).lower() in _CONNECTORS and not before.endswith(",")
    if after_of and len(names) <= 2:
        return None  # "… of Abu Dhabi": a place
    if len(names) > 4 or (len(names) > 2 and after_of):
        # "… of Austria Sebastian Kurz": the words after "of" name a place or a body first.
        # The name is the last two words -- or, with a particle, from the word before it
        # ("… of Royal Dutch Shell Ben van Beurden", "… of Qatar Tamim bin Hamad Al Thani").
        particle = next((i for i in range(start, end) if words[i].lower() in _PARTICLES), None)
        if particle is not None and particle - 1 >= start:
            start = particle - 1
        else:
            start = names[-2]
            while start > 0 and words[start - 1].lower() in _PARTICLES:
                start -= 1
    return start, end


def _unknown_name(label: Label, parts: Sequence[_Part]) -> tuple[int, int] | None:
    """Where the name stands in a label no known person fits, by its shape (printed words
    ``(start, end)``): initials and a surname (``Губернатор Тульской области А.Дюмин``), or
    the capitalised words (``van``, ``al-`` and the like allowed inside) after the last title
    word -- at the end of the label, or before its first comma when all that stands there is
    such a name (``Alisa Shmelyova, metrology engineer``). A run of capitalised words after
    ``of`` keeps its last two (``… of Austria Sebastian Kurz``). None when that leaves less
    than two names."""
    if parts and not parts[-1].initial and any(p.initial for p in parts):
        last = parts[-1].word
        initials = [p.word for p in parts if p.initial and p.word <= last]
        start = initials[-1]
        while start > 0 and (start - 1) in initials:
            start -= 1
        return start, len(label.words)
    comma = next((i for i, w in enumerate(label.words) if w.endswith(",")), None)
    head = _name_run(label, comma + 1) if comma is not None else None
    if head is not None and head[0] == 0:
        return head
    return _name_run(label, len(label.words)) or head


class _Read(NamedTuple):
    """A printed label with what follows from it alone."""

    label: Label
    parts: tuple[_Part, ...]
    role: bool  # parsing.is_role_label(label.core)
    by_rule: tuple[_Match, ...]  # _best(label, parts, _RULES)


@functools.lru_cache(maxsize=1 << 14)
def _read(label_text: str) -> _Read:
    """`read_label`, its name parts, whether it is a role and its matches among the rule
    persons, worked out once per printed label: the same few labels (the president's, the
    ministers') come back page after page, and an archive is resolved twice over (at each
    save, then by `db.settle_persons`). All of it is pure and immutable."""
    label = read_label(label_text)
    parts = tuple(_parts(label.words))
    return _Read(label, parts, is_role_label(label.core), tuple(_best(label, parts, _RULES)))


def resolve_turn(
    label_text: str,
    lang: str,
    day: dt.date | None,
    *,
    label_links: Sequence[Mention] = (),
    tags: Sequence[tuple[int, str]] = (),
    mentions: Sequence[Mention] = (),
    index: Index | None = None,
) -> Resolution:
    """Resolve one printed label (see the module docstring for the order of evidence)."""
    read = _read(label_text)
    label = read.label
    linked = sorted({m.catalog_id for m in label_links})
    if len(linked) == 1:
        texts = [m.text for m in label_links]
        name = " ".join(dict.fromkeys(texts))
        found = label.core.find(name.replace("\xa0", " ")) if name else -1
        position = None
        if found >= 0:
            rest = label.core[:found] + " " + label.core[found + len(name) :]
            position = normalize_text(rest).strip(" ,") or None
        note = f"link in the label to catalog person {linked[0]}"
        card = next((m.card_name for m in label_links if m.card_name), None)
        if card:
            note += f" ({card})"
        return Resolution(str(linked[0]), LABEL_LINK, note, name, position, label.marker, linked[0])
    if len(linked) > 1:
        return Resolution(
            None,
            AMBIGUOUS,
            "links in the label to several catalog persons: " + ", ".join(map(str, linked)),
            marker=label.marker,
        )
    if read.role:
        return Resolution(None, ROLE, "a role, not a person", marker=label.marker)
    parts = read.parts
    if day is not None and label.core.lower().strip(" .") in PRESIDENT_TITLES:
        president = president_on(day)
        if president is not None:
            note = f"rule: the president of Russia on {day.isoformat()}"
            return Resolution(
                president.person_id, RULE, note, None, label.core, label.marker,
                president.catalog_id,
            )  # fmt: skip
    matches = read.by_rule
    if len(matches) == 1:
        return _resolved(label, matches[0], RULE, _RULE_NOTES[matches[0].key])
    tag_candidates, link_candidates = _page_candidates(tags, mentions)
    for evidence, candidates, where in (
        (EVENT_TAG, tag_candidates, "the event's person tags"),
        (PAGE_LINK, link_candidates, "links on the page"),
    ):
        matches = _best(label, parts, candidates)
        if len(matches) == 1:
            note = f"{where}: {matches[0].shown} (catalog person {matches[0].key})"
            return _resolved(label, matches[0], evidence, note)
        if matches:
            return _ambiguous(label, matches, AMBIGUOUS, where)
    return resolve_by_index(label, parts, index)


def resolve_by_index(label: Label, parts: Sequence[_Part], index: Index | None) -> Resolution:
    """The archive stage: the archive's index, else an archive person by name. `parts` are
    `label`'s (`_read`): the answer depends on the printed label and the index alone."""
    if index is None:
        return _resolve_by_index(label, parts, None)
    found = index.memo.get(label.printed)
    if found is None:
        if len(index.memo) >= index.MEMO_LABELS:
            index.memo.clear()
        found = index.memo[label.printed] = _resolve_by_index(label, parts, index)
    return found


def _resolve_by_index(label: Label, parts: Sequence[_Part], index: Index | None) -> Resolution:
    if index is not None:
        matches = _best(label, parts, index.candidates(parts), min_score=2)
        if len(matches) == 1:
            m = matches[0]
            found = _resolved(label, m, ARCHIVE, "")
            if m.catalog_id is not None and index.contradicts(m.catalog_id, found.position):
                note = (
                    f"the archive: only catalog person {m.key} ({m.shown}) bears the name, but "
                    f"the position printed ({found.position}) is none the archive knows for them"
                )
                return Resolution(None, ARCHIVE_UNCONFIRMED, note, found.name, found.position,
                                  label.marker)  # fmt: skip
            note = f"the archive's tags and links: {m.shown} (catalog person {m.key})"
            return replace(found, note=note)
        if matches:
            chosen = _by_position(label, matches, index)
            if chosen is None:
                return _ambiguous(label, matches, ARCHIVE_AMBIGUOUS, "the archive")
            found, shared = chosen
            others = ", ".join(m.key for m in matches if m.key != found.person_id)
            note = (
                f"the archive: catalog persons {found.person_id} and {others} bear the name; "
                f"the position printed shares {shared} with the positions the archive knows "
                f"for {found.person_id} only"
            )
            return replace(found, note=note)
    span = _unknown_name(label, parts)
    if span is None:
        return Resolution(None, UNRESOLVED, "no name in the label", marker=label.marker)
    start, end = span
    name = " ".join(label.words[start:end]).rstrip(",")
    note = "no catalog person bears this name: the archive's person of that name"
    return Resolution(named_id(name), NAME, note, name, _position(label, start, end), label.marker)


def _by_position(
    label: Label, matches: Sequence[_Match], index: Index
) -> tuple[Resolution, str] | None:
    """Namesakes told apart by the position printed with the name: the one person whose known
    positions share two words or more with it (``Governor of Ulyanovsk Region Sergei Morozov``
    is the Sergei Morozov whose hover card reads Governor of Ulyanovsk Region), while no other
    shares any. None otherwise."""
    position = _resolved(label, matches[0], ARCHIVE, "").position
    words = _position_words(position)
    if not words:
        return None
    shared = {
        m.key: words & index.positions.get(m.catalog_id, set())
        for m in matches
        if m.catalog_id is not None
    }
    winners = [key for key, common in shared.items() if len(common) >= 2]
    if len(winners) != 1 or any(shared[key] for key in shared if key != winners[0]):
        return None
    match = next(m for m in matches if m.key == winners[0])
    return _resolved(label, match, ARCHIVE, ""), ", ".join(sorted(shared[winners[0]]))


def resolve_label_by_index(label_text: str, index: Index | None) -> Resolution:
    """`resolve_by_index` for a printed label (what `db.settle_persons` re-runs)."""
    read = _read(label_text)
    return resolve_by_index(read.label, read.parts, index)


def resolve_event(
    lang: str,
    published_at: str | None,
    speakers: Sequence[tuple[int, str | None]],
    tags: Sequence[tuple[int, str]],
    mentions: Sequence[Mention],
    index: Index | None,
) -> dict[int, Resolution]:
    """Every labelled turn of an event -> its `Resolution`, by turn `seq`. `speakers` are
    ``(seq, label)``; `tags` the event's person tags as ``(catalog id, name)``; `mentions` the
    page's person links; `index` the archive's names (None: the page alone)."""
    day = dt.date.fromisoformat(published_at[:10]) if published_at else None
    by_turn: dict[int, list[Mention]] = {}
    for m in mentions:
        if m.turn is not None:
            by_turn.setdefault(m.turn, []).append(m)
    cache: dict[tuple[str, tuple[int, ...]], Resolution] = {}
    out: dict[int, Resolution] = {}
    for seq, speaker in speakers:
        if not speaker:
            continue
        links = by_turn.get(seq, [])
        key = (speaker, tuple(sorted({m.catalog_id for m in links})))
        if key not in cache or links:
            cache[key] = resolve_turn(
                speaker, lang, day, label_links=links, tags=tags, mentions=mentions, index=index
            )
        out[seq] = cache[key]
    return out


def catalog_id_of(url: str | None) -> int | None:
    """``…/catalog/persons/132/events`` -> 132."""
    found = re.search(r"/catalog/persons/(\d+)(?:[/?#]|$)", url or "")
    return int(found.group(1)) if found else None


def display_name(forms: Counter) -> str | None:
    """The most frequent of the names a person is printed under (ties: the first seen)."""
    return forms.most_common(1)[0][0] if forms else None
