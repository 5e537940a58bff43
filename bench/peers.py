"""contextd next to the official Qdrant MCP server (mcp-server-qdrant), driven by the same MCP client.

Both servers embed with the same int8 all-MiniLM-L6-v2 ONNX model (the peer's fastembed cache is
pre-filled with our offline files under the name it asks for), so the comparison measures the
servers, not the models. The peer runs with embedded storage (QDRANT_LOCAL_PATH) in its own
virtualenv, because it pins an older MCP SDK and pydantic than ours. Rounds alternate peer, then
contextd, over the same memories and the same queries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from bench import corpus
from bench.driver import (
    contextd_stdio,
    daemon_pid,
    stdio_client,
    stop_contextd,
    summary,
    timed,
)
from contextd_mcp.limits import SEARCH_LIMIT_DEFAULT
from contextd_mcp.services.memory import first_sentence

PEER_PACKAGE = "mcp-server-qdrant"
PEER_VERSION = "0.8.1"
PEER_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # the peer's default EMBEDDING_MODEL
_MINILM = Path(__file__).parents[1] / "src" / "contextd_mcp" / "adapters" / "minilm"
_TOKENIZER_FILES = ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json")
# Any fixed 40-hex revision: the HF cache only needs refs/main to name an existing snapshot folder.
_REVISION = "c0ffee" + "0" * 34
_PROBE = "pytest fails writing its cache in a read-only checkout"


# ---------------------------------------------------------------------------------------------- setup


def peer_venv() -> Path:
    """The peer's virtualenv, installed once per version and reused (keyed on the version)."""
    override = os.environ.get("CONTEXTD_BENCH_PEER_VENV")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "contextd-bench"
    venv = cache / f"peer-venv-{PEER_VERSION}"
    if (venv / ".installed").exists():
        return venv
    cache.mkdir(parents=True, exist_ok=True)
    # Installed in place (a venv cannot be moved: its scripts' shebangs hold its path); the marker
    # written last means an interrupted install is redone rather than reused.
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", f"{PEER_PACKAGE}=={PEER_VERSION}"],
        check=True, timeout=900, capture_output=True,
    )
    (venv / ".installed").write_text(PEER_VERSION)
    return venv


def _peer_python(venv: Path, code: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], env=env, capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"peer venv python failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def peer_model_source(venv: Path) -> tuple[str, str]:
    """(HF repo, model file) the peer's fastembed resolves PEER_MODEL to (its version may differ from ours)."""
    code = (
        "import json; from fastembed import TextEmbedding\n"
        f"m = [m for m in TextEmbedding.list_supported_models() if m['model'] == {PEER_MODEL!r}][0]\n"
        "print(json.dumps([m['sources']['hf'], m['model_file']]))"
    )
    repo, model_file = json.loads(_peer_python(venv, code))
    return repo, model_file


def fill_fastembed_cache(cache: Path, repo: str, model_file: str) -> Path:
    """Lay our offline model out as a cached HF snapshot of `repo`, which fastembed loads with
    local_files_only: models--<org>--<name>/snapshots/<rev>/<files> plus refs/main -> <rev>.
    The model file is the one contextd itself loads (the int8-kernel copy when it exists)."""
    storage = cache / ("models--" + repo.replace("/", "--"))
    snapshot = storage / "snapshots" / _REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / "main").write_text(_REVISION)  # read verbatim: no trailing newline
    sources = [(model_file, _our_model_file())]
    sources += [(name, _MINILM / name) for name in _TOKENIZER_FILES]
    for name, source in sources:
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(source.resolve())
    return snapshot


def _our_model_file() -> Path:
    from contextd_mcp.adapters.fastembed_embedder import default_model_dir
    from contextd_mcp.settings import EmbeddingSettings

    return (default_model_dir(EmbeddingSettings().cache_dir) / "model.onnx").resolve()


