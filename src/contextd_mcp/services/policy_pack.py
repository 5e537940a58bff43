"""Starter policy packs: enable with ``policy_pack_enable(pack=...)`` or, server-wide for every
tenant, ``CONTEXTD_POLICY_PACKS=security``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contextd_mcp.models.policy import Severity


@dataclass(frozen=True)
class PackPolicy:
    key: str  # stable within the pack: ids and de-duplication derive from it
    title: str
    rule: dict[str, Any]
    severity: Severity
    category: str
    suggestion: str


_SHELLS = r"(?:sudo\s+(?:-\S+\s+)*)?(?:\S*/)?(?:ba|z|da|k|fi)?sh|(?:\S*/)?(?:python[0-9.]*|perl|ruby|node)"

SECURITY = (
    PackPolicy(
        "no-secrets",
        "No secrets in commands, commits or written files",
        {"kind": "forbidden_content", "detector": "secrets"},
        Severity.critical,
        "security",
        "Read the secret from an environment variable or a secret manager; commit a placeholder (.env.example).",
    ),
    PackPolicy(
        "no-key-files-committed",
        "No private keys or .env files committed",
        {
            "kind": "all",
            "rules": [
                {"kind": "command_regex", "pattern": r"\bgit\s+(?:add|commit|stage)\b"},
                {
                    "kind": "path_glob",
                    "globs": ["*.pem", "*.key", "*.p12", "*.pfx", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519",
                              ".env", ".env.local", ".env.production"],
                },
            ],
        },
        Severity.critical,
        "security",
        "Keep keys and .env files out of git (.gitignore them) and load them at run time.",
    ),
    PackPolicy(
        "no-curl-pipe-shell",
        "No piping a download into a shell (curl | sh)",
        {
            "kind": "any",
            "rules": [
                # Filters in between (| base64 -d | sh, | tee f | sh) still end in a shell.
                {"kind": "command_regex", "pattern": rf"\b(?:curl|wget|fetch)\b[^;&]*\|\s*(?:{_SHELLS})(?:\s|$)"},
                {"kind": "command_regex", "pattern": rf"(?:{_SHELLS}|eval|source|\.)\s+(?:-\S+\s+)*[\"']?(?:\$\(|<\(|`)\s*(?:curl|wget)\b"},
            ],
        },
        Severity.critical,
        "security",
        "Download the script to a file, read it (and check its checksum), then run it.",
    ),
    PackPolicy(
        "no-force-push-main",
        "No force-push to main or master",
        {
            "kind": "all",
            "rules": [
                {"kind": "command_regex", "pattern": r"\bgit\s+push\b.*(?:\s--force(?:-with-lease|-if-includes)?\b|\s-[a-zA-Z]*f[a-zA-Z]*\b|\s\+\S+)"},
                {"kind": "command_regex", "pattern": r"\bgit\s+push\b.*(?:[\s:+]|refs/heads/)(?:main|master)\b"},
            ],
        },
        Severity.critical,
        "security",
        "Push a branch and open a pull request; rewrite shared history only on a feature branch.",
    ),
    PackPolicy(
        "no-writes-outside-project",
        "No writes outside the project",
        {"kind": "write_outside_project", "allow": ["/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/tmp/**", "/var/tmp/**"]},
        Severity.critical,
        "security",
        "Write inside the project directory (or /tmp for scratch files).",
    ),
)

PACKS: dict[str, tuple[PackPolicy, ...]] = {"security": SECURITY}
