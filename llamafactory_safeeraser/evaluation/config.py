"""The keys of ``safeeraser eval``, ``specificity`` and ``report``, each declared once.

``safeeraser eval CONFIG.yaml [key=value ...]`` reads :class:`EvalCommand`: LLaMA-Factory's names where
LLaMA-Factory has the setting (``model_name_or_path``, ``adapter_name_or_path``, ``template``,
``image_max_pixels``, ``max_new_tokens``, ``output_dir``, ``run_name``, ``seed``), lm-eval metadata names for the
tasks' own settings (``data_dir``, ``harmful_samples``, the judge keys of :class:`JudgeConfig`). The older flag
form (``--model``, ``--adapter``, ``--data``, ``--out`` ...) sets the same keys. ``safeeraser config-keys eval``
prints the table of docs/evaluation.md from these declarations; ``safeeraser specificity`` shares the model and
output keys (:class:`SpecificityCommand`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import SafeEraserError
from ..settings import check_settings, group, setting, shared
from .results import RunSpec
from .settings import EvalSettings
from .specificity import SpecificitySettings


@dataclass(frozen=True)
class RunKeys:
    """The model of a run, as LLaMA-Factory names it."""

    model_name_or_path: str | None = setting(
        help="base model: a local folder (Hugging Face format) or a hub id", required=True, flags=("--model",)
    )
    adapter_name_or_path: str | None = setting(
        help="one LoRA adapter folder, e.g. a LLaMA-Factory output_dir (none: the base model)", flags=("--adapter",)
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.adapter_name_or_path is not None and "," in self.adapter_name_or_path:
            raise SafeEraserError(f"key 'adapter_name_or_path': one adapter folder, got {self.adapter_name_or_path!r}")

    @property
    def run(self) -> RunSpec:
        """The run the model keys name; named after its adapter, else its model, unless run_name says."""
        model, adapter = str(self.model_name_or_path), self.adapter_name_or_path
        return RunSpec(getattr(self, "run_name", None) or Path(adapter or model).name, model, adapter)


@dataclass(frozen=True)
class EvalCommand(RunKeys):
    settings: EvalSettings = group(EvalSettings)
    output_dir: Path | None = setting(
        help="output folder, one folder per run: <output_dir>/<run_name>/ (results.json, samples.jsonl, "
        "specificity.json); report.md covers every run there",
        required=True,
        flags=("--out",),
    )
    run_name: str | None = setting(
        help="the run's name in the report (none: the adapter's folder name, else the model's)", flags=("--name",)
    )
    overwrite: bool = setting(False, help="replace an existing run folder of the same run_name")
    num_processes: int = setting(
        1,
        help="data-parallel processes of lm-eval (torchrun; gloo on CPU): the same results and samples as one",
        minimum=1,
    )


@dataclass(frozen=True)
class SpecificityCommand(RunKeys):
    settings: SpecificitySettings = group(SpecificitySettings)
    output_dir: Path | None = shared(EvalCommand, "output_dir")
    run_name: str | None = shared(EvalCommand, "run_name")


@dataclass(frozen=True)
class ReportCommand:
    runs: tuple[str, ...] | None = setting(help="run folders written by `safeeraser eval`", required=True)
    output: Path | None = setting(
        help="report path, e.g. report.md (the plot goes beside it)", required=True, flags=("--out",)
    )
    relearn: tuple[str, ...] = setting(
        (),
        help="`safeeraser relearn` output folders (or their run folders): each run's rates after its most "
        "relearning steps join the Robustness table",
    )

    def __post_init__(self) -> None:
        check_settings(self)
