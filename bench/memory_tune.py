"""Fast, in-process variant of bench_memory_learning's quality run, for tuning on dev only.

    .venv/bin/python -m bench.memory_tune [--split dev] [--lessons N] [--set NAME=VALUE ...]

The same protocol (bench.bench_memory_learning.protocol) through a real MCP client on the real
server in-process, with the real model's vectors cached on disk (documents and queries), so a
run costs seconds once the cache is warm. ``--set`` overrides a constant of
services/memory_keys.py (or ``module.NAME`` of another services module) for one run
(e.g. ``--set KEY_WEIGHT=0.2``, ``--set memory_preferences.PREFER_MARGIN=0.05``). Reported figures come from
bench_memory_learning through the daemon; this is for trying things.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import anyio  # noqa: E402

from bench.bench_memory_learning import CachedEmbedder, first_lessons, load, naive, protocol  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "contextd-tune-vectors.pickle"


class QueryCachedEmbedder(CachedEmbedder):
    def embed_query(self, text: str) -> list[float]:
        key = "\x00query\x00" + text
        if key not in self._cache:
            self._cache[key] = list(self._inner.embed_query(text))
        return self._cache[key]


async def _run(data: dict[str, Any], embedder: QueryCachedEmbedder, unhelpful: bool) -> dict[str, Any]:
    from contextd_mcp.container import build
    from contextd_mcp.mcp.caller import Caller
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.scope_resolver import resolve_scope
    from tests.helpers import connected

    with tempfile.TemporaryDirectory(prefix="contextd-tune-") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        container = build(DataPaths(Path(tmp) / "data"), embedder=embedder)  # type: ignore[arg-type]
        try:
            caller = Caller(scope=resolve_scope(project, {}), transport="memory", connection_id="tune")
            async with connected(container, caller) as client:
                return await protocol(client, data, unhelpful)
        finally:
            container.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", default="dev", choices=["dev"])  # never tune on held-out
    parser.add_argument("--lessons", type=int, default=None)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--unhelpful", action="store_true")
    parser.add_argument("--naive", action="store_true")
    args = parser.parse_args()
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
    from contextd_mcp.services import memory_keys
    from contextd_mcp.settings import DEFAULT_MODEL, EmbeddingSettings

    for item in args.set:
        name, value = item.split("=", 1)
        module = memory_keys
        if "." in name:  # another services module, e.g. memory_preferences.PREFER_MARGIN=0.05
            module_name, name = name.rsplit(".", 1)
            module = importlib.import_module(f"contextd_mcp.services.{module_name}")
        setattr(module, name, type(getattr(module, name))(value))
    data = first_lessons(load(args.split), args.lessons)
    embedder = QueryCachedEmbedder(FastEmbedEmbedder(DEFAULT_MODEL, EmbeddingSettings().cache_dir), CACHE)
    try:
        out = anyio.run(_run, data, embedder, args.unhelpful)
    finally:
        embedder.save()
    if args.naive:
        out["naive_b"] = naive(data)
    print(json.dumps({"set": args.set, "cold_b": out["cold_b"], "after_b": out["after_b"], "cold_a": out["cold_a"],
                      "naive_b": out.get("naive_b"), "learning": out["learning"]}))


if __name__ == "__main__":
    main()
