"""`kremlin-archive import-txt` (export.import_txt): legacy plain-text records into the archive.

The legacy record is the real one (../shared/seed-format/66419.txt); the 100-file corpus is made
at test time from real mirror pages written with `format_txt`, plus three broken files.
"""

from __future__ import annotations

import json

import pytest
from conftest import SEED_DIR, SEED_URL, count_rows, load_transcript, run_cli

from kremlin_archive import db as dbmod
from kremlin_archive.legacy_txt import format_txt
from kremlin_archive.parsing import parse_event

SEED = SEED_DIR / "66419.txt"


def seed_text() -> str:
    """The legacy record after the two normalisations its README names."""
    text = SEED.read_text(encoding="utf-8").replace("&lt;…&gt;", "<…>")
    return "\n".join(line.rstrip(" ") for line in text.split("\n"))


def export_txt(db_path, out, event_id: str = "ru-66419") -> str:
    result = run_cli("export", "--format", "txt", "--id", event_id, "--out", str(out),
                     "--db", str(db_path))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return (out / f"{event_id}.txt").read_text(encoding="utf-8")


# -- the legacy record ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_archive(tmp_path_factory):
    home = tmp_path_factory.mktemp("seed")
    db_path = home / "kremlin.db"
    return {"db": db_path, "import": run_cli("import-txt", str(SEED), "--db", str(db_path))}


