"""A no-op tool, registered only when CONTEXTD_BENCH_TOOLS=1: the protocol's own cost,
measured on the same server and transport as the real tools (the bench's floor)."""

from __future__ import annotations

from pydantic import BaseModel

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import Handler, ToolSpec
from contextd_mcp.models.strict import Strict


class NoArguments(Strict):
    pass  # no fields: any argument is an error


class Empty(BaseModel):
    pass


# The tools of this module, as data: schema.json / TOOL.md render these without any service.
SPECS = (
    ToolSpec("bench_noop", "Does nothing (benchmark floor).", NoArguments, Empty, read_only=True),
)


def diagnostic_tools() -> dict[str, Handler]:
    def noop(caller: Caller, req: NoArguments) -> Empty:
        return Empty()

    return {"bench_noop": noop}
