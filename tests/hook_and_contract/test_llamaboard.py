"""LlamaBoard: the `Unlearning` stage's box built from the methods' declared keys, the YAML keys its values
become, the checks before a run, the loss-term curve, and a UI left as it is when off or upgraded away.

The browser run (pick, fill, preview, start, read the curve) is tests/e2e/test_llamaboard_browser.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, run_cli, subprocess_env

from llamafactory_safeeraser.hook.board import board_stage
from llamafactory_safeeraser.integration.llamaboard import (
    _build_config_dict_with,
    _loss_plot_with_terms,
    loss_terms_figure,
)
from llamafactory_safeeraser.settings import Setting
from llamafactory_safeeraser.unlearn.registry import all_methods

BUILT_IN = ["ga", "gd", "idkdpo", "kl", "npo", "po", "rmu", "simnpo"]


class ToyMethod:  # what a plugin's trainer class shows the board: its name and declared keys
    method_name = "toy"
    params = (
        Setting("toy_alpha", float, 0.5, "toy: a weight", minimum=0),
        Setting("toy_mode", str, "fast", "toy: a mode", choices=("fast", "slow")),
    )


@pytest.fixture(scope="module")
def spec():
    return board_stage()


def test_the_box_holds_every_method_and_its_declared_keys_plugins_included():
    spec = board_stage([*all_methods(), ToyMethod])
    assert spec.label == "Unlearning" and spec.stage == "unlearn"
    assert list(spec.selector.choices) == [*BUILT_IN, "toy"] and spec.selector.default == "ga"
    fields = {f.name: f for f in spec.fields}
    assert [name for name, f in fields.items() if not f.per_choice] == ["retain_dataset", "pd_dataset", "pd_weight"]
    assert fields["retain_dataset"].dataset and fields["pd_dataset"].dataset and not fields["pd_weight"].dataset
    assert fields["toy_mode"].choices == ("fast", "slow") and fields["toy_alpha"].choices == ()
    assert fields["kl_positions"].choices == ("all", "answer")
    assert "Read by (default): npo 0.1" in fields["npo_beta"].info  # the `-h` help of the key
    # which keys show, and their defaults, follow the chosen method ("" = computed by the method)
    assert spec.fields_for("toy") == {"toy_alpha": "0.5", "toy_mode": "fast"}
    assert spec.fields_for("npo") == {"npo_beta": "0.1", "retain_weight": "0.0"}
    assert spec.fields_for("ga") == {"forget_nll_guard": "off", "forget_nll_ceiling": ""}
    assert spec.fields_for("gone") == {}


def test_field_values_become_the_yaml_keys(spec):
    values = {
        "unlearn_method": "npo",
        "retain_dataset": ["safeeraser_retain", "more_retain"],
        "pd_dataset": ["safeeraser_pd"],
        "pd_weight": " 0.5 ",
        "npo_beta": "0.2",
        "retain_weight": "",  # left empty: the method's default applies, the key stays out
        "kl_weight": "3.0",  # another method's key, hidden: not passed
    }
    assert spec.to_args(values) == {
        "unlearn_method": "npo",
        "retain_dataset": "safeeraser_retain,more_retain",
        "pd_dataset": "safeeraser_pd",
        "pd_weight": 0.5,
        "npo_beta": 0.2,
    }
    rmu = spec.to_args({"unlearn_method": "rmu", "retain_dataset": "typed_name", "rmu_layer": "3", "rmu_alpha": "1"})
    assert rmu == {"unlearn_method": "rmu", "retain_dataset": "typed_name", "rmu_layer": 3, "rmu_alpha": 1.0}
    assert isinstance(rmu["rmu_layer"], int)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"unlearn_method": "npo", "npo_beta": "abc"}, "`npo_beta` 'abc' is not a number."),
        ({"unlearn_method": "rmu", "rmu_layer": "1.5"}, "`rmu_layer` '1.5' is not an integer."),
        ({"unlearn_method": "npo", "pd_weight": "heavy"}, "`pd_weight` 'heavy' is not a number."),
        ({"unlearn_method": "sgd"}, "unknown unlearn_method 'sgd'; valid choices: ga, gd, idkdpo, kl, npo, po, rmu"),
    ],
)
def test_unreadable_values_are_named(spec, values, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        spec.to_args(values)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"unlearn_method": "gd"}, "unlearn_method 'gd' needs `retain_dataset`."),
        ({"unlearn_method": "ga", "npo_beta": 0.1}, "`npo_beta` is not used by unlearn_method 'ga'."),  # extra args
        ({"unlearn_method": "npo", "pd_weight": 1.0}, "`pd_weight` is set but there is no `pd_dataset`"),
        ({"unlearn_method": "npo", "npo_beta": 0.0}, "`npo_beta` must be > 0."),
        ({"unlearn_method": "npo", "retain_dataset": "r"}, "unlearn_method 'npo' does not use `retain_dataset`"),
        ({"unlearn_method": "kl", "retain_dataset": "r", "retain_sampling": "often"}, "`retain_sampling` 'often'"),
    ],
)
def test_the_run_arguments_get_the_checks_of_llamafactory_cli_train(spec, args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        spec.check({"stage": "unlearn", **args})


def test_consistent_run_arguments_pass_the_checks(spec):
    spec.check({"stage": "unlearn", "unlearn_method": "npo", "pd_dataset": "p", "npo_beta": 0.2, "retain_weight": 0.0})
    spec.check({"stage": "unlearn", "unlearn_method": "gd", "retain_dataset": "r", "eos_target": True})


@pytest.mark.parametrize(("stage", "kept"), [("Unlearning", True), ("Supervised Fine-Tuning", False)])
def test_saved_arguments_carry_the_box_only_for_its_stage(spec, stage, kept):
    stages = {"Supervised Fine-Tuning": "sft", "Unlearning": "unlearn"}
    saved = {"train.training_stage": stage, "train.dataset": ["f"], "unlearn.npo_beta": "0.2"}
    build_config_dict = _build_config_dict_with(spec, stages)(lambda runner, data: dict(saved))
    expected = saved if kept else {key: value for key, value in saved.items() if not key.startswith("unlearn.")}
    assert build_config_dict(None, {}) == expected


TRAINER_LOG = [  # trainer_log.jsonl lines as LossTermsLogCallback writes them
    {"current_steps": 1, "loss": 9.0, "loss_terms": {"forget_nll": 6.0, "pd_nll": 3.0}},
    {"current_steps": 2, "loss": 8.0, "loss_terms": {"forget_nll": 5.5, "pd_nll": 2.5, "guard_held_back": 1.0}},
    {"current_steps": 3, "loss": 7.0, "loss_terms": {"forget_nll": 5.0, "pd_nll": 2.0}},
    {"current_steps": 3, "percentage": 100.0},  # the closing line: no loss
]


def test_the_curve_draws_the_loss_and_each_term_by_step():
    figure = loss_terms_figure(TRAINER_LOG)
    axes = figure.axes[0]
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.get_lines()}
    assert lines == {
        "loss": ([1, 2, 3], [9.0, 8.0, 7.0]),
        "forget_nll": ([1, 2, 3], [6.0, 5.5, 5.0]),
        "pd_nll": ([1, 2, 3], [3.0, 2.5, 2.0]),
        "guard_held_back": ([2], [1.0]),
    }
    assert [text.get_text() for text in figure.legends[0].get_texts()] == list(lines)


def test_other_stages_keep_llamaboards_own_curve():
    drawn = []
    plot = _loss_plot_with_terms(lambda log: drawn.append(log) or "llamaboard's figure")
    plain = [{key: value for key, value in line.items() if key != "loss_terms"} for line in TRAINER_LOG]
    assert plot(plain) == "llamaboard's figure" and drawn == [plain]
    assert len(plot(TRAINER_LOG).legends[0].get_texts()) == 4 and len(drawn) == 1


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The example plugin (examples/custom_method: `wga`, key `wga_alpha`) installed into its own folder."""
    site, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src") / "custom_method"
    shutil.copytree(REPO / "examples/custom_method", source)
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target"]
    subprocess.run([*install, str(site), str(source)], check=True, env=subprocess_env(), capture_output=True)
    return site


