#!/usr/bin/env bash
# Puts `contextd-mcp` where MCP clients find it: a link in ~/.local/bin (or $XDG_BIN_HOME) to this
# checkout's .venv/bin/contextd-mcp, so `claude mcp add contextd -- contextd-mcp stdio` and the
# hooks work as written. The link follows this checkout: after moving it, run this again.
# An existing contextd-mcp there that is not our link (e.g. from `pipx install`) is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
command_path="$PWD/.venv/bin/contextd-mcp"
bin_dir="${XDG_BIN_HOME:-$HOME/.local/bin}"
link="$bin_dir/contextd-mcp"
if [ ! -x "$command_path" ]; then
  echo "setup: $command_path is missing: run scripts/setup.sh first" >&2
  exit 1
fi
mkdir -p "$bin_dir"
if [ -e "$link" ] && [ ! -L "$link" ]; then
  echo "setup: $link exists and is not a link (installed by pipx or uv?): left as it is" >&2
else
  ln -sfn "$command_path" "$link"
  echo "setup: linked $link -> $command_path"
fi
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) echo "setup: $bin_dir is not on your PATH; add it (e.g. in ~/.profile): export PATH=\"$bin_dir:\$PATH\"" >&2 ;;
esac
