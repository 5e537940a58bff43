#!/usr/bin/env bash
# Register contextd-mcp with Claude Code for the current user (every project), after
# `bash scripts/setup.sh` (which links contextd-mcp into ~/.local/bin) or `pipx install .`.
claude mcp add --scope user contextd -- contextd-mcp stdio
