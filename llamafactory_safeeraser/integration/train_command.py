"""``llamafactory-cli train`` in a subprocess, as the demo and the relearning attack run it.

The command of this interpreter's environment (its ``bin`` folder first on PATH, so that torchrun and the
start-up hook are this install's); the whole output goes to a log file, and a failed run is one line.
"""

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SafeEraserError


def llamafactory_cli_train(
    config_file: Path,
    log_file: Path,
    what: str,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """``llamafactory-cli train CONFIG key=value ...``, its output in ``log_file`` (first line: the command).

    ``env`` is added to this process's environment. On a non-zero exit: SafeEraserError
    ``<what> failed (exit N): <last line of the log> (log: <file>)``.
    """
    bin_dir = Path(sys.executable).parent
    cli = bin_dir / "llamafactory-cli"
    args = [str(cli if cli.exists() else "llamafactory-cli"), "train", str(config_file)]
    args += [f"{key}={value}" for key, value in (overrides or {}).items()]
    child_env = {**os.environ, **(env or {})}
    child_env["PATH"] = f"{bin_dir}{os.pathsep}{child_env.get('PATH', '')}"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(args) + "\n")
        log.flush()
        proc = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env=child_env, check=False)
    if proc.returncode != 0:
        lines = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        last = next((line for line in reversed(lines) if line.strip()), "")
        raise SafeEraserError(f"{what} failed (exit {proc.returncode}): {last.strip()} (log: {log_file})")
