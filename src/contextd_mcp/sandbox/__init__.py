"""Run a shell command so that it can touch nothing but its project. Knows nothing of MCP.

    probe()                      raises SandboxUnavailable (cached) if the host cannot sandbox
    configure_budget(SandboxBudget(...))   the budget of all calls of this process (see below)
    budget_status() -> dict      cgroup mode v2/v1/none (and why none), the budget, calls running
    await run_sandboxed(cmd, project_dir, working_dir=None, env=None,
                        limits=SandboxLimits(), allow_unsandboxed=False) -> SandboxResult

The command runs as `/bin/bash -c cmd` in new user, mount, pid, net, ipc, uts and cgroup
namespaces, in a root that holds only read-only system directories, an allowlisted /etc, a
minimal /dev, a private /tmp and the project (read-write, at its real path); with every
capability dropped, no_new_privs, rlimits and a seccomp filter (see `helper`, `_rootfs`,
`_seccomp`). It has no network at all: its network namespace is empty and only AF_UNIX sockets
may be created. The namespace's init reports the command's status only after it has killed
and reaped every other process of the namespace, so nothing outlives a run; on timeout or
cancellation (the server shuts down its side of the status socket, or dies) it does the same at
once.

What a command leaves behind must not act on the host later (DESIGN.md §6). Init, before it
spawns the command: binds the paths that host programs execute or trust (`_protect.PROTECTED_PATHS`:
`.git/config`, hooks, `.vscode/`, `.mcp.json`, shell rc files, ...) read-only, with an empty
read-only placeholder for each missing one (created by the server, kept for the next call for a
few seconds, then removed, see `_protect`);
masks the caller's own files (`hidden`) wherever a bind would show them; resets every signal
disposition and the signal mask, sets umask 022 and passes no fd but 0-2. The seccomp filter
refuses any mode with a setuid/setgid bit (`_seccomp`), so nothing on disk can carry one.

Launch strategy, chosen by measurement. A cold helper per command pays a Python start-up plus
the pyseccomp import on every call (~90 ms); a Python fork costs ~1 ms here and a namespace's
mounts ~3-6 ms. So the server starts one helper (the zygote, `helper`) on first use; it keeps two
workers whose namespaces and read-only root are already built (`_worker`), and a command only
pays for /tmp, the project bind, seccomp and the spawn of bash. bench/bench_sandbox.py, 2 cores,
`true`, rows interleaved, median / p95 in ms (this machine was shared with other work, hence
two runs):

                                          100 runs, load ~1    200 runs, load ~9
    plain: bash -c true (subprocess)          3.0 / 5.0            9.3 / 21.8
    bwrap --unshare-all ... true              6.3 / 11.8          20.5 / 51.1
    bwrap --unshare-all ... bash -c true      6.4 / 10.2          20.2 / 49.5
    cold helper per command (--once)         93   / 113          251   / 458
    zygote with warm workers (default)        5.3 / 8.7           15.4 / 32.1

The warm-up (~8 ms of CPU per command, in Python) is only hidden while a core is idle: with the
machine saturated (load ~12) and commands strictly back to back, the zygote measured 39 ms
median against bwrap's 12 ms; 50 ms apart, 19 ms.

Those figures predate the protections above, which first cost a call on a fresh `git init`
project 7.5 ms (`run_sandboxed("true")` 14.8 ms against 7.3): making and removing a placeholder
for each of the ~14 missing protected paths (one mkdir + rmdir is 0.28 ms on this ext4) and
unmounting the host's tree after the project bind (an RCU grace period, 1.5-5 ms). Now an unused
placeholder lingers (`placeholder_linger_seconds`; the daemon: 5 s) and the next call holds it
again; the project is cloned out of a detached copy of the host's tree, so the old root is
unmounted while the worker waits (`_rootfs._clone_host`); and after a sandbox ends the zygote
waits REFILL_QUIET_SECONDS for a next request before it warms a replacement. Figures:
BENCHMARKS.md, "Session 4: sandbox overhead". The zygote lends each warm worker's request socket
to the server (SCM_RIGHTS), which sends a request straight to it: the zygote is off the call's
path (one process wake-up fewer; "Session 6" there). The server tells the zygote the project of
its last call (only when it changes); the workers warmed after that also make that project's
mounts while they wait: /tmp, the project bind, the protected binds and the masks
(`_rootfs.prepare_project`). The call's own plan still decides: init checks each bind by mount
id and inode and binds again whatever the host replaced meanwhile (the kernel detaches a bind
whose file is renamed over or unlinked), and undoes the lot for a call on another project
("Session 7" there).

One budget bounds all sandboxed work of the process (`_budget`, `_cgroup`, `_diskwatch`): each
call runs in its own cgroup (memory.max counting its /tmp, pids.max, cpu.max; made by the
zygote and joined by the worker while it warms up) under a parent whose ceiling bounds all calls
together; at most max_concurrent calls run, the others wait up to
queue_seconds and then get SandboxBusy; a watcher kills a call that grew the project's
filesystem, and its own changed files, by more than project_write_bytes (result.killed says why). Without cgroups (not
root on cgroup v1, no delegated v2 subtree) budget_status() says why, and the per-process
rlimits of SandboxLimits remain.

If the host cannot sandbox, run_sandboxed raises SandboxUnavailable before running anything,
unless the operator allowed unsandboxed runs (allow_unsandboxed=True): then the command runs as
the server's user with rlimits and the timeout only, best-effort clean-up of what it leaves, and
`sandboxed=False` in the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._budgetspec import SandboxBudget
from ._types import SandboxInputError, SandboxLimits, SandboxResult, SandboxUnavailable

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "SandboxBudget",
    "SandboxInputError",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailable",
    "budget_status",
    "configure_budget",
    "probe",
    "release_placeholders",
    "run_sandboxed",
]

# The runner (and anyio) is imported on first use: the helper process is started as
# `-m contextd_mcp.sandbox.helper`, which imports this package, and needs none of it.


def probe() -> None:
    """Raise SandboxUnavailable, with the reason and the fix, if this host cannot sandbox."""
    from ._probe import probe as _probe

    _probe()


def configure_budget(budget: SandboxBudget) -> None:
    """Set the budget of every later call of this process; a new ceiling applies at once."""
    from ._budget import configure

    configure(budget)


def budget_status() -> dict[str, object]:
    """Sets the cgroups up if not yet done (logging once why not, if they cannot be used)."""
    from ._budget import status

    return status()


async def run_sandboxed(
    command: str,
    project_dir: Path,
    working_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    limits: SandboxLimits = SandboxLimits(),  # noqa: B008 - frozen, so sharing it is safe
    allow_unsandboxed: bool = False,
    *,
    hidden: Sequence[Path] = (),
    protect: Sequence[str] = (),
    state_dir: Path | None = None,
    placeholder_linger_seconds: float = 0.0,
) -> SandboxResult:
    """Run `bash -c command` in the sandbox, cwd `working_dir` (default: the project).

    `hidden`: the caller's own files (data directory, socket, tokens, audit log, model cache),
    masked wherever they would be visible inside. `protect`: relative paths read-only in
    addition to PROTECTED_PATHS (a trailing "/" for a directory). `state_dir`: where
    placeholders are journaled, so that a crash's leftovers are removed by the next run.
    `placeholder_linger_seconds`: how long an unused placeholder stays for the next call on the
    project to hold again (0: removed when the last call using it ends; see `_protect`).

    Raises ValueError for a bad request (working_dir outside the project after symlinks, an
    invalid environment variable name, ...) and SandboxUnavailable when the host cannot sandbox
    and `allow_unsandboxed` is False (SandboxBusy, a subclass, when every slot stayed taken).
    The command's own failure is a result, never an exception.
    """
    from .runner import run

    return await run(
        command,
        project_dir,
        working_dir,
        env,
        limits,
        allow_unsandboxed,
        hidden=hidden,
        protect=protect,
        state_dir=state_dir,
        placeholder_linger_seconds=placeholder_linger_seconds,
    )


def release_placeholders() -> None:
    """Remove the lingering placeholders now (the server's shutdown; also run at exit)."""
    from ._protect import release_all

    release_all()
