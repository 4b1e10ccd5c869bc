"""One archive, one WARC folder (issue 16, item 3): the folder defaults to `warc` beside the
database, and each archive's identity, kept in its database and its folder, keeps two archives
from mixing their WARC files (identity.py, the CLI's --warc-dir)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FAST, REPO, run_cli

from kremlin_archive import db as dbmod
from kremlin_archive import identity

PAGE = "http://en.kremlin.ru/events/president/news/63017"


def folder_id(warc_dir: Path) -> str:
    return json.loads((warc_dir / identity.FILE).read_text())["archive_id"]


def db_id(db_path: Path) -> str:
    return dbmod.identity_of(dbmod.open_db(db_path))["id"]


def test_a_new_archive_gets_one_identity_in_both_halves(tmp_path):
    db, warc = tmp_path / "a.db", tmp_path / "warc"
    first = identity.bind(str(db), str(warc))
    assert first.startswith("kremlin-archive-")
    assert folder_id(warc) == db_id(db) == first
    assert identity.bind(str(db), str(warc)) == first  # bound again: unchanged


def test_a_database_refuses_the_folder_of_another_archive(tmp_path):
    identity.bind(str(tmp_path / "a.db"), str(tmp_path / "a-warc"))
    identity.bind(str(tmp_path / "b.db"), str(tmp_path / "b-warc"))
    with pytest.raises(identity.IdentityMismatch, match="belongs to another archive"):
        identity.bind(str(tmp_path / "b.db"), str(tmp_path / "a-warc"))


def test_a_new_database_refuses_a_used_folder_and_is_not_even_created(tmp_path):
    identity.bind(str(tmp_path / "a.db"), str(tmp_path / "warc"))
    with pytest.raises(identity.IdentityMismatch, match="kremlin-archive reparse"):
        identity.bind(str(tmp_path / "new.db"), str(tmp_path / "warc"))
    assert not (tmp_path / "new.db").exists()


def test_reparse_adopts_the_folders_identity_for_a_new_database(tmp_path):
    archive_id = identity.bind(str(tmp_path / "a.db"), str(tmp_path / "warc"))
    assert identity.bind(str(tmp_path / "rebuilt.db"), str(tmp_path / "warc"), adopt=True) == (
        archive_id
    )
    assert db_id(tmp_path / "rebuilt.db") == archive_id


def test_a_folder_of_unknown_warc_files_is_refused(tmp_path):
    """A folder from before identities, holding WARC files this database never wrote."""
    warc = tmp_path / "warc"
    warc.mkdir()
    (warc / "kremlin-20200801-someone-else-00001.warc.gz").write_bytes(b"")
    with pytest.raises(identity.IdentityMismatch, match="never wrote"):
        identity.bind(str(tmp_path / "a.db"), str(warc))


def test_an_unreadable_identity_is_refused_not_overwritten(tmp_path):
    warc = tmp_path / "warc"
    warc.mkdir()
    (warc / identity.FILE).write_text("{not json")
    with pytest.raises(identity.IdentityMismatch, match="cannot be read"):
        identity.bind(str(tmp_path / "a.db"), str(warc))
    assert (warc / identity.FILE).read_text() == "{not json"


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.slow
def test_db_alone_writes_warc_beside_it_and_another_archive_is_refused(replay, tmp_path):
    data_warc = REPO / "data" / "warc"
    before = _tree(data_warc)
    home = tmp_path / "one"
    result = run_cli("fetch", PAGE, "--db", str(home / "k.db"), proxy=replay.proxy_url)
    assert result.returncode == 0, result.stderr[-3000:]
    warcs = sorted((home / "warc").glob("*.warc.gz"))
    assert warcs, "no WARC file beside the database"
    assert _tree(data_warc) == before  # nothing written into the project's ./data/warc
    archive_id = folder_id(home / "warc")
    assert db_id(home / "k.db") == archive_id
    # every WARC file names its archive in its warcinfo record
    from warcio.archiveiterator import ArchiveIterator

    with warcs[0].open("rb") as fh:
        info = next(iter(ArchiveIterator(fh)))
        assert info.rec_type == "warcinfo"
        assert f"kremlin-archive-id: {archive_id}" in info.content_stream().read().decode()

    # a second archive pointed at the first one's folder: refused by name, nothing written
    other = tmp_path / "two" / "k.db"
    refused = run_cli(
        "fetch", PAGE, "--db", str(other), "--warc-dir", str(home / "warc"),
        proxy=replay.proxy_url, settings=FAST,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert f"the WARC folder {home / 'warc'} belongs to the archive {archive_id}" in (
        refused.stderr
    )
    assert not other.exists()
    assert sorted((home / "warc").glob("*.warc.gz")) == warcs

    # rebuilding a database from the folder is allowed, and keeps the identity
    rebuilt = tmp_path / "rebuilt.db"
    done = run_cli("reparse", "--db", str(rebuilt), "--warc-dir", str(home / "warc"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert db_id(rebuilt) == archive_id
    assert dbmod.open_db(rebuilt).execute("SELECT count(*) FROM events").fetchone()[0] == 1
