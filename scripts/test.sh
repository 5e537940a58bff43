#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite, slow load/fault tests included.
# For the fast suite while developing: .venv/bin/pytest -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
CONTEXTD_SETUP_BENCH=1 bash scripts/setup.sh
bash scripts/setup-clients.sh
# Static checks first (rule sets and their reasons: pyproject.toml [tool.ruff], [tool.mypy]);
# both come with the test extras that setup.sh installs.
.venv/bin/ruff check src tests
.venv/bin/mypy src
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
