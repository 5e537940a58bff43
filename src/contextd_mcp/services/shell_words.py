"""Bash's word rules, enough to see what a command line will really run (for policies).

``lex`` splits a line into words (quotes kept as written) and operators, with ``$(…)``,
backticks, ``${…}``, ``<(…)`` and here-documents kept whole; ``expand`` then does what bash
does to a word before running it: quotes and backslashes removed, ``$'…'`` decoded, known
variables substituted (unquoted ones split into fields), and command substitutions whose
output is static (``$(echo rm)``) replaced by that output. Everything is linear in the input
and every expansion is capped at ``TEXT_MAX`` characters, so no line can make it slow.
This is not a shell: anything it cannot know (an unset variable, ``$(date)``) stays as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

TEXT_MAX = 16_000  # an expanded word or a decoded payload is cut here (the command cap, models/shell.py)

_OPERATORS = ("&>>", "<<<", "<<-", ";;", "||", "&&", "|&", "&>", "<<", "<>", ">>", ">|", ">&", "<&", "|", "&", ";", "<", ">", "(", ")")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_POSITIONAL = frozenset("@*123456789")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}


@dataclass(frozen=True)
class Token:
    kind: str  # "word" or "op"
    text: str  # a word as written (quotes kept), or the operator


def _closing(text: str, i: int, opener: str, closer: str) -> int:
    """Index just past the ``closer`` matching the ``opener`` before ``i``, skipping quoted parts."""
    depth = 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = text.find("'", i + 1)
            i = len(text) if end < 0 else end + 1
            continue
        if c == '"':
            i = _closing_quote(text, i + 1)
            continue
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def _closing_quote(text: str, i: int) -> int:
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if text.startswith("$(", i):
            i = _closing(text, i + 2, "(", ")")
            continue
        if c == "`":
            end = text.find("`", i + 1)
            i = len(text) if end < 0 else end + 1
            continue
        i += 1
    return len(text)


def _ansi_c_end(text: str, i: int) -> int:
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "'":
            return i + 1
        i += 1
    return len(text)


def lex(text: str) -> list[Token]:
    """Words and operators of a command line; a newline is ``;``; comments are dropped; a
    here-document becomes ``<<<`` and its body, as bash feeds it to the command."""
    tokens: list[Token] = []
    heredocs: list[str] = []  # delimiters waiting for the end of the line
    i, start = 0, -1

    def end_word(at: int) -> None:
        nonlocal start
        if start >= 0:
            tokens.append(Token("word", text[start:at]))
            start = -1

    while i < len(text):
        c = text[i]
        if c in " \t\n":
            end_word(i)
            i = _past_blank(text, i, heredocs, tokens)
            continue
        if c == "#" and start < 0:
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        if start < 0 and c in "<>" and text.startswith("(", i + 1):  # process substitution: a word
            start = i
            i = _closing(text, i + 2, "(", ")")
            continue
        op = _operator_at(text, i)
        if op is not None:
            end_word(i)  # "2>" stays the word "2" and ">", as shlex splits it
            tokens.append(Token("op", op))
            i += len(op)
            if op in ("<<", "<<-"):
                i = _heredoc_delimiter(text, i, heredocs)
            continue
        if start < 0:
            start = i
        i = _past_word_part(text, i)
    end_word(len(text))
    return tokens


def _past_blank(text: str, i: int, heredocs: list[str], tokens: list[Token]) -> int:
    """Past a blank; a newline ends a command (``;``) after the bodies of the line's here-documents."""
    if text[i] != "\n":
        return i + 1
    i = _read_heredocs(text, i + 1, heredocs, tokens) if heredocs else i + 1
    tokens.append(Token("op", ";"))
    return i


def _operator_at(text: str, i: int) -> str | None:
    if text[i] not in "|&;<>()":
        return None
    return next((o for o in _OPERATORS if text.startswith(o, i)), None)


def _past_word_part(text: str, i: int) -> int:
    """Past the character of a word at ``i``, or past the whole quote or substitution it opens."""
    c = text[i]
    if c == "\\":
        return i + 2
    if c in "'`":
        end = text.find(c, i + 1)
        return len(text) if end < 0 else end + 1
    if c == '"':
        return _closing_quote(text, i + 1)
    if text.startswith("$'", i):
        return _ansi_c_end(text, i + 2)
    if text.startswith("$(", i):
        return _closing(text, i + 2, "(", ")")
    if text.startswith("${", i):
        return _closing(text, i + 2, "{", "}")
    return i + 1


