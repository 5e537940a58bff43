"""Context-folding tools over FoldingService; the session is the caller's (or named)."""

from __future__ import annotations

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import Handler, ToolSpec
from contextd_mcp.models.branch import (
    BranchCreated,
    BranchReturned,
    BranchStatus,
    BranchStatusRequest,
    CreateBranch,
    ReturnBranch,
)
from contextd_mcp.services.folding import FoldingService
from contextd_mcp.services.sessions import SessionService

_B = "3b9d2f61-7c4e-4a1f-8e52-9d0c6a7b1e24"
_S = "0d5e7c3a-8b14-4f6e-a2c9-71b3e5d0f842"


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec(
        "branch_create",
        "Fold context: open a branch for a sub-task with its own token budget (3 deep). "
        "Responses count against it: warned at 80 %, returned at 100 % or timeout. Needs session_start.",
        CreateBranch,
        BranchCreated,
        example={"description": "Find why test_upload fails on CI", "budget": 4096, "timeout_seconds": 300},
        example_result={"branch_id": _B, "session_id": _S, "parent": "session", "depth": 1, "budget": 4096,
                        "timeout_seconds": 300, "memories": ""},
    ),
    ToolSpec(
        "branch_return",
        "Close a branch and hand its parent only a short message (scrubbed, ≤1000 tokens). "
        "Open child branches are closed first.",
        ReturnBranch,
        BranchReturned,
        example={"branch_id": _B, "message": "CI runs boto3 1.36, which rejects ContentMD5; fixed in uploader.py."},
        example_result={"branch_id": _B, "status": "returned",
                        "message": "CI runs boto3 1.36, which rejects ContentMD5; fixed in uploader.py.",
                        "message_tokens": 21, "tokens_used": 2877, "closed_children": [], "active": "session"},
    ),
    ToolSpec(
        "branch_status",
        "A branch's status, depth, budget (used / total / remaining) and children; default: the active branch.",
        BranchStatusRequest,
        BranchStatus,
        read_only=True,
        example={"branch_id": _B},
        example_result={"branch": {"branch_id": _B, "session_id": _S, "status": "active", "depth": 1,
                                   "parent": "session", "description": "Find why test_upload fails on CI",
                                   "budget": {"total": 4096, "used": 1210, "remaining": 2886}, "children": [],
                                   "created_at": "2026-11-27T09:00:00+00:00",
                                   "deadline": "2026-11-27T09:05:00+00:00", "reason": ""},
                        "active": _B},
    ),
)


def branch_tools(folding: FoldingService, sessions: SessionService) -> dict[str, Handler]:
    def session_of(caller: Caller, named: str | None) -> str:
        return sessions.resolve(caller.scope, caller.connection_id, named, required=True)

    def create(caller: Caller, req: CreateBranch) -> BranchCreated:
        return folding.create(caller.scope, session_of(caller, req.session_id), req)

    def return_(caller: Caller, req: ReturnBranch) -> BranchReturned:
        return folding.return_branch(caller.scope, session_of(caller, req.session_id), req)

    def status(caller: Caller, req: BranchStatusRequest) -> BranchStatus:
        return folding.status(caller.scope, session_of(caller, req.session_id), req)

    return {"branch_create": create, "branch_return": return_, "branch_status": status}
