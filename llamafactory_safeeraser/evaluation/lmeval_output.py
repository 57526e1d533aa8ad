"""The one place that knows lm-eval's names and output layout: task and group names, ``"metric,none"`` keys,
standard-error keys, logged samples, configs.

``simple_evaluate(..., log_samples=True)`` returns ``results`` (task or group name -> ``"<metric>,<filter>"``
and ``"<metric>_stderr,<filter>"`` values; our tasks have the one filter ``none``), ``samples`` (subtask ->
logged samples: ``doc``, ``doc_id``, ``filtered_resps``, ``metrics`` and each metric's value), ``configs``,
``config`` and ``n-samples``. The group ``safeeraser`` holds one group per task kind (``safeeraser_<kind>``),
whose subtasks are the categories (``lmeval_task.documents.category_task``). The group ``safeeraser_attacks``
holds one group per attack family (``safeeraser_attacks_<family>``), whose tasks are one per attack and kind
(``lmeval_task.attacks.catalog.attack_task``), all categories in one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..data.records import CATEGORIES
from ..errors import SafeEraserError
from ..lmeval_task.attacks.catalog import (
    ATTACK_FAMILIES,
    ATTACK_GROUP,
    Attack,
    attack_task,
    family_attacks,
    family_group,
    grouped_attacks,
    task_attacks,
)
from ..lmeval_task.documents import GROUP, TASK_KINDS, category_task

FILTER = "none"  # the filter of our tasks' filter_list: lm-eval keys every value by it
TASK_PREFIX = f"{GROUP}_"


def kind_group(kind: str) -> str:
    """The lm-eval group of a task kind: ``safeeraser_efficacy``."""
    return TASK_PREFIX + kind


def attacks_of_task(task: str) -> list[tuple[Attack, str]] | None:
    """The (attack, kind) tasks an attack group or task name runs; None for a name that is none of them."""
    if task == ATTACK_GROUP:
        return [(a, kind) for family in ATTACK_FAMILIES for a in grouped_attacks(family) for kind in a.kinds]
    for family in ATTACK_FAMILIES:
        if task == family_group(family) and family_attacks(family):
            return [(a, kind) for a in grouped_attacks(family) for kind in a.kinds]
    single = task_attacks().get(task)
    return [single] if single else None


def tasks_to_run(tasks: Sequence[str], judge: str) -> list[str]:
    """The lm-eval tasks to run for ``tasks`` with the judge named ``judge``: ``tasks``, then, for each attack group
    named, the tasks of its attacks that ask this judge's model (``Attack.judges``: the model paraphrase with the
    ``openai`` judge), which lm-eval's groups leave out so that they run with any judge."""
    added = []
    for task in tasks:
        families = [f for f in ATTACK_FAMILIES if task in (ATTACK_GROUP, family_group(f))]
        added += [
            attack_task(a.name, kind)
            for family in families
            for a in family_attacks(family)
            if judge in a.judges
            for kind in a.kinds
        ]
    return list(dict.fromkeys([*tasks, *added]))


def tasks_to_kinds(tasks: Sequence[str]) -> list[str]:
    """The task kinds whose data the lm-eval task names ``tasks`` (``safeeraser``, ``safeeraser_<kind>``,
    ``safeeraser_attacks``, ``safeeraser_attacks_<family>``, ``safeeraser_attack_<name>_<kind>``) read."""
    kinds: list[str] = []
    for task in tasks:
        attacked = attacks_of_task(task)
        if task == GROUP:
            kinds += list(TASK_KINDS)
        elif task.startswith(TASK_PREFIX) and task[len(TASK_PREFIX) :] in TASK_KINDS:
            kinds.append(task[len(TASK_PREFIX) :])
        elif attacked is not None:
            kinds += [kind for _, kind in attacked]
        else:
            raise SafeEraserError(f"unknown SafeEraser task '{task}'; use {task_forms()}")
    return list(dict.fromkeys(kinds))


