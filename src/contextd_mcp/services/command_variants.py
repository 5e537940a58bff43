"""What a shell command line will really run, as variants that policy rules are checked on.

A rule that reads only the text as written is sidestepped by ``g""it``, ``$'\\x67it'``,
``a=git; $a``, ``eval …``, ``sh -c '…'``, ``echo … | base64 -d | sh`` or ``git -c x=y push``.
``command_variants`` returns the command as written plus, for it and for every piece of shell
it will run (``eval`` and ``bash/sh/zsh -c`` arguments, ``find -exec`` commands, command substitutions, text piped or
here-string'd into a shell, decoded base64, the values of ``env`` variables that programs
execute), three normal forms:

- ``unquoted``: quotes and escapes removed, ``$'…'`` decoded, known variables substituted;
- ``canonical``: also without wrappers (``sudo``, ``env``, ``command``, ``exec``, ``nohup``,
  ``time``, ``nice``, ``timeout``, ``xargs`` with what is piped to it), path prefixes
  (``/bin/rm`` → ``rm``), git's global options (``-c``, ``-C``, ``--git-dir``, …; a
  ``-c alias.x=…`` is expanded), and ``cd`` kept so that relative paths resolve;
- ``flags``: the canonical form with the flags of ``rm``, ``cp``, ``chmod``, ``chown`` and
  ``git push`` merged into one cluster, long names as short ones (``--recursive --force`` →
  ``-rf``, ``--force`` → ``-f``).

Work is bounded: at most ``VARIANTS_MAX`` variants, pieces unfolded ``UNFOLD_DEPTH_MAX`` levels
deep, every text cut at ``shell_words.TEXT_MAX`` characters and ``_READ_MAX`` read in all. It catches common obfuscations of a
cooperative agent; it is no parser of every shell program (the sandbox is the boundary).
"""

from __future__ import annotations

import posixpath
import shlex
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from contextd_mcp.services.shell_output import StaticOutput
from contextd_mcp.services.shell_words import TEXT_MAX, Token, expand, lex

VARIANTS_MAX = 32
UNFOLD_DEPTH_MAX = 3
_EXPANDED_MAX = 4 * TEXT_MAX  # characters of expanded words per piece, then words stay as written
_READ_MAX = 8 * TEXT_MAX  # characters of pieces unfolded per command, all levels together

# Programs that run the value of these variables as a command line (git, less, man, editors).
EXECUTED_ENV = frozenset({
    "PAGER", "GIT_PAGER", "MANPAGER", "SYSTEMD_PAGER", "EDITOR", "VISUAL", "GIT_EDITOR", "GIT_SEQUENCE_EDITOR",
    "FCEDIT", "GIT_SSH_COMMAND", "GIT_SSH", "GIT_ASKPASS", "SSH_ASKPASS", "SUDO_ASKPASS", "GIT_EXTERNAL_DIFF",
    "GIT_PROXY_COMMAND", "LESSOPEN", "LESSCLOSE", "BROWSER",
})
SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash"})
_SEPARATORS = frozenset({"|", "|&", "||", "&&", ";", "&", ";;", "(", ")"})
_WRAPPERS = {  # wrapper -> its options that take a value
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"},
    "doas": {"-u", "-C"},
    "env": {"-u", "-C", "-S", "--unset", "--chdir", "--split-string"},
    "command": set(), "exec": {"-a"}, "builtin": set(), "nohup": set(), "time": {"-f", "-o"},
    "nice": {"-n", "--adjustment"}, "ionice": {"-c", "-n", "-p"}, "stdbuf": {"-i", "-o", "-e"},
    "timeout": {"-s", "-k", "--signal", "--kill-after"}, "setsid": set(), "chronic": set(), "unbuffer": set(),
    "busybox": set(), "toybox": set(),
}
_XARGS_VALUED = {"-n", "-I", "-L", "-P", "-d", "-s", "-a", "-E", "--max-args", "--replace", "--max-procs",
                 "--delimiter", "--arg-file", "--max-chars", "-i"}
_GIT_VALUED = {"-c", "-C", "--git-dir", "--work-tree", "--namespace", "--config-env", "--super-prefix", "--exec-path"}
_GIT_FLAGS = {"--no-pager", "-p", "--paginate", "-P", "--bare", "--no-replace-objects", "--literal-pathspecs",
              "--glob-pathspecs", "--noglob-pathspecs", "--icase-pathspecs", "--no-optional-locks", "--no-advice",
              "--html-path", "--man-path", "--info-path", "--no-lazy-fetch"}