def is_stage_dropdown(component: dict) -> bool:  # labels come from the browser's language; choices do not
    return "Supervised Fine-Tuning" in component["choices"]


def test_llamaboard_gets_the_stage_only_when_on_and_every_target_is_there(plugin_site, tmp_path):
    python_path = os.pathsep.join(filter(None, [str(plugin_site), os.environ.get("PYTHONPATH")]))
    proc = run_cli(
        [sys.executable, str(REPO / "tests/hook_and_contract/board_probe.py")],
        cwd=tmp_path,  # LlamaBoard writes llamaboard_cache/ where it runs
        SAFEERASER_DISABLE="1",
        PYTHONPATH=python_path,
        GRADIO_ANALYTICS_ENABLED="False",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.split("PROBE ", 1)[1])
    plain_stages = ["Supervised Fine-Tuning", "Reward Modeling", "PPO", "DPO", "KTO", "Pre-Training"]

    # switched off: the import is not patched, LLaMA-Factory's own UI
    assert report["patched_at_import"] is False
    plain = report["plain"]
    assert not [c for c in plain if (c["elem_id"] or "").startswith("unlearn")]
    assert next(filter(is_stage_dropdown, plain))["choices"] == plain_stages

    # a patch target missing (an upgrade): nothing changes, and the log says why
    assert report["stages_with_a_target_missing"] == plain_stages
    assert report["missing_target_ui"] == plain
    assert "LlamaBoard shows no `Unlearning` stage: llamafactory.webui.control.gen_loss_plot is missing" in proc.stdout

    # installed: the stage, and a hidden box right below the stage's row; the rest of the UI as it was
    assert report["stages"] == [*plain_stages, "Unlearning"]
    ui = report["plugin"]
    start = next(i for i, c in enumerate(ui) if c["elem_id"] == "unlearn_box")
    end = next(i for i in range(start + 1, len(ui)) if ui[i]["depth"] <= ui[start]["depth"])
    box, rest = ui[start:end], ui[:start] + ui[end:]
    stage_dropdown = next(filter(is_stage_dropdown, rest))
    assert stage_dropdown["choices"] == [*plain_stages, "Unlearning"]
    stage_dropdown["choices"] = plain_stages
    assert rest == plain
    row_above = max(i for i in range(start) if ui[i]["depth"] == ui[start]["depth"])
    assert any(map(is_stage_dropdown, ui[row_above:start]))
    assert box[0]["type"] == "accordion" and box[0]["visible"] is False

    fields = {c["elem_id"]: c for c in box if c["elem_id"]}
    assert fields["unlearn_unlearn_method"]["choices"] == [*BUILT_IN, "wga"]  # the plugin's method
    assert "unlearn_wga_alpha" in fields and fields["unlearn_wga_alpha"]["visible"] is False  # shown with `wga`
    assert fields["unlearn_forget_nll_guard"]["visible"] is True  # `ga`, the default, reads it
    assert fields["unlearn_npo_beta"]["visible"] is False
