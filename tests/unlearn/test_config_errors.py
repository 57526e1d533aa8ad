"""Inconsistent unlearning settings fail when the arguments are parsed, with a clear message."""

from __future__ import annotations

import pytest
from conftest import BIN, base_train_config, run_cli

from llamafactory_safeeraser.hook.stage import parse_train_args
from llamafactory_safeeraser.unlearn.workflow import check_run_arguments


def parse(tiny_model_dir, prepared_dir, tmp_path, **keys):
    config = base_train_config(
        tiny_model_dir, prepared_dir, stage="unlearn", dataset="safeeraser_forget", output_dir=str(tmp_path / "o")
    )
    config.update(keys)
    return parse_train_args(config)


CASES = {
    "method left out": (  # no silent default: the recipe names its method
        {},
        r"`stage: unlearn` needs `unlearn_method`; valid choices: ga, gd, idkdpo, kl, npo, po, rmu, simnpo\.",
    ),
    "unknown method": (
        {"unlearn_method": "erase_all"},
        r"unknown unlearn_method 'erase_all'; valid choices: ga, gd, idkdpo, kl, npo, po, rmu, simnpo",
    ),
    "pd weight without pd set": (
        {"unlearn_method": "ga", "pd_weight": 0.5},
        r"`pd_weight` is set but there is no `pd_dataset`",
    ),
    "gd without retain set": ({"unlearn_method": "gd"}, r"unlearn_method 'gd' needs `retain_dataset`"),
    "kl without retain set": ({"unlearn_method": "kl"}, r"unlearn_method 'kl' needs `retain_dataset`"),
    "retain weight for ga": (
        {"unlearn_method": "ga", "retain_weight": 1.0},
        r"`retain_weight` is not used by unlearn_method 'ga'",
    ),
    "retain set unused": (
        {"unlearn_method": "npo", "retain_dataset": "safeeraser_retain"},
        r"does not use `retain_dataset`",
    ),
    "kl weight for npo": (
        {"unlearn_method": "npo", "kl_weight": 2.0},
        r"`kl_weight` is not used by unlearn_method 'npo'",
    ),
    "refusals for ga": (
        {"unlearn_method": "ga", "refusal_file": "x.txt"},
        r"`refusal_file` is not used by unlearn_method 'ga'",
    ),
    "negative beta": ({"unlearn_method": "npo", "npo_beta": -1.0}, r"`npo_beta` must be > 0"),
    "bad guard": ({"unlearn_method": "ga", "forget_nll_guard": "maybe"}, r"maybe"),
    "simnpo key on npo": (
        {"unlearn_method": "npo", "simnpo_gamma": 0.5},
        r"`simnpo_gamma` is not used by unlearn_method 'npo'",
    ),
    "rmu without retain set": ({"unlearn_method": "rmu"}, r"unlearn_method 'rmu' needs `retain_dataset`"),
    "rmu key on ga": ({"unlearn_method": "ga", "rmu_layer": 1}, r"`rmu_layer` is not used by unlearn_method 'ga'"),
    "negative rmu alpha": (
        {"unlearn_method": "rmu", "retain_dataset": "safeeraser_retain", "rmu_alpha": -1.0},
        r"`rmu_alpha` must be >= 0",
    ),
    "idkdpo without retain set": ({"unlearn_method": "idkdpo"}, r"'idkdpo' needs `retain_dataset`"),
    "guard on a method that does not ascend": (
        {"unlearn_method": "npo", "forget_nll_guard": "clamp"},
        r"`forget_nll_guard` is not used by unlearn_method 'npo'",
    ),
    "ceiling without a guard": (
        {"unlearn_method": "ga", "forget_nll_ceiling": 3.0},
        r"`forget_nll_ceiling` is set but `forget_nll_guard` is off",
    ),
    "kl positions on gd": (
        {"unlearn_method": "gd", "retain_dataset": "safeeraser_retain", "kl_positions": "all"},
        r"`kl_positions` is not used by unlearn_method 'gd'",
    ),
    "bad kl positions": (
        {"unlearn_method": "kl", "retain_dataset": "safeeraser_retain", "kl_positions": "image"},
        r"image",
    ),
    "po reduction on idkdpo": (
        {"unlearn_method": "idkdpo", "retain_dataset": "safeeraser_retain", "po_reduction": "joint"},
        r"`po_reduction` is not used by unlearn_method 'idkdpo'",
    ),
    "refusal sampling on idkdpo": (
        {"unlearn_method": "idkdpo", "retain_dataset": "safeeraser_retain", "refusal_sampling": "per_epoch"},
        r"`refusal_sampling` is not used by unlearn_method 'idkdpo'",
    ),
    "bad retain sampling": ({"unlearn_method": "ga", "retain_sampling": "sometimes"}, r"sometimes"),
    "bad pd pairing": (
        {"unlearn_method": "ga", "pd_dataset": "safeeraser_pd", "pd_pairing": "nearest"},
        r"`pd_pairing` 'nearest' is not one of same_question, retain_draw",
    ),
    "retain draw without retain set": (
        {"unlearn_method": "ga", "pd_dataset": "safeeraser_pd", "pd_pairing": "retain_draw"},
        r"`pd_pairing: retain_draw` picks PD rows by a retain draw; it needs `retain_dataset`",
    ),
    "unlearn keys on sft": ({"stage": "sft", "pd_dataset": "safeeraser_pd"}, r"only apply to `stage: unlearn`"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_fails_at_parse_time(case, tiny_model_dir, prepared_dir, tmp_path):
    keys, message = CASES[case]
    with pytest.raises(ValueError, match=message):
        parse(tiny_model_dir, prepared_dir, tmp_path, **keys)


def test_npo_continuing_an_adapter_has_no_valid_reference(tiny_model_dir, prepared_dir, tmp_path):
    args = parse(tiny_model_dir, prepared_dir, tmp_path, unlearn_method="npo", adapter_name_or_path=str(tmp_path))
    model_args, data_args, training_args, finetuning_args, _ = args
    with pytest.raises(ValueError, match="needs a reference model"):
        check_run_arguments(model_args, data_args, training_args, finetuning_args)


@pytest.mark.parametrize("trained", [False, True])
def test_npo_may_start_from_a_fresh_adapter_not_a_trained_one(trained, tiny_model_dir, prepared_dir, tmp_path):
    """A saved adapter whose lora_B are all zero (a fresh one) is the starting model: the disabled-adapter
    reference stays valid (how the ZeRO-3 tests start every run alike); one lora_B entry off zero is not."""
    import torch
    from safetensors.torch import save_file

    prefix = "base_model.model.model.language_model.layers.0.self_attn.q_proj"
    lora_b = torch.zeros(64, 8)
    lora_b[3, 5] = 1e-3 if trained else 0.0
    save_file(
        {f"{prefix}.lora_A.weight": torch.randn(8, 64), f"{prefix}.lora_B.weight": lora_b},
        str(tmp_path / "adapter_model.safetensors"),
    )
    args = parse(tiny_model_dir, prepared_dir, tmp_path, unlearn_method="npo", adapter_name_or_path=str(tmp_path))
    model_args, data_args, training_args, finetuning_args, _ = args
    if trained:
        with pytest.raises(ValueError, match="needs a reference model"):
            check_run_arguments(model_args, data_args, training_args, finetuning_args)
    else:
        check_run_arguments(model_args, data_args, training_args, finetuning_args)


def test_valid_config_parses_with_method_defaults(tiny_model_dir, prepared_dir, tmp_path):
    *_, finetuning_args, _ = parse(
        tiny_model_dir, prepared_dir, tmp_path, unlearn_method="NPO", pd_dataset="safeeraser_pd"
    )
    assert finetuning_args.stage == "unlearn"
    assert finetuning_args.effective_pd_weight == 1.0


def test_cli_reports_unknown_method_and_exits_non_zero(tiny_model_dir, prepared_dir, tmp_path):
    import yaml

    config = base_train_config(
        tiny_model_dir,
        prepared_dir,
        stage="unlearn",
        dataset="safeeraser_forget",
        unlearn_method="erase_all",
        output_dir=str(tmp_path / "o"),
    )
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = run_cli([str(BIN / "llamafactory-cli"), "train", str(tmp_path / "bad.yaml")])
    assert proc.returncode != 0
    assert "unknown unlearn_method 'erase_all'; valid choices: ga, gd, idkdpo, kl, npo, po, rmu, simnpo" in proc.stderr
    assert not (tmp_path / "o").exists()
