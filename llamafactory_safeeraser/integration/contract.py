"""The LLaMA-Factory internals the plugin relies on, in one table, and the check of them against an install.

Public API changes are announced; these are not. Each row names a symbol (module path, then attribute path),
what we rely on, and what we expect of it: a function's parameters (names, ``=`` for a default, ``*args``,
``**kwargs``), a list of argument dataclasses, or a dict. ``problems`` compares the installed LLaMA-Factory
with the table; the stage's and LlamaBoard's install run it on their part of the table before patching
anything, and tests/hook_and_contract/test_llamafactory_contract.py runs it on all of it. An upgrade that
changes a row shows here, in one line per row.

The callbacks ``llamafactory.stage_callbacks`` gives the `unlearn` stage mirror those that LLaMA-Factory's
``tuner._training_function`` builds inline: ``appended_callbacks`` reads both lists out of the source, so
that the test sees a drift.
"""

import ast
import importlib
import inspect
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Internal:
    symbol: str  # "llamafactory.<module>.<attribute>[.<attribute>]"
    # who relies on it: "stage" (training), "prompts" (lm-eval and respond), "quantize" (quantized evaluation),
    # "board" (LlamaBoard)
    part: str
    relied_on: str
    expected: str  # "(a, b=, *args, **kwargs)": the parameters; "arguments list"; "dict"
    optional: bool = False  # may be absent (an optional backend's list); checked only where present


INTERNALS: tuple[Internal, ...] = (
    # ----- the `unlearn` stage ------------------------------------------------------------------------------
    Internal(
        "llamafactory.hparams.parser._TRAIN_ARGS",
        "stage",
        "the dataclasses `llamafactory-cli train` parses; FinetuningArguments is swapped for the stage's subclass",
        "arguments list",
    ),
    Internal(
        "llamafactory.hparams.parser._INFER_ARGS",
        "stage",
        "the same for chat/export/webchat, so a run's saved arguments load there too",
        "arguments list",
    ),
    Internal(
        "llamafactory.hparams.parser._EVAL_ARGS", "stage", "the same for `llamafactory-cli eval`", "arguments list"
    ),
    Internal(
        "llamafactory.hparams.parser._TRAIN_MCA_ARGS",
        "stage",
        "the same for the mcore-adapter backend (present only with it)",
        "arguments list",
        optional=True,
    ),
    Internal(
        "llamafactory.train.tuner._training_function",
        "stage",
        "run_exp's per-process training: reads config['args'] and config['callbacks']; wrapped to send "
        "`stage: unlearn` to the plugin (callbacks: see appended_callbacks)",
        "(config)",
    ),
    Internal(
        "llamafactory.train.callbacks.LogCallback._write_log",
        "stage",
        "writes one trainer_log.jsonl line (a dict); overridden to add the step's loss terms",
        "(self, output_dir, logs)",
    ),
    Internal(
        "llamafactory.data.loader._get_merged_dataset",
        "stage",
        "loads dataset_info.json datasets aligned into _prompt/_response/_system/_images/... columns",
        "(dataset_names, model_args, data_args, training_args, stage, return_dict=)",
    ),
    Internal(
        "llamafactory.data.processor.supervised.SupervisedDatasetProcessor.preprocess_dataset",
        "stage",
        "the SFT processor (fields template, tokenizer, processor, data_args) subclassed to keep prompt and "
        "answer ids apart",
        "(self, examples)",
    ),
    # ----- prompts for lm-eval and respond ------------------------------------------------------------------
    Internal(
        "llamafactory.data.template.Template._convert_elements_to_ids",
        "prompts",
        "encodes a template's elements part by part, each with add_special_tokens=False, as training does",
        "(self, tokenizer, elements)",
    ),
    Internal(
        "llamafactory.data.template.Template._encode",
        "prompts",
        "builds each turn's elements (prefix, system where the template class puts it, user) and encodes them "
        "with _convert_elements_to_ids; run with that replaced to read the first turn's elements",
        "(self, tokenizer, messages, system, tools)",
    ),
    Internal(
        "llamafactory.data.mm_plugin.BasePlugin._preprocess_image",
        "prompts",
        "resizes a PIL image to image_max_pixels / image_min_pixels as training does",
        "(self, image, image_max_pixels, image_min_pixels, **kwargs)",
    ),
    # ----- quantized evaluation ----------------------------------------------------------------------------
    Internal(
        "llamafactory.model.model_utils.quantization.configure_quantization",
        "quantize",
        "for a config without quantization_config and ModelArguments.quantization_bit 8 / 4 (bitsandbytes), "
        "puts the BitsAndBytesConfig into init_kwargs['quantization_config']",
        "(config, tokenizer, model_args, is_trainable, init_kwargs)",
    ),
    # ----- LlamaBoard --------------------------------------------------------------------------------------
    Internal(
        "llamafactory.extras.constants.TRAINING_STAGES",
        "board",
        "the stage dropdown's label -> stage map, read by name across the web UI",
        "dict",
    ),
    Internal(
        "llamafactory.webui.interface.create_train_tab",
        "board",
        "builds the Train tab and returns its elements by name (training_stage, dataset_dir)",
        "(engine)",
    ),
    Internal(
        "llamafactory.webui.manager.Manager.get_base_elems",
        "board",
        "the elements every button of the tab takes as inputs",
        "(self)",
    ),
    Internal(
        "llamafactory.webui.runner.Runner._initialize",
        "board",
        "checks a run's inputs; returns an error message or ''",
        "(self, data, do_train, from_preview)",
    ),
    Internal(
        "llamafactory.webui.runner.Runner._parse_train_args",
        "board",
        "the web UI's inputs -> the run's train arguments (a dict)",
        "(self, data)",
    ),
    Internal(
        "llamafactory.webui.runner.Runner._build_config_dict",
        "board",
        "the inputs a saved configuration holds, by element id",
        "(self, data)",
    ),
    Internal(
        "llamafactory.webui.control.gen_loss_plot",
        "board",
        "trainer_log.jsonl lines -> the loss figure",
        "(trainer_log)",
    ),
    Internal(
        "llamafactory.webui.control.list_datasets",
        "board",
        "the dataset picker's choices for a dataset_dir and a stage",
        "(dataset_dir=, training_stage=)",
    ),
)


