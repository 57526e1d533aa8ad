"""Under the paper recipes' keys the `unlearn` stage trains the SafeEraser reference's rows, token for token.

The reference's rows are built here from a written-down statement of its data loader (docs/fidelity.md), not
by running its code:

1. text: every question and answer through ``str.capitalize()``; a refusal through ``.strip(" ").capitalize()``;
2. ``conversation = SYSTEM_TAG + "USER: " + "<image>\\n" + question + " ASSISTANT: " + answer``, with the system
   text of the reference's model config (its trailing space included);
3. ``ids = tokenizer(conversation, max_length=512, truncation=True)``: BOS first, no EOS, cut at the end, so a
   long answer loses its end; the 512 count BOS and the one ``<image>`` token;
4. labels: the first ``1 + len(tokenizer(instruction + " ASSISTANT: ")) - 2`` positions are masked, with
   ``instruction`` the conversation before ``" ASSISTANT: "`` stripped of spaces (BOS, system, question);
5. the model expands the one ``<image>`` token into 576 masked image positions;
6. a step holds forget row i (or its prompt with a refusal), retain row j drawn from the whole retain pool, and
   PD row j: the retain draw overwrites the loader's index before it reads the PD row.

The stage's rows come from ``load_unlearning_sets`` (LLaMA-Factory's loader, template and LLaVA plugin) on the
LLaVA-1.5-7B shape tokenizer and processor, with the keys of yaml/llava7b_gd_pd.yaml and llava7b_po_pd.yaml.
The one difference left is the masked EOS the stage appends to a row the cutoff does not reach (docs/fidelity.md
"KL over padding and EOS"); a test below pins the token the released tokenizer's legacy normalizer adds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, build_unlearning_dataset

import yaml
from llamafactory_safeeraser.data.prepare import prepare_datasets
from llamafactory_safeeraser.data.refusals import BUILTIN_REFUSALS
from llamafactory_safeeraser.offline.cpu_recipe import cpu_recipe
from llamafactory_safeeraser.unlearn.rows import IGNORE_INDEX

SYSTEM_TAG = (  # config/model_config.yaml, llava-v1.5-vicuna
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions. "
)
USER, ASSISTANT = "USER: ", " ASSISTANT: "
MAX_LENGTH = 512
IMAGE_TOKEN, IMAGE_POSITIONS = 32000, 576  # LLaVA-1.5: one <image> becomes 24 x 24 patch features
POSITIONS = MAX_LENGTH - 1 + IMAGE_POSITIONS  # a cut row's length once the image is expanded: 1087
RETAIN_KEYS = ("UnharmPair_text1", "UnharmPair_text2", "UnharmPair_image1", "UnharmPair_image2")


# ----- the reference's construction ------------------------------------------------------------------------
def reference_row(tokenizer, question: str, answer: str) -> tuple[list[int], list[int]]:
    """(input ids, labels) after the model's image expansion; question and answer already cased."""
    conversation = SYSTEM_TAG + USER + "<image>\n" + question + ASSISTANT + answer
    ids = tokenizer(conversation, max_length=MAX_LENGTH, truncation=True)["input_ids"]
    instruction = conversation.split(ASSISTANT)[0].strip(" ")
    masked = 1 + len(tokenizer(instruction + ASSISTANT)["input_ids"]) - 2
    labels = [IGNORE_INDEX] * masked + ids[masked:]
    image = ids.index(IMAGE_TOKEN)
    expanded_ids = [*ids[:image], *[IMAGE_TOKEN] * IMAGE_POSITIONS, *ids[image + 1 :]]
    expanded_labels = [*labels[:image], *[IGNORE_INDEX] * IMAGE_POSITIONS, *labels[image + 1 :]]
    return expanded_ids, expanded_labels


def reference_sets(records: list[dict]) -> dict[str, list[tuple[str, str]]]:
    """The reference's (question, answer) lists, cased, in its order: one row per pair, records in file order."""
    forget = [(p["question"], p["model_response"]) for r in records for p in r["unsafe_pairs"]]
    pd = [(p["question"], p["sd_response"]) for r in records for p in r["unsafe_pairs"]]
    retain = [(r[key]["Question"], r[key]["Prediction"]) for r in records for key in RETAIN_KEYS if key in r]
    sets = {"forget": forget, "pd": pd, "retain": retain}
    return {name: [(q.capitalize(), a.capitalize()) for q, a in rows] for name, rows in sets.items()}


# ----- fixtures --------------------------------------------------------------------------------------------
LONG = " ".join(["the shape in the picture stands on a plain ground and it has a colour that is easy to see"] * 40)


@pytest.fixture(scope="module")
def benchmark(synthetic_dir: Path, tmp_path_factory) -> tuple[list[dict], Path]:
    """The synthetic train file with three answers long enough to be cut (forget, PD, retain), images absolute."""
    records = json.loads((synthetic_dir / "all_train.json").read_text())[:6]
    for record in records:
        for key in ("image_path", "SDImage_path"):
            record[key] = str((synthetic_dir / record[key]).resolve())
    records[0]["unsafe_pairs"][1]["model_response"] = LONG
    records[1]["unsafe_pairs"][2]["sd_response"] = "Sure. " + LONG
    records[2]["UnharmPair_text1"]["Prediction"] = LONG + " That is all."
    out = tmp_path_factory.mktemp("reference_rows")
    (out / "all_train.json").write_text(json.dumps(records))
    prepare_datasets(out / "all_train.json", out / "lf", capitalize=True)  # the recipes' header command
    # the reference's refusal list ships with the data (prompt.json); its stand-in is the built-in list
    (out / "refusals.txt").write_text("\n".join(text.strip(" ").capitalize() for text in BUILTIN_REFUSALS))
    return records, out


