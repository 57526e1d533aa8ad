"""What an attack is: a named, deterministic change of one document's question and image (``catalog`` lists them).

An attack module (``typographic.py``, ``image.py``, ``text.py``) declares its attacks as a module-level ``ATTACKS``
list of :class:`Attack` and imports from here, never from ``catalog`` (which imports the attack modules).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

    from ..judges import JudgeConfig


@dataclass(frozen=True)
class AttackInput:
    """What an attack may change in a document."""

    question: str  # the user's question (the prompt is "<image>\n" + question, rendered by the template)
    image: Image  # RGB, as read from the record (before LLaMA-Factory's training resize)


@dataclass(frozen=True)
class AttackContext:
    """What an attack may need besides the document."""

    kind: str  # the task kind whose document is attacked: efficacy, generality or sarr
    judge: JudgeConfig  # the configured judge (a model paraphrase may ask its model)
    concept: str = ""  # the record's concept in words ('StreetFight' -> 'street fight'): a paraphrase keeps it


@dataclass(frozen=True)
class Attack:
    """One attack: task names, tables and docs derive from these fields."""

    name: str  # e.g. "typographic_alone"; the lm-eval task is safeeraser_attack_<name>_<kind>
    family: str  # a key of catalog.ATTACK_FAMILIES
    title: str  # one line for tables and docs
    source: str  # the published source (paper, year)
    strength: str  # the stated strength, e.g. "crop 20%", "sigma 0.1"; "" when none
    kinds: tuple[str, ...]  # the task kinds it attacks
    apply: Callable[[AttackInput, random.Random, AttackContext], AttackInput]
    # Which parts ``apply`` changes. Documents are built without images, so the question is attacked when they
    # are built and the image when lm-eval asks for it (both times with the same seeded rng): an attack that
    # leaves a part alone is not run for it.
    edits_question: bool = True
    edits_image: bool = True
    # The judges whose model the attack asks (the model paraphrase: openai); empty for none. Such an attack is left
    # out of the lm-eval groups, so that they run with any judge; its tasks run when named, and `safeeraser eval`
    # adds them to a group it names when the judge is one of these.
    judges: tuple[str, ...] = ()


def document_seed(record: int, item: str, attack: str, kind: str, seed: int) -> int:
    """The seed of one document's attack: a function of the record, its question, the attack, the task kind and
    the evaluation seed only (the same on every machine and process; repeated samples share it)."""
    digest = hashlib.sha256(f"{record}\0{item}\0{attack}\0{kind}\0{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: a signed 64-bit integer in Arrow (datasets)
