"""A template of another model family is refused before anything runs, in one line naming both: the template's
LLaMA-Factory image plugin and the model's config/processor (today: a crash mid-training, or prompts in the
wrong chat format and exit 0 in eval and respond)."""

from __future__ import annotations

import pytest
from conftest import BIN, base_train_config, run_cli

import yaml
from llamafactory_safeeraser.cli import main
from llamafactory_safeeraser.errors import SafeEraserError
from llamafactory_safeeraser.integration.template_match import check_template_fits_model

FAMILIES = ("llava", "qwen2_vl", "mllama")  # each tiny family trains with the template of its name
PLUGINS = {"llava": "LlavaPlugin", "qwen2_vl": "Qwen2VLPlugin", "mllama": "MllamaPlugin"}


@pytest.mark.parametrize("model_family", FAMILIES)
def test_each_family_fits_its_own_template_only(model_family, family_model_dir):
    model = family_model_dir(model_family)
    check_template_fits_model(model_family, model)  # no error
    for template in FAMILIES:
        if template == model_family:
            continue
        with pytest.raises(SafeEraserError) as info:
            check_template_fits_model(template, model)
        message = str(info.value)
        assert f"template '{template}' ({PLUGINS[template]}" in message
        assert f"model_type '{model_family}'" in message and str(model) in message
        assert f"template '{model_family}' fits it" in message


def test_respond_and_eval_refuse_a_mismatched_template(tiny_model_dir, synthetic_dir, tmp_path, capsys):
    source = synthetic_dir / "all_train.json"
    argv = ["respond", "--model", str(tiny_model_dir), "--in", str(source), "--out", str(tmp_path / "r")]
    assert main([*argv, "--template", "qwen2_vl", "--limit", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Qwen2VLPlugin" in err and "model_type 'llava'" in err
    assert not (tmp_path / "r").exists()
    overrides = [f"model_name_or_path={tiny_model_dir}", f"data_dir={synthetic_dir}", f"output_dir={tmp_path / 'e'}"]
    assert main(["eval", *overrides, "template=mllama", "limit=1", "device=cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MllamaPlugin" in err and "model_type 'llava'" in err
    assert not (tmp_path / "e").exists()


CLI_CASES = {
    "unknown method": ({"unlearn_method": "erase_all"}, "unknown unlearn_method 'erase_all'"),
    "prompt longer than cutoff_len": ({"unlearn_method": "ga", "cutoff_len": 8}, "raise cutoff_len"),
    "template of another family": ({"unlearn_method": "ga", "template": "mllama"}, "MllamaPlugin"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_train_configuration_errors_are_one_line_and_exit_2(case, tiny_model_dir, prepared_dir, tmp_path):
    keys, message = CLI_CASES[case]
    config = base_train_config(
        tiny_model_dir, prepared_dir, stage="unlearn", dataset="safeeraser_forget", output_dir=str(tmp_path / "o")
    )
    config.update(keys)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = run_cli([str(BIN / "llamafactory-cli"), "train", str(tmp_path / "bad.yaml")])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("llamafactory-cli train: error: ")]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    if case == "unknown method":  # the debug switch shows where it came from
        debug = run_cli([str(BIN / "llamafactory-cli"), "train", str(tmp_path / "bad.yaml")], SAFEERASER_DEBUG="1")
        assert debug.returncode != 0 and "Traceback" in debug.stderr
