#!/usr/bin/env bash
# Wheels benchmarks/gpu_check.py needs on a GPU machine without network that brings its own torch and
# transformers (and accelerate, datasets, pillow, pyyaml): LLaMA-Factory, PEFT, TRL, lm-eval and their small
# pure-Python dependencies, about 12 MiB, into benchmarks/.gpu_wheels (git-ignored; carry that folder).
# --with-datasets adds datasets 4.0.0 and its small dependencies (pyarrow must already be there).
# On the GPU machine: pip install --no-deps benchmarks/.gpu_wheels/*.whl
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/.gpu_wheels
mkdir -p "$out"
packages=(
  llamafactory==0.9.5 peft==0.18.1 trl==0.24.0 lm_eval==0.4.13
  omegaconf antlr4-python3-runtime==4.9.3                      # LLaMA-Factory's argument parsing
  sqlitedict word2number more-itertools jsonlines evaluate      # lm-eval's imports
  pytablewriter DataProperty mbstrdecoder pathvalidate tabledata tcolorpy typepy
  sacrebleu portalocker rouge-score absl-py
)
if [ "${1:-}" = "--with-datasets" ]; then
  packages+=(datasets==4.0.0 multiprocess xxhash dill)
fi
# pip wheel builds the few sdist-only ones (pure Python) into wheels; --no-deps: exactly this list
pip wheel --no-deps --quiet -w "$out" "${packages[@]}"
du -sh "$out"
