#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver if missing: tests/e2e/test_llamaboard_browser.py drives
# LlamaBoard with them through selenium (nothing is downloaded when the test runs).
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "[setup] no apt-get: install chromium and its chromedriver by hand for the LlamaBoard browser test" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "[setup] installing chromium and chromium-driver"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver
