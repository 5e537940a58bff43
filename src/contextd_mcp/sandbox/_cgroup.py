"""Cgroups for the sandbox: one parent with a ceiling for all calls, one child per call.

    setup(limits) -> Cgroups     the server, once: detect v2 / v1 / none, create the parent with
                                 the ceiling, and publish the plan (plan_env) for the zygote
    ZygoteCgroups                the zygote: a fresh child cgroup for every worker it forks,
                                 joined by the worker *while it warms up*, removed once it is done

Layout, v2 (a delegated subtree, or root's own cgroup tree):

    <own cgroup>/contextd-daemon      the daemon moves itself here (no processes in inner nodes)
    <own cgroup>/contextd-sandbox     memory.max, pids.max of ALL calls together
        call-<zygote pid>-<n>         memory.max, memory.swap.max=0, pids.max, cpu.max of one call

Layout, v1 (each controller its own hierarchy; root only): the same parent/child pair under the
daemon's own cgroup in the memory, pids and cpu hierarchies, the parent named
contextd-sandbox-<daemon pid>.

Why the worker joins ahead of time: moving a task between cgroups takes the kernel's
cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period unless another move
happened just before: measured here, 15-20 ms per call under load when init joined on the
request's critical path, against ~0.3 ms for creating the cgroup. So the zygote creates the
cgroup and opens its cgroup.procs before it forks a worker; the worker writes "0" (itself) into
them before it unshares its namespaces, so its cgroup namespace is rooted at the call's cgroup
(the command's /proc/self/cgroup reads "/"). The fds are closed before anything of the request
runs; no cgroupfs is mounted inside and the command has no capability to mount one, so it cannot
move itself out. At dispatch the zygote rewrites the call's limits if the server's budget changed.

Standard library (and `_libc`) only: the zygote imports it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from . import _libc as c

log = logging.getLogger("contextd_mcp.sandbox")

V2_CONTROLLERS = ("memory", "pids")  # required; cpu is used where it can be enabled
V1_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
PLAN_ENV = "CONTEXTD_SANDBOX_CGROUPS"  # how the server tells the zygote where and what
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


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _rmdir(d: Path) -> bool:
    """True once `d` is gone; False while tasks (a worker still exiting) keep it busy."""
    try:
        d.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return False
        log.warning("cannot remove the call cgroup %s: %s", d, exc)
    return True


def _kill_members(d: Path) -> None:
    if (d / "cgroup.kill").exists():
        with contextlib.suppress(OSError):
            _write(d / "cgroup.kill", "1")
            return
    try:
        pids = [int(p) for p in _read(d / "cgroup.procs").split()]
    except OSError:
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)


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


def _apply_call_limits(version: str, controller: str, d: Path, limits: dict[str, float]) -> None:
    memory, tasks = int(limits["call_memory_bytes"]), int(limits["call_max_tasks"])
    quota = int(limits["call_cpus"] * CPU_PERIOD_US)
    if version == "v2":
        _write(d / "memory.max", str(memory))
        if (d / "memory.swap.max").exists():
            _write(d / "memory.swap.max", "0")
        _write(d / "pids.max", str(tasks))
        if (d / "cpu.max").exists():
            _write(d / "cpu.max", f"{quota} {CPU_PERIOD_US}")
    elif controller == "memory":
        _v1_memory(d, memory)
        _write(d / "memory.swappiness", "0")
    elif controller == "pids":
        _write(d / "pids.max", str(tasks))
    elif controller == "cpu":
        _write(d / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(d / "cpu.cfs_quota_us", str(quota))


# --- the server: parent and ceiling ---------------------------------------------------------------


class Cgroups:
    """No cgroups: `reason` says why; calls run with the per-process rlimits only."""

    version = "none"

    def __init__(self, reason: str = "", parents: dict[str, Path] | None = None) -> None:
        self.reason = reason
        self.by_controller: dict[str, Path] = parents or {}

    @property
    def parents(self) -> list[Path]:
        return list(self.by_controller.values())

    def set_ceiling(self, limits: CgroupLimits) -> None:
        pass

    def plan(self, limits: CgroupLimits) -> dict[str, object] | None:
        """What the zygote needs to make call cgroups (None: it makes none)."""
        if self.version == "none":
            return None
        parents = {k: str(v) for k, v in self.by_controller.items()}
        return {"version": self.version, "parents": parents, "limits": call_limits(limits)}

    def describe(self) -> dict[str, object]:
        return {"mode": self.version, "reason": self.reason or None, "parents": [str(p) for p in self.parents]}

    def close(self) -> None:
        """At the server's exit: remove what the zygote left (workers still exiting are killed)."""
        for parent in self.parents:
            for child in parent.glob("call-*"):
                deadline = time.monotonic() + 1.0
                while not _rmdir(child) and time.monotonic() < deadline:
                    _kill_members(child)
                    time.sleep(0.01)
            with contextlib.suppress(OSError):
                parent.rmdir()


