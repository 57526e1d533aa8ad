"""``respond``: the journal, the items, and answering a file in-process with the tiny LLaVA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafactory_safeeraser.data.records import read_benchmark
from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.respond import RespondSettings, respond
from llamafactory_safeeraser.respond.items import MODEL_RESPONSE, SD_RESPONSE, batches, build_items
from llamafactory_safeeraser.respond.journal import Journal
from llamafactory_safeeraser.respond.model import batch_seed
from llamafactory_safeeraser.respond.run import journal_path, provenance_path


# ----- the journal ---------------------------------------------------------------------------------------
def test_journal_resumes_its_answers_and_never_writes_a_key_twice(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = Journal.open(path, "fp1", discard_other=False)
    assert journal.append({"0:0:model_response": "first", "0:1:model_response": "second"}) == 2
    assert journal.append({"0:1:model_response": "other", "1:0:model_response": "third"}) == 1
    again = Journal.open(path, "fp1", discard_other=False)
    assert again.answers == {
        "0:0:model_response": "first",
        "0:1:model_response": "second",
        "1:0:model_response": "third",
    }
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines()[1:]]
    assert len(keys) == len(set(keys)) == 3


def test_a_torn_last_line_is_cut_off_and_the_rest_kept(tmp_path):
    path = tmp_path / "j.jsonl"
    Journal.open(path, "fp", discard_other=False).append({"a": "1", "b": "2"})
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"key": "c", "te')  # killed in the middle of a write
    journal = Journal.open(path, "fp", discard_other=False)
    assert journal.answers == {"a": "1", "b": "2"}
    assert path.read_bytes() == whole
    journal.append({"c": "3"})
    assert Journal.open(path, "fp", discard_other=False).answers == {"a": "1", "b": "2", "c": "3"}


def test_a_journal_of_other_settings_is_refused_or_discarded(tmp_path):
    path = tmp_path / "j.jsonl"
    Journal.open(path, "fp-old", discard_other=False).append({"a": "1"})
    with pytest.raises(
        SafeEraserError, match=r"j\.jsonl: a journal of an unfinished run with other settings \(1 answers\)"
    ):
        Journal.open(path, "fp-new", discard_other=False)
    assert Journal.open(path, "fp-new", discard_other=True).answers == {}
    assert Journal.open(path, "fp-new", discard_other=False).answers == {}
    path.write_text("not json\n")
    with pytest.raises(SafeEraserError, match="not a respond journal"):
        Journal.open(path, "fp", discard_other=False)


# ----- items ---------------------------------------------------------------------------------------------
def test_items_follow_the_file_with_sd_items_after_their_harmful_twin(synthetic_dir):
    records = read_benchmark(synthetic_dir / "all_train.json")[:2]
    items = build_items(records, sd_response=True, sd_question="sd_question")
    assert len(items) == 2 * 4 * 2
    assert [item.key for item in items[:3]] == ["0:0:model_response", "0:0:sd_response", "0:1:model_response"]
    first, sd = items[0], items[1]
    assert (first.image, first.question) == (records[0].image_path, records[0].unsafe_pairs[0].question)
    assert (sd.image, sd.question) == (records[0].sd_image_path, records[0].unsafe_pairs[0].sd_question)
    assert [item.field for item in build_items(records, sd_response=False)] == [MODEL_RESPONSE] * 8
    assert SD_RESPONSE not in {item.field for item in build_items(records, False)}
    assert [len(b) for b in batches(items, 5)] == [5, 5, 5, 1]
    assert len({batch_seed(233, k) for k in range(50)} | {batch_seed(234, k) for k in range(50)}) == 100


# ----- answering a file ----------------------------------------------------------------------------------
def greedy_answer(model_dir: Path, question: str, image: Path, max_new_tokens: int) -> str:
    """Greedy answer computed directly with transformers, from the llava template's text (independent of respond)."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from llamafactory_safeeraser.offline.tiny_models.llava import LLAVA_SYSTEM

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    inputs = processor(
        images=[Image.open(image).convert("RGB")],
        text=[f"{LLAVA_SYSTEM}USER: <image>\n{question} ASSISTANT:"],
        return_tensors="pt",
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def test_respond_writes_the_models_answers_into_an_otherwise_unchanged_file(tiny_model_dir, synthetic_dir, tmp_path):
    source = synthetic_dir / "all_train.json"
    settings = RespondSettings(
        model=str(tiny_model_dir), input=str(source), out=str(tmp_path / "out"), limit=2, batch_size=1, max_new_tokens=6
    )
    result = respond(settings, show_progress=False)
    output = tmp_path / "out" / "all_train.json"
    assert result.output == output and (result.generated, result.resumed) == (8, 0)
    answered = read_benchmark(output)  # the output validates: images resolve from the new folder
    original = read_benchmark(source)[:2]
    assert len(answered) == 2 and [r.image_path for r in answered] == [r.image_path for r in original]
    raw_in, raw_out = json.loads(source.read_text())[:2], json.loads(output.read_text())
    for before, after in zip(raw_in, raw_out, strict=True):
        for j, pair in enumerate(after["unsafe_pairs"]):
            assert pair["sd_response"] == before["unsafe_pairs"][j]["sd_response"]  # not asked for
            assert pair["question"] == before["unsafe_pairs"][j]["question"]
        unchanged = {k: v for k, v in after.items() if k not in ("unsafe_pairs", "image_path", "SDImage_path")}
        assert unchanged == {k: v for k, v in before.items() if k not in ("unsafe_pairs", "image_path", "SDImage_path")}
    first = original[0].unsafe_pairs[1]
    expected = greedy_answer(tiny_model_dir, first.question, original[0].image_path, 6)
    assert raw_out[0]["unsafe_pairs"][1]["model_response"] == (expected or first.model_response)
    assert raw_out[0]["unsafe_pairs"][1]["model_response"] != first.model_response  # an untrained model's words
    provenance = json.loads(provenance_path(output).read_text())
    assert provenance["answers"] == 8 and provenance["settings"]["do_sample"] is False
    assert not journal_path(output).exists()

    before = output.read_bytes()
    with pytest.raises(SafeEraserError, match=r"all_train\.json: output file exists \(pass --overwrite"):
        respond(settings, show_progress=False)
    assert output.read_bytes() == before
    with pytest.raises(SafeEraserError, match="the output would replace the input"):
        respond(RespondSettings(model=str(tiny_model_dir), input=str(source), out=str(synthetic_dir)))


def test_a_journal_left_by_an_interrupted_run_is_resumed(tiny_model_dir, synthetic_dir, tmp_path):
    """The answers a killed run journaled are kept as they are; only the missing ones are generated."""
    import hashlib

    source = synthetic_dir / "all_train.json"
    settings = RespondSettings(
        model=str(tiny_model_dir), input=str(source), out=str(tmp_path), limit=1, sd_response=True, max_new_tokens=4
    )
    output = tmp_path / "all_train.json"
    fingerprint = settings.fingerprint(hashlib.sha256(source.read_bytes()).hexdigest())
    Journal.open(journal_path(output), fingerprint, discard_other=False).append(
        {"0:2:model_response": "Journaled before the kill.", "0:3:sd_response": "   "}
    )
    result = respond(settings, show_progress=False)
    assert (result.resumed, result.generated) == (2, 6)
    pairs = json.loads(output.read_text())[0]["unsafe_pairs"]
    assert pairs[2]["model_response"] == "Journaled before the kill."
    original = read_benchmark(source)[0].unsafe_pairs[3]
    assert pairs[3]["sd_response"] == original.sd_response  # an empty answer keeps the input's text
    assert result.kept_original == ["0:3:sd_response"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"template": "no_such_template"}, r"key 'template': unknown LLaMA-Factory template 'no_such_template'"),
        # a template whose plugin reads the processor is rendered with the model's; this one is another family's
        ({"template": "qwen3_vl"}, r"key 'template': template 'qwen3_vl' \(Qwen3VLPlugin, .*\) does not fit the model"),
        ({"model": "missing/model/dir"}, r"missing/model/dir: run 'respond': model folder not found"),
        ({"adapter": "missing_adapter"}, r"missing_adapter: run 'respond': PEFT adapter folder not found"),
    ],
)
def test_bad_settings_fail_in_one_line_before_any_model_loads(tiny_model_dir, synthetic_dir, tmp_path, change, message):
    values = {"model": str(tiny_model_dir), "input": str(synthetic_dir / "all_train.json"), "out": str(tmp_path / "o")}
    with pytest.raises(SafeEraserError, match=message) as caught:
        respond(RespondSettings(**{**values, **change}), show_progress=False)
    assert "\n" not in str(caught.value) and not (tmp_path / "o").exists()  # no journal, no output
