"""The numbers of the sandbox's budget (see `_budget`); no anyio here, the package exports it."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ._cgroup import CgroupLimits


@dataclass(frozen=True)
class SandboxBudget:
    call_memory_bytes: int = 2 << 30  # memory.max of one call: its processes and its /tmp
    call_max_tasks: int = 512  # pids.max of one call (processes and threads)
    call_cpus: float = 2.0  # cpu.max of one call, in cores
    total_memory_bytes: int = 4 << 30  # memory.max of all calls together
    total_max_tasks: int = 2048  # pids.max of all calls together
    max_concurrent: int = 4  # calls running at once; more wait in line
    queue_seconds: float = 30.0  # how long a call waits for a slot before failing
    project_write_bytes: int = 1 << 30  # the most one call may add to the project's filesystem

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{f.name} must be a positive number, got {value!r}")
            if f.type == "int" and not isinstance(value, int):
                raise ValueError(f"{f.name} must be an integer, got {value!r}")
        if self.call_memory_bytes > self.total_memory_bytes:
            raise ValueError("call_memory_bytes cannot exceed total_memory_bytes")
        if self.call_max_tasks > self.total_max_tasks:
            raise ValueError("call_max_tasks cannot exceed total_max_tasks")

    def cgroup_limits(self) -> CgroupLimits:
        return CgroupLimits(
            self.call_memory_bytes, self.call_max_tasks, self.call_cpus, self.total_memory_bytes, self.total_max_tasks
        )
