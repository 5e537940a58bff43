"""Scale: memory_search through the MCP tool at 1k…1M memories (five keys each), with writes going on.

    .venv/bin/python -m bench.bench_scale --sizes 1000,10000,100000 [--projects 1] [--queries 300]
        [--write-rate 20] [--json FILE] [--keep DIR] [--qdrant-local]
    .venv/bin/python -m bench.bench_scale --data DIR [--compact]     # measure a kept data dir
    .venv/bin/python -m bench.bench_scale --data DIR --index-live [--index-after 20000] [--json PROGRESS]
    .venv/bin/python -m bench.bench_scale --data DIR --swap-rss [--index-after 5000]
    .venv/bin/python -m bench.bench_scale --data DIR --recall [--queries 200]   # index vs exact, in-process
    .venv/bin/python -m bench.bench_scale --data DIR --swap-stall [--index-after N] [--replay-pause S]
    .venv/bin/python -m bench.bench_scale --data DIR --replay-contention 1000 [--replay-pause S]
    .venv/bin/python -m bench.bench_scale --open-profile DIR/store/memory_keys [--cold]
    .venv/bin/python -m bench.bench_scale --data DIR --search-profile [--queries 150]   # where a search goes

Per size: a data directory is filled in-process through ``MemoryService.store_many`` (the
product's own records: memories and their key points), with the realistic generated lessons and
derived vectors of ``bench/scale_records.py``, spread evenly over ``--projects`` projects of
one tenant. Then a real daemon (`contextd-mcp serve`) is started on it and timed from spawn to
its first ``memory_search`` answer (restart to first answer), and one unix-socket MCP client
issues ``--queries`` searches in the first project, one at a time, while another stores new
memories at ``--write-rate`` per second (real embeddings). Reported: search p50/p95 (ms), store
p50, daemon RSS before and after the writes, store size on disk, fill time.

``--qdrant-local`` runs the same through the ``CONTEXTD_QDRANT_URL`` adapter (qdrant-client) in
its local mode; ``--compact`` first runs ``contextd-mcp compact``'s optimizer over the store.
``--index-live`` lets the daemon index the store itself (a child process builds a copy, issue 19):
searches go on one at a time, with writes at ``--write-rate``, from before the build starts
until ``--after`` searches past the swap; each is labelled with the indexing stage it started in
(polled from the daemon's status; ``--json``: the figures so far, rewritten every 50 searches).
Then the daemon is restarted and measured as above. ``--swap-rss``: RSS across one indexing,
in-process, without the writes.
The clients run in this process, on the same 2 cores as the daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import scale_records
from bench.driver import rss_mib
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths
from tests.e2e.daemons import socket_client, start_daemon

TENANT = "scaleco"
WRITER_PROCESS = False  # --writer-process
# --daemon-env K=V: settings for the measured daemon (its environment is built afresh, without
# this process's CONTEXTD_ variables).
DAEMON_ENV: dict[str, str] = {}
BATCH = 512
# The writer's lessons: the same seed stores the same ones, which a second run on one store finds
# already there (duplicates: no embedding, a tenth of a real store's time). So each run draws its
# own seed unless one is given, and reports how many of its writes were duplicates: sessions 14-17
# measured 100k with the fixed seed 5, on stores that already held 134 of its first 200 lessons.
WRITE_SEED = int(os.environ.get("CONTEXTD_BENCH_WRITE_SEED") or random.SystemRandom().randrange(2**31))


def project_name(i: int) -> str:
    return f"proj-{i:04d}"


# Set by --qdrant-local: the store is qdrant-client's local mode in this folder of each data dir
# (the CONTEXTD_QDRANT_URL adapter, without a server), for the fill and for the daemon.
LOCAL_MODE = "qdrant-local"
_backend_env: dict[str, str] = {}


def use_local_mode(data_dir: Path) -> None:
    _backend_env["CONTEXTD_QDRANT_PATH"] = str(data_dir / LOCAL_MODE)
    os.environ.update(_backend_env)


def scope_env(project: str) -> dict[str, str]:
    return {"CONTEXTD_TENANT": TENANT, "CONTEXTD_TEAM": "default", "CONTEXTD_PROJECT": project}


def fill(data_dir: Path, n: int, projects: int, seed: int = 7, start: int = 0) -> float:
    """n generated lessons over ``projects`` projects, in-process; returns seconds. ``start``:
    the first lessons are already in the store (a fill stopped after ``start``, a multiple of the
    batch): generated again, not stored."""
    from contextd_mcp.container import build, make_embedder
    from contextd_mcp.settings import EmbeddingSettings

    real = make_embedder(EmbeddingSettings())
    embedder = scale_records.DerivedEmbedder(real, scale_records.load_bank(real, real.model_name))
    container = build(DataPaths(data_dir), embedder=embedder)
    started = time.perf_counter()
    try:
        batch: list[scale_records.Lesson] = []
        for index, item in enumerate(scale_records.lessons(n, seed)):
            if index < start:
                continue
            batch.append(item)
            if len(batch) == BATCH or index == n - 1:
                # Consecutive batches go to consecutive projects: every project gets n / projects.
                scope = Scope(tenant=TENANT, project=project_name((index // BATCH) % projects))
                embedder.expect(batch)
                situations = [("", b.error) for b in batch]
                container.memory.store_many(scope, [b.request for b in batch], situations=situations)
                batch = []
    finally:
        container.close()
    if embedder.misses:  # every key text should have had a derived vector
        print(f"fill: {len(embedder.misses)} texts embedded for real, e.g. {embedder.misses[:3]}", file=sys.stderr)
    return time.perf_counter() - started


def compact(data_dir: Path) -> dict[str, float]:
    """Runs the engine's optimizer over the store (no daemon running); seconds per collection."""
    from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
    from contextd_mcp.container import build

    container = build(DataPaths(data_dir))  # opens every collection the daemon opens
    try:
        assert isinstance(container.store, EdgeStore), "compaction is the embedded engine's"
        return container.store.compact()
    finally:
        container.close()


