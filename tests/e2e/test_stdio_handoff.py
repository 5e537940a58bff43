"""The bridge hands its stdio to the daemon (transports/handoff*.py), through the real command.

The bridge is still the process the client manages: closing its stdin, killing it or the
daemon going away must each end or carry the session as the relay did (the daemon restarts
themselves are tests/e2e/test_bridge_reconnect.py, which runs on the hand-off by default). And
the socket accepts descriptors from any process of the same user outside a sandbox: only pipes
and stream sockets are served, never a file the daemon would then write replies into.
"""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.transports.hello import PROTOCOL
from tests.e2e.daemons import audit_events, start_as_bridge, start_daemon
from tests.helpers import CLI, env_for, run_cli

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def _send(process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    process.stdin.flush()


def _reply(process: subprocess.Popen[bytes], timeout: float = 90) -> dict[str, Any] | None:
    assert process.stdout is not None
    if not select.select([process.stdout], [], [], timeout)[0]:
        return None
    line = process.stdout.readline()
    return json.loads(line) if line else None


@contextmanager
def raw_bridge(data_dir: Path, cwd: Path, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``contextd-mcp stdio`` on pipes, initialized; killed if a test leaves it running. Its
    first daemon is started for it, as it would start it (daemons.start_as_bridge)."""
    start_as_bridge(data_dir, env_for(data_dir, **extra))
    process = subprocess.Popen([*CLI, "stdio"], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env_for(data_dir, **extra))
    try:
        _send(process, INIT)
        reply = _reply(process)
        assert reply is not None and reply.get("id") == 1 and "result" in reply, reply
        _send(process, INITIALIZED)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def status(data_dir: Path) -> dict[str, Any]:
    done = run_cli(data_dir, "status", "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def wait_connections(data_dir: Path, count: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        now = status(data_dir)
        if now["connections"] == count or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def _pipe_of(pid: int, fd: int) -> str:
    return os.readlink(f"/proc/{pid}/fd/{fd}")


def holders(link: str) -> dict[int, list[int]]:
    """Every process (pid → its fds) holding the pipe or socket named ``link`` ("pipe:[N]")."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = [int(fd.name) for fd in (entry / "fd").iterdir() if os.readlink(fd) == link]
        except OSError:
            continue
        if fds:
            found[int(entry.name)] = fds
    return found


def daemon_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "daemon.json").read_text())["pid"])


