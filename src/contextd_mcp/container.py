"""Composition root: the only place that reads settings and wires adapters into services.

``build`` makes the adapters, the services and the tool registry once, in dependency order,
from typed ``Settings``: each part gets its collaborators in its constructor, and nothing is
changed after it is made. The functions after it make one part each (sessions, hooks, the shell).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contextd_mcp import limits
from contextd_mcp.adapters.audit_file import JsonlAuditLog
from contextd_mcp.adapters.malloc_arenas import release_freed
from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.mcp import catalog, toolsets
from contextd_mcp.mcp.access import AccessGuard, AgentBindings
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.redactions import CountingScrubber
from contextd_mcp.mcp.registry import ToolDef
from contextd_mcp.mcp.server import Identify, ResponseHook, ToolRunner, build_server, connection_caller
from contextd_mcp.mcp.skill_prompts import SkillPrompts
from contextd_mcp.mcp.tools.agents import agent_tools
from contextd_mcp.mcp.tools.bash import bash_tools
from contextd_mcp.mcp.tools.branch import branch_tools
from contextd_mcp.mcp.tools.checkpoint import checkpoint_tools
from contextd_mcp.mcp.tools.diagnostics import diagnostic_tools
from contextd_mcp.mcp.tools.memory import memory_tools
from contextd_mcp.mcp.tools.policy import policy_tools
from contextd_mcp.mcp.tools.remediation import remediation_tools
from contextd_mcp.mcp.tools.session import session_tools
from contextd_mcp.mcp.tools.skills import skill_tools
from contextd_mcp.mcp.tools.toolsets import toolset_tools
from contextd_mcp.models.scope import Scope
from contextd_mcp.models.session import SessionOutcome
from contextd_mcp.paths import DataPaths
from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.scoped_store import AcrossScopes, Stores
from contextd_mcp.ports.scrubber import Scrubber
from contextd_mcp.ports.vector_store import VectorStore
from contextd_mcp.services.agents import AgentService
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.checkpoints import CheckpointService
from contextd_mcp.services.distill import Distiller, DistillRunner, remediation_sink
from contextd_mcp.services.folding import FoldingService
from contextd_mcp.services.injection import Injector
from contextd_mcp.services.memory import COLLECTION as MEMORIES
from contextd_mcp.services.memory import MemoryService
from contextd_mcp.services.memory_keys import KeyFlags
from contextd_mcp.services.memory import KEYED
from contextd_mcp.services.memory_rekey import MemoryRekey
from contextd_mcp.services.policy import PolicyService
from contextd_mcp.services.remediation import RemediationService
from contextd_mcp.services.remediation_rerank import RerankSettings
from contextd_mcp.services.sessions import SessionPolicy, SessionService
from contextd_mcp.services.shell import ShellService, ShellSettings
from contextd_mcp.services.shell_roots import ShellRoots, extra_protected
from contextd_mcp.services.skills import SkillService
from contextd_mcp.session_workers import distill_worker, session_sweeper
from contextd_mcp.settings import (
    EmbeddingSettings,
    MemorySettings,
    RemediationSettings,
    ServerCollectionSettings,
    SessionSettings,
    Settings,
    StoreSettings,
)

log = logging.getLogger("contextd_mcp")


def make_store(settings: StoreSettings, paths: DataPaths, layout: ServerCollectionSettings | None = None) -> VectorStore:
    if not settings.embedded:
        from contextd_mcp.adapters.qdrant_client_store import QdrantClientStore

        from contextd_mcp.adapters.server_layout import ServerLayout

        # Shards, replication, quantisation of the collections a server is asked to create.
        shape = ServerLayout(**(layout or ServerCollectionSettings()).model_dump())
        return QdrantClientStore(settings.qdrant_url, settings.qdrant_api_key, settings.qdrant_path, shape)
    from contextd_mcp.adapters.qdrant_edge_store import EdgeStore

    return EdgeStore(paths.store, index_after=settings.index_after_points, index_nice=settings.index_nice)


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder

    # Per user, not per data directory: the model files and their int8-kernel copy are shared.
    return FastEmbedEmbedder(
        settings.model, settings.cache_dir, threads=settings.threads, documents_nice=settings.documents_nice
    )


def make_scrubber() -> Scrubber:
    from contextd_mcp.adapters.secret_scrubber import RegexScrubber

    return RegexScrubber()


@dataclass(frozen=True)
class Container:
    """Everything one data directory's server is made of, built once by ``build``."""

    paths: DataPaths
    # The raw store: the admin path only (status, flush, close; tests that plant records).
    # Services hold scope-bound handles (ports/scoped_store.py), never this.
    store: VectorStore
    embedder: Embedder
    scrubber: Scrubber
    audit: JsonlAuditLog
    memory: MemoryService
    runner: ToolRunner
    skills: SkillService
    agents: AgentService
    # connection → agent, set by session_start(agent=...); read by the access guard.
    agent_bindings: AgentBindings
    sessions: SessionService
    checkpoints: CheckpointService
    distill: DistillRunner
    folding: FoldingService
    shell: ShellService
    remediation: RemediationService
    # PolicyService.check(scope, action, context) is what bash calls before running a command.
    policies: PolicyService
    # Long-running async jobs the owning process runs beside the transports (queues, clean-up).
    workers: tuple[Callable[[], Coroutine[Any, Any, None]], ...] = ()
    # Called on shutdown, before the store closes, in order.
    closers: tuple[Callable[[], None], ...] = ()

    def tools(self) -> list[ToolDef]:
        return list(self.runner.tools.values())

    def server(self, identify: Identify = connection_caller) -> Any:
        """An MCP server over the runner; ``identify``: how its transport tells who calls
        (default: the caller a socket / stdio / in-process transport set for its connection)."""
        return build_server(self.runner, identify)

    def status(self) -> dict[str, Any]:
        return {
            "store": self.store.describe(),
            "embedding_model": self.embedder.model_name,
            "embedding_dim": self.embedder.dim,
            "memories": AcrossScopes(self.store).count(MEMORIES),
            "sandbox": self.shell.status(),
        }

    def close(self) -> None:
        for closer in self.closers:
            closer()
        self.store.close()
        self.audit.close()