def disk_mib(data_dir: Path) -> float:
    roots = [data_dir / "store", data_dir / LOCAL_MODE]
    return sum(f.stat().st_blocks * 512 for root in roots for f in root.rglob("*") if f.is_file()) / 2**20


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else float("nan")


async def store_lesson(client: Any, serial: int, rng: random.Random) -> tuple[float, bool]:
    """One generated lesson stored through MCP: the call's ms, and whether the store already held
    it (a duplicate embeds nothing); an error answer raises."""
    request = scale_records.lesson(serial, rng).request.model_dump(mode="json", exclude_none=True)
    started = time.perf_counter()
    result = await client.call_tool("memory_store", request)
    if result.is_error:
        raise RuntimeError(str(result.content[0]))
    return (time.perf_counter() - started) * 1000, bool((result.structured_content or {}).get("duplicate_of_existing"))


async def _writer(
    client: Any, rate: float, stop: anyio.Event, out: list[float], rng: random.Random, duplicates: list[bool] | None = None
) -> None:
    """Stores at ``rate`` until ``stop``: each store's ms into ``out``, and into ``duplicates``
    whether the store already held that lesson."""
    serial = 0
    while not stop.is_set():
        serial += 1
        ms, duplicate = await store_lesson(client, 10_000_000 + serial, rng)
        out.append(ms)
        if duplicates is not None:
            duplicates.append(duplicate)
        await anyio.sleep(max(0.0, 1 / rate - ms / 1000))


async def measure(data_dir: Path, queries: int, write_rate: float) -> dict[str, Any]:
    cwd = data_dir.parent / "cwd"
    cwd.mkdir(exist_ok=True)
    env = scope_env(project_name(0))
    started = time.perf_counter()
    # No indexing in the daemon unless asked (the daemon's environment is built afresh).
    index_after = os.environ.get("CONTEXTD_INDEX_AFTER_POINTS", "0")
    daemon = start_daemon(data_dir, cwd, CONTEXTD_INDEX_AFTER_POINTS=index_after, **_backend_env, **DAEMON_ENV)
    texts = scale_records.queries(queries + 20)
    try:
        async with socket_client(daemon.socket, cwd, env) as client:
            first = await client.call_tool("memory_search", {"query": texts[0]})
            restart_s = time.perf_counter() - started
            assert not first.is_error, str(first.content[0])
            for text in texts[1:20]:
                await client.call_tool("memory_search", {"query": text})
            rss_before = rss_mib(daemon.process.pid)[0]
            search: list[float] = []
            stores: list[float] = []
            duplicates: list[bool] = []
            stop = anyio.Event()
            writer_process = None
            if write_rate > 0 and WRITER_PROCESS:
                # Another agent's writes come from another process: the writer's client work (its
                # JSON, its validation of each answer) then does not hold up this loop's searches.
                writer_process = await anyio.open_process(
                    [sys.executable, "-m", "bench.bench_scale", "--writer", str(daemon.socket), str(cwd), str(write_rate)],
                    cwd=ROOT, env={**os.environ, **env, "CONTEXTD_BENCH_WRITE_SEED": str(WRITE_SEED)},
                )
                await anyio.sleep(1.0)  # its imports and connection, before the searches start
            async with socket_client(daemon.socket, cwd, env) as writer, anyio.create_task_group() as tg:
                if write_rate > 0 and writer_process is None:
                    tg.start_soon(_writer, writer, write_rate, stop, stores, random.Random(WRITE_SEED), duplicates)
                window = time.perf_counter()
                for text in texts[20:]:
                    t0 = time.perf_counter()
                    result = await client.call_tool("memory_search", {"query": text, "limit": 5})
                    search.append((time.perf_counter() - t0) * 1000)
                    assert not result.is_error, str(result.content[0])
                    assert result.structured_content["memories"], f"no hit for {text!r}"
                window = time.perf_counter() - window
                stop.set()
            if writer_process is not None:
                writer_process.send_signal(signal.SIGINT)
                out = b""
                if writer_process.stdout:
                    async for chunk in writer_process.stdout:
                        out += chunk
                await writer_process.wait()
                written = json.loads(out.decode().strip().splitlines()[-1])
                stores.extend(written["ms"])
                duplicates.extend(written["duplicates"])
            rss_after, rss_peak = rss_mib(daemon.process.pid)
            parts = rss_parts_mib(daemon.process.pid, data_dir / "store")
    finally:
        daemon.stop()
    return {
        "restart_to_first_answer_s": round(restart_s, 2), **parts,
        "search_p50_ms": _pct(search, 0.5), "search_p95_ms": _pct(search, 0.95),
        "search_mean_ms": round(statistics.fmean(search), 2),
        "stores_during": len(stores), "stores_duplicate": sum(duplicates), "write_seed": WRITE_SEED,
        "store_p50_ms": _pct(stores, 0.5), "stores_per_s": round(len(stores) / window, 1),
        "rss_mib_before_writes": round(rss_before, 1), "rss_mib_after_writes": round(rss_after, 1),
        "rss_mib_peak": round(rss_peak, 1),
    }


