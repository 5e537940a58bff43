"""Agent configs: validated against the skills and tools that exist, owned by a level."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from contextd_mcp.errors import Conflict, InvalidInput, NotFound
from contextd_mcp.models.agent import (
    FULL_ACCESS,
    Access,
    Agent,
    AgentAccess,
    AgentSummary,
    CreateAgent,
    DeleteAgent,
    GetAgent,
    Kind,
    ListAgents,
    SkillRef,
    UpdateAgent,
)
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.models.skill import Deleted
from contextd_mcp.ports.scrubber import Scrubber
from contextd_mcp.ports.vector_store import CollectionSpec, Record, VectorStore
from contextd_mcp.services import levels
from contextd_mcp.services.skills import SkillService

COLLECTION = "agents"
SCAN_MAX = 2000


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _access_payload(access: dict[Kind, Access] | None) -> dict[str, str]:
    return {k.value: v.value for k, v in (FULL_ACCESS if access is None else access).items()}


def _access_of(payload: dict[str, Any]) -> dict[Kind, Access]:
    return {Kind(k): Access(v) for k, v in payload["collections_access"].items() if k in Kind.__members__}


class AgentService:
    def __init__(
        self,
        store: VectorStore,
        dim: int,
        model: str,
        scrubber: Scrubber,
        skills: SkillService,
        known_tools: Callable[[], Iterable[str]],
        now: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._dim = dim
        self._scrubber = scrubber
        self._skills = skills
        # The tool registry is built after the services; asked lazily, at validation time.
        self._known_tools = known_tools
        self._now = now
        self._lock = threading.Lock()
        # Created on first use: most connections never touch this kind, and each
        # collection costs its own files and about half a second to create.
        self._ensured = False
        self._spec = CollectionSpec(
            name=COLLECTION, dim=dim, model=model, keyword_fields=("tenant", "team", "project", "level", "name_key")
        )

    def _col(self) -> str:
        if not self._ensured:
            self._store.ensure(self._spec)  # idempotent, and locked inside the store
            self._ensured = True
        return COLLECTION

    # -- reads ---------------------------------------------------------------------------

    def _load(self, scope: Scope, agent_id: str, reach: ScopeLevel) -> Record:
        found = self._store.get(self._col(), [agent_id], levels.visible_where(scope, reach))
        if not found:
            raise NotFound("agent", agent_id)
        return found[0]

    def resolve(self, scope: Scope, ref: str, reach: ScopeLevel = ScopeLevel.project) -> Record:
        """An agent by name ('reviewer' or 'reviewer@org') or id; the one closest to the caller wins."""
        ref = ref.strip()
        try:
            uuid.UUID(ref)
        except ValueError:
            pass
        else:
            return self._load(scope, ref, reach)
        name, level = levels.split_ref(ref)
        where: dict[str, Any] = {**levels.visible_where(scope, reach), "name_key": name.lower()}
        if level is not None:
            where["level"] = level.value
        candidates = self._store.scan(self._col(), where, limit=50)
        if not candidates:
            raise NotFound("agent", ref)
        candidates.sort(key=lambda r: (not levels.applies_to(r.payload, scope), levels.specificity(r.payload)))
        first = candidates[0]
        if len(candidates) > 1 and not levels.applies_to(first.payload, scope):
            same = [c for c in candidates if levels.specificity(c.payload) == levels.specificity(first.payload)]
            if len(same) > 1:
                raise InvalidInput("name", f"{len(same)} agents of your {reach.value} are named {name!r}; use agent_id")
        return first

    def access(self, scope: Scope, ref: str) -> AgentAccess:
        """What an agent that applies to the caller may do (for the access guard)."""
        record = self.resolve(scope, ref)
        p = record.payload
        return AgentAccess(id=record.id, name=p["name"], access=_access_of(p), tools_enabled=p.get("tools_enabled"))

    def get(self, scope: Scope, request: GetAgent) -> Agent:
        if request.agent_id is not None:
            record = self._load(scope, request.agent_id, request.scope)
        else:
            assert request.name is not None
            record = self.resolve(scope, request.name, request.scope)
        return self._agent(record, scope)

    def find(self, scope: Scope, request: ListAgents) -> list[AgentSummary]:
        records = self._store.scan(self._col(), levels.visible_where(scope, request.scope), limit=SCAN_MAX)
        records.sort(key=lambda r: (levels.specificity(r.payload), r.payload["name_key"]))
        return [
            AgentSummary(
                id=r.id,
                name=r.payload["name"],
                description=r.payload["description"],
                level=levels.level_of(r.payload),
                skills=len(r.payload["skills"]),
                collections_access=dict(r.payload["collections_access"]),
            )
            for r in records[: request.limit]
        ]

    # -- writes --------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return self._scrubber.scrub(text).text

    def _skill_ids(self, scope: Scope, refs: list[str]) -> list[str]:
        ids = []
        for i, ref in enumerate(refs):
            try:
                ids.append(self._skills.resolve_id_or_name(scope, ref).id)
            except NotFound:
                raise InvalidInput(f"skills.{i}", f"no skill {ref!r} applies here (create it first)") from None
        return list(dict.fromkeys(ids))

    def _check_tools(self, tools: list[str] | None) -> list[str] | None:
        if tools is None:
            return None
        known = set(self._known_tools())
        for i, name in enumerate(tools):
            if name not in known:
                raise InvalidInput(f"tools_enabled.{i}", f"no tool named {name[:64]!r}")
        return tools

    def _check_unique(self, owner: dict[str, str], name: str, except_id: str | None = None) -> None:
        clash = self._store.scan(self._col(), {**owner, "name_key": name.lower()}, limit=2)
        if any(r.id != except_id for r in clash):
            raise Conflict(f"an agent named {name!r} already exists at this level; choose another name or update it")

    def create(self, scope: Scope, request: CreateAgent) -> Agent:
        owner = levels.owner_fields(scope, request.scope)
        now = self._now()
        payload: dict[str, Any] = {
            **owner,
            "level": request.scope.value,
            "origin_team": scope.team,
            "origin_project": scope.project,
            "name": request.name,
            "name_key": request.name.lower(),
            "description": self._scrub(request.description),
            "system_prompt": self._scrub(request.system_prompt),
            "skills": self._skill_ids(scope, request.skills),
            "collections_access": _access_payload(request.collections_access),
            "model_preference": request.model_preference,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "tools_enabled": self._check_tools(request.tools_enabled),
            "created_ts": now,
            "updated_ts": now,
        }
        record = Record(str(uuid.uuid4()), payload)
        with self._lock:
            self._check_unique(owner, request.name)
            self._store.upsert(self._col(), [record])
        return self._agent(record, scope)

    def update(self, scope: Scope, request: UpdateAgent) -> Agent:
        with self._lock:
            record = self._load(scope, request.agent_id, request.scope)
            p = dict(record.payload)
            changes: dict[str, Any] = {}
            if request.name is not None and request.name != p["name"]:
                owner = {k: p[k] for k in ("tenant", "team", "project")}
                self._check_unique(owner, request.name, except_id=record.id)
                changes.update(name=request.name, name_key=request.name.lower())
            if request.description is not None:
                changes["description"] = self._scrub(request.description)
            if request.system_prompt is not None:
                changes["system_prompt"] = self._scrub(request.system_prompt)
            if request.skills is not None:
                changes["skills"] = self._skill_ids(scope, request.skills)
            if request.collections_access is not None:
                changes["collections_access"] = _access_payload(request.collections_access)
            if request.tools_enabled is not None:
                changes["tools_enabled"] = self._check_tools(request.tools_enabled)
            for key in ("model_preference", "temperature", "max_tokens"):
                value = getattr(request, key)
                if value is not None:
                    changes[key] = value
            if changes:
                changes["updated_ts"] = self._now()
                self._store.set_fields(self._col(), record.id, changes)
                p.update(changes)
        return self._agent(Record(record.id, p), scope)

    def delete(self, scope: Scope, request: DeleteAgent) -> Deleted:
        with self._lock:
            record = self._load(scope, request.agent_id, request.scope)
            self._store.delete(self._col(), [record.id])
        return Deleted(id=record.id)

    # -- helpers -------------------------------------------------------------------------

    def _agent(self, record: Record, scope: Scope) -> Agent:
        p = record.payload
        found = self._skills.names_by_id(p["tenant"], p["skills"])
        return Agent(
            id=record.id,
            name=p["name"],
            description=p["description"],
            system_prompt=p["system_prompt"],
            skills=[SkillRef(id=i, name=found[i]) for i in p["skills"] if i in found],
            missing_skills=[i for i in p["skills"] if i not in found],
            collections_access=dict(p["collections_access"]),
            model_preference=p.get("model_preference"),
            temperature=p.get("temperature"),
            max_tokens=p.get("max_tokens"),
            tools_enabled=p.get("tools_enabled"),
            level=levels.level_of(p),
            applies_here=levels.applies_to(p, scope),
            created_at=_iso(p["created_ts"]),
            updated_at=_iso(p["updated_ts"]),
        )

    def counts(self, scope: Scope | None = None) -> int:
        return self._store.count(self._col(), {"tenant": scope.tenant} if scope else {})
