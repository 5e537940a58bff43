"""Helpers for tests that drive the real command, or the real server in-process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import Client

from contextd_mcp.mcp.caller import Caller, acting_as

CLI = [sys.executable, "-m", "contextd_mcp"]


@asynccontextmanager
async def connected(container: Any, caller: Caller) -> AsyncIterator[Any]:
    """A real MCP client on the container's server, in-process, every call made as ``caller``."""
    with acting_as(caller):
        async with Client(container.server()) as client:
            yield client


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    # Every tool, as the in-process suite (tests/conftest.py); a test of the default set passes
    # CONTEXTD_TOOLSETS="default".
    env.update({"CONTEXTD_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "CONTEXTD_TOOLSETS": "all", **extra})
    return env


def run_cli(data_dir: Path, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env_for(data_dir, **extra), capture_output=True, text=True, timeout=timeout
    )


def stop_daemon(data_dir: Path) -> None:
    run_cli(data_dir, "stop", "--timeout", "30")


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
