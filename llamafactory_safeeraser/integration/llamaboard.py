"""A stage of ours in LlamaBoard (``llamafactory-cli webui``): listed among the training stages, with its own
fields, passed to the run it starts, and drawn with its loss terms.

``install`` runs right after ``llamafactory.webui.interface`` is imported (see ``hook/startup``), before the
UI is built, and changes nothing unless every target below is as the contract table expects
(``contract.INTERNALS``; an upgrade that moves one leaves LlamaBoard as it is):

- ``extras.constants.TRAINING_STAGES``, the stage dropdown's label -> stage map that the webui reads by
  name everywhere, gets the stage;
- ``interface.create_train_tab`` builds LlamaBoard's Train tab, then a box of the stage's fields right
  below the stage row, shown while the stage is picked. The fields are made before the tab (rendered later)
  so that they are among the inputs of its Preview command / Save arguments / Start buttons;
- ``runner.Runner._initialize`` also checks the fields (the message shows as LlamaBoard's own do);
  ``_parse_train_args`` adds them to the arguments, so the previewed command, the run's
  ``training_args.yaml`` and the run are one; ``_build_config_dict`` leaves them out of other stages'
  saved configurations, which then load without the plugin too;
- ``control.gen_loss_plot`` draws the loss terms with the loss when the run's trainer_log.jsonl has them.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from llamafactory.extras.logging import get_logger

from .contract import problems
from .trainer_log import LOSS_TERMS_KEY

logger = get_logger(f"llamafactory.{__name__}")  # LLaMA-Factory's handler and format, as integration.llamafactory
_PATCHED_FLAG = "__safeeraser_board__"


@dataclass(frozen=True)
class BoardField:
    """One input of the stage's box; ``name`` is its YAML key."""

    name: str
    info: str = ""
    choices: tuple[str, ...] = ()  # a dropdown; no choices: a text box
    dataset: bool = False  # a dataset picker listing dataset_info.json, as LlamaBoard's own
    default: str = ""
    per_choice: bool = False  # shown only when the selector's choice reads it (``BoardStage.fields_for``)


@dataclass(frozen=True)
class BoardStage:
    """What LlamaBoard needs to know about a stage; built by the hook layer."""

    label: str  # its name in the stage dropdown
    stage: str  # its `stage:` value
    selector: BoardField  # the field whose choice decides which ``per_choice`` fields show
    fields: tuple[BoardField, ...]
    fields_for: Callable[[str], dict[str, str]]  # a choice -> {field: default} of the fields it reads
    to_args: Callable[[dict[str, Any]], dict[str, Any]]  # field values -> YAML keys; ValueError on bad input
    check: Callable[[dict[str, Any]], None]  # the run's whole arguments; ValueError with the message
    all_fields: tuple[BoardField, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "all_fields", (self.selector, *self.fields))


def install(interface: ModuleType, spec: BoardStage) -> None:
    """Add ``spec`` to an imported ``llamafactory.webui.interface`` (idempotent); leave it alone if a target
    is missing."""
    try:
        from llamafactory.extras import constants
        from llamafactory.webui import control, runner
    except ImportError as err:
        return _leave_untouched(spec, str(err))
    found = problems(["board"])  # LlamaBoard's rows of the contract table
    if found:
        return _leave_untouched(spec, ", ".join(found))
    stages = constants.TRAINING_STAGES
    if getattr(interface.create_train_tab, _PATCHED_FLAG, False):
        return

    stages[spec.label] = spec.stage
    _patch(interface, "create_train_tab", _train_tab_with(spec, stages, control.list_datasets))
    _patch(runner.Runner, "_initialize", _initialize_with(spec, stages))
    _patch(runner.Runner, "_parse_train_args", _parse_train_args_with(spec))
    _patch(runner.Runner, "_build_config_dict", _build_config_dict_with(spec, stages))
    _patch(control, "gen_loss_plot", _loss_plot_with_terms)


def _leave_untouched(spec: BoardStage, why: str) -> None:
    logger.warning(f"LlamaBoard shows no `{spec.label}` stage: {why} (`llamafactory-cli train` still runs it).")


