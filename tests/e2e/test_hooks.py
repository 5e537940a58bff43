"""`contextd-mcp hook ...` with Claude Code hook JSON samples (tests/data/hooks/, written from
the documented hook input format), against the real daemon it starts."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests import zygote as forks
from tests.e2e.daemons import start_as_bridge
from tests.e2e.test_stdio import stdio
from tests.helpers import CLI, data, env_for

pytestmark = pytest.mark.anyio
SAMPLES = Path(__file__).parents[1] / "data" / "hooks"


def sample(name: str, project: Path, transcript: Path | None, session_id: str | None = None) -> bytes:
    event = json.loads((SAMPLES / f"{name}.json").read_text())
    event["cwd"] = str(project)
    if transcript is not None:
        event["transcript_path"] = str(transcript)
    if session_id is not None:
        event["session_id"] = session_id
    return json.dumps(event).encode()


def hook(data_dir: Path, event: str, stdin: bytes, cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    return forks.run(
        [*CLI, "hook", event], input=stdin, capture_output=True, env=env_for(data_dir, **env), cwd=str(cwd), timeout=120
    )


@pytest.fixture
def transcript(tmp_path: Path) -> Path:
    path = tmp_path / "claude" / "projects" / "-home-dev-shop-api" / "3f2b8c1e-7d4a-4e9b-9a6f-2c5d8e1f0a7b.jsonl"
    path.parent.mkdir(parents=True)
    shutil.copy(SAMPLES / "transcript.jsonl", path)
    return path


async def wait_for_memory(data_dir: Path, project: Path, query: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    async with stdio(data_dir, project) as client:
        while time.monotonic() < deadline:
            found = data(await client.call_tool("memory_search", {"query": query}))["memories"]
            if found:
                return found[0]
            time.sleep(0.5)
    raise AssertionError(f"no memory for {query!r} within {timeout}s")


async def test_a_claude_code_session_through_its_hooks(data_dir: Path, project_dir: Path, transcript: Path) -> None:
    # SessionStart on a cold machine: the hook starts the daemon itself.
    started = hook(data_dir, "session-start", sample("session_start", project_dir, transcript), project_dir)
    assert started.returncode == 0, started.stderr
    output = json.loads(started.stdout)
    assert output["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert output["hookSpecificOutput"]["additionalContext"].startswith("contextd session: `")

    # PreCompact: a checkpoint of the transcript's digest, tied to this Claude session's contextd session.
    compacted = hook(data_dir, "pre-compact", sample("pre_compact", project_dir, transcript), project_dir)
    assert compacted.returncode == 0 and compacted.stdout == b"", compacted.stderr
    async with stdio(data_dir, project_dir) as client:
        (checkpoint,) = data(await client.call_tool("checkpoint_list", {}))["checkpoints"]
        assert checkpoint["tags"] == ["pre-compact", "auto"]
        assert checkpoint["summary"].startswith("Task: The upload tests fail since we bumped boto3")
        assert checkpoint["session_id"] in output["hookSpecificOutput"]["additionalContext"]
        context = data(await client.call_tool("checkpoint_resume", {"checkpoint_id": checkpoint["id"], "level": "context"}))
        assert "Still failing:" in context["context"] and "mypy src" in context["context"]
        assert "AKIA" not in context["context"]  # the env assignment is dropped, and scrubbed anyway

    # SessionEnd returns at once; distillation of the transcript happens in the daemon.
    began = time.perf_counter()
    ended = hook(data_dir, "session-end", sample("session_end", project_dir, transcript), project_dir)
    assert ended.returncode == 0 and ended.stdout == b"", ended.stderr
    assert time.perf_counter() - began < 10  # a process start; the bench measures it properly
    lesson = await wait_for_memory(data_dir, project_dir, "boto3 put_object ContentMD5 parameter validation error")
    assert "ContentMD5" in lesson["title"] or "ContentMD5" in lesson["description"]
    async with stdio(data_dir, project_dir) as client:  # the error → fix pair became a remediation
        error = 'botocore.exceptions.ParamValidationError: Unknown parameter in input: "ContentMD5"'
        assert data(await client.call_tool("remediation_search", {"error": error}))["remediations"]

    # The next Claude Code session starts with that lesson (recent work = the checkpoint).
    again = hook(data_dir, "session-start", sample("session_start", project_dir, transcript, "9a8b7c6d-new"), project_dir)
    context = json.loads(again.stdout)["hookSpecificOutput"]["additionalContext"]
    assert "ContentMD5" in context and "Latest checkpoint" in context


def test_a_hook_never_fails_the_session(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    cases = [
        ("session-start", b"not json at all", "not JSON"),
        ("session-start", b"[1, 2]", "not a JSON object"),
        ("post-tool-use", b"{}", "unknown hook event"),
    ]
    for event, stdin, reason in cases:
        result = hook(data_dir, event, stdin, project_dir)
        assert result.returncode == 0 and result.stdout == b""
        assert reason in result.stderr.decode()
    # A data directory that cannot exist: no daemon can start; still exit 0, reason on stderr.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = forks.run(
        [*CLI, "hook", "session-start"], input=b"{}", capture_output=True, timeout=60,
        env=env_for(blocker / "data"), cwd=str(project_dir),
    )
    assert result.returncode == 0 and result.stdout == b""
    assert result.stderr.decode().startswith("contextd-mcp hook session-start: ")


def test_session_end_without_a_session_start_still_distils(
    data_dir: Path, project_dir: Path, transcript: Path
) -> None:
    start_as_bridge(data_dir, env_for(data_dir))  # as the hook would start it (its own start: the session test)
    ended = hook(data_dir, "session-end", sample("session_end", project_dir, transcript, "11111111-solo"), project_dir)
    assert ended.returncode == 0 and ended.stdout == b"", ended.stderr
    assert ended.stderr == b""


def test_the_shipped_claude_code_settings_name_real_hook_events() -> None:
    from contextd_mcp.hooks import EVENTS

    examples = Path(__file__).parents[2] / "examples" / "claude-code"
    settings = json.loads((examples / "settings.json").read_text())
    wanted = {"SessionStart": "session-start", "PreCompact": "pre-compact", "SessionEnd": "session-end"}
    assert set(settings["hooks"]) == set(wanted)
    for claude_event, ours in wanted.items():
        (command,) = [h["command"] for group in settings["hooks"][claude_event] for h in group["hooks"]]
        # contextd-mcp from PATH or ~/.local/bin, else one line and exit 0 (tests/test_install.py runs them)
        assert f'exec "$c" hook {ours};' in command and "command -v contextd-mcp" in command and ours in EVENTS
    servers = json.loads((examples / ".mcp.json").read_text())["mcpServers"]
    assert settings["enabledMcpjsonServers"] == list(servers) == ["contextd"]
    assert servers["contextd"]["args"] == ["stdio"]


def test_session_end_of_a_command_that_wrote_no_transcript_opens_nothing(
    data_dir: Path, project_dir: Path, tmp_path: Path
) -> None:
    # `claude mcp list` / `claude mcp get` fire SessionEnd alone, naming a transcript never written.
    never_written = tmp_path / "claude" / "projects" / "-p" / "0badc0de-mcp-list.jsonl"
    ended = hook(data_dir, "session-end", sample("session_end", project_dir, never_written, "0badc0de-mcp-list"), project_dir)
    assert ended.returncode == 0 and ended.stdout == b"" and ended.stderr == b"", ended.stderr
    tools = [json.loads(line)["tool"] for line in (data_dir / "audit.log").read_text().splitlines()]
    assert tools == ["session_end"]  # asked once (not_found), then left alone: no session_start
    assert list((data_dir / "queue").glob("*/*.json")) == []
