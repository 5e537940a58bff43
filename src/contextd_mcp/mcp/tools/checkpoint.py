"""Checkpoint tools: thin adapters over CheckpointService."""

from __future__ import annotations

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import Handler, ToolSpec, in_scope
from contextd_mcp.models.checkpoint import (
    CheckpointList,
    ListCheckpoints,
    ResumeCheckpoint,
    ResumedCheckpoint,
    SaveCheckpoint,
    SavedCheckpoint,
)
from contextd_mcp.services.checkpoints import CheckpointService
from contextd_mcp.services.sessions import SessionService

_ID = "c41e8a2d-6b9f-4d37-8e15-3a7f0c2b9d64"
_SESSION = "0d5e7c3a-8b14-4f6e-a2c9-71b3e5d0f842"
_TOKENS = {"summary": 24, "context": 190, "full": 1450}


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec(
        "checkpoint_save",
        "Save where the work stands, to resume later (checkpoint_resume), e.g. before compaction. "
        "Returns its id and each resume level's token cost.",
        SaveCheckpoint,
        SavedCheckpoint,
        example={
            "summary": "Upload fix done; next: add boto3-stubs so mypy passes.",
            "context": "Decided: ChecksumAlgorithm=SHA256 on put_object. Open: stubs for boto3.",
            "tags": ["s3"],
        },
        example_result={"checkpoint_id": _ID, "tokens": _TOKENS},
    ),
    ToolSpec(
        "checkpoint_list",
        "This project's checkpoints, newest first, with each level's resume cost in tokens.",
        ListCheckpoints,
        CheckpointList,
        read_only=True,
        idempotent=True,
        example={"limit": 5},
        example_result={
            "checkpoints": [
                {"id": _ID, "summary": "Upload fix done; next: add boto3-stubs so mypy passes.",
                 "created_at": "2026-11-27T10:15:00+00:00", "tags": ["s3"], "session_id": _SESSION,
                 "tokens": _TOKENS}
            ]
        },
    ),
    ToolSpec(
        "checkpoint_resume",
        "Load a checkpoint: level summary (cheapest), context (summary + context) or full (everything).",
        ResumeCheckpoint,
        ResumedCheckpoint,
        read_only=True,
        idempotent=True,
        example={"checkpoint_id": _ID, "level": "context"},
        example_result={
            "checkpoint_id": _ID,
            "level": "context",
            "summary": "Upload fix done; next: add boto3-stubs so mypy passes.",
            "context": "Decided: ChecksumAlgorithm=SHA256 on put_object. Open: stubs for boto3.",
            "full_state": None,
            "tags": ["s3"],
            "created_at": "2026-11-27T10:15:00+00:00",
            "session_id": _SESSION,
            "tokens": 41,
            "truncated": False,
        },
    ),
)


def checkpoint_tools(service: CheckpointService, sessions: SessionService) -> dict[str, Handler]:
    def save(caller: Caller, req: SaveCheckpoint) -> SavedCheckpoint:
        session_id = sessions.resolve(caller.scope, caller.connection_id, req.session_id, required=False)
        return service.save(caller.scope, req, session_id)

    return {"checkpoint_save": save, "checkpoint_list": in_scope(service.list), "checkpoint_resume": in_scope(service.resume)}
