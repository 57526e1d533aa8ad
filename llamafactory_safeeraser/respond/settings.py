"""The keys of ``safeeraser respond``, declared once (YAML config, key=value, flags, checks and help come from here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..data.records import SD_IMAGE_QUESTIONS
from ..errors import SafeEraserError
from ..lmeval_task.documents import TaskSettings
from ..settings import check_settings, setting, shared

DTYPES = ("auto", "float32", "bfloat16", "float16")
# What changes the generated text; a journal written under other values is not resumed.
_GENERATION_KEYS = (
    "model",
    "adapter",
    "template",
    "sd_response",
    "sd_question",
    "limit",
    "batch_size",
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_p",
    "seed",
    "dtype",
    "image_max_pixels",
    "image_min_pixels",
)


@dataclass(frozen=True)
class RespondSettings:
    model: str | None = setting(help="base model folder (Hugging Face format) or hub id", required=True)
    input: str | None = setting(
        help="SafeEraser file to answer (all_train.json, all_val.json)", required=True, flags=("--in",)
    )
    out: str | None = setting(help="output folder; the answered file keeps the input's name", required=True)
    adapter: str | None = setting(help="PEFT/LoRA adapter folder applied on top of the model")
    template: str = shared(TaskSettings, "template")
    sd_response: bool = setting(False, help="also regenerate sd_response (the SD image with the same question)")
    sd_question: str = setting(
        "harmful",
        choices=SD_IMAGE_QUESTIONS,
        help="question asked about the SD image: the harmful one (as PD trains) or a record's sd_question",
    )
    limit: int | None = setting(
        help="answer only the first N records (a quick look); the output holds those", minimum=1
    )
    batch_size: int = setting(8, help="prompts per generate() call", minimum=1)
    max_new_tokens: int = setting(512, help="new tokens per answer (the SafeEraser evaluation's 512)", minimum=1)
    do_sample: bool = setting(False, help="sample with temperature and top_p instead of greedy decoding")
    temperature: float = setting(1.0, help="sampling temperature (with --do-sample)", minimum=0)
    top_p: float = setting(0.9, help="nucleus sampling mass (with --do-sample)", minimum=0)
    seed: int = setting(
        233, help="seed of the sampling; batch k draws from seed and k, so a resumed run draws the same"
    )
    dtype: str = setting("auto", choices=DTYPES, help="model dtype; auto: bfloat16 on a GPU that has it, else float32")
    device: str | None = setting(help="device; default: cuda when available, else cpu")
    image_max_pixels: int | None = shared(TaskSettings, "image_max_pixels")
    image_min_pixels: int | None = shared(TaskSettings, "image_min_pixels")
    overwrite: bool = setting(False, help="replace an existing output file, or discard a journal of other settings")

    def __post_init__(self) -> None:
        check_settings(self)
        if self.do_sample and (self.temperature <= 0 or not 0 < self.top_p <= 1):
            raise SafeEraserError(
                f"sampling needs temperature > 0 and 0 < top_p <= 1, got {self.temperature} and {self.top_p}"
            )

    @property
    def output_file(self) -> Path:
        return Path(str(self.out)) / Path(str(self.input)).name

    def fingerprint(self, input_digest: str) -> str:
        """Identifies what the answers depend on: generation keys and the input file's content."""
        values = {name: getattr(self, name) for name in _GENERATION_KEYS}
        text = json.dumps({**values, "input_sha256": input_digest}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        return asdict(self)
