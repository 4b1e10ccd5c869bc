"""The table and view pages of a whole archive: facets counted from indexes and searches that
walk an index, so that a page of the events (or of the speaker turns) costs tens of milliseconds
at 160,000 records where Datasette's own SQL reads a row per event or sorts every turn.

Used by the Datasette plugin (plugins/kremlin_transcript.py), which registers the facet classes
(`FACET_CLASSES`) and wraps Datasette's table search with `broad_search`. Each measure here was
taken on the bench's synthetic archive (BENCHMARKS.md section 8).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from datasette.database import QueryInterrupted
from datasette.facets import ArrayFacet, ColumnFacet
from datasette.utils import (
    await_me_maybe,
    escape_sqlite,
    path_with_added_args,
    path_with_removed_args,
)

from kremlin_archive import db as dbmod
from kremlin_archive.datasette.serve import DATABASE_NAME
from kremlin_archive.items import LANGS

# The events' facets (lang, year, place, sections) are counted from this covering index
# (db.INDEXES) when many rows are faceted (`_broad_rows`), or a count that did not finish.
# SQLite cannot know how many rows a full-text match brings: it fetches every matching row by
# rowid (a row's first page, its text behind it), which for a search matching most of the
# archive (Путин: 76,000 of 160,000 events) took 0.2-0.7 s per facet; a scan of the index
# that checks each rowid against the matches takes a third of that, and one scan counts all
# four facets (`_broad_counts`). For fewer matches the lookups stay, one query per facet
# (about 4 µs a row: at 160,000 events they cost what the scan costs at some 20,000 rows).
EVENT_FACET_INDEX = "idx_events_lang_year_place_sections_id"
EVENT_FACET_COLUMNS = ("lang", "year", "place", "sections")  # the index's, as its facets
# A page is broad from an eighth of the events on (the scan grows with the table, the lookups
# with the rows matched), and never below BROAD_MATCH_MIN rows (a small archive).
BROAD_MATCH_SHARE = 8
BROAD_MATCH_MIN = 2_000


async def _broad_rows(datasette, request) -> int:
    """How many rows make an events page broad (`BROAD_MATCH_SHARE`), once per request."""
    if "kremlin.broad_rows" not in request.scope:
        counted = await datasette.get_database(DATABASE_NAME).execute(
            "select count(*) from events"
        )  # an index's entries: 3 ms at 160,000 events
        rows = counted.first()[0] // BROAD_MATCH_SHARE
        request.scope["kremlin.broad_rows"] = max(BROAD_MATCH_MIN, rows)
    return request.scope["kremlin.broad_rows"]


_FROM_EVENTS = re.compile(r"^\s*select\s.+?\sfrom\s+events(?=\s|$)", re.S | re.I)


async def _facet_sql(facet) -> str:
    """The rows `facet` counts: its table's SQL, read through the facet index when that pays."""
    sql = facet.sql
    if facet.database != DATABASE_NAME or facet.table != "events":
        return sql
    if facet.row_count is not None and facet.row_count < await _broad_rows(facet.ds, facet.request):
        return sql
    found = _FROM_EVENTS.match(sql)
    if found is None:
        return sql
    index = await facet.ds.execute(
        facet.database, "select 1 from sqlite_master where type = 'index' and name = ?",
        [EVENT_FACET_INDEX],
    )  # fmt: skip
    if not index.rows:  # an archive not yet opened by this version (db.open_db adds it)
        return sql
    return f"{sql[: found.end()]} indexed by {EVENT_FACET_INDEX}{sql[found.end() :]}"


async def _broad_counts(facet, column: str) -> list[tuple[Any, int]] | None:
    """`column`'s facet values on a broad events page, as (value, rows), most rows first,
    `get_facet_size() + 1` at most, from one scan of the facet index that all the page's facets
    share (kept with the request); None where the per-facet SQL runs (another table or column,
    fewer rows, no index). Raises QueryInterrupted when the scan took longer than its facets
    may."""
    if column not in EVENT_FACET_COLUMNS:
        return None
    rows_sql = await _facet_sql(facet)
    if rows_sql == facet.sql:
        return None
    size = facet.get_facet_size()
    shared = facet.request.scope.setdefault("kremlin.broad_facets", {})
    key = (rows_sql, json.dumps(facet.params, sort_keys=True, default=str), size)
    if key not in shared:
        shared[key] = asyncio.ensure_future(_count_every_facet(facet, rows_sql, size))
    return (await shared[key])[column]


