"""Memory that learns: retrieval of lessons among hard negatives, cold and after rating, through
the real daemon and the real MCP client, beside naive dense cosine on the same model.

    .venv/bin/python -m bench.bench_memory_learning quality [--split dev] [--ablation] [--json FILE]
    .venv/bin/python -m bench.bench_memory_learning latency [--sizes 1000,10000] [--json FILE]

quality, per split (bench/data/memory_eval/{dev,heldout}.json; heldout only for final figures):
  1. store every lesson and hard negative with memory_store (a lesson's task and error, which
     a distilled memory would carry as keys, are given as applies_when phrases);
  2. cold: memory_search phrasing B of every lesson (limit 10): R@1, R@3, MRR;
  3. learning protocol: for every lesson, memory_search phrasing A and, when the lesson is among
     the hits, memory_feedback helpful right after (attributed to that search by the connection,
     no search_id); and, to keep popularity out, one random hard negative of that lesson rated
     helpful after a search for its own title;
  4. after: phrasing B again.
Naive: the same model (fastembed, the shipped MiniLM) embeds "title. description\\ncontent" of
every item and each query; cosine, no keys, no fusion, no confidence.
--ablation repeats 1-4 with each part switched off by its setting (CONTEXTD_MEMORY_*=0), and a
variant of the protocol that also rates unhelpful whatever ranked above the lesson (what
negative keys learn from).

latency: bench/contextd.py's corpus and session figures (search, store, feedback over stdio
against a warm daemon) at each size; the fill reuses document vectors cached on disk (--cache)
so that both runs pay for the model only once. Run it once with this tree and once with
PYTHONPATH pointing at the tree to compare with (e.g. a worktree of aa7b155), one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import anyio

from bench.quality import score

ROOT = Path(__file__).parents[1]
EVAL = ROOT / "bench" / "data" / "memory_eval"
SEED = 15
SEARCH_LIMIT = 10
# Ablation: what each run switches off (environment of the daemon).
ABLATIONS: dict[str, dict[str, str]] = {
    "all parts": {},
    "no keys (doc only)": {"CONTEXTD_MEMORY_KEYS": "0"},
    "no sparse": {"CONTEXTD_MEMORY_SPARSE": "0"},
    "no learned keys": {"CONTEXTD_MEMORY_LEARNED_KEYS": "0"},
    "no negative keys": {"CONTEXTD_MEMORY_NEGATIVE_KEYS": "0"},
    "no preferences": {"CONTEXTD_MEMORY_PREFERENCES": "0"},
    "no rerank": {"CONTEXTD_MEMORY_RERANK": "0"},
}


def load(split: str, path: Path | None = None) -> dict[str, Any]:
    return json.loads((path or EVAL / f"{split}.json").read_text())


def _store_args(item: dict[str, Any]) -> dict[str, Any]:
    situations = [*item.get("applies_when", []), *(item[k] for k in ("task", "error") if item.get(k))]
    args: dict[str, Any] = {
        "title": item["title"],
        "content": item["content"],
        "outcome": item.get("outcome", "success"),
        "tags": item.get("tags", [])[:16],
        "applies_when": [s.strip()[:200] for s in dict.fromkeys(situations) if s.strip()][:8],
    }
    if item.get("description"):
        args["description"] = item["description"]
    return args


def _data(result: Any) -> dict[str, Any]:
    if result.is_error:
        raise RuntimeError(result.content[0].text)
    return result.structured_content


class Run:
    """One split stored in one daemon, measured through one MCP client."""

    def __init__(self, client: Any, data: dict[str, Any]) -> None:
        self.client = client
        self.lessons = data["lessons"]
        self.negatives = data["negatives"]
        self.ids: dict[str, str] = {}

    async def store_all(self) -> list[float]:
        timings = []
        for item in [*self.lessons, *self.negatives]:
            started = time.perf_counter()
            self.ids[item["key"]] = _data(await self.client.call_tool("memory_store", _store_args(item)))["id"]
            timings.append((time.perf_counter() - started) * 1000)
        return timings

    async def search(self, query: str) -> tuple[str, list[str]]:
        found = _data(
            await self.client.call_tool("memory_search", {"query": query, "limit": SEARCH_LIMIT, "min_confidence": 0.0})
        )
        return found["search_id"], [m["id"] for m in found["memories"]]

    async def recall(self, phrasing: str) -> dict[str, float]:
        ranked, relevant = [], []
        for lesson in self.lessons:
            ranked.append((await self.search(lesson[phrasing]))[1])
            relevant.append({self.ids[lesson["key"]]})
        return _figures(ranked, relevant)

    async def learn(self, rate_above_unhelpful: bool = False) -> dict[str, int]:
        rng = random.Random(SEED)
        by_lesson: dict[str, list[dict[str, Any]]] = {}
        for negative in self.negatives:
            by_lesson.setdefault(negative["negative_of"], []).append(negative)
        counts = {"lesson_found_by_a": 0, "rated_helpful": 0, "rated_unhelpful": 0}
        for lesson in self.lessons:
            want = self.ids[lesson["key"]]
            _, hits = await self.search(lesson["phrasing_a"])
            if want in hits:
                counts["lesson_found_by_a"] += 1
                if rate_above_unhelpful:
                    for other in hits[: hits.index(want)]:
                        await self.client.call_tool("memory_feedback", {"memory_id": other, "helpful": False})
                        counts["rated_unhelpful"] += 1
                await self.client.call_tool("memory_feedback", {"memory_id": want, "helpful": True})
                counts["rated_helpful"] += 1
            pool = by_lesson.get(lesson["key"]) or self.negatives
            decoy = rng.choice(pool)
            _, hits = await self.search(decoy["title"])
            if self.ids[decoy["key"]] in hits:
                await self.client.call_tool("memory_feedback", {"memory_id": self.ids[decoy["key"]], "helpful": True})
                counts["rated_helpful"] += 1
        return counts


def _figures(ranked: list[list[str]], relevant: list[set[str]]) -> dict[str, float]:
    r1, r3, mrr = score(ranked, relevant)
    return {"r1": round(r1, 3), "r3": round(r3, 3), "mrr": round(mrr, 3), "queries": len(ranked)}


async def protocol(client: Any, data: dict[str, Any], rate_above_unhelpful: bool = False) -> dict[str, Any]:
    """Store, cold phrasing B, learning protocol, phrasing B again: the figures of one run."""
    run = Run(client, data)
    store_ms = await run.store_all()
    cold = await run.recall("phrasing_b")
    cold_a = await run.recall("phrasing_a")
    started = time.perf_counter()
    counts = await run.learn(rate_above_unhelpful)
    learn_s = time.perf_counter() - started
    after = await run.recall("phrasing_b")
    return {
        "items": len(run.ids),
        "cold_b": cold,
        "cold_a": cold_a,
        "after_b": after,
        "learning": {**counts, "seconds": round(learn_s, 1)},
        "store_ms_p50": sorted(store_ms)[len(store_ms) // 2],
    }


def naive(data: dict[str, Any], phrasing: str = "phrasing_b") -> dict[str, float]:
    """Dense cosine over the same model: one vector per item, one per query, nothing else."""
    import numpy as np

    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
    from contextd_mcp.settings import DEFAULT_MODEL, EmbeddingSettings

    embedder = FastEmbedEmbedder(DEFAULT_MODEL, EmbeddingSettings().cache_dir)
    items = [*data["lessons"], *data["negatives"]]
    docs = np.array(embedder.embed_documents(
        [f"{i['title']}. {i.get('description') or ''}\n{i['content']}" for i in items]
    ))
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    ranked, relevant = [], []
    for lesson in data["lessons"]:
        q = np.array(embedder.embed_query(lesson[phrasing]))
        order = np.argsort(-(docs @ (q / np.linalg.norm(q))))[:SEARCH_LIMIT]
        ranked.append([items[i]["key"] for i in order])
        relevant.append({lesson["key"]})
    return _figures(ranked, relevant)


async def _through_daemon(data: dict[str, Any], env: dict[str, str], rate_above_unhelpful: bool = False) -> dict[str, Any]:
    from bench.driver import CLI, contextd_env, stdio_client, stop_contextd

    with tempfile.TemporaryDirectory(prefix="contextd-learn-") as tmp:
        data_dir, project = Path(tmp) / "data", Path(tmp) / "project"
        project.mkdir()
        try:
            async with stdio_client([*CLI, "stdio"], contextd_env(data_dir, **env), project) as client:
                return await protocol(client, data, rate_above_unhelpful)
        finally:
            stop_contextd(data_dir)


def first_lessons(data: dict[str, Any], lessons: int | None) -> dict[str, Any]:
    """The first ``lessons`` lessons of a split with their own hard negatives (None: all)."""
    if lessons is None:
        return data
    kept = data["lessons"][:lessons]
    keys = {lesson["key"] for lesson in kept}
    return {"lessons": kept, "negatives": [n for n in data["negatives"] if n.get("negative_of") in keys]}


def quality(split: str, ablation: bool, lessons: int | None = None, only: str | None = None) -> dict[str, Any]:
    data = first_lessons(load(split), lessons)
    results: dict[str, Any] = {
        "split": split,
        "lessons": len(data["lessons"]),
        "negatives": len(data["negatives"]),
        "naive_b": naive(data),
        "naive_a": naive(data, "phrasing_a"),
    }
    runs = ABLATIONS if ablation else {"all parts": {}}
    if only:
        runs = {only: ABLATIONS[only]}
    for name, env in runs.items():
        results[name] = anyio.run(_through_daemon, data, env)
        print(name, json.dumps(results[name]), flush=True)
    if ablation and not only:
        for name in ("all parts", "no negative keys"):
            label = f"{name}, unhelpful above the lesson"
            results[label] = anyio.run(_through_daemon, data, ABLATIONS[name], True)
            print(label, json.dumps(results[label]), flush=True)
    return results


class CachedEmbedder:
    """The real model, with a disk cache of document vectors: the before and after runs store
    the same corpus, and on a shared 2-core machine embedding it dominates the fill."""

    def __init__(self, inner: Any, path: Path) -> None:
        import pickle

        self._inner, self._path = inner, path
        self.model_name, self.dim = inner.model_name, inner.dim
        self._cache: dict[str, list[float]] = pickle.loads(path.read_bytes()) if path.exists() else {}
        # Unit vectors seeded by the text instead of the model's: an exact search costs the same
        # whatever the vectors say, and a fill at 10k then fits a loaded machine (--synthetic).
        self.synthetic = False

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            self._cache.update(zip(missing, (list(v) for v in self._embed(missing)), strict=True))
        return [self._cache[t] for t in texts]

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if not self.synthetic:
            return self._inner.embed_documents(texts)
        import hashlib

        import numpy as np

        out = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out.append((v / np.linalg.norm(v)).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._inner.embed_query(text)

    def save(self) -> None:
        import pickle

        self._path.write_bytes(pickle.dumps(self._cache))


def _fill(data_dir: Path, project_dir: Path, n: int, cache: Path, synthetic: bool = False) -> float:
    """bench/contextd.py's fill with the cached embedder: n corpus memories, batches of 256."""
    from bench import corpus
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
    from contextd_mcp.container import build
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.scope_resolver import resolve_scope
    from contextd_mcp.settings import DEFAULT_MODEL, EmbeddingSettings

    embedder = CachedEmbedder(FastEmbedEmbedder(DEFAULT_MODEL, EmbeddingSettings().cache_dir), cache)
    embedder.synthetic = synthetic
    scope = resolve_scope(project_dir, {})
    container = build(DataPaths(data_dir), embedder=embedder)  # type: ignore[arg-type]
    started = time.perf_counter()
    try:
        have = container.memory.counts(scope)
        batch = [m for i, m in enumerate(corpus.memories(n)) if i >= have]
        for start in range(0, len(batch), 256):
            container.memory.store_many(scope, batch[start : start + 256])
    finally:
        container.close()
        embedder.save()
    return time.perf_counter() - started


