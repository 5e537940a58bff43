"""Start ``python -m contextd_mcp`` processes from the worker's fork server (tests/zygote_server.py).

A fresh interpreter costs a daemon or a CLI command ≈ 1 s of CPU in imports (the MCP SDK's
types, pydantic, our modules) before it does anything; the e2e tests start a hundred and more.
``popen`` and ``run`` here take the places of ``subprocess.Popen`` and ``subprocess.run`` for
those commands: the same entry point (``contextd_mcp/__main__.py``), argv, env, cwd and fds,
forked from an interpreter that has imported them already. The handle is Popen-like (pid,
poll, wait, returncode, kill, terminate, send_signal, communicate), its status reported by the
zygote, the child's parent.

One zygote per pytest process (each xdist worker), started at the first request and ended
with the process (tests/conftest.py's ``pytest_unconfigure``, or its socket's EOF when the
worker dies). ``CONTEXTD_TEST_ZYGOTE=0`` spawns every process for real, to check that a
failure is not the zygote's. A test about a process's own start (imports, a new home, the
installed command, what a bridge spawns) passes ``zygote=False`` or uses subprocess itself.
"""

from __future__ import annotations

import array
import atexit
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
SWITCH = "CONTEXTD_TEST_ZYGOTE"
START_TIMEOUT_S = 120.0  # the zygote's preload: ≈ 1 s of CPU, much more on a loaded machine
MAX_MESSAGE = 1 << 16
_RLIMITS = ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
            "RLIMIT_FSIZE", "RLIMIT_CPU", "RLIMIT_MEMLOCK", "RLIMIT_NICE")

# How this process's starts went: "forked", or "spawned: <why>" (read by the bench and the stats).
starts: Counter[str] = Counter()


# Set by the test suite (tests/conftest.py) and by bench/bench_zygote.py: anything else importing
# the suite's helpers (the benches measure real starts, RSS and arenas) spawns for real.
in_use = False


def enabled() -> bool:
    return in_use and os.environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


class Zygote:
    """The client end of one fork server."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._lock = threading.Lock()
        self._control = ours
        log = open(os.environ.get("CONTEXTD_TEST_ZYGOTE_LOG", os.devnull), "ab")  # noqa: SIM115 - the zygote's stderr
        with log:
            env = {**os.environ, "HF_HUB_OFFLINE": "1"}
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.zygote_server", str(theirs.fileno())], cwd=ROOT, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(theirs.fileno(),), start_new_session=True,
            )
        theirs.close()
        ours.settimeout(START_TIMEOUT_S)
        try:
            ready = json.loads(ours.recv(MAX_MESSAGE) or b"{}")
        finally:
            ours.settimeout(None)
        if "ready" not in ready:
            self.process.kill()
            raise RuntimeError(f"the zygote did not start (exit {self.process.wait()}); CONTEXTD_TEST_ZYGOTE_LOG=file says why")
        self.pid = int(ready["ready"])
        self.sensitive = frozenset(ready["sensitive"])

    def fork(self, argv: list[str], env: dict[str, str], cwd: str, stdio: list[int], new_session: bool) -> ZygoteProcess | str:
        """A child running ``python -m contextd_mcp *argv``, or why the zygote refused."""
        mine, channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = {
            "argv": argv, "env": env, "cwd": cwd, "new_session": new_session, **_inherited(),
            "rlimits": {name: resource.getrlimit(getattr(resource, name)) for name in _RLIMITS},
        }
        fds = array.array("i", [channel.fileno(), *stdio])
        with self._lock:
            self._control.sendmsg([json.dumps(request).encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        channel.close()
        reply, pidfd = _receive(mine)
        if "refused" in reply:
            mine.close()
            return str(reply["refused"])
        assert pidfd is not None, reply
        return ZygoteProcess(int(reply["pid"]), pidfd, mine, [*argv])

    def close(self) -> None:
        """Ends the zygote: it stops its children (SIGTERM, then SIGKILL) and exits."""
        self._control.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _inherited() -> dict[str, Any]:
    """What a spawned child would take from this process, read from /proc/self/status: the umask
    (os.umask would race other threads to read it), and the signals it ignores, which exec keeps
    ignored (subprocess restores SIGPIPE and SIGXFSZ, which the new interpreter ignores again)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    ignored = int(fields["SigIgn"], 16)
    return {"umask": int(fields["Umask"], 8), "ignored": [sig for sig in range(1, 65) if ignored >> (sig - 1) & 1]}


def _receive(sock: socket.socket) -> tuple[dict[str, Any], int | None]:
    fds = array.array("i")
    message, ancdata, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not message:
        raise ConnectionError("the zygote closed the channel without a reply (did it die?)")
    return json.loads(message), (fds[0] if fds else None)


