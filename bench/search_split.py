"""Where a memory search's time goes, by the service's own parts, in-process (no MCP).

    python -m bench.search_split --fill 1000 [--queries 400] [--gap-ms 20]   # the corpus, a new store
    python -m bench.search_split --data DIR --project DIR                    # a store bench/contextd.fill made
    python -m bench.search_split --data DIR --scale                          # a bench_scale store (its first project)

``MemoryService.search`` runs whole on distinct queries, ``gap-ms`` apart (a daemon's searches come
after idle time; back to back the embedding alone is ~1 ms faster, BENCHMARKS.md "Session 15"),
with timers around its parts: the query's embedding, ``memory_keys.find`` (the key batch and
what it ranks), inside it the check for keys stored before slots and ``rank``, and the rerank.
What the timers leave is the rest of the search (the memories' read, the hits, the search log).
``bench_scale --search-profile`` times the engine's calls one by one instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.driver import summary


def _timer(took: dict[str, list[int]], name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return call(*args, **kwargs)
        finally:
            took.setdefault(name, []).append(time.perf_counter_ns() - started)

    return timed


def split(data: Path, scope: Any, texts: list[str], gap_s: float) -> dict[str, Any]:
    from contextd_mcp.container import build
    from contextd_mcp.models.requests import SearchMemories
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.services import memory_keys, memory_rerank

    container = build(DataPaths(data))
    service = container.memory
    took: dict[str, list[int]] = {}
    patched = [
        (memory_keys, "rank"), (memory_keys, "_with_legacy_fields"), (memory_keys, "find"), (memory_rerank, "rescored"),
    ]
    originals = [(module, name, getattr(module, name)) for module, name in patched]
    embedder = service._embedder
    embed_query = embedder.embed_query
    try:
        for text in texts[:20]:  # the model's and the store's first touches
            service.search(scope, SearchMemories(query=text))
        for module, name, call in originals:
            setattr(module, name, _timer(took, name, call))
        embedder.embed_query = _timer(took, "embed_query", embed_query)  # type: ignore[method-assign]
        for text in texts[20:]:
            _timer(took, "search", service.search)(scope, SearchMemories(query=text))
            time.sleep(gap_s)
    finally:
        for module, name, call in originals:
            setattr(module, name, call)
        embedder.embed_query = embed_query  # type: ignore[method-assign]
        container.close()
    # A part the service no longer reaches through its module's name would time nothing and
    # leave its time in "rest" (``_with_legacy_fields`` runs only on a store with older keys).
    missing = {"search", "embed_query", "find", "rank", "rescored"} - took.keys()
    if missing:
        raise SystemExit(f"timed nothing for {sorted(missing)}: the service's search changed")
    parts = {name: summary([v / 1e6 for v in values]) for name, values in took.items()}
    parts["rest"] = summary([
        (t - took["embed_query"][i] - took["find"][i] - took["rescored"][i]) / 1e6 for i, t in enumerate(took["search"])
    ])
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_split")
    parser.add_argument("--fill", type=int, default=0, help="store this many corpus memories in a new data directory")
    parser.add_argument("--data", type=Path, help="an existing data directory")
    parser.add_argument("--project", type=Path, help="with --data: the project directory its memories were stored from")
    parser.add_argument("--scale", action="store_true", help="with --data: a bench_scale store (tenant scaleco, first project)")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    from bench import corpus, scale_records
    from contextd_mcp.scope_resolver import resolve_scope

    with tempfile.TemporaryDirectory(prefix="contextd-split-") as tmp:
        if args.scale:
            from bench.bench_scale import TENANT, project_name
            from contextd_mcp.models.scope import Scope

            data, scope, texts = args.data, Scope(tenant=TENANT, project=project_name(0)), scale_records.queries(args.queries + 20)
        else:
            data, project = args.data, args.project
            if data is None:
                from bench.contextd import fill

                data, project = Path(tmp) / "data", Path(tmp) / "project"
                project.mkdir()
                fill(data, project, args.fill or 1000)
            if project is None:
                parser.error("--data needs --project or --scale")
            scope, texts = resolve_scope(project, {}), corpus.queries(args.queries + 20)
        result = split(data, scope, texts, args.gap_ms / 1000)
    print(json.dumps({"queries": args.queries, "gap_ms": args.gap_ms, "load": Path("/proc/loadavg").read_text().split()[:3],
                      "parts_ms": result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
