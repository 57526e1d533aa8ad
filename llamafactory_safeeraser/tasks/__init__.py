"""lm-eval task configs shipped with the package (the folder ``safeeraser/``).

Pass :data:`TASK_DIR` to lm-eval as ``--include_path`` (or ``TaskManager(include_path=...)``)::

    python -c "import llamafactory_safeeraser.tasks as t; print(t.TASK_DIR)"
"""

from ..lmeval_task.documents import GROUP, SUBTASKS, TASK_DIR

__all__ = ["GROUP", "SUBTASKS", "TASK_DIR"]
