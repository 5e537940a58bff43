"""Scrubbing through the real daemon: bash output (run in the real sandbox) comes back redacted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.daemons import socket_client, start_daemon
from tests.helpers import data

pytestmark = pytest.mark.anyio

AWS = "AKIAZXCVBNMASDFGHJKL"
GITHUB = "ghp_" + "Q7rT2xLm9Vb4Nc8Kp3Wd6Fh1Js5Gy0Az7Xe4"


async def test_bash_output_is_redacted_and_nothing_reaches_disk(data_dir: Path, project_dir: Path) -> None:
    daemon = start_daemon(data_dir, project_dir)
    try:
        async with socket_client(daemon.socket, project_dir) as client:
            if "bash" not in {t.name for t in (await client.list_tools()).tools}:
                pytest.skip("no bash tool in this build")
            # The secrets are assembled by the shell, so they appear only in the output.
            command = "a=AKIAZXCVBN; b=MASDFGHJKL; echo \"key=$a$b\"; g=ghp_Q7rT2xLm9Vb4; echo \"tok ${g}" + GITHUB[16:] + "\" >&2"
            result = await client.call_tool("bash", {"command": command})
            if result.is_error and result.content[0].text.startswith(("unavailable", "denied")):
                pytest.skip(f"sandbox not usable here: {result.content[0].text[:120]}")
            out = data(result)
            assert out["exit_code"] == 0, out
            assert AWS not in out["stdout"] and "[REDACTED:aws-access-key]" in out["stdout"]
            assert GITHUB not in out["stderr"] and "[REDACTED:github-token]" in out["stderr"]
    finally:
        daemon.stop()
    for path in data_dir.rglob("*"):
        if path.is_file() and not path.is_socket():
            raw = path.read_bytes()
            assert AWS.encode() not in raw and GITHUB.encode() not in raw, path
    line = json.loads((data_dir / "audit.log").read_text().splitlines()[-1])
    assert line["tool"] == "bash" and line["redactions_out"] == 2 and line["transport"] == "socket"
