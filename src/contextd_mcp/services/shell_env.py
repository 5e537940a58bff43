"""Environment variables ``bash`` refuses outright, whatever the policies say.

Each of these makes bash, the dynamic loader or git run code that the command line does not
show, so no policy on the command could see it: ``BASH_ENV``/``ENV`` source a file before the
command, ``PROMPT_COMMAND``/``PS4`` (with ``SHELLOPTS=xtrace``) run their value, ``BASH_FUNC_*``
define functions that shadow commands, ``SHELLOPTS``/``BASHOPTS`` switch on such behaviour,
``IFS``/``GLOBIGNORE`` change how the visible words split and match, ``LD_*`` load libraries into
every program, and ``GIT_CONFIG_*`` set git configuration (aliases, ``core.sshCommand``,
``core.pager``) that ``git -c`` on the command line would show. Values of variables that programs
run as commands (``PAGER``, ``EDITOR``, ``GIT_SSH_COMMAND``, …) are not refused here: the
policies check them as commands (services/command_variants.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from contextd_mcp.errors import InvalidInput

REFUSED_NAMES = frozenset({
    "BASH_ENV", "ENV", "PROMPT_COMMAND", "PS4", "SHELLOPTS", "BASHOPTS", "GLOBIGNORE", "IFS", "CDPATH",
    "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_CONFIG", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_EXEC_PATH",
})
REFUSED_PREFIXES = ("BASH_FUNC_", "LD_", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")


def refuse_dangerous_env(env: Mapping[str, str]) -> None:
    """Raises ``InvalidInput`` naming ``env.NAME`` for the first variable bash must not be given."""
    for name in env:
        # Exact case, as bash, the loader and git read them: `env=dev` or `ifs` are plain names.
        if name in REFUSED_NAMES or name.startswith(REFUSED_PREFIXES):
            raise InvalidInput(
                f"env.{name}",
                "refused: it makes bash, the loader or git run code the command does not show "
                f"(refused: {', '.join(sorted(REFUSED_NAMES))}, and names starting {', '.join(REFUSED_PREFIXES)}); "
                "put what you need in the command itself",
            )
