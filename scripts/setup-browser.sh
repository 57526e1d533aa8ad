#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver if missing: tests/e2e/test_llamaboard_browser.py drives
# LlamaBoard with them through selenium (nothing is downloaded when the test runs).
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
exec "$(dirname "$0")/apt-install.sh" "the LlamaBoard browser test" chromium chromium-driver