# An array facet's (array, rows, value) once per value an array holds, from `arrays` (each
# distinct array with its rows): a row is counted once per value, however often it repeats.
_ARRAY_PAIRS = "pairs as (select distinct arr, n, j.value from arrays, json_each(arrays.arr) j)"


def _top(column: str, source: str, value: str, limit: int) -> str:
    """One facet's values from the grouped rows: Datasette's `order by count desc, value`."""
    return (
        f"select * from (select '{column}' as facet, {value} as value, sum(n) as count, "
        f"row_number() over (order by sum(n) desc, {value}) as r from {source} "
        f"where {value} is not null group by {value} order by r limit {int(limit)})"
    )


async def _count_every_facet(facet, rows_sql: str, size: int) -> dict[str, list]:
    # The rows grouped once by all four columns (a few thousand groups at 160,000 events),
    # then each facet's best values from those groups, in SQLite: only they come back.
    # `sections`: each array's rows counted once per value it holds (as ArrayValuesFacet).
    sql = f"""
        with groups as materialized (
          select lang, year, place, sections, count(*) as n from ({rows_sql})
          group by lang, year, place, sections
        ),
        arrays as (select sections as arr, sum(n) as n from groups group by sections),
        {_ARRAY_PAIRS}
        {" union all ".join([
            _top("lang", "groups", "lang", size + 1), _top("year", "groups", "year", size + 1),
            _top("place", "groups", "place", size + 1),
            _top("sections", "pairs", "value", size + 1),
        ])}
    """  # fmt: skip
    # the time of the four facets it counts (Datasette gives each facet the same time)
    limit = facet.ds.setting("facet_time_limit_ms") * len(EVENT_FACET_COLUMNS)
    rows = await facet.ds.execute(
        facet.database, sql, facet.params, truncate=False, custom_time_limit=limit,
    )  # fmt: skip
    ranked: dict[str, list] = {column: [] for column in EVENT_FACET_COLUMNS}
    for column, value, count, rank in rows.rows:
        ranked[column].append((rank, value, count))
    return {column: [(v, c) for _, v, c in sorted(found)] for column, found in ranked.items()}


def _facet_entries(facet, arg: str, ranked: list[tuple[Any, int]]) -> tuple[list[dict], bool]:
    """A facet's values as Datasette lists them (`ranked`: most rows first, one more than the
    facet shows if there are more), each with its link that adds or removes `arg`=value."""
    size = facet.get_facet_size()
    pairs = facet.get_querystring_pairs()
    entries = []
    for value, count in ranked[:size]:
        selected = (arg, str(value)) in pairs
        if selected:
            path = path_with_removed_args(facet.request, {arg: str(value)})
        else:
            path = path_with_added_args(facet.request, {arg: value})
        entries.append({
            "value": value, "label": value, "count": count,
            "toggle_url": facet.ds.absolute_url(facet.request, facet.ds.urls.path(path)),
            "selected": selected,
        })  # fmt: skip
    return entries, len(ranked) > size


def _facet_result(facet, column: str, kind: str, config: dict, entries: tuple) -> dict:
    """A facet as Datasette's page and JSON show it: `entries` from `_facet_entries`; a facet
    the address asked for (not the metadata) can be hidden again."""
    values, truncated = entries
    hide = "_facet_array" if kind == ArrayValuesFacet.type else "_facet"
    return {
        "name": column, "type": kind, "results": values,
        "hideable": config["source"] != "metadata",
        "toggle_url": facet.ds.urls.path(path_with_removed_args(facet.request, {hide: column})),
        "truncated": truncated,
    }  # fmt: skip