# Commands whose flags are merged: long name -> short letter, and the usual order of a cluster.
_FLAGS = {
    "rm": ({"--recursive": "r", "-R": "r", "--force": "f", "--dir": "d", "--verbose": "v"}, "rf"),
    "cp": ({"--recursive": "r", "-R": "r", "--force": "f"}, "rf"),
    "chmod": ({"--recursive": "R"}, "R"),
    "chown": ({"--recursive": "R"}, "R"),
    "git push": ({"--force": "f", "--set-upstream": "u", "--delete": "d", "--quiet": "q", "--verbose": "v"}, "f"),
}


@dataclass(frozen=True)
class Variant:
    text: str
    words: tuple[str, ...]  # operators are words of their own, as shlex splits them
    how: str  # "as written", "unquoted", "canonical", "flags", prefixed by where the piece came from


@dataclass
class _Command:
    words: list[str] = field(default_factory=list)
    redirects: list[tuple[str, str]] = field(default_factory=list)
    separator: str = ""


def command_variants(command: str, env: Mapping[str, str] | None = None) -> list[Variant]:
    """The command as written first, then its normal forms and those of every piece it runs."""
    return _Unfolder(dict(env or {})).run(command)


class _Unfolder:
    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._variants: list[Variant] = []
        self._texts: set[str] = set()
        self._queue: deque[tuple[str, int, str, dict[str, str]]] = deque()
        self._budget = _READ_MAX

    def run(self, command: str) -> list[Variant]:
        self._queue.append((command, 0, "", self._env))
        for name in sorted(EXECUTED_ENV & set(self._env)):
            self._queue.append((self._env[name], 1, f"env.{name}", self._env))
        while self._queue and len(self._variants) < VARIANTS_MAX and self._budget > 0:
            text, depth, origin, variables = self._queue.popleft()
            text = text[: min(TEXT_MAX, self._budget)]
            self._budget -= len(text)
            self._unfold(text, depth, origin, dict(variables))
        return self._variants

    def _add(self, text: str, words: list[str] | tuple[str, ...], how: str) -> None:
        if text in self._texts or len(self._variants) >= VARIANTS_MAX:
            return
        self._texts.add(text)
        self._variants.append(Variant(text, tuple(words), how))

    def _enqueue(self, text: str, depth: int, origin: str, variables: Mapping[str, str]) -> None:
        """A piece to unfold later, with the variables it sees (eval shares them; for ``sh -c``
        only exported ones would reach it, so this errs towards seeing more)."""
        if depth <= UNFOLD_DEPTH_MAX and text.strip() and len(self._queue) < VARIANTS_MAX:
            self._queue.append((text, depth, origin, dict(variables)))

    def _unfold(self, text: str, depth: int, origin: str, variables: dict[str, str]) -> None:
        commands = self._commands(lex(text), variables, depth, origin)
        label = f"{origin}, " if origin else ""
        unquoted = _render(commands)
        # The command as written keeps shlex's words, as rules always read them; a piece it runs
        # is read through bash's rules only (shlex is slow and no rule was written against it).
        self._add(text, _raw_words(text) if not origin else unquoted, origin or "as written")
        self._add(" ".join(unquoted), unquoted, f"{label}unquoted")
        canonical = [self._canonical(c, depth, origin, variables) for c in _with_stdin(commands)]
        words = _render(canonical)
        self._add(" ".join(words), words, f"{label}canonical")
        flagged = _render([_merge_flags(c) for c in canonical])
        self._add(" ".join(flagged), flagged, f"{label}flags")
        self._pipes_into_shells(canonical, depth, variables)

    def _commands(self, tokens: list[Token], variables: dict[str, str], depth: int, origin: str) -> list[_Command]:
        commands = [_Command()]
        static = StaticOutput(variables)
        expanded_chars = 0
        i = 0
        while i < len(tokens):
            token = tokens[i]
            current = commands[-1]
            if token.kind == "op" and token.text in _SEPARATORS:
                _read_builtin(current, variables)
                current.separator = token.text
                commands.append(_Command())
            elif token.kind == "op":
                target = tokens[i + 1].text if i + 1 < len(tokens) and tokens[i + 1].kind == "word" else ""
                expanded = expand(target, variables, static) if target else None
                current.redirects.append((token.text, " ".join(expanded.fields) if expanded else ""))
                i += 1 if target else 0
            else:
                if expanded_chars > _EXPANDED_MAX:  # past the budget, words are read as written
                    variables, static = {}, StaticOutput({}, enabled=False)
                expansion = expand(token.text, variables, static)
                expanded_chars += sum(len(f) for f in expansion.fields)
                for body in expansion.substitutions:
                    self._enqueue(body, depth + 1, _join(origin, "command substitution"), variables)
                if not current.words and "=" in token.text and _is_assignment(token.text):
                    name, _, _ = token.text.partition("=")
                    variables[name] = " ".join(expansion.fields)[len(name) + 1 : TEXT_MAX]
                if current.words[:1] in (["export"], ["declare"], ["local"], ["readonly"], ["typeset"]):
                    for f in expansion.fields:
                        if _is_assignment(f):
                            name, _, value = f.partition("=")
                            variables[name] = value[:TEXT_MAX]
                current.words.extend(expansion.fields)
            i += 1
        _read_builtin(commands[-1], variables)
        return [c for c in commands if c.words or c.redirects]

    def _canonical(self, command: _Command, depth: int, origin: str, variables: dict[str, str]) -> _Command:
        words = list(command.words)
        words = _strip_wrappers(words)
        if not words:
            return _Command(words, command.redirects, command.separator)
        words[0] = posixpath.basename(words[0]) if "/" in words[0] and not words[0].endswith("/") else words[0]
        if words[0] == "git":
            words, alias_shell = _git_canonical(words)
            if alias_shell is not None:
                self._enqueue(alias_shell, depth + 1, _join(origin, "git alias"), variables)
        name = words[0]
        if name == "find":
            for run in _find_exec(words):  # exec'd as words, not re-read: quote them to keep them whole
                self._enqueue(" ".join(shlex.quote(w) for w in run), depth + 1, _join(origin, "find -exec"), variables)
        if name == "eval" and len(words) > 1:
            self._enqueue(" ".join(words[1:]), depth + 1, _join(origin, "eval argument"), variables)
        elif name in SHELLS:
            script = _shell_script(words)
            if script is not None:
                self._enqueue(script, depth + 1, _join(origin, f"{name} -c argument"), {**variables, **_positional(words, script)})
        return _Command(words, command.redirects, command.separator)

    def _pipes_into_shells(self, commands: list[_Command], depth: int, variables: dict[str, str]) -> None:
        """Text that reaches a shell's standard input (a pipe, a here-string) is run by it."""
        stdin: str | None = None
        for command in commands:
            here = next((t for op, t in command.redirects if op == "<<<"), None)
            feed = here if here is not None else stdin
            words = command.words
            if feed is not None and words and words[0] in SHELLS and _shell_script(words) is None and _reads_stdin(words):
                self._enqueue(feed, depth + 1, f"piped into {command.words[0]}", variables)
            stdin = StaticOutput({}).stage(command.words, feed) if command.separator in ("|", "|&") else None


def _read_builtin(command: _Command, variables: dict[str, str]) -> None:
    """``read -r c <<< 'rm -rf /'`` assigns like ``c='rm -rf /'``."""
    here = next((t for op, t in command.redirects if op == "<<<"), None)
    if command.words[:1] == ["read"] and here is not None:
        names = [w for w in command.words[1:] if _is_assignment(w + "=")]
        if names:
            variables[names[-1]] = here[:TEXT_MAX]


def _join(origin: str, how: str) -> str:
    return f"{origin} → {how}" if origin else how


def _raw_words(text: str) -> list[str]:
    """The words the rules always had (shlex), so a rule reads the text as written as before."""
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        return list(lexer)
    except ValueError:  # unbalanced quotes: fall back to blanks
        return text.split()


def _is_assignment(word: str) -> bool:
    name, eq, _ = word.partition("=")
    return bool(eq) and name.isidentifier() and name.isascii()


def _render(commands: list[_Command]) -> list[str]:
    out: list[str] = []
    for command in commands:
        out.extend(command.words)
        for op, target in command.redirects:
            out.extend([op, target] if target else [op])
        if command.separator:
            out.append(command.separator)
    return out


def _with_stdin(commands: list[_Command]) -> list[_Command]:
    """``echo a b | xargs cmd`` and ``xargs cmd <<< 'a b'`` run ``cmd a b``."""
    out: list[_Command] = []
    stdin: str | None = None
    for command in commands:
        here = next((t for op, t in command.redirects if op == "<<<"), None)
        feed = here if here is not None else stdin
        words = _strip_wrappers(list(command.words))
        if words[:1] == ["xargs"]:
            args = _skip_options(words[1:], _XARGS_VALUED)
            command = _Command([*args, *(feed.split() if feed else [])], command.redirects, command.separator)
        out.append(command)
        stdin = StaticOutput({}).stage(words, feed) if command.separator in ("|", "|&") else None
    return out


def _skip_options(words: list[str], valued: set[str]) -> list[str]:
    i = 0
    while i < len(words) and words[i].startswith("-") and words[i] != "-":
        if words[i] == "--":
            return words[i + 1 :]
        i += 2 if words[i] in valued else 1
    return words[i:]


