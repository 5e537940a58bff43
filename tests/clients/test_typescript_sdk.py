"""The MCP TypeScript SDK (npm, pinned) over stdio and Streamable HTTP: every schema compiles under
ajv strict, a representative set of tools answers, and every structuredContent matches its tool's
output schema (listed when ``CONTEXTD_TOOLS_OUTPUT_SCHEMA`` is on)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from contextd_mcp.paths import default_cache_dir
from tests.clients.claude_code import CONTEXTD
from tests.clients.node import CLIENTS, NODE_MODULES, require
from tests.e2e.daemons import serving_http

pytestmark = pytest.mark.slow

SCRIPT = CLIENTS / "sdk_client.mjs"
SDK = NODE_MODULES / "@modelcontextprotocol" / "sdk" / "package.json"
# The generated tool list: what every client must see.
TOOLS = {tool["name"] for tool in json.loads((CLIENTS.parents[1] / "schema.json").read_text())["tools"]}


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    # What a client that passes an allow-listed environment plus its config's `env` block sends.
    base = {k: os.environ[k] for k in ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER") if k in os.environ}
    return {
        **base,
        "CONTEXTD_DATA_DIR": str(data_dir),
        "CONTEXTD_EMBEDDING_CACHE_DIR": str(default_cache_dir() / "models"),
        "HF_HUB_OFFLINE": "1",
        "CONTEXTD_TOOLSETS": "all",  # every tool's schemas and answers are checked, not the default set's
        **extra,
    }


def sdk_client(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run([node, str(SCRIPT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def assert_report(report: dict[str, Any], output_schemas: bool, denied: frozenset[str] = frozenset()) -> None:
    assert report["schema_errors"] == []
    assert set(report["annotations"]) == TOOLS
    assert report["output_schemas"] == (report["tools"] if output_schemas else 0)
    assert report["schemas_compiled"] == report["tools"] + report["output_schemas"]
    refused = {c["tool"]: c["error"] for c in report["calls"] if c["tool"] in denied}
    assert all(error.startswith("denied: ") for error in refused.values()) and set(refused) == denied, refused
    calls = [c for c in report["calls"] if c["tool"] not in denied]
    failed = [c for c in calls if not c["ok"] or c["valid"] is False or not c["structured"]]
    assert failed == [], json.dumps(failed)
    if output_schemas:
        assert all(c["valid"] is True for c in calls)
    assert len(report["calls"]) >= 25
    for name, hints in report["annotations"].items():
        assert hints["openWorldHint"] is False, name


@pytest.mark.parametrize("output_schemas", [True, False], ids=["output-schemas", "default"])
def test_typescript_sdk_over_stdio(tmp_path: Path, output_schemas: bool) -> None:
    require(SDK)
    project = tmp_path / "project"
    project.mkdir()
    data_dir = tmp_path / "data"
    env = server_env(data_dir, CONTEXTD_TOOLS_OUTPUT_SCHEMA=str(output_schemas).lower())
    try:
        report = sdk_client(["stdio", str(CONTEXTD), "stdio"], env, project)
    finally:
        subprocess.run([str(CONTEXTD), "stop"], env=env, capture_output=True, timeout=60)
    assert_report(report, output_schemas)


def test_typescript_sdk_over_streamable_http(tmp_path: Path) -> None:
    require(SDK)
    with serving_http(tmp_path, "--tenant", "acme", "--project", "sdk", CONTEXTD_TOOLS_OUTPUT_SCHEMA="true") as (daemon, token, cwd):
        assert daemon.base is not None
        env = {**server_env(daemon.data_dir), "CONTEXTD_TOKEN": token}
        report = sdk_client(["http", daemon.base + "/mcp"], env, cwd)
    # bash runs only for local agents (DESIGN §6): over HTTP it is refused, as an MCP tool error.
    assert_report(report, output_schemas=True, denied=frozenset({"bash"}))
