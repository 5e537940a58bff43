"""Sessions: what starts them, what ends them, what distillation made of them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from contextd_mcp import limits
from contextd_mcp.models.memory import Outcome
from contextd_mcp.models.strict import Strict

SessionId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.ID_MAX)]


class SessionOutcome(StrEnum):
    success = "success"
    failure = "failure"
    partial = "partial"


class SessionStatus(StrEnum):
    active = "active"
    ended = "ended"
    expired = "expired"


class StartSession(Strict):
    project_path: Annotated[str, StringConstraints(strip_whitespace=True, max_length=limits.PATH_MAX)] | None = Field(
        default=None,
        description="The project's directory, recorded with the session",
    )
    task: Annotated[str, StringConstraints(strip_whitespace=True, max_length=limits.TASK_MAX)] | None = Field(
        default=None, description="What this session is about; picks the memories injected"
    )
    agent: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=72)] | None = Field(
        default=None,
        description="Act as this agent config (name or id) for the rest of the connection",
    )


class Learning(Strict):
    """A lesson the calling model distilled itself (ReasoningBank item shape)."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.TITLE_MAX)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=limits.DESCRIPTION_MAX)] | None = (
        Field(default=None, description="One sentence")
    )
    content: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.LEARNING_CONTENT_MAX)
    ] = Field(description="1-3 sentences: what to do (or avoid) and why")
    outcome: Outcome = Field(default=Outcome.success, description="success: a strategy; failure: an anti-pattern")


class EndSession(Strict):
    session_id: SessionId | None = Field(
        default=None, description="Defaults to the session this connection started"
    )
    outcome: SessionOutcome = Field(
        description="success → strategies are learned; failure → anti-patterns; partial → both"
    )
    summary: Annotated[str, StringConstraints(strip_whitespace=True, max_length=limits.SUMMARY_MAX)] | None = Field(
        default=None, description="What was done and what happened, in a few sentences"
    )
    learnings: list[Learning] = Field(
        default_factory=list,
        max_length=limits.LEARNINGS_MAX,
        description="Lessons you distilled yourself; kept before anything derived from the summary",
    )


class JobStatusRequest(Strict):
    job_id: SessionId


class InjectedMemory(BaseModel):
    id: str
    title: str
    outcome: Outcome
    confidence: float
    relevance: float | None = Field(default=None, description="Cosine similarity to the task, when one was given")


class CheckpointRef(BaseModel):
    id: str
    summary: str
    created_at: str


class SessionStarted(BaseModel):
    session_id: str
    injected_context: str = Field(description="Markdown to put in the agent's context")
    injection_tokens: int
    memories: list[InjectedMemory]
    latest_checkpoint: CheckpointRef | None = None
    idle_expires_at: str


class SessionEnded(BaseModel):
    session_id: str
    job_id: str | None = Field(description="The distillation job (see distill_status); null when nothing was queued")
    state: str = Field(
        description="queued: distillation runs in the background; nothing_new: no summary, no learnings and "
        "no transcript turns that were not distilled before, so nothing was queued"
    )
    note: str | None = Field(default=None, description="Why nothing was queued, or which transcript turns were")


class ErrorFix(BaseModel):
    """An error and what fixed it, found in a transcript: a remediation candidate."""

    command: str
    error: str
    fix: str


class DistillStatus(BaseModel):
    job_id: str
    session_id: str
    state: str = Field(description="pending, running, done or failed")
    attempts: int
    error: str | None = None
    memories_created: list[str] = Field(default_factory=list)
    memories_reinforced: list[str] = Field(default_factory=list)
    remediation_candidates: list[ErrorFix] = Field(default_factory=list)
    duration_ms: float | None = None
