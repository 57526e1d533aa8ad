#!/usr/bin/env bash
# Usage: scripts/apt-install.sh WHAT PACKAGE...: install Debian packages (as root, or through sudo) that WHAT
# needs; without apt-get, say so and go on (the tests that need them say what is missing).
set -euo pipefail
what="$1"
shift
if ! command -v apt-get >/dev/null; then
  echo "[setup] no apt-get: install $* by hand for $what" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "[setup] installing $* for $what"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
