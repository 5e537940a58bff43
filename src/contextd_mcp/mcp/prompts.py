"""MCP prompts: served from a provider (skills), always in the caller's scope."""

from __future__ import annotations

from typing import Protocol

import mcp_types as types

from contextd_mcp.mcp.caller import Caller


class PromptProvider(Protocol):
    def list_prompts(self, caller: Caller) -> list[types.Prompt]: ...

    def get_prompt(self, caller: Caller, name: str, arguments: dict[str, str]) -> types.GetPromptResult:
        """Raise NotFound for a name outside the caller's scope, InvalidInput for bad arguments."""
        ...
