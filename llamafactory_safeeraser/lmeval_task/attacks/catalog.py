"""Every attack on the SafeEraser tasks, declared once (as ``metric_catalog`` declares the metrics).

:data:`ATTACKS` collects each attack module's own ``ATTACKS`` list; :data:`ATTACK_FAMILIES` titles the families.
Everything else derives from them: the lm-eval task files (``task_files``: group ``safeeraser_attacks``, one group
per family ``safeeraser_attacks_<family>``, one task per attack and kind ``safeeraser_attack_<name>_<kind>``),
the attacked documents (``attacks.documents``), results.json's ``attacks`` section and the docs' tables.
A new attack is one entry in its family's module, then
``python -m llamafactory_safeeraser.lmeval_task.task_files`` to regenerate the task files and
``python -m llamafactory_safeeraser.lmeval_task.attacks.catalog`` to print docs/evaluation.md's table of attacks.
"""

from __future__ import annotations

from ..documents import GROUP
from . import image, text, typographic
from .attack import Attack, AttackContext, AttackInput, document_seed

__all__ = [
    "ATTACKS",
    "ATTACK_FAMILIES",
    "ATTACK_GROUP",
    "Attack",
    "AttackContext",
    "AttackInput",
    "attack",
    "attack_task",
    "document_seed",
    "family_attacks",
    "family_group",
    "grouped_attacks",
    "markdown_table",
    "task_attacks",
]

ATTACK_FAMILIES: dict[str, str] = {
    "typographic": "typographic: the question typed into the image (FigStep)",
    "jailbreak": "jailbreak: the question wrapped in a published jailbreak template",
    "paraphrase": "paraphrase: the question reworded, meaning kept",
    "image": "image rephrasing: the image cropped, rescaled, noised, compressed, greyed or flipped",
}
ATTACKS: tuple[Attack, ...] = (*typographic.ATTACKS, *text.ATTACKS, *image.ATTACKS)

ATTACK_GROUP = f"{GROUP}_attacks"  # the lm-eval group of every attack task
TASK_PREFIX = f"{GROUP}_attack_"


def attack(name: str) -> Attack:
    for declared in ATTACKS:
        if declared.name == name:
            return declared
    raise KeyError(f"no SafeEraser attack {name!r}; known: {', '.join(a.name for a in ATTACKS)}")


def family_attacks(family: str) -> tuple[Attack, ...]:
    return tuple(a for a in ATTACKS if a.family == family)


def grouped_attacks(family: str) -> tuple[Attack, ...]:
    """The attacks of a family that its lm-eval group runs: all but those asking a judge's model (``judges``)."""
    return tuple(a for a in family_attacks(family) if not a.judges)


def family_group(family: str) -> str:
    """The lm-eval group of a family's tasks: ``safeeraser_attacks_image``."""
    return f"{ATTACK_GROUP}_{family}"


def attack_task(name: str, kind: str) -> str:
    """The lm-eval task of one attack on one task kind: ``safeeraser_attack_flip_sarr``."""
    return f"{TASK_PREFIX}{name}_{kind}"


def task_attacks() -> dict[str, tuple[Attack, str]]:
    """Every attack task: lm-eval task name -> (attack, kind), in catalog order."""
    return {attack_task(a.name, kind): (a, kind) for a in ATTACKS for kind in a.kinds}


def markdown_table() -> str:
    """docs/evaluation.md's table of the attacks (a test keeps it equal)."""
    rows = ["| attack | family | what it does | strength | source | kinds |", "|---|---|---|---|---|---|"]
    for a in ATTACKS:
        kinds = ", ".join(a.kinds)
        rows.append(f"| `{a.name}` | {a.family} | {a.title} | {a.strength or '-'} | {a.source} | {kinds} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
