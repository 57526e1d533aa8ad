"""SafeEraser evaluation runs around lm-eval: the run settings, the runner, results, reports and plots, specificity.

Typical use (several runs in one process, one report)::

    from llamafactory_safeeraser.evaluation import EvalSettings, JudgeConfig, RunSpec, evaluate_runs

    runs = [RunSpec("vanilla", "models/vanilla"), RunSpec("PO", "models/vanilla", "saves/po"),
            RunSpec("PO+PD", "models/vanilla", "saves/po_pd")]
    evaluate_runs(runs, EvalSettings(data_dir="data", judge=JudgeConfig("rule")), "eval_out")
"""

from ..lmeval_task.judges import JudgeConfig
from .report import write_report
from .results import RunSpec, find_run_folders, load_run_results
from .runner import Evaluator, RunResult, evaluate_runs
from .settings import EvalSettings

__all__ = [
    "EvalSettings",
    "Evaluator",
    "JudgeConfig",
    "RunResult",
    "RunSpec",
    "evaluate_runs",
    "find_run_folders",
    "load_run_results",
    "write_report",
]
