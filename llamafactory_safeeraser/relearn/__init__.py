"""Relearning attacks: does an unlearned model's safety survive fine-tuning on a little of the forget data?

Typical use (several runs, one report)::

    from llamafactory_safeeraser.evaluation import RunSpec
    from llamafactory_safeeraser.relearn import RelearnSettings, relearn_runs

    runs = [RunSpec("vanilla", "models/vanilla"), RunSpec("GA", "models/vanilla", "saves/ga")]
    relearn_runs(runs, RelearnSettings(data="data/safeeraser", steps=(0, 10, 20)), "relearn_out")
"""

from .report import find_relearn_folders, load_relearn, write_relearn_report
from .run import relearn_runs
from .settings import RelearnCommand, RelearnSettings

__all__ = [
    "RelearnCommand",
    "RelearnSettings",
    "find_relearn_folders",
    "load_relearn",
    "relearn_runs",
    "write_relearn_report",
]
