#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite, slow load/fault tests included.
# For the fast suite while developing: .venv/bin/pytest -m "not slow" -n 4 --dist loadfile
set -euo pipefail
cd "$(dirname "$0")/.."
CONTEXTD_SETUP_BENCH=1 bash scripts/setup.sh
bash scripts/setup-clients.sh
# The test modules' bytecode (pytest's assertion-rewritten form, and the helpers'), written by
# one collection while ruff and mypy run: under PYTHONDONTWRITEBYTECODE=1 (set here and in some
# CI images) every xdist worker rewrote and compiled every test module at its collection, ~2.8 s
# of CPU each (BENCHMARKS.md, "Session 10: the fast suite"). Nothing else is kept between runs.
(env -u PYTHONDONTWRITEBYTECODE HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -p no:cacheprovider -q --collect-only \
   >/dev/null 2>&1; env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m compileall -q tests bench >/dev/null) &
compiled=$!
# Static checks first (rule sets and their reasons: pyproject.toml [tool.ruff], [tool.mypy]);
# both come with the test extras that setup.sh installs.
.venv/bin/ruff check src tests
.venv/bin/mypy src
wait "$compiled" || true  # a collection error shows again, with its reason, in the run below
export HF_HUB_OFFLINE=1
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
fi
# The fast suite on parallel workers (pytest-xdist; `--dist loadfile` keeps each module on one
# worker, so its module-scoped daemons and worlds are started once), then the slow tests alone,
# serially as before: their load, latency and fault budgets assume they have the machine.
# Two workers per core (at most 8): a third of the fast suite's time is waiting (daemons
# starting, sandboxes, timeouts under test), which a second worker per core fills. On 2 cores:
# 6:15-6:35 with one per core, 4:48 with two (BENCHMARKS.md, "Session 9: the fast suite").
# The daemons and CLI commands the tests start fork from one preloaded interpreter per worker
# (tests/zygote.py); CONTEXTD_TEST_ZYGOTE=0 spawns each one fresh, to rule that out of a failure.
workers=$(( $(nproc) * 2 )); [ "$workers" -le 8 ] || workers=8
rc=0
.venv/bin/python -m pytest -p no:cacheprovider -m "not slow" -n "${CONTEXTD_TEST_WORKERS:-$workers}" --dist loadfile || rc=$?
.venv/bin/python -m pytest -p no:cacheprovider -m slow || rc=$?
exit $rc
