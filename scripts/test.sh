#!/usr/bin/env bash
# Install (./.venv) and run the tests. Usage: scripts/test.sh [fast|full|shape] [pytest args...]
#   fast:  unit and in-process tests only (a few minutes)
#   full:  everything but the shape tier, including end-to-end llamafactory-cli / torchrun / lm-eval runs (default)
#   shape: every paper recipe on its released model's shape (fewest layers), then lm-eval (CPU, about an hour)
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-full}"
[ $# -gt 0 ] && shift
scripts/setup-venv.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check llamafactory_safeeraser tests benchmarks examples
case "$tier" in
  fast) exec python -m pytest -m "not slow and not shape" "$@" ;;
  full) exec python -m pytest -m "not shape" "$@" ;;
  shape) exec python -m pytest -m shape "$@" ;;
  *) echo "usage: scripts/test.sh [fast|full|shape] [pytest args...]" >&2; exit 2 ;;
esac
