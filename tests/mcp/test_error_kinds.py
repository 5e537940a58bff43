"""Error kinds are values: every error result carries ``_meta["contextd/error"]`` with its kind
(and reason, where a caller acts on one), so hooks and the audit log match on values, not on
the wording of a message (issue 18). Through the real MCP client, on the real store."""

from __future__ import annotations

from typing import Any

import pytest

from contextd_mcp.errors import ERROR_META
from tests.helpers import error_text

pytestmark = pytest.mark.anyio


def kind_of(result: Any) -> dict[str, str]:
    assert result.is_error, result
    return dict((result.meta or {})[ERROR_META])


async def test_each_kind_of_error_is_a_value_in_meta(client: Any) -> None:
    unknown = await client.call_tool("session_end", {"session_id": "b6d7f0a4-0000-4000-8000-000000000000", "outcome": "success"})
    assert kind_of(unknown) == {"kind": "not_found"} and error_text(unknown).startswith("not_found:")
    bad = await client.call_tool("memory_search", {"query": ""})
    assert kind_of(bad) == {"kind": "invalid_input"} and error_text(bad).startswith("invalid_input:")
    no_tool = await client.call_tool("no_such_tool", {})
    assert kind_of(no_tool) == {"kind": "not_found"}


async def test_a_session_ended_twice_says_why_as_a_reason(client: Any) -> None:
    started = (await client.call_tool("session_start", {})).structured_content
    arguments = {"session_id": started["session_id"], "outcome": "success"}
    assert not (await client.call_tool("session_end", arguments)).is_error
    again = await client.call_tool("session_end", arguments)
    assert kind_of(again) == {"kind": "conflict", "reason": "session_ended"}


async def test_a_successful_result_carries_no_error_kind(client: Any) -> None:
    result = await client.call_tool("memory_search", {"query": "anything"})
    assert not result.is_error and ERROR_META not in (result.meta or {})
