#!/usr/bin/env bash
# Wheels benchmarks/gpu_check.py needs on a GPU machine without network that brings its own torch and
# transformers (and accelerate, datasets, pillow, pyyaml): LLaMA-Factory, PEFT, TRL, lm-eval and their small
# pure-Python dependencies, about 12 MiB, into benchmarks/.gpu_wheels (git-ignored; carry that folder).
#   --with-datasets   datasets 4.0.0 and its small dependencies (pyarrow must already be there)
#   --with-deepspeed  DeepSpeed 0.19.8 for the ZeRO-2 part: its sdist is 2.0 MiB and builds a pure-Python wheel
#                     (CUDA ops are compiled on first use only, and the recipes' torch AdamW needs none), plus
#                     hjson, ninja, py-cpuinfo, msgpack, nvidia-ml-py, einops (about 1 MiB); psutil and pydantic
#                     must already be there
#   --with-vllm       vLLM 0.34.0 and its dependencies into benchmarks/.gpu_wheels_vllm: its CUDA wheel alone is
#                     239 MB (pinned to its own torch), far over the 64 MiB a machine without network receives;
#                     for a machine that can take it. gpu_check.py skips its vLLM part, saying so, without it.
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
with_vllm=0
for option in "$@"; do
  case "$option" in
    --with-datasets) packages+=(datasets==4.0.0 multiprocess xxhash dill) ;;
    --with-deepspeed) packages+=(deepspeed==0.19.8 hjson ninja py-cpuinfo msgpack nvidia-ml-py einops) ;;
    --with-vllm) with_vllm=1 ;;
    *) echo "usage: $0 [--with-datasets] [--with-deepspeed] [--with-vllm]" >&2; exit 2 ;;
  esac
done
# pip wheel builds the few sdist-only ones (pure Python) into wheels; --no-deps: exactly this list
pip wheel --no-deps --quiet -w "$out" "${packages[@]}"
du -sh "$out"
if [ "$with_vllm" = 1 ]; then
  # with its dependencies (its torch among them): vLLM only runs against the torch it was built for
  pip download --quiet -d benchmarks/.gpu_wheels_vllm vllm==0.34.0
  du -sh benchmarks/.gpu_wheels_vllm
fi