def _patch(owner: Any, name: str, make: Callable[[Callable], Callable]) -> None:
    patched = make(getattr(owner, name))
    setattr(patched, _PATCHED_FLAG, True)
    setattr(owner, name, patched)


def _elem_id(spec: BoardStage, name: str) -> str:
    """The field's id in LlamaBoard's manager (and its saved configurations): ``<stage>.<key>``."""
    return f"{spec.stage}.{name}"


def _chosen_stage(runner: Any, data: dict, stages: dict[str, str]) -> str | None:
    return stages.get(data[runner.manager.get_elem_by_id("train.training_stage")])


# ----- the Train tab ------------------------------------------------------------------------------------
def _train_tab_with(
    spec: BoardStage, stages: dict[str, str], list_datasets: Callable
) -> Callable[[Callable], Callable]:
    import gradio as gr

    def make(create_train_tab: Callable) -> Callable:
        @functools.wraps(create_train_tab)
        def train_tab(engine: Any) -> dict:
            inputs = {f.name: _make_input(gr, spec, f) for f in spec.all_fields}
            get_base_elems = engine.manager.get_base_elems
            # the tab starts its buttons' inputs from the base elements: ours join them (this call only)
            engine.manager.get_base_elems = lambda: get_base_elems() | set(inputs.values())
            try:
                elem_dict = create_train_tab(engine)
            finally:
                del engine.manager.get_base_elems
            box = _render_box(gr, spec, inputs)
            _move_below(box, elem_dict["training_stage"])
            _wire(gr, spec, stages, inputs, box, elem_dict, list_datasets)
            engine.manager.add_elems(spec.stage, inputs)
            return elem_dict

        return train_tab

    return make


def _make_input(gr: ModuleType, spec: BoardStage, board_field: BoardField) -> Any:
    shown = not board_field.per_choice or board_field.name in spec.fields_for(spec.selector.default)
    common = {
        "label": board_field.name,
        "info": board_field.info,
        "visible": shown,
        "elem_id": f"{spec.stage}_{board_field.name}",
        "render": False,
    }
    if board_field.dataset:
        return gr.Dropdown(multiselect=True, allow_custom_value=True, **common)
    value = spec.fields_for(spec.selector.default).get(board_field.name, board_field.default or None)
    if board_field.choices:
        return gr.Dropdown(choices=list(board_field.choices), value=value, **common)
    return gr.Textbox(value=value, placeholder="default", **common)


def _render_box(gr: ModuleType, spec: BoardStage, inputs: dict[str, Any]) -> Any:
    with gr.Accordion(label=spec.label, open=True, visible=False, elem_id=f"{spec.stage}_box") as box:
        with gr.Row():
            for f in spec.all_fields:
                if not f.per_choice:
                    inputs[f.name].render()
        with gr.Row():
            for f in spec.fields:
                if f.per_choice:
                    inputs[f.name].render()
    return box


def _move_below(box: Any, stage_dropdown: Any) -> None:
    """Put the box right under the row holding the stage dropdown (it was rendered at the tab's end)."""
    tab = getattr(box, "parent", None)
    row = stage_dropdown
    while row is not None and getattr(row, "parent", None) is not tab:  # gradio nests it in a Row and a Form
        row = getattr(row, "parent", None)
    children = getattr(tab, "children", None)
    if row is not None and isinstance(children, list) and box in children:  # else it stays at the end
        children.remove(box)
        children.insert(children.index(row) + 1, box)


