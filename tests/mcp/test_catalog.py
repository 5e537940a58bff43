"""The tools are data (mcp/catalog.py); the container binds each to exactly one handler."""

from __future__ import annotations

import pytest

from contextd_mcp.container import Container
from contextd_mcp.mcp import catalog
from contextd_mcp.mcp.registry import bind


def test_the_server_lists_exactly_the_declared_tools_in_their_order(container: Container) -> None:
    declared = [(s.name, s.toolset, s.input_model, s.read_only) for s in catalog.declared()]
    served = [(t.name, t.toolset, t.input_model, t.read_only) for t in container.tools()]
    assert served == declared and len(served) == len({name for name, *_ in served})


def test_a_spec_without_a_handler_or_a_handler_without_a_spec_stops_the_build() -> None:
    specs = catalog.declared()[:2]
    handler = {specs[0].name: lambda caller, req: None}
    with pytest.raises(ValueError, match=rf"missing \['{specs[1].name}'\], extra \[\]"):
        bind(specs, handler)
    with pytest.raises(ValueError, match=r"extra \['ghost'\]"):
        bind(specs[:1], {**handler, "ghost": lambda caller, req: None})
