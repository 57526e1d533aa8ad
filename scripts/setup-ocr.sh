#!/usr/bin/env bash
# Install Debian's tesseract-ocr if missing: tests/evaluation/test_attack_images.py reads the typographic attack's
# image back with it (through pytesseract, in the test extra).
set -euo pipefail
if command -v tesseract >/dev/null; then
  exit 0
fi
exec "$(dirname "$0")/apt-install.sh" "the typographic attack's OCR test" tesseract-ocr
