"""Synthetic benchmark, reader/validator, converter: contents, determinism and every bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import BIN, run_cli
from PIL import Image

from llamafactory_safeeraser.data.prepare import prepare_datasets
from llamafactory_safeeraser.data.records import CATEGORIES, read_benchmark
from llamafactory_safeeraser.errors import DataError
from llamafactory_safeeraser.fileio import atomic_directory
from llamafactory_safeeraser.offline.synthetic import write_synthetic_benchmark


def test_synthetic_benchmark_passes_validator_and_covers_every_category(synthetic_dir):
    train = read_benchmark(synthetic_dir / "all_train.json")
    val = read_benchmark(synthetic_dir / "all_val.json")
    for records in (train, val):
        assert {r.category for r in records} == set(CATEGORIES)
        for r in records:
            assert len(r.unsafe_pairs) == 4 and len(r.retain_pairs) == 4
            assert r.image_path.parent.name == r.category and r.sd_image_path.is_file()
    # generality: the validation concepts are never seen in the train file
    assert not {r.keyword for r in train} & {r.keyword for r in val}


def test_harmful_and_sd_images_are_easy_to_tell_apart(synthetic_dir):
    """Learnability: a single feature (mean brightness) already separates the two kinds."""
    records = read_benchmark(synthetic_dir / "all_train.json") + read_benchmark(synthetic_dir / "all_val.json")
    harmful = [np.asarray(Image.open(r.image_path)).mean() for r in records]
    benign = [np.asarray(Image.open(r.sd_image_path)).mean() for r in records]
    assert max(harmful) < min(benign)
    # the answer depends on the image: the same question gets a harmful or a normal answer
    for r in records:
        for pair in r.unsafe_pairs:
            assert pair.question_for_sd_image() == pair.question and pair.model_response != pair.sd_response


def test_synthetic_benchmark_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_synthetic_benchmark(a, images_per_concept=1, seed=5)
    write_synthetic_benchmark(b, images_per_concept=1, seed=5)
    for name in ("all_train.json", "all_val.json", "img/Weapon/0.png", "sd_img/Sex/1.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    write_synthetic_benchmark(tmp_path / "c", images_per_concept=1, seed=6)
    assert (a / "img/Weapon/0.png").read_bytes() != (tmp_path / "c/img/Weapon/0.png").read_bytes()


def test_reader_accepts_json_lines_and_resolves_paths_against_the_file(synthetic_dir, tmp_path):
    records = json.loads((synthetic_dir / "all_train.json").read_text())
    jsonl = synthetic_dir / "copy.jsonl"  # same folder: relative image paths still resolve
    jsonl.write_text("\n".join(json.dumps(r) for r in records[:3]) + "\n")
    try:
        parsed = read_benchmark(jsonl)
    finally:
        jsonl.unlink()
    assert [p.image_path for p in parsed] == [(synthetic_dir / r["image_path"]).resolve() for r in records[:3]]


def test_category_field_wins_over_folder_name(synthetic_dir, tmp_path):
    record = json.loads((synthetic_dir / "all_train.json").read_text())[0]
    record["category"] = "privacy"  # case-insensitive, normalised
    path = synthetic_dir / "one.json"
    path.write_text(json.dumps([record]))
    try:
        assert read_benchmark(path)[0].category == "Privacy"
    finally:
        path.unlink()


def test_prepare_writes_paired_sets(prepared_dir, synthetic_dir):
    info = json.loads((prepared_dir / "dataset_info.json").read_text())
    assert set(info) == {"safeeraser_forget", "safeeraser_forget_refusal", "safeeraser_pd", "safeeraser_retain"}
    rows = {name: json.loads((prepared_dir / entry["file_name"]).read_text()) for name, entry in info.items()}
    records = read_benchmark(synthetic_dir / "all_train.json")
    assert len(rows["safeeraser_forget"]) == sum(len(r.unsafe_pairs) for r in records)
    for forget, pd_row, refusal in zip(
        rows["safeeraser_forget"], rows["safeeraser_pd"], rows["safeeraser_forget_refusal"], strict=True
    ):
        assert forget["instruction"] == pd_row["instruction"] == refusal["instruction"]  # same question
        assert forget["images"] != pd_row["images"]  # harmful image vs benign SD image
        assert "/sd_img/" in pd_row["images"][0]
        assert refusal["images"] == forget["images"] and refusal["output"] != forget["output"]
    assert len(rows["safeeraser_retain"]) == 4 * len(records)


def test_pd_rows_ask_the_harmful_question_unless_sd_question_is_chosen(synthetic_dir, tmp_path):
    records = read_benchmark(synthetic_dir / "all_train.json")
    pairs = [pair for record in records for pair in record.unsafe_pairs]
    assert all(pair.sd_question and pair.sd_question != pair.question for pair in pairs)  # the data has both
    chosen = prepare_datasets(synthetic_dir / "all_train.json", tmp_path / "sd", pd_question="sd_question")
    pd_rows = json.loads((chosen.out_dir / "pd.json").read_text())
    assert [row["instruction"] for row in pd_rows] == [f"<image>\n{pair.sd_question}" for pair in pairs]


def test_prepare_capitalize_lower_cases_all_but_the_first_letter(synthetic_dir, tmp_path):
    plain = json.loads(
        (prepare_datasets(synthetic_dir / "all_train.json", tmp_path / "a").out_dir / "forget.json").read_text()
    )
    cased = prepare_datasets(synthetic_dir / "all_train.json", tmp_path / "b", capitalize=True)
    rows = json.loads((cased.out_dir / "forget.json").read_text())
    for before, after in zip(plain, rows, strict=True):
        question = before["instruction"].removeprefix("<image>\n")
        assert after["instruction"] == "<image>\n" + question[0].upper() + question[1:].lower()
        assert after["output"] == before["output"][0].upper() + before["output"][1:].lower()
    assert any(before != after for before, after in zip(plain, rows, strict=True))


def test_prepared_datasets_load_through_llamafactory_get_dataset(prepared_dir, tiny_model_dir, tmp_path):
    """LLaMA-Factory's own pipeline reads our files: template, image-token expansion, label masking."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.model import load_tokenizer

    from llamafactory_safeeraser.hook.stage import parse_train_args

    for name in ("safeeraser_forget", "safeeraser_pd", "safeeraser_retain", "safeeraser_forget_refusal"):
        model_args, data_args, training_args, _, _ = parse_train_args(
            {
                "model_name_or_path": str(tiny_model_dir),
                "stage": "sft",
                "do_train": True,
                "dataset": name,
                "dataset_dir": str(prepared_dir),
                "template": "llava",
                "output_dir": str(tmp_path / name),
                "overwrite_cache": True,
                "report_to": "none",
            }
        )
        tokenizer_module = load_tokenizer(model_args)
        template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
        dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)[
            "train_dataset"
        ]
        source = json.loads((prepared_dir / f"{name.removeprefix('safeeraser_')}.json").read_text())
        assert len(dataset) == len(source)  # no row silently dropped
        tokenizer = tokenizer_module["tokenizer"]
        first = dataset[0]
        image_id = tokenizer.convert_tokens_to_ids("<image>")
        assert first["input_ids"].count(image_id) == 16  # (32 px / 8 px patches)^2
        answer = tokenizer.decode([t for t in first["labels"] if t >= 0], skip_special_tokens=True)
        assert answer == source[0]["output"]
        # the row's image is the file's: for PD the benign SD image
        assert first["images"] == source[0]["images"]
        assert ("/sd_img/" in first["images"][0]) == (name == "safeeraser_pd")


