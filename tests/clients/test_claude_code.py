"""The real Claude Code CLI (npm, pinned in tests/clients/package-lock.json) with contextd over stdio,
offline against a scripted Messages endpoint: what a user does after reading the README."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.claude_code import ClaudeWorld, Run, copy_example_project, debug_lines
from tests.clients.messages_stub import Script, ToolUse, Turn, serving, text_of, tool_results
from tests.clients.node import CLAUDE, require
from tests.e2e.daemons import serving_http

pytestmark = pytest.mark.slow

CONNECTED = "contextd: contextd-mcp stdio - ✔ Connected"
MISSING = "cat config/app.toml"
LESSON_ID = "the config file must be created first"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ClaudeWorld]:
    world = ClaudeWorld(require(CLAUDE), tmp_path)
    world.setup()
    yield world
    world.stop_daemon()


def registered(world: ClaudeWorld) -> None:
    """The README's command (user scope, as the issue asks) and the example hooks for this user."""
    added = world.run("mcp", "add", "--scope", "user", "contextd", "--", "contextd-mcp", "stdio")
    assert "Added stdio MCP server contextd" in added.stdout
    world.install_hooks_for_user()


def first_session() -> Script:
    """A failing command, the fix, the command passing; then memory_store and memory_search over MCP."""
    return Script([
        Turn(tools=(ToolUse("Bash", {"command": MISSING, "description": "Show the config"}),)),
        Turn(text="The config file needs to be created first.", tools=(ToolUse("Bash", {
            "command": "mkdir -p config && printf 'port = 8080\\n' > config/app.toml", "description": "Create it"}),)),
        Turn(tools=(ToolUse("Bash", {"command": MISSING, "description": "Show the config again"}),)),
        Turn(tools=(ToolUse("mcp__contextd__memory_store", {
            "title": "config/app.toml is not in the checkout",
            "content": f"Create config/app.toml (port = 8080) before reading it: {LESSON_ID}.",
        }),)),
        Turn(tools=(ToolUse("mcp__contextd__memory_search", {"query": "where does config/app.toml come from"}),)),
        Turn(text="The config exists now and the lesson is stored."),
    ])


def session_id(run: Run) -> str:
    return str(run.json()["session_id"])


def test_mcp_list_and_get_connect_without_opening_a_session(world: ClaudeWorld) -> None:
    registered(world)
    cold = world.run("mcp", "list")  # no daemon yet: the bridge starts it
    assert CONNECTED in cold.stdout, cold.stdout + cold.stderr
    warm = world.run("mcp", "list")
    assert CONNECTED in warm.stdout
    got = world.run("mcp", "get", "contextd")
    assert "Status: ✔ Connected" in got.stdout and "Scope: User config" in got.stdout
    # Claude Code fires SessionEnd (no SessionStart) for these commands, with a transcript path
    # that does not exist: nothing happened, so nothing may be opened or queued.
    # Claude Code waits for its SessionEnd hooks before exiting: the hook ran three times, asked
    # for this Claude session's contextd session once each, found none, and left it at that.
    asked = [(event["tool"], event["outcome"]) for event in world.audit()]
    assert asked == [("session_end", "error:not_found")] * 3, asked
    assert world.jobs() == []
    print(f"\nclaude mcp list → Connected: cold {cold.seconds:.2f} s, warm {warm.seconds:.2f} s")


def test_claude_code_connects_over_streamable_http_and_sse_with_a_token(world: ClaudeWorld) -> None:
    with serving_http(world.root, "--tenant", "acme", "--project", "api") as (daemon, token, _):
        for transport, path in (("http", "/mcp"), ("sse", "/sse")):
            world.run("mcp", "add", "--scope", "user", "--transport", transport, f"contextd-{transport}",
                      f"{daemon.base}{path}", "--header", f"Authorization: Bearer {token}")
        listed = world.run("mcp", "list").stdout
        assert f"contextd-http: {daemon.base}/mcp (HTTP) - ✔ Connected" in listed, listed
        assert f"contextd-sse: {daemon.base}/sse (SSE) - ✔ Connected" in listed, listed


