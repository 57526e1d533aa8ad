"""A judge's settings (no secrets): they travel as JSON inside every lm-eval document."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
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

    name: str = field(default="rule", metadata={"help": "the judge: rule (offline), hf (a local model) or openai"})
    model: str | None = field(
        default=None, metadata={"help": "hf: a local model folder (or hub id); openai: the served model name"}
    )
    base_url: str | None = field(
        default=None, metadata={"help": f"openai: e.g. http://127.0.0.1:8000/v1 (default: env {BASE_URL_ENV_VAR})"}
    )
    cache: str | None = field(  # from_metadata fills in the default path for model judges
        default=None,
        metadata={
            "help": f"model judges: sqlite file of replies; 'off' disables (default: env {CACHE_ENV_VAR}, "
            "else ~/.cache/safeeraser/judge_cache.sqlite)"
        },
    )
    timeout: float = field(default=60.0, metadata={"help": "openai: seconds per request", "minimum": 0})
    max_retries: int = field(
        default=3, metadata={"help": "openai: retries after the first attempt (timeouts, 429, 5xx)", "minimum": 0}
    )
    backoff: float = field(
        default=1.0, metadata={"help": "openai: first retry delay in seconds; doubles", "minimum": 0}
    )
    request_deadline: float = field(
        default=120.0,
        metadata={
            "help": "openai: seconds one request may take in all, retries and their delays included",
            "minimum": 0,
        },
    )
    health_timeout: float = field(
        default=10.0,
        metadata={
            "help": "openai: seconds the one request before the first document may take (0: no check)",
            "minimum": 0,
        },
    )
    max_consecutive_failures: int = field(
        default=10,
        metadata={
            "help": "model judges: after this many failed requests in a row, send no more and fail the run (0: never)",
            "minimum": 0,
        },
    )
    concurrency: int = field(default=8, metadata={"help": "openai: parallel requests", "minimum": 1})
    batch_size: int = field(default=8, metadata={"help": "hf: prompts per generate() call", "minimum": 1})
    max_new_tokens: int = field(default=32, metadata={"help": "model judges: reply length in tokens", "minimum": 1})
    device: str | None = field(default=None, metadata={"help": "hf: the judge's device (default: cuda if available)"})
    asr_overlap: float = field(
        default=0.5,
        metadata={"help": "rule: ROUGE-L recall of the forget target that counts as reproducing it", "minimum": 0},
    )

    def __post_init__(self) -> None:
        for setting, (what, where) in judge_class(self.name).required.items():  # raises for an unknown name
            if not getattr(self, setting):
                raise SafeEraserError(f"the {self.name} judge needs {what} ({where})")
        for setting in dataclasses.fields(self):
            minimum = setting.metadata.get("minimum")
            if minimum is not None and getattr(self, setting.name) < minimum:
                raise SafeEraserError(f"judge setting '{metadata_key(setting.name)}' must be >= {minimum}")

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
        for setting in dataclasses.fields(cls):
            if setting.name == "name":
                continue
            key = metadata_key(setting.name)
            if metadata.get(key) is not None:
                values[setting.name] = _coerce(key, metadata[key], setting.type)
        if name == "openai" and not values.get("base_url") and os.environ.get(BASE_URL_ENV_VAR):
            values["base_url"] = os.environ[BASE_URL_ENV_VAR]
        if judge_class(name).uses_model and not values.get("cache"):
            values["cache"] = default_cache_path()
        return cls(**values)


def metadata_key(setting: str) -> str:
    """The lm-eval metadata key (and evaluation config key) of a JudgeConfig field."""
    return {"name": "judge", "asr_overlap": "rule_asr_overlap"}.get(setting, f"judge_{setting}")


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
