#!/usr/bin/env bash
# Install (./.venv) and run the tests. Usage: scripts/test.sh [fast|full] [pytest args...]
#   fast: unit and in-process tests only (a few minutes)
#   full: everything, including end-to-end llamafactory-cli / torchrun / lm-eval runs (default)
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-full}"
[ $# -gt 0 ] && shift
scripts/setup-venv.sh
if [ "$tier" = full ]; then
  scripts/setup-browser.sh  # the LlamaBoard browser test (slow tier) drives Debian's chromium
fi
# shellcheck disable=SC1091
source .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check llamafactory_safeeraser tests benchmarks examples
case "$tier" in
  fast) exec python -m pytest -m "not slow" "$@" ;;
  full) exec python -m pytest "$@" ;;
  *) echo "usage: scripts/test.sh [fast|full] [pytest args...]" >&2; exit 2 ;;
esac
