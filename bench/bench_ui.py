"""The web page with 10k memories: how long each view takes to load, and screenshots of each.

    python -m bench.bench_ui [--memories 10000] [--runs 5] [--shots docs/ui] [--out bench/results_ui.json]

Fills a data directory in-process (the bench corpus, batched embedding), rates a few hundred
lessons over the last two weeks (the chart's data), starts the real daemon with HTTP, adds one
record of every other kind over MCP (a session with learnings, a checkpoint, a skill, an agent, a
policy, a remediation), then times each view: the server's answer over HTTP (median of ``--runs``,
with the token cookie, as a browser sends it) and the full load in headless Chromium (navigation
to the load event: HTML, CSS, JS). ``--shots`` saves a screenshot of each view there.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio

from bench.contextd import fill
from contextd_mcp.paths import DataPaths
from contextd_mcp.scope_resolver import resolve_scope

VIEWS = {"dashboard": "/ui/", "memories": "/ui/memories", "search": "/ui/memories?q=flaky+test+timeout",
         "memory": None, "remediations": "/ui/kind/remediations", "policies": "/ui/kind/policies",
         "skills": "/ui/kind/skills", "agents": "/ui/kind/agents", "checkpoints": "/ui/kind/checkpoints",
         "sessions": "/ui/sessions", "session": None}
RATED = 300  # memories given a rating history, spread over DAYS
DAYS = 14


def rate(data_dir: Path, project_dir: Path) -> None:
    """Searches and ratings through the service, then their times spread over the last DAYS days."""
    from contextd_mcp.container import build
    from contextd_mcp.models.requests import MemoryFeedback, SearchMemories
    from contextd_mcp.ports.scoped_store import Stores
    from contextd_mcp.services.memory import COLLECTION

    from bench import corpus

    scope = resolve_scope(project_dir, {})
    container = build(DataPaths(data_dir))
    rng = random.Random(5)
    try:
        rated: set[str] = set()
        for query in corpus.queries(RATED):
            _, hits = container.memory.search_logged(scope, SearchMemories(query=query, limit=3), origin="bench")
            for hit in hits[:2]:
                container.memory.feedback(scope, MemoryFeedback(memory_id=hit.id, helpful=rng.random() < 0.7), "bench")
                rated.add(hit.id)
        store = Stores(container.store).of(scope)
        now = time.time()
        for record in store.get(COLLECTION, sorted(rated)):
            events = [{**e, "ts": now - rng.uniform(0, DAYS) * 86400} for e in record.payload.get("events", [])]
            store.set_fields(COLLECTION, record.id, {"events": events})
    finally:
        container.close()


async def other_records(base: str, token: str) -> dict[str, str]:
    from tests.e2e.daemons import http_client
    from tests.helpers import data

    async with http_client(base, token, **{"X-Contextd-Toolsets": "all"}) as client:
        async def call(name: str, arguments: dict[str, Any]) -> Any:
            return data(await client.call_tool(name, arguments))

        await call("skill_create", {"name": "review-migration", "description": "Review a migration for locks and rollback.",
                                    "prompt_template": "Review {{file}} for long locks and a safe rollback."})
        await call("agent_create", {"name": "reviewer", "description": "Reviews pull requests.",
                                    "system_prompt": "You review pull requests for safety."})
        await call("policy_set", {"title": "No force-push", "rule": {"kind": "command_regex", "pattern": r"\bgit\s+push\b.*--force"},
                                  "severity": "critical", "scope": "project", "category": "git",
                                  "suggestion": "Push a branch and open a pull request."})
        await call("remediation_record", {"title": "pytest: fixture 'db' not found", "problem": "fixture 'db' not found",
                                          "solution": "Install the plugin: pip install pytest-postgresql."})
        started = await call("session_start", {"task": "fix the flaky test timeout in the payments service"})
        session = started["session_id"]
        await call("checkpoint_save", {"summary": "Found the flaky timeout: the retry loop sleeps 30 s in CI.", "session_id": session})
        learning = {"title": "Lower the retry sleep in CI", "description": "CI timeouts came from a 30 s retry sleep.",
                    "content": "Set RETRY_SLEEP_S=1 in CI; the 30 s default exceeded the test timeout.", "outcome": "success"}
        await call("session_end", {"session_id": session, "outcome": "success", "summary": "Fixed the flaky timeout.", "learnings": [learning]})
        return {"session": started["session_id"]}


def timed_get(base: str, path: str, token: str, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        request = urllib.request.Request(base + path, headers={"Cookie": f"contextd_ui={token}"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:
            body = response.read()
            assert response.status == 200, (path, response.status)
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1), "bytes": len(body)}


def browser_loads(base: str, token: str, paths: dict[str, str], shots: Path | None, profile: Path) -> dict[str, float]:
    from tests.ui.browser import chromium

    loads = {}
    with chromium(profile) as driver:
        driver.get(f"{base}/ui/login#token={token}")
        driver.find_element("css selector", "h1")
        for name, path in paths.items():
            driver.get(base + path)
            driver.find_element("css selector", "h1")
            timing = driver.execute_script(
                "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;")
            loads[name] = round(float(timing), 1)
            if shots is not None:
                driver.set_window_size(1200, 800)
                driver.save_screenshot(str(shots / f"{name}.png"))
                shrink(shots / f"{name}.png")
    return loads


def shrink(png: Path) -> None:
    """A 64-colour palette: the screenshots are committed, and flat UI colours lose nothing."""
    try:
        from PIL import Image
    except ImportError:  # pillow comes with the bench extra (matplotlib)
        return
    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=64)
    small.save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shots", type=Path, help="save a screenshot of each view here")
    parser.add_argument("--out", type=Path, default=Path("bench/results_ui.json"))
    args = parser.parse_args(argv)

    from tests.e2e.daemons import create_token, start_daemon
    from tests.helpers import free_port

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        root = Path(tmp)
        data_dir, project_dir = root / "data", root / "payments"
        project_dir.mkdir()
        fill_s = fill(data_dir, project_dir, args.memories)
        rate(data_dir, project_dir)
        scope = resolve_scope(project_dir, {})
        token = create_token(data_dir, "--tenant", scope.tenant, "--team", scope.team, "--project", scope.project)
        daemon = start_daemon(data_dir, project_dir, http=f"127.0.0.1:{free_port()}")
        try:
            assert daemon.base is not None
            made = anyio.run(other_records, daemon.base, token)
            listing = urllib.request.Request(daemon.base + "/ui/memories", headers={"Cookie": f"contextd_ui={token}"})
            with urllib.request.urlopen(listing, timeout=120) as response:
                found = re.search(r'class="memory" href="([^"]+)"', response.read().decode())
            assert found, "the listing shows no memory"
            paths = {name: path or "" for name, path in VIEWS.items()}
            paths["memory"] = found.group(1).replace("&amp;", "&")
            paths["session"] = f"/ui/sessions/{made['session']}"
            server = {name: timed_get(daemon.base, path, token, args.runs) for name, path in paths.items()}
            if args.shots:
                args.shots.mkdir(parents=True, exist_ok=True)
            browser = browser_loads(daemon.base, token, paths, args.shots, root / "profile")
        finally:
            daemon.stop()
    result = {"memories": args.memories, "fill_s": round(fill_s, 1), "runs": args.runs,
              "server_ms": server, "browser_load_ms": browser}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
