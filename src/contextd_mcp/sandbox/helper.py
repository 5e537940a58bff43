"""Child side of the sandbox: `python -P -m contextd_mcp.sandbox.helper --zygote FD`.

The zygote is started once per server process. It is single-threaded and never runs a command
itself: it keeps POOL_SIZE sandbox workers forked ahead of time (see `_worker`: namespaces made
and the root built while idle) and hands each request from the server to the oldest one, then
forks a replacement. A request the operator allowed to run unsandboxed goes to a fresh `_unsafe`
child instead. It exits when the server closes the socket (or dies); idle workers follow.

`--once FD` serves exactly one request with no pool: a cold helper per command, kept only so the
benchmark can compare it.

Only the standard library and pyseccomp are imported here: this process forks for every command,
and whatever it imports is copied into each fork.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import NoReturn

from . import _libc as c
from . import _unsafe, _worker
from ._cgroup import WorkerGroup, ZygoteCgroups, join
from ._protocol import FDS_PER_REQUEST, MAX_REQUEST_BYTES

POOL_SIZE = 2  # enough for back-to-back commands on 2 cores; more only holds more namespaces
# A warm worker holds a copy of the host's mounts as they were when it warmed up. Where the host's
# mounts propagate (shared /, the systemd default) the copy follows them; where they do not, the
# project root is still checked exactly (see _rootfs.StaleView), and this bounds how old a view
# of mounts *inside* the project can be.
MAX_WARM_SECONDS = 60.0
# After a sandbox ends, wait this long for the next request before warming a replacement, as
# long as a warm worker is left: a caller running commands back to back sends the next one
# within a few ms, and it should not wait behind the zygote's fork and cgroup set-up.
REFILL_QUIET_SECONDS = 0.05


def _compile_seccomp() -> tuple[bytes | None, str | None]:
    try:
        from ._seccomp import compile_program  # pyseccomp is optional here

        return compile_program(), None
    except ImportError:
        return None, "pyseccomp is not installed (pip install pyseccomp)"
    except RuntimeError as exc:  # pyseccomp: "Unable to find libseccomp"
        return None, (
            f"{exc}: install libseccomp 2.5+ (Debian/Ubuntu: apt-get install libseccomp2; "
            "Fedora: dnf install libseccomp)"
        )
    except OSError as exc:
        return None, f"cannot build the seccomp filter: {exc}"


def _fork(child: Callable[[], NoReturn], *keep: int) -> None:
    """Fork; the child keeps only stdio and `keep`, so it holds no other request's sockets."""
    if os.fork() == 0:
        try:
            low = 3
            for fd in sorted(keep):
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, os.sysconf("SC_OPEN_MAX"))
            child()
        finally:
            os._exit(1)