def build(
    paths: DataPaths,
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    scrubber: Scrubber | None = None,
    store: VectorStore | None = None,
) -> Container:
    """Every part made once, in dependency order, each handed what it needs when it is made.

    ``embedder`` / ``scrubber``: ready-made ones (tests share one model across containers).
    ``store``: one a command opened its own way (``contextd-mcp compact``'s bulk store).
    """
    paths.ensure()
    settings = settings or Settings()
    embedder = embedder or make_embedder(settings.embedding)
    store = store or make_store(settings.store, paths, settings.server_collections)
    # Services reach the store only through handles bound to a caller's scope; the background
    # sweeps also read across scopes (AcrossScopes), then act through each record's own handle.
    stores, sweeps = Stores(store), AcrossScopes(store)
    # Counting wrapper: the audit line reports what services scrubbed during each call.
    scrubber = CountingScrubber(scrubber or make_scrubber())
    counter = WordPieceTokenCounter()  # one: each loads tokenizer.json
    audit = JsonlAuditLog(paths.audit)
    # What every record-keeping service stands on: handles, the vectors' shape, scrubber, clock.
    backing = Backing.of(stores, embedder, scrubber)
    memory = MemoryService(backing, embedder, flags=_memory_flags(settings.memory))
    skills = SkillService(backing, embedder)
    remediation = RemediationService(backing, embedder, rerank=_rerank_settings(settings.remediation))
    policies = PolicyService(backing, config_packs=settings.policy.packs)
    folding = FoldingService(backing, sweeps, counter, memory.search)
    checkpoints = CheckpointService(backing, embedder, counter, settings.limits.response_max_tokens)
    sessions, distill = _sessions(paths, backing, sweeps, counter, memory, checkpoints, folding, remediation,
                                  settings.sessions)
    # Agent configs validate tools_enabled against the registry (the runner, made last).
    agents = AgentService(backing, skills, lambda: runner.tools)
    bindings = AgentBindings()  # session_start(agent=...) binds a connection; the guard enforces it
    access_guard = AccessGuard(bindings, lambda caller, ref, reach: agents.access(caller.scope, ref, reach))
    shell = _shell(paths, settings, policies)
    enabled = toolsets.Enabled(_default_toolsets(settings))
    # The tools are declared as data (mcp/catalog.py: their order is tools/list's); each
    # module's factory answers them with calls on the services made above.
    handlers = {
        **memory_tools(memory),
        **skill_tools(skills),
        **agent_tools(agents),
        **session_tools(sessions, access_guard.bind),
        **checkpoint_tools(checkpoints, sessions),
        **remediation_tools(remediation),
        **policy_tools(policies),
        **(diagnostic_tools() if settings.diagnostics.bench_tools else {}),
        **toolset_tools(enabled, lambda: list(runner.tools.values())),
        **branch_tools(folding, sessions),
        **bash_tools(shell),
    }
    tools = catalog.bound(handlers, diagnostics=settings.diagnostics.bench_tools)
    runner = ToolRunner(
        tools,
        scrubber,
        counter,
        audit,
        settings.limits.response_max_tokens,
        list_output_schemas=settings.limits.tools_output_schema,
        enabled=enabled,
        guards=[access_guard],
        response_hooks=[_keep_alive(sessions), _branch_charge(folding, sessions)],
        prompts=SkillPrompts(skills, scrubber, access_guard.check),
    )
    shell.status()  # sets the cgroups up now, so a fallback is logged at start
    workers = (
        distill_worker(distill),
        session_sweeper(sessions, settings.sessions.session_sweep_interval_s),
        periodic(folding.sweep, 1.0),
        # Memories of a store written before keys existed get theirs in the background.
        periodic(MemoryRekey(memory, stores, sweeps, below=KEYED).step, 1.0),
        # What the engine and the model's runs freed, given back to the OS now and then rather
        # than after each call: a store's five embeddings then fault their buffers in again
        # (searches +1.5 ms, stores +7 ms when trimmed after every store; BENCHMARKS.md
        # "Session 18"), where once a while costs one store a few ms. An idle daemon gives back
        # what its last burst of stores left: +17-23 MiB of heap after 200 stores at 100k.
        periodic(release_freed, limits.HEAP_RELEASE_S),
    )
    # Before the store closes: let the job in hand finish (or go back to pending); end sandboxes.
    closers = (distill.stop, shell.close)
    return Container(
        paths, store, embedder, scrubber, audit, memory, runner, skills, agents, bindings, sessions, checkpoints,
        distill, folding, shell, remediation, policies, workers, closers,
    )


