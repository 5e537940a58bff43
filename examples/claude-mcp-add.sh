#!/usr/bin/env bash
# Register contextd-mcp with Claude Code for the current user.
claude mcp add contextd -- contextd-mcp stdio
