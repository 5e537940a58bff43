"""Placeholders for missing protected paths: shared by concurrent calls, gone after the last one,
and swept after a crash. In-process, as the server's user (root here)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from contextd_mcp.sandbox import SandboxLimits, SandboxResult, run_sandboxed
from contextd_mcp.sandbox import _protect
from contextd_mcp.sandbox._protect import JOURNAL_DIR

QUICK = SandboxLimits(timeout_seconds=30)


async def _run(command: str, project: Path, state: Path) -> SandboxResult:
    return await run_sandboxed(command, project, limits=QUICK, state_dir=state)


def test_a_placeholder_outlives_a_call_while_another_still_runs(tmp_path: Path) -> None:
    project, state = tmp_path / "p", tmp_path / "state"
    project.mkdir()
    state.mkdir()
    results: dict[str, SandboxResult] = {}

    async def both() -> None:
        async def short() -> None:
            results["short"] = await _run("true", project, state)

        async def long() -> None:
            # Written after the short call has ended and released its hold.
            results["long"] = await _run("sleep 2; mkdir -p .vscode/x; echo mk=$?; touch .mcp.json/y; echo t=$?", project, state)

        async with anyio.create_task_group() as tg:
            tg.start_soon(long)
            await anyio.sleep(0.3)
            tg.start_soon(short)
            await anyio.sleep(1.0)
            assert (project / ".vscode").is_dir(), "the long call still holds the placeholder"

    anyio.run(both)
    assert results["short"].exit_code == 0
    assert "mk=0" not in results["long"].stdout and "t=0" not in results["long"].stdout, results["long"].stdout
    assert sorted(os.listdir(project)) == [], "placeholders left behind"
    assert _live_in_journal(state) == set()


def _live_in_journal(state: Path) -> set[str]:
    """What this process's journal still lists as created and not yet removed."""
    live: set[str] = set()
    for line in (state / JOURNAL_DIR / f"{os.getpid()}.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if "add" in entry:
            live.add(entry["add"])
        else:
            live.discard(entry["del"])
    return live


def test_a_call_planned_while_another_holds_a_placeholder_holds_it_too(tmp_path: Path) -> None:
    """The race the concurrency queue exposed: a queued call planned while the last running one
    released; it took the other call's placeholder for a real path, which that release then
    removed under it (init: "No such file or directory: .../.bashrc")."""
    project, state = tmp_path / "p", tmp_path / "state"
    project.mkdir()
    state.mkdir()
    first = _protect.prepare(project, [], state)
    second = _protect.prepare(project, [], state)
    assert str(project / ".bashrc") in first.placeholders
    assert set(second.placeholders) == set(first.placeholders)  # .git once per target it covers
    _protect.release(first, state)
    assert (project / ".bashrc").is_dir(), "released while the second call still holds it"
    _protect.release(second, state)
    assert not (project / ".bashrc").exists()
    assert sorted(os.listdir(project)) == []


def test_leftovers_of_a_crashed_server_are_swept_by_the_next_run(tmp_path: Path) -> None:
    project, state = tmp_path / "p", tmp_path / "state"
    project.mkdir()
    (state / JOURNAL_DIR).mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (project / ".idea").mkdir()  # what a crashed server left: an empty placeholder and its journal
    (project / ".claude").mkdir()  # ... and one the host has filled since: kept
    (project / ".claude" / "settings.json").write_text("{}")
    (project / ".vscode").mkdir()  # created, then removed before the crash: must not be touched
    lines = []
    for name in (".idea", ".claude", ".vscode"):
        st = (project / name).stat()
        lines.append(json.dumps({"add": str(project / name), "dev": st.st_dev, "ino": st.st_ino}))
    lines.append(json.dumps({"del": str(project / ".vscode")}))
    (state / JOURNAL_DIR / f"{dead.pid}.jsonl").write_text("\n".join(lines) + "\n")
    result = anyio.run(_run, "ls -A .claude", project, state)
    assert result.stdout == "settings.json\n"
    assert sorted(os.listdir(project)) == [".claude", ".vscode"]
    assert (project / ".claude" / "settings.json").read_text() == "{}"
    assert sorted(os.listdir(state / JOURNAL_DIR)) == [f"{os.getpid()}.jsonl"], "the dead one's journal is gone"
    assert _live_in_journal(state) == set()


def test_extra_protected_paths_must_stay_inside_the_project(tmp_path: Path) -> None:
    for bad in ("../outside", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(ValueError, match="relative to the project"):
            anyio.run(lambda: run_sandboxed("true", tmp_path, limits=QUICK, protect=[bad]))  # noqa: B023 - called at once


def test_a_protected_name_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (tmp_path / "real").mkdir()
    (project / ".vscode").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match=r"\.vscode is a symbolic link"):
        anyio.run(_run, "true", project, tmp_path)
    assert sorted(os.listdir(project)) == [".vscode"], "no placeholder left by the refused call"


def test_holding_lingering_placeholders_again_needs_no_thread(tmp_path: Path) -> None:
    """The event loop plans without blocking only when every missing path has a placeholder to
    hold again; otherwise it makes nothing and leaves the work to `prepare` in a thread."""
    project, state = tmp_path / "p", tmp_path / "state"
    project.mkdir()
    state.mkdir()
    _protect.release(_protect.prepare(project, [], state), state)  # the journal's first sweep
    assert _protect.prepare_nowait(project, [], state) is None, "nothing to hold again: a thread's work"
    assert sorted(os.listdir(project)) == [], "prepare_nowait made something"
    first = _protect.prepare(project, [], state)
    made = set(first.placeholders)
    _protect.release(first, state, linger=60)
    # Another thread (an earlier test's linger sweeper) may hold the lock an instant: then the
    # answer is "not now" with nothing done, and the event loop would ask a thread; retry here.
    again = _eventually(lambda: _protect.prepare_nowait(project, [], state))
    assert set(again.placeholders) == made
    assert str(project / ".vscode") in again.placeholders
    assert _eventually(lambda: _protect.release_nowait(again, state, 60) or None) is True
    assert not _protect.release_nowait(_protect.Plan(), state, 0), "linger 0 may remove: not on the event loop"
    assert (project / ".vscode").is_dir(), "lingering"
    _protect.release_all()
    assert sorted(os.listdir(project)) == []
    assert _live_in_journal(state) == set()


def _eventually(attempt: Any, tries: int = 500) -> Any:
    """The first answer that is not None, retried while the module lock is busy elsewhere."""
    for _ in range(tries):
        answer = attempt()
        if answer is not None:
            return answer
        time.sleep(0.01)
    raise AssertionError(f"still None after {tries} tries")
