"""Export and import at scale: time and file size with N memories (with keys and history).

    .venv/bin/python -m bench.bench_export [--memories 10000] [--rated 1000] [--planted] [--json FILE]

A data directory is filled through the memory service (real model, real embedded store):
N synthetic lessons, each with two ``applies_when`` situations (so 4 keys each: doc, title and
two situations), and ``--rated`` of them rated helpful after a search (a learned key and an
event each). Then, in-process as the CLI runs them without a daemon (admin.py):
  export jsonl        time, bytes
  export markdown     time, bytes
  import (empty dir)  time: every vector recomputed from the texts with the model
  import again        time: everything found, "0 added, 0 changed"
  dry run             time
The import time is what decides whether exporting vectors (``--with-vectors``) is worth it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from contextd_mcp.admin import Admin
from contextd_mcp.container import build
from contextd_mcp.models.requests import MemoryFeedback, SearchMemories, StoreMemory
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths

SCOPE = Scope(tenant="bench", team="core", project="api")
TOOLS = ["pytest", "docker", "alembic", "numpy", "uv", "ruff", "mypy", "git", "nginx", "redis", "kafka", "terraform"]
VERBS = ["pin", "cache", "retry", "disable", "isolate", "pre-build", "vendor", "lock", "mock", "split"]
PROBLEMS = ["flaky tests", "slow builds", "import errors", "timeouts", "permission denied", "stale lock files",
            "out of memory", "wrong version picked", "missing environment variable", "race on startup"]


def lesson(i: int, rng: random.Random) -> StoreMemory:
    tool, verb, problem = rng.choice(TOOLS), rng.choice(VERBS), rng.choice(PROBLEMS)
    return StoreMemory(
        title=f"{verb.capitalize()} {tool} to avoid {problem} (case {i})",
        content=f"When {tool} shows {problem} in service {i % 97}, {verb} it before the run; "
                f"the cause was {rng.choice(PROBLEMS)} in step {i % 13}. Checked on build {i}.",
        applies_when=[f"{tool} {problem}", f"{problem} in service {i % 97}"],
        tags=[tool],
    )


def fill(admin_dir: Path, memories: int, rated: int) -> float:
    container = build(DataPaths(admin_dir))
    rng = random.Random(17)
    started = time.perf_counter()
    try:
        for start in range(0, memories, 256):
            batch = [lesson(i, rng) for i in range(start, min(memories, start + 256))]
            container.memory.store_many(SCOPE, batch)
        for i in range(rated):
            query = f"{TOOLS[i % len(TOOLS)]} {PROBLEMS[i % len(PROBLEMS)]} case {i}"
            search_id, hits = container.memory.search_logged(SCOPE, SearchMemories(query=query), "bench")
            if hits:
                container.memory.feedback(SCOPE, MemoryFeedback(memory_id=hits[0].id, helpful=True, search_id=search_id), "bench")
    finally:
        container.close()
    return time.perf_counter() - started


def plant(data_dir: Path, memories: int, rated: int) -> float:
    """``--planted``: the same memories written straight into the store with a placeholder
    vector (payloads as ``store_many`` writes them, a learned key and an event on ``rated``):
    export, a no-op re-import and a dry run read payloads only, so their times hold; a restore
    into an empty directory embeds and is not run in this mode."""
    from contextd_mcp.ports.vector_store import Record, placeholder_vector
    from contextd_mcp.services import memory_keys as keys
    from contextd_mcp.services.content_ids import content_id, digest
    from contextd_mcp.services.memory import COLLECTION, KEYS_VERSION, first_sentence

    container = build(DataPaths(data_dir))
    rng, now = random.Random(17), time.time()
    vector = placeholder_vector(container.embedder.dim)
    started = time.perf_counter()
    try:
        for start in range(0, memories, 1000):
            records, points = [], []
            for i in range(start, min(memories, start + 1000)):
                m = lesson(i, rng)
                payload: dict[str, Any] = {
                    **SCOPE.fields(), "title": m.title, "description": first_sentence(m.content), "content": m.content,
                    "outcome": "success", "tags": m.tags, "applies_when": m.applies_when, "keys_version": KEYS_VERSION,
                    "alpha": 2.0, "beta": 1.0, "confidence": 2 / 3, "helpful_count": 0, "unhelpful_count": 0,
                    "uses_succeeded": 0, "uses_failed": 0, "origin": "stored", "session_id": "",
                    "content_hash": digest(m.title, m.content), "created_ts": now + i, "updated_ts": now + i,
                }
                ident = content_id("memory", SCOPE, payload["content_hash"])
                if i < rated:
                    query = f"{m.applies_when[0]} case {i}"
                    payload.update(alpha=2.5, confidence=2.5 / 3.5, helpful_count=1, events=[
                        {"ts": now + i, "kind": "helpful_count", "helpful": True, "origin": "bench", "query": query}])
                    points += keys.key_records(payload, ident, [(keys.KeyKind.learned, query)], [vector], now + i)
                records.append(Record(ident, payload, vector))
            container.store.upsert(COLLECTION, records)
            container.store.upsert(keys.KEYS, points)
    finally:
        container.close()
    return time.perf_counter() - started


def timed(data_dir: Path, request: dict[str, Any]) -> tuple[float, list[str]]:
    container = build(DataPaths(data_dir))
    try:
        started = time.perf_counter()
        lines = Admin(container).run(request)
        return time.perf_counter() - started, lines
    finally:
        container.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--rated", type=int, default=1000)
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--planted", action="store_true", help="fill without the model (see plant); no restore run")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-export-"))
    source, target = root / "source", root / "target"
    results: dict[str, Any] = {"memories": args.memories, "rated": args.rated}
    results["planted"] = args.planted
    results["fill_s"] = round((plant if args.planted else fill)(source, args.memories, args.rated), 1)
    seconds, lines = timed(source, {"command": "export", "tenant": SCOPE.tenant})
    dump = root / "export.jsonl"
    dump.write_text("\n".join(lines) + "\n")
    results["export_jsonl_s"] = round(seconds, 2)
    results["export_jsonl_bytes"] = dump.stat().st_size
    results["records"] = len(lines) - 1
    results["learned_keys"] = sum(len(json.loads(line).get("keys", [])) for line in lines[1:])
    seconds, markdown = timed(source, {"command": "export", "tenant": SCOPE.tenant, "format": "markdown"})
    results["export_markdown_s"] = round(seconds, 2)
    results["export_markdown_bytes"] = len("\n".join(markdown).encode())
    steps = [
        ("import_empty", {"command": "import", "path": str(dump)}),
        ("import_again", {"command": "import", "path": str(dump)}),
        ("import_dry_run", {"command": "import", "path": str(dump), "dry_run": True}),
    ]
    for name, request in steps[1:] if args.planted else steps:
        # Planted: the re-import and the dry run go into the source store itself (it has them all).
        seconds, report = timed(source if args.planted else target, request)
        results[f"{name}_s"] = round(seconds, 1)
        results[f"{name}_summary"] = json.loads(report[-1])["summary"]
    results["store_disk_bytes"] = sum(f.stat().st_blocks * 512 for f in (source / "store").rglob("*") if f.is_file())
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