# ----- bad input: one line naming file, record and field; exit code 2; no output folder -------
def _records(synthetic_dir: Path) -> list[dict]:
    return json.loads((synthetic_dir / "all_train.json").read_text())


def _write(path: Path, records) -> Path:
    path.write_text(json.dumps(records))
    return path


BAD_INPUTS = {
    "missing_file": (lambda d, recs: d / "nope.json", r"nope\.json: file not found"),
    "invalid_json": (
        lambda d, recs: _write_text(d / "bad.json", json.dumps(recs[:2])[:-1] + ', {"image_path": }]'),
        r"bad\.json: record 2: invalid JSON",
    ),
    "invalid_json_lines": (
        lambda d, recs: _write_text(d / "bad.jsonl", json.dumps(recs[0]) + "\n{oops\n"),
        r"bad\.jsonl: record 1: invalid JSON on line 2",
    ),
    "missing_field": (
        lambda d, recs: _write(d / "bad.json", _edit(recs, 1, lambda r: r.pop("SDImage_path"))),
        r"record 1: field 'SDImage_path': missing",
    ),
    "missing_nested_field": (
        lambda d, recs: _write(d / "bad.json", _edit(recs, 2, lambda r: r["unsafe_pairs"][1].pop("sd_response"))),
        r"record 2: field 'unsafe_pairs\[1\]\.sd_response': missing",
    ),
    "wrong_type": (
        lambda d, recs: _write(d / "bad.json", _edit(recs, 0, lambda r: r["unsafe_pairs"][0].update(question=7))),
        r"record 0: field 'unsafe_pairs\[0\]\.question': expected a string, got int",
    ),
    "wrong_type_list": (
        lambda d, recs: _write(d / "bad.json", _edit(recs, 3, lambda r: r.update(unsafe_pairs="What?"))),
        r"record 3: field 'unsafe_pairs': expected a list, got string",
    ),
    "empty_unsafe_pairs": (
        lambda d, recs: _write(d / "bad.json", _edit(recs, 4, lambda r: r.update(unsafe_pairs=[]))),
        r"record 4: field 'unsafe_pairs': empty list",
    ),
    "missing_image": (
        lambda d, recs: _write(d / "bad.json", _edit(recs, 1, lambda r: r.update(image_path="img/Weapon/999.png"))),
        r"record 1: field 'image_path': image file not found",
    ),
    "unreadable_image": (
        lambda d, recs: _write(d / "bad.json", _edit(recs, 2, lambda r: r.update(SDImage_path=_broken_png(d)))),
        r"record 2: field 'SDImage_path': unreadable image",
    ),
    "unknown_category": (
        lambda d, recs: _write(
            d / "bad.json", _edit(recs, 5, lambda r: (r.pop("category"), r.update(image_path=_image_in(d, "Cooking"))))
        ),
        r"record 5: field 'image_path': unknown category 'Cooking'",
    ),
    "duplicate_record": (
        lambda d, recs: _write(d / "bad.json", [*recs[:3], recs[1]]),
        r"record 3: field 'image_path': duplicate record: same image as record 1",
    ),
    "non_utf8": (
        lambda d, recs: _write_bytes(
            d / "bad.json", json.dumps(recs[:2]).replace("How do I build", "How do I b\udcffuild", 1)
        ),
        r"record 0: field 'unsafe_pairs\[0\]\.question': text is not valid UTF-8",
    ),
}


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_bytes(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    return path


def _edit(records: list[dict], index: int, change) -> list[dict]:
    records = json.loads(json.dumps(records))
    change(records[index])
    return records


def _broken_png(folder: Path) -> str:
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return "broken.png"


def _image_in(folder: Path, category: str) -> str:
    (folder / "img" / category).mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "img/Violence/0.png", folder / "img" / category / "0.png")
    return f"img/{category}/0.png"


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_clear_line_and_no_output(case, synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    make_file, pattern = BAD_INPUTS[case]
    bad_file = make_file(data, _records(data))
    out = tmp_path / "out"
    proc = run_cli([str(BIN / "safeeraser"), "prepare", "--train", str(bad_file), "--out", str(out)])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("safeeraser: error: ")
    assert bad_file.name in lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_errors_are_raised_as_data_errors_in_python(synthetic_dir, tmp_path):
    path = _write(tmp_path / "x.json", _edit(_records(synthetic_dir), 0, lambda r: r.update(UnharmPair_text1="x")))
    with pytest.raises(DataError) as info:
        read_benchmark(path, check_images=False)
    assert (info.value.record, info.value.field) == (0, "UnharmPair_text1")


def test_atomic_directory_leaves_nothing_behind_on_failure(tmp_path):
    final = tmp_path / "result"
    with pytest.raises(RuntimeError), atomic_directory(final) as scratch:
        (scratch / "half.json").write_text("{")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(final) as scratch:
        (scratch / "done.json").write_text("{}")
    assert (final / "done.json").exists() and len(list(tmp_path.iterdir())) == 1


def test_prepare_refuses_to_overwrite_without_flag(synthetic_dir, tmp_path):
    out = tmp_path / "prepared"
    prepare_datasets(synthetic_dir / "all_train.json", out)
    proc = run_cli(
        [str(BIN / "safeeraser"), "prepare", "--train", str(synthetic_dir / "all_train.json"), "--out", str(out)]
    )
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("safeeraser: error: ")  # one line
    assert json.loads((out / "forget.json").read_text())  # the first output is intact


def test_validate_reports_every_problem_of_every_file(synthetic_dir, tmp_path):
    records = json.loads((synthetic_dir / "all_train.json").read_text())
    for record in records:
        record["image_path"] = str(synthetic_dir / record["image_path"])
        record["SDImage_path"] = str(synthetic_dir / record["SDImage_path"])
    first = [dict(r) for r in records[:4]]
    first[1]["category"] = "Nope"
    first[3]["unsafe_pairs"] = []
    (tmp_path / "a.json").write_text(json.dumps(first))
    (tmp_path / "b.json").write_text(json.dumps({"data": records[:2]}))  # an object, not a list
    (tmp_path / "c.json").write_text(json.dumps(records[:3]))  # fine
    proc = run_cli([str(BIN / "safeeraser"), "validate", *(str(tmp_path / n) for n in ("a.json", "b.json", "c.json"))])
    assert proc.returncode == 2
    errors = proc.stderr.splitlines()
    assert len(errors) == 4, proc.stderr  # two records of a.json, b.json, and the count
    assert "a.json: record 1: field 'category'" in errors[0] and "a.json: record 3: field 'unsafe_pairs'" in errors[1]
    assert "b.json: expected a JSON list of records" in errors[2] and "its key 'data' holds a list" in errors[2]
    assert errors[3] == "safeeraser: error: 3 problem(s) in 3 file(s)"
    assert (
        proc.stdout.strip()
        == f"{tmp_path / 'c.json'}: 3 records, {sum(len(r['unsafe_pairs']) for r in records[:3])} harmful questions: OK"
    )
