"""What every run of one evaluation shares: the tasks' metadata keys plus generation, lm-eval and the judge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError
from ..integration.quantization import QUANTIZATION_BITS
from ..lmeval_task.documents import TaskSettings
from ..lmeval_task.judges import JudgeConfig
from ..lmeval_task.judges.config import PREFIX as JUDGE_PREFIX
from ..settings import check_settings, group, keys_of, setting, values_of
from .backends import BACKENDS
from .lmeval_output import tasks_to_kinds


def unknown_task(task: str) -> str | None:
    """Why ``task`` is no SafeEraser task name; None when it is one."""
    try:
        tasks_to_kinds([task])
    except SafeEraserError as err:
        return f"names an {err}"
    return None


@dataclass(frozen=True)
class EvalSettings(TaskSettings):
    """What every run of one evaluation shares (``safeeraser eval`` reads these keys, and ``relearn`` shares them)."""

    max_gen_toks: int | None = setting(
        name="max_new_tokens",
        help="new tokens per response (none: the tasks' 512, the reference's)",
        minimum=1,
        flags=("--max-gen-toks",),
    )
    limit: int | None = setting(
        help="documents per category subtask (and per attack task), for quick runs (none: all)", minimum=1
    )
    batch_size: int = setting(1, help="batch size of generation", minimum=1)
    backend: str = setting(
        "hf",
        help="what generates: hf (lm-eval's hf-multimodal) or vllm (lm-eval's vllm-vlm, which ignores batch_size "
        "and device: vLLM schedules its own batches on the visible GPUs)",
        choices=BACKENDS,
    )
    seed: int = setting(233, help="seed of sampling and of lm-eval")
    document_seeds: bool = setting(
        False,
        help="sample each document from its own seed (safeeraser-hf-multimodal), so responses do not depend on "
        "batching or processes; always on with num_processes > 1 (false: lm-eval's hf-multimodal, one seed)",
    )
    device: str | None = setting(help="none: cuda when available, else cpu")
    tasks: tuple[str, ...] = setting(
        ("safeeraser",),
        help="lm-eval tasks: safeeraser, or some of safeeraser_efficacy, _generality, _sarr, _utility; and "
        "safeeraser_attacks (every attack), safeeraser_attacks_<family> or safeeraser_attack_<attack>_<kind> "
        "(docs/evaluation.md, Attacks)",
        check=unknown_task,
    )
    quantization_bits: tuple[int, ...] = setting(
        (),
        help="also evaluate every run, adapter merged, after weight quantization to each of these bits, as run "
        "<run_name>@int<bits> (bitsandbytes, as LLaMA-Factory's quantization_bit: 8 = LLM.int8, 4 = nf4); "
        "backend=hf only (none: full precision only)",
        choices=QUANTIZATION_BITS,
    )
    quantized_tasks: tuple[str, ...] | None = setting(
        help="lm-eval tasks of the quantized runs, e.g. safeeraser while tasks adds the attacks (none: tasks)",
        check=unknown_task,
    )
    judge: JudgeConfig = group(JudgeConfig, JUDGE_PREFIX)

    def __post_init__(self) -> None:
        check_settings(self)
        if len(set(self.quantization_bits)) < len(self.quantization_bits):
            raise SafeEraserError(f"key 'quantization_bits': each bit width once, got {list(self.quantization_bits)}")
        if self.quantization_bits and self.backend != "hf":
            # vLLM quantizes in flight with bitsandbytes 4-bit only, and lm-eval's vllm-vlm does not pass it on
            raise SafeEraserError(
                f"key 'quantization_bits': quantized runs need backend=hf (got backend={self.backend})"
            )

    def tasks_of(self, run_quantization_bit: int | None) -> tuple[str, ...]:
        """The lm-eval tasks of a run: ``quantized_tasks`` for a quantized one where given, else ``tasks``."""
        if run_quantization_bit is not None and self.quantized_tasks is not None:
            return self.quantized_tasks
        return self.tasks

    def metadata(self) -> dict[str, Any]:
        """The lm-eval task metadata these settings amount to (what ``--metadata`` would carry)."""
        metadata: dict[str, Any] = {}
        for key in keys_of(TaskSettings):
            value = getattr(self, key.path[0])
            if value is not None:
                metadata[key.name] = str(value.expanduser().resolve()) if isinstance(value, Path) else value
        judge = values_of(self.judge, JUDGE_PREFIX)
        metadata.update({name: value for name, value in judge.items() if value is not None})
        metadata["attack_seed"] = self.seed  # attacked documents vary with the seed, as sampling does
        return metadata

    def gen_kwargs(self) -> dict[str, Any] | None:
        return {"max_gen_toks": self.max_gen_toks} if self.max_gen_toks is not None else None
