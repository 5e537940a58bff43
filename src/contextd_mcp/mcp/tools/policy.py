"""Policy tools: thin adapters over PolicyService (rule syntax: TOOL.md, 'Policy rules')."""

from __future__ import annotations

from contextd_mcp.mcp.registry import Handler, ToolSpec, in_scope
from contextd_mcp.models.policy import (
    CheckPolicies,
    EnablePack,
    ListPolicies,
    PackEnabled,
    Policy,
    PolicyById,
    PolicyCheckResult,
    PolicyDeleted,
    PolicyList,
    PolicySaved,
    SetPolicy,
)
from contextd_mcp.services.policy import PolicyService

_ID = "3c9e2f41-7b6d-4a8e-9f10-5d2c8b7a6e01"
_OVERRIDE = "a41d07e3-2c5b-4f6e-8d9a-1b3c5e7f9a20"
_RULE = {"kind": "command_regex", "pattern": r"\bgit\s+push\b.*--force"}
_POLICY = {
    "title": "No force-push",
    "rule": _RULE,
    "severity": "critical",
    "scope": "org",
    "category": "git",
    "suggestion": "Push a branch and open a pull request.",
}


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec(
        "policy_set",
        "Create a policy (a rule checked without an LLM) at org, team or project scope, or override "
        "a wider one by id. Same title and scope replaces it.",
        SetPolicy,
        PolicySaved,
        idempotent=True,
        destructive=True,  # a policy of the same title at that scope is replaced
        example=_POLICY,
        example_result={"id": _ID, "replaced_existing": False},
    ),
    ToolSpec(
        "policy_get",
        "Fetch one policy that applies to you (yours, your team's, your org's, or a configured pack's).",
        PolicyById,
        Policy,
        read_only=True,
        idempotent=True,
        example={"policy_id": _ID},
        example_result={
            "id": _ID,
            **_POLICY,
            "enabled": True,
            "overrides": None,
            "source": "stored",
            "pack": None,
        },
    ),
    ToolSpec(
        "policy_list",
        "List the policies and overrides that apply to you, widest scope first.",
        ListPolicies,
        PolicyList,
        read_only=True,
        idempotent=True,
        example={"category": "git"},
        example_result={
            "policies": [
                {"id": _ID, "title": "No force-push", "severity": "critical", "scope": "org", "category": "git",
                 "enabled": True, "overrides": None, "source": "stored"},
                {"id": _OVERRIDE, "title": "No force-push", "severity": "warning", "scope": "project",
                 "category": None, "enabled": None, "overrides": _ID, "source": "stored"},
            ]
        },
    ),
    ToolSpec(
        "policy_delete",
        "Delete a policy (and every override of it).",
        PolicyById,
        PolicyDeleted,
        idempotent=True,
        destructive=True,
        example={"policy_id": _ID},
        example_result={"id": _ID, "deleted_overrides": 1},
    ),
    ToolSpec(
        "policy_check",
        "Check an action (command, write, commit) against your org, team and project policies "
        "before doing it (bash checks itself).",
        CheckPolicies,
        PolicyCheckResult,
        read_only=True,
        idempotent=True,
        example={"action": "git push --force origin main", "context": {"project_dir": "/home/me/api"}},
        example_result={
            "compliant": False,
            "blocking": False,
            "violations": [
                {"policy_id": _ID, "title": "No force-push", "reason": "the command matches /\\bgit\\s+push\\b.*--force/ at 'git push --force'",
                 "severity": "warning", "scope": "org", "category": "git"}
            ],
            "suggestions": ["Push a branch and open a pull request."],
            "overridden": [
                {"policy_id": _ID, "title": "No force-push", "by": _OVERRIDE, "scope": "project",
                 "change": "severity critical → warning"}
            ],
            "checked": 1,
        },
    ),
    ToolSpec(
        "policy_pack_enable",
        "Enable a starter policy pack (see pack) at a scope in one call. Idempotent.",
        EnablePack,
        PackEnabled,
        idempotent=True,
        example={"pack": "security", "scope": "org"},
        example_result={"pack": "security", "scope": "org", "policy_ids": [_ID]},
    ),
)


def policy_tools(service: PolicyService) -> dict[str, Handler]:
    return {
        "policy_set": in_scope(service.set),
        "policy_get": in_scope(service.get),
        "policy_list": in_scope(service.list),
        "policy_delete": in_scope(service.delete),
        "policy_check": in_scope(service.check_request),
        "policy_pack_enable": in_scope(service.enable_pack),
    }
