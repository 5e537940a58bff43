from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from tests.e2e.daemons import create_token, start_daemon
from tests.helpers import free_port
from tests.ui.world import World, store_lessons


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("ui")
    data_dir, cwd = root / "data", root / "cwd"
    cwd.mkdir()
    tokens = {
        "acme": create_token(data_dir, "--tenant", "acme"),
        "globex": create_token(data_dir, "--tenant", "globex"),
        "reader": create_token(data_dir, "--tenant", "acme", "--read-only"),
    }
    daemon = start_daemon(data_dir, cwd, http=f"127.0.0.1:{free_port()}")
    try:
        assert daemon.base is not None
        ids = anyio.run(store_lessons, daemon.base, tokens["acme"])
        yield World(daemon, tokens, ids)
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output()