def test_a_session_learns_and_the_next_one_starts_with_it(world: ClaudeWorld) -> None:
    registered(world)
    script = first_session()
    with serving(script) as world.base_url:
        first = world.session("The app cannot read its config; fix it and remember why.")
    assert first.json()["result"] == "The config exists now and the lesson is stored."
    requests = script.agent_requests()
    assert len(requests) == 6, [r["messages"][-1] for r in requests]
    # SessionStart ran before the first request and its context reached the model.
    assert re.search(r"SessionStart hook additional context: contextd session: `[0-9a-f-]{36}`", text_of(requests[0]))
    results = list(tool_results(requests[-1]).values())
    assert "No such file or directory" in results[0] and "port = 8080" in results[2]
    stored = json.loads(results[3])
    assert set(stored) >= {"id", "confidence"}
    found = json.loads(results[4])["memories"]
    assert found[0]["id"] == stored["id"]

    # SessionEnd queued the transcript's distillation: the error → fix pair became a lesson.
    (job,) = world.wait_jobs_done(1)
    assert job["state"] == "done" and job["result"]["memories_created"], job
    assert job["result"]["notes"] == [] or "transcript not read" not in " ".join(job["result"]["notes"])

    second = Script([Turn(text="Noted.")])
    with serving(second) as world.base_url:
        world.session("What do you know about this project's config?")
    injected = text_of(second.agent_requests()[0])
    assert "SessionStart hook additional context: ## Lessons from earlier sessions (contextd)" in injected
    assert LESSON_ID in injected  # what it stored through MCP
    assert "What fixed it: The config file needs to be created first" in injected  # what its transcript taught

    # Resuming the first session ends it again with the same transcript: nothing new to learn.
    resumed = Script([Turn(text="Still fine.")])
    with serving(resumed) as world.base_url:
        world.session("Anything left?", "--resume", session_id(first))
    # /compact in the resumed session: PreCompact saves a checkpoint, SessionStart(compact) re-injects.
    compacted = Script([])
    with serving(compacted) as world.base_url:
        world.session("/compact", "--resume", session_id(first))
    saved = [e for e in world.audit() if e["tool"] == "checkpoint_save"]
    assert [(e["transport"], e["outcome"]) for e in saved] == [("hook", "ok")]
    assert hook_ran(world.runs[-1], "PreCompact:manual", "pre-compact", "completed")
    assert hook_ran(world.runs[-1], "SessionStart:compact", "session-start", "finished")
    # Every session_end has queued its job (or said nothing_new) before its hook returned.
    jobs = sorted(world.wait_jobs_done(len(world.jobs())), key=lambda job: job["created_ts"])
    learned = set(jobs[0]["result"]["memories_created"])
    assert learned, jobs[0]
    for later in jobs[1:]:  # the resumes distil only their new turns: the first lesson is not seen again
        result = later["result"]
        assert not result["memories_reinforced"] and not learned & set(result["memories_created"]), later


def test_the_readme_per_project_setup_works_in_claude_p(world: ClaudeWorld) -> None:
    copy_example_project(world)  # .mcp.json and .claude/settings.json, nothing for the user
    pending = world.run("mcp", "list").stdout
    # Claude Code does not let a checkout approve its own server; `claude -p` runs it regardless.
    assert "contextd: contextd-mcp stdio - ⏸ Pending approval" in pending, pending
    script = Script([
        Turn(tools=(ToolUse("mcp__contextd__memory_store", {"title": "per-project setup", "content": "works"}),)),
        Turn(text="ok"),
    ])
    with serving(script) as world.base_url:
        run = world.session("store one thing")
    first, last = script.agent_requests()[0], script.agent_requests()[-1]
    assert "SessionStart hook additional context: contextd session: `" in text_of(first)
    assert set(json.loads(next(iter(tool_results(last).values())))) >= {"id", "confidence"}
    assert hook_ran(run, "SessionStart:startup", "session-start", "finished")


def hook_ran(run: Run, event: str, hook: str, verb: str) -> bool:
    """Claude Code's debug log says ``<event> [<the hook's command>] <verb> with status 0``; the
    example hooks' command is a shell line that finds ``contextd-mcp`` and runs ``hook <hook>``."""
    line = re.compile(rf"{re.escape(event)} \[.*\bhook {re.escape(hook)}\b.*\] {verb} with status 0")
    return any(line.search(text) for text in debug_lines(run, event))
