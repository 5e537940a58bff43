"""Generates schema.json and TOOL.md from the tools as declared (mcp/catalog.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contextd_mcp import __version__, limits
from contextd_mcp.mcp import catalog, toolsets
from contextd_mcp.mcp.registry import ToolSpec, input_schema, output_schema, tool_annotations
from contextd_mcp.models import confidence, policy
from contextd_mcp.settings import LimitSettings


def registry_tools() -> list[ToolSpec]:
    """The tools as declared: rendering them opens no store and loads no model."""
    return catalog.declared()


def schema_document(tools: list[ToolSpec]) -> dict[str, Any]:
    defaults = LimitSettings()
    return {
        "server": "contextd-mcp",
        "version": __version__,
        "toolsets": _toolsets(tools),
        "limits": {
            "response_max_tokens": {
                "default": defaults.response_max_tokens,
                "env": "CONTEXTD_RESPONSE_MAX_TOKENS",
                "rule": "every tool result is cut to this many tokens (longest strings first, marked '…[truncated]')",
            },
            "request_max_bytes": {
                "default": defaults.request_max_bytes,
                "env": "CONTEXTD_REQUEST_MAX_BYTES",
                "rule": (
                    "a JSON-RPC message larger than this (socket, stdio or HTTP) is refused at once with "
                    "-32600 carrying the request's own id (HTTP: status 413), so the call fails instead of "
                    "timing out"
                ),
            },
            "search_candidates_per_result": limits.RERANK_FACTOR,
            "confidence_hide_below": confidence.HIDE_BELOW,
        },
        "tools": [
            {
                "name": t.name,
                "description": t.description,
                "read_only": t.read_only,
                "annotations": tool_annotations(t),
                "input_schema": input_schema(t),
                "output_schema": output_schema(t),
            }
            for t in tools
        ],
    }


def _toolsets(tools: list[ToolSpec]) -> dict[str, Any]:
    """Each toolset: what it is for, whether a connection starts with it, and its tools."""
    return {
        name: {
            "about": about,
            "default": name in toolsets.DEFAULT,
            "tools": [t.name for t in tools if t.toolset == name],
        }
        for name, about in toolsets.TOOLSETS.items()
        if any(t.toolset == name for t in tools)
    }


def _toolsets_markdown(tools: list[ToolSpec]) -> list[str]:
    lines = [
        "## Toolsets",
        "",
        "A connection lists, and may call, only the tools of its toolsets: by default "
        f"{', '.join(f'`{n}`' for n in toolsets.TOOLSETS if n in toolsets.DEFAULT)}. Choose others with "
        "`--toolsets a,b` (serve, stdio), `CONTEXTD_TOOLSETS`, or the `X-Contextd-Toolsets` HTTP header "
        "(`all` enables everything); or at run time with the `toolsets` tool (`enable`), which sends "
        "`notifications/tools/list_changed`. Skills are served as prompts only where `skills` is on.",
        "",
        "| toolset | default | tools | for |",
        "|---|---|---|---|",
    ]
    for name, entry in _toolsets(tools).items():
        names = ", ".join(f"`{t}`" for t in entry["tools"])
        lines.append(f"| `{name}` | {'yes' if entry['default'] else ''} | {names} | {entry['about']} |")
    return [*lines, ""]


def _param_rows(schema: dict[str, Any]) -> list[str]:
    rows = []
    required = set(schema.get("required", []))
    defs = schema.get("$defs", {})
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf", [prop])
        kinds, rules = [], []
        for option in options:
            if "$ref" in option:
                target = defs[option["$ref"].split("/")[-1]]
                kinds.append(" \\| ".join(f"`{v}`" for v in target.get("enum", [])) or "object")
                continue
            kind = option.get("type", "any")
            if kind == "array":
                item = option.get("items", {})
                kind = f"array of {item.get('type', 'any')}"
                if "maxLength" in item:
                    rules.append(f"each ≤ {item['maxLength']} chars")
            if kind != "null":
                kinds.append(kind)
            for key, label in (("minLength", "≥ {} chars"), ("maxLength", "≤ {} chars"), ("minimum", "≥ {}"),
                               ("maximum", "≤ {}"), ("maxItems", "≤ {} items")):
                if key in option:
                    rules.append(label.format(option[key]))
        default = "required" if name in required else f"default `{json.dumps(prop.get('default'))}`"
        text = prop.get("description", "")
        rows.append(f"| `{name}` | {' or '.join(kinds)} | {default} | {', '.join(rules)} | {text} |")
    return rows


def tool_markdown(tools: list[ToolSpec]) -> str:
    defaults = LimitSettings()
    lines = [
        "# contextd-mcp tools",
        "",
        "Generated from the tool registry by `contextd-mcp docs`; do not edit by hand. "
        "Machine-readable schemas and limits: `schema.json`.",
        "",
        "Every call runs in the caller's scope (tenant / team / project). Errors come back as MCP tool "
        "errors whose text starts with a kind: `invalid_input` (names each field and rule), `not_found`, "
        "`denied`, `conflict`, `unavailable`, `internal`. Every result is scrubbed of secrets and capped at "
        f"{defaults.response_max_tokens} tokens (`CONTEXTD_RESPONSE_MAX_TOKENS`).",
        "",
        "## Confidence model",
        "",
        *[line.strip() if not line.startswith("- ") else line for line in (confidence.__doc__ or "").strip().splitlines()],
        "",
        "## Policy rules",
        "",
        *[line.strip() if not line.startswith("- ") else line for line in (policy.__doc__ or "").strip().splitlines()],
        "",
        *_toolsets_markdown(tools),
    ]
    for t in tools:
        schema = input_schema(t)
        lines += [
            f"## `{t.name}`" + (" (read-only)" if t.read_only else " (destructive)" if t.destructive else ""),
            "",
            t.description,
            "",
            "| parameter | type | default | limits | meaning |",
            "|---|---|---|---|---|",
            *_param_rows(schema),
            "",
            "Example call:",
            "```json",
            json.dumps({"name": t.name, "arguments": t.example}, indent=2),
            "```",
            "Example result:",
            "```json",
            json.dumps(t.example_result, indent=2),
            "```",
            "",
        ]
    return "\n".join(lines)


def write_docs(out: Path, check: bool = False) -> list[str]:
    tools = registry_tools()
    outputs = {
        "schema.json": json.dumps(schema_document(tools), indent=2) + "\n",
        "TOOL.md": tool_markdown(tools) + "\n",
    }
    stale = []
    for name, text in outputs.items():
        path = out / name
        current = path.read_text() if path.exists() else None
        if current != text:
            stale.append(name)
            if not check:
                path.write_text(text)
    return stale
