"""Every ``CONTEXTD_*`` knob is read in one typed place (settings.py); the standard-library entry
points read theirs through env.py. A direct read anywhere else is a knob nobody can find."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "contextd_mcp"
ALLOWED = {
    "settings.py",  # pydantic-settings: the knobs themselves
    "env.py",  # the bridge's, relay's, hooks' and paths' few variables (standard library only)
    # Not a knob: how the daemon hands the cgroup plan to the sandbox's zygote process.
    "sandbox/_cgroup.py",
}


def _constants(tree: ast.Module) -> dict[str, str]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            found.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return found


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _key(node: ast.AST, constants: dict[str, str]) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id, "")
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    return ""


def _read_keys(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, key) of each ``os.environ.get(k)``, ``os.getenv(k)``, ``os.environ[k]`` and ``k in os.environ``."""
    constants, reads = _constants(tree), []
    for node in ast.walk(tree):
        key_node = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if (node.func.attr in ("get", "pop", "setdefault") and _is_environ(node.func.value)) or node.func.attr == "getenv":
                key_node = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.ctx, ast.Load):
            key_node = node.slice
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            key_node = node.left
        if key_node is not None:
            reads.append((node.lineno, _key(key_node, constants)))
    return reads


def direct_reads(src: Path) -> list[str]:
    found = []
    for path in sorted(src.rglob("*.py")):
        name = path.relative_to(src).as_posix()
        if name in ALLOWED:
            continue
        for line, key in _read_keys(ast.parse(path.read_text())):
            if key.startswith("CONTEXTD_"):
                found.append(f"{name}:{line} {key}")
    return found


def test_contextd_variables_are_read_only_in_settings_and_env() -> None:
    assert direct_reads(SRC) == []


def test_the_scan_finds_a_planted_read(tmp_path: Path) -> None:
    """The check can fail: every form of a direct read is caught, a setting's mention is not."""
    planted = tmp_path / "services"
    planted.mkdir()
    (planted / "leak.py").write_text(
        "import os\n"
        "NAME = 'CONTEXTD_FROM_A_CONSTANT'\n"
        "a = os.environ.get('CONTEXTD_A')\n"
        "b = os.getenv('CONTEXTD_B', '1')\n"
        "c = os.environ['CONTEXTD_C']\n"
        "d = 'CONTEXTD_D' in os.environ\n"
        "e = os.environ.get(NAME)\n"
        "os.environ['CONTEXTD_WRITTEN'] = '1'  # a write is not a read\n"
        "f = os.environ.get('HOME')\n"
        "message = 'set CONTEXTD_X to change it'\n"
    )
    assert direct_reads(tmp_path) == [
        "services/leak.py:3 CONTEXTD_A",
        "services/leak.py:4 CONTEXTD_B",
        "services/leak.py:5 CONTEXTD_C",
        "services/leak.py:6 CONTEXTD_D",
        "services/leak.py:7 CONTEXTD_FROM_A_CONSTANT",
    ]
