"""Rows of `stage: unlearn`: the answer is cut to fit, never the prompt; EOS targets; pairing and draws.

The pipeline side is real: LLaMA-Factory's parser, loader, template and LLaVA plugin on the tiny model
and the synthetic data (16 image tokens per row).
"""

from __future__ import annotations

import itertools
import json

import pytest
from conftest import build_unlearning_trainer

from llamafactory_safeeraser.errors import DataError
from llamafactory_safeeraser.unlearn.rows import IGNORE_INDEX, answer_content_length, assemble_row

IMAGE_TOKENS = 16  # tiny LLaVA: 32-px images, patch 8


def test_assemble_row_cuts_the_answer_and_masks_end_of_turn_tokens():
    prompt, answer = [1, 7, 7, 8], [20, 21, 22, 2, 9]  # answer words 20-22, then EOS (2) and a newline (9)
    assert answer_content_length(answer, {2}) == 3
    whole = assemble_row(prompt, answer, {2}, cutoff_len=100, eos_target=False)
    assert whole["input_ids"] == prompt + answer
    assert whole["labels"] == [IGNORE_INDEX] * 4 + [20, 21, 22, IGNORE_INDEX, IGNORE_INDEX]
    assert whole["attention_mask"] == [1] * 9
    assert assemble_row(prompt, answer, {2}, 100, eos_target=True)["labels"][4:] == answer
    cut = assemble_row(prompt, answer, {2}, cutoff_len=6, eos_target=True)
    assert cut["input_ids"] == [*prompt, 20, 21] and cut["labels"] == [IGNORE_INDEX] * 4 + [20, 21]
    with pytest.raises(ValueError, match="prompt alone is 4 tokens, cutoff_len is 4"):
        assemble_row(prompt, answer, {2}, cutoff_len=4, eos_target=False)


def prompt_and_answer(row: dict) -> tuple[list[int], list[int]]:
    first = next(t for t, label in enumerate(row["labels"]) if label != IGNORE_INDEX)
    return row["input_ids"][:first], [label for label in row["labels"] if label != IGNORE_INDEX]


@pytest.fixture(scope="module")
def full_rows(tiny_model_dir, prepared_dir, tmp_path_factory):
    trainer = build_unlearning_trainer(
        tiny_model_dir,
        prepared_dir,
        tmp_path_factory.mktemp("full"),
        unlearn_method="gd",
        retain_dataset="safeeraser_retain",
        retain_sampling="fixed",
        pd_dataset="safeeraser_pd",
        max_samples=24,
        cutoff_len=1024,
    )
    image_token = trainer.processing_class.convert_tokens_to_ids("<image>")
    return trainer.train_dataset, image_token


def test_rows_over_the_cutoff_lose_answer_tokens_only(full_rows, tiny_model_dir, prepared_dir, tmp_path):
    full, image_token = full_rows
    prompts = [len(prompt_and_answer(full[i][row_set])[0]) for i in range(len(full)) for row_set in ("forget", "pd")]
    cutoff = max(prompts) + 3  # every answer is cut to its first 3 to 3 + (longest - shortest prompt) tokens
    cut = build_unlearning_trainer(
        tiny_model_dir,
        prepared_dir,
        tmp_path,
        unlearn_method="gd",
        retain_dataset="safeeraser_retain",
        retain_sampling="fixed",
        pd_dataset="safeeraser_pd",
        max_samples=24,
        cutoff_len=cutoff,
    ).train_dataset
    shortened = 0
    for i in range(len(full)):
        for row_set in ("forget", "retain", "pd"):
            whole, short = full[i][row_set], cut[i][row_set]
            whole_prompt, whole_answer = prompt_and_answer(whole)
            short_prompt, short_answer = prompt_and_answer(short)
            assert short_prompt == whole_prompt  # system prompt, all image tokens and the whole question
            assert short_prompt.count(image_token) == IMAGE_TOKENS
            assert len(short["input_ids"]) == min(cutoff, len(whole["input_ids"]))
            assert short_answer == whole_answer[: len(short_answer)] and short_answer
            shortened += len(short_answer) < len(whole_answer)
    assert shortened > len(full)  # most rows were actually cut


def test_a_prompt_that_alone_fills_the_cutoff_is_a_one_line_error(full_rows, tiny_model_dir, prepared_dir, tmp_path):
    full, _ = full_rows
    shortest = min(len(prompt_and_answer(full[i]["forget"])[0]) for i in range(len(full)))
    with pytest.raises(DataError) as caught:
        build_unlearning_trainer(
            tiny_model_dir, prepared_dir, tmp_path, unlearn_method="ga", max_samples=24, cutoff_len=shortest
        )
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("forget.json: record 0: field 'prompt': dataset 'safeeraser_forget': the prompt alone is")
    assert f"cutoff_len is {shortest}" in message


def test_end_of_turn_is_a_target_only_when_asked(full_rows, tiny_model_dir, prepared_dir, tmp_path):
    full, _ = full_rows
    eos = 2  # the tiny tokenizer's </s>, which the llava template puts after every answer
    row = full[0]["forget"]
    assert row["input_ids"][-1] == eos and row["labels"][-1] == IGNORE_INDEX and row["labels"][-2] != IGNORE_INDEX
    with_eos = build_unlearning_trainer(
        tiny_model_dir, prepared_dir, tmp_path, unlearn_method="ga", max_samples=2, eos_target=True
    ).train_dataset
    assert with_eos[0]["forget"]["labels"][-1] == eos
    assert with_eos[0]["forget"]["labels"][:-1] == row["labels"][:-1]


