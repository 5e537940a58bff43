"""Placeholders that linger: an unused one stays for the next call (held again, not re-made),
goes after its linger, and while it lingers it is an ordinary empty path on the host that the
sandbox still keeps read-only. Run as root and as the unprivileged `contextd-test`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from contextd_mcp.sandbox import SandboxLimits
from tests.sandbox.conftest import Sandbox

FAST = SandboxLimits(timeout_seconds=30)
# What an empty directory that is no repository lacks: every protected name, `.git` included.
SOME_PLACEHOLDERS = (".git", ".vscode", ".claude", ".mcp.json", ".bashrc")
PLANT = (
    "echo '{}' > .vscode/tasks.json; echo vscode=$?; mkdir .claude/x; echo claude=$?;"
    " echo x > .mcp.json/y; echo mcp=$?; rmdir .idea; echo rmdir=$?; mv .bashrc gone; echo mv=$?;"
    " git init -q .; echo init=$?; find .vscode .claude .git -mindepth 1 | wc -l"
)
PLANTED = ("vscode=0", "claude=0", "mcp=0", "rmdir=0", "mv=0", "init=0")


def _inodes(project: Path) -> dict[str, int]:
    return {name: (project / name).lstat().st_ino for name in SOME_PLACEHOLDERS}


def _empty_dirs(project: Path) -> bool:
    return all((project / n).is_dir() and not any((project / n).iterdir()) for n in SOME_PLACEHOLDERS)


def test_a_lingering_placeholder_is_held_again_and_stays_read_only(sandbox: Sandbox) -> None:
    project = sandbox.project
    assert sandbox.run("true", limits=FAST, linger=60).result.exit_code == 0
    # Between calls the host sees empty directories, the ones the call made.
    assert _empty_dirs(project), sorted(os.listdir(project))
    made = _inodes(project)
    run = sandbox.run(PLANT, limits=FAST, linger=60).result
    assert not any(step in run.stdout.split() for step in PLANTED), (run.stdout, run.stderr)
    assert run.stdout.split()[-1] == "0", run.stdout  # nothing got into them
    assert _inodes(project) == made, "held again, not made anew"
    assert _empty_dirs(project), "the command planted into a lingering placeholder"
    # A call with no linger drops the last hold: everything goes at once.
    assert sandbox.run("true", limits=FAST).result.exit_code == 0
    assert sorted(os.listdir(project)) == [], "placeholders left behind"


def test_a_lingering_placeholder_goes_after_its_linger(sandbox: Sandbox) -> None:
    project = sandbox.project
    assert sandbox.run("true", limits=FAST, linger=1.0).result.exit_code == 0
    assert _empty_dirs(project)
    deadline = time.monotonic() + 10
    while os.listdir(project) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(os.listdir(project)) == [], "still there well after the linger"


def test_a_lingering_placeholder_the_host_changed_is_the_hosts(sandbox: Sandbox) -> None:
    """The host fills one lingering placeholder and replaces another: the next call sees the
    host's content, read-only, and neither is removed afterwards; the untouched ones are."""
    project = sandbox.project
    assert sandbox.run("true", limits=FAST, linger=60).result.exit_code == 0
    (project / ".vscode" / "tasks.json").write_text('{"host": 1}\n')
    (project / ".mcp.json").rmdir()
    (project / ".mcp.json").write_text('{"servers": {}}\n')
    run = sandbox.run(
        "cat .vscode/tasks.json .mcp.json; echo x > .vscode/tasks.json; echo task=$?; echo x > .mcp.json; echo mcp=$?",
        limits=FAST,
    ).result
    assert '{"host": 1}' in run.stdout and '{"servers": {}}' in run.stdout, (run.stdout, run.stderr)
    assert "task=0" not in run.stdout and "mcp=0" not in run.stdout, run.stdout
    assert (project / ".vscode" / "tasks.json").read_text() == '{"host": 1}\n'
    assert (project / ".mcp.json").read_text() == '{"servers": {}}\n'
    assert sorted(os.listdir(project)) == [".mcp.json", ".vscode"], "only the host's own paths stay"