def latency(sizes: Sequence[int], cache: Path, synthetic: bool = False) -> dict[str, Any]:
    from bench.contextd import disk_bytes, session_figures
    from bench.driver import stop_contextd

    import contextd_mcp

    results: dict[str, Any] = {
        "code": str(Path(contextd_mcp.__file__).parents[2]), "load": os.getloadavg(), "synthetic_fill": synthetic
    }
    with tempfile.TemporaryDirectory(prefix="contextd-learn-lat-") as tmp:
        project, data_dir = Path(tmp) / "project", Path(tmp) / "data"
        project.mkdir()
        for n in sizes:
            stop_contextd(data_dir)
            fill_s = _fill(data_dir, project, n, cache, synthetic)
            figures = anyio.run(session_figures, data_dir, project)
            figures.pop("_tools_json", None)
            results[str(n)] = {
                "fill_seconds_cached_vectors": round(fill_s, 1),
                "disk_mib": round(disk_bytes(data_dir) / 2**20, 1),
                "load": os.getloadavg(),
                **{k: figures[k] for k in ("memory_search_ms", "memory_store_ms", "memory_feedback_ms", "daemon_rss_mib")},
            }
            print(n, json.dumps(results[str(n)]), flush=True)
        stop_contextd(data_dir)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--split", default="dev", choices=["dev", "heldout"])
    q.add_argument("--ablation", action="store_true")
    q.add_argument("--lessons", type=int, default=None, help="only the first N lessons and their negatives")
    q.add_argument("--only", default=None, choices=list(ABLATIONS), help="one ablation row")
    q.add_argument("--json", default=None)
    lat = sub.add_parser("latency")
    lat.add_argument("--sizes", default="1000,10000")
    lat.add_argument("--json", default=None)
    lat.add_argument("--synthetic", action="store_true", help="fill with text-seeded random vectors")
    lat.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "contextd-bench-doc-vectors.pickle"))
    args = parser.parse_args()
    if args.what == "quality":
        out = quality(args.split, args.ablation, args.lessons, args.only)
    else:
        out = latency([int(s) for s in args.sizes.split(",")], Path(args.cache), args.synthetic)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
