"""Context folding (arXiv 2510.11967): a branch is a sub-task with its own token budget
that hands only a short message back to its parent."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from contextd_mcp.models.strict import Strict

BUDGET_DEFAULT = 8192
BUDGET_MIN = 256
BUDGET_MAX = 32768
TIMEOUT_DEFAULT_S = 300
TIMEOUT_MAX_S = 600
MAX_DEPTH = 3
# Active branches of a session always form one chain (a new branch nests under the active
# one), so MAX_DEPTH also caps how many are open at once; this caps how many a session
# may create in all, so a looping agent cannot flood the store.
MAX_BRANCHES_PER_SESSION = 100
WARN_AT = 0.8
DESCRIPTION_MAX = 500
PROMPT_MAX = 8000
MESSAGE_MAX_CHARS = 8000
# What goes back to the parent is cut to this many tokens (the fold's whole point).
RETURN_MAX_TOKENS = 1000
# Share of a branch's budget its optional memory injection may use.
MEMORY_SHARE = 0.1

BranchId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
SessionId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class BranchState(StrEnum):
    active = "active"
    returned = "returned"
    timed_out = "timed_out"
    failed = "failed"


class CreateBranch(Strict):
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=DESCRIPTION_MAX)] = (
        Field(description="The sub-task this branch works on")
    )
    prompt: Annotated[str, StringConstraints(strip_whitespace=True, max_length=PROMPT_MAX)] | None = Field(
        default=None, description="Instructions for the branch (counted against its budget)"
    )
    budget: int = Field(default=BUDGET_DEFAULT, ge=BUDGET_MIN, le=BUDGET_MAX, description="Token budget")
    timeout_seconds: int = Field(default=TIMEOUT_DEFAULT_S, ge=1, le=TIMEOUT_MAX_S)
    session_id: SessionId | None = Field(default=None, description="Default: this connection's session")
    with_memories: bool = Field(default=False, description="Inject relevant memories (≤10 % of the budget)")


class ReturnBranch(Strict):
    branch_id: BranchId
    message: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MESSAGE_MAX_CHARS)] = (
        Field(description="The result for the parent: what was found or done, briefly")
    )
    session_id: SessionId | None = Field(default=None, description="Default: this connection's session")


class BranchStatusRequest(Strict):
    branch_id: BranchId | None = Field(default=None, description="Default: the session's active branch")
    session_id: SessionId | None = Field(default=None, description="Default: this connection's session")


class Budget(BaseModel):
    total: int
    used: int
    remaining: int


class BranchCreated(BaseModel):
    branch_id: str
    session_id: str
    parent: str = Field(description="Parent branch id, or 'session'")
    depth: int
    budget: int
    timeout_seconds: int
    memories: str = Field(default="", description="Injected memories (markdown), when asked for")


class BranchReturned(BaseModel):
    branch_id: str
    status: BranchState
    message: str = Field(description="What goes back to the parent: scrubbed and capped")
    message_tokens: int
    tokens_used: int
    closed_children: list[str] = Field(description="Open children closed first, deepest first")
    active: str = Field(description="Now active: the parent branch id, or 'session'")


class BranchInfo(BaseModel):
    branch_id: str
    session_id: str
    status: BranchState
    depth: int
    parent: str
    description: str
    budget: Budget
    children: list[str]
    created_at: str
    deadline: str
    reason: str = Field(default="", description="Why it ended, when forced")


class BranchStatus(BaseModel):
    branch: BranchInfo | None = Field(description="None when the session has no branch")
    active: str = Field(description="The session's active branch id, or 'session'")
