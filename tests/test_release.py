"""jobs/release.py and `kremlin-archive release`: a dataset release researchers can cite.

The month archive (tests/conftest.py `month_archive`: a replayed March 2020 en crawl plus the
ru page 66419) is released twice; the files are checked against the database (queried here with
sqlite3, not through the code under test), against each other (CSV and JSON Lines, two runs),
against their checksums, and by Frictionless itself -- which must also reject a broken copy, so
that the validation can fail. The folder rules (refuse what is not a release, replace a
release, never leave half of one) run on a small database made in the test, without a crawl.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_transcript, run_cli

from kremlin_archive import db as dbmod
from kremlin_archive.jobs import release as releasemod

FRICTIONLESS = Path(sys.executable).parent / "frictionless"
TABLES = ("events", "utterances", "persons", "tags", "event_tags", "fetches")
DATA_FILES = tuple(f"{t}.{fmt}" for fmt in ("csv", "jsonl") for t in TABLES)
ALL_FILES = (*DATA_FILES, "datapackage.json", "README.md", "SHA256SUMS")

csv.field_size_limit(sys.maxsize)  # long transcripts exceed the default cell limit


# -- helpers -----------------------------------------------------------------------------------


def release_cli(db_path: Path, out: Path):
    return run_cli("release", "--db", str(db_path), "--out", str(out))


def validate(package: Path) -> dict:
    """`frictionless validate --json` of a datapackage.json: its exit code and report."""
    done = subprocess.run(
        [str(FRICTIONLESS), "validate", "--json", str(package)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(done.stdout)
    report["exit_code"] = done.returncode
    return report


def error_types(report: dict) -> set[str]:
    types = {e["type"] for e in report.get("errors", [])}
    for task in report["tasks"]:
        types |= {e["type"] for e in task["errors"]}
    return types


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    return rows[0], rows[1:]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def as_cell(value) -> str:
    """A JSON value as the CSV cell that must hold it."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def query(db_path: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def package_of(folder: Path) -> dict:
    return json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))


# -- the month archive released ------------------------------------------------------------------


@pytest.fixture(scope="module")
def month_releases(month_archive, tmp_path_factory) -> tuple[Path, Path, Path]:
    """The month archive (read-only) and two releases of it, made one after the other."""
    home = tmp_path_factory.mktemp("releases")
    db_path = month_archive / "kremlin.db"
    folders = (home / "first", home / "second")
    for folder in folders:
        done = release_cli(db_path, folder)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "released" in done.stderr
    return db_path, *folders


@pytest.mark.slow
def test_the_release_holds_the_files_it_promises(month_releases):
    _, first, _ = month_releases
    assert sorted(p.name for p in first.iterdir()) == sorted(ALL_FILES)
    for name in DATA_FILES:
        assert (first / name).stat().st_size > 0, name
    # nothing of the build is left beside it
    assert sorted(p.name for p in first.parent.iterdir()) == ["first", "second"]


@pytest.mark.slow
def test_frictionless_finds_the_release_valid(month_releases):
    _, first, _ = month_releases
    report = validate(first / "datapackage.json")
    assert report["exit_code"] == 0, error_types(report)
    assert report["valid"] is True
    checked = {task["name"]: task for task in report["tasks"]}
    assert set(checked) == {*TABLES, *(f"{t}-jsonl" for t in TABLES)}
    assert all(task["valid"] for task in checked.values())
    assert all(task["stats"]["rows"] > 0 for task in checked.values())


@pytest.mark.slow
def test_the_schemas_declare_keys_and_the_links_between_tables(month_releases):
    _, first, _ = month_releases
    resources = {r["name"]: r for r in package_of(first)["resources"]}
    assert resources["utterances"]["schema"]["primaryKey"] == ["event_id", "seq"]
    links = {
        (name, key["fields"][0], key["reference"]["resource"], key["reference"]["fields"][0])
        for name, r in resources.items()
        for key in r["schema"].get("foreignKeys", [])
    }
    assert {
        ("utterances", "event_id", "events", "id"),
        ("utterances", "person_id", "persons", "id"),
        ("event_tags", "event_id", "events", "id"),
        ("event_tags", "tag_id", "tags", "id"),
        ("events", "fetch_id", "fetches", "id"),
        ("utterances-jsonl", "event_id", "events-jsonl", "id"),
    } <= links


