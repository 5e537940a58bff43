"""A no-op tool, registered only when CONTEXTD_BENCH_TOOLS=1: the protocol's own cost,
measured on the same server and transport as the real tools (the bench's floor)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from contextd_mcp.mcp.caller import Caller
from contextd_mcp.mcp.registry import ToolDef


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Empty(BaseModel):
    pass


def diagnostic_tools() -> list[ToolDef]:
    def noop(caller: Caller, req: NoArguments) -> Empty:
        return Empty()

    return [ToolDef("bench_noop", "Does nothing (benchmark floor).", NoArguments, Empty, noop, read_only=True)]