def peer_env(venv: Path, fastembed_cache: Path, store_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CONTEXTD_", "FASTMCP_"))}
    env.update({
        "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
        "QDRANT_LOCAL_PATH": str(store_dir),
        "COLLECTION_NAME": "bench",
        "EMBEDDING_PROVIDER": "fastembed",
        "EMBEDDING_MODEL": PEER_MODEL,
        "QDRANT_SEARCH_LIMIT": str(SEARCH_LIMIT_DEFAULT),  # same k as memory_search's default
        "FASTEMBED_CACHE_PATH": str(fastembed_cache),
        "HF_HUB_OFFLINE": "1",
        "FASTMCP_LOG_LEVEL": "WARNING",
    })
    env.pop("PYTHONPATH", None)
    return env


def check_same_model(venv: Path, env: dict[str, str]) -> dict[str, Any]:
    """Load the peer's model offline in its venv and compare its vector with ours for one sentence."""
    code = (
        "import json; from fastembed import TextEmbedding\n"
        f"m = TextEmbedding({PEER_MODEL!r})\n"
        f"d = next(iter(m.passage_embed([{_PROBE!r}]))); q = next(iter(m.query_embed([{_PROBE!r}])))\n"
        "print(json.dumps({'doc': d.tolist(), 'query': q.tolist(), 'path': str(m.model._model_dir)}))"
    )
    theirs = json.loads(_peer_python(venv, code, env))
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
    from contextd_mcp.settings import DEFAULT_MODEL, EmbeddingSettings

    ours = FastEmbedEmbedder(DEFAULT_MODEL, EmbeddingSettings().cache_dir)
    ours_doc, ours_query = ours.embed_documents([_PROBE])[0], ours.embed_query(_PROBE)
    return {
        "peer_model_dir": theirs["path"],
        "cosine_document": round(_cosine(ours_doc, theirs["doc"]), 6),
        "cosine_query": round(_cosine(ours_query, theirs["query"]), 6),
    }


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / ((sum(x * x for x in a) ** 0.5) * (sum(y * y for y in b) ** 0.5))


# ------------------------------------------------------------------------------------------ processes


def _child_pid(marker: str) -> int | None:
    """The pid of our own child process whose command line contains `marker` (the stdio server)."""
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == me and marker in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                return int(proc.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def _memory_mib(pid: int | None) -> dict[str, float]:
    """Peak RSS (VmHWM) and the current RSS split into anonymous and file-backed (mmapped store
    files count in RSS but are page cache the kernel can drop), in MiB."""
    if pid is None:
        return {}
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return {key: round(int(fields[name].split()[0]) / 1024, 1)
                for key, name in (("peak", "VmHWM"), ("anon", "RssAnon"), ("file", "RssFile"))}
    except (OSError, KeyError, ValueError):
        return {}


def _max_of(samples: list[dict[str, float]]) -> dict[str, float]:
    """The largest of each figure over a server's sessions."""
    keys = {k for sample in samples for k in sample}
    return {k: max(sample[k] for sample in samples if k in sample) for k in sorted(keys)}


# ------------------------------------------------------------------------------------------- servers


class Peer:
    """mcp-server-qdrant over stdio; each session is a fresh (cold) process on the same local store."""

    name = "mcp-server-qdrant"

    def __init__(self, venv: Path, env: dict[str, str], log: Path) -> None:
        # Its stderr (SDK version-negotiation warnings, fastmcp logs) goes to a file; `exec` keeps
        # the server itself as our direct child, so its pid (and VmHWM) is found by parent.
        self.command = ["/bin/sh", "-c", f'exec "$0" --transport stdio 2>>"{log}"', str(venv / "bin" / "mcp-server-qdrant")]
        self.python = str(venv / "bin" / "python")
        self.env = env
        self.store_args: dict[str, Any] = {}
        self.memory: list[dict[str, float]] = []

    def session(self) -> Any:
        return stdio_client(self.command, self.env)

    async def after_list(self, client: Any, tools: Any) -> None:
        by_name = {t.name: t for t in tools.tools}
        for needed in ("qdrant-store", "qdrant-find"):
            if needed not in by_name:
                raise RuntimeError(f"peer has no {needed} tool: {sorted(by_name)}")
        # With COLLECTION_NAME set the tool binds it; pass it only if this version still requires it.
        required = by_name["qdrant-store"].input_schema.get("required", [])
        self.store_args = {"collection_name": "bench"} if "collection_name" in required else {}

    def store_call(self, memory: Any) -> tuple[str, dict[str, Any]]:
        return "qdrant-store", {"information": _embedded_text(memory), **self.store_args}

    def search_call(self, query: str) -> tuple[str, dict[str, Any]]:
        args = {"query": query}
        if "collection_name" in self.store_args:
            args["collection_name"] = "bench"
        return "qdrant-find", args

    def record_rss(self) -> None:
        self.memory.append(_memory_mib(_child_pid("mcp-server-qdrant")))


class Ours:
    """contextd-mcp stdio: a bridge per session, talking to the one daemon."""

    name = "contextd"

    def __init__(self, data_dir: Path, project_dir: Path) -> None:
        self.data_dir, self.project_dir = data_dir, project_dir
        self.daemon_memory: list[dict[str, float]] = []
        self.bridge_memory: list[dict[str, float]] = []

    def session(self) -> Any:
        return contextd_stdio(self.data_dir, self.project_dir)

    async def after_list(self, client: Any, tools: Any) -> None:
        names = {t.name for t in tools.tools}
        if not {"memory_store", "memory_search"} <= names:
            raise RuntimeError(f"contextd lacks memory tools: {sorted(names)}")

    def store_call(self, memory: Any) -> tuple[str, dict[str, Any]]:
        args: dict[str, Any] = {"title": memory.title, "content": memory.content}
        if memory.description:
            args["description"] = memory.description
        return "memory_store", args

    def search_call(self, query: str) -> tuple[str, dict[str, Any]]:
        return "memory_search", {"query": query, "limit": SEARCH_LIMIT_DEFAULT}

    def record_rss(self) -> None:
        self.daemon_memory.append(_memory_mib(daemon_pid(self.data_dir)))
        self.bridge_memory.append(_memory_mib(_child_pid("contextd_mcp stdio")))


def _embedded_text(memory: Any) -> str:
    """The text contextd embeds for a memory, so both servers embed the same number of tokens."""
    description = memory.description or first_sentence(memory.content)
    return f"{memory.title}. {description}\n{memory.content}"


async def _call(client: Any, tool: str, args: dict[str, Any]) -> float:
    result, ms = await timed(client.call_tool(tool, args))
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content[0].text if result.content else result}")
    return ms


# ---------------------------------------------------------------------------------------------- rounds

_PEER_FILL = """
import asyncio, json, sys, uuid
from qdrant_client import models
from mcp_server_qdrant.embeddings.fastembed import FastEmbedProvider
from mcp_server_qdrant.qdrant import QdrantConnector
from mcp_server_qdrant.settings import METADATA_PATH, EmbeddingProviderSettings, QdrantSettings

async def main():
    batch = json.load(open(sys.argv[1]))
    q, e = QdrantSettings(), FastEmbedProvider(EmbeddingProviderSettings().model_name)
    c = QdrantConnector(q.location, q.api_key, q.collection_name, e, q.local_path)
    await c._ensure_collection_exists(q.collection_name)
    name = e.get_vector_name()
    for i in range(0, len(batch["texts"]), 256):
        points = [models.PointStruct(id=uuid.uuid4().hex, vector={name: v}, payload={"document": t, METADATA_PATH: None})
                  for t, v in zip(batch["texts"][i:i + 256], batch["vectors"][i:i + 256])]
        await c._client.upsert(collection_name=q.collection_name, points=points)
    print((await c._client.count(q.collection_name)).count)
    await c._client.close()

asyncio.run(main())
"""


class _Precomputed:
    """An Embedder that answers from vectors computed once for both servers (falls back on a miss)."""

    def __init__(self, inner: Any, vectors: dict[str, list[float]]) -> None:
        self._inner, self._vectors, self.misses = inner, vectors, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self._vectors]
        self.misses += len(missing)
        self._vectors.update(zip(missing, self._inner.embed_documents(missing), strict=True))
        return [self._vectors[t] for t in texts]


