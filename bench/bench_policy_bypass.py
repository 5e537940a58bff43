"""Policy bypass rate and false-denial rate on the obfuscation corpus, before → after in one run.

    .venv/bin/python -m bench.bench_policy_bypass [--before 27483c0] [--json FILE] [--list]

The corpus (tests/data/policy/obfuscations.json) holds obfuscated variants of what the
``security`` pack forbids (quotes, escapes, variables, ``$'…'``, ``eval`` and ``sh -c``,
base64 pipelines, git global options, ``xargs``, dangerous ``env`` entries) and ordinary
developer commands that must stay allowed. Each entry is checked as ``bash`` checks it, with the
pack enabled at org scope (``policy_pack_enable``): the ``env`` hard refusal when the tree has
one, then the policies with the project as context. A forbidden entry that is not refused is a
*bypass*; an ordinary entry that is refused is a *false denial*.

"Before" is the tree at ``--before`` (``git archive`` of its ``src/`` into a temporary directory),
"after" is this checkout; each runs in its own interpreter so both import ``contextd_mcp``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "policy" / "obfuscations.json"
BEFORE = "27483c0"  # main before issue 14's policy work


def _refusal(env: dict[str, str]) -> str | None:
    """The shell service's env refusal, when this tree has one (the old tree has none)."""
    try:
        from contextd_mcp.services.shell_env import refuse_dangerous_env  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    from contextd_mcp.errors import InvalidInput

    try:
        refuse_dangerous_env(env)
    except InvalidInput as exc:
        return str(exc)
    return None


def measure(corpus_path: Path) -> dict[str, Any]:
    """Run in the interpreter whose ``contextd_mcp`` is under test; returns the raw verdicts."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from contextd_mcp.container import build
    from contextd_mcp.models.policy import EnablePack
    from contextd_mcp.models.scope import Scope, ScopeLevel
    from contextd_mcp.paths import DataPaths

    corpus = json.loads(corpus_path.read_text())
    scope = Scope(tenant="bench", team="core", project="api")
    verdicts: dict[str, list[dict[str, Any]]] = {"forbidden": [], "ordinary": []}
    timings: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-bypass-") as tmp:
        container = build(DataPaths(Path(tmp)))
        try:
            service = container.policies
            assert service is not None
            service.enable_pack(scope, EnablePack(pack="security", scope=ScopeLevel.org))
            for group in ("forbidden", "ordinary"):
                for entry in corpus[group]:
                    env = entry.get("env", {})
                    context = {"kind": "bash", "project_dir": corpus["project_dir"], "working_dir": "", "env": env}
                    started = time.perf_counter()
                    reason = _refusal(env)
                    if reason is None:
                        verdict = service.check(scope, entry["command"], context)
                        if verdict.blocking:
                            reason = "; ".join(f"{v.title}: {v.reason}" for v in verdict.violations)
                    timings.append((time.perf_counter() - started) * 1000)
                    verdicts[group].append({**entry, "refused": reason is not None, "reason": reason})
        finally:
            container.close()
    ordered = sorted(timings)
    return {
        "verdicts": verdicts,
        "check_ms": {"p50": round(statistics.median(ordered), 3), "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 3)},
    }


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    forbidden, ordinary = raw["verdicts"]["forbidden"], raw["verdicts"]["ordinary"]
    bypasses = [e for e in forbidden if not e["refused"]]
    denials = [e for e in ordinary if e["refused"]]
    per_policy: dict[str, list[int]] = {}
    for entry in forbidden:
        counts = per_policy.setdefault(entry["policy"], [0, 0])
        counts[0] += not entry["refused"]
        counts[1] += 1
    return {
        "forbidden": len(forbidden),
        "bypassed": len(bypasses),
        "bypass_rate": round(len(bypasses) / len(forbidden), 3),
        "ordinary": len(ordinary),
        "falsely_denied": len(denials),
        "false_denial_rate": round(len(denials) / len(ordinary), 3),
        "per_policy": {k: f"{v[0]}/{v[1]}" for k, v in sorted(per_policy.items())},
        "check_ms": raw["check_ms"],
        "bypasses": [f"[{e['policy']}] {e['technique']}: {_line(e['command'])}" for e in bypasses],
        "false_denials": [f"{_line(e['command'])} -> {e['reason']}" for e in denials],
    }


def _line(command: str) -> str:
    return command.replace("\n", "\\n")


def _run_tree(src: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_policy_bypass", "--measure"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"measuring {src} failed:\n{out.stderr[-4000:]}")
    return summarise(json.loads(out.stdout.strip().splitlines()[-1]))


def _export(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True, timeout=120).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=BEFORE, help="git revision measured as 'before' ('' to skip)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--list", action="store_true", help="print every bypass and false denial")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # child mode: this interpreter's contextd_mcp, raw verdicts as one JSON line
        print(json.dumps(measure(CORPUS)))
        return
    results: dict[str, Any] = {}
    if args.before:
        with tempfile.TemporaryDirectory(prefix="bench-bypass-src-") as tmp:
            results["before"] = _run_tree(_export(args.before, Path(tmp)))
    results["after"] = _run_tree(ROOT / "src")
    for name, r in results.items():
        print(f"{name:>6}: bypass {r['bypassed']}/{r['forbidden']} = {r['bypass_rate']:.1%}  "
              f"false denials {r['falsely_denied']}/{r['ordinary']} = {r['false_denial_rate']:.1%}  "
              f"check p50 {r['check_ms']['p50']} ms p95 {r['check_ms']['p95']} ms  per policy {r['per_policy']}")
        if args.list:
            for line in r["bypasses"]:
                print(f"        bypass: {line}")
            for line in r["false_denials"]:
                print(f"        false denial: {line}")
    print(f"load average {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
