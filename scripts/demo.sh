#!/usr/bin/env bash
# Sets everything up, then runs the coordinator on its embedded demo profiles on :2048.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/coordinator run --demo "$@"
