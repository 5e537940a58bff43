"""``token create --agent``: the agent a token is bound to, resolved once, when it is made.

Asked of the data directory's daemon (started if none runs, as a bridge does), through the
same one-shot tool call the Claude Code hook uses, in the scope the token is made for
(its tenant, and its team / project, ``default`` when unpinned): ``agent_get`` there finds the
agent closest to that scope, as a caller in it would. The token then stores the agent's id,
and every request loads that id within the token's tenant. Standard library only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from contextd_mcp.paths import DataPaths
from contextd_mcp.transports.bridge import BridgeError, open_session


@dataclass(frozen=True)
class BoundAgent:
    id: str
    name: str
    owner: str  # "tenant/team/project" of the agent's record, "*" for any


def _is_id(ref: str) -> bool:
    try:
        uuid.UUID(ref)
    except ValueError:
        return False
    return True


def resolve_token_agent(paths: DataPaths, tenant: str, team: str | None, project: str | None, ref: str) -> BoundAgent:
    """The agent ``ref`` (a name, ``name@org``, or an id) names in the token's scope; ValueError if none."""
    ref = ref.strip()
    scope = {"CONTEXTD_TENANT": tenant, "CONTEXTD_TEAM": team or "default", "CONTEXTD_PROJECT": project or "default"}
    fields = {
        "tool": "agent_get",
        "arguments": {"agent_id": ref} if _is_id(ref) else {"name": ref},
        "env": scope,  # replaces the CLI's own CONTEXTD_* (an agent of its own must not apply here)
        "cwd": "/",
    }
    try:
        sock, reply, _ = open_session(paths, "call", fields=fields)
    except (BridgeError, OSError) as exc:
        raise ValueError(f"--agent: cannot ask the daemon for agent {ref!r}: {exc}") from None
    sock.close()
    where = "/".join(scope.values())
    if reply.get("is_error"):
        raise ValueError(
            f"--agent: no agent {ref!r} applies in {where} ({reply.get('text')}); "
            "create it first with agent_create, or pin --team / --project where it lives"
        )
    agent = reply.get("result") or {}
    if not agent.get("applies_here", True) and not _is_id(ref):
        raise ValueError(f"--agent: agent {ref!r} does not apply in {where}")
    owner = {"org": f"{tenant}/*/*", "team": f"{tenant}/{scope['CONTEXTD_TEAM']}/*"}.get(str(agent.get("level")), where)
    return BoundAgent(id=str(agent["id"]), name=str(agent["name"]), owner=owner)