def stage_dataset(recipe: str, model_dir: Path, data_dir: Path, output_dir: Path):
    """The `unlearn` stage's dataset under a paper recipe's keys (model, folders and CPU settings replaced)."""
    config = cpu_recipe(yaml.safe_load((REPO / "yaml" / recipe).read_text()), model_dir, data_dir / "lf", 1)
    config["output_dir"] = str(output_dir)
    if config["unlearn_method"] == "po":
        config["refusal_file"] = str(data_dir / "refusals.txt")
    return build_unlearning_dataset(config)


@pytest.fixture(scope="module")
def llava_dir(shape_processor_dir) -> Path:
    return shape_processor_dir("llava")


def assert_reference_row(ours: dict, expected: tuple[list[int], list[int]], eos: int, where: str):
    ids, labels = expected
    tail = [eos] if len(ids) < POSITIONS else []  # the stage's masked EOS, where the reference's cut leaves room
    assert ours["input_ids"] == ids + tail, where
    assert ours["labels"] == labels + [IGNORE_INDEX] * len(tail), where


@pytest.mark.parametrize("recipe", ["llava7b_gd_pd.yaml", "llava7b_po_pd.yaml"])
def test_stage_rows_are_the_reference_rows(recipe, benchmark, llava_dir, tmp_path):
    records, data_dir = benchmark
    dataset, tokenizer = stage_dataset(recipe, llava_dir, data_dir, tmp_path)
    sets = reference_sets(records)
    assert len(sets["retain"]) <= len(sets["pd"])  # else the reference's PD lookup raises IndexError
    refusals = [text.strip(" ").capitalize() for text in BUILTIN_REFUSALS]
    eos = tokenizer.eos_token_id
    lengths: dict[str, set[int]] = {row_set: set() for row_set in dataset.row_sets}
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        pd_rows = set()
        for i in range(len(dataset)):
            item = dataset[i]
            j = dataset.retain_index(i)  # the step's retain draw: the reference's torch.randint, here seeded
            expected = {
                "forget": sets["forget"][i],
                "retain": sets["retain"][j],
                "pd": sets["pd"][j],  # the index the retain draw overwrote
            }
            if "refusal" in dataset.row_sets:
                expected["refusal"] = (sets["forget"][i][0], refusals[dataset.refusal_index(i)])
            for row_set in dataset.row_sets:
                question, answer = expected[row_set]
                row = reference_row(tokenizer, question, answer)
                assert_reference_row(item[row_set], row, eos, f"{recipe} epoch {epoch} item {i} {row_set}")
                lengths[row_set].add(len(item[row_set]["input_ids"]))
            pd_rows.add(j)
        assert len(pd_rows) > 1  # PD rows follow the draw, not one fixed row
    for row_set, seen in lengths.items():
        assert len(seen) > 2, row_set  # rows of different lengths
    cut = {row_set for row_set, seen in lengths.items() if POSITIONS in seen}
    assert cut >= {"retain", "pd"} and ("forget" in cut or "refusal" in dataset.row_sets)  # long answers were cut


def test_same_question_pairing_keeps_pd_row_i_with_forget_row_i(benchmark, llava_dir, tmp_path):
    """The plugin's default (and the recipes of methods the reference lacks): PD row i, whatever the retain draw."""
    records, data_dir = benchmark
    config_name = "llava7b_npo_pd.yaml"
    dataset, tokenizer = stage_dataset(config_name, llava_dir, data_dir, tmp_path)
    assert dataset.settings.pd_pairing == "same_question"
    sets = reference_sets(records)
    for i in range(len(dataset)):
        row = reference_row(tokenizer, *sets["pd"][i])
        assert_reference_row(dataset[i]["pd"], row, tokenizer.eos_token_id, f"item {i}")


def test_the_legacy_normalizer_writes_one_word_marker_after_the_image(llava_dir):
    """transformers 5 builds LLaVA-1.5's tokenizer with a Metaspace pre-tokenizer that marks only the text's start;
    the released tokenizer.json's legacy normalizer (prepend ``▁``, spaces to ``▁``), which transformers 4.46
    keeps, prepends ``▁`` to every stretch of text, also the one after ``<image>``: one token more per image."""
    from tokenizers import Tokenizer, normalizers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llava_dir)
    text = "USER: <image>\nWhat is shown here? ASSISTANT:"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    legacy = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    legacy.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    legacy.pre_tokenizer = None
    legacy_ids = legacy.encode(text, add_special_tokens=False).ids
    marker = tokenizer.convert_tokens_to_ids("▁")
    after_image = ids.index(IMAGE_TOKEN) + 1
    assert ids[after_image] == tokenizer.convert_tokens_to_ids("<0x0A>")  # transformers 5: the newline directly
    assert legacy_ids == [*ids[:after_image], marker, *ids[after_image:]]  # legacy: one ▁ between, all else equal