class ZygoteProcess:
    """What ``subprocess.Popen`` offers, for a zygote's child."""

    def __init__(self, pid: int, pidfd: int, channel: socket.socket, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        self.stdin: IO[Any] | None = None
        self.stdout: IO[Any] | None = None
        self.stderr: IO[Any] | None = None
        self._pidfd = pidfd
        self._channel = channel
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        return self._status(0.0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._status(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def _status(self, timeout: float | None) -> int | None:
        # In short slices, so that a signal sent meanwhile (another thread) need not wait for this.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self.returncode is not None:
                    return self.returncode
                left = 0.1 if deadline is None else min(0.1, max(0.0, deadline - time.monotonic()))
                self._channel.settimeout(left)
                try:
                    reply, _ = _receive(self._channel)
                except (TimeoutError, BlockingIOError):
                    if deadline is not None and time.monotonic() >= deadline:
                        return None
                    continue
                self.returncode = os.waitstatus_to_exitcode(int(reply["status"]))
                self._channel.close()
                os.close(self._pidfd)
                return self.returncode

    def send_signal(self, sig: int) -> None:
        # Through the pidfd: once reaped, the pid may name another process; the pidfd never does.
        with self._lock:
            if self.returncode is None:
                try:
                    signal.pidfd_send_signal(self._pidfd, sig)
                except ProcessLookupError:
                    pass  # exited, not yet reported

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, input: bytes | str | None = None, timeout: float | None = None) -> tuple[Any, Any]:
        """Feeds stdin, reads stdout and stderr to their end (pipes this handle made), then waits."""
        deadline = None if timeout is None else time.monotonic() + timeout
        readers = {name: _Drain(stream) for name, stream in (("out", self.stdout), ("err", self.stderr)) if stream is not None}
        if self.stdin is not None:
            try:
                if input:
                    self.stdin.write(input)
                self.stdin.close()
            except BrokenPipeError:
                pass
        for reader in readers.values():
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return (readers["out"].data if "out" in readers else None, readers["err"].data if "err" in readers else None)

    def __enter__(self) -> ZygoteProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()


class _Drain(threading.Thread):
    def __init__(self, stream: IO[Any]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.data: Any = None
        self.start()

    def run(self) -> None:
        self.data = self.stream.read()
        self.stream.close()


_shared: Zygote | None = None
_shared_lock = threading.Lock()


def shared() -> Zygote:
    """This process's zygote, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.process.poll() is not None:
            _shared = Zygote()
            atexit.register(_shared.close)
        return _shared


def close_shared() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None


def _stdio(stream: Any, fd: int, mode: str, text: bool) -> tuple[int, IO[Any] | None, int | None]:
    """(fd for the child, our end as a file, fd to close once the child has it) for a Popen-style
    argument: None (ours), DEVNULL, PIPE, STDOUT (for stderr), a file object or an fd."""
    if stream is None:
        return fd, None, None
    if stream == subprocess.DEVNULL:
        null = os.open(os.devnull, os.O_RDWR)
        return null, None, null
    if stream == subprocess.PIPE:
        read, write = os.pipe()
        ours, theirs = (write, read) if mode == "w" else (read, write)
        return theirs, open(ours, mode + ("" if text else "b")), theirs
    return (stream if isinstance(stream, int) else stream.fileno()), None, None


def popen(args: list[str], *, env: dict[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
          stdin: Any = None, stdout: Any = None, stderr: Any = None, text: bool = False,
          start_new_session: bool = False, zygote: bool = True) -> Any:
    """``subprocess.Popen(args, ...)`` for ``args = CLI + argv`` (tests/helpers.py's CLI), forked
    from the zygote unless it is off (``zygote=False``, CONTEXTD_TEST_ZYGOTE=0) or refuses."""
    env = dict(os.environ if env is None else env)
    cwd = os.fspath(cwd) if cwd is not None else os.getcwd()
    spawn = {"env": env, "cwd": cwd, "stdin": stdin, "stdout": stdout, "stderr": stderr, "text": text,
             "start_new_session": start_new_session}
    if not (zygote and enabled()):
        starts["spawned: off"] += 1
        return subprocess.Popen(args, **spawn)
    assert args[:3] == [sys.executable, "-m", "contextd_mcp"], f"the zygote runs contextd_mcp only, not {args[:3]}"
    if not os.path.isdir(cwd):
        raise FileNotFoundError(2, "No such file or directory", cwd)
    made = [_stdio(stdin, 0, "w", text), _stdio(stdout, 1, "r", text)]
    made.append((made[1][0], None, None) if stderr == subprocess.STDOUT else _stdio(stderr, 2, "r", text))
    try:
        child = shared().fork(args[3:], env, cwd, [fd for fd, _, _ in made], start_new_session)
    finally:
        for _, _, close in made:
            if close is not None:
                os.close(close)
    if isinstance(child, str):
        for _, ours, _ in made:
            if ours is not None:
                ours.close()
        starts[f"spawned: {child}"] += 1
        return subprocess.Popen(args, **spawn)
    starts["forked"] += 1
    child.stdin, child.stdout, child.stderr = (ours for _, ours, _ in made)
    return child


def run(args: list[str], *, input: bytes | str | None = None, capture_output: bool = False, timeout: float | None = None,
        text: bool = False, zygote: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(args, ...)`` through ``popen``: kills the child on timeout, as run does."""
    if capture_output:
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    process = popen(args, text=text, zygote=zygote, **kwargs)
    try:
        out, err = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def finish() -> None:
    """The end of the pytest process: the zygote is closed, and with CONTEXTD_TEST_ZYGOTE_STATS=FILE
    how this process's starts went is appended there as a JSON line (for the suite's figures)."""
    close_shared()
    stats = os.environ.get("CONTEXTD_TEST_ZYGOTE_STATS")
    if stats and starts:
        with open(stats, "a") as out:
            out.write(json.dumps({"pid": os.getpid(), **starts}) + "\n")