def bulk_fill(peer: Peer, ours: Ours, start: int, target: int, scratch: Path) -> dict[str, Any]:
    """Memories start..target written into both stores with the servers stopped, each the way the
    server writes them (the peer: qdrant-store's payload and vector name; ours: MemoryService.store_many),
    from vectors embedded once with the shared model, so the fill costs one embedding pass, not two."""
    from contextd_mcp.container import build
    from contextd_mcp.paths import DataPaths
    from contextd_mcp.scope_resolver import resolve_scope

    memories = [m for i, m in enumerate(corpus.memories(target)) if i >= start]
    texts = [_embedded_text(m) for m in memories]
    stop_contextd(ours.data_dir)  # the embedded store admits one process
    container = build(DataPaths(ours.data_dir))
    try:
        began = time.perf_counter()
        service = container.memory
        vectors = service._embedder.embed_documents(texts)
        embed_s = time.perf_counter() - began
        # Bench-only: the service re-embeds the texts it builds; answer those from the shared vectors.
        service._embedder = _Precomputed(service._embedder, dict(zip(texts, vectors, strict=True)))
        scope = resolve_scope(ours.project_dir, {})
        for i in range(0, len(memories), 256):
            service.store_many(scope, memories[i : i + 256])
        ours_count = service.counts(scope)
        misses = service._embedder.misses
    finally:
        container.close()
    scratch.write_text(json.dumps({"texts": texts, "vectors": vectors}))
    done = subprocess.run(
        [peer.python, "-c", _PEER_FILL, str(scratch)], env=peer.env, capture_output=True, text=True, timeout=1800,
    )
    scratch.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"peer bulk fill failed: {done.stderr[-2000:]}")
    peer_count = int(done.stdout.strip().splitlines()[-1])
    return {"memories": len(memories), "embed_s": round(embed_s, 1), "total_s": round(time.perf_counter() - began, 1),
            "peer_points_after": peer_count, "contextd_memories_after": ours_count, "re_embedded": misses}


