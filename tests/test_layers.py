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


# -- scope by structure: services reach the store only through scope-bound handles ----------

RAW_STORE_NAMES = {"VectorStore", "EdgeStore", "QdrantClientStore"}
# The admin path that reads across scopes, and the only services allowed it (their sweeps).
ACROSS_SCOPES_ALLOWED = {"sessions.py", "folding.py", "memory_rekey.py"}


def names_used(path: Path) -> set[str]:
    """Every name a module imports, references or writes in an annotation (string ones too)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.rsplit(".", 1)[-1])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            names.add(node.value)  # from __future__ annotations: "VectorStore" as a string
    return names


def test_no_service_names_the_raw_store() -> None:
    offenders = [
        f"services/{path.name} uses {name}"
        for path in sorted((SRC / "services").glob("*.py"))
        for name in sorted(names_used(path) & RAW_STORE_NAMES)
    ]
    assert offenders == []


def test_only_the_sweeping_services_hold_the_across_scopes_admin_path() -> None:
    users = {path.name for path in (SRC / "services").glob("*.py") if "AcrossScopes" in names_used(path)}
    assert users <= ACROSS_SCOPES_ALLOWED


def _raw_holders(
    obj: object, path: str, raw_type: type, seen: set[int], found: list[str], depth: int = 0, holder: object = None
) -> None:
    """Paths from ``obj`` to a raw store, not counting the handle factories made to hold one
    (``AcrossScopes`` only in the services allowed it: ``holder`` is the object holding ``obj``)."""
    from contextd_mcp.ports.scoped_store import AcrossScopes, ScopedStore, Stores

    if id(obj) in seen or depth > 10 or isinstance(obj, str | bytes | int | float | bool | type(None)):
        return
    seen.add(id(obj))
    if isinstance(obj, raw_type):
        found.append(path)
        return
    if isinstance(obj, Stores | ScopedStore):
        return  # hands out scoped handles only
    if isinstance(obj, AcrossScopes):
        holder_module = type(holder).__module__.rsplit(".", 1)[-1] + ".py"
        if not type(holder).__module__.startswith("contextd_mcp.services.") or holder_module not in ACROSS_SCOPES_ALLOWED:
            found.append(f"{path} (AcrossScopes)")
        return
    children: list[tuple[str, object]] = []
    if isinstance(obj, dict):
        children = [(f"{path}[{k!r}]", v) for k, v in obj.items()]
    elif isinstance(obj, list | tuple | set | frozenset):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__self__") and hasattr(obj, "__func__"):  # a bound method: its object
        children = [(f"{path}.__self__", obj.__self__)]
    elif hasattr(obj, "__closure__") and hasattr(obj, "__code__"):  # a function: what it closes over
        children = [(f"{path}<{c}>", cell.cell_contents) for c, cell in zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=True)]
    elif type(obj).__module__.startswith("contextd_mcp") and hasattr(obj, "__dict__"):
        children = [(f"{path}.{k}", v) for k, v in vars(obj).items()]
    for child_path, child in children:
        _raw_holders(child, child_path, raw_type, seen, found, depth + 1, obj)


def test_no_service_of_the_built_container_holds_the_raw_store(container: object) -> None:
    """What the AST test cannot see: a raw store handed in under another name, or kept in a closure."""
    from contextd_mcp.ports.scoped_store import Stores

    services = ("memory", "skills", "agents", "sessions", "checkpoints", "distill", "folding", "shell",
                "remediation", "policies")
    found: list[str] = []
    for name in services:
        service = getattr(container, name)
        assert service is not None, name
        _raw_holders(service, f"container.{name}", type(container.store), set(), found)  # type: ignore[attr-defined]
    assert found == []
    # The walk can find one: a service given the raw store is caught.
    planted: list[str] = []
    _raw_holders({"s": Stores(container.store), "raw": container.store}, "probe", type(container.store), set(), planted)  # type: ignore[attr-defined]
    assert planted == ["probe['raw']"]
