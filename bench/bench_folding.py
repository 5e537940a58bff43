"""Context folding figures: per-call overhead of budget accounting, and the compression a
scripted long session gets from folding its sub-tasks.

    .venv/bin/python -m bench.bench_folding [--calls 300] [--subtasks 12]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from bench import corpus
from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.container import build
from contextd_mcp.mcp.caller import Caller, acting_as
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths

SCOPE = Scope(tenant="bench", team="bench", project="fold")


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def overhead(client: Any, memory_id: str, calls: int) -> dict[str, float]:
    """memory_get latency with no branch vs inside an active branch, interleaved."""
    plain, folded = [], []
    session = (await client.call_tool("session_start", {})).structured_content["session_id"]
    for _ in range(calls):
        started = time.perf_counter()
        await client.call_tool("memory_get", {"memory_id": memory_id})
        plain.append((time.perf_counter() - started) * 1000)
        branch = (await client.call_tool("branch_create", {"description": "probe", "budget": 32768})).structured_content
        started = time.perf_counter()
        await client.call_tool("memory_get", {"memory_id": memory_id})
        folded.append((time.perf_counter() - started) * 1000)
        await client.call_tool("branch_return", {"branch_id": branch["branch_id"], "message": "ok"})
    await client.call_tool("session_end", {"session_id": session, "outcome": "success"})
    p, f = statistics.median(plain), statistics.median(folded)
    return {"no_branch_p50_ms": round(p, 3), "in_branch_p50_ms": round(f, 3), "overhead_p50_ms": round(f - p, 3)}


async def long_session(client: Any, subtasks: int, calls_per_subtask: int) -> dict[str, Any]:
    """A scripted session: each sub-task folds into a branch and returns one short message."""
    counter = WordPieceTokenCounter()
    main = inside = 0
    queries = corpus.queries(subtasks * calls_per_subtask)
    result = await client.call_tool("session_start", {"task": "refactor the payment service"})
    main += counter.count(_text(result))
    for index in range(subtasks):
        result = await client.call_tool("branch_create", {"description": f"sub-task {index}", "budget": 32768})
        main += counter.count(_text(result))  # the parent sees that it opened a branch
        branch = result.structured_content["branch_id"]
        for call in range(calls_per_subtask):
            query = queries[index * calls_per_subtask + call]
            result = await client.call_tool("memory_search", {"query": query, "limit": 5})
            inside += counter.count(_text(result))
            hits = result.structured_content["memories"]
            if hits:
                result = await client.call_tool("memory_get", {"memory_id": hits[0]["id"]})
                inside += counter.count(_text(result))
        result = await client.call_tool(
            "branch_return",
            {"branch_id": branch, "message": f"Sub-task {index}: checked {calls_per_subtask} leads; the relevant one is "
                                             "the retry policy in payments/client.py, now fixed."},
        )
        main += counter.count(_text(result))
    return {
        "subtasks": subtasks,
        "calls": subtasks * (2 * calls_per_subtask + 2) + 1,
        "main_thread_tokens": main,
        "branch_tokens": inside,
        "compression_ratio": round((main + inside) / main, 1),
    }


async def main_async(calls: int, subtasks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        container = build(DataPaths(Path(tmp)))
        stored = container.memory.store_many(SCOPE, list(corpus.memories(500)))
        caller = Caller(scope=SCOPE, transport="memory", connection_id=uuid.uuid4().hex[:12])
        try:
            with acting_as(caller):
                async with Client(container.server()) as client:
                    figures = {"overhead": await overhead(client, stored[0].id, calls)}
                    figures["long_session"] = await long_session(client, subtasks, 8)
        finally:
            container.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--subtasks", type=int, default=12)
    args = parser.parse_args()
    figures = anyio.run(main_async, args.calls, args.subtasks)
    for section, values in figures.items():
        for key, value in values.items():
            print(f"{section:13} {key:22} {value}")


if __name__ == "__main__":
    main()
