"""One function per view; each gets the checked request's context (ui/app.py ``Ctx``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from starlette.responses import RedirectResponse, Response

from contextd_mcp.errors import ContextdError
from contextd_mcp.services.memory_curation import MemoryEdit
from contextd_mcp.ui.actions import ActionError
from contextd_mcp.ui.chart import ratings_svg
from contextd_mcp.ui.dashboard import audit_counts, disk_bytes
from contextd_mcp.ui.pages import delete_button, e, fields, hidden, notice_box, select, table, u, when
from contextd_mcp.ui.security import COOKIE

if TYPE_CHECKING:
    from contextd_mcp.ui.app import Ctx

SEARCH_RESULTS = 20  # the tool's own maximum
LISTED = 100  # memories a listing without a query shows (newest first)
# kind → (list tool and its arguments, result key, get tool, id argument, delete tool), for kinds with tools.
TOOL_KINDS: dict[str, tuple[str, dict[str, Any], str, str, str, str]] = {
    "skills": ("skill_list", {"scope": "org", "limit": 50}, "skills", "skill_get", "skill_id", "skill_delete"),
    "agents": ("agent_list", {"scope": "org", "limit": 50}, "agents", "agent_get", "agent_id", "agent_delete"),
    "policies": ("policy_list", {"limit": 50}, "policies", "policy_get", "policy_id", "policy_delete"),
}
# kind → (update tool, the text fields a person edits on the page); policies are replaced, not edited.
EDITABLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "skills": ("skill_update", ("description", "prompt_template")),
    "agents": ("agent_update", ("description", "system_prompt")),
}
# Kinds listed from the store (no list tool); viewed through a tool where one exists.
STORE_KINDS = {"remediations": ("title", "category", "confidence"), "checkpoints": ("summary", "session_id", "tags")}


async def logout(ctx: Ctx) -> Response:
    response = RedirectResponse("/ui/login", 303)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


# -- dashboard -----------------------------------------------------------------------------


async def dashboard(ctx: Ctx) -> Response:
    scope = ctx.caller.scope
    parts = ctx.parts
    overview = await ctx.parts.actions.curate(
        ctx.caller, "dashboard", lambda: parts.browser.overview(scope), {}, writes=False
    )
    audits = await anyio.to_thread.run_sync(audit_counts, parts.paths.audit, scope.tenant)
    size = await anyio.to_thread.run_sync(disk_bytes, parts.paths.root)
    cards = "".join(f'<div class="card" id="count-{e(k)}"><b>{v}</b>{e(k)}</div>' for k, v in overview.by_kind.items())
    projects = table(
        ["project", "memories"],
        ([f'<a href="/ui/memories?project={u(p)}">{e(p)}</a>', str(n)] for p, n in sorted(overview.by_project.items())),
        "by-project",
    )
    audit_rows = table(["tool", "outcome", "calls"], ([e(t), e(o), str(n)] for (t, o), n in sorted(audits.items())), "audit")
    note = " (the newest memories only)" if overview.truncated else ""
    body = (
        f'<div class="cards">{cards}<div class="card" id="disk"><b>{size / 1e6:.1f} MB</b>on disk</div></div>'
        f"<h2>Lessons rated helpful (green) or not (red), per day</h2>{ratings_svg(overview.ratings)}"
        f"<p class='muted'>From {overview.scanned} memories' rating history{e(note)}: feedback and outcomes of "
        "lessons injected at session start or found by search.</p>"
        f"<h2>Memories by project</h2>{projects}<h2>Tool calls (audit log, this tenant)</h2>{audit_rows}"
    )
    return ctx.page("Dashboard", body, "")


# -- memories ------------------------------------------------------------------------------


def _memory_filters(ctx: Ctx) -> tuple[dict[str, str], str]:
    q = ctx.request.query_params
    chosen = {k: q.get(k, "").strip() for k in ("q", "project", "outcome", "tag", "min_confidence")}
    form = (
        '<form method="get" action="/ui/memories" class="filters">'
        f'<input name="q" id="q" placeholder="search, as the agent does" value="{e(chosen["q"])}"> '
        f'<input name="project" id="project" placeholder="project" value="{e(chosen["project"])}"> '
        f'{select("outcome", ["", "success", "failure"], chosen["outcome"])}'
        f'<input name="tag" id="tag" placeholder="tag" value="{e(chosen["tag"])}"> '
        f'<input name="min_confidence" id="min_confidence" placeholder="min confidence 0-1" value="{e(chosen["min_confidence"])}"> '
        '<button id="search">Search</button></form>'
    )
    return chosen, form


def _min_confidence(text: str) -> float:
    try:
        value = float(text) if text else 0.0
    except ValueError:
        raise ActionError("invalid_input: min_confidence: a number from 0 to 1") from None
    if not 0.0 <= value <= 1.0:
        raise ActionError("invalid_input: min_confidence: a number from 0 to 1")
    return value


async def memories(ctx: Ctx) -> Response:
    chosen, form = _memory_filters(ctx)
    floor = _min_confidence(chosen["min_confidence"])
    if chosen["q"]:
        arguments: dict[str, Any] = {"query": chosen["q"], "limit": SEARCH_RESULTS, "min_confidence": floor,
                                     "scope": "project" if chosen["project"] else "org"}
        if chosen["outcome"]:
            arguments["outcome"] = chosen["outcome"]
        if chosen["tag"]:
            arguments["tags"] = [chosen["tag"]]
        hits = (await ctx.parts.actions.tool(ctx.caller, "memory_search", arguments))["memories"]
        rows = [[_memory_link(h["id"], h["title"], chosen["project"]), e(h.get("outcome") or "success"),
                 f'{h["confidence"]:.2f}', f'{h["score"]:.2f}', e(h["description"])] for h in hits]
        listing = table(["title", "outcome", "confidence", "score", "description"], rows, "memories")
    else:
        match: dict[str, Any] = {}
        for key, field in (("project", "project"), ("outcome", "outcome"), ("tag", "tags")):
            if chosen[key]:
                match[field] = chosen[key]
        curation, scope = ctx.parts.curation, ctx.caller.scope
        from contextd_mcp.models.scope import ScopeLevel

        found = await ctx.parts.actions.curate(
            ctx.caller, "memory_list", lambda: curation.list(scope, ScopeLevel.org, match, floor, LISTED), match, writes=False
        )
        rows = [[_memory_link(r.id, r.payload["title"], r.payload["project"]), e(r.payload["project"]), e(r.payload["outcome"]),
                 f'{float(r.payload["confidence"]):.2f}', e(", ".join(r.payload.get("tags", []))), e(when(r.payload.get("created_ts")))]
                for r in found]
        listing = table(["title", "project", "outcome", "confidence", "tags", "created"], rows, "memories")
    return ctx.page("Memories", form + listing, "memories")


def _memory_link(memory_id: str, title: str, project: str | None) -> str:
    query = f"?project={u(project)}" if project else ""
    return f'<a class="memory" href="/ui/memories/{u(memory_id)}{query}">{e(title)}</a>'


async def memory(ctx: Ctx) -> Response:
    memory_id = ctx.request.path_params["memory_id"]
    curation, scope = ctx.parts.curation, ctx.caller.scope
    p = await ctx.parts.actions.curate(ctx.caller, "memory_view", lambda: curation.record(scope, memory_id), {"id": memory_id},
                                       writes=False)
    csrf = ctx.csrf
    history = table(
        ["when", "kind", "helpful", "origin (session)", "query"],
        ([e(when(ev.get("ts"))), e(ev.get("kind")), e(ev.get("helpful")), e(ev.get("origin")), e(ev.get("query", ""))]
         for ev in reversed(p.get("events", []))),
        "history",
    )
    keys = table(["kind", "learned text"], ([e(k), e(t)] for k, t in p["keys"]), "keys")
    session = p.get("session_id") or ""
    source = f'<a href="/ui/sessions/{u(session)}?project={u(p["project"])}">{e(session)}</a>' if session else "stored by a tool"
    summary = fields({k: p.get(k) for k in ("project", "outcome", "confidence", "helpful_count", "unhelpful_count",
                                            "uses_succeeded", "uses_failed", "origin", "applies_when", "merged_from")})
    edit = (
        f'<h2>Edit</h2><form method="post" action="/ui/memories/{u(memory_id)}/edit">{hidden(csrf)}'
        f'<input type="hidden" name="project" value="{e(p["project"])}">'
        f'<p>Title<br><input class="wide" name="title" id="edit-title" value="{e(p["title"])}"></p>'
        f'<p>Description<br><input class="wide" name="description" id="edit-description" value="{e(p["description"])}"></p>'
        f'<p>Content<br><textarea name="content" id="edit-content">{e(p["content"])}</textarea></p>'
        f'<p>Tags (comma-separated)<br><input class="wide" name="tags" id="edit-tags" value="{e(", ".join(p.get("tags", [])))}"></p>'
        '<button id="save">Save</button></form>'
    )
    dupes = await _near_duplicates(ctx, memory_id, p)
    notice = notice_box(ctx.request.query_params["done"]) if ctx.request.query_params.get("done") else ""
    body = (
        f"{notice}<p>{e(p['description'])}</p><pre>{e(p['content'])}</pre>{summary}<p>Source session: {source}</p>"
        f"<h2>History</h2>{history}<h2>Keys</h2>{keys}{edit}<h2>Near duplicates</h2>{dupes}"
        f"<h2>Delete</h2>{delete_button(f'/ui/memories/{u(memory_id)}/delete', csrf, 'memory')}"
    )
    return ctx.page(p["title"], body, "memories")


async def _near_duplicates(ctx: Ctx, memory_id: str, p: dict[str, Any]) -> str:
    """Memories of the same project that the memory's own title finds, with a button to merge."""
    arguments = {"query": p["title"], "limit": 5, "min_confidence": 0.0, "scope": "project"}
    hits = (await ctx.parts.actions.tool(ctx.caller, "memory_search", arguments))["memories"]
    rows = []
    for hit in hits:
        if hit["id"] == memory_id:
            continue
        merge = (
            f'<form method="post" action="/ui/memories/merge" class="inline" data-confirm="Fold it into this memory?">'
            f'{hidden(ctx.csrf)}<input type="hidden" name="keep" value="{e(memory_id)}">'
            f'<input type="hidden" name="drop" value="{e(hit["id"])}"><input type="hidden" name="project" value="{e(p["project"])}">'
            f'<button class="merge">Merge into this one</button></form>'
        )
        rows.append([_memory_link(hit["id"], hit["title"], p["project"]), f'{hit["score"]:.2f}', merge])
    return table(["memory", "score", ""], rows, "duplicates") if rows else '<p class="muted">None found.</p>'


