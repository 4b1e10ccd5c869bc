"""What `make test` does about the browser, without root and without installing anything, and
the packaging metadata `make install` builds from.

- The Makefile's system-deps decision (`try-system-deps` before the test targets, `system-deps`
  by hand) runs for real with PATH holding only fakes: `id` answers the uid asked for, `sudo`
  works without a password or refuses, `apt-get` logs what it was asked (and "installs" a
  chromium script), so each branch is seen in what was called and printed.
- The browser marker: a small test file run by pytest in a child process, with the project's
  pytest configuration and tests/conftest.py, and a PATH without chromium: skipped under one
  summary line naming `sudo make system-deps`, failed when KREMLIN_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import CHROMIUM_NAMES, REPO

MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="make is not installed")

FAKE_ID = '#!/bin/sh\n[ "$1" = -u ] && echo "$FAKE_UID"\n'
FAKE_SUDO_OK = '#!/bin/sh\necho "sudo $*" >> "$CALLS"\n[ "$1" = -n ] && shift\nexec "$@"\n'
FAKE_SUDO_REFUSES = '#!/bin/sh\necho "sudo $*" >> "$CALLS"\nexit 1\n'
FAKE_APT_GET = (
    "#!/bin/sh\n"
    'echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> "$CALLS"\n'
    '[ -n "$APT_FAILS" ] && exit 100\n'
    'if [ "$1" = install ]; then printf "#!/bin/sh\\n" > "$FAKEBIN/chromium";'
    ' chmod +x "$FAKEBIN/chromium"; fi\n'
)


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def run_make(
    tmp_path: Path,
    target: str,
    *,
    uid: int,
    sudo: str | None,
    chromium: bool = False,
    apt_fails: bool = False,
    require: bool = False,
) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`make -s TARGET` in the repository with PATH = a folder of fakes only (and the real
    `env`, `true` and `chmod`)."""
    fakebin, calls = tmp_path / "bin", tmp_path / "calls"
    fakebin.mkdir(parents=True)
    calls.write_text("")
    _script(fakebin / "id", FAKE_ID)
    _script(fakebin / "apt-get", FAKE_APT_GET)
    for tool in ("env", "true", "chmod"):
        (fakebin / tool).symlink_to(shutil.which(tool))
    if sudo is not None:
        _script(fakebin / "sudo", FAKE_SUDO_OK if sudo == "ok" else FAKE_SUDO_REFUSES)
    if chromium:
        _script(fakebin / "chromium", "#!/bin/sh\n")
    env = {"PATH": str(fakebin), "FAKE_UID": str(uid), "CALLS": str(calls),
           "FAKEBIN": str(fakebin), "HOME": str(tmp_path)}  # fmt: skip
    if apt_fails:
        env["APT_FAILS"] = "1"
    if require:
        env["KREMLIN_REQUIRE_BROWSER"] = "1"
    result = subprocess.run(
        [MAKE, "-s", "-C", str(REPO), target], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    return result, calls.read_text().splitlines()


APT = [
    "apt-get update -qq DEBIAN_FRONTEND=",
    "apt-get install -y -qq chromium fonts-dejavu-core DEBIAN_FRONTEND=noninteractive",
]


@needs_make
@pytest.mark.parametrize("target", ["try-system-deps", "system-deps"])
def test_chromium_on_path_is_used_as_it_is(tmp_path, target):
    result, calls = run_make(tmp_path, target, uid=1000, sudo="refuses", chromium=True)
    assert (result.returncode, result.stdout, calls) == (0, "", []), result.stderr


@needs_make
def test_root_installs_with_apt_get(tmp_path):
    result, calls = run_make(tmp_path, "try-system-deps", uid=0, sudo=None)
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert calls == APT


@needs_make
def test_passwordless_sudo_installs_with_sudo_n(tmp_path):
    result, calls = run_make(tmp_path, "try-system-deps", uid=1000, sudo="ok")
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert calls == [
        "sudo -n true",
        "sudo -n apt-get update -qq",
        APT[0],
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium "
        "fonts-dejavu-core",
        APT[1],
    ]


@needs_make
@pytest.mark.parametrize("sudo", ["refuses", None])
def test_without_root_or_passwordless_sudo_the_tests_go_on_after_one_line(tmp_path, sudo):
    result, calls = run_make(tmp_path, "try-system-deps", uid=1000, sudo=sudo)
    assert result.returncode == 0, result.stderr
    assert not any(c.startswith("apt-get") for c in calls)
    assert calls == (["sudo -n true"] if sudo else [])
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "sudo make system-deps" in lines[0], result.stdout


@needs_make
def test_without_root_a_required_browser_or_system_deps_by_hand_fails(tmp_path):
    required, _ = run_make(tmp_path / "a", "try-system-deps", uid=1000, sudo="refuses",
                           require=True)  # fmt: skip
    by_hand, _ = run_make(tmp_path / "b", "system-deps", uid=1000, sudo="refuses")
    for result in (required, by_hand):
        assert result.returncode != 0
        assert "sudo make system-deps" in result.stdout


@needs_make
def test_a_failed_install_is_one_line_unless_required(tmp_path):
    lenient, calls = run_make(tmp_path / "a", "try-system-deps", uid=0, sudo=None,
                              apt_fails=True)  # fmt: skip
    assert lenient.returncode == 0 and calls == APT[:1]
    assert len(lenient.stdout.splitlines()) == 1 and "could not install" in lenient.stdout
    required, _ = run_make(tmp_path / "b", "try-system-deps", uid=0, sudo=None, apt_fails=True,
                           require=True)  # fmt: skip
    assert required.returncode != 0 and "could not install" in required.stdout


def test_the_test_targets_try_to_get_chromium_first():
    makefile = (REPO / "Makefile").read_text()
    for target in ("test", "test-fast"):
        prerequisites = re.search(rf"^{target}:(.*)$", makefile, re.M).group(1).split()
        assert "try-system-deps" in prerequisites, target
    assert "CHROMIUM_NAMES = " + " ".join(CHROMIUM_NAMES) in makefile


def test_ci_requires_the_browser():
    ci = (REPO / ".ci" / "run").read_text()
    lines = ci.splitlines()
    assert lines.index("export KREMLIN_REQUIRE_BROWSER=1") < lines.index("make test")


# -- the browser marker in pytest ---------------------------------------------------------------

BROWSER_TESTS = """
import pytest

@pytest.mark.browser
def test_marked():
    pass

def test_by_fixture(chromium):
    assert chromium

def test_without_a_browser():
    pass
"""


def start_browser_tests(folder: Path, *, chromium: bool, require: bool) -> subprocess.Popen:
    """BROWSER_TESTS under the project's pytest configuration and conftest, PATH without
    chromium (or with a fake one), in a child pytest."""
    folder.mkdir()
    (folder / "test_tiny_browser.py").write_text(BROWSER_TESTS)
    path = folder / "bin"
    path.mkdir()
    if chromium:
        _script(path / "chromium", "#!/bin/sh\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "KREMLIN_REQ"))}
    env.update(PATH=str(path), PYTHONPATH=str(REPO / "tests"))
    if require:
        env["KREMLIN_REQUIRE_BROWSER"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "-p", "conftest",
         "-p", "no:cacheprovider", "--rootdir", str(folder), str(folder)],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def browser_runs(tmp_path_factory) -> dict[str, tuple[int, str]]:
    """The three runs at once (each child spends seconds importing): exit code and output."""
    home = tmp_path_factory.mktemp("browser-marker")
    # (No folder named "skip": pytest's summary would take it for a skip mark's keyword.)
    cases = {"absent": (False, False), "required": (False, True), "present": (True, True)}
    started = {
        name: start_browser_tests(home / name, chromium=chromium, require=require)
        for name, (chromium, require) in cases.items()
    }
    return {
        name: (process.communicate(timeout=120)[0], process.returncode)[::-1]
        for name, process in started.items()
    }


def test_without_chromium_browser_tests_skip_under_one_summary_line(browser_runs):
    returncode, output = browser_runs["absent"]
    assert returncode == 0, output[-3000:]
    assert "1 passed, 2 skipped" in output, output[-3000:]
    hints = [line for line in output.splitlines() if "sudo make system-deps" in line]
    assert len(hints) == 1 and hints[0].startswith("SKIPPED [2]"), output[-3000:]


def test_without_chromium_a_required_browser_fails_the_run(browser_runs):
    returncode, output = browser_runs["required"]
    assert returncode == 1, output[-3000:]
    assert "1 passed, 2 errors" in output, output[-3000:]
    assert "KREMLIN_REQUIRE_BROWSER=1" in output


def test_with_chromium_on_path_browser_tests_run(browser_runs):
    returncode, output = browser_runs["present"]
    assert returncode == 0, output[-3000:]
    assert "3 passed" in output and "skipped" not in output


# -- packaging --------------------------------------------------------------------------------


def test_license_is_an_spdx_string_with_its_file():
    """setuptools deprecates the `project.license` table (removal announced for 2027-02-18):
    an SPDX expression and `license-files`, which need setuptools >= 77 to build."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] and all(
        list(REPO.glob(pattern)) for pattern in project["license-files"]
    )
    assert "Apache License" in (REPO / "LICENSE").read_text()
    assert "setuptools>=77" in pyproject["build-system"]["requires"]
