from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import stop_daemon


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh data directory whose daemon (if any test started one) is stopped afterwards."""
    path = tmp_path / "contextd-data"
    yield path
    stop_daemon(path)


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data directory for the tests of every module that asks for it (per xdist worker), so
    that the daemon the first bridge starts serves them all (a daemon start is a new interpreter
    loading the stack and the model: ~2 s of CPU). For tests that need a daemon but not their
    own: each test's ``project_dir`` is its own scope (the project is named after its path), so
    they share no data; a test that names its tenant picks one no other user of this directory
    names (``acme`` in test_prompts_stdio.py). Stopped at the end of the session."""
    path = tmp_path_factory.mktemp("shared") / "contextd-data"
    yield path
    stop_daemon(path)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A working directory the bridge runs in: its scope comes from here."""
    path = tmp_path / "project"
    path.mkdir()
    return path
