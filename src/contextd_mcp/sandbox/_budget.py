"""One resource budget for all sandboxed work of this server process.

    configure(SandboxBudget(...))   the server, at start (else the defaults apply on first use)
    status() -> dict                cgroup mode (v2/v1/none), why none, the limits
    async with current().call() as cgroup_limits:   a slot among max_concurrent; the limits the
                                    zygote applies to the worker's cgroup (None: no cgroups)
    helper_env() -> dict            the cgroup plan, for the helper's environment

What it bounds, beside the per-process rlimits of `SandboxLimits`:

  * memory and tasks of each call and of all calls together, by cgroups (`_cgroup`): the call's
    processes and what they write to the private /tmp (a tmpfs: its pages are charged to the
    writer's memory cgroup) count against the call's memory.max, and all calls against a ceiling.
    Swap is not allowed past the limit. CPU per call by cpu.max (a quota of call_cpus cores).
  * concurrent calls: at most max_concurrent run; more wait in arrival order for up to
    queue_seconds, then fail with SandboxBusy.
  * bytes one call adds to the project: `_diskwatch` samples the free space of the project's
    filesystem and, once it fell by more than project_write_bytes, confirms with the blocks of
    the project's files changed since the call started before killing the call.

Where cgroups cannot be used (not root on cgroup v1, no delegated v2 subtree, no controller),
the reason is logged once and reported by status(); the rlimits and the concurrency cap remain.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import anyio

from ._budgetspec import SandboxBudget
from ._cgroup import Cgroups, call_limits, plan_env, setup
from ._types import SandboxUnavailable

log = logging.getLogger("contextd_mcp.sandbox")
QUEUE_POLL_SECONDS = 0.01


class SandboxBusy(SandboxUnavailable):
    """Every slot stayed taken for the whole queue wait; nothing ran."""


class _Budget:
    def __init__(self, budget: SandboxBudget) -> None:
        self.budget = budget
        self.running = 0
        self._tickets = itertools.count()
        self._waiting: list[int] = []
        self._lock = threading.Lock()
        self._cgroups: Cgroups | None = None
        self._limits_of: tuple[SandboxBudget, dict[str, float]] | None = None

    def cgroups(self) -> Cgroups:
        with self._lock:
            if self._cgroups is None:
                self._cgroups = setup(self.budget.cgroup_limits())
                atexit.register(self._cgroups.close)
                if self._cgroups.version == "none":
                    log.warning(
                        "sandbox: no cgroup budget (%s); each command keeps its per-process rlimits, "
                        "but memory and tasks are not bounded per call or in total",
                        self._cgroups.reason,
                    )
                else:
                    log.info("sandbox: cgroup %s budget under %s", self._cgroups.version, self._cgroups.parents[0])
            return self._cgroups

    def reconfigure(self, budget: SandboxBudget) -> None:
        self.budget = budget
        if self._cgroups is not None:
            self._cgroups.set_ceiling(budget.cgroup_limits())

    async def _acquire(self) -> None:
        """A slot, in arrival order. Polled, so that it works from any event loop or thread."""
        if self.running < self.budget.max_concurrent and not self._waiting:
            self.running += 1  # nobody queued before us: no cancel scope, no poll (every call)
            return
        ticket = next(self._tickets)
        self._waiting.append(ticket)
        try:
            with anyio.move_on_after(self.budget.queue_seconds):
                while not (self.running < self.budget.max_concurrent and self._waiting[0] == ticket):
                    await anyio.sleep(QUEUE_POLL_SECONDS)
                self.running += 1
                return
        finally:
            self._waiting.remove(ticket)
        raise SandboxBusy(
            f"{self.budget.max_concurrent} bash calls are already running (the most allowed at once) and none "
            f"finished within {self.budget.queue_seconds:g} s; retry later, or raise CONTEXTD_SANDBOX_MAX_CONCURRENT "
            "(and CONTEXTD_SANDBOX_QUEUE_SECONDS)"
        )

    @contextlib.asynccontextmanager
    async def call(self) -> AsyncIterator[dict[str, float] | None]:
        """A slot; yields the call's cgroup limits for the request (None: no cgroups). The
        zygote makes the call's cgroup (see `_cgroup`), so it is set up before the zygote starts."""
        await self._acquire()
        try:
            cgroups = self.cgroups()
            yield None if cgroups.version == "none" else dict(self._call_limits())
        finally:
            self.running -= 1

    def _call_limits(self) -> dict[str, float]:
        """The call's cgroup limits, derived once per budget (asdict on every call cost ~15 µs)."""
        cached = self._limits_of
        if cached is None or cached[0] is not self.budget:
            cached = self._limits_of = (self.budget, call_limits(self.budget.cgroup_limits()))
        return cached[1]

    def status(self) -> dict[str, object]:
        groups = self.cgroups()
        return {"cgroup": groups.describe(), "running": self.running, "limits": asdict(self.budget)}


def memory_kill(messages: list[dict[str, Any]], budget: SandboxBudget) -> str | None:
    """Why the call was cut short, when the kernel killed processes at its memory limit."""
    kills = max((int(m.get("oom_kills", 0)) for m in messages), default=0)
    if not kills:
        return None
    return (
        f"killed: the call reached its memory limit of {budget.call_memory_bytes} bytes "
        f"(memory and /tmp together; {kills} process(es) killed by the kernel)"
    )


_current: _Budget | None = None
_current_lock = threading.Lock()


def current() -> _Budget:
    global _current
    with _current_lock:
        if _current is None:
            _current = _Budget(SandboxBudget())
        return _current


def configure(budget: SandboxBudget) -> None:
    """Set the budget of this process's sandbox (the ceiling applies at once if already set up)."""
    global _current
    with _current_lock:
        if _current is None:
            _current = _Budget(budget)
        else:
            _current.reconfigure(budget)


def helper_env() -> dict[str, str]:
    """For the helper's environment: the cgroup plan, set up first if it is not yet."""
    current().cgroups()
    return plan_env()


def status() -> dict[str, object]:
    """Sets the cgroups up if not yet done: the daemon calls it at start, so a fallback is logged."""
    return current().status()


def close() -> None:
    """Remove this process's (empty) cgroups; for the server's shutdown."""
    if _current is not None and _current._cgroups is not None:
        _current._cgroups.close()
