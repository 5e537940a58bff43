"""The env names bash refuses outright: exactly the ones that run hidden code, by exact name."""

from __future__ import annotations

import pytest

from contextd_mcp.errors import InvalidInput
from contextd_mcp.services.shell_env import refuse_dangerous_env


@pytest.mark.parametrize(
    "name",
    ["BASH_ENV", "ENV", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_DEBUG", "PROMPT_COMMAND", "SHELLOPTS",
     "BASHOPTS", "PS4", "GLOBIGNORE", "IFS", "CDPATH", "BASH_FUNC_ls", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
     "GIT_CONFIG_KEY_3", "GIT_CONFIG_VALUE_3", "GIT_CONFIG_GLOBAL", "GIT_EXEC_PATH"],
)
def test_refused_names_name_the_field(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        refuse_dangerous_env({"CI": "1", name: "x"})
    assert refused.value.field == f"env.{name}" and "refused" in refused.value.rule


def test_ordinary_names_pass() -> None:
    refuse_dangerous_env({"CI": "1", "PAGER": "less", "EDITOR": "vim", "GIT_SSH_COMMAND": "ssh -i k", "env": "dev",
                          "PS1": "$ ", "PATH_EXTRA": "/x", "GIT_AUTHOR_NAME": "bot", "NODE_ENV": "test"})
