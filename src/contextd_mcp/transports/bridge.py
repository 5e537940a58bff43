"""``contextd-mcp stdio``: pumps MCP between an IDE's stdin/stdout and the daemon's socket.

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
import threading
import time
from pathlib import Path

from contextd_mcp.paths import DataPaths
from contextd_mcp.transports.hello import hello

START_TIMEOUT_S = float(os.environ.get("CONTEXTD_START_TIMEOUT", "60"))
# A daemon a bridge started stops after this long with no agent connected.
IDLE_EXIT_S = os.environ.get("CONTEXTD_IDLE_EXIT_SECONDS", "1800")


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


def start_daemon(paths: DataPaths) -> socket.socket:
    paths.ensure()
    with open(paths.start_lock, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another bridge may be starting it right now
        sock = connect(paths)
        if sock is not None:
            return sock
        import subprocess  # only the first bridge pays for it

        # A bridge's CONTEXTD_TOOLSETS is its own connection's (sent in its hello), not every
        # later agent's default.
        env = {k: v for k, v in os.environ.items() if k != "CONTEXTD_TOOLSETS"}
        env["CONTEXTD_DATA_DIR"] = str(paths.root)
        with open(paths.log, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "contextd_mcp", "serve", "--log-file", str(paths.log), "--idle-exit", IDLE_EXIT_S],
                cwd=str(paths.root),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # outlives this bridge and the IDE's process group
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            sock = connect(paths)
            if sock is not None:
                return sock
            if process.poll() is not None:
                raise BridgeError(f"the daemon exited with status {process.returncode}:\n{_log_tail(paths)}")
            time.sleep(0.02)
        raise BridgeError(f"the daemon did not answer within {START_TIMEOUT_S:.0f}s:\n{_log_tail(paths)}")


def open_session(
    paths: DataPaths, op: str = "mcp", autostart: bool = True, fields: dict | None = None
) -> tuple[socket.socket, dict, bytes]:
    sock = connect(paths)
    if sock is None:
        if not autostart:
            raise BridgeError("no daemon is running")
        sock = start_daemon(paths)
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


def _pump_stdin(sock: socket.socket) -> None:
    try:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            sock.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sock.shutdown(socket.SHUT_WR)  # the daemon sees EOF and ends the session
        except OSError:
            pass


def run_bridge(paths: DataPaths) -> int:
    try:
        sock, _, rest = open_session(paths)
    except (BridgeError, OSError) as exc:
        print(f"contextd-mcp: cannot reach the daemon for {paths.root}: {exc}", file=sys.stderr)
        return 1
    if rest:
        os.write(1, rest)
    threading.Thread(target=_pump_stdin, args=(sock,), daemon=True).start()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            view = memoryview(data)
            while view:
                written = os.write(1, view)
                view = view[written:]
    except (OSError, KeyboardInterrupt):
        return 1
    finally:
        sock.close()
    return 0


def request(paths: DataPaths, op: str) -> dict | None:
    """A control request (status, stop) to a running daemon; None when none answers."""
    try:
        sock, reply, _ = open_session(paths, op, autostart=False)
    except (BridgeError, OSError):
        return None
    sock.close()
    return reply


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # an exited child not yet reaped by its parent is a zombie: gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


def data_paths(explicit: str | None = None) -> DataPaths:
    from contextd_mcp.paths import default_data_dir

    return DataPaths(Path(explicit).expanduser().resolve() if explicit else default_data_dir())
