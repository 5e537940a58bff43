"""Skills: create, find (by name and by meaning), render, count uses.

Usage counts: a use is a skill pulled in order to apply it, i.e. ``skill_get`` and an MCP
``prompts/get``. Listing and searching are not uses. A caller that may not write (a read-only
token) still reads, but is not counted: ``count_use=False`` leaves the store untouched.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from contextd_mcp.errors import InvalidInput, NotFound
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
from contextd_mcp.ports.vector_store import Record
from contextd_mcp.services import levels, templates
from contextd_mcp.services.backing import Backing
from contextd_mcp.services.named_records import NamedRecords, by_level_then_name
from contextd_mcp.services.record_fields import iso

COLLECTION = "skills"
_WORDS = re.compile(r"[^a-z0-9]+")


def _words(text: str) -> str:
    return " ".join(_WORDS.split(text.lower())).strip()


def _embed_text(p: Mapping[str, Any]) -> str:
    return ". ".join(x for x in (p["name"].replace("-", " "), p["description"], p.get("trigger") or "") if x)


def _tagged(tags: list[str] | None) -> dict[str, Any]:
    return {"tags": list(tags)} if tags else {}


class SkillService:
    def __init__(self, backing: Backing, embedder: Embedder) -> None:
        self._embedder = embedder
        self._now = backing.now
        spec = backing.spec(
            COLLECTION,
            keyword_fields=("tenant", "team", "project", "level", "name_key", "tags"),
            float_fields=("created_ts",),
        )
        self._records = NamedRecords(backing, spec, kind="skill", a_kind="a skill")

    def _col(self) -> str:
        return self._records.collection()

    # -- reads ---------------------------------------------------------------------------

    def visible(self, scope: Scope, reach: ScopeLevel = ScopeLevel.project, tags: list[str] | None = None) -> list[Record]:
        return self._records.visible(scope, reach, _tagged(tags))

    def resolve(self, scope: Scope, ref: str, reach: ScopeLevel = ScopeLevel.project) -> Record:
        """A skill by name ('review', or 'review@team'): the one closest to the caller wins."""
        return self._records.resolve(scope, ref, reach)

    def resolve_id_or_name(self, scope: Scope, ref: str) -> Record:
        """For references from agent configs: an id or a name, among the skills that apply here."""
        return self._records.resolve_id_or_name(scope, ref, ScopeLevel.project)

    def names_by_id(self, scope: Scope, ids: list[str]) -> dict[str, str]:
        """Current names of skills an agent references (confined to the caller's tenant)."""
        if not ids:
            return {}
        return {r.id: r.payload["name"] for r in self._records.store(scope).get(self._col(), ids, ScopeLevel.org)}

    def get(self, scope: Scope, request: GetSkill, count_use: bool = True) -> Skill:
        if request.skill_id is not None:
            record = self._records.load(scope, request.skill_id, request.scope)
        else:
            assert request.name is not None
            record = self.resolve(scope, request.name, request.scope)
        if count_use:
            self._count_use(scope, record.id, request.scope)
        return self._skill(record, scope, extra_use=int(count_use))

    def find(self, scope: Scope, request: ListSkills) -> list[SkillSummary]:
        records = self.visible(scope, request.scope, request.tags)
        if request.query is None:
            records.sort(key=by_level_then_name)
            return [self._summary(r) for r in records[: request.limit]]
        wanted = set(_words(request.query).split())
        ranked: dict[str, SkillSummary] = {}
        for r in records:  # by name first: a user who types the name (or part of it) means that skill
            name = set(_words(r.payload["name"]).split())
            if name and wanted and (name <= wanted or wanted <= name):
                ranked[r.id] = self._summary(r, relevance=1.0)
        vector = self._embedder.embed_query(request.query)
        store = self._records.store(scope)
        for hit in store.search(self._col(), vector, request.limit, request.scope, _tagged(request.tags)):
            if hit.id not in ranked:
                ranked[hit.id] = self._summary(Record(hit.id, hit.payload), relevance=round(max(0.0, hit.score), 4))
        ordered = sorted(ranked.values(), key=lambda s: s.relevance or 0.0, reverse=True)
        return ordered[: request.limit]

    # -- writes --------------------------------------------------------------------------

    def create(self, scope: Scope, request: CreateSkill) -> Skill:
        scrub = self._records.scrub
        fields = {
            "description": scrub(request.description),
            "prompt_template": scrub(request.prompt_template),
            "trigger": scrub(request.trigger) if request.trigger else None,
            "steps": [scrub(s) for s in request.steps],
        }
        arguments = self._arguments(scrub(request.prompt_template), [scrub(s) for s in request.steps])
        payload = self._records.new_payload(
            scope, request.scope, request.name, {**fields, "tags": list(request.tags), "arguments": arguments, "use_count": 0}
        )
        record = Record(str(uuid.uuid4()), payload, self._embedder.embed_documents([_embed_text(payload)])[0])
        self._records.insert(scope, record)
        return self._skill(record, scope)

    def update(self, scope: Scope, request: UpdateSkill) -> Skill:
        with self._records.lock:
            record = self._records.load(scope, request.skill_id, request.scope)
            p = dict(record.payload)
            changes = self._records.changes(scope, record, request, "description", "prompt_template", "trigger", "steps")
            if "trigger" in changes:
                changes["trigger"] = changes["trigger"] or None  # an empty trigger clears it
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
            store = self._records.store(scope)
            if vector is None:
                fields = {**changes, "arguments": p["arguments"], "updated_ts": p["updated_ts"]}
                store.set_fields(self._col(), record.id, fields, request.scope)
            else:
                store.upsert(self._col(), [Record(record.id, p, vector)], request.scope)
        return self._skill(Record(record.id, p), scope)

    def delete(self, scope: Scope, request: DeleteSkill) -> Deleted:
        return self._records.delete(scope, request.skill_id, request.scope)

    # -- prompts -------------------------------------------------------------------------

    def render(
        self, scope: Scope, ref: str, arguments: Mapping[str, str], count_use: bool = True
    ) -> tuple[Record, str]:
        """Renders a skill that applies to the caller (prompts/get) and counts the use (``count_use``)."""
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
        if count_use:
            self._count_use(scope, record.id, ScopeLevel.project)
        return record, text

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _arguments(template: str, steps: list[str]) -> list[dict[str, Any]]:
        texts = {"prompt_template": template, **{f"steps.{i}": s for i, s in enumerate(steps)}}
        return [{"name": p.name, "required": p.required} for p in templates.placeholders(texts)]

    def _count_use(self, scope: Scope, skill_id: str, reach: ScopeLevel) -> None:
        store = self._records.store(scope)
        with self._records.lock:
            found = store.get(self._col(), [skill_id], reach)
            if found:
                count = int(found[0].payload.get("use_count", 0)) + 1
                store.set_fields(self._col(), skill_id, {"use_count": count, "last_used_ts": self._now()}, reach)

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
            created_at=iso(p["created_ts"]),
            updated_at=iso(p["updated_ts"]),
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

    def counts(self, scope: Scope) -> int:
        return self._records.count(scope)
