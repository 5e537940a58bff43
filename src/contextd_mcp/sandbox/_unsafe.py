"""Operator-allowed unsandboxed runs: the command runs as the server's user, on the host.

Only rlimits, the timeout and a best-effort clean-up apply: this process is the command's
subreaper, so what the command leaves behind is re-parented here and killed when it ends.
RLIMIT_NPROC is not set: outside a fresh user namespace it counts every process of the user.
"""

from __future__ import annotations

import os
import resource
import select
import signal
import socket
from typing import NoReturn

from . import _libc as c
from ._protocol import Request
from ._worker import describe, send

_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGCHLD)


def run(payload: bytes, fds: list[int]) -> NoReturn:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    status_fd, out_fd, err_fd = fds
    status = socket.socket(fileno=status_fd)
    try:
        req = Request.decode(payload)
        c.prctl(c.PR_SET_CHILD_SUBREAPER, 1)
        pid = os.fork()
        if pid == 0:
            _exec(req, status, out_fd, err_fd)
        os.close(out_fd)
        os.close(err_fd)
    except BaseException as exc:  # noqa: BLE001 - any failure here is reported, not raised
        send(status, error=describe(exc))
        os._exit(1)
    killed = _watch(pid, status)
    _, wait_status = os.waitpid(pid, 0)
    _kill_leftovers(pid)
    if killed:
        send(status, killed=True)
    else:
        code = os.waitstatus_to_exitcode(wait_status)
        send(status, exit=128 - code if code < 0 else code)
    os._exit(0)


def _exec(req: Request, status: socket.socket, out_fd: int, err_fd: int) -> NoReturn:
    try:
        os.setsid()
        for sig in _RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.chdir(req.workdir)
        for which, value in (
            (resource.RLIMIT_AS, req.memory_bytes),
            (resource.RLIMIT_FSIZE, req.max_file_bytes),
            (resource.RLIMIT_NOFILE, req.max_open_files),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(which, (value, value))
        resource.setrlimit(resource.RLIMIT_CPU, (req.cpu_seconds, req.cpu_seconds + 1))
        if req.command is None:
            os._exit(0)
        os.execve("/bin/bash", ["bash", "-c", req.command], req.env)
    except BaseException as exc:  # noqa: BLE001 - any failure here is reported, not raised
        send(status, error=f"starting the command: {describe(exc)}")
    os._exit(127)


def _watch(pid: int, status: socket.socket) -> bool:
    """Wait for the command to exit; SIGKILL it if the server asks (readable or EOF)."""
    pidfd = os.pidfd_open(pid)
    try:
        if pidfd in select.select([pidfd, status.fileno()], [], [])[0]:
            return False
        os.kill(pid, signal.SIGKILL)  # still our unreaped child: no pid-reuse race
        return True
    finally:
        os.close(pidfd)


def _kill_leftovers(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    for _ in range(100):  # killing a child re-parents its children to us: repeat until none
        try:
            with open(f"/proc/self/task/{os.getpid()}/children") as f:
                children = [int(p) for p in f.read().split()]
        except OSError:
            return
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
