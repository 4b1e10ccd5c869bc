"""What changed between two versions of an event, for the revision page and the Atom feed.

Pure functions over two contents in `db.content_of` form (what `revisions.content` keeps): the
body compared paragraph by paragraph, a changed paragraph word by word, and the other fields
(title, lead, place, tags, …) old against new. Everything returned is plain text in lists
and dicts: the template escapes it, the feed escapes it.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

# Unchanged paragraphs shown around a change (the rest are folded into "N unchanged").
CONTEXT = 1
# Two paragraphs of a replaced block are shown as one edited paragraph when at least this
# share of their words is common; otherwise as one removed and one added.
SAME_PARAGRAPH = 0.5
SCALAR_FIELDS = (
    "title", "lead", "published_at", "place", "updated_at", "announce_date", "url", "twin_url",
)  # fmt: skip
LIST_FIELDS = ("sections", "tags")
# A run of at most this many characters (spaces aside) left unchanged between two changes is
# shown as part of them.
SLIVER = 1
WORD = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    """`text` cut into words, spaces and punctuation, which join back into `text`."""
    return WORD.findall(text)


def inline(old: str, new: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Two versions of a paragraph as runs of (`same`|`del`, text) and (`same`|`ins`, text)."""
    a, b = words(old), words(new)
    before: list[tuple[str, str]] = []
    after: list[tuple[str, str]] = []

    def add(runs: list[tuple[str, str]], kind: str, tokens: list[str]) -> None:
        text = "".join(tokens)
        if not text:
            return
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + text)
        else:
            runs.append((kind, text))

    opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    for index, (op, i1, i2, j1, j2) in enumerate(opcodes):
        # A sliver of sameness between two changes (a full stop, a space) reads better as
        # part of the change: "seven." -> "seven (Corrected.)", not "(Corrected" . ")".
        inside = 0 < index < len(opcodes) - 1
        if op == "equal" and not (inside and len("".join(a[i1:i2]).strip()) <= SLIVER):
            add(before, "same", a[i1:i2])
            add(after, "same", b[j1:j2])
        else:
            add(before, "del", a[i1:i2])
            add(after, "ins", b[j1:j2])
    return before, after


def similarity(old: str, new: str) -> float:
    return difflib.SequenceMatcher(None, words(old), words(new), autojunk=False).ratio()


def paragraphs(old: list[str], new: list[str], context: int = CONTEXT) -> list[dict[str, Any]]:
    """The body's difference, paragraph by paragraph, in reading order. Each item is one of

    - `{"kind": "same", "old_no", "new_no", "text"}`: an unchanged paragraph next to a change;
    - `{"kind": "skip", "count"}`: unchanged paragraphs folded away;
    - `{"kind": "edited", "old_no", "new_no", "old": runs, "new": runs}`: a paragraph whose
      words changed (`inline` runs);
    - `{"kind": "removed", "old_no", "text"}` and `{"kind": "added", "new_no", "text"}`.

    Paragraph numbers count from 1 in their own version.
    """
    items: list[dict[str, Any]] = []
    opcodes = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    for index, (op, i1, i2, j1, j2) in enumerate(opcodes):
        if op == "equal":
            first, last = index == 0, index == len(opcodes) - 1
            keep_head = 0 if first else context
            keep_tail = 0 if last else context
            span = i2 - i1
            if span <= keep_head + keep_tail + 1:
                keep_head, keep_tail = span, 0
            for k in range(keep_head):
                items.append(_same(old, i1 + k, j1 + k))
            folded = span - keep_head - keep_tail
            if folded > 0:
                items.append({"kind": "skip", "count": folded})
            for k in range(span - keep_tail, span):
                items.append(_same(old, i1 + k, j1 + k))
            continue
        items.extend(_replaced(old, new, i1, i2, j1, j2))
    return items


def _same(old: list[str], i: int, j: int) -> dict[str, Any]:
    return {"kind": "same", "old_no": i + 1, "new_no": j + 1, "text": old[i]}


def _replaced(old: list[str], new: list[str], i1: int, i2: int, j1: int, j2: int) -> list[dict]:
    """A block of old paragraphs replaced by a block of new ones: paired in order where they
    are mostly the same words (an edit), the rest removed or added."""
    items: list[dict[str, Any]] = []
    i, j = i1, j1
    while i < i2 or j < j2:
        if i < i2 and j < j2 and similarity(old[i], new[j]) >= SAME_PARAGRAPH:
            before, after = inline(old[i], new[j])
            items.append(
                {"kind": "edited", "old_no": i + 1, "new_no": j + 1, "old": before, "new": after}
            )
            i, j = i + 1, j + 1
        elif i < i2 and (j >= j2 or _better_removed(old, new, i, j, j2)):
            items.append({"kind": "removed", "old_no": i + 1, "text": old[i]})
            i += 1
        else:
            items.append({"kind": "added", "new_no": j + 1, "text": new[j]})
            j += 1
    return items


def _better_removed(old: list[str], new: list[str], i: int, j: int, j2: int) -> bool:
    """Whether old paragraph `i` is gone (rather than new paragraph `j` inserted before it):
    true unless `i` matches one of the new paragraphs after `j`."""
    return not any(similarity(old[i], new[k]) >= SAME_PARAGRAPH for k in range(j + 1, j2))


def fields(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The fields other than the body that differ: `{"field", "old", "new"}` for single values
    (None for empty), `{"field", "removed", "added"}` for lists (sections, tags by kind and
    name), in a fixed order."""
    changes: list[dict[str, Any]] = []
    for name in SCALAR_FIELDS:
        a, b = old.get(name) or None, new.get(name) or None
        if a != b:
            changes.append({"field": name, "old": a, "new": b})
    for name in LIST_FIELDS:
        a, b = _labels(name, old.get(name)), _labels(name, new.get(name))
        if a != b:
            changes.append(
                {
                    "field": name,
                    "removed": [x for x in a if x not in b],
                    "added": [x for x in b if x not in a],
                }
            )
    return changes


def _labels(name: str, values: list | None) -> list[str]:
    if name == "tags":
        return [f"{t.get('kind')}: {t.get('name')}" for t in values or []]
    return [str(v) for v in values or []]


def turns_note(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """A sentence on the speaker turns when they changed but the paragraphs did not (a parser
    that cuts the same text into turns differently), else None."""
    a, b = old.get("utterances") or [], new.get("utterances") or []
    if a == b or (old.get("paragraphs") or []) != (new.get("paragraphs") or []):
        return None
    labels_a = [u.get("speaker") for u in a]
    labels_b = [u.get("speaker") for u in b]
    if labels_a != labels_b:
        return f"Same paragraphs, cut into speaker turns differently: {len(a)} turns, now {len(b)}."
    return "Same paragraphs and speakers; the turns' text was split differently."


def summary(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Counts of the body's change: paragraphs `edited`, `removed` and `added`."""
    counts = {"edited": 0, "removed": 0, "added": 0}
    for item in paragraphs(old.get("paragraphs") or [], new.get("paragraphs") or []):
        if item["kind"] in counts:
            counts[item["kind"]] += 1
    return counts