def task_forms() -> str:
    """The task names ``tasks_to_kinds`` knows, in words."""
    families = "|".join(f for f in ATTACK_FAMILIES if family_attacks(f))
    return (
        f"{GROUP}, {TASK_PREFIX}<{'|'.join(TASK_KINDS)}>, {ATTACK_GROUP}, {ATTACK_GROUP}_<{families}> or one "
        "attack task (safeeraser_attack_<attack>_<kind>)"
    )


def reported_kinds(raw: Mapping[str, Any]) -> list[str]:
    """The task kinds whose group lm-eval reported, in ``TASK_KINDS`` order."""
    return [kind for kind in TASK_KINDS if kind_group(kind) in raw["results"]]


def reported_attacks(raw: Mapping[str, Any]) -> list[tuple[Attack, str]]:
    """The (attack, kind) tasks lm-eval reported, in catalog order."""
    return [pair for task, pair in task_attacks().items() if task in raw["results"]]


def task_samples(raw: Mapping[str, Any], task: str) -> list[Mapping[str, Any]]:
    """The logged samples of one task."""
    return raw.get("samples", {}).get(task, [])


def task_results(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """One task's or group's aggregated numbers (empty when lm-eval did not run it)."""
    return raw["results"].get(name, {})


def metric_value(task_results: Mapping[str, Any], metric: str) -> Any:
    return task_results.get(f"{metric},{FILTER}")


def metric_stderr(task_results: Mapping[str, Any], metric: str) -> float | None:
    """The standard error lm-eval gives ``metric``; None where it has none ("N/A")."""
    value = task_results.get(f"{metric}_stderr,{FILTER}")
    return None if value in (None, "N/A") else float(value)


def subtask_results(raw: Mapping[str, Any], kind: str, category: str) -> Mapping[str, Any]:
    """One category subtask's aggregated numbers."""
    return task_results(raw, category_task(kind, category))


def subtask_samples(raw: Mapping[str, Any], kind: str, category: str) -> list[Mapping[str, Any]]:
    """The logged samples of one category subtask."""
    return task_samples(raw, category_task(kind, category))


def kind_samples(raw: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    """Every logged sample of a task kind, category by category."""
    return [sample for category in CATEGORIES for sample in subtask_samples(raw, kind, category)]


def logged_samples(raw: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(subtask name, logged sample) for every response lm-eval logged."""
    for task_name, samples in raw.get("samples", {}).items():
        for sample in samples:
            yield task_name, sample


def order_samples(raw: dict[str, Any]) -> None:
    """Put every task's logged samples in doc_id order, as one process logs them (lm-eval gathers a parallel
    run's samples rank after rank)."""
    for samples in raw.get("samples", {}).values():
        samples.sort(key=sample_doc_id)


def sample_doc(sample: Mapping[str, Any]) -> Mapping[str, Any]:
    """The task document the sample's response answered (with what ``process_results`` added to it)."""
    return sample["doc"]


def sample_doc_id(sample: Mapping[str, Any]) -> int:
    return sample["doc_id"]


def sample_response(sample: Mapping[str, Any]) -> str:
    return sample["filtered_resps"][0]


def sample_value(sample: Mapping[str, Any], metric: str) -> float | None:
    """The sample's value of ``metric``; None where ``process_results`` left it out (a judge failure)."""
    return sample.get(metric)


def sample_scores(sample: Mapping[str, Any]) -> dict[str, float]:
    """Every metric value the sample has."""
    return {key: sample[key] for key in sample.get("metrics", []) if sample.get(key) is not None}


def generation_kwargs(raw: Mapping[str, Any]) -> Any:
    """The generation settings the tasks ran with (the first task's config: they share them)."""
    return next(iter(raw.get("configs", {}).values()), {}).get("generation_kwargs")


def device(raw: Mapping[str, Any]) -> str | None:
    return raw.get("config", {}).get("device")


def raw_numbers(raw: Mapping[str, Any]) -> dict[str, Any]:
    """lm-eval's own numbers, as results.json keeps them."""
    return {"results": raw["results"], "n-samples": raw.get("n-samples")}
