"""Policy rules compiled once and evaluated without an LLM (syntax: models/policy.py).

Rules on a command are checked on every variant of it (services/command_variants.py): the text
as written and its normal forms, and those of every piece of shell it runs; a rule matches if
it matches any variant, and the reason names the variant when it is not the text as written.

Regexes and globs run on RE2 (``google-re2``): matching is linear in the input, so a
pathological pattern such as ``(a+)+$`` cannot stall the server, and features that would
allow it (backreferences, lookaround) are refused when the policy is set.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import re2
from pydantic import BaseModel

from contextd_mcp.errors import InvalidInput
from contextd_mcp.models.policy import (
    RULE_BYTES_MAX,
    RULE_DEPTH_MAX,
    AllOf,
    AnyOf,
    CommandRegex,
    ForbiddenContent,
    PathGlob,
    PolicyContext,
    Requires,
    WriteOutsideProject,
)
from contextd_mcp.ports.scrubber import Scrubber
from contextd_mcp.services.command_variants import Variant, command_variants

# RE2 refuses a pattern whose program would need more memory than this (huge repetitions).
_RE2_MAX_MEM = 8 << 20


def compile_regex(pattern: str, ignore_case: bool, where: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _RE2_MAX_MEM
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        message = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidInput(where, f"invalid regex (RE2 syntax: no backreferences or lookaround): {message}") from None


def glob_to_regex(glob: str) -> str:
    """``*`` stays within a path segment, ``**`` crosses them; a glob without ``/`` matches a
    file or directory name anywhere (as in .gitignore)."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in glob[i + 2 :]:
            end = glob.index("]", i + 2)
            body = glob[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    body = "".join(out)
    if "/" not in glob.rstrip("/"):
        return f"(?:^|.*/){body}/?$"
    return f"^{body.lstrip('/') if not glob.startswith('/') else body}/?$"


@dataclass
class Subject:
    """One action under check, with what rules derive from it computed once."""

    action: str
    context: PolicyContext = field(default_factory=PolicyContext)

    @cached_property
    def variants(self) -> list[Variant]:
        return command_variants(self.action, self.context.env)

    @cached_property
    def words(self) -> list[str]:
        return list(self.variants[0].words)

    @cached_property
    def root(self) -> str | None:
        root = self.context.project_dir or (self.context.working_dir if _is_abs(self.context.working_dir) else None)
        return posixpath.normpath(root) if root else None

    @cached_property
    def cwd(self) -> str | None:
        wd = self.context.working_dir
        if wd and _is_abs(wd):
            return posixpath.normpath(wd)
        if self.root:
            return posixpath.normpath(posixpath.join(self.root, wd or "."))
        return None

    def touched_paths(self, variant: Variant) -> list[str]:
        """Declared paths plus path-like words of a variant, each also relative to the root."""
        found = list(self.context.paths)
        found += [w for w in variant.words if not w.startswith("-") and w not in _OPERATORS and "=" not in w]
        out: list[str] = []
        for path in found:
            out.append(path)
            absolute = self.absolute(path)
            if absolute and self.root and absolute.startswith(self.root.rstrip("/") + "/"):
                out.append(absolute[len(self.root.rstrip("/")) + 1 :])
        return list(dict.fromkeys(out))

    def write_targets(self, variant: Variant) -> list[str]:
        return list(dict.fromkeys([*self.context.paths, *shell_write_targets(list(variant.words))]))

    def absolute(self, path: str) -> str | None:
        if path.startswith("~") or path.startswith(("$HOME", "${HOME}")):
            return "~"  # the user's home: never inside a project we can verify
        if path.startswith("$"):
            return None  # unknown variable: cannot tell
        if _is_abs(path):
            return posixpath.normpath(path)
        if self.cwd:
            return posixpath.normpath(posixpath.join(self.cwd, path))
        return posixpath.normpath(path)


def _is_abs(path: str | None) -> bool:
    return bool(path) and posixpath.isabs(path or "")


_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", ";;", "|&"}
_REDIRECTS = {">", ">>", ">|", "&>", "&>>", "<>"}
_OPERATORS = _SEPARATORS | _REDIRECTS | {"<", "<<", "<<<", ">&"}
_PREFIXES = {"sudo", "env", "nohup", "time", "command", "exec", "nice", "doas", "xargs"}
_ALL_ARGS = {"tee", "touch", "mkdir", "rm", "rmdir", "truncate", "shred", "unlink"}
_AFTER_FIRST = {"chmod", "chown", "chgrp"}
_LAST_ARG = {"cp", "mv", "install", "ln", "rsync", "scp"}


def shell_write_targets(words: list[str]) -> list[str]:
    """Paths a shell command line writes, by the commands and redirections we know."""
    targets: list[str] = []
    command: list[str] = []
    cwd = ""  # where earlier `cd`s of the line went, relative paths resolve there
    i = 0
    while i < len(words):
        word = words[i]
        redirect = word in _REDIRECTS or (word.endswith(">") and word[:-1].isdigit())
        if redirect or word in _READS:  # the operator and its operand
            operand = words[i + 1] if i + 1 < len(words) else ""
            if redirect and operand and not operand.startswith("&"):
                targets.append(_under(cwd, operand))
            i += 2
            continue
        if word in _SEPARATORS:
            cwd = _simple_command(command, cwd, targets)
            command = []
        else:
            command.append(word)
        i += 1
    _simple_command(command, cwd, targets)
    return [t for t in targets if t and not t.isdigit()]


def _simple_command(command: list[str], cwd: str, targets: list[str]) -> str:
    """Adds what one simple command writes to ``targets``; the directory it leaves the line in."""
    start = 0
    while start < len(command) and (_is_assignment(command[start]) or command[start] in _PREFIXES):
        start += 1
    if start == len(command):
        return cwd
    name, args = posixpath.basename(command[start]), command[start + 1 :]
    plain = [a for a in args if not a.startswith("-")]
    if name in ("cd", "pushd"):
        return _moved(cwd, plain[0] if plain else "~")
    family = _FAMILY.get(name)
    if family is not None:
        targets.extend(_under(cwd, t) for t in _WRITERS[family](args, plain))
    return cwd


def _is_assignment(word: str) -> bool:
    return "=" in word and not word.startswith("=")


def _option_values(args: list[str], flags: tuple[str, ...]) -> list[str]:
    """The word after each of ``flags`` present in ``args``."""
    return [args[args.index(f) + 1] for f in flags if f in args and args.index(f) + 1 < len(args)]


def _copy_target(args: list[str], plain: list[str]) -> list[str]:
    """cp/mv/ln...: the directory of ``-t``, else the last of two or more operands."""
    return _option_values(args, ("-t",))[:1] or (plain[-1:] if len(plain) >= 2 else [])


def _find_writes(args: list[str], plain: list[str]) -> list[str]:
    return _find_roots(args) if any(a in ("-delete", "-exec", "-execdir", "-ok", "-okdir") for a in args) else []


def _sed_writes(args: list[str], plain: list[str]) -> list[str]:
    if not any(a == "-i" or a.startswith(("-i", "--in-place")) for a in args):
        return []
    return plain[1:] if "-e" not in args else plain  # without -e the first operand is the script


_READS = {"<", "<<", "<<<", ">&"}
# What each known writer writes, from its arguments and its operands (the non-option ones).
_WRITERS: dict[str, Callable[[list[str], list[str]], list[str]]] = {
    "all": lambda args, plain: plain,
    "after_first": lambda args, plain: plain[1:],
    "last": _copy_target,
    "find": _find_writes,
    "dd": lambda args, plain: [a[3:] for a in args if a.startswith("of=")],
    "sed": _sed_writes,
    "download": lambda args, plain: _option_values(args, ("-o", "--output", "-O", "--output-document")),
}
_FAMILY = {
    **dict.fromkeys(_ALL_ARGS, "all"),
    **dict.fromkeys(_AFTER_FIRST, "after_first"),
    **dict.fromkeys(_LAST_ARG, "last"),
    "find": "find",
    "dd": "dd",
    "sed": "sed",
    "curl": "download",
    "wget": "download",
}


def _texts(subject: Subject) -> list[tuple[Variant | None, str]]:
    """The command's variants and the content written, each with the variant it comes from."""
    return [*((v, v.text) for v in subject.variants), (None, subject.context.content or "")]


def _moved(cwd: str, to: str) -> str:
    if to == "-":
        return "$OLDPWD"  # unknown: later relative writes are not judged
    if to.startswith(("~", "$HOME", "${HOME}")):
        return "~"
    moved = posixpath.normpath(posixpath.join(cwd, to))
    return "" if moved == "." else moved


def _under(cwd: str, target: str) -> str:
    if not target or target.startswith(("/", "~", "$")) or target.isdigit():
        return target
    return "~" if cwd == "~" else posixpath.join(cwd, target)


def _find_roots(args: list[str]) -> list[str]:
    """`find` starts from the paths before its first expression (-name, !, ( …)."""
    roots = []
    for arg in args:
        if arg.startswith(("-", "!", "(")):
            break
        roots.append(arg)
    return roots or ["."]


# A compiled rule returns the reason it is violated, or None.
Check = Callable[[Subject], "str | None"]


def _clip(text: str, size: int = 60) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


class RuleCompiler:
    def __init__(self, scrubber: Scrubber) -> None:
        self._scrubber = scrubber

    def compile(self, rule: BaseModel, where: str = "rule") -> Check:
        size = len(json.dumps(rule.model_dump(mode="json", exclude_defaults=True)))
        if size > RULE_BYTES_MAX:
            raise InvalidInput(where, f"at most {RULE_BYTES_MAX} bytes of JSON (got {size})")
        return self._compile(rule, where, 1)

    def _compile(self, rule: BaseModel, where: str, depth: int) -> Check:
        if depth > RULE_DEPTH_MAX:
            raise InvalidInput(where, f"rules nest at most {RULE_DEPTH_MAX} levels deep")
        if isinstance(rule, CommandRegex):
            return self._command(rule, where)
        if isinstance(rule, PathGlob):
            return self._paths(rule, where)
        if isinstance(rule, ForbiddenContent):
            return self._content(rule, where)
        if isinstance(rule, Requires):
            return self._requires(rule, where)
        if isinstance(rule, WriteOutsideProject):
            return self._outside(rule, where)
        if isinstance(rule, AllOf | AnyOf):
            children = [self._compile(r, f"{where}.rules.{i}", depth + 1) for i, r in enumerate(rule.rules)]
            return _all(children) if isinstance(rule, AllOf) else _any(children)
        raise InvalidInput(where, f"unknown rule kind {getattr(rule, 'kind', '?')!r}")

    def _command(self, rule: CommandRegex, where: str) -> Check:
        regex = compile_regex(rule.pattern, rule.ignore_case, f"{where}.pattern")

        def check(subject: Subject) -> str | None:
            for variant in subject.variants:
                found = regex.search(variant.text)
                if found:
                    return f"the command matches at {_clip(found.group(0))!r}{self._in(variant, subject)}"
            return None

        return check

    def _paths(self, rule: PathGlob, where: str) -> Check:
        globs = [(g, compile_regex(glob_to_regex(g), False, f"{where}.globs.{i}")) for i, g in enumerate(rule.globs)]
        # One pass per path over all globs; which glob matched is looked up only on a hit.
        combined = compile_regex("|".join(f"(?:{glob_to_regex(g)})" for g in rule.globs), False, f"{where}.globs")

        def check(subject: Subject) -> str | None:
            for variant in subject.variants:
                for path in subject.touched_paths(variant):
                    if combined.search(path):
                        glob = next(g for g, regex in globs if regex.search(path))
                        return f"path {_clip(path)!r} matches {glob!r}{self._in(variant, subject)}"
            return None

        return check

    def _content(self, rule: ForbiddenContent, where: str) -> Check:
        if rule.detector == "secrets":
            return self._secrets
        regex = compile_regex(rule.pattern or "", rule.ignore_case, f"{where}.pattern")

        def pattern(subject: Subject) -> str | None:
            for variant, text in _texts(subject):
                if text and regex.search(text):
                    return f"the {self._label(variant, subject)} matches the forbidden pattern /{_clip(rule.pattern or '')}/"
            return None

        return pattern

    def _secrets(self, subject: Subject) -> str | None:
        for variant, text in _texts(subject):
            if text:
                result = self._scrubber.scrub(text)
                if result.redactions:
                    kinds = ", ".join(result.kinds) or "secret"
                    return f"the {self._label(variant, subject, show=False)} holds a secret-like string ({kinds})"
        return None

    def _label(self, variant: Variant | None, subject: Subject, show: bool = True) -> str:
        if variant is None:
            return "content"
        if variant is subject.variants[0] or show:
            return "command" + self._in(variant, subject)
        return f"command in its {variant.how} form"  # a decoded secret is not repeated, even cut

    def _in(self, variant: Variant, subject: Subject) -> str:
        """Where a match was found, when not in the text as written (scrubbed before it is cut,
        so a decoded secret is not shown in part)."""
        if variant is subject.variants[0]:
            return ""
        return f" in its {variant.how} form {_clip(self._scrubber.scrub(variant.text).text, 80)!r}"

    def _requires(self, rule: Requires, where: str) -> Check:
        when = compile_regex(rule.when, rule.ignore_case, f"{where}.when")
        must = compile_regex(rule.must_include, rule.ignore_case, f"{where}.must_include")

        def check(subject: Subject) -> str | None:
            hit = next((v for v in subject.variants if when.search(v.text)), None)
            if hit is None:
                return None
            if any(must.search(v.text) for v in subject.variants) or any(must.search(h) for h in subject.context.history):
                return None
            return (f"the command matches /{_clip(rule.when)}/{self._in(hit, subject)} "
                    f"but neither it nor the history matches /{_clip(rule.must_include)}/")

        return check

    def _outside(self, rule: WriteOutsideProject, where: str) -> Check:
        allowed = [compile_regex(glob_to_regex(g), False, f"{where}.allow.{i}") for i, g in enumerate(rule.allow)]

        def check(subject: Subject) -> str | None:
            root = subject.root
            for variant in subject.variants:
                for target in subject.write_targets(variant):
                    absolute = subject.absolute(target)
                    if absolute is None:
                        continue
                    if absolute != "~" and any(a.search(absolute) for a in allowed):
                        continue
                    if root is None:
                        outside = absolute == "~" or _is_abs(absolute) or absolute == ".." or absolute.startswith("../")
                    else:
                        outside = absolute == "~" or not (absolute == root or absolute.startswith(root.rstrip("/") + "/"))
                    if outside:
                        where_to = f"outside the project {root!r}" if root else "outside the project"
                        return f"writes {_clip(target)!r} {where_to}{self._in(variant, subject)}"
            return None

        return check


def _all(children: list[Check]) -> Check:
    def check(subject: Subject) -> str | None:
        reason = None
        for child in children:
            reason = child(subject)
            if reason is None:
                return None
        return reason  # the last condition is usually the most specific one

    return check


def _any(children: list[Check]) -> Check:
    def check(subject: Subject) -> str | None:
        for child in children:
            reason = child(subject)
            if reason is not None:
                return reason
        return None

    return check
