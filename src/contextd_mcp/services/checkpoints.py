"""Checkpoints: save where work stands, list them newest first, resume at three levels."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from contextd_mcp.errors import NotFound
from contextd_mcp.models.checkpoint import (
    CheckpointInfo,
    CheckpointList,
    ListCheckpoints,
    ResumeCheckpoint,
    ResumedCheckpoint,
    ResumeLevel,
    SaveCheckpoint,
    SavedCheckpoint,
    TokenCounts,
)
from contextd_mcp.models.scope import Scope
from contextd_mcp.ports.embedder import Embedder, TokenCounter
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services.backing import Backing
from contextd_mcp.transcript import clip

COLLECTION = "checkpoints"
LIST_SUMMARY_CHARS = 300
# The JSON around the texts (keys, ids, escapes) costs tokens too; keep this much spare
# under the response cap so the ToolRunner never has to cut a resumed checkpoint itself.
ENVELOPE_TOKENS = 200


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class CheckpointService:
    def __init__(
        self,
        backing: Backing,
        embedder: Embedder,
        counter: TokenCounter,
        max_response_tokens: int,
    ) -> None:
        self._stores = backing.stores
        self._embedder = embedder
        self._scrubber = backing.scrubber
        self._counter = counter
        self._budget = max(64, max_response_tokens - ENVELOPE_TOKENS)
        self._now = backing.now
        backing.stores.ensure(
            backing.spec(
                COLLECTION,
                keyword_fields=("tenant", "team", "project", "session_id", "tags"),
                float_fields=("created_ts",),
            )
        )

    def _scrub(self, text: str | None) -> str:
        return self._scrubber.scrub(text).text if text else ""

    def save(self, scope: Scope, request: SaveCheckpoint, session_id: str = "") -> SavedCheckpoint:
        summary = self._scrub(request.summary)
        context = self._scrub(request.context)
        full_state = self._scrub(request.full_state)
        summary_tokens = self._counter.count(summary)
        context_tokens = summary_tokens + self._counter.count(context)
        tokens = TokenCounts(summary=summary_tokens, context=context_tokens, full=context_tokens + self._counter.count(full_state))
        payload: dict[str, Any] = {
            **scope.fields(),
            "summary": summary,
            "context": context,
            "full_state": full_state,
            "tags": list(request.tags),
            "session_id": session_id,
            "tokens": tokens.model_dump(),
            "created_ts": self._now(),
        }
        # The summary's embedding lets a later feature find checkpoints by meaning.
        vector = self._embedder.embed_documents([summary])[0]
        record = Record(id=str(uuid.uuid4()), payload=payload, vector=vector)
        self._stores.of(scope).upsert(COLLECTION, [record])
        return SavedCheckpoint(checkpoint_id=record.id, tokens=tokens)

    @staticmethod
    def _info(record: Record) -> CheckpointInfo:
        p = record.payload
        return CheckpointInfo(
            id=record.id,
            summary=clip(p["summary"], LIST_SUMMARY_CHARS),
            created_at=iso(p["created_ts"]),
            tags=list(p.get("tags", [])),
            session_id=p.get("session_id") or None,
            tokens=TokenCounts(**p["tokens"]),
        )

    def list(self, scope: Scope, request: ListCheckpoints) -> CheckpointList:
        where: dict[str, Any] = {"session_id": request.session_id} if request.session_id else {}
        records = self._stores.of(scope).scan(COLLECTION, request.limit, match=where, order_by="created_ts")
        return CheckpointList(checkpoints=[self._info(r) for r in records])

    def latest(self, scope: Scope) -> CheckpointInfo | None:
        records = self._stores.of(scope).scan(COLLECTION, 1, order_by="created_ts")
        return self._info(records[0]) if records else None

    def resume(self, scope: Scope, request: ResumeCheckpoint) -> ResumedCheckpoint:
        found = self._stores.of(scope).get(COLLECTION, [request.checkpoint_id])
        if not found:
            raise NotFound("checkpoint", request.checkpoint_id)
        p = found[0].payload
        level = request.level
        result = ResumedCheckpoint(
            checkpoint_id=found[0].id,
            level=level,
            summary=p["summary"],
            context=p["context"] if level is not ResumeLevel.summary else None,
            full_state=p["full_state"] if level is ResumeLevel.full else None,
            tags=list(p.get("tags", [])),
            created_at=iso(p["created_ts"]),
            session_id=p.get("session_id") or None,
            tokens=0,
        )
        self._fit(result)
        result.tokens = sum(self._counter.count(t or "") for t in (result.summary, result.context, result.full_state))
        return result

    def _fit(self, result: ResumedCheckpoint) -> None:
        """Cut the most detailed text first until the whole response fits the cap, at a word."""
        for field in ("full_state", "context", "summary"):
            for _ in range(4):  # each pass removes the measured excess; escapes may need a second
                excess = self._counter.count(json.dumps(result.model_dump(mode="json"))) - self._budget
                text = getattr(result, field)
                if excess <= 0 or not text:
                    break
                keep = max(0, self._counter.count(text) - excess - 8)
                setattr(result, field, self._counter.truncate(text, keep) + " …[truncated]")
                result.truncated = True