def _wire(
    gr: ModuleType,
    spec: BoardStage,
    stages: dict[str, str],
    inputs: dict[str, Any],
    box: Any,
    elem_dict: dict,
    list_datasets: Callable,
) -> None:
    stage_dropdown, dataset_dir = elem_dict["training_stage"], elem_dict["dataset_dir"]
    per_choice = [f.name for f in spec.fields if f.per_choice]
    per_choice_inputs = [inputs[name] for name in per_choice]

    def show_box(label: str) -> Any:
        return gr.update(visible=stages.get(label) == spec.stage)

    def show_fields(choice: str) -> list:
        read = spec.fields_for(choice) if choice else {}
        return [gr.update(visible=name in read) for name in per_choice]

    def reset_fields(choice: str) -> list:  # a user's pick: the chosen method's defaults
        read = spec.fields_for(choice) if choice else {}
        return [
            gr.update(visible=True, value=read[name]) if name in read else gr.update(visible=False)
            for name in per_choice
        ]

    stage_dropdown.change(show_box, [stage_dropdown], [box], queue=False)
    selector = inputs[spec.selector.name]
    # `change` also fires when a saved configuration is loaded: visibility only, the loaded values stay
    selector.change(show_fields, [selector], per_choice_inputs, queue=False)
    selector.input(reset_fields, [selector], per_choice_inputs, queue=False)
    for f in spec.all_fields:
        if f.dataset:
            inputs[f.name].focus(list_datasets, [dataset_dir, stage_dropdown], [inputs[f.name]], queue=False)


# ----- the runner ---------------------------------------------------------------------------------------
def _initialize_with(spec: BoardStage, stages: dict[str, str]) -> Callable[[Callable], Callable]:
    def make(initialize: Callable) -> Callable:
        @functools.wraps(initialize)
        def checked(self: Any, data: dict, do_train: bool, from_preview: bool) -> str:
            error = initialize(self, data, do_train, from_preview)
            if error or not do_train or _chosen_stage(self, data, stages) != spec.stage:
                return error
            try:
                spec.check(self._parse_train_args(data))
            except ValueError as err:
                return f"{spec.label}: {err}"
            return ""

        return checked

    return make


def _parse_train_args_with(spec: BoardStage) -> Callable[[Callable], Callable]:
    def make(parse_train_args: Callable) -> Callable:
        @functools.wraps(parse_train_args)
        def with_fields(self: Any, data: dict) -> dict[str, Any]:
            args = parse_train_args(self, data)
            if args.get("stage") == spec.stage:
                values = {f.name: data[self.manager.get_elem_by_id(_elem_id(spec, f.name))] for f in spec.all_fields}
                args.update(spec.to_args(values))  # a field left empty keeps what "Extra arguments" set
            return args

        return with_fields

    return make


def _build_config_dict_with(spec: BoardStage, stages: dict[str, str]) -> Callable[[Callable], Callable]:
    def make(build_config_dict: Callable) -> Callable:
        @functools.wraps(build_config_dict)
        def without_other_stages_fields(self: Any, data: dict) -> dict[str, Any]:
            config = build_config_dict(self, data)
            if stages.get(config.get("train.training_stage")) != spec.stage:
                config = {key: value for key, value in config.items() if not key.startswith(f"{spec.stage}.")}
            return config

        return without_other_stages_fields

    return make


# ----- the loss curve -----------------------------------------------------------------------------------
def _loss_plot_with_terms(gen_loss_plot: Callable) -> Callable:
    @functools.wraps(gen_loss_plot)
    def plot(trainer_log: list[dict[str, Any]]) -> Any:
        if not any(LOSS_TERMS_KEY in line for line in trainer_log):
            return gen_loss_plot(trainer_log)  # another stage: LlamaBoard's own plot
        return loss_terms_figure(trainer_log)

    return plot


def loss_terms_figure(trainer_log: list[dict[str, Any]]) -> Any:
    """The loss and each logged term against the step, one line each, from trainer_log.jsonl lines."""
    import matplotlib.pyplot as plt

    plt.close("all")
    plt.switch_backend("agg")
    figure = plt.figure(layout="constrained")
    axes = figure.add_subplot(111)
    series: dict[str, tuple[list[int], list[float]]] = {"loss": ([], [])}
    for line in trainer_log:
        values = {"loss": line.get("loss"), **line.get(LOSS_TERMS_KEY, {})}
        for name, value in values.items():
            if value is not None:
                steps, points = series.setdefault(name, ([], []))
                steps.append(line["current_steps"])
                points.append(value)
    for name, (steps, points) in series.items():
        axes.plot(steps, points, label=name, linewidth=2.0 if name == "loss" else 1.2, marker=".")
    figure.legend(loc="outside lower center", ncols=3)  # below the axes: the curves stay uncovered
    axes.set_xlabel("step")
    axes.set_ylabel("loss and its terms")
    return figure
