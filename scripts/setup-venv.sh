#!/usr/bin/env bash
# Create ./.venv (if needed) and install llamafactory-safeeraser with its test extras.
# torch and torchvision are pinned to the wheels that lie on the build machines' disk
# (2.14.1 / 0.29.1), installed first, so that no later requirement can pull another torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-test}"  # the package's extras to install, e.g. test,specificity
TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

stamp="$VENV/.safeeraser-installed"
want="$( (cat setup.py pyproject.toml; echo "$EXTRAS") | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && python -c "import llamafactory_safeeraser" 2>/dev/null; then
  echo "[setup] $VENV is up to date"
  exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install -q --upgrade pip
python -m pip install -q "${TORCH_PINS[@]}"
python -m pip install -q -e ".[$EXTRAS]" "${TORCH_PINS[@]}"
python - <<'PY'
import torch, llamafactory, lm_eval, transformers
print(f"[setup] torch {torch.__version__}, llamafactory {llamafactory.__version__}, transformers {transformers.__version__}")
PY
echo "$want" > "$stamp"
