"""The arrows point one way (DESIGN.md §2): services and models know nothing of MCP,
adapters or transports; the stdio bridge imports nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "contextd_mcp"
FORBIDDEN = {
    "services": ("contextd_mcp.adapters", "contextd_mcp.mcp", "contextd_mcp.transports", "mcp", "qdrant", "fastembed"),
    "models": ("contextd_mcp.adapters", "contextd_mcp.mcp", "contextd_mcp.services", "mcp", "qdrant", "fastembed"),
    "ports": ("contextd_mcp.adapters", "contextd_mcp.mcp", "contextd_mcp.services", "mcp", "qdrant", "fastembed"),
}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_inward(layer: str) -> None:
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in (SRC / layer).rglob("*.py")
        for name in imports_of(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer])
    ]
    assert offenders == []


def test_bridge_imports_nothing_heavy() -> None:
    code = (
        "import sys; import contextd_mcp.cli, contextd_mcp.transports.bridge; "
        "heavy = [m for m in ('mcp', 'pydantic', 'anyio', 'qdrant_client', 'qdrant_edge', 'fastembed', 'numpy', 'starlette') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_hook_command_imports_nothing_heavy() -> None:
    """`contextd-mcp hook ...` runs at every Claude Code session start and end."""
    code = (
        "import sys; import contextd_mcp.cli, contextd_mcp.hooks, contextd_mcp.transcript; "
        "heavy = [m for m in ('mcp', 'pydantic', 'anyio', 'qdrant_client', 'qdrant_edge', 'fastembed', 'numpy', "
        "'starlette', 'tokenizers', 'contextd_mcp.services.sessions') if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
