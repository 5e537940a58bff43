"""A warm worker prepares the last project's mounts while it waits (issue 13, the overhead goal):
the call's own plan must still decide. Since Linux 3.18 the kernel detaches a bind in every
other mount namespace when the host renames over or unlinks the file under it, so a bind made
ahead can silently stop protecting. These run a real sandbox init (`_prepared_child.py`: real
namespaces and mounts, as root) that prepares, lets the host change the project, then takes
the call and tries to write what must stay read-only. The end-to-end guard through the warm
pool is test_sandbox_host_effects.py::test_protected_paths_the_host_changes_between_calls_are_protected
(and ..._after_a_worker_prepared_them, with lingering placeholders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.sandbox import _protect
from contextd_mcp.sandbox._protocol import PREPARE_PREFIX, Request, prepare_message

CHILD = Path(__file__).with_name("_prepared_child.py")
TMP_BYTES = 16 << 20
PID_MAX = 302

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the child maps only root here; the suite runs as root")


def _repo(path: Path) -> Path:
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True, timeout=30)
    (path / "tracked.txt").write_text("host\n")
    return path


def _spec(project: Path, plan: _protect.Plan, masked: tuple[Path, ...] = ()) -> dict[str, Any]:
    st = os.stat(project)
    return {"project": str(project), "project_id": [st.st_dev, st.st_ino], "tmp_bytes": TMP_BYTES,
            "pid_max": PID_MAX, "protected": plan.mounts, "masked": [str(m) for m in masked]}  # fmt: skip


class _Init:
    def __init__(self, hint: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), json.dumps(hint)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        answer: dict[str, Any] = json.loads(line) if line else {"error": f"exit {self.proc.wait(timeout=30)}"}
        assert "error" not in answer, answer
        return answer

    def call(self, spec: dict[str, Any], writes: list[Path], reads: tuple[Path, ...] = ()) -> dict[str, Any]:
        assert self.proc.stdin is not None
        paths = {"writes": [str(p) for p in writes], "reads": [str(p) for p in reads]}
        self.proc.stdin.write(json.dumps({**spec, **paths}) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        assert self.proc.wait(timeout=30) == 0
        return answer


def test_binds_the_host_replaced_after_the_worker_prepared_are_made_again(tmp_path: Path) -> None:
    project = _repo(tmp_path / "p")
    hooks = project / ".git" / "hooks"
    (hooks / "x").write_text("#!/bin/sh\n")
    plan = _protect.prepare(project, (), None)  # placeholders for .mcp.json, .gitmodules, ...
    try:
        init = _Init(_spec(project, plan))
        assert {str(project / ".mcp.json"), str(project / ".git/config"), str(hooks)} <= set(init.ready["prepared"])
        # The host, between the worker's preparation and the call:
        subprocess.run(["git", "-C", str(project), "config", "user.name", "Renamed"], check=True, timeout=30)
        os.rmdir(project / ".mcp.json")  # the placeholder went (its linger ended) ...
        (project / ".mcp.json").write_text('{"host": true}\n')  # ... and the host made the file
        os.rename(hooks, project / ".git" / "hooks.old")
        hooks.mkdir()
        (hooks / "x").write_text("#!/bin/sh\n")
        before = {p: p.read_text() for p in (project / ".git/config", project / ".mcp.json", hooks / "x")}
        call_plan = _protect.prepare(project, (), None)
        try:
            found = init.call(_spec(project, call_plan), [*before, hooks / "new"])
        finally:
            _protect.release(call_plan)
    finally:
        _protect.release(plan)
    assert found["used"] is True, found
    changed = set(found["changed"])
    assert {str(project / ".git/config"), str(project / ".mcp.json"), str(hooks)} <= changed, changed
    assert str(project / ".gitmodules") not in changed, "an unchanged prepared bind is reused"
    assert all(result != "written" for result in found["writes"].values()), found["writes"]
    assert {p: p.read_text() for p in before} == before
    assert not (hooks / "new").exists()


def test_a_daemon_file_the_host_replaced_after_the_worker_masked_it_stays_hidden(tmp_path: Path) -> None:
    """The daemon rewrites its tokens file by rename: a mask made ahead is detached with it."""
    project = _repo(tmp_path / "p")
    data = project / "data"
    data.mkdir()
    tokens = data / "tokens.json"
    tokens.write_text("old-secret\n")
    plan = _protect.prepare(project, (), None)
    try:
        init = _Init(_spec(project, plan, (tokens, data / "audit.log")))
        (data / "tokens.new").write_text("new-secret\n")
        os.rename(data / "tokens.new", tokens)
        (data / "audit.log").write_text("appeared after the worker prepared\n")
        found = init.call(_spec(project, plan, (tokens, data / "audit.log")), [tokens], (tokens, data / "audit.log"))
    finally:
        _protect.release(plan)
    assert found["used"] is True, found
    assert all("secret" not in text and "appeared" not in text for text in found["reads"].values()), found["reads"]
    assert found["writes"][str(tokens)] != "written"
    assert tokens.read_text() == "new-secret\n"


def test_a_call_for_another_project_undoes_the_prepared_one(tmp_path: Path) -> None:
    prepared_for, called_for = _repo(tmp_path / "a"), _repo(tmp_path / "b")
    plan_a = _protect.prepare(prepared_for, (), None)
    plan_b = _protect.prepare(called_for, (), None)
    try:
        found = _Init(_spec(prepared_for, plan_a)).call(
            _spec(called_for, plan_b),
            [prepared_for / "tracked.txt", called_for / "tracked.txt", called_for / ".git/config"],
        )
    finally:
        _protect.release(plan_a)
        _protect.release(plan_b)
    assert found["used"] is False, found
    writes = found["writes"]
    assert writes[str(called_for / "tracked.txt")] == "written", "the call's own project is writable"
    assert writes[str(prepared_for / "tracked.txt")] != "written", "the prepared project is gone"
    assert writes[str(called_for / ".git/config")] != "written"
    assert (prepared_for / "tracked.txt").read_text() == "host\n"


def test_the_hint_carries_the_mounts_and_not_the_command() -> None:
    """What the server tells the zygote: the request's mount parts, decodable by the worker,
    the same for a call in a subdirectory (so it does not wake the zygote again)."""
    base = {"command": "echo secret-command", "project": "/srv/p", "workdir": "/srv/p", "env": {"TOKEN": "t"},
            "project_id": [1, 2], "max_file_bytes": 5, "max_processes": 7, "protected": [["/srv/p/.mcp.json", "ro"]],
            "masked": ["/srv/p/data"], "sandbox": True}  # fmt: skip
    hint = prepare_message(base)
    assert hint.startswith(PREPARE_PREFIX)
    decoded = Request.decode(hint[len(PREPARE_PREFIX) :])
    assert decoded.command is None and decoded.env == {}
    assert (decoded.project, decoded.project_id, decoded.max_file_bytes, decoded.max_processes) == ("/srv/p", (1, 2), 5, 7)
    assert decoded.protected == [["/srv/p/.mcp.json", "ro"]] and decoded.masked == ["/srv/p/data"]
    assert prepare_message({**base, "workdir": "/srv/p/sub", "command": "ls"}) == hint
    assert prepare_message({**base, "project": "/srv/q"}) != hint