def call_limits(limits: CgroupLimits) -> dict[str, float]:
    return {k: v for k, v in asdict(limits).items() if k.startswith("call_")}


class CgroupsV1(Cgroups):
    version = "v1"

    def set_ceiling(self, limits: CgroupLimits) -> None:
        _v1_memory(self.by_controller["memory"], limits.total_memory_bytes)
        _write(self.by_controller["pids"] / "pids.max", str(limits.total_max_tasks))


class CgroupsV2(Cgroups):
    version = "v2"

    def set_ceiling(self, limits: CgroupLimits) -> None:
        parent = self.by_controller[""]
        _write(parent / "memory.max", str(limits.total_memory_bytes))
        if (parent / "memory.swap.max").exists():
            _write(parent / "memory.swap.max", "0")
        _write(parent / "pids.max", str(limits.total_max_tasks))


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
    bases = {c: mounts[c] / own[c].lstrip("/") for c in V1_CONTROLLERS}
    _remove_stale(list(bases.values()))
    parents: dict[str, Path] = {}
    try:
        for controller, base in bases.items():
            parent = base / f"contextd-sandbox-{os.getpid()}"
            parent.mkdir(exist_ok=True)
            parents[controller] = parent
        groups = CgroupsV1(parents=parents)
        groups.set_ceiling(limits)
    except OSError as exc:
        for parent in parents.values():
            with contextlib.suppress(OSError):
                parent.rmdir()
        return Cgroups(f"cgroup v1: cannot create {exc.filename or 'the sandbox cgroup'} ({exc.strerror}); {FIX}")
    return groups


def _remove_stale(bases: list[Path]) -> None:
    """Parents left by a daemon that died without cleaning up (their calls are long gone)."""
    for base in bases:
        for parent in base.glob("contextd-sandbox-*"):
            pid = parent.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                Cgroups(parents={"": parent}).close()


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
    enable = " ".join(f"+{c}" for c in (*V2_CONTROLLERS, "cpu") if c in available)
    leaf = base / "contextd-daemon"
    try:
        if own != "/":
            # No processes in an inner node: move this (whole) daemon into a leaf first. Only
            # ourselves: if others share our cgroup (a login session), enabling fails, we move
            # back, and say that the daemon needs a scope of its own.
            leaf.mkdir(exist_ok=True)
            _write(leaf / "cgroup.procs", str(os.getpid()))
            try:
                _write(base / "cgroup.subtree_control", enable)
            except OSError:
                _write(base / "cgroup.procs", str(os.getpid()))
                leaf.rmdir()
                raise
        else:
            _write(base / "cgroup.subtree_control", enable)
            _remove_stale([base])
        parent = base / ("contextd-sandbox" if own != "/" else f"contextd-sandbox-{os.getpid()}")
        parent.mkdir(exist_ok=True)
        _write(parent / "cgroup.subtree_control", enable)
        groups = CgroupsV2(parents={"": parent})
        groups.set_ceiling(limits)
    except OSError as exc:
        return Cgroups(f"cgroup v2: cannot set up {exc.filename or base} ({exc.strerror}); {FIX}")
    return groups


_plan: dict[str, object] | None = None