class IndexedColumnFacet(ColumnFacet):
    """Datasette's column facet (metadata `{"indexed": column}`), counted by `_broad_counts`
    on a broad page, otherwise by Datasette over `_facet_sql`. The events' facet columns hold
    no foreign keys, so a value is its own label."""

    type = "indexed"

    async def facet_results(self):
        configs = self.get_configs()
        columns = [c["config"].get("column") or c["config"]["simple"] for c in configs]
        try:
            broad = [await _broad_counts(self, column) for column in columns]
        except QueryInterrupted:
            return [], columns
        if columns and None not in broad:
            results = []
            for config, column, counts in zip(configs, columns, broad, strict=True):
                arg = f"{column}__exact" if column.startswith("_") else column
                entries = _facet_entries(self, arg, counts)
                results.append(_facet_result(self, column, ColumnFacet.type, config, entries))
            return results, []
        sql = self.sql
        self.sql = await _facet_sql(self)
        try:
            results, timed_out = await super().facet_results()
        finally:
            self.sql = sql
        for info in results:  # to the reader (and the JSON) it is the column facet it counts
            info["type"] = ColumnFacet.type
        return results, timed_out

    async def suggest(self):
        return []  # suggestions are the stock column facet's


class ArrayValuesFacet(ArrayFacet):
    """Datasette's JSON-array facet (metadata `{"array_values": column}`), counting each row
    once per value it holds. The stock facet lists every (value, row) pair and deduplicates
    them on whole rows, comparing every column -- the full text of every event: it would always
    time out on a full archive. This one counts the rows per distinct array first (read from
    the events' facet index, db.INDEXES, never from the rows, whose sections lie behind their
    text; on a broad page by `_broad_counts`) and then adds each array's count to each value it
    holds once: 40 ms instead of 430 on 40,000 events."""

    type = "array_values"

    async def facet_results(self):
        if self.database != DATABASE_NAME:
            return [], []
        results, timed_out = [], []
        rows_sql = await _facet_sql(self)
        for source_and_config in self.get_configs():
            config = source_and_config["config"]
            column = config.get("column") or config["simple"]
            try:
                counts = await _broad_counts(self, column)
                if counts is None:
                    counts = await self._count(column, rows_sql)
            except QueryInterrupted:
                timed_out.append(column)
                continue
            entries = _facet_entries(self, f"{column}__arraycontains", counts)
            for value in entries[0]:  # a value as the query string carries it
                value["value"] = value["label"] = str(value["value"])
            results.append(_facet_result(self, column, self.type, source_and_config, entries))
        return results, timed_out

    async def _count(self, column: str, rows_sql: str) -> list[tuple[Any, int]]:
        col = escape_sqlite(column)
        facet_sql = f"""
            with arrays as (select {col} as arr, count(*) as n from ({rows_sql}) group by 1),
            {_ARRAY_PAIRS}
            select value, sum(n) as count from pairs
            group by value order by count desc, value limit {self.get_facet_size() + 1}
        """
        rows = await self.ds.execute(
            self.database, facet_sql, self.params, truncate=False,
            custom_time_limit=self.ds.setting("facet_time_limit_ms"),
        )  # fmt: skip
        return [(row["value"], row["count"]) for row in rows.rows]


# A view has no foreign keys for Datasette to label a facet's values with: a view's column that
# holds a table's key is labelled here, by the db.py function that names those keys.
VIEW_KEY_LABELS = {("speaker_turns", "person_id"): dbmod.person_names}


class KeyColumnFacet(ColumnFacet):
    """Datasette's column facet (metadata `{"key": column}`) on a view's column that holds a
    table's key (VIEW_KEY_LABELS), its values labelled as a table's foreign keys are: a
    person's name for their id. A facet of the key itself is counted from the view's rows
    without reading the keyed table for each (speaker_turns' persons: the turns' person index)."""

    type = "key"

    async def facet_results(self):
        results, timed_out = await super().facet_results()
        for info in results:
            info["type"] = ColumnFacet.type  # to the reader it is the column facet it counts
            names = VIEW_KEY_LABELS.get((self.table, info["name"]))
            keys = [entry["value"] for entry in info["results"]]
            if names is None or not keys:
                continue
            db = self.ds.get_database(self.database)
            labels = await db.execute_fn(lambda conn, names=names, keys=keys: names(conn, keys))
            for entry in info["results"]:
                entry["label"] = labels.get(entry["value"], entry["value"])
        return results, timed_out

    async def suggest(self):
        return []  # suggestions are the stock column facet's


