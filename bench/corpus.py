"""Deterministic synthetic memories and queries for scale runs (seeded, varied vocabulary)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from contextd_mcp.models.requests import StoreMemory

DATA = Path(__file__).parents[1] / "tests" / "data" / "memory_retrieval.json"

_TOOLS = ["pytest", "docker", "git", "postgres", "redis", "kubernetes", "terraform", "npm", "cargo", "go modules",
          "webpack", "vite", "django", "fastapi", "react", "celery", "nginx", "grpc", "kafka", "airflow", "mypy", "ruff"]
_PROBLEMS = ["flaky test", "slow build", "memory leak", "deadlock", "timeout", "cache miss", "version conflict",
             "permission error", "race condition", "config drift", "stale lockfile", "broken migration", "OOM kill"]
_FIXES = ["pin the version", "add a retry with backoff", "raise the pool size", "isolate the fixture", "clear the cache",
          "run it in a transaction", "set an explicit timeout", "split the job", "add an index", "use a lockfile",
          "move it to a background worker", "log the request id", "disable the plugin in CI"]


def seeds() -> list[dict[str, object]]:
    return list(json.loads(DATA.read_text())["memories"])


def memories(n: int, seed: int = 7) -> Iterator[StoreMemory]:
    rng = random.Random(seed)
    base = seeds()
    for i in range(n):
        if i < len(base):
            item = base[i]
            yield StoreMemory(
                title=str(item["title"]), content=str(item["content"]), description=str(item["description"]),
                outcome=str(item.get("outcome", "success")), tags=list(item.get("tags", [])),  # type: ignore[arg-type]
            )
            continue
        tool, problem, fix = rng.choice(_TOOLS), rng.choice(_PROBLEMS), rng.choice(_FIXES)
        title = f"{tool}: {problem} — {fix} (case {i})"
        content = (
            f"When {tool} showed a {problem} in service {rng.randint(1, 400)}, we had to {fix}. "
            f"Symptom seen after change {rng.randint(1000, 99999)}; the fix held for {rng.randint(2, 90)} days."
        )
        yield StoreMemory(title=title, content=content, tags=[tool.replace(" ", "-")])


def queries(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    labelled = [q["query"] for q in json.loads(DATA.read_text())["queries"]]
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(labelled[i // 2 % len(labelled)])
        else:
            out.append(f"{rng.choice(_PROBLEMS)} with {rng.choice(_TOOLS)}, how did we fix it")
    return out
