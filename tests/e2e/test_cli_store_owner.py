"""Commands that open the embedded store themselves (compact, migrate-tenant) refuse while a
daemon owns it: two writers would corrupt it. Real daemon, real command line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.daemons import start_daemon
from tests.helpers import run_cli

REFUSAL = "the daemon is running; stop it first (`contextd-mcp stop`): it owns the store"


@pytest.fixture(scope="module")
def owned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One daemon owning a store for both commands: each is refused and changes nothing, so the
    second meets the same daemon and store the first did (a start is ~2 s of CPU)."""
    root = tmp_path_factory.mktemp("owned")
    daemon = start_daemon(root / "data", root)
    try:
        yield root / "data"
    finally:
        daemon.stop()


@pytest.mark.parametrize("command", [("compact",), ("migrate-tenant", "--apply")])
def test_a_store_command_refuses_while_the_daemon_owns_the_store(owned: Path, command: tuple[str, ...]) -> None:
    done = run_cli(owned, *command, "--data-dir", str(owned))
    assert done.returncode == 1, done.stdout + done.stderr
    assert REFUSAL in done.stderr
    assert run_cli(owned, "status").returncode == 0  # the daemon keeps serving its store
