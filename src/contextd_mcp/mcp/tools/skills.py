"""Skill tools: thin adapters over SkillService."""

from __future__ import annotations

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import Handler, ToolSpec, in_scope
from contextd_mcp.models.skill import (
    CreateSkill,
    Deleted,
    DeleteSkill,
    GetSkill,
    ListSkills,
    Skill,
    SkillList,
    UpdateSkill,
)
from contextd_mcp.services.skills import SkillService

_ID = "3b9d6a0e-5c1f-4e8a-b2d7-9f4c1e6a8b20"
_SKILL = {
    "id": _ID,
    "name": "review-migration",
    "description": "Review a database migration for locking and rollback safety.",
    "prompt_template": "Review the migration {{file}} for long locks and a safe rollback. Focus: {{focus?}}",
    "trigger": "before merging a schema migration",
    "steps": ["Find ALTER TABLE statements", "Check each has a down migration"],
    "tags": ["postgres", "migrations"],
    "arguments": [{"name": "file", "required": True}, {"name": "focus", "required": False}],
    "level": "team",
    "applies_here": True,
    "use_count": 3,
    "created_at": "2026-11-27T09:00:00+00:00",
    "updated_at": "2026-11-27T09:00:00+00:00",
}


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec(
        "skill_create",
        "Save a reusable prompt (a skill) for this project, team or org; also an MCP prompt.",
        CreateSkill,
        Skill,
        example={k: _SKILL[k] for k in ("name", "description", "prompt_template", "trigger", "steps", "tags")}
        | {"scope": "team"},
        example_result=_SKILL | {"use_count": 0},
    ),
    ToolSpec(
        "skill_get",
        "Fetch a skill by id or name (counted as a use unless read-only).",
        GetSkill,
        Skill,
        read_only=True,
        example={"name": "review-migration"},
        example_result=_SKILL,
    ),
    ToolSpec(
        "skill_list",
        "List the skills that apply here, or find them by meaning and name with query.",
        ListSkills,
        SkillList,
        read_only=True,
        idempotent=True,
        example={"query": "check a schema change before merge"},
        example_result={
            "skills": [
                {k: _SKILL[k] for k in ("id", "name", "description", "trigger", "tags", "level", "use_count")}
                | {"relevance": 0.62}
            ]
        },
    ),
    ToolSpec(
        "skill_update",
        "Change a skill's fields (omitted fields stay; trigger '' clears it).",
        UpdateSkill,
        Skill,
        idempotent=True,
        destructive=True,  # overwrites the fields it names
        example={"skill_id": _ID, "steps": ["Find ALTER TABLE statements", "Check lock timeouts"]},
        example_result=_SKILL | {"steps": ["Find ALTER TABLE statements", "Check lock timeouts"]},
    ),
    ToolSpec(
        "skill_delete",
        "Delete a skill.",
        DeleteSkill,
        Deleted,
        idempotent=True,
        destructive=True,
        example={"skill_id": _ID},
        example_result={"id": _ID, "deleted": True},
    ),
)


def skill_tools(service: SkillService) -> dict[str, Handler]:
    def get(caller: Caller, req: GetSkill) -> Skill:
        # A read-only identity writes nothing at all, the use counter included.
        return service.get(caller.scope, req, count_use=not caller.read_only)

    def list_(caller: Caller, req: ListSkills) -> SkillList:
        return SkillList(skills=service.find(caller.scope, req))

    return {
        "skill_create": in_scope(service.create),
        "skill_get": get,
        "skill_list": list_,
        "skill_update": in_scope(service.update),
        "skill_delete": in_scope(service.delete),
    }
