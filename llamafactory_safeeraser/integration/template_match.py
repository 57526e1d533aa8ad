"""Does a LLaMA-Factory template fit a model? Its multimodal plugin's image token must be a token of the model.

Derived from LLaMA-Factory's template registry (the template's ``mm_plugin``) and the model folder's own files
(``config.json``'s ``model_type``, the processor class, the tokenizer's added tokens), not from a list of
families: a LLaVA model has ``<image>``, Qwen2-VL ``<|image_pad|>``, Mllama ``<|image|>``, and a template whose
plugin writes another image token renders prompts the model cannot read (wrong chat format) or crashes in
the plugin mid-run. Only local model folders are checked; a hub id is left to LLaMA-Factory.

:func:`check_template_serves_model` is the one check the `unlearn` stage (when ``llamafactory-cli train``
parses), ``safeeraser eval`` and ``safeeraser respond`` run before any model loads: everything the plugin needs
of the template and the model, each missing piece one line naming them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llamafactory.data.template import TEMPLATES
from llamafactory.extras.constants import IMAGE_PLACEHOLDER

from ..errors import SafeEraserError


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def model_tokens(folder: Path) -> set[str]:
    """The tokenizer's added (special) tokens, as its saved files list them."""
    config = _read_json(folder / "tokenizer_config.json")
    tokens = {str(entry.get("content")) for entry in config.get("added_tokens_decoder", {}).values()}
    tokens |= {str(entry.get("content")) for entry in _read_json(folder / "tokenizer.json").get("added_tokens", [])}
    return tokens


def model_description(folder: Path) -> str:
    model_type = _read_json(folder / "config.json").get("model_type", "unknown")
    processor = next(
        (
            _read_json(folder / name).get("processor_class")
            for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
            if _read_json(folder / name).get("processor_class")
        ),
        None,
    )
    return f"model_type '{model_type}'" + (f", {processor}" if processor else "")


def check_template_fits_model(template: str, model: str | Path) -> None:
    """Raise SafeEraserError (one line naming both) when ``template``'s image plugin does not fit ``model``."""
    folder = Path(model).expanduser()
    if template not in TEMPLATES or not (folder / "config.json").is_file():
        return  # an unknown template is LLaMA-Factory's own error; a hub id is not checked here
    plugin = TEMPLATES[template].mm_plugin
    image_token = getattr(plugin, "image_token", None)
    tokens = model_tokens(folder)
    if image_token is None or not tokens or image_token in tokens:
        return
    from .template_text import plugin_needs_processor

    if image_token == IMAGE_PLACEHOLDER and plugin_needs_processor(template):
        return  # the plugin writes the model's tokens in place of the placeholder: the processor check decides
    model_type = _read_json(folder / "config.json").get("model_type")
    same_name = TEMPLATES.get(model_type) if isinstance(model_type, str) else None
    fits = same_name is not None and getattr(same_name.mm_plugin, "image_token", None) in tokens
    hint = f"; template '{model_type}' fits it" if fits else "; use the template the model was trained with"
    raise SafeEraserError(
        f"template '{template}' ({type(plugin).__name__}, image token {image_token}) does not fit the model "
        f"{model} ({model_description(folder)}, which has no {image_token} token){hint}"
    )


def check_template(template: str | None) -> None:
    """One line for a template the plugin cannot serve whatever the model: unknown, or without images."""
    if template is None:
        return  # LLaMA-Factory's default; its own checks apply
    if template not in TEMPLATES:
        raise SafeEraserError(f"unknown LLaMA-Factory template '{template}'")
    if getattr(TEMPLATES[template].mm_plugin, "image_token", None) is None:
        raise SafeEraserError(
            f"template '{template}': text only (its multimodal plugin has no image token); SafeEraser's rows "
            "show the model an image: use a vision-language template"
        )


def config_image_token_id(folder: Path) -> int | None:
    """The image token id ``config.json`` declares (``image_token_id`` or ``image_token_index``, as lm-eval's
    hf-multimodal reads it); None when it declares none."""
    config = _read_json(folder / "config.json")
    for key in ("image_token_id", "image_token_index"):
        if isinstance(config.get(key), int):
            return config[key]
    return None


def _added_token_ids(folder: Path) -> set[int]:
    config = _read_json(folder / "tokenizer_config.json")
    ids = {int(key) for key in config.get("added_tokens_decoder", {}) if str(key).isdigit()}
    return ids | {
        entry["id"] for entry in _read_json(folder / "tokenizer.json").get("added_tokens", []) if "id" in entry
    }


def check_template_serves_model(template: str | None, model: str | Path) -> None:
    """Raise SafeEraserError (one line naming the template or model and what is missing) unless the plugin can
    serve ``template`` on ``model``: a known vision-language template, its image token among the model's tokens,
    an image token id in the model's config (lm-eval swaps ``<image>`` for it), and, where the template's
    multimodal plugin reads the processor (``gemma3``), a processor with what the plugin reads. A hub id is
    checked for the template only (its files are LLaMA-Factory's to fetch), and so is a folder whose config.json
    names no ``model_type``."""
    from .template_text import PluginNeedsProcessor, image_placeholder_text, plugin_needs_processor

    check_template(template)
    folder = Path(model).expanduser()
    if template is None or "model_type" not in _read_json(folder / "config.json"):
        return  # a hub id, or a folder transformers itself will refuse
    check_template_fits_model(template, folder)
    token_id = config_image_token_id(folder)
    if token_id is None:
        raise SafeEraserError(
            f"model {model}: config.json declares no image token (image_token_id or image_token_index), "
            "which lm-eval's hf-multimodal and respond put in place of each image"
        )
    added = _added_token_ids(folder)
    if added and token_id not in added:
        raise SafeEraserError(f"model {model}: config.json's image token id {token_id} is not a token of its tokenizer")
    if not plugin_needs_processor(template):
        return
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as err:
        raise SafeEraserError(
            f"model {model}: template '{template}' needs the model's processor, which does not load "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    try:
        image_placeholder_text(template, "<image>", processor)
    except PluginNeedsProcessor as err:
        raise SafeEraserError(f"model {model}: {err}") from None
