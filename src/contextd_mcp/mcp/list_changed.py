"""tools/list_changed, per connection: the toolsets tool changes one connection's lists, and
only that connection is told (on its session before 2026-07-28, on its listen streams after)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.lowlevel import NotificationOptions, Server
from mcp.shared.subscriptions import PromptsListChanged, ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from contextd_mcp.mcp.caller import CURRENT_CALLER, Caller


class ListChangedServer(Server[Any]):
    """Announces tools.listChanged / prompts.listChanged on every transport (the toolsets tool
    changes a connection's lists), whoever asks for the initialization options."""

    def create_initialization_options(self, notification_options: Any = None, *args: Any, **kwargs: Any) -> Any:
        options = notification_options or NotificationOptions(tools_changed=True, prompts_changed=True)
        return super().create_initialization_options(options, *args, **kwargs)


async def announce(ctx: Any, bus: ConnectionBus, caller: Caller, prompts: bool) -> None:
    """Tells this connection, and no other, that its tool list (and prompt list) changed."""
    events: list[Any] = [ToolsListChanged()] + ([PromptsListChanged()] if prompts else [])
    for event in events:
        bus.publish_to(caller.connection_id, event)
    if getattr(ctx, "protocol_version", None) not in MODERN_PROTOCOL_VERSIONS:
        # Handshake-era clients (2025-11-25 and older) take it on the session itself.
        await ctx.session.send_tool_list_changed()
        if prompts:
            await ctx.session.send_prompt_list_changed()


class ConnectionBus:
    """A SubscriptionBus whose listeners belong to the connection that opened them
    (read from the connection's caller when the listen stream starts)."""

    def __init__(self) -> None:
        self._listeners: dict[object, tuple[str, Callable[[Any], None]]] = {}

    async def publish(self, event: Any) -> None:
        for _, listener in list(self._listeners.values()):
            listener(event)

    def publish_to(self, connection_id: str, event: Any) -> None:
        for owner, listener in list(self._listeners.values()):
            if owner == connection_id:
                listener(event)

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        caller = CURRENT_CALLER.get()
        token = object()
        self._listeners[token] = (caller.connection_id if caller else "", listener)

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe
