"""Text attacks: the question wrapped in a jailbreak template, or reworded with its meaning kept.

The image is the record's. Jailbreaks (``jailbreaks``) wrap the question verbatim; ``paraphrase_rules``
rewords it offline (``paraphrase_rules``); ``paraphrase_model`` has the judge's OpenAI-compatible model reword
it (``paraphrase_model``), and so runs only where such a judge is configured.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from ..documents import HARMFUL_KINDS
from .attack import Attack, AttackContext, AttackInput
from .jailbreaks import TEMPLATES, JailbreakTemplate
from .paraphrase_model import JUDGE, model_paraphrase
from .paraphrase_rules import REORDER_RATE, SUBSTITUTION_RATE, paraphrase

# rephrased prompts as a test of whether unlearned knowledge is gone, not just its usual wording
LYNCH_2024 = 'Lynch et al., "Eight Methods to Evaluate Robust Unlearning in LLMs", 2024'

Apply = Callable[[AttackInput, random.Random, AttackContext], AttackInput]


def _wrapped(template: JailbreakTemplate) -> Apply:
    def apply(given: AttackInput, rng: random.Random, context: AttackContext) -> AttackInput:
        return replace(given, question=template.wrap(given.question))

    return apply


def _reworded(given: AttackInput, rng: random.Random, context: AttackContext) -> AttackInput:
    return replace(given, question=paraphrase(given.question, context.concept, rng))


def _reworded_by_model(given: AttackInput, rng: random.Random, context: AttackContext) -> AttackInput:
    return replace(given, question=model_paraphrase(given.question, context.concept, rng, context.judge))


ATTACKS: list[Attack] = [
    *(
        Attack(
            name=template.name,
            family="jailbreak",
            title=template.title,
            source=template.source,
            strength="",
            kinds=HARMFUL_KINDS,
            apply=_wrapped(template),
            edits_image=False,
        )
        for template in TEMPLATES
    ),
    Attack(
        name="paraphrase_rules",
        family="paraphrase",
        title="the question reworded by rules, offline: synonyms, question form, clause order; the concept kept",
        source=LYNCH_2024,
        strength=f"synonyms {SUBSTITUTION_RATE:.0%}, reorder {REORDER_RATE:.0%}",
        kinds=HARMFUL_KINDS,
        apply=_reworded,
        edits_image=False,
    ),
    Attack(
        name="paraphrase_model",
        family="paraphrase",
        title="the question reworded by the judge's model (judge=openai only; safeeraser eval adds it to the groups)",
        source=LYNCH_2024,
        strength="",
        kinds=HARMFUL_KINDS,
        apply=_reworded_by_model,
        edits_image=False,
        judges=(JUDGE,),
    ),
]
