"""What the server and the helper say to each other. Standard library only: both sides import it.

One request = one SOCK_SEQPACKET message to the helper: a JSON `Request`, carrying three file
descriptors by SCM_RIGHTS, in this order:

    status  the helper's end of a per-request SEQPACKET socketpair
    stdout  write end of the command's stdout pipe
    stderr  write end of the command's stderr pipe

On `status` the helper sends JSON messages, the last one final:
    {"error": reason}  set-up failed; the server raises SandboxUnavailable
    {"stale": true}    a warm worker's view of the host's mounts predates the project's mount;
                       nothing ran, and the server retries once with `fresh`
    {"exit": code}     the command's status, shell convention (128 + N after signal N); with
                       "oom_kills": n when the kernel killed n processes at the call's memory limit
    {"killed": true}   after a kill request
The namespace's init sends "exit" or "killed" only once every other process of the namespace is
dead. The server asks for a kill by shutting down its sending side, or simply by closing the
socket (when it is cancelled, or dies): init sees EOF and kills everything.
Since sandboxed code never holds this socket, it cannot forge a status.

A message with no fds, `prepare {request}`, tells the zygote which project the server expects
next (its last call's request, without command and environment): the workers it warms from then
on make that project's mounts while they wait, and re-check them against the call's own request.

The other way, on the same control socket, the zygote lends warm workers to the server: one
message each, `{"warmed": t, "limits": {...} | null}` carrying the worker's request socket (one
fd). `t` is when it was forked (CLOCK_MONOTONIC, shared by all processes), `limits` the cgroup
limits it was made with. The server sends a request (as above) straight to such a worker when
it is younger than MAX_WARM_SECONDS and its limits are the call's, and drops it otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

HELPER_MODULE = "contextd_mcp.sandbox.helper"
MAX_REQUEST_BYTES = 200 * 1024  # under the default unix socket buffer, so one send suffices
MAX_COMMAND_BYTES = 128 * 1024 - 1  # execve refuses a single argument longer (MAX_ARG_STRLEN)
FDS_PER_REQUEST = 3
# A warm worker holds a copy of the host's mounts as they were when it warmed up. Where the host's
# mounts propagate (shared /, the systemd default) the copy follows them; where they do not, the
# project root is still checked exactly (see _rootfs.StaleView), and this bounds how old a view
# of mounts *inside* the project can be. The zygote drops its idle workers at this age, and the
# server does not use a lent one older.
MAX_WARM_SECONDS = 60.0
MAX_LENT_MESSAGE_BYTES = 4096
PREPARE_PREFIX = b"prepare "
# What a worker may prepare ahead of a call: the request's parts that say which mounts it needs.
_PREPARE_FIELDS = ("project", "project_id", "max_file_bytes", "max_processes", "protected", "masked")


@dataclass(frozen=True)
class Request:
    command: str | None  # None: a probe, which sets everything up and exits 0 instead of exec
    project: str
    workdir: str
    env: dict[str, str] = field(default_factory=dict)
    sandbox: bool = True
    memory_bytes: int = 1 << 30
    cpu_seconds: int = 60
    max_processes: int = 256
    max_file_bytes: int = 256 << 20
    max_open_files: int = 256
    # The project as the server sees it (st_dev, st_ino): a warm worker whose copy of the host's
    # mounts is older than the project's mount answers {"stale": true} instead of running.
    project_id: tuple[int, int] | None = None
    fresh: bool = False  # skip the warm pool (and drop it): the retry after a stale answer
    # The call's cgroup limits (see `_cgroup`): the zygote applies them if they changed since the
    # worker's cgroup was made. None: no cgroups.
    cgroup_limits: dict[str, float] | None = None
    # [path, "pin" | "ro"] for init to bind in the project (see _protect), parents first.
    protected: list[list[str]] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)  # the daemon's own files: hidden if visible

    def encode(self) -> bytes:
        # A shallow dict: every field is already JSON (asdict's deep copy was ~40 µs a call).
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> Request:
        fields = json.loads(data)
        if fields.get("project_id") is not None:
            fields["project_id"] = tuple(fields["project_id"])
        return cls(**fields)


def prepare_key(request: dict[str, object]) -> list[object]:
    """What decides a hint, from a decoded request: equal keys give equal `prepare_message`s
    (compared on every call; building the message each time cost ~25 µs)."""
    return [request[name] for name in _PREPARE_FIELDS]


def prepare_message(request: dict[str, object]) -> bytes:
    """The hint for the zygote from a decoded request (see the module docstring)."""
    fields = {name: request[name] for name in _PREPARE_FIELDS}
    # The project as working directory: a call in a subdirectory needs the same mounts, and a
    # hint that changed with it would wake the zygote for nothing.
    hint = Request(command=None, workdir=str(request["project"]), **fields)  # type: ignore[arg-type]
    return PREPARE_PREFIX + hint.encode()


def status_message(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def lent_message(warmed: float, limits: dict[str, float] | None) -> bytes:
    return json.dumps({"warmed": warmed, "limits": limits}).encode()