def test_the_daemon_serves_the_clients_pipes_close_on_exec_and_no_sandboxed_process_holds_them(
    data_dir: Path, project_dir: Path
) -> None:
    subprocess.run(["git", "init", "-q", str(project_dir)], check=True)
    with raw_bridge(data_dir, project_dir) as bridge:
        _send(bridge, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": {"name": "bash", "arguments": {"command": "sleep 0.3; echo handed"}}})
        reply = _reply(bridge)
        assert reply is not None and reply["id"] == 2, reply
        now = status(data_dir)
        assert now["connections"] == 1 and now["handed_off"] == 1, now
        daemon = daemon_pid(data_dir)
        for fd in (0, 1):
            link = _pipe_of(bridge.pid, fd)
            held = holders(link)
            # The client (this test), the bridge and the daemon: no sandbox helper or command.
            assert set(held) <= {os.getpid(), bridge.pid, daemon}, (link, held)
            assert daemon in held, (link, held)
            for daemon_fd in held[daemon]:
                flags = Path(f"/proc/{daemon}/fdinfo/{daemon_fd}").read_text().split("flags:")[1].split()[0]
                assert int(flags, 8) & 0o2000000, f"fd {daemon_fd} of the daemon is not close-on-exec: {flags}"
    assert "serving the client's stdio directly" in (data_dir / "daemon.log").read_text()


def test_the_relay_is_kept_behind_a_flag(data_dir: Path, project_dir: Path) -> None:
    with raw_bridge(data_dir, project_dir, CONTEXTD_STDIO_HANDOFF="0") as bridge:
        _send(bridge, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        reply = _reply(bridge)
        assert reply is not None and reply["id"] == 2 and reply["result"]["tools"], reply
        now = status(data_dir)
        assert now["connections"] == 1 and now["handed_off"] == 0, now


def test_closing_stdin_ends_the_bridge_and_the_session(data_dir: Path, project_dir: Path) -> None:
    with raw_bridge(data_dir, project_dir) as bridge:
        assert status(data_dir)["handed_off"] == 1
        assert bridge.stdin is not None
        bridge.stdin.close()
        assert bridge.wait(30) == 0
        assert _reply(bridge, 5) is None  # stdout at its end: nothing more, nobody writes it
        now = wait_connections(data_dir, 0)
        assert now["connections"] == 0 and now["handed_off"] == 0, now


def test_killing_the_bridge_ends_the_session_and_closes_the_clients_pipes(data_dir: Path, project_dir: Path) -> None:
    with raw_bridge(data_dir, project_dir) as bridge:
        assert status(data_dir)["handed_off"] == 1
        out = _pipe_of(bridge.pid, 1)
        daemon = daemon_pid(data_dir)
        os.kill(bridge.pid, signal.SIGKILL)
        bridge.wait(30)
        assert bridge.stdout is not None
        # The daemon closes its copy: the client's read end sees the end of the stream.
        assert select.select([bridge.stdout], [], [], 30)[0] and bridge.stdout.read() == b""
        assert daemon not in holders(out)
        now = wait_connections(data_dir, 0)
        assert now["connections"] == 0 and now["handed_off"] == 0, now


def test_a_daemon_killed_mid_line_gives_the_bridge_back_the_partial_line(data_dir: Path, project_dir: Path) -> None:
    """The daemon had read the first half of a request when it died: the bridge, which got a
    copy of it, sends it whole to the next daemon, which answers it."""
    with raw_bridge(data_dir, project_dir, CONTEXTD_RECONNECT_SECONDS="90") as bridge:
        line = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
            "name": "memory_store", "arguments": {"title": "Half a line", "content": "Split across a restart."}}}).encode()
        assert bridge.stdin is not None
        bridge.stdin.write(line[:40])
        bridge.stdin.flush()
        time.sleep(0.5)  # the daemon reads the half (and copies it to the bridge)
        first = daemon_pid(data_dir)
        os.kill(first, signal.SIGKILL)
        time.sleep(0.5)
        bridge.stdin.write(line[40:] + b"\n")
        bridge.stdin.flush()
        reply = _reply(bridge, 90)
        assert reply is not None and reply["id"] == 7 and "result" in reply, reply
        assert not reply["result"].get("isError"), reply
        assert daemon_pid(data_dir) != first
        assert status(data_dir)["handed_off"] == 1


# -- what a same-user process can hand the socket --------------------------------------------


