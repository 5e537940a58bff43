"""The command line on ordinary failures and first runs: one clear line, no traceback, no noise;
and a model cache that outlives the install that filled it. Real subprocesses throughout."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

import contextd_mcp
from tests.e2e.daemons import socket_client, start_daemon
from tests.helpers import CLI, data, env_for, free_port, run_cli

pytestmark = pytest.mark.anyio

MODEL_FILES = {"model.onnx", "tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json"}


def test_status_into_a_pipe_its_reader_closed_prints_no_traceback(tmp_path: Path) -> None:
    """`contextd-mcp status | head -1`: head exits after one line, the rest has nobody to read it."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: every write fails (EPIPE)
    try:
        done = subprocess.run(
            [*CLI, "status"], env=env_for(tmp_path / "data"), stdout=write, stderr=subprocess.PIPE,
            text=True, timeout=60,
        )
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 141  # as a writer killed by SIGPIPE looks to the shell


def test_serve_http_on_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data_dir = tmp_path / "data"
        assert run_cli(data_dir, "token", "create", "--tenant", "acme").returncode == 0
        refused = run_cli(data_dir, "serve", "--http", f"127.0.0.1:{port}", timeout=120)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"contextd-mcp: cannot listen on 127.0.0.1:{port}: Address already in use; another process listens "
        "there: pick another port with --http HOST:PORT"
    ]
    assert not (data_dir / "daemon.json").exists()


def test_serve_http_logs_the_address_it_listens_on(tmp_path: Path) -> None:
    data_dir, cwd = tmp_path / "data", tmp_path
    port = free_port()
    daemon = start_daemon(data_dir, cwd, "--allow-unauthenticated-loopback", http=f"127.0.0.1:{port}")
    try:
        ready = [line for line in daemon.output().splitlines() if " ready in " in line]
        assert len(ready) == 1 and ready[0].endswith(f"and http://127.0.0.1:{port} (/mcp, /sse, /ui/)"), ready
    finally:
        daemon.stop()


def _copy_of_the_package(root: Path) -> Path:
    """Another checkout: the package's files at another path, found first on PYTHONPATH."""
    src = root / "checkout" / "src"
    shutil.copytree(Path(contextd_mcp.__file__).parent, src / "contextd_mcp", ignore=shutil.ignore_patterns("__pycache__"))
    return src


async def _store_and_find(data_dir: Path, cwd: Path, **env: str) -> None:
    daemon = start_daemon(data_dir, cwd, zygote=False, **env)
    try:
        async with socket_client(daemon.socket, cwd) as client:
            data(await client.call_tool("memory_store", {"title": "Pin the base image digest", "content": "Reproducible builds."}))
            found = data(await client.call_tool("memory_search", {"query": "reproducible docker builds"}))
            assert found["memories"] and found["memories"][0]["title"] == "Pin the base image digest"
    finally:
        daemon.stop()
    return None


async def test_a_new_home_starts_quietly_and_its_model_cache_outlives_the_checkout_that_filled_it(
    tmp_path: Path,
) -> None:
    checkout = _copy_of_the_package(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    user = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    # Fresh interpreters (zygote=False): a new user's first start, from another checkout.
    first = start_daemon(tmp_path / "data", tmp_path, zygote=False, PYTHONPATH=str(checkout), **user)  # builds the int8 model
    first.stop()
    log = first.output()
    assert "Quantization parameters" not in log and "pre-processing" not in log, log
    assert len(log.splitlines()) <= 8, log  # sandbox, session manager, the one model line, ready, stop...
    # One folder per build (q8/<source, onnxruntime, conversion>), the model's files in it.
    [cache] = (home / ".cache" / "contextd-mcp" / "models" / "q8").iterdir()
    placed = {p.name: p for p in cache.iterdir() if not p.name.startswith(".")}
    assert set(placed) == MODEL_FILES
    assert not [name for name, p in placed.items() if p.is_symlink()], "links die with the checkout"

    shutil.rmtree(checkout.parent)  # that checkout is deleted (or moved)
    for path in placed.values():
        assert path.read_bytes()[:1], path  # still whole files
    await _store_and_find(tmp_path / "data", tmp_path, **user)  # another install, the same user's cache
