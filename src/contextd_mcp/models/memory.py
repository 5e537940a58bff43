"""Memory: one ReasoningBank item (a strategy that worked, or an anti-pattern)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from contextd_mcp.models.scope import ScopeLevel


class Outcome(StrEnum):
    success = "success"
    failure = "failure"


class Memory(BaseModel):
    id: str
    title: str
    description: str
    content: str
    outcome: Outcome
    tags: list[str]
    applies_when: list[str] = Field(default_factory=list, description="Situations the lesson applies to")
    confidence: float = Field(description="Mean of the Beta posterior, 0..1")
    helpful_count: int
    unhelpful_count: int
    uses_succeeded: int
    uses_failed: int
    origin: str
    scope: ScopeLevel = Field(description="Which scope owns it relative to the caller")
    created_at: str
    updated_at: str


class MemoryHit(BaseModel):
    id: str
    title: str
    description: str
    outcome: Outcome
    confidence: float
    relevance: float = Field(description="Cosine similarity of the query and the memory's closest key, 0..1")
    score: float = Field(description="Ranking score: dense and lexical match fused, weighted by confidence")
    tags: list[str]
    scope: ScopeLevel = Field(description="project, or team / org when found by a wider search")


class MemoryPreview(BaseModel):
    """A search hit as memory_search answers it: enough to choose, and the id to memory_get the
    rest (content, tags, counts). Scores at two decimals; outcome only for an anti-pattern and
    scope only when it is not the project's own (a default said five times is tokens for
    nothing). About 40 % of the full hit's size (BENCHMARKS.md, session 4)."""

    id: str
    title: str
    description: str
    outcome: Outcome | None = Field(default=None, description="failure for an anti-pattern; absent for a strategy")
    confidence: float
    score: float = Field(description="Ranking score: relevance weighted by confidence, 0..1")
    scope: ScopeLevel | None = Field(default=None, description="team or org when found by a wider search")

    @classmethod
    def of(cls, hit: MemoryHit) -> MemoryPreview:
        return cls(
            id=hit.id, title=hit.title, description=hit.description,
            outcome=None if hit.outcome == Outcome.success else hit.outcome,
            confidence=round(hit.confidence, 2), score=round(hit.score, 2),
            scope=None if hit.scope == ScopeLevel.project else hit.scope,
        )

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}
