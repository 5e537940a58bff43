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

import anyio

from contextd_mcp.sandbox import SandboxLimits, SandboxUnavailable, run_sandboxed


async def _serve() -> None:
    for line in sys.stdin:
        req = json.loads(line)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
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
            )
            answer: dict[str, object] = {"result": dataclasses.asdict(result)}
        except (ValueError, SandboxUnavailable) as exc:
            answer = {"error": type(exc).__name__, "message": str(exc)}
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        answer.update(pid=os.getpid(), maxrss_growth_kb=after - before)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    anyio.run(_serve)
