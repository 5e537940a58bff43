"""Code-health figures of a source tree (issue 18): ruff findings under this repository's rule
set, mypy errors (this repository's config, and --strict), the `duplicates` pairs, and the
largest functions by McCabe complexity. Run it on the tree before a change and after, with
the same rule set, so the figures compare:

    .venv/bin/python -m bench.bench_code_health [--tree PATH] [--top 10]

``--tree`` is a checkout (default: this one); e.g. the pre-change tree from
``git worktree add /tmp/base <commit>``. ruff and mypy come with the test extras; `duplicates`
is the workplace's command (skipped when it is not on the PATH).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    return done.stdout + done.stderr


def ruff_findings(tree: Path) -> int:
    out = _run([str(BIN / "ruff"), "check", "--config", str(CONFIG), "--statistics", "src", "tests"], tree)
    return sum(int(line.split()[0]) for line in out.splitlines() if re.match(r"^\s*\d+\s", line))


def mypy_errors(tree: Path, strict: bool) -> int:
    env = {**os.environ, "MYPYPATH": str(tree / "src")}
    args = [str(BIN / "mypy"), "--config-file", str(CONFIG), "--no-incremental", *(["--strict"] if strict else []), "src"]
    out = _run(args, tree, env)
    found = re.search(r"Found (\d+) errors?", out)
    if found:
        return int(found.group(1))
    if "Success" in out:
        return 0
    raise RuntimeError(out[-2000:])


def duplicate_pairs(tree: Path) -> str:
    command = shutil.which("duplicates")
    if command is None:
        return "n/a (no `duplicates` command)"
    out = _run([command, "--repo", str(tree / "src"), "--seconds", "120"], tree)
    first = out.splitlines()[0] if out else ""
    found = re.match(r"(\d+) pairs", first)
    return found.group(1) if found else first


def largest_functions(tree: Path, top: int) -> list[tuple[int, str]]:
    out = _run(
        [str(BIN / "ruff"), "check", "--isolated", "--select", "C901", "--config", "lint.mccabe.max-complexity=0",
         "--output-format", "concise", "src"],
        tree,
    )
    found = []
    for line in out.splitlines():
        m = re.match(r"^(\S+?):(\d+):\d+: C901 `(.+)` is too complex \((\d+) > 0\)", line)
        if m:
            found.append((int(m.group(4)), f"{m.group(3)} ({Path(m.group(1)).name}:{m.group(2)})"))
    return sorted(found, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    tree = args.tree.resolve()
    functions = largest_functions(tree, args.top)
    print(f"tree: {tree}")
    print(f"ruff findings (src + tests, rule set of {CONFIG.relative_to(ROOT)}): {ruff_findings(tree)}")
    print(f"mypy errors on src: {mypy_errors(tree, strict=False)} (config), {mypy_errors(tree, strict=True)} (--strict)")
    print(f"duplicates pairs in src: {duplicate_pairs(tree)}")
    over = sum(1 for score, _ in largest_functions(tree, 10_000) if score > 10)
    print(f"functions over McCabe 10: {over}; largest:")
    for score, name in functions:
        print(f"  {score:3d}  {name}")


if __name__ == "__main__":
    main()
