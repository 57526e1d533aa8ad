#!/usr/bin/env bash
# Install Debian's tesseract-ocr if missing: tests/evaluation/test_attack_images.py reads the typographic attack's
# image back with it (through pytesseract, in the test extra).
set -euo pipefail
if command -v tesseract >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "[setup] no apt-get: install tesseract-ocr by hand for the typographic attack's OCR test" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "[setup] installing tesseract-ocr"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends tesseract-ocr
