"""Agent access control: what a connection acting as an agent may call.

A connection acts as an agent when its identity says so or when it started a session with
``session_start(agent=...)``. An identity names its agent in one of two ways:

- a bearer token holds the agent's id (``Caller.agent_id``), fixed when the token was made; it
  is loaded by that id within the token's tenant, never looked up by name in the team or
  project a request names (a header would then choose which agent it is). A deleted agent
  makes the token's calls fail, and a new agent of the same name is not it;
- a local identity (CONTEXTD_AGENT on the socket / stdio) names it (``Caller.agent``) and it
  is resolved in the caller's own scope, which that same local caller chose anyway. Then every tool call is checked, before it runs, against the
agent's config as stored now (an update applies to the next call):

- ``tools_enabled`` (when set) lists the only tools it may call;
- ``collections_access`` lists the kinds of data it may read or write; each tool maps to the
  (kind, read|write) pairs it needs in ``TOOL_ACCESS`` below. A tool missing from the table is
  denied to every agent (a test keeps the table covering every registered tool).

A connection with no agent is not restricted here (its scope still confines it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pydantic import BaseModel

from contextd_mcp.errors import Denied, NotFound
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import ToolDef
from contextd_mcp.models.agent import FULL_ACCESS, Access, AgentAccess, CreateAgent, Kind, UpdateAgent
from contextd_mcp.models.scope import ScopeLevel

R, W = Access.read, Access.write
Need = tuple[Kind, Access]

# tool name → what it reads and writes. ``()``: the tool touches no agent-governed data.
TOOL_ACCESS: dict[str, tuple[Need, ...]] = {
    "memory_store": ((Kind.memories, W),),
    "memory_search": ((Kind.memories, R),),
    "memory_get": ((Kind.memories, R),),
    "memory_feedback": ((Kind.memories, W),),
    "memory_outcome": ((Kind.memories, W),),
    "skill_create": ((Kind.skills, W),),
    "skill_get": ((Kind.skills, R),),
    "skill_list": ((Kind.skills, R),),
    "skill_update": ((Kind.skills, W),),
    "skill_delete": ((Kind.skills, W),),
    "agent_create": ((Kind.agents, W),),
    "agent_get": ((Kind.agents, R),),
    "agent_list": ((Kind.agents, R),),
    "agent_update": ((Kind.agents, W),),
    "agent_delete": ((Kind.agents, W),),
    # session_start injects lessons and the latest checkpoint; session_end distils memories.
    "session_start": ((Kind.sessions, W), (Kind.memories, R), (Kind.checkpoints, R)),
    "session_end": ((Kind.sessions, W), (Kind.memories, W)),
    "distill_status": ((Kind.sessions, R),),
    "checkpoint_save": ((Kind.checkpoints, W),),
    "checkpoint_list": ((Kind.checkpoints, R),),
    "checkpoint_resume": ((Kind.checkpoints, R),),
    "branch_create": ((Kind.branches, W),),  # + memories read with with_memories (ARG_NEEDS)
    "branch_return": ((Kind.branches, W),),
    "branch_status": ((Kind.branches, R),),
    "remediation_record": ((Kind.remediations, W),),
    "remediation_search": ((Kind.remediations, R),),
    "remediation_get": ((Kind.remediations, R),),
    "remediation_feedback": ((Kind.remediations, W),),
    "policy_set": ((Kind.policies, W),),
    "policy_get": ((Kind.policies, R),),
    "policy_list": ((Kind.policies, R),),
    "policy_delete": ((Kind.policies, W),),
    "policy_check": ((Kind.policies, R),),
    "policy_pack_enable": ((Kind.policies, W),),
    "bash": ((Kind.sandbox, W),),
    "bench_noop": (),
    # Changes only which tools this connection lists; each tool still checks its own needs.
    "toolsets": (),
}

# Needs that depend on the arguments of a call.
ARG_NEEDS: dict[str, Callable[[BaseModel], tuple[Need, ...]]] = {
    "branch_create": lambda args: ((Kind.memories, R),) if getattr(args, "with_memories", False) else (),
}


def needs_of(tool: str, args: BaseModel | None = None) -> tuple[Need, ...] | None:
    """What a call needs; None for a tool the table does not know (denied to agents)."""
    needs = TOOL_ACCESS.get(tool)
    if needs is None:
        return None
    extra = ARG_NEEDS.get(tool)
    return needs + (extra(args) if extra is not None and args is not None else ())


ConnectionKey = tuple[str, str, str, str, str]


def connection_key(caller: Caller) -> ConnectionKey:
    # The scope is part of the key so that two callers sharing an empty connection id
    # (in-process transports) can never see each other's binding across scopes.
    s = caller.scope
    return (caller.transport, caller.connection_id, s.tenant, s.team, s.project)


class AgentBindings:
    """connection → agent id, set by ``session_start(agent=...)``.

    A binding lasts as long as the connection: ending the session, or starting another one,
    does not lift it (otherwise an agent could shed its own restrictions).
    """

    def __init__(self) -> None:
        self._bound: dict[ConnectionKey, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def bind(self, caller: Caller, agent_id: str, agent_name: str) -> None:
        key = connection_key(caller)
        with self._lock:
            current = self._bound.get(key)
            if current is not None and current[0] != agent_id:
                raise Denied(f"this connection already acts as agent {current[1]!r}; open a new connection for another agent")
            self._bound[key] = (agent_id, agent_name)

    def bound(self, caller: Caller) -> str | None:
        """The agent id ``session_start(agent=...)`` bound to the caller's connection, if any."""
        with self._lock:
            bound = self._bound.get(connection_key(caller))
        return bound[0] if bound is not None else None

    def release(self, caller: Caller) -> None:
        """Called by a transport when a connection closes."""
        with self._lock:
            self._bound.pop(connection_key(caller), None)

    def __len__(self) -> int:
        return len(self._bound)


