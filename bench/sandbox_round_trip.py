"""`bash("true")` round trip through the MCP tool, beside the helper alone, bubblewrap and plain bash."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import anyio

from bench.driver import contextd_stdio, stop_contextd, summary


def run(work_dir: Path, quick: bool) -> dict[str, Any]:
    try:
        from bench.bench_sandbox import rows
        from contextd_mcp.sandbox import SandboxUnavailable, probe

        probe()
    except (ImportError, SandboxUnavailable) as exc:  # a host that cannot sandbox still gets the other figures
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    runs = 30 if quick else 200
    project = work_dir / "project"
    project.mkdir(parents=True)
    try:
        return anyio.run(_measure, work_dir / "data", project, runs)
    except Exception as exc:  # noqa: BLE001 - one broken row must not sink the whole bench
        stop_contextd(work_dir / "data")
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


async def _measure(data_dir: Path, project: Path, runs: int) -> dict[str, Any]:
    from bench.bench_sandbox import rows

    table = rows(project)
    samples: dict[str, list[float]] = {name: [] for name in table}
    async with contextd_stdio(data_dir, project) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        if "bash" in names:
            samples["mcp bash tool"] = []
            await client.call_tool("bash", {"command": "true"})  # start the helper once
        for _ in range(runs):  # interleaved, so background load hits every row alike
            for name, row in table.items():
                started = time.perf_counter()
                await row()
                samples[name].append((time.perf_counter() - started) * 1000)
            if "bash" in names:
                started = time.perf_counter()
                result = await client.call_tool("bash", {"command": "true"})
                samples["mcp bash tool"].append((time.perf_counter() - started) * 1000)
                assert not result.is_error, result.content
    stop_contextd(data_dir)
    out = {name: summary(values) for name, values in samples.items()}
    out["bwrap_installed"] = shutil.which("bwrap") is not None
    return out
