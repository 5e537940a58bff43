"""Public value types and the one exception of the sandbox."""

from __future__ import annotations

from dataclasses import dataclass, fields

MAX_TIMEOUT_SECONDS = 600.0


class SandboxInputError(ValueError):
    """A call's input the sandbox refuses; ``field`` names the argument it comes from, so the
    caller's error names the field by value, not by the message's wording."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class SandboxUnavailable(Exception):
    """The host cannot sandbox (or the sandbox could not be set up); the message says what is
    missing and how an operator fixes it. Never raised for the command's own failures."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-command limits. Each is enforced by the kernel, not by polling.

    max_processes is RLIMIT_NPROC, which the kernel counts per user namespace and kernel uid:
    in the sandbox's fresh user namespace it counts exactly the sandbox's tasks (threads
    included). The kernel never applies RLIMIT_NPROC to kernel uid 0, so when the server runs as
    root the pid namespace's own pid_max (kernel >= 6.14) is set to max(301, max_processes + 2)
    instead: a fork bomb then stops at about 300 tasks. /tmp inside is a tmpfs of max_file_bytes.
    """

    timeout_seconds: float = 30.0  # wall clock, at most 600
    max_output_bytes: int = 64 * 1024  # per stream: head + tail kept, the middle replaced by a marker
    memory_bytes: int = 1 << 30  # RLIMIT_AS, per process; not set where the call's memory cgroup bounds it
    cpu_seconds: int = 60  # RLIMIT_CPU, per process
    max_processes: int = 256  # RLIMIT_NPROC (see above)
    max_file_bytes: int = 256 << 20  # RLIMIT_FSIZE, and the size of the private /tmp
    max_open_files: int = 256  # RLIMIT_NOFILE

    def __post_init__(self) -> None:
        if not 0 < self.timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError(f"timeout_seconds must be in (0, {MAX_TIMEOUT_SECONDS:g}], got {self.timeout_seconds}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "timeout_seconds" and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int  # shell convention: 128 + N after signal N; 124 when timed_out
    stdout: str
    stderr: str
    duration_ms: float
    timed_out: bool
    truncated: bool  # stdout or stderr lost its middle to max_output_bytes
    sandboxed: bool  # False only when the operator allowed unsandboxed runs and the host can't sandbox
    killed: str | None = None  # why the budget stopped the call (project write cap, memory limit)
