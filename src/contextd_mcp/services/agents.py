"""Agent configs: validated against the skills and tools that exist, owned by a level."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from contextd_mcp.errors import InvalidInput, NotFound
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
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services import levels
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.named_records import NamedRecords, by_level_then_name
from contextd_mcp.services.skills import SkillService
from contextd_mcp.services.record_fields import iso

COLLECTION = "agents"


def _access_payload(access: dict[Kind, Access] | None) -> dict[str, str]:
    return {k.value: v.value for k, v in (FULL_ACCESS if access is None else access).items()}


def _access_of(payload: dict[str, Any]) -> dict[Kind, Access]:
    return {Kind(k): Access(v) for k, v in payload["collections_access"].items() if k in Kind.__members__}


class AgentService:
    def __init__(
        self,
        backing: Backing,
        skills: SkillService,
        known_tools: Callable[[], Iterable[str]],
    ) -> None:
        self._skills = skills
        # The tool registry is built after the services; asked lazily, at validation time.
        self._known_tools = known_tools
        self._now = backing.now
        spec = backing.spec(COLLECTION, keyword_fields=("tenant", "team", "project", "level", "name_key"))
        self._records = NamedRecords(backing, spec, kind="agent", a_kind="an agent")

    # -- reads ---------------------------------------------------------------------------

    def resolve(self, scope: Scope, ref: str, reach: ScopeLevel = ScopeLevel.project) -> Record:
        """An agent by name ('reviewer' or 'reviewer@org') or id; the one closest to the caller wins."""
        return self._records.resolve_id_or_name(scope, ref.strip(), reach)

    def access(self, scope: Scope, ref: str, reach: ScopeLevel = ScopeLevel.project) -> AgentAccess:
        """What an agent the caller sees at ``reach`` may do (for the access guard)."""
        record = self.resolve(scope, ref, reach)
        p = record.payload
        return AgentAccess(id=record.id, name=p["name"], access=_access_of(p), tools_enabled=p.get("tools_enabled"))

    def get(self, scope: Scope, request: GetAgent) -> Agent:
        if request.agent_id is not None:
            record = self._records.load(scope, request.agent_id, request.scope)
        else:
            assert request.name is not None
            record = self.resolve(scope, request.name, request.scope)
        return self._agent(record, scope)

    def find(self, scope: Scope, request: ListAgents) -> list[AgentSummary]:
        records = self._records.visible(scope, request.scope)
        records.sort(key=by_level_then_name)
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

    def create(self, scope: Scope, request: CreateAgent) -> Agent:
        fields = {
            "description": self._records.scrub(request.description),
            "system_prompt": self._records.scrub(request.system_prompt),
            "skills": self._skill_ids(scope, request.skills),
            "collections_access": _access_payload(request.collections_access),
            "model_preference": request.model_preference,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "tools_enabled": self._check_tools(request.tools_enabled),
        }
        record = Record(str(uuid.uuid4()), self._records.new_payload(scope, request.scope, request.name, fields))
        self._records.insert(scope, record)
        return self._agent(record, scope)

    def update(self, scope: Scope, request: UpdateAgent) -> Agent:
        with self._records.lock:
            record = self._records.load(scope, request.agent_id, request.scope)
            p = dict(record.payload)
            changes = self._records.changes(scope, record, request, "description", "system_prompt")
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
                self._records.store(scope).set_fields(self._records.collection(), record.id, changes, request.scope)
                p.update(changes)
        return self._agent(Record(record.id, p), scope)

    def delete(self, scope: Scope, request: DeleteAgent) -> Deleted:
        return self._records.delete(scope, request.agent_id, request.scope)

    # -- helpers -------------------------------------------------------------------------

    def _agent(self, record: Record, scope: Scope) -> Agent:
        p = record.payload
        found = self._skills.names_by_id(scope, p["skills"])
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
            created_at=iso(p["created_ts"]),
            updated_at=iso(p["updated_ts"]),
        )

    def counts(self, scope: Scope) -> int:
        return self._records.count(scope)
