"""One process of a data-parallel evaluation job (``parallel.launch`` starts N of them under torchrun)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from ..errors import SafeEraserError
from .parallel import ERROR_FILE, JOB_FILE, world
from .runner import Evaluator


def main(job_dir: str) -> int:
    """Evaluate this process's share of every run's documents (rank 0 writes the files); 2 on a SafeEraserError,
    whose line rank 0 leaves for the parent."""
    job = Path(job_dir)
    runs, settings, out_dir = pickle.loads((job / JOB_FILE).read_bytes())
    try:
        evaluator = Evaluator(settings)
        for run in runs:
            evaluator.evaluate_share(run, out_dir)
    except SafeEraserError as err:
        if world()[0] == 0:
            (job / ERROR_FILE).write_text(f"{err}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
