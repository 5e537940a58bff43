"""Configuration, one class per subsystem, all read from ``CONTEXTD_*`` variables.

Only the composition root (``container.py``), the daemon and the CLI read these; ``Settings``
gathers them all. The standard-library entry points' few variables are in ``env.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contextd_mcp.adapters.server_layout import ServerLayout
from contextd_mcp.adapters.shipped_model import SHIPPED_MODEL
from contextd_mcp.paths import default_cache_dir, default_data_dir

DEFAULT_MODEL = SHIPPED_MODEL


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    data_dir: Path = Field(default_factory=default_data_dir)
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    # Only for tests of the qdrant-client adapter: its local mode, a folder.
    qdrant_path: Path | None = None
    # The embedded store indexes a collection (HNSW, memory-mapped segments) in a child process
    # once this many of its points are not indexed yet; 0 never does (``contextd-mcp compact``
    # then does it with the daemon stopped). Below ~5k points the engine would not build a graph.
    index_after_points: int = Field(default=20_000, ge=0, le=100_000_000)
    # The indexer's priority: 19 yields the CPU to everything else (a busy machine delays the build,
    # never a search); lower builds sooner where the daemon shares the machine with other loads.
    index_nice: int = Field(default=19, ge=0, le=19)

    @property
    def embedded(self) -> bool:
        """The embedded engine under ``data_dir`` (no Qdrant server or qdrant-client folder)."""
        return not (self.qdrant_url or self.qdrant_path)

    @model_validator(mode="after")
    def _one_backend(self) -> StoreSettings:
        if self.qdrant_url and self.qdrant_path:
            raise ValueError("set CONTEXTD_QDRANT_URL or CONTEXTD_QDRANT_PATH, not both")
        return self


_LAYOUT = ServerLayout()  # the defaults (adapters/server_layout.py); here their bounds and reasons


class ServerCollectionSettings(BaseSettings):
    """How collections are created on a Qdrant server or cluster (``CONTEXTD_QDRANT_URL``).

    Read once, when a collection is first created; an existing collection keeps its settings
    (change them with Qdrant's own collection update API). Defaults suit a 3-node cluster
    serving many tenants; README "Moving to a Qdrant server" says why each is what it is.
    """

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_QDRANT_")

    # Shards spread a collection's points over nodes; more shards than nodes lets a cluster grow
    # by moving shards, not by re-sharding. 1 on a single server costs nothing.
    shard_number: int = Field(default=_LAYOUT.shard_number, ge=1, le=64)
    # Copies of each shard: 2 survives one node down (reads and writes go on).
    replication_factor: int = Field(default=_LAYOUT.replication_factor, ge=1, le=8)
    # Replicas that must acknowledge a write: 1 keeps writes available with a node down.
    write_consistency_factor: int = Field(default=_LAYOUT.write_consistency_factor, ge=1, le=8)
    # Payload (memory texts) is read for a page of hits only: on disk, vectors' codes in RAM.
    on_disk_payload: bool = _LAYOUT.on_disk_payload
    # int8 scalar quantisation held in RAM, float vectors on disk; searches rescore the
    # oversampled candidates with the float vectors (recall measured in BENCHMARKS.md).
    quantization: bool = _LAYOUT.quantization
    oversampling: float = Field(default=_LAYOUT.oversampling, ge=1.0, le=8.0)
    # HNSW: a global graph (m) for searches across a tenant, and per-project subgraphs
    # (payload_m) so a project-filtered search walks its own points only.
    hnsw_m: int = Field(default=_LAYOUT.hnsw_m, ge=0, le=64)
    hnsw_payload_m: int = Field(default=_LAYOUT.hnsw_payload_m, ge=0, le=64)
    hnsw_ef_construct: int = Field(default=_LAYOUT.hnsw_ef_construct, ge=4, le=1000)


class EmbeddingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXTD_EMBEDDING_")

    # The default ships with the package; any fastembed model name or a local
    # directory holding model.onnx + tokenizer files can be configured instead.
    model: str = DEFAULT_MODEL
    # Model files and the derived int8-kernel model; per user, so every data directory shares them.
    cache_dir: Path = Field(default_factory=lambda: default_cache_dir() / "models")
    # onnxruntime's threads for one inference; 0: its own choice (one per physical core). On a
    # busy machine a second thread mostly spins: one thread embedded a short text with half the
    # CPU (4.0–4.4 vs 8.2–9.6 ms, load ≈ 12 on 2 cores; BENCHMARKS.md "Session 8: the fast
    # suite"), and the test suite runs with 1.
    threads: int = Field(default=0, ge=0, le=64)
    # How much lower (nice steps, Linux) the thread that embeds documents (a store's keys,
    # distillation, imports) runs than the rest of the daemon. Off by default: on 2 cores with
    # another process taking one, +3 to +6 cut memory_search p50 through MCP with writes at 100k
    # by 1-3 ms, but the stores slowed (p50 43-50 -> 59-75 ms) and fell from 17-19/s to 13-15/s
    # (BENCHMARKS.md, "Session 12: 100k with writes"); on an idle machine it changed nothing
    # (p50 10.1-13.1 against 10.5-13.1 ms; "Session 12: the merged tree").
    # With threads > 1, onnxruntime's own pool threads keep the daemon's priority.
    documents_nice: int = Field(default=0, ge=0, le=19)


class RemediationSettings(BaseSettings):
    """remediation_search's second stage (services/remediation_rerank.py); the switches exist
    for the ablation in bench/bench_remediation.py --eval."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_REMEDIATION_")

    rerank: bool = True
    rerank_error_lines: bool = True
    # Off by measurement (dev split, BENCHMARKS.md "Session 4: remediations"): alone each ranked
    # worse than no second stage (R@1 0.739 / 0.799 vs 0.821), and beside the error lines they
    # cost 0.019 R@1; the first stage already reads the command and the context.
    rerank_command: bool = False
    rerank_context: bool = False
    rerank_top: int = Field(default=10, ge=1, le=50)
    rerank_weight: float = Field(default=0.6, ge=0.0, le=1.0)


