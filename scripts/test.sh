#!/usr/bin/env bash
# Install (./.venv) and run the tests. Usage: scripts/test.sh [fast|full|shape|specificity] [pytest args...]
#   fast:  unit and in-process tests only (a few minutes)
#   full:  everything but the shape and specificity tiers, including end-to-end llamafactory-cli / torchrun /
#          lm-eval runs and the LlamaBoard browser test (default)
#   shape: every paper recipe on its released model's shape (fewest layers), then lm-eval (CPU, ~45 min)
#   specificity: the lmms-eval specificity runs, in their own ./.venv-specificity with the [specificity] extra
#                (lmms-eval pins av<16 and filelock<4 and downgrades wandb and protobuf: kept out of ./.venv)
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-full}"
[ $# -gt 0 ] && shift
if [ "$tier" = specificity ]; then
  export VENV=.venv-specificity EXTRAS=test,specificity
fi
scripts/setup-venv.sh
if [ "$tier" = full ]; then
  scripts/setup-browser.sh  # the LlamaBoard browser test (slow tier) drives Debian's chromium
fi
# shellcheck disable=SC1091
source "${VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check llamafactory_safeeraser tests benchmarks examples
case "$tier" in
  fast) exec python -m pytest -m "not slow and not shape and not specificity" "$@" ;;
  full) exec python -m pytest -m "not shape and not specificity" "$@" ;;
  shape) exec python -m pytest -m shape "$@" ;;
  specificity) exec python -m pytest -m specificity "$@" ;;
  *) echo "usage: scripts/test.sh [fast|full|shape|specificity] [pytest args...]" >&2; exit 2 ;;
esac
