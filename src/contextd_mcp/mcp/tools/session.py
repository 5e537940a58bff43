"""Session tools: thin adapters over SessionService."""

from __future__ import annotations

from collections.abc import Callable

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import Handler, ToolSpec
from contextd_mcp.models.session import (
    DistillStatus,
    EndSession,
    JobStatusRequest,
    SessionEnded,
    SessionStarted,
    StartSession,
)
from contextd_mcp.services.sessions import SessionService

HOOK = "hook"
_SESSION = "0d5e7c3a-8b14-4f6e-a2c9-71b3e5d0f842"
_JOB = "a7c2e94f-1d3b-4e58-9f06-2b8d4c1e7a35"
_MEMORY = "6f1c2b9e-3f7a-4c1d-9a57-0b8e2d4c1a10"


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec(
        "session_start",
        "Start a work session: returns its id and markdown to keep in context (up to 3 lessons for "
        "the task, under 500 tokens, and the latest checkpoint).",
        StartSession,
        SessionStarted,
        example={"task": "fix the flaky S3 upload test"},
        example_result={
            "session_id": _SESSION,
            "injected_context": "## Lessons from earlier sessions (contextd)\n1. **Use ChecksumAlgorithm, not "
            "ContentMD5, with boto3 ≥ 1.36** — put_object rejects ContentMD5 since 1.36. _(strategy, "
            f"confidence 0.60)_\ncontextd session: `{_SESSION}`",
            "injection_tokens": 61,
            "memories": [
                {"id": _MEMORY, "title": "Use ChecksumAlgorithm, not ContentMD5, with boto3 ≥ 1.36",
                 "outcome": "success", "confidence": 0.6, "relevance": 0.58}
            ],
            "latest_checkpoint": None,
            "idle_expires_at": "2026-11-27T13:00:00+00:00",
        },
    ),
    ToolSpec(
        "session_end",
        "End the session; returns at once with a job id (see distill_status). In the background, "
        "the outcome, summary and learnings become up to 3 memories.",
        EndSession,
        SessionEnded,
        example={
            "session_id": _SESSION,
            "outcome": "success",
            "summary": "Fixed the upload test: boto3 1.36 rejects ContentMD5, so uploads now set "
            "ChecksumAlgorithm='SHA256'.",
        },
        example_result={"session_id": _SESSION, "job_id": _JOB, "state": "queued"},
    ),
    ToolSpec(
        "distill_status",
        "Where a session_end job stands and the memories it made.",
        JobStatusRequest,
        DistillStatus,
        read_only=True,
        idempotent=True,
        example={"job_id": _JOB},
        example_result={
            "job_id": _JOB,
            "session_id": _SESSION,
            "state": "done",
            "attempts": 0,
            "error": None,
            "memories_created": [_MEMORY],
            "memories_reinforced": [],
            "remediation_candidates": [],
            "duration_ms": 41.3,
        },
    ),
)


def session_tools(service: SessionService, bind_agent: Callable[[Caller, str], object] | None = None) -> dict[str, Handler]:
    def start(caller: Caller, req: StartSession) -> SessionStarted:
        if req.agent is not None and bind_agent is not None:  # mcp/access.py: validates, then binds
            bind_agent(caller, req.agent)
        # A Claude Code session fires SessionStart again on resume/compact: keep its session.
        return service.start(caller.scope, caller.connection_id, req, reuse=caller.transport == HOOK)

    def end(caller: Caller, req: EndSession) -> SessionEnded:
        # Only the hook (local, owner-only socket) may point the daemon at a transcript file:
        # over MCP, a path argument would let a remote caller have any file distilled.
        transcript = caller.extra.get("transcript_path") if caller.transport == HOOK else None
        return service.end(caller.scope, caller.connection_id, req, transcript)

    def status(caller: Caller, req: JobStatusRequest) -> DistillStatus:
        return service.job_status(caller.scope, req.job_id)

    return {"session_start": start, "session_end": end, "distill_status": status}
