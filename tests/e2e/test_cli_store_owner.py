"""Commands that open the embedded store themselves (compact, migrate-tenant) refuse while a
daemon owns it: two writers would corrupt it. Real daemon, real command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.daemons import start_daemon
from tests.helpers import run_cli

REFUSAL = "the daemon is running; stop it first (`contextd-mcp stop`): it owns the store"


@pytest.mark.parametrize("command", [("compact",), ("migrate-tenant", "--apply")])
def test_a_store_command_refuses_while_the_daemon_owns_the_store(tmp_path: Path, command: tuple[str, ...]) -> None:
    data_dir = tmp_path / "data"
    daemon = start_daemon(data_dir, tmp_path)
    try:
        done = run_cli(data_dir, *command, "--data-dir", str(data_dir))
        assert done.returncode == 1, done.stdout + done.stderr
        assert REFUSAL in done.stderr
        assert run_cli(data_dir, "status").returncode == 0  # the daemon keeps serving its store
    finally:
        daemon.stop()
