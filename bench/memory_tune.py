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

import anyio

from bench.bench_memory_learning import CachedEmbedder, first_lessons, load, naive, protocol

CACHE = Path(tempfile.gettempdir()) / "contextd-tune-vectors.pickle"


class QueryCachedEmbedder(CachedEmbedder):
    def embed_query(self, text: str) -> list[float]:
        key = "\x00query\x00" + text
        if key not in self._cache:
            self._cache[key] = list(self._inner.embed_query(text))
        return self._cache[key]


async def _run(data: dict[str, Any], embedder: QueryCachedEmbedder, unhelpful: bool, diagnose: bool = False) -> dict[str, Any]:
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
                if diagnose:
                    from bench.memory_diagnose import diagnose as traced

                    return await traced(client, data, embedder)
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
    parser.add_argument("--diagnose", action="store_true", help="lesson by lesson (bench/memory_diagnose.py)")
    parser.add_argument("--json", default=None, help="write the whole result here")
    parser.add_argument("--seed", type=int, default=None, help="another draw of the protocol's decoys and lesson order")
    parser.add_argument("--model", default=None, help="a local model directory instead of the default (own vector cache)")
    args = parser.parse_args()
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder, default_model_dir
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
    if args.seed is not None:  # the spread of one setting over protocol draws (what is noise)
        import random

        import bench.bench_memory_learning as protocol_module

        protocol_module.SEED = args.seed
        random.Random(args.seed).shuffle(data["lessons"])
    # Vectors are cached per model build: the default model's folder is named for its source,
    # onnxruntime and int8 conversion, so a new conversion never reads an older one's vectors.
    models = EmbeddingSettings().cache_dir
    model_dir = Path(args.model).resolve() if args.model else default_model_dir(models)
    cache = CACHE.with_name(f"contextd-tune-vectors-{model_dir.name}.pickle")
    embedder = QueryCachedEmbedder(FastEmbedEmbedder(args.model or DEFAULT_MODEL, models), cache)
    try:
        out = anyio.run(_run, data, embedder, args.unhelpful, args.diagnose)
    finally:
        embedder.save()
    if args.naive:
        out["naive_b"] = naive(data)
    if args.json:
        Path(args.json).write_text(json.dumps({"set": args.set, **out}, indent=1) + "\n")
    print(json.dumps({"set": args.set, "cold_b": out["cold_b"], "after_b": out["after_b"], "cold_a": out.get("cold_a"),
                      "naive_b": out.get("naive_b"), "learning": out["learning"],
                      **{k: out[k] for k in ("summary", "winner_causes") if k in out}}))


if __name__ == "__main__":
    main()
