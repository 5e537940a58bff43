"""Token economy (issue 20): what tools/list costs per toolset, and each tool's answer size.

In-process, through the real MCP SDK client, on the real store and model. Only the tree on
``PYTHONPATH`` decides the code measured, so the same script gives "before" and "after":

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_toolsets --out after.json
    HF_HUB_OFFLINE=1 PYTHONPATH=<base-worktree>/src:. .venv/bin/python -m bench.bench_toolsets --out before.json

Sizes are of the JSON text a client receives (``content[0].text``): characters, characters / 4
(the usual estimate) and WordPiece tokens (the embedding model's tokenizer, the response caps'
counter). Answer sizes are p50 over a scripted workload that calls every tool (``--n`` times each).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from bench import corpus
from contextd_mcp.adapters.token_counter import WordPieceTokenCounter
from contextd_mcp.container import build
from contextd_mcp.mcp.caller import Caller, acting_as
from contextd_mcp.models.scope import Scope
from contextd_mcp.paths import DataPaths

COUNTER = WordPieceTokenCounter()
HAS_TOOLSETS = "toolsets" in {f.name for f in dataclasses.fields(Caller)}


def caller(selection: str, connection: str, project_dir: Path) -> Caller:
    extra = {"toolsets": selection} if HAS_TOOLSETS else {}
    return Caller(scope=Scope(tenant="bench", team="core", project="api"), transport="memory",
                  connection_id=connection, project_dir=str(project_dir), **extra)  # type: ignore[arg-type]


def size(text: str) -> dict[str, int]:
    return {"chars": len(text), "chars_div_4": len(text) // 4, "wordpiece": COUNTER.count(text)}


async def listing(container: Any, selection: str, project_dir: Path) -> dict[str, int]:
    with acting_as(caller(selection, "list-" + selection, project_dir)):
        async with Client(container.server()) as client:
            tools = (await client.list_tools()).tools
    text = json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools])
    return {"tools": len(tools), **size(text)}


class Recorder:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.answers: dict[str, list[str]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    async def __call__(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(name, arguments)
        text = result.content[0].text
        (self.errors if result.is_error else self.answers)[name].append(text)
        return {} if result.is_error else dict(result.structured_content or {})


async def workload(call: Recorder, n: int, project_dir: Path) -> None:
    memories = list(corpus.memories(max(60, 3 * n)))
    for memory in memories:
        await call("memory_store", memory.model_dump(mode="json", exclude_defaults=True))
    ids = []
    for query in corpus.queries(2 * n):
        found = await call("memory_search", {"query": query, "limit": 5})
        ids += [m["id"] for m in found.get("memories", [])[:1]]
    for i, memory_id in enumerate(ids[:n]):
        await call("memory_get", {"memory_id": memory_id})
        await call("memory_feedback", {"memory_id": memory_id, "helpful": i % 3 != 0})
        await call("memory_outcome", {"memory_id": memory_id, "succeeded": i % 2 == 0})

    for i, query in enumerate(corpus.queries(n, seed=5)):
        started = await call("session_start", {"task": query, "project_path": str(project_dir)})
        await call("checkpoint_save", {"summary": f"Step {i}: {query}", "context": f"Decided: try {query}.", "tags": ["bench"]})
        checkpoints = await call("checkpoint_list", {"limit": 5})
        first = (checkpoints.get("checkpoints") or [{}])[0].get("id")
        if first:
            await call("checkpoint_resume", {"checkpoint_id": first, "level": "context"})
        branch = await call("branch_create", {"description": f"look into {query}", "budget": 4096, "timeout_seconds": 300})
        if branch.get("branch_id"):
            await call("branch_status", {"branch_id": branch["branch_id"]})
            await call("branch_return", {"branch_id": branch["branch_id"], "message": f"found the cause of {query}"})
        ended = await call("session_end", {"session_id": started.get("session_id"), "outcome": "success",
                                           "summary": f"Worked on {query}; it is fixed."})
        if ended.get("job_id"):
            await call("distill_status", {"job_id": ended["job_id"]})

    for i in range(n):
        skill = await call("skill_create", {"name": f"review-{i}", "description": "Review a migration for locks.",
                                            "prompt_template": "Review {{file}} for long locks. Focus: {{focus?}}",
                                            "steps": ["Find ALTER TABLE", "Check lock timeouts"]})
        await call("skill_get", {"name": f"review-{i}"})
        await call("skill_list", {"query": "check a schema change before merge"})
        if skill.get("id"):
            await call("skill_update", {"skill_id": skill["id"], "steps": ["Find ALTER TABLE"]})
        agent = await call("agent_create", {"name": f"reviewer-{i}", "description": "Reviews pull requests.",
                                            "system_prompt": "You review code. Be brief.",
                                            "collections_access": {"memories": "read", "skills": "read"}})
        await call("agent_get", {"name": f"reviewer-{i}"})
        await call("agent_list", {})
        if agent.get("id"):
            await call("agent_update", {"agent_id": agent["id"], "temperature": 0.0})
            await call("agent_delete", {"agent_id": agent["id"]})
        if skill.get("id"):
            await call("skill_delete", {"skill_id": skill["id"]})

        fix = await call("remediation_record", {
            "title": f"ModuleNotFoundError: No module named 'yaml{i}'",
            "problem": f"Traceback (most recent call last):\n  File \"/srv/app/cli.py\", line {i}, in <module>\n"
                       f"    import yaml{i}\nModuleNotFoundError: No module named 'yaml{i}'",
            "solution": "The distribution is PyYAML: `python -m pip install PyYAML`.", "tags": ["python"]})
        await call("remediation_search", {"error": f"ModuleNotFoundError: No module named 'yaml{i}'", "limit": 3})
        if fix.get("id"):
            await call("remediation_get", {"remediation_id": fix["id"]})
            await call("remediation_feedback", {"remediation_id": fix["id"], "helpful": True})

        policy = await call("policy_set", {"title": f"No force-push {i}", "severity": "warning", "scope": "project",
                                           "rule": {"kind": "command_regex", "pattern": r"\bgit\s+push\b.*--force"},
                                           "suggestion": "Push a branch and open a pull request."})
        await call("policy_list", {})
        await call("policy_check", {"action": "git push --force origin main"})
        if policy.get("id"):
            await call("policy_get", {"policy_id": policy["id"]})
            await call("policy_delete", {"policy_id": policy["id"]})
        await call("bash", {"command": f"echo step {i}"})
    await call("policy_pack_enable", {"pack": "security", "scope": "project"})
    if HAS_TOOLSETS:
        for _ in range(n):
            await call("toolsets", {})


def p50(texts: list[str]) -> dict[str, int]:
    sizes = [size(t) for t in texts]
    return {k: int(statistics.median(s[k] for s in sizes)) for k in sizes[0]}


async def measure(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-toolsets-") as tmp:
        root = Path(tmp)
        project_dir = root / "project"
        project_dir.mkdir()
        container = build(DataPaths(root / "data"))
        try:
            selections = ["all"]
            if HAS_TOOLSETS:
                from contextd_mcp.mcp import toolsets

                selections = ["default", "all", *toolsets.TOOLSETS]
            lists = {s: await listing(container, s, project_dir) for s in selections}
            with acting_as(caller("all", "workload", project_dir)):
                async with Client(container.server()) as client:
                    call = Recorder(client)
                    await workload(call, n, project_dir)
        finally:
            container.close()
    return {
        "tools_list": lists,
        "answers_p50": {name: {"calls": len(texts), **p50(texts)} for name, texts in sorted(call.answers.items())},
        "errors": {name: texts[0][:200] for name, texts in sorted(call.errors.items())},
        # What session_start puts in the agent's context (its own WordPiece count), p50.
        "injection_tokens_p50": statistics.median(json.loads(t)["injection_tokens"] for t in call.answers["session_start"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="calls of each tool (searches: twice as many)")
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args()
    figures = anyio.run(measure, args.n)
    text = json.dumps(figures, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
