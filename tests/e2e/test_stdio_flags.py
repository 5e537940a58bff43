"""Configuration a client cannot strip (issue 16, item 5).

MCP Inspector 2.x, the TypeScript SDK and the Python SDK start a stdio server with only HOME,
LOGNAME, PATH, SHELL, TERM and USER. Before: ``CONTEXTD_*`` in the client's config never
arrived, a second daemon started on the default data directory under the default scope, and
``stdio --data-dir/--tenant/--project`` did not exist (argparse exit 2).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, get_default_environment

from tests.e2e.daemons import audit_events
from tests.helpers import CLI, data

pytestmark = pytest.mark.anyio

ALLOWED = {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"}


def stripped_home(tmp_path: Path) -> Path:
    """A fresh HOME (so a daemon on the default data directory would show), sharing the
    per-user model cache so the daemon does not rebuild it."""
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    (home / ".cache" / "contextd-mcp").symlink_to(Path.home() / ".cache" / "contextd-mcp")
    return home


def client(cwd: Path, home: Path, *args: str, **env: str) -> Client:
    # The SDK adds exactly the allow-listed variables to ``env`` (get_default_environment).
    params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "stdio", *args], env={"HOME": str(home), **env},
                                   cwd=str(cwd))
    return Client(params, read_timeout_seconds=90)


def last_call(data_dir: Path, tool: str) -> dict[str, Any]:
    return [e for e in audit_events(data_dir) if e.get("tool") == tool][-1]


async def test_flags_reach_the_daemon_through_an_allow_listed_environment(
    data_dir: Path, project_dir: Path, tmp_path: Path
) -> None:
    assert set(get_default_environment()) <= ALLOWED  # what the client passes, as Inspector does
    home = stripped_home(tmp_path)
    flags = ("--data-dir", str(data_dir), "--tenant", "acme-flag", "--project", "flagged")
    async with client(project_dir, home, *flags) as agent:
        stored = data(await agent.call_tool("memory_store", {"title": "Scoped by flags", "content": "Kept."}))
    event = last_call(data_dir, "memory_store")
    assert (event["tenant"], event["team"], event["project"]) == ("acme-flag", "default", "flagged")
    daemon = json.loads((data_dir / "daemon.json").read_text())
    assert not (home / ".local" / "share" / "contextd-mcp").exists()  # no second daemon on the default
    # The same flags find the memory again; another tenant by flag does not.
    async with client(project_dir, home, *flags) as agent:
        assert data(await agent.call_tool("memory_get", {"memory_id": stored["id"]}))["title"] == "Scoped by flags"
    async with client(project_dir, home, "--data-dir", str(data_dir), "--tenant", "other", "--project", "flagged") as agent:
        assert data(await agent.call_tool("memory_search", {"query": "scoped by flags"}))["memories"] == []
    assert json.loads((data_dir / "daemon.json").read_text())["pid"] == daemon["pid"]  # one daemon throughout


async def test_flags_win_over_the_environment(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    home = stripped_home(tmp_path)
    async with client(project_dir, home, "--data-dir", str(data_dir), "--project", "from-flag",
                      CONTEXTD_PROJECT="from-env", CONTEXTD_TENANT="env-tenant") as agent:
        await agent.call_tool("memory_store", {"title": "Which project", "content": "The flag's."})
    event = last_call(data_dir, "memory_store")
    assert (event["tenant"], event["project"]) == ("env-tenant", "from-flag")


def test_a_tenant_flag_follows_the_rules_of_contextd_tenant(data_dir: Path, project_dir: Path, tmp_path: Path) -> None:
    """The flag travels as CONTEXTD_TENANT would, so the daemon applies the same rules: a
    name the variable may not use, the flag may not either (same refusal, nothing stored)."""
    home = stripped_home(tmp_path)
    base = {"HOME": str(home), **get_default_environment(), "HF_HUB_OFFLINE": "1"}

    def refused(args: list[str], env: dict[str, str]) -> str:
        done = subprocess.run([*CLI, "stdio", "--data-dir", str(data_dir), *args], cwd=project_dir, env=env,
                              input=b"", capture_output=True, timeout=120)
        assert done.returncode == 1, done
        return done.stderr.decode()

    by_flag = refused(["--tenant", "../etc"], base)
    by_env = refused([], {**base, "CONTEXTD_TENANT": "../etc"})
    assert "cannot resolve scope" in by_flag and "tenant" in by_flag
    assert by_flag == by_env
