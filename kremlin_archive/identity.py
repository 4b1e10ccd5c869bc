"""Each archive has an identity, kept in both of its halves: the database (table `identity`)
and the WARC folder (the file `ARCHIVE-ID.json` in it). A database refuses a WARC folder that
belongs to another archive, so two archives never mix their WARC files (a `--db` given
without `--warc-dir` once wrote into `./data/warc`, whoever's that was).

`bind` is called before anything is written: a crawl, refresh or fetch binds its database to
its folder (giving a new archive its identity, stamping an archive from before identities);
`reparse` may adopt the folder's identity for a new database built from that folder.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from . import db as dbmod
from .timestamps import utc_stamp

FILE = "ARCHIVE-ID.json"


class IdentityMismatch(Exception):
    """The database and the WARC folder do not belong to the same archive."""


def read_folder(warc_dir: str | Path) -> dict | None:
    """The identity the WARC folder keeps, or None (no folder, or a folder without one)."""
    path = Path(warc_dir) / FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IdentityMismatch(
            f"{path} cannot be read ({exc}): which archive it is unknown"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("archive_id"), str):
        raise IdentityMismatch(f"{path} names no archive_id: which archive it is unknown")
    return data


def _write_folder(warc_dir: Path, archive_id: str, db_path: str, created_at: str) -> None:
    warc_dir.mkdir(parents=True, exist_ok=True)
    data = {"archive_id": archive_id, "database": str(Path(db_path).resolve())}
    data["created_at"] = created_at
    tmp = warc_dir / f"{FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(warc_dir / FILE)


def _warc_files(warc_dir: Path) -> list[Path]:
    if not warc_dir.is_dir():
        return []
    return sorted(p for p in warc_dir.iterdir() if p.is_file() and ".warc" in p.name)


def _refuse_new(db_path: str, folder: Path, theirs: dict) -> None:
    raise IdentityMismatch(
        f"the WARC folder {folder} belongs to the archive {theirs['archive_id']} "
        f"(database {theirs.get('database')}), and {db_path} is not that archive: "
        "give another --warc-dir (by default a folder `warc` beside the database), "
        f"or rebuild this database from that folder with `kremlin-archive reparse "
        f"--db {db_path} --warc-dir {folder}`"
    )


def bind(db_path: str, warc_dir: str, *, adopt: bool = False) -> str:
    """The archive's id, after checking that the database and the WARC folder are one archive
    (and writing the identity into whichever half lacks it). Raises IdentityMismatch, saying
    whose folder it is and what to do, when they are not. With `adopt` (reparse), a database
    without an identity takes the folder's."""
    folder = Path(warc_dir)
    if not adopt and not Path(db_path).exists() and read_folder(folder):
        # refused before the database file is made: a refused command leaves nothing behind
        _refuse_new(db_path, folder, read_folder(folder))
    database = dbmod.open_db(db_path)
    try:
        mine = dbmod.identity_of(database)
        theirs = read_folder(folder)
        if mine and theirs:
            if mine["id"] != theirs["archive_id"]:
                raise IdentityMismatch(
                    f"the WARC folder {folder} belongs to another archive "
                    f"({theirs['archive_id']}, database {theirs.get('database')}), not to "
                    f"{db_path} ({mine['id']}, WARC folder {mine['warc_dir']}): give the "
                    "archive's own --warc-dir"
                )
            return mine["id"]
        if theirs:  # a database without an identity, a folder with one
            known = any(dbmod.knows_warc_file(database, p.name) for p in _warc_files(folder))
            if not (adopt or known):
                _refuse_new(db_path, folder, theirs)
            dbmod.set_identity(
                database, theirs["archive_id"], str(folder.resolve()), theirs.get("created_at")
                or utc_stamp(),
            )  # fmt: skip
            return theirs["archive_id"]
        files = _warc_files(folder)
        if files and not adopt and not any(dbmod.knows_warc_file(database, p.name) for p in files):
            raise IdentityMismatch(
                f"the WARC folder {folder} holds {len(files)} WARC file(s) that {db_path} "
                "never wrote (another archive's?): give another --warc-dir, or rebuild a "
                "database from that folder with `kremlin-archive reparse`"
            )
        archive_id = mine["id"] if mine else f"kremlin-archive-{uuid.uuid4()}"
        created_at = mine["created_at"] if mine else utc_stamp()
        _write_folder(folder, archive_id, db_path, created_at)
        dbmod.set_identity(database, archive_id, str(folder.resolve()), created_at)
        return archive_id
    finally:
        database.close()