async def memory_edit(ctx: Ctx) -> Response:
    memory_id = ctx.request.path_params["memory_id"]
    f = ctx.form
    tags = [t.strip().lower() for t in f.get("tags", "").split(",") if t.strip()] if "tags" in f else None
    edit = MemoryEdit(title=f.get("title"), description=f.get("description"), content=f.get("content"), tags=tags)
    curation, scope = ctx.parts.curation, ctx.caller.scope
    await ctx.parts.actions.curate(ctx.caller, "memory_update", lambda: curation.update(scope, memory_id, edit),
                                   {"id": memory_id, **{k: v for k, v in f.items() if k != "csrf"}})
    return RedirectResponse(f"/ui/memories/{u(memory_id)}?done=Saved.", 303)


async def memory_delete(ctx: Ctx) -> Response:
    memory_id = ctx.request.path_params["memory_id"]
    curation, scope = ctx.parts.curation, ctx.caller.scope
    await ctx.parts.actions.curate(ctx.caller, "memory_delete", lambda: curation.delete(scope, memory_id), {"id": memory_id})
    return RedirectResponse("/ui/memories?deleted=1", 303)


async def memory_merge(ctx: Ctx) -> Response:
    keep, drop = ctx.form.get("keep", ""), ctx.form.get("drop", "")
    curation, scope = ctx.parts.curation, ctx.caller.scope
    await ctx.parts.actions.curate(ctx.caller, "memory_merge", lambda: curation.merge(scope, keep, drop),
                                   {"keep": keep, "drop": drop})
    return RedirectResponse(f"/ui/memories/{u(keep)}?done=Merged.", 303)


