"""Agent config tools: thin adapters over AgentService."""

from __future__ import annotations

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import Handler, ToolSpec, in_scope
from contextd_mcp.models.agent import Agent, AgentList, CreateAgent, DeleteAgent, GetAgent, ListAgents, UpdateAgent
from contextd_mcp.models.skill import Deleted
from contextd_mcp.services.agents import AgentService

_ID = "9a2e4c71-0b3d-4f6e-8c15-7d2a9e0b4f31"
_SKILL_ID = "3b9d6a0e-5c1f-4e8a-b2d7-9f4c1e6a8b20"
_ACCESS = {"memories": "read", "skills": "read", "sandbox": "write"}
_AGENT = {
    "id": _ID,
    "name": "reviewer",
    "description": "Reviews pull requests; reads memories, never writes them.",
    "system_prompt": "You review code for correctness and safety. Be brief.",
    "skills": [{"id": _SKILL_ID, "name": "review-migration"}],
    "missing_skills": [],
    "collections_access": _ACCESS,
    "model_preference": "claude-sonnet",
    "temperature": 0.2,
    "max_tokens": 4000,
    "tools_enabled": None,
    "level": "project",
    "applies_here": True,
    "created_at": "2026-11-27T09:00:00+00:00",
    "updated_at": "2026-11-27T09:00:00+00:00",
}


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec(
        "agent_create",
        "Define an agent: system prompt, skills, model settings and the kinds of data it may read "
        "or write (enforced once session_start(agent=...) names it).",
        CreateAgent,
        Agent,
        example={
            "name": "reviewer",
            "description": _AGENT["description"],
            "system_prompt": _AGENT["system_prompt"],
            "skills": ["review-migration"],
            "collections_access": _ACCESS,
            "model_preference": "claude-sonnet",
            "temperature": 0.2,
            "max_tokens": 4000,
        },
        example_result=_AGENT,
    ),
    ToolSpec(
        "agent_get",
        "Fetch an agent config by id or name.",
        GetAgent,
        Agent,
        read_only=True,
        idempotent=True,
        example={"name": "reviewer"},
        example_result=_AGENT,
    ),
    ToolSpec(
        "agent_list",
        "List the agent configs that apply here (or your team's / org's with scope).",
        ListAgents,
        AgentList,
        read_only=True,
        idempotent=True,
        example={},
        example_result={
            "agents": [
                {"id": _ID, "name": "reviewer", "description": _AGENT["description"], "level": "project",
                 "skills": 1, "collections_access": _ACCESS}
            ]
        },
    ),
    ToolSpec(
        "agent_update",
        "Change an agent config (omitted fields stay; lists are replaced).",
        UpdateAgent,
        Agent,
        idempotent=True,
        destructive=True,  # overwrites the fields it names
        example={"agent_id": _ID, "temperature": 0.0},
        example_result=_AGENT | {"temperature": 0.0},
    ),
    ToolSpec(
        "agent_delete",
        "Delete an agent config.",
        DeleteAgent,
        Deleted,
        idempotent=True,
        destructive=True,
        example={"agent_id": _ID},
        example_result={"id": _ID, "deleted": True},
    ),
)


def agent_tools(service: AgentService) -> dict[str, Handler]:
    def list_(caller: Caller, req: ListAgents) -> AgentList:
        return AgentList(agents=service.find(caller.scope, req))

    return {
        "agent_create": in_scope(service.create),
        "agent_get": in_scope(service.get),
        "agent_list": list_,
        "agent_update": in_scope(service.update),
        "agent_delete": in_scope(service.delete),
    }
