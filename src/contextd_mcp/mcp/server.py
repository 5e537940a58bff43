"""Builds the MCP server from the tool registry. The one place where a tool call is
validated, attributed to a caller, run, mapped from errors, scrubbed, capped and audited."""

from __future__ import annotations

import inspect
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.subscriptions import ListenHandler
from pydantic import BaseModel, ValidationError

from contextd_mcp import __version__, limits
from contextd_mcp.errors import ContextdError, Denied
from contextd_mcp.mcp import toolsets
from contextd_mcp.mcp.caller import CURRENT_CALLER, Caller
from contextd_mcp.mcp.list_changed import ConnectionBus, ListChangedServer, announce
from contextd_mcp.mcp.prompts import PromptProvider
from contextd_mcp.mcp.redactions import counting
from contextd_mcp.mcp.registry import ToolDef, annotations, input_schema, output_schema
from contextd_mcp.mcp.response import cap_tree, scrub_tree
from contextd_mcp.ports.audit import AuditLog
from contextd_mcp.ports.embedder import TokenCounter
from contextd_mcp.ports.scrubber import Scrubber

log = logging.getLogger("contextd_mcp")

INSTRUCTIONS = (
    "contextd gives you a memory across sessions. Before a non-trivial task, memory_search for "
    "relevant lessons; after solving something worth remembering, memory_store it; rate what you "
    "used with memory_feedback. More tools (remediations, policies, skills, agents, folding) are "
    "grouped in toolsets: the toolsets tool lists and enables them."
)

HttpCallerResolver = Callable[[Any], Caller | None]
# Runs before a tool's handler (after validation); raises Denied / Conflict to refuse the call.
# Used by cross-cutting rules such as an agent's access list or policies.
Guard = Callable[[Caller, ToolDef, BaseModel], None]
# Sees every successful response (its JSON and token count) and may return notices for the
# agent, e.g. a branch's budget warning. Notices go in an extra text block and in _meta,
# so the structured result still matches the tool's output schema.
ResponseHook = Callable[[Caller, ToolDef, dict[str, Any], Callable[[], int]], list[str]]