def writer_main(socket: Path, cwd: Path, rate: float) -> None:
    """``--writer``: stores at ``rate`` until SIGINT, then prints the stores' latencies (ms)."""
    stores: list[float] = []
    duplicates: list[bool] = []

    async def run() -> None:
        stop = anyio.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        async with socket_client(socket, cwd, scope_env(project_name(0))) as client:
            await _writer(client, rate, stop, stores, random.Random(WRITE_SEED), duplicates)

    anyio.run(run)
    print(json.dumps({"ms": stores, "duplicates": duplicates}), flush=True)


def rss_parts_mib(pid: int, store: Path | None = None) -> dict[str, float]:
    """Anonymous (heap, arenas) and file-backed (mapped store files, page cache) RSS, MiB; with
    ``store``, the part of RssFile that is mappings of its files, of them the quantised vectors
    (kept in memory on purpose), and how much of the store the page cache holds (not RSS)."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    parts = {f"{k.lower()}_mib": round(int(status[k].split()[0]) / 1024, 1) for k in ("RssAnon", "RssFile")}
    if store is None:
        return parts
    prefix, mapped, quantized, path = str(store.resolve()) + "/", 0, 0, ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            path = fields[5] if len(fields) > 5 else ""
        elif fields[0] == "Rss:" and path.startswith(prefix):
            mapped += int(fields[1])
            quantized += int(fields[1]) if "quantized" in path else 0
    parts["store_mapped_mib"] = round(mapped / 1024, 1)
    parts["quantized_mapped_mib"] = round(quantized / 1024, 1)
    parts["store_page_cache_mib"] = round(page_cache_bytes(store) / 2**20, 1)
    return parts


def page_cache_bytes(root: Path) -> int:
    """Bytes of the files under ``root`` in the page cache (mincore through util-linux fincore)."""
    import subprocess

    files = [str(f) for f in root.resolve().rglob("*") if f.is_file()]
    total = 0
    for i in range(0, len(files), 200):
        done = subprocess.run(["fincore", "-b", "-n", "-o", "RES", *files[i : i + 200]],
                              capture_output=True, text=True, timeout=60, check=False)
        total += sum(int(x) for x in done.stdout.split() if x.isdigit())
    return total


def search_profile(data_dir: Path, queries: int, top: int = 25) -> dict[str, Any]:
    """Where one memory search's time goes, in-process with the daemon's container (no MCP):
    each engine call of ``MemoryService.search`` timed alone (the dense key search, the sparse
    one, both as the batch the service sends, the memories' payload read), the query's
    embedding, the whole search; then cProfile of the whole searches (``top`` functions by
    cumulative time, on stderr). Distinct queries: each first touches of the store as a
    daemon's searches do."""
    import cProfile
    import pstats

    import qdrant_edge as qe

    from contextd_mcp.adapters import qdrant_edge_store as edge
    from contextd_mcp.container import build
    from contextd_mcp.models.requests import SearchMemories
    from contextd_mcp.services import memory_keys as mk

    started = time.perf_counter()
    container = build(DataPaths(data_dir))
    build_s = time.perf_counter() - started
    scope = Scope(tenant=TENANT, project=project_name(0))
    service = container.memory
    store = service._stores.of(scope)
    engine = store._store  # the EdgeStore under the scoped view
    shard = engine._shards[mk.KEYS]
    flt = qe.Filter(must=[qe.FieldCondition(key="tenant", match=qe.MatchValue(TENANT)),
                          qe.FieldCondition(key="project", match=qe.MatchValue(project_name(0)))])
    fields = ["memory_id", "kind"]
    took: dict[str, list[float]] = {k: [] for k in ("embed", "dense", "sparse", "batch", "memories_get", "search")}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        t0 = time.perf_counter_ns()
        out = call()
        took[name].append((time.perf_counter_ns() - t0) / 1e6)
        return out

    texts = scale_records.queries(2 * queries)
    profiler = cProfile.Profile()
    try:
        for text in texts[:queries]:
            vector = timed("embed", lambda t=text: service._embedder.embed_query(t))
            # the product's query terms (older trees: every term)
            sparse = mk.query_sparse(text) if hasattr(mk, "query_sparse") else mk.key_sparse(text, unit=False)
            if hasattr(store, "_terms"):  # the tenant's term layout (absent from older trees)
                sparse = store._terms(mk.KEYS, sparse)
            timed("dense", lambda v=vector: shard.query(qe.QueryRequest(
                limit=mk.CANDIDATES, query=qe.Query.Nearest(v), filter=flt, with_payload=fields,
                params=edge._dense_params() if hasattr(edge, "_dense_params") else None)))  # the product's ef
            timed("sparse", lambda s=sparse: shard.query(qe.QueryRequest(
                limit=mk.CANDIDATES, query=qe.Query.Nearest(edge._sparse(s), using="lexical"), filter=flt,
                with_payload=fields)))
            dense, _ = timed("batch", lambda v=vector, s=sparse: engine.dense_and_sparse(
                mk.KEYS, v, s, {"tenant": TENANT, "project": project_name(0)}, mk.CANDIDATES, fields=fields))
            ids = list(dict.fromkeys(h.payload["memory_id"] for h in dense))[:20]
            timed("memories_get", lambda i=ids: engine.get("memories", i, {"tenant": TENANT}, fields=["title"]))
        for text in texts[queries:]:
            profiler.enable()
            timed("search", lambda t=text: service.search(scope, SearchMemories(query=t, limit=5)))
            profiler.disable()
        parts = rss_parts_mib(os.getpid(), data_dir / "store")
    finally:
        container.close()
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(top)
    return {"build_s": round(build_s, 2), **{f"{k}_p50_p95_ms": [_pct(v, 0.5), _pct(v, 0.95)] for k, v in took.items()},
            **parts}


async def _stage_poller(paths: DataPaths, stop: anyio.Event, state: dict[str, Any]) -> None:
    from contextd_mcp.transports.bridge import request

    while not stop.is_set():
        reply = await anyio.to_thread.run_sync(request, paths, "status")
        job = ((reply or {}).get("store", {}).get("indexing", {}).get("memory_keys") or {}).get("job") or {}
        state.update(job=job, stage=job.get("stage", "not started"))
        await anyio.sleep(0.5)


async def measure_live(
    data_dir: Path, write_rate: float, index_after: int, after: int, budget_s: float, progress: Path | None = None
) -> dict[str, Any]:
    """Searches before, during and after the daemon's own indexing of memory_keys, writes alongside."""
    cwd = data_dir.parent / "cwd"
    cwd.mkdir(exist_ok=True)
    env = scope_env(project_name(0))
    nice = os.environ.get("CONTEXTD_INDEX_NICE", "19")
    daemon = start_daemon(data_dir, cwd, CONTEXTD_INDEX_AFTER_POINTS=str(index_after), CONTEXTD_INDEX_NICE=nice, **_backend_env)
    texts = scale_records.queries(300)
    by_stage: dict[str, list[float]] = {}
    state: dict[str, Any] = {"stage": "not started"}
    stores: list[float] = []
    try:
        async with socket_client(daemon.socket, cwd, env) as client:
            for text in texts[:20]:
                await client.call_tool("memory_search", {"query": text})
            rss_before = rss_mib(daemon.process.pid)[0]
            stop = anyio.Event()
            deadline = time.monotonic() + budget_s
            async with socket_client(daemon.socket, cwd, env) as writer, anyio.create_task_group() as tg:
                tg.start_soon(_stage_poller, DataPaths(data_dir), stop, state)
                if write_rate > 0:
                    tg.start_soon(_writer, writer, write_rate, stop, stores, random.Random(WRITE_SEED))
                serial = 0
                while len(by_stage.get("done", [])) < after and time.monotonic() < deadline:
                    stage = state["stage"]
                    t0 = time.perf_counter()
                    result = await client.call_tool("memory_search", {"query": texts[serial % len(texts)], "limit": 5})
                    by_stage.setdefault(stage, []).append((time.perf_counter() - t0) * 1000)
                    assert not result.is_error, str(result.content[0])
                    serial += 1
                    if serial % 50 == 0 and progress:  # what a run cut short still tells
                        progress.write_text(json.dumps({"stage": state, "ms": by_stage}))
                    if stage == "failed":
                        break
                stop.set()
            rss_after, rss_peak = rss_mib(daemon.process.pid)
    finally:
        daemon.stop()
    return {
        "index_after": index_after, "index_nice": nice,
        "search_ms_by_stage": {
            stage: {"n": len(v), "p50": _pct(v, 0.5), "p95": _pct(v, 0.95), "max": round(max(v), 1)}
            for stage, v in by_stage.items()
        },
        "job": state.get("job"), "stores_during": len(stores), "store_p50_ms": _pct(stores, 0.5),
        "rss_mib_before": round(rss_before, 1), "rss_mib_after_swap": round(rss_after, 1), "rss_mib_peak": round(rss_peak, 1),
    }


def swap_rss(data_dir: Path, index_after: int) -> dict[str, Any]:
    """In-process, no writes but the 64 points that start it: this process's RSS across one
    indexing of memory_keys (copy, child build at nice 0, swap). Modifies the store."""
    import numpy as np

    from contextd_mcp.container import build
    from contextd_mcp.ports.vector_store import Record

    def status_mib(field: str) -> int:
        return int(Path("/proc/self/status").read_text().split(f"{field}:")[1].split()[0]) // 1024

    os.environ.update(CONTEXTD_INDEX_AFTER_POINTS=str(index_after), CONTEXTD_INDEX_NICE="0")
    container = build(DataPaths(data_dir))
    store, rng = container.store, np.random.default_rng(1)
    query = rng.standard_normal(384).tolist()
    try:
        for _ in range(20):
            store.search("memory_keys", query, {}, 10)
        figures: dict[str, Any] = {"rss_mib_open": status_mib("VmRSS"), "anon_mib_open": status_mib("RssAnon")}
        trigger = [Record(str(uuid.uuid4()), {"tenant": "bench", "project": "swap"}, rng.standard_normal(384).tolist())
                   for _ in range(64)]
        store.upsert("memory_keys", trigger)
        while (store.describe()["indexing"]["memory_keys"].get("job") or {}).get("stage") not in ("done", "failed"):
            time.sleep(0.2)
        for _ in range(20):
            store.search("memory_keys", query, {}, 10)
        figures.update(rss_mib_swapped=status_mib("VmRSS"), anon_mib_swapped=status_mib("RssAnon"))
        figures["job"] = store.describe()["indexing"]["memory_keys"]["job"]
    finally:
        container.close()
    return figures


def recall(data_dir: Path, queries: int, ef: int | None = None, oversampling: float | None = None) -> dict[str, Any]:
    """memory_keys opened in-process (as the daemon opens it): recall@10 of the engine's search
    (HNSW where a segment has a graph) against exact search, on real queries embedded by the
    real model, with the project filter every memory search has; and each one's latency.
    ``oversampling``: rescoring, for a store whose segments hold quantised vectors (BENCHMARKS.md,
    "Session 8: scale"; the store's own searches send none)."""
    import qdrant_edge as qe

    from contextd_mcp import limits

    from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
    from contextd_mcp.container import make_embedder
    from contextd_mcp.services.memory_keys import keys_spec
    from contextd_mcp.settings import EmbeddingSettings

    from contextd_mcp.adapters import qdrant_edge_store as edge

    embedder = make_embedder(EmbeddingSettings())
    vectors = [embedder.embed_query(text) for text in scale_records.queries(queries)]
    ef = ef or getattr(edge, "DENSE_EF", None)  # the product's searches' ef unless asked otherwise
    oversampling = oversampling or getattr(limits, "RESCORE_OVERSAMPLING", None)
    rescoring = qe.QuantizationSearchParams(rescore=True, oversampling=oversampling) if oversampling else None
    store = EdgeStore(data_dir / "store")
    started = time.perf_counter()
    store.ensure(keys_spec(embedder.dim, embedder.model_name))
    open_s = time.perf_counter() - started
    shard = store._shards["memory_keys"]  # the engine's own search parameters, exact or not
    flt = qe.Filter(must=[qe.FieldCondition(key="tenant", match=qe.MatchValue(TENANT)),
                          qe.FieldCondition(key="project", match=qe.MatchValue(project_name(0)))])
    found: dict[bool, list[list[str]]] = {False: [], True: []}
    took: dict[bool, list[float]] = {False: [], True: []}
    try:
        info = shard.info()
        for vector in vectors:
            for exact in (False, True):
                # Exact: every point, on the original vectors (not the quantised ones).
                originals = qe.QuantizationSearchParams(ignore=True)
                params = qe.SearchParams(exact=True, quantization=originals) if exact else qe.SearchParams(hnsw_ef=ef, quantization=rescoring)
                request = qe.QueryRequest(limit=10, query=qe.Query.Nearest(vector), filter=flt, params=params)
                t0 = time.perf_counter()
                points = shard.query(request)
                took[exact].append((time.perf_counter() - t0) * 1000)
                found[exact].append([str(p.id) for p in points])
    finally:
        store.close()
    hits = [len(set(a) & set(e)) / max(1, len(e)) for a, e in zip(found[False], found[True], strict=True)]
    return {
        "hnsw_ef": ef, "oversampling": oversampling, "points": int(info.points_count), "segments": int(info.segments_count),
        "indexed_vectors": int(info.indexed_vectors_count), "open_s": round(open_s, 2),
        "recall_at_10": round(statistics.fmean(hits), 4),
        "search_p50_ms": _pct(took[False], 0.5), "search_p95_ms": _pct(took[False], 0.95),
        "exact_p50_ms": _pct(took[True], 0.5), "exact_p95_ms": _pct(took[True], 0.95),
    }


def swap_stall(data_dir: Path, index_after: int, writers_per_s: float, pause_s: float | None) -> dict[str, Any]:
    """In-process, without MCP: one thread searches memory_keys back to back while another
    upserts five-key batches at ``writers_per_s`` and the store indexes the collection (child at
    nice 0); each search's latency is filed under the job's stage when it started. ``pause_s``
    overrides limits.INDEX_REPLAY_PAUSE_S (0: the replay back to back). Modifies the store."""
    import threading

    import numpy as np

    from contextd_mcp import limits
    from contextd_mcp.container import build
    from contextd_mcp.ports.vector_store import Record

    if pause_s is not None:
        limits.INDEX_REPLAY_PAUSE_S = pause_s
    os.environ.update(CONTEXTD_INDEX_AFTER_POINTS=str(index_after), CONTEXTD_INDEX_NICE="0")
    container = build(DataPaths(data_dir))
    store, rng = container.store, np.random.default_rng(1)
    where = {"tenant": TENANT, "project": project_name(0)}
    queries = [rng.standard_normal(384).tolist() for _ in range(64)]
    by_stage: dict[str, list[float]] = {}
    stop = threading.Event()

    current = {"stage": "not started"}

    def poll() -> None:  # apart from the searches: reading the stage takes the store's lock
        while not stop.wait(0.05):
            job = store.describe()["indexing"]["memory_keys"].get("job") or {}
            current["stage"] = str(job.get("stage", "not started"))

    def write() -> None:
        while not stop.wait(1 / writers_per_s):
            batch = [Record(str(uuid.uuid4()), {**where, "kind": "doc"}, rng.standard_normal(384).tolist())
                     for _ in range(5)]
            store.upsert("memory_keys", batch)

    threads = [threading.Thread(target=write), threading.Thread(target=poll)]
    for thread in threads:
        thread.start()
    try:
        serial = 0
        while True:
            now = current["stage"]
            t0 = time.perf_counter()
            store.search("memory_keys", queries[serial % 64], where, 10)
            by_stage.setdefault(now, []).append((time.perf_counter() - t0) * 1000)
            serial += 1
            if now in ("done", "failed") and len(by_stage[now]) >= 200:
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        job = store.describe()["indexing"]["memory_keys"].get("job")
        container.close()
    return {
        "pause_s": limits.INDEX_REPLAY_PAUSE_S, "job": job,
        "search_ms_by_stage": {k: {"n": len(v), "p50": _pct(v, 0.5), "p95": _pct(v, 0.95), "max": round(max(v), 1)}
                               for k, v in by_stage.items()},
    }


def replay_contention(data_dir: Path, ops: int, pause_s: float) -> dict[str, Any]:
    """What the replay step does to searches, in isolation: one thread applies ``ops`` five-point
    upserts to a copy of memory_keys (as a job replays its log onto the built generation),
    pausing ``pause_s`` after each, while this thread searches the live memory_keys back to back.
    Searches alone first, for comparison."""
    import threading

    import numpy as np
    import qdrant_edge as qe

    from contextd_mcp.adapters import edge_generations as gen
    from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
    from contextd_mcp.services.memory_keys import keys_spec

    store = EdgeStore(data_dir / "store")
    meta = json.loads((data_dir / "store" / "memory_keys" / "contextd-collection.json").read_text())
    spec = keys_spec(meta["dim"], meta["model"])
    store.ensure(spec)
    copy = data_dir / "replay-copy"
    gen.copy_shard(data_dir / "store" / "memory_keys", copy)
    target = store.open_generation("memory_keys", copy)
    rng = np.random.default_rng(2)
    where = {"tenant": TENANT, "project": project_name(0)}
    queries = [rng.standard_normal(384).tolist() for _ in range(64)]
    batches = [qe.UpdateOperation.upsert_points([
        qe.Point(id=str(uuid.uuid4()), vector={"": rng.standard_normal(384).tolist(),
                                               "lexical": qe.SparseVector([1, 7, 40], [1.0, 0.5, 0.2])},
                 payload={**where, "kind": "doc"}) for _ in range(5)]) for _ in range(ops)]
    done = threading.Event()

    def replay() -> None:
        for op in batches:
            target.update(op)
            time.sleep(pause_s)
        done.set()

    def searches(until: Callable[[], bool]) -> list[float]:
        took = []
        while not until():
            t0 = time.perf_counter()
            store.search("memory_keys", queries[len(took) % 64], where, 10)
            took.append((time.perf_counter() - t0) * 1000)
        return took

    try:
        alone_until = time.perf_counter() + 3
        alone = searches(lambda: time.perf_counter() > alone_until)
        started = time.perf_counter()
        thread = threading.Thread(target=replay)
        thread.start()
        during = searches(done.is_set)
        thread.join()
        replay_s = time.perf_counter() - started
    finally:
        target.close()
        store.close()
        shutil.rmtree(copy, ignore_errors=True)

    def summary(v: list[float]) -> dict[str, float]:
        return {"n": len(v), "p50": _pct(v, 0.5), "p95": _pct(v, 0.95), "max": round(max(v), 1)}

    return {"ops": ops, "pause_s": pause_s, "replay_s": round(replay_s, 2), "alone": summary(alone), "during": summary(during)}


def open_profile(shard_dir: Path, cold: bool) -> dict[str, Any]:
    """``EdgeShard.load`` of one collection with the daemon's config, in-process: wall, CPU,
    run-queue wait (runnable, not scheduled), the longest gap of a thread ticking every 1 ms (the
    GIL held), heap after. ``cold``: the shard's files are evicted from the page cache first."""
    import resource
    import threading

    import qdrant_edge as qe

    from contextd_mcp.adapters.qdrant_edge_store import _config
    from contextd_mcp.services.memory_keys import keys_spec

    def run_queue_s() -> float:
        return sum(int((t / "schedstat").read_text().split()[1]) for t in Path("/proc/self/task").iterdir()) / 1e9

    if cold:
        for f in shard_dir.resolve().rglob("*"):
            if f.is_file():
                fd = os.open(f, os.O_RDONLY)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(fd)
    meta = json.loads((shard_dir / "contextd-collection.json").read_text())
    config = _config(keys_spec(meta["dim"], meta["model"]))
    gaps: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    time.sleep(0.05)
    queued, usage, started = run_queue_s(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    shard = qe.EdgeShard.load(str(shard_dir), config)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    queued = run_queue_s() - queued
    time.sleep(0.05)
    stop.set()
    ticker.join()
    anon = int(Path("/proc/self/status").read_text().split("RssAnon:")[1].split()[0]) // 1024
    points = int(shard.info().points_count)
    shard.close()
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    return {"points": points, "cold": cold, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "run_queue_s": round(queued, 3), "longest_gil_gap_ms": round(max(gaps) * 1000, 1), "anon_mib": anon}


def run_size(root: Path, n: int, projects: int, queries: int, write_rate: float, local: bool) -> dict[str, Any]:
    data_dir = root / f"data-{n}"
    if local:
        use_local_mode(data_dir)
    fill_s = fill(data_dir, n, projects)
    figures: dict[str, Any] = {"memories": n, "projects": projects, "fill_s": round(fill_s, 1)}
    figures["store"] = "qdrant-client local mode" if local else "qdrant-edge (embedded)"
    figures["disk_mib"] = round(disk_mib(data_dir), 1)
    figures.update(anyio.run(measure, data_dir, queries, write_rate))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--projects", type=int, default=1, help="projects the memories are spread over")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--write-rate", type=float, default=20.0, help="memory_store calls/s during the searches")
    parser.add_argument("--json", type=Path, help="append the figures (one JSON object per size) to this file")
    parser.add_argument("--keep", type=Path, help="fill and keep data directories here (default: a temp dir)")
    parser.add_argument("--qdrant-local", action="store_true", help="the qdrant-client adapter in local mode")
    parser.add_argument("--data", type=Path, help="measure this filled data directory (no fill)")
    parser.add_argument("--writer-process", action="store_true", help="the writes come from another process")
    parser.add_argument("--writer", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--daemon-env", action="append", default=[], metavar="K=V", help="a setting for the daemon")
    parser.add_argument("--compact", action="store_true", help="with --data: compact the store first (timed)")
    parser.add_argument("--index-live", action="store_true", help="with --data: the daemon indexes while measured")
    parser.add_argument("--index-after", type=int, default=20_000, help="CONTEXTD_INDEX_AFTER_POINTS for --index-live")
    parser.add_argument("--after", type=int, default=300, help="--index-live: searches after the swap")
    parser.add_argument("--budget-s", type=float, default=3600, help="--index-live: give up after this long")
    parser.add_argument("--swap-rss", action="store_true", help="with --data: RSS across one in-process indexing")
    parser.add_argument("--recall", action="store_true", help="with --data: recall@10 of memory_keys' index vs exact")
    parser.add_argument("--ef", type=int, help="--recall: hnsw_ef of the searches (default: the store's DENSE_EF)")
    parser.add_argument("--oversampling", type=float, help="--recall: rescoring oversampling (quantised stores)")
    parser.add_argument("--swap-stall", action="store_true", help="with --data: in-process search latency by indexing stage")
    parser.add_argument("--replay-pause", type=float, help="--swap-stall: INDEX_REPLAY_PAUSE_S to use")
    parser.add_argument("--replay-contention", type=int, help="with --data: searches while this many ops replay")
    parser.add_argument("--search-profile", action="store_true", help="with --data: where a search's time goes")
    parser.add_argument("--open-profile", type=Path, help="profile opening this collection directory (in-process)")
    parser.add_argument("--cold", action="store_true", help="--open-profile: evict its files from the page cache first")
    args = parser.parse_args()
    DAEMON_ENV.update(item.split("=", 1) for item in args.daemon_env)
    if args.writer:
        writer_main(Path(args.writer[0]), Path(args.writer[1]), float(args.writer[2]))
        return 0
    global WRITER_PROCESS
    WRITER_PROCESS = args.writer_process
    if args.open_profile:
        print(json.dumps({**open_profile(args.open_profile, args.cold), "load": Path("/proc/loadavg").read_text().split()[:3]}))
        return 0
    if args.data and args.replay_contention:
        pause = 0.0 if args.replay_pause is None else args.replay_pause
        figures = replay_contention(args.data, args.replay_contention, pause)
        print(json.dumps({**figures, "load": Path("/proc/loadavg").read_text().split()[:3]}), flush=True)
        return 0
    if args.data and args.swap_stall:
        figures = swap_stall(args.data, args.index_after, args.write_rate, args.replay_pause)
        print(json.dumps({**figures, "load": Path("/proc/loadavg").read_text().split()[:3]}), flush=True)
        return 0
    if args.data and args.search_profile:
        print(json.dumps({**search_profile(args.data, args.queries), "load": Path("/proc/loadavg").read_text().split()[:3]}))
        return 0
    if args.data and args.recall:
        print(json.dumps({**recall(args.data, args.queries, args.ef, args.oversampling), "load": Path("/proc/loadavg").read_text().split()[:3]}))
        return 0
    if args.data and args.swap_rss:
        print(json.dumps(swap_rss(args.data, args.index_after)), flush=True)
        return 0
    if args.data and args.index_live:
        uptime = Path("/proc/loadavg").read_text().split()[:3]
        figures = {"data": str(args.data), "disk_mib": round(disk_mib(args.data), 1), "load_at_start": uptime}
        figures["live"] = anyio.run(
            measure_live, args.data, args.write_rate, args.index_after, args.after, args.budget_s, args.json
        )
        figures["disk_mib_after_swap"] = round(disk_mib(args.data), 1)
        os.environ["CONTEXTD_INDEX_AFTER_POINTS"] = "0"  # the restart measures the swapped store as it is
        figures["restart"] = anyio.run(measure, args.data, args.queries, args.write_rate)
        figures["load_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
        print(json.dumps(figures), flush=True)
        return 0
    if args.data:
        figures = {"data": str(args.data), "disk_mib": round(disk_mib(args.data), 1)}
        if args.compact:
            figures["compact_s"] = compact(args.data)
            figures["disk_mib_compacted"] = round(disk_mib(args.data), 1)
        figures.update(anyio.run(measure, args.data, args.queries, args.write_rate))
        print(json.dumps(figures), flush=True)
        return 0
    root = args.keep or Path(tempfile.mkdtemp(prefix="contextd-scale-"))
    try:
        for n in [int(s) for s in args.sizes.split(",")]:
            figures = run_size(root, n, args.projects, args.queries, args.write_rate, args.qdrant_local)
            print(json.dumps(figures), flush=True)
            if args.json:
                with args.json.open("a") as out:
                    out.write(json.dumps(figures) + "\n")
            if not args.keep:
                shutil.rmtree(root / f"data-{n}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
