"""Server side: validate a request, hand it to the helper, stream output, enforce the timeout."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import socket
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from . import _budget, _probe, _protect
from ._budgetspec import SandboxBudget
from ._diskwatch import SAMPLE_SECONDS, DiskWatch
from ._launcher import Launcher, default_launcher
from ._output import HeadTail
from ._protocol import MAX_COMMAND_BYTES, MAX_REQUEST_BYTES, Request
from ._rootfs import FORBIDDEN_PROJECT_PARENTS
from ._types import SandboxInputError, SandboxLimits, SandboxResult, SandboxUnavailable

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
TIMEOUT_EXIT_CODE = 124  # as GNU timeout(1)
KILL_GRACE_SECONDS = 5.0  # after a kill request, wait this long for the helper to confirm
DRAIN_GRACE_SECONDS = 2.0  # after the status, wait this long for the pipes to reach EOF
_READ_CHUNK = 1 << 20
_FINAL_KEYS = frozenset(("exit", "killed", "error", "stale"))
_F_SETPIPE_SZ = 1031
_DEFAULT_PIPE_BYTES = 1 << 16  # Linux's default pipe capacity (16 pages)


def resolve_dirs(project_dir: Path, working_dir: Path | None) -> tuple[Path, Path]:
    """Both as real paths; the working directory must be inside the project after symlinks."""
    project, workdir, _ = _resolve(project_dir, working_dir)
    return Path(project), Path(workdir)


def _resolve(project_dir: Path, working_dir: Path | None) -> tuple[str, str, tuple[int, int]]:
    """`resolve_dirs` on strings (pathlib's parsing was most of its time, on every call), with
    the project's (st_dev, st_ino) from the same stat that checks it is a directory."""
    try:
        project = os.path.realpath(project_dir, strict=True)
        st = os.stat(project)
    except OSError as exc:
        raise SandboxInputError("working_dir", f"project directory {project_dir} does not exist ({exc.strerror})") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise SandboxInputError("working_dir", f"project directory {project} is not a directory")
    if project == "/":
        raise SandboxInputError("working_dir", "the project directory cannot be / (it would expose the whole host)")
    for parent in FORBIDDEN_PROJECT_PARENTS:
        if _under(project, parent):
            raise SandboxInputError("working_dir", f"the project directory cannot be under {parent}, which the sandbox replaces")
    identity = (st.st_dev, st.st_ino)
    if working_dir is None:
        return project, project, identity
    try:
        workdir = os.path.realpath(os.path.join(project, working_dir), strict=True)
    except OSError as exc:
        raise SandboxInputError("working_dir", f"working directory {working_dir} does not exist ({exc.strerror})") from exc
    if not _under(workdir, project):
        raise SandboxInputError(
            "working_dir",
            f"working directory {working_dir} resolves to {workdir}, which is outside the project {project}"
        )
    if not os.path.isdir(workdir):
        raise SandboxInputError("working_dir", f"working directory {workdir} is not a directory")
    return project, workdir, identity


class _StaleView(Exception):
    """The worker's view of the host's mounts is older than the project's; nothing ran."""


def build_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """A minimal environment plus the caller's explicit variables; nothing from the server's."""
    env = {"PATH": DEFAULT_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", "TERM": "dumb"}
    for name, value in (extra or {}).items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise SandboxInputError("env", f"invalid environment variable name {name!r}")
        if not isinstance(value, str) or "\0" in value:
            raise SandboxInputError("env", f"environment variable {name} must be a string without NUL bytes")
        env[name] = value
    return env


def _check_command(command: str) -> None:
    if not isinstance(command, str):
        raise TypeError("command must be a string")
    if "\0" in command:
        raise ValueError("command must not contain NUL bytes")
    if len(command.encode()) > MAX_COMMAND_BYTES:
        raise ValueError(f"command is longer than {MAX_COMMAND_BYTES} bytes")


def _interpret(messages: list[dict[str, Any]]) -> tuple[int | None, bool]:
    """(exit code or None, killed); raises SandboxUnavailable on a set-up error or no status."""
    for message in messages:
        if "error" in message:
            raise SandboxUnavailable(f"sandbox set-up failed: {message['error']}")
    exit_code = next((m["exit"] for m in messages if "exit" in m), None)
    killed = any(m.get("killed") for m in messages)
    if exit_code is None and not killed:
        raise SandboxUnavailable("the sandbox helper ended without a status; see the server's stderr")
    return exit_code, killed


async def _probe_async() -> None:
    if _probe.cached():
        _probe.probe()  # raises the cached verdict, at once
    else:
        await anyio.to_thread.run_sync(_probe.probe)


# --- run -------------------------------------------------------------------------------------


async def run(
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
    launcher: Launcher | None = None,
) -> SandboxResult:
    _check_command(command)
    project, workdir, project_id = _resolve(project_dir, working_dir)
    extra = _protect.check_extra(protect)
    linger = _protect.check_linger(placeholder_linger_seconds)
    # A mask over the project or one of its parents would hide the project itself.
    masks = [real for real in _real_paths(tuple(hidden)) if not _under(project, real)]
    full_env = build_env(env)
    sandboxed = True
    try:
        await _probe_async()
    except SandboxUnavailable:
        if not allow_unsandboxed:
            raise
        sandboxed = False
    request = Request(
        command=command,
        project=project,
        workdir=workdir,
        env=full_env,
        sandbox=sandboxed,
        memory_bytes=limits.memory_bytes,
        cpu_seconds=limits.cpu_seconds,
        max_processes=limits.max_processes,
        max_file_bytes=limits.max_file_bytes,
        max_open_files=limits.max_open_files,
        project_id=project_id,
    )
    if len(request.encode()) > MAX_REQUEST_BYTES:
        raise ValueError(f"command and environment together exceed {MAX_REQUEST_BYTES} bytes")
    launcher = launcher or default_launcher()
    budget = _budget.current()
    async with budget.call() as cgroup_limits:
        if not sandboxed:
            request = dataclasses.replace(request, cgroup_limits=cgroup_limits)
            return await _execute_fresh_if_stale(request, limits, sandboxed, launcher, budget.budget)
        # In a thread when it makes or removes placeholders: a dozen mkdir/rmdir on a busy disk
        # took 20-40 ms here, and must not stall the server's other calls. Holding lingering ones
        # again is a few lstat calls: done here (a thread hop is 0.15 ms, 2 ms at p95 under load).
        # Shielded: a cancelled call still gets (and later drops) its hold.
        with anyio.CancelScope(shield=True):
            held = _protect.prepare_nowait(Path(project), extra, state_dir)
            plan = held if held is not None else await anyio.to_thread.run_sync(_protect.prepare, Path(project), extra, state_dir)
        try:
            protected = [list(m) for m in plan.mounts]
            request = dataclasses.replace(request, cgroup_limits=cgroup_limits, protected=protected, masked=_existing(masks))
            return await _execute_fresh_if_stale(request, limits, sandboxed, launcher, budget.budget)
        finally:
            with anyio.CancelScope(shield=True):
                if not _protect.release_nowait(plan, state_dir, linger):
                    await anyio.to_thread.run_sync(_protect.release, plan, state_dir, linger)


_REAL_PATHS: dict[tuple[Path, ...], tuple[str, ...]] = {}
_MAX_REAL_PATH_SETS = 8  # one per ShellService; tests make a few


def _real_paths(paths: tuple[Path, ...]) -> tuple[str, ...]:
    """The daemon's own files as real paths. A realpath of five paths was ~70 µs of every call,
    so a set whose every path is already real (no symlink on the way, the usual case) is kept:
    the daemon made these paths and holds the data directory's lock, and a project that contains
    the data directory is refused (ShellRoots resolves it once too). A path reached through a
    symlink is resolved on every call: whoever can change the link moves the file's real path.
    Whether each exists is asked on every call (`_existing`): a tokens file or an audit log made
    after the first call is hidden from the next one."""
    cached = _REAL_PATHS.get(paths)
    if cached is not None:
        return cached
    reals = tuple(os.path.realpath(path) for path in paths)
    if len(_REAL_PATHS) < _MAX_REAL_PATH_SETS and all(real == os.path.abspath(p) for p, real in zip(paths, reals, strict=True)):
        _REAL_PATHS[paths] = reals
    return reals


def _existing(reals: Sequence[str]) -> list[str]:
    """The daemon's files (real paths) that exist; init hides those that lie under one of its binds."""
    return [real for real in reals if os.path.lexists(real)]


def _under(path: str, parent: str) -> bool:
    """Whether the real path ``path`` is ``parent`` or inside it (as Path.is_relative_to, on strings)."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


async def _execute_fresh_if_stale(
    request: Request,
    limits: SandboxLimits,
    sandboxed: bool,
    launcher: Launcher,
    budget: SandboxBudget,
) -> SandboxResult:
    watch = DiskWatch(Path(request.project), budget.project_write_bytes)
    try:
        return await _execute(request.encode(), limits, sandboxed, launcher, watch, budget)
    except _StaleView:
        # A warm worker's copy of the host's mounts predates the project's mount: once more,
        # with a worker forked now (the helper drops its other warm workers too).
        pass
    try:
        payload = dataclasses.replace(request, fresh=True).encode()
        return await _execute(payload, limits, sandboxed, launcher, watch, budget)
    except _StaleView:
        raise SandboxUnavailable(f"the sandbox cannot see the current mount of {request.project}") from None


async def _execute(
    payload: bytes,
    limits: SandboxLimits,
    sandboxed: bool,
    launcher: Launcher,
    watch: DiskWatch,
    budget: SandboxBudget,
) -> SandboxResult:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    status, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        status.setblocking(False)
        started = time.perf_counter()
        try:
            launcher.launch(payload, [theirs.fileno(), out_w, err_w])
        finally:
            theirs.close()
            os.close(out_w)
            os.close(err_w)
        stdout, stderr = HeadTail(limits.max_output_bytes), HeadTail(limits.max_output_bytes)
        messages: list[dict[str, Any]] = []
        kill_requested = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump, out_r, stdout)
            tg.start_soon(_pump, err_r, stderr)
            # Ends at the timeout, or when the project watcher finds the call over its cap.
            watching = anyio.CancelScope()  # the watcher's, if it starts: cancelled in any case
            with anyio.CancelScope(deadline=anyio.current_time() + limits.timeout_seconds) as deadline:
                await _status_then_watch(tg, status, messages, watch, deadline, watching)
            watching.cancel()
            if deadline.cancelled_caught:
                kill_requested = True
                status.shutdown(socket.SHUT_WR)  # init kills the namespace, then says "killed"
                with anyio.move_on_after(KILL_GRACE_SECONDS):
                    await _read_status(status, messages)
            duration_ms = (time.perf_counter() - started) * 1000
            # Everything that held the pipes died with the namespace; this only bounds the wait.
            tg.cancel_scope.deadline = anyio.current_time() + DRAIN_GRACE_SECONDS
    finally:
        status.close()  # if we were cancelled, this EOF is the kill request
        os.close(out_r)
        os.close(err_r)
    if any(m.get("stale") for m in messages):
        raise _StaleView
    # Killed and silent past the grace: still a timeout. Otherwise the helper's word decides.
    exit_code = None if kill_requested and not messages else _interpret(messages)[0]
    timed_out = exit_code is None and not watch.exceeded
    if watch.exceeded:
        exit_code = 128 + 9  # SIGKILL, as init killed it
    return SandboxResult(
        exit_code=TIMEOUT_EXIT_CODE if exit_code is None else exit_code,
        stdout=stdout.text(),
        stderr=stderr.text(),
        duration_ms=duration_ms,
        timed_out=timed_out,
        truncated=stdout.truncated or stderr.truncated,
        sandboxed=sandboxed,
        killed=watch.reason() if watch.exceeded else _budget.memory_kill(messages, budget),
    )


async def _status_then_watch(
    tg: anyio.abc.TaskGroup,
    status: socket.socket,
    messages: list[dict[str, Any]],
    watch: DiskWatch,
    kill: anyio.CancelScope,
    scope: anyio.CancelScope,
) -> None:
    """Read the status; the project watcher (in `scope`) starts only if the call outlives its
    first sample (most calls end sooner, and a task started and cancelled on every call cost
    ~0.1 ms). Its first sample is then taken at once: the cadence of a watcher started with the call."""
    with anyio.move_on_after(SAMPLE_SECONDS):
        await _read_status(status, messages)
        return
    # _read_status appends a message only after its recv: cancelled, it lost nothing.
    _start_watch(tg, watch, kill, scope)
    await _read_status(status, messages)


def _start_watch(tg: anyio.abc.TaskGroup, watch: DiskWatch, kill: anyio.CancelScope, scope: anyio.CancelScope) -> None:
    async def run() -> None:
        with scope:  # cancelled before it starts (the call ended meanwhile): never samples
            await watch.watch(kill, first_sample_after=0.0)

    tg.start_soon(run)


def _grow_pipe(fd: int) -> None:
    """1 MiB pipes cut the number of wake-ups when a command floods its output."""
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _READ_CHUNK)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size for this user: keep the default


async def _pump(fd: int, sink: HeadTail) -> None:
    grown = False
    while True:
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            await anyio.wait_readable(fd)
            continue
        if not chunk:
            return
        if not grown and len(chunk) >= _DEFAULT_PIPE_BYTES:
            # A full default pipe: a flood. Grown only now, as growing both pipes of every call
            # up front cost ~60 µs (the kernel allocates the larger ring), for output most calls never make.
            _grow_pipe(fd)
            grown = True
        sink.feed(chunk)
        # A flood is always readable: yield so the timeout and the other stream still run.
        await anyio.lowlevel.checkpoint()


async def _read_status(status: socket.socket, messages: list[dict[str, Any]]) -> None:
    """Until a final message (init sends it once its namespace is empty) or EOF."""
    while True:
        try:
            data = status.recv(65536)
        except BlockingIOError:
            await anyio.wait_readable(status)
            continue
        if not data:
            return
        messages.append(json.loads(data))
        if _FINAL_KEYS & messages[-1].keys():
            return