async def cold_spawn(server: Any) -> float:
    """Spawn → first tools/list answered, in ms."""
    started = time.perf_counter()
    async with server.session() as client:
        tools = await client.list_tools()
        elapsed = (time.perf_counter() - started) * 1000
        await server.after_list(client, tools)
        server.record_rss()
    return elapsed


async def store_session(server: Any, start: int, target: int) -> dict[str, Any]:
    """One session: store memories start..target one call at a time."""
    async with server.session() as client:
        await server.after_list(client, await client.list_tools())
        store_ms = []
        began = time.perf_counter()
        for index, memory in enumerate(corpus.memories(target)):
            if index >= start:
                store_ms.append(await _call(client, *server.store_call(memory)))
        seconds = time.perf_counter() - began
        server.record_rss()
    return {"calls": len(store_ms), "seconds": round(seconds, 2), "per_s": round(len(store_ms) / seconds, 1),
            "ms": summary(store_ms)}


async def search_session(server: Any, queries: list[str]) -> dict[str, Any]:
    """One fresh session: spawn time, then the same queries, timed one at a time after a short warm-up."""
    started = time.perf_counter()
    async with server.session() as client:
        tools = await client.list_tools()
        spawn_ms = (time.perf_counter() - started) * 1000
        await server.after_list(client, tools)
        for query in queries[:5]:
            await _call(client, *server.search_call(query))
        search_ms = [await _call(client, *server.search_call(query)) for query in queries]
        server.record_rss()
    return {"spawn_ms": round(spawn_ms, 1), "ms": summary(search_ms)}


