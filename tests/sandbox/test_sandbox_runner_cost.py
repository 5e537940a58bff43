"""The server side of a call made cheaper (issue 13, daemon side) keeps its defences, as root
and as the unprivileged user, through the real helper, init and namespaces:

* the daemon's files are resolved once, not per call: a file of theirs made after the first call
  is still hidden from the next one, and a path reached through a symlink that changes between
  calls is hidden where it points now;
* the project watcher starts only once a call outlives its first sample: a call that writes past
  the cap at once and then keeps running is still killed, one that ends sooner is not watched;
* a lingering placeholder directory is listed again only when its ctime moved: one the host
  filled is the host's, whether it was already trusted as empty or filled right after it was made.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from pathlib import Path

from contextd_mcp.sandbox import SandboxLimits, _protect

from .conftest import TEST_USER, Sandbox
from .test_sandbox_budget import configure

FAST = SandboxLimits(timeout_seconds=60)
MiB = 1 << 20


def _own(sandbox: Sandbox, path: Path) -> None:
    if sandbox.kind == "user":
        entry = pwd.getpwnam(TEST_USER)
        subprocess.run(["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(path)], check=True, timeout=30)


READ = "for f in data/tokens.json data/audit.log; do cat $f 2>/dev/null && echo read=$f; done; echo done"


def test_daemon_files_made_after_the_first_call_are_hidden_from_the_next(sandbox: Sandbox) -> None:
    data = sandbox.project / "data"
    data.mkdir()
    _own(sandbox, data)
    hidden = [str(data / "tokens.json"), str(data / "audit.log")]
    first = sandbox.run(READ, limits=FAST, hidden=hidden).result
    assert first.stdout == "done\n", first  # nothing there yet
    (data / "tokens.json").write_text("token-secret\n")
    (data / "audit.log").write_text("audit-secret\n")
    _own(sandbox, data)
    second = sandbox.run(READ + "; echo x >> data/tokens.json; echo write=$?", limits=FAST, hidden=hidden).result
    assert "secret" not in second.stdout and "read=" not in second.stdout, second
    assert "write=0" not in second.stdout, second
    assert (data / "tokens.json").read_text() == "token-secret\n"


def test_a_daemon_path_through_a_symlink_is_hidden_where_it_points_now(sandbox: Sandbox) -> None:
    """The daemon's data path goes through `link`; between two calls the host re-points it. The
    mask must follow to the new target (the target holds the tokens the daemon now writes)."""
    old, new = sandbox.project / "old", sandbox.project / "new"
    for target in (old, new):
        target.mkdir()
        (target / "tokens.json").write_text(f"{target.name}-secret\n")
    link = sandbox.project / "link"
    link.symlink_to(old)
    _own(sandbox, sandbox.project)
    hidden = [str(link / "tokens.json")]
    cat = "cat old/tokens.json new/tokens.json 2>/dev/null; echo done"
    first = sandbox.run(cat, limits=FAST, hidden=hidden).result
    assert "old-secret" not in first.stdout and "new-secret" in first.stdout, first
    link.unlink()
    link.symlink_to(new)
    second = sandbox.run(cat, limits=FAST, hidden=hidden).result
    assert "new-secret" not in second.stdout, second
    assert "old-secret" in second.stdout, second  # no longer the daemon's: visible again


def test_a_call_that_writes_past_the_cap_at_once_is_killed(sandbox: Sandbox) -> None:
    """The watcher starts after its first sampling interval; 200 MiB written in the first
    instants and a command that then waits must still be stopped, as before."""
    configure(sandbox, project_write_bytes=64 * MiB)
    try:
        fill = "dd if=/dev/zero of=big bs=1M count=200 status=none; sync; sleep 20; echo finished"
        run = sandbox.run(fill, limits=SandboxLimits(timeout_seconds=60, max_file_bytes=512 * MiB)).result
        assert run.killed == f"killed: wrote more than {64 * MiB} bytes into the project", run
        assert "finished" not in run.stdout and run.exit_code == 137 and not run.timed_out
        assert run.duration_ms < 15_000, run  # killed by the watcher, long before `sleep 20` ends
        # A short call under the cap is not killed, and a budget change takes effect at once.
        os.unlink(sandbox.project / "big")
        ok = sandbox.run("dd if=/dev/zero of=small bs=1M count=8 status=none && echo fine", limits=FAST).result
        assert ok.stdout == "fine\n" and ok.killed is None, ok
    finally:
        configure(sandbox)  # the defaults again, for the next test on this driver


def test_a_placeholder_trusted_as_empty_and_then_filled_by_the_host_is_the_hosts(sandbox: Sandbox) -> None:
    """A lingering placeholder directory is no longer listed on every call once its ctime is
    old (`_protect.CTIME_TRUST_NS`); the host filling it afterwards must still make it the host's
    path: read-only in the sandbox, shown as the host wrote it, never removed."""
    project = sandbox.project
    assert sandbox.run("true", limits=FAST, linger=60).result.exit_code == 0
    time.sleep(_protect.CTIME_TRUST_NS / 1e9 + 0.2)
    assert sandbox.run("true", limits=FAST, linger=60).result.exit_code == 0  # seen empty, trusted
    (project / ".vscode" / "tasks.json").write_text('{"host": 1}\n')
    run = sandbox.run("cat .vscode/tasks.json; echo x > .vscode/tasks.json; echo task=$?", limits=FAST).result
    assert '{"host": 1}' in run.stdout and "task=0" not in run.stdout, (run.stdout, run.stderr)
    assert (project / ".vscode" / "tasks.json").read_text() == '{"host": 1}\n'
    assert sorted(os.listdir(project)) == [".vscode"], "only the host's own path stays"


def _nowait(project: Path) -> _protect.Plan | None:
    # The placeholder reaper (a thread left by earlier tests in this process) may hold the lock
    # at that instant, and prepare_nowait then rightly answers None; holding the re-entrant lock
    # here leaves None only for what this test is about.
    with _protect._lock:
        return _protect.prepare_nowait(project, (), None)


def test_a_placeholder_filled_within_the_trust_window_is_seen(tmp_path: Path) -> None:
    """Server side only: a fill right after the placeholder was made (same clock tick, or the
    same second on a coarse filesystem) must not be taken for an untouched placeholder."""
    project = tmp_path / "p"
    project.mkdir()
    plan = _protect.prepare(project, (), None)
    vscode = str(project / ".vscode")
    assert vscode in plan.placeholders
    _protect.release(plan, None, 60.0)
    try:
        again = _nowait(project)
        assert again is not None and vscode in again.placeholders  # empty: held again, no thread
        _protect.release(again, None, 60.0)
        (project / ".vscode" / "tasks.json").write_text("{}")
        filled = _nowait(project)
        assert filled is not None
        assert vscode not in filled.placeholders and (vscode, "ro") in filled.mounts
        _protect.release(filled, None, 60.0)
    finally:
        _protect.release_all()
    assert sorted(os.listdir(project)) == [".vscode"]
