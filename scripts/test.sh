#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite: lint, types, layers, tests.
# Arguments go to pytest: `-m "not e2e and not browser"` runs the fast suite.
#
# pytest runs in two parts, each given the same arguments: every test not marked `alone`,
# on TEST_WORKERS pytest-xdist workers (3 by default: about 9 minutes in all on two cores,
# against 19 in one process; TEST_WORKERS=0 runs it in one process), then those marked
# `alone`, one at a time, since they assert latency or order that holds only on a quiet
# machine. `--part` (tests/conftest.py) narrows what the user's own -m, -k or paths
# select, so both parts honour them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check coordinator child tests bench
.venv/bin/ruff format --check coordinator child tests bench
.venv/bin/mypy
# Layers: which package may import which, and no cycles (contracts in pyproject.toml).
.venv/bin/lint-imports --no-cache

# The processes the tests start import the same modules hundreds of times: let them reuse
# the compiled bytecode (some environments turn writing it off).
unset PYTHONDONTWRITEBYTECODE
workers="${TEST_WORKERS:-3}"
# A file's tests stay on one worker: they share its module-scoped coordinators.
status=0
.venv/bin/pytest --part parallel -n "$workers" --dist loadfile "$@" || status=$?
alone=0
.venv/bin/pytest --part alone "$@" -n 0 || alone=$?
# Exit 5 is "no test selected": fine for one part (`-m "not e2e"` selects no `alone` test),
# not for both.
if [ "$status" = 5 ] && [ "$alone" != 5 ]; then
    status=$alone
elif [ "$status" = 0 ] && [ "$alone" != 5 ]; then
    status=$alone
fi
exit "$status"