async def _run(work_dir: Path, quick: bool, peer: Peer, ours: Ours) -> dict[str, Any]:
    sizes = [200] if quick else [500, 5000]
    # Stores are timed one call at a time up to this many; past it both stores are filled in bulk
    # (the same memories, the same way each server writes them) to bound the run on 2 cores.
    timed_cap = 200 if quick else 1000
    queries = corpus.queries(40 if quick else 200)
    cold_reps, warm_reps = (2, 5) if quick else (3, 10)
    peer_fig: dict[str, Any] = {"cold_start_ms": [], "store": {}, "search": {}}
    our_fig: dict[str, Any] = {"daemon_cold_ms": [], "bridge_warm_ms": [], "store": {}, "search": {}}
    fills: dict[str, Any] = {}

    for _ in range(cold_reps):  # empty stores; peer then ours in each repetition
        peer_fig["cold_start_ms"].append(await cold_spawn(peer))
        stop_contextd(ours.data_dir)
        our_fig["daemon_cold_ms"].append(await cold_spawn(ours))
    for _ in range(warm_reps):
        our_fig["bridge_warm_ms"].append(await cold_spawn(ours))

    stored = 0
    for size in sizes:
        timed_to = min(size, max(stored, timed_cap))
        if timed_to > stored:
            peer_fig["store"][f"{stored}-{timed_to}"] = await store_session(peer, stored, timed_to)
            our_fig["store"][f"{stored}-{timed_to}"] = await store_session(ours, stored, timed_to)
        if size > timed_to:
            fills[f"{timed_to}-{size}"] = bulk_fill(peer, ours, timed_to, size, work_dir / "fill.json")
        stored = size
        peer_fig["search"][str(size)] = await search_session(peer, queries)
        our_fig["search"][str(size)] = await search_session(ours, queries)
        if size > timed_to:  # the daemon was stopped for the fill: that spawn started it on the full store
            our_fig["daemon_cold_full_ms"] = our_fig["search"][str(size)]["spawn_ms"]

    for key in ("daemon_cold_ms", "bridge_warm_ms"):
        our_fig[key] = summary(our_fig[key])
    peer_fig["cold_start_ms"] = summary(peer_fig["cold_start_ms"])
    peer_fig["cold_start_full_ms"] = peer_fig["search"][str(sizes[-1])]["spawn_ms"]
    our_fig.setdefault("daemon_cold_full_ms", None)
    for fig in (peer_fig, our_fig):
        calls = sum(s["calls"] for s in fig["store"].values())
        fig["store_per_s"] = round(calls / sum(s["seconds"] for s in fig["store"].values()), 1)
        fig["store_calls"] = calls
    peer_fig["memory_mib"] = _max_of(peer.memory)
    peer_fig["peak_rss_mib"] = peer_fig["memory_mib"]["peak"]
    our_fig["daemon_memory_mib"] = _max_of(ours.daemon_memory)
    our_fig["daemon_peak_rss_by_session_mib"] = [m.get("peak") for m in ours.daemon_memory]
    our_fig["daemon_peak_rss_mib"] = our_fig["daemon_memory_mib"]["peak"]
    our_fig["bridge_memory_mib"] = _max_of(ours.bridge_memory)
    our_fig["bridge_peak_rss_mib"] = our_fig["bridge_memory_mib"]["peak"]
    return {"sizes": sizes, "stores_timed_one_call_at_a_time": timed_cap, "bulk_fills": fills,
            "peer": peer_fig, "contextd": our_fig}


