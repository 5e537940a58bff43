"""Validated inputs of the memory service; the MCP tool schemas are these models."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from contextd_mcp import limits
from contextd_mcp.models.memory import Outcome
from contextd_mcp.models.scope import ScopeLevel
from contextd_mcp.models.strict import Strict

_TAG = re.compile(r"^[a-z0-9][a-z0-9._:/+-]*$")

Tag = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=limits.TAG_MAX)]
Tags = Annotated[list[Tag], Field(max_length=limits.TAGS_MAX, description="Lower-case labels, e.g. 'pytest'")]
Situation = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.APPLIES_WHEN_CHARS)
]
SearchId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.ID_MAX)]
MemoryId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.ID_MAX)]


def _clean_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not _TAG.match(tag):
            raise ValueError(f"tag {tag[:20]!r} must be letters, digits and . _ : / + - (starting alphanumeric)")
    return list(dict.fromkeys(tags))


class StoreMemory(Strict):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.TITLE_MAX)] = Field(
        description="Short imperative title of the lesson"
    )
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.CONTENT_MAX)] = (
        Field(description="The lesson itself: what to do (or avoid) and why, 1-3 sentences")
    )
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=limits.DESCRIPTION_MAX)] | None = (
        Field(default=None, description="One sentence; derived from content when omitted")
    )
    outcome: Outcome = Field(default=Outcome.success, description="success: a strategy; failure: an anti-pattern")
    tags: Tags = Field(default_factory=list)
    applies_when: Annotated[list[Situation], Field(max_length=limits.APPLIES_WHEN_MAX)] = Field(
        default_factory=list,
        description="Situations it applies to, in a later agent's words (task or symptom)",
    )

    _tags = field_validator("tags")(_clean_tags)


class SearchMemories(Strict):
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.QUERY_MAX)] = Field(
        description="The situation or problem, in plain words"
    )
    limit: int = Field(default=limits.SEARCH_LIMIT_DEFAULT, ge=1, le=limits.SEARCH_LIMIT_MAX)
    outcome: Outcome | None = Field(default=None, description="Only strategies (success) or anti-patterns (failure)")
    min_confidence: float = Field(default=0.3, ge=0.0, le=1.0, description="Hide memories below this confidence")
    tags: Tags = Field(default_factory=list, description="Match memories carrying any of these tags")
    scope: ScopeLevel = Field(
        default=ScopeLevel.project, description="project (default), or widen to your team or whole org"
    )

    _tags = field_validator("tags")(_clean_tags)


_BY_ID_SCOPE = Field(
    default=ScopeLevel.project,
    description="Where it lives: project (default), or team / org if a wider search found it",
)


_SEARCH_ID = Field(
    default=None,
    description="From memory_search; default: your latest search that found it",
)


class GetMemory(Strict):
    memory_id: MemoryId
    scope: ScopeLevel = _BY_ID_SCOPE


class MemoryFeedback(Strict):
    memory_id: MemoryId
    helpful: bool = Field(description="Did this memory help with the task at hand?")
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=limits.COMMENT_MAX)] | None = None
    scope: ScopeLevel = _BY_ID_SCOPE
    search_id: SearchId | None = _SEARCH_ID


class MemoryOutcome(Strict):
    memory_id: MemoryId
    succeeded: bool = Field(description="The task in which the memory was applied succeeded")
    scope: ScopeLevel = _BY_ID_SCOPE
    search_id: SearchId | None = _SEARCH_ID