def broken_copy(first: Path, tmp_path: Path, *, keep_checksums: bool) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(first, copy)
    if not keep_checksums:  # so that only the content itself can make it invalid
        package = package_of(copy)
        for resource in package["resources"]:
            resource.pop("hash")
            resource.pop("bytes")
        (copy / "datapackage.json").write_text(json.dumps(package), encoding="utf-8")
    return copy


def rewrite_cell(path: Path, row: int, column: str, value: str) -> None:
    header, rows = read_csv(path)
    rows[row][header.index(column)] = value
    with open(path, "w", encoding="utf-8", newline="") as stream:
        csv.writer(stream).writerows([header, *rows])


@pytest.mark.slow
def test_a_corrupted_cell_makes_the_release_invalid(month_releases, tmp_path):
    _, first, _ = month_releases
    copy = broken_copy(first, tmp_path, keep_checksums=True)
    rewrite_cell(copy / "utterances.csv", 0, "text", "Not what was said.")
    report = validate(copy / "datapackage.json")
    assert report["exit_code"] != 0 and report["valid"] is False
    assert "hash-count" in error_types(report)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("table", "column", "value", "error"),
    [
        ("utterances", "event_id", "en-1", "foreign-key"),  # a turn of no event
        ("event_tags", "tag_id", "http://example.org/no-such-tag", "foreign-key"),
        ("events", "kremlin_id", "sixty-three thousand", "type-error"),
        ("events", "published_at", "last Tuesday", "type-error"),
        ("events", "title", "", "constraint-error"),
    ],
)
def test_frictionless_checks_types_and_foreign_keys(
    month_releases, tmp_path, table, column, value, error
):
    _, first, _ = month_releases
    copy = broken_copy(first, tmp_path, keep_checksums=False)
    assert validate(copy / "datapackage.json")["valid"] is True  # the copy itself is sound
    rewrite_cell(copy / f"{table}.csv", 0, column, value)
    report = validate(copy / "datapackage.json")
    assert report["valid"] is False
    assert error in error_types(report)


@pytest.mark.slow
def test_a_missing_file_makes_the_release_invalid(month_releases, tmp_path):
    _, first, _ = month_releases
    copy = broken_copy(first, tmp_path, keep_checksums=True)
    (copy / "persons.jsonl").unlink()
    report = validate(copy / "datapackage.json")
    assert report["exit_code"] != 0 and report["valid"] is False


@pytest.mark.slow
def test_two_releases_of_one_archive_are_byte_identical(month_releases):
    _, first, second = month_releases
    assert sorted(p.name for p in second.iterdir()) == sorted(p.name for p in first.iterdir())
    for path in first.iterdir():
        assert path.read_bytes() == (second / path.name).read_bytes(), path.name


@pytest.mark.slow
def test_a_release_replaces_a_previous_release_with_the_same_bytes(month_releases, tmp_path):
    db_path, first, _ = month_releases
    again = tmp_path / "again"
    shutil.copytree(first, again)
    (again / "events.csv").write_text("stale\r\n", encoding="utf-8")  # an old release's file
    done = release_cli(db_path, again)
    assert done.returncode == 0, done.stderr[-3000:]
    for path in first.iterdir():
        assert path.read_bytes() == (again / path.name).read_bytes(), path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]


