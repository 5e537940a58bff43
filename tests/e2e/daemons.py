"""Start the real daemon and connect real MCP clients to it (HTTP with a token, or its socket)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from contextd_mcp.transports.framing import jsonrpc_streams
from contextd_mcp.transports.hello import PROTOCOL
from tests import zygote as forks
from tests.helpers import CLI, env_for, free_port, run_cli, stop_daemon


@dataclass
class Daemon:
    process: Any  # subprocess.Popen, or its like for a zygote's child (tests/zygote.py)
    data_dir: Path
    base: str | None  # http://host:port when serving HTTP

    @property
    def socket(self) -> Path:
        return self.data_dir / "contextd.sock"

    @property
    def audit(self) -> Path:
        return self.data_dir / "audit.log"

    @property
    def log(self) -> Path:
        # A file, not a pipe: a daemon logging into a pipe nobody reads would block once it fills.
        return self.data_dir.parent / f"{self.data_dir.name}-serve-{self.process.pid}.out"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            # The stop request `contextd-mcp stop` sends, without a new interpreter (helpers.py).
            assert stop_daemon(self.data_dir) == self.process.pid, self.output()
            assert self.process.wait(timeout=30) == 0


def create_token(data_dir: Path, *args: str) -> str:
    created = run_cli(data_dir, "token", "create", *args)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def start_daemon(data_dir: Path, cwd: Path, *args: str, http: str | None = None, zygote: bool = True, **env: str) -> Daemon:
    """``contextd-mcp serve`` in the foreground; returns once its socket (and HTTP) answer.

    Forked from the worker's zygote (tests/zygote.py: the same entry point without a fresh
    interpreter's ≈ 1 s of imports) unless ``zygote=False``, for tests of a start itself."""
    command = [*CLI, "serve", *(["--http", http] if http else []), *args]
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    out = data_dir.parent / f"{data_dir.name}-serve-starting.out"
    with open(out, "wb") as sink:
        process = forks.popen(command, env=env_for(data_dir, **env), cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, zygote=zygote)
    daemon = Daemon(process, data_dir, f"http://{http.replace('0.0.0.0', '127.0.0.1')}" if http else None)
    out.replace(daemon.log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daemon exited {process.returncode}: {daemon.output()}")
        if _announced(data_dir, process.pid) and (daemon.base is None or _healthy(daemon.base)):
            return daemon
        time.sleep(0.05)
    process.kill()
    raise AssertionError("daemon did not come up")


def start_as_bridge(data_dir: Path, env: dict[str, str]) -> None:
    """The daemon a bridge with ``env`` would start on ``data_dir`` when none runs, as it would
    (transports/bridge.py ``_spawn``: its argv, env, cwd, log and session), but forked from the
    worker's zygote; returns once it has announced itself. Tests that need a bridge's daemon,
    not its start, call this first (tests/e2e/test_stdio.py ``stdio``); the bridge then finds it
    running. The bridge's own start stays tested where it is the subject (test_stdio.py,
    test_two_bridges.py, test_bridge_reconnect.py, test_stdio_handoff.py, test_stdio_flags.py)."""
    from contextd_mcp import env as names
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.transports.bridge import connect, owner_pid

    paths = DataPaths(data_dir)
    running = connect(paths)
    if running is not None:
        running.close()
        return
    if owner_pid(paths) is not None:
        return  # one starting, or stopping: the bridge waits for it, as it would
    paths.ensure()
    environ = {k: v for k, v in env.items() if k != names.TOOLSETS}
    environ[names.DATA_DIR] = str(paths.root)
    idle = env.get("CONTEXTD_IDLE_EXIT_SECONDS", "1800")
    with open(paths.log, "ab") as log:
        process = forks.popen(
            [*CLI, "serve", "--log-file", str(paths.log), "--idle-exit", idle], cwd=str(paths.root), env=environ,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while not _announced(data_dir, process.pid):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"daemon exited {process.poll()}: {paths.log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.02)


@contextmanager
def serving_http(root: Path, *token_args: str, **env: str) -> Iterator[tuple[Daemon, str, Path]]:
    """A daemon on a free loopback HTTP port, a token made by ``token create *token_args``, and the
    daemon's working directory; stopped afterwards, and its log must then hold no traceback."""
    data_dir, cwd = root / "data", root / "cwd"
    cwd.mkdir()
    token = create_token(data_dir, *token_args)
    daemon = start_daemon(data_dir, cwd, http=f"127.0.0.1:{free_port()}", **env)
    try:
        yield daemon, token, cwd
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output()


def _announced(data_dir: Path, pid: int) -> bool:
    """This process wrote daemon.json (a killed predecessor leaves its own, and its socket file)."""
    try:
        return json.loads((data_dir / "daemon.json").read_text()).get("pid") == pid
    except (OSError, ValueError):
        return False


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@asynccontextmanager
async def http_client(base: str, token: str | None, **headers: str) -> AsyncIterator[Client]:
    """A connected Streamable HTTP client sending ``Authorization: Bearer <token>``."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        create_mcp_http_client(headers={**auth, **headers}) as http,
        Client(streamable_http_client(base + "/mcp", http_client=http), read_timeout_seconds=60) as client,
    ):
        yield client


def sse(base: str, token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return Client(sse_client(base + "/sse", headers=headers), read_timeout_seconds=60)


@asynccontextmanager
async def socket_transport(socket_path: Path, cwd: Path, env: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """The daemon's socket protocol without a bridge process: hello line, then MCP lines."""
    stream = await anyio.connect_unix(str(socket_path))
    async with stream:
        hello = {"contextd": PROTOCOL, "op": "mcp", "cwd": str(cwd), "env": env or {}, "pid": os.getpid()}
        await stream.send((json.dumps(hello) + "\n").encode())
        buffer = b""
        while b"\n" not in buffer:
            buffer += await stream.receive(65536)
        line, rest = buffer.split(b"\n", 1)
        reply = json.loads(line)
        assert reply.get("ok"), reply
        async with jsonrpc_streams(stream, 16 << 20, rest) as streams:
            yield streams


def socket_client(socket_path: Path, cwd: Path, env: dict[str, str] | None = None) -> Client:
    return Client(socket_transport(socket_path, cwd, env), read_timeout_seconds=60)


def audit_events(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "audit.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