class MemorySettings(BaseSettings):
    """What memory ranking uses (services/memory_keys.py); all on by default. Switches exist
    for the ablation in bench/bench_memory_learning.py, e.g. CONTEXTD_MEMORY_LEARNED_KEYS=0."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_MEMORY_")

    keys: bool = True  # title / applies_when / task / error keys beside the whole text
    sparse: bool = True  # lexical match fused with the dense one
    learned_keys: bool = True
    negative_keys: bool = True
    preferences: bool = True  # services/memory_preferences.py
    rerank: bool = True  # services/memory_rerank.py


class LimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    response_max_tokens: int = Field(default=4000, ge=256, le=32000)
    # Include each tool's output schema in tools/list (costs tokens in every agent's context).
    tools_output_schema: bool = False
    request_max_bytes: int = Field(default=1 << 20, ge=4096, le=16 << 20)
    # Open MCP sessions on the socket, and concurrent HTTP requests per token (SSE streams
    # included): a runaway client (an IDE spawning bridges in a loop) is refused with a clear
    # error instead of exhausting the daemon; on HTTP it never counts against other clients.
    max_connections: int = Field(default=64, ge=1, le=4096)


class ToolsetSettings(BaseSettings):
    """The toolsets a connection starts with when it names none (mcp/toolsets.py):
    ``CONTEXTD_TOOLSETS=memory,policy`` or ``all``; ``serve --toolsets`` sets it."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    toolsets: str = "default"


class HttpSettings(BaseSettings):
    """Deadlines and budgets for HTTP connections (``CONTEXTD_HTTP_*``; transports/http_guard.py)."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_HTTP_")

    # Seconds from connecting (or from a request's first byte) until its headers are complete.
    header_timeout_s: float = Field(default=5, ge=0.5, le=300)
    # Seconds to receive a request's body once its headers are in.
    body_timeout_s: float = Field(default=30, ge=1, le=3600)
    # Seconds an idle keep-alive connection stays open between two requests.
    idle_timeout_s: float = Field(default=5, ge=0.5, le=300)
    # Open connections that have not yet made an authenticated request; past it the oldest close.
    max_unauthenticated: int = Field(default=512, ge=4, le=65536)
    # Concurrent unauthenticated requests (a 401, /healthz); past it they get 503.
    max_unauthenticated_requests: int = Field(default=32, ge=1, le=4096)


class AuthSettings(BaseSettings):
    """Who may use the HTTP/SSE transports (the unix socket is owner-only by file mode)."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    # Default: tokens.json in the data directory (see adapters/token_store.py).
    tokens_file: Path | None = None
    # Serve HTTP on loopback without tokens, every caller acting as the daemon's operator.
    http_allow_local_noauth: bool = False
    # Host header values clients use to reach a non-loopback bind (DNS-rebinding protection).
    http_allowed_hosts: list[str] = Field(default_factory=list)


