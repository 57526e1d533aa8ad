"""What every judge is (``Judge``), and the judges that prompt a model with our rubrics (``PromptJudge``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import ClassVar

from .cache import JudgeCache
from .config import CACHE_OFF, JudgeConfig
from .queries import Query, Verdict, parse_reply, prompt_for

logger = logging.getLogger(__name__)


class Judge:
    """Answers queries; ``prefetch`` lets a judge work through many queries at once first."""

    name = "judge"
    uses_model: ClassVar[bool] = True  # a model judge: prompts, a reply cache, failures to count
    # settings the judge cannot work without: setting -> (what it is, where to give it)
    required: ClassVar[dict[str, tuple[str, str]]] = {}

    def judge(self, query: Query) -> Verdict:
        raise NotImplementedError

    def prefetch(self, queries: Iterable[Query]) -> None:
        """Answer ``queries`` ahead of the per-document calls (batching, concurrency). Optional."""

    def stats(self) -> dict[str, int]:
        return {}

    def check_health(self) -> None:
        """Raise SafeEraserError (one line) if the judge cannot answer; called before the first document."""

    @property
    def stopped(self) -> str | None:
        """Why the judge stopped asking its model (too many failures in a row), or None."""
        return None


Completion = tuple[str | None, str | None]  # (reply, failure reason)
NOT_SENT = "not sent, the judge had stopped"


class PromptJudge(Judge):
    """A judge that answers by prompting a model with our rubrics; subclasses send the prompts."""

    def __init__(self, config: JudgeConfig):
        self.config = config
        self.model_id = str(config.model)
        self.cache = JudgeCache(config.cache) if config.cache and config.cache != CACHE_OFF else None
        self._replies: dict[str, Completion] = {}  # this process's answers, failures included
        self._counts = {"prompts_sent": 0, "cache_hits": 0, "failed_requests": 0, "unparseable_replies": 0}
        self._counts_lock = threading.Lock()
        self._failures_in_a_row = 0
        self._stopped: str | None = None

    def describe(self) -> str:
        """The judge and its model in a message, e.g. 'the hf judge (model /models/judge)'."""
        return f"the {self.name} judge (model {self.model_id})"

    @property
    def stopped(self) -> str | None:
        return self._stopped

    def _note_outcome(self, failure: str | None) -> None:
        """Count failures in a row; at ``max_consecutive_failures`` the judge stops: nothing more is sent."""
        limit = self.config.max_consecutive_failures
        with self._counts_lock:
            self._failures_in_a_row = self._failures_in_a_row + 1 if failure is not None else 0
            if limit and self._failures_in_a_row >= limit and self._stopped is None:
                self._stopped = f"{self.describe()}: {limit} requests in a row failed, the last: {failure}"
                logger.error("%s; sending no more requests", self._stopped)

    def _count(self, key: str, amount: int = 1) -> None:
        with self._counts_lock:
            self._counts[key] += amount

    def stats(self) -> dict[str, int]:
        return dict(self._counts)

    def _send(self, prompts: list[str], on_reply: Callable[[str, Completion], None]) -> None:
        """Send ``prompts`` to the model; call ``on_reply(prompt, (reply, failure))`` as each completes."""
        raise NotImplementedError

    def _complete(self, prompts: Iterable[str]) -> None:
        pending = []
        for prompt in dict.fromkeys(prompts):
            if prompt in self._replies:
                continue
            cached = self.cache.get(self.model_id, prompt) if self.cache else None
            if cached is not None:
                self._count("cache_hits")
                self._replies[prompt] = (cached, None)
            else:
                pending.append(prompt)
        if not pending:
            return

        def on_reply(prompt: str, completion: Completion) -> None:
            reply, failure = completion
            if reply is not None and self.cache is not None:
                self.cache.put(self.model_id, prompt, reply)  # only real replies: failures are retried next run
            if failure is not None:
                self._count("failed_requests")
                if not failure.startswith(NOT_SENT):
                    logger.warning("%s judge: request failed: %s", self.name, failure)
            self._note_outcome(failure)
            self._replies[prompt] = completion

        if self._stopped is not None:  # a dead judge: every query fails at once, counted as a failure
            for prompt in pending:
                on_reply(prompt, (None, f"{NOT_SENT}: {self._stopped}"))
            return
        self._count("prompts_sent", len(pending))
        self._send(pending, on_reply)

    def prefetch(self, queries: Iterable[Query]) -> None:
        self._complete(prompt_for(query) for query in queries)

    def complete(self, prompt: str) -> Completion:
        """The model's reply to a prompt that is not a rubric (e.g. a paraphrase request): ``(reply, None)`` or
        ``(None, why)``; cached, counted and stopped like every query."""
        self._complete([prompt])
        return self._replies[prompt]

    def judge(self, query: Query) -> Verdict:
        reply, failure = self.complete(prompt_for(query))
        if reply is None:
            return Verdict(None, failure or "no reply")
        value = parse_reply(query, reply)
        if value is None:
            self._count("unparseable_replies")
            return Verdict(None, f"reply without the required verdict line: {reply[:80]!r}")
        return Verdict(value, reason=reply.strip())