def _sessions(
    paths: DataPaths,
    backing: Backing,
    sweeps: AcrossScopes,
    counter: WordPieceTokenCounter,
    memory: MemoryService,
    checkpoints: CheckpointService,
    folding: FoldingService,
    remediation: RemediationService,
    settings: SessionSettings,
) -> tuple[SessionService, DistillRunner]:
    from contextd_mcp.adapters.job_queue import FileJobQueue

    queue = FileJobQueue(paths.root / "queue")
    injector = Injector(memory, checkpoints, backing.stores, counter)
    policy = SessionPolicy(settings.session_idle_ttl_s, settings.session_max_ttl_s, settings.session_retention_s)

    def reinforce(scope: Scope, session_id: str, outcome: SessionOutcome) -> object:
        # A session's outcome reinforces the memories injected for its task (partial: nothing).
        return memory.session_outcome(scope, session_id, {"success": True, "failure": False}.get(outcome.value))

    sessions = SessionService(
        backing, sweeps, queue, injector, policy, on_session_closed=[folding.session_closed], on_outcome=[reinforce],
    )
    # Error → fix pairs found in Claude Code transcripts become remediation candidates.
    distiller = Distiller(memory, backing.scrubber, remediation_sink(remediation.record_many))
    runner = DistillRunner(
        queue, distiller, backing.scrubber,
        settings.distill_max_attempts, settings.distill_retry_base_s, settings.distill_delay_s,
    )
    return sessions, runner


def _keep_alive(sessions: SessionService) -> ResponseHook:
    """Any call on a connection keeps the session it started alive (idle TTL); a read-only
    identity writes nothing (it cannot start a session, and touches none)."""

    def touch(caller: Caller, tool: ToolDef, data: dict[str, Any], tokens: Callable[[], int]) -> list[str]:
        if not caller.read_only:
            sessions.touch(caller.connection_id, caller.scope)
        return []

    return touch


def _branch_charge(folding: FoldingService, sessions: SessionService) -> ResponseHook:
    """Every answer inside an open branch counts against its budget (and may warn)."""

    def charge(caller: Caller, tool: ToolDef, data: dict[str, Any], tokens: Callable[[], int]) -> list[str]:
        session_id = None if caller.read_only else sessions.active_session(caller.connection_id)
        if not session_id or not folding.in_branch(caller.scope, session_id):
            return []
        return folding.charge(caller.scope, session_id, tokens())

    return charge


def _memory_flags(s: MemorySettings) -> KeyFlags:
    return KeyFlags(
        keys=s.keys, sparse=s.sparse, learned=s.learned_keys, negative=s.negative_keys, preferences=s.preferences,
        rerank=s.rerank,
    )


def _default_toolsets(settings: Settings) -> frozenset[str]:
    """CONTEXTD_TOOLSETS (or serve --toolsets); a bad name stops the daemon at start, named."""
    try:
        return toolsets.parse(settings.toolsets.toolsets)
    except ValueError as exc:
        raise ValueError(f"CONTEXTD_TOOLSETS: {exc}") from None


def _rerank_settings(s: RemediationSettings) -> RerankSettings:
    return RerankSettings(s.rerank, s.rerank_error_lines, s.rerank_command, s.rerank_context, s.rerank_top, s.rerank_weight)


def _shell(paths: DataPaths, settings: Settings, policies: PolicyService) -> ShellService:
    from contextd_mcp.sandbox import SandboxBudget

    shell_settings = ShellSettings(
        allow_unsandboxed=settings.bash.bash_allow_unsandboxed,
        budget=SandboxBudget(**settings.sandbox.model_dump(exclude={"placeholder_linger_s"})),
        placeholder_linger_s=settings.sandbox.placeholder_linger_s,
    )
    return ShellService(shell_settings, policies.check, _shell_roots(paths, settings))


def _shell_roots(paths: DataPaths, settings: Settings) -> ShellRoots:
    """The daemon's own files, which bash refuses to expose, and the operator's extra protection."""
    import pwd

    from contextd_mcp.adapters.token_store import FILE_NAME

    tokens = settings.auth.tokens_file or paths.root / FILE_NAME
    hidden = (paths.root, paths.socket, Path(tokens), paths.audit, settings.embedding.cache_dir)
    return ShellRoots(
        data_dir=paths.root,
        home_dirs=(Path(pwd.getpwuid(os.getuid()).pw_dir), Path.home()),
        hidden=hidden,
        extra_protected=extra_protected(settings.bash.sandbox_protect),
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
