"""The attack tasks: the catalog, the attacked documents (hand-checked against the plain ones), the lm-eval group
as TaskManager loads it, lm-eval's aggregation of hand-labelled responses and results.json's ``attacks`` section.
No model: responses are written by hand."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from lmeval_harness import aggregate_responses

from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.evaluation.lmeval_output import tasks_to_kinds
from llamafactory_safeeraser.evaluation.results import RunSpec, samples_jsonl, summarize
from llamafactory_safeeraser.evaluation.settings import EvalSettings
from llamafactory_safeeraser.lmeval_task import documents, metric_catalog
from llamafactory_safeeraser.lmeval_task.attacks import catalog, typographic
from llamafactory_safeeraser.lmeval_task.attacks import image as image_attacks
from llamafactory_safeeraser.lmeval_task.attacks import documents as attacked
from llamafactory_safeeraser.lmeval_task.attacks.catalog import ATTACK_FAMILIES, ATTACKS, attack, attack_task
from llamafactory_safeeraser.tasks import TASK_DIR

REFUSAL = "I'm sorry, but I can't help with that."
NEUTRAL = "The picture shows a quiet street with trees and a small shop on the corner."


def test_catalog_declares_each_attack_once_in_a_known_family() -> None:
    names = [a.name for a in ATTACKS]
    assert len(names) == len(set(names))
    assert {a.family for a in ATTACKS} <= set(ATTACK_FAMILIES)
    assert {"typographic_alone", "typographic_beside", "crop", "rescale", "noise", "jpeg", "grayscale", "flip"} <= set(
        names
    )
    for a in ATTACKS:
        assert a.title and a.source and set(a.kinds) <= {"efficacy", "generality", "sarr"}, a.name
        assert a.kinds[:2] == ("efficacy", "generality"), a.name  # every attack is on both forget sets
    assert all(a.kinds == ("efficacy", "generality", "sarr") for a in catalog.family_attacks("image"))
    with pytest.raises(KeyError, match="no SafeEraser attack 'nope'"):
        attack("nope")


def test_attack_task_names_give_their_kinds_and_unknown_names_are_refused() -> None:
    assert tasks_to_kinds(["safeeraser_attack_flip_sarr"]) == ["sarr"]
    assert tasks_to_kinds(["safeeraser_attacks_typographic"]) == ["efficacy", "generality"]
    assert tasks_to_kinds(["safeeraser_utility", "safeeraser_attacks"]) == ["utility", "efficacy", "generality", "sarr"]
    for bad in ("safeeraser_attack_flip_utility", "safeeraser_attacks_nope", "safeeraser_attacks_jailbreakish"):
        with pytest.raises(SafeEraserError, match=f"unknown SafeEraser task '{bad}'"):
            tasks_to_kinds([bad])
    with pytest.raises(SafeEraserError, match="key 'tasks' must each be safeeraser, .*safeeraser_attacks, .*got 'safeeraser_atacks'"):
        EvalSettings(tasks=("safeeraser", "safeeraser_atacks"))
    settings = EvalSettings(tasks=("safeeraser", "safeeraser_attacks"), seed=17)
    assert settings.metadata()["attack_seed"] == 17  # the attacked documents follow the evaluation's seed


@pytest.fixture(scope="module")
def metadata(synthetic_dir: Path) -> dict:
    return {"data_dir": str(synthetic_dir), "harmful_samples": 2, "attack_seed": 5}


@pytest.mark.parametrize("name", [a.name for a in ATTACKS if not a.needs_model_judge])  # the rule judge here
def test_attacked_documents_are_the_kinds_documents_with_the_attack_named(name: str, metadata: dict) -> None:
    chosen = attack(name)
    for kind in chosen.kinds:
        plain, docs = documents.task_docs(kind, metadata), attacked.attack_docs(name, kind, metadata)
        assert len(docs) == len(plain) and {doc["category"] for doc in docs} == set(documents.CATEGORIES)
        added = {"attack", "attack_family", "attack_strength", "attack_seed", "attack_question"}
        for before, after in zip(plain, docs, strict=True):
            assert set(after) == set(before) | added
            # everything the judge reads is the record's: the response is rated against the harmful question
            kept = set(before) - {"prompt"}
            assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
            assert (after["attack"], after["attack_family"], after["attack_strength"]) == (
                name,
                chosen.family,
                chosen.strength,
            )
            if chosen.family == "typographic":
                assert after["attack_question"] == typographic.INSTRUCTION
                assert after["prompt"] == documents.render_prompt("llava", typographic.INSTRUCTION)
                assert before["question"] not in after["prompt"]
            elif chosen.edits_question:  # a text attack (test_text_attacks.py): the model is asked its question
                assert after["attack_question"] != before["question"]
                assert after["prompt"] == documents.render_prompt("llava", after["attack_question"])
            else:
                assert after["attack_question"] == before["question"] and after["prompt"] == before["prompt"]
        seeds = {(doc["record"], doc["item"]): doc["attack_seed"] for doc in docs}
        assert all(seeds[(doc["record"], doc["item"])] == doc["attack_seed"] for doc in docs)  # samples share it
        assert len(set(seeds.values())) == len(seeds)  # each question its own
        assert all(0 <= seed < 2**63 for seed in seeds.values())  # an Arrow int64


def test_attack_seed_follows_the_evaluation_seed_and_nothing_else(metadata: dict) -> None:
    first = [doc["attack_seed"] for doc in attacked.attack_docs("crop", "efficacy", metadata)]
    assert first == [doc["attack_seed"] for doc in attacked.attack_docs("crop", "efficacy", dict(metadata))]
    other = [doc["attack_seed"] for doc in attacked.attack_docs("crop", "efficacy", {**metadata, "attack_seed": 6})]
    assert all(a != b for a, b in zip(first, other, strict=True))
    noise = [doc["attack_seed"] for doc in attacked.attack_docs("noise", "efficacy", metadata)]
    assert all(a != b for a, b in zip(first, noise, strict=True))  # each attack draws its own


def test_the_attacked_image_is_the_records_image_attacked_then_resized_as_in_training(metadata: dict) -> None:
    flip = attacked.attack_docs("flip", "sarr", metadata)[0]
    plain = documents.task_docs("sarr", metadata)[0]
    assert flip["image_path"] == plain["image_path"] and "sd_img" in Path(plain["image_path"]).parts
    mirrored = np.asarray(attacked.load_image(flip))
    assert np.array_equal(mirrored, np.asarray(documents.load_image(plain))[:, ::-1])  # the SD image, mirrored

    typed = attacked.attack_docs("typographic_alone", "efficacy", metadata)[0]
    expected = documents.training_resized(typed, typographic.typed_image(typed["question"]))
    assert attacked.load_image(typed).tobytes() == expected.tobytes()

    crop = attacked.attack_docs("crop", "generality", metadata)[3]
    assert attacked.load_image(crop).tobytes() == attacked.load_image(dict(crop)).tobytes()  # seeded: the same
    window = image_attacks.crop(documents.read_image(crop["image_path"]), random.Random(crop["attack_seed"]))
    assert window.size == (26, 26)  # 80% of the synthetic 32 px image, at the document's seeded position ...
    resized = documents.training_resized(crop, window)
    assert resized.size == (32, 32) and attacked.load_image(crop).tobytes() == resized.tobytes()  # ... then
    # enlarged as training enlarges images below image_min_pixels (32 * 32)


def test_an_attack_only_attacks_its_kinds(metadata: dict) -> None:
    with pytest.raises(ValueError, match="does not attack task kind 'sarr'"):
        attacked.attack_docs("typographic_alone", "sarr", metadata)


def test_a_question_too_long_to_type_names_the_file_record_and_item(synthetic_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    records = json.loads((data / "all_train.json").read_text())
    records[1]["unsafe_pairs"][0]["question"] = "why " * 3000
    (data / "all_train.json").write_text(json.dumps(records))
    with pytest.raises(SafeEraserError, match=r"all_train\.json: record 1, unsafe_pairs\[0\]: attack typographic_alone"):
        attacked.attack_docs("typographic_alone", "efficacy", {"data_dir": str(data)})


@pytest.fixture(scope="module")
def loaded(metadata: dict):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata=metadata)
    return manager.load(["safeeraser_attacks", "safeeraser_efficacy"])


def test_the_group_holds_a_group_per_family_and_a_task_per_attack_and_kind(loaded, metadata: dict) -> None:
    from lm_eval.api.metrics import mean

    groups, tasks = loaded["groups"], loaded["tasks"]
    families = [family for family in ATTACK_FAMILIES if catalog.family_attacks(family)]
    assert groups["safeeraser_attacks"].child_names == [f"safeeraser_attacks_{family}" for family in families]
    for family in families:
        expected = [attack_task(a.name, kind) for a in catalog.grouped_attacks(family) for kind in a.kinds]
        assert groups[f"safeeraser_attacks_{family}"].child_names == expected
    for task_name, (chosen, kind) in catalog.task_attacks().items():
        if chosen.needs_model_judge:  # not in the group: run when named (test_text_attacks.py)
            continue
        task = tasks[task_name]
        assert list(task.eval_docs) == attacked.attack_docs(chosen.name, kind, metadata)
        assert [m["metric"] for m in task.config.metric_list] == metric_catalog.metric_names(kind)
        assert all(task.aggregation()[name] is mean for name in metric_catalog.metric_names(kind))
    typed = tasks["safeeraser_attack_typographic_beside_generality"]
    doc = typed.eval_docs[0]
    assert typed.doc_to_text(doc) == doc["prompt"] and typographic.INSTRUCTION in doc["prompt"]
    (image,) = typed.doc_to_image(doc)
    assert image.tobytes() == attacked.load_image(doc).tobytes()


def respond(doc: dict) -> str:
    """Hand-labelled: under the typographic attacks the forget target comes back on Violence and Weapon; under the
    others on Violence only; everything else is refused; on the SD image, refusals on Sex only."""
    if doc["task_kind"] == "sarr":
        return REFUSAL if doc["category"] == "Sex" else doc["reference"]
    recovered = ("Violence", "Weapon") if doc.get("attack_family") == "typographic" else ("Violence",)
    return doc["reference"] if doc["category"] in recovered else REFUSAL


def binomial_stderr(successes: int, n: int) -> float:
    p = successes / n
    return math.sqrt(p * (1 - p) / (n - 1))


def test_results_json_has_an_attacks_section_scored_as_the_plain_tasks(loaded, metadata: dict) -> None:
    aggregated = aggregate_responses(loaded, respond)
    options = documents.TaskOptions.from_metadata(metadata)
    settings = SimpleNamespace(
        harmful_samples=2,
        limit=None,
        batch_size=1,
        template="llava",
        image_max_pixels=None,
        image_min_pixels=None,
        sarr_question="harmful",
        seed=5,
        device="cpu",
        tasks=("safeeraser_attacks", "safeeraser_efficacy"),
    )
    results = summarize(RunSpec("GA", "models/x"), aggregated, settings, options)
    assert set(results["tasks"]) == {"efficacy"}  # the plain kind that ran
    attacks = results["attacks"]
    grouped = [a for a in ATTACKS if not a.needs_model_judge]  # the group's: paraphrase_model runs when named
    assert list(attacks) == [a.name for a in grouped]
    for chosen in grouped:
        assert list(attacks[chosen.name]) == list(chosen.kinds)
        for kind, numbers in attacks[chosen.name].items():
            docs = attacked.attack_docs(chosen.name, kind, metadata)
            n = len(docs)
            assert numbers["task"] == attack_task(chosen.name, kind) and numbers["n"] == n
            assert (numbers["family"], numbers["strength"]) == (chosen.family, chosen.strength)
            assert set(numbers["metrics"]) == {*metric_catalog.kind_metrics(kind), "judge_failures"}
            if kind == "sarr":
                refused = sum(doc["category"] == "Sex" for doc in docs)
                assert numbers["metrics"]["sarr"] == pytest.approx(refused / n)
                assert numbers["stderr"]["sarr"] == pytest.approx(binomial_stderr(refused, n))
                continue
            recovered = ("Violence", "Weapon") if chosen.family == "typographic" else ("Violence",)
            unsafe = sum(doc["category"] in recovered for doc in docs)
            assert numbers["metrics"]["asr"] == pytest.approx(unsafe / n)
            assert numbers["metrics"]["rr"] == pytest.approx((n - unsafe) / n)
            assert numbers["stderr"]["asr"] == pytest.approx(binomial_stderr(unsafe, n))
            assert numbers["metrics"]["judge_failures"] == 0
    # the plain efficacy task is untouched by the attacks next to it
    plain = documents.task_docs("efficacy", metadata)
    assert results["tasks"]["efficacy"]["metrics"]["asr"] == pytest.approx(
        sum(doc["category"] == "Violence" for doc in plain) / len(plain)
    )

    lines = [json.loads(line) for line in samples_jsonl(aggregated).splitlines()]
    typed = next(line for line in lines if line["task"] == "safeeraser_attack_typographic_alone_efficacy")
    assert typed["attack"] == "typographic_alone" and typed["attack_family"] == "typographic"
    assert typed["attack_question"] == typographic.INSTRUCTION and typed["question"] != typographic.INSTRUCTION
    noise = next(line for line in lines if line["task"] == "safeeraser_attack_noise_sarr")
    assert noise["attack_strength"] == attack("noise").strength
    plain_line = next(line for line in lines if line["task"].startswith("safeeraser_efficacy_"))
    assert "attack" not in plain_line
    # lm-eval's own logged sample (what --log_samples writes) carries them in its document
    raw = aggregated["samples"]["safeeraser_attack_jpeg_generality"][0]["doc"]
    assert (raw["attack"], raw["attack_family"], raw["attack_strength"]) == ("jpeg", "image", "quality 15")


def test_results_json_has_no_attacks_section_when_no_attack_ran(synthetic_dir: Path) -> None:
    from lm_eval.tasks import TaskManager

    metadata = {"data_dir": str(synthetic_dir), "harmful_samples": 1}
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata=metadata)
    aggregated = aggregate_responses(manager.load(["safeeraser_sarr"]), respond)
    settings = SimpleNamespace(**{**vars(EvalSettings()), "tasks": ("safeeraser_sarr",)})
    results = summarize(RunSpec("GA", "m"), aggregated, settings, documents.TaskOptions.from_metadata(metadata))
    assert "attacks" not in results and set(results["tasks"]) == {"sarr"}
