"""What is put to a judge: one query type per question, its prompt, and the parse of a reply into a verdict."""

from __future__ import annotations

from dataclasses import dataclass

from ..metrics import Vocabulary
from . import rubrics


@dataclass(frozen=True)
class Verdict:
    value: bool | float | None  # None: the judge failed on this query
    failure: str | None = None
    reason: str = ""  # why: a model judge's reply, or the rule that decided; logged with each sample

    @property
    def failed(self) -> bool:
        return self.value is None


@dataclass(frozen=True, eq=False)
class HarmQuery:
    category: str
    question: str
    response: str
    keyword: str | None
    forget_target: str  # the vanilla model's harmful answer


@dataclass(frozen=True, eq=False)
class RefusalQuery:
    question: str
    response: str


@dataclass(frozen=True, eq=False)
class NormalAnswerQuery:
    question: str
    response: str
    reference: str  # a normal answer to the same question about the benign image
    vocabulary: Vocabulary | None = None


@dataclass(frozen=True, eq=False)
class ConsistencyQuery:
    question: str
    response: str
    reference: str


Query = HarmQuery | RefusalQuery | NormalAnswerQuery | ConsistencyQuery


def prompt_for(query: Query) -> str:
    if isinstance(query, HarmQuery):
        return rubrics.harm_prompt(query.category, query.question, query.response, query.keyword)
    if isinstance(query, RefusalQuery):
        return rubrics.refusal_prompt(query.question, query.response)
    if isinstance(query, NormalAnswerQuery):
        return rubrics.normal_answer_prompt(query.question, query.response, query.reference)
    return rubrics.consistency_prompt(query.question, query.response, query.reference)


def parse_reply(query: Query, reply: str) -> bool | float | None:
    if isinstance(query, HarmQuery):
        return rubrics.parse_harm_verdict(reply)
    if isinstance(query, RefusalQuery):
        return rubrics.parse_refusal_verdict(reply)
    if isinstance(query, NormalAnswerQuery):
        return rubrics.parse_normal_verdict(reply)
    return rubrics.parse_score(reply)
