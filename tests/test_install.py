"""Installing for MCP clients: the command found where clients look, the Claude Code plugin's
manifests naming parts that exist, and hooks that never fail a session when the command is missing.
Real scripts in subprocesses, under a temporary HOME and a PATH without the virtualenv."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from contextd_mcp import __version__
from contextd_mcp.hooks import EVENTS

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "contextd"
LAUNCHER = PLUGIN / "scripts" / "contextd-mcp-launch"
COMMAND = ROOT / ".venv" / "bin" / "contextd-mcp"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"  # what a desktop-started client may have: no venv, no ~/.local/bin
CLAUDE_EVENTS = {"SessionStart": "session-start", "PreCompact": "pre-compact", "SessionEnd": "session-end"}


def run(args: list[str], home: Path, stdin: str = "", path: str = SYSTEM_PATH) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": path, "HF_HUB_OFFLINE": "1", "CONTEXTD_DATA_DIR": str(home / "data")}
    return subprocess.run(args, env=env, input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def linked(home: Path) -> Path:
    """What scripts/install-command.sh leaves: ~/.local/bin/contextd-mcp → the checkout's command."""
    done = run(["bash", str(ROOT / "scripts" / "install-command.sh")], home)
    assert done.returncode == 0, done.stderr
    return home / ".local" / "bin" / "contextd-mcp"


def test_install_command_links_into_local_bin_and_says_when_that_is_not_on_path(home: Path) -> None:
    assert COMMAND.exists(), "run scripts/setup.sh first"
    done = run(["bash", str(ROOT / "scripts" / "install-command.sh")], home)
    link = home / ".local" / "bin" / "contextd-mcp"
    assert done.returncode == 0 and link.is_symlink() and link.resolve() == COMMAND.resolve()
    assert f"linked {link}" in done.stdout
    assert f'export PATH="{link.parent}:$PATH"' in done.stderr
    version = run(["contextd-mcp", "--version"], home, path=f"{link.parent}:{SYSTEM_PATH}")
    assert version.returncode == 0 and version.stdout.strip() == __version__

    again = run(["bash", str(ROOT / "scripts" / "install-command.sh")], home, path=f"{link.parent}:{SYSTEM_PATH}")
    assert again.returncode == 0 and again.stderr == ""  # idempotent, and quiet once it is on PATH


def test_install_command_leaves_another_install_alone(home: Path) -> None:
    other = home / ".local" / "bin" / "contextd-mcp"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\necho pipx's\n")
    done = run(["bash", str(ROOT / "scripts" / "install-command.sh")], home)
    assert done.returncode == 0 and "left as it is" in done.stderr
    assert not other.is_symlink() and "pipx's" in other.read_text()


def _example_hooks() -> dict[str, str]:
    settings = json.loads((ROOT / "examples" / "claude-code" / "settings.json").read_text())
    return {event: entry[0]["hooks"][0]["command"] for event, entry in settings["hooks"].items()}


@pytest.mark.parametrize("event", sorted(CLAUDE_EVENTS))
def test_example_hooks_without_the_command_exit_0_with_one_useful_line(home: Path, event: str) -> None:
    """Was: `contextd-mcp hook …` exiting 127 with 'contextd-mcp: not found' on every session."""
    done = run(["sh", "-c", _example_hooks()[event]], home, stdin="{}")
    assert done.returncode == 0 and done.stdout == ""
    assert "not found" not in done.stderr
    assert done.stderr.splitlines() == [
        "contextd: contextd-mcp is not installed (not on PATH, not in ~/.local/bin): see the README, Install"
    ]


def test_example_hooks_find_the_command_in_local_bin_off_path(home: Path) -> None:
    linked(home)
    done = run(["sh", "-c", _example_hooks()["SessionEnd"]], home, stdin="{not json")
    # The real hook ran: it says why it did nothing, on stderr, and exits 0 (hooks.py).
    assert done.returncode == 0 and done.stdout == "" and "contextd" in done.stderr and "not installed" not in done.stderr


def test_the_marketplace_lists_the_plugin_and_the_plugin_names_parts_that_exist() -> None:
    market = json.loads((ROOT / ".claude-plugin" / "marketplace.json").read_text())
    assert market["name"] and market["owner"]["name"]
    (entry,) = market["plugins"]
    assert (ROOT / entry["source"]).resolve() == PLUGIN
    manifest = json.loads((PLUGIN / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == entry["name"] == "contextd"
    assert manifest["version"] == __version__

    servers = json.loads((PLUGIN / ".mcp.json").read_text())["mcpServers"]
    assert set(servers) == {"contextd"}
    assert servers["contextd"]["args"] == ["stdio"]
    command = Path(servers["contextd"]["command"].replace("${CLAUDE_PLUGIN_ROOT}", str(PLUGIN)))
    assert command == LAUNCHER and os.access(command, os.X_OK)

    hooks = json.loads((PLUGIN / "hooks" / "hooks.json").read_text())["hooks"]
    assert {event: h[0]["hooks"][0]["command"] for event, h in hooks.items()} == {
        event: f'"${{CLAUDE_PLUGIN_ROOT}}/scripts/contextd-mcp-launch" hook {name}' for event, name in CLAUDE_EVENTS.items()
    }
    assert set(CLAUDE_EVENTS.values()) == set(EVENTS)  # the hooks the CLI implements, no more, no fewer
    assert set(_example_hooks()) == set(hooks)


def test_plugin_launcher_runs_the_command_from_local_bin_off_path(home: Path) -> None:
    linked(home)
    done = run([str(LAUNCHER), "--version"], home)
    assert done.returncode == 0 and done.stdout.strip() == __version__


def test_plugin_launcher_without_the_command_tells_a_hook_once_and_never_fails_it(home: Path) -> None:
    first = run([str(LAUNCHER), "hook", "session-end"], home, stdin="{}")
    second = run([str(LAUNCHER), "hook", "session-start"], home, stdin="{}")
    assert first.returncode == 0 and second.returncode == 0 and first.stdout == second.stdout == ""
    assert "contextd-mcp command is not installed" in first.stderr and "scripts/setup.sh" in first.stderr
    assert second.stderr == ""  # said once per user

    server = run([str(LAUNCHER), "stdio"], home)
    assert server.returncode == 127 and "not installed" in server.stderr  # the client shows why it failed


def test_claude_mcp_add_example_registers_for_the_user() -> None:
    script = (ROOT / "examples" / "claude-mcp-add.sh").read_text()
    assert "claude mcp add --scope user contextd -- contextd-mcp stdio" in script