# (caller, id or name, reach): the agent of that id or name the caller sees at that reach.
AccessLookup = Callable[[Caller, str, ScopeLevel], AgentAccess]


class AccessGuard:
    """A ``ToolRunner`` guard. ``lookup(caller, ref, reach)`` loads an agent the caller sees."""

    def __init__(self, bindings: AgentBindings, lookup: AccessLookup) -> None:
        self._bindings = bindings
        self._lookup = lookup

    def agent(self, caller: Caller) -> AgentAccess | None:
        if caller.agent_id is not None:  # a session can only bind this same agent (``bind``)
            return self._token_agent(caller, caller.agent_id)
        ref = self._bindings.bound(caller) or caller.agent
        if ref is None:
            return None
        try:
            return self._lookup(caller, ref, ScopeLevel.project)
        except NotFound:
            # Fail closed: an identity that names an agent with no config may do nothing.
            raise Denied(
                f"this connection acts as agent {ref!r}, which is not configured in this project; "
                "create it with agent_create from a connection without an agent"
            ) from None

    def _token_agent(self, caller: Caller, agent_id: str) -> AgentAccess:
        try:
            # Org reach: the whole tenant, and nothing beyond it (another tenant's id is not found).
            return self._lookup(caller, agent_id, ScopeLevel.org)
        except NotFound:
            raise Denied(
                f"this token's agent {caller.agent or agent_id!r} (id {agent_id}) no longer exists; "
                "the token can do nothing until the operator creates a new one for an existing agent"
            ) from None

    def check(self, caller: Caller, kind: Kind, mode: Access) -> None:
        """For callers outside the tool path (MCP prompts)."""
        agent = self.agent(caller)
        if agent is not None:
            _require(agent, ((kind, mode),))

    def __call__(self, caller: Caller, tool: ToolDef, args: BaseModel) -> None:
        agent = self.agent(caller)
        if agent is None:
            return
        if agent.tools_enabled is not None and tool.name not in agent.tools_enabled:
            raise Denied(f"agent {agent.name!r} has not enabled the tool {tool.name}")
        needs = needs_of(tool.name, args)
        if needs is None:
            raise Denied(f"agent {agent.name!r} may not call {tool.name}: the tool has no access rule for agents")
        _require(agent, needs)
        if isinstance(args, CreateAgent | UpdateAgent):
            _no_escalation(agent, args)

    def bind(self, caller: Caller, ref: str) -> AgentAccess:
        """``session_start(agent=...)``: from now on this connection acts as that agent.

        The agent must apply to the caller (another tenant's is "not found", like a missing
        one), must itself be allowed to start a session, and must be the identity's own agent
        when the identity names one (a token for agent A cannot start a session as agent B).
        """
        agent = self._lookup(caller, ref, ScopeLevel.project)
        identity = self.agent(caller)
        if identity is not None and identity.id != agent.id:
            raise Denied(f"this connection acts as agent {identity.name!r}; it cannot start a session as {agent.name!r}")
        _require(agent, TOOL_ACCESS["session_start"])
        self._bindings.bind(caller, agent.id, agent.name)
        return agent


def _require(agent: AgentAccess, needs: tuple[Need, ...]) -> None:
    for kind, mode in needs:
        if not agent.allows(kind, mode):
            raise Denied(f"agent {agent.name!r} may not {mode.value} {kind.value}")


def _no_escalation(agent: AgentAccess, args: CreateAgent | UpdateAgent) -> None:
    """An agent may not write an agent config that could do more than itself."""
    requested = args.collections_access
    if requested is None and isinstance(args, CreateAgent):
        requested = FULL_ACCESS
    for kind, mode in (requested or {}).items():
        if not agent.allows(kind, mode):
            raise Denied(f"agent {agent.name!r} may not grant {mode.value} on {kind.value}, which it lacks itself")
    if agent.tools_enabled is not None:
        tools = args.tools_enabled
        if tools is None and isinstance(args, CreateAgent):
            raise Denied(f"agent {agent.name!r} may only create agents limited to its own tools_enabled")
        extra = sorted(set(tools or []) - set(agent.tools_enabled))
        if extra:
            raise Denied(f"agent {agent.name!r} may not enable tools it lacks: {', '.join(extra)}")
