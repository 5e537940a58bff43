"""contextd's own figures: cold start, store and search latency by size, RSS, disk, tokens, floors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio

from bench import corpus
from bench.driver import contextd_stdio, daemon_pid, rss_mib, stop_contextd, summary, timed
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths
from contextd_mcp.scope_resolver import resolve_scope


def fill(data_dir: Path, project_dir: Path, n: int, batch: int = 256) -> float:
    """Store n memories in the project's scope in-process (no daemon running); returns seconds."""
    from contextd_mcp.container import build

    scope: Scope = resolve_scope(project_dir, {})
    container = build(DataPaths(data_dir))
    started = time.perf_counter()
    try:
        have = container.memory.counts(scope)
        pending = []
        for index, memory in enumerate(corpus.memories(n)):
            if index < have:
                continue
            pending.append(memory)
            if len(pending) == batch:
                container.memory.store_many(scope, pending)
                pending = []
        if pending:
            container.memory.store_many(scope, pending)
    finally:
        container.close()
    return time.perf_counter() - started


def disk_bytes(data_dir: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in (data_dir / "store").rglob("*") if f.is_file())


async def cold_start(data_dir: Path, project_dir: Path, warm_runs: int = 10) -> dict[str, Any]:
    """Spawn `contextd-mcp stdio` → first tools/list answered, with and without a running daemon."""
    stop_contextd(data_dir)
    cold = []
    for _ in range(2):
        stop_contextd(data_dir)
        started = time.perf_counter()
        async with contextd_stdio(data_dir, project_dir) as client:
            await client.list_tools()
            cold.append((time.perf_counter() - started) * 1000)
    warm = []
    for _ in range(warm_runs):
        started = time.perf_counter()
        async with contextd_stdio(data_dir, project_dir) as client:
            await client.list_tools()
            warm.append((time.perf_counter() - started) * 1000)
    return {"daemon_cold_ms": summary(cold), "daemon_warm_ms": summary(warm)}


async def session_figures(data_dir: Path, project_dir: Path, queries: int = 200, stores: int = 100) -> dict[str, Any]:
    """Search / store / feedback / no-op latency over stdio against a warm daemon, plus RSS."""
    texts = corpus.queries(queries)
    async with contextd_stdio(data_dir, project_dir) as client:
        listed = await client.list_tools()
        tools_json = json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools])
        for text in texts[:10]:  # warm caches and the thread pool
            await client.call_tool("memory_search", {"query": text})
        ping = [(await timed(client.call_tool("bench_noop", {})))[1] for _ in range(200)]
        search, sizes = [], []
        for text in texts:
            result, ms = await timed(client.call_tool("memory_search", {"query": text}))
            search.append(ms)
            sizes.append(result.content[0].text)
        store, ids = [], []
        started = time.perf_counter()
        for i in range(stores):
            result, ms = await timed(
                client.call_tool(
                    "memory_store",
                    {"title": f"Bench lesson {time.time_ns()} {i}", "content": f"Measured store number {i} with a short body."},
                )
            )
            store.append(ms)
            ids.append(result.structured_content["id"])
        store_rate = stores / (time.perf_counter() - started)
        feedback = [(await timed(client.call_tool("memory_feedback", {"memory_id": i, "helpful": True})))[1] for i in ids[:50]]
        pid = daemon_pid(data_dir)
        rss, peak = rss_mib(pid) if pid else (float("nan"), float("nan"))
    return {
        "noop_ping_ms": summary(ping),
        "memory_search_ms": summary(search),
        "memory_store_ms": summary(store),
        "memory_store_per_s": round(store_rate, 1),
        "memory_feedback_ms": summary(feedback),
        "daemon_rss_mib": round(rss, 1),
        "daemon_peak_rss_mib": round(peak, 1),
        "tools_list_chars": len(tools_json),
        "tools_list_tokens": _tokens(tools_json),
        "search_response_tokens_p50": sorted(_tokens(t) for t in sizes)[len(sizes) // 2],
        "_tools_json": tools_json,
    }


async def many_agents(data_dir: Path, project_dir: Path, agents: int = 8, calls: int = 20) -> dict[str, Any]:
    """Daemon RSS with ``agents`` bridges connected at once, each searching and storing."""
    from contextlib import AsyncExitStack

    texts = corpus.queries(calls)

    async def agent(client: Any, index: int) -> None:
        for i, text in enumerate(texts):
            if i % 4 == 3:
                await client.call_tool("memory_store", {"title": f"Agent {index} lesson {i} {time.time_ns()}", "content": text})
            else:
                await client.call_tool("memory_search", {"query": text})

    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(contextd_stdio(data_dir, project_dir)) for _ in range(agents)]
        async with anyio.create_task_group() as group:
            for index, client in enumerate(clients):
                group.start_soon(agent, client, index)
        pid = daemon_pid(data_dir)
        rss, peak = rss_mib(pid) if pid else (float("nan"), float("nan"))
    return {"agents": agents, "calls_each": calls, "daemon_rss_mib": round(rss, 1), "daemon_peak_rss_mib": round(peak, 1)}


def _tokens(text: str) -> int:
    from contextd_mcp.adapters.token_counter import WordPieceTokenCounter

    return WordPieceTokenCounter().count(text)


def embedding_floor(runs: int = 200) -> dict[str, float]:
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
    from contextd_mcp.settings import DEFAULT_MODEL

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        embedder = FastEmbedEmbedder(DEFAULT_MODEL, Path(tmp))
        texts = corpus.queries(runs)
        for text in texts[:10]:
            embedder.embed_query(text)
        samples = []
        for text in texts:
            started = time.perf_counter()
            embedder.embed_query(text)
            samples.append((time.perf_counter() - started) * 1000)
    return summary(samples)


def run_scale(root: Path, sizes: list[int]) -> dict[str, Any]:
    """For each size: fill, then measure over stdio against a fresh daemon."""
    project = root / "project"
    project.mkdir(parents=True, exist_ok=True)
    data_dir = root / "data"
    results: dict[str, Any] = {}
    for n in sizes:
        stop_contextd(data_dir)
        fill_s = fill(data_dir, project, n)
        figures = anyio.run(session_figures, data_dir, project)
        figures.pop("_tools_json", None)
        figures["many_agents"] = anyio.run(many_agents, data_dir, project)
        figures["fill_seconds"] = round(fill_s, 1)
        figures["disk_mib"] = round(disk_bytes(data_dir) / 2**20, 1)
        results[str(n)] = figures
    stop_contextd(data_dir)
    return results
