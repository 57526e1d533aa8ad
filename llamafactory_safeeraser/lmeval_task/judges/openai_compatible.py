"""The ``openai`` judge: an OpenAI-compatible chat-completions endpoint (OpenAI, a vLLM server, ...).

The API key comes only from the environment (``SAFEERASER_JUDGE_API_KEY``, else ``OPENAI_API_KEY``) and is
never part of a config, a log line or a result file.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from .base import Completion, PromptJudge
from .config import API_KEY_ENV_VARS, BASE_URL_ENV_VAR, JudgeConfig
from .registry import register_judge


def judge_api_key() -> str:
    """The endpoint's API key, from the environment only; local servers (vLLM) accept any value."""
    for variable in API_KEY_ENV_VARS:
        if os.environ.get(variable):
            return os.environ[variable]
    return "EMPTY"


@register_judge("openai")
class OpenAIJudge(PromptJudge):
    """Chat completions against an OpenAI-compatible endpoint, with retries, backoff and a timeout."""

    name = "openai"
    required: ClassVar[dict[str, tuple[str, str]]] = {
        "model": ("a model", "metadata 'judge_model' / --judge-model"),
        "base_url": ("a base URL", f"metadata 'judge_base_url' / --judge-base-url / {BASE_URL_ENV_VAR}"),
    }

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        from openai import OpenAI

        # Our own retry loop (max_retries=0 here) so that every attempt, delay and failure is ours to count.
        self._client = OpenAI(base_url=config.base_url, api_key=judge_api_key(), timeout=config.timeout, max_retries=0)

    def _request(self, prompt: str) -> Completion:
        import openai

        delay = self.config.backoff
        failure = "no attempt made"
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                time.sleep(delay * (1 + 0.25 * random.random()))
                delay *= 2
            try:
                response = self._client.chat.completions.create(
                    model=self.model_id,
                    messages=[{"role": "user", "content": prompt}],
                    temperature=0.0,
                    max_tokens=self.config.max_new_tokens,
                )
            except openai.APITimeoutError:
                failure = f"timed out after {self.config.timeout:g} s"
            except openai.APIConnectionError as err:
                failure = f"connection error ({type(err.__cause__ or err).__name__})"
            except (openai.RateLimitError, openai.InternalServerError) as err:
                failure = f"HTTP {err.status_code}"
            except openai.APIStatusError as err:  # other 4xx: retrying cannot help
                return None, f"HTTP {err.status_code}"
            except Exception as err:  # an unreadable body: the client fails while parsing it
                return None, f"malformed reply ({type(err).__name__})"
            else:
                return _message_text(response)
        return None, f"{failure}; gave up after {self.config.max_retries + 1} attempts"

    def _send(self, prompts: list[str], on_reply: Callable[[str, Completion], None]) -> None:
        def work(prompt: str) -> None:
            on_reply(prompt, self._request(prompt))

        if len(prompts) == 1 or self.config.concurrency == 1:
            for prompt in prompts:
                work(prompt)
            return
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(prompts))) as pool:
            for future in [pool.submit(work, prompt) for prompt in prompts]:
                future.result()


def _message_text(response: Any) -> Completion:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        return None, "malformed reply (no choices[0].message.content)"
    if not isinstance(content, str):
        return None, "malformed reply (message content is not text)"
    return content, None