def _strip_wrappers(words: list[str]) -> list[str]:
    for _ in range(8):  # sudo env nice command … stacked: a few levels are enough
        while words and _is_assignment(words[0]):
            words = words[1:]
        if not words or posixpath.basename(words[0]) not in _WRAPPERS:
            return words
        name = posixpath.basename(words[0])
        rest = _skip_options(words[1:], _WRAPPERS[name])
        if name == "timeout" and rest:
            rest = rest[1:]  # the duration
        words = rest
    return words


def _git_canonical(words: list[str]) -> tuple[list[str], str | None]:
    """``git`` without its global options; a ``-c alias.NAME=…`` used as the subcommand is expanded
    (a ``!`` alias is shell, returned to be unfolded)."""
    aliases: dict[str, str] = {}
    i = 1
    while i < len(words) and words[i].startswith("-"):
        word = words[i]
        option, eq, value = word.partition("=")
        if option in _GIT_VALUED:
            if not eq:
                value = words[i + 1] if i + 1 < len(words) else ""
                i += 1
            if option == "-c" and value.lower().startswith("alias."):
                key, _, body = value[len("alias.") :].partition("=")
                aliases[key.lower()] = body
        elif word.startswith("-c") and len(word) > 2:
            value = word[2:]
        elif word not in _GIT_FLAGS:
            break
        i += 1
    rest = words[i:]
    if rest and rest[0].lower() in aliases:
        body = aliases[rest[0].lower()]
        if body.startswith("!"):
            return ["git", *rest], " ".join([body[1:], *rest[1:]])
        return ["git", *body.split(), *rest[1:]], None
    return ["git", *rest], None


def _shell_script(words: list[str]) -> str | None:
    """The script of ``sh -c SCRIPT`` (``-c`` may sit in a cluster: ``-lc``, ``-ec``)."""
    i = 1
    while i < len(words) and words[i][:1] in ("-", "+") and words[i] != "--":
        word = words[i]
        if word in ("-o", "+o", "-O", "+O"):
            i += 2
            continue
        if not word.startswith("--") and "c" in word[1:]:
            return words[i + 1] if i + 1 < len(words) else None
        i += 1
    return None


def _find_exec(words: list[str]) -> list[list[str]]:
    """The commands of ``find … -exec CMD ARGS ;`` (also ``-execdir``, ``-ok``, ``-okdir``, ``+``)."""
    runs: list[list[str]] = []
    current: list[str] | None = None
    for word in words[1:]:
        if current is None:
            if word in ("-exec", "-execdir", "-ok", "-okdir"):
                current = []
        elif word in (";", "+"):
            runs.append(current)
            current = None
        else:
            current.append(word)
    return [r for r in [*runs, *([current] if current else [])] if r]


def _positional(words: list[str], script: str) -> dict[str, str]:
    """``sh -c SCRIPT NAME A B`` runs SCRIPT with ``$1``=A, ``$2``=B, ``$@``=A B."""
    args = words[words.index(script) + 2 :]
    found = {str(n): a for n, a in enumerate(args[:9], start=1)}
    return {**found, "@": " ".join(args), "*": " ".join(args)}


def _reads_stdin(words: list[str]) -> bool:
    """A shell without ``-c`` runs its standard input unless it is given a script file."""
    i = 1
    while i < len(words) and words[i][:1] in ("-", "+"):
        if words[i] in ("-s", "-", "--"):
            return True
        i += 2 if words[i] in ("-o", "+o", "-O", "+O") else 1
    return i >= len(words)


def _merge_flags(command: _Command) -> _Command:
    words = command.words
    key = " ".join(words[:2]) if words[:2] == ["git", "push"] else (words[0] if words else "")
    if key not in _FLAGS:
        return command
    longs, order = _FLAGS[key]
    start = 2 if key == "git push" else 1
    letters: list[str] = []
    others: list[str] = []
    position = None
    for word in words[start:]:
        letter = longs.get(word)
        if letter is None and word.startswith("-") and not word.startswith("--") and word[1:].isalpha():
            letters.extend(longs.get(f"-{c}", c) for c in word[1:])
        elif letter is not None:
            letters.append(letter)
        else:
            others.append(word)
            continue
        position = len(others) if position is None else position
    if not letters:
        return command
    unique = list(dict.fromkeys(letters))
    cluster = "-" + "".join(sorted(unique, key=lambda c: (order.find(c) if c in order else len(order), unique.index(c))))
    others.insert(position or 0, cluster)
    return _Command([*words[:start], *others], command.redirects, command.separator)
