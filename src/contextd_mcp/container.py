"""Composition root: the only place that reads settings and wires adapters into services.

``build`` makes the adapters, the services and the tool registry; the functions after it,
in the order it calls them, each wire one part (sessions, workers, folding, the shell).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contextd_mcp.adapters.audit_file import JsonlAuditLog
from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.mcp.redactions import CountingScrubber
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import ToolDef
from contextd_mcp.mcp.server import HttpCallerResolver, ToolRunner, build_server
from contextd_mcp.mcp.access import AccessGuard, AgentBindings
from contextd_mcp.mcp import toolsets
from contextd_mcp.mcp.skill_prompts import SkillPrompts
from contextd_mcp.mcp.toolsets import in_toolset
from contextd_mcp.mcp.tools.agents import agent_tools
from contextd_mcp.mcp.tools.checkpoint import checkpoint_tools
from contextd_mcp.mcp.tools.memory import memory_tools
from contextd_mcp.mcp.tools.policy import policy_tools
from contextd_mcp.mcp.tools.remediation import remediation_tools
from contextd_mcp.mcp.tools.session import session_tools
from contextd_mcp.mcp.tools.skills import skill_tools
from contextd_mcp.mcp.tools.toolsets import toolset_tools
from contextd_mcp.paths import DataPaths
from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.scoped_store import AcrossScopes, Stores
from contextd_mcp.ports.scrubber import Scrubber
from contextd_mcp.ports.vector_store import VectorStore
from contextd_mcp.services.agents import AgentService
from contextd_mcp.services.checkpoints import CheckpointService
from contextd_mcp.services.distill import Distiller, DistillRunner, remediation_sink
from contextd_mcp.services.injection import Injector
from contextd_mcp.services.memory import COLLECTION as MEMORIES
from contextd_mcp.services.memory import MemoryService
from contextd_mcp.services.policy import PolicyService
from contextd_mcp.services.remediation import RemediationService
from contextd_mcp.services.remediation_rerank import RerankSettings
from contextd_mcp.services.sessions import SessionPolicy, SessionService
from contextd_mcp.services.skills import SkillService
from contextd_mcp.settings import (
    EmbeddingSettings,
    LimitSettings,
    RemediationSettings,
    ServerCollectionSettings,
    SessionSettings,
    StoreSettings,
)

if TYPE_CHECKING:  # imported where they are wired, by the functions at the end
    from contextd_mcp.services.folding import FoldingService
    from contextd_mcp.services.shell import ShellService

log = logging.getLogger("contextd_mcp")


def make_store(settings: StoreSettings, paths: DataPaths) -> VectorStore:
    if settings.qdrant_url or settings.qdrant_path:
        from contextd_mcp.adapters.qdrant_client_store import QdrantClientStore

        layout = ServerCollectionSettings()  # CONTEXTD_QDRANT_SHARD_NUMBER etc.; read when a collection is created
        return QdrantClientStore(settings.qdrant_url, settings.qdrant_api_key, settings.qdrant_path, layout)
    from contextd_mcp.adapters.qdrant_edge_store import EdgeStore

    return EdgeStore(paths.store)


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder

    # Per user, not per data directory: the model files and their int8-kernel copy are shared.
    return FastEmbedEmbedder(settings.model, settings.cache_dir)


def make_scrubber() -> Scrubber:
    from contextd_mcp.adapters.secret_scrubber import RegexScrubber

    return RegexScrubber()


@dataclass
class Container:
    paths: DataPaths
    # The raw store: the admin path only (status, flush, close; tests that plant records).
    # Services hold scope-bound handles (ports/scoped_store.py), never this.
    store: VectorStore
    embedder: Embedder
    scrubber: Scrubber
    audit: JsonlAuditLog
    memory: MemoryService
    runner: ToolRunner
    # Long-running async jobs the owning process runs beside the transports (queues, clean-up).
    workers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # Called on shutdown, before the store closes, in order.
    closers: list[Callable[[], None]] = field(default_factory=list)
    skills: SkillService | None = None
    agents: AgentService | None = None
    # connection → agent, set by session_start(agent=...); read by the access guard.
    agent_bindings: AgentBindings = field(default_factory=AgentBindings)
    sessions: SessionService | None = None
    checkpoints: CheckpointService | None = None
    distill: DistillRunner | None = None
    folding: FoldingService | None = None
    shell: ShellService | None = None
    remediation: RemediationService | None = None
    # PolicyService.check(scope, action, context) is what bash calls before running a command.
    policies: PolicyService | None = None

    def tools(self) -> list[ToolDef]:
        return list(self.runner.tools.values())

    def server(self) -> Any:
        return build_server(self.runner)

    def status(self) -> dict[str, Any]:
        return {
            "store": self.store.describe(),
            "embedding_model": self.embedder.model_name,
            "embedding_dim": self.embedder.dim,
            "memories": AcrossScopes(self.store).count(MEMORIES),
            "sandbox": self.shell.status() if self.shell is not None else None,
        }

    def close(self) -> None:
        for closer in self.closers:
            closer()
        self.store.close()
        self.audit.close()


def build(
    paths: DataPaths,
    store_settings: StoreSettings | None = None,
    embedding_settings: EmbeddingSettings | None = None,
    limit_settings: LimitSettings | None = None,
    embedder: Embedder | None = None,
    http_caller: HttpCallerResolver | None = None,
    scrubber: Scrubber | None = None,
    session_settings: SessionSettings | None = None,
) -> Container:
    paths.ensure()
    store_settings = store_settings or StoreSettings(data_dir=paths.root)
    limit_settings = limit_settings or LimitSettings()
    session_settings = session_settings or SessionSettings()
    embedder = embedder or make_embedder(embedding_settings or EmbeddingSettings())
    store = make_store(store_settings, paths)
    # Services reach the store only through handles bound to a caller's scope; the background
    # sweeps also read across scopes (AcrossScopes), then act through each record's own handle.
    stores, sweeps = Stores(store), AcrossScopes(store)
    # Counting wrapper: the audit line reports what services scrubbed during each call.
    scrubber = CountingScrubber(scrubber or make_scrubber())
    audit = JsonlAuditLog(paths.audit)
    memory = MemoryService(stores, embedder, scrubber, flags=_memory_flags())
    skills = SkillService(stores, embedder, scrubber)
    # Agent configs validate tools_enabled against the runner's registry (built just below).
    agents = AgentService(stores, embedder.dim, embedder.model_name, scrubber, skills, lambda: runner.tools)
    sessions, checkpoints, distill_runner = _session_parts(paths, stores, sweeps, embedder, scrubber, memory, limit_settings, session_settings)
    bindings = AgentBindings()  # session_start(agent=...) binds a connection; the guard enforces it
    access_guard = AccessGuard(bindings, lambda caller, ref, reach: agents.access(caller.scope, ref, reach))
    remediation = RemediationService(stores, embedder, scrubber, rerank=_rerank_settings())
    # Error → fix pairs found in Claude Code transcripts become remediation candidates.
    distill_runner.distiller.remediation_sink = remediation_sink(remediation.record_many)
    policies = PolicyService(stores, embedder.dim, embedder.model_name, scrubber, config_packs=_policy_packs())
    # The order here is the order of tools/list (and of schema.json, TOOL.md); folding and bash come last.
    tools = (
        in_toolset("memory", memory_tools(memory))
        + in_toolset("skills", skill_tools(skills))
        + in_toolset("agents", agent_tools(agents))
        + in_toolset("sessions", session_tools(sessions, access_guard.bind))
        + in_toolset("checkpoints", checkpoint_tools(checkpoints, sessions))
        + in_toolset("remediation", remediation_tools(remediation))
        + in_toolset("policy", policy_tools(policies))
        + in_toolset("diagnostics", _diagnostic_tools())
    )
    runner = ToolRunner(
        tools,
        scrubber,
        WordPieceTokenCounter(),
        audit,
        limit_settings.response_max_tokens,
        http_caller=http_caller,
        list_output_schemas=limit_settings.tools_output_schema,
        default_toolsets=_default_toolsets(),
    )
    runner.add_tools(in_toolset(toolsets.DISCOVERY, toolset_tools(runner.enabled, lambda: list(runner.tools.values()))))
    runner.guards.append(access_guard)
    runner.prompts = SkillPrompts(skills, scrubber, access_guard.check)
    # Any call on a connection keeps the session it started alive (idle TTL); a read-only
    # identity writes nothing (it cannot start a session, and touches none).
    def touch(caller: Caller, tool: ToolDef, data: dict[str, Any], tokens: Callable[[], int]) -> list[str]:
        if not caller.read_only:
            sessions.touch(caller.connection_id, caller.scope)
        return []

    runner.response_hooks.append(touch)
    container = Container(
        paths, store, embedder, scrubber, audit, memory, runner, skills=skills, agents=agents, agent_bindings=bindings,
        sessions=sessions, checkpoints=checkpoints, distill=distill_runner, remediation=remediation,
        policies=policies,
    )
    _add_session_workers(container, session_settings)
    _add_folding(container, stores, sweeps, sessions, memory)
    _add_memory_rekey(container, stores, sweeps, memory)
    # A session's outcome reinforces the memories injected for its task (partial: nothing).
    sessions.on_outcome.append(
        lambda scope, session_id, outcome: memory.session_outcome(
            scope, session_id, {"success": True, "failure": False}.get(outcome.value)
        )
    )
    _add_shell(container)
    return container


def _session_parts(
    paths: DataPaths,
    stores: Stores,
    sweeps: AcrossScopes,
    embedder: Embedder,
    scrubber: Scrubber,
    memory: MemoryService,
    limit_settings: LimitSettings,
    settings: SessionSettings,
) -> tuple[SessionService, CheckpointService, DistillRunner]:
    from contextd_mcp.adapters.job_queue import FileJobQueue

    counter = WordPieceTokenCounter()
    queue = FileJobQueue(paths.root / "queue")
    checkpoints = CheckpointService(stores, embedder, scrubber, counter, limit_settings.response_max_tokens)
    injector = Injector(memory, checkpoints, stores, counter)
    policy = SessionPolicy(settings.session_idle_ttl_s, settings.session_max_ttl_s, settings.session_retention_s)
    sessions = SessionService(stores, sweeps, embedder.dim, embedder.model_name, scrubber, queue, injector, policy)
    distiller = Distiller(memory, scrubber)
    runner = DistillRunner(
        queue, distiller, scrubber, settings.distill_max_attempts, settings.distill_retry_base_s, settings.distill_delay_s
    )
    return sessions, checkpoints, runner


def _memory_flags() -> Any:
    from contextd_mcp.services.memory_keys import KeyFlags
    from contextd_mcp.settings import MemorySettings

    s = MemorySettings()
    return KeyFlags(keys=s.keys, sparse=s.sparse, learned=s.learned_keys, negative=s.negative_keys)


def _policy_packs() -> list[str]:
    """CONTEXTD_POLICY_PACKS=security enables starter packs for every tenant (comma-separated)."""
    return [p.strip() for p in os.environ.get("CONTEXTD_POLICY_PACKS", "").split(",") if p.strip()]


def _default_toolsets() -> frozenset[str]:
    """CONTEXTD_TOOLSETS (or serve --toolsets); a bad name stops the daemon at start, named."""
    from contextd_mcp.settings import ToolsetSettings

    try:
        return toolsets.parse(ToolsetSettings().toolsets)
    except ValueError as exc:
        raise ValueError(f"CONTEXTD_TOOLSETS: {exc}") from None


def _diagnostic_tools() -> list[ToolDef]:
    """Tools for the benchmarks only, registered with CONTEXTD_BENCH_TOOLS=1."""
    if os.environ.get("CONTEXTD_BENCH_TOOLS") != "1":
        return []
    from contextd_mcp.mcp.tools.diagnostics import diagnostic_tools

    return diagnostic_tools()


def _rerank_settings() -> RerankSettings:
    s = RemediationSettings()
    return RerankSettings(s.rerank, s.rerank_error_lines, s.rerank_command, s.rerank_context, s.rerank_top, s.rerank_weight)


def _add_session_workers(container: Container, settings: SessionSettings) -> None:
    from contextd_mcp.session_workers import distill_worker, session_sweeper

    assert container.sessions is not None and container.distill is not None
    container.workers.append(distill_worker(container.distill))
    container.workers.append(session_sweeper(container.sessions, settings.session_sweep_interval_s))
    # Before the store closes: let the job in hand finish (or go back to pending).
    container.closers.append(container.distill.stop)


def _add_folding(
    container: Container, stores: Stores, sweeps: AcrossScopes, sessions: SessionService, memory: MemoryService
) -> None:
    from contextd_mcp.mcp.tools.branch import branch_tools
    from contextd_mcp.services.folding import FoldingService

    folding = FoldingService(
        stores,
        sweeps,
        container.embedder.dim,
        container.embedder.model_name,
        container.scrubber,
        WordPieceTokenCounter(),
        memory.search,
    )
    container.runner.add_tools(in_toolset("folding", branch_tools(folding, sessions)))

    def charge(caller: Caller, tool: ToolDef, data: dict[str, Any], tokens: Callable[[], int]) -> list[str]:
        session_id = None if caller.read_only else sessions.active_session(caller.connection_id)
        if not session_id or not folding.in_branch(caller.scope, session_id):
            return []
        return folding.charge(caller.scope, session_id, tokens())

    container.runner.response_hooks.append(charge)
    sessions.on_session_closed.append(folding.session_closed)
    container.workers.append(periodic(folding.sweep, 1.0))
    container.folding = folding


def _add_memory_rekey(container: Container, stores: Stores, sweeps: AcrossScopes, memory: MemoryService) -> None:
    """Memories of a store written before keys existed get theirs in the background."""
    from contextd_mcp.services.memory_rekey import MemoryRekey

    container.workers.append(periodic(MemoryRekey(memory, stores, sweeps).step, 1.0))


def _add_shell(container: Container) -> None:
    from contextd_mcp.mcp.tools.bash import bash_tools
    from contextd_mcp.services.shell import ShellService, ShellSettings

    from contextd_mcp.sandbox import SandboxBudget
    from contextd_mcp.settings import SandboxSettings

    sandbox = SandboxSettings()
    settings = ShellSettings(
        allow_unsandboxed=os.environ.get("CONTEXTD_BASH_ALLOW_UNSANDBOXED") == "1",
        budget=SandboxBudget(**sandbox.model_dump(exclude={"placeholder_linger_s"})),
        placeholder_linger_s=sandbox.placeholder_linger_s,
    )
    policies = container.policies
    container.shell = ShellService(settings, policies.check if policies is not None else None, _shell_roots(container))
    container.shell.status()  # sets the cgroups up now, so a fallback is logged at start
    container.closers.append(container.shell.close)
    container.runner.add_tools(in_toolset("bash", bash_tools(container.shell)))


def _shell_roots(container: Container) -> Any:
    """The daemon's own files, which bash refuses to expose, and the operator's extra protection."""
    import pwd
    from pathlib import Path

    from contextd_mcp.adapters.token_store import tokens_path
    from contextd_mcp.services.shell_roots import ShellRoots, extra_protected
    from contextd_mcp.settings import AuthSettings, EmbeddingSettings

    paths = container.paths
    tokens = AuthSettings().tokens_file or tokens_path(paths.root)
    hidden = (paths.root, paths.socket, Path(tokens), paths.audit, EmbeddingSettings().cache_dir)
    return ShellRoots(
        data_dir=paths.root,
        home_dirs=(Path(pwd.getpwuid(os.getuid()).pw_dir), Path.home()),
        hidden=hidden,
        extra_protected=extra_protected(os.environ.get("CONTEXTD_SANDBOX_PROTECT")),
    )


def periodic(job: Callable[[], object], interval_s: float) -> Callable[[], Coroutine[Any, Any, None]]:
    """An async worker running a blocking ``job`` every ``interval_s`` in a thread, forever."""
    import anyio

    async def loop() -> None:
        while True:
            await anyio.sleep(interval_s)
            try:
                await anyio.to_thread.run_sync(job)
            except Exception:  # a failed round is logged; the next one runs anyway
                log.exception("background job %s failed", getattr(job, "__qualname__", job))

    return loop
