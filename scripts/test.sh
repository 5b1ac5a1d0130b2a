#!/usr/bin/env bash
# Install fedwave with its dev tools, then lint (ruff), type-check (mypy) and test (pytest).
# Slow tests are deselected by default; run them with: .venv/bin/python -m pytest -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
if [ -f scripts/setup-test-deps.sh ]; then bash scripts/setup-test-deps.sh; fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
echo "== ruff"; .venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest -n 2 -q -p no:cacheprovider "$@"
