"""Drives an MCP server over stdio with the real MCP SDK client and times what it does."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).parents[1]
CLI = [sys.executable, "-m", "contextd_mcp"]


def contextd_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    # Every toolset: the benches call tools outside the default set (bench_toolsets.py measures that set).
    env.update({"CONTEXTD_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "CONTEXTD_BENCH_TOOLS": "1",
                "CONTEXTD_TOOLSETS": "all", **extra})
    return env


@asynccontextmanager
async def stdio_client(command: list[str], env: dict[str, str], cwd: Path | None = None) -> AsyncIterator[Any]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=str(cwd) if cwd else None)
    async with Client(params, read_timeout_seconds=120) as client:
        yield client


def contextd_stdio(data_dir: Path, cwd: Path | None = None) -> Any:
    return stdio_client([*CLI, "stdio"], contextd_env(data_dir), cwd)


def stop_contextd(data_dir: Path) -> None:
    subprocess.run([*CLI, "stop"], env=contextd_env(data_dir), capture_output=True, timeout=60)


def daemon_pid(data_dir: Path) -> int | None:
    try:
        return int(json.loads((data_dir / "daemon.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and its children (a stdio server may fork helpers)."""
    total = rss_mib(pid)[0]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            try:
                total += tree_rss_mib(int(child))
            except (OSError, ValueError):
                pass
    return total


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(statistics.median(samples_ms), 3),
        "p95_ms": round(pct(samples_ms, 95), 3),
        "p99_ms": round(pct(samples_ms, 99), 3),
    }


async def timed(coro: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await coro
    return result, (time.perf_counter() - started) * 1000
