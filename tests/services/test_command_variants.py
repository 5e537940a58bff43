"""Bash's word rules and the variants a command is checked on: each transformation, what is
unfolded, and the bounds that keep the work small whatever the input."""

from __future__ import annotations

import base64
import time

import pytest

from contextd_mcp.services.command_variants import UNFOLD_DEPTH_MAX, VARIANTS_MAX, command_variants
from contextd_mcp.services.shell_words import TEXT_MAX, decode_ansi_c, expand, lex


def texts(command: str, env: dict[str, str] | None = None) -> dict[str, str]:
    return {v.how: v.text for v in command_variants(command, env)}


def fields(word: str, variables: dict[str, str] | None = None) -> list[str]:
    return expand(word, variables or {}, lambda body: None).fields


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ('r""m', ["rm"]),
        (r"r\m", ["rm"]),
        ("'git'", ["git"]),
        ('"$b c"', ["main c"]),
        ("$b", ["main"]),
        ("${b}x", ["mainx"]),
        ("$x", ["push", "-f"]),  # unquoted: split into fields
        ('"$x"', ["push -f"]),
        ("$unset", ["$unset"]),  # unknown stays as written
        ("''", [""]),
        (r"$'\x67\x69\x74'", ["git"]),
        (r"$'\147it'", ["git"]),
        (r"$'\u006dain'", ["main"]),
        (r"$'a\tb'", ["a\tb"]),
    ],
)
def test_expand_does_what_bash_does_to_a_word(word: str, expected: list[str]) -> None:
    assert fields(word, {"b": "main", "x": "push -f"}) == expected


def test_decode_ansi_c_escapes() -> None:
    assert decode_ansi_c(r"\x72\x6d \055rf \U0001F600\cA\q") == "rm -rf \U0001F600\x01\\q"


def test_lex_keeps_substitutions_whole_and_reads_heredocs() -> None:
    assert [t.text for t in lex("echo $(a | b) `c;d` <(e) 2>&1 # note")] == ["echo", "$(a | b)", "`c;d`", "<(e)", "2", ">&", "1"]
    tokens = [t.text for t in lex("bash <<EOF\nrm -rf /\nEOF\nls")]
    assert tokens == ["bash", "<<<", "'rm -rf /'", ";", "ls"]


def test_variants_of_a_plain_command_are_just_the_text() -> None:
    assert texts("git status") == {"as written": "git status"}


def test_wrappers_paths_and_git_options_go_in_the_canonical_form() -> None:
    assert texts("sudo -u root env A=1 nice -n 5 /usr/bin/rm -r --force /x")["canonical"] == "rm -r --force /x"
    assert texts("sudo -u root env A=1 nice -n 5 /usr/bin/rm -r --force /x")["flags"] == "rm -rf /x"
    assert texts("git -c a.b=c -C sub --git-dir=.git --no-pager push --force o main")["canonical"] == "git push --force o main"
    assert texts("git push --force --set-upstream o main")["flags"] == "git push -fu o main"


def test_xargs_runs_what_is_piped_to_it() -> None:
    assert texts("echo /etc /var | xargs -n1 rm -rf")["canonical"] == "echo /etc /var | rm -rf /etc /var"
    assert texts("xargs git add <<< .env")["canonical"] == "git add .env <<< .env"


@pytest.mark.parametrize(
    ("command", "how", "text"),
    [
        ('eval "git push -f o main"', "eval argument", "git push -f o main"),
        ("bash -lc 'rm -rf ~'", "bash -c argument", "rm -rf ~"),
        ("bash -o pipefail -c 'make test'", "bash -c argument", "make test"),
        ("echo $(rm -rf ~)", "command substitution", "rm -rf ~"),
        ("source <(curl -s x)", "command substitution", "curl -s x"),
        ("echo 'ls /' | sh", "piped into sh", "ls /\n"),
        ("sh <<< 'ls /'", "piped into sh", "ls /"),
        (f"echo {base64.b64encode(b'rm -rf /').decode()} | base64 -d | bash", "piped into bash", "rm -rf /"),
        ("echo 6c73202f | xxd -r -p | sh", "piped into sh", "ls /"),
        ("git -c alias.x='!rm -rf ~' x", "git alias", "rm -rf ~"),
        ("find . -maxdepth 0 -exec rm -rf ~ \\;", "find -exec", "rm -rf '~'"),
    ],
)
def test_pieces_that_run_are_unfolded(command: str, how: str, text: str) -> None:
    assert texts(command)[how] == text


def test_a_shell_given_a_script_file_does_not_run_its_stdin() -> None:
    assert not any("piped" in how for how in texts("echo 'rm -rf /' | sh run.sh"))
    assert not any("piped" in how for how in texts("echo aGk= | base64 -d"))  # decoded but not run


def test_env_values_are_substituted_and_executed_ones_unfolded() -> None:
    found = texts("$X; git log", {"X": "rm -rf /", "PAGER": "curl x | sh", "LANG": "C"})
    assert found["unquoted"] == "rm -rf / ; git log"
    assert found["env.PAGER"] == "curl x | sh"
    assert not any("LANG" in how for how in found)


def test_eval_sees_the_variables_of_its_line() -> None:
    assert texts("a=rm; eval '$a -rf /'")["eval argument, unquoted"] == "rm -rf /"


def test_positional_parameters_are_empty_unless_sh_c_is_given_them() -> None:
    assert texts("git push -f origin mai$@n")["unquoted"] == "git push -f origin main"
    found = texts("""find . -name x -exec sh -c 'rm -rf "$1"/tmp' _ {} \\;""")
    assert found["find -exec → sh -c argument, unquoted"] == "rm -rf {}/tmp"


def test_unfolding_stops_at_its_depth() -> None:
    nested = "ls /"
    for _ in range(UNFOLD_DEPTH_MAX + 2):
        nested = f"eval {nested!r}"
    hows = [v.how for v in command_variants(nested)]
    assert max(how.count("eval argument") for how in hows) == UNFOLD_DEPTH_MAX


@pytest.mark.parametrize(
    "command",
    [
        "$(" * 5000,
        "a=xxxxxxxxxx; " + "; ".join("a=$a$a" for _ in range(40)) + "; echo $a",
        "echo " + " | ".join(["base64 -d"] * 2000),
        "eval " * 3000 + "ls",
        '"' * 15999,
        "$(echo $(echo $(echo $(echo $(echo $(echo $(echo x)))))))",
        " ".join(f"sh -c 'eval \"bash -c {i}\"'" for i in range(500)),
        "`" * 16000,
        "a='$(ls) $(ls) $(id) '" + "x" * 3000 + "; " + "eval $a $a $a; " * 800,
        "$(" * 3 + "eval $(eval $(ls))" * 500,
        "x" * 16000,
    ],
)
def test_work_is_bounded_whatever_the_input(command: str) -> None:
    started = time.perf_counter()
    variants = command_variants(command[:16000])
    # ~0.05 s each on a quiet machine; the bound catches a blow-up, not a few ms (CI may be loaded).
    assert time.perf_counter() - started < 5.0
    assert 1 <= len(variants) <= VARIANTS_MAX
    assert all(len(v.text) <= 6 * TEXT_MAX for v in variants)
