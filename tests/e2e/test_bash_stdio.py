"""bash through the real `contextd-mcp stdio` bridge: the project is the bridge's repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_stdio import stdio
from tests.helpers import data

pytestmark = pytest.mark.anyio


async def test_bash_runs_in_the_bridges_repository(shared_data_dir: Path, project_dir: Path) -> None:
    subprocess.run(["git", "init", "-q", str(project_dir)], check=True)
    (project_dir / "pkg").mkdir()
    async with stdio(shared_data_dir, project_dir / "pkg") as client:
        result = data(await client.call_tool("bash", {"command": "git rev-parse --show-toplevel; touch from-agent"}))
        assert result["exit_code"] == 0, result
        assert result["stdout"].strip() == str(project_dir)
        curl = data(await client.call_tool("bash", {"command": "curl -sS -m 3 http://127.0.0.1:1/ || echo offline"}))
        assert "offline" in curl["stdout"]
    assert (project_dir / "from-agent").exists()
