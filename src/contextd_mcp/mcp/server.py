"""Builds the MCP server from the tool registry. The one place where a tool call is
validated, attributed to a caller, run, mapped from errors, scrubbed, capped and audited."""

from __future__ import annotations

import inspect
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.subscriptions import ListenHandler
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ValidationError

from contextd_mcp import __version__, limits
from contextd_mcp.errors import ERROR_META, ContextdError, Denied, ErrorKind, Reason
from contextd_mcp.mcp import toolsets
from contextd_mcp.mcp.caller import CURRENT_CALLER, Caller
from contextd_mcp.mcp.list_changed import ConnectionBus, ListChangedServer, announce
from contextd_mcp.mcp.prompts import PromptProvider
from contextd_mcp.mcp.redactions import counting
from contextd_mcp.mcp.registry import ToolDef, input_schema, output_schema, tool_annotations
from contextd_mcp.mcp.response import cap_tree, scrub_tree
from contextd_mcp.ports.audit import AuditLog
from contextd_mcp.ports.embedder import TokenCounter
from contextd_mcp.ports.scrubber import Scrubber

log = logging.getLogger("contextd_mcp")
SyncHandler = Callable[[Caller, Any], BaseModel]

INSTRUCTIONS = (
    "contextd gives you a memory across sessions. Before a non-trivial task, memory_search for "
    "relevant lessons; after solving something worth remembering, memory_store it; rate what you "
    "used with memory_feedback. More tools (remediations, policies, skills, agents, folding) are "
    "grouped in toolsets: the toolsets tool lists and enables them."
)

# Who a request acts as, from the SDK's request context (its ``request`` is the HTTP request on
# HTTP, None on a socket or in-process stream); raises Denied when it cannot tell. Each transport
# builds its server with one (build_server), and the runner is handed what it returns: the one
# channel identity travels by.
Identify = Callable[[Any], Caller]


def no_identity() -> Denied:
    return Denied("this connection has no identity; no tool can run")


def connection_caller(ctx: Any) -> Caller:
    """Socket, stdio and in-process servers: the caller the transport set for this connection."""
    caller = CURRENT_CALLER.get()
    if caller is None:
        raise no_identity()
    return caller

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


def _error_result(kind: ErrorKind, text: str, reason: Reason = Reason.none) -> types.CallToolResult:
    """``text`` (which starts with the kind, for the model) as an error result, its kind a value in
    ``_meta`` for code: hooks and the audit log match on that, never on the wording."""
    error = {"kind": kind.value, "reason": reason.value} if reason else {"kind": kind.value}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], is_error=True, meta={ERROR_META: error}
    )


def error_kind(result: types.CallToolResult) -> str:
    """The kind of an error result ("" for a success)."""
    error = (result.meta or {}).get(ERROR_META) if result.is_error else None
    return str(error.get("kind", "")) if isinstance(error, dict) else ""


