"""What a command prints when that does not depend on the world, to see what a pipeline feeds a
shell or what ``$(…)`` becomes: ``echo``, ``printf``, and ``base64 -d``, ``xxd -r -p``, ``rev``,
``cat``, ``tee`` of a known input. Anything else is unknown (None). Bounded: nested substitutions
``_DEPTH_MAX`` deep, ``_CALLS_MAX`` evaluations per piece, outputs cut at ``TEXT_MAX``.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Mapping

from contextd_mcp.services.shell_words import TEXT_MAX, Token, decode_ansi_c, expand, lex

_DEPTH_MAX = 4  # nested $( … ) evaluated for a static output
_CALLS_MAX = 64  # command substitutions evaluated per piece; later ones stay as written
_COMMANDS = frozenset({"echo", "printf", "cat", "base64", "xxd", "rev", "tee"})


class StaticOutput:
    """Output of a command whose output does not depend on the world: ``echo``, ``printf``, and
    ``base64 -d``/``xxd -r -p``/``rev``/``cat``/``tee`` of a known input."""

    def __init__(self, variables: Mapping[str, str], depth: int = 0, enabled: bool = True) -> None:
        self._variables = variables
        self._depth = depth if enabled else _DEPTH_MAX
        self._calls = 0

    def __call__(self, body: str) -> str | None:
        self._calls += 1
        first = body.lstrip().split(" ", 1)[0]
        if self._depth >= _DEPTH_MAX or self._calls > _CALLS_MAX or first not in _COMMANDS:
            return None
        inner = StaticOutput(self._variables, self._depth + 1)
        stdin: str | None = None
        out: str | None = None
        stage: list[str] = []
        here: str | None = None
        for token in [*lex(body), Token("op", "|")]:
            if token.kind == "op" and token.text in ("|", "|&"):
                out = self.stage(stage, here if here is not None else stdin)
                stdin, stage, here = out, [], None
                if out is None:
                    return None
            elif token.kind == "op" and token.text == "<<<":
                here = ""
            elif token.kind == "op":
                return None  # ;, &&, redirections: not a plain pipeline
            elif here == "" and stage:
                here = " ".join(expand(token.text, self._variables, inner).fields)
            else:
                stage.extend(expand(token.text, self._variables, inner).fields)
        return out

    def stage(self, words: list[str], stdin: str | None) -> str | None:
        if not words:
            return None
        name, args = posixpath.basename(words[0]), words[1:]
        if name == "echo":
            flags = [a for a in args[:2] if a in ("-n", "-e", "-ne", "-en", "-E")]
            text = " ".join(args[len(flags):])
            text = decode_ansi_c(text) if any("e" in f for f in flags) else text
            return text if any("n" in f for f in flags) else text + "\n"
        if name == "printf" and args:
            return _printf(args[0], args[1:])
        if stdin is None:
            return None
        if name == "base64" and any(a in ("-d", "--decode", "-D", "-di", "-id") for a in args):
            return _b64decode(stdin)
        if name == "xxd" and "-r" in args and "-p" in args:
            try:
                return bytes.fromhex("".join(stdin.split())).decode()[:TEXT_MAX]
            except (ValueError, UnicodeDecodeError):
                return None
        if name == "rev":
            return "\n".join(line[::-1] for line in stdin.split("\n"))
        if name in ("cat", "tee") and not [a for a in args if a != "-" and name == "cat"]:
            return stdin
        return None


def _printf(fmt: str, args: list[str]) -> str:
    if not args:
        return decode_ansi_c(fmt.replace("%%", "%"))
    if fmt.replace("\\n", "") in ("%s", "%b"):
        return "".join(decode_ansi_c(a) if fmt.startswith("%b") else a for a in args) + ("\n" if "\\n" in fmt else "")
    out = decode_ansi_c(fmt)
    for arg in args:
        out = out.replace("%s", arg, 1)
    return out


def _b64decode(text: str) -> str | None:
    data = "".join(text.split())
    try:
        raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=False)
        return raw.decode()[:TEXT_MAX]
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