# -- remediations, policies, skills, agents, checkpoints ----------------------------------------


def _kind(ctx: Ctx) -> str:
    kind = str(ctx.request.path_params["kind"])
    if kind not in TOOL_KINDS and kind not in STORE_KINDS:
        raise ActionError("not_found: no such kind of record")
    return kind


async def kind_list(ctx: Ctx) -> Response:
    kind = _kind(ctx)
    if kind in TOOL_KINDS:
        list_tool, arguments, key, *_ = TOOL_KINDS[kind]
        items = (await ctx.parts.actions.tool(ctx.caller, list_tool, arguments))[key]
        label = "name" if kind != "policies" else "title"
        rows = [[f'<a href="/ui/kind/{kind}/{u(i["id"])}">{e(i.get(label))}</a>', e(i.get("description") or i.get("category") or ""),
                 e(i.get("level") or i.get("scope") or "")] for i in items]
        listing = table([label, "about", "level"], rows, "records")
    else:
        browser, scope = ctx.parts.browser, ctx.caller.scope
        found = await ctx.parts.actions.curate(ctx.caller, f"{kind}_list", lambda: browser.list(scope, kind), {}, writes=False)
        columns = STORE_KINDS[kind]
        rows = [[f'<a href="/ui/kind/{kind}/{u(r.id)}?project={u(r.payload.get("project", ""))}">{e(r.payload.get(columns[0]))}</a>',
                 *(e(r.payload.get(c)) for c in columns[1:]), e(r.payload.get("project")), e(when(r.payload.get("created_ts")))]
                for r in found]
        listing = table([*columns, "project", "created"], rows, "records")
    return ctx.page(kind.capitalize(), listing, f"kind/{kind}")


