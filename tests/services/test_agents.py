"""AgentService on the real store (no MCP): validation, levels, the access it reports."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contextd_mcp.container import Container
from contextd_mcp.errors import Conflict, InvalidInput, NotFound
from contextd_mcp.models.agent import Access, CreateAgent, DeleteAgent, GetAgent, Kind, ListAgents, UpdateAgent
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.models.skill import CreateSkill, DeleteSkill
from contextd_mcp.services.agents import AgentService

API = Scope(tenant="acme", team="core", project="api")
WEB = Scope(tenant="acme", team="core", project="web")
GLOBEX = Scope(tenant="globex", team="core", project="api")


@pytest.fixture
def agents(container: Container) -> AgentService:
    return container.agents


def agent(name: str, **extra: object) -> CreateAgent:
    fields = {"name": name, "description": "d", "system_prompt": "s", **extra}
    return CreateAgent(**fields)  # type: ignore[arg-type]


def test_model_bounds() -> None:
    for bad in ({"temperature": 2.01}, {"temperature": -1}, {"max_tokens": 0}, {"max_tokens": 200_001},
                {"collections_access": {"memories": "delete"}}, {"collections_access": {"files": "read"}},
                {"skills": ["x"] * 33}, {"tools_enabled": ["t"] * 101}):
        with pytest.raises(ValidationError):
            agent("a", **bad)
    with pytest.raises(ValidationError):
        agent("a b")
    assert agent("a", temperature=0, max_tokens=200_000).temperature == 0
    assert agent("a", skills=["x", "x"], tools_enabled=["bash", "bash"]).skills == ["x"]


def test_access_defaults_to_everything_and_write_includes_read(agents: AgentService) -> None:
    agents.create(API, agent("full"))
    full = agents.access(API, "full")
    assert all(full.allows(k, Access.write) for k in Kind)
    agents.create(API, agent("narrow", collections_access={Kind.memories: Access.write, Kind.skills: Access.read}))
    narrow = agents.access(API, "narrow")
    assert narrow.allows(Kind.memories, Access.read) and narrow.allows(Kind.memories, Access.write)
    assert narrow.allows(Kind.skills, Access.read) and not narrow.allows(Kind.skills, Access.write)
    assert not narrow.allows(Kind.checkpoints, Access.read)


def test_skills_and_tools_are_checked(agents: AgentService, container: Container) -> None:
    sid = container.skills.create(API, CreateSkill(name="fix", description="d", prompt_template="t")).id
    made = agents.create(API, agent("a", skills=["fix"], tools_enabled=["memory_search", "bash"]))
    assert [s.id for s in made.skills] == [sid]
    with pytest.raises(InvalidInput, match="skills.0: no skill 'fix' applies here"):
        agents.create(WEB, agent("b", skills=["fix"]))  # another project's skill does not apply there
    with pytest.raises(InvalidInput, match="tools_enabled.0: no tool named 'format_disk'"):
        agents.create(API, agent("c", tools_enabled=["format_disk"]))
    container.skills.delete(API, DeleteSkill(skill_id=sid))
    shown = agents.get(API, GetAgent(agent_id=made.id))
    assert shown.skills == [] and shown.missing_skills == [sid]


def test_levels_uniqueness_and_resolution(agents: AgentService) -> None:
    org = agents.create(API, agent("reviewer", scope=ScopeLevel.org)).id
    own = agents.create(API, agent("reviewer")).id
    assert agents.resolve(API, "reviewer").id == own
    assert agents.resolve(WEB, "reviewer").id == org
    assert agents.resolve(API, "reviewer@org").id == org
    with pytest.raises(Conflict):
        agents.create(WEB, agent("Reviewer", scope=ScopeLevel.org))
    with pytest.raises(NotFound, match="agent 'reviewer' not found"):
        agents.resolve(GLOBEX, "reviewer")
    with pytest.raises(NotFound, match=f"agent '{own}' not found"):
        agents.access(WEB, own)  # another project's agent does not apply there
    assert [a.name for a in agents.find(WEB, ListAgents())] == ["reviewer"]
    assert len(agents.find(WEB, ListAgents(scope=ScopeLevel.team))) == 2


def test_update_and_delete_confined_to_scope(agents: AgentService) -> None:
    aid = agents.create(API, agent("ops")).id
    for scope in (WEB, GLOBEX):
        with pytest.raises(NotFound):
            agents.update(scope, UpdateAgent(agent_id=aid, temperature=1.0))
        with pytest.raises(NotFound):
            agents.delete(scope, DeleteAgent(agent_id=aid))
    assert agents.update(WEB, UpdateAgent(agent_id=aid, temperature=1.0, scope=ScopeLevel.team)).temperature == 1.0
    with pytest.raises(NotFound):
        agents.delete(GLOBEX, DeleteAgent(agent_id=aid, scope=ScopeLevel.org))
    assert agents.delete(API, DeleteAgent(agent_id=aid)).deleted is True
