"""The socket serves its owner outside any sandbox (issue 13 part 3).

A process in new user and pid namespaces (what a sandboxed ``bash`` command is) that reaches
the socket is refused, as is another uid even when the socket's file mode has been loosened;
the daemon records why, and goes on serving its owner's bridge.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.daemons import Daemon, audit_events, start_daemon
from tests.helpers import run_cli

TEST_USER = "contextd-test"
# Standard library only: it also runs as another user, who cannot read this checkout's venv.
PEER = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
try:  # a refused peer may find the connection closed before its hello is out
    s.sendall(json.dumps({"contextd": 1, "op": "mcp", "cwd": "/", "env": {"CONTEXTD_TENANT": "peer-sentinel-tenant"}}).encode() + b"\\n")
except BrokenPipeError:
    pass
buf = b""
while b"\\n" not in buf:
    chunk = s.recv(4096)
    if not chunk:
        break
    buf += chunk
print(buf.split(b"\\n")[0].decode() or "{}")
"""


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    # Under /tmp, not pytest's owner-only tree, so the other-uid case can reach the socket.
    root = Path(tempfile.mkdtemp(prefix="contextd-peer-", dir="/tmp"))
    os.chmod(root, 0o755)
    cwd = root / "cwd"
    cwd.mkdir()
    running = start_daemon(root / "data", cwd)
    yield running
    running.stop()
    assert "Traceback" not in running.output()
    shutil.rmtree(root, ignore_errors=True)


def _peer(daemon: Daemon, *prefix: str) -> dict:
    run = subprocess.run(
        [*prefix, "/usr/bin/python3", "-c", PEER, str(daemon.socket)], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _still_serves_its_owner(daemon: Daemon) -> None:
    status = run_cli(daemon.data_dir, "status")
    assert status.returncode == 0 and "running" in status.stdout, status.stdout + status.stderr
    assert daemon.process.poll() is None


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_a_process_in_new_user_and_pid_namespaces_is_refused(daemon: Daemon) -> None:
    reply = _peer(daemon, "unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc")
    assert reply["ok"] is False and "namespace" in reply["error"], reply
    [event] = [e for e in audit_events(daemon.data_dir) if e.get("event") == "socket_peer_refused"][-1:]
    assert "namespace" in event["reason"] and "peer-sentinel-tenant" not in json.dumps(event)  # why, never what was sent
    _still_serves_its_owner(daemon)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")
def test_another_uid_is_refused_even_when_the_socket_mode_is_loosened(daemon: Daemon) -> None:
    if subprocess.run(["id", TEST_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", TEST_USER], check=False)
        # (a parallel test worker may have created it meanwhile: what counts is that it exists)
        assert subprocess.run(["id", TEST_USER], capture_output=True).returncode == 0, f"cannot create {TEST_USER}"
    os.chmod(daemon.data_dir, 0o711)
    os.chmod(daemon.socket, 0o666)
    try:
        reply = _peer(daemon, "setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--clear-groups")
    finally:
        os.chmod(daemon.socket, 0o600)
        os.chmod(daemon.data_dir, 0o700)
    assert reply["ok"] is False and f"uid {os.geteuid()} only" in reply["error"], reply
    _still_serves_its_owner(daemon)


def test_the_owner_in_the_daemons_namespaces_is_served(daemon: Daemon) -> None:
    reply = _peer(daemon)
    assert reply["ok"] is True and reply["pid"] == daemon.process.pid
