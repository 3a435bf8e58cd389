#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite: lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check coordinator child tests bench
.venv/bin/ruff format --check coordinator child tests bench
.venv/bin/mypy
.venv/bin/pytest "$@"
