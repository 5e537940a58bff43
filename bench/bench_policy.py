"""policy_check latency with N policies applying to the caller.

    .venv/bin/python -m bench.bench_policy [--policies 100] [--calls 500] [--json FILE]

N policies spread over the caller's org, team and project (a mix of every rule kind: command
regexes, globs, the secret detector on content, requires, write-outside, all/any), the security
pack among them, and overrides of a tenth of them from lower scopes. Each call checks a
different realistic action (shell commands with a project context; a third carry 4 KB of
content to scan for secrets). Timed through the service (what bash calls) and through the MCP
tool in-process (validation, JSON, scrubbing, audit). Wall-clock on a shared machine: the load
average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pydantic import TypeAdapter

from contextd_mcp.container import Container, build
from contextd_mcp.models.policy import EnablePack, PolicyContext, Rule, SetPolicy
from contextd_mcp.models.scope import Scope, ScopeLevel
from contextd_mcp.paths import DataPaths

SCOPE = Scope(tenant="bench", team="core", project="api")
RULE: TypeAdapter[Any] = TypeAdapter(Rule)
TOOLS = ["terraform", "kubectl", "helm", "docker", "psql", "aws", "gcloud", "npm", "pip", "cargo", "make", "rsync"]
WORDS = ["prod", "delete", "destroy", "drop", "truncate", "--force", "apply", "publish", "reset", "purge"]
ACTIONS = [
    "git status", "pytest -q tests/", "npm run build > /dev/null", "git commit -am 'fix parser'", "ls -la src",
    "docker build -t api:dev .", "cargo test --release", "git push origin feature/login", "make lint",
    "kubectl get pods -n staging", "terraform plan -out plan.bin", "cp build/app dist/app", "rg TODO src",
    "curl -s https://api.example.com/health | jq .status", "python -m pip install -r requirements.txt",
    "helm upgrade api ./chart -n staging", "psql -c 'select count(*) from users'", "echo done >> build.log",
]


def make_rule(i: int, rng: random.Random) -> dict[str, Any]:
    tool, word = rng.choice(TOOLS), rng.choice(WORDS)
    kind = i % 7
    if kind == 0:
        return {"kind": "command_regex", "pattern": rf"\b{tool}\b.*\b{word}\b"}
    if kind == 1:
        return {"kind": "path_glob", "globs": [f"**/{word}/*.{tool[:3]}", f"secrets-{i}/**", f"*.{tool}-{i}"]}
    if kind == 2:
        return {"kind": "forbidden_content", "pattern": rf"(?i)\b{word}_{tool}_{i}\b"}
    if kind == 3:
        return {"kind": "requires", "when": rf"\b{tool}\s+{word}\b", "must_include": r"\b(?:plan|--dry-run|diff)\b"}
    if kind == 4:
        return {"kind": "write_outside_project", "allow": ["/tmp/**", "/dev/null", f"/var/cache/{tool}/**"]}
    if kind == 5:
        return {"kind": "all", "rules": [{"kind": "command_regex", "pattern": rf"\b{tool}\b"},
                                         {"kind": "command_regex", "pattern": rf"\b{word}\b"}]}
    return {"kind": "any", "rules": [{"kind": "command_regex", "pattern": rf"\b{tool}\s+{word}\b"},
                                     {"kind": "path_glob", "globs": [f"{word}-{i}.lock"]}]}


def populate(container: Container, policies: int) -> int:
    service = container.policies
    assert service is not None
    rng = random.Random(11)
    service.enable_pack(SCOPE, EnablePack(pack="security", scope=ScopeLevel.org))
    made = 5
    ids: list[str] = []
    levels = [ScopeLevel.org, ScopeLevel.team, ScopeLevel.project]
    while made < policies:
        level = levels[made % 3]
        severity = ["critical", "warning", "info"][made % 3]
        request = SetPolicy(title=f"policy {made}", rule=RULE.validate_python(make_rule(made, rng)),
                            severity=severity, scope=level, category=rng.choice(["security", "git", "infra", "db"]),
                            suggestion=f"Do it the safe way ({made}).")
        saved = service.set(SCOPE, request)
        if level is not ScopeLevel.project:
            ids.append(saved.id)
        made += 1
    # Overrides of a tenth of the wider policies, from the project.
    for parent in rng.sample(ids, max(1, policies // 10)):
        service.set(SCOPE, SetPolicy(overrides=parent, scope=ScopeLevel.project, severity="info"))
    return service.counts(SCOPE)


def workload(calls: int) -> list[tuple[str, PolicyContext]]:
    rng = random.Random(5)
    content = "\n".join(f"line {i}: value = compute({i}) # ordinary code, no secrets" for i in range(80))
    out = []
    for i in range(calls):
        action = rng.choice(ACTIONS) if i % 4 else f"{rng.choice(TOOLS)} {rng.choice(WORDS)} target-{i}"
        context = PolicyContext(project_dir="/work/api", working_dir="", content=content if i % 3 == 0 else None,
                                history=["pytest -q"] if i % 2 else [])
        out.append((action, context))
    return out


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered), 3), "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
            "n": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-policy-") as tmp:
        container = build(DataPaths(Path(tmp)))
        try:
            stored = populate(container, args.policies)
            service = container.policies
            assert service is not None
            work = workload(args.calls)
            first = service.check(SCOPE, *work[0])
            print(f"{stored} stored policy records; a check evaluates {first.checked} policies "
                  f"and applies {len(first.overridden)} overrides", flush=True)
            samples, violations = [], 0
            for action, context in work:
                started = time.perf_counter()
                verdict = service.check(SCOPE, action, context)
                samples.append((time.perf_counter() - started) * 1000)
                violations += len(verdict.violations)
            # Right after a policy write the applicable set is read from the store again.
            cold = []
            for action, context in work[:100]:
                service._applicable_cache.clear()
                started = time.perf_counter()
                service.check(SCOPE, action, context)
                cold.append((time.perf_counter() - started) * 1000)
            results["check_service_after_write_ms"] = percentiles(cold)
            results["policies_checked"] = first.checked
            results["violations_per_call"] = round(violations / len(work), 2)
            results["check_service_ms"] = percentiles(samples)
            results["check_tool_ms"] = tool_latency(container, work)
            results["load_average"] = os.getloadavg()
            print(f"policy_check with {first.checked} policies: service {results['check_service_ms']} "
                  f"(right after a write {results['check_service_after_write_ms']}), "
                  f"MCP tool {results['check_tool_ms']} ({results['violations_per_call']} violations per call; "
                  f"load average {results['load_average']})", flush=True)
        finally:
            container.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def tool_latency(container: Container, work: list[tuple[str, PolicyContext]]) -> dict[str, float]:
    import anyio
    from mcp import Client

    from contextd_mcp.mcp.caller import Caller, acting_as

    samples: list[float] = []

    async def run() -> None:
        caller = Caller(scope=SCOPE, transport="memory", connection_id=uuid.uuid4().hex[:8])
        with acting_as(caller):
            async with Client(container.server()) as client:
                for action, context in work:
                    arguments = {"action": action, "context": context.model_dump(exclude_none=True)}
                    started = time.perf_counter()
                    result = await client.call_tool("policy_check", arguments)
                    samples.append((time.perf_counter() - started) * 1000)
                    assert not result.is_error, result.content

    anyio.run(run)
    return percentiles(samples)


if __name__ == "__main__":
    main()