def resolve(symbol: str) -> Any:
    """The object ``symbol`` names, importing its module (the longest importable prefix); AttributeError or
    ImportError when it is not there."""
    parts = symbol.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            value = getattr(value, attribute)
        return value
    raise ImportError(f"no module of {symbol} can be imported")


def parameters_of(function: Callable) -> str:
    """A function's parameters as the table writes them: ``(a, b=, *args, **kwargs)``."""
    written = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            written.append(f"*{parameter.name}")
        elif parameter.kind is parameter.VAR_KEYWORD:
            written.append(f"**{parameter.name}")
        else:
            written.append(parameter.name + ("=" if parameter.default is not parameter.empty else ""))
    return f"({', '.join(written)})"


def _found(internal: Internal, value: Any) -> str:
    if internal.expected == "arguments list":
        if isinstance(value, list) and all(isinstance(cls, type) for cls in value):
            return "arguments list"
        return f"a {type(value).__name__}"
    if internal.expected == "dict":
        return "dict" if isinstance(value, dict) else f"a {type(value).__name__}"
    if not callable(value):
        return f"a {type(value).__name__}"
    return parameters_of(value)


def problems(parts: Iterable[str] | None = None) -> list[str]:
    """One line per row of ``INTERNALS`` (those of ``parts``; default all) the installed LLaMA-Factory does not
    match: ``<symbol> is missing`` or ``<symbol> is <found>, expected <expected>``."""
    chosen = set(parts) if parts is not None else None
    found = []
    for internal in INTERNALS:
        if chosen is not None and internal.part not in chosen:
            continue
        try:
            value = resolve(internal.symbol)
        except (AttributeError, ImportError):
            if not internal.optional:
                found.append(f"{internal.symbol} is missing")
            continue
        written = _found(internal, value)
        if written != internal.expected:
            found.append(f"{internal.symbol} is {written}, expected {internal.expected}")
    return found


def appended_callbacks(function: Callable, name: str = "callbacks") -> list[tuple[tuple[str, ...], str]]:
    """Every ``<name>.append(X)`` in ``function``'s source, in order, as (the conditions of the ``if``
    statements around it, X), both as source text. A callback list built inline reads as what it appends
    under which condition."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    found: list[tuple[tuple[str, ...], str]] = []

    def visit(node: ast.AST, conditions: tuple[str, ...]) -> None:
        if isinstance(node, ast.If):
            for child in node.body:
                visit(child, (*conditions, ast.unparse(node.test)))
            for child in node.orelse:
                visit(child, (*conditions, f"not ({ast.unparse(node.test)})"))
            return
        call = node.value if isinstance(node, ast.Expr) else None
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "append"
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == name
        ):
            found.append((conditions, ast.unparse(call.args[0])))
            return
        for child in ast.iter_child_nodes(node):
            visit(child, conditions)

    visit(tree, ())
    return found