class ToolRunner:
    def __init__(
        self,
        tools: Sequence[ToolDef],
        scrubber: Scrubber,
        counter: TokenCounter,
        audit: AuditLog,
        max_response_tokens: int,
        list_output_schemas: bool = False,
        enabled: toolsets.Enabled | None = None,
        guards: Sequence[Guard] = (),
        response_hooks: Sequence[ResponseHook] = (),
        prompts: PromptProvider | None = None,
    ) -> None:
        self.tools = {t.name: t for t in tools}
        # Which toolsets each connection lists and may call (mcp/toolsets.py).
        self.enabled = enabled if enabled is not None else toolsets.Enabled(toolsets.DEFAULT)
        # None: this server offers no prompts (a runner built by hand, for one tool).
        self.prompts = prompts
        self.guards = tuple(guards)
        self.response_hooks = tuple(response_hooks)
        self._scrubber = scrubber
        self._counter = counter
        self._audit = audit
        self._max_tokens = max_response_tokens
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
            annotations=types.ToolAnnotations.model_validate(tool_annotations(t)),
        )

    def list_tools(self, caller: Caller | None = None) -> list[types.Tool]:
        """The tools of the caller's toolsets (every tool when no caller is given)."""
        if caller is None:
            return list(self._listed.values())
        on = self.enabled.of(caller)
        return [listed for name, listed in self._listed.items() if self.tools[name].toolset in on]

    def not_enabled(self, caller: Caller, tool: ToolDef) -> types.CallToolResult | None:
        """Why ``tool`` may not run on this connection, or None. Hidden is not allowed: a tool
        outside the connection's toolsets is refused even when called by its name."""
        try:
            on = self.enabled.of(caller)
        except ValueError as exc:
            return _error_result(
                ErrorKind.invalid_input,
                f"invalid_input: toolsets (--toolsets, CONTEXTD_TOOLSETS or X-Contextd-Toolsets): {exc}",
            )
        if tool.toolset in on:
            return None
        return _error_result(
            ErrorKind.not_found,
            f"not_found: {tool.name} is in toolset {tool.toolset!r}, which this connection has not enabled; "
            f'call toolsets {{"enable": ["{tool.toolset}"]}} first',
        )

    async def call(
        self, name: str, arguments: dict[str, Any] | None, caller: Caller | Denied, audit_prefix: str = ""
    ) -> types.CallToolResult:
        """Runs one tool call as ``caller``; a Denied (the transport could not tell who calls, and
        why) refuses it, audited like any call. ``audit_prefix``: who else calls the tool (the web
        page: ``ui.``), in the audit line's name."""
        started = time.perf_counter()
        # An unknown tool's name is the caller's text, not ours: it stays out of the log.
        tool_name = name if name in self.tools else "(unknown)"
        event: dict[str, Any] = {"tool": audit_prefix + tool_name, "input_bytes": len(json.dumps(arguments or {}, default=str))}
        # Counts every scrub during the call: what services stored ("in") and what is returned ("out").
        with counting() as scrubbed:
            try:
                result, _ = await self._call(name, arguments or {}, caller, event)
                event["outcome"] = f"error:{error_kind(result)}" if result.is_error else "ok"
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
        self, name: str, arguments: dict[str, Any], caller: Caller | Denied, event: dict[str, Any]
    ) -> tuple[types.CallToolResult, int]:
        admitted = self._admit(name, caller, event)
        if isinstance(admitted, types.CallToolResult):
            return admitted, 0
        tool, caller = admitted
        args = self._validate(tool, arguments)
        if isinstance(args, types.CallToolResult):
            return args, 0
        session = caller.extra.get("session") or _session_of(args)
        if session:
            event["session"] = session
        try:
            output = await self._invoke(tool, caller, args)
        except ContextdError as exc:
            scrubbed = self._scrubber.scrub(f"{exc.kind}: {exc.message}")
            event["redactions_out"] = scrubbed.redactions
            return _error_result(exc.kind, scrubbed.text, exc.reason), scrubbed.redactions
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("tool %s crashed (incident %s)", name, incident)
            text = f"internal: {name} failed unexpectedly (incident {incident}, see the daemon log)"
            return _error_result(ErrorKind.internal, text), 0
        return self._respond(tool, caller, output, event)

    def _admit(self, name: str, caller: Caller | Denied, event: dict[str, Any]) -> tuple[ToolDef, Caller] | types.CallToolResult:
        """The tool and who calls it, or the refusal: unknown tool, no identity, toolset not
        enabled, or a write by a read-only identity."""
        tool = self.tools.get(name)
        if tool is None:
            return _error_result(ErrorKind.not_found, f"not_found: unknown tool {name[:64]!r}")
        if isinstance(caller, Denied):
            return _error_result(caller.kind, f"{caller.kind}: {caller.message}")
        event.update(caller.scope.fields(), transport=caller.transport, connection=caller.connection_id)
        event.update(_identity(caller))
        refused = self.not_enabled(caller, tool)
        if refused is not None:
            return refused
        if caller.read_only and not tool.read_only:
            return _error_result(ErrorKind.denied, f"denied: {name} writes, and this identity is read-only")
        return tool, caller

    def _validate(self, tool: ToolDef, arguments: dict[str, Any]) -> BaseModel | types.CallToolResult:
        scrubbed = arguments
        if tool.scrub_input and not tool.read_only:
            # Whatever a writing tool may store is scrubbed here, once, for every tool present and
            # future; services scrub what they store again (idempotent) as defence in depth.
            scrubbed, _ = scrub_tree(arguments, self._scrubber)
        try:
            return tool.input_model.model_validate(scrubbed)
        except ValidationError:
            try:
                # A marker is longer than a short secret, so a text at its size cap can fail only
                # once scrubbed: then the caller did nothing wrong, and the service's own scrub
                # (it scrubs what it stores) takes over. Real mistakes are named from the raw input.
                return tool.input_model.model_validate(arguments)
            except ValidationError as exc:
                return _error_result(ErrorKind.invalid_input, format_validation_error(tool.name, exc))

    async def _invoke(self, tool: ToolDef, caller: Caller, args: BaseModel) -> BaseModel:
        for guard in self.guards:
            guard(caller, tool, args)
        handler = tool.handler
        if inspect.iscoroutinefunction(handler):
            # Long waits (a sandboxed command) must not hold one of the worker threads.
            output: BaseModel = await handler(caller, args)
            return output
        return await anyio.to_thread.run_sync(cast(SyncHandler, handler), caller, args, limiter=self._limiter)

    def _respond(
        self, tool: ToolDef, caller: Caller, output: BaseModel, event: dict[str, Any]
    ) -> tuple[types.CallToolResult, int]:
        """``output`` scrubbed, capped to the token budget, with any hooks' notices."""
        data, redactions = scrub_tree(output.model_dump(mode="json"), self._scrubber)
        event["redactions_out"] = redactions
        data, truncated = cap_tree(data, self._counter, self._max_tokens, _answer_text)
        text = _answer_text(data)
        event["output_bytes"] = len(text)
        meta: dict[str, Any] = {"contextd/truncated": True} if truncated else {}
        content: list[types.ContentBlock] = [types.TextContent(type="text", text=text)]
        notices = self._notices(tool, caller, data, text)
        if notices:
            meta["contextd/notices"] = notices
            content.append(types.TextContent(type="text", text="\n".join(notices)))
        return types.CallToolResult(content=content, structured_content=data, meta=meta or None), redactions

    def _notices(self, tool: ToolDef, caller: Caller, data: dict[str, Any], text: str) -> list[str]:
        counted: list[int] = []

        def tokens() -> int:  # counted once, and only if a hook needs it (e.g. an active branch)
            if not counted:
                counted.append(self._counter.count(text))
            return counted[0]

        return [n for hook in self.response_hooks for n in hook(caller, tool, data, tokens)]


