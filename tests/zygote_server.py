"""The test suite's fork server ("zygote"): an interpreter that has imported what the daemon and
the CLI import, and forks a child per request that runs ``python -m contextd_mcp`` from there.

Run as ``python -m tests.zygote_server FD`` by tests/zygote.py (the client, one per xdist
worker), FD being its end of a SOCK_SEQPACKET socketpair. Each request is one JSON message
(argv, env, cwd, umask, rlimits, new session) carrying four fds with SCM_RIGHTS: a channel
back to the caller, then the child's stdin, stdout and stderr. On the channel the caller gets
``{"pid": N}`` with a pidfd of the child (signals without a pid-reuse race), then
``{"status": W}``, the raw wait status, when the child exits: the zygote is its parent. A
request it cannot serve faithfully gets ``{"refused": why}`` and the caller spawns for real.

Why it is safe to fork here: the zygote is a fresh interpreter (not the pytest worker, which has
threads), it asserts it has one thread (``threading`` and /proc/self/task) before every fork,
and it preloads nothing that starts a thread at import (numpy's OpenBLAS and onnxruntime do:
they are imported by the child, as in a real start). It preloads nothing that reads
``CONTEXTD_*`` at import either (transports/bridge.py and relay.py read their timeouts then:
they and the modules that import them, cli.py among them, load in the child with its env).
Every environment variable read during the preload is recorded; a request whose env differs
on one of them (or on a variable the interpreter or glibc read at start: PYTHON*, LD_*, ...)
is refused. (The sandbox's helper has its own, unrelated zygote: sandbox/helper.py.)

The zygote ends when the caller's end closes (the pytest worker exited, however it died): it
sends SIGTERM to its children, SIGKILL after a grace period, and each child also has
PR_SET_PDEATHSIG, so none outlives it.
"""

from __future__ import annotations

import array
import ctypes
import gc
import importlib
import io
import json
import os
import resource
import runpy
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

# What the daemon and the CLI commands import (their start's ~1 s of CPU). Not numpy nor
# onnxruntime (threads at import), nor the bridge family (env at import): see the docstring.
PRELOAD = (
    "pydantic", "pydantic_settings", "mcp_types", "mcp", "anyio", "httpx", "uvicorn", "starlette", "qdrant_edge",
    "tokenizers", "contextd_mcp.settings", "contextd_mcp.container", "contextd_mcp.daemon", "contextd_mcp.admin",
    "contextd_mcp.adapters.qdrant_edge_store", "contextd_mcp.adapters.token_store", "contextd_mcp.in_process",
    "contextd_mcp.transports.socket_server", "contextd_mcp.transports.http", "contextd_mcp.ui.app",
    "contextd_mcp.tenant_migration", "contextd_mcp.audit_view", "contextd_mcp.docs",
)
# Must not be loaded by the preload (the reasons above); checked after it.
NOT_PRELOADED = (
    "numpy", "onnxruntime", "contextd_mcp.transports.bridge", "contextd_mcp.transports.relay",
    "contextd_mcp.cli", "contextd_mcp.entry",
)
# Read by the interpreter, the dynamic loader or glibc when a process starts, before any import:
# a child must see the zygote's values, or it would not be what a fresh start gives.
STARTUP_ENV_PREFIXES = ("PYTHON", "LD_", "MALLOC_", "GLIBC_", "LC_", "LANG")
# Read during the preload but harmless to differ: sysconfig derives the user site from HOME,
# and a venv has no user site (asserted in preload()).
HARMLESS_ENV = frozenset({"HOME"})
GRACE_S = 5.0  # on shutdown, how long children get after SIGTERM before SIGKILL
MAX_MESSAGE = 1 << 20  # a request (argv, env) is a few KiB
_PR_SET_PDEATHSIG = 1
_MAIN = "contextd_mcp"


def preload() -> frozenset[str]:
    """Imports PRELOAD; returns the environment variables read meanwhile."""
    read: set[str] = set()
    original = os._Environ.__getitem__  # type: ignore[attr-defined]

    def recording(self: Any, key: str) -> Any:
        read.add(key)
        return original(self, key)

    os._Environ.__getitem__ = recording  # type: ignore[attr-defined]
    try:
        for name in PRELOAD:
            importlib.import_module(name)
    finally:
        os._Environ.__getitem__ = original  # type: ignore[attr-defined]
    loaded = [name for name in NOT_PRELOADED if name in sys.modules]
    assert not loaded, f"the preload imported {loaded} (threads or env at import)"
    import site

    assert not site.ENABLE_USER_SITE, "HOME is harmless only without a user site"
    # What the preload allocated stays for the zygote's life: out of the collector's sight, the
    # children's collections do not touch (and copy) those pages.
    gc.collect()
    gc.freeze()
    return frozenset(read - HARMLESS_ENV)


def refusal(env: dict[str, str], sensitive: frozenset[str]) -> str | None:
    """Why a child with ``env`` would not start as a fresh interpreter would (None: it would)."""
    mine = os.environ
    keys = {k for k in {*env, *mine} if k.startswith(STARTUP_ENV_PREFIXES)} | sensitive
    differ = sorted(k for k in keys if env.get(k) != mine.get(k))
    return f"environment differs from the zygote's on {', '.join(differ)}" if differ else None


def single_threaded() -> None:
    tasks = os.listdir("/proc/self/task")
    assert threading.active_count() == 1 and len(tasks) == 1, f"threads at fork: {threading.enumerate()}, tasks {tasks}"


