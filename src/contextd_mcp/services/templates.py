"""Prompt templates with named placeholders.

Syntax (the whole of it):

- ``{{name}}`` is a required placeholder, ``{{name?}}`` an optional one (renders as nothing
  when the argument is absent). Spaces inside the braces are allowed: ``{{ name }}``.
- A name is an identifier: a letter or ``_``, then letters, digits or ``_`` (at most 40).
- ``\\{{`` and ``\\}}`` write literal double braces. Single braces are plain text, so code
  and JSON need no escaping.
- Anything else that opens ``{{`` or closes ``}}`` is an error, found when the skill is
  created, never when it is rendered.

Rendering is one pass: an argument's value is inserted as it is and never expanded again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from contextd_mcp.errors import InvalidInput

PLACEHOLDER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
MAX_PLACEHOLDERS = 20
# Tokens: an escaped pair, a placeholder, or a stray pair of braces.
_TOKEN = re.compile(r"\\(\{\{|\}\})|\{\{([^{}]*)\}\}|(\{\{|\}\})")


@dataclass(frozen=True)
class Placeholder:
    name: str
    required: bool


def _parse(text: str, field: str) -> list[tuple[str, str | Placeholder]]:
    """Splits ``text`` into ("text", literal) and ("arg", Placeholder) pieces."""
    pieces: list[tuple[str, str | Placeholder]] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        pieces.append(("text", text[pos : match.start()]))
        pos = match.end()
        escaped, inner, stray = match.groups()
        if escaped:
            pieces.append(("text", escaped))
            continue
        if stray:
            line = text.count("\n", 0, match.start()) + 1
            what = "'{{' is never closed by '}}'" if stray == "{{" else "'}}' closes nothing"
            raise InvalidInput(field, f"{what} (line {line}); write \\{stray} for literal braces")
        body = (inner or "").strip()
        optional = body.endswith("?")
        name = body[:-1].rstrip() if optional else body
        if not PLACEHOLDER_NAME.match(name):
            line = text.count("\n", 0, match.start()) + 1
            raise InvalidInput(
                field,
                f"placeholder {{{{{body[:20]}}}}} (line {line}) must be an identifier "
                "(letter or _, then letters, digits, _; at most 40), optionally followed by '?'",
            )
        pieces.append(("arg", Placeholder(name, required=not optional)))
    pieces.append(("text", text[pos:]))
    return pieces


def placeholders(texts: Mapping[str, str]) -> list[Placeholder]:
    """The placeholders of several texts (field name → text), in order of first use.

    A name used both as required and as optional is an error: which one would be meant?
    """
    found: dict[str, Placeholder] = {}
    for field, text in texts.items():
        for kind, piece in _parse(text, field):
            if kind != "arg":
                continue
            assert isinstance(piece, Placeholder)
            seen = found.get(piece.name)
            if seen is not None and seen.required != piece.required:
                raise InvalidInput(field, f"placeholder {piece.name!r} is used both as required and as optional ('?')")
            found.setdefault(piece.name, piece)
    if len(found) > MAX_PLACEHOLDERS:
        raise InvalidInput(next(iter(texts)), f"at most {MAX_PLACEHOLDERS} distinct placeholders")
    return list(found.values())


def render(text: str, arguments: Mapping[str, str], field: str = "prompt_template") -> str:
    out = []
    for kind, piece in _parse(text, field):
        if kind == "text":
            out.append(str(piece))
        else:
            assert isinstance(piece, Placeholder)
            out.append(arguments.get(piece.name, ""))
    return "".join(out)


def check_arguments(skill: str, declared: Sequence[Placeholder], arguments: Mapping[str, str]) -> None:
    """Refuses undeclared arguments and missing required ones, naming them all."""
    names = {p.name for p in declared}
    unknown = sorted(set(arguments) - names)
    if unknown:
        allowed = ", ".join(sorted(names)) or "none"
        raise InvalidInput("arguments", f"skill {skill!r} has no placeholder {', '.join(unknown)} (it takes: {allowed})")
    missing = [p.name for p in declared if p.required and not str(arguments.get(p.name, "")).strip()]
    if missing:
        raise InvalidInput("arguments", f"skill {skill!r} needs {', '.join(missing)}")
