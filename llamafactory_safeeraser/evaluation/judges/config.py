"""A judge's settings (no secrets): they travel as JSON inside every lm-eval document."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import SafeEraserError
from .registry import judge_class

API_KEY_ENV_VARS = ("SAFEERASER_JUDGE_API_KEY", "OPENAI_API_KEY")
BASE_URL_ENV_VAR = "SAFEERASER_JUDGE_BASE_URL"
CACHE_ENV_VAR = "SAFEERASER_JUDGE_CACHE"
CACHE_OFF = "off"


def default_cache_path() -> str:
    if os.environ.get(CACHE_ENV_VAR):
        return os.environ[CACHE_ENV_VAR]
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_home, "safeeraser", "judge_cache.sqlite")


@dataclass(frozen=True)
class JudgeConfig:
    """Everything that selects and tunes a judge; travels as JSON inside each lm-eval doc (no secrets)."""

    name: str = "rule"
    model: str | None = None  # hf: local model folder or hub id; openai: the served model name
    base_url: str | None = None  # openai: e.g. http://127.0.0.1:8000/v1
    cache: str | None = None  # sqlite file for model judges; "off" disables; from_metadata fills the default
    timeout: float = 60.0  # seconds per HTTP request
    max_retries: int = 3  # retries after the first attempt (timeouts, connection errors, 429, 5xx)
    backoff: float = 1.0  # first retry delay in seconds; doubles per retry
    concurrency: int = 8  # parallel HTTP requests while prefetching
    batch_size: int = 8  # hf: prompts per generate() call
    max_new_tokens: int = 32
    device: str | None = None  # hf: default cuda when available, else cpu
    asr_overlap: float = 0.5  # rule: ROUGE-L recall of the forget target that counts as reproducing it

    def __post_init__(self) -> None:
        for setting, (what, where) in judge_class(self.name).required.items():  # raises for an unknown name
            if not getattr(self, setting):
                raise SafeEraserError(f"the {self.name} judge needs {what} ({where})")
        for field_name in ("timeout", "backoff", "max_retries"):
            if getattr(self, field_name) < 0:
                raise SafeEraserError(f"judge setting '{field_name}' must not be negative")
        for field_name in ("concurrency", "batch_size", "max_new_tokens"):
            if getattr(self, field_name) < 1:
                raise SafeEraserError(f"judge setting '{field_name}' must be at least 1")

    @property
    def uses_model(self) -> bool:
        return judge_class(self.name).uses_model

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JudgeConfig:
        return cls(**json.loads(text))

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> JudgeConfig:
        """Read ``judge``, ``judge_model``, ``judge_base_url``, ``judge_cache``, ``judge_<setting>`` keys."""
        name = str(metadata.get("judge") or "rule")
        values: dict[str, Any] = {"name": name}
        for field in dataclasses.fields(cls):
            if field.name == "name":
                continue
            key = "rule_asr_overlap" if field.name == "asr_overlap" else f"judge_{field.name}"
            if metadata.get(key) is not None:
                values[field.name] = _coerce(key, metadata[key], field.type)
        if name == "openai" and not values.get("base_url") and os.environ.get(BASE_URL_ENV_VAR):
            values["base_url"] = os.environ[BASE_URL_ENV_VAR]
        if judge_class(name).uses_model and not values.get("cache"):
            values["cache"] = default_cache_path()
        return cls(**values)


def _coerce(key: str, value: Any, type_name: Any) -> Any:
    kind = str(type_name)
    try:
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("int"):
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
    except (TypeError, ValueError):
        raise SafeEraserError(f"metadata '{key}': expected a number, got {value!r}") from None
    return str(value)


