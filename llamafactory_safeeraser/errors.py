"""Errors that reach the user as one clear line (file, record, field) and exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

USAGE_ERROR_EXIT_CODE = 2
DEBUG_ENV_VAR = "SAFEERASER_DEBUG"  # 1: configuration errors show their traceback instead of one line


def debug_mode() -> bool:
    return os.environ.get(DEBUG_ENV_VAR, "") not in ("", "0")


class SafeEraserError(Exception):
    """A problem with the user's input or configuration, printed as one line."""


class DataError(SafeEraserError):
    """Bad SafeEraser data: names the file, the record index and the field."""

    def __init__(self, path: str | Path, message: str, record: int | None = None, field: str | None = None):
        self.path = str(path)
        self.record = record
        self.field = field
        self.reason = message
        where = [self.path]
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {message}")
