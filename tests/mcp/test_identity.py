"""Identity reaches the runner by one channel: the ``identify`` its server was built with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from contextd_mcp.container import Container
from contextd_mcp.errors import Denied
from contextd_mcp.mcp.caller import Caller, acting_as, local_caller
from tests.conftest import SCOPE_A
from tests.helpers import data, error_text

pytestmark = pytest.mark.anyio


def nobody(ctx: Any) -> Caller:
    raise Denied("no bearer token on this request")


async def test_a_server_knows_its_callers_only_by_its_own_identify(container: Container) -> None:
    """An HTTP-like server whose requests carry no identity must refuse, even when the task that
    runs it has a connection's caller set (before: the runner fell back from the request resolver
    to that connection caller, a second channel, and the call ran as it)."""
    with acting_as(Caller(scope=SCOPE_A, transport="socket", connection_id="c1")):
        async with Client(container.server(nobody)) as client:
            refused = await client.call_tool("memory_search", {"query": "deploy"})
    assert error_text(refused) == "denied: no bearer token on this request"
    audited = container.paths.audit.read_text().splitlines()[-1]
    assert '"outcome": "error:denied"' in audited or '"outcome":"error:denied"' in audited


async def test_the_caller_identify_returns_is_the_one_that_acts(container: Container) -> None:
    chosen = Caller(scope=SCOPE_A, transport="http", connection_id="h1", read_only=True)
    with acting_as(Caller(scope=SCOPE_A, transport="socket", connection_id="c1")):  # ignored
        async with Client(container.server(lambda ctx: chosen)) as client:
            assert data(await client.call_tool("memory_search", {"query": "deploy"}))["memories"] == []
            written = await client.call_tool("memory_store", {"title": "t", "content": "c"})
    assert error_text(written) == "denied: memory_store writes, and this identity is read-only"


def test_local_callers_are_made_one_way_from_a_directory_and_its_scope_variables(tmp_path: Path) -> None:
    """Socket hello, hook call and in-process stdio all build their caller with local_caller:
    the scope from the variables given (never this process's own), the project root for bash."""
    project = tmp_path / "repo"
    (project / ".git").mkdir(parents=True)
    (project / "src").mkdir()
    env = {"CONTEXTD_TENANT": "acme", "CONTEXTD_TEAM": "core", "CONTEXTD_AGENT": "reviewer"}
    made = {t: local_caller(t, project / "src", env, "c1", "memory") for t in ("socket", "hook", "stdio")}
    for transport, caller in made.items():
        assert caller.transport == transport
        assert (caller.scope.tenant, caller.scope.team) == ("acme", "core")
        assert caller.agent == "reviewer" and caller.toolsets == "memory" and caller.connection_id == "c1"
        assert caller.project_dir == str(project)
    assert local_caller("socket", project, {}, "c2").scope.tenant != "acme"  # no variables, no acme
