#!/usr/bin/env bash
# Install what the test suite needs beyond the Python packages: Debian's headless Chromium, used by
# tests/report/test_report_browser.py to render the HTML report. Idempotent: does nothing (exit 0)
# when /usr/bin/chromium is already there. Needs root (or sudo) and a Debian/Ubuntu apt.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "setup-test-deps: $CHROMIUM already installed; nothing to do."
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup-test-deps: need root (or sudo) to install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium

if [ ! -x "$CHROMIUM" ]; then
    echo "setup-test-deps: apt-get finished but $CHROMIUM is missing" >&2
    exit 1
fi
echo "setup-test-deps: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)."