@contextmanager
def handing(data_dir: Path, cwd: Path) -> Iterator[socket.socket]:
    """A connection to the daemon whose hello asked for the hand-off, and was offered it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(data_dir / "contextd.sock"))
    try:
        hello = {"contextd": PROTOCOL, "op": "mcp", "cwd": str(cwd), "env": {}, "pid": os.getpid(), "handoff": 1}
        sock.sendall(json.dumps(hello).encode() + b"\n")
        reply = json.loads(_line(sock))
        assert reply["ok"] and reply["handoff"] == 1, reply
        yield sock
    finally:
        sock.close()


def _line(sock: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def _hand(sock: socket.socket, fds: list[int]) -> dict[str, Any]:
    sock.sendmsg([b'{"prefix": 0, "replay": []}\n'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    line = _line(sock)
    return dict(json.loads(line)) if line else {"closed": True}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("handoff-attacks")
    data_dir, cwd = root / "data", root / "cwd"
    cwd.mkdir()
    serving = start_daemon(data_dir, cwd)
    try:
        yield data_dir, cwd
    finally:
        serving.stop()


@pytest.mark.parametrize("as_stdout", ["regular file", "directory"])
def test_a_file_handed_as_stdout_is_refused_and_never_written(daemon: tuple[Path, Path], tmp_path: Path, as_stdout: str) -> None:
    data_dir, cwd = daemon
    target = tmp_path / "victim"
    if as_stdout == "directory":
        target.mkdir()
        out = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    else:
        out = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
    read_end, write_end = os.pipe()
    try:
        with handing(data_dir, cwd) as sock:
            os.write(write_end, json.dumps(INIT).encode() + b"\n")  # would be answered into the file
            answer = _hand(sock, [read_end, out])
            assert answer.get("ok") is False and "stdout must be a pipe or a socket" in answer["error"], answer
        time.sleep(0.5)
        if as_stdout == "regular file":
            assert target.stat().st_size == 0
    finally:
        for fd in (read_end, write_end, out):
            os.close(fd)
    assert any(e.get("event") == "handoff_refused" for e in audit_events(data_dir))
    assert status(data_dir)["running"]  # and it still serves


def test_a_file_handed_as_stdin_is_refused_and_never_read(daemon: tuple[Path, Path], tmp_path: Path) -> None:
    data_dir, cwd = daemon
    source = tmp_path / "requests"
    source.write_text(json.dumps(INIT) + "\n")
    read_end, write_end = os.pipe()
    src = os.open(source, os.O_RDONLY)
    try:
        with handing(data_dir, cwd) as sock:
            answer = _hand(sock, [src, write_end])
            assert answer.get("ok") is False and "stdin must be a pipe or a socket" in answer["error"], answer
        assert os.lseek(src, 0, os.SEEK_CUR) == 0  # not a byte read
        assert not select.select([read_end], [], [], 0.5)[0]  # nothing answered
    finally:
        for fd in (read_end, write_end, src):
            os.close(fd)


@pytest.mark.parametrize("count", [1, 3])
def test_anything_but_two_descriptors_is_refused(daemon: tuple[Path, Path], count: int) -> None:
    data_dir, cwd = daemon
    pipes = [os.pipe() for _ in range(2)]
    fds = [pipes[0][0], pipes[1][1], pipes[1][1]][:count]
    try:
        with handing(data_dir, cwd) as sock:
            answer = _hand(sock, fds)
        assert answer.get("ok") is False and "descriptors" in answer["error"], answer
    finally:
        for a, b in pipes:
            os.close(a)
            os.close(b)


def test_the_write_end_of_a_pipe_is_refused_as_stdin(daemon: tuple[Path, Path]) -> None:
    data_dir, cwd = daemon
    a_read, a_write = os.pipe()
    b_read, b_write = os.pipe()
    try:
        with handing(data_dir, cwd) as sock:
            answer = _hand(sock, [a_write, b_write])
        assert answer.get("ok") is False and "stdin is not open for reading" in answer["error"], answer
    finally:
        for fd in (a_read, a_write, b_read, b_write):
            os.close(fd)


def test_a_bridge_on_socketpairs_hands_them_over_and_leaves_them_blocking(data_dir: Path, project_dir: Path) -> None:
    """Node (Claude Code) gives a child socketpairs, not pipes, for its stdio."""
    ours_in, theirs_in = socket.socketpair()
    ours_out, theirs_out = socket.socketpair()
    start_as_bridge(data_dir, env_for(data_dir))
    process = subprocess.Popen([*CLI, "stdio"], cwd=project_dir, stdin=theirs_in, stdout=theirs_out,
                               env=env_for(data_dir))
    # theirs_in stays open here: the same open file description as the bridge's stdin, whose
    # flags the daemon changes while it serves it.
    theirs_out.close()
    ours_out.settimeout(90)
    try:
        reader = ours_out.makefile("rb")
        for message in (INIT, INITIALIZED, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}):
            ours_in.sendall(json.dumps(message).encode() + b"\n")
        replies = [json.loads(reader.readline()) for _ in range(2)]
        assert [r["id"] for r in replies] == [1, 2] and replies[1]["result"]["tools"], replies
        assert status(data_dir)["handed_off"] == 1
        link = _pipe_of(process.pid, 0)
        assert link.startswith("socket:"), link
        assert not os.get_blocking(theirs_in.fileno())  # the daemon serves it, non-blocking
        ours_in.shutdown(socket.SHUT_WR)
        assert process.wait(30) == 0
        assert wait_connections(data_dir, 0)["handed_off"] == 0
        assert os.get_blocking(theirs_in.fileno())  # given back as it came
    finally:
        if process.poll() is None:
            process.kill()
        for sock in (ours_in, ours_out, theirs_in):
            sock.close()
