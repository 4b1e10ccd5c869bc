"""cli.py: every command's --help shows an example (the docstrings' "Example:" lines).

The commands are taken from the click group itself, so a command added later is checked too.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kremlin_archive.cli import main

COMMANDS = sorted(main.commands)


def help_text(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], prog_name="kremlin-archive")
    assert result.exit_code == 0, result.output
    return result.output


def test_the_group_has_the_commands_of_the_design():
    assert {"crawl", "refresh", "fetch", "reparse", "export", "import-txt", "stats"} <= set(
        COMMANDS
    )


def test_group_help_has_an_example():
    assert "Example" in help_text()


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_has_an_example(command):
    text = help_text(command)
    assert "Example" in text
    assert f"kremlin-archive {command}" in text.split("Example", 1)[1]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_is_listed_with_a_summary(command):
    listing = help_text().split("Commands:", 1)[1]
    line = next(line for line in listing.splitlines() if line.split()[:1] == [command])
    assert len(line.split()) > 1, f"{command} has no one-line summary in the group's help"