class Zygote:
    """Pre-forked workers in `_pool`; workers running a command in `_busy`.

    Warming a worker costs ~10 ms of CPU and takes the kernel's mount lock, so it is done when
    no command is starting: after a running sandbox ends (its socket reaches EOF), or at once
    when the pool is empty.
    """

    def __init__(self, pool_size: int) -> None:
        self._pool_size = pool_size
        self._pool: deque[tuple[float, socket.socket]] = deque()  # (warmed since, socket)
        self._busy: list[socket.socket] = []
        self._seccomp, self._seccomp_error = _compile_seccomp()
        # Each worker's own cgroup (see `_cgroup`), joined while it warms up; None: no cgroups.
        self._cgroups = ZygoteCgroups.from_env()
        self._groups: dict[socket.socket, WorkerGroup] = {}

    def _new_group(self) -> tuple[WorkerGroup | None, str | None]:
        if self._cgroups is None:
            return None, None
        try:
            return self._cgroups.create(), None
        except OSError as exc:
            return None, f"cannot create the call's cgroup ({exc}); the budget cannot be enforced"

    def _new_worker(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        group, error = self._new_group()
        seccomp, seccomp_error = (None, error) if error else (self._seccomp, self._seccomp_error)

        def worker() -> NoReturn:
            events_fd = None
            if group is not None:
                join(group.procs_fds, new_namespace=False)  # _worker unshares the cgroup namespace
                events_fd = group.events_fd
            _worker.run(theirs, seccomp, seccomp_error, events_fd)

        with theirs:
            _fork(worker, theirs.fileno(), *(group.inherited() if group else []))
        if group is not None:
            group.close_fds()
            self._groups[ours] = group
        return ours

    def _retire(self, ws: socket.socket) -> None:
        """Close a worker's socket (it exits, or has); its cgroup goes once empty."""
        ws.close()
        group = self._groups.pop(ws, None)
        if group is not None and self._cgroups is not None:
            self._cgroups.retire(group)

    def refill(self) -> None:
        target = self._pool_size if not self._busy else min(1, self._pool_size)
        while len(self._pool) < target:
            self._pool.append((time.monotonic(), self._new_worker()))

    def _drop(self, older_than: float) -> None:
        """Close pooled workers warmed before `older_than`; each sees EOF and exits."""
        while self._pool and self._pool[0][0] < older_than:
            self._retire(self._pool.popleft()[1])

    def wait(self, ctl: socket.socket) -> None:
        """Block until a request is ready on `ctl`; meanwhile retire finished workers, replace
        workers warmed too long ago, and refill the pool (once REFILL_QUIET_SECONDS passed
        without a request since the last sandbox ended, or at once if no warm worker is left)."""
        quiet_until = 0.0
        while True:
            now = time.monotonic()
            deadlines = []
            if self._pool:
                deadlines.append(self._pool[0][0] + MAX_WARM_SECONDS)
                if quiet_until > now:
                    deadlines.append(quiet_until)
            retry = self._cgroups.sweep() if self._cgroups is not None else None
            if retry is not None:
                deadlines.append(now + retry)
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            ready = select.select([ctl, *self._busy], [], [], timeout)[0]
            for ws in ready:
                if ws is not ctl:  # only EOF ever arrives here: that sandbox is finished
                    self._busy.remove(ws)
                    self._retire(ws)
                    quiet_until = time.monotonic() + REFILL_QUIET_SECONDS
            if ctl in ready:
                return
            self._drop(older_than=time.monotonic() - MAX_WARM_SECONDS)
            if not self._pool or time.monotonic() >= quiet_until:
                self.refill()

    def handle(self, payload: bytes, fds: list[int]) -> None:
        try:
            request = json.loads(payload)
            if request.get("fresh"):
                self._drop(older_than=time.monotonic())  # they all share the stale view
            if request.get("sandbox", True):
                self._dispatch(payload, fds, request.get("cgroup_limits"))
            else:
                _fork(lambda: _unsafe.run(payload, fds), *fds)  # operator's opt-in: rlimits only
        finally:
            for fd in fds:
                os.close(fd)

    def _dispatch(self, payload: bytes, fds: list[int], limits: dict[str, float] | None) -> None:
        for _ in range(3):  # a pooled worker may have died while it waited
            ws = self._pool.popleft()[1] if self._pool else self._new_worker()
            group = self._groups.get(ws)
            try:
                if group is not None and self._cgroups is not None:
                    self._cgroups.dispatching(group, limits)
                socket.send_fds(ws, [payload], fds)
            except OSError:
                self._retire(ws)
                continue
            self._busy.append(ws)
            return


def _receive(ctl: socket.socket) -> tuple[bytes, list[int]] | None:
    while True:
        payload, fds, _, _ = socket.recv_fds(ctl, MAX_REQUEST_BYTES, FDS_PER_REQUEST, socket.MSG_CMSG_CLOEXEC)
        if not payload and not fds:
            return None  # the server closed its end, or died
        if len(fds) == FDS_PER_REQUEST:
            return payload, fds
        for fd in fds:  # malformed: drop it (its status socket closes, so the sender notices)
            os.close(fd)


def serve(ctl: socket.socket, *, once: bool) -> None:
    # Each worker exits once it has forked its namespace's init; as subreaper we adopt the inits,
    # and SIG_IGN lets the kernel reap them (and the workers) without waitpid.
    c.prctl(c.PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    zygote = Zygote(pool_size=0 if once else POOL_SIZE)
    zygote.refill()
    while True:
        zygote.wait(ctl)
        request = _receive(ctl)
        if request is None:
            return
        zygote.handle(*request)
        if once:
            return


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("--zygote", "--once"):
        print("usage: python -m contextd_mcp.sandbox.helper --zygote|--once FD", file=sys.stderr)
        return 2
    serve(socket.socket(fileno=int(argv[1])), once=argv[0] == "--once")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