def _reset_signals(ignored: frozenset[int]) -> None:
    """What a fresh interpreter spawned by the caller starts with: what the caller ignores stays
    ignored (exec keeps it: a suite run under nohup ignores SIGHUP), the rest default; SIGINT
    raising KeyboardInterrupt unless ignored, SIGPIPE and SIGXFSZ ignored (Python sets both),
    nothing blocked."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_IGN if sig in ignored else signal.SIG_DFL)
        except (OSError, ValueError):
            continue  # e.g. glibc's real-time signals
    if signal.SIGINT not in ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _fresh_stdio() -> None:
    """New sys.std* objects on fds 0-2, made as the interpreter makes them at start (buffering
    decided by isatty of the child's own fds, not the zygote's)."""
    def stream(fd: int, mode: str, old: Any, errors: str, line_buffering: bool) -> io.TextIOWrapper:
        raw = open(fd, mode + "b", closefd=False)  # noqa: SIM115 - the process's own stdio
        return io.TextIOWrapper(raw, encoding=old.encoding, errors=errors, newline="\n", line_buffering=line_buffering)

    sys.stdin = stream(0, "r", sys.stdin, sys.stdin.errors, False)
    sys.stdout = stream(1, "w", sys.stdout, sys.stdout.errors, os.isatty(1))
    sys.stderr = stream(2, "w", sys.stderr, "backslashreplace", True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _become(request: dict[str, Any], stdio: list[int]) -> None:
    """Turns the forked zygote into the process the caller asked for, up to running main."""
    if request.get("new_session"):
        os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != request["zygote"]:  # the zygote died before the signal was armed
        os._exit(1)
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)  # dup2 makes 0-2 inheritable, as a spawned child has them
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    _reset_signals(frozenset(request["ignored"]))
    os.umask(request["umask"])
    for name, (soft, hard) in request["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])  # putenv too: C code and grandchildren see the child's env
    sys.path[0] = os.getcwd()  # what `python -m` puts first
    _fresh_stdio()


def _exit_code(exc: SystemExit) -> int:
    """The exit status the interpreter gives an uncaught SystemExit."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _run_main(argv: list[str]) -> int:
    sys.argv = [_MAIN, *argv]  # runpy sets argv[0] to __main__.py's path, as `-m` does
    try:
        runpy.run_module(_MAIN, run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exc:
        return _exit_code(exc)
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.stderr.flush()
        # The interpreter ends by SIGINT then, so that the parent sees the signal.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    except BaseException:  # noqa: BLE001 - any uncaught error: printed, status 1, as the interpreter does
        sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
        return 1


def _finalize(code: int) -> int:
    """What Py_FinalizeEx does before the process ends: non-daemon threads joined, atexit
    handlers run, stdio flushed (a flush that fails makes status 120, as there)."""
    threading._shutdown()  # type: ignore[attr-defined]
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120
    return code


def child(request: dict[str, Any], stdio: list[int]) -> None:
    """In the forked child: never returns."""
    code = 1
    try:
        _become(request, stdio)
        code = _finalize(_run_main(request["argv"]))
    except BaseException:  # noqa: BLE001 - the child must end here, whatever happened
        traceback.print_exc()
    finally:
        os._exit(code)


class Server:
    def __init__(self, control: socket.socket, sensitive: frozenset[str]) -> None:
        self.control = control
        self.sensitive = sensitive
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, channel)
        self.forks = 0

    def serve(self) -> None:
        self.selector.register(self.control, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.control:
                    if not self._request():
                        self._shutdown()
                        return
                else:
                    self._reap(int(key.fd))

    def _request(self) -> bool:
        fds = array.array("i")
        message, ancdata, _, _ = self.control.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(4 * fds.itemsize))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        if not message:
            return False
        channel = socket.socket(fileno=fds[0])
        stdio = list(fds[1:4])
        try:
            request = json.loads(message)
            why = refusal(request["env"], self.sensitive)
            if why is not None:
                channel.send(json.dumps({"refused": why}).encode())
                channel.close()
                return True
            self._fork(request, stdio, channel)
        finally:
            for fd in stdio:
                os.close(fd)
        return True

    def _fork(self, request: dict[str, Any], stdio: list[int], channel: socket.socket) -> None:
        single_threaded()
        sys.stdout.flush()
        sys.stderr.flush()
        request["zygote"] = os.getpid()
        pid = os.fork()
        if pid == 0:
            child(request, stdio)
        self.forks += 1
        pidfd = os.pidfd_open(pid)
        channel.sendmsg([json.dumps({"pid": pid}).encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [pidfd]))])
        self.children[pidfd] = (pid, channel)
        self.selector.register(pidfd, selectors.EVENT_READ)

    def _reap(self, pidfd: int) -> None:
        pid, channel = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        _, status = os.waitpid(pid, 0)
        os.close(pidfd)
        try:
            channel.send(json.dumps({"status": status}).encode())
        except OSError:
            pass  # the caller dropped its handle: nobody waits for this child
        channel.close()

    def _shutdown(self) -> None:
        """The caller is gone: children get SIGTERM, then SIGKILL after GRACE_S."""
        for pidfd in self.children:
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while self.children and time.monotonic() < deadline:
            for key, _ in self.selector.select(max(0.0, deadline - time.monotonic())):
                if key.fileobj is not self.control:
                    self._reap(int(key.fd))
        for pidfd, (pid, _) in list(self.children.items()):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.waitpid(pid, 0)
        print(f"zygote {os.getpid()}: {self.forks} forks", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[0]))
    sensitive = preload()
    single_threaded()
    control.send(json.dumps({"ready": os.getpid(), "sensitive": sorted(sensitive)}).encode())
    Server(control, sensitive).serve()
    return 0


if __name__ == "__main__":
    # Through the importable module, not this __main__ copy: the child's `python -m` replaces
    # sys.modules["__main__"], and the code running then must not live in it.
    from tests.zygote_server import main as _main

    sys.exit(_main(sys.argv[1:]))
