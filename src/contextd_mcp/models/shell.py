"""The bash tool's request and result."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

COMMAND_MAX = 16_000
WORKING_DIR_MAX = 4096
ENV_MAX_ITEMS = 32
ENV_VALUE_MAX = 4096
TIMEOUT_DEFAULT_S = 30
TIMEOUT_MAX_S = 600
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class RunCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: Annotated[str, StringConstraints(min_length=1, max_length=COMMAND_MAX)] = Field(
        description="Run as `/bin/bash -c command` in the sandbox"
    )
    timeout_seconds: int = Field(default=TIMEOUT_DEFAULT_S, ge=1, le=TIMEOUT_MAX_S)
    working_dir: Annotated[str, StringConstraints(max_length=WORKING_DIR_MAX)] | None = Field(
        default=None, description="Inside the project (relative to its root, or absolute); default: the root"
    )
    env: dict[str, Annotated[str, StringConstraints(max_length=ENV_VALUE_MAX)]] = Field(
        default_factory=dict, max_length=ENV_MAX_ITEMS,
        description="Extra env variables (BASH_ENV, LD_*, ... refused)",
    )

    @field_validator("env")
    @classmethod
    def _names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"variable name {name[:40]!r} must match [A-Za-z_][A-Za-z0-9_]*")
        return env


class AppliedLimits(BaseModel):
    timeout_seconds: int
    max_output_bytes_per_stream: int
    memory_bytes: int = Field(
        description="address space (RLIMIT_AS) per process, applied only where no cgroup bounds the call's memory "
        "(cgroup none): JITs reserve far more than they touch"
    )
    cpu_seconds: int
    max_processes: int
    max_file_bytes: int
    max_open_files: int
    network: str = "none"
    # The budget (cgroups; see README "bash sandbox budget"), shared by all calls of the server.
    call_memory_bytes: int = Field(default=0, description="memory.max of this call: its processes and its /tmp")
    call_max_tasks: int = Field(default=0, description="pids.max of this call (processes + threads)")
    call_cpus: float = Field(default=0, description="cpu.max of this call, in cores")
    total_memory_bytes: int = Field(default=0, description="memory.max of all bash calls together")
    max_concurrent_calls: int = Field(default=0, description="more calls wait, then fail with a clear error")
    project_write_bytes: int = Field(default=0, description="a call growing the project by more is killed")
    cgroup: str = Field(default="", description="v2 or v1 when the kernel enforces the budget; none (why) if not")


class BashResult(BaseModel):
    exit_code: int = Field(description="124 on timeout; 128+N after signal N")
    stdout: str
    stderr: str
    duration_ms: float
    timed_out: bool
    truncated: bool = Field(description="Output lost its middle to the cap (head and tail kept)")
    sandboxed: bool = Field(description="False only when the operator allowed unsandboxed runs")
    killed: str | None = Field(default=None, description="Why the budget stopped the call (project writes, memory)")
    limits: AppliedLimits
    policy_warnings: list[str] = Field(default_factory=list, description="Non-blocking policy findings")
