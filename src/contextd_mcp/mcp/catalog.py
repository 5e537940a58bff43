"""Every tool the server offers, as data, in the order of tools/list (and of schema.json, TOOL.md).

Each toolset's specs come from its module in ``mcp/tools/``; the composition root binds them to
service calls (container.py), and the docs render them as they are (docs.py): no store, no model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from contextd_mcp.mcp import toolsets
from contextd_mcp.mcp.registry import Handler, ToolDef, ToolSpec, bind
from contextd_mcp.mcp.tools import (
    agents,
    bash,
    branch,
    checkpoint,
    diagnostics,
    memory,
    policy,
    remediation,
    session,
    skills,
)
from contextd_mcp.mcp.tools import toolsets as toolsets_tool

# Folding and bash come last; diagnostics exist only for the benchmarks (CONTEXTD_BENCH_TOOLS=1).
CATALOG: tuple[tuple[str, tuple[ToolSpec, ...]], ...] = (
    ("memory", memory.SPECS),
    ("skills", skills.SPECS),
    ("agents", agents.SPECS),
    ("sessions", session.SPECS),
    ("checkpoints", checkpoint.SPECS),
    ("remediation", remediation.SPECS),
    ("policy", policy.SPECS),
    ("diagnostics", diagnostics.SPECS),
    (toolsets.DISCOVERY, toolsets_tool.SPECS),
    ("folding", branch.SPECS),
    ("bash", bash.SPECS),
)


def declared(diagnostics: bool = False) -> list[ToolSpec]:
    """Every tool's spec with its toolset, in listing order (the diagnostics only when asked)."""
    return [
        replace(spec, toolset=name)
        for name, specs in CATALOG
        if diagnostics or name != "diagnostics"
        for spec in specs
    ]


def bound(handlers: Mapping[str, Handler], diagnostics: bool = False) -> list[ToolDef]:
    """The declared tools, each with its handler; ``handlers`` must answer every one of them."""
    return bind(declared(diagnostics), handlers)