async def kind_view(ctx: Ctx) -> Response:
    kind, record_id = _kind(ctx), ctx.request.path_params["record_id"]
    if kind in TOOL_KINDS:
        _, _, _, get_tool, id_arg, _ = TOOL_KINDS[kind]
        arguments = {id_arg: record_id, **({} if kind == "policies" else {"scope": "org"})}
        shown = await ctx.parts.actions.tool(ctx.caller, get_tool, arguments)
    elif kind == "remediations":
        shown = await ctx.parts.actions.tool(ctx.caller, "remediation_get", {"remediation_id": record_id, "scope": "org"})
    else:
        browser, scope = ctx.parts.browser, ctx.caller.scope
        record = await ctx.parts.actions.curate(ctx.caller, f"{kind}_view", lambda: browser.get(scope, kind, record_id),
                                                {"id": record_id}, writes=False)
        shown = record.payload
    title = str(shown.get("name") or shown.get("title") or shown.get("summary") or record_id)[:120]
    body = fields(shown) + _edit_form(ctx, kind, record_id, shown)
    body += delete_button(f"/ui/kind/{kind}/{u(record_id)}/delete", ctx.csrf, kind.rstrip("s"))
    return ctx.page(title, body, f"kind/{kind}")


def _edit_form(ctx: Ctx, kind: str, record_id: str, shown: dict[str, Any]) -> str:
    if kind not in EDITABLE:
        return ""
    areas = "".join(f'<p>{e(name)}<br><textarea name="{e(name)}" id="edit-{e(name)}">{e(shown.get(name, ""))}</textarea></p>'
                    for name in EDITABLE[kind][1])
    return (f'<h2>Edit</h2><form method="post" action="/ui/kind/{kind}/{u(record_id)}/edit">{hidden(ctx.csrf)}'
            f'{areas}<button id="save">Save</button></form><h2>Delete</h2>')


