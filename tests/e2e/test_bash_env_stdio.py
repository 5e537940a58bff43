"""bash's env refusal through the real `contextd-mcp stdio` bridge and daemon: a tool error
naming the field, the server keeps serving, and nothing was sourced."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_stdio import stdio
from tests.helpers import data, error_text

pytestmark = pytest.mark.anyio


async def test_bash_env_refused_and_the_daemon_keeps_serving(shared_data_dir: Path, project_dir: Path) -> None:
    subprocess.run(["git", "init", "-q", str(project_dir)], check=True)
    (project_dir / "hook.sh").write_text("touch sourced\n")
    async with stdio(shared_data_dir, project_dir) as client:
        refused = await client.call_tool("bash", {"command": "true", "env": {"BASH_ENV": "./hook.sh"}})
        assert error_text(refused).startswith("invalid_input: env.BASH_ENV: refused")
        refused = await client.call_tool("bash", {"command": "ls", "env": {"LD_PRELOAD": "./x.so"}})
        assert "env.LD_PRELOAD: refused" in error_text(refused)
        ran = data(await client.call_tool("bash", {"command": "echo alive", "env": {"GREETING": "hi"}}))
        assert ran["stdout"] == "alive\n" and ran["exit_code"] == 0
    assert not (project_dir / "sourced").exists()
