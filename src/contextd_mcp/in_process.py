"""``contextd-mcp stdio --in-process``: the whole server inside the stdio process."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import anyio

from contextd_mcp.paths import DataPaths


def run_in_process(paths: DataPaths) -> int:
    from mcp.server.stdio import stdio_server

    from contextd_mcp.container import build
    from contextd_mcp.daemon import AlreadyRunning, acquire_owner_lock
    from contextd_mcp.mcp.caller import CURRENT_CALLER, Caller
    from contextd_mcp.scope_resolver import project_root, resolve_scope

    paths.ensure()
    try:
        lock = acquire_owner_lock(paths)
    except AlreadyRunning as exc:
        import sys

        print(f"contextd-mcp: {exc}; use the default bridge mode to share it", file=sys.stderr)
        return 1
    container = build(paths)
    server = container.server()
    cwd = Path(os.environ.get("CONTEXTD_PROJECT_DIR") or Path.cwd())  # as transports/hello.py
    caller = Caller(
        scope=resolve_scope(cwd, os.environ),
        transport="stdio",
        connection_id=uuid.uuid4().hex[:12],
        agent=os.environ.get("CONTEXTD_AGENT"),
        project_dir=str(project_root(cwd)),
    )

    async def main() -> None:
        CURRENT_CALLER.set(caller)
        async with anyio.create_task_group() as tg:
            for worker in container.workers:
                tg.start_soon(worker)
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    finally:
        container.close()
        lock.close()
    return 0
