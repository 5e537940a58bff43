"""The toolsets tool: an agent sees what else there is, and turns it on in one call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from contextd_mcp.errors import InvalidInput
from contextd_mcp.mcp import toolsets
from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import Handler, ToolDef, ToolSpec
from contextd_mcp.models.strict import Strict

# Spelled out so the listed schema carries the enum (an agent picks from it, no guessing).
ToolsetName = Literal[
    "memory", "sessions", "checkpoints", "bash", "skills", "agents", "remediation", "policy", "folding",
    "diagnostics", "all",
]
assert set(ToolsetName.__args__) == {*toolsets.TOOLSETS, toolsets.ALL}  # type: ignore[attr-defined]


class ToolsetsRequest(Strict):
    enable: list[ToolsetName] = Field(default_factory=list, max_length=len(toolsets.TOOLSETS) + 1)


class ToolsetsAnswer(BaseModel):
    # One line each: "name (on|off, N tools): what it is for". Lines, not objects: the field
    # names would be repeated for every toolset.
    toolsets: list[str]
    added_tools: list[str] = Field(default_factory=list, description="now listed and callable (tools/list_changed sent)")


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec(
        "toolsets",
        "List the toolsets (groups of tools) and which are on; enable=[...] turns some on for this "
        "connection (their tools are then listed and callable).",
        ToolsetsRequest,
        ToolsetsAnswer,
        # Changes only what this connection lists: a read-only identity may do it too.
        read_only=True,
        idempotent=True,
        example={"enable": ["policy"]},
        example_result={
            "toolsets": [
                "memory (on, 5 tools): store, search, get and rate lessons that carry across sessions",
                "policy (on, 6 tools): rules that allow, deny or ask before a command or tool runs",
            ],
            "added_tools": ["policy_set", "policy_get", "policy_list", "policy_delete", "policy_check",
                            "policy_pack_enable"],
        },
    ),
)


def toolset_tools(enabled: toolsets.Enabled, registered: Callable[[], list[ToolDef]]) -> dict[str, Handler]:
    """``registered``: every tool the runner holds, read at call time (tools are added late).
    One tool, not a list tool and an enable tool: every connection lists it, so it pays twice."""

    def count(name: str) -> int:
        return sum(1 for t in registered() if t.toolset == name)

    def handle(caller: Caller, req: ToolsetsRequest) -> ToolsetsAnswer:
        new: frozenset[str] = frozenset()
        if req.enable:
            try:
                new = enabled.add(caller, toolsets.parse(",".join(req.enable)))
            except LookupError:
                raise InvalidInput(
                    "enable",
                    "this connection has no session id to remember toolsets by (stateless HTTP); "
                    "send the X-Contextd-Toolsets header instead",
                ) from None
        on = _enabled(enabled, caller)
        return ToolsetsAnswer(
            toolsets=[
                f"{name} ({'on' if name in on else 'off'}, {_tools(count(name))}): {about}"
                for name, about in toolsets.TOOLSETS.items()
                if count(name)
            ],
            added_tools=[t.name for t in registered() if t.toolset in new],
        )

    return {"toolsets": handle}


def _enabled(enabled: toolsets.Enabled, caller: Caller) -> frozenset[str]:
    try:
        return enabled.of(caller)
    except ValueError as exc:
        raise InvalidInput("toolsets", str(exc)) from None


def _tools(n: int) -> str:
    return "1 tool" if n == 1 else f"{n} tools"
