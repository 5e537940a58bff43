"""``contextd-mcp stdio``: reaches the daemon's socket for an IDE (relay.py moves the MCP lines).

Standard library only, and nothing heavy: its start-up is the agent's wait. When no
daemon answers, it starts one (detached), under a lock so that two bridges starting
at once start one daemon.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from contextd_mcp import env
from contextd_mcp.paths import DataPaths
from contextd_mcp.transports.hello import hello

START_TIMEOUT_S = env.start_timeout_s()
# A daemon a bridge started stops after this long with no agent connected.
IDLE_EXIT_S = env.idle_exit_s()


class BridgeError(RuntimeError):
    pass


def connect(paths: DataPaths) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(paths.socket))
    except OSError:
        sock.close()
        return None
    return sock


def _log_tail(paths: DataPaths, lines: int = 15) -> str:
    try:
        return "\n".join(paths.log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no daemon log)"


def start_daemon(paths: DataPaths, timeout: float = START_TIMEOUT_S) -> socket.socket:
    """Connect, starting a daemon when none answers and no process holds the data directory.

    A holder that does not answer yet is a daemon starting (one a bridge that since died
    started, ``serve --replace``) or one still flushing before it exits: wait for its socket
    rather than start a second daemon that would only fail on the lock.
    """
    paths.ensure()
    with open(paths.start_lock, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another bridge may be starting it right now
        process = None
        deadline = time.monotonic() + timeout
        holder = None
        while time.monotonic() < deadline:
            sock = connect(paths)
            if sock is not None:
                return sock
            holder = owner_pid(paths)
            held = holder is not None
            if process is None and not held:
                process = _spawn(paths)
            elif process is not None and process.poll() is not None and not held:
                raise BridgeError(f"the daemon exited with status {process.returncode}:\n{_log_tail(paths)}")
            time.sleep(0.02)
        if holder is not None:
            raise BridgeError(f"process {holder} holds {paths.root} but did not answer on its socket within {timeout:.0f}s")
        raise BridgeError(f"the daemon did not answer within {timeout:.0f}s:\n{_log_tail(paths)}")


def _spawn(paths: DataPaths) -> Any:
    import subprocess  # only the first bridge pays for it

    # A bridge's CONTEXTD_TOOLSETS is its own connection's (sent in its hello), not every
    # later agent's default.
    environ = {k: v for k, v in os.environ.items() if k != env.TOOLSETS}
    environ[env.DATA_DIR] = str(paths.root)
    with open(paths.log, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "contextd_mcp", "serve", "--log-file", str(paths.log), "--idle-exit", IDLE_EXIT_S],
            cwd=str(paths.root),
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives this bridge and the IDE's process group
        )


def open_session(
    paths: DataPaths, op: str = "mcp", autostart: bool = True, fields: dict[str, Any] | None = None,
    start_timeout: float = START_TIMEOUT_S,
) -> tuple[socket.socket, dict[str, Any], bytes]:
    sock = connect(paths)
    if sock is None:
        if not autostart:
            raise BridgeError("no daemon is running")
        sock = start_daemon(paths, start_timeout)
    sock.sendall(hello(op, **(fields or {})))
    buffer = b""
    while b"\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise BridgeError("the daemon closed the connection during the handshake")
        buffer += chunk
    line, rest = buffer.split(b"\n", 1)
    reply = json.loads(line)
    if not reply.get("ok"):
        raise BridgeError(str(reply.get("error")))
    return sock, reply, rest


def run_bridge(paths: DataPaths, scope_env: dict[str, str] | None = None) -> int:
    """The IDE's stdio, relayed to the daemon across its restarts (relay.py)."""
    from contextd_mcp.transports.relay import run_relay

    return run_relay(paths, scope_env)


def request(paths: DataPaths, op: str) -> dict[str, Any] | None:
    """A control request (status, stop) to a running daemon; None when none answers."""
    try:
        sock, reply, _ = open_session(paths, op, autostart=False)
    except (BridgeError, OSError):
        return None
    sock.close()
    return reply


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # an exited child not yet reaped by its parent is a zombie: gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def owner_pid(paths: DataPaths) -> int | None:
    """The process holding the data directory's owner lock (a daemon starting, serving or
    still flushing), read from /proc/locks, so that looking never takes the lock from it."""
    try:
        st = paths.daemon_lock.stat()
        locks = Path("/proc/locks").read_text()
    except OSError:
        return None
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in locks.splitlines():
        fields = line.split()  # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" ("->" when blocked)
        if "FLOCK" in fields and "->" not in fields and len(fields) >= 6 and fields[5] == inode:
            return int(fields[4])
    return None


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def data_paths(explicit: str | None = None) -> DataPaths:
    from contextd_mcp.paths import default_data_dir

    return DataPaths(Path(explicit).expanduser().resolve() if explicit else default_data_dir())