def _ratios(figures: dict[str, Any]) -> dict[str, float]:
    """ours / theirs: below 1 is better for times and memory, above 1 better for throughput."""
    peer, ours = figures["peer"], figures["contextd"]
    out: dict[str, float] = {}

    def ratio(name: str, a: float | None, b: float | None) -> None:
        if a is not None and b:
            out[name] = round(a / b, 3)

    for size in figures["sizes"]:
        p, o = peer["search"][str(size)]["ms"], ours["search"][str(size)]["ms"]
        ratio(f"search_p50_at_{size}", o["p50_ms"], p["p50_ms"])
        ratio(f"search_p95_at_{size}", o["p95_ms"], p["p95_ms"])
    for span in peer["store"]:
        ratio(f"store_p50_{span}", ours["store"][span]["ms"]["p50_ms"], peer["store"][span]["ms"]["p50_ms"])
    ratio("store_per_s", ours["store_per_s"], peer["store_per_s"])
    ratio("cold_start_daemon_warm", ours["bridge_warm_ms"]["p50_ms"], peer["cold_start_ms"]["p50_ms"])
    ratio("cold_start_daemon_cold", ours["daemon_cold_ms"]["p50_ms"], peer["cold_start_ms"]["p50_ms"])
    ratio("cold_start_full_daemon_cold", ours["daemon_cold_full_ms"], peer["cold_start_full_ms"])
    ratio("peak_rss_daemon", ours["daemon_peak_rss_mib"], peer["peak_rss_mib"])
    ratio("peak_rss_daemon_plus_bridge", ours["daemon_peak_rss_mib"] + ours["bridge_peak_rss_mib"], peer["peak_rss_mib"])
    ratio("anon_rss_daemon", ours["daemon_memory_mib"].get("anon"), peer["memory_mib"].get("anon"))
    return out


def _goals(figures: dict[str, Any], ratios: dict[str, float]) -> dict[str, Any]:
    """The issue's targets, with whether this run met them."""
    largest = max(figures["sizes"])
    ours = figures["contextd"]
    search = ratios.get(f"search_p50_at_{largest}")
    store = ratios.get("store_per_s")
    return {
        f"search_p50_at_{largest}_at_most_half_of_peer": {"ratio": search, "met": search is not None and search <= 0.5},
        "store_throughput_at_least_2x_peer": {"ratio": store, "met": store is not None and store >= 2.0},
        "daemon_rss_under_400_mib": {"mib": ours["daemon_peak_rss_mib"], "met": ours["daemon_peak_rss_mib"] < 400},
        "bridge_cold_start_daemon_warm_under_100_ms": {
            "p50_ms": ours["bridge_warm_ms"]["p50_ms"], "met": ours["bridge_warm_ms"]["p50_ms"] < 100},
    }


def run(work_dir: Path, quick: bool) -> dict[str, Any]:
    """Install (once) and run the peer, interleaved with contextd; raw figures, ratios and goals."""
    started = time.perf_counter()
    work_dir.mkdir(parents=True, exist_ok=True)
    venv = peer_venv()
    repo, model_file = peer_model_source(venv)
    snapshot = fill_fastembed_cache(work_dir / "fastembed-cache", repo, model_file)
    env = peer_env(venv, work_dir / "fastembed-cache", work_dir / "peer-store")
    model_check = check_same_model(venv, env)
    if model_check["cosine_document"] < 0.999 or model_check["cosine_query"] < 0.999:
        raise RuntimeError(f"peer does not embed with our model: {model_check}")
    if Path(model_check["peer_model_dir"]).resolve() != snapshot.resolve():
        raise RuntimeError(f"peer loaded its model from {model_check['peer_model_dir']}, not {snapshot}")

    (work_dir / "project").mkdir(exist_ok=True)
    peer = Peer(venv, env, work_dir / "peer-stderr.log")
    ours = Ours(work_dir / "contextd-data", work_dir / "project")
    try:
        figures = anyio.run(_run, work_dir, quick, peer, ours)
    finally:
        stop_contextd(ours.data_dir)
    ratios = _ratios(figures)
    return {
        "peer_server": f"{PEER_PACKAGE}=={PEER_VERSION} (embedded QDRANT_LOCAL_PATH, stdio)",
        "model": {"peer_source": repo, "peer_model_file": model_file, **model_check},
        "quick": quick,
        "search_k": SEARCH_LIMIT_DEFAULT,
        **figures,
        "ratios": ratios,  # ours / theirs
        "goals": _goals(figures, ratios),
        "seconds": round(time.perf_counter() - started, 1),
    }
