#!/usr/bin/env bash
# Install (./.venv) and run the CPU demo: SafeEraser's finding in miniature.
# Usage: scripts/demo.sh [--out DIR] [--seed N] [--parallel N]; re-running reuses finished steps.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec safeeraser demo "$@"
