#!/usr/bin/env bash
# Sets up everything the project needs, idempotently: a virtual environment in .venv with
# the project installed (`scripts/setup.sh dev` adds the test tools), and a browser for the
# children when none is found. Safe to run again: it redoes only what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null || ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: Python 3.11 or newer is needed as '$python' (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    if ! "$python" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        # Debian and Ubuntu ship python3 without venv until python3-venv is installed.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "setup: installing python3-venv"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$python" -m venv .venv
        else
            echo "setup: '$python -m venv' failed; install your system's python3-venv package and run again" >&2
            exit 1
        fi
    fi
fi

target="."
[ -n "$extras" ] && target=".[$extras]"
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${extras:-base}"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e "$target"
    touch "$stamp"
fi

# The openai npm package, for the tests that run it on Node as users do (dev only).
node_clients=tests/clients/node
if [ "$extras" = dev ] && command -v npm >/dev/null; then
    node_stamp="$node_clients/node_modules/.installed-$(sha256sum "$node_clients/package-lock.json" | cut -c1-16)"
    if [ ! -f "$node_stamp" ]; then
        npm ci --prefix "$node_clients" --no-audit --no-fund --loglevel=error >/dev/null
        touch "$node_stamp"
    fi
fi

# HAProxy, for the multi-host test (tests/deploy/test_hosts.py) and bench/hosts.py (dev
# only, Debian as root). The tests run their own haproxy processes with their own
# configuration: the package's service is stopped and kept from starting (masked where
# systemd runs, disabled in the init scripts otherwise).
if [ "$extras" = dev ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    && ! dpkg -s haproxy >/dev/null 2>&1; then
    echo "setup: installing haproxy (Debian's package; its service stays off)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
    if [ -d /run/systemd/system ]; then
        systemctl mask --now haproxy >/dev/null 2>&1 || true
    else
        invoke-rc.d haproxy stop >/dev/null 2>&1 || true
        update-rc.d haproxy disable >/dev/null 2>&1 || true
    fi
fi

# A browser for the children: Camoufox (`camoufox fetch`) or Chromium; on Debian as root,
# Debian's chromium packages, which Playwright drives as they are: the full browser (for
# `coordinator login`'s window) and the headless shell (the lighter one children run).
missing=""
if command -v dpkg >/dev/null; then
    for package in chromium chromium-headless-shell; do
        dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
    done
fi
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing$missing (Debian's packages)"
    apt-get update -qq
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
if ! .venv/bin/python -c 'import os, sys; from child.engines.browser import camoufox_installed, find_chromium; sys.exit(0 if camoufox_installed() or find_chromium(None, os.environ) else 1)'; then
    echo "setup: no browser found for the children. Install one: run '.venv/bin/camoufox fetch'," >&2
    echo "       or your system's Chromium (Debian/Ubuntu: 'sudo apt-get install chromium chromium-headless-shell')." >&2
fi
