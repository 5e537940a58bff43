"""Checkpoints: a saved state of work, resumable at three levels of detail."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator

from contextd_mcp import limits
from contextd_mcp.models.requests import Tags, _clean_tags
from contextd_mcp.models.session import SessionId
from contextd_mcp.models.strict import Strict


class ResumeLevel(StrEnum):
    summary = "summary"
    context = "context"
    full = "full"


class SaveCheckpoint(Strict):
    summary: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.CHECKPOINT_SUMMARY_MAX)
    ] = Field(description="Where the work stands, in a few sentences")
    context: Annotated[str, StringConstraints(max_length=limits.CHECKPOINT_CONTEXT_MAX)] | None = Field(
        default=None, description="What a resumed session needs: decisions, open questions, next steps"
    )
    full_state: Annotated[str, StringConstraints(max_length=limits.CHECKPOINT_FULL_MAX)] | None = Field(
        default=None, description="Everything else worth keeping (notes, file lists, logs)"
    )
    tags: Tags = Field(default_factory=list)
    session_id: SessionId | None = Field(default=None, description="Defaults to this connection's session, if any")

    _tags = field_validator("tags")(_clean_tags)


class ListCheckpoints(Strict):
    limit: int = Field(default=10, ge=1, le=limits.CHECKPOINT_LIST_MAX)
    session_id: SessionId | None = Field(default=None, description="Only this session's checkpoints")


class ResumeCheckpoint(Strict):
    checkpoint_id: SessionId
    level: ResumeLevel = Field(
        default=ResumeLevel.summary, description="summary; context (summary + context); full (everything)"
    )


class TokenCounts(BaseModel):
    summary: int = Field(description="Tokens checkpoint_resume returns at level summary")
    context: int = Field(description="... at level context")
    full: int = Field(description="... at level full")


class SavedCheckpoint(BaseModel):
    checkpoint_id: str
    tokens: TokenCounts


class CheckpointInfo(BaseModel):
    id: str
    summary: str
    created_at: str
    tags: list[str]
    session_id: str | None = None
    tokens: TokenCounts


class CheckpointList(BaseModel):
    checkpoints: list[CheckpointInfo]


class ResumedCheckpoint(BaseModel):
    checkpoint_id: str
    level: ResumeLevel
    summary: str
    context: str | None = None
    full_state: str | None = None
    tags: list[str]
    created_at: str
    session_id: str | None = None
    tokens: int = Field(description="Tokens of the summary/context/full_state returned here")
    truncated: bool = Field(
        default=False, description="true when the level's text exceeded the response cap and was cut (at a word)"
    )
