"""Agent configs: a system prompt, its skills, model settings, and what data it may touch."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from contextd_mcp.models.scope import ScopeLevel
from contextd_mcp.models.skill import Description, ItemId, Name, NameRef, check_name
from contextd_mcp.models.strict import Strict

SYSTEM_PROMPT_MAX = 16000
MODEL_MAX = 100
SKILLS_MAX = 32
TOOLS_MAX = 100
TOOL_NAME_MAX = 64
MAX_TOKENS_MAX = 200_000
TEMPERATURE_MAX = 2.0
LIST_LIMIT_MAX = 100


class Kind(StrEnum):
    """The kinds of data (and of action) an agent's access list speaks of."""

    memories = "memories"
    sessions = "sessions"
    checkpoints = "checkpoints"
    remediations = "remediations"
    policies = "policies"
    skills = "skills"
    agents = "agents"
    sandbox = "sandbox"  # running commands (bash); "write" runs, "read" inspects
    branches = "branches"


class Access(StrEnum):
    """``write`` includes ``read``."""

    read = "read"
    write = "write"


AccessMap = dict[Kind, Access]
FULL_ACCESS: AccessMap = {k: Access.write for k in Kind}

SystemPrompt = Annotated[str, StringConstraints(min_length=1, max_length=SYSTEM_PROMPT_MAX)]
Model = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MODEL_MAX)]
ToolName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TOOL_NAME_MAX)]
SkillRefs = Annotated[list[NameRef], Field(max_length=SKILLS_MAX, description="Skill names or ids; each must exist")]
ToolNames = Annotated[
    list[ToolName], Field(max_length=TOOLS_MAX, description="Only these tools may be called (omit: all its access allows)")
]
_ACCESS_DOC = (
    "Kind → 'read' or 'write' (write includes read), e.g. {\"memories\": \"write\"}; kinds left out are "
    "denied; omit for full access"
)
_LEVEL_DOC = "For this project (default), your team or your org; names are unique per level"
_REACH_DOC = "project (default): the agents that apply here; team / org: every one of that level"


def _unique(values: list[str] | None) -> list[str] | None:
    return None if values is None else list(dict.fromkeys(values))


class _Settings(Strict):
    collections_access: AccessMap | None = Field(default=None, description=_ACCESS_DOC)
    model_preference: Model | None = Field(default=None, description="Preferred model, e.g. 'claude-sonnet'")
    temperature: float | None = Field(default=None, ge=0.0, le=TEMPERATURE_MAX)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_MAX)


class CreateAgent(_Settings):
    name: Name = Field(description="Unique name, e.g. 'reviewer'; what CONTEXTD_AGENT / session_start(agent=) name")
    description: Description
    system_prompt: SystemPrompt
    skills: SkillRefs = Field(default_factory=list)
    tools_enabled: ToolNames | None = None
    scope: ScopeLevel = Field(default=ScopeLevel.project, description=_LEVEL_DOC)

    _name = field_validator("name")(check_name)
    _dedupe = field_validator("skills", "tools_enabled")(_unique)


class GetAgent(Strict):
    agent_id: ItemId | None = None
    name: NameRef | None = Field(default=None, description="Instead of agent_id; 'name@team' / 'name@org' picks a level")
    scope: ScopeLevel = Field(default=ScopeLevel.project, description=_REACH_DOC)

    @model_validator(mode="after")
    def _one_key(self) -> GetAgent:
        if (self.agent_id is None) == (self.name is None):
            raise ValueError("give exactly one of agent_id or name")
        return self


class ListAgents(Strict):
    scope: ScopeLevel = Field(default=ScopeLevel.project, description=_REACH_DOC)
    limit: int = Field(default=50, ge=1, le=LIST_LIMIT_MAX)


class UpdateAgent(_Settings):
    agent_id: ItemId
    name: Name | None = None
    description: Description | None = None
    system_prompt: SystemPrompt | None = None
    skills: SkillRefs | None = None
    tools_enabled: ToolNames | None = Field(default=None, description="Replaces the list; [] allows no tool")
    scope: ScopeLevel = Field(default=ScopeLevel.project, description=_REACH_DOC)

    _dedupe = field_validator("skills", "tools_enabled")(_unique)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)


class DeleteAgent(Strict):
    agent_id: ItemId
    scope: ScopeLevel = Field(default=ScopeLevel.project, description=_REACH_DOC)


class SkillRef(BaseModel):
    id: str
    name: str


class Agent(BaseModel):
    id: str
    name: str
    description: str
    system_prompt: str
    skills: list[SkillRef]
    missing_skills: list[str] = Field(description="Ids of skills deleted since they were referenced")
    collections_access: dict[str, str] = Field(description="Every kind it may touch → read / write")
    model_preference: str | None
    temperature: float | None
    max_tokens: int | None
    tools_enabled: list[str] | None = Field(description="null: every tool its access allows")
    level: ScopeLevel
    applies_here: bool
    created_at: str
    updated_at: str


class AgentSummary(BaseModel):
    id: str
    name: str
    description: str
    level: ScopeLevel
    skills: int
    collections_access: dict[str, str]


class AgentList(BaseModel):
    agents: list[AgentSummary]


class AgentAccess(BaseModel):
    """What the access guard needs of an agent: checked on every call, never cached."""

    id: str
    name: str
    access: AccessMap
    tools_enabled: list[str] | None

    def allows(self, kind: Kind, mode: Access) -> bool:
        granted = self.access.get(kind)
        return granted is Access.write or (granted is Access.read and mode is Access.read)
