#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite: lint, types, layers, tests.
# Arguments go to pytest: `-m "not e2e and not browser"` runs the fast suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check coordinator child tests bench
.venv/bin/ruff format --check coordinator child tests bench
.venv/bin/mypy
# Layers: which package may import which, and no cycles (contracts in pyproject.toml).
.venv/bin/lint-imports --no-cache
.venv/bin/pytest "$@"
