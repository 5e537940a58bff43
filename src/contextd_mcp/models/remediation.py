"""Remediations: an error, its fix, and how well the fix has worked so far."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator

from contextd_mcp import limits
from contextd_mcp.models.requests import _BY_ID_SCOPE, MemoryId, Tags, _clean_tags
from contextd_mcp.models.scope import ScopeLevel
from contextd_mcp.models.strict import Strict

PROBLEM_MAX = 8000
SOLUTION_MAX = 8000
ROOT_CAUSE_MAX = 2000
SYMPTOM_MAX = 500
SYMPTOMS_MAX = 10
CODE_DIFF_MAX = 16000
FILE_MAX = 300
FILES_MAX = 50
ERROR_MAX = 16000
CONTEXT_MAX = 2000
PROBLEM_PREVIEW = 240
SOLUTION_PREVIEW = 400


class Category(StrEnum):
    build = "build"
    runtime = "runtime"
    test = "test"
    config = "config"
    dependency = "dependency"
    network = "network"
    database = "database"
    unknown = "unknown"


def _text(max_length: int, min_length: int = 0) -> object:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


Title = Annotated[str, _text(limits.TITLE_MAX, 1)]
Problem = Annotated[str, _text(PROBLEM_MAX, 1)]
Solution = Annotated[str, _text(SOLUTION_MAX, 1)]
RootCause = Annotated[str, _text(ROOT_CAUSE_MAX)]
Symptom = Annotated[str, _text(SYMPTOM_MAX, 1)]
CodeDiff = Annotated[str, _text(CODE_DIFF_MAX)]
FilePath = Annotated[str, _text(FILE_MAX, 1)]
ErrorText = Annotated[str, _text(ERROR_MAX, 1)]
Context = Annotated[str, _text(CONTEXT_MAX)]


class RecordRemediation(Strict):
    title: Title = Field(description="The error's signature line, e.g. \"ModuleNotFoundError: No module named 'yaml'\"")
    problem: Problem = Field(description="The error output as seen (paths, line numbers and the like are normalised away)")
    solution: Solution = Field(description="What fixed it, concretely")
    root_cause: RootCause | None = Field(default=None, description="Why it happened")
    symptoms: list[Symptom] = Field(
        default_factory=list, max_length=SYMPTOMS_MAX, description="Other messages seen with the same failure"
    )
    code_diff: CodeDiff | None = Field(default=None, description="The fix as a diff")
    affected_files: list[FilePath] = Field(default_factory=list, max_length=FILES_MAX)
    category: Category | None = Field(default=None, description="Inferred from the text when omitted")
    tags: Tags = Field(default_factory=list)

    _tags = field_validator("tags")(_clean_tags)


class SearchRemediations(Strict):
    error: ErrorText = Field(description="The error output or message, pasted as is")
    context: Context | None = Field(default=None, description="What you were doing, e.g. 'npm ci in a node:20 image'")
    limit: int = Field(default=limits.SEARCH_LIMIT_DEFAULT, ge=1, le=limits.SEARCH_LIMIT_MAX)
    category: Category | None = None
    scope: ScopeLevel = Field(default=ScopeLevel.project, description="project (default), or widen to your team or whole org")


class GetRemediation(Strict):
    remediation_id: MemoryId
    scope: ScopeLevel = _BY_ID_SCOPE


class RemediationFeedback(Strict):
    remediation_id: MemoryId
    helpful: bool = Field(description="Did this fix solve the error?")
    scope: ScopeLevel = _BY_ID_SCOPE


class RecordedRemediation(BaseModel):
    id: str
    category: Category
    category_inferred: bool
    confidence: float
    duplicate_of_existing: bool = False


class RemediationHit(BaseModel):
    id: str
    title: str
    category: Category
    problem: str = Field(description="Preview of the recorded error")
    solution: str = Field(description="Preview of the fix; remediation_get has it in full")
    confidence: float
    relevance: float = Field(description="Fused lexical + semantic match, 1 = first by both")
    score: float = Field(description="Ranking score: relevance weighted by confidence")
    tags: list[str]
    scope: ScopeLevel


class Remediation(BaseModel):
    id: str
    title: str
    category: Category
    problem: str
    solution: str
    root_cause: str | None
    symptoms: list[str]
    code_diff: str | None
    affected_files: list[str]
    tags: list[str]
    confidence: float
    helpful_count: int
    unhelpful_count: int
    scope: ScopeLevel
    created_at: str
    updated_at: str


class RemediationConfidence(BaseModel):
    id: str
    confidence: float
    hidden_from_search: bool