def _identified(identify: Identify, ctx: Any) -> Caller | Denied:
    """The caller, or why there is none: the call itself reports it (audited)."""
    try:
        return identify(ctx)
    except Denied as exc:
        return exc


def _toolsets_of(runner: ToolRunner, caller: Caller | Denied) -> frozenset[str] | None:
    """The caller's toolsets before a call (None: no caller, or a bad choice the call reports)."""
    if isinstance(caller, Denied):
        return None
    try:
        return runner.enabled.of(caller)
    except ValueError:
        return None


def build_server(runner: ToolRunner, identify: Identify = connection_caller) -> Server[Any]:
    # 2026-07-28 clients hear list_changed only on a subscriptions/listen stream; the bus
    # delivers each connection's notice to that connection's streams alone.
    bus = ConnectionBus()
    handlers = _Handlers(runner, bus, identify)
    server = ListChangedServer(
        "contextd-mcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=handlers.on_list_tools,
        on_call_tool=handlers.on_call_tool,
        on_list_prompts=handlers.on_list_prompts,
        on_get_prompt=handlers.on_get_prompt,
        on_subscriptions_listen=ListenHandler(bus, max_subscriptions=limits.LISTEN_STREAMS_MAX),
    )
    _drop_idle_tracing(server)
    return server


def _drop_idle_tracing(server: Server[Any]) -> None:
    """The SDK wraps every request in an OpenTelemetry span (attributes, trace-context extraction,
    a context manager: 0.05-0.1 ms of a call here, bench/mcp_dispatch.py). With no tracer
    provider installed in this process the spans go nowhere, so the middleware is dropped; a
    process that installs one first (``opentelemetry-instrument``) keeps it."""
    from opentelemetry import trace

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        server.middleware = [m for m in server.middleware if type(m).__name__ != "OpenTelemetryMiddleware"]


class _Handlers:
    """The MCP requests, each over the runner."""

    def __init__(self, runner: ToolRunner, bus: ConnectionBus, identify: Identify) -> None:
        self.runner = runner
        self.bus = bus
        self.identify = identify

    def caller_of(self, ctx: Any) -> Caller:
        try:
            return self.identify(ctx)
        except Denied as exc:
            raise MCPError(types.INVALID_REQUEST, f"{exc.kind}: {exc.message}") from exc

    def toolsets_of(self, caller: Caller) -> frozenset[str]:
        try:
            return self.runner.enabled.of(caller)
        except ValueError as exc:
            raise MCPError(types.INVALID_PARAMS, f"invalid_input: toolsets: {exc}") from exc

    async def on_list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        caller = self.caller_of(ctx)
        try:
            return types.ListToolsResult(tools=self.runner.list_tools(caller))
        except ValueError:
            # A bad X-Contextd-Toolsets header (a bridge's is refused at connect): nothing is
            # listed, and every call names the header's mistake. Not an error here: the SDK's
            # HTTP transport lists tools itself before each call, and would log it as a crash.
            return types.ListToolsResult(tools=[])

    async def on_call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        runner = self.runner
        caller = _identified(self.identify, ctx)
        before = _toolsets_of(runner, caller)
        result = await runner.call(params.name, params.arguments, caller)
        if isinstance(caller, Caller) and before is not None and not result.is_error:
            after = runner.enabled.of(caller)
            if after != before:
                await announce(ctx, self.bus, caller, prompts="skills" in after - before)
        return result

    async def on_list_prompts(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        caller = self.caller_of(ctx)
        provider = self.runner.prompts
        if provider is None or "skills" not in self.toolsets_of(caller):
            return types.ListPromptsResult(prompts=[])  # prompts follow their toolset
        return types.ListPromptsResult(prompts=await anyio.to_thread.run_sync(provider.list_prompts, caller))

    async def on_get_prompt(self, ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        provider = self.runner.prompts
        if provider is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown prompt {params.name[:64]!r}")
        caller = self.caller_of(ctx)
        if "skills" not in self.toolsets_of(caller):
            raise MCPError(
                types.INVALID_PARAMS,
                'not_found: prompts are skills, in toolset \'skills\'; call toolsets {"enable": ["skills"]} first',
            )
        try:
            return await anyio.to_thread.run_sync(provider.get_prompt, caller, params.name, dict(params.arguments or {}))
        except ContextdError as exc:
            raise MCPError(types.INVALID_PARAMS, f"{exc.kind}: {exc.message}") from exc
