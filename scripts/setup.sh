#!/usr/bin/env bash
# Creates .venv with contextd-mcp and its test dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: python-prctl compiles against libcap. Installed only when missing,
# and only where we may (root with apt); otherwise say what is needed.
need=()
dpkg -s libcap-dev >/dev/null 2>&1 || need+=(libcap-dev)
if [ "${CONTEXTD_SKIP_APT:-0}" != "1" ] && [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: please install: ${need[*]} (e.g. sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
