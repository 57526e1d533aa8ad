#!/usr/bin/env bash
# Install (./.venv) and run the tests. Usage: scripts/test.sh [fast|full|shape|families|benchmarks|specificity|deepspeed] [pytest args...]
#   fast:  unit and in-process tests only (a few minutes)
#   full:  everything but the shape and specificity tiers, including end-to-end llamafactory-cli / torchrun /
#          lm-eval runs and the LlamaBoard browser test (default)
#   shape: every paper recipe on its released model's shape (fewest layers), then lm-eval (CPU, ~1 h)
#   families: every unlearning method with and without PD through llamafactory-cli train on every family's tiny
#             model (the default suite trains one method per family)
#   benchmarks: the benchmark scripts in --quick mode (structure and sanity of their numbers, never a timing)
#   specificity: the lmms-eval specificity runs, in their own ./.venv-specificity with the [specificity] extra
#                (lmms-eval pins av<16 and filelock<4 and downgrades wandb and protobuf: kept out of ./.venv)
#   deepspeed: ZeRO-2/3 vs DDP on CPU (2 processes, DeepSpeed's CPU accelerator), in ./.venv-deepspeed with the
#              [deepspeed] extra; DeepSpeed compiles its CPU communication op on first use: needs a C++ compiler
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-full}"
[ $# -gt 0 ] && shift
if [ "$tier" = specificity ]; then
  export VENV=.venv-specificity EXTRAS=test,specificity
fi
if [ "$tier" = deepspeed ]; then
  export VENV=.venv-deepspeed EXTRAS=test,deepspeed
  # DeepSpeed's CPU ops are built per torch install: keep them beside this venv, not in ~/.cache
  export TORCH_EXTENSIONS_DIR="$PWD/.venv-deepspeed/torch_extensions"
  if ! command -v c++ >/dev/null; then
    echo "[test] installing a C++ toolchain (Debian's build-essential) for DeepSpeed's CPU ops"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential
  fi
fi
scripts/setup-venv.sh
if [ "$tier" = fast ] || [ "$tier" = full ]; then
  scripts/setup-ocr.sh  # the typographic attack's image is read back by Debian's tesseract
fi
if [ "$tier" = full ]; then
  scripts/setup-browser.sh  # the LlamaBoard browser test (slow tier) drives Debian's chromium
fi
# shellcheck disable=SC1091
source "${VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check llamafactory_safeeraser tests benchmarks examples
case "$tier" in
  fast) exec python -m pytest -m "not slow and not shape and not specificity and not deepspeed and not families and not benchmarks" "$@" ;;
  # two pytest workers: most of a test's time is one process importing or waiting on a subprocess, so two
  # share the 2 cores well; a file stays on one worker (its module fixtures are built once)
  full) exec python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile \
    -m "not shape and not specificity and not deepspeed and not families and not benchmarks" "$@" ;;
  shape) exec python -m pytest -m shape "$@" ;;
  benchmarks) exec python -m pytest -m "benchmarks and not shape" tests/e2e/test_benchmarks.py "$@" ;;
  families) exec python -m pytest -m families tests/e2e/test_family_methods.py "$@" ;;
  specificity) exec python -m pytest -m specificity "$@" ;;
  deepspeed) exec python -m pytest -m deepspeed tests/e2e/test_deepspeed.py "$@" ;;
  *) echo "usage: scripts/test.sh [fast|full|shape|families|benchmarks|specificity|deepspeed] [pytest args...]" >&2; exit 2 ;;
esac
