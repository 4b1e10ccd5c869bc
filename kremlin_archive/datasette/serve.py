"""Datasette on the archive: the project's metadata, templates and plugin, under a stable name.

The database is always served as `/kremlin` (so links such as `/kremlin/events/ru-66419` can be
cited), whatever the file is called: Datasette names a database after its file only when it is
given a path, so `build_datasette` adds the file itself under `DATABASE_NAME`.

Nothing a visitor can do writes to the archive: the file is opened as a *mutable* database,
which Datasette reads through `mode=ro` connections (so a crawl can keep writing in WAL mode and
every request sees its latest commit), the metadata declares no writable canned query, no
`--root` actor exists, and a mutable database cannot be downloaded as a file. `--immutable` is
for a snapshot no crawl writes to (a copy on read-only media): it is opened with
`immutable=1` and may be downloaded whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import db as dbmod

DATABASE_NAME = "kremlin"
DATASETTE_DIR = Path(__file__).resolve().parent
METADATA_PATH = DATASETTE_DIR / "metadata.yml"
TEMPLATES_DIR = DATASETTE_DIR / "templates"
PLUGINS_DIR = DATASETTE_DIR / "plugins"

# Datasette settings that suit an archive of long texts (the others keep Datasette's defaults).
SETTINGS: dict[str, Any] = {
    "default_page_size": 50,
    "sql_time_limit_ms": 3000,  # full-text queries over the whole archive
    # The facets of a table page are counted from covering indexes (db.INDEXES) in tens of ms
    # on an archive of the whole site; only a search matching tens of thousands of events
    # (Путин) makes them count row by row. Such a facet is left out ("timed out", named on the
    # page) rather than holding the page for a second each.
    "facet_time_limit_ms": 300,
    "truncate_cells_html": 400,  # table pages show the start of an event's text, not all of it
    # Suggesting facets tries every column of the page's rows, full texts included: 1.2 s of
    # each events page on the 2020 mirror. The metadata names the useful facets instead.
    "suggest_facets": False,
}


def load_metadata(path: Path = METADATA_PATH) -> dict[str, Any]:
    """The project's Datasette metadata (YAML) as a dict."""
    from datasette.utils import parse_metadata

    return parse_metadata(path.read_text(encoding="utf-8"))


def missing_shape(path: str | Path) -> list[str]:
    """Tables, views and FTS tables of `db.py`'s shape that the file lacks (read-only check)."""
    db = dbmod.connect(path, readonly=True)
    try:
        present = set(db.table_names()) | set(db.view_names())
    finally:
        db.close()
    wanted = [
        *dbmod.TABLES,
        *dbmod.VIEWS,
        *(f"{name}_fts" for name in dbmod.FTS),
    ]
    return [name for name in wanted if name not in present]


def prepare_database(path: str | Path) -> str | None:
    """Make sure the file has the shape the metadata refers to; return a note for the user.

    A database made by an older version of the project lacks newer views or search tables;
    if the file is writable they are added (`ensure_db_shape`, one short transaction that waits
    for a running crawl), otherwise it is served as it is and the note says what will not work.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no archive at {path}: run `kremlin-archive crawl` first")
    missing = missing_shape(path)
    if not missing:
        return None
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        dbmod.open_db(path).conn.close()
        return f"added to the archive's shape: {', '.join(missing)}"
    return f"read-only archive lacks {', '.join(missing)}: some queries will fail"


def build_datasette(
    path: str | Path,
    *,
    immutable: bool = False,
    settings: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
):
    """A Datasette instance serving `path` as `/kremlin` with the project's customisations."""
    from datasette.app import Datasette
    from datasette.database import Database

    ds = Datasette(
        [],
        metadata=metadata if metadata is not None else load_metadata(),
        template_dir=str(TEMPLATES_DIR),
        plugins_dir=str(PLUGINS_DIR),
        settings={**SETTINGS, **(settings or {})},
    )
    # Datasette adds an in-memory `_memory` database when given no file; the archive is the
    # only database this instance shows.
    if "_memory" in ds.databases:
        ds.remove_database("_memory")
    ds.add_database(
        Database(ds, path=str(Path(path).resolve()), is_mutable=not immutable),
        name=DATABASE_NAME,
    )
    return ds


def listen(host: str, port: int):
    """A socket listening on host:port (port 0: any free port), made before anything says
    "serving": a busy port is an OSError here, not a message about a server that never ran."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def run_server(ds, sock) -> None:
    """Serve `ds` with uvicorn on the listening socket `sock`, as `datasette serve` does
    (blocks until interrupted)."""
    import asyncio

    import uvicorn

    asyncio.run(ds.invoke_startup())
    config = uvicorn.Config(ds.app(), log_level="info", lifespan="on", workers=1)
    uvicorn.Server(config).run(sockets=[sock])
