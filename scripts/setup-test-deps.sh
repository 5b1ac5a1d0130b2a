#!/usr/bin/env bash
# Install what the test suite needs beyond the Python packages, from Debian's apt:
#   chromium               headless browser; tests/report/test_report_browser.py renders the HTML report
#   dataset-fashion-mnist  the Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist, read by
#                          tests/data/test_data_datasets.py::test_data_fashion_from_debian
# Idempotent: a package whose file is already there is skipped; with both present it does nothing
# (exit 0). Needs root (or sudo) and a Debian/Ubuntu apt; works on a fresh Debian as root (CI).
set -euo pipefail

# package -> a file that proves it is installed
declare -A MARKER=(
    [chromium]=/usr/bin/chromium
    [dataset-fashion-mnist]=/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
)

missing=()
for pkg in chromium dataset-fashion-mnist; do
    if [ -e "${MARKER[$pkg]}" ]; then
        echo "setup-test-deps: $pkg already installed (${MARKER[$pkg]})."
    else
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup-test-deps: nothing to do."
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup-test-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y "${missing[@]}"

for pkg in "${missing[@]}"; do
    if [ ! -e "${MARKER[$pkg]}" ]; then
        echo "setup-test-deps: apt-get installed $pkg but ${MARKER[$pkg]} is missing" >&2
        exit 1
    fi
done
echo "setup-test-deps: installed ${missing[*]}."