def test_import_of_the_legacy_record_exits_zero(seed_archive):
    result = seed_archive["import"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "new 1" in result.stderr
    assert "warning" not in result.stderr


def test_export_of_the_imported_record_reproduces_the_file(seed_archive, tmp_path):
    assert export_txt(seed_archive["db"], tmp_path) == seed_text()


def test_imported_record_has_import_provenance_and_no_fetch(seed_archive):
    event = dbmod.connect(seed_archive["db"]).table("events").get("ru-66419")
    assert event["origin"] == "import:66419.txt"
    assert event["fetch_id"] is None
    assert event["fetched_at"] is None
    assert event["source_url"] == SEED_URL
    assert event["published_at"] == "2021-08-21T13:10:00+03:00"
    assert event["license"] == "CC BY 4.0"


def test_imported_record_keeps_the_speaker_turns(seed_archive):
    database = dbmod.connect(seed_archive["db"])
    speakers = [r[0] for r in database.execute(
        "SELECT speaker FROM utterances WHERE event_id = 'ru-66419' ORDER BY seq")]  # fmt: skip
    assert speakers == ["В.Путин", "К.-Ж.Токаев"]
    text = database.execute("SELECT text FROM events WHERE id = 'ru-66419'").fetchone()[0]
    assert "<…>" in text and "&lt;" not in text


def test_import_is_one_run_of_the_import_spider(seed_archive):
    runs = list(dbmod.connect(seed_archive["db"]).query("SELECT * FROM runs"))
    assert len(runs) == 1
    run = runs[0]
    assert (run["spider"], run["command"], run["status"]) == (
        "import-txt",
        "import-txt",
        "finished",
    )
    assert run["events_new"] == 1 and run["errors"] == 0
    assert json.loads(run["arguments"]) == {"paths": [str(SEED)]}


def test_importing_again_changes_nothing(tmp_path):
    db_path = tmp_path / "k.db"
    for _ in range(2):
        result = run_cli("import-txt", str(SEED), "--db", str(db_path))
        assert result.returncode == 0, result.stderr[-2000:]
    assert "unchanged 1" in result.stderr
    database = dbmod.connect(db_path)
    assert database.table("revisions").count == 0
    assert database.table("runs").count == 2


# -- a crawl supersedes an import; an import does not overwrite a crawl ---------------------------


@pytest.fixture(scope="module")
def superseded(tmp_path_factory, mirror_dir):
    """Import the legacy record, fetch its page through the replay server, import it again."""
    from conftest import RU_66419_PAGE, RU_66419_URL

    from kremlin_archive.devtools.replay import ReplayServer

    home = tmp_path_factory.mktemp("superseded")
    db_path, warc = home / "kremlin.db", home / "warc"
    state = {"db": db_path, "home": home}
    state["import1"] = run_cli("import-txt", str(SEED), "--db", str(db_path))
    with ReplayServer(mirror_dir) as replay:
        replay.put_file(RU_66419_URL, RU_66419_PAGE)
        state["fetch"] = run_cli(
            "fetch", SEED_URL, "--db", str(db_path), "--warc-dir", str(warc),
            proxy=replay.proxy_url,
        )  # fmt: skip
    state["import2"] = run_cli("import-txt", str(SEED), "--db", str(db_path))
    return state


@pytest.mark.slow
def test_all_steps_exit_zero(superseded):
    for step in ("import1", "fetch", "import2"):
        assert superseded[step].returncode == 0, f"{step}: {superseded[step].stderr[-2000:]}"


@pytest.mark.slow
def test_fetch_supersedes_the_import(superseded):
    event = dbmod.connect(superseded["db"]).table("events").get("ru-66419")
    assert event["origin"] == "crawl"
    assert event["fetch_id"] is not None
    assert event["revision_count"] == 1


@pytest.mark.slow
def test_the_import_is_kept_as_a_revision(superseded):
    database = dbmod.connect(superseded["db"])
    event = database.table("events").get("ru-66419")
    (revision,) = database.query("SELECT * FROM revisions WHERE event_id = 'ru-66419'")
    assert revision["revision"] == 1
    assert revision["origin"] == "import:66419.txt"
    assert revision["fetch_id"] is None
    assert revision["superseded_by_fetch_id"] == event["fetch_id"]
    assert "origin" in json.loads(revision["changed_fields"])
    content = json.loads(revision["content"])
    assert content["title"] == event["title"]
    assert content["tags"] == []  # the legacy format has none; the page has


@pytest.mark.slow
def test_a_later_import_leaves_the_crawled_event_alone(superseded):
    result = superseded["import2"]
    assert "kept as archived from the site 1" in result.stderr
    database = dbmod.connect(superseded["db"])
    assert database.table("events").get("ru-66419")["origin"] == "crawl"
    assert database.table("revisions").count == 1


@pytest.mark.slow
def test_export_of_the_crawled_event_still_reproduces_the_file(superseded, tmp_path):
    assert export_txt(superseded["db"], tmp_path) == seed_text()


# -- a corpus of 100 files, 3 of them malformed ---------------------------------------------------


def broken_files(valid_text: str) -> dict[str, tuple[str, int]]:
    """name -> (content, the line the report must name)."""
    lines = valid_text.split("\n")
    without_url = "\n".join(lines[:-1])
    bad_date = "\n".join([*lines[:4], "21.08.2021 13:10", *lines[5:]])
    return {
        "no-url.txt": (without_url, len(lines) - 1),
        "bad-date.txt": (bad_date, 5),
        "empty.txt": ("", 1),
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, mirror_event_pages):
    """97 real pages written in the legacy format (some in a subfolder), 3 broken files."""
    folder = tmp_path_factory.mktemp("corpus") / "legacy"
    (folder / "2020").mkdir(parents=True)
    valid = {}
    for page in mirror_event_pages[::50]:
        t = parse_event(
            page.read_bytes(), f"http://en.kremlin.ru/events/president/news/{page.stem}"
        )
        if t.paragraphs:
            valid[t.event_id] = t
        if len(valid) == 97:
            break
    assert len(valid) == 97
    for n, (event_id, t) in enumerate(sorted(valid.items())):
        target = folder / "2020" if n % 2 else folder
        (target / f"{event_id}.txt").write_text(format_txt(t), encoding="utf-8")
    broken = broken_files(format_txt(next(iter(valid.values()))))
    for name, (content, _line) in broken.items():
        (folder / name).write_text(content, encoding="utf-8")
    db_path = folder.parent / "kremlin.db"
    result = run_cli("import-txt", str(folder), "--db", str(db_path))
    return {"db": db_path, "folder": folder, "valid": valid, "broken": broken, "result": result}


def test_corpus_import_exits_zero_with_a_warning(corpus):
    result = corpus["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: 3 of 100 file(s) could not be imported" in result.stderr


def test_corpus_import_stores_the_97_valid_files(corpus):
    database = dbmod.connect(corpus["db"])
    stored = {r[0]: r[1] for r in database.execute("SELECT id, origin FROM events")}
    assert set(stored) == set(corpus["valid"])
    assert all(origin == f"import:{event_id}.txt" for event_id, origin in stored.items())
    assert count_rows(database, "events", "fetch_id IS NOT NULL") == 0


def test_corpus_import_keeps_the_content(corpus):
    database = dbmod.connect(corpus["db"])
    for event_id, t in corpus["valid"].items():
        stored = load_transcript(database, event_id)
        assert stored.title == t.title
        assert stored.published_at == t.published_at
        assert stored.paragraphs == t.paragraphs
        assert stored.place == t.place


@pytest.mark.parametrize("name", ["no-url.txt", "bad-date.txt", "empty.txt"])
def test_malformed_file_is_reported_on_stderr_by_name_and_line(corpus, name):
    line = corpus["broken"][name][1]
    reports = [
        r for r in corpus["result"].stderr.splitlines() if f"skipped {corpus['folder']}" in r
    ]
    (report,) = [r for r in reports if f"/{name}:" in r]
    assert f"{name}, line {line}:" in report


@pytest.mark.parametrize("name", ["no-url.txt", "bad-date.txt", "empty.txt"])
def test_malformed_file_is_an_import_error_row(corpus, name):
    database = dbmod.connect(corpus["db"])
    (row,) = database.query("SELECT * FROM errors WHERE url = ?", [str(corpus["folder"] / name)])
    assert row["stage"] == "import"
    assert f"{name}, line {corpus['broken'][name][1]}:" in row["reason"]
    run = database.table("runs").get(row["run_id"])
    assert run["spider"] == "import-txt"


def test_corpus_run_counts_add_up(corpus):
    (run,) = dbmod.connect(corpus["db"]).query("SELECT * FROM runs")
    counts = json.loads(run["counts"])
    assert counts["files"] == 100
    assert (run["events_new"], run["errors"], run["status"]) == (97, 3, "finished")


# -- nothing importable ---------------------------------------------------------------------------


def test_only_malformed_files_is_exit_2(tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    result = run_cli("import-txt", str(tmp_path / "empty.txt"), "--db", str(tmp_path / "k.db"))
    assert result.returncode == 2
    assert "empty.txt, line 1" in result.stderr
    assert "nothing importable" in result.stderr
    (run,) = dbmod.connect(tmp_path / "k.db").query("SELECT status, errors FROM runs")
    assert run == {"status": "failed", "errors": 1}


def test_folder_without_txt_files_is_exit_2(tmp_path):
    (tmp_path / "notes.md").write_text("nothing", encoding="utf-8")
    result = run_cli("import-txt", str(tmp_path), "--db", str(tmp_path / "k.db"))
    assert result.returncode == 2
    assert "no .txt files" in result.stderr
    assert not (tmp_path / "k.db").exists()


def test_missing_path_is_exit_2(tmp_path):
    result = run_cli("import-txt", str(tmp_path / "nope.txt"), "--db", str(tmp_path / "k.db"))
    assert result.returncode == 2
    assert "nope.txt" in result.stderr


def test_file_that_is_not_utf8_names_its_line(tmp_path):
    text = seed_text().encode("utf-8").replace("Москва".encode(), "Москва".encode("cp1251"))
    (tmp_path / "cp1251.txt").write_bytes(text)
    result = run_cli("import-txt", str(tmp_path / "cp1251.txt"), "--db", str(tmp_path / "k.db"))
    assert result.returncode == 2
    assert "cp1251.txt, line 7: not UTF-8 text" in result.stderr