def format_validation_error(tool: str, exc: ValidationError) -> str:
    """Names each field and the rule it broke, never the rejected value (it may be a secret)."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "arguments"
        message = err["msg"]
        if err["type"] == "missing":
            message = "is required"
        elif err["type"] == "extra_forbidden":
            message = "is not a parameter of this tool"
        problems.append(f"{field}: {message}")
    return f"invalid_input: {tool}: " + "; ".join(problems)


def _identity(caller: Caller) -> dict[str, str]:
    """Who, beyond the scope: the agent name and the token id (never the token)."""
    found = {"agent": (caller.agent or "")[:64], "token": caller.extra.get("token", "")[:32]}
    return {k: v for k, v in found.items() if v}


def _session_of(args: BaseModel) -> str | None:
    """A call's session id when its arguments carry one; only a well-formed uuid, so no content leaks."""
    value = getattr(args, "session_id", None)
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _answer_text(data: Any) -> str:
    """The JSON an agent reads: no spaces after separators (about 5 % of every answer's
    characters; BENCHMARKS.md, session 4)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class ToolRunner:
    def __init__(
        self,
        tools: Sequence[ToolDef],
        scrubber: Scrubber,
        counter: TokenCounter,
        audit: AuditLog,
        max_response_tokens: int,
        http_caller: HttpCallerResolver | None = None,
        list_output_schemas: bool = False,
        default_toolsets: frozenset[str] = toolsets.DEFAULT,
    ) -> None:
        self.tools = {t.name: t for t in tools}
        # Which toolsets each connection lists and may call (mcp/toolsets.py).
        self.enabled = toolsets.Enabled(default_toolsets)
        self.prompts: PromptProvider | None = None
        self.guards: list[Guard] = []
        self.response_hooks: list[ResponseHook] = []
        self._scrubber = scrubber
        self._counter = counter
        self._audit = audit
        self._max_tokens = max_response_tokens
        self._http_caller = http_caller
        # Worker threads for blocking service calls; bounded so a burst cannot spawn hundreds.
        self._limiter = anyio.CapacityLimiter(8)
        self._list_output_schemas = list_output_schemas
        self._listed = {t.name: self._describe(t) for t in tools}

    def _describe(self, t: ToolDef) -> types.Tool:
        return types.Tool(
            name=t.name,
            description=t.description,
            input_schema=input_schema(t),
            # Output schemas are ~40 % of tools/list and the model reads none of them;
            # results stay structured either way, and schema.json documents them.
            output_schema=output_schema(t) if self._list_output_schemas else None,
            annotations=types.ToolAnnotations.model_validate(annotations(t)),
        )

    def add_tools(self, tools: Sequence[ToolDef]) -> None:
        """Register tools after construction (features wired once the runner exists)."""
        for tool in tools:
            self.tools[tool.name] = tool
            self._listed[tool.name] = self._describe(tool)

    def list_tools(self, caller: Caller | None = None) -> list[types.Tool]:
        """The tools of the caller's toolsets (every tool when no caller is given)."""
        if caller is None:
            return list(self._listed.values())
        on = self.enabled.of(caller)
        return [listed for name, listed in self._listed.items() if self.tools[name].toolset in on]

    def not_enabled(self, caller: Caller, tool: ToolDef) -> str | None:
        """Why ``tool`` may not run on this connection, or None. Hidden is not allowed: a tool
        outside the connection's toolsets is refused even when called by its name."""
        try:
            on = self.enabled.of(caller)
        except ValueError as exc:
            return f"invalid_input: toolsets (--toolsets, CONTEXTD_TOOLSETS or X-Contextd-Toolsets): {exc}"
        if tool.toolset in on:
            return None
        return (
            f"not_found: {tool.name} is in toolset {tool.toolset!r}, which this connection has not enabled; "
            f'call toolsets {{"enable": ["{tool.toolset}"]}} first'
        )

    def caller_for(self, request: Any) -> Caller:
        if request is not None and self._http_caller is not None:
            caller = self._http_caller(request)
            if caller is not None:
                return caller
        caller = CURRENT_CALLER.get()
        if caller is None:
            raise Denied("this connection has no identity; no tool can run")
        return caller

    async def call(
        self, name: str, arguments: dict[str, Any] | None, request: Any = None, audit_prefix: str = ""
    ) -> types.CallToolResult:
        """``audit_prefix``: who else calls the tool (the web page: ``ui.``), in the audit line's name."""
        started = time.perf_counter()
        # An unknown tool's name is the caller's text, not ours: it stays out of the log.
        tool_name = name if name in self.tools else "(unknown)"
        event: dict[str, Any] = {"tool": audit_prefix + tool_name, "input_bytes": len(json.dumps(arguments or {}, default=str))}
        # Counts every scrub during the call: what services stored ("in") and what is returned ("out").
        with counting() as scrubbed:
            try:
                result, _ = await self._call(name, arguments or {}, request, event)
                event["outcome"] = "error:" + result.content[0].text.split(":", 1)[0] if result.is_error else "ok"  # type: ignore[union-attr]
                return result
            finally:
                total = max(scrubbed[0], event.get("redactions_out", 0))
                event.setdefault("outcome", "error:aborted")  # cancelled, or the client went away
                event["redactions"] = total
                event["redactions_in"] = total - event.get("redactions_out", 0)
                event["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
                try:
                    self._audit.record(event)
                except Exception:  # the audit log must never break a call
                    log.exception("audit record failed")

    async def _call(
        self, name: str, arguments: dict[str, Any], request: Any, event: dict[str, Any]
    ) -> tuple[types.CallToolResult, int]:
        tool = self.tools.get(name)
        if tool is None:
            return _error_result(f"not_found: unknown tool {name[:64]!r}"), 0
        try:
            caller = self.caller_for(request)
        except Denied as exc:
            return _error_result(f"{exc.kind}: {exc.message}"), 0
        event.update(caller.scope.fields(), transport=caller.transport, connection=caller.connection_id)
        event.update(_identity(caller))
        refused = self.not_enabled(caller, tool)
        if refused:
            return _error_result(refused), 0
        if caller.read_only and not tool.read_only:
            return _error_result(f"denied: {name} writes, and this identity is read-only"), 0
        scrubbed = arguments
        if tool.scrub_input and not tool.read_only:
            # Whatever a writing tool may store is scrubbed here, once, for every tool present and
            # future; services scrub what they store again (idempotent) as defence in depth.
            scrubbed, _ = scrub_tree(arguments, self._scrubber)
        try:
            args = tool.input_model.model_validate(scrubbed)
        except ValidationError:
            try:
                # A marker is longer than a short secret, so a text at its size cap can fail only
                # once scrubbed: then the caller did nothing wrong, and the service's own scrub
                # (it scrubs what it stores) takes over. Real mistakes are named from the raw input.
                args = tool.input_model.model_validate(arguments)
            except ValidationError as exc:
                return _error_result(format_validation_error(name, exc)), 0
        session = caller.extra.get("session") or _session_of(args)
        if session:
            event["session"] = session
        try:
            for guard in self.guards:
                guard(caller, tool, args)
            if inspect.iscoroutinefunction(tool.handler):
                # Long waits (a sandboxed command) must not hold one of the worker threads.
                output: BaseModel = await tool.handler(caller, args)
            else:
                output = await anyio.to_thread.run_sync(tool.handler, caller, args, limiter=self._limiter)
        except ContextdError as exc:
            scrubbed = self._scrubber.scrub(f"{exc.kind}: {exc.message}")
            event["redactions_out"] = scrubbed.redactions
            return _error_result(scrubbed.text), scrubbed.redactions
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("tool %s crashed (incident %s)", name, incident)
            return _error_result(f"internal: {name} failed unexpectedly (incident {incident}, see the daemon log)"), 0
        data, redactions = scrub_tree(output.model_dump(mode="json"), self._scrubber)
        event["redactions_out"] = redactions
        data, truncated = cap_tree(data, self._counter, self._max_tokens, _answer_text)
        text = _answer_text(data)
        event["output_bytes"] = len(text)
        meta: dict[str, Any] = {"contextd/truncated": True} if truncated else {}
        content = [types.TextContent(type="text", text=text)]
        if self.response_hooks:
            counted: list[int] = []

            def tokens() -> int:  # counted once, and only if a hook needs it (e.g. an active branch)
                if not counted:
                    counted.append(self._counter.count(text))
                return counted[0]

            notices = [n for hook in self.response_hooks for n in hook(caller, tool, data, tokens)]
            if notices:
                meta["contextd/notices"] = notices
                content.append(types.TextContent(type="text", text="\n".join(notices)))
        return (
            types.CallToolResult(content=content, structured_content=data, meta=meta or None),
            redactions,
        )


def build_server(runner: ToolRunner) -> Server[Any]:
    from mcp.shared.exceptions import MCPError

    # 2026-07-28 clients hear list_changed only on a subscriptions/listen stream; the bus
    # delivers each connection's notice to that connection's streams alone.
    bus = ConnectionBus()

    def caller_of(ctx: Any) -> Caller:
        try:
            return runner.caller_for(getattr(ctx, "request", None))
        except Denied as exc:
            raise MCPError(types.INVALID_REQUEST, f"{exc.kind}: {exc.message}") from exc

    def toolsets_of(caller: Caller) -> frozenset[str]:
        try:
            return runner.enabled.of(caller)
        except ValueError as exc:
            raise MCPError(types.INVALID_PARAMS, f"invalid_input: toolsets: {exc}") from exc

    async def on_list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        caller = caller_of(ctx)
        try:
            return types.ListToolsResult(tools=runner.list_tools(caller))
        except ValueError:
            # A bad X-Contextd-Toolsets header (a bridge's is refused at connect): nothing is
            # listed, and every call names the header's mistake. Not an error here: the SDK's
            # HTTP transport lists tools itself before each call, and would log it as a crash.
            return types.ListToolsResult(tools=[])

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        request = getattr(ctx, "request", None)
        try:
            caller: Caller | None = runner.caller_for(request)
            before = runner.enabled.of(caller)  # type: ignore[arg-type]
        except (Denied, ValueError):
            caller = before = None  # the call itself reports it
        result = await runner.call(params.name, params.arguments, request)
        if caller is not None and before is not None and not result.is_error:
            after = runner.enabled.of(caller)
            if after != before:
                await announce(ctx, bus, caller, prompts="skills" in after - before)
        return result

    async def on_list_prompts(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        caller = caller_of(ctx)
        if runner.prompts is None or "skills" not in toolsets_of(caller):
            return types.ListPromptsResult(prompts=[])  # prompts follow their toolset
        provider = runner.prompts
        return types.ListPromptsResult(prompts=await anyio.to_thread.run_sync(provider.list_prompts, caller))

    async def on_get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        if runner.prompts is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown prompt {params.name[:64]!r}")
        caller = caller_of(ctx)
        if "skills" not in toolsets_of(caller):
            raise MCPError(
                types.INVALID_PARAMS,
                'not_found: prompts are skills, in toolset \'skills\'; call toolsets {"enable": ["skills"]} first',
            )
        provider = runner.prompts
        try:
            return await anyio.to_thread.run_sync(provider.get_prompt, caller, params.name, dict(params.arguments or {}))
        except ContextdError as exc:
            raise MCPError(types.INVALID_PARAMS, f"{exc.kind}: {exc.message}") from exc

    return ListChangedServer(
        "contextd-mcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
        on_list_prompts=on_list_prompts,
        on_get_prompt=on_get_prompt,
        on_subscriptions_listen=ListenHandler(bus, max_subscriptions=limits.LISTEN_STREAMS_MAX),
    )
