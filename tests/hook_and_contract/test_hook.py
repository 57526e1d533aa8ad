"""The start-up hook: fires in a fresh interpreter, stays inert when off, fails loudly, never breaks Python."""

from __future__ import annotations

import sys

import pytest
from conftest import base_train_config, llamafactory_train, log_history, run_cli

from llamafactory_safeeraser import SUPPORTED_LLAMAFACTORY

PROBE = (
    "import sys; print('lf-loaded-at-start', 'llamafactory' in sys.modules); "
    "import llamafactory.train.tuner as t; from llamafactory.hparams import parser; "
    "print('wrapped', hasattr(t._training_function, '__safeeraser_original__')); "
    "print('args', [c.__name__ for c in parser._TRAIN_ARGS])"
)


def test_hook_patches_llamafactory_in_a_fresh_interpreter():
    proc = run_cli([sys.executable, "-c", PROBE])
    assert proc.returncode == 0, proc.stderr
    assert "lf-loaded-at-start False" in proc.stdout  # nothing heavy happens at start-up
    assert "wrapped True" in proc.stdout
    assert "SafeEraserFinetuningArguments" in proc.stdout


def test_hook_is_inert_when_switched_off():
    proc = run_cli([sys.executable, "-c", PROBE], SAFEERASER_DISABLE="1")
    assert proc.returncode == 0, proc.stderr
    assert "wrapped False" in proc.stdout
    assert "'FinetuningArguments'" in proc.stdout and "SafeEraser" not in proc.stdout


def test_other_programs_do_not_import_the_plugin_beyond_the_hook():
    proc = run_cli(
        [sys.executable, "-c", "import sys; print(sorted(m for m in sys.modules if m.startswith('llamafactory')))"]
    )
    assert (
        proc.stdout.strip()
        == "['llamafactory_safeeraser', 'llamafactory_safeeraser.hook', 'llamafactory_safeeraser.hook.startup']"
    )


# An upgraded LLaMA-Factory without a patch target, then the tuner import a command line triggers.
MISSING_TARGET = (
    "import sys; sys.argv = ['llamafactory-cli'] + sys.argv[1:]; "
    "import llamafactory.hparams.parser as p; del p._TRAIN_ARGS; "
    "import llamafactory.train.tuner as t; print('tuner loaded, wrapped', hasattr(t._training_function, "
    "'__safeeraser_original__'))"
)


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_missing_patch_target_leaves_other_stages_untouched(stage, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"stage: {stage}\nmodel_name_or_path: m\n")
    proc = run_cli([sys.executable, "-c", MISSING_TARGET, str(config)])
    assert proc.returncode == 0, proc.stderr
    assert "tuner loaded, wrapped False" in proc.stdout  # LLaMA-Factory as it is, no warning
    assert "safeeraser" not in proc.stderr.lower()


@pytest.mark.parametrize("how", ["yaml", "flag"])
def test_missing_patch_target_fails_for_the_unlearn_stage_with_supported_versions(how, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("stage: unlearn\nmodel_name_or_path: m\n")
    args = [str(config)] if how == "yaml" else ["--stage", "unlearn", "--model_name_or_path", "m"]
    proc = run_cli([sys.executable, "-c", MISSING_TARGET, *args])
    assert proc.returncode != 0
    assert "cannot add `stage: unlearn` to LLaMA-Factory" in proc.stderr
    assert "llamafactory.hparams.parser._TRAIN_ARGS is missing" in proc.stderr
    assert f"Supported: llamafactory{SUPPORTED_LLAMAFACTORY}" in proc.stderr and "SAFEERASER_DISABLE=1" in proc.stderr


def test_a_broken_plugin_never_breaks_python_start_up(tmp_path):
    fake = tmp_path / "llamafactory_safeeraser"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('broken install')\n")
    proc = run_cli([sys.executable, "-c", "print('python still starts')"], PYTHONPATH=str(tmp_path))
    assert proc.returncode == 0
    assert "python still starts" in proc.stdout
    assert "start-up hook skipped" in proc.stderr


def test_unlearn_stage_is_rejected_without_the_plugin(tiny_model_dir, prepared_dir, tmp_path):
    """Switched off, LLaMA-Factory is itself again (and our stage is unknown to it)."""
    config = base_train_config(tiny_model_dir, prepared_dir, stage="unlearn", dataset="safeeraser_forget")
    with pytest.raises(AssertionError, match=r"ValueError: Unknown task: unlearn\."):
        llamafactory_train(config, tmp_path, SAFEERASER_DISABLE="1")


@pytest.mark.slow
def test_sft_loss_is_identical_with_and_without_the_plugin(tiny_model_dir, prepared_dir, tmp_path):
    """Every existing stage reaches LLaMA-Factory untouched: same SFT losses, step by step."""
    config = base_train_config(
        tiny_model_dir, prepared_dir, stage="sft", dataset="safeeraser_retain", max_samples=8, max_steps=3
    )
    with_plugin = llamafactory_train(config, tmp_path, "with")
    without_plugin = llamafactory_train(config, tmp_path, "without", SAFEERASER_DISABLE="1")
    losses = [[e["loss"] for e in log_history(d) if "loss" in e] for d in (with_plugin, without_plugin)]
    assert len(losses[0]) == 3
    assert losses[0] == losses[1]
    assert "Unlearning with" not in (tmp_path / "with.log").read_text()
