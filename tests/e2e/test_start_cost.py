"""What a daemon start imports, and the two commands that must fail before the store and the model
load (issues 18, 19; BENCHMARKS.md "Session 7: the daemon's start-up").

Each runs the real CLI in a fresh interpreter with ``PYTHONPROFILEIMPORTTIME=1`` (``-X importtime``):
its stderr then names every module the process imported, in order. Never from the suite's
zygote (``zygote=False``): a forked child has imported what the zygote preloaded, which is what
these tests must see it not import.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import anyio

from tests.e2e.daemons import socket_client, start_daemon
from tests.helpers import run_cli

# fastembed imports its image, sparse and late-interaction models and huggingface_hub (with
# requests and PIL) before its text model: ~0.4 s of CPU; the shipped model runs without it.
NOT_AT_START = ("fastembed", "huggingface_hub", "PIL", "requests")
# what a failing `serve --http` or `import` has no use for: the container, the MCP SDK, the store, the model
NOT_BEFORE_FAILING = ("contextd_mcp.container", "mcp", "qdrant_edge", "onnxruntime", "fastembed")
IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$", re.MULTILINE)


def imported(output: str) -> set[str]:
    return {m.group(2) for m in IMPORTED.finditer(output)}


def heavy(modules: set[str], roots: tuple[str, ...]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in roots or m in roots}


def test_daemon_start_and_first_search_import_no_fastembed(tmp_path: Path) -> None:
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    daemon = start_daemon(data_dir, cwd, zygote=False, PYTHONPROFILEIMPORTTIME="1")

    async def search() -> None:
        async with socket_client(daemon.socket, cwd) as client:
            stored = await client.call_tool("memory_store", {"title": "start cost probe", "content": "the daemon starts without fastembed"})
            assert not stored.is_error, str(stored.content[0])
            found = await client.call_tool("memory_search", {"query": "daemon starts without fastembed"})
            assert not found.is_error and found.structured_content["memories"], str(found.content[0])

    try:
        anyio.run(search)
    finally:
        daemon.stop()
    modules = imported(daemon.output())
    assert "contextd_mcp.adapters.onnx_mean_pooled" in modules and "onnxruntime" in modules  # the probe sees imports
    assert heavy(modules, NOT_AT_START) == set()


def test_serve_on_a_taken_port_fails_before_the_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(data_dir, "serve", "--allow-unauthenticated-loopback", "--http", f"127.0.0.1:{port}",
                       timeout=30, zygote=False, PYTHONPROFILEIMPORTTIME="1")
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert lines[-1] == (f"contextd-mcp: cannot listen on 127.0.0.1:{port}: Address already in use; another process "
                         "listens there: pick another port with --http HOST:PORT"), lines
    assert heavy(imported(done.stderr), NOT_BEFORE_FAILING) == set()
    assert not (data_dir / "store").exists() and not (data_dir / "daemon.json").exists()


def test_import_of_a_file_that_is_no_export_fails_before_the_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cases = {
        "not json\n": "contextd-mcp: header: not a contextd export header (Expecting value: line 1 column 1 (char 0))",
        "": "contextd-mcp: line 1: the file is empty (no header)",
        '{"format": "other", "version": 1}\n': "contextd-mcp: header: not a contextd export header",
    }
    for body, message in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(body)
        done = run_cli(data_dir, "import", str(bad), timeout=30, zygote=False, PYTHONPROFILEIMPORTTIME="1")
        lines = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
        assert done.returncode == 1 and lines[-1].startswith(message), (body, lines)
        assert heavy(imported(done.stderr), NOT_BEFORE_FAILING) == set(), body
    missing = run_cli(data_dir, "import", str(tmp_path / "absent.jsonl"), timeout=30)
    assert missing.returncode == 1 and "absent.jsonl: No such file or directory" in missing.stderr
    assert not (data_dir / "store").exists()
