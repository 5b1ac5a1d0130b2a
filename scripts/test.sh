#!/usr/bin/env bash
# Install fedwave with its dev tools and the test data/browser (setup-test-deps.sh), then lint (ruff),
# type-check (mypy) and test (pytest): the whole suite, slow tests included (under ~10 min on 2 cores).
# Extra arguments go to pytest, e.g. bash scripts/test.sh -m 'not slow' for a quick pass.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
if [ -f scripts/setup-test-deps.sh ]; then bash scripts/setup-test-deps.sh; fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
echo "== ruff"; .venv/bin/ruff check src tests examples docs/hooks
.venv/bin/ruff format --check src tests examples docs/hooks
echo "== mypy"; .venv/bin/mypy
# the public API surface (top-level names, plug-ins, contract suites) and a module using every public name
# type-check under --strict (their imports are read, errors reported only for these files)
MYPYPATH=src .venv/bin/mypy --strict --follow-imports=silent src/fedwave/__init__.py src/fedwave/api.py \
  src/fedwave/plugins.py src/fedwave/testing tests/api/strict_usage.py
echo "== pytest"; .venv/bin/python -m pytest -n 2 -q -p no:cacheprovider "$@"
