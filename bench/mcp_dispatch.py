"""The daemon's share of one MCP tool call, in-process: SDK dispatch, our ToolRunner, framing.

    python -m bench.mcp_dispatch [--runs 2000] [--tool toolsets|bash] [--profile] [--src DIR]
    python -m bench.mcp_dispatch --tool memory_search --data DIR [--runs 600]   # a kept scale store

A real container (store, model, sandbox) and its real MCP server, run on memory streams; each
call is a parsed ``tools/call`` message put on the server's read stream, timed until its
response comes out of the write stream (so: the SDK's session and dispatch, our handler, the
result model), and separately the framing around it: ``parse_line`` of the request line and
``model_dump_json`` of the response, as framing.py does them. ``--profile`` prints cProfile's
top functions by own time, to tell what is ours from what is the SDK's. Nothing of the socket,
the bridge or the client is in these figures. ``memory_search`` runs on a data directory that
``bench.bench_scale --keep`` filled (its first project, distinct generated queries, the first
half unmeasured), and reports the service's own call beside it: the rest is MCP.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def _line(request_id: int, tool: str, arguments: dict[str, Any]) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    return json.dumps(body).encode()


async def _measure(root: Path, runs: int, tool: str, profile: bool, data: Path | None = None) -> dict[str, Any]:
    import anyio
    from mcp.shared.message import SessionMessage

    from bench import scale_records
    from bench.bench_scale import TENANT, project_name, scope_env
    from contextd_mcp.container import build
    from contextd_mcp.models.requests import SearchMemories
    from contextd_mcp.models.scope import Scope
    from contextd_mcp.mcp.caller import CURRENT_CALLER, local_caller
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.settings import Settings
    from contextd_mcp.transports.framing import parse_line

    project = root / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True, timeout=30)
    container = build(DataPaths(data or root / "data"), Settings())
    server = container.server()
    env = {"CONTEXTD_TOOLSETS": "all", **(scope_env(project_name(0)) if data else {})}
    CURRENT_CALLER.set(local_caller("socket", project, env, "bench", "all"))
    queries = iter(scale_records.queries(2 * runs)) if tool == "memory_search" else None
    service: list[int] = []
    read_send, read_recv = anyio.create_memory_object_stream[Any](16)
    write_send, write_recv = anyio.create_memory_object_stream[Any](16)
    out: dict[str, Any] = {}
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.run, read_recv, write_send, server.create_initialization_options())
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}}
            for line in (json.dumps(init).encode(), b'{"jsonrpc":"2.0","method":"notifications/initialized"}'):
                await read_send.send(parse_line(line))
            await write_recv.receive()
            dispatch, parse, dump = [], [], []
            profiler = cProfile.Profile() if profile else None
            if queries is not None:  # warm: each first touch of the store, as a daemon's searches make
                scope = Scope(tenant=TENANT, project=project_name(0))
                for _ in range(runs):
                    container.memory.search(scope, SearchMemories(query=next(queries), limit=5))
            for i in range(1, runs + 1):
                query = next(queries) if queries is not None else ""
                arguments = {"command": "true"} if tool == "bash" else {"query": query, "limit": 5} if query else {}
                if queries is not None:  # the same search again, in the service alone (the rest is MCP)
                    t0 = time.perf_counter_ns()
                    container.memory.search(scope, SearchMemories(query=query + " ", limit=5))
                    service.append(time.perf_counter_ns() - t0)
                line = _line(i, tool, arguments)
                started = time.perf_counter_ns()
                message = parse_line(line)
                parsed = time.perf_counter_ns()
                if profiler:
                    profiler.enable()
                await read_send.send(message)
                response: SessionMessage = await write_recv.receive()
                if profiler:
                    profiler.disable()
                answered = time.perf_counter_ns()
                response.message.model_dump_json(by_alias=True, exclude_unset=True).encode()
                dumped = time.perf_counter_ns()
                parse.append(parsed - started)
                dispatch.append(answered - parsed)
                dump.append(dumped - answered)
            tg.cancel_scope.cancel()
    finally:
        container.close()
    for name, values in (("parse_line", parse), ("dispatch_to_response", dispatch), ("model_dump_json", dump),
                         ("service_search", service)):
        if not values:
            continue
        values.sort()
        out[name + "_us"] = {"p50": round(statistics.median(values) / 1000, 1),
                             "p95": round(values[int(len(values) * 0.95)] / 1000, 1)}
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
        out["profile"] = text.getvalue()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--tool", choices=("toolsets", "bash", "memory_search"), default="toolsets")
    parser.add_argument("--data", type=Path, help="memory_search: a data directory bench_scale --keep filled")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    import anyio

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="contextd-dispatch-") as tmp:
        load = os.getloadavg()[0]
        if args.tool == "memory_search" and args.data is None:
            parser.error("--tool memory_search needs --data")
        result = anyio.run(_measure, Path(tmp), args.runs, args.tool, args.profile, args.data)
        profile = result.pop("profile", None)
        print(json.dumps({"tool": args.tool, "runs": args.runs, "loadavg_1m_before_after": [round(load, 2),
                          round(os.getloadavg()[0], 2)], **result}, indent=2))
        if profile:
            print(profile)


if __name__ == "__main__":
    main()
