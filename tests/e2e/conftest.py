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


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A working directory the bridge runs in: its scope comes from here."""
    path = tmp_path / "project"
    path.mkdir()
    return path
