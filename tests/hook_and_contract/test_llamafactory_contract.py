"""The LLaMA-Factory contract (``integration/contract.py``): every internal the plugin uses is in the table, the
installed LLaMA-Factory matches the table's signatures, the stage's callbacks are those LLaMA-Factory's own
training function builds, and LLaMA-Factory's field names are read only in ``integration/``.

Run it against another LLaMA-Factory (its main branch) by putting that source first on PYTHONPATH."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import pytest
from conftest import REPO

from llamafactory_safeeraser.integration import contract
from llamafactory_safeeraser.integration import llamafactory as lf

PACKAGE = REPO / "llamafactory_safeeraser"
# the private symbols the plugin uses; each must be a row of the table
PRIVATE = {
    "llamafactory.data.loader._get_merged_dataset",
    "llamafactory.hparams.parser._TRAIN_ARGS",
    "llamafactory.hparams.parser._INFER_ARGS",
    "llamafactory.hparams.parser._EVAL_ARGS",
    "llamafactory.hparams.parser._TRAIN_MCA_ARGS",
    "llamafactory.train.tuner._training_function",
    "llamafactory.train.callbacks.LogCallback._write_log",
    "llamafactory.data.template.Template._convert_elements_to_ids",
    "llamafactory.data.template.Template._encode",
    "llamafactory.data.mm_plugin.BasePlugin._preprocess_image",
    "llamafactory.webui.runner.Runner._initialize",
    "llamafactory.webui.runner.Runner._parse_train_args",
    "llamafactory.webui.runner.Runner._build_config_dict",
}


def test_the_installed_llamafactory_matches_the_table():
    assert contract.problems() == []


def test_every_private_symbol_the_package_uses_is_in_the_table():
    symbols = {row.symbol for row in contract.INTERNALS}
    assert symbols >= PRIVATE
    assert len(symbols) == len(contract.INTERNALS)  # one row each
    # every private name the integration code reads is some row's last part
    used = set()
    for path in (PACKAGE / "integration").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llamafactory"):
                used |= {alias.name for alias in node.names if alias.name.startswith("_")}
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                used.add(node.attr)
    ours = {"_wrapped", "_terms_by_step", "_encode_prompt_answer", "_ORIGINAL_FLAG", "_PATCHED_FLAG"}
    in_table = {part for row in contract.INTERNALS for part in row.symbol.split(".")}
    assert used - ours <= in_table, sorted(used - ours - in_table)


def test_a_changed_signature_or_a_missing_symbol_is_one_line_naming_it(monkeypatch):
    from llamafactory.data import template
    from llamafactory.train import callbacks

    monkeypatch.setattr(callbacks.LogCallback, "_write_log", lambda self, logs: None)
    monkeypatch.delattr(template.Template, "_convert_elements_to_ids")
    assert contract.problems() == [
        "llamafactory.train.callbacks.LogCallback._write_log is (self, logs), expected (self, output_dir, logs)",
        "llamafactory.data.template.Template._convert_elements_to_ids is missing",
    ]
    assert contract.problems(["board"]) == []


def test_the_stage_install_checks_its_rows_of_the_table(monkeypatch):
    from llamafactory.data import loader

    tuner = lf.import_tuner()
    monkeypatch.setattr(loader, "_get_merged_dataset", lambda dataset_names, model_args, data_args: None)
    with pytest.raises(lf.UnsupportedLlamaFactory) as caught:
        lf.install_stage(tuner, "unlearn", object, lambda config: None)
    assert "llamafactory.data.loader._get_merged_dataset is (dataset_names, model_args, data_args), expected" in str(
        caught.value
    )


def test_a_parameter_list_is_written_as_the_table_writes_it():
    def function(a, b=1, *rest, c, d=2, **more):
        return a

    assert contract.parameters_of(function) == "(a, b=, *rest, c, d=, **more)"


def test_the_stage_gets_the_callbacks_of_llamafactorys_training_function():
    tuner = lf.import_tuner()
    theirs = contract.appended_callbacks(lf.original_training_function(tuner))
    ours = contract.appended_callbacks(lf.stage_callbacks)
    assert len(theirs) >= 7 and theirs[-1][1].startswith("ReporterCallback(")  # the list was read
    # ours writes its LogCallback as LossTermsLogCallback (the same lines plus the loss terms)
    assert [(when, "LogCallback()" if what == "LossTermsLogCallback()" else what) for when, what in ours] == theirs
    assert issubclass(lf.LossTermsLogCallback, tuner.LogCallback)
    # and the names in them are LLaMA-Factory's same objects
    stage_globals = lf.stage_callbacks.__globals__
    for _, what in theirs:
        name = what.split("(")[0]
        if name != "LogCallback":
            assert stage_globals[name] is tuner.__dict__[name], name


def test_a_drift_in_the_callback_list_is_seen():
    def training_function(config):
        callbacks = config.get("callbacks")
        callbacks.append(LogCallback())  # noqa: F821
        if config.get("new_option"):
            callbacks.append(NewCallback())  # noqa: F821
        else:
            callbacks.append(OtherCallback())  # noqa: F821

    assert contract.appended_callbacks(training_function) == [
        ((), "LogCallback()"),
        (("config.get('new_option')",), "NewCallback()"),
        (("not (config.get('new_option'))",), "OtherCallback()"),
    ]
    assert contract.appended_callbacks(training_function) != contract.appended_callbacks(lf.stage_callbacks)


LLAMAFACTORY_ARGUMENTS = {"model_args", "data_args", "training_args", "generating_args"}


def test_llamafactory_field_names_are_read_only_in_integration():
    """Outside ``integration/`` the parsed arguments only pass through, except for the plugin's own keys."""
    from llamafactory_safeeraser.unlearn.arguments import UnlearningArguments
    from llamafactory_safeeraser.unlearn.params import declared_keys
    from llamafactory_safeeraser.unlearn.registry import all_methods

    own = {f.name for f in dataclasses.fields(UnlearningArguments)} | set(declared_keys(all_methods()))
    own |= {name for name, _ in inspect.getmembers(UnlearningArguments) if not name.startswith("_")}
    read = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(PACKAGE / "integration"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if name in LLAMAFACTORY_ARGUMENTS or (name == "finetuning_args" and node.attr not in own):
                read.append(f"{path.relative_to(REPO)}:{node.lineno} {name}.{node.attr}")
    assert read == []


def test_a_runs_template_leaves_the_registered_template_as_it_was(tiny_model_dir):
    """LLaMA-Factory writes a run's ``default_system`` into its registered Template; prompts rendered later in the
    same process (lm-eval documents, respond) read the registered one."""
    from types import SimpleNamespace

    from llamafactory.data.template import TEMPLATES
    from transformers import AutoTokenizer

    from llamafactory_safeeraser.integration.template_text import render_user_prompt

    before = render_user_prompt("llava", "<image>\nQ?")
    data_args = SimpleNamespace(
        template="llava", default_system="A run's own system text.", tool_format=None, train_on_prompt=False
    )
    template = lf.get_template_and_fix_tokenizer(AutoTokenizer.from_pretrained(tiny_model_dir), data_args)
    assert template.default_system == "A run's own system text."  # the run gets its system text
    assert TEMPLATES["llava"].default_system != "A run's own system text."
    assert render_user_prompt("llava", "<image>\nQ?") == before