def _heredoc_delimiter(text: str, i: int, heredocs: list[str]) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    match = re.compile(r"""(['"]?)([^\s;&|<>()'"]+)\1""").match(text, i)
    if not match:
        return i
    heredocs.append(match.group(2))
    return match.end()


def _read_heredocs(text: str, i: int, heredocs: list[str], tokens: list[Token]) -> int:
    """Bodies follow the line in order; each becomes the word after its ``<<`` operator."""
    ops = [n for n, t in enumerate(tokens) if t.kind == "op" and t.text in ("<<", "<<-")]
    bodies: list[str] = []
    for delimiter in heredocs:
        lines: list[str] = []
        while i < len(text):
            newline = text.find("\n", i)
            line = text[i:] if newline < 0 else text[i:newline]
            i = len(text) if newline < 0 else newline + 1
            if line.lstrip("\t") == delimiter:
                break
            lines.append(line)
        bodies.append("\n".join(lines))
    for n, body in zip(ops[-len(heredocs):], bodies, strict=False):
        tokens[n] = Token("op", "<<<")
        tokens.insert(n + 1, Token("word", "'" + body.replace("'", "'\\''") + "'"))
    heredocs.clear()
    return i


def decode_ansi_c(body: str) -> str:
    """The value of ``$'body'``: ``\\n``, ``\\xHH``, ``\\0oo``/``\\ooo``, ``\\uHHHH``, ``\\UHHHHHHHH``, ``\\cX``."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\" or i + 1 >= len(body):
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        i += 2
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            digits = re.match(rf"[0-9a-fA-F]{{1,{size}}}", body[i:])
            if digits:
                out.append(chr(min(int(digits.group(0), 16), 0x10FFFF)))
                i += len(digits.group(0))
            else:
                out.append("\\" + e)
        elif e in "01234567":
            digits = re.match(r"[0-7]{0,2}", body[i:])
            value = e + (digits.group(0) if digits else "")
            out.append(chr(int(value, 8) & 0xFF))
            i += len(value) - 1
        elif e == "c" and i < len(body):
            out.append(chr(ord(body[i]) & 0x1F))
            i += 1
        else:
            out.append("\\" + e)
    return "".join(out)


# Output of a command substitution's body, when it is static; None when it is not.
OutputOf = Callable[[str], "str | None"]


@dataclass
class Expansion:
    fields: list[str]  # the words bash passes on (unquoted expansions split on blanks)
    substitutions: list[str] = field(default_factory=list)  # bodies of $(…), `…`, <(…): they run too


def expand(word: str, variables: Mapping[str, str], static: OutputOf) -> Expansion:
    """One word as bash would pass it on, as far as it can be known without running anything."""
    expander = _Expander(word, variables, static)
    i = 0
    while i < len(word):
        i = expander.step(i)
    kept = [f for f in expander.fields if f] or ([""] if expander.quoted_any else [])
    return Expansion(kept, expander.substitutions)


class _Expander:
    """The fields one word expands to, built as it is read left to right."""

    def __init__(self, word: str, variables: Mapping[str, str], static: OutputOf) -> None:
        self.word = word
        self.variables = variables
        self.static = static
        self.fields: list[str] = [""]
        self.quoted_any = False
        self.substitutions: list[str] = []
        self.budget = TEXT_MAX  # one word expands to at most this many characters, however many $x it holds
        self.separators = variables.get("IFS")

    def add(self, text: str, split: bool) -> None:
        text = text[: self.budget]
        self.budget -= len(text)
        fields = self.fields
        if not split:
            fields[-1] = (fields[-1] + text)[:TEXT_MAX]
            return
        if self.separators:  # IFS=, set on the line: x=push,-f splits at the commas
            text = text.translate({ord(c): " " for c in self.separators[:8]})
        parts = text.split()
        if not parts:
            return
        if text[:1].isspace() and fields[-1]:
            fields.append("")
        fields[-1] = (fields[-1] + parts[0])[:TEXT_MAX]
        fields.extend(parts[1:])
        if text[-1:].isspace():
            fields.append("")

    def step(self, i: int) -> int:
        """Expands what starts at ``i``; returns the index after it."""
        word, c = self.word, self.word[i]
        if c == "\\":
            self.add(word[i + 1 : i + 2], False)
            return i + 2
        if c == "'":
            end = word.find("'", i + 1)
            end = len(word) if end < 0 else end
            self.add(word[i + 1 : end], False)
            self.quoted_any = True
            return end + 1
        if word.startswith("$'", i):
            end = _ansi_c_end(word, i + 2)
            self.add(decode_ansi_c(word[i + 2 : end - 1]), False)
            self.quoted_any = True
            return end
        if c == '"':
            end = _closing_quote(word, i + 1)
            _expand_double(word[i + 1 : end - 1], self.add, dollar_in=_shifted(self.dollar, i + 1))
            self.quoted_any = True
            return end
        if c == "$":
            return self.dollar(i, False)
        if c == "`":
            return self._backticks(i)
        if c in "<>" and word.startswith("(", i + 1):
            end = _closing(word, i + 2, "(", ")")
            self.substitutions.append(word[i + 2 : end - 1])
            self.add(word[i:end], False)
            return end
        self.add(c, False)
        return i + 1

    def _backticks(self, i: int) -> int:
        word = self.word
        end = word.find("`", i + 1)
        end = len(word) if end < 0 else end
        self.substitutions.append(word[i + 1 : end])
        out = self.static(word[i + 1 : end])
        self.add(word[i : end + 1] if out is None else out.rstrip("\n"), split=out is not None)
        return end + 1

    def dollar(self, i: int, in_quotes: bool) -> int:
        """Expands the ``$…`` at ``i``; returns the index after it."""
        word = self.word
        if word.startswith("$(", i) and not word.startswith("$((", i):
            end = _closing(word, i + 2, "(", ")")
            body = word[i + 2 : end - 1]
            self.substitutions.append(body)
            out = self.static(body)
            self.add(word[i:end] if out is None else out.rstrip("\n"), split=out is not None and not in_quotes)
            return end
        if word.startswith("${", i):
            return self._braced(i, in_quotes)
        if word[i + 1 : i + 2] in _POSITIONAL:  # `bash -c command` has no arguments: unset ones are empty
            self.add(self.variables.get(word[i + 1], ""), split=not in_quotes)
            return i + 2
        match = _NAME.match(word, i + 1)
        if match:
            known = self.variables.get(match.group(0))
            self.add(word[i : match.end()] if known is None else known, split=known is not None and not in_quotes)
            return match.end()
        self.add("$", False)
        return i + 1

    def _braced(self, i: int, in_quotes: bool) -> int:
        word = self.word
        end = _closing(word, i + 2, "{", "}")
        name = word[i + 2 : end - 1]
        known = self.variables.get(name) if _NAME.fullmatch(name) or name in _POSITIONAL else None
        if known is None and (name in _POSITIONAL or _inside_a_name(word, i, end)):
            known = ""
        self.add(word[i:end] if known is None else known, split=known is not None and not in_quotes)
        return end


def _inside_a_name(word: str, start: int, end: int) -> bool:
    """``ma${x}in``: an unset variable between letters is an empty string hiding a word; one
    that starts or ends a path (``$DIR/x``) may well be set, so it stays as written."""
    return start > 0 and word[start - 1].isalnum() and end < len(word) and word[end].isalnum()


def _shifted(dollar: Callable[[int, bool], int], start: int) -> Callable[[int], int]:
    """``dollar`` (on the whole word, in quotes) for offsets within a quoted body at ``start``."""
    return lambda j: dollar(start + j, True) - start


def _expand_double(body: str, add: Callable[[str, bool], None], dollar_in: Callable[[int], int]) -> None:
    """Inside double quotes only ``\\$ \\` \\" \\\\`` are escapes, and ``$…`` still expands."""
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body) and body[i + 1] in '$`"\\\n':
            add(body[i + 1], False)
            i += 2
        elif c == "$" or c == "`":
            i = dollar_in(i) if c == "$" else _backtick_in_quotes(body, i, add)
        else:
            add(c, False)
            i += 1


def _backtick_in_quotes(body: str, i: int, add: Callable[[str, bool], None]) -> int:
    end = body.find("`", i + 1)
    end = len(body) if end < 0 else end
    add(body[i : end + 1], False)
    return end + 1
