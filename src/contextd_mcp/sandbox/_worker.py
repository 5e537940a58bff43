"""A sandbox worker: forked by the zygote ahead of time, then given one request.

    worker (P)  unshare(user, mount, pid, net, ipc, uts, cgroup), uid/gid maps, fork, exit
    └ init      pid 1 of the new pid namespace (adopted by the zygote, a subreaper). Builds the
                root (`_rootfs.prepare`) and empties its bounding set, then waits for one
                request, from the zygote or (lent) straight from the server. On a request:
                `_rootfs.finish`, rlimits, capabilities cleared, no_new_privs, seccomp, and
                spawns `bash -c command` (setsid, stdin /dev/null). It then reaps every
                zombie until the command exits, kills and reaps whatever else is left in the
                namespace, reports the status and exits with it. A kill request (the server
                shut down its side of the status socket, or died) makes it do so at once.

Init confines itself before spawning: the command inherits the same no_new_privs, seccomp filter
and rlimits, and init has nothing left that could help it. Capabilities need no clearing in the
child: with an empty bounding set and SECBIT_NOROOT locked, execve grants none even to uid 0.
A vfork-based spawn instead of fork saves ~1 ms per command here.
"""

from __future__ import annotations

import errno
import os
import resource
import select
import signal
import socket
import subprocess
from typing import NoReturn

from . import _libc as c
from ._cgroup import command_dies_first, oom_kills
from ._protocol import FDS_PER_REQUEST, MAX_REQUEST_BYTES, Request, status_message
from ._rootfs import Prepared, SetupError, StaleView, finish, prepare, prepare_project

NAMESPACES = (
    c.CLONE_NEWUSER | c.CLONE_NEWNS | c.CLONE_NEWPID | c.CLONE_NEWNET | c.CLONE_NEWIPC | c.CLONE_NEWUTS
)
BASH = "/bin/bash"
COMMAND_UMASK = 0o022
MIN_PID_MAX = 301  # the kernel refuses a smaller per-namespace pid_max (RESERVED_PIDS + 1)


def send(status: socket.socket, **fields: object) -> None:
    try:
        status.send(status_message(**fields))
    except OSError:
        pass  # the server is gone; nothing is left to tell


def describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _read_sysctl(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def userns_hint(exc: OSError) -> str:
    """Say why the kernel refused user namespaces, and how an operator turns them on."""
    if exc.errno == errno.ENOSPC:
        return "user.max_user_namespaces is 0 or used up: sysctl -w user.max_user_namespaces=15000"
    if exc.errno == errno.EINVAL:
        return "the kernel lacks user/pid/net namespaces (CONFIG_USER_NS and friends)"
    if _read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return "unprivileged user namespaces are off: sysctl -w kernel.unprivileged_userns_clone=1"
    if _read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return (
            "AppArmor restricts unprivileged user namespaces: sysctl -w "
            "kernel.apparmor_restrict_unprivileged_userns=0, or give this Python an AppArmor "
            "profile with the 'userns' permission"
        )
    return (
        "unprivileged user namespaces are not permitted here; in a container, allow unshare/clone "
        "in its seccomp profile (or run the server on the host)"
    )


def _enter_namespaces() -> None:
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        os.setgroups([])  # root's supplementary groups would otherwise follow into the sandbox
    try:
        try:
            c.unshare(NAMESPACES | c.CLONE_NEWCGROUP)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            c.unshare(NAMESPACES)  # kernel without cgroup namespaces
    except OSError as exc:
        raise SetupError(f"cannot create namespaces ({exc.strerror}): {userns_hint(exc)}") from exc
    # Map only ourselves: root stays kernel uid 0 (no capabilities outside), anyone else stays
    # who they are. setgroups must be denied before an unprivileged process may write gid_map.
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def receive(ws: socket.socket, life: socket.socket) -> tuple[bytes, list[int]] | None:
    """The request on `ws`, or None when whoever holds its other end (the zygote, or the server
    it was lent to) closed it, or the zygote closed the lifeline (it dropped us, or died)."""
    if life.fileno() in select.select([ws.fileno(), life.fileno()], [], [])[0]:
        return None  # the zygote never writes on it: this is EOF
    payload, fds, _, _ = socket.recv_fds(ws, MAX_REQUEST_BYTES, FDS_PER_REQUEST, socket.MSG_CMSG_CLOEXEC)
    if len(fds) != FDS_PER_REQUEST:
        for fd in fds:
            os.close(fd)
        return None
    return payload, fds


def _answer_with_error(ws: socket.socket, life: socket.socket, reason: str) -> NoReturn:
    """Set-up failed before any request: tell it to whoever comes (the probe, usually)."""
    got = receive(ws, life)
    if got is not None:
        send(socket.socket(fileno=got[1][0]), error=reason)
    os._exit(1)


def run(
    ws: socket.socket,
    life: socket.socket,
    seccomp: bytes | None,
    seccomp_error: str | None,
    events_fd: int | None = None,
    hint: bytes | None = None,
) -> NoReturn:
    """Entry point in the freshly forked worker; `ws` is its request socket, `life` its lifeline
    to the zygote (see `helper`); `events_fd` reads its cgroup's memory events (the zygote has
    already put it in the call's cgroup); `hint` the last call's request, whose project's mounts
    are made while waiting (see `_rootfs.prepare_project`)."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote auto-reaps; init needs waitpid
    try:
        if seccomp is None:
            raise SetupError(seccomp_error or "no seccomp filter")
        _enter_namespaces()
        if os.fork() == 0:
            _init(ws, life, seccomp, events_fd, hint)
    except BaseException as exc:  # noqa: BLE001 - whatever failed is the reason to report
        _answer_with_error(ws, life, describe(exc))
    os._exit(0)  # init is adopted by the zygote


def _init(ws: socket.socket, life: socket.socket, seccomp: bytes, events_fd: int | None, hint: bytes | None) -> NoReturn:
    try:
        # Not dumpable: the command (same uid) may not read our memory, environ or fds via /proc.
        c.prctl(c.PR_SET_DUMPABLE, 0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # pid 1 ignores signals it has no handler for
        socket.sethostname("sandbox")
        host = prepare()  # kept open until we exit: see _rootfs._clone_host
        prepared = _prepare_hinted(hint, host, ws)
        c.lock_out_capabilities()
        # For the command, done while waiting (0.15-0.3 ms): nothing init does from here on
        # changes a disposition, the signal mask or the umask.
        _clean_process_state()
    except BaseException as exc:  # noqa: BLE001 - any failure here is reported, not raised
        _answer_with_error(ws, life, f"building the sandbox: {describe(exc)}")
    got = receive(ws, life)
    if got is None:
        os._exit(0)  # dropped, or the zygote is gone
    ws.close()
    # `life` stays open (close-on-exec keeps it from the command): its EOF when we exit tells the
    # zygote that this sandbox is done and a replacement may be warmed up without competing.
    # Nothing is said on it before: waking the zygote during the call slowed the call.
    payload, (status_fd, out_fd, err_fd) = got
    status = socket.socket(fileno=status_fd)
    try:
        req = Request.decode(payload)
        _confine(req, seccomp, host, prepared, memory_cgroup=events_fd is not None)
        with command_dies_first():
            started = None if req.command is None else _spawn(req.command, req.env, out_fd, err_fd)
    except StaleView:
        send(status, stale=True)
        os._exit(1)
    except BaseException as exc:  # noqa: BLE001 - any failure here is reported, not raised
        send(status, error=f"starting the command: {describe(exc)}")
        os._exit(1)
    finally:
        os.close(out_fd)
        os.close(err_fd)
    if started is None:
        send(status, exit=0)  # a probe: everything was set up, nothing to run
        os._exit(0)
    os._exit(_supervise(*started, status, events_fd))  # init exits with the command's status


def _prepare_hinted(hint: bytes | None, host: int | None, ws: socket.socket) -> Prepared | None:
    """The hinted project's mounts, made now rather than on the call's path; no more of them
    once a request is waiting on `ws`."""
    if hint is None:
        return None
    try:
        req = Request.decode(hint)
    except (ValueError, TypeError):
        return None  # the call does it all
    protected = [(path, how) for path, how in req.protected]
    pending = lambda: bool(select.select([ws.fileno()], [], [], 0)[0])  # noqa: E731
    return prepare_project(req.project, req.project_id, req.max_file_bytes, _pid_max(req), protected, req.masked, host, pending)


def _pid_max(req: Request) -> int:
    return max(MIN_PID_MAX, req.max_processes + 2)


def _confine(
    req: Request, seccomp: bytes, host: int | None, prepared: Prepared | None = None, memory_cgroup: bool = False
) -> None:
    """`memory_cgroup`: init is in the call's memory cgroup (the zygote put its worker there), whose
    memory.max bounds what the call really uses; address space is then left unlimited, since
    JITs and runtimes (node, the JVM, Go, wasm engines) reserve far more than they touch, and
    RLIMIT_AS made them fail to start. Without one, RLIMIT_AS is the only memory bound left."""
    protected = [(path, how) for path, how in req.protected]
    finish(req.project, req.project_id, req.max_file_bytes, _pid_max(req), protected, req.masked, host, prepared)
    os.chdir(req.workdir)
    for which, value in (
        (resource.RLIMIT_AS, resource.RLIM_INFINITY if memory_cgroup else req.memory_bytes),
        (resource.RLIMIT_FSIZE, req.max_file_bytes),
        (resource.RLIMIT_NOFILE, req.max_open_files),
        # Counted per (user namespace, kernel uid): in our fresh namespace, the sandbox's tasks.
        (resource.RLIMIT_NPROC, req.max_processes),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (value, value))
    # SIGXCPU at the soft limit (a clear 152), SIGKILL a second later if it is ignored.
    resource.setrlimit(resource.RLIMIT_CPU, (req.cpu_seconds, req.cpu_seconds + 1))
    c.clear_capabilities()
    c.prctl(c.PR_SET_NO_NEW_PRIVS, 1)
    c.load_seccomp_program(seccomp)


def _spawn(command: str, env: dict[str, str], out_fd: int, err_fd: int) -> tuple[subprocess.Popen[bytes], int]:
    """Start bash; return it and a fd that becomes readable on every SIGCHLD.

    The caller must hold on to the Popen object (init leaves by os._exit): Popen.__del__ polls,
    and would reap a command that already exited, stealing its status from `_supervise`.
    """
    # Installed before the spawn so that no exit is missed; the wake-up fd lets select see it.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # Popen (vfork + exec) rather than os.posix_spawn: glibc's posix_spawn leaves its internal
    # signals 32/33 ignored in the child; Popen gives the command default dispositions
    # (restore_signals undoes Python's SIGPIPE/SIGXFSZ) at the same cost (~1.6 ms with bash).
    child = subprocess.Popen(  # the command is the point
        ["bash", "-c", command],
        executable=BASH,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out_fd,
        stderr=err_fd,
        start_new_session=True,  # setsid: no controlling terminal, its own process group
    )
    return child, wake_r


def _clean_process_state() -> None:
    """What the command inherits from init besides its fds: nothing the daemon's parent chose.

    A daemon started under `nohup` ignores SIGHUP, a service manager may block signals or set
    umask 077; exec keeps ignored dispositions and the blocked mask, so reset them here (glibc's
    own signals 32 and 33 too, which Python's signal module cannot reach). SIGPIPE
    and SIGXFSZ stay ignored in init (it writes to a socket whose reader may be gone): Popen's
    restore_signals gives the command their defaults. SIGCHLD gets init's handler just after;
    exec resets a handler to the default. Fds: Popen closes all but 0-2 (close_fds).
    """
    keep = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ}
    for sig in signal.valid_signals() - keep:
        signal.signal(sig, signal.SIG_DFL)
    c.reset_ignored_internal_signals()
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    os.umask(COMMAND_UMASK)


def _reap(command_pid: int, exit_code: int | None) -> int | None:
    """Reaps every child that has exited; the command's exit code once it is among them."""
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return exit_code
        if pid == 0:
            return exit_code
        if pid == command_pid:
            code = os.waitstatus_to_exitcode(wait_status)
            exit_code = 128 - code if code < 0 else code


def _empty_namespace() -> None:
    """Kills and reaps all that is left, before reporting: once the server has the status, nothing
    of the command is left (the kernel would kill the rest when we exit, but only after our fds close)."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def _supervise(command: subprocess.Popen[bytes], wake_fd: int, status: socket.socket, events_fd: int | None) -> int:
    """Reap until the command exits, or kill everything on request; report; return the status."""
    watching = [wake_fd, status.fileno()]
    exit_code: int | None = None
    killed = False
    while exit_code is None:
        ready = select.select(watching, [], [])[0]
        if status.fileno() in ready:
            os.kill(-1, signal.SIGKILL)  # every process of this namespace but init itself
            killed = True
            watching.remove(status.fileno())
        if wake_fd in ready:
            os.read(wake_fd, 4096)
        exit_code = _reap(command.pid, exit_code)
    _empty_namespace()
    memory = {"oom_kills": oom_kills(events_fd)} if events_fd is not None else {}
    if killed:
        send(status, killed=True, **memory)
        return 128 + signal.SIGKILL
    send(status, exit=exit_code, **memory)
    return exit_code
