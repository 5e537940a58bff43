"""Context folding: branches with real token budgets, persisted, bounded in depth and time.

Every response the server sends while a branch is active is charged to that branch (the
MCP adapter calls ``charge`` from a response hook with the response's token count, using
the same counter as every cap). At 80 % the agent is warned; at 100 % the branch is
force-returned as ``failed`` and its parent is active again; past its deadline it is
force-returned as ``timed_out``. A branch's work never reaches its parent: only the
scrubbed, capped return message does.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from contextd_mcp.errors import Conflict, NotFound
from contextd_mcp.models.branch import (
    MAX_BRANCHES_PER_SESSION,
    MAX_DEPTH,
    MEMORY_SHARE,
    RETURN_MAX_TOKENS,
    WARN_AT,
    BranchCreated,
    BranchInfo,
    BranchReturned,
    BranchState,
    BranchStatus,
    BranchStatusRequest,
    Budget,
    CreateBranch,
    ReturnBranch,
)
from contextd_mcp.models.requests import SearchMemories
from contextd_mcp.models.scope import Scope
from contextd_mcp.ports.embedder import TokenCounter
from contextd_mcp.ports.scoped_store import AcrossScopes, scope_of
from contextd_mcp.ports.vector_store import Range, Record
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.record_fields import iso

log = logging.getLogger("contextd_mcp")

COLLECTION = "branches"
SESSION = "session"
MemorySearch = Callable[[Scope, SearchMemories], list[Any]]


class FoldingService:
    def __init__(
        self,
        backing: Backing,
        sweeps: AcrossScopes,
        counter: TokenCounter,
        search_memories: MemorySearch | None = None,
    ) -> None:
        self._stores = backing.stores
        self._sweeps = sweeps  # the admin path: overdue branches in every scope
        self._scrubber = backing.scrubber
        self._counter = counter
        self._search = search_memories
        self._now = backing.now
        self._lock = threading.RLock()
        # session id → its open branches, outermost first (a cache of the store, rebuilt on demand)
        self._chains: dict[str, list[Record]] = {}
        backing.stores.ensure(
            backing.spec(
                COLLECTION,
                keyword_fields=("tenant", "team", "project", "session_id", "status"),
                float_fields=("created_ts", "deadline_ts", "depth"),
            )
        )

    # -- reading ------------------------------------------------------------------------

    def _chain(self, scope: Scope, session_id: str) -> list[Record]:
        chain = self._chains.get(session_id)
        if chain is None:
            where = {"session_id": session_id, "status": BranchState.active.value}
            found = self._stores.of(scope).scan(COLLECTION, MAX_DEPTH + 1, match=where)
            chain = sorted(found, key=lambda r: r.payload["depth"])
            self._chains[session_id] = chain
        return chain

    def _load(self, scope: Scope, session_id: str, branch_id: str) -> Record:
        found = self._stores.of(scope).get(COLLECTION, [branch_id], match={"session_id": session_id})
        if not found:  # unknown, another session's, another project's or tenant's: all alike
            raise NotFound("branch", branch_id)
        for open_branch in self._chains.get(session_id, []):
            if open_branch.id == branch_id:
                return open_branch  # the cached copy carries the live token count
        return found[0]

    def _info(self, record: Record) -> BranchInfo:
        p = record.payload
        used = int(p["used"])
        return BranchInfo(
            branch_id=record.id,
            session_id=p["session_id"],
            status=BranchState(p["status"]),
            depth=int(p["depth"]),
            parent=p["parent"],
            description=p["description"],
            budget=Budget(total=int(p["budget"]), used=used, remaining=max(0, int(p["budget"]) - used)),
            children=list(p.get("children", [])),
            created_at=iso(p["created_ts"]),
            deadline=iso(p["deadline_ts"]),
            reason=p.get("reason", ""),
        )

    # -- writing ------------------------------------------------------------------------

    def _save(self, scope: Scope, record: Record, fields: dict[str, Any]) -> None:
        record.payload.update(fields)
        self._stores.of(scope).set_fields(COLLECTION, record.id, fields)

    def _close(self, scope: Scope, session_id: str, record: Record, state: BranchState, reason: str, message: str = "") -> list[str]:
        """Close ``record`` and, first, every open branch nested in it (deepest first)."""
        chain = self._chain(scope, session_id)
        index = next((i for i, r in enumerate(chain) if r.id == record.id), None)
        closed_children: list[str] = []
        if index is not None:
            for child in reversed(chain[index + 1 :]):
                self._save(scope, child, {"status": BranchState.failed.value, "closed_ts": self._now(),
                                   "reason": f"parent {record.id} closed before this branch returned"})
                closed_children.append(child.id)
            del chain[index:]
        self._save(scope, record, {"status": state.value, "closed_ts": self._now(), "reason": reason, "message": message})
        return closed_children

    @staticmethod
    def _active_id(chain: list[Record]) -> str:
        return chain[-1].id if chain else SESSION

    def create(self, scope: Scope, session_id: str, request: CreateBranch) -> BranchCreated:
        with self._lock:
            self._expire_due(scope, session_id)
            chain = self._chain(scope, session_id)
            if len(chain) >= MAX_DEPTH:
                raise Conflict(
                    f"depth limit: {MAX_DEPTH} nested branches are open ({chain[-1].id} is the deepest); "
                    "return one before opening another"
                )
            total = self._stores.of(scope).count(COLLECTION, match={"session_id": session_id})
            if total >= MAX_BRANCHES_PER_SESSION:
                raise Conflict(f"this session already created {MAX_BRANCHES_PER_SESSION} branches (the limit)")
            now = self._now()
            parent = self._active_id(chain)
            prompt = self._scrubber.scrub(request.prompt).text if request.prompt else ""
            record = Record(
                id=str(uuid.uuid4()),
                payload={
                    **scope.fields(),
                    "session_id": session_id,
                    "parent": parent,
                    "depth": len(chain) + 1,
                    "description": self._scrubber.scrub(request.description).text,
                    "prompt": prompt,
                    "budget": request.budget,
                    # The instructions enter the branch's context, so they are its first spend.
                    "used": self._counter.count(prompt),
                    "status": BranchState.active.value,
                    "reason": "",
                    "message": "",
                    "children": [],
                    "created_ts": now,
                    "deadline_ts": now + request.timeout_seconds,
                    "closed_ts": 0.0,
                },
            )
            self._stores.of(scope).upsert(COLLECTION, [record])
            if chain:
                self._save(scope, chain[-1], {"children": [*chain[-1].payload["children"], record.id]})
            chain.append(record)
        memories = self._memories(scope, request) if request.with_memories else ""
        return BranchCreated(
            branch_id=record.id,
            session_id=session_id,
            parent=parent,
            depth=int(record.payload["depth"]),
            budget=request.budget,
            timeout_seconds=request.timeout_seconds,
            memories=memories,
        )

    def _memories(self, scope: Scope, request: CreateBranch) -> str:
        if self._search is None:
            return ""
        query = f"{request.description}\n{request.prompt or ''}"[:2000]
        hits = self._search(scope, SearchMemories(query=query, limit=3))
        lines = [f"- **{h.title}** — {h.description} (`{h.id}`)" for h in hits]
        text = "\n".join(["Relevant memories:", *lines]) if lines else ""
        return self._counter.truncate(text, int(request.budget * MEMORY_SHARE))

    def return_branch(self, scope: Scope, session_id: str, request: ReturnBranch) -> BranchReturned:
        with self._lock:
            self._expire_due(scope, session_id)
            record = self._load(scope, session_id, request.branch_id)
            state = BranchState(record.payload["status"])
            if state is not BranchState.active:
                reason = record.payload.get("reason") or ""
                raise Conflict(f"branch {record.id!r} is already {state.value}" + (f" ({reason})" if reason else ""))
            message = self._counter.truncate(self._scrubber.scrub(request.message).text, RETURN_MAX_TOKENS)
            closed = self._close(scope, session_id, record, BranchState.returned, "", message)
            chain = self._chain(scope, session_id)
        return BranchReturned(
            branch_id=record.id,
            status=BranchState.returned,
            message=message,
            message_tokens=self._counter.count(message),
            tokens_used=int(record.payload["used"]),
            closed_children=closed,
            active=self._active_id(chain),
        )

    def status(self, scope: Scope, session_id: str, request: BranchStatusRequest) -> BranchStatus:
        with self._lock:
            self._expire_due(scope, session_id)
            chain = self._chain(scope, session_id)
            if request.branch_id:
                record: Record | None = self._load(scope, session_id, request.branch_id)
            else:
                record = chain[-1] if chain else None
            return BranchStatus(branch=self._info(record) if record else None, active=self._active_id(chain))

    # -- budgets and deadlines ------------------------------------------------------------

    def in_branch(self, scope: Scope, session_id: str) -> bool:
        """Whether the session has an open branch (cheap: the chain is cached)."""
        with self._lock:
            return bool(self._chain(scope, session_id))

    def charge(self, scope: Scope, session_id: str, tokens: int) -> list[str]:
        """Charge a response to the session's active branch; returns notices for the agent."""
        with self._lock:
            notices = self._expire_due(scope, session_id)
            chain = self._chain(scope, session_id)
            if not chain:
                return notices
            branch = chain[-1]
            used = int(branch.payload["used"]) + tokens
            budget = int(branch.payload["budget"])
            self._save(scope, branch, {"used": used})
            if used >= budget:
                reason = f"budget exhausted: {used} of {budget} tokens"
                closed = self._close(scope, session_id, branch, BranchState.failed, reason)
                notices.append(
                    f"contextd: branch {branch.id} used {used} of its {budget} tokens and was force-returned as "
                    f"failed{' with its open children ' + ', '.join(closed) if closed else ''}; "
                    f"{self._active_id(chain)} is active again. Return earlier, or give branches a larger budget."
                )
            elif used >= WARN_AT * budget:
                notices.append(
                    f"contextd: branch {branch.id} has used {used} of {budget} tokens ({used * 100 // budget} %); "
                    "finish and call branch_return soon."
                )
            return notices

    def _expire_due(self, scope: Scope, session_id: str) -> list[str]:
        now = self._now()
        notices = []
        for branch in list(self._chain(scope, session_id)):
            if float(branch.payload["deadline_ts"]) <= now and branch.payload["status"] == BranchState.active.value:
                closed = self._close(scope, session_id, branch, BranchState.timed_out, "timeout")
                notices.append(
                    f"contextd: branch {branch.id} ran past its timeout and was force-returned as timed_out"
                    f"{' (with ' + ', '.join(closed) + ')' if closed else ''}; {self._active_id(self._chain(scope, session_id))} is active again."
                )
                break  # its nested branches closed with it
        return notices

    def sweep(self) -> int:
        """Time out overdue branches even when their session is silent (a background worker)."""
        overdue = self._sweeps.scan(
            COLLECTION, {"status": BranchState.active.value, "deadline_ts": Range(lte=self._now())}, limit=256
        )
        expired = 0
        with self._lock:
            for record in sorted(overdue, key=lambda r: r.payload["depth"]):
                scope = scope_of(record.payload)
                expired += len(self._expire_due(scope, record.payload["session_id"]))
        return expired

    def session_closed(self, scope: Scope, session_id: str, reason: str) -> None:
        """A session ended or expired: its open branches go with it (memories stay)."""
        with self._lock:
            chain = self._chain(scope, session_id)
            if chain:
                self._close(scope, session_id, chain[0], BranchState.failed, f"session {reason}")
            self._chains.pop(session_id, None)
