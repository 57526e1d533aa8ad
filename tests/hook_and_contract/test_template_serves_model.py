"""A template or model the plugin cannot serve fails before any model loads, in one line naming it and what is
missing: one check (``integration.template_match.check_template_serves_model``) that the `unlearn` stage (when
``llamafactory-cli train`` parses), ``safeeraser eval`` and ``safeeraser respond`` all run, exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import BIN, base_train_config, run_cli

import yaml
from llamafactory_safeeraser.cli import main
from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.integration.template_match import check_template_serves_model
from llamafactory_safeeraser.integration.template_text import PluginNeedsProcessor, image_placeholder_text


def without_image_token(model: Path, out: Path) -> Path:
    shutil.copytree(model, out)
    config = json.loads((out / "config.json").read_text())
    config.pop("image_token_index")
    (out / "config.json").write_text(json.dumps(config))
    return out


def with_foreign_image_token_id(model: Path, out: Path) -> Path:
    shutil.copytree(model, out)
    config = json.loads((out / "config.json").read_text())
    config["image_token_index"] = 100_000
    (out / "config.json").write_text(json.dumps(config))
    return out


def without_processor(model: Path, out: Path) -> Path:
    shutil.copytree(model, out)
    (out / "processor_config.json").unlink()  # the tokenizer stays; no image processor loads
    return out


# case -> (template, family of the tiny model, how its folder is broken, the line's text)
CASES = {
    "unknown template": ("no_such_template", "llava", None, "unknown LLaMA-Factory template 'no_such_template'"),
    "text-only template": ("llama3", "llava", None, "template 'llama3': text only (its multimodal plugin has no"),
    "no image token in the config": (
        "llava",
        "llava",
        without_image_token,
        "config.json declares no image token (image_token_id or image_token_index)",
    ),
    "image token id not in the tokenizer": (
        "llava",
        "llava",
        with_foreign_image_token_id,
        "config.json's image token id 100000 is not a token of its tokenizer",
    ),
    "no processor for a plugin that reads it": (
        "gemma3",
        "gemma3",
        without_processor,
        "template 'gemma3' needs the model's processor, which does not load (OSError:",
    ),
}


@pytest.fixture(scope="module")
def broken(family_model_dir, tmp_path_factory):
    """case -> (template, model folder)."""
    root = tmp_path_factory.mktemp("broken")
    made = {}
    for case, (template, family, breaks, _) in CASES.items():
        model = family_model_dir(family)
        made[case] = (template, breaks(model, root / case.replace(" ", "_")) if breaks else model)
    return made


@pytest.mark.parametrize("case", list(CASES))
def test_each_missing_piece_is_one_line_naming_it(case, broken):
    template, model = broken[case]
    with pytest.raises(SafeEraserError) as caught:
        check_template_serves_model(template, model)
    message = str(caught.value)
    assert "\n" not in message and CASES[case][3] in message
    assert str(model) in message or template in message


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "mllama", "gemma3"])
def test_every_tiny_family_is_served_by_its_template(family, family_model_dir):
    check_template_serves_model(family, family_model_dir(family))  # no error
    check_template_serves_model(family, "org/hub-model")  # a hub id: the template only


def test_a_processor_lacking_what_the_plugin_reads_is_named():
    processor = SimpleNamespace(boi_token="<start_of_image>", image_processor=object())  # no full_image_sequence
    with pytest.raises(PluginNeedsProcessor) as caught:
        image_placeholder_text("gemma3", "<image>\nQ?", processor)
    assert "template 'gemma3': its multimodal plugin needs more than SimpleNamespace has" in str(caught.value)
    assert "full_image_sequence" in str(caught.value)


@pytest.mark.parametrize("case", list(CASES))
def test_eval_and_respond_exit_2_before_any_model_loads(case, broken, synthetic_dir, tmp_path, capsys):
    template, model = broken[case]
    source = synthetic_dir / "all_train.json"
    argv = ["respond", "--model", str(model), "--in", str(source), "--out", str(tmp_path / "r"), "--limit", "1"]
    assert main([*argv, "--template", template]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and CASES[case][3] in err and "key 'template'" in err
    assert not (tmp_path / "r").exists()
    overrides = [f"model_name_or_path={model}", f"data_dir={synthetic_dir}", f"output_dir={tmp_path / 'e'}"]
    assert main(["eval", *overrides, f"template={template}", "limit=1", "device=cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and CASES[case][3] in err
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("case", list(CASES))
def test_llamafactory_cli_train_exits_2_when_it_parses(case, broken, prepared_dir, tmp_path):
    template, model = broken[case]
    config = base_train_config(
        model, prepared_dir, stage="unlearn", unlearn_method="ga", dataset="safeeraser_forget", template=template
    )
    config["output_dir"] = str(tmp_path / "o")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = run_cli([str(BIN / "llamafactory-cli"), "train", str(tmp_path / "bad.yaml")])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("llamafactory-cli train: error: ")]
    assert len(errors) == 1 and CASES[case][3] in errors[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
