"""Skills: named, reusable prompt templates, owned by a project, a team or the whole org."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from contextd_mcp import limits
from contextd_mcp.models.requests import Tags, _clean_tags
from contextd_mcp.models.scope import ScopeLevel
from contextd_mcp.models.strict import Strict

# Names are what a user types after "/" in a client's prompt menu: no spaces, no '@'
# ('@' qualifies a name by level when two levels share it, e.g. "review@org").
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_MAX = 64
TEMPLATE_MAX = 8000
TRIGGER_MAX = 500
STEP_MAX = 500
STEPS_MAX = 20
LIST_LIMIT_MAX = 50
ARGUMENT_VALUE_MAX = 4000

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.DESCRIPTION_MAX)]
Template = Annotated[str, StringConstraints(min_length=1, max_length=TEMPLATE_MAX)]
Trigger = Annotated[str, StringConstraints(strip_whitespace=True, max_length=TRIGGER_MAX)]
Step = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=STEP_MAX)]
Steps = Annotated[list[Step], Field(max_length=STEPS_MAX, description="Ordered steps; may use placeholders too")]
ItemId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.ID_MAX)]
# A name as typed by a caller: a bare name, or one qualified by level ("review@team").
NameRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX + 8)]


def check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


_LEVEL_DOC = "For this project (default), your team or your org; names are unique per level"
_REACH_DOC = "project (default): the skills that apply here; team / org: every one of that level"


class CreateSkill(Strict):
    name: Name = Field(description="Short unique name, e.g. 'review-migration'")
    description: Description = Field(description="What the skill does, one or two sentences")
    prompt_template: Template = Field(
        description="The prompt. Placeholders: {{arg}} required, {{arg?}} optional; \\{{ for literal braces"
    )
    trigger: Trigger | None = Field(default=None, description="When to use it, e.g. 'before merging a migration'")
    steps: Steps = Field(default_factory=list)
    tags: Tags = Field(default_factory=list)
    scope: ScopeLevel = Field(default=ScopeLevel.project, description=_LEVEL_DOC)

    _name = field_validator("name")(check_name)
    _tags = field_validator("tags")(_clean_tags)


class GetSkill(Strict):
    skill_id: ItemId | None = None
    name: NameRef | None = Field(default=None, description="Instead of skill_id; 'name@team' / 'name@org' picks a level")
    scope: ScopeLevel = Field(default=ScopeLevel.project, description=_REACH_DOC)

    @model_validator(mode="after")
    def _one_key(self) -> GetSkill:
        if (self.skill_id is None) == (self.name is None):
            raise ValueError("give exactly one of skill_id or name")
        return self


class ListSkills(Strict):
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.QUERY_MAX)] | None = (
        Field(default=None, description="Find by meaning (and by name); omit to list by name")
    )
    scope: ScopeLevel = Field(default=ScopeLevel.project, description=_REACH_DOC)
    tags: Tags = Field(default_factory=list, description="Only skills carrying any of these tags")
    limit: int = Field(default=20, ge=1, le=LIST_LIMIT_MAX)

    _tags = field_validator("tags")(_clean_tags)


class UpdateSkill(Strict):
    skill_id: ItemId
    name: Name | None = None
    description: Description | None = None
    prompt_template: Template | None = None
    trigger: Trigger | None = None
    steps: Steps | None = None
    tags: Tags | None = None
    scope: ScopeLevel = Field(default=ScopeLevel.project, description=_REACH_DOC)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _clean_tags(value)


class DeleteSkill(Strict):
    skill_id: ItemId
    scope: ScopeLevel = Field(default=ScopeLevel.project, description=_REACH_DOC)


class SkillArgument(BaseModel):
    name: str
    required: bool


class Skill(BaseModel):
    id: str
    name: str
    description: str
    prompt_template: str
    trigger: str | None
    steps: list[str]
    tags: list[str]
    arguments: list[SkillArgument] = Field(description="Placeholders of the template and steps")
    level: ScopeLevel = Field(description="Who the skill is for: project, team or org")
    applies_here: bool = Field(description="False for another project's skill found by a wider scope")
    use_count: int = Field(description="Times fetched with skill_get or rendered as a prompt")
    created_at: str
    updated_at: str


class SkillSummary(BaseModel):
    id: str
    name: str
    description: str
    trigger: str | None
    tags: list[str]
    level: ScopeLevel
    use_count: int
    relevance: float | None = Field(default=None, description="Similarity to the query, 0..1 (name matches: 1)")


class SkillList(BaseModel):
    skills: list[SkillSummary]


class Deleted(BaseModel):
    id: str
    deleted: bool = True
