"""The arrows point one way (DESIGN.md §2): every layer has explicit import rules
(tests/layer_rules.py), checked on the tree and shown to catch planted violations in every
form an import takes; the stdio bridge and the hook command import nothing heavy."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.layer_rules import (
    ALLOWED,
    EXCEPTIONS,
    SUBPACKAGES,
    TOP_LEVEL,
    file_violations,
    imports_of,
    layer_of,
    violations,
)

SRC = Path(__file__).parents[1] / "src" / "contextd_mcp"

# One existing module per layer: what a planted import reaches, and where it is planted.
REPRESENTATIVE = {
    "base": "contextd_mcp.errors",
    "models": "contextd_mcp.models.scope",
    "shared": "contextd_mcp.transcript",
    "ports": "contextd_mcp.ports.embedder",
    "sandbox": "contextd_mcp.sandbox.runner",
    "services": "contextd_mcp.services.memory",
    "adapters": "contextd_mcp.adapters.token_store",
    "mcp": "contextd_mcp.mcp.caller",
    "transports": "contextd_mcp.transports.framing",
    "ui": "contextd_mcp.ui.chart",
    "entry": "contextd_mcp.container",
}
FORBIDDEN_PAIRS = [
    (layer, target) for layer in sorted(ALLOWED) for target in sorted(ALLOWED) if target != layer and target not in ALLOWED[layer]
]


def test_every_layer_has_rules_and_a_representative() -> None:
    assert set(ALLOWED) == set(REPRESENTATIVE) == {*SUBPACKAGES, *TOP_LEVEL}
    for layer, module in REPRESENTATIVE.items():
        assert layer_of(module) == layer


def test_the_tree_keeps_the_layer_rules() -> None:
    assert violations(SRC) == []


def test_every_named_exception_is_still_needed() -> None:
    """An exception the code no longer needs is removed, so it cannot hide a new import."""
    made = {(i.module, i.target) for path in SRC.rglob("*.py") for i in imports_of(path, SRC)}
    assert set(EXCEPTIONS) <= made


# -- the checker is shown to catch what it claims: violations planted in a copy of the tree ----


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers") / "contextd_mcp"
    shutil.copytree(SRC, root, ignore=shutil.ignore_patterns("minilm", "__pycache__", "*.typed"))
    return root


def _path_of(module: str, root: Path) -> Path:
    rel = Path(*module.split(".")[1:])
    return root / rel / "__init__.py" if (root / rel).is_dir() else (root / rel).with_suffix(".py")


def _statement(form: str, planter: str, target: str) -> str:
    parent, name = target.rsplit(".", 1)
    if form == "import":
        return f"import {target}"
    if form == "from":
        return f"from {parent} import {name}"
    if form == "relative":
        package = planter.split(".")[:-1]
        common = 0
        while common < min(len(package), len(parent.split("."))) and package[common] == parent.split(".")[common]:
            common += 1
        dots = "." * (len(package) - common + 1)
        return f"from {dots}{'.'.join(parent.split('.')[common:])} import {name}"
    if form == "import_module":
        return f"import importlib\nimportlib.import_module({target!r})"
    if form == "relative_import_module":
        return f"from importlib import import_module\nimport_module('.{name}', {parent!r})"
    assert form == "__import__"
    return f"__import__({target!r})"


@contextmanager
def planted(root: Path, module: str, code: str) -> Iterator[Path]:
    """``code`` appended to ``module`` in the copy, for the time of a check."""
    path = _path_of(module, root)
    original = path.read_text()
    path.write_text(original + "\n\ndef _planted() -> None:\n" + textwrap.indent(code, "    ") + "\n")
    try:
        yield path
    finally:
        path.write_text(original)


@pytest.mark.parametrize(("layer", "target"), FORBIDDEN_PAIRS, ids=[f"{a}->{b}" for a, b in FORBIDDEN_PAIRS])
def test_a_planted_import_across_a_forbidden_arrow_is_reported(tree: Path, layer: str, target: str) -> None:
    planter, reached = REPRESENTATIVE[layer], REPRESENTATIVE[target]
    with planted(tree, planter, _statement("import", planter, reached)) as path:
        found = file_violations(path, tree)
    assert found == [f"{planter}:{_planted_line(path)} import import of {reached}: {layer} may not import {target}"]


def _planted_line(path: Path) -> int:
    return len(path.read_text().splitlines()) + 4  # the line after "def _planted()", original restored


FORMS = ["import", "from", "relative", "import_module", "relative_import_module", "__import__"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("layer", ["services", "adapters", "models", "transports", "base"])
def test_every_form_of_import_is_caught(tree: Path, layer: str, form: str) -> None:
    """Relative imports and importlib with a literal name reach the same module and are judged alike."""
    target = "entry" if layer != "services" else "adapters"
    planter, reached = REPRESENTATIVE[layer], REPRESENTATIVE[target]
    with planted(tree, planter, _statement(form, planter, reached)) as path:
        found = file_violations(path, tree)
    assert len(found) == 1 and f"of {reached}: {layer} may not import {target}" in found[0], found


@pytest.mark.parametrize(
    ("layer", "code", "package"),
    [("services", "import qdrant_client", "qdrant_client"), ("models", "from mcp.server import Server", "mcp"),
     ("ports", "import fastembed", "fastembed")],
)
def test_a_planted_third_party_import_is_reported(tree: Path, layer: str, code: str, package: str) -> None:
    with planted(tree, REPRESENTATIVE[layer], code) as path:
        found = file_violations(path, tree)
    assert len(found) == 1 and found[0].endswith(f"{layer} may not import {package}")


def test_a_new_module_outside_every_layer_is_reported(tree: Path) -> None:
    stray = tree / "stray.py"
    stray.write_text("X = 1\n")
    try:
        assert violations(tree) == ["contextd_mcp.stray: in no layer (add it to tests/layer_rules.py TOP_LEVEL)"]
    finally:
        stray.unlink()


def test_the_whole_tree_check_finds_a_planted_relative_import(tree: Path) -> None:
    """The same walk that checks the real tree, on the copy with one planted import."""
    with planted(tree, "contextd_mcp.adapters.token_store", "from ..services import memory"):
        found = violations(tree)
    assert len(found) == 1 and "relative import of contextd_mcp.services.memory: adapters may not import services" in found[0]


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
