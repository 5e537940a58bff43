"""Memory tools: thin adapters over MemoryService."""

from __future__ import annotations

from pydantic import BaseModel, Field

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import Handler, ToolSpec, in_scope
from contextd_mcp.models.memory import Memory, MemoryPreview
from contextd_mcp.models.requests import GetMemory, MemoryFeedback, MemoryOutcome, SearchMemories, StoreMemory
from contextd_mcp.services.memory import MemoryService, NewConfidence, StoredMemory


_ID = "6f1c2b9e-3f7a-4c1d-9a57-0b8e2d4c1a10"


class SearchResult(BaseModel):
    search_id: str = Field(description="Pass to memory_feedback / memory_outcome to rate what this search found")
    memories: list[MemoryPreview]


def _origin(caller: Caller) -> str:
    """Whose searches a rating is attributed to: this connection's (HTTP: its MCP session)."""
    return f"{caller.transport}:{caller.connection_id}" if caller.connection_id else ""


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec(
        "memory_store",
        "Save a lesson for future sessions of this project: a strategy that worked, or with "
        "outcome=failure an anti-pattern. Fill applies_when: it is found by each. Secrets are redacted.",
        StoreMemory,
        StoredMemory,
        example={
            "title": "Run pytest with -p no:cacheprovider in read-only checkouts",
            "content": "The cache plugin writes .pytest_cache; in a read-only tree it fails. Disable it.",
            "tags": ["pytest", "ci"],
            "applies_when": ["tests fail in a read-only checkout"],
        },
        example_result={"id": _ID, "confidence": 0.6667, "duplicate_of_existing": False},
    ),
    ToolSpec(
        "memory_search",
        "Find memories relevant to a situation, best first, as previews (memory_get has the rest). "
        "Searches this project unless scope widens it to the team or org.",
        SearchMemories,
        SearchResult,
        read_only=True,
        idempotent=True,
        example={"query": "pytest fails writing cache in read-only directory", "limit": 3},
        example_result={
            "search_id": "3c1f0e2a9b7d4e5f8a6b1c2d3e4f5a6b",
            "memories": [
                {
                    "id": _ID,
                    "title": "Run pytest with -p no:cacheprovider in read-only checkouts",
                    "description": "The cache plugin writes .pytest_cache; in a read-only tree it fails.",
                    "confidence": 0.75,
                    "score": 0.66,
                }
            ]
        },
    ),
    ToolSpec(
        "memory_get",
        "Fetch one memory in full (content, counts, confidence).",
        GetMemory,
        Memory,
        read_only=True,
        idempotent=True,
        example={"memory_id": _ID},
        example_result={
            "id": _ID,
            "title": "Run pytest with -p no:cacheprovider in read-only checkouts",
            "description": "The cache plugin writes .pytest_cache; in a read-only tree it fails.",
            "content": "The cache plugin writes .pytest_cache; in a read-only tree it fails. Disable it.",
            "outcome": "success",
            "tags": ["pytest", "ci"],
            "confidence": 0.75,
            "helpful_count": 1,
            "unhelpful_count": 0,
            "uses_succeeded": 0,
            "uses_failed": 0,
            "origin": "stored",
            "scope": "project",
            "created_at": "2026-11-27T09:00:00+00:00",
            "updated_at": "2026-11-27T09:05:00+00:00",
        },
    ),
    ToolSpec(
        "memory_feedback",
        "Rate a memory: helpful raises confidence, learns the query that found it, beats the hits above "
        "it; unhelpful lowers it, demotes it near that query (4 hide a new memory).",
        MemoryFeedback,
        NewConfidence,
        example={"memory_id": _ID, "helpful": True},
        example_result={"id": _ID, "confidence": 0.75, "hidden_from_search": False},
    ),
    ToolSpec(
        "memory_outcome",
        "Report that a task which applied this memory succeeded or failed (weaker evidence than feedback).",
        MemoryOutcome,
        NewConfidence,
        example={"memory_id": _ID, "succeeded": True},
        example_result={"id": _ID, "confidence": 0.7143, "hidden_from_search": False},
    ),
)


def memory_tools(service: MemoryService) -> dict[str, Handler]:
    def search(caller: Caller, req: SearchMemories) -> SearchResult:
        search_id, hits = service.search_logged(caller.scope, req, _origin(caller))
        return SearchResult(search_id=search_id, memories=[MemoryPreview.of(hit) for hit in hits])

    def feedback(caller: Caller, req: MemoryFeedback) -> NewConfidence:
        return service.feedback(caller.scope, req, _origin(caller))

    def outcome(caller: Caller, req: MemoryOutcome) -> NewConfidence:
        return service.outcome(caller.scope, req, _origin(caller))

    return {
        "memory_store": in_scope(service.store),
        "memory_search": search,
        "memory_get": in_scope(service.get),
        "memory_feedback": feedback,
        "memory_outcome": outcome,
    }
