"""HTML of the page: escaped by construction (``e``), no inline script or style anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

NAV = [("", "Dashboard"), ("memories", "Memories"), ("kind/remediations", "Remediations"), ("kind/policies", "Policies"),
       ("kind/skills", "Skills"), ("kind/agents", "Agents"), ("kind/checkpoints", "Checkpoints"), ("sessions", "Sessions")]


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def u(value: object) -> str:
    return quote(str(value), safe="")


def when(ts: object) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return ""


def layout(title: str, body: str, csrf: str | None, active: str = "", who: str = "") -> str:
    on = ' class="on"'
    links = "".join(f'<a href="/ui/{path}"{on if path == active else ""}>{e(label)}</a>' for path, label in NAV)
    logout = (
        f'<form method="post" action="/ui/logout" class="inline"><input type="hidden" name="csrf" value="{e(csrf)}">'
        f'<span class="muted">{e(who)}</span> <button>Log out</button></form>'
        if csrf
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)} · contextd</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="/ui/static/favicon.svg"><link rel="stylesheet" href="/ui/static/ui.css"><script src="/ui/static/ui.js" defer></script>'
        f"</head><body><header><b>contextd</b>{links if csrf else ''}{logout}</header>"
        f"<main><h1>{e(title)}</h1>{body}</main></body></html>"
    )


def hidden(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(csrf)}">'


def error_box(message: str) -> str:
    return f'<p class="error" id="error">{e(message)}</p>'


def notice_box(message: str) -> str:
    return f'<p class="notice" id="notice">{e(message)}</p>'


def login_form(problem: str = "") -> str:
    return (
        (error_box(problem) if problem else "")
        + '<form method="post" action="/ui/login"><p>Paste a bearer token (make one with '
        "<code>contextd-mcp token create --tenant NAME</code>). The page keeps it in a cookie only "
        "this page can read (HttpOnly, SameSite=Strict).</p>"
        '<input id="token" name="token" type="password" autocomplete="off" class="wide"> '
        '<button id="login">Log in</button></form>'
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str = "") -> str:
    """``rows`` hold HTML already escaped by the caller (links, forms)."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f' id="{e(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fields(values: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    skipped = set(skip)
    items = []
    for key, value in values.items():
        if key in skipped:
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1, default=str)
        items.append(f"<dt>{e(key)}</dt><dd>{e(shown)}</dd>")
    return f"<dl>{''.join(items)}</dl>"


def delete_button(action: str, csrf: str, what: str, button_id: str = "delete") -> str:
    return (
        f'<form method="post" action="{e(action)}" class="inline" data-confirm="Delete this {e(what)}?">'
        f'{hidden(csrf)}<button class="danger" id="{e(button_id)}">Delete</button></form>'
    )


def select(name: str, options: Sequence[str], chosen: str) -> str:
    opts = "".join(f'<option value="{e(o)}"{" selected" if o == chosen else ""}>{e(o or "any")}</option>' for o in options)
    return f'<select name="{e(name)}" id="{e(name)}">{opts}</select>'
