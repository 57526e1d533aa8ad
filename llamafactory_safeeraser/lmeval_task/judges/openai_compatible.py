"""The ``openai`` judge: an OpenAI-compatible chat-completions endpoint (OpenAI, a vLLM server, ...).

Each query is one ``POST {base_url}/chat/completions`` with ``model``, one user message, ``temperature`` 0 and
``max_tokens``; the reply is read from ``choices[0].message.content`` (fields a server adds, such as vLLM's
``stop_reason`` or ``usage.prompt_tokens_details``, are ignored). An error status keeps the server's message in
the failure (vLLM: ``{"error": {"message": ...}}``, older releases ``{"object": "error", "message": ...}``), and a
health check answered 404 names the models the server serves (``GET {base_url}/models``), the usual cause being a
``judge_model`` other than vLLM's ``--served-model-name``.

``judge_concurrency`` bounds the requests in flight over all processes of one evaluation: in a data-parallel job
(torchrun / ``accelerate launch`` set ``RANK`` and ``WORLD_SIZE``) each process sends at most its share
(:func:`concurrency_share`), held by a semaphore around every request.

The API key comes only from the environment (``SAFEERASER_JUDGE_API_KEY``, else ``OPENAI_API_KEY``) and is
never part of a config, a log line or a result file.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from ...errors import SafeEraserError
from .base import NOT_SENT, Completion, PromptJudge
from .config import API_KEY_ENV_VARS, BASE_URL_ENV_VAR, JudgeConfig
from .registry import register_judge

HEALTH_PROMPT = "Reply with the word OK."
DETAIL_CHARS = 200  # of a server's error message kept in a failure


def judge_api_key() -> str:
    """The endpoint's API key, from the environment only; local servers (vLLM) accept any value."""
    for variable in API_KEY_ENV_VARS:
        if os.environ.get(variable):
            return os.environ[variable]
    return "EMPTY"


def concurrency_share(total: int) -> int:
    """This process's share of ``total`` requests in flight: ``total // N``, one more for the first ``total % N``
    ranks, at least 1 (so with fewer than N the bound over the job is N)."""
    rank, processes = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return max(1, total // processes + (rank < total % processes))


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
        self._healthy = False
        self.concurrency = concurrency_share(config.concurrency)
        self._in_flight = threading.BoundedSemaphore(self.concurrency)  # the bound, whoever calls _send

    def describe(self) -> str:
        return f"the openai judge at {self.config.base_url} (model {self.model_id})"

    def _create(self, prompt: str, timeout: float, max_tokens: int) -> Any:
        return self._client.with_options(timeout=timeout).chat.completions.create(
            model=self.model_id,
            messages=[{"role": "user", "content": prompt}],
            temperature=0.0,
            max_tokens=max_tokens,
        )

    def check_health(self) -> None:
        """One short request before the first document: a dead or wrong endpoint fails the run in seconds."""
        if self._healthy or not self.config.health_timeout:
            return
        import openai

        try:
            self._create(HEALTH_PROMPT, self.config.health_timeout, 1)
        except openai.APITimeoutError:
            failure = f"no answer within {self.config.health_timeout:g} s"
        except openai.APIConnectionError as err:
            failure = f"connection error ({type(err.__cause__ or err).__name__})"
        except openai.APIStatusError as err:
            failure = _status_failure(err)
            if err.status_code == 404:
                failure += self._served_models()
        except Exception as err:  # an unreadable body
            failure = f"malformed reply ({type(err).__name__})"
        else:
            self._healthy = True
            return
        raise SafeEraserError(f"{self.describe()}: health check failed: {failure}")

    def _request(self, prompt: str) -> Completion:
        import openai

        started = time.monotonic()
        deadline = started + self.config.request_deadline
        delay = self.config.backoff
        failure = "no attempt made"
        attempts = 0
        for attempt in range(self.config.max_retries + 1):
            if self.stopped is not None:
                return None, f"{NOT_SENT}: {self.stopped}"
            if attempt:
                pause = delay * (1 + 0.25 * random.random())
                if time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
                delay *= 2
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempts += 1
            try:
                with self._in_flight:
                    response = self._create(prompt, min(self.config.timeout, remaining), self.config.max_new_tokens)
            except openai.APITimeoutError:
                failure = f"timed out after {min(self.config.timeout, remaining):g} s"
            except openai.APIConnectionError as err:
                failure = f"connection error ({type(err.__cause__ or err).__name__})"
            except (openai.RateLimitError, openai.InternalServerError) as err:
                failure = _status_failure(err)
            except openai.APIStatusError as err:  # other 4xx (a prompt too long for the judge): retrying cannot help
                return None, _status_failure(err)
            except Exception as err:  # an unreadable body: the client fails while parsing it
                return None, f"malformed reply ({type(err).__name__})"
            else:
                return _message_text(response)
        spent = time.monotonic() - started
        return None, f"{failure}; gave up after {attempts} attempt(s) in {spent:.0f} s"

    def _served_models(self) -> str:
        """``; served: a, b`` from ``GET /models``, or nothing where that fails too."""
        try:
            names = [model.id for model in self._client.with_options(timeout=self.config.health_timeout).models.list()]
        except Exception:  # the health check's own failure is the message
            return ""
        return f"; the server serves {', '.join(names) or 'no model'}"

    def _send(self, prompts: list[str], on_reply: Callable[[str, Completion], None]) -> None:
        def work(prompt: str) -> None:
            on_reply(prompt, self._request(prompt))  # once stopped, _request sends nothing

        if len(prompts) == 1 or self.concurrency == 1:
            for prompt in prompts:
                work(prompt)
            return
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
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


def _status_failure(err: Any) -> str:
    """``HTTP 400: <the server's message>``; the openai client writes it as ``Error code: 400 - <message>``."""
    prefix = f"Error code: {err.status_code} - "
    message = str(getattr(err, "message", "") or "")
    detail = message[len(prefix) :].strip() if message.startswith(prefix) else ""
    if len(detail) > DETAIL_CHARS:
        detail = detail[: DETAIL_CHARS - 3] + "..."
    return f"HTTP {err.status_code}: {detail}" if detail else f"HTTP {err.status_code}"
