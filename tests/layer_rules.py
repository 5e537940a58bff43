"""The import rules between the package's layers (DESIGN.md §2), and the checker that finds
every import breaking them: absolute, relative (``from ..adapters import x``), and dynamic
with a literal name (``importlib.import_module("contextd_mcp.adapters.x")``, ``__import__``).

Kept apart from the test module so the planted-violation tests can run it on a copy of the tree.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "contextd_mcp"

# Every module is in exactly one layer: a subpackage is its own layer; top-level modules are
# named here (a new one fails the test until it is given a layer).
SUBPACKAGES = ("models", "ports", "services", "adapters", "sandbox", "mcp", "transports", "ui")
TOP_LEVEL = {
    # Leaves: standard library only (pure constants, the error tree, the data directory layout).
    "base": {PACKAGE, "errors", "limits", "paths", "env"},
    # Light helpers shared by entry points, transports and services: transcript (standard library
    # only: the hook command reads it) and scope_resolver (standard library and the Scope model).
    "shared": {"transcript", "scope_resolver"},
    # Entry points and the composition root: parse, read settings, build, hand over.
    "entry": {
        "__main__", "entry", "cli", "container", "settings", "daemon", "in_process", "docs", "hooks",
        "audit_view", "token_agent", "tenant_migration", "session_workers", "admin", "ui_command", "start_gc",
    },
}

# What each layer may import besides itself. Arrows point inward: services know nothing of MCP,
# adapters or transports; adapters implement ports and know no service; nothing below the
# entry points reads settings (the composition root hands values down).
ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "models": frozenset({"base"}),
    "shared": frozenset({"base", "models"}),
    "ports": frozenset({"base", "models"}),
    "sandbox": frozenset({"base"}),
    # The shell service drives the sandbox (DESIGN.md §2 lists the sandbox among the services).
    "services": frozenset({"base", "models", "shared", "ports", "sandbox"}),
    "adapters": frozenset({"base", "models", "ports"}),
    "mcp": frozenset({"base", "models", "shared", "ports", "services"}),
    "transports": frozenset({"base", "models", "shared", "mcp"}),
    # The web page: HTTP like the transports, and it curates through the services directly.
    "ui": frozenset({"base", "models", "shared", "ports", "services", "mcp", "transports"}),
    "entry": frozenset(
        {"base", "models", "shared", "ports", "services", "adapters", "sandbox", "mcp", "transports", "ui"}
    ),
}
# Third-party packages a layer must not import (the domain stays plain Python + pydantic).
FORBIDDEN_THIRD_PARTY: dict[str, tuple[str, ...]] = {
    layer: ("mcp", "mcp_types", "qdrant_client", "qdrant_edge", "fastembed", "starlette", "uvicorn")
    for layer in ("models", "ports", "services", "base", "shared")
}
# Named exceptions, each with the reason it stands. (module, imported module) -> why.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("contextd_mcp.transports.auth", "contextd_mcp.adapters.token_store"): (
        "the HTTP access is still built from the daemon's options here; it moves to the composition "
        "root with typed settings (issue 18, container part)"
    ),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module, resolved to an absolute name
    line: int
    how: str  # "import", "from", "relative", "dynamic"


def module_name(path: Path, root: Path) -> str:
    """``root`` is the package directory (…/contextd_mcp)."""
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) > 1 and parts[1] in SUBPACKAGES:
        return parts[1]
    name = parts[1] if len(parts) > 1 else PACKAGE
    return next((layer for layer, names in TOP_LEVEL.items() if name in names), "unclassified")


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool, root: Path) -> list[str]:
    """The modules ``from X import a, b`` reaches: X.a where that is a module, else X."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    targets = []
    for alias in node.names:
        candidate = f"{source}.{alias.name}"
        targets.append(candidate if _exists(candidate, root) else source)
    return targets


def _exists(module: str, root: Path) -> bool:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return False
    rel = Path(*parts[1:]) if len(parts) > 1 else Path()
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _dynamic(node: ast.Call, module: str, is_package: bool) -> str | None:
    """The module a call to importlib.import_module / import_module / __import__ names, when literal."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not node.args:
        return None
    target = _literal(node.args[0])
    if target is None or not target.startswith("."):
        return target
    # import_module(".x", package="contextd_mcp.y") or import_module(".x", __package__)
    anchor = next((_literal(k.value) for k in node.keywords if k.arg == "package"), None)
    if anchor is None and len(node.args) > 1:
        anchor = _literal(node.args[1])
    if anchor is None:  # __package__ or a name: this module's own package
        anchor = module if is_package else module.rsplit(".", 1)[0]
    level = len(target) - len(target.lstrip("."))
    base = anchor.split(".")[: len(anchor.split(".")) - (level - 1)]
    rest = target.lstrip(".")
    return ".".join([*base, rest] if rest else base)


def imports_of(path: Path, root: Path) -> list[Import]:
    module = module_name(path, root)
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno, "import") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            how = "relative" if node.level else "from"
            found += [Import(module, t, node.lineno, how) for t in _resolve_from(node, module, is_package, root)]
        elif isinstance(node, ast.Call):
            target = _dynamic(node, module, is_package)
            if target is not None:
                found.append(Import(module, target, node.lineno, "dynamic"))
    return found


def _breaks(imp: Import, layer: str) -> str | None:
    """Why ``imp`` (made by a module of ``layer``) breaks a rule, or None."""
    target_layer = layer_of(imp.target)
    if target_layer is None:
        top = imp.target.split(".")[0]
        if top in FORBIDDEN_THIRD_PARTY.get(layer, ()):
            return f"{layer} may not import {top}"
        return None
    if target_layer == layer or target_layer in ALLOWED[layer]:
        return None
    if (imp.module, imp.target) in EXCEPTIONS:
        return None
    return f"{layer} may not import {target_layer}"


def file_violations(path: Path, root: Path) -> list[str]:
    """The imports of one module under ``root`` that break a rule."""
    module = module_name(path, root)
    layer = layer_of(module)
    if layer == "unclassified":
        return [f"{module}: in no layer (add it to tests/layer_rules.py TOP_LEVEL)"]
    assert layer is not None
    return [
        f"{module}:{imp.line} {imp.how} import of {imp.target}: {why}"
        for imp in imports_of(path, root)
        if (why := _breaks(imp, layer)) is not None
    ]


def violations(root: Path) -> list[str]:
    """Every import under ``root`` (the contextd_mcp package directory) that breaks a rule."""
    return [v for path in sorted(root.rglob("*.py")) for v in file_violations(path, root)]
