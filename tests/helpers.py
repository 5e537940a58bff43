"""Helpers for tests that drive the real command, or the real server in-process."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import Client

from contextd_mcp.mcp.caller import Caller, acting_as
from contextd_mcp.models.scope import Scope
from tests import zygote as forks

CLI = [sys.executable, "-m", "contextd_mcp"]


@asynccontextmanager
async def connected(container: Any, caller: Caller) -> AsyncIterator[Any]:
    """A real MCP client on the container's server, in-process, every call made as ``caller``."""
    with acting_as(caller):
        async with Client(container.server()) as client:
            yield client


def connected_as(container: Any, scope: Scope, **caller: Any) -> AbstractAsyncContextManager[Any]:
    """``connected`` as an in-process caller of ``scope`` (``caller``: Caller's other fields)."""
    return connected(container, Caller(scope=scope, transport="memory", **caller))


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    # Every tool, as the in-process suite (tests/conftest.py); a test of the default set passes
    # CONTEXTD_TOOLSETS="default".
    # The model on one thread, as in-process (tests/conftest.py: a second one spins on 2 cores).
    threads = os.environ.get("CONTEXTD_EMBEDDING_THREADS", "1")
    env.update({"CONTEXTD_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "CONTEXTD_TOOLSETS": "all",
                "CONTEXTD_EMBEDDING_THREADS": threads, **extra})
    return env


def run_cli(data_dir: Path, *args: str, timeout: float = 60, zygote: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
    """``contextd-mcp *args`` to its end, forked from the worker's zygote (tests/zygote.py) unless
    ``zygote=False``: a test of the command's own start (its imports, a new home) spawns it."""
    return forks.run(
        [*CLI, *args], env=env_for(data_dir, **extra), capture_output=True, text=True, timeout=timeout, zygote=zygote
    )


def stop_daemon(data_dir: Path, timeout: float = 30) -> int | None:
    """Stops the daemon of ``data_dir`` if there is one, and returns its pid (None: none answered).

    What ``contextd-mcp stop`` does (the same stop request on the socket, then waiting for the
    process to exit after flushing its store), run in this process: the command would cost a new
    interpreter (1 s, several under load) at the end of every e2e test. Tests of the command
    itself still run it."""
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.transports.bridge import owner_pid, request, wait_for_exit

    paths = DataPaths(data_dir)
    if owner_pid(paths) is None and not paths.socket.exists():
        return None
    reply = request(paths, "stop")
    if reply is None:
        return None
    pid = int(reply["pid"])
    assert wait_for_exit(pid, timeout), f"daemon {pid} did not stop within {timeout} s"
    return pid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def data(result: types.CallToolResult) -> Any:
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


def error_text(result: types.CallToolResult) -> str:
    assert result.is_error, f"expected an error, got {result.structured_content}"
    return result.content[0].text  # type: ignore[union-attr]


@contextmanager
def raw_in_process(tmp_path: Path, zygote: bool = True, **extra: str) -> Iterator[Any]:
    """``contextd-mcp stdio --in-process`` spoken to in raw JSON lines (cwd and data under
    ``tmp_path``); closing its input ends it, and one that does not end is killed."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    process = forks.popen(
        [*CLI, "stdio", "--in-process"], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env=env_for(tmp_path / "data", **extra), zygote=zygote,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        yield process
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def read_replies(process: Any, ids: set[Any], timeout: float) -> dict[Any, Any]:
    """JSON-RPC replies by id (None: a parse error's) until all of ``ids`` came or time ran out."""
    assert process.stdout is not None
    replies: dict[Any, Any] = {}
    deadline = time.monotonic() + timeout
    while not ids <= replies.keys() and time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 1)[0]:
            line = process.stdout.readline()
            assert line, "the in-process server closed its output"
            reply = json.loads(line)
            replies[reply.get("id")] = reply
    return replies