async def kind_edit(ctx: Ctx) -> Response:
    """Through the kind's own update tool: its validation, its audit line (``ui.skill_update``)."""
    kind, record_id = _kind(ctx), ctx.request.path_params["record_id"]
    if kind not in EDITABLE:
        raise ActionError(f"invalid_input: kind: {kind} are not edited on the page")
    tool, names = EDITABLE[kind]
    arguments: dict[str, Any] = {TOOL_KINDS[kind][4]: record_id, "scope": "org"}
    arguments.update({name: ctx.form[name] for name in names if name in ctx.form})
    await ctx.parts.actions.tool(ctx.caller, tool, arguments)
    return RedirectResponse(f"/ui/kind/{kind}/{u(record_id)}", 303)


async def kind_delete(ctx: Ctx) -> Response:
    kind, record_id = _kind(ctx), ctx.request.path_params["record_id"]
    if kind in TOOL_KINDS:
        _, _, _, _, id_arg, delete_tool = TOOL_KINDS[kind]
        arguments = {id_arg: record_id, **({} if kind == "policies" else {"scope": "org"})}
        await ctx.parts.actions.tool(ctx.caller, delete_tool, arguments)
    else:
        browser, scope = ctx.parts.browser, ctx.caller.scope
        await ctx.parts.actions.curate(ctx.caller, f"{kind.rstrip('s')}_delete", lambda: browser.delete(scope, kind, record_id),
                                       {"id": record_id})
    return RedirectResponse(f"/ui/kind/{kind}", 303)


# -- sessions ------------------------------------------------------------------------------


async def sessions(ctx: Ctx) -> Response:
    browser, scope = ctx.parts.browser, ctx.caller.scope
    found = await ctx.parts.actions.curate(ctx.caller, "sessions_list", lambda: browser.list(scope, "sessions"), {}, writes=False)
    rows = [[f'<a href="/ui/sessions/{u(r.id)}?project={u(r.payload.get("project", ""))}">{e(when(r.payload.get("created_ts")))}</a>',
             e(r.payload.get("project")), e(r.payload.get("status")), e(r.payload.get("outcome", "")),
             e((r.payload.get("task") or "")[:120]), str(len(r.payload.get("injected", []))), e(r.payload.get("job_id", ""))]
            for r in found]
    listing = table(["started", "project", "status", "outcome", "task", "injected", "distillation job"], rows, "sessions")
    return ctx.page("Sessions", listing, "sessions")


async def session(ctx: Ctx) -> Response:
    session_id = ctx.request.path_params["session_id"]
    browser, scope = ctx.parts.browser, ctx.caller.scope
    record = await ctx.parts.actions.curate(ctx.caller, "session_view", lambda: browser.get(scope, "sessions", session_id),
                                            {"id": session_id}, writes=False)
    p = record.payload
    injected = "".join(f"<li>{_memory_link(m['id'], m['title'], p.get('project'))}</li>"
                       for m in p.get("injected", []) if isinstance(m, dict)) or "<li>nothing</li>"
    job = '<p class="muted">No distillation job (nothing new to learn, or the session has not ended).</p>'
    if p.get("job_id"):
        try:
            status = await ctx.parts.actions.tool(ctx.caller, "distill_status", {"job_id": p["job_id"]})
            job = fields(status)
        except (ActionError, ContextdError) as exc:
            job = f'<p class="error">{e(exc)}</p>'
    times = {k: when(p.get(k)) for k in ("created_ts", "last_seen_ts", "closed_ts") if p.get(k)}
    body = (
        fields({k: p.get(k) for k in ("project", "status", "outcome", "task", "summary")} | times)
        + f'<h2>Injected at start</h2><ul id="injected">{injected}</ul><h2>Distilled at the end</h2>{job}'
    )
    return ctx.page(f"Session {session_id[:8]}", body, "sessions")
