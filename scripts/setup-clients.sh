#!/usr/bin/env bash
# Installs the real clients the end-to-end tests drive (tests/clients/package.json: the Claude
# Code CLI and the MCP TypeScript SDK) from the npm registry, pinned by package-lock.json.
# Skipped while node_modules matches the lock file (a stamp holds the lock's hash), so a warm run
# costs nothing; a cold one is `npm ci`, about 20 s with npm's cache. Without node the client tests
# skip, except in CI (CI=true), where they fail.
set -euo pipefail
cd "$(dirname "$0")/../tests/clients"
if ! command -v npm >/dev/null; then
  echo "setup-clients: npm not found; the real-client tests will skip (they fail under CI=true)" >&2
  exit 0
fi
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp=node_modules/.contextd-lock-sha256
if [ -x node_modules/.bin/claude ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
# The CLI's postinstall copies its native binary (an npm optional dependency) over a placeholder;
# an npm that skipped install scripts leaves the placeholder, so check the real thing answers.
node_modules/.bin/claude --version >/dev/null
echo "$want" > "$stamp"