def test_every_pd_row_pairs_with_the_forget_row_of_the_same_question(full_rows, prepared_dir):
    full, _ = full_rows
    forget = json.loads((prepared_dir / "forget.json").read_text())
    questions = [row["instruction"] for row in forget[: len(full)]]
    # neighbouring rows ask different questions, so an off-by-one pairing cannot pass
    assert all(a != b for a, b in itertools.pairwise(questions))
    prompts = [prompt_and_answer(full[i]["forget"])[0] for i in range(len(full))]
    assert all(a != b for a, b in itertools.pairwise(prompts))
    for i in range(len(full)):
        assert prompt_and_answer(full[i]["pd"])[0] == prompts[i]  # same template, image tokens and question


def test_the_collated_batch_keeps_each_pd_row_beside_its_forget_row(tiny_model_dir, prepared_dir, tmp_path):
    trainer = build_unlearning_trainer(
        tiny_model_dir,
        prepared_dir,
        tmp_path,
        unlearn_method="ga",
        pd_dataset="safeeraser_pd",
        max_samples=24,
        per_device_train_batch_size=4,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    sizes = batch["row_set_sizes"].tolist()  # forget, refusal, retain, pd
    assert sizes == [4, 0, 0, 4]
    labels = batch["labels"]
    for j in range(4):
        forget_ids, pd_ids = batch["input_ids"][j], batch["input_ids"][4 + j]
        first_forget = int((labels[j] != IGNORE_INDEX).nonzero()[0])
        first_pd = int((labels[4 + j] != IGNORE_INDEX).nonzero()[0])
        assert forget_ids[:first_forget].tolist() == pd_ids[:first_pd].tolist()
        row = trainer.train_dataset[int(batch["row_ids"][j])]
        assert forget_ids[:first_forget].tolist() == prompt_and_answer(row["pd"])[0]


@pytest.mark.parametrize("mode", ["per_epoch", "fixed"])
def test_retain_rows_and_refusals_are_drawn_per_epoch_or_fixed(mode, tiny_model_dir, prepared_dir, tmp_path):
    keys = dict(max_samples=24, retain_dataset="safeeraser_retain", retain_sampling=mode, refusal_sampling=mode)

    def dataset():
        trainer = build_unlearning_trainer(tiny_model_dir, prepared_dir, tmp_path, unlearn_method="po", **keys)
        return trainer.train_dataset

    first, again = dataset(), dataset()
    draws = {}
    for epoch in (0, 1):
        for data in (first, again):
            data.set_epoch(epoch)
        draws[epoch] = [(first.retain_index(i), first.refusal_index(i)) for i in range(len(first))]
        assert draws[epoch] == [(again.retain_index(i), again.refusal_index(i)) for i in range(len(again))]
    changed = sum(a != b for a, b in zip(draws[0], draws[1], strict=True))
    if mode == "fixed":
        assert changed == 0
    else:
        assert changed > len(first) // 2
        retain_pool = len(first.retain.rows)
        assert len({r for r, _ in draws[0] + draws[1]}) > retain_pool // 2  # drawn from the whole pool
    first.set_epoch(1)
    item = first[5]  # the item holds the drawn rows
    refusal_ids = first.refusal_answers[first.refusal_index(5)]
    assert prompt_and_answer(item["refusal"])[1] == [t for t in refusal_ids if t != 2]
    assert item["retain"]["input_ids"] == first.own_row(first.retain.rows[first.retain_index(5)])["input_ids"]


def test_retain_draw_pairs_pd_rows_with_the_retain_draw_and_needs_enough_of_them(
    full_rows, tiny_model_dir, prepared_dir, tmp_path
):
    keys = dict(max_samples=24, pd_dataset="safeeraser_pd", retain_dataset="safeeraser_retain")
    drawn = build_unlearning_trainer(
        tiny_model_dir, prepared_dir, tmp_path, unlearn_method="ga", pd_pairing="retain_draw", **keys
    ).train_dataset
    assert drawn.row_sets == ("forget", "pd")  # GA: the retain set is only the pool of the draw
    full, _ = full_rows  # GD, same_question: PD row i beside forget row i
    moved = 0
    for i in range(len(drawn)):
        j = drawn.retain_index(i)
        assert drawn[i]["pd"]["input_ids"] == full[j]["pd"]["input_ids"]
        moved += j != i
    assert moved > len(drawn) // 2
    with pytest.raises(DataError) as caught:  # the reference's loader raises IndexError on such draws
        build_unlearning_trainer(
            tiny_model_dir,
            prepared_dir,
            tmp_path,
            unlearn_method="ga",
            pd_pairing="retain_draw",
            **{**keys, "retain_dataset": "safeeraser_retain,safeeraser_forget"},
        )
    message = str(caught.value)
    assert "\n" not in message and message.startswith("pd.json: pd_dataset 'safeeraser_pd' has 24 rows")
    assert "but retain_dataset 'safeeraser_retain,safeeraser_forget' has 48" in message
