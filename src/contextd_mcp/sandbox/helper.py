"""Child side of the sandbox: `python -P -m contextd_mcp.sandbox.helper --zygote FD`.

The zygote is started once per server process. It is single-threaded and never runs a command
itself: it keeps POOL_SIZE sandbox workers forked ahead of time (see `_worker`: namespaces made
and the root built while idle) and lends each one to the server as soon as it is warm: it sends
the worker's request socket back over the control socket (SCM_RIGHTS), and the server sends its
next request straight to the worker, so a call wakes one process fewer (the zygote is not on
its path). The zygote keeps each worker's lifeline (a second socketpair), on which nothing is
ever sent: its EOF says the worker is gone (its sandbox is over), and shutting down the
zygote's side makes an idle worker exit. A request the server sends to the zygote itself (no lent worker left, a
`fresh` retry, changed cgroup limits) goes to a worker of its own, as before, then it forks a
replacement. A request the operator allowed to run unsandboxed goes to a fresh `_unsafe`
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
from dataclasses import dataclass
from typing import NoReturn

from . import _libc as c
from . import _unsafe, _worker
from ._cgroup import WorkerGroup, ZygoteCgroups, join
from ._protocol import FDS_PER_REQUEST, MAX_REQUEST_BYTES, MAX_WARM_SECONDS, PREPARE_PREFIX, lent_message

POOL_SIZE = 2  # enough for back-to-back commands on 2 cores; more only holds more namespaces
__all__ = ["MAX_WARM_SECONDS", "POOL_SIZE", "Zygote", "main", "serve"]
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


@dataclass
class _Worker:
    ws: socket.socket | None  # the request end; None once lent to the server
    life: socket.socket  # the lifeline: EOF when the worker is gone
    warmed: float  # time.monotonic() when forked
    group: WorkerGroup | None  # its cgroup (see `_cgroup`); None: no cgroups


class Zygote:
    """Pre-forked workers: `_pool` (ours to dispatch), `_lent` (the server holds their request
    end), `_busy` (we dispatched to them, or dropped them: their end is awaited).

    A lent worker may be running the server's request: the zygote learns it only at its end, so
    it counts as warm until then (no wake-up of the zygote during the call). While one runs long,
    the server has one lent worker fewer; a call that finds none goes through the zygote, which
    forks a worker for it if its own pool is empty.

    Warming a worker costs ~10 ms of CPU and takes the kernel's mount lock, so it is done when
    no command is starting: after a running sandbox ends (its lifeline reaches EOF), or at once
    when no warm worker is left.
    """

    def __init__(self, pool_size: int, lend_to: socket.socket | None = None) -> None:
        self._pool_size = pool_size
        self._lend_to = lend_to
        self._pool: deque[_Worker] = deque()
        self._lent: deque[_Worker] = deque()
        self._busy: list[_Worker] = []
        self._seccomp, self._seccomp_error = _compile_seccomp()
        # The server's last call, without its command: the workers it lends prepare its
        # project's mounts while they wait (see `_rootfs.prepare_project`).
        self._hint: bytes | None = None
        # Each worker's own cgroup (see `_cgroup`), joined while it warms up; None: no cgroups.
        self._cgroups = ZygoteCgroups.from_env()

    def _new_group(self) -> tuple[WorkerGroup | None, str | None]:
        if self._cgroups is None:
            return None, None
        try:
            return self._cgroups.create(), None
        except OSError as exc:
            return None, f"cannot create the call's cgroup ({exc}); the budget cannot be enforced"

    def _new_worker(self, hint: bytes | None = None) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        life, life_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        group, error = self._new_group()
        seccomp, seccomp_error = (None, error) if error else (self._seccomp, self._seccomp_error)

        def worker() -> NoReturn:
            events_fd = None
            if group is not None:
                join(group.procs_fds, new_namespace=False)  # _worker unshares the cgroup namespace
                events_fd = group.events_fd
            _worker.run(theirs, life_theirs, seccomp, seccomp_error, events_fd, hint)

        with theirs, life_theirs:
            _fork(worker, theirs.fileno(), life_theirs.fileno(), *(group.inherited() if group else []))
        if group is not None:
            group.close_fds()
        return _Worker(ours, life, time.monotonic(), group)

    def _retire(self, worker: _Worker) -> None:
        """Close our ends (an idle worker sees EOF and exits); its cgroup goes once empty."""
        if worker.ws is not None:
            worker.ws.close()
        worker.life.close()
        if worker.group is not None and self._cgroups is not None:
            self._cgroups.retire(worker.group)

    def _lend(self, worker: _Worker) -> bool:
        """Hand the worker's request end to the server; False if it cannot take it now."""
        if self._lend_to is None or worker.ws is None:
            return False
        limits = worker.group.limits if worker.group is not None else None
        try:
            socket.send_fds(self._lend_to, [lent_message(worker.warmed, limits)], [worker.ws.fileno()], socket.MSG_DONTWAIT)
        except OSError:
            return False  # its buffer is full or it is gone: keep the worker for our own dispatch
        worker.ws.close()
        worker.ws = None
        return True

    def refill(self) -> None:
        target = self._pool_size if not self._busy else min(1, self._pool_size)
        while len(self._pool) + len(self._lent) < target:
            worker = self._new_worker(self._hint)
            (self._lent if self._lend(worker) else self._pool).append(worker)

    def _drop(self, older_than: float) -> None:
        """Drop workers warmed before `older_than`. A pooled one sees EOF and exits. A lent one
        may be running a call: its lifeline is shut down (an idle one sees EOF, exits, and the
        server's send to it fails, so it takes another) and its end awaited like a busy one's."""
        while self._pool and self._pool[0].warmed < older_than:
            self._retire(self._pool.popleft())
        while self._lent and self._lent[0].warmed < older_than:
            worker = self._lent.popleft()
            try:
                worker.life.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # already gone: its EOF is ready
            self._busy.append(worker)

    def _gone(self, worker: _Worker) -> bool:
        """Its lifeline reached EOF (nothing else is ever sent on it): retire it. True if it was
        lent (the server used it, or dropped it)."""
        lent = worker in self._lent
        (self._lent if lent else self._busy).remove(worker)
        self._retire(worker)
        return lent

    def wait(self, ctl: socket.socket) -> None:
        """Block until a request is ready on `ctl`; meanwhile follow workers' lifelines, retire
        finished workers, replace workers warmed too long ago, and refill the pool (once
        REFILL_QUIET_SECONDS passed without a request since the last sandbox ended, or at once
        if no warm worker is left)."""
        quiet_until = 0.0
        while True:
            now = time.monotonic()
            deadlines = [idle[0].warmed + MAX_WARM_SECONDS for idle in (self._pool, self._lent) if idle]
            if deadlines and quiet_until > now:
                deadlines.append(quiet_until)
            retry = self._cgroups.sweep() if self._cgroups is not None else None
            if retry is not None:
                deadlines.append(now + retry)
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            watched = {w.life.fileno(): w for w in (*self._busy, *self._lent)}
            ready = select.select([ctl.fileno(), *watched], [], [], timeout)[0]
            for fd in ready:
                # A lent worker's replacement is warmed at once: the server's next call goes to
                # the other lent worker, not through us, so it never waits behind the refill;
                # waiting for a quiet moment instead left back-to-back calls a cold worker.
                if fd in watched and not self._gone(watched[fd]):
                    quiet_until = time.monotonic() + REFILL_QUIET_SECONDS
            if ctl.fileno() in ready:
                return
            self._drop(older_than=time.monotonic() - MAX_WARM_SECONDS)
            if not (self._pool or self._lent) or time.monotonic() >= quiet_until:
                self.refill()

    def handle(self, payload: bytes, fds: list[int]) -> None:
        if not fds:
            self._hint = payload[len(PREPARE_PREFIX) :]  # workers warmed from now on prepare for it
            return
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
            worker = self._pool.popleft() if self._pool else self._new_worker()
            try:
                if worker.group is not None and self._cgroups is not None:
                    self._cgroups.dispatching(worker.group, limits)
                assert worker.ws is not None  # only lent workers lack it, and they are not pooled
                socket.send_fds(worker.ws, [payload], fds)
            except OSError:
                self._retire(worker)
                continue
            self._busy.append(worker)
            return


def _receive(ctl: socket.socket) -> tuple[bytes, list[int]] | None:
    while True:
        try:
            payload, fds, _, _ = socket.recv_fds(ctl, MAX_REQUEST_BYTES, FDS_PER_REQUEST)
        except ConnectionResetError:
            return None  # the server closed its end with lent workers unread
        if not payload and not fds:
            return None  # the server closed its end, or died
        if len(fds) == FDS_PER_REQUEST or (not fds and payload.startswith(PREPARE_PREFIX)):
            return payload, fds
        for fd in fds:  # malformed: drop it (its status socket closes, so the sender notices)
            os.close(fd)


def serve(ctl: socket.socket, *, once: bool) -> None:
    # Each worker exits once it has forked its namespace's init; as subreaper we adopt the inits,
    # and SIG_IGN lets the kernel reap them (and the workers) without waitpid.
    c.prctl(c.PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    zygote = Zygote(pool_size=0 if once else POOL_SIZE, lend_to=None if once else ctl)
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
