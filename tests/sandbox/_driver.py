"""Stands in for the server in the containment tests: one JSON request per stdin line, one JSON
answer per stdout line. Run as root, or via runuser as the unprivileged test user, so that the
same cases run under both. It keeps its own helper (zygote) for the whole session, and reports
its peak RSS so that tests can tell whether a flood of output grew the "server".

Standard library + the package only: it is started with a PYTHONPATH of copied modules.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

import anyio

from contextd_mcp.sandbox import (
    SandboxBudget,
    SandboxLimits,
    SandboxUnavailable,
    budget_status,
    configure_budget,
    run_sandboxed,
)


async def _one(req: dict[str, Any]) -> dict[str, object]:
    try:
        result = await run_sandboxed(
            req["command"],
            Path(req["project_dir"]),
            Path(req["working_dir"]) if req.get("working_dir") else None,
            req.get("env"),
            SandboxLimits(**req.get("limits", {})),
            req.get("allow_unsandboxed", False),
            hidden=[Path(p) for p in req.get("hidden", [])],
            protect=req.get("protect", []),
            state_dir=Path(req["state_dir"]) if req.get("state_dir") else None,
            placeholder_linger_seconds=req.get("linger", 0.0),
        )
        return {"result": dataclasses.asdict(result)}
    except (ValueError, SandboxUnavailable) as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


async def _parallel(requests: list[dict[str, Any]]) -> dict[str, object]:
    answers: list[dict[str, object]] = [{} for _ in requests]

    async def one(i: int) -> None:
        answers[i] = await _one(requests[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(requests)):
            tg.start_soon(one, i)
    return {"results": answers}


async def _serve() -> None:
    for line in sys.stdin:
        req = json.loads(line)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        answer: dict[str, object]
        if "budget" in req:  # set this "server's" budget; answer with its status
            configure_budget(SandboxBudget(**req["budget"]))
            answer = {"status": budget_status()}
        elif "parallel" in req:
            answer = await _parallel(req["parallel"])
        else:
            answer = await _one(req)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        answer.update(pid=os.getpid(), maxrss_growth_kb=after - before)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    anyio.run(_serve)