@pytest.mark.slow
def test_the_counts_match_the_database(month_releases):
    db_path, first, _ = month_releases
    package = package_of(first)
    in_db = {t: query(db_path, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
    assert all(n > 0 for n in in_db.values())
    assert package["counts"]["rows"] == in_db
    for resource in package["resources"]:
        table = resource["name"].removesuffix("-jsonl")
        assert resource["rows"] == in_db[table]
        if resource["format"] == "csv":
            assert len(read_csv(first / resource["path"])[1]) == in_db[table]
        else:
            assert len(read_jsonl(first / resource["path"])) == in_db[table]
    by_lang = dict(query(db_path, "SELECT lang, count(*) FROM events GROUP BY lang"))
    assert by_lang.keys() == {"en", "ru"}
    assert package["counts"]["events_by_lang"] == by_lang
    by_source = dict(
        query(db_path, "SELECT coalesce(source, 'site'), count(*) FROM fetches GROUP BY 1")
    )
    assert package["counts"]["fetches_by_source"] == by_source


@pytest.mark.slow
def test_the_coverage_summary_is_the_ledger(month_releases):
    db_path, first, _ = month_releases
    coverage = package_of(first)["coverage"]["langs"]
    ledger = query(db_path, "SELECT lang, state, count(*) FROM coverage GROUP BY lang, state")
    assert {(lang, state): n for lang, state, n in ledger} == {
        (lang, state): n
        for lang, summary in coverage.items()
        for state, n in summary["states"].items()
        if n and state != "unknown"
    }
    for lang, summary in coverage.items():
        first_id, last_id, entries = query(
            db_path,
            "SELECT min(kremlin_id), max(kremlin_id), count(*) FROM coverage WHERE lang = ?",
            [lang],
        )[0]
        assert (summary["first_id"], summary["last_id"]) == (first_id, last_id)
        assert summary["states"]["unknown"] == last_id - first_id + 1 - entries
        kept = sum(summary["states"][s] for s in ("stored", "absent", "not_event"))
        assert summary["accounted_for"] == kept


@pytest.mark.slow
def test_the_release_is_dated_and_identified_by_the_archive(month_releases):
    db_path, first, _ = month_releases
    package = package_of(first)
    newest = query(db_path, "SELECT max(finished_at) FROM runs WHERE status = 'finished'")[0][0]
    assert package["created"] == newest
    ((archive_id, created_at),) = query(db_path, "SELECT id, created_at FROM identity")
    assert package["archive"]["id"] == archive_id
    assert package["archive"]["created_at"] == created_at
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert package["software"] == {
        "name": "kremlin-archive",
        "version": pyproject["project"]["version"],
        "license": "Apache-2.0",
        "parser_versions": [r[0] for r in query(
            db_path, "SELECT DISTINCT parser_version FROM events ORDER BY 1"
        )],
    }  # fmt: skip
    readme = (first / "README.md").read_text(encoding="utf-8")
    assert archive_id in readme and newest in readme
    # no path of the machine that made it
    assert str(db_path.parent) not in (first / "datapackage.json").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_checksums_match_the_files(month_releases):
    _, first, _ = month_releases
    package = package_of(first)
    assert sorted(r["path"] for r in package["resources"]) == sorted(DATA_FILES)  # no empty
    for resource in package["resources"]:
        path = first / resource["path"]
        assert resource["hash"] == f"sha256:{sha256(path)}"
        assert resource["bytes"] == path.stat().st_size
    sums = {}
    for line in (first / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    assert set(sums) == set(ALL_FILES) - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert digest == sha256(first / name), name
    checked = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=first,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the README pins datapackage.json, which pins the data
    assert sha256(first / "datapackage.json") in (first / "README.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_csv_and_jsonl_hold_the_same_rows(month_releases):
    _, first, _ = month_releases
    for table in TABLES:
        header, rows = read_csv(first / f"{table}.csv")
        objects = read_jsonl(first / f"{table}.jsonl")
        assert all(list(o) == header for o in objects), table
        assert rows == [[as_cell(o[c]) for c in header] for o in objects], table
        assert not any(v == "" for o in objects for v in o.values()), f"{table}: '' for null"


@pytest.mark.slow
def test_the_csv_files_are_rfc_4180(month_releases):
    _, first, _ = month_releases
    for table in TABLES:
        data = (first / f"{table}.csv").read_bytes()
        assert not data.startswith(b"\xef\xbb\xbf")  # no BOM
        assert data.endswith(b"\r\n")
        header = data.decode("utf-8").split("\r\n", 1)[0]
        assert header == ",".join(read_csv(first / f"{table}.csv")[0])


@pytest.mark.slow
def test_every_row_joins(month_releases):
    _, first, _ = month_releases
    events = {o["id"]: o for o in read_jsonl(first / "events.jsonl")}
    persons = {o["id"] for o in read_jsonl(first / "persons.jsonl")}
    tags = {o["id"] for o in read_jsonl(first / "tags.jsonl")}
    fetches = {o["id"] for o in read_jsonl(first / "fetches.jsonl")}
    turns = read_jsonl(first / "utterances.jsonl")
    assert all(t["event_id"] in events for t in turns)
    linked = [t for t in turns if t["person_id"] is not None]
    assert linked and all(t["person_id"] in persons for t in linked)
    links = read_jsonl(first / "event_tags.jsonl")
    assert all(link["event_id"] in events and link["tag_id"] in tags for link in links)
    assert all(e["fetch_id"] in fetches for e in events.values() if e["fetch_id"] is not None)
    for event_id, event in events.items():
        assert event["utterance_count"] == sum(t["event_id"] == event_id for t in turns)


@pytest.mark.slow
def test_the_rows_are_the_database_rows(month_releases):
    db_path, first, _ = month_releases
    turns = query(
        db_path,
        "SELECT u.event_id, u.seq, u.speaker, u.text, u.person_id, u.position, u.marker, "
        "u.person_evidence, coalesce(CASE e.lang WHEN 'ru' THEN p.name_ru ELSE p.name_en END, "
        "p.name) FROM utterances u JOIN events e ON e.id = u.event_id "
        "LEFT JOIN persons p ON p.id = u.person_id ORDER BY u.event_id, u.seq",
    )
    released = sorted(
        read_jsonl(first / "utterances.jsonl"), key=lambda t: (t["event_id"], t["seq"])
    )
    keys = ("event_id", "seq", "speaker", "text", "person_id", "position", "marker",
            "person_evidence", "person")  # fmt: skip
    assert [tuple(t[k] for k in keys) for t in released] == [
        tuple(None if v == "" else v for v in row) for row in turns
    ]
    events = {e["id"]: e for e in read_jsonl(first / "events.jsonl")}
    for event_id, title, published_at, url, lead, fetch_id, sha in query(
        db_path,
        "SELECT e.id, e.title, e.published_at, e.url, e.lead, e.fetch_id, f.payload_sha256 "
        "FROM events e LEFT JOIN fetches f ON f.id = e.fetch_id",
    ):
        event = events[event_id]
        assert (event["title"], event["published_at"], event["url"]) == (title, published_at, url)
        assert event["lead"] == (lead or None)
        assert (event["fetch_id"], event["payload_sha256"]) == (fetch_id, sha)
    published = [e["published_at"] for e in events.values()]
    assert published == sorted(published)  # oldest first, as the export
    fetch_rows = read_jsonl(first / "fetches.jsonl")
    assert [f["id"] for f in fetch_rows] == [r[0] for r in query(
        db_path, "SELECT id FROM fetches ORDER BY id"
    )]  # fmt: skip
    warc = {
        r[0]: r[1:]
        for r in query(db_path, "SELECT id, warc_filename, warc_offset, source FROM fetches")
    }
    assert all((f["warc_filename"], f["warc_offset"], f["source"]) == warc[f["id"]]
               for f in fetch_rows)  # fmt: skip


@pytest.mark.slow
def test_the_release_carries_the_licence_and_attribution(month_releases):
    _, first, _ = month_releases
    package = package_of(first)
    assert [lic["name"] for lic in package["licenses"]] == ["CC-BY-4.0"]
    assert "President of Russia website (kremlin.ru / en.kremlin.ru)" in package["attribution"]
    assert "CC BY 4.0" in package["attribution"]
    assert {s["path"] for s in package["sources"]} >= {
        "http://kremlin.ru/",
        "http://en.kremlin.ru/",
    }
    # the wording the project's README uses for the content
    project_readme = (REPO / "README.md").read_text(encoding="utf-8")
    owner = "President of Russia website (kremlin.ru / en.kremlin.ru)"
    assert owner in project_readme.split("## License", 1)[1]
    readme = (first / "README.md").read_text(encoding="utf-8")
    assert f"© {owner}" in readme and "CC BY 4.0" in readme
    assert "http://kremlin.ru/about/copyrights" in readme
    assert package["attribution"] in readme
    header, rows = read_csv(first / "events.csv")
    assert {row[header.index("attribution")] for row in rows} == {package["attribution"]}
    assert {row[header.index("license")] for row in rows} == {"CC BY 4.0"}


# -- the folder rules, on a small database (no crawl) ------------------------------------------


@pytest.fixture
def small_db(tmp_path) -> Path:
    path = tmp_path / "small" / "kremlin.db"
    path.parent.mkdir()
    database = dbmod.open_db(path)
    dbmod.set_identity(
        database, "kremlin-archive-test", str(tmp_path / "warc"), "2026-01-01T00:00:00Z"
    )
    dbmod.save_transcript(database, make_transcript())
    dbmod.save_transcript(
        database,
        make_transcript(
            kremlin_id=66420,
            url="http://kremlin.ru/events/president/news/66420",
            published_at="2021-08-22T10:00:00+03:00",
            lead="",
        ),
    )
    database.close()
    return path


def test_a_small_release_is_valid_and_repeatable(small_db, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        done = release_cli(small_db, folder)
        assert done.returncode == 0, done.stderr
    for path in first.iterdir():
        assert path.read_bytes() == (second / path.name).read_bytes(), path.name
    report = validate(first / "datapackage.json")
    assert report["valid"] is True, error_types(report)
    package = package_of(first)
    assert package["counts"]["rows"]["events"] == 2
    assert package["created"] == "2026-01-01T00:00:00Z"  # no run: the archive's creation
    lead = [e["lead"] for e in read_jsonl(first / "events.jsonl") if e["id"] == "ru-66420"]
    assert lead == [None]
    # no fetches (the events were stored without a crawl): an empty JSON Lines file, listed in
    # SHA256SUMS but no resource (Frictionless reads no table from it); the CSV has its header
    assert package["counts"]["rows"]["fetches"] == 0
    assert (first / "fetches.jsonl").read_bytes() == b""
    assert read_csv(first / "fetches.csv")[1] == []
    names = {r["path"] for r in package["resources"]}
    assert "fetches.csv" in names and "fetches.jsonl" not in names
    assert "fetches.jsonl" in (first / "SHA256SUMS").read_text(encoding="utf-8")


def test_a_folder_with_other_files_is_refused_and_left_alone(small_db, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes", encoding="utf-8")
    done = release_cli(small_db, out)
    assert done.returncode == 2
    assert "not a release" in done.stderr and str(out) in done.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "small"]


def test_a_release_with_a_stranger_in_it_is_refused(small_db, tmp_path):
    out = tmp_path / "rel"
    assert release_cli(small_db, out).returncode == 0
    (out / "analysis.ipynb").write_text("{}", encoding="utf-8")
    done = release_cli(small_db, out)
    assert done.returncode == 2
    assert "analysis.ipynb" in done.stderr
    assert (out / "analysis.ipynb").exists() and (out / "datapackage.json").exists()


def test_a_file_as_out_is_refused(small_db, tmp_path):
    out = tmp_path / "release.zip"
    out.write_bytes(b"PK")
    done = release_cli(small_db, out)
    assert done.returncode == 2
    assert out.read_bytes() == b"PK"


def test_an_empty_folder_is_used(small_db, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert release_cli(small_db, out).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(ALL_FILES)


def test_a_failure_leaves_no_half_release(small_db, tmp_path, monkeypatch):
    out = tmp_path / "rel"
    assert release_cli(small_db, out).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(releasemod, "readme_text", broken)
    database = dbmod.connect(small_db, readonly=True)
    with pytest.raises(OSError, match="disk full"):
        releasemod.write_release(database, out)
    with pytest.raises(OSError, match="disk full"):
        releasemod.write_release(database, tmp_path / "new")
    database.close()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel", "small"]


def test_a_missing_database_is_a_usage_error(tmp_path):
    done = release_cli(tmp_path / "nothing.db", tmp_path / "rel")
    assert done.returncode == 2
    assert not (tmp_path / "rel").exists()


# -- CITATION.cff -------------------------------------------------------------------------------


def test_citation_cff_describes_the_software():
    data = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["cff-version"] == "1.2.0"
    assert data["title"] == pyproject["project"]["name"] == "kremlin-archive"
    assert data["version"] == pyproject["project"]["version"]
    assert data["license"] == pyproject["project"]["license"] == "Apache-2.0"
    assert data["type"] == "software"
    assert data["authors"] == [{"name": "kremlin-archive contributors"}]
    assert data["message"].strip()
    assert "doi" not in data  # none yet: the file must not pretend
    # CFF 1.2.0 allows no other top-level keys than these (of those it defines)
    assert set(data) <= {
        "abstract", "authors", "cff-version", "commit", "contact", "date-released", "doi",
        "identifiers", "keywords", "license", "license-url", "message", "preferred-citation",
        "references", "repository", "repository-artifact", "repository-code", "title", "type",
        "url", "version",
    }  # fmt: skip