class SessionSettings(BaseSettings):
    """Session lifetime and the distillation queue (``CONTEXTD_SESSION_*``, ``CONTEXTD_DISTILL_*``)."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    # A session no call has touched for this long, or older than the maximum, is expired by
    # the clean-up worker: its temporary data goes, its memories and checkpoints stay.
    session_idle_ttl_s: float = Field(default=4 * 3600, ge=1, le=30 * 86400)
    session_max_ttl_s: float = Field(default=24 * 3600, ge=1, le=90 * 86400)
    session_sweep_interval_s: float = Field(default=60, ge=0.05, le=3600)
    # Ended and expired session records are kept this long (a late call still gets "expired").
    session_retention_s: float = Field(default=30 * 86400, ge=60)
    distill_max_attempts: int = Field(default=3, ge=1, le=20)
    # Retry n waits retry_base_s * 4**(n-1): 2 s, 8 s, 32 s by default.
    distill_retry_base_s: float = Field(default=2.0, ge=0.0, le=3600)
    # Test-only: the worker holds each claimed job this long before distilling it, so a test
    # can kill the daemon while a job is queued. Leave 0 in production.
    distill_delay_s: float = Field(default=0.0, ge=0.0, le=600)


class SandboxSettings(BaseSettings):
    """The bash sandbox's budget (``CONTEXTD_SANDBOX_*``): per call and for all calls together.

    Memory and tasks are cgroup limits (v2, or v1 as root); without cgroups only the per-process
    rlimits apply and ``contextd-mcp status`` says why. See sandbox/_budget.py.
    """

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_SANDBOX_")

    call_memory_bytes: int = Field(default=2 << 30, ge=64 << 20)  # processes and /tmp of one call
    call_max_tasks: int = Field(default=512, ge=16)  # processes and threads of one call
    call_cpus: float = Field(default=2.0, gt=0, le=1024)  # cores one call may use (cpu.max)
    total_memory_bytes: int = Field(default=4 << 30, ge=64 << 20)  # all calls together
    total_max_tasks: int = Field(default=2048, ge=16)  # all calls together
    max_concurrent: int = Field(default=4, ge=1, le=256)  # bash calls running at once
    queue_seconds: float = Field(default=30.0, gt=0, le=600)  # wait for a free slot, then fail
    project_write_bytes: int = Field(default=1 << 30, ge=1 << 20)  # one call's growth of the project
    # An unused placeholder for a missing protected path stays this long for the next call to
    # hold again (making and removing ~14 of them was 5 ms of a call); 0 removes it at once.
    placeholder_linger_s: float = Field(default=5.0, ge=0, le=3600)


class PolicySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    # Starter packs enabled for every tenant, comma-separated (e.g. "security").
    policy_packs: str = ""

    @property
    def packs(self) -> list[str]:
        return [p.strip() for p in self.policy_packs.split(",") if p.strip()]


class BashSettings(BaseSettings):
    """What the operator allows or protects beyond the sandbox's budget (services/shell_roots.py)."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    # Only for hosts that cannot sandbox; every result then says so.
    bash_allow_unsandboxed: bool = False
    # Extra paths bash never exposes, colon-separated.
    sandbox_protect: str | None = None


class DiagnosticSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    # Registers the benchmarks' diagnostic tools (mcp/tools/diagnostics.py); never in production.
    bench_tools: bool = False
    log_level: str = "INFO"
    # CONTEXTD_UI=0: the HTTP listener serves no web page (/ui/), only /mcp and /sse.
    ui: bool = True


@dataclass(frozen=True)
class Settings:
    """Every knob of the daemon, read from the environment once, when this is made.

    The standard-library-only entry points (bridge, relay, hooks, paths, the socket hello) read
    their few variables through ``contextd_mcp.env`` instead: they must not import pydantic.
    """

    store: StoreSettings = field(default_factory=StoreSettings)
    server_collections: ServerCollectionSettings = field(default_factory=ServerCollectionSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    remediation: RemediationSettings = field(default_factory=RemediationSettings)
    toolsets: ToolsetSettings = field(default_factory=ToolsetSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    bash: BashSettings = field(default_factory=BashSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    diagnostics: DiagnosticSettings = field(default_factory=DiagnosticSettings)
