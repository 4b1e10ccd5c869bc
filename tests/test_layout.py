"""The layout's rules, checked on the source (README "Layout", DESIGN.md): each outside library
is imported by the one part of the package whose job it is, and SQL is written in db.py only.

A new module that breaks a rule fails here, naming the module and the import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kremlin_archive"

# The Scrapy layer: the only code that may import Scrapy or Twisted.
SCRAPY_LAYER = (
    "settings.py",
    "spiders/",
    "middlewares.py",
    "pipelines.py",
    "crawl_run.py",
    "crawl_progress.py",
    "crawl_log.py",
    "request_meta.py",
)
# Development tools that stand in for a piece of Scrapy's world in tests (a resolver).
SCRAPY_DEVTOOLS = ("devtools/offline.py",)

# library -> the modules (paths under kremlin_archive/, a trailing / for a folder) allowed to
# import it.
OWNERS = {
    "scrapy": SCRAPY_LAYER + SCRAPY_DEVTOOLS,
    "twisted": SCRAPY_LAYER + SCRAPY_DEVTOOLS,
    "lxml": ("parsing.py",),  # turning bytes into fields is parsing's job alone
    "warcio": ("warc/",),
    "sqlite3": ("db.py",),
    "datasette": ("datasette/",),
    "click": ("cli.py",),
    "tqdm": ("progress.py", "crawl_progress.py"),
}

SQL = re.compile(
    r"\b(select\s.+\sfrom|insert\s+into|update\s+\S+\s+set|delete\s+from|create\s+"
    r"(table|view|index))\b",
    re.IGNORECASE | re.DOTALL,
)
# Where SQL text may appear besides db.py, and why.
SQL_ELSEWHERE = {
    "cli.py": "the `runs` query the crawl commands print for users to copy",
    "datasette/": "Datasette's own SQL (facets over the archive's tables)",
}


def modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def owned_by(name: str, owners: tuple[str, ...]) -> bool:
    return any(name == o or (o.endswith("/") and name.startswith(o)) for o in owners)


def imported(tree: ast.Module) -> set[str]:
    """Top-level names of every module `tree` imports (absolute imports, anywhere in it)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_package_has_the_modules_the_rules_name():
    names = {name for name, _ in modules()}
    for owners in (*OWNERS.values(), tuple(SQL_ELSEWHERE)):
        for owner in owners:
            assert any(owned_by(name, (owner,)) for name in names), owner


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_each_library_is_imported_only_where_it_belongs(library):
    offenders = [
        name
        for name, tree in modules()
        if library in imported(tree) and not owned_by(name, OWNERS[library])
    ]
    assert offenders == [], f"{library} imported outside {OWNERS[library]}: {offenders}"


def sql_texts(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
        else:
            continue
        if SQL.search(text):
            found.append((node.lineno, text[:60]))
    return found


def test_sql_is_written_in_db_py_only():
    offenders = [
        (name, line, text)
        for name, tree in modules()
        if name != "db.py" and not owned_by(name, tuple(SQL_ELSEWHERE))
        for line, text in sql_texts(tree)
    ]
    assert offenders == []


def test_the_sql_rule_would_see_sql():
    tree = ast.parse('q = "SELECT id FROM events"\nr = f"DELETE FROM {t} WHERE 1"\n')
    assert {line for line, _ in sql_texts(tree)} == {1, 2}


def test_nothing_in_the_package_is_called_archive():
    """The product is the archive; no module, class or function inside it is named so."""
    offenders = [name for name, _ in modules() if "archive" in Path(name).stem.lower()]
    for name, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and (
                "archive" in node.name.lower()
            ):
                offenders.append(f"{name}: {node.name}")
    assert offenders == []
