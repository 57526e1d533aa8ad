"""lm-eval task configs shipped with the package.

Pass :data:`TASK_DIR` to lm-eval as ``--include_path`` (or ``TaskManager(include_path=...)``)::

    python -c "import llamafactory_safeeraser.tasks as t; print(t.TASK_DIR)"
"""

from pathlib import Path

TASK_DIR = Path(__file__).resolve().parent / "safeeraser"
GROUP = "safeeraser"
SUBTASKS = ("safeeraser_efficacy", "safeeraser_generality", "safeeraser_sarr", "safeeraser_utility")
