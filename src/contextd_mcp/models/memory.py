"""Memory: one ReasoningBank item (a strategy that worked, or an anti-pattern)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

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
