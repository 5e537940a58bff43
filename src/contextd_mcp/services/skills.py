"""Skills: create, find (by name and by meaning), render, count uses.

Usage counts: a use is a skill pulled in order to apply it, i.e. ``skill_get`` and an MCP
``prompts/get``. Listing and searching are not uses.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from contextd_mcp.errors import Conflict, InvalidInput, NotFound
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.models.skill import (
    ARGUMENT_VALUE_MAX,
    NAME_MAX,
    CreateSkill,
    DeleteSkill,
    Deleted,
    GetSkill,
    ListSkills,
    Skill,
    SkillArgument,
    SkillSummary,
    UpdateSkill,
)
from contextd_mcp.ports.embedder import Embedder
from contextd_mcp.ports.scrubber import Scrubber
from contextd_mcp.ports.vector_store import CollectionSpec, Record, VectorStore
from contextd_mcp.services import levels, templates

COLLECTION = "skills"
# A tenant's skills are few (tens to hundreds); name matching scans up to this many.
SCAN_MAX = 2000
_WORDS = re.compile(r"[^a-z0-9]+")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _words(text: str) -> str:
    return " ".join(_WORDS.split(text.lower())).strip()


def _embed_text(p: Mapping[str, Any]) -> str:
    return ". ".join(x for x in (p["name"].replace("-", " "), p["description"], p.get("trigger") or "") if x)


class SkillService:
    def __init__(
        self, store: VectorStore, embedder: Embedder, scrubber: Scrubber, now: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._scrubber = scrubber
        self._now = now
        # Name uniqueness and use counts are read-modify-write; this process owns the store.
        self._lock = threading.Lock()
        # Created on first use: most connections never touch this kind, and each
        # collection costs its own files and about half a second to create.
        self._ensured = False
        self._spec = CollectionSpec(
            name=COLLECTION,
            dim=embedder.dim,
            model=embedder.model_name,
            keyword_fields=("tenant", "team", "project", "level", "name_key", "tags"),
            float_fields=("created_ts",),
        )

    def _col(self) -> str:
        if not self._ensured:
            self._store.ensure(self._spec)  # idempotent, and locked inside the store
            self._ensured = True
        return COLLECTION

    # -- reads ---------------------------------------------------------------------------

    def _load(self, scope: Scope, skill_id: str, reach: ScopeLevel) -> Record:
        found = self._store.get(self._col(), [skill_id], levels.visible_where(scope, reach))
        if not found:
            raise NotFound("skill", skill_id)
        return found[0]

    def visible(self, scope: Scope, reach: ScopeLevel = ScopeLevel.project, tags: list[str] | None = None) -> list[Record]:
        where: dict[str, Any] = levels.visible_where(scope, reach)
        if tags:
            where["tags"] = list(tags)
        return self._store.scan(self._col(), where, limit=SCAN_MAX)

    def resolve(self, scope: Scope, ref: str, reach: ScopeLevel = ScopeLevel.project) -> Record:
        """A skill by name ('review', or 'review@team'): the one closest to the caller wins."""
        name, level = levels.split_ref(ref.strip())
        where: dict[str, Any] = {**levels.visible_where(scope, reach), "name_key": name.lower()}
        if level is not None:
            where["level"] = level.value
        candidates = self._store.scan(self._col(), where, limit=50)
        if not candidates:
            raise NotFound("skill", ref)
        candidates.sort(key=lambda r: (not levels.applies_to(r.payload, scope), levels.specificity(r.payload)))
        first = candidates[0]
        if len(candidates) > 1 and not levels.applies_to(first.payload, scope):
            same = [c for c in candidates if levels.specificity(c.payload) == levels.specificity(first.payload)]
            if len(same) > 1:
                raise InvalidInput("name", f"{len(same)} skills of your {reach.value} are named {name!r}; use skill_id")
        return first

    def resolve_id_or_name(self, scope: Scope, ref: str) -> Record:
        """For references from agent configs: an id or a name, among the skills that apply here."""
        try:
            uuid.UUID(ref)
        except ValueError:
            return self.resolve(scope, ref)
        return self._load(scope, ref, ScopeLevel.project)

    def names_by_id(self, tenant: str, ids: list[str]) -> dict[str, str]:
        """Current names of skills an agent references (still confined to the agent's tenant)."""
        if not ids:
            return {}
        return {r.id: r.payload["name"] for r in self._store.get(self._col(), ids, {"tenant": tenant})}

    def get(self, scope: Scope, request: GetSkill) -> Skill:
        if request.skill_id is not None:
            record = self._load(scope, request.skill_id, request.scope)
        else:
            assert request.name is not None
            record = self.resolve(scope, request.name, request.scope)
        self._count_use(record.id)
        return self._skill(record, scope, extra_use=1)

    def find(self, scope: Scope, request: ListSkills) -> list[SkillSummary]:
        records = self.visible(scope, request.scope, request.tags)
        if request.query is None:
            records.sort(key=lambda r: (levels.specificity(r.payload), r.payload["name_key"]))
            return [self._summary(r) for r in records[: request.limit]]
        wanted = set(_words(request.query).split())
        ranked: dict[str, SkillSummary] = {}
        for r in records:  # by name first: a user who types the name (or part of it) means that skill
            name = set(_words(r.payload["name"]).split())
            if name and wanted and (name <= wanted or wanted <= name):
                ranked[r.id] = self._summary(r, relevance=1.0)
        where: dict[str, Any] = levels.visible_where(scope, request.scope)
        if request.tags:
            where["tags"] = list(request.tags)
        vector = self._embedder.embed_query(request.query)
        for hit in self._store.search(self._col(), vector, where, limit=request.limit):
            if hit.id not in ranked:
                ranked[hit.id] = self._summary(Record(hit.id, hit.payload), relevance=round(max(0.0, hit.score), 4))
        ordered = sorted(ranked.values(), key=lambda s: s.relevance or 0.0, reverse=True)
        return ordered[: request.limit]

    # -- writes --------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return self._scrubber.scrub(text).text

    def _check_unique(self, owner: dict[str, str], name: str, except_id: str | None = None) -> None:
        clash = self._store.scan(self._col(), {**owner, "name_key": name.lower()}, limit=2)
        if any(r.id != except_id for r in clash):
            raise Conflict(f"a skill named {name!r} already exists at this level; choose another name or update it")

    def create(self, scope: Scope, request: CreateSkill) -> Skill:
        fields = {
            "description": self._scrub(request.description),
            "prompt_template": self._scrub(request.prompt_template),
            "trigger": self._scrub(request.trigger) if request.trigger else None,
            "steps": [self._scrub(s) for s in request.steps],
        }
        arguments = self._arguments(fields["prompt_template"], fields["steps"])
        owner = levels.owner_fields(scope, request.scope)
        now = self._now()
        payload: dict[str, Any] = {
            **owner,
            "level": request.scope.value,
            "origin_team": scope.team,
            "origin_project": scope.project,
            "name": request.name,
            "name_key": request.name.lower(),
            **fields,
            "tags": list(request.tags),
            "arguments": arguments,
            "use_count": 0,
            "created_ts": now,
            "updated_ts": now,
        }
        record = Record(str(uuid.uuid4()), payload, self._embedder.embed_documents([_embed_text(payload)])[0])
        with self._lock:
            self._check_unique(owner, request.name)
            self._store.upsert(self._col(), [record])
        return self._skill(record, scope)

    def update(self, scope: Scope, request: UpdateSkill) -> Skill:
        with self._lock:
            record = self._load(scope, request.skill_id, request.scope)
            p = dict(record.payload)
            changes: dict[str, Any] = {}
            if request.name is not None and request.name != p["name"]:
                owner = {k: p[k] for k in ("tenant", "team", "project")}
                self._check_unique(owner, request.name, except_id=record.id)
                changes.update(name=request.name, name_key=request.name.lower())
            if request.description is not None:
                changes["description"] = self._scrub(request.description)
            if request.prompt_template is not None:
                changes["prompt_template"] = self._scrub(request.prompt_template)
            if request.trigger is not None:
                changes["trigger"] = self._scrub(request.trigger) or None
            if request.steps is not None:
                changes["steps"] = [self._scrub(s) for s in request.steps]
            if request.tags is not None:
                changes["tags"] = list(request.tags)
            if not changes:
                return self._skill(record, scope)
            p.update(changes)
            p["arguments"] = self._arguments(p["prompt_template"], p["steps"])
            p["updated_ts"] = self._now()
            vector = None
            if {"name", "description", "trigger"} & set(changes):
                vector = self._embedder.embed_documents([_embed_text(p)])[0]
            if vector is None:
                self._store.set_fields(self._col(), record.id, {**changes, "arguments": p["arguments"], "updated_ts": p["updated_ts"]})
            else:
                self._store.upsert(self._col(), [Record(record.id, p, vector)])
        return self._skill(Record(record.id, p), scope)

    def delete(self, scope: Scope, request: DeleteSkill) -> Deleted:
        with self._lock:
            record = self._load(scope, request.skill_id, request.scope)
            self._store.delete(self._col(), [record.id])
        return Deleted(id=record.id)

    # -- prompts -------------------------------------------------------------------------

    def render(self, scope: Scope, ref: str, arguments: Mapping[str, str]) -> tuple[Record, str]:
        """Renders a skill that applies to the caller (prompts/get) and counts the use."""
        if len(ref) > NAME_MAX + 8:  # prompts/get names are not schema-checked; never echo a long one
            raise NotFound("skill", ref[:40] + "…")
        record = self.resolve(scope, ref)
        p = record.payload
        declared = [templates.Placeholder(a["name"], a["required"]) for a in p["arguments"]]
        templates.check_arguments(p["name"], declared, arguments)
        for key, value in arguments.items():
            if len(value) > ARGUMENT_VALUE_MAX:
                raise InvalidInput(f"arguments.{key}", f"at most {ARGUMENT_VALUE_MAX} characters")
        text = templates.render(p["prompt_template"], arguments)
        if p["steps"]:
            numbered = [f"{i}. {templates.render(s, arguments, 'steps')}" for i, s in enumerate(p["steps"], 1)]
            text += "\n\nSteps:\n" + "\n".join(numbered)
        self._count_use(record.id)
        return record, text

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _arguments(template: str, steps: list[str]) -> list[dict[str, Any]]:
        texts = {"prompt_template": template, **{f"steps.{i}": s for i, s in enumerate(steps)}}
        return [{"name": p.name, "required": p.required} for p in templates.placeholders(texts)]

    def _count_use(self, skill_id: str) -> None:
        with self._lock:
            found = self._store.get(self._col(), [skill_id], {})
            if found:
                count = int(found[0].payload.get("use_count", 0)) + 1
                self._store.set_fields(self._col(), skill_id, {"use_count": count, "last_used_ts": self._now()})

    def _skill(self, record: Record, scope: Scope, extra_use: int = 0) -> Skill:
        p = record.payload
        return Skill(
            id=record.id,
            name=p["name"],
            description=p["description"],
            prompt_template=p["prompt_template"],
            trigger=p.get("trigger"),
            steps=list(p["steps"]),
            tags=list(p.get("tags", [])),
            arguments=[SkillArgument(**a) for a in p["arguments"]],
            level=levels.level_of(p),
            applies_here=levels.applies_to(p, scope),
            use_count=int(p.get("use_count", 0)) + extra_use,
            created_at=_iso(p["created_ts"]),
            updated_at=_iso(p["updated_ts"]),
        )

    @staticmethod
    def _summary(record: Record, relevance: float | None = None) -> SkillSummary:
        p = record.payload
        return SkillSummary(
            id=record.id,
            name=p["name"],
            description=p["description"],
            trigger=p.get("trigger"),
            tags=list(p.get("tags", [])),
            level=levels.level_of(p),
            use_count=int(p.get("use_count", 0)),
            relevance=relevance,
        )

    def counts(self, scope: Scope | None = None) -> int:
        return self._store.count(self._col(), {"tenant": scope.tenant} if scope else {})