def setup(limits: CgroupLimits) -> Cgroups:
    """The best this host allows: v2 if its cgroup2 tree has the controllers, else v1, else none
    (with the reasons). Publishes the plan that `plan_env` hands to the zygote."""
    global _plan
    groups = _setup_v2(limits)
    if groups.version == "none":
        v1 = _setup_v1(limits)
        groups = v1 if v1.version != "none" else Cgroups(f"{groups.reason}; {v1.reason}")
    _plan = groups.plan(limits)
    return groups


def plan_env() -> dict[str, str]:
    """For the helper's environment: where the zygote makes call cgroups, and their limits."""
    return {PLAN_ENV: json.dumps(_plan)} if _plan else {}


# --- the zygote: one cgroup per worker -------------------------------------------------------------


@dataclass
class WorkerGroup:
    """A call's cgroup (one dir per v1 hierarchy, or one v2 dir) and what its worker inherits."""

    version: str
    dirs: dict[str, Path]
    limits: dict[str, float]
    procs_fds: list[int]  # the worker writes itself into these, then closes them
    events_fd: int  # memory.oom_control (v1) / memory.events (v2), read by init at the end

    def inherited(self) -> list[int]:
        return [*self.procs_fds, self.events_fd]

    def close_fds(self) -> None:
        for fd in self.inherited():
            os.close(fd)


class ZygoteCgroups:
    def __init__(self, plan: dict[str, object]) -> None:
        self.version = str(plan["version"])
        self.parents = {k: Path(v) for k, v in plan["parents"].items()}  # type: ignore[attr-defined]
        self.limits: dict[str, float] = dict(plan["limits"])  # type: ignore[call-overload]
        self._names = (f"call-{os.getpid()}-{n}" for n in itertools.count(1))
        self._doomed: list[WorkerGroup] = []  # workers gone or going; removed once empty

    @classmethod
    def from_env(cls) -> ZygoteCgroups | None:
        text = os.environ.get(PLAN_ENV)
        return cls(json.loads(text)) if text else None

    def create(self) -> WorkerGroup:
        name = next(self._names)
        dirs = {controller: parent / name for controller, parent in self.parents.items()}
        group = WorkerGroup(self.version, {}, dict(self.limits), [], -1)
        try:
            for controller, d in dirs.items():
                d.mkdir()
                group.dirs[controller] = d
                _apply_call_limits(self.version, controller, d, self.limits)
                group.procs_fds.append(os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
            memory = group.dirs["memory" if self.version == "v1" else ""]
            events = "memory.oom_control" if self.version == "v1" else "memory.events"
            group.events_fd = os.open(memory / events, os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            for fd in group.procs_fds:
                os.close(fd)
            group.procs_fds = []
            self.retire(group)
            raise
        return group

    def dispatching(self, group: WorkerGroup, limits: dict[str, float] | None) -> None:
        """The server's budget may have changed since this worker warmed up: apply it."""
        if limits and limits != group.limits:
            self.limits = dict(limits)
            for controller, d in group.dirs.items():
                _apply_call_limits(self.version, controller, d, self.limits)
            group.limits = dict(limits)

    def retire(self, group: WorkerGroup) -> None:
        self._doomed.append(group)
        self.sweep()

    def sweep(self) -> float | None:
        """Remove the cgroups of workers that have exited; the seconds until the next try."""
        self._doomed = [g for g in self._doomed if not all([_rmdir(d) for d in g.dirs.values()])]
        return 0.01 if self._doomed else None


def join(fds: list[int], new_namespace: bool = True) -> None:
    """Enter a call's cgroup(s) through fds opened by the zygote; with `new_namespace`, then a
    cgroup namespace rooted there."""
    if not fds:
        return
    for fd in fds:
        os.write(fd, b"0")
        os.close(fd)
    if new_namespace:
        c.unshare(c.CLONE_NEWCGROUP)


def oom_kills(events_fd: int) -> int:
    """How many processes of the call the kernel killed at its memory limit (0 if unknown)."""
    try:
        text = os.pread(events_fd, 4096, 0).decode()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


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
