"""Judges: what rates a response when a rule is not enough (ASR, RR, SARR's normal answers, judge score).

``rule`` (offline, no model), ``hf`` (a local causal LM) and ``openai`` (an OpenAI-compatible endpoint such
as a vLLM server) are built in; ``register_judge`` adds one. A query a judge cannot answer - a failed
request, a reply without the required verdict line - yields a :class:`Verdict` with ``value=None``; the
scoring layer counts those as judge failures and keeps them out of every denominator. Model judges keep a
disk cache (sqlite, one committed row per reply) keyed by judge model and prompt.
"""

from . import hf_model, openai_compatible, rule  # noqa: F401  (they register the built-in judges)
from .base import Judge, PromptJudge
from .cache import JudgeCache
from .config import JudgeConfig, default_cache_path
from .queries import (
    ConsistencyQuery,
    HarmQuery,
    NormalAnswerQuery,
    Query,
    RefusalQuery,
    Verdict,
    parse_reply,
    prompt_for,
)
from .registry import forget_judges, get_judge, judge_class, judge_names, register_judge

__all__ = [
    "ConsistencyQuery",
    "HarmQuery",
    "Judge",
    "JudgeCache",
    "JudgeConfig",
    "NormalAnswerQuery",
    "PromptJudge",
    "Query",
    "RefusalQuery",
    "Verdict",
    "default_cache_path",
    "forget_judges",
    "get_judge",
    "judge_class",
    "judge_names",
    "parse_reply",
    "prompt_for",
    "register_judge",
]
