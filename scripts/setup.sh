#!/usr/bin/env bash
# Creates .venv with contextd-mcp and its test dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: the sandbox's seccomp filter needs libseccomp; the bench compares against
# bubblewrap when it is there. Installed only when missing, and only where we may (root, apt).
need=()
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || need+=(libseccomp2)
if [ "${CONTEXTD_SETUP_BENCH:-0}" = "1" ] && ! command -v bwrap >/dev/null; then need+=(bubblewrap); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: please install: ${need[*]} (e.g. sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

# The web page's tests drive Debian's Chromium through its chromedriver (tests/ui/browser.py):
# nothing is downloaded at test time. Without root or apt they are skipped, with this note.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: the browser tests need chromium and chromium-driver (sudo apt-get install chromium chromium-driver)" >&2
  fi
fi

# The test that the model gives the same vectors on every x86 CPU runs it under qemu's user-mode
# emulation of older CPUs (tests/adapters/test_embedding_portable.py); without it, it is skipped.
if [ "${CONTEXTD_SETUP_BENCH:-0}" = "1" ] && [ "$(uname -m)" = "x86_64" ] && ! command -v qemu-x86_64 >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null; }
  else
    echo "setup: the CPU-portability test needs qemu-user (sudo apt-get install qemu-user)" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras="test"
if [ "${CONTEXTD_SETUP_BENCH:-0}" = "1" ]; then extras="test,bench"; fi
.venv/bin/python -m pip install -q -e ".[$extras]"

# Build the int8-kernel copy of the shipped model now (a few seconds, once per user), so the
# daemon's first start does not pay for it (adapters/onnx_quantize.py).
HF_HUB_OFFLINE=1 .venv/bin/python -c "
from contextd_mcp.adapters.fastembed_embedder import FastEmbedEmbedder
from contextd_mcp.settings import EmbeddingSettings
s = EmbeddingSettings()
FastEmbedEmbedder(s.model, s.cache_dir)
"

# Our sources' bytecode, written now: an editable install under PYTHONDONTWRITEBYTECODE=1 (set
# here and in some CI images) otherwise compiles them at every daemon start, ~0.1 s of CPU each
# (BENCHMARKS.md, "Session 9: restart"). A file changed later is recompiled in memory as before.
.venv/bin/python -m compileall -q src >/dev/null

# The command on the user's PATH, so MCP clients and hooks find it (CONTEXTD_SETUP_LINK=0: not).
if [ "${CONTEXTD_SETUP_LINK:-1}" = "1" ]; then bash scripts/install-command.sh; fi
