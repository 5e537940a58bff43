"""Composition root: the only place that reads settings and wires adapters into services."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from contextd_mcp.adapters.audit_file import JsonlAuditLog
from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.mcp.redactions import CountingScrubber
from contextd_mcp.mcp.registry import ToolDef
from contextd_mcp.mcp.server import HttpCallerResolver, ToolRunner, build_server
from contextd_mcp.mcp.tools.memory import memory_tools
from contextd_mcp.paths import DataPaths
from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.scrubber import Scrubber
from contextd_mcp.ports.vector_store import VectorStore
from contextd_mcp.services.memory import MemoryService
from contextd_mcp.settings import EmbeddingSettings, LimitSettings, StoreSettings

log = logging.getLogger("contextd_mcp")


def make_store(settings: StoreSettings, paths: DataPaths) -> VectorStore:
    if settings.qdrant_url or settings.qdrant_path:
        from contextd_mcp.adapters.qdrant_client_store import QdrantClientStore

        return QdrantClientStore(url=settings.qdrant_url, api_key=settings.qdrant_api_key, path=settings.qdrant_path)
    from contextd_mcp.adapters.qdrant_edge_store import EdgeStore

    return EdgeStore(paths.store)


def make_embedder(settings: EmbeddingSettings, paths: DataPaths) -> Embedder:
    from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder

    return FastEmbedEmbedder(settings.model, settings.cache_dir or paths.models)


def make_scrubber() -> Scrubber:
    from contextd_mcp.adapters.secret_scrubber import RegexScrubber

    return RegexScrubber()


@dataclass
class Container:
    paths: DataPaths
    store: VectorStore
    embedder: Embedder
    scrubber: Scrubber
    audit: JsonlAuditLog
    memory: MemoryService
    runner: ToolRunner
    # Long-running async jobs the owning process runs beside the transports (queues, clean-up).
    workers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Called on shutdown, before the store closes, in order.
    closers: list[Callable[[], None]] = field(default_factory=list)

    def tools(self) -> list[ToolDef]:
        return list(self.runner.tools.values())

    def server(self) -> Any:
        return build_server(self.runner)

    def status(self) -> dict[str, Any]:
        return {
            "store": self.store.describe(),
            "embedding_model": self.embedder.model_name,
            "embedding_dim": self.embedder.dim,
            "memories": self.memory.counts(),
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
) -> Container:
    paths.ensure()
    store_settings = store_settings or StoreSettings(data_dir=paths.root)
    limit_settings = limit_settings or LimitSettings()
    embedder = embedder or make_embedder(embedding_settings or EmbeddingSettings(), paths)
    store = make_store(store_settings, paths)
    # Counting wrapper: the audit line reports what services scrubbed during each call.
    scrubber = CountingScrubber(scrubber or make_scrubber())
    audit = JsonlAuditLog(paths.audit)
    memory = MemoryService(store, embedder, scrubber)
    tools = memory_tools(memory)
    runner = ToolRunner(
        tools, scrubber, WordPieceTokenCounter(), audit, limit_settings.response_max_tokens, http_caller=http_caller
    )
    return Container(paths, store, embedder, scrubber, audit, memory, runner)
