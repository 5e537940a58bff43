"""Cgroups for the sandbox: one parent with a ceiling for all calls, one child per call.

    setup(limits) -> Cgroups     detect v2 / v1 / none and create the parent (the server, once)
    cgroups.call(limits)         a child with the call's limits and open fds of its cgroup.procs
    join(fds)                    the namespace's init writes itself into them (before the command)

Layout, v2 (a delegated subtree, or root's own cgroup tree):

    <own cgroup>/contextd-daemon      the daemon moves itself here (no processes in inner nodes)
    <own cgroup>/contextd-sandbox     memory.max, pids.max of ALL calls together
        call-<n>                      memory.max, memory.swap.max=0, pids.max, cpu.max of one call

Layout, v1 (each controller its own hierarchy; root only): the same parent/child pair under the
daemon's own cgroup in the memory, pids and cpu hierarchies, named contextd-sandbox-<pid>.

The server opens the call's cgroup.procs files and passes the fds with the request; init writes
"0" (itself) into each before it spawns the command, then unshares a new cgroup namespace rooted
at its call cgroup. The kernel checks a cgroup.procs write with the credentials (and, on v2, the
cgroup namespace) of whoever *opened* the file, so init needs no right of its own, and the command
cannot move itself out: it never holds those fds, no cgroupfs is mounted inside and it has no
capability to mount one.

Standard library (and `_libc`) only: the zygote imports it, through the worker.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import _libc as c

log = logging.getLogger("contextd_mcp.sandbox")

V2_CONTROLLERS = ("memory", "pids")  # required; cpu is used when delegated too
V1_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
REMOVE_TRIES_SECONDS = 10.0  # a call's cgroup is removed once init has exited: usually at once
MAX_CGROUP_FDS = len(V1_CONTROLLERS)
FIX = (
    "run the daemon as root, or on cgroup v2 in a delegated subtree: `systemd-run --user --scope "
    "-p Delegate=yes contextd-mcp daemon`, or Delegate=yes in its systemd unit"
)


@dataclass(frozen=True)
class CgroupLimits:
    call_memory_bytes: int
    call_max_tasks: int
    call_cpus: float
    total_memory_bytes: int
    total_max_tasks: int


@dataclass
class CallGroup:
    """One call's cgroup: the fds init joins through, and how to read and remove it."""

    dirs: list[Path]
    fds: list[int] = field(default_factory=list)
    version: str = "none"

    def close_fds(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def oom_kills(self) -> int:
        """How many processes the kernel killed because the call reached its memory limit."""
        if not self.dirs:
            return 0
        name = "memory.events" if self.version == "v2" else "memory.oom_control"
        for d in self.dirs:
            path = d / name
            if path.exists():
                for line in _read(path).splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0

    def remove(self) -> None:
        """Kill what is left (normally nothing: init empties its namespace) and remove the group;
        init itself may still be exiting, so retries go on in a thread."""
        self.close_fds()
        if self.dirs and not _try_remove(self.dirs, self.version):
            threading.Thread(target=_remove_soon, args=(self.dirs, self.version), daemon=True).start()


class Cgroups:
    """No cgroups: `reason` says why; calls run with the per-process rlimits only."""

    version = "none"

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        self.parents: list[Path] = []

    def call(self, limits: CgroupLimits) -> CallGroup:
        return CallGroup(dirs=[])

    def set_ceiling(self, limits: CgroupLimits) -> None:
        pass

    def describe(self) -> dict[str, object]:
        return {"mode": self.version, "reason": self.reason or None, "parents": [str(p) for p in self.parents]}

    def close(self) -> None:
        for parent in self.parents:
            for child in parent.glob("call-*"):
                _try_remove([child], self.version)
            try:
                parent.rmdir()
            except OSError:
                pass


_counter = itertools.count(1)


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _try_remove(dirs: list[Path], version: str) -> bool:
    done = True
    for d in dirs:
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                log.warning("cannot remove the call cgroup %s: %s", d, exc)
                continue
            done = False
            _kill_members(d, version)
    return done


def _kill_members(d: Path, version: str) -> None:
    if version == "v2" and (d / "cgroup.kill").exists():
        try:
            _write(d / "cgroup.kill", "1")
            return
        except OSError:
            pass
    try:
        pids = [int(p) for p in _read(d / "cgroup.procs").split()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def _remove_soon(dirs: list[Path], version: str) -> None:
    deadline = time.monotonic() + REMOVE_TRIES_SECONDS
    while not _try_remove(dirs, version):
        if time.monotonic() > deadline:
            log.warning("call cgroups %s still hold processes after %.0f s", dirs, REMOVE_TRIES_SECONDS)
            return
        time.sleep(0.005)


def join(fds: list[int], new_namespace: bool = True) -> None:
    """Before the command: enter the call's cgroup(s); in the sandbox's init, then a cgroup
    namespace rooted there (the command's /proc/self/cgroup then reads "/")."""
    if not fds:
        return
    for fd in fds:
        os.write(fd, b"0")
        os.close(fd)
    if new_namespace:
        c.unshare(c.CLONE_NEWCGROUP)


@contextlib.contextmanager
def command_dies_first() -> Iterator[None]:
    """Processes started inside inherit oom_score_adj 1000; ours is restored after.

    At the memory limit the kernel kills the task with the most memory, and /tmp's pages belong
    to no task: without this, init (a Python process, the largest one) would die first, and with
    it the call's status. Raising is always allowed, and lowering back to our own value too.
    """
    path = "/proc/self/oom_score_adj"
    try:
        with open(path) as f:
            own = f.read().strip()
        with open(path, "w") as f:
            f.write("1000")
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(own)


# --- v1 -----------------------------------------------------------------------------------------


class CgroupsV1(Cgroups):
    version = "v1"

    def __init__(self, parents: dict[str, Path]) -> None:
        super().__init__()
        self._parents = parents
        self.parents = list(parents.values())

    def set_ceiling(self, limits: CgroupLimits) -> None:
        _v1_memory(self._parents["memory"], limits.total_memory_bytes)
        _write(self._parents["pids"] / "pids.max", str(limits.total_max_tasks))

    def call(self, limits: CgroupLimits) -> CallGroup:
        name = f"call-{next(_counter)}"
        group = CallGroup(dirs=[], version="v1")
        try:
            for controller, parent in self._parents.items():
                d = parent / name
                d.mkdir()
                group.dirs.append(d)
                if controller == "memory":
                    _v1_memory(d, limits.call_memory_bytes)
                    _write(d / "memory.swappiness", "0")
                elif controller == "pids":
                    _write(d / "pids.max", str(limits.call_max_tasks))
                else:
                    _write(d / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                    _write(d / "cpu.cfs_quota_us", str(int(limits.call_cpus * CPU_PERIOD_US)))
                group.fds.append(os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        except BaseException:
            group.remove()
            raise
        return group


def _v1_memory(d: Path, limit: int) -> None:
    """memory.limit_in_bytes, and memsw (memory + swap) to the same: no swapping past the limit.
    The kernel wants memsw >= limit at every step, so the order depends on the direction."""
    memsw = d / "memory.memsw.limit_in_bytes"
    if not memsw.exists():
        _write(d / "memory.limit_in_bytes", str(limit))
        return
    try:
        _write(d / "memory.limit_in_bytes", str(limit))
        _write(memsw, str(limit))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        _write(memsw, str(limit))
        _write(d / "memory.limit_in_bytes", str(limit))


def _v1_mounts() -> dict[str, Path]:
    """controller -> mount point of its v1 hierarchy."""
    found: dict[str, Path] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, options = (right.split() + ["", "", ""])[:3]
            if fstype != "cgroup":
                continue
            for opt in options.split(","):
                if opt in V1_CONTROLLERS:
                    found.setdefault(opt, Path(left.split()[4]))
    return found


def _own_paths() -> dict[str, str]:
    """hierarchy key ("" for v2, else each controller name) -> this process's cgroup path."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                own[name] = path
    return own


def _setup_v1(limits: CgroupLimits) -> Cgroups:
    mounts, own = _v1_mounts(), _own_paths()
    missing = [c for c in V1_CONTROLLERS if c not in mounts or c not in own]
    if missing:
        return Cgroups(f"no cgroup v1 hierarchy for {', '.join(missing)}")
    _remove_stale_v1(mounts, own)
    parents: dict[str, Path] = {}
    try:
        for controller in V1_CONTROLLERS:
            parent = mounts[controller] / own[controller].lstrip("/") / f"contextd-sandbox-{os.getpid()}"
            parent.mkdir(exist_ok=True)
            parents[controller] = parent
        groups = CgroupsV1(parents)
        groups.set_ceiling(limits)
    except OSError as exc:
        for parent in parents.values():
            try:
                parent.rmdir()
            except OSError:
                pass
        return Cgroups(f"cgroup v1: cannot create {exc.filename or 'the sandbox cgroup'} ({exc.strerror}); {FIX}")
    return groups


def _remove_stale_v1(mounts: dict[str, Path], own: dict[str, str]) -> None:
    """Parents left by a daemon that died without cleaning up (their calls are long gone)."""
    for controller in V1_CONTROLLERS:
        base = mounts[controller] / own[controller].lstrip("/")
        for parent in base.glob("contextd-sandbox-*"):
            pid = parent.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                for child in parent.glob("call-*"):
                    _try_remove([child], "v1")
                try:
                    parent.rmdir()
                except OSError:
                    pass


# --- v2 -----------------------------------------------------------------------------------------


class CgroupsV2(Cgroups):
    version = "v2"

    def __init__(self, parent: Path) -> None:
        super().__init__()
        self.parents = [parent]
        self._cpu = "cpu" in _read(parent / "cgroup.subtree_control").split()

    def set_ceiling(self, limits: CgroupLimits) -> None:
        parent = self.parents[0]
        _write(parent / "memory.max", str(limits.total_memory_bytes))
        if (parent / "memory.swap.max").exists():
            _write(parent / "memory.swap.max", "0")
        _write(parent / "pids.max", str(limits.total_max_tasks))

    def call(self, limits: CgroupLimits) -> CallGroup:
        d = self.parents[0] / f"call-{next(_counter)}"
        d.mkdir()
        group = CallGroup(dirs=[d], version="v2")
        try:
            _write(d / "memory.max", str(limits.call_memory_bytes))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(limits.call_max_tasks))
            if self._cpu:
                _write(d / "cpu.max", f"{int(limits.call_cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")
            group.fds.append(os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        except BaseException:
            group.remove()
            raise
        return group


def _v2_mount() -> Path | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return Path(left.split()[4])
    return None


def _setup_v2(limits: CgroupLimits) -> Cgroups:
    mount, own = _v2_mount(), _own_paths().get("")
    if mount is None or own is None:
        return Cgroups("no cgroup2 filesystem is mounted")
    base = mount / own.lstrip("/")
    available = _read(base / "cgroup.controllers").split()
    missing = [c for c in V2_CONTROLLERS if c not in available]
    if missing:
        return Cgroups(f"cgroup v2 at {base} offers no {', '.join(missing)} controller")
    wanted = [c for c in (*V2_CONTROLLERS, "cpu") if c in available]
    enable = " ".join(f"+{c}" for c in wanted)
    try:
        if own != "/":
            # No processes in an inner node: move this (whole) daemon into a leaf first.
            leaf = base / "contextd-daemon"
            leaf.mkdir(exist_ok=True)
            for pid in _read(base / "cgroup.procs").split():
                _write(leaf / "cgroup.procs", pid)
        _write(base / "cgroup.subtree_control", enable)
        parent = base / ("contextd-sandbox" if own != "/" else f"contextd-sandbox-{os.getpid()}")
        parent.mkdir(exist_ok=True)
        _write(parent / "cgroup.subtree_control", enable)
        groups = CgroupsV2(parent)
        groups.set_ceiling(limits)
    except OSError as exc:
        return Cgroups(f"cgroup v2: cannot set up {exc.filename or base} ({exc.strerror}); {FIX}")
    return groups


def setup(limits: CgroupLimits) -> Cgroups:
    """The best this host allows: v2 if its cgroup2 tree has the controllers, else v1, else none
    (with the reasons)."""
    v2 = _setup_v2(limits)
    if v2.version != "none":
        return v2
    v1 = _setup_v1(limits)
    if v1.version != "none":
        return v1
    return Cgroups(f"{v2.reason}; {v1.reason}")
