"""``contextd-mcp stdio --in-process``: the whole server inside the stdio process."""

from __future__ import annotations

import os
import sys
import uuid

import anyio
from anyio.abc import ByteStream

from contextd_mcp.paths import DataPaths


class _Stdio(ByteStream):
    """File descriptors 0 and 1 as one byte stream, so stdio speaks the socket's framing and caps."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await anyio.to_thread.run_sync(os.read, 0, max_bytes, abandon_on_cancel=True)
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        await anyio.to_thread.run_sync(_write_all, item)

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


def run_in_process(paths: DataPaths, scope_flags: dict[str, str] | None = None) -> int:
    """``scope_flags``: ``stdio``'s --tenant/--team/--project/--toolsets, over this process's
    ``CONTEXTD_*`` scope variables (this process is the server: its caller is its own)."""
    from contextd_mcp import env
    from contextd_mcp import limits as caps
    from contextd_mcp.adapters.malloc_arenas import limit_arenas
    from contextd_mcp.container import build
    from contextd_mcp.daemon import AlreadyRunning, acquire_owner_lock
    from contextd_mcp.mcp.caller import CURRENT_CALLER, local_caller
    from contextd_mcp.settings import Settings
    from contextd_mcp.transports.framing import jsonrpc_streams

    # As the daemon's serve: this process runs the same worker threads and embedder, so the same
    # cap, first, before any thread has an arena of its own (adapters/malloc_arenas.py).
    limit_arenas(caps.MALLOC_ARENAS)
    paths.ensure()
    try:
        lock = acquire_owner_lock(paths)
    except AlreadyRunning as exc:
        print(f"contextd-mcp: {exc}; use the default bridge mode to share it", file=sys.stderr)
        return 1
    settings = Settings()
    limits = settings.limits
    container = build(paths, settings)
    server = container.server()
    scope_env = env.scope_env() | (scope_flags or {})
    caller = local_caller("stdio", env.project_dir(), scope_env, uuid.uuid4().hex[:12], scope_env.get(env.TOOLSETS))

    async def main() -> None:
        CURRENT_CALLER.set(caller)
        async with anyio.create_task_group() as tg:
            for worker in container.workers:
                tg.start_soon(worker)
            async with jsonrpc_streams(_Stdio(), limits.request_max_bytes) as (read, write):
                await server.run(read, write, server.create_initialization_options())
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    finally:
        container.close()
        lock.close()
    return 0