class LangFacet(ColumnFacet):
    """Datasette's column facet of a language column (metadata `{"lang": column}`: ru or en,
    items.LANGS), counted in one pass over the rows with a count per language instead of
    grouping them, which sorts every row (0.2 s for the 83,000 turns of 40,000 records, past
    the facet time limit at 160,000): the same values, counts, order and links."""

    type = "lang"

    async def facet_results(self):
        results, timed_out = [], []
        for source_and_config in self.get_configs():
            config = source_and_config["config"]
            column = config.get("column") or config["simple"]
            counts = ", ".join(
                f"count(*) filter (where {escape_sqlite(column)} = '{lang}')" for lang in LANGS
            )
            try:
                rows = await self.ds.execute(
                    self.database, f"select {counts} from ({self.sql})", self.params,
                    truncate=False, custom_time_limit=self.ds.setting("facet_time_limit_ms"),
                )  # fmt: skip
            except QueryInterrupted:
                timed_out.append(column)
                continue
            found = zip(LANGS, rows.first(), strict=True)
            ranked = sorted(((lang, n) for lang, n in found if n), key=lambda p: (-p[1], p[0]))
            entries = _facet_entries(self, column, ranked)
            kind = ColumnFacet.type
            results.append(_facet_result(self, column, kind, source_and_config, entries))
        return results, timed_out

    async def suggest(self):
        return []  # suggestions are the stock column facet's


FACET_CLASSES = [ArrayValuesFacet, IndexedColumnFacet, KeyColumnFacet, LangFacet]


# Datasette's table search (`/kremlin/events?_search=…`, datasette.filters.search_filters) keeps
# the rows `rowid in (select rowid from events_fts where events_fts match …)`. SQLite takes that
# as a list of rowids to fetch (it assumes a subquery brings about 25) and so, for a word found
# in most of the archive (Путин: 76,000 of 160,000 events), fetches every hit by rowid -- its
# first page, with the text behind it -- to count them (0.19 s) and to sort them all by date
# for the first 50 (0.23 s). With `+rowid` the same rowids are only a filter: the page walks
# the date index newest first and stops at the 51st hit (25 ms), the count reads a covering
# index (80 ms). For fewer hits, or a sort no index gives, the fetches are cheaper and stay.
EVENT_SEARCH_CLAUSE = "rowid in (select rowid from events_fts where events_fts match {match})"
_SEARCH_MATCHES = ("escape_fts(:search)", ":search")  # escaped, or `_searchmode=raw`


def broad_search(found, request, datasette):
    """Datasette's search filter `found` (awaitable) of an events page, its clause made
    `+rowid in (…)` when the page's order comes from an index and the words match many events
    (`_broad_rows`)."""

    async def filter_arguments():
        arguments = await await_me_maybe(found)
        if arguments is None:
            return arguments
        for i, clause in enumerate(arguments.where_clauses):
            for match in _SEARCH_MATCHES:
                if clause == EVENT_SEARCH_CLAUSE.format(match=match):
                    if await _walk_the_index(match, arguments.params, request, datasette):
                        arguments.where_clauses[i] = "+" + clause
                    return arguments
        return arguments

    return filter_arguments


async def _walk_the_index(match: str, params: dict, request, datasette) -> bool:
    """Whether the page's order comes from an index and the words match enough events for
    walking it to beat fetching every hit."""
    metadata = datasette.table_metadata(DATABASE_NAME, "events")
    sort = request.args.get("_sort") or request.args.get("_sort_desc")
    sort = sort or metadata.get("sort") or metadata.get("sort_desc") or "id"  # Datasette's order
    db = datasette.get_database(DATABASE_NAME)
    ordered = await db.execute_fn(lambda conn: dbmod.index_ordered_columns(conn, "events"))
    if sort != "rowid" and sort not in ordered:
        return False
    search, raw = params["search"], match == ":search"
    hits = await db.execute_fn(lambda conn: dbmod.event_search_hits(conn, search, raw=raw))
    return hits is not None and hits >= await _broad_rows(datasette, request)
